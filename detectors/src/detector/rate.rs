//! `rate`: exact sliding-window limits, "N per W" per key (design §5).
//!
//! A rate rule reads one event type, optionally one route or tool, and counts per
//! (tenant, key) where the key is any field (`visitor`, `ip`, `tool`,
//! `args.vendor_phone`, ...). Routes compare normalised (`/Auth/Login/?x` is
//! `/auth/login`). An event without the key's field is not counted.

use warden_schemas::event::{Body, Event};
use warden_schemas::EventType;

use super::{key_value, Cx, Out};
use crate::rules::{normalize_route, KeyField, Params, RuleId, Rules};
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

    /// Counts `event` under every matching rule; a rule fires while its count is over N.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let ty = event.event_type();
        let route = match &event.body {
            Body::Webhook(w) => w.route.map(normalize_route),
            _ => None,
        };
        for r in self.rules.iter().filter(|r| r.events == ty) {
            if r.route.is_some() && r.route.as_deref() != route.as_deref() {
                continue;
            }
            if let (Some(tool), Body::ToolCall(tc)) = (&r.tool, &event.body) {
                if tc.tool != tool {
                    continue;
                }
            }
            let Some(id) = key_value(event, &r.key) else {
                continue;
            };
            if cx.is_exempt(rules.get(r.id), event) {
                continue;
            }
            cx.scratch.key.start(r.id, event.tenant).part(&id);
            let mut entry = cx.tables.windows.entry(&cx.scratch.key.state_key(), Default::default);
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
