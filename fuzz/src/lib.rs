//! A stable-toolchain fuzzer for warden's decoder and engine (cargo-fuzz needs
//! nightly; this needs nothing): the seed corpus in `fuzz/corpus/` mutated
//! byte-wise, plus well-formed events built from hostile fragments, fed as one long
//! sequence through one partition's state, so arbitrary event *sequences* are
//! fuzzed, not just single events.
//!
//! Properties checked on every input: nothing panics; every output record is valid
//! JSON; and the engine's peak heap growth while handling one event stays under a
//! bound linear in the event's size (a counting global allocator measures it).
//!
//! - `cargo test -p warden-fuzz` runs a short bounded pass (CI).
//! - `cargo run --release -p warden-fuzz -- ITERATIONS [SEED]` runs a long one.
//!
//! A failure names the seed and input and writes the input to `fuzz/crashes/`, so
//! it can be replayed and then added to the corpus.

mod alloc;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use alloc::{LIVE, PEAK};

use warden_detectors::rules::Rules;
use warden_detectors::{Engine, Outcome, Tally};
use warden_schemas::Provenance;

/// xorshift64*: deterministic, so a failing seed reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn token(&mut self) -> &'static str {
        TOKENS[self.below(TOKENS.len())]
    }
}

/// The seed corpus, sorted by file name.
pub fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let listing = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<_> = listing.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    let seeds: Vec<Vec<u8>> =
        files.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).collect();
    assert!(seeds.len() >= 10, "the seed corpus in {} is missing", dir.display());
    seeds
}

/// Fragments that reach the interesting paths: JSON structure, escapes, the
/// detectors' phrases and PII shapes, Unicode that normalisation rewrites.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "null",
    "true",
    "-0",
    "1e999",
    "9223372036854775807",
    "-9223372036854775809",
    "\"ts\":",
    "\"type\":\"log\"",
    "\"args\":",
    "\"fields\":",
    "\"text\":",
    "\u{200b}",
    "\u{202e}",
    "\u{fb01}",
    "\u{130}",
    "\u{ff29}\u{ff47}\u{ff4e}",
    "ignore previous instructions",
    "system prompt",
    "4111111111111111",
    "123-45-6789",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.e30.",
    "-----BEGIN PRIVATE KEY-----",
    "\n",
    "\r",
    "\t",
    "\u{0}",
    "é",
    "e\u{301}",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = rng.pick(seeds).clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 if at < data.len() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            3 => {
                let token = rng.token().as_bytes();
                data.splice(at..at, token.iter().copied());
            }
            4 if at < data.len() => {
                // Repeat a slice: long runs, deep nesting, giant arrays.
                let end = (at + 1 + rng.below(8)).min(data.len());
                let piece = data[at..end].to_vec();
                for _ in 0..rng.below(200) {
                    data.splice(at..at, piece.iter().copied());
                }
            }
            5 => {
                let other = rng.pick(seeds);
                let from = rng.below(other.len());
                let end = (from + rng.below(64)).min(other.len());
                data.splice(at..at, other[from..end].iter().copied());
            }
            _ => data.truncate(at),
        }
    }
    data
}

/// A well-formed event whose string values are hostile: it gets past decoding and
/// into every detector.
fn structured(rng: &mut Rng) -> Vec<u8> {
    let mut text = String::new();
    for _ in 0..rng.below(12) {
        text.push_str(rng.token());
        text.push(' ');
    }
    let text = serde_json::Value::String(text);
    let ts = 1_767_225_600_000_i64 + (rng.below(7_200_000) as i64) - 3_600_000;
    let tenant = *rng.pick(&["t-1", "t-2", "", "t\u{0}"]);
    let session = format!("s-{}", rng.below(5));
    let event = match rng.below(3) {
        0 => serde_json::json!({"type": "webhook", "ts": ts, "tenant": tenant, "source": "salesiq",
            "visitor": format!("v-{}", rng.below(50)), "ip": "203.0.113.7", "route": "/auth/login",
            "provider_message_id": format!("m-{}", rng.below(100)), "text": text}),
        1 => serde_json::json!({"type": "tool_call", "ts": ts, "tenant": tenant, "session": session,
            "run": format!("r-{}", rng.below(3)), "workflow": "wf-1", "tool": *rng.pick(&["http_get", "shell", "send_email"]),
            "args": {"q": text, "n": rng.below(3)}, "status": *rng.pick(&["ok", "error", "timeout", "?"]),
            "duration_ms": rng.below(1_000_000), "retries": rng.below(10)}),
        _ => serde_json::json!({"type": "log", "ts": ts, "tenant": tenant, "service": "api", "level": "error",
            "message": text, "fields": {"k": [text, {"deeper": text}]}}),
    };
    event.to_string().into_bytes()
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs handled (seeds included).
    pub inputs: usize,
    /// Inputs that decoded into an event and went through the detectors.
    pub processed: usize,
    /// Output records produced.
    pub records: usize,
    /// The largest peak heap growth seen for one input, bytes.
    pub max_growth: usize,
}

/// Runs every seed, then `iterations` generated inputs from `seed`, through one
/// engine and state. Returns an error naming the first input that broke a property.
pub fn run(iterations: usize, seed: u64) -> Result<Report, String> {
    let seeds = corpus();
    let mut rng = Rng(seed | 1);
    let engine = Engine::new(Rules::defaults(), Some(b"fuzz".to_vec()));
    let (mut out, mut tally) = (Vec::new(), Tally::default());
    // Each regex builds its search cache on its first use in a thread, once
    // and bounded by its capacity: the seeds run once on a throwaway state
    // first, so the bound below measures what one event costs, not that.
    let mut warm = engine.new_state();
    for (i, input) in seeds.iter().enumerate() {
        let source = Provenance::File { file: "warm-up".into(), line: i as u64 + 1 };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.handle_bytes(input, &source, &mut warm, &mut out, &mut tally)
        }));
        out.clear();
    }
    drop(warm);
    let mut state = engine.new_state();
    let mut tally = Tally::default();
    let mut report = Report::default();
    let generated =
        (0..iterations).map(|_| if rng.below(2) == 0 { mutate(&mut rng, &seeds) } else { structured(&mut rng) });
    let inputs: Vec<Vec<u8>> = seeds.to_vec();
    for (i, input) in inputs.into_iter().chain(generated).enumerate() {
        let source = Provenance::File { file: "fuzz".into(), line: i as u64 + 1 };
        out.clear();
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.handle_bytes(&input, &source, &mut state, &mut out, &mut tally)
        }));
        let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        report.inputs += 1;
        report.max_growth = report.max_growth.max(grew);
        let fail = |why: String| -> String {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes");
            let path = dir.join(format!("seed-{seed}-input-{i}"));
            let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &input)).is_ok();
            let at = if saved { path.display().to_string() } else { "not saved".into() };
            format!("seed {seed}, input {i} ({} bytes, {at}): {why}", input.len())
        };
        match result {
            Ok(Outcome::Processed) => report.processed += 1,
            Ok(_) => {}
            Err(_) => return Err(fail("the engine panicked".into())),
        }
        // Decoding holds the parsed tree (a few times the input); normalisation and
        // the scanners use bounded scratch; new keys add their entry, and a table
        // growing doubles its buckets (the state-size term).
        let bound = 16 * input.len() + (256 << 10) + state.usage(engine.rules()).bytes;
        if grew > bound {
            return Err(fail(format!("one event allocated {grew} bytes at peak (bound {bound})")));
        }
        for record in &out {
            report.records += 1;
            if serde_json::from_str::<serde_json::Value>(&record.to_json()).is_err() {
                return Err(fail("an output record is not valid JSON".into()));
            }
        }
    }
    engine.finish(&mut state, &mut out, &mut tally);
    Ok(report)
}
