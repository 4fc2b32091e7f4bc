//! One task per assigned partition: events in offset order through the engine,
//! outputs to Kafka, checkpoints to RocksDB, offsets committed after both.
//!
//! Delivery (at-least-once, design §6), pipelined so processing never waits for
//! the store: a checkpoint is *sealed* at offset N by taking the state changes
//! made so far (an in-memory copy); once every output sent for events before N is
//! acknowledged by the broker it is *written* (state + N in one RocksDB batch, on a
//! blocking thread), and once written, N is *committed*. Meanwhile events after N
//! keep flowing. A crash anywhere replays from the last written checkpoint with the
//! same ids, so duplicates are harmless.
//!
//! Exactly-once (`processing.guarantee = "exactly_once"`): the partition has its own
//! transactional producer (`transactional.id` = `warden-<group>-<topic>-<partition>`, so a new owner
//! fences an old one). A checkpoint commits the transaction with the input offset,
//! then writes the state at that offset; a local checkpoint is therefore never ahead
//! of the committed offset (one that is, is discarded on assignment). The consumer
//! then commits the same offset too (see `confirm_commit`). If a commit
//! fails, the transaction is aborted, the state restored from the last checkpoint,
//! and the partition read again from there.
//!
//! The task is split by concern: [`delivery`] (outputs until acknowledged),
//! [`checkpoint`] (seal, write, commit) and [`transaction`] (exactly-once).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};
use warden_detectors::rules::DetectorKind;
use warden_detectors::state::StateStore;
use warden_detectors::{decide, Engine, Outcome, PartitionState, Tally, Usage};
use warden_schemas::{output, Provenance, Record};
use warden_sinks::kafka::{DeadLetterSource, KafkaOutputs};
use warden_sinks::latency::LocalLatency;
use warden_sinks::metrics::{DetectorLabel, TenantLabel};
use warden_sinks::registry::{ActiveEntry, SubjectKey};

use super::consumer::ConsumerCmd;
use super::feed::FeedReceiver;
use super::telemetry;
use super::Shared;

mod checkpoint;
mod delivery;
mod transaction;

pub use checkpoint::read_position;
use checkpoint::{Sealed, Writing};
use delivery::Ack;
use transaction::transactional_outputs;

/// At most this many outputs awaiting acknowledgement before the task stops reading.
const MAX_PENDING: usize = 20_000;

/// One input message, copied out of librdkafka's buffers.
#[derive(Debug)]
pub struct Input {
    /// Offset.
    pub offset: i64,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message bytes.
    pub payload: Vec<u8>,
    /// When the consumer thread received it (latency is measured from here).
    pub arrived: Instant,
}

/// A command to a partition task.
#[derive(Debug)]
pub enum Control {
    /// Stop: drain outputs, checkpoint, hand back the next offset (None if nothing
    /// may be committed).
    Revoke {
        /// Where the offset goes.
        done: std::sync::mpsc::Sender<Option<i64>>,
    },
    /// An operator lifts the records in force on a subject.
    Lift {
        /// The subject.
        subject: SubjectKey,
        /// The lift decisions emitted.
        reply: oneshot::Sender<Vec<Record>>,
    },
}

/// Where a partition starts, decided at assignment.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// First offset to read (`None`: the earliest).
    pub start: Option<i64>,
    /// Restore state from the local checkpoint.
    pub restore: bool,
    /// Outputs are suppressed below this offset (the group's committed offset).
    pub warm_until: Option<i64>,
}

/// How often a partition task adds its tally to the shared metrics. Each flush
/// is a handful of counter updates; at 0.5 s a counter read during a 2-second
/// catch-up moved in steps of a quarter of it (bench/RESULTS.md).
const METRICS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

struct Task {
    shared: Arc<Shared>,
    /// The engine this partition's state is laid out for, and its generation.
    engine: Arc<Engine>,
    engine_generation: u64,
    /// The producer: shared, or this partition's transactional one.
    outputs: Arc<KafkaOutputs>,
    /// Exactly-once: this partition runs transactions.
    transactional: bool,
    /// The position of the last durable checkpoint (where an abort rewinds to).
    base: Option<i64>,
    /// Skip inputs until this offset arrives again (after a rewind's seek).
    rewind_to: Option<i64>,
    /// The offset the last committed transaction carried.
    committed: Option<i64>,
    /// The last offset sent to the consumer for committing, when, and whether it
    /// was sent again once the partition went quiet.
    last_commit: Option<(i64, Instant, bool)>,
    name: String,
    topic: String,
    partition: i32,
    state: PartitionState,
    /// Next offset to process; `None` until the first message.
    next: Option<i64>,
    warm_until: Option<i64>,
    pending: FuturesUnordered<BoxFuture<'static, Ack>>,
    /// Sequence numbers of outputs not yet acknowledged.
    unacked: BTreeSet<u64>,
    next_seq: u64,
    sealed: Option<Sealed>,
    writing: Option<Writing>,
    tally: Tally,
    /// Event latencies not yet added to `process_latency` (on the metrics tick).
    latency: LocalLatency,
    records: Vec<Record>,
    since_checkpoint: u64,
    full_snapshot: bool,
    clock: Arc<std::sync::atomic::AtomicI64>,
    /// What this partition last added to the state gauges.
    usage: Usage,
}

/// Runs a partition until it is revoked or its channel closes.
pub async fn run(
    shared: Arc<Shared>,
    topic: String,
    partition: i32,
    plan: Plan,
    transactional: bool,
    mut rx: FeedReceiver,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let name = format!("{topic}/{partition}");
    let outputs =
        if transactional { transactional_outputs(&shared, &topic, partition).await } else { shared.outputs.clone() };
    let (engine_generation, engine) = shared.engine_generation();
    let mut task = Task {
        engine,
        engine_generation,
        outputs,
        transactional,
        base: plan.start,
        rewind_to: None,
        committed: plan.warm_until,
        last_commit: None,
        state: shared.engine().new_state(),
        clock: shared.registry.clock(&name),
        shared: shared.clone(),
        name,
        topic,
        partition,
        next: plan.start,
        warm_until: plan.warm_until,
        pending: FuturesUnordered::new(),
        unacked: BTreeSet::new(),
        next_seq: 0,
        sealed: None,
        writing: None,
        tally: Tally::default(),
        latency: shared.metrics.process_latency.local(),
        records: Vec::new(),
        since_checkpoint: 0,
        full_snapshot: false,
        usage: Usage::default(),
    };
    prepare_state(&shared, &task.name, &mut task.state);
    if plan.restore {
        task.restore().await;
        // The checkpoint at S was written after its outputs were acknowledged, so S
        // may be committed now: after a crash between checkpoint and commit, a
        // partition with nothing left to read would otherwise never commit it.
        if let (false, Some(s)) = (transactional, plan.start) {
            if let Some(offset) = task.committable(s) {
                task.commit(offset);
            }
        }
    }
    shared.partition_restored();
    let mut checkpoint_timer = tokio::time::interval(shared.settings.checkpoint_interval);
    checkpoint_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut metrics_timer = tokio::time::interval(METRICS_EVERY);
    // A pass over all state: rarely.
    let mut usage_timer = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tokio::select! {
            biased;
            Some(ack) = task.pending.next(), if !task.pending.is_empty() => {
                task.acked(ack);
                task.start_write();
            }
            written = async { (&mut task.writing.as_mut().expect("guarded").handle).await }, if task.writing.is_some() => {
                task.written(written);
            }
            cmd = control.recv() => match cmd {
                Some(Control::Revoke { done }) => {
                    let next = if task.transactional {
                        // The offset went out with the transaction; the consumer
                        // commits it once more (see `confirm_commit`).
                        task.transaction_checkpoint(false).await;
                        task.committed.filter(|_| task.warm_until.is_none())
                    } else {
                        task.checkpoint_now().await
                    };
                    task.report_usage(Usage::default());
                    let _ = done.send(next);
                    return;
                }
                Some(Control::Lift { subject, reply }) => {
                    let lifted = task.lift(&subject).await;
                    let _ = reply.send(lifted);
                }
                None => return,
            },
            _ = checkpoint_timer.tick() => task.checkpoint_due().await,
            _ = metrics_timer.tick() => task.flush_metrics(),
            _ = usage_timer.tick() => {
                let usage = task.state.usage(task.engine.rules());
                task.report_usage(usage);
            }
            batch = rx.recv(), if task.pending.len() < MAX_PENDING => match batch {
                Some(batch) => {
                    task.state.set_limits(task.shared.partition_limits());
                    for input in batch {
                        task.process(input).await;
                    }
                    if task.since_checkpoint >= task.shared.settings.checkpoint_events {
                        task.checkpoint_due().await;
                    }
                    // Let the runtime in after each batch (a few hundred events at
                    // most). While input is queued every branch above stays ready,
                    // so this task ran up to 128 batches per poll and the runtime's
                    // timer driver (metrics and checkpoint intervals) went unpolled
                    // for seconds; a yielded task resumes only after the driver runs.
                    tokio::task::yield_now().await;
                }
                None => return,
            },
        }
    }
}

/// Readies a state for this partition: change tracking for checkpoints, tenant
/// visitor estimates if asked, and a spill store emptied for it (a new state has
/// spilled nothing), held to this partition's share of the memory budget.
fn prepare_state(shared: &Shared, name: &str, state: &mut PartitionState) {
    state.set_track_changes(true);
    state.visitors.per_tenant = shared.settings.tenant_labels;
    match shared.store.spill(name) {
        Ok(spill) => state.attach_spill(warden_detectors::state::spill::shared(spill), shared.partition_limits()),
        Err(e) => {
            tracing::error!(partition = name, error = %e, "cannot open the spill store; this partition's state is not held to the memory budget")
        }
    }
}

impl Task {
    /// After a rule reload, carries the state over to the new engine before the next
    /// event: windows and blocks of rules that keep their name survive (see
    /// `PartitionState::migrated`), and the next checkpoint is a full one.
    fn follow_reload(&mut self) {
        let (generation, engine) = self.shared.engine_generation();
        if generation == self.engine_generation {
            return;
        }
        let mut fresh = match self.state.migrated(self.engine.rules(), engine.rules()) {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::error!(partition = self.name, error = %e, "state could not be carried over to the new rules; starting it afresh");
                engine.new_state()
            }
        };
        prepare_state(&self.shared, &self.name, &mut fresh);
        self.state = fresh;
        self.full_snapshot = true;
        self.engine = engine;
        self.engine_generation = generation;
        tracing::info!(partition = self.name, generation, "partition now runs the reloaded rules");
    }

    async fn restore(&mut self) {
        let store = self.shared.store.clone();
        let name = self.name.clone();
        let started = Instant::now();
        let stored = tokio::task::spawn_blocking(move || store.read_checkpoint(&name)).await;
        let engine = self.engine.clone();
        match stored {
            Ok(Ok(Some(stored))) => match self.state.restore(engine.rules(), &stored) {
                Ok(spilled) => self.tally.quota_exceeded += spilled as u64,
                Err(e) => {
                    tracing::error!(partition = self.name, error = %e, "cannot restore the checkpoint; continuing without its state");
                    self.state = engine.new_state();
                    prepare_state(&self.shared, &self.name, &mut self.state);
                    self.full_snapshot = true;
                }
            },
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(partition = self.name, error = %e, "cannot read the checkpoint"),
            Err(e) => tracing::error!(partition = self.name, error = %e, "restore task failed"),
        }
        let now = self.state.clock.max_ts.unwrap_or(i64::MIN);
        self.clock.store(now, Ordering::Relaxed);
        for a in decide::all_active(engine.rules(), &self.state.decide, now) {
            // The id is content, so the record's own id is recomputed exactly.
            let schema = if a.action.is_killswitch() { output::KILLSWITCH_SCHEMA } else { output::DECISION_SCHEMA };
            let id = match a.event_sha256.is_empty() {
                true => String::new(),
                false => output::decision_id(
                    schema,
                    &a.rule,
                    a.action,
                    a.tenant.as_deref(),
                    &a.subject,
                    a.event_ts,
                    &a.event_sha256,
                ),
            };
            let key = (a.tenant.clone(), a.subject.kind.clone(), a.subject.id.clone());
            self.shared.registry.insert(
                key,
                ActiveEntry {
                    rule: a.rule,
                    action: a.action,
                    reason: format!("restored from checkpoint ({})", a.action.as_str()),
                    event_ts: a.event_ts,
                    expires_at: a.expires_at,
                    id,
                    partition: self.name.clone(),
                },
            );
        }
        tracing::info!(partition = self.name, seconds = started.elapsed().as_secs_f64(), "state restored");
    }

    async fn process(&mut self, input: Input) {
        if let Some(r) = self.rewind_to {
            // Until the seek takes effect, inputs are the ones already processed.
            if input.offset != r {
                return;
            }
            self.rewind_to = None;
        }
        if self.next.is_some_and(|n| input.offset < n) {
            // Fetched before the start offset took effect: already reflected in state.
            return;
        }
        self.follow_reload();
        let engine = self.engine.clone();
        let source = Provenance::Kafka { topic: self.topic.clone(), partition: self.partition, offset: input.offset };
        self.records.clear();
        // A message with no JSON in it (whitespace, or nothing) is bad input like
        // any other: the engine dead-letters it.
        let outcome = engine.handle_bytes(&input.payload, &source, &mut self.state, &mut self.records, &mut self.tally);
        if let Some(ts) = self.state.clock.max_ts {
            self.clock.store(ts, Ordering::Relaxed);
        }
        let warming = self.warm_until.is_some_and(|c| input.offset < c);
        let mut sent = false;
        if warming {
            let dead = u64::from(matches!(outcome, Outcome::Dead(_)));
            let suppressed = self.records.len() as u64 + dead;
            self.shared.metrics.suppressed.get_or_create(&telemetry::reason("warming")).inc_by(suppressed);
        } else {
            let records = std::mem::take(&mut self.records);
            for mut record in records {
                if let (Record::KillSwitch(k), Some(signer)) = (&mut record, &self.shared.signer) {
                    signer.sign(k);
                }
                self.shared.registry.observe(&record, &self.name);
                let f = self.outputs.send(&record).await;
                self.track(f, input.arrived, !self.transactional);
                sent = true;
            }
            if let Outcome::Dead(e) = outcome {
                self.shared.log_dead_letter(&self.name, input.offset, e.reason());
                let src = DeadLetterSource { topic: &self.topic, partition: self.partition, offset: input.offset };
                let f =
                    self.shared.outputs.send_dead_letter(&input.payload, input.key.as_deref(), e.reason(), src).await;
                // Dead letters go on the shared producer, outside any transaction:
                // re-sent until delivered in either mode.
                self.track(f, input.arrived, true);
                sent = true;
            }
        }
        if !sent {
            self.latency.observe(input.arrived.elapsed().as_secs_f64());
        }
        self.next = Some(input.offset + 1);
        self.since_checkpoint += 1;
    }

    /// Lifts the records in force on `subject` in this partition's state, sends the
    /// `lift` decisions, and makes the cleared entries durable.
    async fn lift(&mut self, subject: &SubjectKey) -> Vec<Record> {
        let engine = self.engine.clone();
        let now = self.state.clock.max_ts.unwrap_or(i64::MIN);
        let source =
            Provenance::Kafka { topic: self.topic.clone(), partition: self.partition, offset: self.next.unwrap_or(0) };
        let records = decide::lift(
            engine.rules(),
            &mut self.state.decide,
            subject.0.as_deref(),
            &subject.1,
            &subject.2,
            now,
            &source,
        );
        for r in &records {
            if let Record::Decision(d) = r {
                self.shared.registry.remove(subject, &d.rule);
                // `warden_decisions_total{action="lift"}`, as every decision emitted.
                self.tally.decision(d.action);
            }
            let f = self.outputs.send(r).await;
            self.track(f, Instant::now(), !self.transactional);
        }
        if self.transactional {
            self.transaction_checkpoint(true).await;
        } else if let Some(offset) = self.checkpoint_now().await {
            self.commit(offset);
        }
        records
    }

    /// Moves the state gauges by the change since the last report, and merges the
    /// visitor estimate into the instance-wide one.
    fn report_usage(&mut self, now: Usage) {
        let m = &self.shared.metrics;
        for (i, d) in DetectorKind::ALL.iter().enumerate() {
            let delta = now.keys_by_detector[i] as i64 - self.usage.keys_by_detector[i] as i64;
            if delta != 0 {
                m.state_keys.get_or_create(&DetectorLabel { detector: d.as_str().into() }).inc_by(delta);
            }
        }
        m.state_bytes.inc_by(now.bytes as i64 - self.usage.bytes as i64);
        m.state_spilled_keys.inc_by(now.spilled_keys as i64 - self.usage.spilled_keys as i64);
        self.usage = now;
        let mut all = self.shared.visitors.lock().unwrap_or_else(|e| e.into_inner());
        all.all.merge(&self.state.visitors.all);
        m.distinct_visitors.get_or_create(&TenantLabel { tenant: None }).set(all.all.len().round() as i64);
        for (tenant, hll) in &self.state.visitors.by_tenant {
            let merged = all.by_tenant.entry(tenant.clone()).or_insert_with(warden_detectors::engine::new_visitor_hll);
            merged.merge(hll);
            m.distinct_visitors
                .get_or_create(&TenantLabel { tenant: Some(tenant.clone()) })
                .set(merged.len().round() as i64);
        }
    }

    fn flush_metrics(&mut self) {
        let engine = self.engine.clone();
        telemetry::export(&self.shared.metrics, engine.rules(), &self.tally);
        self.tally = Tally::default();
        self.shared.metrics.process_latency.add(&mut self.latency);
    }
}

/// Whichever way a task ends (revoked, its feed or control channel closed), the
/// counts and latencies since the last metrics tick still reach `/metrics`.
impl Drop for Task {
    fn drop(&mut self) {
        self.flush_metrics();
    }
}
