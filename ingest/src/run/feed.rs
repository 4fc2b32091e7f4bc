//! The feed from the consumer thread to one partition task: a channel bounded by
//! the bytes it holds, not by how many batches.
//!
//! Why bytes: a full feed pauses the partition in librdkafka, and a pause drops the
//! partition's prefetched messages, which are fetched again on resume. A feed of a
//! few batches (a poll burst spread over nine partitions is ~60 messages each) was
//! full within milliseconds, so a busy partition paused, drained and waited for a
//! fresh fetch over and over: the 1M-event harness ran at ~120k events/s with 16
//! batches and ~300k+ with room for a few megabytes (bench/RESULTS.md). Counting
//! bytes keeps that room whatever the batch sizes, and bounds memory per partition.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::partition::Input;

/// Bytes a feed holds before it refuses more (one batch may pass it).
pub const FEED_BYTES: usize = 16 << 20;

/// Why [`FeedSender::try_send`] handed a batch back.
#[derive(Debug)]
pub enum Refused {
    /// The feed holds its limit: keep the batch and pause the partition.
    Full(Vec<Input>),
    /// The task is gone.
    Closed,
}

/// The consumer thread's end.
#[derive(Debug)]
pub struct FeedSender {
    tx: mpsc::UnboundedSender<Vec<Input>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The partition task's end.
#[derive(Debug)]
pub struct FeedReceiver {
    rx: mpsc::UnboundedReceiver<Vec<Input>>,
    queued: Arc<AtomicUsize>,
}

/// A feed that holds up to `limit` bytes of messages.
pub fn feed(limit: usize) -> (FeedSender, FeedReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (FeedSender { tx, queued: queued.clone(), limit }, FeedReceiver { rx, queued })
}

/// What a batch counts against the limit: its bytes and each message's overhead.
fn weight(batch: &[Input]) -> usize {
    let each = std::mem::size_of::<Input>();
    batch.iter().map(|m| each + m.payload.len() + m.key.as_ref().map_or(0, Vec::len)).sum()
}

impl FeedSender {
    /// Hands `batch` to the task unless the feed already holds its limit.
    pub fn try_send(&self, batch: Vec<Input>) -> Result<(), Refused> {
        if self.queued.load(Ordering::Acquire) >= self.limit {
            return Err(Refused::Full(batch));
        }
        let w = weight(&batch);
        self.queued.fetch_add(w, Ordering::AcqRel);
        self.tx.send(batch).map_err(|_| {
            self.queued.fetch_sub(w, Ordering::AcqRel);
            Refused::Closed
        })
    }
}

impl FeedReceiver {
    /// The next batch; `None` once the consumer thread has dropped its end.
    pub async fn recv(&mut self) -> Option<Vec<Input>> {
        let batch = self.rx.recv().await?;
        self.queued.fetch_sub(weight(&batch), Ordering::AcqRel);
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn batch(sizes: &[usize]) -> Vec<Input> {
        sizes.iter().map(|&n| Input { offset: 0, key: None, payload: vec![b'x'; n], arrived: Instant::now() }).collect()
    }

    #[tokio::test]
    async fn refuses_past_its_bytes_and_takes_more_as_the_task_reads() {
        let each = std::mem::size_of::<Input>();
        let (tx, mut rx) = feed(1000 + 2 * each);
        assert!(tx.try_send(batch(&[600])).is_ok());
        assert!(tx.try_send(batch(&[600])).is_ok(), "under the limit: one batch may pass it");
        assert!(matches!(tx.try_send(batch(&[1])), Err(Refused::Full(b)) if b.len() == 1), "held: handed back");
        assert_eq!(rx.recv().await.map(|b| b[0].payload.len()), Some(600));
        assert!(tx.try_send(batch(&[1])).is_ok(), "room again once the task has read");
        drop(rx);
        assert!(matches!(tx.try_send(batch(&[1])), Err(Refused::Closed)));
    }
}
