//! State maps seeded from a deployment's secret give exactly the outputs of maps
//! with the default seeds (iteration order never decides anything) and the same
//! checkpoint values; the checkpoint's keys, digests under the secret, differ, and
//! a checkpoint restores only under the secret that wrote it. Its own test binary,
//! because the seeds are set once per process.
//!
//! Lives in warden-bench because it needs the seeded generator.

use std::hash::BuildHasher;

mod common;

use common::run_stream;
use warden_bench::gen::Profile;
use warden_detectors::rules::Rules;
use warden_detectors::state::checkpoint::tag;
use warden_detectors::state::{seed_state_hashes, FixedState, StoredPartition};
use warden_detectors::{Engine, PartitionState};

/// A checkpoint's entries: table tag, stored key, value (`None` deletes).
type Entries = Vec<(u8, Vec<u8>, Option<Vec<u8>>)>;

/// Runs a stream with attacks mixed in, checkpointing as the pipeline does;
/// returns every record as JSON and the final full snapshot, sorted.
fn run(engine: &Engine, state: &mut PartitionState) -> (Vec<String>, Entries) {
    let profile = Profile { events: 30_000, span_ms: 30 * 60_000, tenants: 3, subjects: 2_000, attack_share: 0.1 };
    state.set_track_changes(true);
    let (records, _) = run_stream(engine, state, profile, 5, 4_000, |_, _| {});
    let snapshot = state.take_changes(engine.rules(), true);
    let mut entries: Vec<_> =
        snapshot.in_key_order().map(|c| (c.tag, c.key.to_vec(), c.value.map(<[u8]>::to_vec))).collect();
    entries.sort();
    (records, entries)
}

/// The values of a snapshot's entries, sorted, bookkeeping left out.
fn values(entries: &Entries) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = entries.iter().filter(|e| e.0 != tag::META).filter_map(|e| e.2.as_deref()).collect();
    v.sort();
    v
}

fn stored(entries: &Entries) -> StoredPartition {
    let entries = entries.iter().filter_map(|(t, k, v)| Some((*t, k.clone(), v.clone()?))).collect();
    StoredPartition { position: Vec::new(), entries }
}

#[test]
fn outputs_do_not_depend_on_the_state_secrets_and_checkpoints_need_theirs() {
    let engine = Engine::new(Rules::defaults(), Some(b"seed-test".to_vec()));
    let mut defaults = engine.new_state();
    let (want_records, want_snapshot) = run(&engine, &mut defaults);
    assert!(want_records.len() > 50, "the stream must make the detectors fire ({})", want_records.len());

    let before = FixedState::default().hash_one(b"user-1");
    assert!(seed_state_hashes(b"a deployment's secret"));
    assert_ne!(FixedState::default().hash_one(b"user-1"), before, "seeded maps hash differently");
    assert!(!seed_state_hashes(b"another secret"), "seeds are set once");

    let mut seeded = engine.new_state();
    let (records, snapshot) = run(&engine, &mut seeded);
    assert_eq!(records.len(), want_records.len());
    for (i, (got, want)) in records.iter().zip(&want_records).enumerate() {
        assert_eq!(got, want, "record {i} differs");
    }
    assert!(snapshot != want_snapshot, "state keys are digests under the secret");
    assert!(values(&snapshot) == values(&want_snapshot), "the checkpoints hold the same values");

    let mut restored = engine.new_state();
    restored.restore(engine.rules(), &stored(&snapshot)).expect("a checkpoint restores under its own secret");
    let err = engine.new_state().restore(engine.rules(), &stored(&want_snapshot)).unwrap_err();
    assert!(err.to_string().contains("a different WARDEN_HMAC_KEY"), "{err}");
}
