//! [`Table`]: one kind of per-key state, with event-time eviction, change tracking
//! and, once a spill store is attached, spilling of cold keys.
//!
//! Keys are [`StateKey`]s, fixed-size digests held inline in the slots of a
//! [`DigestMap`], which places them by their own (secret-keyed) digest bits: a
//! lookup hashes nothing, compares no key bytes out of line, and usually costs one
//! cache miss; a new key allocates nothing.
//! Every entry carries the event time at which no rule can look at it any more
//! (`evict_at`); [`Table::evict`] drops those once the watermark passes it. When
//! change tracking is on (the pipeline checkpoints), each key touched since the
//! last checkpoint is listed once, so a checkpoint writes only what changed.
//! With a spill store attached
//! ([`Table::attach_spill`]), [`Table::spill_coldest`] moves the least recently used
//! entries out of memory and every lookup reads a spilled key back first (see
//! [`cold`]), so a spilled table answers exactly as an unspilled one.
//!
//! A table told the watermark ([`Table::set_watermark`]) treats an entry past its
//! eviction time as absent on lookup, as if a sweep had just run: what it answers
//! then never depends on when [`Table::evict`] last ran, so sweeps only reclaim
//! memory and may run as rarely as that allows.

mod cold;
mod digest_map;

use hashbrown::HashMap;

use super::codec::{get_i64, put_i64, CodecError, Decode, Encode};
use super::keys::{StateKey, TenantScope};
use super::FixedState;
use crate::EventTime;

use cold::Cold;
pub use cold::ColdStats;
use digest_map::{DigestMap, Entry};

/// One kind of per-key state.
#[derive(Debug)]
pub struct Table<V> {
    map: DigestMap<Slot<V>>,
    /// Keys written or removed since the last [`Table::drain_changes`], each once
    /// (a key spilled and read back may appear twice; it is written twice).
    changed: Vec<StateKey>,
    track_changes: bool,
    counts: Counts,
    /// No entry's `evict_at`, in memory or spilled, is below this (`EventTime::MAX`
    /// when none was set).
    floor: EventTime,
    /// Lookup clock: bumped on every lookup, stamped on the entry it finds, so the
    /// entries with the oldest stamps are the coldest.
    tick: u32,
    /// Spilled entries; `None` until a spill store is attached.
    cold: Option<Box<Cold>>,
    /// Entries due at or before this are absent to lookups (`None`: never set).
    expired_through: Option<EventTime>,
}

/// Keys held, kept as keys come and go so gauges and quotas never need a pass.
#[derive(Debug, Default)]
struct Counts {
    /// Per leading 2-byte id (rule or signal).
    by_id: Vec<usize>,
    /// Per tenant scope ([`StateKey::scope`]); kept only with a spill store attached.
    by_tenant: Option<HashMap<TenantScope, usize, FixedState>>,
}

impl Counts {
    fn add(&mut self, key: &StateKey) {
        let id = usize::from(key.id());
        if self.by_id.len() <= id {
            self.by_id.resize(id + 1, 0);
        }
        self.by_id[id] += 1;
        if let Some(by_tenant) = &mut self.by_tenant {
            *by_tenant.entry(key.scope()).or_insert(0) += 1;
        }
    }

    fn sub(&mut self, key: &StateKey) {
        if let Some(n) = self.by_id.get_mut(usize::from(key.id())) {
            *n = n.saturating_sub(1);
        }
        if let Some(by_tenant) = &mut self.by_tenant {
            let scope = key.scope();
            if let Some(n) = by_tenant.get_mut(&scope) {
                *n -= 1;
                if *n == 0 {
                    by_tenant.remove(&scope);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    evict_at: EventTime,
    /// [`Table::tick`] at the last lookup.
    touched: u32,
    changed: bool,
}

/// A change to write at the next checkpoint: the key, and the encoded entry or
/// `None` for a deletion.
pub type Change = (Box<[u8]>, Option<Vec<u8>>);

/// Where [`Table::drain_changes`] and [`Table::snapshot`] put each entry, so the
/// checkpoint can encode it straight into its own buffer.
pub trait ChangeSink {
    /// `key` holds the entry that `encode` writes (`evict_at`, then the value).
    fn put(&mut self, key: &[u8], encode: impl FnOnce(&mut Vec<u8>));
    /// `key` holds nothing any more.
    fn delete(&mut self, key: &[u8]);
}

/// Drops every change: [`Table::drain_changes`] into `()` only clears the list.
impl ChangeSink for () {
    fn put(&mut self, _key: &[u8], _encode: impl FnOnce(&mut Vec<u8>)) {}
    fn delete(&mut self, _key: &[u8]) {}
}

impl ChangeSink for Vec<Change> {
    fn put(&mut self, key: &[u8], encode: impl FnOnce(&mut Vec<u8>)) {
        let mut buf = Vec::with_capacity(32);
        encode(&mut buf);
        self.push((key.into(), Some(buf)));
    }
    fn delete(&mut self, key: &[u8]) {
        self.push((key.into(), None));
    }
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            map: DigestMap::default(),
            changed: Vec::new(),
            track_changes: false,
            counts: Counts::default(),
            floor: EventTime::MAX,
            tick: 0,
            cold: None,
            expired_through: None,
        }
    }
}

impl<V> Table<V> {
    /// Turns change tracking on or off (on only when something checkpoints).
    pub fn set_track_changes(&mut self, on: bool) {
        self.track_changes = on;
    }

    /// From now on, entries due at or before `watermark` are absent to lookups.
    pub fn set_watermark(&mut self, watermark: EventTime) {
        self.expired_through = Some(watermark);
    }

    /// Number of keys held in memory.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held in memory.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys held in memory under leading id `id` (a rule or signal).
    pub fn count_of(&self, id: usize) -> usize {
        self.counts.by_id.get(id).copied().unwrap_or(0)
    }

    /// Approximate bytes held: the slot array as allocated (keys included), the
    /// pending change list, the marks of spilled keys, and `heap_per_value` per
    /// entry (the caller's estimate of a value's heap).
    pub fn approx_bytes(&self, heap_per_value: usize) -> usize {
        let per_slot = std::mem::size_of::<Option<(StateKey, Slot<V>)>>();
        let tenants = self.counts.by_tenant.as_ref().map_or(0, |t| t.capacity() * 24);
        self.map.slot_count() * per_slot
            + self.map.len() * heap_per_value
            + self.changed.capacity() * StateKey::LEN
            + tenants
            + self.cold.as_ref().map_or(0, |c| c.approx_bytes())
    }

    /// In-memory entries, in unspecified order (callers that emit must sort). A
    /// table with a spill store attached is never iterated for decisions.
    pub fn iter(&self) -> impl Iterator<Item = (&StateKey, &V)> {
        self.map.iter().map(|(k, s)| (k, &s.value))
    }

    /// Starts loading the memory a lookup of `key` will touch first, without
    /// waiting (see [`DigestMap::prefetch`]).
    pub fn prefetch(&self, key: &StateKey) {
        self.map.prefetch(key)
    }

    /// Inserts a restored entry without marking it changed.
    pub fn restore(&mut self, key: StateKey, value: V, evict_at: EventTime) {
        let slot = Slot { value, evict_at, touched: self.tick, changed: false };
        self.floor = self.floor.min(evict_at);
        if self.map.insert(key, slot).is_none() {
            self.counts.add(&key);
        }
    }
}

impl<V: Encode + Decode> Table<V> {
    /// The entry for `key`, if any and not expired; reads it back if it was spilled.
    pub fn get(&mut self, key: &StateKey) -> Option<&V> {
        self.tick = self.tick.wrapping_add(1);
        self.read_back_if_spilled(key);
        let expired_through = self.expired_through;
        let slot = self.map.get_mut(key)?;
        if expired_through.is_some_and(|w| slot.evict_at <= w) {
            return None;
        }
        slot.touched = self.tick;
        Some(&slot.value)
    }

    /// The entry for `key`, created with `init` if absent or expired; marks it
    /// changed. The caller sets the new eviction time with the returned handle.
    pub fn entry(&mut self, key: &StateKey, init: impl FnOnce() -> V) -> EntryMut<'_, V> {
        self.tick = self.tick.wrapping_add(1);
        self.read_back_if_spilled(key);
        let Table { map, changed, track_changes, counts, floor, tick, expired_through, .. } = self;
        let (slot, fresh) = match map.entry(*key) {
            Entry::Occupied(slot) => {
                let expired = expired_through.is_some_and(|w| slot.evict_at <= w);
                if expired {
                    slot.value = init();
                    slot.evict_at = EventTime::MIN;
                }
                (slot, expired)
            }
            Entry::Vacant(v) => {
                counts.add(key);
                let slot = Slot { value: init(), evict_at: EventTime::MIN, touched: 0, changed: false };
                (v.insert(slot), true)
            }
        };
        slot.touched = *tick;
        if *track_changes && !slot.changed {
            slot.changed = true;
            changed.push(*key);
        }
        EntryMut { slot, floor, fresh }
    }

    /// Removes `key`, spilled or not.
    pub fn remove(&mut self, key: &StateKey) -> Option<V> {
        self.read_back_if_spilled(key);
        let slot = self.map.remove(key)?;
        self.counts.sub(key);
        if self.track_changes && !slot.changed {
            self.changed.push(*key);
        }
        Some(slot.value)
    }

    /// Drops every entry, in memory or spilled, whose eviction time is at or before
    /// `watermark`. Returns how many were dropped.
    pub fn evict(&mut self, watermark: EventTime) -> usize {
        if watermark < self.floor {
            return 0;
        }
        let before = self.map.len();
        let track = self.track_changes;
        let Table { map, changed, counts, floor, cold, .. } = self;
        let mut lowest = EventTime::MAX;
        map.retain(|k, slot| {
            let keep = slot.evict_at > watermark;
            if keep {
                lowest = lowest.min(slot.evict_at);
            } else {
                counts.sub(k);
                if track && !slot.changed {
                    changed.push(*k);
                }
            }
            keep
        });
        let spilled = cold.as_deref_mut().map_or(0, |c| c.evict(watermark, track.then_some(changed), &mut lowest));
        *floor = lowest;
        before - self.map.len() + spilled
    }

    /// Takes the changes since the last call, encoded as `evict_at` then the value.
    /// A changed key that has since spilled is read from the spill store.
    pub fn drain_changes(&mut self, out: &mut impl ChangeSink) {
        let Table { map, changed, cold, .. } = self;
        for key in changed.iter() {
            if let Some(slot) = map.get_mut(key) {
                slot.changed = false;
                out.put(key.as_bytes(), |buf| encode_slot(slot, buf));
                continue;
            }
            match cold.as_deref_mut().map(|c| c.read_encoded(key)) {
                // A store that cannot answer: leave the checkpoint's old entry be
                // rather than delete a live key.
                Some(Err(())) => {}
                Some(Ok(Some(bytes))) => out.put(key.as_bytes(), |buf| buf.extend_from_slice(&bytes)),
                Some(Ok(None)) | None => out.delete(key.as_bytes()),
            }
        }
        changed.clear();
    }

    /// Encodes every entry, spilled ones included (a full snapshot).
    pub fn snapshot(&mut self, out: &mut impl ChangeSink) {
        for (k, slot) in self.map.iter() {
            out.put(k.as_bytes(), |buf| encode_slot(slot, buf));
        }
        if let Some(cold) = self.cold.as_deref_mut() {
            cold.snapshot(out);
        }
    }

    /// Restores one encoded entry written by [`Table::drain_changes`].
    pub fn restore_encoded(&mut self, key: &[u8], mut bytes: &[u8]) -> Result<(), CodecError> {
        let key = StateKey::from_bytes(key)?;
        let evict_at = get_i64(&mut bytes)?;
        let value = V::decode(&mut bytes)?;
        self.restore(key, value, evict_at);
        Ok(())
    }
}

fn encode_slot<V: Encode>(slot: &Slot<V>, buf: &mut Vec<u8>) {
    put_i64(buf, slot.evict_at);
    slot.value.encode(buf);
}

/// A table seen without its value type: what the engine does to every detector
/// table alike (see [`crate::detector::Tables::each_mut`]).
pub trait AnyTable {
    /// [`Table::len`].
    fn len(&self) -> usize;
    /// [`Table::is_empty`].
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// [`Table::count_of`].
    fn count_of(&self, id: usize) -> usize;
    /// [`Table::approx_bytes`].
    fn approx_bytes(&self, heap_per_value: usize) -> usize;
    /// [`Table::spilled_len`].
    fn spilled_len(&self) -> usize;
    /// In-memory keys per tenant scope, appended to `into`.
    fn tenant_counts(&self, into: &mut Vec<(TenantScope, usize)>);
    /// [`Table::tenant_count`].
    fn tenant_count(&self, scope: &TenantScope) -> usize;
    /// [`Table::set_track_changes`].
    fn set_track_changes(&mut self, on: bool);
    /// [`Table::set_watermark`].
    fn set_watermark(&mut self, watermark: EventTime);
    /// [`Table::evict`].
    fn evict(&mut self, watermark: EventTime) -> usize;
    /// [`Table::attach_spill`].
    fn attach_spill(&mut self, tag: u8, store: super::spill::SharedSpill);
    /// [`Table::spill_coldest`].
    fn spill_coldest(&mut self, n: usize, tenant: Option<&TenantScope>) -> usize;
}

impl<V: Encode + Decode> AnyTable for Table<V> {
    fn len(&self) -> usize {
        Table::len(self)
    }
    fn count_of(&self, id: usize) -> usize {
        Table::count_of(self, id)
    }
    fn approx_bytes(&self, heap_per_value: usize) -> usize {
        Table::approx_bytes(self, heap_per_value)
    }
    fn spilled_len(&self) -> usize {
        Table::spilled_len(self)
    }
    fn tenant_counts(&self, into: &mut Vec<(TenantScope, usize)>) {
        into.extend(Table::tenant_counts(self));
    }
    fn tenant_count(&self, scope: &TenantScope) -> usize {
        Table::tenant_count(self, scope)
    }
    fn set_track_changes(&mut self, on: bool) {
        Table::set_track_changes(self, on)
    }
    fn set_watermark(&mut self, watermark: EventTime) {
        Table::set_watermark(self, watermark)
    }
    fn evict(&mut self, watermark: EventTime) -> usize {
        Table::evict(self, watermark)
    }
    fn attach_spill(&mut self, tag: u8, store: super::spill::SharedSpill) {
        Table::attach_spill(self, tag, store)
    }
    fn spill_coldest(&mut self, n: usize, tenant: Option<&TenantScope>) -> usize {
        Table::spill_coldest(self, n, tenant)
    }
}

/// A mutable handle on one entry.
pub struct EntryMut<'t, V> {
    slot: &'t mut Slot<V>,
    floor: &'t mut EventTime,
    fresh: bool,
}

impl<V> EntryMut<'_, V> {
    /// True when this lookup created the entry (the key was absent or expired), so
    /// a caller needs no separate [`Table::get`] probe to tell first sightings.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// The value.
    pub fn value(&mut self) -> &mut V {
        &mut self.slot.value
    }

    /// Sets when the entry may be evicted; never moves it earlier, because another
    /// rule sharing the entry may still need it.
    pub fn keep_until(&mut self, evict_at: EventTime) {
        self.slot.evict_at = self.slot.evict_at.max(evict_at);
        *self.floor = (*self.floor).min(self.slot.evict_at);
    }

    /// Sets the eviction time outright.
    pub fn set_evict_at(&mut self, evict_at: EventTime) {
        self.slot.evict_at = evict_at;
        *self.floor = (*self.floor).min(evict_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(key: &[u8]) -> StateKey {
        StateKey::of(key)
    }

    #[test]
    fn tracks_each_changed_key_once_and_deletions() {
        let mut t: Table<i64> = Table::default();
        t.set_track_changes(true);
        *t.entry(&k(b"a"), || 0).value() += 1;
        *t.entry(&k(b"a"), || 0).value() += 1;
        t.entry(&k(b"b"), || 7).keep_until(100);
        let mut changes = Vec::new();
        t.drain_changes(&mut changes);
        assert_eq!(changes.len(), 2);
        changes.clear();
        assert_eq!(t.evict(100), 2, "a has evict_at MIN, b 100");
        t.drain_changes(&mut changes);
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|(_, v)| v.is_none()));
    }

    #[test]
    fn counts_keys_per_rule_as_they_come_and_go() {
        let mut t: Table<i64> = Table::default();
        t.entry(&k(&[0, 3, b'a']), || 0).keep_until(10);
        t.entry(&k(&[0, 3, b'b']), || 0).keep_until(20);
        t.entry(&k(&[0, 3, b'b']), || 0);
        t.entry(&k(&[0, 1, b'c']), || 0).keep_until(20);
        assert_eq!((t.count_of(3), t.count_of(1), t.count_of(7)), (2, 1, 0));
        t.evict(10);
        t.remove(&k(&[0, 1, b'c']));
        assert_eq!((t.count_of(3), t.count_of(1)), (1, 0));
    }

    #[test]
    fn a_sweep_skips_the_table_until_the_watermark_reaches_its_earliest_eviction() {
        let mut t: Table<i64> = Table::default();
        t.entry(&k(b"day"), || 0).keep_until(86_400_000);
        t.entry(&k(b"minute"), || 0).keep_until(60_000);
        assert_eq!(t.evict(59_999), 0);
        assert_eq!(t.floor, 60_000);
        assert_eq!(t.evict(60_000), 1, "the minute key goes");
        assert_eq!(t.floor, 86_400_000, "the floor is exact after a pass");
        t.entry(&k(b"new"), || 0).set_evict_at(70_000);
        assert_eq!(t.floor, 70_000, "a new earlier entry lowers it");
        assert_eq!(t.evict(70_000), 1);
        assert_eq!(t.evict(86_400_000), 1);
        assert!(t.is_empty());
        assert_eq!(t.floor, EventTime::MAX);
    }

    #[test]
    fn told_the_watermark_a_due_entry_is_absent_before_any_sweep() {
        let mut t: Table<i64> = Table::default();
        t.entry(&k(b"k"), || 1).keep_until(100);
        t.set_watermark(99);
        assert_eq!(t.get(&k(b"k")), Some(&1));
        assert!(!t.entry(&k(b"k"), || 0).is_fresh(), "live: found, not created");
        t.set_watermark(100);
        assert_eq!(t.get(&k(b"k")), None, "due at 100: gone to lookups");
        let mut e = t.entry(&k(b"k"), || 7);
        assert!(e.is_fresh());
        assert_eq!(*e.value(), 7, "and created afresh");
        assert_eq!(t.len(), 1, "no sweep ran; the slot was reused");
    }

    #[test]
    fn restores_what_it_encoded() {
        let mut t: Table<i64> = Table::default();
        t.set_track_changes(true);
        let mut e = t.entry(&k(b"k"), || 42);
        e.keep_until(9);
        let mut changes = Vec::new();
        t.drain_changes(&mut changes);
        let mut r: Table<i64> = Table::default();
        for (k, v) in &changes {
            r.restore_encoded(k, v.as_deref().unwrap()).unwrap();
        }
        assert_eq!(r.get(&k(b"k")), Some(&42));
        assert_eq!(r.evict(8), 0);
        assert_eq!(r.evict(9), 1);
    }
}
