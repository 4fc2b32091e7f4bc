//! The embedded broker: librdkafka's in-process mock cluster, so `warden run` works
//! on a machine with nothing installed. Any Kafka client can reach it on loopback at
//! the printed bootstrap address while warden runs; its data lives in memory.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::KafkaConfig;

/// Partitions of each input topic in the embedded cluster.
pub const INPUT_PARTITIONS: i32 = 3;

/// A running embedded cluster; dropping it stops the broker.
pub struct Embedded {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl Embedded {
    /// Starts one mock broker with warden's input and output topics.
    pub fn start(kafka: &KafkaConfig) -> anyhow::Result<Embedded> {
        let cluster = MockCluster::new(1)?;
        for topic in &kafka.input_topics {
            cluster.create_topic(topic, INPUT_PARTITIONS, 1)?;
        }
        for topic in [&kafka.decisions_topic, &kafka.killswitch_topic, &kafka.alerts_topic, &kafka.dlq_topic] {
            cluster.create_topic(topic, 1, 1)?;
        }
        Ok(Embedded { cluster })
    }

    /// The bootstrap address to give clients.
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
