//! `warden verify` and `warden keygen`: the two ends of signed kill-switch commands.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, Context};
use warden_sinks::sign::{self, Verifier};

use crate::Failure;

/// The other records warden writes: a capture of `warden scan` or `warden tail`
/// holds them beside the commands, and they carry no signature to check.
const UNSIGNED_SCHEMAS: [&str; 4] = ["warden.decision.v1", "warden.alert.v1", "warden.dlq.v1", "warden.dlq"];

/// Verifies every kill-switch record in `inputs`; any failure exits 3. warden's
/// other records are skipped and counted, so a whole `scan` or `tail` capture
/// can be checked; a line that is no warden record at all fails. Input with
/// no records (an empty `warden tail` capture) verifies nothing and exits 0.
pub fn run(public_key: &Path, inputs: &[String]) -> Result<(), Failure> {
    let key = fs::read_to_string(public_key)
        .with_context(|| format!("cannot read {}", public_key.display()))
        .map_err(Failure::Usage)?;
    let verifier = Verifier::from_base64(&key).map_err(|e| Failure::Usage(anyhow!("{}: {e}", public_key.display())))?;
    let inputs = if inputs.is_empty() { vec!["-".to_string()] } else { inputs.to_vec() };
    let (mut ok, mut bad, mut skipped) = (0u64, 0u64, 0u64);
    for input in &inputs {
        let reader: Box<dyn Read> = if input == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(fs::File::open(input).with_context(|| format!("cannot open {input}")).map_err(Failure::Runtime)?)
        };
        for (i, line) in BufReader::new(reader).lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {input}")).map_err(Failure::Runtime)?;
            if line.trim().is_empty() {
                continue;
            }
            let verdict = serde_json::from_str::<serde_json::Value>(&line)
                .map_err(|e| sign::SignError::NotARecord(e.to_string()))
                .and_then(|v| match v.get("schema").and_then(|s| s.as_str()) {
                    Some("warden.killswitch.v1") => verifier.verify_value(&v).map(|()| true),
                    Some(s) if UNSIGNED_SCHEMAS.contains(&s) => Ok(false),
                    _ => Err(sign::SignError::NotARecord("schema is not warden.killswitch.v1".into())),
                });
            match verdict {
                Ok(true) => ok += 1,
                Ok(false) => skipped += 1,
                Err(e) => {
                    bad += 1;
                    eprintln!("{input}:{}: {e}", i + 1);
                }
            }
        }
    }
    eprintln!("warden verify: {ok} valid, {bad} failed, {skipped} other records skipped");
    if bad > 0 {
        return Err(Failure::Verify(anyhow!("{bad} of {} commands failed verification", ok + bad)));
    }
    Ok(())
}

/// Writes a new key pair: `out` (base64 seed, mode 0600) and `out.pub`. Refuses
/// to replace an existing `out`: it may be the key in use, and the appliers'
/// public keys would no longer verify its commands.
pub fn keygen(out: &Path) -> Result<(), Failure> {
    if out.exists() {
        return Err(Failure::Usage(anyhow!(
            "{} exists; it may be the signing key in use, so it is not replaced (remove it first to rotate)",
            out.display()
        )));
    }
    let (seed, public) = sign::generate().map_err(|e| Failure::Runtime(anyhow!("no randomness: {e}")))?;
    let pub_path = out.with_extension(match out.extension() {
        Some(ext) => format!("{}.pub", ext.to_string_lossy()),
        None => "pub".into(),
    });
    write_private(out, &seed).map_err(Failure::Runtime)?;
    fs::write(&pub_path, format!("{public}\n"))
        .with_context(|| format!("cannot write {}", pub_path.display()))
        .map_err(Failure::Runtime)?;
    eprintln!("wrote {} (secret: set WARDEN_SIGNING_KEY to its contents) and {}", out.display(), pub_path.display());
    Ok(())
}

fn write_private(path: &Path, seed: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = fs::OpenOptions::new();
    // create_new: a file that appeared since the check above is not overwritten either.
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(format!("{seed}\n").as_bytes())?;
    Ok(())
}
