//! Spilling cold state out of memory, and reading it back.
//!
//! When a partition's state passes its memory budget, or one tenant passes its key
//! quota, the coldest entries of the detector tables move to a [`Spill`] store and
//! leave only a mark in memory: the key's 64-bit hash and its eviction time. A
//! lookup of a spilled key reads it back first, so detections are exactly those of
//! an unbounded run. Spilled entries expire on the same event-time horizon as the
//! rest. Spill is not durability: checkpoints hold every entry, spilled or not,
//! and a partition's spill store is emptied when the partition starts.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use super::FixedState;
use crate::EventTime;

/// Why a spill store failed. The table keeps the entry in memory instead (a
/// failed write) or counts it lost (a failed read); see [`super::table::ColdStats`].
#[derive(Debug, thiserror::Error)]
#[error("spill store: {0}")]
pub struct SpillError(pub String);

/// Where a spilled record is filed: its entry's eviction time, then its key's
/// hash. Time first, so the records due at a watermark are one range, dropped in
/// one call ([`Spill::remove_through`]) without a read per record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpillKey {
    /// The entry's `evict_at`.
    pub evict_at: EventTime,
    /// [`key_hash`] of the entry's key.
    pub hash: u64,
}

impl SpillKey {
    /// 16 bytes that sort as the key does (the time's sign bit flipped).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&((self.evict_at as u64) ^ (1 << 63)).to_be_bytes());
        b[8..].copy_from_slice(&self.hash.to_be_bytes());
        b
    }
}

/// Where spilled entries go. A record holds its entry's full key, so a hash
/// collision is detected on read, never misread. A record read back stays in the
/// store until its time passes (a delete per read would cost as much as the
/// write); callers go by their own marks, never by what the store still holds.
pub trait Spill: Send + fmt::Debug {
    /// Stores `records` of table `tag` in one write (sorting them first is allowed).
    fn put_many(&mut self, tag: u8, records: &mut [(SpillKey, Vec<u8>)]) -> Result<(), SpillError>;
    /// The record filed under `key`, if any.
    fn get(&mut self, tag: u8, key: SpillKey) -> Result<Option<Vec<u8>>, SpillError>;
    /// Removes every record of `tag` due at `watermark` (`evict_at <= watermark`),
    /// showing each to `visit` first when one is given.
    fn remove_through(&mut self, tag: u8, watermark: EventTime, visit: Option<Visit<'_>>) -> Result<(), SpillError>;
}

/// Shown each record [`Spill::remove_through`] drops.
pub type Visit<'v> = &'v mut dyn FnMut(&[u8]);

/// A spill store shared by the tables of one partition.
pub type SharedSpill = Arc<Mutex<dyn Spill>>;

/// Wraps a store for sharing.
pub fn shared(store: impl Spill + 'static) -> SharedSpill {
    Arc::new(Mutex::new(store))
}

/// The hash a spilled key is filed under (fixed seed: the same key always maps to
/// the same record, so runs replay identically).
pub fn key_hash(key: &[u8]) -> u64 {
    FixedState::default().hash_one(key)
}

/// Spilled records in a map: for tests, and for keeping the trait honest.
#[derive(Debug, Default)]
pub struct MemSpill {
    /// (tag, key) → record.
    pub records: BTreeMap<(u8, SpillKey), Vec<u8>>,
}

impl Spill for MemSpill {
    fn put_many(&mut self, tag: u8, records: &mut [(SpillKey, Vec<u8>)]) -> Result<(), SpillError> {
        for (key, record) in records.iter() {
            self.records.insert((tag, *key), record.clone());
        }
        Ok(())
    }

    fn get(&mut self, tag: u8, key: SpillKey) -> Result<Option<Vec<u8>>, SpillError> {
        Ok(self.records.get(&(tag, key)).cloned())
    }

    fn remove_through(
        &mut self,
        tag: u8,
        watermark: EventTime,
        mut visit: Option<Visit<'_>>,
    ) -> Result<(), SpillError> {
        let due = SpillKey { evict_at: watermark, hash: u64::MAX };
        let lo = SpillKey { evict_at: EventTime::MIN, hash: 0 };
        let keys: Vec<_> = self.records.range((tag, lo)..=(tag, due)).map(|(k, _)| *k).collect();
        for k in keys {
            if let (Some(record), Some(visit)) = (self.records.remove(&k), visit.as_deref_mut()) {
                visit(&record);
            }
        }
        Ok(())
    }
}
