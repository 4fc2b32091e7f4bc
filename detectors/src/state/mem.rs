//! [`MemStore`]: a [`StateStore`] in memory, for tests and for keeping the trait honest.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Mutex;

use super::{Checkpoint, StateStore, StoredPartition};

type Entries = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

/// Checkpoints in a map; same semantics as the RocksDB store, nothing durable.
#[derive(Debug, Default)]
pub struct MemStore {
    partitions: Mutex<BTreeMap<String, (Vec<u8>, Entries)>>,
}

impl StateStore for MemStore {
    type Error = Infallible;

    fn write_checkpoint(&self, partition: &str, cp: &Checkpoint) -> Result<(), Infallible> {
        let mut all = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let (position, entries) = all.entry(partition.to_string()).or_default();
        for c in cp.changes.iter() {
            match c.value {
                Some(v) => entries.insert((c.tag, c.key.to_vec()), v.to_vec()),
                None => entries.remove(&(c.tag, c.key.to_vec())),
            };
        }
        *position = cp.position.clone();
        Ok(())
    }

    fn read_position(&self, partition: &str) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.partitions.lock().unwrap_or_else(|e| e.into_inner()).get(partition).map(|(p, _)| p.clone()))
    }

    fn read_entry(&self, partition: &str, tag: u8, key: &[u8]) -> Result<Option<Vec<u8>>, Infallible> {
        let all = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(all.get(partition).and_then(|(_, entries)| entries.get(&(tag, key.to_vec())).cloned()))
    }

    fn read_checkpoint(&self, partition: &str) -> Result<Option<StoredPartition>, Infallible> {
        let all = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(all.get(partition).map(|(position, entries)| StoredPartition {
            position: position.clone(),
            entries: entries.iter().map(|((t, k), v)| (*t, k.clone(), v.clone())).collect(),
        }))
    }

    fn drop_partition(&self, partition: &str) -> Result<(), Infallible> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner()).remove(partition);
        Ok(())
    }

    fn partitions(&self) -> Result<Vec<String>, Infallible> {
        Ok(self.partitions.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect())
    }
}
