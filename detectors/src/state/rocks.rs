//! [`RocksStore`]: checkpoints in RocksDB, one DB per instance.
//!
//! Three column families: `state` holds entries keyed `[partition][tag][key]`,
//! `offsets` holds each partition's position. A checkpoint is one `WriteBatch`
//! across both, so after a crash the state and the position it reflects agree.
//! `spill` holds entries spilled out of memory ([`RocksSpill`], keyed
//! `[partition][tag][evict_at][key hash]`, so what expires is one range); it is
//! scratch space, written without the WAL, uncompressed, and emptied when the
//! store opens and when a partition's state starts afresh.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::codec::{get_bytes, put_bytes};
use super::spill::{Spill, SpillError, SpillKey, Visit};
use super::{Checkpoint, StateStore, StoredPartition};
use crate::EventTime;

/// Column family of state entries.
pub const CF_STATE: &str = "state";
/// Column family of positions.
pub const CF_OFFSETS: &str = "offsets";
/// Column family of spilled entries.
pub const CF_SPILL: &str = "spill";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum RocksError {
    /// RocksDB reported an error.
    #[error("RocksDB: {0}")]
    Db(#[from] rocksdb::Error),
    /// A column family is missing (the DB was not created by warden).
    #[error("column family `{0}` is missing")]
    MissingCf(&'static str),
}

/// A RocksDB-backed [`StateStore`].
pub struct RocksStore {
    db: Arc<DB>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore").field("path", &self.db.path()).finish()
    }
}

fn partition_prefix(partition: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(partition.len() + 2);
    put_bytes(&mut p, partition.as_bytes());
    p
}

/// Memtable size of the checkpoint column family: RocksDB's default, since every
/// checkpoint writes a batch of changed keys and smaller memtables mean more
/// flushes and compactions (the soak lost a third of its rate at 8 MiB).
const STATE_WRITE_BUFFER_BYTES: usize = 64 << 20;
/// Memtable size of the spill and offsets column families: spilling happens when
/// memory is short, so its buffers stay small.
const SMALL_WRITE_BUFFER_BYTES: usize = 16 << 20;
/// Block cache shared by every column family.
const BLOCK_CACHE_BYTES: usize = 16 << 20;

/// Options of one column family: its memtable size, the shared cache, a Bloom
/// filter (a spilled key is read back by a point lookup).
fn cf_options(cache: &rocksdb::Cache, write_buffer: usize, compression: rocksdb::DBCompressionType) -> Options {
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_size(write_buffer);
    opts.set_max_write_buffer_number(2);
    opts.set_compression_type(compression);
    opts
}

impl RocksStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<RocksStore, RocksError> {
        use rocksdb::DBCompressionType::{Lz4, None as Plain};
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = [
            (CF_STATE, STATE_WRITE_BUFFER_BYTES, Lz4),
            (CF_OFFSETS, SMALL_WRITE_BUFFER_BYTES, Plain),
            (CF_SPILL, SMALL_WRITE_BUFFER_BYTES, Plain),
        ]
        .map(|(name, buffer, compression)| ColumnFamilyDescriptor::new(name, cf_options(&cache, buffer, compression)));
        let mut db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        // Spilled entries of an earlier process belong to states that no longer exist.
        db.drop_cf(CF_SPILL)?;
        db.create_cf(CF_SPILL, &cf_options(&cache, SMALL_WRITE_BUFFER_BYTES, Plain))?;
        Ok(RocksStore { db: Arc::new(db) })
    }

    /// A spill store for `partition`'s state, emptied first (a new state has
    /// spilled nothing yet).
    pub fn spill(&self, partition: &str) -> Result<RocksSpill, RocksError> {
        let prefix = partition_prefix(partition);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_SPILL)?, &prefix, &prefix_end(&prefix));
        self.db.write(batch)?;
        let mut write = WriteOptions::default();
        write.disable_wal(true);
        Ok(RocksSpill { db: self.db.clone(), prefix, key: Vec::new(), write })
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, RocksError> {
        self.db.cf_handle(name).ok_or(RocksError::MissingCf(name))
    }
}

impl StateStore for RocksStore {
    type Error = RocksError;

    fn write_checkpoint(&self, partition: &str, cp: &Checkpoint) -> Result<(), RocksError> {
        let (state, offsets) = (self.cf(CF_STATE)?, self.cf(CF_OFFSETS)?);
        let prefix = partition_prefix(partition);
        // Sized up front: growing a batch of hundreds of megabytes copies it each
        // time its buffer doubles.
        let framing = cp.changes.len() * (prefix.len() + 12);
        let mut batch = WriteBatch::with_capacity_bytes(cp.changes.byte_len() + framing + 64);
        let mut key = Vec::new();
        // The memtable is a skip list, where an insert next to the previous one is
        // cheap and one at a random place walks every level: written in key order,
        // skip-list inserts fell from a quarter of `scan --state`'s CPU to 2%
        // (bench/RESULTS.md). A key listed twice keeps its last change.
        for c in cp.changes.in_key_order() {
            key.clear();
            key.extend_from_slice(&prefix);
            key.push(c.tag);
            key.extend_from_slice(c.key);
            match c.value {
                Some(v) => batch.put_cf(state, &key, v),
                None => batch.delete_cf(state, &key),
            }
        }
        batch.put_cf(offsets, &prefix, &cp.position);
        self.db.write(batch)?;
        Ok(())
    }

    fn read_position(&self, partition: &str) -> Result<Option<Vec<u8>>, RocksError> {
        Ok(self.db.get_cf(self.cf(CF_OFFSETS)?, partition_prefix(partition))?)
    }

    fn read_entry(&self, partition: &str, tag: u8, key: &[u8]) -> Result<Option<Vec<u8>>, RocksError> {
        let mut full = partition_prefix(partition);
        full.push(tag);
        full.extend_from_slice(key);
        Ok(self.db.get_cf(self.cf(CF_STATE)?, full)?)
    }

    fn read_checkpoint(&self, partition: &str) -> Result<Option<StoredPartition>, RocksError> {
        let (state, offsets) = (self.cf(CF_STATE)?, self.cf(CF_OFFSETS)?);
        let prefix = partition_prefix(partition);
        let Some(position) = self.db.get_cf(offsets, &prefix)? else {
            return Ok(None);
        };
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(state, IteratorMode::From(&prefix, Direction::Forward)) {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let Some((&tag, key)) = rest.split_first() else {
                continue;
            };
            entries.push((tag, key.to_vec(), v.to_vec()));
        }
        Ok(Some(StoredPartition { position, entries }))
    }

    fn drop_partition(&self, partition: &str) -> Result<(), RocksError> {
        let (state, offsets) = (self.cf(CF_STATE)?, self.cf(CF_OFFSETS)?);
        let prefix = partition_prefix(partition);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(state, &prefix, &prefix_end(&prefix));
        batch.delete_cf(offsets, &prefix);
        self.db.write(batch)?;
        Ok(())
    }

    fn partitions(&self) -> Result<Vec<String>, RocksError> {
        let offsets = self.cf(CF_OFFSETS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(offsets, IteratorMode::Start) {
            let (k, _) = item?;
            let mut input = &k[..];
            if let Ok(name) = get_bytes(&mut input) {
                out.push(String::from_utf8_lossy(name).into_owned());
            }
        }
        Ok(out)
    }
}

/// The first key after every key that starts with `prefix` (a length-prefixed name,
/// so no other partition's prefix starts with it).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last = last.saturating_add(1);
    }
    end
}

/// One partition's [`Spill`] store in the instance's RocksDB.
pub struct RocksSpill {
    db: Arc<DB>,
    prefix: Vec<u8>,
    /// Key under construction.
    key: Vec<u8>,
    /// Without the WAL: spilled entries need not survive a crash.
    write: WriteOptions,
}

impl std::fmt::Debug for RocksSpill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksSpill").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

impl RocksSpill {
    fn key(&mut self, tag: u8, key: SpillKey) -> &[u8] {
        self.key.clear();
        self.key.extend_from_slice(&self.prefix);
        self.key.push(tag);
        self.key.extend_from_slice(&key.to_bytes());
        &self.key
    }

    fn cf(&self) -> Result<&rocksdb::ColumnFamily, SpillError> {
        self.db.cf_handle(CF_SPILL).ok_or_else(|| SpillError(format!("column family `{CF_SPILL}` is missing")))
    }
}

fn spill_error(e: rocksdb::Error) -> SpillError {
    SpillError(e.into_string())
}

impl Spill for RocksSpill {
    fn put_many(&mut self, tag: u8, records: &mut [(SpillKey, Vec<u8>)]) -> Result<(), SpillError> {
        // In key order: the memtable inserts each next to the last.
        records.sort_unstable_by_key(|(k, _)| *k);
        let mut batch = WriteBatch::default();
        for (key, record) in records.iter() {
            let key = self.key(tag, *key).to_vec();
            batch.put_cf(self.cf()?, key, record);
        }
        self.db.write_opt(batch, &self.write).map_err(spill_error)
    }

    fn get(&mut self, tag: u8, key: SpillKey) -> Result<Option<Vec<u8>>, SpillError> {
        let key = self.key(tag, key).to_vec();
        self.db.get_cf(self.cf()?, key).map_err(spill_error)
    }

    fn remove_through(&mut self, tag: u8, watermark: EventTime, visit: Option<Visit<'_>>) -> Result<(), SpillError> {
        let mut start = self.prefix.clone();
        start.push(tag);
        // Just past the last key due: every key is 16 bytes after the tag.
        let mut end = self.key(tag, SpillKey { evict_at: watermark, hash: u64::MAX }).to_vec();
        end.push(0);
        let cf = self.cf()?;
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_upper_bound(end.clone());
        let mut due = 0usize;
        let mut visit = visit;
        for item in self.db.iterator_cf_opt(cf, read, IteratorMode::From(&start, Direction::Forward)) {
            let (_, record) = item.map_err(spill_error)?;
            due += 1;
            match visit.as_deref_mut() {
                Some(visit) => visit(&record),
                None => break,
            }
        }
        // Most sweeps find nothing due: no range tombstone for them.
        if due == 0 {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, &start, &end);
        self.db.write_opt(batch, &self.write).map_err(spill_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_atomic_per_partition_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksStore::open(dir.path()).unwrap();
            let cp = Checkpoint {
                position: b"p1".to_vec(),
                changes: [(1, b"a", Some(b"x")), (1, b"b", Some(b"y"))].into_iter().collect(),
            };
            store.write_checkpoint("events.webhook/0", &cp).unwrap();
            store
                .write_checkpoint(
                    "events.webhook/1",
                    &Checkpoint { position: b"q".to_vec(), changes: [(1, b"a", Some(b"z"))].into_iter().collect() },
                )
                .unwrap();
            let cp2 =
                Checkpoint { position: b"p2".to_vec(), changes: [(1, b"a", None::<&[u8]>)].into_iter().collect() };
            store.write_checkpoint("events.webhook/0", &cp2).unwrap();
        }
        let store = RocksStore::open(dir.path()).unwrap();
        let got = store.read_checkpoint("events.webhook/0").unwrap().unwrap();
        assert_eq!(got.position, b"p2");
        assert_eq!(got.entries, vec![(1, b"b".to_vec(), b"y".to_vec())]);
        assert_eq!(store.partitions().unwrap(), ["events.webhook/0", "events.webhook/1"]);
        store.drop_partition("events.webhook/0").unwrap();
        assert!(store.read_checkpoint("events.webhook/0").unwrap().is_none());
        assert_eq!(store.read_checkpoint("events.webhook/1").unwrap().unwrap().entries.len(), 1);
    }

    #[test]
    fn a_key_listed_twice_in_one_checkpoint_keeps_its_last_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let put = |k: &[u8], v: &[u8]| (1, k.to_vec(), Some(v.to_vec()));
        let changes = [
            put(b"z", b"1"),
            put(b"a", b"old"),
            put(b"m", b"gone"),
            put(b"a", b"new"),
            (1, b"m".to_vec(), None),
            (0, b"meta".to_vec(), Some(b"clock".to_vec())),
        ]
        .into_iter()
        .collect();
        store.write_checkpoint("p/0", &Checkpoint { position: b"p".to_vec(), changes }).unwrap();
        let stored = store.read_checkpoint("p/0").unwrap().unwrap();
        let got: Vec<(u8, &[u8], &[u8])> = stored.entries.iter().map(|(t, k, v)| (*t, &k[..], &v[..])).collect();
        assert_eq!(got, [(0, &b"meta"[..], &b"clock"[..]), (1, b"a", b"new"), (1, b"z", b"1")]);
    }

    #[test]
    fn spilled_records_are_per_partition_and_gone_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksStore::open(dir.path()).unwrap();
            let k = |evict_at, hash| SpillKey { evict_at, hash };
            let mut a = store.spill("events.webhook/0").unwrap();
            let mut b = store.spill("events.webhook/1").unwrap();
            a.put_many(1, &mut [(k(100, 7), b"seven".to_vec()), (k(-5, 8), b"eight".to_vec())]).unwrap();
            a.put_many(1, &mut [(k(101, 9), b"nine".to_vec())]).unwrap();
            a.put_many(2, &mut [(k(0, 1), b"other table".to_vec())]).unwrap();
            b.put_many(1, &mut [(k(100, 7), b"other".to_vec())]).unwrap();
            assert_eq!(a.get(1, k(100, 7)).unwrap().as_deref(), Some(&b"seven"[..]));
            assert_eq!(a.get(2, k(100, 7)).unwrap(), None, "tags are separate");
            let mut seen = Vec::new();
            a.remove_through(1, 100, Some(&mut |r: &[u8]| seen.push(r.to_vec()))).unwrap();
            assert_eq!(seen, [b"eight".to_vec(), b"seven".to_vec()], "due records, in time order");
            assert_eq!(a.get(1, k(100, 7)).unwrap(), None);
            assert!(a.get(1, k(101, 9)).unwrap().is_some(), "not yet due");
            assert!(a.get(2, k(0, 1)).unwrap().is_some(), "another table keeps its own");
            a.remove_through(1, i64::MAX, None).unwrap();
            assert_eq!(a.get(1, k(101, 9)).unwrap(), None);
            assert_eq!(b.get(1, k(100, 7)).unwrap().as_deref(), Some(&b"other"[..]));
            let mut a_again = store.spill("events.webhook/0").unwrap();
            assert_eq!(a_again.get(2, k(0, 1)).unwrap(), None, "a new state starts with nothing spilled");
            assert!(b.get(1, k(100, 7)).unwrap().is_some(), "other partitions keep theirs");
        }
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(store.spill("events.webhook/1").unwrap().get(1, SpillKey { evict_at: 100, hash: 7 }).unwrap(), None);
    }
}
