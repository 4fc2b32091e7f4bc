//! The pieces the end-to-end harness and the soak run share: a tansu broker on a
//! free loopback port, child processes that stop with their owner, a producer that
//! routes generated events to their input topics, and reading warden's metrics.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};

/// The input topics, in the order events are routed to them.
pub const INPUTS: [&str; 3] = ["events.webhook", "events.tool_call", "events.log"];

/// warden's output topics.
pub const OUTPUTS: [&str; 4] = ["warden.decisions", "warden.killswitch", "warden.alerts", "warden.dlq"];

/// A free loopback port (racy by nature; fine for a benchmark).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(29_999)
}

/// A child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tansu (`$WARDEN_TANSU`, in-memory) on a free port, with the input topics at
/// `partitions` each and the output topics at one. Returns the broker and its
/// bootstrap address.
pub fn start_tansu(partitions: i32, extra_topics: &[&str]) -> (Proc, String) {
    let tansu = std::env::var("WARDEN_TANSU").expect("WARDEN_TANSU: `source .ci/setup.sh`");
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let broker = Proc(
        Command::new(&tansu)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts"),
    );
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let topics = INPUTS.iter().map(|t| (*t, partitions)).chain(OUTPUTS.iter().chain(extra_topics).map(|t| (*t, 1)));
    for (t, n) in topics {
        let ok = Command::new(&tansu)
            .args(["topic", "create", t, "--partitions", &n.to_string(), "--broker", &url])
            .stdout(Stdio::null())
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "create {t}");
    }
    (broker, format!("127.0.0.1:{port}"))
}

/// A plain HTTP GET; empty when the server is not up, cut short after 5 s.
pub fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// warden's `/metrics` page, asked again (for up to 5 s) while the answer is not
/// a 200: a refused or rate-limited answer read as metrics would be all zeros.
pub fn metrics_page(addr: &str) -> String {
    let mut page = String::new();
    for _ in 0..100 {
        page = http_get(addr, "/metrics");
        if page.starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    page
}

/// The sum of every sample whose line starts with `prefix` in a Prometheus text page.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// A producer tuned for loading: batches, and a queue deep enough for a pre-load.
pub fn producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"))
}

/// Sends a generated event to its input topic, keyed by tenant; waits while the
/// producer's queue is full.
pub fn send(p: &ThreadedProducer<DefaultProducerContext>, line: &str) {
    let topic = if line.contains("\"type\":\"webhook\"") {
        INPUTS[0]
    } else if line.contains("\"type\":\"tool_call\"") {
        INPUTS[1]
    } else {
        INPUTS[2]
    };
    let key = line.split("\"tenant\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
    let mut rec = Some(BaseRecord::<str, str>::to(topic).key(key).payload(line));
    while let Some(r) = rec.take() {
        if let Err((_, back)) = p.send(r) {
            std::thread::sleep(Duration::from_micros(200));
            rec = Some(back);
        }
    }
}
