//! `warden-fuzz ITERATIONS [SEED]`: a long fuzzing pass (see the crate docs).

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let iterations = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(0x5eed);
    let started = std::time::Instant::now();
    match warden_fuzz::run(iterations, seed) {
        Ok(r) => {
            println!(
                "seed {seed}: {} inputs ({} reached the detectors), {} records, max heap growth per input {} bytes, {:.1} s",
                r.inputs,
                r.processed,
                r.records,
                r.max_growth,
                started.elapsed().as_secs_f64()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAIL: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
