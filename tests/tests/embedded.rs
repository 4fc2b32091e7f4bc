//! `warden run` on its embedded cluster, as the README's quick start runs it: the
//! HTTP endpoints, every metric of design §9, lifting a block by hand, the exit
//! codes, and that no configured or detected secret is ever echoed.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use warden_tests::kafka;
use warden_tests::process::{http, start_warden_with, Warden};
use warden_tests::run_warden;

const HMAC: &str = "hmac-secret-3f9a1c77";
const ADMIN: &str = "admin-token-8c2e5b19";
const SASL: &str = "sasl-password-71d0aa42";
const SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// A secret planted in the example events (a log line leaks it).
const PLANTED: &str = "sk_live_51HqLyjWDarjtT1zdp7dcXyZ0123456789";

fn example() -> String {
    warden_tests::manifest_dir().join("../examples/events.jsonl").to_string_lossy().into_owned()
}

fn processed(w: &Warden) -> f64 {
    ["webhook", "tool_call", "log"]
        .iter()
        .map(|t| w.metric(&format!("warden_events_total{{type=\"{t}\"}}")))
        .sum::<f64>()
        + w.metric("warden_dlq_total{reason=\"mistyped_field\"}")
}

fn wait_processed(w: &Warden, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while processed(w) < n {
        assert!(Instant::now() < deadline, "only {} of {n} inputs processed:\n{}", processed(w), w.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_quick_start_serves_blocks_lifts_metrics_and_never_echoes_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("WARDEN_HMAC_KEY", HMAC),
        ("WARDEN_ADMIN_TOKEN", ADMIN),
        ("WARDEN_KAFKA_SASL_PASSWORD", SASL),
        ("WARDEN_SIGNING_KEY", SEED),
    ];
    let args = vec!["--load".to_string(), example()];
    let mut w = start_warden_with(dir.path(), "e", &args, "", &envs);
    w.wait_ready(Duration::from_secs(60));
    let bootstrap = w.embedded_bootstrap().expect("warden run prints the embedded cluster's address");
    wait_processed(&w, 42.0);

    assert_eq!(http(&w.http, "GET", "/health", &[]).unwrap().0, 200);
    assert_eq!(http(&w.http, "GET", "/ready", &[]).unwrap().0, 200);

    // Records in force, then lifted by an operator.
    let path = "/v1/blocks/t-acme/visitor/v-flood";
    let (code, body) = http(&w.http, "GET", path, &[]).unwrap();
    assert_eq!(code, 200, "{body}");
    let active: Value = serde_json::from_str(&body).unwrap();
    let rules: Vec<&str> = active["records"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["chat_visitor", "visitor_rate"]);
    assert_eq!(http(&w.http, "GET", "/v1/blocks/t-acme/visitor/nobody", &[]).unwrap().0, 404);
    assert_eq!(http(&w.http, "GET", "/v1/blocks/service/nobody", &[]).unwrap().0, 404, "no tenant");
    assert_eq!(http(&w.http, "DELETE", path, &[]).unwrap().0, 401, "no token");
    assert_eq!(http(&w.http, "DELETE", path, &[("Authorization", "Bearer wrong")]).unwrap().0, 401);
    // Methods a route does not take, and paths no route matches: answered and counted.
    assert_eq!(http(&w.http, "POST", "/health", &[]).unwrap().0, 405);
    assert_eq!(http(&w.http, "PUT", path, &[]).unwrap().0, 405);
    assert_eq!(http(&w.http, "GET", "/no/such/endpoint", &[]).unwrap().0, 404);
    // The scheme of the token is case-insensitive (RFC 9110 §11.1).
    let bearer = format!("bearer {ADMIN}");
    let (code, body) = http(&w.http, "DELETE", path, &[("Authorization", &bearer)]).unwrap();
    assert_eq!(code, 200, "{body}");
    let lifted: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(lifted["lifted"].as_array().unwrap().len(), 2);
    assert!(lifted["lifted"].as_array().unwrap().iter().all(|d| d["action"] == "lift"));
    assert_eq!(http(&w.http, "GET", path, &[]).unwrap().0, 404, "lifted");

    // The lift decisions reach the topic with the lifted records' event time.
    let decisions = kafka::read_records(&bootstrap, "warden.decisions", Duration::from_secs(2));
    let blocks: Vec<&Value> =
        decisions.iter().filter(|d| d["subject"]["id"] == "v-flood" && d["action"] == "block").collect();
    let lifts: Vec<&Value> = decisions.iter().filter(|d| d["action"] == "lift").collect();
    assert_eq!(lifts.len(), 2);
    for l in &lifts {
        let block = blocks.iter().find(|b| b["rule"] == l["rule"]).unwrap();
        assert_eq!(l["event_ts"], block["event_ts"]);
        assert_ne!(l["decision_id"], block["decision_id"]);
    }
    // Counted like every decision emitted (metrics are added every 0.1 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.metric("warden_decisions_total{action=\"lift\"}") < 2.0 {
        assert!(Instant::now() < deadline, "lifts not counted:\n{}", w.metrics());
        std::thread::sleep(Duration::from_millis(100));
    }
    let commands = kafka::read_records(&bootstrap, "warden.killswitch", Duration::from_secs(1));
    assert!(commands.iter().all(|c| c["signature"].is_string() && c["key_id"].is_string()), "signed");

    // Every metric of design §9.
    let metrics = w.metrics();
    for name in [
        "events_total",
        "verdicts_total",
        "decisions_total",
        "killswitch_total",
        "alerts_total",
        "dlq_total",
        "suppressed_total",
        "field_errors",
        "late_events_total",
        "future_events_total",
        "consumer_lag",
        "process_latency_seconds_bucket",
        "input_delay_seconds_bucket",
        "state_keys",
        "state_bytes",
        "quota_exceeded_total",
        "checkpoint_seconds",
        "checkpoint_failures_total",
        "ready",
        "distinct_visitors",
        "reloads_total",
        "log_suppressed_total",
        "http_requests_total",
    ] {
        assert!(metrics.contains(&format!("warden_{name}")), "warden_{name} missing from /metrics");
    }
    assert!(metrics
        .contains("warden_verdicts_total{detector=\"rate\",rule=\"visitor_rate\",action=\"block\",mode=\"enforce\"}"));
    // Requests by method and route template: a lookup and a lift are told apart.
    for sample in [
        r#"warden_http_requests_total{method="DELETE",route="/v1/blocks/{tenant}/{kind}/{id}",code="200"} 1"#,
        r#"warden_http_requests_total{method="DELETE",route="/v1/blocks/{tenant}/{kind}/{id}",code="401"} 2"#,
        r#"warden_http_requests_total{method="GET",route="/v1/blocks/{kind}/{id}",code="404"} 1"#,
        r#"warden_http_requests_total{method="POST",route="/health",code="405"} 1"#,
        r#"warden_http_requests_total{method="PUT",route="/v1/blocks/{tenant}/{kind}/{id}",code="405"} 1"#,
        r#"warden_http_requests_total{method="GET",route="unmatched",code="404"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == sample), "{sample} missing:\n{metrics}");
    }
    // Without `metrics.tenant_labels` the estimate carries no label at all.
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("warden_distinct_visitors{} ") || l.starts_with("warden_distinct_visitors "))
            && !metrics.contains("warden_distinct_visitors{tenant"),
        "warden_distinct_visitors should be unlabelled: {}",
        metrics.lines().filter(|l| l.contains("distinct_visitors")).collect::<Vec<_>>().join(" | ")
    );
    // Every consumed message carries its producer's timestamp, so each one is timed.
    assert!(w.metric("warden_input_delay_seconds_count") > 0.0, "no input delay observed");
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains("v-flood") && !line.contains("203.0.113.7"), "unbounded label: {line}");
    }

    // Nothing secret in any output topic (read while the embedded broker lives),
    // stdout, logs or metrics.
    let mut everything = String::new();
    for topic in ["warden.decisions", "warden.killswitch", "warden.alerts"] {
        for r in kafka::read_topic(&bootstrap, topic, Duration::from_millis(500)) {
            everything.push_str(&String::from_utf8_lossy(&r.payload));
        }
    }
    w.stop();
    everything.push_str(&format!("{}\n{}\n{}", w.stdout_text(), w.log_text(), metrics));
    for secret in [HMAC, ADMIN, SASL, SEED, PLANTED] {
        assert!(!everything.contains(secret), "{}… leaked", &secret[..6]);
    }
}

#[test]
fn the_quick_start_run_again_on_its_state_directory_processes_its_events_again() {
    // The embedded cluster is new each run; the state directory is not. Its old
    // checkpoints would resume at offsets the new log reaches only with the same
    // events loaded again, so the second run would process nothing.
    let dir = tempfile::tempdir().unwrap();
    let args = vec!["--load".to_string(), example()];
    for run in 1..=2 {
        let mut w = start_warden_with(dir.path(), "e", &args, "", &[]);
        w.wait_ready(Duration::from_secs(60));
        wait_processed(&w, 42.0);
        assert!(w.metric("warden_decisions_total{action=\"block\"}") > 0.0, "run {run} decided:\n{}", w.metrics());
        w.stop();
        // A clean stop is quiet: no client outlives the embedded broker it talks to.
        let log = w.log_text();
        let after = log.split_once("stopping:").map(|(_, rest)| rest).expect("the stop is logged");
        assert!(after.contains("INFO stopped"), "run {run} did not stop cleanly:\n{after}");
        assert!(!after.contains(" WARN ") && !after.contains(" ERROR "), "run {run} stopped noisily:\n{after}");
        if run == 2 {
            assert!(w.log_text().contains("dropping the checkpoints of an earlier run"), "{}", w.log_text());
        }
    }
}

#[test]
fn produce_sends_every_line_it_can_and_fails_naming_the_ones_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = start_warden_with(dir.path(), "p", &[], "", &[]);
    w.wait_ready(Duration::from_secs(60));
    let bootstrap = w.embedded_bootstrap().unwrap();
    let event = |v: &str| {
        format!(r#"{{"type":"webhook","ts":1767225600000,"tenant":"t","source":"s","visitor":"{v}","text":"hi"}}"#)
    };
    // Over the client's message.max.bytes (1,000,000): refused before it is sent.
    let huge = event(&"x".repeat(1_100_000));
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, format!("{}\n{huge}\n{}\n", event("v-1"), event("v-2"))).unwrap();
    let out = run_warden(&["produce", "--brokers", &bootstrap, file.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("1 lines were too large to send") && err.contains("2 were sent"), "{err}");
    assert!(err.contains("line=2"), "the warning names the line: {err}");
    wait_processed(&w, 2.0);
    w.stop();
}

#[test]
fn tail_prints_the_records_and_a_summary_of_each_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = start_warden_with(dir.path(), "t", &["--load".to_string(), example()], "", &[]);
    w.wait_ready(Duration::from_secs(60));
    wait_processed(&w, 42.0);
    let bootstrap = w.embedded_bootstrap().unwrap();
    let out = run_warden(&["tail", "--brokers", &bootstrap, "--idle-ms", "1500"], &[]);
    w.stop();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = warden_tests::json_lines(&out.stdout);
    assert!(lines.iter().any(|l| l["schema"] == "warden.decision.v1" && l["action"] == "block"));
    let dead: Vec<&Value> = lines.iter().filter(|l| l["schema"] == "warden.dlq").collect();
    assert_eq!(dead.len(), 1, "{lines:?}");
    assert_eq!(dead[0]["reason"], "mistyped_field");
    assert_eq!(dead[0]["topic"], "events.webhook");
    assert!(dead[0]["partition"].is_i64() && dead[0]["offset"].is_i64(), "{}", dead[0]);
}

/// A subject with no tenant (a log's service) is looked up and lifted at
/// `/v1/blocks/{kind}/{id}`, or with the tenant segment empty, as its Kafka key
/// reads (`/service/api`).
#[test]
fn a_subject_without_a_tenant_is_served_with_or_without_the_empty_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[rules.log_flood]\ntype = \"rate\"\nevents = \"log\"\nkey = \"service\"\nlimit = 2\nwindow_secs = 60\naction = \"block\"\nttl_secs = 3600\n";
    let events = dir.path().join("logs.jsonl");
    let line = |i: i64| {
        format!(
            r#"{{"type":"log","ts":{},"service":"api","level":"error","message":"retry {i}"}}"#,
            1_767_225_600_000 + i
        )
    };
    std::fs::write(&events, (0..3).map(line).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let args = vec!["--load".to_string(), events.to_string_lossy().into_owned()];
    let mut w = start_warden_with(dir.path(), "t", &args, config, &[("WARDEN_ADMIN_TOKEN", ADMIN)]);
    w.wait_ready(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(&w.http, "GET", "/v1/blocks/service/api", &[]).unwrap().0 != 200 {
        assert!(Instant::now() < deadline, "no block in force:\n{}", w.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, body) = http(&w.http, "GET", "/v1/blocks//service/api", &[]).unwrap();
    assert_eq!(code, 200, "the empty tenant segment: {body}");
    assert!(body.contains("log_flood"), "{body}");
    let bearer = format!("Bearer {ADMIN}");
    assert_eq!(http(&w.http, "DELETE", "/v1/blocks//service/api", &[("Authorization", &bearer)]).unwrap().0, 200);
    assert_eq!(http(&w.http, "GET", "/v1/blocks/service/api", &[]).unwrap().0, 404, "lifted");
    w.stop();
}

#[test]
fn lifting_is_refused_without_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = start_warden_with(dir.path(), "e", &[], "", &[]);
    w.wait_ready(Duration::from_secs(60));
    assert_eq!(http(&w.http, "DELETE", "/v1/blocks/t/visitor/v", &[("Authorization", "Bearer x")]).unwrap().0, 405);
    w.stop();
}

#[test]
fn exit_codes_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("eo.toml");
    std::fs::write(&cfg, "[processing]\nguarantee = \"at_most_once\"\n").unwrap();
    let out = run_warden(&["run", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "an unknown guarantee is a config error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("guarantee"), "the message names the field");
    std::fs::write(&cfg, "[rules.visitor_rate]\nlimt = 3\n").unwrap();
    let out = run_warden(&["scan", "--config", cfg.to_str().unwrap(), "-"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limt"), "the message names the field");
    let state = dir.path().join("s");
    let out = run_warden(&["run", "--state", state.to_str().unwrap(), "--http", "127.0.0.1:9464x"], &[]);
    assert_eq!(out.status.code(), Some(2), "a bad --http is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--http"), "the message names the flag");
    let out = run_warden(
        &["run", "--brokers", "127.0.0.1:1", "--state", state.to_str().unwrap(), "--http", "127.0.0.1:0"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "no broker answering within 30 s");
}

#[test]
fn rules_reload_on_sighup_and_http_and_a_bad_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = start_warden_with(dir.path(), "r", &[], "", &[("WARDEN_ADMIN_TOKEN", ADMIN)]);
    w.wait_ready(Duration::from_secs(60));
    let config = dir.path().join("r.toml");
    let bearer = format!("Bearer {ADMIN}");
    let reload = |headers: &[(&str, &str)]| http(&w.http, "POST", "/v1/admin/reload", headers).unwrap();
    assert_eq!(reload(&[]).0, 401, "no token");

    // A bad config is refused, naming the field; the running rules stay.
    std::fs::write(&config, "[rules.visitor_rate]\nlimit = 0\n").unwrap();
    let (code, body) = reload(&[("Authorization", &bearer)]);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("rules.visitor_rate.limit"), "the error names the field: {body}");

    // A good one through HTTP; then SIGHUP; and the file's change is seen on its own.
    std::fs::write(&config, "[rules.visitor_rate]\nmode = \"shadow\"\n").unwrap();
    let (code, body) = reload(&[("Authorization", &bearer)]);
    assert_eq!(code, 200, "{body}");
    let ok = |w: &Warden| w.metric("warden_reloads_total{result=\"ok\"}");
    let wait_ok_above = |w: &Warden, n: f64, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while ok(w) <= n {
            assert!(Instant::now() < deadline, "{what} did not reload:\n{}", w.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::thread::sleep(Duration::from_secs(3));
    let before = ok(&w);
    w.hangup();
    wait_ok_above(&w, before, "SIGHUP");
    let before = ok(&w);
    std::fs::write(&config, "# edited\n[rules.visitor_rate]\nmode = \"shadow\"\n").unwrap();
    wait_ok_above(&w, before, "a changed file");
    assert!(w.metric("warden_reloads_total{result=\"error\"}") >= 1.0);

    // The reloaded rule runs: visitor_rate is now in shadow, counted as a would-be block.
    let bootstrap = w.embedded_bootstrap().unwrap();
    let out = run_warden(&["produce", "--brokers", &bootstrap, &example()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_processed(&w, 42.0);
    let shadow = "warden_verdicts_total{detector=\"rate\",rule=\"visitor_rate\",action=\"block\",mode=\"shadow\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.metric(shadow) < 1.0 {
        assert!(Instant::now() < deadline, "no shadow verdict:\n{}", w.metrics());
        std::thread::sleep(Duration::from_millis(200));
    }
    let decisions = kafka::read_records(&bootstrap, "warden.decisions", Duration::from_secs(2));
    let shadowed: Vec<&Value> = decisions.iter().filter(|d| d["rule"] == "visitor_rate").collect();
    assert!(!shadowed.is_empty());
    assert!(shadowed.iter().all(|d| d["action"] == "flag" && d["evidence"]["would"] == "block"), "{shadowed:?}");
    w.stop();
}
