//! [`RocksStore`]: checkpoints in RocksDB, one DB per instance.
//!
//! Two column families: `state` holds entries keyed `[partition][tag][key]`,
//! `offsets` holds each partition's position. A checkpoint is one `WriteBatch`
//! across both, so after a crash the state and the position it reflects agree.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};

use super::codec::{get_bytes, put_bytes};
use super::{Checkpoint, StateStore, StoredPartition};

/// Column family of state entries.
pub const CF_STATE: &str = "state";
/// Column family of positions.
pub const CF_OFFSETS: &str = "offsets";

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
    db: DB,
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

impl RocksStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<RocksStore, RocksError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = [CF_STATE, CF_OFFSETS].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        Ok(RocksStore { db: DB::open_cf_descriptors(&opts, dir, cfs)? })
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
        let mut batch = WriteBatch::default();
        let mut key = Vec::new();
        for (tag, k, value) in &cp.changes {
            key.clear();
            key.extend_from_slice(&prefix);
            key.push(*tag);
            key.extend_from_slice(k);
            match value {
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
        let mut end = prefix.clone();
        // Every key of the partition sorts below the prefix with its last byte bumped.
        if let Some(last) = end.last_mut() {
            *last = last.saturating_add(1);
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(state, &prefix, &end);
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
                changes: vec![(1, b"a".to_vec(), Some(b"x".to_vec())), (1, b"b".to_vec(), Some(b"y".to_vec()))],
            };
            store.write_checkpoint("events.webhook/0", &cp).unwrap();
            store
                .write_checkpoint(
                    "events.webhook/1",
                    &Checkpoint { position: b"q".to_vec(), changes: vec![(1, b"a".to_vec(), Some(b"z".to_vec()))] },
                )
                .unwrap();
            let cp2 = Checkpoint { position: b"p2".to_vec(), changes: vec![(1, b"a".to_vec(), None)] };
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
}
