//! Outputs until the broker acknowledges them: each send is tracked by a
//! sequence number, and at-least-once re-sends a failed one until it lands, so
//! no checkpoint is written or committed past an output that was lost.

use std::time::Instant;

use futures::stream::StreamExt;
use rdkafka::producer::DeliveryFuture;
use rdkafka::Message;

use super::{Shared, Task};

/// An output's acknowledgement: its sequence number, when its event arrived, success.
pub(super) type Ack = (u64, Instant, bool);

/// The longest wait between two attempts to deliver a failed output.
const MAX_RESEND_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for an output's delivery; with `retry`, sends it again after each failure
/// until the broker acknowledges it. Each failure counts in
/// `warden_output_errors_total`. A producer that hit a fatal error can deliver
/// nothing more: the process exits (75) so that its supervisor restarts it and
/// the uncommitted inputs replay.
/// Re-sends go on the shared producer: with `retry` (at-least-once, or a dead
/// letter, which stays outside any transaction) that is the one that sent it.
async fn deliver(f: DeliveryFuture, shared: &Shared, retry: bool) -> bool {
    let outputs = &shared.outputs;
    let mut backoff = std::time::Duration::from_millis(100);
    let mut pending = Some(f);
    let mut message = None;
    loop {
        // Either a delivery in flight, or a failed message to queue again.
        let error = match pending.take() {
            Some(f) => match f.await {
                Ok(Ok(_)) => return true,
                Ok(Err((e, m))) => {
                    message = Some(m);
                    e
                }
                // The producer was dropped (shutdown): not delivered.
                Err(_) => return false,
            },
            None => {
                let Some(m) = message.as_ref() else { return false };
                match outputs.resend(m).await {
                    Ok(f) => {
                        pending = Some(f);
                        continue;
                    }
                    Err(e) => e,
                }
            }
        };
        shared.metrics.output_errors.inc();
        if !retry {
            if shared.quiet_logs.allow("output-abort") {
                tracing::error!(error = %error, "output refused by the broker; the transaction will abort");
            }
            return false;
        }
        if let Some(fatal) = outputs.fatal_error() {
            tracing::error!(
                error = fatal,
                "the output producer hit a fatal error; exiting so a restart replays what is uncommitted"
            );
            std::process::exit(75);
        }
        if shared.quiet_logs.allow("output-resend") {
            let topic = message.as_ref().map_or("", |m| m.topic());
            tracing::warn!(error = %error, topic, "output delivery failed; sending it again");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_RESEND_BACKOFF);
    }
}

impl Task {
    /// Remembers an output until the broker acknowledges it.
    ///
    /// At-least-once: a delivery that fails (librdkafka gives up on a batch, e.g.
    /// when a restarted broker lost the idempotent producer's sequence) is sent
    /// again, with backoff, until it is acknowledged: an output counted as done
    /// without the broker's acknowledgement would let its input offset be committed
    /// and the output be lost. Exactly-once: a failed delivery fails the
    /// transaction's commit, which rewinds, so it is only reported.
    pub(super) fn track(&mut self, f: DeliveryFuture, arrived: Instant, retry: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unacked.insert(seq);
        let shared = self.shared.clone();
        self.pending.push(Box::pin(async move {
            let delivered = deliver(f, &shared, retry).await;
            (seq, arrived, delivered)
        }));
    }

    pub(super) fn acked(&mut self, (seq, arrived, delivered): Ack) {
        self.latency.observe(arrived.elapsed().as_secs_f64());
        // An output never acknowledged stays in `unacked`: no later checkpoint of
        // this partition is written or committed, so a restart replays it.
        if delivered || self.transactional {
            self.unacked.remove(&seq);
        }
    }

    /// Waits until every output sent so far has its delivery settled.
    pub(super) async fn drain_pending(&mut self) {
        while let Some(ack) = self.pending.next().await {
            self.acked(ack);
        }
    }
}
