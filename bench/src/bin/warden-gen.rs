//! Writes a generated event stream as JSON lines to stdout.
//!
//! `warden-gen [EVENTS] [SEED] [--tenants N] [--subjects N] [--span-ms MS]
//! [--attack-share F]`: the mixed profile of `warden_bench::gen::Profile::mixed`
//! (1,000,000 events, seed 1, 100 tenants × 500 subjects over an hour, 2% attack),
//! with any of its fields changed. For example, 2,000,000 mostly distinct
//! visitors of one tenant over an hour:
//! `warden-gen 2000000 1 --tenants 1 --subjects 100000000`.

use std::io::{BufWriter, Write};

use warden_bench::gen::{Generator, Profile};

fn main() -> std::io::Result<()> {
    let mut positional = Vec::new();
    let mut flags = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.strip_prefix("--") {
            Some(name) => flags.push((name.to_string(), args.next().unwrap_or_default())),
            None => positional.push(a),
        }
    }
    let events = positional.first().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let seed = positional.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let mut profile = Profile::mixed(events);
    for (name, value) in &flags {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("--{name}: bad value `{value}`"));
        match name.as_str() {
            "tenants" => profile.tenants = value.parse().map_err(|_| bad())?,
            "subjects" => profile.subjects = value.parse().map_err(|_| bad())?,
            "span-ms" => profile.span_ms = value.parse().map_err(|_| bad())?,
            "attack-share" => profile.attack_share = value.parse().map_err(|_| bad())?,
            _ => return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("unknown flag --{name}"))),
        }
    }
    let mut generator = Generator::new(profile, seed);
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = String::new();
    while generator.next_into(&mut line) {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
