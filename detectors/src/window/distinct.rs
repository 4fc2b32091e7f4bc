//! [`DistinctSet`]: exact "more than N distinct values in W" with bounded memory.
//!
//! It keeps, per value (as a 64-bit hash), the last time it was seen, and at most
//! `limit + 1` values: the most recently seen ones. To decide "over N distinct in
//! the window" it is enough to know whether N + 1 of them were seen within it, and
//! for events in `ts` order the N + 1 most recent values are exactly the ones that
//! can be. So decisions are exact while memory stays at limit + 1 entries
//! (HyperLogLog only feeds estimate metrics, never a decision).

use crate::state::codec::{get_i64, get_varint, put_i64, put_varint, CodecError, Decode, Encode};
use crate::EventTime;

/// Recently seen distinct values with their last-seen times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DistinctSet {
    values: Vec<(u64, EventTime)>,
}

impl DistinctSet {
    /// Records `value` at `ts`; returns the distinct values seen in
    /// `(ts − window, ts]` including this one, at most `limit + 1`.
    /// `window_ms` of `None` means no window (the whole run).
    pub fn observe(&mut self, value: u64, ts: EventTime, limit: u32, window_ms: Option<i64>) -> u64 {
        match self.values.iter_mut().find(|(v, _)| *v == value) {
            Some(slot) => slot.1 = slot.1.max(ts),
            None => self.values.push((value, ts)),
        }
        let cap = limit as usize + 1;
        if self.values.len() > cap {
            // Forget the value seen longest ago; with in-order events it can no
            // longer be among the N + 1 that decide.
            if let Some(oldest) = (0..self.values.len()).min_by_key(|&i| self.values[i].1) {
                self.values.swap_remove(oldest);
            }
        }
        let lo = window_ms.map_or(EventTime::MIN, |w| ts.saturating_sub(w));
        self.values.iter().filter(|&&(_, t)| t > lo && t <= ts).count() as u64
    }

    /// The newest last-seen time (drives eviction).
    pub fn newest(&self) -> Option<EventTime> {
        self.values.iter().map(|&(_, t)| t).max()
    }

    /// Values held (at most limit + 1).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl Encode for DistinctSet {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.values.len() as u64);
        for &(v, t) in &self.values {
            out.extend_from_slice(&v.to_be_bytes());
            put_i64(out, t);
        }
    }
}

impl Decode for DistinctSet {
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError> {
        let n = get_varint(input)? as usize;
        let mut values = Vec::with_capacity(n.min(1 << 12));
        for _ in 0..n {
            let v = get_i64(input)? as u64;
            let t = get_i64(input)?;
            values.push((v, t));
        }
        Ok(DistinctSet { values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_distinct_values_up_to_limit_plus_one() {
        let mut s = DistinctSet::default();
        let counts: Vec<u64> = (0..20).map(|i| s.observe(i % 17, 1_000 + i as i64, 15, None)).collect();
        assert_eq!(counts[14], 15);
        assert_eq!(counts[15], 16, "the 16th distinct value is over 15");
        assert_eq!(counts[19], 16, "repeats of known values stay over, capped");
        assert!(s.len() <= 16);
    }

    proptest! {
        #[test]
        fn matches_brute_force_oracle(
            events in proptest::collection::vec((0u64..30, 0i64..300), 1..300),
            limit in 1u32..10,
            window in 1i64..3_000,
        ) {
            let mut s = DistinctSet::default();
            let mut all: Vec<(u64, i64)> = Vec::new();
            let mut ts = 0i64;
            for (v, gap) in events {
                ts += gap;
                all.push((v, ts));
                let mut seen: Vec<u64> = all.iter().filter(|&&(_, t)| t > ts - window).map(|&(v, _)| v).collect();
                seen.sort_unstable();
                seen.dedup();
                let oracle = seen.len() as u64;
                let got = s.observe(v, ts, limit, Some(window));
                prop_assert_eq!(got > u64::from(limit), oracle > u64::from(limit));
                prop_assert_eq!(got, oracle.min(u64::from(limit) + 1));
            }
        }
    }
}
