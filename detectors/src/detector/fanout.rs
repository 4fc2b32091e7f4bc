//! `fanout`: one run or session reaching too many distinct targets.
//!
//! Counts distinct values of one argument (`args.vendor_phone` by default) per
//! (tenant, run) or (tenant, session), optionally within a window. Exact: a
//! [`DistinctSet`](crate::window::DistinctSet) holds at most limit + 1 values.

use warden_schemas::event::{Body, Event, ToolCall};
use warden_schemas::json::Value;
use xxhash_rust::xxh3::xxh3_64;

use super::{arg_text, planned_key, Cx, Out, Which, RUN_HORIZON_MS};
use crate::rules::{FanoutPer, Params, RuleId, Rules};
use crate::state::keys::KeyBuf;
use crate::verdict::{Evidence, SubjectRef, Verdict};

#[derive(Debug)]
struct FanoutRule {
    id: RuleId,
    tool: Option<String>,
    arg: String,
    arg_path: String,
    per: FanoutPer,
    limit: u32,
    window_ms: Option<i64>,
}

/// The fan-out detector.
#[derive(Debug, Default)]
pub struct Fanout {
    rules: Vec<FanoutRule>,
}

impl FanoutRule {
    /// The key the rule counts this call's values under; plan and lookup build it here alike.
    fn key(&self, k: &mut KeyBuf, event: &Event<'_>, tc: &ToolCall<'_>) {
        k.start(self.id, event.tenant).part(self.scope(tc).1);
    }

    /// What the rule counts per, and its id on this call.
    fn scope<'a>(&self, tc: &'a ToolCall<'a>) -> (&'static str, &'a str) {
        match self.per {
            FanoutPer::Run => ("run", tc.run_id()),
            FanoutPer::Session => ("session", tc.session),
        }
    }
}

impl Fanout {
    /// Compiles the enabled `fanout` rules.
    pub fn new(rules: &Rules) -> Fanout {
        let rules = rules
            .enabled()
            .filter_map(|r| match &r.params {
                Params::Fanout { tool, arg, per, limit, window_ms } => Some(FanoutRule {
                    id: r.id,
                    tool: tool.clone(),
                    arg: arg.clone(),
                    arg_path: format!("args.{arg}"),
                    per: *per,
                    limit: *limit,
                    window_ms: *window_ms,
                }),
                _ => None,
            })
            .collect();
        Fanout { rules }
    }

    /// Adds the keys [`Fanout::observe`] will look up to the event's [`Plan`](super::Plan).
    pub fn plan(&self, rules: &Rules, event: &Event<'_>, cx: &mut Cx<'_>) {
        let Body::ToolCall(tc) = &event.body else {
            return;
        };
        for r in &self.rules {
            if r.tool.as_deref().is_some_and(|t| t != tc.tool) || cx.is_exempt(rules.get(r.id), event) {
                continue;
            }
            // As `arg_text`: a missing or null argument adds nothing.
            if tc.args.as_ref().and_then(|a| a.object().get(&r.arg)).is_some_and(|v| !matches!(v, Value::Null)) {
                r.key(&mut cx.scratch.key, event, tc);
                cx.scratch.plan.push(Which::Distinct, &cx.scratch.key);
            }
        }
    }

    /// Adds the call's argument value to its run's or session's set.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let Body::ToolCall(tc) = &event.body else {
            return;
        };
        for r in &self.rules {
            if r.tool.as_deref().is_some_and(|t| t != tc.tool) {
                continue;
            }
            let Some(value) = arg_text(tc, &r.arg) else {
                continue;
            };
            if cx.is_exempt(rules.get(r.id), event) {
                continue;
            }
            let (kind, scope) = r.scope(tc);
            let key = planned_key(&mut cx.scratch.plan, &mut cx.scratch.key, Which::Distinct, r.id, |k| {
                r.key(k, event, tc);
            });
            let mut entry = cx.tables.distinct.entry(&key, Default::default);
            let count = entry.value().observe(xxh3_64(value.as_bytes()), event.ts, r.limit, r.window_ms);
            let newest = entry.value().newest().unwrap_or(event.ts);
            entry.keep_until(match r.window_ms {
                Some(w) => newest + w + cx.lateness_ms,
                None => event.ts + RUN_HORIZON_MS,
            });
            if count > u64::from(r.limit) {
                out.push(Verdict {
                    rule: r.id,
                    subject: SubjectRef::new(kind, scope),
                    evidence: Evidence::Distinct {
                        count,
                        limit: r.limit,
                        window_ms: r.window_ms,
                        arg: r.arg_path.clone(),
                    },
                    alert: None,
                });
            }
        }
    }
}
