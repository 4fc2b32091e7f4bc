//! Exactly-once: the partition's own transactional producer; a checkpoint
//! commits the transaction with the input offset, then writes the state at it;
//! a failed commit aborts and rewinds to the last checkpoint.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::oneshot;
use warden_sinks::kafka::KafkaOutputs;

use super::checkpoint::read_position;
use super::{prepare_state, ConsumerCmd, Shared, Task};

/// How long a transaction operation may take before it counts as failed.
const TXN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// This partition's own transactional producer (exactly-once); retried until the
/// broker answers, since nothing may be emitted outside a transaction.
pub(super) async fn transactional_outputs(shared: &Shared, topic: &str, partition: i32) -> Arc<KafkaOutputs> {
    let mut config = shared.producer_config.clone();
    config.set("transactional.id", format!("warden-{}-{topic}-{partition}", shared.settings.group));
    loop {
        let made = KafkaOutputs::new(config.clone(), shared.outputs.topics().clone(), shared.quiet_logs.clone());
        if let Ok(outputs) = made {
            let outputs = Arc::new(outputs);
            let o = outputs.clone();
            match tokio::task::spawn_blocking(move || o.start_transactions(TXN_TIMEOUT)).await {
                Ok(Ok(())) => return outputs,
                Ok(Err(e)) => tracing::error!(topic, partition, error = %e, "cannot start transactions; retrying"),
                Err(e) => tracing::error!(topic, partition, error = %e, "cannot start transactions; retrying"),
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

impl Task {
    /// After a transaction commits offset `next`, the consumer commits the same
    /// offset and this waits for the answer, so it lands before the next
    /// transaction's. On Apache Kafka this rewrites an equal value; on brokers whose
    /// transactional offsets go stale while a new transaction is open (tansu 0.6,
    /// see docs/streaming.md) it keeps the group's offset right. Bounded: if the
    /// consumer thread is busy in a rebalance, the revocation commits it instead.
    pub(super) async fn confirm_commit(&mut self, next: i64) {
        let (tx, rx) = oneshot::channel();
        let cmd = ConsumerCmd::Commit {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: next,
            confirm: Some(tx),
        };
        if self.shared.consumer_cmds.send(cmd).is_ok() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), rx).await;
        }
    }

    /// Exactly-once checkpoint: commit the transaction with the next offset, then
    /// write the state at that offset. On failure: abort and rewind. `confirm`: the
    /// consumer commits the offset too (not during a revocation, which does it).
    pub(super) async fn transaction_checkpoint(&mut self, confirm: bool) {
        let Some(next) = self.next else { return };
        let group = self.shared.group_metadata.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(group) = group else {
            tracing::warn!(partition = self.name, "no group metadata yet; the transaction stays open");
            return;
        };
        if self.since_checkpoint == 0 && self.pending.is_empty() {
            return;
        }
        while let Some(ack) = self.pending.next().await {
            self.acked(ack);
        }
        // Below the group's offset the outputs were suppressed: nothing to commit yet.
        let warming = self.warm_until.is_some_and(|c| next < c);
        if !warming {
            let mut tpl = TopicPartitionList::new();
            let _ = tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(next));
            let outputs = self.outputs.clone();
            let result =
                tokio::task::spawn_blocking(move || outputs.commit_transaction(&tpl, &group, TXN_TIMEOUT)).await;
            match result {
                Ok(Ok(())) => {
                    self.committed = Some(next);
                    if confirm {
                        self.confirm_commit(next).await;
                    }
                }
                Ok(Err(e)) => return self.rewind(&e.to_string()).await,
                Err(e) => return self.rewind(&e.to_string()).await,
            }
        }
        if self.write_now(next).await {
            self.base = Some(next);
        }
        self.committable(next);
    }

    /// After a failed commit: abort, restore the last checkpoint, read from there again.
    pub(super) async fn rewind(&mut self, error: &str) {
        tracing::error!(
            partition = self.name,
            error,
            "transaction commit failed: aborting and rewinding to the last checkpoint"
        );
        let outputs = self.outputs.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || outputs.abort_transaction(TXN_TIMEOUT)).await {
            tracing::error!(partition = self.name, error = %e, "abort failed");
        }
        self.pending = FuturesUnordered::new();
        self.unacked.clear();
        self.sealed = None;
        self.state = self.engine.new_state();
        prepare_state(&self.shared, &self.name, &mut self.state);
        self.shared.registry.forget_partition(&self.name);
        self.restore().await;
        let base = read_position(&self.shared, &self.name).or(self.base);
        self.next = base;
        self.since_checkpoint = 0;
        self.warm_until = self.committed.filter(|c| base.is_some_and(|b| b < *c));
        if let Some(offset) = base {
            self.rewind_to = Some(offset);
            let cmd = ConsumerCmd::Seek { topic: self.topic.clone(), partition: self.partition, offset };
            let _ = self.shared.consumer_cmds.send(cmd);
        }
    }
}
