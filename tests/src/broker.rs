//! A real Kafka-protocol broker for tests: tansu, on a free loopback port.
//!
//! `.ci/setup.sh` installs it and exports `WARDEN_TANSU`. A test that needs a broker
//! and cannot start one fails — it never skips silently.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running tansu broker (in-memory storage); killed on drop.
pub struct Tansu {
    child: Child,
    port: u16,
    bin: PathBuf,
}

/// The tansu binary: `$WARDEN_TANSU`, else `tansu` on PATH.
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WARDEN_TANSU") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("tansu")).find(|p| p.exists()));
    found.unwrap_or_else(|| panic!("no tansu broker: `source .ci/setup.sh` installs it and sets WARDEN_TANSU"))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Tansu {
        let bin = tansu_bin();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let broker = Tansu { child, port, bin };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(&self.bin)
            .args(["topic", "create", name, "--partitions", &partitions.to_string(), "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create runs");
        assert!(status.success(), "cannot create topic {name}");
    }

    /// Creates warden's topics: inputs with `partitions` each, outputs with one.
    pub fn create_warden_topics(&self, partitions: u32) {
        for t in ["events.webhook", "events.tool_call", "events.log"] {
            self.create_topic(t, partitions);
        }
        for t in ["warden.decisions", "warden.killswitch", "warden.alerts", "warden.dlq"] {
            self.create_topic(t, 1);
        }
    }

    /// Freezes the broker (SIGSTOP): an outage that keeps its in-memory data.
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Thaws a paused broker (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }
}

/// Sends a signal by name with `kill` (no libc dependency, no unsafe).
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().is_ok_and(|s| s.success());
    assert!(ok, "kill -{name} {pid} failed");
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// librdkafka's mock cluster (one broker), run by the test process on a loopback
/// port that any client, `warden` included, can reach. Its data outlives
/// [`MockBroker::restart`], which drops every connection and refuses new ones for
/// a while: what clients see when a broker restarts. (tansu keeps topics across a
/// restart only with its libsql storage, whose 0.6.0 release panics in
/// `update_group` while a consumer group heartbeats — `tansu-storage` lite.rs:503,
/// "more or less than one row" — so a restart test on it would test tansu.)
pub struct MockBroker {
    cluster: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl MockBroker {
    /// Starts the broker with warden's topics: inputs of `partitions` partitions,
    /// outputs of one.
    pub fn start_with_warden_topics(partitions: i32) -> MockBroker {
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("the mock cluster starts");
        for t in ["events.webhook", "events.tool_call", "events.log"] {
            cluster.create_topic(t, partitions, 1).expect("topic created");
        }
        for t in ["warden.decisions", "warden.killswitch", "warden.alerts", "warden.dlq"] {
            cluster.create_topic(t, 1, 1).expect("topic created");
        }
        MockBroker { cluster }
    }

    /// The bootstrap address.
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Takes the broker down (connections closed, new ones refused) for `down`,
    /// then brings it back with its data.
    pub fn restart(&self, down: Duration) {
        self.cluster.broker_down(1).expect("broker 1 goes down");
        std::thread::sleep(down);
        self.cluster.broker_up(1).expect("broker 1 comes back");
    }
}
