//! Raw config → [`Rules`]: merge with the defaults, validate, and report every
//! problem with the path of the field that has it.

use std::collections::BTreeMap;

use warden_schemas::{Action, EventType, Mode};

use super::defaults::default_rules;
use super::raw::{RawExempt, RawRule, RulesConfig};
use super::{normalize_route, DetectorKind, Exempt, FanoutPer, KeyField, NameSet, Params, Rule, RuleId, Rules};
use crate::text;

/// One config problem: the field's path (`rules.visitor_rate.limit`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RuleError {
    /// Dotted path of the offending field.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// The most a window rule may count: it keeps this many timestamps per key.
const MAX_LIMIT: u64 = 100_000;
/// The longest window or TTL: a week of event time.
const MAX_DURATION_MS: u64 = 7 * 86_400_000;

/// Merges `config` over the built-in rules and compiles the result; every problem
/// found is returned, not just the first.
pub fn compile(config: &RulesConfig) -> Result<Rules, Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut merged = default_rules();
    for (name, over) in &config.rules {
        match merged.get_mut(name) {
            Some(base) => {
                if let Some(kind) = &over.kind {
                    if Some(kind) != base.kind.as_ref() {
                        errors.push(err(
                            format!("rules.{name}.type"),
                            format!(
                            "`{name}` is a built-in `{}` rule; its type cannot change (give a new rule another name)",
                            base.kind.as_deref().unwrap_or("?")
                        ),
                        ));
                    }
                }
                base.overlay(over);
            }
            None => {
                if over.kind.is_none() {
                    errors.push(err(
                        format!("rules.{name}.type"),
                        "a new rule needs a `type` (e.g. \"rate\", \"tool_cap\", \"fanout\")".into(),
                    ));
                }
                let mut rule = RawRule { enabled: Some(true), mode: Some(Mode::Enforce), ..RawRule::default() };
                rule.overlay(over);
                merged.insert(name.clone(), rule);
            }
        }
    }
    let e = &config.engine;
    let lateness_ms = secs_ms(e.allowed_lateness_secs.unwrap_or(60), "engine.allowed_lateness_secs", &mut errors);
    let future_ms = secs_ms(e.future_tolerance_secs.unwrap_or(3_600), "engine.future_tolerance_secs", &mut errors);
    let max_event_bytes = e.max_event_bytes.unwrap_or(warden_schemas::decode::DEFAULT_MAX_BYTES as u64);
    if !(1_024..=64 << 20).contains(&max_event_bytes) {
        errors.push(err("engine.max_event_bytes".into(), "must be between 1024 and 67108864".into()));
    }
    let mut rules = Vec::with_capacity(merged.len());
    for (i, (name, raw)) in merged.iter().enumerate() {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            errors.push(err(format!("rules.{name}"), "rule names are ASCII letters, digits, `_` and `-`".into()));
        }
        if let Some(rule) = compile_rule(RuleId(i as u16), name, raw, &mut errors) {
            rules.push(rule);
        }
    }
    if merged.len() > u16::MAX as usize {
        errors.push(err("rules".into(), "too many rules".into()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rules {
        rules,
        exempt: exempt(&config.exempt),
        lateness_ms: lateness_ms as i64,
        future_tolerance_ms: future_ms as i64,
        max_event_bytes: max_event_bytes as usize,
        effective: merged,
    })
}

fn err(path: String, message: String) -> RuleError {
    RuleError { path, message }
}

fn secs_ms(secs: u64, path: &str, errors: &mut Vec<RuleError>) -> u64 {
    if secs.saturating_mul(1_000) > MAX_DURATION_MS {
        errors.push(err(path.into(), "must be at most a week".into()));
    }
    secs.saturating_mul(1_000).min(MAX_DURATION_MS)
}

fn exempt(raw: &RawExempt) -> Exempt {
    let set = |v: &Vec<String>| v.iter().cloned().collect::<NameSet>();
    Exempt::new(set(&raw.tenants), set(&raw.visitors), set(&raw.ips), set(&raw.sessions))
}

/// Which fields each rule type reads, and its detector.
fn type_info(kind: &str) -> Option<(DetectorKind, &'static [&'static str])> {
    use DetectorKind::*;
    Some(match kind {
        "rate" => (Rate, &["limit", "window_secs", "window_ms", "events", "route", "tool", "key"]),
        "signature_failures" => (Spoofing, &["limit", "window_secs", "window_ms"]),
        "dup_flood" => (DupFlood, &["limit", "window_secs", "window_ms"]),
        "replay" => (Replay, &["window_secs", "window_ms"]),
        "empty_text" => (Spam, &[]),
        "too_long" => (Spam, &["max_chars"]),
        "repeated_chars" => (Spam, &["min_run"]),
        "spam_content" | "payment_redirect" => (Spam, &["phrases"]),
        "injection_phrase" => (Injection, &[]),
        "repeat_call" => (Loop, &["history", "min_repeats", "polling_tools"]),
        "consecutive_calls" | "calls_per_run" => (Loop, &["limit"]),
        "tool_cap" => (Loop, &["tool", "limit"]),
        "slow_job" => (Loop, &["max_duration_ms", "max_retries"]),
        "workflow_runs" => (Loop, &["limit", "window_secs", "window_ms"]),
        "fanout" => (Fanout, &["tool", "arg", "per", "limit", "window_secs", "window_ms"]),
        "consent_gate" => (Policy, &["tools", "arg"]),
        "tool_allowlist" => (Policy, &["allowlists"]),
        "internal_target" | "file_secret" => (Policy, &[]),
        "run_budget" => (Policy, &["max_cost_usd", "max_tokens_in"]),
        "pii_leak" => (Pii, &[]),
        _ => return None,
    })
}

/// Collects one rule's problems as it reads its fields.
struct Check<'a> {
    name: &'a str,
    errors: &'a mut Vec<RuleError>,
}

impl Check<'_> {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(err(format!("rules.{}.{field}", self.name), message.into()));
    }

    fn required<T: Clone>(&mut self, v: &Option<T>, field: &str) -> Option<T> {
        if v.is_none() {
            self.fail(field, "required for this rule type");
        }
        v.clone()
    }

    fn limit(&mut self, raw: &RawRule) -> u32 {
        match self.required(&raw.limit, "limit") {
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n as u32,
            Some(_) => {
                self.fail("limit", format!("must be between 1 and {MAX_LIMIT}"));
                1
            }
            None => 1,
        }
    }

    fn duration(&mut self, secs: Option<u64>, ms: Option<u64>, field: &str) -> Option<u64> {
        let v = match (secs, ms) {
            // The config is refused; go on with one of them, so no second error
            // claims the duration is missing.
            (Some(s), Some(_)) => {
                self.fail(&format!("{field}_ms"), format!("set `{field}_secs` or `{field}_ms`, not both"));
                s.saturating_mul(1_000)
            }
            (Some(s), None) => s.saturating_mul(1_000),
            (None, Some(ms)) => ms,
            (None, None) => return None,
        };
        if v > MAX_DURATION_MS {
            self.fail(&format!("{field}_secs"), "must be at most a week");
            return Some(MAX_DURATION_MS);
        }
        Some(v)
    }

    fn window(&mut self, raw: &RawRule) -> i64 {
        match self.duration(raw.window_secs, raw.window_ms, "window") {
            Some(0) => {
                self.fail("window_secs", "must be positive");
                1
            }
            Some(w) => w as i64,
            None => {
                self.fail("window_secs", "required for this rule type");
                1
            }
        }
    }
}

fn compile_rule(id: RuleId, name: &str, raw: &RawRule, errors: &mut Vec<RuleError>) -> Option<Rule> {
    let kind = raw.kind.as_deref()?;
    let mut c = Check { name, errors };
    let Some((detector, fields)) = type_info(kind) else {
        c.fail("type", format!("unknown rule type `{kind}`"));
        return None;
    };
    for f in raw.set_fields() {
        if !fields.contains(&f) {
            c.fail(f, format!("not used by a `{kind}` rule"));
        }
    }
    let action = match raw.action.as_deref() {
        Some("alert") if kind == "signature_failures" => None,
        Some(_) if kind == "signature_failures" => {
            c.fail("action", "a signature_failures rule only alerts (action = \"alert\")");
            None
        }
        Some(a) => match Action::parse(a) {
            Some(Action::Lift) | None => {
                c.fail("action", format!("unknown action `{a}` (block, throttle, drop, flag, clamp, halt_session, disable_workflow, disable_tool, kill_job)"));
                None
            }
            Some(action) => Some(action),
        },
        None => {
            c.fail("action", "required");
            None
        }
    };
    let ttl_ms = c.duration(raw.ttl_secs, raw.ttl_ms, "ttl").unwrap_or(0);
    let params = match kind {
        "rate" => {
            let events = c.required(&raw.events, "events").and_then(|e| {
                let t = EventType::parse(&e);
                if t.is_none() {
                    c.fail("events", "one of webhook, tool_call, log");
                }
                t
            });
            let key = c.required(&raw.key, "key").and_then(|k| {
                let f = KeyField::parse(&k);
                if f.is_none() {
                    c.fail("key", format!("unknown key `{k}` (visitor, ip, source, tenant, session, run, user, workflow, tool, service, args.<name>)"));
                }
                f
            });
            let (limit, window_ms) = (c.limit(raw), c.window(raw));
            let (events, key) = (events?, key?);
            if !key.fits(events) {
                c.fail("key", format!("`{}` events carry no `{}`", events.as_str(), key.kind()));
            }
            if raw.route.is_some() && events != EventType::Webhook {
                c.fail("route", "only webhooks have a route");
            }
            if raw.tool.is_some() && events != EventType::ToolCall {
                c.fail("tool", "only tool calls have a tool");
            }
            let route = raw.route.as_deref().map(|r| normalize_route(r).into_owned());
            Params::Rate { events, route, tool: raw.tool.clone(), key, limit, window_ms }
        }
        "signature_failures" => Params::SignatureFailures { limit: c.limit(raw), window_ms: c.window(raw) },
        "dup_flood" => Params::DupFlood { limit: c.limit(raw), window_ms: c.window(raw) },
        "replay" => Params::Replay { window_ms: c.window(raw) },
        "empty_text" => Params::EmptyText,
        "too_long" => Params::TooLong { max_chars: c.required(&raw.max_chars, "max_chars").unwrap_or(u64::MAX) },
        "repeated_chars" => {
            let min_run = c.required(&raw.min_run, "min_run").unwrap_or(2);
            if min_run < 2 {
                c.fail("min_run", "must be at least 2");
            }
            Params::RepeatedChars { min_run }
        }
        "spam_content" | "payment_redirect" => {
            let phrases = c.required(&raw.phrases, "phrases").unwrap_or_default();
            if raw.phrases.as_ref().is_some_and(Vec::is_empty) {
                c.fail("phrases", "needs at least one phrase (`enabled = false` turns the rule off)");
            } else if let Err(e) = text::PhraseSet::new(&phrases) {
                c.fail("phrases", e.to_string());
            }
            if kind == "spam_content" {
                Params::SpamContent { phrases }
            } else {
                Params::PaymentRedirect { phrases }
            }
        }
        "injection_phrase" => Params::Injection,
        "repeat_call" => {
            let history = c.required(&raw.history, "history").unwrap_or(5);
            let min_repeats = c.required(&raw.min_repeats, "min_repeats").unwrap_or(2);
            if !(1..=1_000).contains(&history) {
                c.fail("history", "must be between 1 and 1000");
            }
            if min_repeats == 0 || min_repeats > history {
                c.fail("min_repeats", "must be between 1 and `history`");
            }
            Params::RepeatCall {
                history: history.min(1_000) as usize,
                min_repeats: min_repeats as usize,
                polling_tools: raw.polling_tools.iter().flatten().cloned().collect(),
            }
        }
        "consecutive_calls" => Params::ConsecutiveCalls { limit: c.limit(raw) },
        "calls_per_run" => Params::CallsPerRun { limit: c.limit(raw) },
        "tool_cap" => Params::ToolCap { tool: c.required(&raw.tool, "tool").unwrap_or_default(), limit: c.limit(raw) },
        "slow_job" => Params::SlowJob {
            max_duration_ms: c.required(&raw.max_duration_ms, "max_duration_ms").unwrap_or(u64::MAX),
            max_retries: c.required(&raw.max_retries, "max_retries").unwrap_or(u64::MAX),
        },
        "workflow_runs" => Params::WorkflowRuns { limit: c.limit(raw), window_ms: c.window(raw) },
        "fanout" => {
            let per = match c.required(&raw.per, "per").as_deref() {
                Some("run") | None => FanoutPer::Run,
                Some("session") => FanoutPer::Session,
                Some(_) => {
                    c.fail("per", "one of run, session");
                    FanoutPer::Run
                }
            };
            let window_ms = match c.duration(raw.window_secs, raw.window_ms, "window") {
                Some(0) => {
                    c.fail("window_secs", "must be positive (leave it out for the whole run)");
                    None
                }
                w => w.map(|w| w as i64),
            };
            Params::Fanout {
                tool: raw.tool.clone(),
                arg: c.required(&raw.arg, "arg").unwrap_or_default(),
                per,
                limit: c.limit(raw),
                window_ms,
            }
        }
        "consent_gate" => Params::ConsentGate {
            tools: c.required(&raw.tools, "tools").unwrap_or_default().into_iter().collect(),
            arg: c.required(&raw.arg, "arg").unwrap_or_default(),
        },
        "tool_allowlist" => Params::ToolAllowlist {
            allowlists: raw
                .allowlists
                .iter()
                .flatten()
                .map(|(tenant, tools)| (tenant.clone(), tools.iter().cloned().collect()))
                .collect::<BTreeMap<_, _>>(),
        },
        "internal_target" => Params::InternalTarget,
        "file_secret" => Params::FileSecret,
        "run_budget" => {
            let usd = c.required(&raw.max_cost_usd, "max_cost_usd").unwrap_or(f64::MAX);
            if !(0.0..1e9).contains(&usd) {
                c.fail("max_cost_usd", "must be a non-negative amount under 1e9");
            }
            Params::RunBudget {
                max_cost_nanos: crate::detector::tool_policy::usd_to_nanos(usd.clamp(0.0, 1e9)),
                max_tokens_in: c.required(&raw.max_tokens_in, "max_tokens_in").unwrap_or(u64::MAX),
            }
        }
        "pii_leak" => Params::PiiLeak,
        _ => return None,
    };
    if let Some(stops) = action.and_then(killswitch_target) {
        let kinds = subject_kinds(&params);
        if kinds.iter().any(|k| *k != stops) {
            let action = action.map_or("", Action::as_str);
            c.fail(
                "action",
                format!("`{action}` stops a {stops}, but this rule's subject is a {}", kinds.join(" or ")),
            );
        }
        if ttl_ms == 0 {
            // The command's `expires_at` is the trigger plus the TTL: 0 would stop
            // nothing, and every triggering event would send another command.
            c.fail("ttl_secs", "a kill-switch action needs a TTL above 0 (how long the command holds)");
        }
    }
    Some(Rule {
        id,
        name: name.to_string(),
        detector,
        action,
        mode: raw.mode.unwrap_or_default(),
        ttl_ms,
        enabled: raw.enabled.unwrap_or(true),
        exempt: raw.exempt.as_ref().map(exempt).unwrap_or_default(),
        params,
    })
}

/// The subject kind a kill-switch action stops (its command's target); `None`
/// for a decision action.
fn killswitch_target(action: Action) -> Option<&'static str> {
    match action {
        Action::HaltSession => Some("session"),
        Action::DisableWorkflow => Some("workflow"),
        Action::DisableTool => Some("tool"),
        Action::KillJob => Some("run"),
        _ => None,
    }
}

/// The subject kinds a rule's verdicts carry (the detectors' `SubjectRef`s): a
/// kill-switch command targets the subject, so a `halt_session` on a visitor
/// rule would ask the workflow engine to halt a visitor.
fn subject_kinds(params: &Params) -> Vec<&str> {
    match params {
        Params::Rate { key, .. } => vec![key.kind()],
        Params::SignatureFailures { .. } => vec!["source"],
        Params::Replay { .. } => vec!["message"],
        Params::DupFlood { .. }
        | Params::EmptyText
        | Params::TooLong { .. }
        | Params::RepeatedChars { .. }
        | Params::SpamContent { .. }
        | Params::PaymentRedirect { .. }
        | Params::Injection => vec!["visitor"],
        Params::ConsecutiveCalls { .. }
        | Params::CallsPerRun { .. }
        | Params::ToolCap { .. }
        | Params::SlowJob { .. } => {
            vec!["run"]
        }
        Params::WorkflowRuns { .. } => vec!["workflow"],
        Params::Fanout { per: FanoutPer::Run, .. } => vec!["run"],
        Params::Fanout { per: FanoutPer::Session, .. } => vec!["session"],
        Params::RepeatCall { .. }
        | Params::ConsentGate { .. }
        | Params::ToolAllowlist { .. }
        | Params::InternalTarget
        | Params::FileSecret
        | Params::RunBudget { .. } => vec!["session"],
        Params::PiiLeak => vec!["service", "session", "visitor"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> RulesConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_compile() {
        let rules = compile(&RulesConfig::default()).unwrap();
        assert!(rules.by_name("visitor_rate").is_some());
        assert_eq!(rules.lateness_ms, 60_000);
        assert_eq!(rules.rules.len(), 34, "every built-in rule of design §5");
    }

    #[test]
    fn overrides_one_field_and_keeps_the_rest() {
        let rules = compile(&config("[rules.visitor_rate]\nlimit = 50\nmode = \"shadow\"\n")).unwrap();
        let r = rules.by_name("visitor_rate").unwrap();
        assert_eq!(r.mode, Mode::Shadow);
        assert!(matches!(r.params, Params::Rate { limit: 50, window_ms: 60_000, .. }));
        assert_eq!(r.ttl_ms, 60_000);
    }

    #[test]
    fn errors_name_every_bad_field() {
        let errs = compile(&config(
            "[rules.visitor_rate]\nlimit = 0\nmax_chars = 3\n[rules.mine]\nlimit = 3\n[rules.other]\ntype = \"rate\"\nevents = \"log\"\nkey = \"visitor\"\nlimit = 2\nwindow_secs = 1\naction = \"explode\"\n",
        ))
        .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "rules.visitor_rate.limit",
            "rules.visitor_rate.max_chars",
            "rules.mine.type",
            "rules.other.key",
            "rules.other.action",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
    }

    #[test]
    fn a_killswitch_action_must_stop_the_rules_subject() {
        let errs = compile(&config("[rules.visitor_rate]\naction = \"halt_session\"\n")).unwrap_err();
        assert_eq!(errs[0].path, "rules.visitor_rate.action");
        assert!(
            errs[0].message.contains("stops a session, but this rule's subject is a visitor"),
            "{}",
            errs[0].message
        );
        let pii = compile(&config("[rules.pii_leak]\naction = \"halt_session\"\n")).unwrap_err();
        assert!(pii[0].message.contains("service or session or visitor"), "{}", pii[0].message);
        // The subject fits: a rate rule keyed by session may halt it, a fan-out per run may kill its job.
        compile(&config(
            "[rules.session_rate]\ntype = \"rate\"\nevents = \"tool_call\"\nkey = \"session\"\nlimit = 5\nwindow_secs = 1\naction = \"halt_session\"\nttl_secs = 60\n[rules.vendors_per_run]\naction = \"kill_job\"\n",
        ))
        .unwrap();
        assert!(compile(&config("[rules.tool_tenant_rate]\naction = \"disable_tool\"\n")).is_ok());
    }

    #[test]
    fn a_killswitch_needs_a_ttl_and_a_phrase_rule_a_phrase() {
        let errs = compile(&config("[rules.repeat_call]\nttl_secs = 0\n")).unwrap_err();
        assert_eq!(errs[0].path, "rules.repeat_call.ttl_secs");
        assert!(errs[0].message.contains("TTL above 0"), "{}", errs[0].message);
        let errs = compile(&config("[rules.spam_content]\nphrases = []\n")).unwrap_err();
        assert_eq!(errs[0].path, "rules.spam_content.phrases");
        assert!(compile(&config("[rules.spam_content]\nenabled = false\n")).is_ok());
    }

    #[test]
    fn new_rules_need_a_known_type() {
        let ok = compile(&config(
            "[rules.checkout]\ntype = \"rate\"\nevents = \"webhook\"\nroute = \"/Checkout/\"\nkey = \"ip\"\nlimit = 5\nwindow_ms = 1500\naction = \"block\"\nttl_secs = 30\n",
        ))
        .unwrap();
        let r = ok.by_name("checkout").unwrap();
        assert!(matches!(&r.params, Params::Rate { route: Some(route), window_ms: 1_500, .. } if route == "/checkout"));
        let errs = compile(&config("[rules.x]\ntype = \"nope\"\naction = \"block\"\n")).unwrap_err();
        assert_eq!(errs[0].path, "rules.x.type");
    }

    #[test]
    fn unknown_fields_are_rejected_by_the_parser() {
        let e = toml::from_str::<RulesConfig>("[rules.visitor_rate]\nlimt = 5\n").unwrap_err();
        assert!(e.to_string().contains("limt"), "{e}");
    }
}
