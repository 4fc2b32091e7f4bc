//! `loop`: agents that call tools in circles, and jobs that run away.
//!
//! - `repeat_call`: the call's tool and canonical-JSON arguments (key order and
//!   whitespace don't matter) already appear `min_repeats`+ times among the
//!   session's previous `history` calls → halt the session. Polling tools are exempt
//!   and not recorded.
//! - `consecutive_calls`: over N calls in one (tenant, session, run, turn), the whole
//!   run when calls carry no `turn` → clamp the run.
//! - `calls_per_run` / `tool_cap`: over N calls (of one tool) per (tenant, run).
//! - `slow_job`: `duration_ms` or `retries` over the limit → kill the run's job.
//! - `workflow_runs`: over N workflow runs started per user (the session when no
//!   user) in W → disable the workflow. A run starts with its first call that has
//!   `workflow` set.
//!
//! A call without `run` uses its session as the run id.

use warden_schemas::event::{Body, Event, ToolCall};
use warden_schemas::jcs;
use xxhash_rust::xxh3::xxh3_64;

use super::{planned_key, Cx, Out, Which, RUN_HORIZON_MS};
use crate::rules::{NameSet, Params, RuleId, Rules};
use crate::state::keys::{KeyBuf, StateKey};
use crate::state::values::{Counter, Seen};
use crate::verdict::{Evidence, SubjectRef, Verdict};

#[derive(Debug)]
enum LoopRule {
    Repeat { history: usize, min_repeats: usize, polling: NameSet },
    Consecutive { limit: u32 },
    PerRun { limit: u32 },
    Cap { tool: String, limit: u32 },
    Slow { max_duration_ms: u64, max_retries: u64 },
    Workflow { limit: u32, window_ms: i64 },
}

/// The loop detector.
#[derive(Debug, Default)]
pub struct Loops {
    rules: Vec<(RuleId, LoopRule)>,
}

impl Loops {
    /// Compiles the enabled loop rules.
    pub fn new(rules: &Rules) -> Loops {
        let rules = rules
            .enabled()
            .filter_map(|r| {
                let rule = match &r.params {
                    Params::RepeatCall { history, min_repeats, polling_tools } => LoopRule::Repeat {
                        history: *history,
                        min_repeats: *min_repeats,
                        polling: polling_tools.clone(),
                    },
                    Params::ConsecutiveCalls { limit } => LoopRule::Consecutive { limit: *limit },
                    Params::CallsPerRun { limit } => LoopRule::PerRun { limit: *limit },
                    Params::ToolCap { tool, limit } => LoopRule::Cap { tool: tool.clone(), limit: *limit },
                    Params::SlowJob { max_duration_ms, max_retries } => {
                        LoopRule::Slow { max_duration_ms: *max_duration_ms, max_retries: *max_retries }
                    }
                    Params::WorkflowRuns { limit, window_ms } => {
                        LoopRule::Workflow { limit: *limit, window_ms: *window_ms }
                    }
                    _ => return None,
                };
                Some((r.id, rule))
            })
            .collect();
        Loops { rules }
    }

    /// Adds the keys [`Loops::observe`] will look up to the event's [`Plan`](super::Plan)
    /// (all but a workflow's run window, looked up only when a run starts).
    pub fn plan(&self, rules: &Rules, event: &Event<'_>, cx: &mut Cx<'_>) {
        let Body::ToolCall(tc) = &event.body else {
            return;
        };
        for (id, rule) in &self.rules {
            if cx.is_exempt(rules.get(*id), event) {
                continue;
            }
            if let Some(which) = call_key(rule, *id, event, tc, &mut cx.scratch.key) {
                cx.scratch.plan.push(which, &cx.scratch.key);
            }
        }
    }

    /// Runs every loop rule on a tool call.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let Body::ToolCall(tc) = &event.body else {
            return;
        };
        let run = tc.run_id();
        let horizon = event.ts + RUN_HORIZON_MS;
        let mut call_hash = None;
        for (id, rule) in &self.rules {
            let id = *id;
            if cx.is_exempt(rules.get(id), event) {
                continue;
            }
            let verdict = match rule {
                LoopRule::Repeat { history, min_repeats, polling } => {
                    if polling.contains(tc.tool) {
                        continue;
                    }
                    let hash = *call_hash.get_or_insert_with(|| call_fingerprint(event, tc, &mut cx.scratch.canon));
                    let key = key_of(cx, rule, id, event, tc, Which::History);
                    let mut entry = cx.tables.history.entry(&key, Default::default);
                    let repeats = entry.value().repeats_of(hash);
                    entry.value().push(hash, *history);
                    entry.keep_until(horizon);
                    (repeats >= *min_repeats).then(|| {
                        let evidence = Evidence::Repeat { repeats, history: *history, tool: tc.tool.to_string() };
                        (SubjectRef::new("session", tc.session), evidence)
                    })
                }
                LoopRule::Consecutive { limit } => {
                    let key = key_of(cx, rule, id, event, tc, Which::Counters);
                    let count = bump(cx, key, horizon);
                    (count > u64::from(*limit)).then(|| {
                        let scope = if tc.turn.is_some() { "turn" } else { "run" };
                        run_verdict(run, count, *limit, scope)
                    })
                }
                LoopRule::PerRun { limit } => {
                    let key = key_of(cx, rule, id, event, tc, Which::Counters);
                    let count = bump(cx, key, horizon);
                    (count > u64::from(*limit)).then(|| run_verdict(run, count, *limit, "run"))
                }
                LoopRule::Cap { tool, limit } => {
                    if tc.tool != tool {
                        continue;
                    }
                    let key = key_of(cx, rule, id, event, tc, Which::Counters);
                    let count = bump(cx, key, horizon);
                    (count > u64::from(*limit)).then(|| run_verdict(run, count, *limit, &format!("run's {tool} calls")))
                }
                LoopRule::Slow { max_duration_ms, max_retries } => {
                    let slow = tc.duration_ms.filter(|&d| d > *max_duration_ms as f64);
                    let retried = tc.retries.filter(|&r| r > *max_retries as f64);
                    (slow.is_some() || retried.is_some()).then(|| {
                        let evidence = Evidence::Slow {
                            duration_ms: slow,
                            retries: retried,
                            max_duration_ms: *max_duration_ms,
                            max_retries: *max_retries,
                        };
                        (SubjectRef::new("run", run), evidence)
                    })
                }
                LoopRule::Workflow { limit, window_ms } => {
                    let Some(workflow) = &tc.workflow else {
                        continue;
                    };
                    let key = key_of(cx, rule, id, event, tc, Which::Seen);
                    let mut seen = cx.tables.seen.entry(&key, || Seen);
                    let starts_run = seen.is_fresh();
                    seen.set_evict_at(horizon);
                    if !starts_run {
                        continue;
                    }
                    let owner = tc.user.as_deref().unwrap_or(tc.session);
                    // A separate key space from the seen marks: tag 1 after the rule.
                    cx.scratch.key.start(id, event.tenant).num(1).part(owner);
                    let mut entry = cx.tables.windows.entry(&cx.scratch.key.state_key(), Default::default);
                    let count = entry.value().observe(event.ts, *limit, *window_ms);
                    let newest = entry.value().newest().unwrap_or(event.ts);
                    entry.keep_until(newest + window_ms + cx.lateness_ms);
                    (count > u64::from(*limit)).then(|| {
                        let evidence = Evidence::Window { count, limit: *limit, window_ms: *window_ms };
                        (SubjectRef::new("workflow", workflow.as_ref()), evidence)
                    })
                }
            };
            if let Some((subject, evidence)) = verdict {
                out.push(Verdict { rule: id, subject, evidence, alert: None });
            }
        }
    }
}

/// Builds in `key` the key `rule` looks up on every call it sees, and says in
/// which table; `None` (and `key` untouched) for a rule with no such key:
/// `slow_job`, a tool cap on another tool, `repeat_call` on a polling tool and
/// `workflow_runs` on a call without a workflow. (`workflow_runs` also looks up
/// its run window, but only when a run starts: built where it is used.)
fn call_key(rule: &LoopRule, id: RuleId, event: &Event<'_>, tc: &ToolCall<'_>, key: &mut KeyBuf) -> Option<Which> {
    let run = tc.run_id();
    match rule {
        LoopRule::Repeat { polling, .. } if !polling.contains(tc.tool) => {
            key.start(id, event.tenant).part(tc.session);
            Some(Which::History)
        }
        LoopRule::Consecutive { .. } => {
            let key = key.start(id, event.tenant).part(tc.session).part(run);
            match &tc.turn {
                Some(turn) => key.num(1).part(turn),
                None => key.num(0),
            };
            Some(Which::Counters)
        }
        LoopRule::PerRun { .. } => {
            key.start(id, event.tenant).part(run);
            Some(Which::Counters)
        }
        LoopRule::Cap { tool, .. } if tc.tool == tool => {
            key.start(id, event.tenant).part(run);
            Some(Which::Counters)
        }
        LoopRule::Workflow { .. } if tc.workflow.is_some() => {
            key.start(id, event.tenant).part(run);
            Some(Which::Seen)
        }
        _ => None,
    }
}

/// The digest of [`call_key`]'s key, from the plan when it holds it (see
/// [`planned_key`]). Only for a rule and call that have one, in table `which`.
fn key_of(
    cx: &mut Cx<'_>,
    rule: &LoopRule,
    id: RuleId,
    event: &Event<'_>,
    tc: &ToolCall<'_>,
    which: Which,
) -> StateKey {
    planned_key(&mut cx.scratch.plan, &mut cx.scratch.key, which, id, |k| {
        let built = call_key(rule, id, event, tc, k);
        debug_assert_eq!(built, Some(which), "a loop rule looked up a key it has no call key for");
    })
}

/// Increments the counter at `key`; returns the new count.
fn bump(cx: &mut Cx<'_>, key: StateKey, horizon: i64) -> u64 {
    let mut entry = cx.tables.counters.entry(&key, Counter::default);
    entry.value().count += 1;
    entry.keep_until(horizon);
    entry.value().count
}

fn run_verdict<'a>(run: &'a str, count: u64, limit: u32, scope: &str) -> (SubjectRef<'a>, Evidence) {
    (SubjectRef::new("run", run), Evidence::Calls { count, limit, scope: scope.to_string() })
}

/// A 64-bit fingerprint of (tool, canonical arguments). Uses the raw `args` value
/// when it is not an object, so odd arguments still compare equal to themselves.
fn call_fingerprint(event: &Event<'_>, tc: &ToolCall<'_>, canon: &mut String) -> u64 {
    // One buffer, one-shot hash: a streaming hasher's setup costs more than
    // these few dozen bytes.
    canon.clear();
    canon.push_str(tc.tool);
    canon.push('\0');
    match (&tc.args, event.raw_args) {
        (Some(args), _) => jcs::write_object(args.object(), canon),
        (None, Some(raw)) => jcs::write_value(raw, canon),
        (None, None) => {}
    }
    xxh3_64(canon.as_bytes())
}
