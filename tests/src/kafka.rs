//! Kafka clients for tests: produce inputs, read back what is on a topic, and read
//! committed offsets — facts on the broker, not log lines.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// One message read back from a topic.
#[derive(Clone, Debug)]
pub struct Read {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub payload: Vec<u8>,
    /// Headers, by name.
    pub headers: BTreeMap<String, String>,
}

/// A producer that sends events keyed by tenant to their input topic.
pub struct Loader {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl Loader {
    /// A producer on `bootstrap`.
    pub fn new(bootstrap: &str) -> Loader {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            // Room for the over-limit inputs the dead-letter test sends.
            .set("message.max.bytes", "4000000")
            .create()
            .expect("producer");
        Loader { producer }
    }

    /// Sends raw bytes to `topic` with `key`.
    pub fn send_raw(&self, topic: &str, key: Option<&str>, payload: &[u8]) {
        let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match self.producer.send(r) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    std::thread::sleep(Duration::from_millis(2));
                    record = Some(back);
                }
                Err((e, _)) => panic!("cannot produce to {topic}: {e}"),
            }
        }
    }

    /// Sends one event line to `events.<type>`, keyed by tenant (or service).
    pub fn send_event(&self, line: &str) {
        let v: serde_json::Value = serde_json::from_str(line).expect("event JSON");
        let topic = format!("events.{}", v["type"].as_str().expect("type"));
        let key = v["tenant"].as_str().or_else(|| v["service"].as_str()).map(str::to_string);
        self.send_raw(&topic, key.as_deref(), line.as_bytes());
    }

    /// Waits for every sent message to be acknowledged.
    pub fn flush(&self) {
        self.producer.flush(Duration::from_secs(60)).expect("inputs delivered");
    }
}

/// Every message now on `topic`, read until `quiet` passes with nothing new.
pub fn read_topic(bootstrap: &str, topic: &str, quiet: Duration) -> Vec<Read> {
    read_topic_with(bootstrap, topic, quiet, false)
}

/// Like [`read_topic`]; with `committed_only`, messages of aborted or open
/// transactions are skipped (`isolation.level = read_committed`).
pub fn read_topic_with(bootstrap: &str, topic: &str, quiet: Duration, committed_only: bool) -> Vec<Read> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", if committed_only { "read_committed" } else { "read_uncommitted" })
        .create()
        .expect("consumer");
    let meta = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in meta.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning).expect("tpl");
        }
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Read {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
            last = Instant::now();
        }
    }
    out
}

/// The records on `topic` parsed as JSON.
pub fn read_records(bootstrap: &str, topic: &str, quiet: Duration) -> Vec<serde_json::Value> {
    read_topic(bootstrap, topic, quiet)
        .into_iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("output records are JSON"))
        .collect()
}

/// The offset after the last message of each partition of `topic`, found by reading
/// the messages themselves (tansu 0.6 under-reports high watermarks).
pub fn ends_by_reading(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for r in read_topic(bootstrap, topic, Duration::from_secs(2)) {
        let e = out.entry(r.partition).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    out
}

/// Offsets `group` has committed on `topic`, by partition (absent: none).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let list = c.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    list.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}
