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
use std::sync::OnceLock;

pub use changes::{ChangeRef, ChangeSet};
pub use checkpoint::{Checkpoint, StoredEntry, StoredPartition};

/// Seeds of [`FixedState`] once [`seed_state_hashes`] has run.
static SEEDS: OnceLock<[u64; 4]> = OnceLock::new();

/// Seeds of [`FixedState`] in a deployment without a secret.
const DEFAULT_SEEDS: [u64; 4] =
    [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344, 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89];

/// The hasher of state maps. Its seeds are fixed for a deployment, never drawn per
/// process (design §6), and secret once [`seed_state_hashes`] has run: state keys
/// come from the input, and against seeds an attacker knows (these defaults are in
/// the source) keys built to collide would turn each lookup into a scan. Iteration
/// order never decides an output; callers sort first.
#[derive(Clone, Debug)]
pub struct FixedState(ahash::RandomState);

impl Default for FixedState {
    /// The deployment's seeds as they are now: call [`seed_state_hashes`] before
    /// any state exists.
    fn default() -> Self {
        let [a, b, c, d] = *SEEDS.get().unwrap_or(&DEFAULT_SEEDS);
        FixedState(ahash::RandomState::with_seeds(a, b, c, d))
    }
}

impl BuildHasher for FixedState {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        self.0.build_hasher()
    }
}

/// Derives the seeds of every state map built from now on from `secret` (the
/// binary passes `WARDEN_HMAC_KEY`). Call once at startup, before any state exists;
/// a later call changes nothing and returns false.
pub fn seed_state_hashes(secret: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    // A PRF of the secret under its own label: the seeds tell nothing of the key,
    // and the key's PII fingerprints nothing of the seeds.
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret) else { return false };
    mac.update(b"warden state map seeds");
    let out = mac.finalize().into_bytes();
    let word = |i: usize| out.get(i * 8..i * 8 + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
    SEEDS.set([word(0), word(1), word(2), word(3)]).is_ok()
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
