//! The decide step (design §2, §4, §5): verdicts → records. Pure, event time, per
//! partition; this step alone decides which records exist.
//!
//! - A rule with `ttl_ms` 0 emits one record per triggering event. A rule with a TTL
//!   emits when no record of that rule on that (tenant, subject) is in force
//!   (`event_ts + ttl_ms` later than the event's `ts`); triggers meanwhile are counted
//!   as suppressed (`in_force`) and emit nothing.
//! - Kill-switch actions become `warden.killswitch.v1` commands; shadow rules emit
//!   `flag` decisions with `evidence.would`, under the same gate.
//! - Alerts aggregate per (signal, tenant, subject, 5-minute bucket): `open` at the
//!   first trigger, one `update` with the count when the watermark passes the
//!   bucket's end (if more followed), an `update` per late trigger for a bucket
//!   closed less than an hour ago, nothing after that. The end of a scan's input
//!   emits every pending `update` but closes only what the watermark passed, so
//!   a resumed scan counts on in the buckets still open.

use std::borrow::Cow;

use serde_json::Value;
use warden_schemas::event::Event;
use warden_schemas::output::{self, AlertStatus, KILLSWITCH_SCHEMA};
use warden_schemas::{Action, Alert, Decision, KillSwitch, Mode, Provenance, Record, Subject};

use crate::pii::{mask_credential_assignments, redact, PiiScanner, Scope};
use crate::rules::{Rule, RuleId, Rules};
use crate::state::codec::CodecError;
use crate::state::keys::{KeyBuf, KeyReader, StateKey};
use crate::state::table::Table;
use crate::state::values::{AlertBucket, InForce};
use crate::tally::Tally;
use crate::verdict::{AlertTrigger, Signal, Verdict};
use crate::EventTime;

/// Alert bucket width: 5 minutes of event time.
pub const BUCKET_MS: i64 = 300_000;
/// How long after its end a bucket still takes late triggers.
pub const LATE_ALERT_MS: i64 = 3_600_000;
/// Longest redacted sample kept, in characters.
const SAMPLE_CHARS: usize = 200;

/// The decide step's per-partition state.
#[derive(Debug, Default)]
pub struct DecideState {
    /// Records in force, per (rule, tenant, subject kind, subject id).
    pub in_force: Table<InForce>,
    /// Alert buckets, per (signal, tenant, subject kind, subject id, bucket start).
    pub alerts: Table<AlertBucket>,
    /// The earliest end of a bucket not yet closed (none: `EventTime::MAX`).
    pub next_close: EventTime,
}

impl DecideState {
    /// An empty state.
    pub fn new() -> Self {
        DecideState { next_close: EventTime::MAX, ..Default::default() }
    }
}

/// A record in force, as the block registry and a lift see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveRecord {
    /// Rule name.
    pub rule: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// Subject.
    pub subject: Subject,
    /// Action emitted.
    pub action: Action,
    /// Triggering event time.
    pub event_ts: EventTime,
    /// When it lapses.
    pub expires_at: EventTime,
    /// Hex SHA-256 of the triggering event.
    pub event_sha256: String,
}

/// Everything decide needs from the engine besides state.
pub(crate) struct Decider<'e> {
    pub rules: &'e Rules,
    pub scanner: &'e PiiScanner,
}

/// The lazily computed hash of the event being decided.
struct EventHash<'e, 'a> {
    event: &'e Event<'a>,
    hex: Option<String>,
}

impl EventHash<'_, '_> {
    fn get(&mut self) -> &str {
        let event = self.event;
        self.hex.get_or_insert_with(|| output::event_sha256(event.object))
    }
}

impl Decider<'_> {
    /// Turns one event's verdicts into records appended to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        event: &Event<'_>,
        verdicts: &[Verdict<'_>],
        source: &Provenance,
        watermark: EventTime,
        state: &mut DecideState,
        key: &mut KeyBuf,
        out: &mut Vec<Record>,
        tally: &mut Tally,
    ) {
        let mut hash = EventHash { event, hex: None };
        for v in verdicts {
            let rule = self.rules.get(v.rule);
            tally.verdict(rule);
            if let Some(action) = rule.action {
                self.emit(event, v, rule, action, source, state, key, &mut hash, out, tally);
            }
            if let Some(trigger) = &v.alert {
                self.alert(event, rule, trigger, watermark, state, key, out, tally);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        event: &Event<'_>,
        v: &Verdict<'_>,
        rule: &Rule,
        action: Action,
        source: &Provenance,
        state: &mut DecideState,
        key: &mut KeyBuf,
        hash: &mut EventHash<'_, '_>,
        out: &mut Vec<Record>,
        tally: &mut Tally,
    ) {
        let shadow = rule.mode == Mode::Shadow;
        let emitted = if shadow { Action::Flag } else { action };
        if rule.ttl_ms > 0 {
            key.start(rule.id, event.tenant).part(v.subject.kind).part(&v.subject.id);
            let state_key = key.state_key();
            if state.in_force.get(&state_key).is_some_and(|f| f.expires_at > event.ts) {
                tally.suppressed_in_force += 1;
                return;
            }
            let expires_at = event.ts.saturating_add(rule.ttl_ms as i64);
            let mut sha = [0u8; 32];
            let _ = hex::decode_to_slice(hash.get(), &mut sha);
            let code = Action::ALL.iter().position(|a| *a == emitted).unwrap_or(0) as u8;
            let mut entry = state.in_force.entry(&state_key, || InForce {
                event_ts: 0,
                expires_at: 0,
                action: 0,
                event_sha256: [0; 32],
                key: key.after_rule().into(),
            });
            let f = entry.value();
            (f.event_ts, f.expires_at, f.action, f.event_sha256) = (event.ts, expires_at, code, sha);
            entry.set_evict_at(expires_at);
        }
        let subject = Subject { kind: v.subject.kind.to_string(), id: v.subject.id.to_string() };
        let tenant = event.tenant.map(str::to_string);
        let describe = v.evidence.describe();
        if emitted.is_killswitch() {
            tally.killswitch(emitted);
            let command_id = output::decision_id(
                KILLSWITCH_SCHEMA,
                &rule.name,
                emitted,
                event.tenant,
                &subject,
                event.ts,
                hash.get(),
            );
            let reason = format!("{} {}: {} ({})", subject.kind, subject.id, describe, rule.name);
            out.push(Record::KillSwitch(KillSwitch {
                schema: KILLSWITCH_SCHEMA.into(),
                command_id,
                action: emitted,
                target: subject,
                tenant,
                detector: rule.detector.as_str().into(),
                rule: rule.name.clone(),
                reason,
                issued_at: event.ts,
                ttl_ms: rule.ttl_ms,
                expires_at: event.ts.saturating_add(rule.ttl_ms as i64),
                key_id: None,
                signature: None,
            }));
            return;
        }
        tally.decision(emitted);
        let mut evidence = v.evidence.to_json();
        let reason = if shadow {
            if let Value::Object(m) = &mut evidence {
                m.insert("would".into(), action.as_str().into());
            }
            format!("shadow: would {} {} {}: {} ({})", action.as_str(), subject.kind, subject.id, describe, rule.name)
        } else {
            format!("{} {}: {} ({})", subject.kind, subject.id, describe, rule.name)
        };
        let decision_id = output::decision_id(
            output::DECISION_SCHEMA,
            &rule.name,
            emitted,
            event.tenant,
            &subject,
            event.ts,
            hash.get(),
        );
        out.push(Record::Decision(Decision {
            schema: output::DECISION_SCHEMA.into(),
            decision_id,
            action: emitted,
            subject,
            tenant,
            detector: rule.detector.as_str().into(),
            rule: rule.name.clone(),
            mode: rule.mode,
            reason,
            ttl_ms: rule.ttl_ms,
            event_ts: event.ts,
            evidence,
            event_id: event.id.as_deref().map(str::to_string),
            source: source.clone(),
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        event: &Event<'_>,
        rule: &Rule,
        trigger: &AlertTrigger<'_>,
        watermark: EventTime,
        state: &mut DecideState,
        key: &mut KeyBuf,
        out: &mut Vec<Record>,
        tally: &mut Tally,
    ) {
        let bucket_start = event.ts - event.ts.rem_euclid(BUCKET_MS);
        let bucket_end = bucket_start + BUCKET_MS;
        if watermark >= bucket_end.saturating_add(LATE_ALERT_MS) {
            tally.suppressed_late_alert += 1;
            return;
        }
        alert_key(key, trigger.signal, event.tenant, trigger.subject.kind, &trigger.subject.id, bucket_start);
        let mut entry = state.alerts.entry(&key.state_key(), || AlertBucket {
            first_seen: event.ts,
            last_seen: event.ts,
            rule: rule.name.clone(),
            key: key.after_rule().into(),
            ..AlertBucket::default()
        });
        let fresh = entry.is_fresh();
        entry.set_evict_at(bucket_end.saturating_add(LATE_ALERT_MS));
        let b = entry.value();
        b.count += 1;
        b.first_seen = b.first_seen.min(event.ts);
        b.last_seen = b.last_seen.max(event.ts);
        if b.samples.len() < 3 {
            if let Some(text) = trigger.sample {
                b.samples.push(redacted_sample(self.scanner, text));
            }
        }
        let closed_already = watermark >= bucket_end;
        let status = if fresh {
            b.closed = closed_already;
            if !closed_already {
                state.next_close = state.next_close.min(bucket_end);
            }
            Some(AlertStatus::Open)
        } else if b.closed {
            Some(AlertStatus::Update)
        } else {
            None
        };
        if let Some(status) = status {
            b.emitted = b.count;
            let subject = Subject { kind: trigger.subject.kind.to_string(), id: trigger.subject.id.to_string() };
            let b = b.clone();
            out.push(alert_record(
                trigger.signal,
                status,
                event.tenant,
                subject,
                &b,
                bucket_start,
                rule.detector.as_str(),
            ));
            tally.alert(trigger.signal);
        }
    }

    /// Closes every open bucket whose end the watermark has reached, emitting the
    /// pending `update`s in a fixed order: bucket start, then signal, tenant and
    /// subject. With `flush` (the end of a scan's input) every other open bucket
    /// emits its pending `update` too but stays open: a scan resumed from the
    /// saved state goes on counting in it, and emits one more `update` when the
    /// watermark closes it, where an `update` per trigger would follow a bucket
    /// closed early (design §4: late triggers).
    pub fn close_buckets(
        &self,
        watermark: EventTime,
        flush: bool,
        state: &mut DecideState,
        out: &mut Vec<Record>,
        tally: &mut Tally,
    ) {
        if !flush && watermark < state.next_close {
            return;
        }
        let mut due: Vec<(StateKey, ParsedAlertKey)> = Vec::new();
        let mut next = EventTime::MAX;
        for (k, b) in state.alerts.iter() {
            if b.closed {
                continue;
            }
            let Ok(parsed) = parse_alert_key(k.id(), &b.key) else {
                continue;
            };
            let ends = parsed.bucket_start + BUCKET_MS;
            if watermark < ends {
                next = next.min(ends);
            }
            if watermark >= ends || (flush && b.count > b.emitted) {
                due.push((*k, parsed));
            }
        }
        state.next_close = next;
        due.sort_by(|a, b| a.1.cmp(&b.1));
        for (k, parsed) in due {
            let mut entry = state.alerts.entry(&k, AlertBucket::default);
            let b = entry.value();
            b.closed = watermark >= parsed.bucket_start + BUCKET_MS;
            if b.count > b.emitted {
                b.emitted = b.count;
                let b = b.clone();
                let detector = self.rules.by_name(&b.rule).map_or("", |r| r.detector.as_str());
                out.push(alert_record(
                    parsed.signal,
                    AlertStatus::Update,
                    parsed.tenant.as_deref(),
                    parsed.subject.clone(),
                    &b,
                    parsed.bucket_start,
                    detector,
                ));
                tally.alert(parsed.signal);
            }
        }
    }
}

/// Alert table keys use the signal's index where other tables have a rule id.
fn alert_key(key: &mut KeyBuf, signal: Signal, tenant: Option<&str>, kind: &str, id: &str, bucket_start: EventTime) {
    let code = Signal::ALL.iter().position(|s| *s == signal).unwrap_or(0) as u16;
    key.start(RuleId(code), tenant).part(kind).part(id).num(bucket_start as u64);
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ParsedAlertKey {
    bucket_start: EventTime,
    signal: Signal,
    tenant: Option<String>,
    subject: Subject,
}

/// Reads an alert key back: `signal` is its leading id, `rest` the bytes after it.
fn parse_alert_key(signal: u16, rest: &[u8]) -> Result<ParsedAlertKey, CodecError> {
    let mut r = KeyReader::with_rule(RuleId(signal), rest)?;
    let signal = *Signal::ALL.get(r.rule.0 as usize).ok_or(CodecError("bad signal"))?;
    let tenant = r.tenant.map(str::to_string);
    let kind = r.part()?.to_string();
    let id = r.part()?.to_string();
    let bucket_start = r.num()? as EventTime;
    Ok(ParsedAlertKey { bucket_start, signal, tenant, subject: Subject { kind, id } })
}

fn alert_record(
    signal: Signal,
    status: AlertStatus,
    tenant: Option<&str>,
    subject: Subject,
    b: &AlertBucket,
    bucket_start: EventTime,
    detector: &str,
) -> Record {
    // A signature_failures trigger is a failure past the rule's limit, so the
    // count says how far past it the source went, not how many failed in all.
    let (one, many) = match signal {
        Signal::PromptInjection => ("prompt-injection attempt", "prompt-injection attempts"),
        Signal::SignatureFailures => {
            ("webhook failing signature checks past the limit", "webhooks failing signature checks past the limit")
        }
        Signal::SecretInLogs => ("log event leaking secrets", "log events leaking secrets"),
        Signal::PiiInLogs => ("log event carrying PII", "log events carrying PII"),
    };
    let what = if b.count == 1 { one } else { many };
    let summary = format!("{} {what} from {} {} in the 5-minute bucket", b.count, subject.kind, subject.id);
    Record::Alert(Alert {
        schema: output::ALERT_SCHEMA.into(),
        alert_id: output::alert_id(signal.as_str(), tenant, &subject, bucket_start),
        status,
        severity: signal.severity(),
        signal: signal.as_str().into(),
        tenant: tenant.map(str::to_string),
        subject,
        detector: detector.into(),
        rule: b.rule.clone(),
        summary,
        count: b.count,
        first_seen: b.first_seen,
        last_seen: b.last_seen,
        bucket_start,
        samples: b.samples.clone(),
    })
}

/// A sample safe to show: every secret and PII finding masked, and the values of
/// credential-named keys (`password=…`), then cut short.
pub fn redacted_sample(scanner: &PiiScanner, text: &str) -> String {
    let mut matches = Vec::new();
    scanner.scan(text, Scope::ALL, &mut matches);
    let redacted: Cow<'_, str> =
        if matches.is_empty() { Cow::Borrowed(text) } else { Cow::Owned(redact(text, &matches)) };
    // Cut first: only the shown part needs its credentials masked, and a value the
    // cut ends runs to the end of the cut, so it is masked whole.
    let shown: String = redacted.chars().take(SAMPLE_CHARS).collect();
    let mut out = mask_credential_assignments(&shown).into_owned();
    if redacted.chars().nth(SAMPLE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The records in force on (tenant, kind, id) at event time `now`, in rule order.
pub fn active_records(
    rules: &Rules,
    state: &DecideState,
    tenant: Option<&str>,
    kind: &str,
    id: &str,
    now: EventTime,
) -> Vec<ActiveRecord> {
    let mut out = Vec::new();
    for (k, f) in state.in_force.iter() {
        if f.expires_at <= now {
            continue;
        }
        let Ok(mut r) = KeyReader::with_rule(RuleId(k.id()), &f.key) else {
            continue;
        };
        if r.tenant != tenant || r.part().ok() != Some(kind) || r.part().ok() != Some(id) {
            continue;
        }
        let Some(rule) = rules.rules.get(r.rule.0 as usize) else {
            continue;
        };
        out.push(ActiveRecord {
            rule: rule.name.clone(),
            tenant: tenant.map(str::to_string),
            subject: Subject { kind: kind.into(), id: id.into() },
            action: Action::ALL.get(f.action as usize).copied().unwrap_or(Action::Block),
            event_ts: f.event_ts,
            expires_at: f.expires_at,
            event_sha256: hex::encode(f.event_sha256),
        });
    }
    out.sort_by(|a, b| a.rule.cmp(&b.rule));
    out
}

/// Every record in force at `now` (the registry's rebuild after a restore).
pub fn all_active(rules: &Rules, state: &DecideState, now: EventTime) -> Vec<ActiveRecord> {
    let mut out = Vec::new();
    for (k, f) in state.in_force.iter() {
        if f.expires_at <= now {
            continue;
        }
        let Ok(mut r) = KeyReader::with_rule(RuleId(k.id()), &f.key) else {
            continue;
        };
        let (Ok(kind), Ok(id)) = (r.part(), r.part()) else {
            continue;
        };
        let Some(rule) = rules.rules.get(r.rule.0 as usize) else {
            continue;
        };
        out.push(ActiveRecord {
            rule: rule.name.clone(),
            tenant: r.tenant.map(str::to_string),
            subject: Subject { kind: kind.into(), id: id.into() },
            action: Action::ALL.get(f.action as usize).copied().unwrap_or(Action::Block),
            event_ts: f.event_ts,
            expires_at: f.expires_at,
            event_sha256: hex::encode(f.event_sha256),
        });
    }
    out.sort_by(|a, b| (&a.tenant, &a.subject, &a.rule).cmp(&(&b.tenant, &b.subject, &b.rule)));
    out
}

/// An operator lifts every record in force on (tenant, kind, id): one `lift`
/// decision per record (its rule, tenant, subject, event_ts and event_sha256;
/// action `lift`), and the in-force entries are cleared so the next trigger acts
/// again at once.
pub fn lift(
    rules: &Rules,
    state: &mut DecideState,
    tenant: Option<&str>,
    kind: &str,
    id: &str,
    now: EventTime,
    source: &Provenance,
) -> Vec<Record> {
    let active = active_records(rules, state, tenant, kind, id, now);
    let mut key = KeyBuf::default();
    let mut out = Vec::with_capacity(active.len());
    for a in active {
        let Some(rule) = rules.by_name(&a.rule) else {
            continue;
        };
        key.start(rule.id, tenant).part(kind).part(id);
        state.in_force.remove(&key.state_key());
        let decision_id = output::decision_id(
            output::DECISION_SCHEMA,
            &rule.name,
            Action::Lift,
            tenant,
            &a.subject,
            a.event_ts,
            &a.event_sha256,
        );
        out.push(Record::Decision(Decision {
            schema: output::DECISION_SCHEMA.into(),
            decision_id,
            action: Action::Lift,
            subject: a.subject.clone(),
            tenant: a.tenant.clone(),
            detector: rule.detector.as_str().into(),
            rule: rule.name.clone(),
            mode: rule.mode,
            reason: format!("operator lifted the {} on {} {} ({})", a.action.as_str(), kind, id, rule.name),
            ttl_ms: 0,
            event_ts: a.event_ts,
            evidence: serde_json::json!({"lifted": a.action.as_str(), "event_sha256": a.event_sha256}),
            event_id: None,
            source: source.clone(),
        }));
    }
    out
}
