//! The built-in rules, from the threat models warden was designed from (design §5).
//!
//! Written as [`RawRule`]s so `warden rules` prints defaults and overrides the same
//! way, and a config overrides any field by name.

use std::collections::BTreeMap;

use super::raw::RawRule;
use crate::text;

const MIN: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

fn rule(kind: &str, action: &str, ttl_secs: u64) -> RawRule {
    RawRule {
        kind: Some(kind.into()),
        enabled: Some(true),
        mode: Some(warden_schemas::Mode::Enforce),
        action: Some(action.into()),
        ttl_secs: Some(ttl_secs),
        ..RawRule::default()
    }
}

fn rate(events: &str, key: &str, limit: u64, window_secs: u64, action: &str, ttl_secs: u64) -> RawRule {
    RawRule {
        events: Some(events.into()),
        key: Some(key.into()),
        limit: Some(limit),
        window_secs: Some(window_secs),
        ..rule("rate", action, ttl_secs)
    }
}

fn with_route(mut r: RawRule, route: &str) -> RawRule {
    r.route = Some(route.into());
    r
}

fn with_tool(mut r: RawRule, tool: &str) -> RawRule {
    r.tool = Some(tool.into());
    r
}

fn cap(tool: &str, limit: u64) -> RawRule {
    RawRule { tool: Some(tool.into()), limit: Some(limit), ..rule("tool_cap", "clamp", HOUR) }
}

fn phrases(kind: &str, action: &str, list: &[&str]) -> RawRule {
    RawRule { phrases: Some(list.iter().map(|s| s.to_string()).collect()), ..rule(kind, action, 0) }
}

/// Every built-in rule by name.
pub fn default_rules() -> BTreeMap<String, RawRule> {
    let mut r = BTreeMap::new();
    let mut add = |name: &str, rule: RawRule| {
        r.insert(name.to_string(), rule);
    };
    // rate
    add("visitor_rate", rate("webhook", "visitor", 30, MIN, "block", MIN));
    add("chat_visitor", with_route(rate("webhook", "visitor", 20, MIN, "block", MIN), "/chat"));
    add("tenant_rate", rate("webhook", "tenant", 300, MIN, "throttle", MIN));
    add("tool_tenant_rate", rate("tool_call", "tool", 30, MIN, "throttle", MIN));
    add("login_ip", with_route(rate("webhook", "ip", 10, 15 * MIN, "block", 15 * MIN), "/auth/login"));
    add("register_ip", with_route(rate("webhook", "ip", 5, 15 * MIN, "block", 15 * MIN), "/auth/register"));
    add("forgot_ip", with_route(rate("webhook", "ip", 3, 15 * MIN, "block", 15 * MIN), "/auth/forgot-password"));
    let vendor = "args.vendor_phone";
    add("outreach_vendor", with_tool(rate("tool_call", vendor, 20, DAY, "block", DAY), "send_outreach"));
    add("outreach_cooldown", with_tool(rate("tool_call", vendor, 1, 5 * MIN, "block", 5 * MIN), "send_outreach"));
    // duplicates and replays
    add("dup_flood", RawRule { limit: Some(2), window_secs: Some(10), ..rule("dup_flood", "block", 10) });
    add("replay", RawRule { window_secs: Some(DAY), ..rule("replay", "drop", DAY) });
    // spam and injection
    add("empty_text", rule("empty_text", "block", MIN));
    add("too_long", RawRule { max_chars: Some(5_000), ..rule("too_long", "block", MIN) });
    add("repeated_chars", RawRule { min_run: Some(10), ..rule("repeated_chars", "block", MIN) });
    add("spam_content", phrases("spam_content", "flag", text::SPAM_WORDS));
    add("payment_redirect", phrases("payment_redirect", "flag", text::PAYMENT_PHRASES));
    add("injection_phrase", rule("injection_phrase", "flag", 0));
    // agent loops
    add(
        "repeat_call",
        RawRule {
            history: Some(5),
            min_repeats: Some(2),
            polling_tools: Some(Vec::new()),
            ..rule("repeat_call", "halt_session", HOUR)
        },
    );
    add("consecutive_calls", RawRule { limit: Some(10), ..rule("consecutive_calls", "clamp", HOUR) });
    add("calls_per_run", RawRule { limit: Some(25), ..rule("calls_per_run", "clamp", HOUR) });
    add("cap_moltbot", cap("moltbot", 8));
    add("cap_ocr_document", cap("ocr_document", 2));
    add("cap_send_batch", cap("send_batch", 3));
    add(
        "slow_job",
        RawRule { max_duration_ms: Some(60_000), max_retries: Some(3), ..rule("slow_job", "kill_job", HOUR) },
    );
    add(
        "workflow_runs",
        RawRule { limit: Some(100), window_secs: Some(MIN), ..rule("workflow_runs", "disable_workflow", HOUR) },
    );
    // fan-out
    let fanout = |per: &str, limit: u64, window: Option<u64>, action: &str, ttl: u64| RawRule {
        tool: Some("send_outreach".into()),
        arg: Some("vendor_phone".into()),
        per: Some(per.into()),
        limit: Some(limit),
        window_secs: window,
        ..rule("fanout", action, ttl)
    };
    add("vendors_per_run", fanout("run", 15, None, "clamp", HOUR));
    add("vendors_per_session", fanout("session", 20, Some(DAY), "block", DAY));
    // tool policy
    add(
        "consent_gate",
        RawRule {
            tools: Some(vec!["place_call".into()]),
            arg: Some("consent".into()),
            ..rule("consent_gate", "block", 0)
        },
    );
    add("tool_allowlist", RawRule { allowlists: Some(BTreeMap::new()), ..rule("tool_allowlist", "block", 0) });
    add("internal_target", rule("internal_target", "block", 0));
    add("file_secret", rule("file_secret", "block", 0));
    add(
        "run_budget",
        RawRule { max_cost_usd: Some(1.0), max_tokens_in: Some(100_000), ..rule("run_budget", "halt_session", HOUR) },
    );
    // PII, spoofing
    add("pii_leak", rule("pii_leak", "flag", 0));
    add(
        "signature_failures",
        RawRule { limit: Some(20), window_secs: Some(MIN), ..rule("signature_failures", "alert", 0) },
    );
    r
}
