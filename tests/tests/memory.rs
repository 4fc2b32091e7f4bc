//! The memory budget and tenant quotas on the real binary: `warden scan` and
//! `warden run` held to a 1 MiB budget spill most of their keys to RocksDB and
//! still emit exactly what an unbounded process emits.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use warden_tests::process::{start_warden_with, Warden};
use warden_tests::{run_warden, warden_bin};

const TIGHT: &str = "[state]\nmemory_budget_mb = 1\ntenant_key_quota = 2000\n";
const UNBOUNDED: &str = "[state]\nmemory_budget_mb = 100000\ntenant_key_quota = 0\n";
const EVENTS: usize = 40_000;

/// Two tenants, a million possible subjects, 20 minutes: far more keys than 1 MiB
/// holds, with attack bursts so the detectors fire.
fn generated(dir: &Path) -> Vec<String> {
    let gen = warden_bin().with_file_name("warden-gen");
    let args = [EVENTS.to_string(), "3".into(), "--tenants".into(), "2".into(), "--subjects".into()];
    let out = std::process::Command::new(&gen)
        .args(args)
        .args(["1000000", "--span-ms", "1200000", "--attack-share", "0.05"])
        .current_dir(dir)
        .output()
        .expect("warden-gen runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `warden scan` over `files` in turn with `config`, resuming from `state` if
/// given; returns stdout and the summary's count of spills.
fn scan(config: &Path, state: Option<&Path>, files: &[&Path]) -> (String, u64) {
    let (mut out, mut spills) = (String::new(), 0);
    for file in files {
        let mut args = vec!["scan", "--config", config.to_str().unwrap()];
        if let Some(state) = state {
            args.extend(["--state", state.to_str().unwrap()]);
        }
        args.push(file.to_str().unwrap());
        let o = run_warden(&args, &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "scan failed: {stderr}");
        out.push_str(&String::from_utf8(o.stdout).unwrap());
        let summary = stderr.lines().find(|l| l.contains("spills over the scan")).expect("a state summary line");
        let count = summary.rsplit("; ").next().and_then(|t| t.split_whitespace().next());
        spills += count.and_then(|n| n.parse::<u64>().ok()).expect("a spill count");
    }
    (out, spills)
}

#[test]
fn a_scan_held_to_one_mib_emits_exactly_what_an_unbounded_scan_emits() {
    let dir = tempfile::tempdir().unwrap();
    let lines = generated(dir.path());
    let all = write(dir.path(), "all.jsonl", &(lines.join("\n") + "\n"));
    let (tight, free) = (write(dir.path(), "tight.toml", TIGHT), write(dir.path(), "free.toml", UNBOUNDED));

    let (want, none) = scan(&free, None, &[&all]);
    assert_eq!(none, 0);
    assert!(want.lines().count() > 200, "the stream must make the detectors fire");
    let (got, spills) = scan(&tight, None, &[&all]);
    assert!(spills > 10_000, "1 MiB must make the scan spill ({spills})");
    assert!(got == want, "a spilled scan differs from an unbounded one");

    // With --state the spill goes to the checkpoint store, and a scan that
    // resumes from a checkpoint of spilled state continues exactly.
    let half = lines.len() / 2;
    let a = write(dir.path(), "a.jsonl", &(lines[..half].join("\n") + "\n"));
    let b = write(dir.path(), "b.jsonl", &(lines[half..].join("\n") + "\n"));
    let (want, _) = scan(&free, Some(&dir.path().join("free-state")), &[&a, &b]);
    let (got, spills) = scan(&tight, Some(&dir.path().join("tight-state")), &[&a, &b]);
    assert!(spills > 10_000);
    assert!(got == want, "a resumed spilled scan differs from an unbounded one");
}

fn processed(w: &Warden) -> f64 {
    ["webhook", "tool_call", "log"].iter().map(|t| w.metric(&format!("warden_events_total{{type=\"{t}\"}}"))).sum()
}

/// Runs `warden run --load` on the embedded cluster until every event is
/// processed; returns the metrics text.
fn run_embedded(dir: &Path, name: &str, config: &str, input: &Path) -> String {
    let args = vec!["--load".to_string(), input.to_string_lossy().into_owned()];
    let mut w = start_warden_with(dir, name, &args, config, &[]);
    w.wait_ready(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(240);
    while processed(&w) < EVENTS as f64 {
        assert!(Instant::now() < deadline, "{name}: only {} processed:\n{}", processed(&w), w.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Outputs of the last events are counted once acknowledged.
    std::thread::sleep(Duration::from_secs(2));
    let metrics = w.metrics();
    w.stop();
    metrics
}

/// The counters that say what was emitted.
fn emitted(metrics: &str) -> Vec<String> {
    let mut v: Vec<String> = metrics
        .lines()
        .filter(|l| {
            ["warden_decisions_total", "warden_killswitch_total", "warden_alerts_total"]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn value(metrics: &str, name: &str) -> f64 {
    metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().last()?.parse().ok()).unwrap_or(0.0)
}

#[test]
fn warden_run_held_to_one_mib_spills_counts_it_and_emits_what_an_unbounded_run_emits() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "all.jsonl", &(generated(dir.path()).join("\n") + "\n"));
    let free = run_embedded(dir.path(), "free", UNBOUNDED, &input);
    let tight = run_embedded(dir.path(), "tight", TIGHT, &input);
    assert_eq!(value(&free, "warden_quota_exceeded_total"), 0.0);
    assert!(value(&tight, "warden_quota_exceeded_total") > 1_000.0, "{tight}");
    assert!(emitted(&free).iter().any(|l| l.starts_with("warden_decisions_total") && !l.ends_with(" 0")));
    assert_eq!(emitted(&tight), emitted(&free));
}
