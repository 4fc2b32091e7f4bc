//! `warden apply-killswitch` end to end, against real services: `warden run` on a tansu
//! broker turns the public scenarios `runaway_workflow` and `tool_loop` into signed
//! kill-switch commands, and the applier applies them to a real PostgreSQL server.
//!
//! Assertions are database and broker facts: rows, their counts, committed offsets.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_tests::broker::{signal, Tansu};
use warden_tests::kafka::{self, Loader};
use warden_tests::postgres::{Postgres, PASSWORD};
use warden_tests::process::{start_warden, FAST_CONFIG};
use warden_tests::{generate_scenarios, read_json_lines, run_warden, warden_bin};

const TOPIC: &str = "warden.killswitch";

/// One test at a time: each runs a broker, PostgreSQL and warden processes, which
/// together saturate this 2-core machine; in parallel their deadlines would measure
/// the scheduler.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running `warden apply-killswitch`; killed on drop.
struct Applier {
    child: Option<Child>,
    log: PathBuf,
}

impl Applier {
    /// Starts the applier with the key check `verify` (`--public-key FILE` or
    /// `--accept-unsigned`).
    fn start(dir: &Path, group: &str, brokers: &str, pg: &Postgres, verify: &[&str]) -> Applier {
        let config = dir.join("applier.toml");
        std::fs::write(&config, FAST_CONFIG).unwrap();
        let log = dir.join(format!("applier-{group}.log"));
        let child = Command::new(warden_bin())
            .arg("apply-killswitch")
            .arg("--config")
            .arg(&config)
            .args(["--brokers", brokers, "--postgres", &pg.url(), "--group", group])
            .args(verify)
            // Short enough for a test: escalate 1 s after a halt, sweep 3 times a second.
            .args(["--grace-ms", "1000", "--sweep-ms", "300"])
            .env("WARDEN_LOG", "info")
            .env_remove("WARDEN_POSTGRES_URL")
            .stdout(std::fs::File::create(dir.join(format!("applier-{group}.out"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("warden apply-killswitch starts");
        Applier { child: Some(child), log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for the exit status.
    fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the applier did not stop within 30 s of SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `done` until it holds; panics with `explain()` after `within`.
fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool, explain: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}\n{}", explain());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `group` has committed the kill-switch topic up to its end.
fn wait_committed(bootstrap: &str, group: &str, applier: &Applier) {
    let end = kafka::ends_by_reading(bootstrap, TOPIC).get(&0).copied().unwrap_or(0);
    wait_for(
        &format!("group {group} commits {TOPIC} up to {end}"),
        Duration::from_secs(90),
        || kafka::committed(bootstrap, group, TOPIC, 1).get(&0) == Some(&end),
        || applier.log_text(),
    );
}

/// Every row of the applier's tables, as text: equal snapshots, unchanged database.
fn snapshot(db: &mut postgres::Client) -> Vec<String> {
    ["workflows", "processed_commands", "halted_sessions", "rejected_commands", "reverts", "killswitch_history"]
        .iter()
        .map(|t| {
            let sql = format!("SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') FROM {t} r");
            format!("{t}:\n{}", db.query_one(&sql, &[]).unwrap().get::<_, String>(0))
        })
        .collect()
}

fn count(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// The one expected kill-switch subject of a scenario, from its `.expect.json`.
fn expected_subject(corpus: &Path, scenario: &str) -> String {
    let text = std::fs::read_to_string(corpus.join(format!("{scenario}.expect.json"))).unwrap();
    let expect: Value = serde_json::from_str(&text).unwrap();
    let e = &expect["expect"][0];
    assert_eq!(e["record"], "killswitch", "{scenario}: {e}");
    e["subject"].as_str().unwrap().to_string()
}

/// One test at a time (each runs PostgreSQL, a broker and wardens), a temporary
/// directory, PostgreSQL, and a broker with warden's topics.
fn services() -> (MutexGuard<'static, ()>, tempfile::TempDir, Postgres, Tansu) {
    let serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    let broker = Tansu::start();
    broker.create_warden_topics(1);
    (serial, dir, pg, broker)
}

#[test]
fn commands_apply_once_forgeries_are_refused_and_reverts_undo() {
    let (_serial, dir, pg, broker) = services();
    let bootstrap = broker.bootstrap();

    // The scenarios, and what they must stop.
    let corpus = dir.path().join("corpus");
    generate_scenarios(&corpus, 0);
    let workflow = expected_subject(&corpus, "runaway_workflow");
    let session = expected_subject(&corpus, "tool_loop");
    let events: Vec<Value> = ["runaway_workflow", "tool_loop"]
        .iter()
        .flat_map(|s| read_json_lines(&corpus.join(format!("{s}.jsonl"))))
        .collect();
    let wf_tenant = events.iter().find(|e| e["workflow"] == workflow.as_str()).unwrap()["tenant"].clone();
    let wf_tenant = wf_tenant.as_str().unwrap().to_string();

    // The engine's own workflows table exists first: the migration keeps it (and its
    // extra column) and adds `disabled_by`.
    let mut db = pg.client();
    db.batch_execute(
        "CREATE TABLE workflows (tenant_id text NOT NULL, id text NOT NULL, name text,
                                 is_enabled boolean NOT NULL DEFAULT true, PRIMARY KEY (tenant_id, id))",
    )
    .unwrap();
    // The target, the forgery's target, and the same id under another tenant.
    for (tenant, id) in [(wf_tenant.as_str(), workflow.as_str()), (&wf_tenant, "wf-forged"), ("t-other", &workflow)] {
        db.execute("INSERT INTO workflows (tenant_id, id, name) VALUES ($1, $2, 'w')", &[&tenant, &id]).unwrap();
    }

    // warden, signing with a fresh key; the halt's TTL is short so that it expires here.
    let key = dir.path().join("signing.key");
    let out = run_warden(&["keygen", "--out", key.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seed = std::fs::read_to_string(&key).unwrap().trim().to_string();
    let public_key = dir.path().join("signing.key.pub");
    let config = format!("{FAST_CONFIG}\n[rules.repeat_call]\nttl_secs = 12\n");
    let mut warden =
        start_warden(dir.path(), "warden", &bootstrap, "warden", &config, &[("WARDEN_SIGNING_KEY", &seed)]);
    warden.wait_ready(Duration::from_secs(60));
    let loader = Loader::new(&bootstrap);
    for e in &events {
        loader.send_event(&e.to_string());
    }
    loader.flush();
    let find = |records: &[Value], action: &str, id: &str| {
        records.iter().find(|r| r["action"] == action && r["target"]["id"] == id).cloned()
    };
    let mut commands = Vec::new();
    wait_for(
        "warden emits the disable_workflow and halt_session commands",
        Duration::from_secs(90),
        || {
            commands = kafka::read_records(&bootstrap, TOPIC, Duration::from_secs(1));
            find(&commands, "disable_workflow", &workflow).is_some()
                && find(&commands, "halt_session", &session).is_some()
        },
        || warden.log_text(),
    );
    warden.stop();
    let commands = kafka::read_records(&bootstrap, TOPIC, Duration::from_secs(1));
    let disable = find(&commands, "disable_workflow", &workflow).unwrap();
    let halt = find(&commands, "halt_session", &session).unwrap();
    assert!(commands.iter().all(|c| c["signature"].is_string()), "every command is signed");
    let n = commands.len() as i64;
    let (disable_id, halt_id) = (disable["command_id"].as_str().unwrap(), halt["command_id"].as_str().unwrap());

    // Apply them.
    let verify = ["--public-key", public_key.to_str().unwrap()];
    let mut applier = Applier::start(dir.path(), "applier", &bootstrap, &pg, &verify);
    wait_committed(&bootstrap, "applier", &applier);
    assert_eq!(count(&mut db, "SELECT count(*) FROM processed_commands"), n);
    assert_eq!(count(&mut db, "SELECT count(*) FROM schema_migrations WHERE version = 1"), 1);
    let row = db
        .query_one(
            "SELECT is_enabled, disabled_by FROM workflows WHERE tenant_id = $1 AND id = $2",
            &[&wf_tenant, &workflow],
        )
        .unwrap();
    assert_eq!((row.get::<_, bool>(0), row.get::<_, Option<String>>(1)), (false, Some(disable_id.to_string())));
    assert_eq!(count(&mut db, "SELECT count(*) FROM workflows WHERE is_enabled"), 2, "only the target is disabled");
    let row = db
        .query_one(
            "SELECT count(*), min(outcome), min(state), min(extract(epoch FROM expires_at - applied_at))::float8
             FROM processed_commands WHERE action = 'disable_workflow' AND target_id = $1",
            &[&workflow],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "the workflow is disabled exactly once");
    assert_eq!((row.get::<_, String>(1), row.get::<_, String>(2)), ("disabled".into(), "active".into()));
    assert_eq!(row.get::<_, f64>(3), 3600.0, "in force for ttl_ms from the moment it was applied");
    let row = db
        .query_one(
            "SELECT tenant_id, session_id, mode, state, extract(epoch FROM expires_at - halted_at)::float8
             FROM halted_sessions WHERE command_id = $1",
            &[&halt_id],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), halt["tenant"].as_str().unwrap());
    assert_eq!(row.get::<_, String>(1), session);
    assert_eq!((row.get::<_, String>(2), row.get::<_, String>(3)), ("cancel".into(), "active".into()));
    assert_eq!(row.get::<_, f64>(4), 12.0);

    // The session keeps running past the grace period: the engine's heartbeat escalates it.
    wait_for(
        "the grace period passes",
        Duration::from_secs(10),
        || {
            let sql = "SELECT count(*) FROM halted_sessions WHERE halted_at + interval '1100 ms' < now()";
            count(&mut db, sql) == 1
        },
        String::new,
    );
    db.execute(
        "INSERT INTO target_activity VALUES ($1, 'session', $2, now())",
        &[&halt["tenant"].as_str().unwrap(), &session],
    )
    .unwrap();
    wait_for(
        "the halt escalates to terminate",
        Duration::from_secs(10),
        || {
            count(&mut db, "SELECT count(*) FROM halted_sessions WHERE mode = 'terminate' AND escalated_at IS NOT NULL")
                == 1
        },
        || applier.log_text(),
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM killswitch_history WHERE event = 'escalated'"), 1);

    // Forgeries: a real command retargeted under its original signature, and an unsigned one.
    let mut forged = disable.clone();
    forged["target"]["id"] = "wf-forged".into();
    let mut unsigned = disable.clone();
    let obj = unsigned.as_object_mut().unwrap();
    obj.remove("signature");
    obj.remove("key_id");
    unsigned["command_id"] = "feedfacefeedfacefeedfacefeedface".into();
    unsigned["target"]["id"] = "wf-forged".into();
    let key = format!("{wf_tenant}/workflow/wf-forged");
    for record in [&forged, &unsigned] {
        loader.send_raw(TOPIC, Some(&key), record.to_string().as_bytes());
    }
    loader.flush();
    wait_committed(&bootstrap, "applier", &applier);
    let rejected: Vec<(Option<String>, Option<String>, String)> = db
        .query("SELECT command_id, tenant_id, reason FROM rejected_commands ORDER BY source_offset", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let t = Some(wf_tenant.clone());
    assert_eq!(
        rejected,
        [
            (Some(disable_id.to_string()), t.clone(), "bad_signature".to_string()),
            (Some("feedfacefeedfacefeedfacefeedface".to_string()), t, "unsigned".to_string()),
        ]
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM workflows WHERE id = 'wf-forged' AND is_enabled"), 1);
    assert_eq!(count(&mut db, "SELECT count(*) FROM processed_commands"), n);

    // The 12 s halt expires; the hour-long disable does not.
    wait_for(
        "the halt expires",
        Duration::from_secs(30),
        || count(&mut db, "SELECT count(*) FROM halted_sessions WHERE state = 'expired' AND ended_at IS NOT NULL") == 1,
        || applier.log_text(),
    );
    let state: String =
        db.query_one("SELECT state FROM processed_commands WHERE command_id = $1", &[&halt_id]).unwrap().get(0);
    assert_eq!(state, "expired");
    assert_eq!(count(&mut db, "SELECT count(*) FROM killswitch_history WHERE event = 'expired'"), 1);
    assert_eq!(count(&mut db, "SELECT count(*) FROM workflows WHERE is_enabled"), 2);

    assert!(applier.stop().success(), "{}", applier.log_text());
    let log = applier.log_text();
    assert!(log.contains(&format!("applied={n}")) && log.contains("rejected=2"), "{log}");
    assert!(!log.contains(PASSWORD), "the database password reached the log:\n{log}");
    assert!(!log.contains("wf-forged"), "a rejected command's content reached the log:\n{log}");

    // A replay of the whole topic under a new group changes nothing.
    let before = snapshot(&mut db);
    let mut replay = Applier::start(dir.path(), "applier-replay", &bootstrap, &pg, &verify);
    wait_committed(&bootstrap, "applier-replay", &replay);
    assert!(replay.stop().success(), "{}", replay.log_text());
    assert_eq!(snapshot(&mut db), before, "a replay changed the database");
    let log = replay.log_text();
    assert!(log.contains(&format!("duplicate={n}")) && log.contains("applied=0"), "{log}");

    // Revert: the workflow comes back, recorded with who and why; twice is once.
    let url = pg.url();
    let revert = |id: &str| {
        run_warden(
            &["apply-killswitch", "--postgres", &url, "--revert", id, "--by", "alice", "--why", "load test"],
            &[],
        )
    };
    let out = revert(disable_id);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row = db
        .query_one(
            "SELECT is_enabled, disabled_by FROM workflows WHERE tenant_id = $1 AND id = $2",
            &[&wf_tenant, &workflow],
        )
        .unwrap();
    assert_eq!((row.get::<_, bool>(0), row.get::<_, Option<String>>(1)), (true, None));
    let row =
        db.query_one("SELECT reverted_by, why, undid FROM reverts WHERE command_id = $1", &[&disable_id]).unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, bool>(2)),
        ("alice".into(), "load test".into(), true)
    );
    let out = revert(disable_id);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("already reverted by alice"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert_eq!(count(&mut db, "SELECT count(*) FROM reverts"), 1);
    assert_eq!(count(&mut db, "SELECT count(*) FROM killswitch_history WHERE event = 'reverted'"), 1);
    assert_eq!(count(&mut db, "SELECT count(*) FROM processed_commands WHERE state = 'reverted'"), 1);
    // An expired command: recorded, nothing to undo. An unknown one: a usage error.
    assert!(revert(halt_id).status.success());
    let undid: bool = db.query_one("SELECT undid FROM reverts WHERE command_id = $1", &[&halt_id]).unwrap().get(0);
    assert!(!undid);
    assert_eq!(revert("00000000000000000000000000000000").status.code(), Some(2));
}

/// An unsigned command for the second test: `(tenant t-1, kind, target)`.
fn unsigned(id: char, action: &str, kind: &str, target: &str, ttl_ms: u64) -> Value {
    serde_json::json!({
        "schema": "warden.killswitch.v1", "command_id": id.to_string().repeat(32), "action": action,
        "target": {"kind": kind, "id": target}, "tenant": "t-1", "detector": "loop", "rule": "test",
        "reason": "a test command", "issued_at": 1_767_225_600_000_i64, "ttl_ms": ttl_ms,
        "expires_at": 1_767_225_600_000_i64 + ttl_ms as i64,
    })
}

#[test]
fn accepted_unsigned_commands_take_over_workflows_and_repeats_escalate() {
    let (_serial, dir, pg, broker) = services();
    let bootstrap = broker.bootstrap();
    let loader = Loader::new(&bootstrap);
    let send = |cmd: &Value| {
        let key = format!("t-1/{}/{}", cmd["target"]["kind"].as_str().unwrap(), cmd["target"]["id"].as_str().unwrap());
        loader.send_raw(TOPIC, Some(&key), cmd.to_string().as_bytes());
        loader.flush();
    };
    // A short disable, and a halt.
    send(&unsigned('a', "disable_workflow", "workflow", "wf-1", 3_000));
    send(&unsigned('c', "halt_session", "session", "s-1", 60_000));
    // No key at all: every command is applied unverified.
    let mut applier = Applier::start(dir.path(), "applier", &bootstrap, &pg, &["--accept-unsigned"]);
    wait_committed(&bootstrap, "applier", &applier);
    let mut db = pg.client();
    // The workflow did not exist yet: the command changed nothing.
    let outcome: String = db
        .query_one("SELECT outcome FROM processed_commands WHERE command_id = $1", &[&"a".repeat(32)])
        .unwrap()
        .get(0);
    assert_eq!(outcome, "no_such_workflow");
    assert_eq!(count(&mut db, "SELECT count(*) FROM processed_commands WHERE key_id IS NULL"), 2);

    // Now with the workflow there: a disable, then a longer one while it is in force.
    db.execute("INSERT INTO workflows (tenant_id, id) VALUES ('t-1', 'wf-2')", &[]).unwrap();
    send(&unsigned('d', "disable_workflow", "workflow", "wf-2", 2_000));
    send(&unsigned('e', "disable_workflow", "workflow", "wf-2", 600_000));
    wait_committed(&bootstrap, "applier", &applier);
    let by = |db: &mut postgres::Client| -> (bool, Option<String>) {
        let r = db.query_one("SELECT is_enabled, disabled_by FROM workflows WHERE id = 'wf-2'", &[]).unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(by(&mut db), (false, Some("e".repeat(32))), "the later command took the workflow over");
    // The first one expires: the workflow stays disabled, held by the second.
    wait_for(
        "the first disable expires",
        Duration::from_secs(20),
        || {
            count(&mut db, "SELECT count(*) FROM processed_commands WHERE state = 'expired' AND target_id = 'wf-2'")
                == 1
        },
        || applier.log_text(),
    );
    assert_eq!(by(&mut db), (false, Some("e".repeat(32))));

    // A second halt for the same session after the grace period escalates the first.
    wait_for(
        "the grace period passes",
        Duration::from_secs(10),
        || count(&mut db, "SELECT count(*) FROM halted_sessions WHERE halted_at + interval '1100 ms' < now()") == 1,
        String::new,
    );
    send(&unsigned('f', "halt_session", "session", "s-1", 60_000));
    wait_committed(&bootstrap, "applier", &applier);
    let modes: Vec<(String, String)> = db
        .query("SELECT left(command_id, 1), mode FROM halted_sessions ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(modes, [("c".to_string(), "terminate".to_string()), ("f".to_string(), "terminate".to_string())]);
    assert!(applier.stop().success(), "{}", applier.log_text());

    // Reverting the holder re-enables the workflow.
    let out = run_warden(
        &["apply-killswitch", "--postgres", &pg.url(), "--revert", &"e".repeat(32), "--by", "bob", "--why", "test"],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(by(&mut db), (true, None));
}
