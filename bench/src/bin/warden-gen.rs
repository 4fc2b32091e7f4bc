//! Writes a generated event stream as JSON lines to stdout.
//!
//! `warden-gen [EVENTS] [SEED]` (defaults 1000000 and 1): the mixed profile of
//! `warden_bench::gen::Profile::mixed`.

use std::io::{BufWriter, Write};

use warden_bench::gen::{Generator, Profile};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let events = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut generator = Generator::new(Profile::mixed(events), seed);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = String::new();
    while generator.next_into(&mut line) {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
