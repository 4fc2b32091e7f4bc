//! `warden apply-killswitch`: the reference consumer of `warden.killswitch`. It
//! verifies each command's signature and applies it to PostgreSQL, once, in one
//! transaction; ends it when it expires; and reverts one on an operator's request.
//! The contract with the workflow engine is docs/killswitch-applier.md.
//!
//! # Layout
//! - [`command`]: message bytes → an accepted command, or the reason it is refused.
//! - [`apply`]: the per-command transaction, and the undo shared by expiry and revert.
//! - [`sweep`]: periodic escalation (cancel → terminate) and expiry.
//! - [`revert`]: `--revert ID --by WHO --why TEXT`.
//! - [`schema`]: the migrations of `deploy/postgres/`, applied at start.
//! - [`db`]: connection, retries, the password-free name of the server.
//!
//! # Delivery
//! Offsets are committed by hand (`enable.auto.commit=false`), one message at a time,
//! only after its transaction committed — or after its rejection was recorded. A crash
//! in between redelivers the message, and its `command_id` is found in
//! `processed_commands`: at-least-once delivery, exactly-once effect.

pub mod apply;
pub mod command;
pub mod db;
pub mod revert;
pub mod schema;
pub mod sweep;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use warden_sinks::sign::Verifier;

use crate::cli::ApplyArgs;
use crate::config::Config;
use crate::secret::Secrets;
use crate::Failure;
use apply::{Outcome, Source};
use command::Rejection;
use db::{Db, Tried};

/// Where the database URL comes from when `--postgres` is not given (better: a
/// password on the command line is visible to every local user).
const URL_ENV: &str = "WARDEN_POSTGRES_URL";

/// Running totals, logged at info when they change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counts {
    applied: u64,
    duplicate: u64,
    rejected: u64,
    expired: u64,
    escalated: u64,
}

/// Runs the applier, or one revert.
pub fn run(args: ApplyArgs) -> Result<(), Failure> {
    let url = args
        .postgres
        .clone()
        .or_else(|| std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()))
        .ok_or_else(|| Failure::Usage(anyhow!("no database: pass --postgres URL or set {URL_ENV}")))?;
    if let Some(id) = &args.revert {
        return revert_one(&url, id, args.by.as_deref().unwrap_or(""), args.why.as_deref().unwrap_or(""));
    }
    let config = Config::load(args.config.as_deref())?;
    let brokers = crate::brokers_of(&config, args.brokers.clone())?;
    let verifier = match &args.public_key {
        Some(path) => Some(load_key(path)?),
        None if args.accept_unsigned => {
            tracing::warn!("no --public-key: no signature can be checked; every command is applied unverified");
            None
        }
        None => {
            return Err(Failure::Usage(anyhow!(
                "--public-key FILE is required to verify commands (--accept-unsigned applies them unverified)"
            )))
        }
    };
    if args.accept_unsigned && verifier.is_some() {
        tracing::warn!("--accept-unsigned: commands without a signature are applied");
    }
    let mut db = Db::connect(&url).map_err(Failure::Runtime)?;
    schema::migrate(&mut db.client).with_context(|| format!("migrating {}", db.name)).map_err(Failure::Runtime)?;
    let topic = config.kafka.killswitch_topic.clone();
    let mut client = crate::run::client::consumer(&config.kafka, &brokers, &args.group, &Secrets::from_env());
    // Nothing reads librdkafka's statistics here; they would only be logged.
    client.set("statistics.interval.ms", "0");
    let consumer: BaseConsumer = client.create().context("cannot create the consumer").map_err(Failure::Runtime)?;
    consumer.subscribe(&[&topic]).with_context(|| format!("cannot subscribe to {topic}")).map_err(Failure::Runtime)?;
    tracing::info!(db = %db.name, %topic, group = %args.group, "kill-switch applier started");
    let stop = stop_on_signal();
    let grace = Duration::from_millis(args.grace_ms);
    let every = Duration::from_millis(args.sweep_ms.max(100));
    let (mut counts, mut logged) = (Counts::default(), Counts::default());
    let mut next_sweep = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_sweep {
            match db.retry(&stop, "sweep", |c| sweep::sweep(c, grace)) {
                Tried::Done(s) => {
                    counts.expired += s.expired;
                    counts.escalated += s.escalated;
                }
                Tried::Refused(e) => tracing::error!(error = %db::explain(&e), "sweep refused by the database"),
                Tried::Stopped => break,
            }
            if counts != logged {
                log_counts(&counts);
                logged = counts.clone();
            }
            next_sweep = Instant::now() + every;
        }
        let m = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "kafka consumer error");
                continue;
            }
            Some(Ok(m)) => m,
        };
        if !handle(&mut db, &m, verifier.as_ref(), &args, &stop, &mut counts) {
            break; // stopped mid-retry: not committed, so redelivered on restart
        }
        // Only now, with the database transaction committed.
        if let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
            tracing::warn!(error = %e, "offset commit failed; the message may be redelivered (harmless)");
        }
    }
    log_counts(&counts);
    tracing::info!("kill-switch applier stopped");
    Ok(())
}

/// Verifies and applies one message (or records why not). False when stopped first.
fn handle(
    db: &mut Db,
    m: &BorrowedMessage<'_>,
    verifier: Option<&Verifier>,
    args: &ApplyArgs,
    stop: &AtomicBool,
    counts: &mut Counts,
) -> bool {
    let source = Source { topic: m.topic().to_string(), partition: m.partition(), offset: m.offset() };
    let grace = Duration::from_millis(args.grace_ms);
    let rejection = match command::check(m.payload().unwrap_or_default(), verifier, args.accept_unsigned) {
        Err(r) => r,
        Ok(a) => match db.retry(stop, "applying a command", |c| apply::apply(c, &a, grace, &source)) {
            Tried::Done(Outcome::Applied(outcome)) => {
                counts.applied += 1;
                let (id, action) = (&a.cmd.command_id, a.cmd.action.as_str());
                tracing::info!(command_id = %id, tenant = ?a.tenant, action, outcome, "applied");
                return true;
            }
            Tried::Done(Outcome::Duplicate) => {
                counts.duplicate += 1;
                tracing::debug!(command_id = %a.cmd.command_id, "already processed; skipped");
                return true;
            }
            Tried::Stopped => return false,
            Tried::Refused(e) => {
                let (id, error) = (&a.cmd.command_id, db::explain(&e));
                tracing::error!(command_id = %id, %error, "the database refused the command's values");
                Rejection {
                    command_id: Some(a.cmd.command_id.clone()),
                    tenant: Some(a.tenant.clone()),
                    reason: "store_refused",
                }
            }
        },
    };
    counts.rejected += 1;
    // Only the id, tenant and reason: a forged record's content is not worth a log line.
    let Rejection { command_id, tenant, reason } = &rejection;
    let (command_id, tenant) = (command_id.as_deref().unwrap_or("-"), tenant.as_deref().unwrap_or("-"));
    tracing::warn!(command_id, tenant, reason, "rejected a kill-switch command");
    match db.retry(stop, "recording a rejection", |c| apply::reject(c, &rejection, &source)) {
        Tried::Done(()) => true,
        Tried::Refused(e) => {
            tracing::error!(error = %db::explain(&e), "the database refused to record a rejection");
            true
        }
        Tried::Stopped => false,
    }
}

/// `--revert`: one transaction, then exit.
fn revert_one(url: &str, id: &str, by: &str, why: &str) -> Result<(), Failure> {
    if !command::is_id(id) {
        return Err(Failure::Usage(anyhow!("--revert: `{id}` is not a command id (32 lowercase hex characters)")));
    }
    if by.trim().is_empty() || why.trim().is_empty() {
        return Err(Failure::Usage(anyhow!("--revert needs --by WHO and --why TEXT")));
    }
    let mut db = Db::connect(url).map_err(Failure::Runtime)?;
    schema::migrate(&mut db.client).with_context(|| format!("migrating {}", db.name)).map_err(Failure::Runtime)?;
    let done = revert::revert(&mut db.client, id, by, why).with_context(|| format!("reverting {id}"));
    match done.map_err(Failure::Runtime)? {
        revert::Reverted::Now { undid } => {
            let what = if undid { "undone" } else { "nothing left to undo (expired, or it changed nothing)" };
            tracing::info!(command_id = %id, by, "reverted");
            eprintln!("warden apply-killswitch: reverted {id}: {what}");
            Ok(())
        }
        revert::Reverted::Already(by, why) => {
            eprintln!("warden apply-killswitch: {id} was already reverted by {by} ({why})");
            Ok(())
        }
        revert::Reverted::Unknown => Err(Failure::Usage(anyhow!("no command {id} was applied in {}", db.name))),
    }
}

fn load_key(path: &Path) -> Result<Verifier, Failure> {
    let key = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(Failure::Usage)?;
    Verifier::from_base64(&key).map_err(|e| Failure::Usage(anyhow!("{}: {e}", path.display())))
}

fn log_counts(c: &Counts) {
    tracing::info!(
        applied = c.applied,
        duplicate = c.duplicate,
        rejected = c.rejected,
        expired = c.expired,
        escalated = c.escalated,
        "kill-switch commands"
    );
}

/// A flag set by the first SIGINT or SIGTERM: the loop finishes the message in hand
/// (or abandons its retries, uncommitted) and exits.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => {
            std::thread::spawn(move || {
                rt.block_on(async {
                    #[cfg(unix)]
                    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                        return;
                    }
                    let _ = tokio::signal::ctrl_c().await;
                });
                flag.store(true, Ordering::Relaxed);
            });
        }
        Err(e) => tracing::warn!(error = %e, "no signal handling: stop with SIGKILL (uncommitted work is redelivered)"),
    }
    stop
}
