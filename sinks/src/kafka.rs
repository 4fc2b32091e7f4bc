//! [`KafkaOutputs`]: the records and dead letters, to their topics.
//!
//! One idempotent producer for every output topic. Records are keyed as design §4
//! says (`{tenant}/{kind}/{id}`, `{tenant}/{signal}`) with the record's event time
//! as Kafka timestamp; dead letters carry the original bytes with their reason and
//! source in headers. Sending returns a delivery future: the caller commits an
//! input offset only after every output it caused is acknowledged.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::Timestamp;

use crate::metrics::Metrics;
use sha2::{Digest, Sha256};
use warden_schemas::Record;

/// How much of a dead letter too large to re-publish is kept.
pub const DLQ_TRUNCATE_BYTES: usize = 64 * 1024;

/// Output topic names.
#[derive(Clone, Debug)]
pub struct OutputTopics {
    /// Decisions.
    pub decisions: String,
    /// Kill-switch commands.
    pub killswitch: String,
    /// Alerts.
    pub alerts: String,
    /// Dead letters.
    pub dlq: String,
}

/// Where a dead letter came from.
#[derive(Clone, Copy, Debug)]
pub struct DeadLetterSource<'a> {
    /// Input topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// librdkafka's log lines and errors, through tracing, at most a few per facility
/// every 10 s: a broker outage must not flood the log (the rest are counted in
/// `warden_log_suppressed_total`).
#[derive(Clone)]
pub struct QuietLogs {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    metrics: Arc<Metrics>,
}

impl QuietLogs {
    /// A limiter counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> QuietLogs {
        let period = Duration::from_secs(10);
        let burst = NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(burst);
        QuietLogs { limiter: Arc::new(RateLimiter::keyed(quota)), metrics }
    }

    /// Whether a line of `kind` may be written now.
    pub fn allow(&self, kind: &str) -> bool {
        let ok = self.limiter.check_key(&kind.to_string()).is_ok();
        if !ok {
            self.metrics.log_suppressed.inc();
        }
        ok
    }

    /// A librdkafka log line.
    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if !self.allow(fac) {
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(facility = fac, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(facility = fac, "librdkafka: {message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {message}"),
        }
    }

    /// A librdkafka client error (retried by librdkafka itself).
    pub fn error(&self, error: &KafkaError, reason: &str) {
        if self.allow(&format!("error:{error}")) {
            tracing::warn!(error = %error, "Kafka client error (retrying): {reason}");
        }
    }
}

impl ClientContext for QuietLogs {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        QuietLogs::log(self, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        QuietLogs::error(self, &error, reason);
    }
}

/// The output producer.
pub struct KafkaOutputs {
    producer: FutureProducer<QuietLogs>,
    topics: OutputTopics,
    max_message_bytes: usize,
}

impl std::fmt::Debug for KafkaOutputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOutputs").field("topics", &self.topics).finish_non_exhaustive()
    }
}

impl KafkaOutputs {
    /// Creates the producer from `config` (brokers and security already set), made
    /// idempotent, and retrying outages for ever rather than dropping a record.
    pub fn new(mut config: ClientConfig, topics: OutputTopics, logs: QuietLogs) -> Result<KafkaOutputs, KafkaError> {
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            // 0 = no delivery timeout: an outage stalls output, it never loses it.
            .set("message.timeout.ms", "0");
        if config.get("transactional.id").is_some() {
            // A transaction bounds delivery: librdkafka wants message.timeout.ms <= transaction.timeout.ms.
            config.set("transaction.timeout.ms", "60000").set("message.timeout.ms", "60000");
        }
        let max_message_bytes = config.get("message.max.bytes").and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        Ok(KafkaOutputs { producer: config.create_with_context(logs)?, topics, max_message_bytes })
    }

    /// The output topics.
    pub fn topics(&self) -> &OutputTopics {
        &self.topics
    }

    /// Queues `record` on its topic; waits (never drops) while the local queue is full.
    pub async fn send(&self, record: &Record) -> DeliveryFuture {
        let topic = match record {
            Record::Decision(_) => &self.topics.decisions,
            Record::KillSwitch(_) => &self.topics.killswitch,
            Record::Alert(_) => &self.topics.alerts,
        };
        let key = record.kafka_key();
        let payload = record.to_json();
        let mut r = FutureRecord::to(topic).key(&key).payload(&payload).timestamp(record.kafka_timestamp());
        loop {
            match self.producer.send_result(r) {
                Ok(f) => return f,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    r = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, back)) => {
                    tracing::warn!(error = %e, "output send failed; retrying");
                    r = back;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Queues a dead letter: the original bytes and key, `warden.reason`,
    /// `warden.topic`, `warden.partition`, `warden.offset` headers; a message too
    /// large to re-publish keeps its first 64 KiB with `warden.truncated`,
    /// `warden.original_size` and `warden.original_sha256`.
    pub async fn send_dead_letter(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
        reason: &str,
        source: DeadLetterSource<'_>,
    ) -> DeliveryFuture {
        let partition = source.partition.to_string();
        let offset = source.offset.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header { key: "warden.reason", value: Some(reason) })
            .insert(Header { key: "warden.topic", value: Some(source.topic) })
            .insert(Header { key: "warden.partition", value: Some(&partition) })
            .insert(Header { key: "warden.offset", value: Some(&offset) });
        // Leave room for key, headers and framing under the producer's limit.
        let body = if payload.len() + 4_096 > self.max_message_bytes {
            let size = payload.len().to_string();
            let sha = hex::encode(Sha256::digest(payload));
            headers = headers
                .insert(Header { key: "warden.truncated", value: Some("true") })
                .insert(Header { key: "warden.original_size", value: Some(&size) })
                .insert(Header { key: "warden.original_sha256", value: Some(&sha) });
            &payload[..DLQ_TRUNCATE_BYTES.min(payload.len())]
        } else {
            payload
        };
        let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topics.dlq).payload(body).headers(headers);
        if let Some(k) = key {
            r = r.key(k);
        }
        loop {
            match self.producer.send_result(r) {
                Ok(f) => return f,
                Err((_, back)) => {
                    r = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    }

    /// Queues again a message whose delivery failed, as it was first sent: same
    /// topic, partition, key, bytes, headers and timestamp (the delivery report
    /// hands the message back, so nothing is re-encoded). Only a full local queue
    /// is waited out here; any other refusal is returned, for the caller to count
    /// and back off.
    pub async fn resend(&self, message: &OwnedMessage) -> Result<DeliveryFuture, KafkaError> {
        let mut r: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(message.topic()).partition(message.partition()).payload(message.payload().unwrap_or(&[]));
        if let Some(k) = message.key() {
            r = r.key(k);
        }
        if let Some(h) = message.headers() {
            r = r.headers(h.clone());
        }
        if let Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) = message.timestamp() {
            r = r.timestamp(ms);
        }
        loop {
            match self.producer.send_result(r) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    r = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// The producer's fatal error, if it has hit one: after it no send succeeds
    /// until a new producer is made (librdkafka's `rd_kafka_fatal_error`).
    pub fn fatal_error(&self) -> Option<String> {
        self.producer.client().fatal_error().map(|(code, reason)| format!("{code}: {reason}"))
    }

    /// Makes this a transactional producer (exactly-once): `transactional.id` fences
    /// any older producer with the same id, then the first transaction begins.
    /// Blocking; call from a blocking thread.
    pub fn start_transactions(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.init_transactions(timeout)?;
        self.producer.begin_transaction()
    }

    /// Commits the open transaction with the consumer offsets `offsets` (outputs and
    /// input position become visible together), then begins the next one.
    /// Blocking; call from a blocking thread.
    pub fn commit_transaction(
        &self,
        offsets: &rdkafka::TopicPartitionList,
        group: &rdkafka::consumer::ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        self.producer.send_offsets_to_transaction(offsets, group, timeout)?;
        self.producer.commit_transaction(timeout)?;
        self.producer.begin_transaction()
    }

    /// Aborts the open transaction (its outputs are discarded) and begins another.
    /// Blocking; call from a blocking thread.
    pub fn abort_transaction(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.abort_transaction(timeout)?;
        self.producer.begin_transaction()
    }

    /// Waits up to `timeout` for everything queued to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
