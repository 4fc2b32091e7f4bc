//! The real `warden run`, as a child process of a test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::broker::{free_port, signal};
use crate::warden_bin;

/// A test config: fast group joins and checkpoints (the defaults take ~20 s to join).
pub const FAST_CONFIG: &str = r#"
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"

[processing]
checkpoint_interval_ms = 500
checkpoint_events = 5000
"#;

/// A running `warden run`; killed on drop.
pub struct Warden {
    child: Option<Child>,
    /// Its HTTP address.
    pub http: String,
    /// Its stderr log file.
    pub log: PathBuf,
    /// Its stdout file.
    pub stdout: PathBuf,
}

/// Starts `warden run` against `brokers` with `group`, state in `state`, `config`
/// text written beside it, and `envs`.
pub fn start_warden(dir: &Path, name: &str, brokers: &str, group: &str, config: &str, envs: &[(&str, &str)]) -> Warden {
    let args: Vec<String> = vec!["--brokers".into(), brokers.into(), "--group".into(), group.into()];
    start_warden_with(dir, name, &args, config, envs)
}

/// Starts `warden run` with extra `args` (no `--brokers`: the embedded cluster).
pub fn start_warden_with(dir: &Path, name: &str, args: &[String], config: &str, envs: &[(&str, &str)]) -> Warden {
    std::fs::create_dir_all(dir).expect("test dir");
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config).expect("write config");
    let http = format!("127.0.0.1:{}", free_port());
    let log = dir.join(format!("{name}.log"));
    let stdout = dir.join(format!("{name}.out"));
    let mut cmd = Command::new(warden_bin());
    cmd.arg("run")
        .arg("--config")
        .arg(&config_path)
        .args(args)
        .args(["--http", &http, "--state"])
        .arg(dir.join(format!("{name}-state")))
        .env("WARDEN_LOG", "info")
        .env_remove("WARDEN_HMAC_KEY")
        .env_remove("WARDEN_SIGNING_KEY")
        .env_remove("WARDEN_ADMIN_TOKEN")
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("warden starts");
    Warden { child: Some(child), http, log, stdout }
}

/// One HTTP request; returns (status, body).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

impl Warden {
    /// Waits until `/ready` answers 200.
    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some((200, _)) = http(&self.http, "GET", "/ready", &[]) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("warden exited with {status} before ready:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "warden not ready within {within:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Prometheus exposition.
    pub fn metrics(&self) -> String {
        http(&self.http, "GET", "/metrics", &[]).map(|(_, b)| b).unwrap_or_default()
    }

    /// The value of one metric sample line (`warden_events_total{type="log"}`), or 0.
    pub fn metric(&self, sample: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// Graceful stop (SIGTERM): drain, checkpoint, commit, leave the group.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("warden did not stop within 30 s of SIGTERM:\n{}", self.log_text());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGHUP: reload the rules.
    pub fn hangup(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "HUP");
        }
    }

    /// Crash (SIGKILL): nothing is drained or committed.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process's stdout so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The embedded cluster's bootstrap address, from the line `warden run` prints
    /// on stderr.
    pub fn embedded_bootstrap(&self) -> Option<String> {
        let out = self.log_text();
        let rest = out.lines().find_map(|l| l.strip_prefix("warden: embedded Kafka cluster at "))?;
        rest.split_whitespace().next().map(str::to_string)
    }

    /// The process's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        self.kill9();
    }
}
