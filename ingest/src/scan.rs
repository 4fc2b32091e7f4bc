//! `warden scan`: JSON lines in, every output record as a JSON line on stdout, a
//! summary on stderr.
//!
//! Files are read in order (`-` or nothing is stdin) as one stream through one
//! partition state, so a scan gives the records `warden run` gives for the same
//! events in one partition. With `--state DIR` the state and the position reached in
//! each file are checkpointed to RocksDB (every 100,000 lines and at the end); a
//! later scan of the same files resumes where that one stopped (an appended file
//! goes on with its new lines; one whose bytes before that point changed is
//! refused), and a scan of new files continues with the state the previous one left.
//!
//! State is held to `state.memory_budget_mb` and `state.tenant_key_quota` like one
//! partition of `warden run`: cold keys spill to the `--state` store, or without
//! one to a RocksDB in a temporary directory made on the first spill and removed
//! at exit.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use warden_detectors::state::limits::Limits;
use warden_detectors::state::rocks::{RocksSpill, RocksStore};
use warden_detectors::state::spill::{self, Spill, SpillError, SpillKey, Visit};
use warden_detectors::state::{Checkpoint, StateStore};
use warden_detectors::{Engine, Outcome, PartitionState, Tally};
use warden_schemas::output::{DeadLetter, DLQ_SCHEMA};
use warden_schemas::{Provenance, Record};

use warden_sinks::sign::Signer;

/// The store partition a scan's state lives under.
const SCAN_PARTITION: &str = "scan";
/// Lines between checkpoints with `--state`.
const CHECKPOINT_LINES: u64 = 100_000;

/// What `scan` needs to run.
pub struct ScanArgs {
    /// Input files; empty or `-` is stdin.
    pub inputs: Vec<String>,
    /// `--state DIR`.
    pub state_dir: Option<PathBuf>,
    /// Memory budget and tenant quota.
    pub limits: Limits,
}

/// Where a scan stopped in each file (the checkpointed position).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Position {
    files: Vec<FilePosition>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct FilePosition {
    path: String,
    offset: u64,
    line: u64,
    /// [`fingerprint`] of the file at `offset`, taken when a checkpoint of the
    /// scan that read it was written; `None` while this scan is reading it, and
    /// in checkpoints from before it was kept (those resume unchecked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
}

/// Bytes of a file's head, and of the stretch before a resume offset, that
/// [`fingerprint`] digests.
const FINGERPRINT_SPAN: u64 = 4096;

/// A digest of what a file holds before `offset`: its first 4 KiB and the 4 KiB
/// just before `offset`. A resumed scan checks it, so a file rewritten since the
/// checkpoint is not entered mid-line at an offset that meant something else.
/// `None` when the file is shorter than `offset` or cannot be read.
fn fingerprint(path: &str, offset: u64) -> Option<String> {
    use sha2::{Digest, Sha256};
    // Only a regular file: opening a FIFO again would wait for a writer.
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let mut f = File::open(path).ok()?;
    if f.metadata().ok()?.len() < offset {
        return None;
    }
    let head = offset.min(FINGERPRINT_SPAN);
    let tail_from = offset.saturating_sub(FINGERPRINT_SPAN).max(head);
    let mut hash = Sha256::new();
    let mut buf = Vec::new();
    for (from, to) in [(0, head), (tail_from, offset)] {
        buf.resize(usize::try_from(to - from).ok()?, 0);
        f.seek(SeekFrom::Start(from)).ok()?;
        f.read_exact(&mut buf).ok()?;
        hash.update(&buf);
    }
    Some(hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// Counts for the summary.
#[derive(Default)]
struct Counts {
    lines: u64,
    decisions: u64,
    killswitch: u64,
    alerts: u64,
    dead_letters: u64,
}

/// Runs a scan; an error is a runtime failure (exit 1).
pub fn run(engine: &Engine, signer: Option<&Signer>, args: ScanArgs) -> Result<()> {
    let started = Instant::now();
    let store = match &args.state_dir {
        Some(dir) => Some(RocksStore::open(dir).with_context(|| format!("cannot open state store {}", dir.display()))?),
        None => None,
    };
    let mut state = engine.new_state();
    let mut position = Position::default();
    match &store {
        Some(store) => {
            let spill = store.spill(SCAN_PARTITION).context("cannot open the spill store")?;
            state.attach_spill(spill::shared(spill), args.limits);
        }
        None => state.attach_spill(spill::shared(TempSpill::default()), args.limits),
    }
    let mut spilled_on_restore = 0;
    if let Some(store) = &store {
        state.set_track_changes(true);
        if let Some(stored) = store.read_checkpoint(SCAN_PARTITION).context("cannot read the scan checkpoint")? {
            spilled_on_restore =
                state.restore(engine.rules(), &stored).context("cannot restore the scan checkpoint")? as u64;
            position = serde_json::from_slice(&stored.position).unwrap_or_default();
        }
    }
    let inputs = if args.inputs.is_empty() { vec!["-".to_string()] } else { args.inputs };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut scan = Scan {
        engine,
        signer,
        state: &mut state,
        store: store.as_ref(),
        tally: Tally { quota_exceeded: spilled_on_restore, ..Tally::default() },
        counts: Counts::default(),
        records: Vec::new(),
        progress: io::stderr().is_terminal().then(Instant::now),
        started,
    };
    for input in &inputs {
        let resume = position.files.iter().find(|f| f.path == *input && input != "-").cloned();
        let (offset, line) = resume.as_ref().map_or((0, 0), |f| (f.offset, f.line));
        if let Some(want) = resume.as_ref().and_then(|f| f.fingerprint.as_deref()) {
            if fingerprint(input, offset).as_deref() != Some(want) {
                bail!(
                    "{input} is not the file the checkpoint read up to byte {offset}: it changed since; \
                     scan it with a new --state directory (or remove this one) to start afresh"
                );
            }
        }
        let reader: Box<dyn Read> = if input == "-" {
            Box::new(io::stdin().lock())
        } else {
            let mut f = File::open(input).with_context(|| format!("cannot open {input}"))?;
            f.seek(SeekFrom::Start(offset)).with_context(|| format!("cannot seek in {input}"))?;
            Box::new(f)
        };
        let reached = scan.file(input, reader, offset, line, &mut out, &mut position)?;
        upsert(&mut position, input, reached);
    }
    scan.finish(&mut out, &position)?;
    out.flush().context("cannot write to stdout")?;
    scan.summary();
    Ok(())
}

fn upsert(position: &mut Position, path: &str, reached: (u64, u64)) {
    if path == "-" {
        return;
    }
    match position.files.iter_mut().find(|f| f.path == path) {
        // Read by this scan: fingerprinted again at its next checkpoint.
        Some(f) => (f.offset, f.line, f.fingerprint) = (reached.0, reached.1, None),
        None => position.files.push(FilePosition {
            path: path.into(),
            offset: reached.0,
            line: reached.1,
            fingerprint: None,
        }),
    }
}

struct Scan<'s> {
    engine: &'s Engine,
    signer: Option<&'s Signer>,
    state: &'s mut PartitionState,
    store: Option<&'s RocksStore>,
    tally: Tally,
    counts: Counts,
    records: Vec<Record>,
    progress: Option<Instant>,
    started: Instant,
}

impl Scan<'_> {
    /// Scans one input from `offset`; returns the (offset, line) reached.
    fn file(
        &mut self,
        name: &str,
        reader: Box<dyn Read + '_>,
        mut offset: u64,
        mut line: u64,
        out: &mut impl Write,
        position: &mut Position,
    ) -> Result<(u64, u64)> {
        let limit = self.engine.rules().max_event_bytes;
        // Room for what is not the event's: a byte order mark before it and the
        // `\r` of a CRLF line end after it (the size check is the decoder's).
        let mut lines = LineReader::new(reader, limit + 4);
        let mut buf = Vec::with_capacity(1024);
        // One provenance per file, its line moved along: no copy of the name per event.
        let mut source = Provenance::File { file: name.to_string(), line };
        while let Some(size) = lines.next_line(&mut buf).with_context(|| format!("cannot read {name}"))? {
            line += 1;
            offset += size.consumed;
            self.counts.lines += 1;
            if let Provenance::File { line: at, .. } = &mut source {
                *at = line;
            }
            let line_bytes = buf.strip_suffix(b"\r").unwrap_or(&buf);
            // JSON lines allows blank lines (a byte order mark alone is one):
            // skipped, not dead-lettered as a message with no JSON in it would be.
            let blank = line_bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line_bytes).trim_ascii().is_empty();
            let outcome = if size.truncated {
                let e = warden_schemas::DecodeError::TooLarge { len: size.len as usize, limit };
                self.tally.dead_letter(&e);
                Outcome::Dead(e)
            } else if blank {
                Outcome::Processed
            } else {
                self.engine.handle_bytes(line_bytes, &source, self.state, &mut self.records, &mut self.tally)
            };
            if let Outcome::Dead(e) = outcome {
                self.counts.dead_letters += 1;
                let dl = DeadLetter {
                    schema: DLQ_SCHEMA.into(),
                    reason: e.reason().into(),
                    file: name.into(),
                    line,
                    size: size.len,
                };
                serde_json::to_writer(&mut *out, &dl)?;
                out.write_all(b"\n")?;
            }
            self.write_records(out)?;
            if self.store.is_some() && line.is_multiple_of(CHECKPOINT_LINES) {
                let mut pos = position.clone();
                upsert(&mut pos, name, (offset, line));
                out.flush()?;
                self.checkpoint(&pos)?;
            }
            self.tick();
        }
        Ok((offset, line))
    }

    fn write_records(&mut self, out: &mut impl Write) -> Result<()> {
        for mut record in self.records.drain(..) {
            match &mut record {
                Record::Decision(_) => self.counts.decisions += 1,
                Record::KillSwitch(k) => {
                    self.counts.killswitch += 1;
                    if let Some(signer) = self.signer {
                        signer.sign(k);
                    }
                }
                Record::Alert(_) => self.counts.alerts += 1,
            }
            out.write_all(record.to_json().as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut impl Write, position: &Position) -> Result<()> {
        self.engine.finish(self.state, &mut self.records, &mut self.tally);
        self.write_records(out)?;
        out.flush()?;
        if self.store.is_some() {
            self.checkpoint(position)?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, position: &Position) -> Result<()> {
        let Some(store) = self.store else {
            return Ok(());
        };
        // Files this scan read are fingerprinted now; the others keep what the
        // scan that read them saw (fingerprinting them again would bless a
        // file rewritten since).
        let mut position = position.clone();
        for f in position.files.iter_mut().filter(|f| f.fingerprint.is_none()) {
            f.fingerprint = fingerprint(&f.path, f.offset);
        }
        let changes = self.state.take_changes(self.engine.rules(), false);
        let cp = Checkpoint { position: serde_json::to_vec(&position)?, changes };
        store.write_checkpoint(SCAN_PARTITION, &cp).context("cannot write the scan checkpoint")
    }

    fn tick(&mut self) {
        let Some(last) = self.progress else { return };
        if !self.counts.lines.is_multiple_of(4096) || last.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.progress = Some(Instant::now());
        let rate = self.counts.lines as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!("\rwarden scan: {} lines, {:.0} lines/s", self.counts.lines, rate);
    }

    fn summary(&self) {
        let secs = self.started.elapsed().as_secs_f64();
        let events = self.tally.total_events();
        if self.progress.is_some() {
            eprintln!();
        }
        let c = &self.counts;
        eprintln!(
            "warden scan: {}, {}, {}, {}, {} in {secs:.3} s ({:.0} events/s)",
            counted(events, "event", "events"),
            counted(c.decisions, "decision", "decisions"),
            counted(c.killswitch, "kill-switch command", "kill-switch commands"),
            counted(c.alerts, "alert", "alerts"),
            counted(c.dead_letters, "dead letter", "dead letters"),
            events as f64 / secs.max(1e-9)
        );
        let usage = self.state.usage(self.engine.rules());
        let keys: usize = usage.keys_by_detector.iter().sum();
        eprintln!(
            "warden scan: state at the end: {keys} keys in memory (~{} MiB), {} spilled to RocksDB; {} spills over the scan",
            usage.bytes >> 20,
            usage.spilled_keys,
            self.tally.quota_exceeded
        );
    }
}

/// `1 alert`, `2 alerts`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Spill space for a scan without `--state`: a RocksDB in a temporary directory,
/// made on the first spill (most scans never spill) and removed when dropped.
#[derive(Debug, Default)]
struct TempSpill {
    /// The store, then the directory: dropped in that order.
    open: Option<(RocksSpill, tempfile::TempDir)>,
}

impl TempSpill {
    fn store(&mut self) -> Result<&mut RocksSpill, SpillError> {
        if self.open.is_none() {
            let dir =
                tempfile::Builder::new().prefix("warden-spill-").tempdir().map_err(|e| SpillError(e.to_string()))?;
            let store = RocksStore::open(dir.path()).map_err(|e| SpillError(e.to_string()))?;
            let spill = store.spill(SCAN_PARTITION).map_err(|e| SpillError(e.to_string()))?;
            self.open = Some((spill, dir));
        }
        match &mut self.open {
            Some((spill, _)) => Ok(spill),
            None => Err(SpillError("no spill store".into())),
        }
    }
}

impl Spill for TempSpill {
    fn put_many(&mut self, tag: u8, records: &mut [(SpillKey, Vec<u8>)]) -> Result<(), SpillError> {
        self.store()?.put_many(tag, records)
    }

    fn get(&mut self, tag: u8, key: SpillKey) -> Result<Option<Vec<u8>>, SpillError> {
        match &mut self.open {
            Some((spill, _)) => spill.get(tag, key),
            None => Ok(None),
        }
    }

    fn remove_through(
        &mut self,
        tag: u8,
        watermark: warden_detectors::EventTime,
        visit: Option<Visit<'_>>,
    ) -> Result<(), SpillError> {
        match &mut self.open {
            Some((spill, _)) => spill.remove_through(tag, watermark, visit),
            None => Ok(()),
        }
    }
}

/// The size of one line read by [`LineReader`].
struct LineSize {
    /// Bytes consumed from the input, newline included.
    consumed: u64,
    /// The line's length without its newline.
    len: u64,
    /// The line was longer than the limit; its bytes were not kept.
    truncated: bool,
}

/// Reads `\n`-terminated lines keeping at most `limit` bytes of each, so a
/// gigabyte line costs a counter, not a gigabyte.
struct LineReader<R> {
    inner: BufReader<R>,
    limit: usize,
}

impl<R: Read> LineReader<R> {
    fn new(inner: R, limit: usize) -> Self {
        LineReader { inner: BufReader::with_capacity(1 << 16, inner), limit }
    }

    fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<LineSize>> {
        buf.clear();
        let (mut consumed, mut len, mut truncated) = (0u64, 0u64, false);
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                return Ok((consumed > 0).then_some(LineSize { consumed, len, truncated }));
            }
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            len += take as u64;
            if !truncated {
                if buf.len() + take > self.limit {
                    truncated = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
            let used = take + usize::from(done);
            consumed += used as u64;
            self.inner.consume(used);
            if done {
                return Ok(Some(LineSize { consumed, len, truncated }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_counted_not_kept() {
        let input = format!("short\n{}\nlast", "x".repeat(5000));
        let mut r = LineReader::new(input.as_bytes(), 1024);
        let mut buf = Vec::new();
        let a = r.next_line(&mut buf).unwrap().unwrap();
        assert_eq!((a.len, a.truncated, buf.as_slice()), (5, false, &b"short"[..]));
        let b = r.next_line(&mut buf).unwrap().unwrap();
        assert_eq!((b.len, b.truncated, buf.len()), (5000, true, 0));
        let c = r.next_line(&mut buf).unwrap().unwrap();
        assert_eq!((c.len, c.consumed, buf.as_slice()), (4, 4, &b"last"[..]));
        assert!(r.next_line(&mut buf).unwrap().is_none());
    }
}
