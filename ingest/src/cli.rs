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
