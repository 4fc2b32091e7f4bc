//! [`BlockRegistry`]: the instance-wide read model of records in force, behind
//! `GET /v1/blocks/{tenant}/{kind}/{id}`.
//!
//! It is fed with the records the decide step emitted (and rebuilt from restored
//! state after a restart); it never changes which records are emitted. "In force"
//! is judged in event time: against the owning partition's newest event time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use serde_json::{json, Value};
use warden_schemas::{Action, Record};

/// A subject: (tenant, kind, id).
pub type SubjectKey = (Option<String>, String, String);

/// One record in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveEntry {
    /// Rule that emitted it.
    pub rule: String,
    /// Action.
    pub action: Action,
    /// Its reason sentence.
    pub reason: String,
    /// Triggering event time.
    pub event_ts: i64,
    /// When it lapses (event time).
    pub expires_at: i64,
    /// Record id.
    pub id: String,
    /// The partition whose state holds it (`topic/partition`).
    pub partition: String,
}

/// Active blocks and kill-switches, by subject.
#[derive(Debug, Default)]
pub struct BlockRegistry {
    entries: DashMap<SubjectKey, Vec<ActiveEntry>>,
    /// Newest event time per partition, for the in-force test.
    clocks: DashMap<String, Arc<AtomicI64>>,
}

impl BlockRegistry {
    /// The event-time clock cell of `partition`, shared with its task.
    pub fn clock(&self, partition: &str) -> Arc<AtomicI64> {
        self.clocks.entry(partition.to_string()).or_insert_with(|| Arc::new(AtomicI64::new(i64::MIN))).clone()
    }

    /// Records an emitted record if it holds for a while (TTL > 0, not a lift).
    pub fn observe(&self, record: &Record, partition: &str) {
        let (key, entry) = match record {
            Record::Decision(d) if d.ttl_ms > 0 && d.action != Action::Lift && d.action != Action::Flag => (
                (d.tenant.clone(), d.subject.kind.clone(), d.subject.id.clone()),
                ActiveEntry {
                    rule: d.rule.clone(),
                    action: d.action,
                    reason: d.reason.clone(),
                    event_ts: d.event_ts,
                    expires_at: d.event_ts.saturating_add(d.ttl_ms as i64),
                    id: d.decision_id.clone(),
                    partition: partition.to_string(),
                },
            ),
            Record::KillSwitch(k) if k.ttl_ms > 0 => (
                (k.tenant.clone(), k.target.kind.clone(), k.target.id.clone()),
                ActiveEntry {
                    rule: k.rule.clone(),
                    action: k.action,
                    reason: k.reason.clone(),
                    event_ts: k.issued_at,
                    expires_at: k.expires_at,
                    id: k.command_id.clone(),
                    partition: partition.to_string(),
                },
            ),
            _ => return,
        };
        self.insert(key, entry);
    }

    /// Inserts an entry (also used to rebuild from restored state).
    pub fn insert(&self, key: SubjectKey, entry: ActiveEntry) {
        let mut list = self.entries.entry(key).or_default();
        list.retain(|e| !(e.rule == entry.rule && e.partition == entry.partition));
        list.push(entry);
    }

    /// Removes the entries of `rule` on a subject (after a lift).
    pub fn remove(&self, key: &SubjectKey, rule: &str) {
        if let Some(mut list) = self.entries.get_mut(key) {
            list.retain(|e| e.rule != rule);
        }
        self.entries.remove_if(key, |_, list| list.is_empty());
    }

    /// Forgets everything a partition held (it was revoked).
    pub fn forget_partition(&self, partition: &str) {
        self.entries.retain(|_, list| {
            list.retain(|e| e.partition != partition);
            !list.is_empty()
        });
        self.clocks.remove(partition);
    }

    fn now_of(&self, partition: &str) -> i64 {
        self.clocks.get(partition).map_or(i64::MIN, |c| c.load(Ordering::Relaxed))
    }

    /// The records in force on a subject, in rule order.
    pub fn active(&self, key: &SubjectKey) -> Vec<ActiveEntry> {
        let mut out: Vec<ActiveEntry> = self
            .entries
            .get(key)
            .map(|list| list.iter().filter(|e| e.expires_at > self.now_of(&e.partition)).cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.rule.cmp(&b.rule));
        out
    }

    /// The partitions holding records on a subject (where a lift must go).
    pub fn partitions_of(&self, key: &SubjectKey) -> Vec<String> {
        let mut out: Vec<String> = self
            .active(key)
            .into_iter()
            .map(|e| e.partition)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        out.sort();
        out
    }

    /// The `GET /v1/blocks/...` body for a subject.
    pub fn to_json(key: &SubjectKey, active: &[ActiveEntry]) -> Value {
        json!({
            "tenant": key.0,
            "subject": {"kind": key.1, "id": key.2},
            "records": active.iter().map(|e| json!({
                "rule": e.rule,
                "action": e.action.as_str(),
                "reason": e.reason,
                "event_ts": e.event_ts,
                "expires_at": e.expires_at,
                "id": e.id,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_schemas::{Decision, Mode, Provenance, Subject};

    fn block(rule: &str, ts: i64, ttl: u64) -> Record {
        Record::Decision(Decision {
            schema: "warden.decision.v1".into(),
            decision_id: "0".repeat(32),
            action: Action::Block,
            subject: Subject { kind: "visitor".into(), id: "v-1".into() },
            tenant: Some("t".into()),
            detector: "rate".into(),
            rule: rule.into(),
            mode: Mode::Enforce,
            reason: "r".into(),
            ttl_ms: ttl,
            event_ts: ts,
            evidence: json!({}),
            event_id: None,
            source: Provenance::File { file: "-".into(), line: 1 },
        })
    }

    #[test]
    fn in_force_follows_the_partitions_event_time() {
        let r = BlockRegistry::default();
        let clock = r.clock("p0");
        r.observe(&block("visitor_rate", 1_000, 60_000), "p0");
        r.observe(&block("pii_leak", 1_000, 0), "p0");
        let key = (Some("t".into()), "visitor".into(), "v-1".into());
        clock.store(30_000, Ordering::Relaxed);
        assert_eq!(r.active(&key).len(), 1);
        clock.store(61_000, Ordering::Relaxed);
        assert!(r.active(&key).is_empty(), "lapsed in event time");
    }
}
