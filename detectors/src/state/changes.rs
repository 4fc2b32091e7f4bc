//! [`ChangeSet`]: the changes one checkpoint writes, held in one buffer.
//!
//! A checkpoint can list hundreds of thousands of changed entries. Held as a vector
//! of `(tag, key, value)` with a heap allocation each, building it, sorting it and
//! copying it into a write batch chased a pointer per key per comparison and took
//! about half of `warden scan --state`'s time (bench/RESULTS.md). Here every key and
//! value is appended to one byte buffer, and [`ChangeSet::in_key_order`] sorts
//! fixed-size records that carry 8 bytes of their key, so a sort touches the keys
//! only once per 8 bytes that tell them apart.

/// Changes to write, each a table tag, a stored key and an encoded value or a
/// deletion; listed in the order added or, with [`ChangeSet::in_key_order`], in the
/// order of `(tag, key)`.
#[derive(Clone, Debug, Default)]
pub struct ChangeSet {
    /// Each change's tag, key and value, back to back.
    bytes: Vec<u8>,
    changes: Vec<Span>,
}

/// Where one change lies in [`ChangeSet::bytes`]: the tag at `start`, the key up to
/// `key_end`, the value up to `end`. Spans order by `start`, which is the order the
/// changes were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: usize,
    key_end: usize,
    end: usize,
    deleted: bool,
}

/// One change as listed by a [`ChangeSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChangeRef<'a> {
    /// The table's tag (see [`super::checkpoint::tag`]).
    pub tag: u8,
    /// The stored key.
    pub key: &'a [u8],
    /// The encoded entry, or `None` to delete the key.
    pub value: Option<&'a [u8]>,
}

impl ChangeSet {
    /// An empty set.
    pub fn new() -> Self {
        ChangeSet::default()
    }

    /// Number of changes (a key changed twice counts twice).
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Bytes of all tags, keys and values: what a write batch of this set holds
    /// besides its per-entry framing.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Adds an entry under `tag`: `key` writes the key, `value` the encoded value.
    pub fn put(&mut self, tag: u8, key: impl FnOnce(&mut Vec<u8>), value: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        self.bytes.push(tag);
        key(&mut self.bytes);
        let key_end = self.bytes.len();
        value(&mut self.bytes);
        self.changes.push(Span { start, key_end, end: self.bytes.len(), deleted: false });
    }

    /// Adds the deletion of a key under `tag`; `key` writes the key.
    pub fn delete(&mut self, tag: u8, key: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        self.bytes.push(tag);
        key(&mut self.bytes);
        let end = self.bytes.len();
        self.changes.push(Span { start, key_end: end, end, deleted: true });
    }

    /// Adds one change given as slices (`None` deletes).
    pub fn push(&mut self, tag: u8, key: &[u8], value: Option<&[u8]>) {
        match value {
            Some(v) => self.put(tag, |b| b.extend_from_slice(key), |b| b.extend_from_slice(v)),
            None => self.delete(tag, |b| b.extend_from_slice(key)),
        }
    }

    /// Appends `later`'s changes after this set's (a key in both keeps `later`'s).
    pub fn append(&mut self, later: &ChangeSet) {
        let shift = self.bytes.len();
        self.bytes.extend_from_slice(&later.bytes);
        self.changes.extend(later.changes.iter().map(|s| Span {
            start: s.start + shift,
            key_end: s.key_end + shift,
            end: s.end + shift,
            deleted: s.deleted,
        }));
    }

    /// The changes in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = ChangeRef<'_>> {
        self.changes.iter().map(|s| self.change(s))
    }

    /// The changes ordered by `(tag, key)`; a key listed more than once keeps the
    /// order of its changes, so applying them in this order leaves the last one.
    pub fn in_key_order(&self) -> impl Iterator<Item = ChangeRef<'_>> + '_ {
        self.key_order().into_iter().map(|s| self.change(&s))
    }

    fn change(&self, s: &Span) -> ChangeRef<'_> {
        ChangeRef {
            tag: self.bytes[s.start],
            key: &self.bytes[s.start + 1..s.key_end],
            value: (!s.deleted).then(|| &self.bytes[s.key_end..s.end]),
        }
    }

    /// The tag and key of a change as one byte string (the tag leads, so its byte
    /// order is the order of `(tag, key)`).
    fn sort_key(&self, s: &Span) -> &[u8] {
        &self.bytes[s.start..s.key_end]
    }

    /// The spans in `(tag, key, order added)` order.
    ///
    /// A multikey sort: a run of changes whose keys agree on their first `depth`
    /// bytes is sorted by the next 8 bytes as an integer, after skipping the bytes
    /// every key of the run shares (the table tag and rule name, often the tenant);
    /// sub-runs that still agree go round again, deeper. The sorted records carry
    /// their spans, so the sort compares integers in one array and the result is
    /// read in order; comparing keys would chase every key's bytes.
    fn key_order(&self) -> Vec<Span> {
        let mut items: Vec<(u64, u8, Span)> = self.changes.iter().map(|&s| (0, 0, s)).collect();
        let mut runs = vec![(0, items.len(), 0)];
        while let Some((lo, hi, depth)) = runs.pop() {
            let run = &mut items[lo..hi];
            if run.len() < 2 {
                continue;
            }
            let depth = depth + self.shared_from(run, depth);
            for item in run.iter_mut() {
                (item.0, item.1) = chunk_at(self.sort_key(&item.2), depth);
            }
            run.sort_unstable();
            let mut start = 0;
            for j in 1..=run.len() {
                let (chunk, tail, _) = run[start];
                if run.get(j).is_some_and(|&(c, t, _)| (c, t) == (chunk, tail)) {
                    continue;
                }
                // Keys that go on past this chunk and agree on it: sort them on.
                if tail == CONTINUES && j - start > 1 {
                    runs.push((lo + start, lo + j, depth + 8));
                }
                start = j;
            }
        }
        items.into_iter().map(|(_, _, s)| s).collect()
    }

    /// How many bytes from `depth` on every key of `run` shares.
    fn shared_from(&self, run: &[(u64, u8, Span)], depth: usize) -> usize {
        let Some(((_, _, first), rest)) = run.split_first() else { return 0 };
        let first = self.sort_key(first).get(depth..).unwrap_or(&[]);
        let mut shared = first.len();
        for (_, _, s) in rest {
            let key = self.sort_key(s).get(depth..).unwrap_or(&[]);
            shared = shared.min(common_prefix(&first[..shared], key));
            if shared == 0 {
                break;
            }
        }
        shared
    }
}

/// `tail` of a key that goes on past the chunk at hand.
const CONTINUES: u8 = 9;

/// The 8 bytes of `key` from `depth` as a big-endian integer (zero-padded), and how
/// many of them the key has (`CONTINUES` when it has more). Ordering by the pair
/// is the keys' byte order as far as these 8 bytes go: of two keys equal but for
/// padding, the shorter is a prefix of the longer and sorts first.
fn chunk_at(key: &[u8], depth: usize) -> (u64, u8) {
    let rest = key.get(depth..).unwrap_or(&[]);
    let mut chunk = [0u8; 8];
    let n = rest.len().min(8);
    chunk[..n].copy_from_slice(&rest[..n]);
    let tail = if rest.len() > 8 { CONTINUES } else { n as u8 };
    (u64::from_be_bytes(chunk), tail)
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(u8, K, Option<V>)> for ChangeSet {
    fn from_iter<I: IntoIterator<Item = (u8, K, Option<V>)>>(iter: I) -> Self {
        let mut set = ChangeSet::new();
        for (tag, key, value) in iter {
            set.push(tag, key.as_ref(), value.as_ref().map(|v| v.as_ref()));
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn owned(set: &ChangeSet, sorted: bool) -> Vec<(u8, Vec<u8>, Option<Vec<u8>>)> {
        let list: Vec<ChangeRef<'_>> = if sorted { set.in_key_order().collect() } else { set.iter().collect() };
        list.into_iter().map(|c| (c.tag, c.key.to_vec(), c.value.map(<[u8]>::to_vec))).collect()
    }

    #[test]
    fn lists_changes_as_added_and_in_key_order() {
        let set: ChangeSet = [
            (2u8, b"b".to_vec(), Some(b"1".to_vec())),
            (1, b"zz".to_vec(), None),
            (2, b"a".to_vec(), Some(b"2".to_vec())),
            (2, b"".to_vec(), Some(b"".to_vec())),
        ]
        .into_iter()
        .collect();
        assert_eq!(set.len(), 4);
        assert_eq!(owned(&set, false)[1], (1, b"zz".to_vec(), None));
        let keys: Vec<(u8, Vec<u8>)> = owned(&set, true).into_iter().map(|(t, k, _)| (t, k)).collect();
        assert_eq!(keys, vec![(1, b"zz".to_vec()), (2, vec![]), (2, b"a".to_vec()), (2, b"b".to_vec())]);
    }

    #[test]
    fn a_key_listed_twice_keeps_its_changes_in_order() {
        let mut first: ChangeSet = [(1u8, b"k", Some(b"old"))].into_iter().collect();
        let second: ChangeSet = [(1u8, b"k", None::<&[u8]>), (1, b"j", None)].into_iter().collect();
        first.append(&second);
        first.push(1, b"k", Some(b"new"));
        let sorted = owned(&first, true);
        assert_eq!(sorted[0].1, b"j");
        assert_eq!(
            sorted[1..].iter().map(|c| c.2.clone()).collect::<Vec<_>>(),
            vec![Some(b"old".to_vec()), None, Some(b"new".to_vec())]
        );
    }

    #[test]
    fn keys_equal_but_for_zero_padding_sort_shorter_first() {
        let keys: [&[u8]; 5] = [b"abcdefgh\0", b"abcdefgh", b"abcdefg", b"abcdefg\0", b"abcdefgh\0\0"];
        let set: ChangeSet = keys.iter().map(|k| (0u8, *k, None::<&[u8]>)).collect();
        let got: Vec<Vec<u8>> = set.in_key_order().map(|c| c.key.to_vec()).collect();
        let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        want.sort();
        assert_eq!(got, want);
    }

    proptest! {
        /// The key order is a stable sort by `(tag, key)`, whatever the keys share.
        #[test]
        fn key_order_is_a_stable_sort(
            changes in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(b'a'), any::<u8>()], 0..24), any::<bool>()),
                0..200,
            ),
            prefix in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut set = ChangeSet::new();
            let mut want = Vec::new();
            for (i, (tag, key, keep)) in changes.iter().enumerate() {
                let mut k = prefix.clone();
                k.extend_from_slice(key);
                let value = i.to_string().into_bytes();
                set.push(*tag, &k, keep.then_some(&value[..]));
                want.push((*tag, k, keep.then_some(value)));
            }
            want.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            prop_assert_eq!(owned(&set, true), want);
        }
    }
}
