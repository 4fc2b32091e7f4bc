//! [`Tally`]: what the engine did, as plain counters.
//!
//! The engine counts; it does not export. `warden run` turns a tally into Prometheus
//! metrics (design §9) and `warden scan` into its summary, so the engine stays free
//! of metric libraries and global state.

use warden_schemas::decode::DecodeError;
use warden_schemas::event::{EventType, OPTIONAL_FIELDS};
use warden_schemas::Action;

use crate::rules::Rule;
use crate::verdict::Signal;

/// Counters of one partition's (or one scan's) processing; add them up with [`Tally::merge`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Events decoded, by [`EventType::ALL`] index.
    pub events: [u64; 3],
    /// Verdicts, by rule id.
    pub verdicts: Vec<u64>,
    /// Decisions, by [`Action::ALL`] index.
    pub decisions: [u64; 10],
    /// Kill-switch commands, by [`Action::ALL`] index.
    pub killswitch: [u64; 10],
    /// Alert records, by [`Signal::ALL`] index.
    pub alerts: [u64; 4],
    /// Dead letters, by [`DecodeError::REASONS`] index.
    pub dlq: [u64; 9],
    /// Optional fields with the wrong type, by [`OPTIONAL_FIELDS`] index.
    pub field_errors: [u64; 19],
    /// Records not emitted because one was in force.
    pub suppressed_in_force: u64,
    /// Alert triggers for buckets closed over an hour ago.
    pub suppressed_late_alert: u64,
    /// Events behind the watermark.
    pub late_events: u64,
    /// Events too far ahead to move the watermark.
    pub future_events: u64,
    /// Keys spilled out of memory because the budget or a tenant quota was hit.
    pub quota_exceeded: u64,
}

impl Tally {
    /// Counts a decoded event.
    pub fn event(&mut self, ty: EventType) {
        self.events[EventType::ALL.iter().position(|t| *t == ty).unwrap_or(0)] += 1;
    }

    /// Counts a dead letter.
    pub fn dead_letter(&mut self, e: &DecodeError) {
        let i = DecodeError::REASONS.iter().position(|r| *r == e.reason()).unwrap_or(0);
        self.dlq[i] += 1;
    }

    /// Counts a mistyped optional field.
    pub fn field_error(&mut self, field: &str) {
        if let Some(i) = OPTIONAL_FIELDS.iter().position(|f| *f == field) {
            self.field_errors[i] += 1;
        }
    }

    /// Counts a verdict of `rule`.
    pub fn verdict(&mut self, rule: &Rule) {
        let i = rule.id.0 as usize;
        if self.verdicts.len() <= i {
            self.verdicts.resize(i + 1, 0);
        }
        self.verdicts[i] += 1;
    }

    /// Counts an emitted decision.
    pub fn decision(&mut self, a: Action) {
        self.decisions[action_index(a)] += 1;
    }

    /// Counts an emitted kill-switch command.
    pub fn killswitch(&mut self, a: Action) {
        self.killswitch[action_index(a)] += 1;
    }

    /// Counts an emitted alert record.
    pub fn alert(&mut self, s: Signal) {
        self.alerts[Signal::ALL.iter().position(|x| *x == s).unwrap_or(0)] += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Tally) {
        fn add<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        add(&mut self.events, &other.events);
        add(&mut self.decisions, &other.decisions);
        add(&mut self.killswitch, &other.killswitch);
        add(&mut self.alerts, &other.alerts);
        add(&mut self.dlq, &other.dlq);
        add(&mut self.field_errors, &other.field_errors);
        if self.verdicts.len() < other.verdicts.len() {
            self.verdicts.resize(other.verdicts.len(), 0);
        }
        self.verdicts.iter_mut().zip(&other.verdicts).for_each(|(x, y)| *x += y);
        self.suppressed_in_force += other.suppressed_in_force;
        self.suppressed_late_alert += other.suppressed_late_alert;
        self.late_events += other.late_events;
        self.future_events += other.future_events;
        self.quota_exceeded += other.quota_exceeded;
    }

    /// Events decoded, all types.
    pub fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }

    /// Dead letters, all reasons.
    pub fn total_dead_letters(&self) -> u64 {
        self.dlq.iter().sum()
    }
}

fn action_index(a: Action) -> usize {
    Action::ALL.iter().position(|x| *x == a).unwrap_or(0)
}
