//! [`Engine`] and [`PartitionState`]: events in, records out, state passed in.

use warden_schemas::decode::{self, DecodeError};
use warden_schemas::event::{Body, Event};
use warden_schemas::{Provenance, Record};

use crate::decide::{DecideState, Decider};
use crate::detector::dup_flood::DupFlood;
use crate::detector::fanout::Fanout;
use crate::detector::injection::Injection;
use crate::detector::loops::Loops;
use crate::detector::pii::Pii;
use crate::detector::rate::Rate;
use crate::detector::replay::Replay;
use crate::detector::spam::Spam;
use crate::detector::spoofing::Spoofing;
use crate::detector::tool_policy::ToolPolicy;
use crate::detector::{Cx, Scratch, Tables, LAYOUT};
use crate::rules::Rules;
use crate::tally::Tally;
use crate::text::{self, Screen};
use crate::{EventTime, Verdict};

/// How often (in event time) expired state is swept out.
const SWEEP_EVERY_MS: i64 = 60_000;
/// Keys a detector-table sweep may visit per event since the last one.
const SWEEP_KEYS_PER_EVENT: usize = 32;
/// Consecutive far-future events that, together, move the watermark anyway when
/// they come from more than one actor and span [`FUTURE_SPAN_MS`] of their own
/// time: a partition's traffic jumping ahead and going on from there is a real gap
/// (a quiet night), while one actor's events, however many, or a short burst from
/// a gateway whose clock is off, are one bad clock (design §6). A burst stamped
/// ahead must not close every open alert bucket and expire everyone's windows.
const FUTURE_QUORUM: u32 = 64;
/// See [`FUTURE_QUORUM`]: five minutes of the run's own event time.
const FUTURE_SPAN_MS: i64 = 300_000;

/// A partition's event-time clock (design §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// The largest `ts` that moved the watermark.
    pub max_ts: Option<EventTime>,
    /// `max_ts` minus the allowed lateness; `EventTime::MIN` before any event.
    pub watermark: EventTime,
    /// Far-future events in a row, and the smallest of their timestamps.
    pub future_run: u32,
    /// See `future_run`.
    pub future_min: EventTime,
    /// Digest of the actor (tenant and visitor, session or service) of the run's
    /// first far-future event; 0 before one.
    pub future_actor: u64,
    /// A far-future event of the run came from another actor than the first.
    pub future_actors_differ: bool,
    /// Watermark at which the next sweep of expired state runs.
    pub next_sweep: EventTime,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            max_ts: None,
            watermark: EventTime::MIN,
            future_run: 0,
            future_min: EventTime::MAX,
            future_actor: 0,
            future_actors_differ: false,
            next_sweep: EventTime::MIN,
        }
    }
}

/// What an event did to the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// The event was behind the watermark.
    pub late: bool,
    /// The event was too far ahead to move the watermark.
    pub future: bool,
}

impl Clock {
    /// Advances the clock for an event at `ts`; `actor` digests who sent it
    /// ([`actor_digest`]) and is called only for a far-future event.
    pub fn observe(&mut self, ts: EventTime, lateness_ms: i64, future_ms: i64, actor: impl FnOnce() -> u64) -> Tick {
        let late = ts < self.watermark;
        let future = self.max_ts.is_some_and(|m| ts > m.saturating_add(future_ms));
        if future {
            self.future_run = self.future_run.saturating_add(1);
            self.future_min = self.future_min.min(ts);
            let actor = actor();
            // A run restored from a checkpoint written before actors were kept
            // has none yet: its next event's actor is its first.
            if self.future_run == 1 || self.future_actor == 0 {
                self.future_actor = actor;
            } else if actor != self.future_actor {
                self.future_actors_differ = true;
            }
            let span = ts.saturating_sub(self.future_min);
            if self.future_run < FUTURE_QUORUM || !self.future_actors_differ || span < FUTURE_SPAN_MS {
                return Tick { late, future };
            }
            self.max_ts = Some(self.future_min);
        } else if self.max_ts.is_none_or(|m| ts > m) {
            self.max_ts = Some(ts);
        }
        self.future_run = 0;
        self.future_min = EventTime::MAX;
        self.future_actor = 0;
        self.future_actors_differ = false;
        if let Some(m) = self.max_ts {
            self.watermark = self.watermark.max(m.saturating_sub(lateness_ms));
        }
        Tick { late, future }
    }
}

/// Who sent `event`, for the far-future quorum: a digest of its tenant and its
/// visitor, session or service. Stable across runs (it is checkpointed).
pub fn actor_digest(event: &Event<'_>) -> u64 {
    let who = match &event.body {
        Body::Webhook(w) => w.visitor,
        Body::ToolCall(t) => t.session,
        Body::Log(l) => l.service,
    };
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    h.update(event.tenant.unwrap_or("").as_bytes());
    h.update(&[0xff]);
    h.update(who.as_bytes());
    h.digest()
}

/// How much state a partition holds (the `warden_state_keys` / `warden_state_bytes`
/// / `warden_state_spilled_keys` gauges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// In-memory keys by detector, in [`crate::rules::DetectorKind::ALL`] order.
    pub keys_by_detector: [usize; 10],
    /// Approximate bytes in memory.
    pub bytes: usize,
    /// Keys spilled out of memory.
    pub spilled_keys: usize,
}

/// Estimates of a value's heap, per table kind, for [`Usage::bytes`].
pub(crate) mod heap {
    /// A window's timestamps: none for the up to three held inline, 8 bytes
    /// each in a ring beyond that. An upper-side average: a budget that
    /// over-counts spills early, never late.
    pub const WINDOW: usize = 16 * 8;
    /// A session's recent calls.
    pub const HISTORY: usize = 40;
    /// A fan-out set.
    pub const DISTINCT: usize = 16 * 16;
    /// A record in force: its key's bytes (tenant and subject; see `InForce::key`).
    pub const IN_FORCE: usize = 48;
    /// An alert bucket's examples and key bytes.
    pub const ALERT: usize = 256 + 48;
}

/// Everything one partition remembers between events. Created by
/// [`Engine::new_state`], restored from checkpoints by the ingest layer.
#[derive(Debug, Default)]
pub struct PartitionState {
    /// Event-time clock.
    pub clock: Clock,
    /// Detector tables.
    pub tables: Tables,
    /// Decide-step tables.
    pub decide: DecideState,
    /// Distinct (tenant, visitor) pairs seen: an estimate for a metric only, never
    /// for a decision; deterministically seeded.
    pub visitors: Visitors,
    scratch: Scratch,
    /// Memory limits, once a spill store is attached ([`PartitionState::attach_spill`]).
    pub(crate) limits: Option<crate::state::limits::Limits>,
    /// Events since the limits were last checked.
    since_limit_check: u32,
    /// Events since the detector tables were last swept.
    since_sweep: usize,
}

/// HyperLogLog estimates of distinct visitors, overall and (when asked) per tenant.
pub struct Visitors {
    /// All tenants.
    pub all: hyperloglog::HyperLogLog,
    /// Per tenant, when `per_tenant` is on.
    pub by_tenant: std::collections::BTreeMap<String, hyperloglog::HyperLogLog>,
    /// Keep per-tenant estimates (`metrics.tenant_labels`).
    pub per_tenant: bool,
}

/// 1% standard error; a fixed seed so estimates replay identically.
pub fn new_visitor_hll() -> hyperloglog::HyperLogLog {
    hyperloglog::HyperLogLog::new_deterministic(0.01, 0x5741_5244_454e)
}

/// What a visitor adds to the estimates: xxh3 of the visitor, seeded by a digest
/// of its tenant under the deployment's secret (weaker than a state key's
/// digest, which takes the secret itself, and enough for a metric no decision
/// reads). Not the crate's own SipHash, which cost five times as much on every
/// webhook.
fn visitor_hash(tenant: Option<&str>, visitor: &str) -> u64 {
    use xxhash_rust::xxh3::{xxh3_64_with_secret, xxh3_64_with_seed};
    let secret = crate::state::digest_secret();
    // Odd under a tenant, even without one: "no tenant" is no tenant's name.
    let scope = match tenant {
        Some(t) => xxh3_64_with_secret(t.as_bytes(), secret) | 1,
        None => xxh3_64_with_secret(b"", secret) & !1,
    };
    xxh3_64_with_seed(visitor.as_bytes(), scope)
}

impl Default for Visitors {
    fn default() -> Self {
        Visitors { all: new_visitor_hll(), by_tenant: Default::default(), per_tenant: false }
    }
}

impl std::fmt::Debug for Visitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Visitors").field("estimate", &self.all.len()).finish_non_exhaustive()
    }
}

impl PartitionState {
    /// Turns change tracking on (for checkpoints) in every table.
    pub fn set_track_changes(&mut self, on: bool) {
        self.tables.each_mut().into_iter().for_each(|t| t.set_track_changes(on));
        self.decide.in_force.set_track_changes(on);
        self.decide.alerts.set_track_changes(on);
    }

    /// Keys per detector and approximate bytes, from counts the tables keep (no
    /// pass over the keys, so it is cheap enough for a gauge).
    pub fn usage(&self, rules: &Rules) -> Usage {
        use crate::rules::DetectorKind;
        use crate::verdict::Signal;
        let mut u = Usage::default();
        let slot = |d: DetectorKind| DetectorKind::ALL.iter().position(|x| *x == d).unwrap_or(0);
        let tables = self.tables.each();
        for rule in &rules.rules {
            let i = rule.id.0 as usize;
            let n = tables.iter().map(|t| t.count_of(i)).sum::<usize>() + self.decide.in_force.count_of(i);
            u.keys_by_detector[slot(rule.detector)] += n;
        }
        for (i, signal) in Signal::ALL.iter().enumerate() {
            let detector = match signal {
                Signal::PromptInjection => DetectorKind::Injection,
                Signal::SignatureFailures => DetectorKind::Spoofing,
                Signal::SecretInLogs | Signal::PiiInLogs => DetectorKind::Pii,
            };
            u.keys_by_detector[slot(detector)] += self.decide.alerts.count_of(i);
        }
        u.bytes = self.approx_bytes();
        u.spilled_keys = tables.iter().map(|t| t.spilled_len()).sum();
        u
    }

    /// Approximate bytes of in-memory state; value heaps are estimated ([`heap`]).
    pub fn approx_bytes(&self) -> usize {
        let detector: usize = self.tables.each().iter().zip(LAYOUT).map(|(t, (_, heap))| t.approx_bytes(heap)).sum();
        detector + self.decide.in_force.approx_bytes(heap::IN_FORCE) + self.decide.alerts.approx_bytes(heap::ALERT)
    }

    /// Drops all state whose horizon the watermark has passed.
    pub fn evict(&mut self) -> usize {
        let w = self.clock.watermark;
        self.tables.evict(w) + self.decide.in_force.evict(w) + self.decide.alerts.evict(w)
    }

    /// The periodic sweep. The decide tables are small and swept every time; a
    /// pass over the detector tables costs one visit per key, so it waits until
    /// at least a [`SWEEP_KEYS_PER_EVENT`]th of their keys' worth of events came
    /// since the last one (when event time runs fast, as in a replay, a sweep
    /// every minute of it would cost more than the events). Lookups already treat
    /// due entries as absent, so when a sweep runs never changes an output.
    fn sweep(&mut self) {
        let w = self.clock.watermark;
        self.decide.in_force.evict(w);
        self.decide.alerts.evict(w);
        if self.since_sweep >= self.tables.len() / SWEEP_KEYS_PER_EVENT {
            self.tables.evict(w);
            self.since_sweep = 0;
        }
    }
}

/// The detection engine: compiled rules and one of each detector. Shared by every
/// partition (it is immutable); all mutable state is in [`PartitionState`].
#[derive(Debug)]
pub struct Engine {
    rules: Rules,
    rate: Rate,
    spoofing: Spoofing,
    dup_flood: DupFlood,
    replay: Replay,
    spam: Spam,
    injection: Injection,
    loops: Loops,
    fanout: Fanout,
    policy: ToolPolicy,
    pii: Pii,
    /// The spam and injection phrase searches' literals, asked first.
    screen: Screen,
}

/// What became of one input message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Decoded and processed.
    Processed,
    /// Not processable (a message of nothing but whitespace too: `invalid_json`;
    /// `scan` skips blank lines before they get here): goes to the dead-letter output with this reason.
    Dead(DecodeError),
}

impl Engine {
    /// Compiles every detector. `hmac_key` keys PII fingerprints (`WARDEN_HMAC_KEY`).
    pub fn new(rules: Rules, hmac_key: Option<Vec<u8>>) -> Engine {
        let (spam, injection) = (Spam::new(&rules), Injection::new(&rules));
        let screen = Screen::new(spam.literals().chain(injection.literals()));
        Engine {
            rate: Rate::new(&rules),
            spoofing: Spoofing::new(&rules),
            dup_flood: DupFlood::new(&rules),
            replay: Replay::new(&rules),
            spam,
            injection,
            screen,
            loops: Loops::new(&rules),
            fanout: Fanout::new(&rules),
            policy: ToolPolicy::new(&rules),
            pii: Pii::new(&rules, hmac_key),
            rules,
        }
    }

    /// The compiled rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// A fresh partition state.
    pub fn new_state(&self) -> PartitionState {
        PartitionState { decide: DecideState::new(), ..PartitionState::default() }
    }

    /// Runs every detector on `event`, appending verdicts to `out`. Pure apart from
    /// `state`; never panics on input (bad input was rejected by decoding).
    pub fn process<'a>(&'a self, event: &'a Event<'a>, state: &mut PartitionState, out: &mut Vec<Verdict<'a>>) {
        let rules = &self.rules;
        let scratch = &mut state.scratch;
        scratch.has_norm = false;
        scratch.may_hold_phrase = false;
        let chat_text = match &event.body {
            Body::Webhook(w) => w.text,
            _ => None,
        };
        if let Some(t) = chat_text {
            // Before the plan: duplicate keys digest the normalised text.
            text::normalize_into(t, &mut scratch.norm);
            scratch.has_norm = true;
        }
        let mut cx = Cx { tables: &mut state.tables, scratch, lateness_ms: rules.lateness_ms, exempt: &rules.exempt };
        // Most lookups miss the cache (state is far larger than it): gather the
        // event's keys first and start loading them all at once, then do the
        // work that needs no state (the phrase screen, the PII scan) while the
        // loads are under way. Lookups take planned keys in order: plan in the
        // order of the `observe` calls below.
        cx.scratch.plan.clear();
        match &event.body {
            Body::Webhook(_) => {
                self.rate.plan(rules, event, &mut cx);
                self.spoofing.plan(rules, event, &mut cx);
                self.dup_flood.plan(rules, event, &mut cx);
                self.replay.plan(rules, event, &mut cx);
            }
            Body::ToolCall(_) => {
                self.rate.plan(rules, event, &mut cx);
                self.loops.plan(rules, event, &mut cx);
                self.fanout.plan(rules, event, &mut cx);
                self.policy.plan(rules, event, &mut cx);
            }
            Body::Log(_) => self.rate.plan(rules, event, &mut cx),
        }
        cx.tables.prefetch(&cx.scratch.plan);
        if chat_text.is_some() {
            cx.scratch.may_hold_phrase = self.screen.may_match(&cx.scratch.norm);
        }
        // PII verdicts come last (as they always have): scanned now, moved
        // behind the others below.
        let pii_from = out.len();
        self.pii.observe(rules, event, &mut cx, out);
        let pii_found = out.len() - pii_from;
        match &event.body {
            Body::Webhook(_) => {
                self.rate.observe(rules, event, &mut cx, out);
                self.spoofing.observe(rules, event, &mut cx, out);
                self.dup_flood.observe(rules, event, &mut cx, out);
                self.replay.observe(rules, event, &mut cx, out);
                self.spam.observe(rules, event, &mut cx, out);
                self.injection.observe(rules, event, &mut cx, out);
            }
            Body::ToolCall(_) => {
                self.rate.observe(rules, event, &mut cx, out);
                self.loops.observe(rules, event, &mut cx, out);
                self.fanout.observe(rules, event, &mut cx, out);
                self.policy.observe(rules, event, &mut cx, out);
            }
            Body::Log(_) => self.rate.observe(rules, event, &mut cx, out),
        }
        out[pii_from..].rotate_left(pii_found);
    }

    /// Processes one decoded event end to end: clock, detectors, decide, alert
    /// buckets the watermark closed, and the periodic sweep of expired state.
    pub fn handle(
        &self,
        event: &Event<'_>,
        source: &Provenance,
        state: &mut PartitionState,
        out: &mut Vec<Record>,
        tally: &mut Tally,
    ) {
        tally.event(event.event_type());
        for f in event.field_errors.iter() {
            tally.field_error(f);
        }
        let tick = state
            .clock
            .observe(event.ts, self.rules.lateness_ms, self.rules.future_tolerance_ms, || actor_digest(event));
        state.tables.set_watermark(state.clock.watermark);
        state.since_sweep += 1;
        tally.late_events += u64::from(tick.late);
        tally.future_events += u64::from(tick.future);
        if let Body::Webhook(w) = &event.body {
            let hash = visitor_hash(event.tenant, w.visitor);
            state.visitors.all.insert_by_hash_value(hash);
            if state.visitors.per_tenant {
                if let Some(t) = event.tenant {
                    match state.visitors.by_tenant.get_mut(t) {
                        Some(hll) => hll.insert_by_hash_value(hash),
                        None => state
                            .visitors
                            .by_tenant
                            .entry(t.to_owned())
                            .or_insert_with(new_visitor_hll)
                            .insert_by_hash_value(hash),
                    }
                }
            }
        }
        let mut verdicts = Vec::new();
        self.process(event, state, &mut verdicts);
        let decider = Decider { rules: &self.rules, scanner: self.pii.scanner() };
        let watermark = state.clock.watermark;
        if !verdicts.is_empty() {
            decider.decide(event, &verdicts, source, watermark, &mut state.decide, &mut state.scratch.key, out, tally);
        }
        decider.close_buckets(watermark, false, &mut state.decide, out, tally);
        if watermark >= state.clock.next_sweep {
            state.sweep();
            state.clock.next_sweep = watermark.saturating_add(SWEEP_EVERY_MS);
        }
        if state.limits.is_some() {
            state.since_limit_check += 1;
            if state.since_limit_check >= crate::state::limits::Limits::CHECK_EVERY {
                state.since_limit_check = 0;
                tally.quota_exceeded += state.enforce_limits() as u64;
            }
        }
    }

    /// Decodes and handles one raw input message.
    pub fn handle_bytes(
        &self,
        bytes: &[u8],
        source: &Provenance,
        state: &mut PartitionState,
        out: &mut Vec<Record>,
        tally: &mut Tally,
    ) -> Outcome {
        let value = match decode::check_bytes(bytes, self.rules.max_event_bytes).and_then(decode::parse) {
            Ok(v) => v,
            Err(e) => {
                tally.dead_letter(&e);
                return Outcome::Dead(e);
            }
        };
        match Event::from_value(&value) {
            Ok(event) => {
                self.handle(&event, source, state, out, tally);
                Outcome::Processed
            }
            Err(e) => {
                tally.dead_letter(&e);
                Outcome::Dead(e)
            }
        }
    }

    /// The end of a `scan`'s input: every open alert bucket emits its pending
    /// `update` (design §4); those the watermark has not passed stay open in the
    /// state, so a scan resumed from it counts on in them.
    pub fn finish(&self, state: &mut PartitionState, out: &mut Vec<Record>, tally: &mut Tally) {
        let decider = Decider { rules: &self.rules, scanner: self.pii.scanner() };
        decider.close_buckets(state.clock.watermark, true, &mut state.decide, out, tally);
    }

    /// The PII scanner, for redacting text shown elsewhere.
    pub fn pii_scanner(&self) -> &crate::pii::PiiScanner {
        self.pii.scanner()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::detector::Which;

    /// Every key in every detector table, tagged with its table.
    fn table_keys(t: &Tables) -> BTreeSet<(Which, Vec<u8>)> {
        let mut all = BTreeSet::new();
        let mut add = |which, key: &crate::state::keys::StateKey| all.insert((which, key.as_bytes().to_vec()));
        t.windows.iter().for_each(|(k, _)| _ = add(Which::Windows, k));
        t.counters.iter().for_each(|(k, _)| _ = add(Which::Counters, k));
        t.seen.iter().for_each(|(k, _)| _ = add(Which::Seen, k));
        t.replay.iter().for_each(|(k, _)| _ = add(Which::Replay, k));
        t.history.iter().for_each(|(k, _)| _ = add(Which::History, k));
        t.distinct.iter().for_each(|(k, _)| _ = add(Which::Distinct, k));
        t.budgets.iter().for_each(|(k, _)| _ = add(Which::Budgets, k));
        all
    }

    /// A key left out of the plan, or planned and never looked up, goes
    /// unnoticed (lookups build their own keys, only more slowly): on a fresh
    /// state, the keys an event leaves in the tables must be the keys planned
    /// for it (plus a workflow's run window, looked up only when a run starts),
    /// and its lookups must take every planned key.
    #[test]
    fn the_plan_names_every_key_an_event_creates() {
        let engine = Engine::new(Rules::defaults(), None);
        let workflow_runs = engine.rules().rules.iter().find(|r| r.name == "workflow_runs").map(|r| r.id.0);
        let events = [
            r#"{"type":"webhook","ts":1767225600000,"tenant":"t","source":"s","visitor":"v","ip":"10.0.0.1",
                "route":"/Chat/","text":"Hello there","provider_message_id":"m1"}"#,
            r#"{"type":"webhook","ts":1767225600000,"tenant":"t","source":"s","visitor":"v",
                "route":"/auth/login","ip":"10.0.0.2","signature_valid":false}"#,
            r#"{"type":"tool_call","ts":1767225600000,"tenant":"t","session":"s1","run":"r1","turn":"2",
                "tool":"send_outreach","args":{"vendor_phone":"+14155550100","b":1},"cost_usd":0.5}"#,
            r#"{"type":"tool_call","ts":1767225600000,"tenant":"u","session":"s2","tool":"search","args":{}}"#,
            r#"{"type":"tool_call","ts":1767225600000,"tenant":"t","session":"s3","tool":"send_outreach",
                "args":{"vendor_phone":null}}"#,
            r#"{"type":"tool_call","ts":1767225600000,"tenant":"t","session":"s4","run":"r4","tool":"search",
                "workflow":"wf","user":"u1","args":{"q":"x"}}"#,
            r#"{"type":"log","ts":1767225600000,"tenant":"t","service":"api","level":"info","message":"ok"}"#,
        ];
        for text in events {
            let value = decode::parse(text).expect("test event parses");
            let event = Event::from_value(&value).expect("test event is valid");
            let mut state = engine.new_state();
            engine.process(&event, &mut state, &mut Vec::new());
            let plan = &state.scratch.plan;
            let planned: BTreeSet<_> = plan.keys().iter().map(|(w, k)| (*w, k.as_bytes().to_vec())).collect();
            let created = table_keys(&state.tables);
            let run_window = |(w, k): &(Which, Vec<u8>)| {
                *w == Which::Windows && Some(u16::from_be_bytes([k[0], k[1]])) == workflow_runs
            };
            assert!(planned.is_subset(&created), "planned keys no lookup created: {text}");
            assert!(created.difference(&planned).all(run_window), "created keys not planned: {text}");
            assert_eq!(planned.len(), plan.keys().len(), "no key planned twice: {text}");
            assert_eq!(plan.taken(), plan.keys().len(), "lookups took every planned key: {text}");
        }
    }

    /// A scan that ends and is resumed from its state emits the end-of-input
    /// `update` of a bucket still open, then goes on counting in it: one more
    /// `update` when the watermark closes it, never one per trigger (as for a
    /// bucket the watermark closed), and the same ids as an uninterrupted scan.
    #[test]
    fn a_scan_resumed_after_its_end_counts_on_in_open_alert_buckets() {
        use warden_schemas::output::AlertStatus;
        let engine = Engine::new(Rules::defaults(), None);
        let t0 = 1_767_225_600_000_i64; // a bucket start
        let mut lines: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    r#"{{"type":"log","ts":{},"tenant":"t","service":"api","level":"error","message":"key AKIAQ3EGRT5YUB7XK2MZ"}}"#,
                    t0 + i * 1_000
                )
            })
            .collect();
        // Past the bucket's end and the allowed lateness: the watermark closes it.
        lines.push(format!(
            r#"{{"type":"log","ts":{},"tenant":"t","service":"api","level":"info","message":"ok"}}"#,
            t0 + crate::decide::BUCKET_MS + 120_000
        ));
        let source = Provenance::File { file: "t".into(), line: 1 };
        let scan = |state: &mut PartitionState, lines: &[String]| {
            let (mut out, mut tally) = (Vec::new(), Tally::default());
            for l in lines {
                engine.handle_bytes(l.as_bytes(), &source, state, &mut out, &mut tally);
            }
            engine.finish(state, &mut out, &mut tally);
            out.into_iter()
                .filter_map(|r| match r {
                    Record::Alert(a) if a.signal == "secret_in_logs" => Some((a.alert_id, a.status, a.count)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let whole = scan(&mut engine.new_state(), &lines);
        let mut state = engine.new_state();
        let mut split = scan(&mut state, &lines[..10]);
        split.extend(scan(&mut state, &lines[10..]));
        let statuses = |v: &[(String, AlertStatus, u64)]| v.iter().map(|(_, s, c)| (*s, *c)).collect::<Vec<_>>();
        assert_eq!(statuses(&whole), [(AlertStatus::Open, 1), (AlertStatus::Update, 40)]);
        assert_eq!(
            statuses(&split),
            [(AlertStatus::Open, 1), (AlertStatus::Update, 10), (AlertStatus::Update, 40)],
            "the end of the first scan flushed the count so far and left the bucket open"
        );
        assert!(split.iter().all(|(id, _, _)| *id == whole[0].0), "one alert id throughout");
    }

    /// Fingerprints find a value wherever it was logged, however it was written.
    #[test]
    fn a_card_fingerprints_alike_with_any_separators() {
        let engine = Engine::new(Rules::defaults(), Some(b"test-key".to_vec()));
        let source = Provenance::File { file: "t".into(), line: 1 };
        let fingerprints: Vec<String> = ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"]
            .iter()
            .enumerate()
            .map(|(i, card)| {
                let line = format!(
                    r#"{{"type":"log","ts":1767225600000,"tenant":"t","service":"s{i}","level":"info","message":"paid with {card}"}}"#
                );
                let (mut out, mut tally) = (Vec::new(), Tally::default());
                engine.handle_bytes(line.as_bytes(), &source, &mut engine.new_state(), &mut out, &mut tally);
                let json: Vec<serde_json::Value> =
                    out.iter().filter_map(|r| serde_json::from_str(&r.to_json()).ok()).collect();
                let found = json.iter().find_map(|r| r["evidence"]["findings"][0]["fingerprint"].as_str());
                found.expect("a card finding with a fingerprint").to_string()
            })
            .collect();
        assert!(fingerprints.iter().all(|f| *f == fingerprints[0]), "{fingerprints:?}");
    }

    #[test]
    fn watermark_trails_the_newest_event() {
        let mut c = Clock::default();
        c.observe(100_000, 60_000, 3_600_000, || 0);
        assert_eq!(c.watermark, 40_000);
        assert!(c.observe(30_000, 60_000, 3_600_000, || 0).late);
        c.observe(90_000, 60_000, 3_600_000, || 0);
        assert_eq!(c.watermark, 40_000, "an older event never moves it back");
    }

    #[test]
    fn one_far_future_actor_never_moves_the_watermark_but_a_partition_wide_run_does() {
        let mut c = Clock::default();
        c.observe(1_000_000, 0, 3_600_000, || 1);
        let t = c.observe(1_000_000 + 7_200_000, 0, 3_600_000, || 1);
        assert!(t.future);
        assert_eq!(c.watermark, 1_000_000);
        c.observe(1_000_001, 0, 3_600_000, || 1);
        // One bad clock, however many events it sends in a row.
        for i in 0..100 {
            c.observe(9_000_000 + i, 0, 3_600_000, || 7);
        }
        assert_eq!(c.watermark, 1_000_001, "one actor's clock is not the partition's");
        c.observe(1_000_002, 0, 3_600_000, || 1);
        // One short of the quorum from several actors, over a long span: not enough.
        let step = FUTURE_SPAN_MS;
        for i in 0..FUTURE_QUORUM - 1 {
            c.observe(9_000_000 + i64::from(i) * step, 0, 3_600_000, || u64::from(i % 2));
        }
        assert_eq!(c.watermark, 1_000_002);
        c.observe(1_000_003, 0, 3_600_000, || 1);
        // A burst from several actors, as many as you like, within a few ms: one
        // gateway's clock, not the partition's.
        for i in 0..1_000 {
            c.observe(9_000_000 + i, 0, 3_600_000, || (i % 7) as u64);
        }
        assert_eq!(c.watermark, 1_000_003, "a short burst stamped ahead is one bad clock");
        c.observe(1_000_004, 0, 3_600_000, || 1);
        // Traffic that goes on from the new time, from several actors: followed
        // once the run is a quorum long and spans five minutes.
        for i in 0..FUTURE_QUORUM {
            c.observe(9_000_000 + i64::from(i) * 5_000, 0, 3_600_000, || u64::from(i % 2));
        }
        assert_eq!(c.watermark, 9_000_000, "a partition-wide jump is followed");

        // A run restored from a checkpoint that kept no actor (0) takes its next
        // event's actor as its first: one clock straddling an upgrade stays one.
        let mut c = Clock { future_run: 3, future_min: 9_000_000, ..Clock::default() };
        c.observe(1_000_000, 0, 3_600_000, || 1);
        let mut c = Clock { future_run: 3, future_min: 9_000_000, max_ts: c.max_ts, ..c };
        for i in 0..20 {
            c.observe(9_000_000 + i, 0, 3_600_000, || 7);
        }
        assert_eq!(c.watermark, 1_000_000);
    }
}
