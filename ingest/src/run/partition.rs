//! One task per assigned partition: events in offset order through the engine,
//! outputs to Kafka, checkpoints to RocksDB, offsets committed after both.
//!
//! Delivery (at-least-once, design §6): a checkpoint first waits until every output
//! of the events processed so far is acknowledged by the broker, then writes the
//! state changes and the next offset in one RocksDB batch, then asks the consumer
//! thread to commit that offset. A crash between any two steps replays from the
//! last checkpoint with the same ids, so duplicates are harmless.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::producer::DeliveryFuture;
use tokio::sync::{mpsc, oneshot};
use warden_detectors::rules::DetectorKind;
use warden_detectors::state::{Checkpoint, StateStore};
use warden_detectors::{decide, Outcome, PartitionState, Tally, Usage};
use warden_schemas::{Provenance, Record};
use warden_sinks::kafka::DeadLetterSource;
use warden_sinks::metrics::{DetectorLabel, TenantLabel};
use warden_sinks::registry::{ActiveEntry, SubjectKey};

use super::consumer::ConsumerCmd;
use super::telemetry;
use super::Shared;

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

/// The stored position of a partition's checkpoint: the next offset to read.
pub fn read_position(shared: &Shared, name: &str) -> Option<i64> {
    match shared.store.read_position(name) {
        Ok(Some(bytes)) => decode_position(&bytes),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(partition = name, error = %e, "cannot read the checkpoint position; starting without local state");
            None
        }
    }
}

fn encode_position(next: i64) -> Vec<u8> {
    let mut v = b"kafka:".to_vec();
    v.extend_from_slice(&next.to_be_bytes());
    v
}

fn decode_position(bytes: &[u8]) -> Option<i64> {
    let raw: [u8; 8] = bytes.strip_prefix(b"kafka:")?.try_into().ok()?;
    Some(i64::from_be_bytes(raw))
}

type Pending = FuturesUnordered<futures::future::BoxFuture<'static, (Instant, bool)>>;

struct Task {
    shared: Arc<Shared>,
    name: String,
    topic: String,
    partition: i32,
    state: PartitionState,
    /// Next offset to process; `None` until the first message.
    next: Option<i64>,
    warm_until: Option<i64>,
    pending: Pending,
    tally: Tally,
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
    mut rx: mpsc::Receiver<Input>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let name = format!("{topic}/{partition}");
    let mut task = Task {
        state: shared.engine().new_state(),
        clock: shared.registry.clock(&name),
        shared: shared.clone(),
        name,
        topic,
        partition,
        next: plan.start,
        warm_until: plan.warm_until,
        pending: FuturesUnordered::new(),
        tally: Tally::default(),
        records: Vec::new(),
        since_checkpoint: 0,
        full_snapshot: false,
        usage: Usage::default(),
    };
    task.state.set_track_changes(true);
    task.state.visitors.per_tenant = shared.settings.tenant_labels;
    if plan.restore {
        task.restore().await;
    }
    shared.partition_restored();
    let mut checkpoint_timer = tokio::time::interval(shared.settings.checkpoint_interval);
    checkpoint_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut metrics_timer = tokio::time::interval(std::time::Duration::from_millis(500));
    // A pass over all state: rarely.
    let mut usage_timer = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tokio::select! {
            biased;
            Some((arrived, ok)) = task.pending.next(), if !task.pending.is_empty() => task.acked(arrived, ok),
            cmd = control.recv() => match cmd {
                Some(Control::Revoke { done }) => {
                    let next = task.checkpoint().await;
                    task.flush_metrics();
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
            _ = checkpoint_timer.tick() => {
                if task.since_checkpoint > 0 {
                    task.checkpoint_and_commit().await;
                }
            }
            _ = metrics_timer.tick() => task.flush_metrics(),
            _ = usage_timer.tick() => {
                let usage = task.state.usage(task.shared.engine().rules());
                task.report_usage(usage);
            }
            input = rx.recv(), if task.pending.len() < MAX_PENDING => match input {
                Some(input) => task.process(input).await,
                None => return,
            },
        }
    }
}

impl Task {
    async fn restore(&mut self) {
        let store = self.shared.store.clone();
        let name = self.name.clone();
        let started = Instant::now();
        let stored = tokio::task::spawn_blocking(move || store.read_checkpoint(&name)).await;
        let engine = self.shared.engine();
        match stored {
            Ok(Ok(Some(stored))) => {
                if let Err(e) = self.state.restore(engine.rules(), &stored) {
                    tracing::error!(partition = self.name, error = %e, "checkpoint is corrupt; continuing without its state");
                    self.state = engine.new_state();
                    self.state.set_track_changes(true);
                    self.full_snapshot = true;
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(partition = self.name, error = %e, "cannot read the checkpoint"),
            Err(e) => tracing::error!(partition = self.name, error = %e, "restore task failed"),
        }
        let now = self.state.clock.max_ts.unwrap_or(i64::MIN);
        self.clock.store(now, Ordering::Relaxed);
        for a in decide::all_active(engine.rules(), &self.state.decide, now) {
            let key = (a.tenant.clone(), a.subject.kind.clone(), a.subject.id.clone());
            self.shared.registry.insert(
                key,
                ActiveEntry {
                    rule: a.rule,
                    action: a.action,
                    reason: format!("restored from checkpoint ({})", a.action.as_str()),
                    event_ts: a.event_ts,
                    expires_at: a.expires_at,
                    id: String::new(),
                    partition: self.name.clone(),
                },
            );
        }
        tracing::info!(
            partition = self.name,
            seconds = started.elapsed().as_secs_f64(),
            "state restored"
        );
    }

    async fn process(&mut self, input: Input) {
        if self.next.is_some_and(|n| input.offset < n) {
            // Fetched before the start offset took effect: already reflected in state.
            return;
        }
        let engine = self.shared.engine();
        let source = Provenance::Kafka {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: input.offset,
        };
        self.records.clear();
        let outcome = engine.handle_bytes(
            &input.payload,
            &source,
            &mut self.state,
            &mut self.records,
            &mut self.tally,
        );
        if let Some(ts) = self.state.clock.max_ts {
            self.clock.store(ts, Ordering::Relaxed);
        }
        let warming = self.warm_until.is_some_and(|c| input.offset < c);
        let mut sent = false;
        if warming {
            let dead = u64::from(matches!(outcome, Outcome::Dead(_)));
            self.shared
                .metrics
                .suppressed
                .get_or_create(&telemetry::reason("warming"))
                .inc_by(self.records.len() as u64 + dead);
        } else {
            for mut record in self.records.drain(..) {
                if let (Record::KillSwitch(k), Some(signer)) = (&mut record, &self.shared.signer) {
                    signer.sign(k);
                }
                self.shared.registry.observe(&record, &self.name);
                let f = self.shared.outputs.send(&record).await;
                self.pending.push(track(f, input.arrived));
                sent = true;
            }
            if let Outcome::Dead(e) = outcome {
                self.shared.log_dead_letter(&self.name, input.offset, e.reason());
                let src = DeadLetterSource {
                    topic: &self.topic,
                    partition: self.partition,
                    offset: input.offset,
                };
                let f = self
                    .shared
                    .outputs
                    .send_dead_letter(&input.payload, input.key.as_deref(), e.reason(), src)
                    .await;
                self.pending.push(track(f, input.arrived));
                sent = true;
            }
        }
        if !sent {
            self.shared
                .metrics
                .process_latency
                .observe(input.arrived.elapsed().as_secs_f64());
        }
        self.next = Some(input.offset + 1);
        self.since_checkpoint += 1;
        if self.since_checkpoint >= self.shared.settings.checkpoint_events {
            self.checkpoint_and_commit().await;
        }
    }

    fn acked(&mut self, arrived: Instant, ok: bool) {
        self.shared
            .metrics
            .process_latency
            .observe(arrived.elapsed().as_secs_f64());
        if !ok {
            self.shared.metrics.output_errors.inc();
        }
    }

    /// Waits for every pending output to be acknowledged.
    async fn drain(&mut self) {
        while let Some((arrived, ok)) = self.pending.next().await {
            self.acked(arrived, ok);
        }
    }

    /// Drains outputs and writes a checkpoint; returns the offset that may be
    /// committed (`None` while warming below the group's committed offset, or when
    /// the write failed).
    async fn checkpoint(&mut self) -> Option<i64> {
        self.drain().await;
        let next = self.next?;
        let engine = self.shared.engine();
        let started = Instant::now();
        let changes = self.state.take_changes(engine.rules(), self.full_snapshot);
        let cp = Checkpoint {
            position: encode_position(next),
            changes,
        };
        let store = self.shared.store.clone();
        let name = self.name.clone();
        let written = tokio::task::spawn_blocking(move || store.write_checkpoint(&name, &cp)).await;
        match written {
            Ok(Ok(())) => {
                self.full_snapshot = false;
                self.since_checkpoint = 0;
                self.shared
                    .metrics
                    .checkpoint_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            Ok(Err(e)) => {
                // The changes taken are lost from tracking: write everything next time.
                self.full_snapshot = true;
                self.shared.metrics.checkpoint_failures.inc();
                tracing::error!(partition = self.name, error = %e, "checkpoint failed; offsets stay uncommitted");
                return None;
            }
            Err(e) => {
                self.full_snapshot = true;
                self.shared.metrics.checkpoint_failures.inc();
                tracing::error!(partition = self.name, error = %e, "checkpoint task failed");
                return None;
            }
        }
        // Never move the group's offset back while replaying below it.
        if self.warm_until.is_some_and(|c| next < c) {
            return None;
        }
        self.warm_until = None;
        Some(next)
    }

    async fn checkpoint_and_commit(&mut self) {
        if let Some(offset) = self.checkpoint().await {
            let cmd = ConsumerCmd::Commit {
                topic: self.topic.clone(),
                partition: self.partition,
                offset,
            };
            let _ = self.shared.consumer_cmds.send(cmd);
        }
    }

    /// Lifts the records in force on `subject` in this partition's state, sends the
    /// `lift` decisions, and waits for them to be acknowledged.
    async fn lift(&mut self, subject: &SubjectKey) -> Vec<Record> {
        let engine = self.shared.engine();
        let now = self.state.clock.max_ts.unwrap_or(i64::MIN);
        let source = Provenance::Kafka {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.next.unwrap_or(0),
        };
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
            }
            let f = self.shared.outputs.send(r).await;
            self.pending.push(track(f, Instant::now()));
        }
        self.drain().await;
        // The cleared in-force entries are state: make them durable now.
        self.checkpoint_and_commit().await;
        records
    }

    /// Moves the state gauges by the change since the last report, and merges the
    /// visitor estimate into the instance-wide one.
    fn report_usage(&mut self, now: Usage) {
        let m = &self.shared.metrics;
        for (i, d) in DetectorKind::ALL.iter().enumerate() {
            let delta = now.keys_by_detector[i] as i64 - self.usage.keys_by_detector[i] as i64;
            if delta != 0 {
                m.state_keys
                    .get_or_create(&DetectorLabel {
                        detector: d.as_str().into(),
                    })
                    .inc_by(delta);
            }
        }
        m.state_bytes.inc_by(now.bytes as i64 - self.usage.bytes as i64);
        self.usage = now;
        let mut all = self.shared.visitors.lock().unwrap_or_else(|e| e.into_inner());
        all.all.merge(&self.state.visitors.all);
        m.distinct_visitors
            .get_or_create(&TenantLabel { tenant: None })
            .set(all.all.len().round() as i64);
        for (tenant, hll) in &self.state.visitors.by_tenant {
            let merged = all
                .by_tenant
                .entry(tenant.clone())
                .or_insert_with(warden_detectors::engine::new_visitor_hll);
            merged.merge(hll);
            m.distinct_visitors
                .get_or_create(&TenantLabel {
                    tenant: Some(tenant.clone()),
                })
                .set(merged.len().round() as i64);
        }
    }

    fn flush_metrics(&mut self) {
        let engine = self.shared.engine();
        telemetry::export(&self.shared.metrics, engine.rules(), &self.tally);
        self.tally = Tally::default();
    }
}

fn track(f: DeliveryFuture, arrived: Instant) -> futures::future::BoxFuture<'static, (Instant, bool)> {
    Box::pin(async move {
        let ok = match f.await {
            Ok(Ok(_)) => true,
            Ok(Err((e, _))) => {
                tracing::error!(error = %e, "output refused by the broker");
                false
            }
            Err(_) => false,
        };
        (arrived, ok)
    })
}
