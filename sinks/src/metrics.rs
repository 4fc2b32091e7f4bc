//! The Prometheus metrics of design §9 — the only place that registers any.
//!
//! Names follow Prometheus conventions (`_total` counters, `_seconds` histograms,
//! base units) and every label is bounded: a detector, rule, action, reason, type,
//! severity, signal, field, topic or partition — never a visitor, session, IP or
//! other user data. Tenants appear only in `distinct_visitors`, and only when
//! `metrics.tenant_labels = true`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::latency::Latency;

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// Event type.
    pub r#type: String,
}

/// Labels of `verdicts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// Detector.
    pub detector: String,
    /// Rule.
    pub rule: String,
    /// The rule's action (`alert` for alert-only rules); for a shadow rule, the
    /// action it would have taken.
    pub action: String,
    /// `enforce` or `shadow`: shadow verdicts are the would-be actions of a rule on trial.
    pub mode: String,
}

/// An `action` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// Action.
    pub action: String,
}

/// Labels of `alerts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// P0..P3.
    pub severity: String,
    /// Signal.
    pub signal: String,
}

/// A `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Reason.
    pub reason: String,
}

/// A `field` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FieldLabel {
    /// Field.
    pub field: String,
}

/// Labels of `consumer_lag`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: String,
}

/// A `detector` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DetectorLabel {
    /// Detector.
    pub detector: String,
}

/// A `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// Labels of `http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `GET`, `DELETE` or `POST`: a block lookup and a lift share a route.
    pub method: String,
    /// Route template (`/v1/blocks/{tenant}/{kind}/{id}`), never the path itself.
    pub route: String,
    /// Status code.
    pub code: String,
}

/// An optional `tenant` label: no label at all when tenant labels are off
/// (`warden_distinct_visitors{} 42`, not `{tenant=""}`).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TenantLabel {
    /// Tenant, or none.
    pub tenant: Option<String>,
}

impl EncodeLabelSet for TenantLabel {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelSetEncoder) -> Result<(), std::fmt::Error> {
        match &self.tenant {
            Some(tenant) => [("tenant", tenant.as_str())].encode(encoder),
            None => Ok(()),
        }
    }
}

/// Every metric warden exports.
pub struct Metrics {
    registry: Registry,
    /// `warden_events_total{type}`.
    pub events: Family<TypeLabel, Counter>,
    /// `warden_verdicts_total{detector,rule,action}`.
    pub verdicts: Family<VerdictLabels, Counter>,
    /// `warden_decisions_total{action}`.
    pub decisions: Family<ActionLabel, Counter>,
    /// `warden_killswitch_total{action}`.
    pub killswitch: Family<ActionLabel, Counter>,
    /// `warden_alerts_total{severity,signal}`.
    pub alerts: Family<AlertLabels, Counter>,
    /// `warden_dlq_total{reason}`.
    pub dlq: Family<ReasonLabel, Counter>,
    /// `warden_suppressed_total{reason}`.
    pub suppressed: Family<ReasonLabel, Counter>,
    /// `warden_field_errors_total{field}`.
    pub field_errors: Family<FieldLabel, Counter>,
    /// `warden_late_events_total`.
    pub late_events: Counter,
    /// `warden_future_events_total`.
    pub future_events: Counter,
    /// `warden_consumer_lag{topic,partition}`.
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// `warden_process_latency_seconds`: event arrival to output acknowledged.
    pub process_latency: Latency,
    /// `warden_input_delay_seconds`: the message's Kafka timestamp to its arrival
    /// in warden (the input hop; behind a backlog, how far behind).
    pub input_delay: Latency,
    /// `warden_state_keys{detector}`.
    pub state_keys: Family<DetectorLabel, Gauge>,
    /// `warden_state_bytes`.
    pub state_bytes: Gauge,
    /// `warden_state_spilled_keys`.
    pub state_spilled_keys: Gauge,
    /// `warden_quota_exceeded_total`.
    pub quota_exceeded: Counter,
    /// `warden_checkpoint_seconds`.
    pub checkpoint_seconds: Histogram,
    /// `warden_checkpoint_failures_total`.
    pub checkpoint_failures: Counter,
    /// `warden_ready` (0 or 1).
    pub ready: Gauge,
    /// `warden_distinct_visitors` (HyperLogLog estimate).
    pub distinct_visitors: Family<TenantLabel, Gauge>,
    /// `warden_reloads_total{result}`.
    pub reloads: Family<ResultLabel, Counter>,
    /// `warden_log_suppressed_total`.
    pub log_suppressed: Counter,
    /// `warden_http_requests_total{method,route,code}`.
    pub http_requests: Family<HttpLabels, Counter>,
    /// `warden_output_errors_total`: failed output deliveries (each is sent again, or
    /// aborts its transaction under exactly-once).
    pub output_errors: Counter,
    encoded: Mutex<String>,
    scrapes: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `warden_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("warden");
        let m = Metrics {
            events: Family::default(),
            verdicts: Family::default(),
            decisions: Family::default(),
            killswitch: Family::default(),
            alerts: Family::default(),
            dlq: Family::default(),
            suppressed: Family::default(),
            field_errors: Family::default(),
            late_events: Counter::default(),
            future_events: Counter::default(),
            consumer_lag: Family::default(),
            // 0.1 ms .. ~6.5 s.
            process_latency: Latency::new(exponential_buckets(0.0001, 2.0, 17)),
            // 1 ms .. ~35 min: a replay or an outage shows as minutes.
            input_delay: Latency::new(exponential_buckets(0.001, 2.0, 22)),
            state_keys: Family::default(),
            state_bytes: Gauge::default(),
            state_spilled_keys: Gauge::default(),
            quota_exceeded: Counter::default(),
            // 1 ms .. ~32 s.
            checkpoint_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            checkpoint_failures: Counter::default(),
            ready: Gauge::default(),
            distinct_visitors: Family::default(),
            reloads: Family::default(),
            log_suppressed: Counter::default(),
            http_requests: Family::default(),
            output_errors: Counter::default(),
            encoded: Mutex::new(String::new()),
            scrapes: AtomicU64::new(0),
            registry: Registry::default(),
        };
        registry.register("events", "Events decoded, by type", m.events.clone());
        registry.register("verdicts", "Rule firings, by detector, rule and the rule's action", m.verdicts.clone());
        registry.register("decisions", "Decision records emitted, by action", m.decisions.clone());
        registry.register("killswitch", "Kill-switch commands emitted, by action", m.killswitch.clone());
        registry.register("alerts", "Alert records emitted, by severity and signal", m.alerts.clone());
        registry.register("dlq", "Inputs dead-lettered, by reason", m.dlq.clone());
        registry.register(
            "suppressed",
            "Records not emitted, by reason (in_force, warming, late_alert)",
            m.suppressed.clone(),
        );
        registry.register("field_errors", "Optional fields with the wrong type, by field", m.field_errors.clone());
        registry.register("late_events", "Events behind the partition's watermark", m.late_events.clone());
        registry.register("future_events", "Events too far ahead to move the watermark", m.future_events.clone());
        registry.register(
            "consumer_lag",
            "Messages between the partition's end and warden's position",
            m.consumer_lag.clone(),
        );
        registry.register(
            "process_latency_seconds",
            "Event arrival to an output acknowledged by the broker (one sample per output, or per event without one)",
            m.process_latency.clone(),
        );
        registry.register(
            "input_delay_seconds",
            "The input message's Kafka timestamp to its arrival in warden",
            m.input_delay.clone(),
        );
        registry.register("state_keys", "Keys held in memory, by detector", m.state_keys.clone());
        registry.register("state_bytes", "Approximate bytes of in-memory state", m.state_bytes.clone());
        registry.register("state_spilled_keys", "Keys spilled out of memory to RocksDB", m.state_spilled_keys.clone());
        registry.register(
            "quota_exceeded",
            "State keys spilled because a budget or tenant quota was hit",
            m.quota_exceeded.clone(),
        );
        registry.register("checkpoint_seconds", "Time to write one checkpoint", m.checkpoint_seconds.clone());
        registry.register("checkpoint_failures", "Checkpoints that failed to write", m.checkpoint_failures.clone());
        registry.register("ready", "1 when partitions are assigned and state restored", m.ready.clone());
        registry.register(
            "distinct_visitors",
            "Distinct visitors seen (HyperLogLog estimate)",
            m.distinct_visitors.clone(),
        );
        registry.register("reloads", "Rule reloads, by result", m.reloads.clone());
        registry.register(
            "log_suppressed",
            "Log lines held back by a rate limit: bad input, Kafka client errors and messages, output re-sends",
            m.log_suppressed.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests, by method, route template and status code",
            m.http_requests.clone(),
        );
        registry.register(
            "output_errors",
            "Output deliveries that failed (sent again; under exactly-once the transaction aborts)",
            m.output_errors.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        let mut out = self.encoded.lock().unwrap_or_else(|e| e.into_inner());
        out.clear();
        if text::encode(&mut *out, &self.registry).is_err() {
            out.clear();
        }
        out.clone()
    }

    /// Creates the label sets that should show 0 before anything happens, so
    /// dashboards and `rate()` work from the first scrape.
    pub fn preregister(&self, types: &[&str], dlq_reasons: &[&str], suppressed: &[&str]) {
        for t in types {
            let _ = self.events.get_or_create(&TypeLabel { r#type: (*t).into() });
        }
        for r in dlq_reasons {
            let _ = self.dlq.get_or_create(&ReasonLabel { reason: (*r).into() });
        }
        for r in suppressed {
            let _ = self.suppressed.get_or_create(&ReasonLabel { reason: (*r).into() });
        }
        for r in ["ok", "error"] {
            let _ = self.reloads.get_or_create(&ResultLabel { result: r.into() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let m = Metrics::new();
        m.preregister(&["webhook"], &["invalid_json"], &["in_force"]);
        m.events.get_or_create(&TypeLabel { r#type: "webhook".into() }).inc();
        let mut latency = m.process_latency.local();
        latency.observe(0.002);
        m.process_latency.add(&mut latency);
        let mut delays = m.input_delay.local();
        delays.observe(0.02);
        m.input_delay.add(&mut delays);
        let text = m.encode();
        for want in [
            "warden_events_total{type=\"webhook\"} 1",
            "warden_dlq_total{reason=\"invalid_json\"} 0",
            "warden_process_latency_seconds_bucket",
            "warden_input_delay_seconds_bucket{le=\"0.032\"} 1",
            "warden_late_events_total 0",
            "warden_ready 0",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
    }
}
