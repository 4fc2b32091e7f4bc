//! The `warden` binary: parses the command line, loads config and secrets, and maps
//! every failure to an exit code (design §7). Everything else lives in modules.
//!
//! Exit codes: 0 success; 1 runtime failure (I/O, state store, broker); 2 usage or
//! config error; 3 verification failed.

mod applier;
mod cli;
mod config;
mod kafka_tools;
mod run;
mod scan;
mod secret;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use warden_detectors::Engine;
use warden_sinks::sign::Signer;

use cli::{Cli, Command};
use config::{Config, ConfigError};
use secret::Secrets;

// jemalloc: state churns many small keys; glibc malloc spent a quarter of scan time
// consolidating free lists (bench/RESULTS.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A failure with its exit code.
enum Failure {
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
    Verify(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Usage(e.into())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => report(e, 2),
        Err(Failure::Runtime(e)) => report(e, 1),
        Err(Failure::Verify(e)) => report(e, 3),
    }
}

/// Prints the error and its causes on one line. A cause that a message already
/// ends with (thiserror messages often embed their source) is not repeated.
fn report(e: anyhow::Error, code: u8) -> ExitCode {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    eprintln!("warden: {text}");
    ExitCode::from(code)
}

/// Log filter from `WARDEN_LOG`, else the conventional `RUST_LOG`, else `info`.
/// A filter that does not parse is reported (once logging is up) and `info` used.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let mut bad = None;
    let mut filter = None;
    for var in ["WARDEN_LOG", "RUST_LOG"] {
        let Ok(text) = std::env::var(var) else { continue };
        match EnvFilter::try_new(&text) {
            Ok(f) => {
                filter = Some(f);
                break;
            }
            Err(e) => bad = bad.or(Some((var, e))),
        }
    }
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter.unwrap_or_else(|| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    if let Some((var, e)) = bad {
        tracing::warn!("{var} is not a log filter ({e}); logging at `info`");
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Scan { config, state, inputs } => {
            let config = Config::load(config.as_deref())?;
            let secrets = Secrets::from_env();
            let engine = build_engine(&config, &secrets)?;
            let signer = signer(&secrets)?;
            let args = scan::ScanArgs { inputs, state_dir: state, limits: config.state.limits(1) };
            scan::run(&engine, signer.as_ref(), args).map_err(Failure::Runtime)
        }
        Command::Run { config: path, brokers, group, state, http, load, tail } => {
            let config = Config::load(path.as_deref())?;
            let secrets = Secrets::from_env();
            let engine = build_engine(&config, &secrets)?;
            let signer = signer(&secrets)?;
            let args = run::RunArgs { config: path, brokers, group, state, http, load, tail };
            run::run(config, secrets, engine, signer, args).map_err(Failure::Runtime)
        }
        Command::Produce { config, brokers, topic, inputs } => {
            let config = Config::load(config.as_deref())?;
            let brokers = brokers_of(&config, brokers)?;
            let client = run::client::base(&config.kafka, &brokers, &Secrets::from_env());
            let n = kafka_tools::produce(client, &config.kafka, &inputs, topic.as_deref()).map_err(Failure::Runtime)?;
            eprintln!("warden produce: {n} messages sent to {brokers}");
            Ok(())
        }
        Command::Tail { config, brokers, idle_ms, topic } => {
            let config = Config::load(config.as_deref())?;
            let brokers = brokers_of(&config, brokers)?;
            let client = run::client::reader(&config.kafka, &brokers, &Secrets::from_env());
            let k = &config.kafka;
            let topics = if topic.is_empty() {
                vec![k.decisions_topic.clone(), k.killswitch_topic.clone(), k.alerts_topic.clone(), k.dlq_topic.clone()]
            } else {
                topic
            };
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let idle = idle_ms.map(std::time::Duration::from_millis);
            kafka_tools::tail(client, &topics, idle, stop).map(|_| ()).map_err(Failure::Runtime)
        }
        Command::Rules { config } => {
            let config = Config::load(config.as_deref())?;
            let rules = config.compile_rules().map_err(|_| Failure::Usage(anyhow::anyhow!("invalid rules")))?;
            print_out(&config.detection_toml(&rules))
        }
        Command::CheckConfig { config } => {
            let config = Config::load(config.as_deref())?;
            let rules = config.compile_rules().map_err(|_| Failure::Usage(anyhow::anyhow!("invalid rules")))?;
            print_out(&config.to_toml(&rules))
        }
        Command::Verify { public_key, inputs } => verify::run(&public_key, &inputs),
        Command::Keygen { out } => verify::keygen(&out),
        Command::ApplyKillswitch(args) => applier::run(args),
    }
}

/// `--brokers`, else `kafka.brokers`; produce and tail need one or the other.
fn brokers_of(config: &Config, flag: Option<String>) -> Result<String, Failure> {
    flag.or_else(|| config.kafka.brokers.clone()).ok_or_else(|| {
        Failure::Usage(anyhow::anyhow!("no brokers: pass --brokers (warden run prints the embedded cluster's address)"))
    })
}

fn print_out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()).map_err(|e| Failure::Runtime(e.into()))
}

/// The engine for `config`, keyed with `WARDEN_HMAC_KEY` when set.
fn build_engine(config: &Config, secrets: &Secrets) -> Result<Engine, Failure> {
    let rules = config.compile_rules().map_err(|errors| {
        Failure::Usage(anyhow::anyhow!(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")))
    })?;
    let hmac = secrets.hmac_key.as_ref().map(|k| k.expose().as_bytes().to_vec());
    match &hmac {
        // Before any state exists: every state map is seeded from the secret.
        Some(key) => {
            if key.len() < 16 {
                // Fingerprints of SSNs and card numbers are only as unguessable as the key.
                tracing::warn!(bytes = key.len(), "WARDEN_HMAC_KEY is short: use at least 32 random bytes (e.g. `openssl rand -base64 32`)");
            }
            _ = warden_detectors::state::seed_state_hashes(key)
        }
        None => tracing::warn!("WARDEN_HMAC_KEY is not set: PII findings carry no fingerprint (an unkeyed hash of an SSN or card number is reversible), and state maps hash with the public default seeds"),
    }
    Ok(Engine::new(rules, hmac))
}

/// The kill-switch signer from `WARDEN_SIGNING_KEY`, or a warning that commands go unsigned.
fn signer(secrets: &Secrets) -> Result<Option<Signer>, Failure> {
    match &secrets.signing_key {
        Some(seed) => Signer::from_base64_seed(seed.expose())
            .map(Some)
            .map_err(|e| Failure::Usage(anyhow::anyhow!("WARDEN_SIGNING_KEY: {e}"))),
        None => {
            tracing::warn!("WARDEN_SIGNING_KEY is not set: kill-switch commands are unsigned");
            Ok(None)
        }
    }
}
