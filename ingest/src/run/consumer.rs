//! The consumer thread: one group consumer for every input topic, dispatching each
//! message to its partition's task in offset order.
//!
//! It runs on a dedicated OS thread because librdkafka serves rebalance callbacks
//! inside `poll`, and warden's callback blocks on purpose: on assignment it chooses
//! each partition's start offset (design §6), on revocation it waits for the
//! partition's task to drain, checkpoint and hand back the offset to commit.
//!
//! Backpressure is per partition: when a task's feed holds its bytes (see
//! [`super::feed`]) the partition is paused and its messages wait in a small
//! backlog, so a slow partition never stalls the others and nothing queues without
//! bound.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::sync::mpsc;
use warden_sinks::latency::LocalLatency;
use warden_sinks::metrics::PartitionLabels;

use super::feed::{feed, FeedSender, Refused};
use super::partition::{self, Control, Input, Plan};
use super::Shared;
use warden_detectors::state::StateStore;

/// Replay horizon for a partition without local state: the longest rule horizon.
const REPLAY_HORIZON_MS: i64 = 24 * 3_600_000;
/// How long a rebalance waits for broker answers (committed offsets, timestamps).
const BROKER_WAIT: Duration = Duration::from_secs(10);

/// A request from a partition task or the supervisor to the consumer thread.
#[derive(Debug)]
pub enum ConsumerCmd {
    /// Commit `offset` (the next offset to read) for a partition.
    Commit {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Next offset.
        offset: i64,
        /// `Some`: commit synchronously and report whether the broker accepted it.
        confirm: Option<tokio::sync::oneshot::Sender<bool>>,
    },
    /// Read a partition again from `offset` (an aborted transaction rewinds).
    Seek {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset to read next.
        offset: i64,
    },
}

/// Messages handed to a task in one go: one wake per batch, not per message.
const MAX_BATCH: usize = 512;

/// How often the consumer thread adds its input delays to the shared histogram
/// (as often as the partition tasks add theirs).
const DELAYS_EVERY: Duration = Duration::from_millis(100);

/// A running partition task, as the consumer thread sees it.
struct Handle {
    tx: FeedSender,
    control: mpsc::UnboundedSender<Control>,
    /// Messages of the current poll burst.
    batch: Vec<Input>,
    /// Batches the task's feed had no room for (the partition is paused).
    backlog: VecDeque<Vec<Input>>,
    paused: bool,
}

/// The consumer's context: rebalance handling and statistics.
pub struct WardenContext {
    shared: Arc<Shared>,
    partitions: Arc<Mutex<HashMap<String, HashMap<i32, Handle>>>>,
}

/// Control senders of the running partition tasks, for the supervisor (lifts).
#[derive(Clone)]
pub struct TaskIndex(Arc<Mutex<HashMap<String, HashMap<i32, Handle>>>>);

impl TaskIndex {
    /// The control channel of the task of `name` (`topic/partition`).
    pub fn control(&self, name: &str) -> Option<mpsc::UnboundedSender<Control>> {
        let (topic, partition) = name.rsplit_once('/')?;
        let partition: i32 = partition.parse().ok()?;
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(topic)?.get(&partition).map(|h| h.control.clone())
    }
}

impl WardenContext {
    /// A context over `shared`, and the index the supervisor uses to reach tasks.
    pub fn new(shared: Arc<Shared>) -> (WardenContext, TaskIndex) {
        let partitions = Arc::new(Mutex::new(HashMap::new()));
        (WardenContext { shared, partitions: partitions.clone() }, TaskIndex(partitions))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<i32, Handle>>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientContext for WardenContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.shared.quiet_logs.log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.shared.quiet_logs.error(&error, reason);
    }

    fn stats(&self, stats: Statistics) {
        // librdkafka keeps reporting a partition's last lag after it moved to
        // another instance; a series left at that value would keep a lag alert
        // firing here. Only partitions this instance runs a task for count. The
        // consumer thread may hold the map while it polls: then skip this round.
        let owned = match self.partitions.try_lock() {
            Ok(owned) => owned,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        for (topic, t) in &stats.topics {
            for (p, part) in &t.partitions {
                if *p < 0 {
                    continue;
                }
                let labels = PartitionLabels { topic: topic.clone(), partition: p.to_string() };
                let mine = owned.get(topic).is_some_and(|ps| ps.contains_key(p));
                match lag(part.consumer_lag, part.hi_offset, part.lo_offset) {
                    Some(lag) if mine => {
                        self.shared.metrics.consumer_lag.get_or_create(&labels).set(lag);
                    }
                    _ => {
                        self.shared.metrics.consumer_lag.remove(&labels);
                    }
                }
            }
        }
    }
}

impl ConsumerContext for WardenContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, tpl);
                let r = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = r {
                    tracing::error!(error = %e, "assigning partitions failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                self.revoke(consumer, tpl, lost);
                let r = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = r {
                    tracing::error!(error = %e, "unassigning partitions failed");
                }
            }
            other => tracing::error!(error = ?other, "rebalance error"),
        }
        // Each rebalance is a new generation: transactions must carry its metadata.
        if self.shared.settings.exactly_once {
            *self.shared.group_metadata.lock().unwrap_or_else(|e| e.into_inner()) =
                consumer.group_metadata().map(Arc::new);
        }
    }
}

impl WardenContext {
    /// Chooses each new partition's start offset, sets it on `tpl`, and starts its task.
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let parts: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        if parts.is_empty() {
            return;
        }
        let committed = committed_offsets(consumer, tpl);
        self.drop_checkpoints_past_log_end(consumer, &parts);
        let exactly_once = self.shared.settings.exactly_once;
        let mut plans: Vec<(String, i32, Plan)> = Vec::new();
        let mut need_replay: Vec<(String, i32, i64)> = Vec::new();
        for (topic, partition) in &parts {
            let name = format!("{topic}/{partition}");
            let c = committed.get(&(topic.clone(), *partition)).copied();
            let mut stored = partition::read_position(&self.shared, &name);
            if let (true, Some(s), Some(c)) = (self.shared.settings.exactly_once, stored, c) {
                if s > c {
                    // Its transaction never committed: the state is ahead of the outputs.
                    tracing::warn!(
                        partition = name,
                        checkpoint = s,
                        committed = c,
                        "discarding a checkpoint ahead of the committed offset"
                    );
                    if let Err(e) = self.shared.store.drop_partition(&name) {
                        tracing::error!(partition = name, error = %e, "cannot drop the stale checkpoint");
                    }
                    stored = None;
                }
            }
            match (stored, c) {
                (Some(s), c) => plans.push((
                    topic.clone(),
                    *partition,
                    Plan { start: Some(s), restore: true, warm_until: c.filter(|&c| s < c) },
                )),
                (None, Some(c)) if c > 0 => need_replay.push((topic.clone(), *partition, c)),
                (None, _) => {
                    plans.push((topic.clone(), *partition, Plan { start: None, restore: false, warm_until: None }))
                }
            }
        }
        for (topic, partition, c, start) in self.replay_starts(consumer, &need_replay) {
            plans.push((topic, partition, Plan { start, restore: false, warm_until: Some(c) }));
        }
        let mut map = self.lock();
        for (topic, partition, plan) in plans {
            let offset = match plan.start {
                Some(o) => Offset::Offset(o),
                None => Offset::Beginning,
            };
            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                tracing::error!(topic, partition, error = %e, "cannot set the start offset");
            }
            tracing::info!(topic, partition, start = ?plan.start, warm_until = ?plan.warm_until, restore = plan.restore, "partition assigned");
            let (tx, rx) = feed(self.shared.settings.feed_bytes);
            let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
            self.shared.partition_started();
            let shared = self.shared.clone();
            let (t, p, g) = (topic.clone(), partition, exactly_once);
            self.shared.runtime.spawn(async move { partition::run(shared, t, p, plan, g, rx, ctl_rx).await });
            map.entry(topic).or_default().insert(
                partition,
                Handle { tx, control: ctl_tx, batch: Vec::new(), backlog: VecDeque::new(), paused: false },
            );
        }
    }

    /// Drops each checkpoint whose position S lies past its partition's log: the
    /// log is new (a topic created again, an in-memory broker restarted) and the
    /// state counted other events, so the partition must start afresh. The log end
    /// the broker reports is only a hint (tansu 0.6 under-reports it); a checkpoint
    /// goes only when the message at S − 1 cannot be read either.
    fn drop_checkpoints_past_log_end(&self, consumer: &BaseConsumer<Self>, parts: &[(String, i32)]) {
        let mut suspects = Vec::new();
        for (topic, partition) in parts {
            let name = format!("{topic}/{partition}");
            let Some(s) = partition::read_position(&self.shared, &name).filter(|&s| s > 0) else { continue };
            if log_end(consumer, topic, *partition).is_some_and(|end| s > end) {
                suspects.push((topic.clone(), *partition, s));
            }
        }
        if suspects.is_empty() {
            return;
        }
        let readable = read_timestamps(&self.shared.reader_config, &suspects);
        for (topic, partition, s) in suspects {
            if readable.contains_key(&(topic.clone(), partition)) {
                continue;
            }
            let name = format!("{topic}/{partition}");
            tracing::warn!(
                partition = name,
                checkpoint = s,
                "discarding a checkpoint past the end of the partition's log (a new cluster or topic)"
            );
            if let Err(e) = self.shared.store.drop_partition(&name) {
                tracing::error!(partition = name, error = %e, "cannot drop the stale checkpoint");
            }
        }
    }

    /// For partitions without local state but with a committed offset C: replay from
    /// the offset whose timestamp is ts(C − 1) − 24 h, with outputs suppressed until
    /// C; from the earliest offset when the broker cannot answer (librdkafka's mock
    /// cluster never does). Returns (topic, partition, C, start; `None` = earliest).
    fn replay_starts(
        &self,
        consumer: &BaseConsumer<Self>,
        parts: &[(String, i32, i64)],
    ) -> Vec<(String, i32, i64, Option<i64>)> {
        if parts.is_empty() {
            return Vec::new();
        }
        let stamps = read_timestamps(&self.shared.reader_config, parts);
        let mut query = TopicPartitionList::new();
        for (topic, partition, _) in parts {
            if let Some(ts) = stamps.get(&(topic.clone(), *partition)) {
                let _ = query.add_partition_offset(topic, *partition, Offset::Offset(ts - REPLAY_HORIZON_MS));
            }
        }
        let mut answered = HashMap::new();
        if query.count() > 0 {
            match consumer.offsets_for_times(query, BROKER_WAIT) {
                Ok(list) => {
                    for e in list.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            answered.insert((e.topic().to_string(), e.partition()), o);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "offsets_for_times failed"),
            }
        }
        parts
            .iter()
            .map(|(topic, partition, c)| {
                let start = answered.get(&(topic.clone(), *partition)).copied().filter(|o| *o >= 0 && *o < *c);
                if start.is_none() {
                    tracing::warn!(
                        topic,
                        partition,
                        committed = c,
                        "no local state and the broker gave no offset for ts(C) - 24h: replaying from the earliest offset"
                    );
                }
                (topic.clone(), *partition, *c, start)
            })
            .collect()
    }

    /// Stops the tasks of revoked partitions; commits what each hands back.
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList, lost: bool) {
        let mut waits = Vec::new();
        {
            let mut map = self.lock();
            for e in tpl.elements() {
                let Some(handle) = map.get_mut(e.topic()).and_then(|m| m.remove(&e.partition())) else {
                    continue;
                };
                let (done_tx, done_rx) = std_mpsc::channel();
                let _ = handle.control.send(Control::Revoke { done: done_tx });
                waits.push((e.topic().to_string(), e.partition(), done_rx));
            }
        }
        let deadline = Instant::now() + self.shared.settings.drain_timeout;
        let mut commit = TopicPartitionList::new();
        for (topic, partition, done) in waits {
            let left = deadline.saturating_duration_since(Instant::now());
            match done.recv_timeout(left) {
                Ok(Some(next)) if !lost => {
                    let _ = commit.add_partition_offset(&topic, partition, Offset::Offset(next));
                }
                Ok(_) => {}
                Err(_) => tracing::warn!(
                    topic,
                    partition,
                    "partition did not drain before the deadline; its last checkpoint stands"
                ),
            }
            self.shared.registry.forget_partition(&format!("{topic}/{partition}"));
            let labels = PartitionLabels { topic: topic.clone(), partition: partition.to_string() };
            self.shared.metrics.consumer_lag.remove(&labels);
            self.shared.partition_stopped();
        }
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(error = %e, "commit on revoke failed; the next owner replays from the last commit");
            }
        }
    }

    /// Adds one message, taken at `arrival`, to its partition's batch and its
    /// input delay to `delays`.
    fn dispatch(
        &self,
        map: &mut HashMap<String, HashMap<i32, Handle>>,
        m: &BorrowedMessage<'_>,
        arrival: Arrival,
        delays: &mut LocalLatency,
    ) {
        let Some(handle) = map.get_mut(m.topic()).and_then(|t| t.get_mut(&m.partition())) else {
            return;
        };
        if let Some(stamped) = m.timestamp().to_millis() {
            // A producer's clock ahead of ours reads as no delay, not a negative one.
            let delay_ms = arrival.wall_ms.saturating_sub(stamped).max(0);
            delays.observe(delay_ms as f64 / 1000.0);
        }
        handle.batch.push(Input {
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
            arrived: arrival.at,
        });
    }

    /// Hands each partition's batch (after its older backlog) to its task; pauses a
    /// partition whose feed is full and resumes it once its backlog is gone.
    fn flush(&self, consumer: &BaseConsumer<Self>, map: &mut HashMap<String, HashMap<i32, Handle>>) {
        for (topic, parts) in map.iter_mut() {
            for (partition, h) in parts.iter_mut() {
                if !h.batch.is_empty() {
                    h.backlog.push_back(std::mem::take(&mut h.batch));
                }
                while let Some(batch) = h.backlog.pop_front() {
                    match h.tx.try_send(batch) {
                        Ok(()) => {}
                        Err(Refused::Full(batch)) => {
                            h.backlog.push_front(batch);
                            break;
                        }
                        Err(Refused::Closed) => h.backlog.clear(),
                    }
                }
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(topic, *partition);
                if !h.backlog.is_empty() && !h.paused {
                    h.paused = consumer.pause(&tpl).is_ok();
                } else if h.backlog.is_empty() && h.paused {
                    h.paused = consumer.resume(&tpl).is_err();
                }
            }
        }
    }
}

/// The Kafka timestamps of the messages at C − 1, read by a group-less consumer.
fn read_timestamps(
    config: &rdkafka::config::ClientConfig,
    parts: &[(String, i32, i64)],
) -> HashMap<(String, i32), i64> {
    let mut out = HashMap::new();
    let reader: BaseConsumer = match config.create() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a reader for replay timestamps");
            return out;
        }
    };
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, c) in parts {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(c - 1));
    }
    if reader.assign(&tpl).is_err() {
        return out;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while out.len() < parts.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            let want = parts.iter().find(|(t, p, _)| t == m.topic() && *p == m.partition()).map(|(_, _, c)| c - 1);
            if want == Some(m.offset()) {
                if let Some(ts) = m.timestamp().to_millis() {
                    out.insert((m.topic().to_string(), m.partition()), ts);
                }
            }
        }
    }
    out
}

/// The partition's log end offset (high watermark) as the broker reports it, or
/// `None` when it does not answer (then a checkpoint is trusted as it is).
fn log_end(consumer: &BaseConsumer<WardenContext>, topic: &str, partition: i32) -> Option<i64> {
    match consumer.fetch_watermarks(topic, partition, BROKER_WAIT) {
        Ok((_, high)) => Some(high),
        Err(e) => {
            tracing::warn!(topic, partition, error = %e, "cannot read the log end; the checkpoint is trusted");
            None
        }
    }
}

/// The group's committed offsets for `tpl`'s partitions (missing when none).
fn committed_offsets(consumer: &BaseConsumer<WardenContext>, tpl: &TopicPartitionList) -> HashMap<(String, i32), i64> {
    let mut out = HashMap::new();
    match consumer.committed_offsets(tpl.clone(), BROKER_WAIT) {
        Ok(list) => {
            for e in list.elements() {
                if let Offset::Offset(o) = e.offset() {
                    out.insert((e.topic().to_string(), e.partition()), o);
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read committed offsets; partitions start from their checkpoints or the beginning")
        }
    }
    out
}

/// Runs the consumer until `stop` is set, then closes it (which revokes, drains and
/// commits every partition, and leaves the group).
pub fn run_loop(consumer: BaseConsumer<WardenContext>, cmds: std_mpsc::Receiver<ConsumerCmd>, stop: Arc<AtomicBool>) {
    let ctx = consumer.context().clone();
    let input_delay = &ctx.shared.metrics.input_delay;
    let (mut delays, mut delays_added) = (input_delay.local(), Instant::now());
    while !stop.load(Ordering::Relaxed) {
        while let Ok(cmd) = cmds.try_recv() {
            match cmd {
                ConsumerCmd::Commit { topic, partition, offset, confirm } => {
                    // A revoked partition's late commit could overwrite its new owner's.
                    let owned = ctx.lock().get(&topic).is_some_and(|m| m.contains_key(&partition));
                    if !owned {
                        if let Some(confirm) = confirm {
                            let _ = confirm.send(false);
                        }
                        continue;
                    }
                    let mut tpl = TopicPartitionList::new();
                    let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(offset));
                    let mode = if confirm.is_some() { CommitMode::Sync } else { CommitMode::Async };
                    let result = consumer.commit(&tpl, mode);
                    if let Err(e) = &result {
                        tracing::debug!(topic, partition, error = %e, "commit failed; a later one covers it");
                    }
                    if let Some(confirm) = confirm {
                        let _ = confirm.send(result.is_ok());
                    }
                }
                ConsumerCmd::Seek { topic, partition, offset } => {
                    // Messages fetched before the seek are dropped here; the task skips
                    // any that already reached it until `offset` arrives.
                    if let Some(h) = ctx.lock().get_mut(&topic).and_then(|m| m.get_mut(&partition)) {
                        h.batch.clear();
                        h.backlog.clear();
                    }
                    if let Err(e) = consumer.seek(&topic, partition, Offset::Offset(offset), Duration::from_secs(10)) {
                        tracing::error!(topic, partition, offset, error = %e, "seek after an aborted transaction failed");
                    }
                }
            }
        }
        // A burst: wait briefly for the first message, then take what is queued.
        // Rebalance callbacks run inside `poll` and take the partition map's lock,
        // so it is never held across a poll.
        // The clocks are read once a burst: the rest of it was already queued
        // locally and is taken within microseconds, and two clock reads per
        // message were a quarter of this thread's time (bench/RESULTS.md).
        let mut wait = Duration::from_millis(20);
        let mut arrival = None;
        for _ in 0..MAX_BATCH {
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    let at = *arrival.get_or_insert_with(Arrival::now);
                    ctx.dispatch(&mut ctx.lock(), &m, at, &mut delays);
                }
                Some(Err(e)) => ctx.shared.quiet_logs.error(&e, "consumer poll"),
                None => break,
            }
            wait = Duration::ZERO;
        }
        ctx.flush(&consumer, &mut ctx.lock());
        if delays_added.elapsed() >= DELAYS_EVERY {
            input_delay.add(&mut delays);
            delays_added = Instant::now();
        }
    }
    input_delay.add(&mut delays);
    tracing::info!("closing the consumer: draining partitions and leaving the group");
    drop(consumer);
}

/// When a burst of messages was taken from the consumer, by both clocks.
#[derive(Clone, Copy, Debug)]
struct Arrival {
    /// For warden's own latency.
    at: Instant,
    /// Milliseconds since the Unix epoch (0 if the clock reads before 1970),
    /// to compare with the messages' Kafka timestamps.
    wall_ms: i64,
}

impl Arrival {
    fn now() -> Arrival {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH);
        Arrival { at: Instant::now(), wall_ms: wall.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)) }
    }
}

/// A partition's lag from librdkafka's statistics: its own figure when it has
/// one; 0 for a partition with nothing in it, where librdkafka says -1 (nothing
/// committed) for as long as no message arrives, and a lag alert would not see
/// the partition at all; else unknown yet.
fn lag(consumer_lag: i64, hi_offset: i64, lo_offset: i64) -> Option<i64> {
    if consumer_lag >= 0 {
        return Some(consumer_lag);
    }
    (hi_offset >= 0 && hi_offset <= lo_offset.max(0)).then_some(0)
}

#[cfg(test)]
mod tests {
    use super::lag;

    #[test]
    fn an_empty_partition_has_no_lag_and_an_unknown_one_no_figure() {
        assert_eq!(lag(7, 100, 0), Some(7));
        assert_eq!(lag(-1, 0, -1), Some(0), "never written to");
        assert_eq!(lag(-1, 50, 50), Some(0), "everything in it expired");
        assert_eq!(lag(-1, 50, 0), None, "messages, and nothing committed yet");
        assert_eq!(lag(-1, -1, -1), None, "not fetched yet");
    }
}
