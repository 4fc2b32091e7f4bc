//! `rate`: exact sliding-window limits, "N per W" per key (design §5).
//!
//! A rate rule reads one event type, optionally one route or tool, and counts per
//! (tenant, key) where the key is any field (`visitor`, `ip`, `tool`,
//! `args.vendor_phone`, ...). Routes compare normalised (`/Auth/Login/?x` is
//! `/auth/login`). An event without the key's field is not counted.

use warden_schemas::event::{Body, Event};
use warden_schemas::EventType;

use std::borrow::Cow;

use super::{is_exempt, key_value, planned_key, Cx, Out, Which};
use crate::rules::{normalize_route, Exempt, KeyField, Params, RuleId, Rules};
use crate::verdict::{Evidence, SubjectRef, Verdict};

/// One compiled rate rule.
#[derive(Debug)]
struct RateRule {
    id: RuleId,
    events: EventType,
    route: Option<String>,
    tool: Option<String>,
    key: KeyField,
    limit: u32,
    window_ms: i64,
}

/// The rate detector.
#[derive(Debug, Default)]
pub struct Rate {
    rules: Vec<RateRule>,
}

impl Rate {
    /// Compiles the enabled `rate` rules.
    pub fn new(rules: &Rules) -> Rate {
        let rules = rules
            .enabled()
            .filter_map(|r| match &r.params {
                Params::Rate { events, route, tool, key, limit, window_ms } => Some(RateRule {
                    id: r.id,
                    events: *events,
                    route: route.clone(),
                    tool: tool.clone(),
                    key: key.clone(),
                    limit: *limit,
                    window_ms: *window_ms,
                }),
                _ => None,
            })
            .collect();
        Rate { rules }
    }

    /// The rules that count `event`, by position, each with the key value it
    /// counts under.
    fn counting<'s, 'a, 'x>(
        &'s self,
        rules: &'x Rules,
        event: &'a Event<'a>,
        exempt: &'x Exempt,
    ) -> impl Iterator<Item = (usize, &'s RateRule, Cow<'a, str>)> + use<'s, 'a, 'x> {
        let ty = event.event_type();
        let route = match &event.body {
            Body::Webhook(w) => w.route.map(normalize_route),
            _ => None,
        };
        self.rules.iter().enumerate().filter_map(move |(i, r)| {
            if r.events != ty || r.route.is_some() && r.route.as_deref() != route.as_deref() {
                return None;
            }
            if let (Some(tool), Body::ToolCall(tc)) = (&r.tool, &event.body) {
                if tc.tool != tool {
                    return None;
                }
            }
            let id = key_value(event, &r.key)?;
            (!is_exempt(exempt, rules.get(r.id), event)).then_some((i, r, id))
        })
    }

    /// Chooses the rules that count `event` (kept in the scratch space for
    /// [`Rate::observe`]) and adds their keys to the event's [`Plan`](super::Plan).
    pub fn plan(&self, rules: &Rules, event: &Event<'_>, cx: &mut Cx<'_>) {
        cx.scratch.rate_rules.clear();
        for (i, r, id) in self.counting(rules, event, cx.exempt) {
            // Rules are at most RuleId's range (u16), so their positions fit too.
            cx.scratch.rate_rules.push(i as u16);
            cx.scratch.key.start(r.id, event.tenant).part(&id);
            cx.scratch.plan.push(Which::Windows, &cx.scratch.key);
        }
    }

    /// Counts `event` under every rule [`Rate::plan`] chose for it (the engine
    /// plans every event first); a rule fires while its count is over N.
    pub fn observe<'a>(&'a self, _rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        #[cfg(debug_assertions)]
        {
            let again: Vec<u16> = self.counting(_rules, event, cx.exempt).map(|(i, ..)| i as u16).collect();
            assert_eq!(again, cx.scratch.rate_rules, "rate rules planned for another event");
        }
        for n in 0..cx.scratch.rate_rules.len() {
            let Some(r) = self.rules.get(usize::from(cx.scratch.rate_rules[n])) else {
                continue;
            };
            // The plan saw this key's field; read it again rather than keep a borrow.
            let Some(id) = key_value(event, &r.key) else {
                continue;
            };
            let key = planned_key(&mut cx.scratch.plan, &mut cx.scratch.key, Which::Windows, r.id, |k| {
                k.start(r.id, event.tenant).part(&id);
            });
            let mut entry = cx.tables.windows.entry(&key, Default::default);
            let count = entry.value().observe(event.ts, r.limit, r.window_ms);
            let newest = entry.value().newest().unwrap_or(event.ts);
            entry.keep_until(newest + r.window_ms + cx.lateness_ms);
            if count > u64::from(r.limit) {
                out.push(Verdict {
                    rule: r.id,
                    subject: SubjectRef::new(r.key.kind(), id),
                    evidence: Evidence::Window { count, limit: r.limit, window_ms: r.window_ms },
                    alert: None,
                });
            }
        }
    }
}
