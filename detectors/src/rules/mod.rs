//! Rules: the config as written ([`raw`]), the built-in defaults ([`defaults`]), and
//! the compiled, validated form the engine runs ([`Rules`], built by [`compile()`]).
//!
//! Raw and compiled are two types on purpose: raw mirrors the TOML (every field
//! optional, for overrides); compiled has the numbers, durations and matchers the
//! detectors need, so no detector re-validates config on the hot path.

mod compile;
pub mod defaults;
pub mod raw;

use std::collections::{BTreeMap, HashSet};

use warden_schemas::{Action, EventType, Mode};

use crate::state::FixedState;

pub use compile::{compile, RuleError};
pub use raw::{RawEngine, RawExempt, RawRule, RulesConfig};

/// A set of names from the config (tools, tenants, visitors, ...), asked on
/// every event. Hashed with the state maps' ahash ([`FixedState`]), not SipHash:
/// the config fills it and events only look names up, so there is no flooding
/// to resist, and SipHash was a fifth of a tool call's policy check.
pub type NameSet = HashSet<String, FixedState>;

/// Index of a rule in [`Rules::rules`]; `Copy`, used in state keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u16);

/// The detector a rule belongs to: the `detector` field of outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DetectorKind {
    /// Sliding-window rate limits.
    Rate,
    /// Identical texts in a short window.
    DupFlood,
    /// Provider message ids seen before.
    Replay,
    /// Spam content and shapes.
    Spam,
    /// Prompt injection phrases.
    Injection,
    /// Agent loops and runaway jobs.
    Loop,
    /// Secrets and PII.
    Pii,
    /// Distinct-target fan-out.
    Fanout,
    /// Webhook signature failures.
    Spoofing,
    /// Tool policy (consent, allowlists, targets, budgets).
    Policy,
}

impl DetectorKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Rate => "rate",
            DetectorKind::DupFlood => "dup_flood",
            DetectorKind::Replay => "replay",
            DetectorKind::Spam => "spam",
            DetectorKind::Injection => "injection",
            DetectorKind::Loop => "loop",
            DetectorKind::Pii => "pii",
            DetectorKind::Fanout => "fanout",
            DetectorKind::Spoofing => "spoofing",
            DetectorKind::Policy => "policy",
        }
    }

    /// Every detector, in a fixed order.
    pub const ALL: [DetectorKind; 10] = [
        DetectorKind::Rate,
        DetectorKind::DupFlood,
        DetectorKind::Replay,
        DetectorKind::Spam,
        DetectorKind::Injection,
        DetectorKind::Loop,
        DetectorKind::Pii,
        DetectorKind::Fanout,
        DetectorKind::Spoofing,
        DetectorKind::Policy,
    ];
}

/// A field a rule counts per; its name is the subject kind of what the rule emits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyField {
    /// Webhook `visitor`.
    Visitor,
    /// Webhook `ip`.
    Ip,
    /// Webhook `source`.
    Source,
    /// The tenant itself.
    Tenant,
    /// Tool-call `session`.
    Session,
    /// Tool-call run (the session when absent).
    Run,
    /// Tool-call `user` (the session when absent).
    User,
    /// Tool-call `workflow`.
    Workflow,
    /// Tool-call `tool`.
    Tool,
    /// Log `service`.
    Service,
    /// A tool-call argument, subject kind `args.<name>`; holds the full kind.
    Arg(String),
}

impl KeyField {
    /// Parses a `key` value.
    pub fn parse(s: &str) -> Option<KeyField> {
        Some(match s {
            "visitor" => KeyField::Visitor,
            "ip" => KeyField::Ip,
            "source" => KeyField::Source,
            "tenant" => KeyField::Tenant,
            "session" => KeyField::Session,
            "run" => KeyField::Run,
            "user" => KeyField::User,
            "workflow" => KeyField::Workflow,
            "tool" => KeyField::Tool,
            "service" => KeyField::Service,
            _ => match s.strip_prefix("args.") {
                Some(name) if !name.is_empty() => KeyField::Arg(s.to_string()),
                _ => return None,
            },
        })
    }

    /// The subject kind of records keyed by this field.
    pub fn kind(&self) -> &str {
        match self {
            KeyField::Visitor => "visitor",
            KeyField::Ip => "ip",
            KeyField::Source => "source",
            KeyField::Tenant => "tenant",
            KeyField::Session => "session",
            KeyField::Run => "run",
            KeyField::User => "user",
            KeyField::Workflow => "workflow",
            KeyField::Tool => "tool",
            KeyField::Service => "service",
            KeyField::Arg(kind) => kind,
        }
    }

    /// Whether events of `ty` carry this field.
    pub fn fits(&self, ty: EventType) -> bool {
        match self {
            KeyField::Tenant => true,
            KeyField::Visitor | KeyField::Ip | KeyField::Source => ty == EventType::Webhook,
            KeyField::Service => ty == EventType::Log,
            _ => ty == EventType::ToolCall,
        }
    }
}

/// What a fan-out rule counts distinct values per.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanoutPer {
    /// Per (tenant, run).
    Run,
    /// Per (tenant, session).
    Session,
}

/// A compiled rule's parameters, one variant per rule type.
#[derive(Clone, Debug)]
pub enum Params {
    /// `rate`: N per W of matching events per key.
    Rate {
        /// Event type read.
        events: EventType,
        /// Only this (normalised) route.
        route: Option<String>,
        /// Only this tool.
        tool: Option<String>,
        /// Counted per.
        key: KeyField,
        /// N.
        limit: u32,
        /// W.
        window_ms: i64,
    },
    /// `signature_failures`: N per W of `signature_valid: false` per (tenant, source).
    SignatureFailures {
        /// N.
        limit: u32,
        /// W.
        window_ms: i64,
    },
    /// `dup_flood`: N per W of one normalised text per visitor.
    DupFlood {
        /// N.
        limit: u32,
        /// W.
        window_ms: i64,
    },
    /// `replay`: a provider message id seen before within W.
    Replay {
        /// W.
        window_ms: i64,
    },
    /// `empty_text`: blank after normalisation.
    EmptyText,
    /// `too_long`: more characters than this.
    TooLong {
        /// Limit in Unicode scalar values.
        max_chars: u64,
    },
    /// `repeated_chars`: a letter or digit this many times in a row.
    RepeatedChars {
        /// Shortest run that fires.
        min_run: u64,
    },
    /// `spam_content`: a URL or a spam word.
    SpamContent {
        /// Words matched on word boundaries.
        phrases: Vec<String>,
    },
    /// `payment_redirect`: a payment-redirection phrase.
    PaymentRedirect {
        /// Phrases matched on word boundaries.
        phrases: Vec<String>,
    },
    /// `injection_phrase`: an injection phrase (alerts `prompt_injection`).
    Injection,
    /// `repeat_call`: the same call repeated within the session's recent calls.
    RepeatCall {
        /// Calls compared.
        history: usize,
        /// Earlier equal calls that fire.
        min_repeats: usize,
        /// Tools exempt from the rule.
        polling_tools: NameSet,
    },
    /// `consecutive_calls`: calls of one turn over the limit.
    ConsecutiveCalls {
        /// Calls allowed.
        limit: u32,
    },
    /// `calls_per_run`: calls of one run over the limit.
    CallsPerRun {
        /// Calls allowed.
        limit: u32,
    },
    /// `tool_cap`: calls of one tool in one run over the limit.
    ToolCap {
        /// The tool.
        tool: String,
        /// Calls allowed.
        limit: u32,
    },
    /// `slow_job`: a call too slow or retried too often.
    SlowJob {
        /// Longest acceptable duration.
        max_duration_ms: u64,
        /// Most acceptable retries.
        max_retries: u64,
    },
    /// `workflow_runs`: workflow runs started per user over N per W.
    WorkflowRuns {
        /// N.
        limit: u32,
        /// W.
        window_ms: i64,
    },
    /// `fanout`: distinct argument values per run or session over the limit.
    Fanout {
        /// Only this tool.
        tool: Option<String>,
        /// The argument counted.
        arg: String,
        /// Counted per.
        per: FanoutPer,
        /// Distinct values allowed.
        limit: u32,
        /// Window, or the whole run.
        window_ms: Option<i64>,
    },
    /// `consent_gate`: a gated tool called without `args.<arg>: true`.
    ConsentGate {
        /// Gated tools.
        tools: NameSet,
        /// The consent argument.
        arg: String,
    },
    /// `tool_allowlist`: a tool outside the tenant's list.
    ToolAllowlist {
        /// Tenant → allowed tools; tenants absent are not restricted.
        allowlists: BTreeMap<String, NameSet>,
    },
    /// `internal_target`: an argument reaching inside the network.
    InternalTarget,
    /// `file_secret`: an argument reaching the file system's secrets.
    FileSecret,
    /// `run_budget`: a run's summed cost or prompt tokens over budget.
    RunBudget {
        /// Cost budget in nano-dollars (exact sums).
        max_cost_nanos: i64,
        /// Prompt-token budget.
        max_tokens_in: u64,
    },
    /// `pii_leak`: a secret or PII finding.
    PiiLeak,
}

/// Subjects a rule never acts on. Built by [`Exempt::new`] and not changed
/// after: it remembers whether it is empty.
#[derive(Clone, Debug, Default)]
pub struct Exempt {
    /// Tenant ids.
    pub tenants: NameSet,
    /// Visitor ids.
    pub visitors: NameSet,
    /// IPs.
    pub ips: NameSet,
    /// Session ids.
    pub sessions: NameSet,
    /// Some list has an entry: asked for every rule on every event, so kept
    /// rather than recomputed from four sets.
    nonempty: bool,
}

impl Exempt {
    /// Exemptions from these lists.
    pub fn new(tenants: NameSet, visitors: NameSet, ips: NameSet, sessions: NameSet) -> Exempt {
        let nonempty = !(tenants.is_empty() && visitors.is_empty() && ips.is_empty() && sessions.is_empty());
        Exempt { tenants, visitors, ips, sessions, nonempty }
    }

    /// True when no list has an entry.
    pub fn is_empty(&self) -> bool {
        !self.nonempty
    }
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its index.
    pub id: RuleId,
    /// Its name (the `rule` field of outputs).
    pub name: String,
    /// Its detector.
    pub detector: DetectorKind,
    /// What it emits; `None` for alert-only rules.
    pub action: Option<Action>,
    /// Enforce or shadow.
    pub mode: Mode,
    /// Record TTL; 0 means one record per triggering event.
    pub ttl_ms: u64,
    /// Off rules are compiled (so `warden rules` shows them) but never run.
    pub enabled: bool,
    /// Rule-level exemptions (global ones are in [`Rules::exempt`]).
    pub exempt: Exempt,
    /// Type-specific parameters.
    pub params: Params,
}

/// The compiled rule set and engine settings.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Every rule, indexed by [`RuleId`].
    pub rules: Vec<Rule>,
    /// Global exemptions.
    pub exempt: Exempt,
    /// Allowed lateness (watermark = newest ts − this).
    pub lateness_ms: i64,
    /// How far ahead an event may be and still move the watermark.
    pub future_tolerance_ms: i64,
    /// Largest accepted input message.
    pub max_event_bytes: usize,
    /// The merged raw rules, for printing.
    pub effective: BTreeMap<String, RawRule>,
}

impl Rules {
    /// The built-in rules with default settings.
    pub fn defaults() -> Rules {
        match compile(&RulesConfig::default()) {
            Ok(r) => r,
            // The defaults are validated by a unit test; this cannot fail.
            Err(errors) => panic!("built-in rules do not compile: {errors:?}"),
        }
    }

    /// The rule with id `id`.
    pub fn get(&self, id: RuleId) -> &Rule {
        &self.rules[id.0 as usize]
    }

    /// The enabled rules, in id order.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// The rule named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// The merged rules as TOML (`warden rules`).
    pub fn to_toml(&self) -> String {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            rules: &'a BTreeMap<String, RawRule>,
        }
        toml::to_string(&Out { rules: &self.effective }).unwrap_or_default()
    }
}

/// Normalises a route for matching: ASCII-lowercased, without query or fragment,
/// without a trailing slash (`/Auth/Login/?next=/` → `/auth/login`).
pub fn normalize_route(route: &str) -> std::borrow::Cow<'_, str> {
    let end = route.find(['?', '#']).unwrap_or(route.len());
    let mut path = route[..end].trim();
    while path.len() > 1 && path.ends_with('/') {
        path = &path[..path.len() - 1];
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(path.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}
