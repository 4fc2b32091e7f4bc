//! Tallies → Prometheus: the engine counts as plain numbers; this turns them into
//! the labelled metrics of design §9. Every label comes from a closed set.

use warden_detectors::rules::Rules;
use warden_detectors::verdict::Signal;
use warden_detectors::Tally;
use warden_schemas::decode::DecodeError;
use warden_schemas::event::{EventType, OPTIONAL_FIELDS};
use warden_schemas::{Action, Mode};
use warden_sinks::metrics::{ActionLabel, AlertLabels, FieldLabel, Metrics, ReasonLabel, TypeLabel, VerdictLabels};

/// A `reason` label.
pub fn reason(r: &str) -> ReasonLabel {
    ReasonLabel { reason: r.to_string() }
}

/// Adds `tally` to the metrics.
pub fn export(m: &Metrics, rules: &Rules, t: &Tally) {
    for (i, n) in t.events.iter().enumerate().filter(|(_, n)| **n > 0) {
        m.events.get_or_create(&TypeLabel { r#type: EventType::ALL[i].as_str().into() }).inc_by(*n);
    }
    for (i, n) in t.verdicts.iter().enumerate().filter(|(_, n)| **n > 0) {
        let Some(rule) = rules.rules.get(i) else { continue };
        let labels = VerdictLabels {
            detector: rule.detector.as_str().into(),
            rule: rule.name.clone(),
            action: rule.action.map_or("alert", Action::as_str).into(),
            mode: if rule.mode == Mode::Shadow { "shadow" } else { "enforce" }.into(),
        };
        m.verdicts.get_or_create(&labels).inc_by(*n);
    }
    for (i, n) in t.decisions.iter().enumerate().filter(|(_, n)| **n > 0) {
        m.decisions.get_or_create(&ActionLabel { action: Action::ALL[i].as_str().into() }).inc_by(*n);
    }
    for (i, n) in t.killswitch.iter().enumerate().filter(|(_, n)| **n > 0) {
        m.killswitch.get_or_create(&ActionLabel { action: Action::ALL[i].as_str().into() }).inc_by(*n);
    }
    for (i, n) in t.alerts.iter().enumerate().filter(|(_, n)| **n > 0) {
        let s = Signal::ALL[i];
        m.alerts
            .get_or_create(&AlertLabels { severity: s.severity().as_str().into(), signal: s.as_str().into() })
            .inc_by(*n);
    }
    for (i, n) in t.dlq.iter().enumerate().filter(|(_, n)| **n > 0) {
        m.dlq.get_or_create(&reason(DecodeError::REASONS[i])).inc_by(*n);
    }
    for (i, n) in t.field_errors.iter().enumerate().filter(|(_, n)| **n > 0) {
        m.field_errors.get_or_create(&FieldLabel { field: OPTIONAL_FIELDS[i].into() }).inc_by(*n);
    }
    if t.suppressed_in_force > 0 {
        m.suppressed.get_or_create(&reason("in_force")).inc_by(t.suppressed_in_force);
    }
    if t.suppressed_late_alert > 0 {
        m.suppressed.get_or_create(&reason("late_alert")).inc_by(t.suppressed_late_alert);
    }
    m.late_events.inc_by(t.late_events);
    m.future_events.inc_by(t.future_events);
    m.quota_exceeded.inc_by(t.quota_exceeded);
}

/// Pre-creates the label sets dashboards expect to see at zero.
pub fn preregister(m: &Metrics) {
    let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    m.preregister(&types, &DecodeError::REASONS, &["in_force", "warming", "late_alert"]);
    for d in warden_detectors::rules::DetectorKind::ALL {
        let _ = m.state_keys.get_or_create(&warden_sinks::metrics::DetectorLabel { detector: d.as_str().into() });
    }
    let _ = m.distinct_visitors.get_or_create(&warden_sinks::metrics::TenantLabel { tenant: None });
    for f in OPTIONAL_FIELDS {
        let _ = m.field_errors.get_or_create(&FieldLabel { field: f.into() });
    }
}
