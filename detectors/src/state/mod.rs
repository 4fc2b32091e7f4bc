//! Per-partition state: what it is made of, how it is keyed, and where it is kept.
//!
//! - [`table::Table`]: one kind of per-key value, evicted by event time, with change
//!   tracking so a checkpoint writes only what changed.
//! - [`keys`]: the key layout; [`codec`]: the byte encoding; [`values`]: small values.
//! - [`checkpoint`]: a [`crate::PartitionState`] to and from store entries (rule ids
//!   are written as rule names, so adding a rule does not misfile old state).
//! - [`spill`]: where cold entries go when a partition passes its memory budget or
//!   a tenant its key quota, and how they come back.
//! - [`StateStore`]: the durable home of checkpoints: [`mem::MemStore`] for tests,
//!   [`rocks::RocksStore`] (feature `rocksdb`) for `warden run` and `scan --state`.
//!   This module never imports `rocksdb`; CI builds it with the feature off.

pub mod changes;
pub mod checkpoint;
pub mod codec;
pub mod keys;
pub mod limits;
pub mod mem;
#[cfg(feature = "rocksdb")]
pub mod rocks;
pub mod spill;
pub mod table;
pub mod values;

use std::hash::BuildHasher;

pub use changes::{ChangeRef, ChangeSet};
pub use checkpoint::{Checkpoint, StoredEntry, StoredPartition};

/// A fixed-seed hasher for state maps. Deterministic per design §6 (no per-process
/// random seeds); iteration order never decides an output, callers sort first.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedState;

impl BuildHasher for FixedState {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        ahash::RandomState::with_seeds(
            0x243f_6a88_85a3_08d3,
            0x1319_8a2e_0370_7344,
            0xa409_3822_299f_31d0,
            0x082e_fa98_ec4e_6c89,
        )
        .build_hasher()
    }
}

/// Durable home of per-partition state and the input position it reflects.
/// Implementations: [`mem::MemStore`] and [`rocks::RocksStore`] (feature `rocksdb`).
pub trait StateStore {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Atomically applies `cp`'s changes and replaces the partition's position
    /// (one write batch: state and position never disagree).
    fn write_checkpoint(&self, partition: &str, cp: &Checkpoint) -> Result<(), Self::Error>;
    /// Just the position of `partition`'s checkpoint, if it has one (cheap).
    fn read_position(&self, partition: &str) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Everything stored for `partition`, or `None` if it has no checkpoint.
    fn read_checkpoint(&self, partition: &str) -> Result<Option<StoredPartition>, Self::Error>;
    /// Forgets `partition` (a checkpoint that must not be used).
    fn drop_partition(&self, partition: &str) -> Result<(), Self::Error>;
    /// Partitions with a checkpoint.
    fn partitions(&self) -> Result<Vec<String>, Self::Error>;
}
