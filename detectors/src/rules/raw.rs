//! The rules part of warden's TOML config, as written (design §5, §7).
//!
//! Every field is optional so a config can override one field of a built-in rule;
//! [`super::compile`] merges with [`super::defaults`] and validates. Units are in
//! the names (`_secs`, `_ms`). Unknown fields are errors, so a typo cannot silently
//! leave a default in force.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use warden_schemas::Mode;

/// The detection sections of the config file: `[engine]`, `[exempt]`, `[rules.*]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Time and size settings.
    #[serde(default)]
    pub engine: RawEngine,
    /// Subjects no rule ever acts on.
    #[serde(default)]
    pub exempt: RawExempt,
    /// Rules by name: overrides of built-in rules, or new rules with a `type`.
    #[serde(default)]
    pub rules: BTreeMap<String, RawRule>,
}

/// `[engine]`: event-time and input settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// How far behind the newest event an event may arrive and still count as on time (default 60).
    pub allowed_lateness_secs: Option<u64>,
    /// An event this far ahead of the newest one does not move the watermark (default 3600).
    pub future_tolerance_secs: Option<u64>,
    /// Largest accepted input message (default 1 MiB).
    pub max_event_bytes: Option<u64>,
}

/// Exemption lists: events carrying any of these values are never acted on.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawExempt {
    /// Tenant ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Visitor ids (webhooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visitors: Vec<String>,
    /// Client IPs (webhooks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Session ids (tool calls).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
}

/// One rule as written. Which fields a rule reads depends on its `type`; setting a
/// field its type does not read is an error.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// What the rule does (`rate`, `tool_cap`, `fanout`, ...); fixed for built-in rules.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `false` turns the rule off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `enforce` or `shadow`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Action when it fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// How long a record holds, in seconds (0 = this event only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// The same in milliseconds (set one or the other).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// N of "N per W", or the cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// W of "N per W", in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    /// W in milliseconds (set one or the other).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// Event type a `rate` rule reads: `webhook`, `tool_call` or `log`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
    /// Only webhooks with this route (query string and trailing slash ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only tool calls of this tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Tools the rule applies to (consent-gated tools).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Tools exempt from `repeat_call` and absent from its history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polling_tools: Option<Vec<String>>,
    /// The field counted per: `visitor`, `ip`, `tenant`, `tool`, `session`, `run`,
    /// `user`, `workflow`, `source`, `service`, or `args.<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The argument a `fanout` or `consent_gate` rule reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    /// What a `fanout` rule counts per: `run` or `session`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// `too_long`: the most characters allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<u64>,
    /// `repeated_chars`: the shortest run that fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_run: Option<u64>,
    /// Words or phrases matched on word boundaries of normalised text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phrases: Option<Vec<String>>,
    /// `repeat_call`: how many previous calls are compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<u64>,
    /// `repeat_call`: how many earlier equal calls fire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_repeats: Option<u64>,
    /// `slow_job`: longest acceptable `duration_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration_ms: Option<u64>,
    /// `slow_job`: most acceptable `retries`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u64>,
    /// `run_budget`: the most a run may cost, in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// `run_budget`: the most prompt tokens a run may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_in: Option<u64>,
    /// `tool_allowlist`: tenant → the tools it may call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowlists: Option<BTreeMap<String, Vec<String>>>,
    /// Subjects this rule never acts on (in addition to the global `[exempt]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exempt: Option<RawExempt>,
}

impl RawRule {
    /// Overlays every field `over` sets onto `self`.
    pub fn overlay(&mut self, over: &RawRule) {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* };
        }
        take!(
            kind,
            enabled,
            mode,
            action,
            ttl_secs,
            ttl_ms,
            limit,
            window_secs,
            window_ms,
            events,
            route,
            tool,
            tools,
            polling_tools,
            key,
            arg,
            per,
            max_chars,
            min_run,
            phrases,
            history,
            min_repeats,
            max_duration_ms,
            max_retries,
            max_cost_usd,
            max_tokens_in,
            allowlists,
            exempt
        );
        // A config that gives one unit of a duration replaces the default's other unit.
        if over.ttl_secs.is_some() && over.ttl_ms.is_none() {
            self.ttl_ms = None;
        }
        if over.ttl_ms.is_some() && over.ttl_secs.is_none() {
            self.ttl_secs = None;
        }
        if over.window_secs.is_some() && over.window_ms.is_none() {
            self.window_ms = None;
        }
        if over.window_ms.is_some() && over.window_secs.is_none() {
            self.window_secs = None;
        }
    }

    /// The names of the fields this rule sets (for "not used by this type" errors).
    pub fn set_fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! check {
            ($($f:ident),*) => { $( if self.$f.is_some() { out.push(stringify!($f)); } )* };
        }
        check!(
            limit,
            window_secs,
            window_ms,
            events,
            route,
            tool,
            tools,
            polling_tools,
            key,
            arg,
            per,
            max_chars,
            min_run,
            phrases,
            history,
            min_repeats,
            max_duration_ms,
            max_retries,
            max_cost_usd,
            max_tokens_in,
            allowlists
        );
        out
    }
}
