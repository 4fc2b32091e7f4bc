//! The bounded fuzzing pass CI runs: every seed, then 20,000 generated inputs from
//! a fixed seed (`WARDEN_FUZZ_ITERS` / `WARDEN_FUZZ_SEED` change them).

#[test]
fn hostile_inputs_never_panic_or_allocate_without_bound() {
    let iters = std::env::var("WARDEN_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seed = std::env::var("WARDEN_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    let report = warden_fuzz::run(iters, seed).unwrap_or_else(|e| panic!("{e}"));
    // The structured half must reach the detectors, or the pass tests only the decoder.
    assert!(report.processed > iters / 4, "only {} of {iters} inputs got past decoding", report.processed);
    assert!(report.records > 0, "the hostile events should trigger some detections");
}
