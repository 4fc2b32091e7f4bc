//! [`KeyList`]: byte-string keys appended back to back in one buffer.

/// A list of keys without an allocation per key: a table lists every key it
/// changes between checkpoints, on the hot path, hundreds of thousands of times per
/// checkpoint. Cleared, it keeps its buffers for the next round.
#[derive(Debug, Default)]
pub(super) struct KeyList {
    bytes: Vec<u8>,
    /// Where each key ends in `bytes`.
    ends: Vec<usize>,
}

impl KeyList {
    pub(super) fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    /// Heap bytes held.
    pub(super) fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| &self.bytes[start..end])
    }

    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keys_in_order_empty_ones_included() {
        let mut list = KeyList::default();
        for key in [&b"ab"[..], b"", b"c"] {
            list.push(key);
        }
        assert_eq!(list.iter().collect::<Vec<_>>(), [&b"ab"[..], b"", b"c"]);
        list.clear();
        assert_eq!(list.iter().count(), 0);
    }
}
