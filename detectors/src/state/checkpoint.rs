//! A [`PartitionState`] to and from store entries.
//!
//! In memory a key starts with a 2-byte rule id (an index into the current rule
//! set); in the store it starts with the rule's *name*, so a config that adds or
//! removes a rule between runs does not misfile state. Entries of rules that no
//! longer exist are dropped on restore.

use super::changes::ChangeSet;
use super::codec::{get_i64, get_str, get_varint, put_bytes, put_i64, put_varint, CodecError};
use super::codec::{Decode, Encode};
use super::table::{ChangeSink, Table};
use super::StateStore;
use crate::engine::Clock;
use crate::rules::Rules;
use crate::verdict::Signal;
use crate::PartitionState;

/// Table tags in the store (stable on disk: never renumber).
pub mod tag {
    /// Clock and decide bookkeeping.
    pub const META: u8 = 0;
    /// Sliding windows.
    pub const WINDOWS: u8 = 1;
    /// Call counters.
    pub const COUNTERS: u8 = 2;
    /// Run-seen marks.
    pub const SEEN: u8 = 3;
    /// Replay ids.
    pub const REPLAY: u8 = 4;
    /// Recent calls.
    pub const HISTORY: u8 = 5;
    /// Distinct sets.
    pub const DISTINCT: u8 = 6;
    /// Run budgets.
    pub const BUDGETS: u8 = 7;
    /// Records in force.
    pub const IN_FORCE: u8 = 8;
    /// Alert buckets.
    pub const ALERTS: u8 = 9;
}

/// Why a stored partition does not restore.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// An entry does not decode.
    #[error(transparent)]
    Corrupt(#[from] CodecError),
    /// The entries decode, but their keys are not this deployment's.
    #[error("the checkpoint is not this deployment's: {0}")]
    ForeignKeys(&'static str),
}

/// One stored entry: table tag, key, value.
pub type StoredEntry = (u8, Vec<u8>, Vec<u8>);

/// What one checkpoint writes: changed entries (`None` deletes) and the new position.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// Input position the state reflects (opaque to the store; the caller encodes it).
    pub position: Vec<u8>,
    /// Changes since the previous checkpoint.
    pub changes: ChangeSet,
}

/// Everything stored for one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredPartition {
    /// Position written with the last checkpoint.
    pub position: Vec<u8>,
    /// All entries.
    pub entries: Vec<StoredEntry>,
}

/// The clock and decide bookkeeping, then the key-format mark ([`key_format`]).
/// The mark rides on the one entry every checkpoint of every build rewrites: a
/// build from before the mark reads the clock and ignores what follows, and its
/// own checkpoints write the clock without it. So a store that an older build
/// wrote to after this one (a rollback) loses the mark, and is not mistaken for
/// one whose every key is a digest.
const META_CLOCK: &[u8] = b"clock";
/// State keys as [`super::keys::StateKey`] digests (format 1 held the key bytes).
const KEY_FORMAT: u8 = 2;

/// Bytes of the key-format mark.
const KEY_MARK_LEN: usize = 9;
/// Bytes of the far-future run's actor fields after the mark.
#[cfg(test)]
const ACTORS_LEN: usize = 9;

fn key_format() -> [u8; KEY_MARK_LEN] {
    let mut v = [KEY_FORMAT; KEY_MARK_LEN];
    v[1..].copy_from_slice(&super::key_fingerprint());
    v
}

/// Why `partition`'s checkpoint in `store` holds state keys this deployment would
/// never look up (`None`: it has none, or they are its own). Cheap: one point
/// read. A pipeline drops such a checkpoint before assigning the partition, so
/// the partition rebuilds its state by replay instead.
pub fn foreign_keys<S: StateStore>(store: &S, partition: &str) -> Result<Option<&'static str>, S::Error> {
    if store.read_position(partition)?.is_none() {
        return Ok(None);
    }
    let clock = store.read_entry(partition, tag::META, META_CLOCK)?;
    Ok(key_format_error(clock.as_deref()))
}

/// Why a checkpoint whose clock entry is `clock` holds keys this deployment cannot
/// read, if it does.
fn key_format_error(clock: Option<&[u8]>) -> Option<&'static str> {
    match clock.and_then(|c| decode_clock(c).ok()).map(|(_, _, mark)| mark) {
        Some(mark) if mark == key_format() => None,
        Some([KEY_FORMAT, ..]) => Some("its state keys were digested under a different WARDEN_HMAC_KEY (another key, or one set where none is now, or the reverse)"),
        _ => Some("an older warden wrote (some of) its state keys, as key bytes rather than digests"),
    }
}

/// Refuses a checkpoint whose state keys this build would never look up: one
/// written before keys were digests, or under another secret. Restored, its
/// entries would match nothing and its blocks would be lifted early.
fn check_key_format(stored: &StoredPartition) -> Result<(), RestoreError> {
    if stored.entries.iter().all(|(tag, ..)| *tag == tag::META) {
        return Ok(());
    }
    let clock = stored.entries.iter().find(|(tag, k, _)| *tag == tag::META && k == META_CLOCK);
    match key_format_error(clock.map(|(_, _, v)| v.as_slice())) {
        None => Ok(()),
        Some(why) => Err(RestoreError::ForeignKeys(why)),
    }
}

impl PartitionState {
    /// The changes since the last call (or everything, with `full`), ready for
    /// [`super::StateStore::write_checkpoint`]. Change tracking must be on.
    pub fn take_changes(&mut self, rules: &Rules, full: bool) -> ChangeSet {
        let mut out = ChangeSet::new();
        let t = &mut self.tables;
        collect(&mut t.windows, tag::WINDOWS, rules, full, &mut out);
        collect(&mut t.counters, tag::COUNTERS, rules, full, &mut out);
        collect(&mut t.seen, tag::SEEN, rules, full, &mut out);
        collect(&mut t.replay, tag::REPLAY, rules, full, &mut out);
        collect(&mut t.history, tag::HISTORY, rules, full, &mut out);
        collect(&mut t.distinct, tag::DISTINCT, rules, full, &mut out);
        collect(&mut t.budgets, tag::BUDGETS, rules, full, &mut out);
        collect(&mut self.decide.in_force, tag::IN_FORCE, rules, full, &mut out);
        collect(&mut self.decide.alerts, tag::ALERTS, rules, full, &mut out);
        let (clock, next_close) = (&self.clock, self.decide.next_close);
        out.put(tag::META, |k| k.extend_from_slice(META_CLOCK), |v| encode_clock(clock, next_close, v));
        out
    }

    /// Restores one stored entry. Entries of rules absent from `rules` are skipped.
    pub fn restore_entry(&mut self, rules: &Rules, tag: u8, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        if tag == tag::META {
            if key == META_CLOCK {
                let (clock, next_close, _) = decode_clock(value)?;
                self.clock = clock;
                self.decide.next_close = next_close;
            }
            return Ok(());
        }
        let Some(key) = to_memory_key(key, tag, rules)? else {
            return Ok(());
        };
        let t = &mut self.tables;
        match tag {
            tag::WINDOWS => t.windows.restore_encoded(&key, value),
            tag::COUNTERS => t.counters.restore_encoded(&key, value),
            tag::SEEN => t.seen.restore_encoded(&key, value),
            tag::REPLAY => t.replay.restore_encoded(&key, value),
            tag::HISTORY => t.history.restore_encoded(&key, value),
            tag::DISTINCT => t.distinct.restore_encoded(&key, value),
            tag::BUDGETS => t.budgets.restore_encoded(&key, value),
            tag::IN_FORCE => self.decide.in_force.restore_encoded(&key, value),
            tag::ALERTS => self.decide.alerts.restore_encoded(&key, value),
            _ => Ok(()),
        }
    }

    /// Carries this state over to a new rule set (a hot reload): the entries of every
    /// rule that keeps its name survive — its windows, counters and records in force —
    /// and those of removed rules are dropped, exactly as a restart with the new
    /// config would restore them. Takes this state's pending changes: the caller
    /// writes a full checkpoint next.
    pub fn migrated(&mut self, old: &Rules, new: &Rules) -> Result<PartitionState, RestoreError> {
        let changes = self.take_changes(old, true);
        let entries: Vec<StoredEntry> =
            changes.iter().filter_map(|c| Some((c.tag, c.key.to_vec(), c.value?.to_vec()))).collect();
        let mut fresh = PartitionState::default();
        fresh.decide = crate::decide::DecideState::new();
        fresh.visitors = std::mem::take(&mut self.visitors);
        fresh.restore(new, &StoredPartition { position: Vec::new(), entries })?;
        Ok(fresh)
    }

    /// Rebuilds a state from a stored partition.
    /// With a spill store attached, the state is held to its limits as it fills
    /// (a checkpoint may hold more than the budget); returns how many keys spilled.
    pub fn restore(&mut self, rules: &Rules, stored: &StoredPartition) -> Result<usize, RestoreError> {
        check_key_format(stored)?;
        let mut spilled = 0;
        for (i, (tag, key, value)) in stored.entries.iter().enumerate() {
            self.restore_entry(rules, *tag, key, value)?;
            if i % 65_536 == 65_535 {
                spilled += self.enforce_limits();
            }
        }
        Ok(spilled + self.enforce_limits())
    }
}

fn collect<V: Encode + Decode>(table: &mut Table<V>, tag: u8, rules: &Rules, full: bool, out: &mut ChangeSet) {
    let mut sink = StoredKeys { out, tag, rules };
    if full {
        table.snapshot(&mut sink);
        // The snapshot holds every entry: the pending list is only cleared.
        table.drain_changes(&mut ());
    } else {
        table.drain_changes(&mut sink);
    }
}

/// A table's changes into a [`ChangeSet`] under the table's tag, each key in its
/// stored form; a key whose rule or signal is unknown is left out.
struct StoredKeys<'a> {
    out: &'a mut ChangeSet,
    tag: u8,
    rules: &'a Rules,
}

impl<'a> StoredKeys<'a> {
    /// The name a memory key's leading id stands for, and the rest of the key.
    fn split<'k>(&self, key: &'k [u8]) -> Option<(&'a str, &'k [u8])> {
        let (id, rest) = key.split_at_checked(2)?;
        Some((id_name(self.tag, u16::from_be_bytes([id[0], id[1]]), self.rules)?, rest))
    }
}

impl ChangeSink for StoredKeys<'_> {
    fn put(&mut self, key: &[u8], encode: impl FnOnce(&mut Vec<u8>)) {
        if let Some((name, rest)) = self.split(key) {
            self.out.put(self.tag, |k| to_stored_key(name, rest, k), encode);
        }
    }

    fn delete(&mut self, key: &[u8]) {
        if let Some((name, rest)) = self.split(key) {
            self.out.delete(self.tag, |k| to_stored_key(name, rest, k));
        }
    }
}

/// The name a key's leading id stands for: a signal for alerts, else a rule.
fn id_name(tag: u8, id: u16, rules: &Rules) -> Option<&str> {
    if tag == tag::ALERTS {
        Signal::ALL.get(id as usize).map(|s| s.as_str())
    } else {
        rules.rules.get(id as usize).map(|r| r.name.as_str())
    }
}

/// A key in the store: its rule's (or signal's) name in place of the id.
fn to_stored_key(name: &str, rest: &[u8], out: &mut Vec<u8>) {
    put_bytes(out, name.as_bytes());
    out.extend_from_slice(rest);
}

fn to_memory_key(stored: &[u8], tag: u8, rules: &Rules) -> Result<Option<Vec<u8>>, CodecError> {
    let mut input = stored;
    let name = get_str(&mut input)?;
    let id = if tag == tag::ALERTS {
        Signal::ALL.iter().position(|s| s.as_str() == name)
    } else {
        rules.rules.iter().position(|r| r.name == name)
    };
    let Some(id) = id else { return Ok(None) };
    let mut out = Vec::with_capacity(2 + input.len());
    out.extend_from_slice(&(id as u16).to_be_bytes());
    out.extend_from_slice(input);
    Ok(Some(out))
}

fn encode_clock(c: &Clock, next_close: i64, out: &mut Vec<u8>) {
    out.push(u8::from(c.max_ts.is_some()));
    put_i64(out, c.max_ts.unwrap_or(0));
    put_i64(out, c.watermark);
    put_varint(out, u64::from(c.future_run));
    put_i64(out, c.future_min);
    put_i64(out, c.next_sweep);
    put_i64(out, next_close);
    out.extend_from_slice(&key_format());
    // After the mark, so a checkpoint from before these fields reads as a run
    // with one actor so far; an older build takes the longer tail for a foreign
    // mark and replays instead of restoring.
    put_i64(out, c.future_actor as i64);
    out.push(u8::from(c.future_actors_differ));
}

/// The clock, the next bucket close, and what follows them: the key-format mark,
/// or nothing in a checkpoint from before it.
fn decode_clock(mut input: &[u8]) -> Result<(Clock, i64, &[u8]), CodecError> {
    let input = &mut input;
    let (&has, rest) = input.split_first().ok_or(CodecError("truncated clock"))?;
    *input = rest;
    let max_ts = get_i64(input)?;
    let clock = Clock {
        max_ts: (has != 0).then_some(max_ts),
        watermark: get_i64(input)?,
        future_run: u32::try_from(get_varint(input)?).map_err(|_| CodecError("future_run"))?,
        future_min: get_i64(input)?,
        future_actor: 0,
        future_actors_differ: false,
        next_sweep: get_i64(input)?,
    };
    let next_close = get_i64(input)?;
    let mut clock = clock;
    let mark = input.get(..KEY_MARK_LEN).unwrap_or(input);
    if let Some(mut actors) = input.get(KEY_MARK_LEN..).filter(|rest| !rest.is_empty()) {
        clock.future_actor = get_i64(&mut actors)? as u64;
        let (&differ, _) = actors.split_first().ok_or(CodecError("truncated clock"))?;
        clock.future_actors_differ = differ != 0;
    }
    Ok((clock, next_close, mark))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::mem::MemStore;
    use crate::state::StateStore;

    fn checkpoint(changes: ChangeSet) -> Checkpoint {
        Checkpoint { position: b"7".to_vec(), changes }
    }

    #[test]
    fn the_clock_round_trips_mid_far_future_run() {
        let clock =
            Clock { future_run: 3, future_min: 9, future_actor: 42, future_actors_differ: true, ..Clock::default() };
        let mut v = Vec::new();
        encode_clock(&clock, 5, &mut v);
        let (back, next_close, mark) = decode_clock(&v).unwrap();
        assert_eq!((back, next_close, mark), (clock, 5, &key_format()[..]));
        // A clock written before the run's actors were kept reads as no actor yet.
        v.truncate(v.len() - ACTORS_LEN);
        let (back, _, mark) = decode_clock(&v).unwrap();
        assert_eq!((back.future_actor, back.future_actors_differ, mark), (0, false, &key_format()[..]));
    }

    #[test]
    fn a_store_tells_checkpoints_whose_keys_this_deployment_cannot_read() {
        let rules = Rules::defaults();
        let store = MemStore::default();
        assert_eq!(foreign_keys(&store, "p").unwrap(), None, "no checkpoint, nothing foreign");

        let mut state = PartitionState::default();
        state.set_track_changes(true);
        store.write_checkpoint("ours", &checkpoint(state.take_changes(&rules, true))).unwrap();
        assert_eq!(foreign_keys(&store, "ours").unwrap(), None);

        // An older warden's checkpoint: key bytes, a clock without the mark.
        let old_clock = |v: &mut Vec<u8>| {
            encode_clock(&Clock::default(), 0, v);
            v.truncate(v.len() - KEY_MARK_LEN - ACTORS_LEN);
        };
        let mut old = ChangeSet::new();
        old.put(tag::META, |k| k.extend_from_slice(META_CLOCK), old_clock);
        old.put(tag::WINDOWS, |k| to_stored_key("visitor_rate", b"\x01\x01t\x01v", k), |v| v.push(0));
        store.write_checkpoint("old", &checkpoint(old)).unwrap();
        assert!(foreign_keys(&store, "old").unwrap().is_some_and(|why| why.contains("older warden")));

        // A rollback: an older warden checkpointed on top of ours, rewriting the
        // clock, so the mark is gone with it.
        let mut rolled_back = ChangeSet::new();
        rolled_back.put(tag::META, |k| k.extend_from_slice(META_CLOCK), old_clock);
        store.write_checkpoint("ours", &checkpoint(rolled_back)).unwrap();
        assert!(foreign_keys(&store, "ours").unwrap().is_some_and(|why| why.contains("older warden")));

        // Another deployment's: the mark names another digest secret.
        let other_clock = |v: &mut Vec<u8>| {
            encode_clock(&Clock::default(), 0, v);
            let at = v.len() - ACTORS_LEN - KEY_MARK_LEN + 1;
            v[at..at + KEY_MARK_LEN - 1].fill(0xee);
        };
        let mut other = ChangeSet::new();
        other.put(tag::META, |k| k.extend_from_slice(META_CLOCK), other_clock);
        store.write_checkpoint("other", &checkpoint(other)).unwrap();
        assert!(foreign_keys(&store, "other").unwrap().is_some_and(|why| why.contains("WARDEN_HMAC_KEY")));
    }
}
