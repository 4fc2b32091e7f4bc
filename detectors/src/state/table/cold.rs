//! The spilled half of a [`Table`]: which keys are out of memory, and how they
//! leave and come back.
//!
//! A spilled entry leaves a mark in memory (its key's hash → its `evict_at`), so
//! a lookup of a key that was never spilled costs one hash probe, not a read, and
//! spilled entries expire on time without being read. The record in the store
//! holds the full key: two keys with the same hash are told apart on read, and the
//! second of them is never spilled while the first is out.

use std::sync::{Mutex, MutexGuard};

use hashbrown::HashMap;

use super::{ChangeSink, Slot, Table};
use crate::state::codec::{get_bytes, get_i64, put_bytes, put_i64, Decode, Encode};
use crate::state::keys::{StateKey, TenantScope};
use crate::state::spill::{key_hash, SharedSpill, Spill, SpillKey};
use crate::state::FixedState;
use crate::EventTime;

/// Counts of one table's spilling, since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColdStats {
    /// Entries moved out of memory.
    pub spilled: u64,
    /// Entries read back on lookup.
    pub read_back: u64,
    /// Store failures (an entry kept in memory, or one lost on read).
    pub errors: u64,
}

/// Spilled entries of one table.
pub(super) struct Cold {
    /// The table's tag in the store.
    tag: u8,
    store: SharedSpill,
    /// Spilled keys: hash → `evict_at`.
    index: HashMap<u64, EventTime, FixedState>,
    stats: ColdStats,
}

impl std::fmt::Debug for Cold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cold").field("tag", &self.tag).field("spilled", &self.index.len()).finish_non_exhaustive()
    }
}

fn lock(store: &Mutex<dyn Spill>) -> MutexGuard<'_, dyn Spill + 'static> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// Splits a record into its key and its checkpoint encoding (`evict_at`, value).
fn split_record(mut record: &[u8]) -> Option<(&[u8], &[u8])> {
    let key = get_bytes(&mut record).ok()?;
    Some((key, record))
}

impl Cold {
    pub(super) fn approx_bytes(&self) -> usize {
        self.index.capacity() * (8 + 8 + 1)
    }

    /// The record of `key` (whose [`key_hash`] is `hash`), if it is spilled
    /// (`Err` when the store failed).
    fn record_of(&mut self, key: &StateKey, hash: u64) -> Result<Option<Vec<u8>>, ()> {
        let Some(&evict_at) = self.index.get(&hash) else {
            return Ok(None);
        };
        match lock(&self.store).get(self.tag, SpillKey { evict_at, hash }) {
            Ok(Some(record)) if split_record(&record).is_some_and(|(k, _)| k == key.as_bytes()) => Ok(Some(record)),
            Ok(_) => Ok(None),
            Err(_) => {
                self.stats.errors += 1;
                Err(())
            }
        }
    }

    /// The checkpoint encoding of spilled `key`: `Ok(None)` when it is not spilled.
    pub(super) fn read_encoded(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, ()> {
        Ok(self.record_of(key, key_hash(key.as_bytes()))?.and_then(|r| split_record(&r).map(|(_, body)| body.to_vec())))
    }

    /// Drops spilled entries due at `watermark`; lists their keys as deleted when
    /// `changed` is given; lowers `lowest` to the earliest `evict_at` kept.
    pub(super) fn evict(
        &mut self,
        watermark: EventTime,
        changed: Option<&mut Vec<StateKey>>,
        lowest: &mut EventTime,
    ) -> usize {
        let before = self.index.len();
        self.index.retain(|_, evict_at| {
            let keep = *evict_at > watermark;
            if keep {
                *lowest = (*lowest).min(*evict_at);
            }
            keep
        });
        // Nothing was ever written: no store call (sweeps are frequent).
        if self.stats.spilled == 0 {
            return 0;
        }
        // The checkpoint knows entries by key, so a tracked table lists the keys of
        // the records it drops (a record already read back is listed too; the
        // checkpoint then writes whatever the table holds for that key).
        let result = match changed {
            Some(changed) => {
                let mut list = |record: &[u8]| {
                    if let Some(key) = split_record(record).and_then(|(k, _)| StateKey::from_bytes(k).ok()) {
                        changed.push(key);
                    }
                };
                lock(&self.store).remove_through(self.tag, watermark, Some(&mut list))
            }
            None => lock(&self.store).remove_through(self.tag, watermark, None),
        };
        if result.is_err() {
            self.stats.errors += 1;
        }
        before - self.index.len()
    }

    /// Appends every spilled entry's checkpoint encoding.
    pub(super) fn snapshot(&mut self, out: &mut impl ChangeSink) {
        let mut store = lock(&self.store);
        for (&hash, &evict_at) in &self.index {
            match store.get(self.tag, SpillKey { evict_at, hash }) {
                Ok(Some(record)) => {
                    if let Some((key, body)) = split_record(&record) {
                        out.put(key, |buf| buf.extend_from_slice(body));
                    }
                }
                Ok(None) => {}
                Err(_) => self.stats.errors += 1,
            }
        }
    }
}

impl<V> Table<V> {
    /// Attaches a spill store, under table tag `tag`, and starts counting keys per
    /// tenant for quotas.
    pub fn attach_spill(&mut self, tag: u8, store: SharedSpill) {
        let mut by_tenant: HashMap<TenantScope, usize, FixedState> = HashMap::with_hasher(FixedState::default());
        for key in self.map.keys() {
            *by_tenant.entry(key.scope()).or_insert(0) += 1;
        }
        self.counts.by_tenant = Some(by_tenant);
        self.cold = Some(Box::new(Cold {
            tag,
            store,
            index: HashMap::with_hasher(FixedState::default()),
            stats: ColdStats::default(),
        }));
    }

    /// Keys spilled out of memory now.
    pub fn spilled_len(&self) -> usize {
        self.cold.as_ref().map_or(0, |c| c.index.len())
    }

    /// Spill counts since creation.
    pub fn cold_stats(&self) -> ColdStats {
        self.cold.as_ref().map_or_else(ColdStats::default, |c| c.stats)
    }

    /// In-memory keys per tenant scope (empty without a spill store).
    pub fn tenant_counts(&self) -> impl Iterator<Item = (TenantScope, usize)> + '_ {
        self.counts.by_tenant.iter().flat_map(|m| m.iter().map(|(k, n)| (*k, *n)))
    }

    /// In-memory keys of one tenant scope.
    pub fn tenant_count(&self, scope: &TenantScope) -> usize {
        self.counts.by_tenant.as_ref().and_then(|m| m.get(scope)).copied().unwrap_or(0)
    }
}

impl<V: Encode + Decode> Table<V> {
    /// Moves up to `n` of the least recently used in-memory entries (only those of
    /// tenant scope `tenant`, if given) to the spill store. Returns how many moved;
    /// none without a spill store, or when the store fails (then all stay).
    pub fn spill_coldest(&mut self, n: usize, tenant: Option<&TenantScope>) -> usize {
        let Table { map, counts, cold, tick, .. } = self;
        let Some(cold) = cold.as_deref_mut() else { return 0 };
        let wanted = |k: &StateKey| tenant.is_none_or(|t| k.scope() == *t);
        let mut ages: Vec<u32> =
            map.iter().filter(|(k, _)| wanted(k)).map(|(_, s)| tick.wrapping_sub(s.touched)).collect();
        let n = n.min(ages.len());
        if n == 0 {
            return 0;
        }
        let cut = ages.len() - n;
        let threshold = *ages.select_nth_unstable(cut).1;
        let mut at_threshold = n - ages.iter().filter(|&&a| a > threshold).count();
        drop(ages);
        let mut records = Vec::with_capacity(n);
        for (key, slot) in map.iter() {
            if !wanted(key) {
                continue;
            }
            let age = tick.wrapping_sub(slot.touched);
            if age < threshold || (age == threshold && at_threshold == 0) {
                continue;
            }
            if age == threshold {
                at_threshold -= 1;
            }
            let hash = key_hash(key.as_bytes());
            // Another key with this hash is out: this one stays in memory.
            if cold.index.try_insert(hash, slot.evict_at).is_err() {
                continue;
            }
            let mut record = Vec::with_capacity(StateKey::LEN + 40);
            put_bytes(&mut record, key.as_bytes());
            put_i64(&mut record, slot.evict_at);
            slot.value.encode(&mut record);
            records.push((SpillKey { evict_at: slot.evict_at, hash }, record));
        }
        if lock(&cold.store).put_many(cold.tag, &mut records).is_err() {
            cold.stats.errors += 1;
            for (key, _) in &records {
                cold.index.remove(&key.hash);
            }
            return 0;
        }
        for (_, record) in &records {
            if let Some(key) = split_record(record).and_then(|(k, _)| StateKey::from_bytes(k).ok()) {
                // A changed entry stays listed: the checkpoint reads it from the store.
                map.remove(&key);
                counts.sub(&key);
            }
        }
        // A map keeps its capacity as keys leave; the budget counts capacity.
        if map.len() < map.capacity() / 2 {
            map.shrink_to_fit();
        }
        cold.stats.spilled += records.len() as u64;
        records.len()
    }

    /// Brings `key` back into memory if it is spilled.
    pub(super) fn read_back_if_spilled(&mut self, key: &StateKey) {
        let Some(cold) = self.cold.as_deref_mut() else { return };
        if cold.index.is_empty() || self.map.contains_key(key) {
            return;
        }
        // Past its time, a spilled entry is as good as gone: no read.
        let hash = key_hash(key.as_bytes());
        if cold.index.get(&hash).is_some_and(|&at| self.expired_through.is_some_and(|w| at <= w)) {
            cold.index.remove(&hash);
            return;
        }
        let Ok(Some(record)) = cold.record_of(key, hash) else { return };
        let Some(evict_at) = cold.index.remove(&hash) else { return };
        // The record stays in the store until its time passes (see `Spill`).
        let decoded = split_record(&record).and_then(|(_, mut body)| {
            let _ = get_i64(&mut body).ok()?;
            V::decode(&mut body).ok()
        });
        let Some(value) = decoded else {
            cold.stats.errors += 1;
            return;
        };
        cold.stats.read_back += 1;
        // Listed as changed again: the next checkpoint rewrites the same value,
        // which is harmless, and a later change needs no second listing.
        let changed = self.track_changes;
        if changed {
            self.changed.push(*key);
        }
        self.counts.add(key);
        self.map.insert(*key, Slot { value, evict_at, touched: self.tick, changed });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::spill::{shared, MemSpill, SpillError, Visit};

    fn spilled_table() -> (Table<i64>, Arc<Mutex<MemSpill>>) {
        let store = Arc::new(Mutex::new(MemSpill::default()));
        let mut t = Table::default();
        t.attach_spill(1, store.clone());
        (t, store)
    }

    fn key(tenant: &str, n: u32) -> StateKey {
        let mut k = crate::state::keys::KeyBuf::default();
        k.start(crate::rules::RuleId(0), Some(tenant)).num(u64::from(n));
        k.state_key()
    }

    #[test]
    fn spills_the_least_recently_used_and_reads_them_back_exactly() {
        let (mut t, store) = spilled_table();
        for i in 0..10 {
            t.entry(&key("a", i), || i64::from(i) * 10).keep_until(1_000 + i64::from(i));
        }
        for i in 5..10 {
            t.get(&key("a", i));
        }
        assert_eq!(t.spill_coldest(5, None), 5);
        assert_eq!((t.len(), t.spilled_len(), store.lock().unwrap().records.len()), (5, 5, 5));
        assert!((0..5).all(|i| !t.map.contains_key(&key("a", i))), "the five untouched keys went");
        assert_eq!(t.get(&key("a", 3)), Some(&30));
        assert_eq!((t.len(), t.spilled_len()), (6, 4));
        assert_eq!(t.cold_stats(), ColdStats { spilled: 5, read_back: 1, errors: 0 });
        assert_eq!(t.evict(1_002), 3, "0, 1 and 2 are spilled and due");
        assert_eq!((t.len(), t.spilled_len()), (6, 1));
        assert_eq!(t.evict(1_009), 7);
        assert!(t.is_empty() && t.spilled_len() == 0 && store.lock().unwrap().records.is_empty());
    }

    #[test]
    fn a_tenant_spill_takes_only_that_tenants_keys() {
        let (mut t, _store) = spilled_table();
        for i in 0..6 {
            t.entry(&key("noisy", i), || 0).keep_until(10);
            t.entry(&key("quiet", i), || 0).keep_until(10);
        }
        let noisy = key("noisy", 0).scope();
        assert_eq!(t.tenant_count(&noisy), 6);
        assert_eq!(t.spill_coldest(100, Some(&noisy)), 6);
        assert_eq!((t.tenant_count(&noisy), t.tenant_count(&key("quiet", 0).scope())), (0, 6));
        *t.entry(&key("noisy", 2), || 0).value() += 1;
        assert_eq!(t.tenant_count(&noisy), 1);
    }

    #[test]
    fn checkpoints_see_spilled_changes_and_spilled_evictions() {
        let (mut t, _store) = spilled_table();
        t.set_track_changes(true);
        t.entry(&key("a", 1), || 7).keep_until(100);
        t.entry(&key("a", 2), || 8).keep_until(200);
        assert_eq!(t.spill_coldest(2, None), 2);
        let mut changes = Vec::new();
        t.drain_changes(&mut changes);
        changes.sort();
        let mut want = Vec::new();
        for (k, v, at) in [(key("a", 1), 7i64, 100i64), (key("a", 2), 8, 200)] {
            let mut b = Vec::new();
            put_i64(&mut b, at);
            v.encode(&mut b);
            want.push((k.as_bytes()[..].into(), Some(b)));
        }
        want.sort();
        assert_eq!(changes, want, "changed entries spilled before the checkpoint are written from the store");
        changes.clear();
        assert_eq!(t.evict(100), 1);
        t.drain_changes(&mut changes);
        assert_eq!(changes, vec![(key("a", 1).as_bytes()[..].into(), None)], "a spilled entry's expiry deletes it");
        let mut full = Vec::new();
        t.snapshot(&mut full);
        assert_eq!(full.len(), 1, "a full snapshot includes spilled entries");
    }

    #[derive(Debug)]
    struct Broken;
    impl Spill for Broken {
        fn put_many(&mut self, _: u8, _: &mut [(SpillKey, Vec<u8>)]) -> Result<(), SpillError> {
            Err(SpillError("disk full".into()))
        }
        fn get(&mut self, _: u8, _: SpillKey) -> Result<Option<Vec<u8>>, SpillError> {
            Ok(None)
        }
        fn remove_through(&mut self, _: u8, _: EventTime, _: Option<Visit<'_>>) -> Result<(), SpillError> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_store_keeps_everything_in_memory() {
        let mut t: Table<i64> = Table::default();
        t.attach_spill(1, shared(Broken));
        t.entry(&key("a", 1), || 5);
        assert_eq!(t.spill_coldest(1, None), 0);
        assert_eq!((t.len(), t.spilled_len(), t.cold_stats().errors), (1, 0, 1));
        assert_eq!(t.get(&key("a", 1)), Some(&5));
    }
}
