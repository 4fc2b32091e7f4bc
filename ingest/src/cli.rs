//! The command line (design §7).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// warden: stream-processing abuse detection for chatbots, agent platforms and
/// workflow engines.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// warden's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the detectors over JSON-lines files (or stdin); records go to stdout.
    Scan {
        /// Config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Checkpoint state to this RocksDB directory, and resume from it.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Input files, read in order; `-` or none reads stdin.
        inputs: Vec<String>,
    },
    /// Run the streaming pipeline; with no brokers configured, against an embedded
    /// in-process Kafka cluster whose address it prints.
    Run {
        /// Config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Kafka bootstrap servers (overrides `kafka.brokers`).
        #[arg(long)]
        brokers: Option<String>,
        /// Consumer group id (overrides `kafka.group`).
        #[arg(long)]
        group: Option<String>,
        /// RocksDB state directory (overrides `state.dir`; default ./warden-state).
        #[arg(long)]
        state: Option<PathBuf>,
        /// HTTP bind address (overrides `http.addr`; default 127.0.0.1:9464).
        #[arg(long)]
        http: Option<String>,
        /// Produce these JSON-lines files into the input topics once running.
        #[arg(long, num_args = 1..)]
        load: Vec<String>,
        /// Print every output record to stdout as it arrives on the output topics.
        #[arg(long)]
        tail: bool,
    },
    /// Load JSON-lines events into the input topics, keyed by tenant, timestamped by `ts`.
    Produce {
        /// Config file (TOML), for topic names and security.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Kafka bootstrap servers.
        #[arg(long)]
        brokers: Option<String>,
        /// Send every line unchanged to this topic instead of routing by type.
        #[arg(long)]
        topic: Option<String>,
        /// Input files; `-` or none reads stdin.
        inputs: Vec<String>,
    },
    /// Print the records on the output topics (from the beginning) as JSON lines.
    Tail {
        /// Config file (TOML), for topic names and security.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Kafka bootstrap servers.
        #[arg(long)]
        brokers: Option<String>,
        /// Stop once nothing arrived for this many milliseconds (after the first record).
        #[arg(long)]
        idle_ms: Option<u64>,
        /// Topics to print (default: every output topic).
        #[arg(long)]
        topic: Vec<String>,
    },
    /// Print the effective rules (built-in defaults merged with the config).
    Rules {
        /// Config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the config, then print it with defaults filled in (secrets redacted).
    CheckConfig {
        /// Config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check the signatures of kill-switch records (JSON lines); exit 3 if any fails.
    Verify {
        /// File holding the base64 Ed25519 public key.
        #[arg(long)]
        public_key: PathBuf,
        /// Input files; `-` or none reads stdin.
        inputs: Vec<String>,
    },
    /// Write a new Ed25519 key pair: FILE (base64 seed, for WARDEN_SIGNING_KEY) and FILE.pub.
    Keygen {
        /// Where to write the private seed; the public key goes to FILE.pub.
        #[arg(long)]
        out: PathBuf,
    },
}
