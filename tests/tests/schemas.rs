//! Every record warden emits over the scenario corpus validates against its JSON
//! Schema, and every scenario event against the event schema.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use jsonschema::{Resource, Validator};
use warden_tests::{generate_scenarios, json_lines, read_json_lines, run_warden};

fn schema_dir() -> std::path::PathBuf {
    warden_tests::manifest_dir().join("../schemas/json")
}

fn load(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(schema_dir().join(name)).expect("schema file");
    serde_json::from_str(&text).expect("schema is JSON")
}

fn validator(name: &str) -> Validator {
    let common = load("common.v1.json");
    jsonschema::options()
        .with_resource(
            "https://warden.dev/schemas/common.v1.json",
            Resource::from_contents(common).expect("common schema is a resource"),
        )
        .build(&load(name))
        .unwrap_or_else(|e| panic!("{name} does not compile: {e}"))
}

fn check(v: &Validator, value: &serde_json::Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} fails its schema: {errors:?}\n{value}");
}

#[test]
fn scenario_events_and_emitted_records_match_their_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate_scenarios(dir.path(), 2_000);
    let event = validator("warden.event.v1.json");
    let by_schema = [
        ("warden.decision.v1", validator("warden.decision.v1.json")),
        ("warden.killswitch.v1", validator("warden.killswitch.v1.json")),
        ("warden.alert.v1", validator("warden.alert.v1.json")),
        ("warden.dlq.v1", validator("warden.dlq.v1.json")),
    ];
    let mut seen = std::collections::BTreeMap::new();
    for file in &files {
        for ev in read_json_lines(file) {
            check(&event, &ev, "scenario event");
        }
        // A signing key, so signed commands are what gets validated.
        let out = run_warden(
            &["scan", file.to_str().unwrap()],
            &[("WARDEN_SIGNING_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="), ("WARDEN_HMAC_KEY", "test-key")],
        );
        assert!(out.status.success(), "scan failed: {}", String::from_utf8_lossy(&out.stderr));
        for record in json_lines(&out.stdout) {
            let schema = record["schema"].as_str().expect("schema field").to_string();
            let (_, v) = by_schema.iter().find(|(s, _)| *s == schema).expect("known schema");
            check(v, &record, &schema);
            *seen.entry(schema).or_insert(0) += 1;
        }
    }
    for schema in ["warden.decision.v1", "warden.killswitch.v1", "warden.alert.v1"] {
        assert!(seen.get(schema).copied().unwrap_or(0) > 0, "no {schema} record was emitted: {seen:?}");
    }
}

#[test]
fn dead_letters_match_their_schema_and_schemas_reject_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.jsonl");
    std::fs::write(&input, "{\"type\":\"log\"}\nnot json\n[1]\n").unwrap();
    let out = run_warden(&["scan", input.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let dlq = validator("warden.dlq.v1.json");
    let records = json_lines(&out.stdout);
    assert_eq!(records.len(), 3);
    for r in &records {
        check(&dlq, r, "dead letter");
    }
    // The schemas are not vacuous: a decision without an id, or with a bad one, fails.
    let decision = validator("warden.decision.v1.json");
    assert!(!decision.is_valid(&serde_json::json!({"schema": "warden.decision.v1"})));
    assert!(!dlq.is_valid(
        &serde_json::json!({"schema": "warden.dlq.v1", "reason": "bored", "file": "-", "line": 1, "size": 1})
    ));
}

/// The schemas hold what design §4 says of each record beyond its fields' types:
/// a shadow flag names the action it would have taken, an alert opens with count
/// 1, and a kill-switch command has a TTL and an Ed25519 signature.
#[test]
fn schemas_hold_the_records_rules_not_only_their_types() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate_scenarios(dir.path(), 0);
    let config = dir.path().join("shadow.toml");
    std::fs::write(&config, "[rules.visitor_rate]\nmode = \"shadow\"\n").unwrap();
    let mut args = vec!["scan", "--config", config.to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = run_warden(&args, &[("WARDEN_SIGNING_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")]);
    assert!(out.status.success(), "scan failed: {}", String::from_utf8_lossy(&out.stderr));
    let records = json_lines(&out.stdout);
    let first = |pred: &dyn Fn(&serde_json::Value) -> bool, what: &str| {
        records.iter().find(|r| pred(r)).unwrap_or_else(|| panic!("no {what} emitted")).clone()
    };
    let (decision, alert, command) = (
        validator("warden.decision.v1.json"),
        validator("warden.alert.v1.json"),
        validator("warden.killswitch.v1.json"),
    );

    let shadow = first(&|r| r["mode"] == "shadow", "shadow decision");
    check(&decision, &shadow, "shadow decision");
    let mut bad = shadow.clone();
    bad["evidence"].as_object_mut().unwrap().remove("would");
    assert!(!decision.is_valid(&bad), "a shadow flag without `would` passed");

    let open = first(&|r| r["status"] == "open", "open alert");
    check(&alert, &open, "open alert");
    let mut bad = open.clone();
    bad["count"] = 7.into();
    assert!(!alert.is_valid(&bad), "an open alert with count 7 passed");

    let signed = first(&|r| r["schema"] == "warden.killswitch.v1", "kill-switch command");
    check(&command, &signed, "kill-switch command");
    for (field, value) in [("ttl_ms", serde_json::json!(0)), ("signature", serde_json::json!("!!not base64!!"))] {
        let mut bad = signed.clone();
        bad[field] = value;
        assert!(!command.is_valid(&bad), "a command with {field} = {} passed", bad[field]);
    }
}
