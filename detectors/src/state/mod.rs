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
pub use checkpoint::{Checkpoint, RestoreError, StoredEntry, StoredPartition};

/// The secrets of state hashing, fixed for a deployment (design §6): never drawn
/// per process, since checkpoints hold keys digested with them.
#[derive(Debug)]
struct Secrets {
    /// Seeds of [`FixedState`].
    seeds: [u64; 4],
    /// Secret of [`keys::StateKey`] digests (xxh3 takes 136 bytes or more).
    digest: [u8; 192],
    /// Names `digest` in checkpoints without revealing it.
    fingerprint: [u8; 8],
}

/// The secrets once [`seed_state_hashes`] has run.
static SECRETS: OnceLock<Secrets> = OnceLock::new();
/// The secrets of a deployment without one, derived on first use.
static DEFAULTS: OnceLock<Secrets> = OnceLock::new();

/// What a deployment without a secret derives its secrets from. Known to anyone
/// with the source: a deployment facing hostile input sets `WARDEN_HMAC_KEY`.
const DEFAULT_SECRET: &[u8] = b"warden default state secret";

impl Secrets {
    /// PRF outputs of `secret` under their own labels: they tell nothing of the
    /// secret, and the secret's PII fingerprints nothing of them.
    fn derive(secret: &[u8]) -> Option<Secrets> {
        use hmac::{Hmac, Mac};
        let prf = |label: &[u8], i: u8| -> Option<[u8; 32]> {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).ok()?;
            mac.update(label);
            mac.update(&[i]);
            Some(mac.finalize().into_bytes().into())
        };
        let words = prf(b"warden state map seeds", 0)?;
        let word = |i: usize| u64::from_le_bytes(words[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let mut digest = [0u8; 192];
        for (i, chunk) in digest.chunks_mut(32).enumerate() {
            chunk.copy_from_slice(&prf(b"warden state key digests", i as u8)?);
        }
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&prf(b"warden state key fingerprint", 0)?[..8]);
        Some(Secrets { seeds: [word(0), word(1), word(2), word(3)], digest, fingerprint })
    }

    /// The deployment's secrets as they are now: reading them does not fix them,
    /// so [`seed_state_hashes`] still works after a read.
    fn get() -> &'static Secrets {
        SECRETS.get().unwrap_or_else(|| {
            DEFAULTS.get_or_init(|| {
                let fallback = Secrets { seeds: [1, 2, 3, 4], digest: [0x5a; 192], fingerprint: [0; 8] };
                Secrets::derive(DEFAULT_SECRET).unwrap_or(fallback)
            })
        })
    }
}

/// The secret of [`keys::StateKey`] digests.
pub(crate) fn digest_secret() -> &'static [u8] {
    &Secrets::get().digest
}

/// Names the deployment's state key digests: a checkpoint written under another
/// secret holds keys that match nothing here.
pub fn key_fingerprint() -> [u8; 8] {
    Secrets::get().fingerprint
}

/// The hasher of state maps. Its seeds are fixed for a deployment, never drawn per
/// process (design §6), and secret once [`seed_state_hashes`] has run: state keys
/// come from the input, and against seeds an attacker knows (the defaults are in
/// the source) keys built to collide would turn each lookup into a scan. Iteration
/// order never decides an output; callers sort first.
#[derive(Clone, Debug)]
pub struct FixedState(ahash::RandomState);

impl Default for FixedState {
    /// The deployment's seeds as they are now: call [`seed_state_hashes`] before
    /// any state exists.
    fn default() -> Self {
        let [a, b, c, d] = Secrets::get().seeds;
        FixedState(ahash::RandomState::with_seeds(a, b, c, d))
    }
}

impl BuildHasher for FixedState {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        self.0.build_hasher()
    }
}

/// Derives the seeds of every state map and the secret of every state key digest
/// from `secret` (the binary passes `WARDEN_HMAC_KEY`). Call once at startup,
/// before any state exists; a later call changes nothing and returns false.
pub fn seed_state_hashes(secret: &[u8]) -> bool {
    let Some(secrets) = Secrets::derive(secret) else { return false };
    SECRETS.set(secrets).is_ok()
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
    /// One stored entry of `partition`'s checkpoint (cheap).
    fn read_entry(&self, partition: &str, tag: u8, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Everything stored for `partition`, or `None` if it has no checkpoint.
    fn read_checkpoint(&self, partition: &str) -> Result<Option<StoredPartition>, Self::Error>;
    /// Forgets `partition` (a checkpoint that must not be used).
    fn drop_partition(&self, partition: &str) -> Result<(), Self::Error>;
    /// Partitions with a checkpoint.
    fn partitions(&self) -> Result<Vec<String>, Self::Error>;
}
