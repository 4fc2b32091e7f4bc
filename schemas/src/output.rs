//! Output records (design §4) and their deterministic ids.
//!
//! Every record serialises to one JSON object with a `schema` field; the JSON Schema
//! files in `schemas/json/` describe the same shapes and a test holds them together.
//! Ids are hashes of content (never offsets, clocks or random values), so replaying
//! the same input gives the same ids and consumers de-duplicate on them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::EventTime;
use crate::jcs;
use crate::json::Object;

/// `schema` of decisions.
pub const DECISION_SCHEMA: &str = "warden.decision.v1";
/// `schema` of kill-switch commands.
pub const KILLSWITCH_SCHEMA: &str = "warden.killswitch.v1";
/// `schema` of alerts.
pub const ALERT_SCHEMA: &str = "warden.alert.v1";
/// `schema` of `scan`'s dead-letter records.
pub const DLQ_SCHEMA: &str = "warden.dlq.v1";

/// What a decision or command is about: `{"kind": K, "id": ID}` with the raw id from
/// the event, never prefixed by the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    /// `visitor`, `tenant`, `ip`, `session`, `run`, `workflow`, `user`, `tool`,
    /// `service`, `source`, `message`, or `args.<name>`.
    pub kind: String,
    /// The raw value from the event.
    pub id: String,
}

/// What the consumer of a record should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the subject's traffic for `ttl_ms`.
    Block,
    /// Slow the subject down for `ttl_ms`.
    Throttle,
    /// Drop this message (replays).
    Drop,
    /// Record only; nothing is enforced.
    Flag,
    /// Cap the run (no more tool calls) for `ttl_ms`.
    Clamp,
    /// An operator lifted an earlier record.
    Lift,
    /// Kill-switch: stop the agent session.
    HaltSession,
    /// Kill-switch: disable the workflow.
    DisableWorkflow,
    /// Kill-switch: disable the tool.
    DisableTool,
    /// Kill-switch: kill the running job.
    KillJob,
}

impl Action {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Throttle => "throttle",
            Action::Drop => "drop",
            Action::Flag => "flag",
            Action::Clamp => "clamp",
            Action::Lift => "lift",
            Action::HaltSession => "halt_session",
            Action::DisableWorkflow => "disable_workflow",
            Action::DisableTool => "disable_tool",
            Action::KillJob => "kill_job",
        }
    }

    /// Every action, in a fixed order.
    pub const ALL: [Action; 10] = [
        Action::Block,
        Action::Throttle,
        Action::Drop,
        Action::Flag,
        Action::Clamp,
        Action::Lift,
        Action::HaltSession,
        Action::DisableWorkflow,
        Action::DisableTool,
        Action::KillJob,
    ];

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// True for the actions that go out as kill-switch commands, not decisions.
    pub fn is_killswitch(self) -> bool {
        matches!(self, Action::HaltSession | Action::DisableWorkflow | Action::DisableTool | Action::KillJob)
    }
}

/// Whether a rule enforces or only measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Emit the rule's action.
    #[default]
    Enforce,
    /// Emit `flag` with `evidence.would` set to the action it would have taken.
    Shadow,
}

/// Alert severity, P0 most urgent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// Page now.
    P0,
    /// Page in hours.
    P1,
    /// Next business day.
    P2,
    /// Informational.
    P3,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P0 => "P0",
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }
}

/// Where the triggering input came from: provenance only, never part of an id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Provenance {
    /// `warden run`: the Kafka position.
    Kafka {
        /// Input topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
    /// `warden scan`: the file (`-` for stdin) and 1-based line.
    File {
        /// Path as given on the command line.
        file: String,
        /// 1-based line number.
        line: u64,
    },
}

/// `warden.decision.v1`: a block, throttle, drop, flag, clamp or lift for the gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Always [`DECISION_SCHEMA`].
    pub schema: String,
    /// 32 hex chars, see [`decision_id`].
    pub decision_id: String,
    /// What to do.
    pub action: Action,
    /// Whom it concerns.
    pub subject: Subject,
    /// Tenant, or null for a log event without one.
    pub tenant: Option<String>,
    /// Detector that fired.
    pub detector: String,
    /// Rule that fired.
    pub rule: String,
    /// `enforce` or `shadow`.
    pub mode: Mode,
    /// One readable sentence.
    pub reason: String,
    /// How long the action holds, from `event_ts`; 0 = this event only.
    pub ttl_ms: u64,
    /// The triggering event's `ts`.
    pub event_ts: EventTime,
    /// Counts, limits and windows that fired; finding kinds for PII. Never clear text.
    pub evidence: serde_json::Value,
    /// The triggering event's `id`, or null.
    pub event_id: Option<String>,
    /// Provenance of the triggering input.
    pub source: Provenance,
}

/// `warden.killswitch.v1`: a command for the workflow engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillSwitch {
    /// Always [`KILLSWITCH_SCHEMA`].
    pub schema: String,
    /// 32 hex chars, see [`decision_id`] (same recipe).
    pub command_id: String,
    /// `halt_session`, `disable_workflow`, `disable_tool` or `kill_job`.
    pub action: Action,
    /// What to stop.
    pub target: Subject,
    /// Tenant.
    pub tenant: Option<String>,
    /// Detector that fired.
    pub detector: String,
    /// Rule that fired.
    pub rule: String,
    /// One readable sentence.
    pub reason: String,
    /// The trigger's event time.
    pub issued_at: EventTime,
    /// How long to apply it, from the moment the consumer applies it.
    pub ttl_ms: u64,
    /// `issued_at + ttl_ms` (event time).
    pub expires_at: EventTime,
    /// Id of the signing key, once one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Ed25519 over the canonical JSON of the record without `signature`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// `open` at a bucket's first trigger, `update` with the count later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// First trigger in the bucket.
    Open,
    /// The count so far, when the bucket closes or a late trigger arrives.
    Update,
}

/// `warden.alert.v1`: an aggregated incident signal per 5-minute event-time bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Always [`ALERT_SCHEMA`].
    pub schema: String,
    /// 32 hex chars, see [`alert_id`]; the same for `open` and its `update`s.
    pub alert_id: String,
    /// `open` or `update`.
    pub status: AlertStatus,
    /// P0..P3.
    pub severity: Severity,
    /// `prompt_injection`, `signature_failures`, `secret_in_logs`, `pii_in_logs`.
    pub signal: String,
    /// Tenant, or null.
    pub tenant: Option<String>,
    /// Whom it concerns.
    pub subject: Subject,
    /// Detector that fired.
    pub detector: String,
    /// Rule that fired.
    pub rule: String,
    /// One readable sentence.
    pub summary: String,
    /// Triggers in the bucket so far.
    pub count: u64,
    /// Event time of the first trigger.
    pub first_seen: EventTime,
    /// Event time of the latest trigger.
    pub last_seen: EventTime,
    /// Start of the 5-minute bucket.
    pub bucket_start: EventTime,
    /// At most 3 redacted previews of the triggering texts.
    pub samples: Vec<String>,
}

/// `warden.dlq.v1`: `scan`'s record of an input line it could not process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Always [`DLQ_SCHEMA`].
    pub schema: String,
    /// The reason label (design §8).
    pub reason: String,
    /// Input file (`-` for stdin).
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// Line size in bytes.
    pub size: u64,
}

/// Any record warden emits.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// A decision.
    Decision(Decision),
    /// A kill-switch command.
    KillSwitch(KillSwitch),
    /// An alert.
    Alert(Alert),
}

impl Record {
    /// The Kafka key (design §4): `{tenant}/{kind}/{id}` or `{tenant}/{signal}`.
    pub fn kafka_key(&self) -> String {
        let t = |t: &Option<String>| t.clone().unwrap_or_default();
        match self {
            Record::Decision(d) => format!("{}/{}/{}", t(&d.tenant), d.subject.kind, d.subject.id),
            Record::KillSwitch(k) => format!("{}/{}/{}", t(&k.tenant), k.target.kind, k.target.id),
            Record::Alert(a) => format!("{}/{}", t(&a.tenant), a.signal),
        }
    }

    /// The Kafka timestamp (CreateTime): `event_ts`, `issued_at` or `last_seen`.
    pub fn kafka_timestamp(&self) -> EventTime {
        match self {
            Record::Decision(d) => d.event_ts,
            Record::KillSwitch(k) => k.issued_at,
            Record::Alert(a) => a.last_seen,
        }
    }

    /// The record's id.
    pub fn id(&self) -> &str {
        match self {
            Record::Decision(d) => &d.decision_id,
            Record::KillSwitch(k) => &k.command_id,
            Record::Alert(a) => &a.alert_id,
        }
    }

    /// The record as one JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        let r = match self {
            Record::Decision(d) => serde_json::to_string(d),
            Record::KillSwitch(k) => serde_json::to_string(k),
            Record::Alert(a) => serde_json::to_string(a),
        };
        // Serialising these plain structs cannot fail: no maps with non-string keys.
        r.unwrap_or_default()
    }
}

/// One element of an id's preimage array.
#[derive(Clone, Copy, Debug)]
pub enum IdPart<'a> {
    /// A string.
    Str(&'a str),
    /// An integer (exact below 2^53).
    Int(i64),
    /// JSON null.
    Null,
}

/// First 16 bytes of SHA-256 over the canonical JSON of `parts`, as 32 hex chars.
pub fn id_of(parts: &[IdPart<'_>]) -> String {
    let mut text = String::with_capacity(128);
    text.push('[');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        match p {
            IdPart::Str(s) => jcs::write_str(s, &mut text),
            IdPart::Int(n) => jcs::write_i64(*n, &mut text),
            IdPart::Null => text.push_str("null"),
        }
    }
    text.push(']');
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..16])
}

/// The id of a decision or command: `[schema, rule, action, tenant, kind, id,
/// event_ts, event_sha256]`.
#[allow(clippy::too_many_arguments)]
pub fn decision_id(
    schema: &str,
    rule: &str,
    action: Action,
    tenant: Option<&str>,
    subject: &Subject,
    event_ts: EventTime,
    event_sha256: &str,
) -> String {
    id_of(&[
        IdPart::Str(schema),
        IdPart::Str(rule),
        IdPart::Str(action.as_str()),
        tenant.map_or(IdPart::Null, IdPart::Str),
        IdPart::Str(&subject.kind),
        IdPart::Str(&subject.id),
        IdPart::Int(event_ts),
        IdPart::Str(event_sha256),
    ])
}

/// The id of an alert: `[schema, signal, tenant, kind, id, bucket_start]`.
pub fn alert_id(signal: &str, tenant: Option<&str>, subject: &Subject, bucket_start: EventTime) -> String {
    id_of(&[
        IdPart::Str(ALERT_SCHEMA),
        IdPart::Str(signal),
        tenant.map_or(IdPart::Null, IdPart::Str),
        IdPart::Str(&subject.kind),
        IdPart::Str(&subject.id),
        IdPart::Int(bucket_start),
    ])
}

/// Hex SHA-256 of the canonical JSON of the input object as received.
pub fn event_sha256(object: &Object<'_>) -> String {
    let mut text = String::with_capacity(256);
    jcs::write_object(object, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_and_depend_on_content_only() {
        let s = Subject { kind: "visitor".into(), id: "v-1".into() };
        let a = decision_id(DECISION_SCHEMA, "visitor_rate", Action::Block, Some("t-1"), &s, 5, "ab");
        let b = decision_id(DECISION_SCHEMA, "visitor_rate", Action::Block, Some("t-1"), &s, 5, "ab");
        let c = decision_id(DECISION_SCHEMA, "visitor_rate", Action::Block, Some("t-2"), &s, 5, "ab");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn id_preimage_is_canonical_json() {
        // sha256('["a",null,1]') computed independently.
        let want = hex::encode(&Sha256::digest(br#"["a",null,1]"#)[..16]);
        assert_eq!(id_of(&[IdPart::Str("a"), IdPart::Null, IdPart::Int(1)]), want);
    }

    #[test]
    fn event_hash_ignores_key_order_and_whitespace() {
        let a = crate::json::parse(r#"{"b": 1, "a": [1.0, "x"]}"#).unwrap();
        let b = crate::json::parse(r#"{"a":[1,"x"],"b":1}"#).unwrap();
        assert_eq!(event_sha256(a.as_object().unwrap()), event_sha256(b.as_object().unwrap()));
    }
}
