//! `policy`: what an agent's tool call may do, whatever its rate.
//!
//! Named apart from the decide step, which is also "policy" in other systems; its
//! outputs say `detector: "policy"`.
//! - `consent_gate`: a consent-gated tool (`place_call`) without `args.consent: true`.
//! - `tool_allowlist`: a tool outside the tenant's allowlist, when it has one.
//! - `internal_target`: an argument reaching inside the network (see [`crate::targets`]).
//! - `file_secret`: an argument reaching the file system's secrets.
//! - `run_budget`: the run's summed `cost_usd` or `tokens_in` over budget.
//!
//! Arguments are judged whatever their shape: a mistyped `args` still has its
//! strings checked, so breaking the field cannot hide a call from the policy.

use warden_schemas::event::{Body, Event, ToolCall};
use warden_schemas::json::Value;

use super::{planned_key, Cx, Out, Which, RUN_HORIZON_MS};
use crate::pii::{PiiScanner, Scope};
use crate::rules::{Params, RuleId, Rules};
use crate::state::keys::KeyBuf;
use crate::targets;
use crate::verdict::{Evidence, SubjectRef, Verdict};

/// Dollars → nano-dollars, rounded, saturating (exact sums for budgets).
pub fn usd_to_nanos(usd: f64) -> i64 {
    (usd * 1e9).round().clamp(i64::MIN as f64, i64::MAX as f64) as i64
}

/// The tool-policy detector.
#[derive(Debug, Default)]
pub struct ToolPolicy {
    rules: Vec<RuleId>,
}

impl ToolPolicy {
    /// Compiles the enabled policy rules.
    pub fn new(rules: &Rules) -> ToolPolicy {
        let rules = rules
            .enabled()
            .filter(|r| {
                matches!(
                    r.params,
                    Params::ConsentGate { .. }
                        | Params::ToolAllowlist { .. }
                        | Params::InternalTarget
                        | Params::FileSecret
                        | Params::RunBudget { .. }
                )
            })
            .map(|r| r.id)
            .collect();
        ToolPolicy { rules }
    }

    /// Adds the keys [`ToolPolicy::observe`] will look up (run budgets') to the
    /// event's [`Plan`](super::Plan).
    pub fn plan(&self, rules: &Rules, event: &Event<'_>, cx: &mut Cx<'_>) {
        let Body::ToolCall(tc) = &event.body else {
            return;
        };
        if tc.cost_usd.is_none() && tc.tokens_in.is_none() {
            return;
        }
        for &id in &self.rules {
            let rule = rules.get(id);
            if matches!(rule.params, Params::RunBudget { .. }) && !cx.is_exempt(rule, event) {
                budget_key(&mut cx.scratch.key, id, event, tc);
                cx.scratch.plan.push(Which::Budgets, &cx.scratch.key);
            }
        }
    }

    /// Judges a tool call against every policy rule.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let Body::ToolCall(tc) = &event.body else {
            return;
        };
        let session = || SubjectRef::new("session", tc.session);
        for &id in &self.rules {
            let rule = rules.get(id);
            if cx.is_exempt(rule, event) {
                continue;
            }
            let evidence = match &rule.params {
                Params::ConsentGate { tools, arg } => {
                    if !tools.contains(tc.tool) {
                        continue;
                    }
                    let consented = tc.args.as_ref().and_then(|a| a.object().get(arg)) == Some(&Value::Bool(true));
                    (!consented).then(|| Evidence::Consent { tool: tc.tool.to_string(), arg: arg.clone() })
                }
                Params::ToolAllowlist { allowlists } => {
                    let list = event.tenant.and_then(|t| allowlists.get(t));
                    list.filter(|l| !l.contains(tc.tool)).map(|_| Evidence::Allowlist { tool: tc.tool.to_string() })
                }
                Params::InternalTarget => {
                    first_arg(event, tc, |s| targets::internal_target(s).map(|t| (t.name(), t.phrase())))
                }
                Params::FileSecret => first_arg(event, tc, |s| targets::file_secret(s).map(|t| (t.name(), t.phrase()))),
                Params::RunBudget { max_cost_nanos, max_tokens_in } => {
                    if tc.cost_usd.is_none() && tc.tokens_in.is_none() {
                        continue;
                    }
                    let key = planned_key(&mut cx.scratch.plan, &mut cx.scratch.key, Which::Budgets, id, |k| {
                        budget_key(k, id, event, tc);
                    });
                    let mut entry = cx.tables.budgets.entry(&key, Default::default);
                    let b = entry.value();
                    // A negative cost or token count is a producer error, never a
                    // credit: counting it would let one event buy a run more budget.
                    b.cost_nanos = b.cost_nanos.saturating_add(tc.cost_usd.map_or(0, |c| usd_to_nanos(c.max(0.0))));
                    b.tokens_in = b.tokens_in.saturating_add(tc.tokens_in.map_or(0, |t| t.max(0.0) as u64));
                    let b = *b;
                    entry.keep_until(event.ts + RUN_HORIZON_MS);
                    (b.cost_nanos > *max_cost_nanos || b.tokens_in > *max_tokens_in).then(|| Evidence::Budget {
                        cost_usd: b.cost_nanos as f64 / 1e9,
                        tokens_in: b.tokens_in,
                        max_cost_usd: *max_cost_nanos as f64 / 1e9,
                        max_tokens_in: *max_tokens_in,
                    })
                }
                _ => None,
            };
            if let Some(evidence) = evidence {
                out.push(Verdict { rule: id, subject: session(), evidence, alert: None });
            }
        }
    }
}

/// The first argument string `judge` flags, as `Evidence::Target` with its path.
fn first_arg(event: &Event<'_>, tc: &ToolCall<'_>, judge: impl Fn(&str) -> Option<Found>) -> Option<Evidence> {
    let (hit, path) = match (&tc.args, event.raw_args) {
        (Some(args), _) => args.object().iter().find_map(|(k, v)| within(walk(v, &judge), PathSeg::Key(k))),
        (None, Some(raw)) => walk(raw, &judge),
        (None, None) => None,
    }?;
    Some(Evidence::Target { path: render(&path), class: hit.0, phrase: hit.1 })
}

enum PathSeg<'v> {
    Key(&'v str),
    Index(usize),
}

/// What a judged argument reaches: a label and a phrase.
type Found = (&'static str, &'static str);

/// A hit and its path, innermost segment first: the path is built on the way
/// back up, so a walk that finds nothing (most) allocates nothing.
type Hit<'v> = (Found, Vec<PathSeg<'v>>);

/// Depth-first search for a string `judge` flags.
fn walk<'v>(v: &'v Value<'_>, judge: &impl Fn(&str) -> Option<Found>) -> Option<Hit<'v>> {
    match v {
        Value::String(s) => judge(s).map(|found| (found, Vec::new())),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| within(walk(item, judge), PathSeg::Index(i)))
        }
        Value::Object(o) => o.iter().find_map(|(k, item)| within(walk(item, judge), PathSeg::Key(k))),
        _ => None,
    }
}

/// `hit`, found under `seg`.
fn within<'v>(hit: Option<Hit<'v>>, seg: PathSeg<'v>) -> Option<Hit<'v>> {
    hit.map(|(found, mut path)| {
        path.push(seg);
        (found, path)
    })
}

/// `args` and the path's segments, outermost first. A key holding a secret, a
/// card or an SSN (`{"AKIA…": "http://10.0.0.1"}`) is redacted, as the pii
/// detector redacts it in its paths: the path is emitted.
fn render(path: &[PathSeg<'_>]) -> String {
    let mut out = String::from("args");
    for seg in path.iter().rev() {
        match seg {
            PathSeg::Key(k) => {
                out.push('.');
                out.push_str(&PiiScanner::shared().redacted(k, Scope::SECRETS_CARDS_SSN));
            }
            PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The key a run's budget is summed under; plan and lookup build it here alike.
fn budget_key(k: &mut KeyBuf, id: RuleId, event: &Event<'_>, tc: &ToolCall<'_>) {
    k.start(id, event.tenant).part(tc.run_id());
}
