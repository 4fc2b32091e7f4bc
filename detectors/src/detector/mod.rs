//! The detectors: one module each, every one pure and synchronous.
//!
//! Each detector is a struct compiled from the [`Rules`](crate::rules::Rules) it
//! owns, with one method, `observe(event, cx, out)`: it reads the event, updates its
//! tables in [`Tables`] and appends [`Verdict`]s. Time is the event's `ts`; there
//! is no clock. Detectors that keep per-key state also have `plan(event, cx)`,
//! which names the keys `observe` is about to look up, so the engine can fetch
//! them into cache together first ([`Plan`]). Dispatch is static (the engine
//! holds one of each), so there is no trait object on the hot path.

pub mod dup_flood;
pub mod fanout;
pub mod injection;
pub mod loops;
pub mod pii;
pub mod rate;
pub mod replay;
pub mod spam;
pub mod spoofing;
pub mod tool_policy;

use std::borrow::Cow;

use warden_schemas::event::{Body, Event, ToolCall};
use warden_schemas::json::Value;

use crate::rules::{Exempt, KeyField, Rule, RuleId};
use crate::state::keys::{KeyBuf, StateKey};
use crate::state::table::{AnyTable, Table};
use crate::state::values::{Budget, Counter, Seen};
use crate::text::Normalized;
use crate::window::{DistinctSet, RecentCalls, SlidingWindow};
use crate::{EventTime, Verdict};

/// How long run, turn and session state lives after the key's last event (design §6).
pub const RUN_HORIZON_MS: i64 = 24 * 3_600_000;

/// Per-partition detector state: one table per kind of value, keys prefixed by rule.
#[derive(Debug, Default)]
pub struct Tables {
    /// Sliding windows (rate, spoofing, dup_flood, workflow_runs).
    pub windows: Table<SlidingWindow>,
    /// Call counters per turn, run, or (run, tool).
    pub counters: Table<Counter>,
    /// "Run seen" marks (workflow run starts).
    pub seen: Table<Seen>,
    /// Replay ids → first sighting.
    pub replay: Table<EventTime>,
    /// Recent calls per session (repeat_call).
    pub history: Table<RecentCalls>,
    /// Distinct argument values (fan-out).
    pub distinct: Table<DistinctSet>,
    /// Run budgets.
    pub budgets: Table<Budget>,
}

/// Each detector table's store tag and estimate of a value's heap (for
/// [`crate::engine::Usage::bytes`]), in [`Tables::each`] order.
pub const LAYOUT: [(u8, usize); 7] = {
    use crate::engine::heap;
    use crate::state::checkpoint::tag;
    [
        (tag::WINDOWS, heap::WINDOW),
        (tag::COUNTERS, 0),
        (tag::SEEN, 0),
        (tag::REPLAY, 0),
        (tag::HISTORY, heap::HISTORY),
        (tag::DISTINCT, heap::DISTINCT),
        (tag::BUDGETS, 0),
    ]
};

impl Tables {
    /// Every table, in [`LAYOUT`] order.
    pub fn each(&self) -> [&dyn AnyTable; 7] {
        [&self.windows, &self.counters, &self.seen, &self.replay, &self.history, &self.distinct, &self.budgets]
    }

    /// Every table, mutably, in [`LAYOUT`] order.
    pub fn each_mut(&mut self) -> [&mut dyn AnyTable; 7] {
        [
            &mut self.windows,
            &mut self.counters,
            &mut self.seen,
            &mut self.replay,
            &mut self.history,
            &mut self.distinct,
            &mut self.budgets,
        ]
    }

    /// Tells every table the watermark: entries due by it are absent to lookups.
    pub fn set_watermark(&mut self, watermark: EventTime) {
        self.each_mut().into_iter().for_each(|t| t.set_watermark(watermark));
    }

    /// Keys held in memory, all tables.
    pub fn len(&self) -> usize {
        self.each().iter().map(|t| t.len()).sum()
    }

    /// True when no table holds a key in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry due at `watermark`; returns how many.
    pub fn evict(&mut self, watermark: EventTime) -> usize {
        self.each_mut().into_iter().map(|t| t.evict(watermark)).sum()
    }
}

/// A table of [`Tables`], named in a [`Plan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Which {
    /// [`Tables::windows`].
    Windows,
    /// [`Tables::counters`].
    Counters,
    /// [`Tables::seen`].
    Seen,
    /// [`Tables::replay`].
    Replay,
    /// [`Tables::history`].
    History,
    /// [`Tables::distinct`].
    Distinct,
    /// [`Tables::budgets`].
    Budgets,
}

/// The state keys an event is about to look up, gathered before any detector
/// runs so that their cache misses overlap instead of queueing one behind
/// another, and with the event's stateless work ([`Tables::prefetch`]).
///
/// Lookups then take their digests from it, in order ([`planned_key`]), so a
/// key is built and digested once per event. A key missing from the plan
/// costs time, never an answer: its lookup builds it. So does a planned key
/// no lookup asks for, though it costs more: the lookups after it in that
/// event all build their own. A key in the plan must be the one its lookup
/// would build; debug builds (the tests) check each.
///
/// One step is more than a hint: `Rate::plan` also chooses which rate rules
/// count the event (`Scratch::rate_rules`) and `Rate::observe` counts exactly
/// those, so the rules are filtered once per event. The engine plans every
/// event before observing it; debug builds filter again and compare.
#[derive(Debug, Default)]
pub struct Plan {
    keys: Vec<(Which, StateKey)>,
    /// The next key a lookup takes.
    next: usize,
}

impl Plan {
    /// Forgets the previous event's keys.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.next = 0;
    }

    /// The next planned key, if it is `rule`'s in table `which`.
    fn take(&mut self, which: Which, rule: RuleId) -> Option<StateKey> {
        let &(w, key) = self.keys.get(self.next)?;
        (w == which && key.id() == rule.0).then(|| {
            self.next += 1;
            key
        })
    }

    /// Adds the key built in `key`.
    pub fn push(&mut self, which: Which, key: &KeyBuf) {
        self.keys.push((which, key.state_key()));
    }

    /// How many planned keys lookups have taken so far.
    pub fn taken(&self) -> usize {
        self.next
    }

    /// The keys, in the order the detectors added them.
    pub fn keys(&self) -> &[(Which, StateKey)] {
        &self.keys
    }
}

impl Tables {
    /// Starts loading the first slots of every key in `plan`, all at once and
    /// without waiting, so the lookups that follow (after other work) find them
    /// in cache.
    pub fn prefetch(&self, plan: &Plan) {
        for (which, key) in &plan.keys {
            match which {
                Which::Windows => self.windows.prefetch(key),
                Which::Counters => self.counters.prefetch(key),
                Which::Seen => self.seen.prefetch(key),
                Which::Replay => self.replay.prefetch(key),
                Which::History => self.history.prefetch(key),
                Which::Distinct => self.distinct.prefetch(key),
                Which::Budgets => self.budgets.prefetch(key),
            }
        }
    }
}

/// Per-event scratch space, reused so the hot path does not allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Keys the event will look up ([`Plan`]).
    pub plan: Plan,
    /// State key under construction.
    pub key: KeyBuf,
    /// Canonical JSON under construction.
    pub canon: String,
    /// The event's normalised text (webhooks with a text).
    pub norm: Normalized,
    /// Whether `norm` holds this event's text.
    pub has_norm: bool,
    /// Whether `norm` may hold a phrase: false when the engine's
    /// [`Screen`](crate::text::Screen) cleared it, and the phrase searches are skipped.
    pub may_hold_phrase: bool,
    /// A field path under construction (`args.items[2].card`), for findings.
    pub path: String,
    /// The rate rules that count this event, by position, as `Rate::plan` chose
    /// them (so `Rate::observe` does not filter the rules again).
    pub rate_rules: Vec<u16>,
}

/// The digest of the key `build` writes into `key` for `rule`'s lookup in table
/// `which`: the plan's next key when that is `rule`'s in `which` (detectors look
/// up in the order they plan), built and digested otherwise. Debug builds (the
/// tests) build every key and check that the plan's is the same. When the plan
/// answers, `key` is left as the plan left it: read nothing from it after.
pub fn planned_key(
    plan: &mut Plan,
    key: &mut KeyBuf,
    which: Which,
    rule: RuleId,
    build: impl FnOnce(&mut KeyBuf),
) -> StateKey {
    match plan.take(which, rule) {
        Some(planned) if !cfg!(debug_assertions) => planned,
        planned => {
            build(key);
            let built = key.state_key();
            debug_assert!(planned.is_none_or(|p| p == built), "a lookup took another lookup's planned key");
            built
        }
    }
}

/// Runs a phrase `search` unless the engine's [`Screen`](crate::text::Screen)
/// cleared the text (`may_match` false), which promises it finds nothing. Debug
/// builds (every test) search anyway and assert the promise.
pub fn unless_screened<T>(may_match: bool, search: impl FnOnce() -> Option<T>) -> Option<T> {
    if !may_match && !cfg!(debug_assertions) {
        return None;
    }
    let found = search();
    debug_assert!(may_match || found.is_none(), "the screen cleared a text a search matches");
    found
}

/// What a detector needs besides the event: state, scratch, settings.
pub struct Cx<'s> {
    /// Detector tables.
    pub tables: &'s mut Tables,
    /// Scratch buffers.
    pub scratch: &'s mut Scratch,
    /// Allowed lateness, for window eviction.
    pub lateness_ms: i64,
    /// Global exemptions.
    pub exempt: &'s Exempt,
}

impl Cx<'_> {
    /// True when `rule` must not act on `event`: the event's tenant, visitor, IP or
    /// session is exempt globally or for the rule.
    pub fn is_exempt(&self, rule: &Rule, event: &Event<'_>) -> bool {
        is_exempt(self.exempt, rule, event)
    }
}

/// True when `rule` must not act on `event`, exempt globally (`global`) or by the rule.
pub fn is_exempt(global: &Exempt, rule: &Rule, event: &Event<'_>) -> bool {
    exempt_by(global, event) || (!rule.exempt.is_empty() && exempt_by(&rule.exempt, event))
}

fn exempt_by(ex: &Exempt, event: &Event<'_>) -> bool {
    if ex.is_empty() {
        return false;
    }
    if event.tenant.is_some_and(|t| ex.tenants.contains(t)) {
        return true;
    }
    match &event.body {
        Body::Webhook(w) => ex.visitors.contains(w.visitor) || w.ip.is_some_and(|ip| ex.ips.contains(ip)),
        Body::ToolCall(tc) => ex.sessions.contains(tc.session),
        Body::Log(_) => false,
    }
}

/// The value of `key` on `event`, as subject id text; `None` when absent.
pub fn key_value<'a>(event: &'a Event<'a>, key: &KeyField) -> Option<Cow<'a, str>> {
    let b = |s: &'a str| Some(Cow::Borrowed(s));
    match (&event.body, key) {
        (_, KeyField::Tenant) => event.tenant.map(Cow::Borrowed),
        (Body::Webhook(w), KeyField::Visitor) => b(w.visitor),
        (Body::Webhook(w), KeyField::Ip) => w.ip.and_then(b),
        (Body::Webhook(w), KeyField::Source) => b(w.source),
        (Body::Log(l), KeyField::Service) => b(l.service),
        (Body::ToolCall(tc), KeyField::Session) => b(tc.session),
        (Body::ToolCall(tc), KeyField::Run) => b(tc.run_id()),
        (Body::ToolCall(tc), KeyField::User) => tc.user.as_deref().and_then(b),
        (Body::ToolCall(tc), KeyField::Workflow) => tc.workflow.as_deref().and_then(b),
        (Body::ToolCall(tc), KeyField::Tool) => b(tc.tool),
        (Body::ToolCall(tc), KeyField::Arg(kind)) => arg_text(tc, &kind["args.".len()..]),
        _ => None,
    }
}

/// An argument's value as text: a string as is, anything else (but null) as its
/// RFC 8785 text, so `{"vendor_phone": 14155550100}` keys like the string form.
pub fn arg_text<'a>(tc: &'a ToolCall<'a>, name: &str) -> Option<Cow<'a, str>> {
    match tc.args.as_ref()?.object().get(name)? {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s.as_ref())),
        other => Some(Cow::Owned(warden_schemas::jcs::to_string(other))),
    }
}

/// Appends verdicts to `out`; shorthand used by every detector.
pub type Out<'o, 'a> = &'o mut Vec<Verdict<'a>>;
