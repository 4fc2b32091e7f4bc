//! librdkafka client settings: brokers and security from the config, credentials
//! from the environment, and the consumer / producer specifics warden relies on.

use rdkafka::config::ClientConfig;

use crate::config::KafkaConfig;
use crate::secret::Secrets;

/// Settings every client shares: brokers, security, extra properties.
pub fn base(kafka: &KafkaConfig, brokers: &str, secrets: &Secrets) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c.set("security.protocol", &kafka.security_protocol);
    if let Some(m) = &kafka.sasl_mechanism {
        c.set("sasl.mechanism", m);
    }
    if let Some(u) = &secrets.sasl_username {
        c.set("sasl.username", u.expose());
    }
    if let Some(p) = &secrets.sasl_password {
        c.set("sasl.password", p.expose());
    }
    for (key, path) in [
        ("ssl.ca.location", &kafka.ssl_ca_location),
        ("ssl.certificate.location", &kafka.ssl_certificate_location),
        ("ssl.key.location", &kafka.ssl_key_location),
    ] {
        if let Some(p) = path {
            c.set(key, p.to_string_lossy());
        }
    }
    for (k, v) in &kafka.client {
        c.set(k, v);
    }
    c
}

/// The group consumer (`[kafka.consumer]` applied last): manual commits after outputs are acknowledged, positions
/// chosen by warden on assignment, cooperative rebalancing, per-partition lag in
/// statistics. Properties in `[kafka.client]` override these.
pub fn consumer(kafka: &KafkaConfig, brokers: &str, group: &str, secrets: &Secrets) -> ClientConfig {
    let mut c = base(kafka, brokers, secrets);
    let defaults = [
        ("group.id", group),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("partition.assignment.strategy", "cooperative-sticky"),
        ("isolation.level", "read_committed"),
        ("statistics.interval.ms", "5000"),
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "1000"),
        // librdkafka stops fetching a partition for this long once its local
        // queue is over `queued.*` (1 s by default). A backlog (a restart, a
        // replay, the benchmark's pre-loaded topics) fills the queue in one
        // burst, warden drains it in a fraction of that, then sat idle for the
        // rest: up to 0.8 s stalls every few hundred thousand events
        // (bench/RESULTS.md). Re-checking every 20 ms costs nothing measurable.
        ("fetch.queue.backoff.ms", "20"),
        // How long the broker may hold a fetch that finds no new data (500 ms by
        // default). Apache Kafka answers as soon as data arrives, so there this
        // only bounds idle polls (at most 40 requests/s per broker). A broker
        // whose long poll does not wake on produce (tansu 0.6) holds every such
        // fetch: an event waited ~90 ms at the median and ~270 ms at p99 to be
        // read, ~17 / ~33 ms with 25 (bench/RESULTS.md, twelfth session).
        ("fetch.wait.max.ms", "25"),
    ];
    for (k, v) in defaults {
        if !kafka.client.contains_key(k) && !kafka.consumer.contains_key(k) {
            c.set(k, v);
        }
    }
    for (k, v) in &kafka.consumer {
        c.set(k, v);
    }
    c
}

/// The output producer's settings (the producer adds idempotence and the rest).
pub fn producer(kafka: &KafkaConfig, brokers: &str, secrets: &Secrets) -> ClientConfig {
    let mut c = base(kafka, brokers, secrets);
    for (k, v) in &kafka.producer {
        c.set(k, v);
    }
    c
}

/// A consumer that reads by explicit assignment and never commits. librdkafka
/// wants a `group.id` even for `assign`, so it gets a throwaway one.
pub fn reader(kafka: &KafkaConfig, brokers: &str, secrets: &Secrets) -> ClientConfig {
    let mut c = base(kafka, brokers, secrets);
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    c.set("group.id", format!("warden-reader-{}-{nonce}", std::process::id()));
    c.set("enable.auto.commit", "false");
    c.set("enable.partition.eof", "false");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_refetches_soon_unless_configured() {
        let (kafka, secrets) = (KafkaConfig::default(), Secrets::default());
        let c = consumer(&kafka, "127.0.0.1:9092", "g", &secrets);
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("20"));
        assert_eq!(c.get("fetch.wait.max.ms"), Some("25"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        let mut kafka = KafkaConfig::default();
        kafka.consumer.insert("fetch.queue.backoff.ms".into(), "500".into());
        let c = consumer(&kafka, "127.0.0.1:9092", "g", &secrets);
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("500"), "[kafka.consumer] wins");
        let mut kafka = KafkaConfig::default();
        kafka.client.insert("fetch.queue.backoff.ms".into(), "250".into());
        let c = consumer(&kafka, "127.0.0.1:9092", "g", &secrets);
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("250"), "[kafka.client] wins over the default");
    }
}
