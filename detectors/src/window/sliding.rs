//! [`SlidingWindow`]: the exact "N per W" counter of design §5.
//!
//! Per key it keeps the N largest timestamps seen. An event's count is 1 + the kept
//! timestamps in `(ts − W, ts]`; the event triggers when that exceeds N. Memory is N
//! timestamps whatever the traffic, and the count is exact (not a weighted estimate
//! of two fixed windows) whenever a key's events arrive in `ts` order: any timestamp
//! that could fall in a later event's window is among the N largest, because an
//! in-order event only needs the N most recent to tell N from N + 1.

use super::kept::KeptTimes;
use crate::state::codec::{get_i64, get_varint, put_i64, put_varint, CodecError, Decode, Encode};
use crate::EventTime;

/// The kept timestamps of one key, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlidingWindow {
    kept: KeptTimes,
}

impl SlidingWindow {
    /// Records an event at `ts` and returns its count: 1 + kept timestamps in
    /// `(ts − window, ts]`, at most `limit + 1`. Keeps at most `limit` timestamps.
    pub fn observe(&mut self, ts: EventTime, limit: u32, window_ms: i64) -> u64 {
        let lo = ts.saturating_sub(window_ms);
        // Kept timestamps are sorted: two binary searches bound (lo, ts], each
        // skipped in the usual case of an event newer than all kept and an
        // oldest kept one still inside the window.
        let from = match self.kept.front() {
            Some(oldest) if oldest > lo => 0,
            _ => self.kept.partition_point(|&t| t <= lo),
        };
        let to = match self.kept.back() {
            Some(newest) if newest <= ts => self.kept.len(),
            _ => self.kept.partition_point(|&t| t <= ts),
        };
        let count = 1 + to.saturating_sub(from) as u64;
        let limit = limit as usize;
        if limit == 0 {
            return count;
        }
        if self.kept.len() < limit {
            self.kept.insert(to, ts);
        } else if self.kept.front().is_some_and(|oldest| ts > oldest) {
            // Drop the smallest; the insertion point shifts left by one.
            self.kept.pop_front();
            self.kept.insert(to - 1, ts);
        }
        count
    }

    /// The newest kept timestamp (drives eviction).
    pub fn newest(&self) -> Option<EventTime> {
        self.kept.back()
    }

    /// Number of kept timestamps.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.kept.len() == 0
    }
}

impl Encode for SlidingWindow {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.kept.len() as u64);
        // Delta-encode: ascending times compress to small varints.
        let mut prev = 0i64;
        for (i, t) in self.kept.iter().enumerate() {
            if i == 0 {
                put_i64(out, t);
            } else {
                put_varint(out, (t - prev) as u64);
            }
            prev = t;
        }
    }
}

impl Decode for SlidingWindow {
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError> {
        let n = get_varint(input)? as usize;
        let mut kept = KeptTimes::with_capacity(n.min(1 << 16));
        let mut prev = 0i64;
        for i in 0..n {
            let t = if i == 0 { get_i64(input)? } else { prev.wrapping_add(get_varint(input)? as i64) };
            kept.insert(i, t);
            prev = t;
        }
        Ok(SlidingWindow { kept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn n_versus_n_plus_one() {
        let mut w = SlidingWindow::default();
        let counts: Vec<u64> = (0..32).map(|i| w.observe(1_000 + i, 30, 60_000)).collect();
        assert_eq!(counts[29], 30, "the 30th event is at the limit");
        assert_eq!(counts[30], 31, "the 31st exceeds it");
        assert_eq!(counts[31], 31, "later ones stay over, capped at N + 1");
        assert_eq!(w.len(), 30);
    }

    #[test]
    fn window_is_half_open() {
        let mut w = SlidingWindow::default();
        w.observe(0, 1, 300_000);
        // Exactly W later the first event is outside (ts − W, ts].
        assert_eq!(w.observe(300_000, 1, 300_000), 1);
        // Just inside W it counts.
        let mut w = SlidingWindow::default();
        w.observe(0, 1, 300_000);
        assert_eq!(w.observe(299_999, 1, 300_000), 2);
    }

    #[test]
    fn out_of_order_event_counts_only_older_timestamps() {
        let mut w = SlidingWindow::default();
        for t in [10, 20, 30] {
            w.observe(t, 5, 100);
        }
        // An event at 15 sees 10 but not 20 or 30.
        assert_eq!(w.observe(15, 5, 100), 2);
        assert_eq!(w.kept.iter().collect::<Vec<_>>(), [10, 15, 20, 30]);
    }

    #[test]
    fn codec_round_trip() {
        let mut w = SlidingWindow::default();
        for t in [1_767_225_600_000, 1_767_225_600_250, 1_767_225_601_000] {
            w.observe(t, 5, 60_000);
        }
        let mut buf = Vec::new();
        w.encode(&mut buf);
        assert_eq!(SlidingWindow::decode(&mut &buf[..]).unwrap(), w);
    }

    proptest! {
        /// Against a brute-force oracle that keeps every timestamp: on streams in
        /// `ts` order the trigger decision and the (capped) count agree exactly.
        #[test]
        fn matches_brute_force_oracle(
            gaps in proptest::collection::vec(0i64..400, 1..300),
            limit in 1u32..12,
            window in 1i64..2_000,
        ) {
            let mut w = SlidingWindow::default();
            let mut all: Vec<i64> = Vec::new();
            let mut ts = 1_000_000i64;
            for g in gaps {
                ts += g;
                let oracle = 1 + all.iter().filter(|&&t| t > ts - window && t <= ts).count() as u64;
                let got = w.observe(ts, limit, window);
                prop_assert_eq!(got > u64::from(limit), oracle > u64::from(limit));
                prop_assert_eq!(got, oracle.min(u64::from(limit) + 1));
                all.push(ts);
                prop_assert!(w.len() <= limit as usize);
            }
        }
    }
}
