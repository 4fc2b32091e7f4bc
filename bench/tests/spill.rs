//! Spilled state answers exactly as unspilled state: the same generated stream
//! through an engine with no limits and through one held to a budget a quarter of
//! what the stream needs (and a small tenant quota) gives byte-identical records,
//! and the budgeted state stays near its budget.
//!
//! Lives in warden-bench because it needs the seeded generator.

use std::sync::{Arc, Mutex};

mod common;

use common::run_stream;
use warden_bench::gen::Profile;
use warden_detectors::rules::Rules;
use warden_detectors::state::limits::Limits;
use warden_detectors::state::spill::MemSpill;
use warden_detectors::{Engine, PartitionState, Tally};

/// Many subjects over a short span, so the stream holds far more keys than the
/// budget below allows, with 5% attack events so the detectors fire.
fn profile() -> Profile {
    Profile { events: 40_000, span_ms: 20 * 60_000, tenants: 3, subjects: 30_000, attack_share: 0.05 }
}

/// Runs the stream, as checkpoints every 5,000 events would; returns every record
/// as JSON, the tally, and the largest state size seen at a limit check.
fn run(engine: &Engine, state: &mut PartitionState) -> (Vec<String>, Tally, usize) {
    let mut peak = 0;
    let (records, tally) = run_stream(engine, state, profile(), 11, 5_000, |n, state| {
        if n.is_multiple_of(u64::from(Limits::CHECK_EVERY)) {
            peak = peak.max(state.approx_bytes());
        }
    });
    (records, tally, peak)
}

#[test]
fn a_spilled_run_gives_exactly_the_records_of_an_unbounded_one() {
    let engine = Engine::new(Rules::defaults(), Some(b"spill-test".to_vec()));
    let mut free = engine.new_state();
    let (want, free_tally, free_peak) = run(&engine, &mut free);
    assert!(want.len() > 100, "the stream must make the detectors fire ({} records)", want.len());

    // A spilled key still costs its mark in memory (~25 B against ~150 B held), so
    // a quarter is about as tight as this stream can be held.
    let budget = free_peak / 4;
    let store = Arc::new(Mutex::new(MemSpill::default()));
    let mut held = engine.new_state();
    held.set_track_changes(true);
    held.attach_spill(store.clone(), Limits { budget_bytes: budget, tenant_quota: 2_000 });
    let (got, tally, peak) = run(&engine, &mut held);

    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "record {i} differs");
    }
    assert!(tally.quota_exceeded > 10_000, "keys must have spilled ({})", tally.quota_exceeded);
    let read_back: u64 = [
        held.tables.windows.cold_stats(),
        held.tables.counters.cold_stats(),
        held.tables.replay.cold_stats(),
        held.tables.history.cold_stats(),
        held.tables.distinct.cold_stats(),
    ]
    .iter()
    .map(|s| s.read_back)
    .sum();
    assert!(read_back > 100, "spilled keys must have been read back ({read_back})");
    assert_eq!(tally.events, free_tally.events);
    // One check interval of new keys may pass the budget before the next pass.
    assert!(peak < budget + budget / 2, "peak {peak} B against a budget of {budget} B (unbounded: {free_peak} B)");
    assert!(!store.lock().unwrap().records.is_empty());
    // A full snapshot (what a rule reload or checkpoint writes) of the spilled
    // state holds exactly the live entries of the unbounded one.
    // (Swept first: when sweeps run depends on how many keys are in memory.)
    free.evict();
    held.evict();
    let (a, b) = (free.take_changes(engine.rules(), true), held.take_changes(engine.rules(), true));
    let mut a: Vec<_> = a.iter().collect();
    let mut b: Vec<_> = b.iter().collect();
    a.sort();
    b.sort();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "snapshots differ");
}
