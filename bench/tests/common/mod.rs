//! What the bench crate's state tests share: driving a generated stream through an
//! engine as the pipeline does.

use warden_bench::gen::{Generator, Profile};
use warden_detectors::{Engine, PartitionState, Tally};
use warden_schemas::Provenance;

/// Runs `profile`'s stream (generator seed `seed`) through `engine`, taking the
/// state's changes every `checkpoint_every` events as a checkpoint would, and
/// calling `after` with each event's number and the state. Returns every record as
/// JSON, in order, and the tally.
pub fn run_stream(
    engine: &Engine,
    state: &mut PartitionState,
    profile: Profile,
    seed: u64,
    checkpoint_every: u64,
    mut after: impl FnMut(u64, &PartitionState),
) -> (Vec<String>, Tally) {
    let mut g = Generator::new(profile, seed);
    let (mut line, mut records, mut out, mut tally) = (String::new(), Vec::new(), Vec::new(), Tally::default());
    let mut n = 0u64;
    while g.next_into(&mut line) {
        n += 1;
        let source = Provenance::File { file: "gen".into(), line: n };
        engine.handle_bytes(line.as_bytes(), &source, state, &mut out, &mut tally);
        records.extend(out.drain(..).map(|r| r.to_json()));
        if n.is_multiple_of(checkpoint_every) {
            state.take_changes(engine.rules(), false);
        }
        after(n, state);
    }
    engine.finish(state, &mut out, &mut tally);
    records.extend(out.drain(..).map(|r| r.to_json()));
    (records, tally)
}
