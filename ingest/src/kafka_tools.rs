//! `warden produce` and `warden tail`: load JSON-lines events into the input topics,
//! and print what arrives on the output topics — so a fresh machine can see
//! decisions flowing through `warden run` without any other Kafka client.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use warden_schemas::json::{self, Value};
use warden_sinks::kafka::QuietLogs;

use crate::config::KafkaConfig;

/// Where `produce` sends one line: the topic, key and timestamp.
fn route<'a>(line: &[u8], kafka: &'a KafkaConfig) -> (&'a str, Option<String>, Option<i64>) {
    let fallback = kafka.input_topics.first().map_or("events.webhook", String::as_str);
    let Ok(text) = std::str::from_utf8(line) else {
        return (fallback, None, None);
    };
    let Ok(Value::Object(obj)) = json::parse(text) else {
        return (fallback, None, None);
    };
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let topic = kafka.input_topics.iter().find(|t| !ty.is_empty() && t.ends_with(ty)).map_or(fallback, String::as_str);
    // Keyed by tenant (a log without one: by service), so a tenant's keys share a partition.
    let key = obj.get("tenant").and_then(Value::as_str).or_else(|| obj.get("service").and_then(Value::as_str));
    let ts = match obj.get("ts") {
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    (topic, key.map(str::to_string), ts)
}

/// The loader's producer context: counts deliveries that failed (queued is not
/// delivered), and logs librdkafka through [`QuietLogs`], so a dead broker gives a
/// few lines, not one per retry.
struct LoaderContext {
    failed: AtomicU64,
    logs: QuietLogs,
}

impl ClientContext for LoaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.logs.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.logs.error(&error, reason);
    }
}

impl ProducerContext for LoaderContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if self.logs.allow("delivery") {
                tracing::warn!(error = %e, "a line was not delivered");
            }
        }
    }
}

/// Sends every line of `inputs` (files, `-` = stdin) to its input topic, keyed by
/// tenant with the event time as Kafka timestamp; with `topic`, every line goes there
/// unchanged and unkeyed. Returns the number of messages sent.
pub fn produce(client: ClientConfig, kafka: &KafkaConfig, inputs: &[String], topic: Option<&str>) -> Result<u64> {
    let context = LoaderContext {
        failed: AtomicU64::new(0),
        logs: QuietLogs::new(Arc::new(warden_sinks::metrics::Metrics::new())),
    };
    let producer: ThreadedProducer<LoaderContext> =
        client.create_with_context(context).context("cannot create the producer")?;
    let inputs = if inputs.is_empty() { vec!["-".to_string()] } else { inputs.to_vec() };
    let (mut sent, mut refused) = (0u64, 0u64);
    for input in &inputs {
        let reader: Box<dyn Read> = if input == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(input).with_context(|| format!("cannot open {input}"))?)
        };
        let mut reader = BufReader::new(reader);
        let (mut line, mut number) = (Vec::new(), 0u64);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            number += 1;
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (to, key, ts) = match topic {
                Some(t) => (t, None, None),
                None => route(&line, kafka),
            };
            let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(to).payload(&line);
            if let Some(k) = &key {
                record = record.key(k.as_str());
            }
            if let Some(ts) = ts {
                record = record.timestamp(ts);
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                match producer.send(r) {
                    Ok(()) => sent += 1,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        std::thread::sleep(Duration::from_millis(5));
                        record = Some(back);
                    }
                    // One line the client refuses (over `message.max.bytes`): the
                    // rest still go, and the run fails at the end naming it.
                    Err((KafkaError::MessageProduction(code @ RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                        tracing::warn!(input, line = number, bytes = line.len(), error = %code, "line not sent");
                        refused += 1;
                    }
                    Err((e, _)) => return Err(anyhow!("cannot send to {to}: {e}")),
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).context("not every message was delivered within 30 s")?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(anyhow!("{failed} of {sent} lines were not delivered (see the warnings)"));
    }
    if refused > 0 {
        return Err(anyhow!("{refused} lines were too large to send (see the warnings); {sent} were sent"));
    }
    Ok(sent)
}

/// Prints the records on `topics` (from the beginning) as JSON lines until `stop` is
/// set, or until nothing arrived for `idle` (counted from the assignment, so an
/// empty topic ends too).
pub fn tail(client: ClientConfig, topics: &[String], idle: Option<Duration>, stop: Arc<AtomicBool>) -> Result<u64> {
    let consumer: BaseConsumer = client.create().context("cannot create the consumer")?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let meta = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .with_context(|| format!("no metadata for {topic}"))?;
        for t in meta.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(t.name(), p.id(), Offset::Beginning)?;
            }
        }
    }
    consumer.assign(&tpl)?;
    let stdout = io::stdout();
    let mut last = Instant::now();
    let mut printed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let mut out = stdout.lock();
                match m.headers().and_then(|h| h.iter().find(|h| h.key == "warden.reason")) {
                    // A dead letter: its bytes may not be JSON, so describe it instead.
                    Some(reason) => {
                        let header = |k: &str| {
                            m.headers()
                                .and_then(|h| h.iter().find(|h| h.key == k))
                                .and_then(|h| h.value)
                                .map(|v| String::from_utf8_lossy(v).into_owned())
                        };
                        // A summary, not the payload: dead letters need not be text.
                        let number = |k: &str| header(k).and_then(|v| v.parse::<i64>().ok());
                        let line = serde_json::json!({
                            "schema": "warden.dlq",
                            "reason": reason.value.map(|v| String::from_utf8_lossy(v).into_owned()),
                            "topic": header("warden.topic"),
                            "partition": number("warden.partition"),
                            "offset": number("warden.offset"),
                            "size": m.payload().map_or(0, <[u8]>::len),
                        });
                        writeln!(out, "{line}")?;
                    }
                    None => {
                        out.write_all(m.payload().unwrap_or_default())?;
                        out.write_all(b"\n")?;
                    }
                }
                out.flush()?;
                printed += 1;
                last = Instant::now();
            }
            Some(Err(e)) => tracing::debug!(error = %e, "tail consumer error"),
            None => {
                if idle.is_some_and(|d| last.elapsed() > d) {
                    break;
                }
            }
        }
    }
    Ok(printed)
}
