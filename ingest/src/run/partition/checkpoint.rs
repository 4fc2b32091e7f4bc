//! At-least-once checkpoints, pipelined: *seal* the state changes at offset N,
//! *write* them with N once every output before N is acknowledged, then
//! *commit* N. Also the synchronous form a revocation or a lift needs.

use std::time::Instant;

use tokio::task::JoinHandle;
use warden_detectors::state::{ChangeSet, Checkpoint, StateStore};

use super::{ConsumerCmd, Shared, Task};

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

pub(super) fn encode_position(next: i64) -> Vec<u8> {
    let mut v = b"kafka:".to_vec();
    v.extend_from_slice(&next.to_be_bytes());
    v
}

fn decode_position(bytes: &[u8]) -> Option<i64> {
    let raw: [u8; 8] = bytes.strip_prefix(b"kafka:")?.try_into().ok()?;
    Some(i64::from_be_bytes(raw))
}

/// A checkpoint taken in memory, waiting for its outputs to be acknowledged.
pub(super) struct Sealed {
    changes: ChangeSet,
    next: i64,
    /// Every output with a sequence number below this must be acknowledged first.
    upto: u64,
}

/// A checkpoint being written on a blocking thread.
pub(super) struct Writing {
    pub(super) handle: JoinHandle<Result<(), String>>,
    next: i64,
    started: Instant,
}

impl Task {
    /// Seals a checkpoint of everything processed so far, unless one is in flight.
    pub(super) fn seal(&mut self) {
        if self.since_checkpoint == 0 || self.sealed.is_some() || self.writing.is_some() {
            return;
        }
        let Some(next) = self.next else { return };
        let changes = self.state.take_changes(self.engine.rules(), self.full_snapshot);
        self.full_snapshot = false;
        self.since_checkpoint = 0;
        self.sealed = Some(Sealed { changes, next, upto: self.next_seq });
        self.start_write();
    }

    /// Starts writing the sealed checkpoint once its outputs are all acknowledged.
    pub(super) fn start_write(&mut self) {
        let ready = match &self.sealed {
            Some(s) => self.writing.is_none() && self.unacked.first().is_none_or(|&lowest| lowest >= s.upto),
            None => false,
        };
        if !ready {
            return;
        }
        let Some(sealed) = self.sealed.take() else { return };
        let store = self.shared.store.clone();
        let name = self.name.clone();
        let next = sealed.next;
        let cp = Checkpoint { position: encode_position(next), changes: sealed.changes };
        let handle = tokio::task::spawn_blocking(move || store.write_checkpoint(&name, &cp).map_err(|e| e.to_string()));
        self.writing = Some(Writing { handle, next, started: Instant::now() });
    }

    /// The in-flight checkpoint write finished.
    pub(super) fn written(&mut self, result: Result<Result<(), String>, tokio::task::JoinError>) {
        if let Some(w) = self.writing.take() {
            self.finish_write(w.next, w.started, result);
        }
        self.start_write();
    }

    /// Commits a written checkpoint's offset, or notes the failure.
    pub(super) fn finish_write(
        &mut self,
        next: i64,
        started: Instant,
        result: Result<Result<(), String>, tokio::task::JoinError>,
    ) {
        match result {
            Ok(Ok(())) => {
                self.shared.metrics.checkpoint_seconds.observe(started.elapsed().as_secs_f64());
                if let Some(offset) = self.committable(next) {
                    self.commit(offset);
                }
            }
            Ok(Err(e)) => self.write_failed(&e),
            Err(e) => self.write_failed(&e.to_string()),
        }
    }

    pub(super) fn write_failed(&mut self, error: &str) {
        // The changes taken are gone from tracking: write everything next time.
        self.full_snapshot = true;
        self.since_checkpoint = self.since_checkpoint.max(1);
        self.shared.metrics.checkpoint_failures.inc();
        tracing::error!(partition = self.name, error, "checkpoint failed; offsets stay uncommitted");
    }

    /// The offset that may be committed after a checkpoint at `next`: never move the
    /// group's offset back while replaying below it.
    pub(super) fn committable(&mut self, next: i64) -> Option<i64> {
        if self.warm_until.is_some_and(|c| next < c) {
            return None;
        }
        self.warm_until = None;
        Some(next)
    }

    /// Finishes everything in flight and writes a checkpoint of the current state
    /// (revocation, lifts); returns the offset that may be committed. Outputs get
    /// `drain_timeout` to be acknowledged (the consumer waits no longer for a
    /// revocation): one the broker keeps refusing must not hold the task for ever,
    /// so past it nothing is written or committed and the next owner replays.
    pub(super) async fn checkpoint_now(&mut self) -> Option<i64> {
        let within = self.shared.settings.drain_timeout;
        if tokio::time::timeout(within, self.drain_pending()).await.is_err() {
            tracing::warn!(
                partition = self.name,
                undelivered = self.unacked.len(),
                "outputs still unacknowledged after {within:?}: not checkpointing; they replay from the last commit"
            );
            return None;
        }
        if let Some(w) = self.writing.take() {
            let result = w.handle.await;
            self.finish_write(w.next, w.started, result);
        }
        if !self.unacked.is_empty() && !self.transactional {
            // An output was never acknowledged (its producer went away): nothing
            // from here on may be committed; a restart replays it.
            return None;
        }
        let next = self.next?;
        self.write_now(next).await.then(|| self.committable(next)).flatten()
    }

    /// Writes the current state at `next` (sealed changes first) and waits for it.
    pub(super) async fn write_now(&mut self, next: i64) -> bool {
        // A sealed checkpoint's changes precede the current ones: write both.
        let mut changes = self.sealed.take().map(|s| s.changes).unwrap_or_default();
        changes.append(&self.state.take_changes(self.engine.rules(), self.full_snapshot));
        let cp = Checkpoint { position: encode_position(next), changes };
        let (store, name, started) = (self.shared.store.clone(), self.name.clone(), Instant::now());
        match tokio::task::spawn_blocking(move || store.write_checkpoint(&name, &cp)).await {
            Ok(Ok(())) => {
                self.full_snapshot = false;
                self.since_checkpoint = 0;
                self.shared.metrics.checkpoint_seconds.observe(started.elapsed().as_secs_f64());
                true
            }
            Ok(Err(e)) => {
                self.write_failed(&e.to_string());
                false
            }
            Err(e) => {
                self.write_failed(&e.to_string());
                false
            }
        }
    }

    /// Asks the consumer to commit `offset` (asynchronously; a later one covers a failure).
    pub(super) fn commit(&mut self, offset: i64) {
        let cmd = ConsumerCmd::Commit { topic: self.topic.clone(), partition: self.partition, offset, confirm: None };
        let _ = self.shared.consumer_cmds.send(cmd);
        self.last_commit = Some((offset, Instant::now(), false));
    }

    /// A checkpoint is due: pipelined at-least-once, or a transaction commit.
    pub(super) async fn checkpoint_due(&mut self) {
        if self.transactional {
            self.transaction_checkpoint(true).await;
        } else {
            self.seal();
            self.recommit_when_quiet();
        }
    }

    /// Once a partition has been quiet for a checkpoint interval, its last offset is
    /// committed once more. Commits are asynchronous and a broker may apply two in
    /// flight out of order (tansu 0.6 does); with no later commit coming, the final
    /// offset would otherwise stay behind and the lag never reach zero.
    pub(super) fn recommit_when_quiet(&mut self) {
        let busy = self.since_checkpoint > 0 || self.sealed.is_some() || self.writing.is_some();
        let Some((offset, at, false)) = self.last_commit else { return };
        if busy || at.elapsed() < self.shared.settings.checkpoint_interval {
            return;
        }
        self.commit(offset);
        self.last_commit = Some((offset, at, true));
    }
}
