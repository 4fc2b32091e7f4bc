//! `warden run` against a real Kafka-protocol broker (tansu on a free loopback port).
//!
//! The oracle is `warden scan` over the same events: a Kafka run must emit the same
//! decision and kill-switch ids whatever happens to it (crash, rebalance, outage),
//! duplicates allowed only with identical content. Assertions are broker facts:
//! topic contents and committed offsets.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One broker test at a time: each runs a broker, one or two wardens and a loader,
/// which together saturate this 2-core machine; in parallel their deadlines would
/// measure the scheduler, not warden.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

use serde_json::Value;
use warden_tests::broker::{MockBroker, Tansu};
use warden_tests::kafka::{self, Loader};
use warden_tests::process::{start_warden, Warden, FAST_CONFIG};
use warden_tests::{generate_scenarios, json_lines, run_warden, warden_bin};

const INPUTS: [&str; 3] = ["events.webhook", "events.tool_call", "events.log"];

/// The scenario corpus merged into one stream sorted by `ts` (stable).
fn merged_corpus(dir: &Path, benign: u32) -> (PathBuf, Vec<String>) {
    let mut lines: Vec<(i64, String)> = Vec::new();
    for file in generate_scenarios(&dir.join("corpus"), benign) {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let ts = serde_json::from_str::<Value>(line).unwrap()["ts"].as_i64().unwrap();
            lines.push((ts, line.to_string()));
        }
    }
    lines.sort_by_key(|(ts, _)| *ts);
    let lines: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    let path = dir.join("merged.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, lines)
}

/// A generated stream from the bench generator (attacks mixed in).
fn generated(dir: &Path, events: u32) -> (PathBuf, Vec<String>) {
    let gen = warden_bin().with_file_name("warden-gen");
    let out =
        std::process::Command::new(&gen).args([events.to_string(), "7".into()]).output().expect("warden-gen runs");
    assert!(out.status.success());
    let path = dir.join("generated.jsonl");
    std::fs::write(&path, &out.stdout).unwrap();
    let lines = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    (path, lines)
}

/// What `warden scan` emits for `input`.
fn scan(input: &Path) -> Vec<Value> {
    let out = run_warden(&["scan", input.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    json_lines(&out.stdout)
}

fn ids(records: &[Value], schema: &str, field: &str) -> BTreeSet<String> {
    records.iter().filter(|r| r["schema"] == schema).map(|r| r[field].as_str().unwrap().to_string()).collect()
}

/// Waits until the group has committed every input partition up to its end.
fn wait_all_committed(bootstrap: &str, group: &str, partitions: i32, within: Duration, wardens: &[&Warden]) {
    let deadline = Instant::now() + within;
    let ends: Vec<BTreeMap<i32, i64>> = INPUTS.iter().map(|t| kafka::ends_by_reading(bootstrap, t)).collect();
    loop {
        let done = INPUTS.iter().zip(&ends).all(|(t, end)| {
            let committed = kafka::committed(bootstrap, group, t, partitions);
            end.iter().all(|(p, e)| committed.get(p) == Some(e))
        });
        if done {
            return;
        }
        if Instant::now() > deadline {
            let state: Vec<String> = INPUTS
                .iter()
                .zip(&ends)
                .map(|(t, end)| {
                    format!("{t}: end {end:?} committed {:?}", kafka::committed(bootstrap, group, t, partitions))
                })
                .collect();
            let logs: Vec<String> = wardens.iter().map(|w| w.log_text()).collect();
            panic!(
                "inputs not all committed within {within:?}: {}\nlogs:\n{}",
                state.join("; "),
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every output record on the broker, de-duplicated by id after checking that
/// copies of one id are identical.
fn outputs(bootstrap: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for (topic, id) in [("warden.decisions", "decision_id"), ("warden.killswitch", "command_id")] {
        let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
        for r in kafka::read_records(bootstrap, topic, Duration::from_secs(2)) {
            let key = r[id].as_str().unwrap().to_string();
            if let Some(prev) = by_id.get(&key) {
                assert_eq!(prev, &r, "two records share id {key} but differ");
            }
            by_id.insert(key, r);
        }
        all.extend(by_id.into_values());
    }
    all.extend(kafka::read_records(bootstrap, "warden.alerts", Duration::from_secs(1)));
    all
}

/// Decision and kill-switch ids must be exactly scan's.
fn assert_same_detections(expected: &[Value], got: &[Value]) {
    for (schema, field) in [("warden.decision.v1", "decision_id"), ("warden.killswitch.v1", "command_id")] {
        let want = ids(expected, schema, field);
        let have = ids(got, schema, field);
        let missing: Vec<_> = want.difference(&have).collect();
        let extra: Vec<_> = have.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{schema}: {} missing {missing:?}, {} extra {extra:?}",
            missing.len(),
            extra.len()
        );
        assert!(!want.is_empty(), "the stream should produce some {schema}");
    }
}

/// Waits until `w` has processed at least `events` input events (mid-stream).
fn wait_processed(w: &Warden, events: f64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let processed =
        || INPUTS.iter().map(|t| w.metric(&format!("warden_events_total{{type=\"{}\"}}", &t[7..]))).sum::<f64>();
    while processed() < events {
        assert!(Instant::now() < deadline, "warden processed too little:\n{}", w.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn load(loader: &Loader, lines: &[String]) {
    for l in lines {
        loader.send_event(l);
    }
    loader.flush();
}

#[test]
fn outputs_match_scan_over_the_scenario_corpus() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (merged, lines) = merged_corpus(dir.path(), 2_000);
    let expected = scan(&merged);
    let broker = Tansu::start();
    broker.create_warden_topics(3);
    let mut w = start_warden(dir.path(), "a", &broker.bootstrap(), "eq", FAST_CONFIG, &[]);
    w.wait_ready(Duration::from_secs(60));
    load(&Loader::new(&broker.bootstrap()), &lines);
    wait_all_committed(&broker.bootstrap(), "eq", 3, Duration::from_secs(120), &[&w]);
    let got = outputs(&broker.bootstrap());
    assert_same_detections(&expected, &got);
    let signals = |rs: &[Value]| -> BTreeSet<String> {
        rs.iter()
            .filter(|r| r["schema"] == "warden.alert.v1")
            .map(|r| r["signal"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(signals(&expected), signals(&got));
    assert!(w.metric("warden_events_total{type=\"webhook\"}") > 0.0);
    w.stop();
}

#[test]
fn bad_input_reaches_the_dead_letter_topic_byte_for_byte() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start();
    broker.create_warden_topics(1);
    let mut w = start_warden(dir.path(), "a", &broker.bootstrap(), "dlq", FAST_CONFIG, &[]);
    w.wait_ready(Duration::from_secs(60));
    let big = format!("{{\"type\":\"log\",\"pad\":\"{}\"}}", "x".repeat(1_100_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{\"type\":\"webhook\",".to_vec()),
        ("invalid_utf8", b"{\"type\":\"log\",\"x\":\"\xff\xfe\"}".to_vec()),
        ("too_deep", format!("{}{}", "[".repeat(80), "]".repeat(80)).into_bytes()),
        ("missing_field", br#"{"type":"webhook","ts":1767225600000,"tenant":"t"}"#.to_vec()),
        ("unknown_type", br#"{"type":"email","ts":1767225600000}"#.to_vec()),
        ("too_large", big.into_bytes()),
        // A blank line in a file is skipped; a message with no JSON is bad input.
        ("invalid_json", b" \r\n".to_vec()),
    ];
    let loader = Loader::new(&broker.bootstrap());
    for (_, payload) in &cases {
        loader.send_raw("events.webhook", Some("t-bad"), payload);
    }
    loader.flush();
    wait_all_committed(&broker.bootstrap(), "dlq", 1, Duration::from_secs(60), &[&w]);
    let dead = kafka::read_topic(&broker.bootstrap(), "warden.dlq", Duration::from_secs(2));
    assert_eq!(dead.len(), cases.len(), "one dead letter per bad input");
    for (d, (reason, payload)) in dead.iter().zip(&cases) {
        assert_eq!(d.headers["warden.reason"], *reason);
        assert_eq!(d.headers["warden.topic"], "events.webhook");
        assert_eq!(d.headers["warden.partition"], "0");
        assert_eq!(d.key.as_deref(), Some(&b"t-bad"[..]));
        if *reason == "too_large" {
            assert_eq!(d.headers["warden.truncated"], "true");
            assert_eq!(d.headers["warden.original_size"], payload.len().to_string());
            assert_eq!(d.payload, payload[..64 * 1024]);
        } else {
            assert_eq!(&d.payload, payload, "{reason}: bytes unchanged");
        }
    }
    let offsets: Vec<String> = dead.iter().map(|d| d.headers["warden.offset"].clone()).collect();
    assert_eq!(offsets, ["0", "1", "2", "3", "4", "5", "6"]);
    assert_eq!(w.metric("warden_dlq_total{reason=\"invalid_json\"}"), 2.0);
    w.stop();
}

#[test]
fn a_crash_mid_stream_loses_nothing_and_repeats_only_identical_records() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (path, lines) = generated(dir.path(), 200_000);
    let expected = scan(&path);
    let broker = Tansu::start();
    broker.create_warden_topics(3);
    let mut a = start_warden(dir.path(), "a", &broker.bootstrap(), "crash", FAST_CONFIG, &[]);
    a.wait_ready(Duration::from_secs(60));
    load(&Loader::new(&broker.bootstrap()), &lines);
    wait_processed(&a, 50_000.0);
    a.kill9();
    // Same state directory: resumes from its checkpoints.
    let mut b = start_warden(dir.path(), "a", &broker.bootstrap(), "crash", FAST_CONFIG, &[]);
    b.wait_ready(Duration::from_secs(60));
    wait_all_committed(&broker.bootstrap(), "crash", 3, Duration::from_secs(240), &[&b]);
    assert_same_detections(&expected, &outputs(&broker.bootstrap()));
    b.stop();
}

#[test]
fn a_checkpoint_under_another_secret_is_dropped_and_its_state_rebuilt_by_replay() {
    // State keys are digests under WARDEN_HMAC_KEY: after a key change the
    // checkpoints match nothing, so warden drops them and replays the inputs
    // below the committed offsets. Windows that span the restart still fire.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (path, lines) = generated(dir.path(), 60_000);
    let expected = scan(&path);
    let broker = Tansu::start();
    broker.create_warden_topics(3);
    let loader = Loader::new(&broker.bootstrap());
    let half = lines.len() / 2;
    let key = |k: &'static str| [("WARDEN_HMAC_KEY", k)];
    let mut a = start_warden(
        dir.path(),
        "a",
        &broker.bootstrap(),
        "rekey",
        FAST_CONFIG,
        &key("first-secret-5d41402abc4b2a76b9719d9"),
    );
    a.wait_ready(Duration::from_secs(60));
    load(&loader, &lines[..half]);
    wait_all_committed(&broker.bootstrap(), "rekey", 3, Duration::from_secs(180), &[&a]);
    a.stop();
    let mut b = start_warden(
        dir.path(),
        "a",
        &broker.bootstrap(),
        "rekey",
        FAST_CONFIG,
        &key("second-secret-7d793037a0760186574b02"),
    );
    b.wait_ready(Duration::from_secs(60));
    load(&loader, &lines[half..]);
    wait_all_committed(&broker.bootstrap(), "rekey", 3, Duration::from_secs(180), &[&b]);
    let log = b.log_text();
    assert!(log.contains("dropping a checkpoint this deployment cannot use"), "{log}");
    assert!(log.contains("a different WARDEN_HMAC_KEY"), "{log}");
    assert_same_detections(&expected, &outputs(&broker.bootstrap()));
    b.stop();
}

#[test]
fn a_checkpoint_past_a_new_logs_end_is_dropped() {
    // The state directory outlives its cluster (an in-memory broker restarted,
    // topics deleted and created again): its checkpoints point past the end of
    // the new, shorter logs. Restoring them would count the new events on top of
    // the old ones; warden drops them and starts each partition afresh.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (_, lines) = generated(dir.path(), 12_000);
    let first = Tansu::start();
    first.create_warden_topics(3);
    let mut a = start_warden(dir.path(), "a", &first.bootstrap(), "relog", FAST_CONFIG, &[]);
    a.wait_ready(Duration::from_secs(60));
    load(&Loader::new(&first.bootstrap()), &lines);
    wait_all_committed(&first.bootstrap(), "relog", 3, Duration::from_secs(180), &[&a]);
    a.stop();
    drop(first);

    let tail = &lines[..1_500];
    let path = dir.path().join("tail.jsonl");
    std::fs::write(&path, tail.join("\n") + "\n").unwrap();
    let expected = scan(&path);
    let second = Tansu::start();
    second.create_warden_topics(3);
    let mut b = start_warden(dir.path(), "a", &second.bootstrap(), "relog", FAST_CONFIG, &[]);
    b.wait_ready(Duration::from_secs(60));
    load(&Loader::new(&second.bootstrap()), tail);
    wait_all_committed(&second.bootstrap(), "relog", 3, Duration::from_secs(180), &[&b]);
    let log = b.log_text();
    assert!(log.contains("discarding a checkpoint past the end of the partition's log"), "{log}");
    let want = ids(&expected, "warden.decision.v1", "decision_id");
    assert!(!want.is_empty());
    assert_eq!(
        ids(&outputs(&second.bootstrap()), "warden.decision.v1", "decision_id"),
        want,
        "the new log's decisions, as scan's"
    );
    b.stop();
}

#[test]
fn blocks_in_force_keep_their_ids_across_a_restart() {
    // The block registry is rebuilt from the checkpoint's records in force; their
    // ids are content hashes, so the restored entries carry the ids emitted.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(warden_tests::manifest_dir().join("../examples/events.jsonl")).unwrap();
    let lines: Vec<String> = example.lines().map(str::to_string).collect();
    let broker = Tansu::start();
    broker.create_warden_topics(3);
    let records = |w: &Warden| -> Vec<(String, String)> {
        let (code, body) =
            warden_tests::process::http(&w.http, "GET", "/v1/blocks/t-acme/visitor/v-flood", &[]).unwrap();
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["records"].as_array().unwrap().iter().map(|r| (r["rule"].to_string(), r["id"].to_string())).collect()
    };
    let mut a = start_warden(dir.path(), "a", &broker.bootstrap(), "restart", FAST_CONFIG, &[]);
    a.wait_ready(Duration::from_secs(60));
    load(&Loader::new(&broker.bootstrap()), &lines);
    wait_all_committed(&broker.bootstrap(), "restart", 3, Duration::from_secs(60), &[&a]);
    let before = records(&a);
    a.stop();
    let decided = ids(&outputs(&broker.bootstrap()), "warden.decision.v1", "decision_id");
    assert!(!before.is_empty() && before.iter().all(|(_, id)| decided.contains(id.trim_matches('"'))), "{before:?}");
    let mut b = start_warden(dir.path(), "a", &broker.bootstrap(), "restart", FAST_CONFIG, &[]);
    b.wait_ready(Duration::from_secs(60));
    assert_eq!(records(&b), before);
    b.stop();
}

#[test]
fn a_stopped_instance_hands_its_partitions_over_without_missing_a_detection() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (merged, lines) = merged_corpus(dir.path(), 4_000);
    let expected = scan(&merged);
    let broker = Tansu::start();
    broker.create_warden_topics(6);
    // `a` owns every partition first and reads a quarter of the stream, then hands
    // some partitions to `b` mid-stream; later `a` stops and `b` takes them all.
    let mut a = start_warden(dir.path(), "a", &broker.bootstrap(), "rb", FAST_CONFIG, &[]);
    a.wait_ready(Duration::from_secs(60));
    let loader = Loader::new(&broker.bootstrap());
    let (quarter, half) = (lines.len() / 4, lines.len() / 2);
    load(&loader, &lines[..quarter]);
    lag_partitions(&a);
    let mut b = start_warden(dir.path(), "b", &broker.bootstrap(), "rb", FAST_CONFIG, &[]);
    b.wait_ready(Duration::from_secs(60));
    load(&loader, &lines[quarter..half]);
    std::thread::sleep(Duration::from_secs(3));
    // Each instance exports lag only for the partitions it owns now: a series left
    // behind by a partition that moved would keep a lag alert firing.
    let (owned_a, owned_b) = (lag_partitions(&a), lag_partitions(&b));
    assert!(!owned_a.is_empty() && !owned_b.is_empty(), "a: {owned_a:?}, b: {owned_b:?}");
    let both: Vec<&String> = owned_a.intersection(&owned_b).collect();
    assert!(both.is_empty(), "both export lag for {both:?}");
    a.stop();
    load(&loader, &lines[half..]);
    wait_all_committed(&broker.bootstrap(), "rb", 6, Duration::from_secs(180), &[&b]);
    assert_same_detections(&expected, &outputs(&broker.bootstrap()));
    b.stop();
}

/// The partitions an instance exports `warden_consumer_lag` for, once two
/// statistics intervals (5 s each) have passed without a change.
fn lag_partitions(w: &Warden) -> BTreeSet<String> {
    let read = || -> BTreeSet<String> {
        w.metrics()
            .lines()
            .filter(|l| l.starts_with("warden_consumer_lag{"))
            .filter_map(|l| l.split_once('}').map(|(labels, _)| labels.to_string()))
            .collect()
    };
    let mut last = read();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_secs(11) {
        assert!(Instant::now() < deadline, "lag series never settled: {last:?}");
        std::thread::sleep(Duration::from_millis(500));
        let now = read();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    last
}

#[test]
fn a_broker_outage_mid_stream_is_survived() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (merged, lines) = merged_corpus(dir.path(), 4_000);
    let expected = scan(&merged);
    let broker = Tansu::start();
    broker.create_warden_topics(3);
    let mut w = start_warden(dir.path(), "a", &broker.bootstrap(), "outage", FAST_CONFIG, &[]);
    w.wait_ready(Duration::from_secs(60));
    let loader = Loader::new(&broker.bootstrap());
    let half = lines.len() / 2;
    load(&loader, &lines[..half]);
    broker.pause();
    std::thread::sleep(Duration::from_secs(8));
    broker.resume();
    load(&loader, &lines[half..]);
    wait_all_committed(&broker.bootstrap(), "outage", 3, Duration::from_secs(180), &[&w]);
    assert_same_detections(&expected, &outputs(&broker.bootstrap()));
    w.stop();
}

/// The broker goes away mid-stream (every connection closed, new ones refused for
/// 5 s) and comes back with its data: warden reconnects its consumer group,
/// producer and commits, and every detection arrives once the stream is done.
#[test]
fn a_broker_restart_mid_stream_loses_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (merged, lines) = merged_corpus(dir.path(), 4_000);
    let expected = scan(&merged);
    let broker = MockBroker::start_with_warden_topics(3);
    let mut w = start_warden(dir.path(), "a", &broker.bootstrap(), "broker-restart", FAST_CONFIG, &[]);
    w.wait_ready(Duration::from_secs(60));
    let loader = Loader::new(&broker.bootstrap());
    let half = lines.len() / 2;
    load(&loader, &lines[..half]);
    broker.restart(Duration::from_secs(5));
    load(&loader, &lines[half..]);
    wait_all_committed(&broker.bootstrap(), "broker-restart", 3, Duration::from_secs(180), &[&w]);
    assert_same_detections(&expected, &outputs(&broker.bootstrap()));
    assert!(w.is_running(), "warden exited across the broker's restart:\n{}", w.log_text());
    w.stop();
}

#[test]
fn exactly_once_survives_a_restart_without_a_single_duplicate() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (path, lines) = generated(dir.path(), 100_000);
    let expected = scan(&path);
    let broker = Tansu::start();
    broker.create_warden_topics(3);
    let config = FAST_CONFIG.replace("[processing]", "[processing]\nguarantee = \"exactly_once\"");
    let mut a = start_warden(dir.path(), "a", &broker.bootstrap(), "eos", &config, &[]);
    a.wait_ready(Duration::from_secs(60));
    load(&Loader::new(&broker.bootstrap()), &lines);
    wait_processed(&a, 30_000.0);
    // A graceful stop mid-stream: revocation commits the open transactions.
    a.stop();
    let mut b = start_warden(dir.path(), "a", &broker.bootstrap(), "eos", &config, &[]);
    b.wait_ready(Duration::from_secs(60));
    wait_all_committed(&broker.bootstrap(), "eos", 3, Duration::from_secs(240), &[&b]);
    let mut got = Vec::new();
    for (topic, field) in [("warden.decisions", "decision_id"), ("warden.killswitch", "command_id")] {
        let records: Vec<Value> = kafka::read_topic_with(&broker.bootstrap(), topic, Duration::from_secs(2), true)
            .into_iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect();
        let mut seen = BTreeSet::new();
        for r in &records {
            assert!(seen.insert(r[field].as_str().unwrap().to_string()), "{topic}: {} delivered twice", r[field]);
        }
        got.extend(records);
    }
    assert_same_detections(&expected, &got);
    b.stop();
}
