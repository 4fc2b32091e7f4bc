//! [`KeptTimes`]: a sliding window's timestamps, ascending, the first few inline.
//!
//! Most window keys never hold more than a couple of timestamps (a visitor's
//! first requests, a message text seen once), and a window whose timestamps sit
//! in the table's own slot costs a lookup one cache miss instead of two, and its
//! key no allocation. A window that outgrows the inline room moves to a ring
//! buffer, where dropping the oldest of N is O(1) for any N.

use std::collections::VecDeque;

use crate::EventTime;

/// Timestamps held without a heap buffer.
const INLINE: usize = 3;

/// Sorted timestamps: inline up to [`INLINE`], then a ring buffer (for good).
#[derive(Clone, Debug)]
pub(super) enum KeptTimes {
    /// `times[..len]`, ascending.
    Inline { len: u8, times: [EventTime; INLINE] },
    /// Ascending.
    Ring(VecDeque<EventTime>),
}

impl Default for KeptTimes {
    fn default() -> Self {
        KeptTimes::Inline { len: 0, times: [0; INLINE] }
    }
}

impl PartialEq for KeptTimes {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for KeptTimes {}

impl KeptTimes {
    /// Room for `n` timestamps (a restored window).
    pub(super) fn with_capacity(n: usize) -> Self {
        if n <= INLINE {
            KeptTimes::default()
        } else {
            KeptTimes::Ring(VecDeque::with_capacity(n))
        }
    }

    /// The timestamps as (at most) two ascending runs, the first before the second.
    fn as_slices(&self) -> (&[EventTime], &[EventTime]) {
        match self {
            KeptTimes::Inline { len, times } => (&times[..usize::from(*len)], &[]),
            KeptTimes::Ring(ring) => ring.as_slices(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            KeptTimes::Inline { len, .. } => usize::from(*len),
            KeptTimes::Ring(ring) => ring.len(),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = EventTime> + '_ {
        let (a, b) = self.as_slices();
        a.iter().chain(b).copied()
    }

    pub(super) fn front(&self) -> Option<EventTime> {
        let (a, b) = self.as_slices();
        a.first().or(b.first()).copied()
    }

    pub(super) fn back(&self) -> Option<EventTime> {
        let (a, b) = self.as_slices();
        b.last().or(a.last()).copied()
    }

    /// The number of leading timestamps for which `pred` holds (`pred` must hold
    /// for a prefix, as for `slice::partition_point`).
    pub(super) fn partition_point(&self, pred: impl Fn(&EventTime) -> bool) -> usize {
        match self {
            KeptTimes::Inline { len, times } => times[..usize::from(*len)].partition_point(pred),
            KeptTimes::Ring(ring) => ring.partition_point(pred),
        }
    }

    /// Inserts `t` at position `at` (`at <= len`; the caller keeps the order).
    pub(super) fn insert(&mut self, at: usize, t: EventTime) {
        match self {
            KeptTimes::Inline { len, times } if usize::from(*len) < INLINE => {
                let n = usize::from(*len);
                let at = at.min(n);
                times.copy_within(at..n, at + 1);
                times[at] = t;
                *len += 1;
            }
            KeptTimes::Inline { times, .. } => {
                let mut ring = VecDeque::with_capacity(INLINE * 2);
                ring.extend(times.iter().copied());
                ring.insert(at.min(INLINE), t);
                *self = KeptTimes::Ring(ring);
            }
            KeptTimes::Ring(ring) => ring.insert(at.min(ring.len()), t),
        }
    }

    /// Drops the oldest timestamp, if any.
    pub(super) fn pop_front(&mut self) {
        match self {
            KeptTimes::Inline { len, times } => {
                let n = usize::from(*len);
                if n > 0 {
                    times.copy_within(1..n, 0);
                    *len -= 1;
                }
            }
            KeptTimes::Ring(ring) => {
                ring.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_sorted_across_the_move_to_the_heap() {
        let mut k = KeptTimes::default();
        for (at, t) in [(0, 20), (0, 10), (2, 40), (2, 30), (4, 50)] {
            k.insert(at, t);
        }
        assert!(matches!(k, KeptTimes::Ring(_)));
        assert_eq!(k.iter().collect::<Vec<_>>(), [10, 20, 30, 40, 50]);
        assert_eq!((k.front(), k.back(), k.partition_point(|&t| t <= 30)), (Some(10), Some(50), 3));
        k.pop_front();
        assert_eq!(k.iter().collect::<Vec<_>>(), [20, 30, 40, 50]);

        let mut small = KeptTimes::default();
        small.insert(0, 7);
        small.insert(0, 5);
        small.pop_front();
        assert!(matches!(small, KeptTimes::Inline { len: 1, .. }));
        assert_eq!((small.front(), small.back(), small.len()), (Some(7), Some(7), 1));
        assert_eq!(small, KeptTimes::Ring([7].into()), "equal by content, whatever the form");
    }
}
