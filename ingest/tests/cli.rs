//! The CLI's offline commands, run as a user runs them. Having an integration test
//! here also makes `cargo test --workspace` build the `warden` binary itself, which
//! the end-to-end tests in `tests/` drive.

use std::process::Command;

fn warden(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_warden")).args(args).output().expect("warden runs")
}

#[test]
fn rules_prints_every_built_in_rule() {
    let out = warden(&["rules"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for rule in
        ["visitor_rate", "dup_flood", "replay", "injection_phrase", "pii_leak", "internal_target", "workflow_runs"]
    {
        assert!(text.contains(&format!("[rules.{rule}]")), "{rule} missing from:\n{text}");
    }
}

#[test]
fn a_bad_config_names_the_field_and_exits_2() {
    let dir = std::env::temp_dir().join(format!("warden-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[rules.visitor_rate]\nwindow_secs = 0\n").expect("write config");
    let out = warden(&["check-config", "--config", cfg.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rules.visitor_rate.window_secs"));
}

#[test]
fn keygen_never_replaces_an_existing_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("signing.key");
    let key_arg = key.to_str().expect("utf-8 path");
    let first = warden(&["keygen", "--out", key_arg]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let seed = std::fs::read_to_string(&key).expect("seed written");
    let public = std::fs::read_to_string(dir.path().join("signing.key.pub")).expect("public key written");
    let again = warden(&["keygen", "--out", key_arg]);
    assert_eq!(again.status.code(), Some(2), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not replaced"));
    assert_eq!(std::fs::read_to_string(&key).expect("seed kept"), seed);
    assert_eq!(std::fs::read_to_string(dir.path().join("signing.key.pub")).expect("public kept"), public);
}

#[test]
fn an_error_names_its_cause_once() {
    let out = warden(&["check-config", "--config", "/nonexistent/warden.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/warden.toml"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn a_resumed_scan_continues_an_appended_file_and_refuses_a_rewritten_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/events.jsonl"))
        .expect("example events");
    let lines: Vec<&str> = example.lines().collect();
    let file = dir.path().join("events.jsonl");
    let state = dir.path().join("state");
    let scan = || warden(&["scan", "--state", state.to_str().expect("utf-8"), file.to_str().expect("utf-8")]);
    let events = |out: &std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        err.split("warden scan: ").nth(1).and_then(|s| s.split(' ').next()?.parse::<u64>().ok()).unwrap_or(u64::MAX)
    };
    std::fs::write(&file, lines[..5].join("\n") + "\n").expect("write");
    assert_eq!(events(&scan()), 5);
    // Appended: only the new lines are read.
    std::fs::write(&file, lines[..12].join("\n") + "\n").expect("write");
    let appended = scan();
    assert!(appended.status.success(), "{}", String::from_utf8_lossy(&appended.stderr));
    assert_eq!(events(&appended), 7);
    // Rewritten with other events: resuming at the old offset would start mid-line.
    std::fs::write(&file, lines[12..30].join("\n") + "\n").expect("write");
    let rewritten = scan();
    assert_eq!(rewritten.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&rewritten.stderr).contains("changed since"));
    assert!(rewritten.stdout.is_empty(), "nothing scanned");
    // A scan of another file checkpoints too, but keeps the rewritten file's old
    // fingerprint: it must not bless the rewrite.
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, lines[30..33].join("\n") + "\n").expect("write");
    let out = warden(&["scan", "--state", state.to_str().expect("utf-8"), other.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(scan().status.code(), Some(1), "still refused after another file's checkpoint");
}

/// The bug a review found: the end of a scan closed its open alert buckets in
/// the saved state, so a resumed scan emitted an `update` for every trigger
/// after that. Through the real RocksDB state: the appended file's scan emits
/// one `update` when the watermark closes the bucket, with the first scan's id.
#[test]
fn a_resumed_scan_counts_on_in_an_alert_bucket_the_first_scan_left_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let t0 = 1_767_225_600_000_i64; // a 5-minute bucket's start
    let mut lines: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"type":"log","ts":{},"tenant":"t","service":"api","level":"error","message":"key AKIAQ3EGRT5YUB7XK2MZ"}}"#,
                t0 + i * 1_000
            )
        })
        .collect();
    // Past the bucket's end and the allowed lateness: the watermark closes it.
    lines.push(format!(
        r#"{{"type":"log","ts":{},"tenant":"t","service":"api","level":"info","message":"ok"}}"#,
        t0 + 420_000
    ));
    let file = dir.path().join("logs.jsonl");
    let state = dir.path().join("state");
    let scan = || {
        let out = warden(&["scan", "--state", state.to_str().expect("utf-8"), file.to_str().expect("utf-8")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["signal"] == "secret_in_logs")
            .map(|r| (r["alert_id"].to_string(), r["status"].to_string(), r["count"].as_u64().unwrap_or(0)))
            .collect::<Vec<_>>()
    };
    std::fs::write(&file, lines[..10].join("\n") + "\n").expect("write");
    let first = scan();
    std::fs::write(&file, lines.join("\n") + "\n").expect("append");
    let second = scan();
    let statuses = |v: &[(String, String, u64)]| v.iter().map(|(_, s, c)| (s.clone(), *c)).collect::<Vec<_>>();
    let (open, update) = ("\"open\"".to_string(), "\"update\"".to_string());
    assert_eq!(statuses(&first), [(open, 1), (update.clone(), 10)], "the end of input flushes the count so far");
    assert_eq!(statuses(&second), [(update, 40)], "one update when the watermark closes the bucket");
    assert_eq!(first[0].0, second[0].0, "the same alert id");
}

/// An event exactly at `max_event_bytes` is accepted however its line is
/// framed: a CRLF line end and a byte order mark are not part of its size.
#[test]
fn an_event_at_the_size_limit_is_accepted_after_a_bom_and_before_a_crlf() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, "[engine]\nmax_event_bytes = 1024\n").expect("write config");
    let event = |pad: usize| {
        let head = r#"{"type":"log","ts":1767225600000,"tenant":"t","service":"s","level":"info","message":""#;
        format!("{head}{}\"}}", "x".repeat(pad - head.len() - 2))
    };
    let at_limit = event(1024);
    assert_eq!(at_limit.len(), 1024);
    let file = dir.path().join("events.jsonl");
    // Blank lines (whitespace, a CR) are skipped, not dead-lettered.
    let input = format!("\u{FEFF}{at_limit}\r\n{at_limit}\r\n \t\r\n{}\r\n", event(1025));
    std::fs::write(&file, input).expect("write events");
    let out = warden(&["scan", "--config", config.to_str().expect("utf-8"), file.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dead: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["schema"] == "warden.dlq.v1")
        .collect();
    assert_eq!(dead.len(), 1, "only the 1,025-byte event: {dead:?}");
    assert_eq!((dead[0]["reason"].as_str(), dead[0]["line"].as_u64()), (Some("too_large"), Some(4)));
}
