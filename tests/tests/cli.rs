//! The offline commands end to end: `keygen`, `scan` signing kill-switch commands,
//! `verify` accepting them, refusing tampered ones, and treating empty input as
//! nothing to refuse; config errors that name the field.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use warden_tests::{json_lines, manifest_dir, run_warden};

fn example() -> String {
    manifest_dir().join("../examples/events.jsonl").to_string_lossy().into_owned()
}

fn write_lines(path: &Path, records: &[Value]) {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn verify_accepts_signed_commands_refuses_tampered_ones_and_passes_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.key");
    let out = run_warden(&["keygen", "--out", key.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seed = std::fs::read_to_string(&key).unwrap().trim().to_string();
    let public = dir.path().join("signing.key.pub");
    let public = public.to_str().unwrap();

    let scanned = run_warden(&["scan", &example()], &[("WARDEN_SIGNING_KEY", &seed)]);
    assert!(scanned.status.success(), "{}", String::from_utf8_lossy(&scanned.stderr));
    let commands: Vec<Value> =
        json_lines(&scanned.stdout).into_iter().filter(|r| r["schema"] == "warden.killswitch.v1").collect();
    assert!(!commands.is_empty(), "the example yields kill-switch commands");
    let signed = dir.path().join("commands.jsonl");
    write_lines(&signed, &commands);
    let out = run_warden(&["verify", "--public-key", public, signed.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // The whole scan output: decisions, alerts and dead letters beside the
    // commands are skipped, not failed; a line that is no record still fails.
    let whole = dir.path().join("scan.jsonl");
    std::fs::write(&whole, &scanned.stdout).unwrap();
    let out = run_warden(&["verify", "--public-key", public, whole.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let others = json_lines(&scanned.stdout).len() - commands.len();
    let summary = format!("{} valid, 0 failed, {others} other records skipped", commands.len());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&summary), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&whole, [&scanned.stdout[..], b"{\"schema\":\"something.else\"}\n"].concat()).unwrap();
    let out = run_warden(&["verify", "--public-key", public, whole.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));

    let mut tampered = commands.clone();
    tampered[0]["target"]["id"] = Value::from("someone-else");
    let bad = dir.path().join("tampered.jsonl");
    write_lines(&bad, &tampered);
    let out = run_warden(&["verify", "--public-key", public, bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));

    // An empty capture (`warden tail --idle-ms` when nothing was commanded).
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = run_warden(&["verify", "--public-key", public, empty.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 valid, 0 failed, 0 other records skipped"));
}

#[test]
fn a_config_type_error_names_the_field_but_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, "[rules.visitor_rate]\nlimit = \"Sup3rS3cretPw\"\n").unwrap();
    let out = run_warden(&["rules", "--config", config.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 2") && stderr.contains("rules.visitor_rate.limit: invalid type"), "{stderr}");
    assert!(!stderr.contains("Sup3rS3cretPw"), "{stderr}");
}

#[test]
fn run_refuses_a_file_to_load_that_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let mut child = std::process::Command::new(warden_tests::warden_bin())
        .args(["run", "--http", "127.0.0.1:0", "--state"])
        .arg(dir.path().join("state"))
        .arg("--load")
        .arg(&missing)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = status.unwrap_or_else(|| panic!("warden kept running without its --load file: {stderr}"));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing.jsonl") && stderr.contains("No such file"), "{stderr}");
}
