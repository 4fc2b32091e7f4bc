//! Latency histograms that hot loops fill without a lock per observation.
//!
//! warden times every event (arrival to outputs acknowledged, and the input hop
//! before it). A shared histogram takes a lock per observation, which at
//! hundreds of thousands of events per second on two cores is a cost of its own
//! and a line of cache passed between threads. Instead each thread keeps a
//! [`LocalLatency`] (plain counters) and adds it to the shared [`Latency`] on its
//! metrics tick; a scrape sees observations at most one tick late.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A Prometheus histogram of seconds, registered once and added to in batches.
#[derive(Clone, Debug)]
pub struct Latency {
    bounds: Arc<[f64]>,
    totals: Arc<Mutex<Counts>>,
}

/// Observations not yet added to their [`Latency`]: one thread's, lock-free.
#[derive(Debug)]
pub struct LocalLatency {
    bounds: Arc<[f64]>,
    counts: Counts,
}

/// Per-bucket counts (not cumulative; the last is +Inf), their sum and number.
#[derive(Clone, Debug, Default)]
struct Counts {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Counts {
    fn zero(buckets: usize) -> Counts {
        Counts { buckets: vec![0; buckets], sum: 0.0, count: 0 }
    }
}

impl Latency {
    /// A histogram with these upper bounds (ascending), plus +Inf.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Latency {
        let bounds: Arc<[f64]> = bounds.into_iter().chain(std::iter::once(f64::INFINITY)).collect();
        let totals = Arc::new(Mutex::new(Counts::zero(bounds.len())));
        Latency { bounds, totals }
    }

    /// An empty accumulator for one thread.
    pub fn local(&self) -> LocalLatency {
        LocalLatency { bounds: self.bounds.clone(), counts: Counts::zero(self.bounds.len()) }
    }

    /// Adds `local`'s observations and empties it. `local` must come from this
    /// histogram's [`Latency::local`] (or a clone's).
    pub fn add(&self, local: &mut LocalLatency) {
        if local.counts.count == 0 {
            return;
        }
        debug_assert!(Arc::ptr_eq(&self.bounds, &local.bounds), "a local from another histogram");
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        for (total, n) in totals.buckets.iter_mut().zip(&mut local.counts.buckets) {
            *total += std::mem::take(n);
        }
        totals.sum += std::mem::take(&mut local.counts.sum);
        totals.count += std::mem::take(&mut local.counts.count);
    }
}

impl LocalLatency {
    /// Records one observation, in seconds.
    pub fn observe(&mut self, seconds: f64) {
        // NaN falls through every comparison into +Inf, as prometheus-client does.
        let i = self.bounds.iter().position(|b| seconds <= *b).unwrap_or(self.bounds.len() - 1);
        self.counts.buckets[i] += 1;
        self.counts.sum += seconds;
        self.counts.count += 1;
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let buckets: Vec<(f64, u64)> = self.bounds.iter().copied().zip(totals.buckets).collect();
        encoder.encode_histogram::<NoLabelSet>(totals.sum, totals.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    fn page(
        name: &str,
        metric: impl EncodeMetric + TypedMetric + Clone + Send + Sync + std::fmt::Debug + 'static,
    ) -> String {
        let mut registry = Registry::default();
        registry.register(name, "help", metric);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        text
    }

    #[test]
    fn batched_observations_encode_as_prometheus_clients_own_histogram() {
        let bounds = || [0.001, 0.01, 0.1];
        let (ours, theirs) = (Latency::new(bounds()), Histogram::new(bounds()));
        let (mut a, mut b) = (ours.local(), ours.local());
        for (i, v) in [0.0005, 0.001, 0.002, 0.05, 0.1, 0.5, 7.0, f64::NAN].into_iter().enumerate() {
            if i % 2 == 0 {
                a.observe(v)
            } else {
                b.observe(v)
            }
            theirs.observe(v);
        }
        assert_eq!(page("x", ours.clone()).matches("x_count 0").count(), 1, "nothing shows before it is added");
        ours.add(&mut a);
        ours.add(&mut b);
        ours.add(&mut b); // emptied by the first add: adds nothing
                          // Both sums are NaN here; compare everything else line by line.
        let strip = |t: String| t.lines().filter(|l| !l.starts_with("x_sum")).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(strip(page("x", ours)), strip(page("x", theirs)));
    }

    #[test]
    fn sums_and_counts_add_up() {
        let h = Latency::new([1.0]);
        let mut l = h.local();
        l.observe(0.25);
        l.observe(2.0);
        h.add(&mut l);
        l.observe(0.5);
        h.add(&mut l);
        let text = page("y", h);
        for want in ["y_sum 2.75", "y_count 3", "y_bucket{le=\"1.0\"} 2", "y_bucket{le=\"+Inf\"} 3"] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }
}
