//! [`DigestMap`]: the hash map under every [`super::Table`], built for keys that
//! are already keyed digests.
//!
//! A [`StateKey`]'s last 16 bytes are a digest under the deployment's secret, so
//! they are as good as a hash and no one outside can aim keys at one slot: the
//! map takes its home slot straight from them (mixed with the rule id, since two
//! rules may digest the same key bytes) and hashes nothing. Entries live inline in
//! one array with linear probing, so a lookup is usually one cache miss where a
//! SwissTable takes two (its control bytes, then the bucket). Removal shifts
//! the rest of the run back (no tombstones), so lookups never slow down as keys
//! come and go.

use super::StateKey;

/// Below this many slots the map never shrinks.
const MIN_SLOTS: usize = 8;

/// An open-addressing map from [`StateKey`] to `T`, at most three quarters full.
#[derive(Debug)]
pub struct DigestMap<T> {
    /// A power of two in length (or empty); `None` is a free slot.
    slots: Vec<Option<(StateKey, T)>>,
    len: usize,
}

impl<T> Default for DigestMap<T> {
    fn default() -> Self {
        DigestMap { slots: Vec::new(), len: 0 }
    }
}

/// What [`DigestMap::entry`] found.
pub enum Entry<'m, T> {
    /// The key is held: its value.
    Occupied(&'m mut T),
    /// The key is not held: where it goes.
    Vacant(Vacant<'m, T>),
}

/// A free slot for a key, from [`DigestMap::entry`].
pub struct Vacant<'m, T> {
    map: &'m mut DigestMap<T>,
    slot: usize,
    key: StateKey,
}

impl<'m, T> Vacant<'m, T> {
    /// Puts `value` in the slot.
    pub fn insert(self, value: T) -> &'m mut T {
        let Vacant { map, slot, key } = self;
        map.len += 1;
        let (_, v) = map.slots[slot].insert((key, value));
        v
    }
}

/// The 64 bits of a key that place it: digest bits, mixed with the rule id.
fn placement(key: &StateKey) -> u64 {
    let b = key.as_bytes();
    let mut lo = [0u8; 8];
    lo.copy_from_slice(&b[8..16]);
    u64::from_le_bytes(lo) ^ u64::from(key.id()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl<T> DigestMap<T> {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries the map holds before it grows.
    pub fn capacity(&self) -> usize {
        self.slots.len() / 4 * 3
    }

    /// Slots allocated (each the size of an `Option<(StateKey, T)>`).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn home(&self, key: &StateKey) -> usize {
        placement(key) as usize & self.mask()
    }

    /// The slot holding `key`, or `Err` with the free slot that ends its run.
    /// Call only with slots allocated; the probe ends because the map is never
    /// more than three quarters full.
    fn find(&self, key: &StateKey) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            match &self.slots[i] {
                None => return Err(i),
                Some((k, _)) if k == key => return Ok(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Asks the CPU to start loading the slots where a lookup of `key` starts
    /// (its home slot and the next, which a probe or a slot that straddles a
    /// cache line reads too), without waiting: work done meanwhile hides the
    /// miss, and a lookup soon after finds them in cache.
    pub fn prefetch(&self, key: &StateKey) {
        for slot in self.slots.iter().skip(self.home(key)).take(2) {
            prefetch_slot(slot);
        }
    }

    /// True when `key` is held.
    pub fn contains_key(&self, key: &StateKey) -> bool {
        !self.slots.is_empty() && self.find(key).is_ok()
    }

    /// The value at `key`.
    pub fn get_mut(&mut self, key: &StateKey) -> Option<&mut T> {
        if self.slots.is_empty() {
            return None;
        }
        let i = self.find(key).ok()?;
        self.slots[i].as_mut().map(|(_, v)| v)
    }

    /// The entry at `key`, held or free; growing first if a new entry would not fit.
    pub fn entry(&mut self, key: StateKey) -> Entry<'_, T> {
        match self.find_for_insert(&key) {
            Ok(i) => match &mut self.slots[i] {
                Some((_, v)) => Entry::Occupied(v),
                None => unreachable!("find returned a full slot"),
            },
            Err(slot) => Entry::Vacant(Vacant { map: self, slot, key }),
        }
    }

    /// Puts `value` at `key`; returns the value it replaced.
    pub fn insert(&mut self, key: StateKey, value: T) -> Option<T> {
        match self.find_for_insert(&key) {
            Ok(i) => self.slots[i].replace((key, value)).map(|(_, v)| v),
            Err(i) => {
                self.slots[i] = Some((key, value));
                self.len += 1;
                None
            }
        }
    }

    /// [`DigestMap::find`], after growing if one more entry would not fit.
    fn find_for_insert(&mut self, key: &StateKey) -> Result<usize, usize> {
        let free = match self.slots.is_empty() {
            true => None,
            false => match self.find(key) {
                Ok(i) => return Ok(i),
                Err(i) => Some(i),
            },
        };
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize(slots_for(self.len + 1));
            return self.find(key);
        }
        free.map_or_else(|| self.find(key), Err)
    }

    /// Takes `key` out.
    pub fn remove(&mut self, key: &StateKey) -> Option<T> {
        if self.slots.is_empty() {
            return None;
        }
        let i = self.find(key).ok()?;
        Some(self.remove_at(i))
    }

    /// Empties slot `i` (which must be full) and shifts back the entries after
    /// it whose probe passed through it, so every entry stays reachable from its
    /// home without tombstones.
    fn remove_at(&mut self, i: usize) -> T {
        let mask = self.mask();
        let taken = self.slots[i].take();
        self.len -= 1;
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while let Some((k, _)) = &self.slots[j] {
            let home = self.home(k);
            // Movable unless its home lies cyclically in (hole, j].
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
            j = (j + 1) & mask;
        }
        match taken {
            Some((_, v)) => v,
            None => unreachable!("remove_at is only called on a full slot"),
        }
    }

    /// Keeps the entries for which `keep` is true; calls it once per entry.
    pub fn retain(&mut self, mut keep: impl FnMut(&StateKey, &mut T) -> bool) {
        let n = self.slots.len();
        // Start just after a free slot: a removal shifts entries back only
        // within its run, which then never reaches entries already visited.
        let Some(free) = self.slots.iter().position(Option::is_none) else { return };
        let mask = self.mask();
        let mut i = (free + 1) & mask;
        let mut visited = 0;
        while visited < n {
            let drop = match &mut self.slots[i] {
                Some((k, v)) => !keep(k, v),
                None => false,
            };
            if drop {
                // The slot now holds the run's next entry, unvisited: look again.
                self.remove_at(i);
                if self.slots[i].is_some() {
                    continue;
                }
            }
            visited += 1;
            i = (i + 1) & mask;
        }
    }

    /// The entries, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&StateKey, &T)> {
        self.slots.iter().filter_map(|s| s.as_ref().map(|(k, v)| (k, v)))
    }

    /// The keys, in slot order.
    pub fn keys(&self) -> impl Iterator<Item = &StateKey> {
        self.iter().map(|(k, _)| k)
    }

    /// Reallocates to the fewest slots that hold the entries.
    pub fn shrink_to_fit(&mut self) {
        let want = slots_for(self.len);
        if want < self.slots.len() {
            self.resize(want);
        }
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, Vec::with_capacity(slots));
        self.slots.resize_with(slots, || None);
        let mask = self.mask();
        for (key, value) in old.into_iter().flatten() {
            let mut i = self.home(&key);
            while self.slots[i].is_some() {
                i = (i + 1) & mask;
            }
            self.slots[i] = Some((key, value));
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn prefetch_slot<T>(slot: &T) {
    safe_arch::prefetch_t0(slot);
}

/// Other targets: no prefetch (the lookup then waits for its miss).
#[cfg(not(target_arch = "x86_64"))]
fn prefetch_slot<T>(_slot: &T) {}

/// Slots for `len` entries at most three quarters full.
fn slots_for(len: usize) -> usize {
    (len * 4).div_ceil(3).next_power_of_two().max(MIN_SLOTS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// A key whose placement bits are `slot`, so tests can force collisions.
    fn key(id: u16, slot: u64, tag: u8) -> StateKey {
        let mut b = [0u8; StateKey::LEN];
        b[..2].copy_from_slice(&id.to_be_bytes());
        b[8..16].copy_from_slice(&(slot ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
        b[16] = tag;
        StateKey::from_bytes(&b).expect("24 bytes")
    }

    #[test]
    fn colliding_keys_stay_apart_and_removal_keeps_the_rest_reachable() {
        let mut m = DigestMap::default();
        for t in 0..4 {
            m.insert(key(1, 3, t), t);
        }
        assert_eq!(m.remove(&key(1, 3, 1)), Some(1));
        for t in [0, 2, 3] {
            assert_eq!(m.get_mut(&key(1, 3, t)), Some(&mut t.clone()), "tag {t}");
        }
        assert!(!m.contains_key(&key(1, 3, 1)));
        assert_eq!(m.len(), 3);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u64, u8),
        Remove(u16, u64, u8),
        Retain(u8),
        Shrink,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct placements, so runs collide and wrap around the array.
        prop_oneof![
            4 => (0u16..3, 0u64..24, 0u8..4).prop_map(|(i, s, t)| Op::Insert(i, s, t)),
            2 => (0u16..3, 0u64..24, 0u8..4).prop_map(|(i, s, t)| Op::Remove(i, s, t)),
            1 => (0u8..8).prop_map(Op::Retain),
            1 => Just(Op::Shrink),
        ]
    }

    proptest! {
        /// The map answers as `std`'s `HashMap` after any sequence of operations.
        #[test]
        fn agrees_with_a_std_hash_map(ops in proptest::collection::vec(op(), 1..200)) {
            let mut m = DigestMap::default();
            let mut oracle: HashMap<StateKey, u32> = HashMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                let n = n as u32;
                match op {
                    Op::Insert(i, s, t) => {
                        let k = key(i, s, t);
                        prop_assert_eq!(m.insert(k, n), oracle.insert(k, n));
                    }
                    Op::Remove(i, s, t) => {
                        let k = key(i, s, t);
                        prop_assert_eq!(m.remove(&k), oracle.remove(&k));
                    }
                    Op::Retain(r) => {
                        let mut calls = 0;
                        m.retain(|_, v| { calls += 1; *v % 8 != u32::from(r) });
                        prop_assert_eq!(calls, oracle.len(), "one call per entry");
                        oracle.retain(|_, v| *v % 8 != u32::from(r));
                    }
                    Op::Shrink => m.shrink_to_fit(),
                }
                prop_assert_eq!(m.len(), oracle.len());
                for (k, v) in &oracle {
                    prop_assert_eq!(m.get_mut(k).map(|v| *v), Some(*v));
                }
                prop_assert_eq!(m.iter().count(), oracle.len());
            }
        }
    }
}
