//! The command line (design §7).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
        http: Option<std::net::SocketAddr>,
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
        /// Stop once nothing arrived for this many milliseconds (also when nothing arrives at all).
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
    /// Apply the kill-switch topic's verified commands to PostgreSQL (the reference
    /// applier, docs/killswitch-applier.md), or revert one with --revert.
    ApplyKillswitch(ApplyArgs),
}

/// `warden apply-killswitch`.
#[derive(Args)]
pub struct ApplyArgs {
    /// Config file (TOML), for the topic name and Kafka security.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides `kafka.brokers`).
    #[arg(long)]
    pub brokers: Option<String>,
    /// PostgreSQL URL (postgres://user:password@host:port/db); default $WARDEN_POSTGRES_URL,
    /// which keeps the password off the command line.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// The applier's own consumer group.
    #[arg(long, default_value = "warden-killswitch-applier")]
    pub group: String,
    /// File holding the base64 Ed25519 public key that commands must be signed with.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Also apply commands without a signature (and, without --public-key, every
    /// command unverified).
    #[arg(long)]
    pub accept_unsigned: bool,
    /// Escalate a halted session or killed job from cancel to terminate when it is
    /// still active this long after it was halted.
    #[arg(long, default_value_t = 30_000)]
    pub grace_ms: u64,
    /// How often expiry and escalation are swept.
    #[arg(long, default_value_t = 5_000)]
    pub sweep_ms: u64,
    /// Revert this command_id (then exit): undo what it changed, recorded with --by and --why.
    #[arg(long, value_name = "COMMAND_ID", requires_all = ["by", "why"],
          conflicts_with_all = ["brokers", "public_key", "accept_unsigned"])]
    pub revert: Option<String>,
    /// Who reverts (with --revert).
    #[arg(long, requires = "revert")]
    pub by: Option<String>,
    /// Why (with --revert).
    #[arg(long, requires = "revert")]
    pub why: Option<String>,
}

// By hand, so that the database URL, which may hold a password, never prints.
impl std::fmt::Debug for ApplyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyArgs")
            .field("config", &self.config)
            .field("brokers", &self.brokers)
            .field("postgres", &self.postgres.as_ref().map(|_| "<redacted>"))
            .field("group", &self.group)
            .field("public_key", &self.public_key)
            .field("accept_unsigned", &self.accept_unsigned)
            .field("grace_ms", &self.grace_ms)
            .field("sweep_ms", &self.sweep_ms)
            .field("revert", &self.revert)
            .field("by", &self.by)
            .field("why", &self.why)
            .finish()
    }
}
