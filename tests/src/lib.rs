//! Harness for warden's end-to-end tests: find the real `warden` binary, generate
//! the labelled scenario corpus, run commands and collect their JSON-lines output.
//!
//! The tests in `tests/tests/` drive the binary the way a user does; they never
//! reach into the engine's internals.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

pub mod broker;
pub mod kafka;
pub mod postgres;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `warden` binary built by this `cargo test` run (`WARDEN_BIN` overrides).
pub fn warden_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WARDEN_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(format!("warden{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is not built: run `cargo test --workspace` (it builds the binary)", bin.display());
    bin
}

/// This crate's folder. Read at run time first (cargo sets it for the tests it
/// runs): a build cache shared by two checkouts can hold a test binary compiled
/// in the other one.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The shared folder beside the repository (`../shared`), which holds the scenarios.
pub fn shared_dir() -> PathBuf {
    let manifest = manifest_dir();
    let root = manifest.parent().expect("repo root");
    let shared = root.join("..").join("shared");
    assert!(shared.join("scenarios").join("gen.py").exists(), "{} has no scenarios/gen.py", shared.display());
    shared
}

/// Writes the labelled scenario corpus (`gen.py --out`) into `dir`; returns the
/// scenario file paths, sorted.
pub fn generate_scenarios(dir: &Path, benign: u32) -> Vec<PathBuf> {
    let gen = shared_dir().join("scenarios").join("gen.py");
    let status = Command::new("python3")
        .arg(&gen)
        .arg("--out")
        .arg(dir)
        .arg("--benign")
        .arg(benign.to_string())
        .status()
        .expect("python3 runs");
    assert!(status.success(), "gen.py failed");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read corpus dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

/// Runs `warden` with `args` and `envs`; returns its output.
pub fn run_warden(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(warden_bin());
    cmd.args(args).env_remove("WARDEN_HMAC_KEY").env_remove("WARDEN_SIGNING_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("warden runs")
}

/// Parses JSON lines; panics on a line that is not JSON.
pub fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Reads a JSON-lines file.
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    json_lines(&std::fs::read(path).expect("read file"))
}
