//! [`Verdict`]: a rule fired on an event. The decide step turns verdicts into records.
//!
//! Evidence is typed and holds no clear-text secret or PII: findings carry only a
//! kind, a field path, a masked preview and a keyed fingerprint. It becomes JSON only
//! for the records that are emitted.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use crate::rules::RuleId;
use crate::EventTime;
use warden_schemas::Severity;

/// Whom a verdict concerns, borrowed from the event and the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectRef<'a> {
    /// Subject kind (`visitor`, `args.vendor_phone`, ...).
    pub kind: &'a str,
    /// Raw id from the event.
    pub id: Cow<'a, str>,
}

impl<'a> SubjectRef<'a> {
    /// A subject of `kind` with `id`.
    pub fn new(kind: &'a str, id: impl Into<Cow<'a, str>>) -> Self {
        SubjectRef { kind, id: id.into() }
    }
}

/// An incident signal (design §4, Signals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// An injection phrase in a webhook text.
    PromptInjection,
    /// A burst of webhooks failing signature checks.
    SignatureFailures,
    /// A secret in a log event.
    SecretInLogs,
    /// PII (and no secret) in a log event.
    PiiInLogs,
}

impl Signal {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::PromptInjection => "prompt_injection",
            Signal::SignatureFailures => "signature_failures",
            Signal::SecretInLogs => "secret_in_logs",
            Signal::PiiInLogs => "pii_in_logs",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Every signal.
    pub const ALL: [Signal; 4] =
        [Signal::PromptInjection, Signal::SignatureFailures, Signal::SecretInLogs, Signal::PiiInLogs];

    /// Its severity.
    pub fn severity(self) -> Severity {
        match self {
            Signal::PromptInjection => Severity::P2,
            Signal::SignatureFailures => Severity::P1,
            Signal::SecretInLogs => Severity::P0,
            Signal::PiiInLogs => Severity::P1,
        }
    }
}

/// A verdict's request for an alert.
#[derive(Clone, Debug)]
pub struct AlertTrigger<'a> {
    /// Which signal.
    pub signal: Signal,
    /// Aggregation subject (tenant, source or service).
    pub subject: SubjectRef<'a>,
    /// The triggering text, redacted by the decide step before it is shown.
    pub sample: Option<&'a str>,
}

/// One secret or PII finding, safe to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Kind name (`aws_key`, `email`, ...).
    pub kind: &'static str,
    /// Where: `message`, `fields.user.email`, `args.prompt`, `text`.
    pub path: String,
    /// Masked preview, never the value.
    pub preview: String,
    /// HMAC-SHA-256 under `WARDEN_HMAC_KEY`, when one is configured.
    pub fingerprint: Option<String>,
}

/// What a rule saw when it fired.
#[derive(Clone, Debug, PartialEq)]
pub enum Evidence {
    /// N per W: `count` events in `window_ms`, over `limit`.
    Window {
        /// 1 + kept timestamps in the window (at most limit + 1).
        count: u64,
        /// N.
        limit: u32,
        /// W.
        window_ms: i64,
    },
    /// Distinct argument values over a limit.
    Distinct {
        /// Distinct values seen (at most limit + 1).
        count: u64,
        /// Allowed.
        limit: u32,
        /// Window, or none for the whole run.
        window_ms: Option<i64>,
        /// The argument path.
        arg: String,
    },
    /// Calls of a turn / run / tool over a cap.
    Calls {
        /// This call's number.
        count: u64,
        /// Allowed.
        limit: u32,
        /// `turn`, `run`, or the tool name.
        scope: String,
    },
    /// A provider message id seen before.
    Replay {
        /// When it was first seen.
        first_seen: EventTime,
        /// Replay window.
        window_ms: i64,
    },
    /// A text over the length limit.
    Length {
        /// Characters.
        chars: u64,
        /// Limit.
        max_chars: u64,
    },
    /// A run of one letter or digit.
    RepeatedRun {
        /// Run length.
        run: u64,
        /// Shortest run that fires.
        min_run: u64,
    },
    /// Blank after normalisation.
    Blank,
    /// A phrase or word matched.
    Phrase {
        /// The configured phrase (or pattern label) that matched.
        matched: String,
    },
    /// A URL in a chat text.
    Url,
    /// A call repeated among the session's recent calls.
    Repeat {
        /// Earlier equal calls.
        repeats: usize,
        /// Calls compared.
        history: usize,
        /// The tool.
        tool: String,
    },
    /// A slow or much-retried call.
    Slow {
        /// Its duration, when over the limit.
        duration_ms: Option<f64>,
        /// Its retries, when over the limit.
        retries: Option<f64>,
        /// Limits.
        max_duration_ms: u64,
        /// Limits.
        max_retries: u64,
    },
    /// A consent-gated tool without consent.
    Consent {
        /// The tool.
        tool: String,
        /// The consent argument.
        arg: String,
    },
    /// A tool outside the tenant's allowlist.
    Allowlist {
        /// The tool.
        tool: String,
    },
    /// An argument reaching inside the network or at file-system secrets.
    Target {
        /// Argument path (`args.url`), never its value.
        path: String,
        /// What it reaches, as a label (`loopback`, `dot_env`).
        class: &'static str,
        /// ... and as a phrase (`loopback address`, `.env file`).
        phrase: &'static str,
    },
    /// A run over its budget.
    Budget {
        /// Summed cost.
        cost_usd: f64,
        /// Summed prompt tokens.
        tokens_in: u64,
        /// Budget.
        max_cost_usd: f64,
        /// Budget.
        max_tokens_in: u64,
    },
    /// Secret / PII findings.
    Findings(Vec<Finding>),
}

impl Evidence {
    /// The evidence as the JSON object of a decision's `evidence`.
    pub fn to_json(&self) -> Value {
        match self {
            Evidence::Window { count, limit, window_ms } => {
                json!({"count": count, "limit": limit, "window_ms": window_ms})
            }
            Evidence::Distinct { count, limit, window_ms, arg } => {
                let mut v = json!({"distinct": count, "count": count, "limit": limit, "arg": arg});
                if let Some(w) = window_ms {
                    v["window_ms"] = (*w).into();
                }
                v
            }
            Evidence::Calls { count, limit, scope } => json!({"count": count, "limit": limit, "scope": scope}),
            Evidence::Replay { first_seen, window_ms } => json!({"first_seen": first_seen, "window_ms": window_ms}),
            Evidence::Length { chars, max_chars } => {
                json!({"chars": chars, "max_chars": max_chars})
            }
            Evidence::RepeatedRun { run, min_run } => json!({"run": run, "min_run": min_run}),
            Evidence::Blank => json!({"blank": true}),
            Evidence::Phrase { matched } => json!({"matched": matched}),
            Evidence::Url => json!({"url": true}),
            Evidence::Repeat { repeats, history, tool } => {
                json!({"repeats": repeats, "history": history, "tool": tool})
            }
            Evidence::Slow { duration_ms, retries, max_duration_ms, max_retries } => {
                let mut m = Map::new();
                if let Some(d) = duration_ms {
                    m.insert("duration_ms".into(), number(*d));
                }
                if let Some(r) = retries {
                    m.insert("retries".into(), number(*r));
                }
                m.insert("max_duration_ms".into(), (*max_duration_ms).into());
                m.insert("max_retries".into(), (*max_retries).into());
                Value::Object(m)
            }
            Evidence::Consent { tool, arg } => json!({"tool": tool, "arg": arg}),
            Evidence::Allowlist { tool } => json!({"tool": tool}),
            Evidence::Target { path, class, .. } => json!({"arg": path, "reaches": class}),
            Evidence::Budget { cost_usd, tokens_in, max_cost_usd, max_tokens_in } => json!({
                "cost_usd": number(*cost_usd), "tokens_in": tokens_in,
                "max_cost_usd": number(*max_cost_usd), "max_tokens_in": max_tokens_in,
            }),
            Evidence::Findings(findings) => {
                let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
                kinds.sort_unstable();
                kinds.dedup();
                let list: Vec<Value> = findings
                    .iter()
                    .map(|f| {
                        let mut m = Map::new();
                        m.insert("kind".into(), f.kind.into());
                        m.insert("path".into(), f.path.clone().into());
                        m.insert("preview".into(), f.preview.clone().into());
                        if let Some(fp) = &f.fingerprint {
                            m.insert("fingerprint".into(), fp.clone().into());
                        }
                        Value::Object(m)
                    })
                    .collect();
                json!({"kinds": kinds, "findings": list})
            }
        }
    }

    /// A readable clause for the record's `reason` ("31 events in 60 s, over the limit of 30").
    pub fn describe(&self) -> String {
        match self {
            Evidence::Window { count, limit, window_ms } => {
                format!("{count} events in {}, over the limit of {limit}", span(*window_ms))
            }
            Evidence::Distinct { count, limit, window_ms, arg } => match window_ms {
                Some(w) => format!("{count} distinct {arg} values in {}, over the limit of {limit}", span(*w)),
                None => {
                    format!("{count} distinct {arg} values in one run, over the limit of {limit}")
                }
            },
            Evidence::Calls { count, limit, scope } => format!("call {count} of one {scope}, over the cap of {limit}"),
            Evidence::Replay { window_ms, .. } => {
                format!("message id already seen within {}", span(*window_ms))
            }
            Evidence::Length { chars, max_chars } => {
                format!("text of {chars} characters, over {max_chars}")
            }
            Evidence::RepeatedRun { run, .. } => {
                format!("one character repeated {run} times in a row")
            }
            Evidence::Blank => "blank text".into(),
            Evidence::Phrase { matched } => format!("text matches \"{matched}\""),
            Evidence::Url => "text contains a link".into(),
            Evidence::Repeat { repeats, history, tool } => {
                format!(
                    "`{tool}` called with the same arguments {repeats} times among the last {history} calls, and again"
                )
            }
            Evidence::Slow { duration_ms, retries, .. } => match (duration_ms, retries) {
                // `{d}` would spell out every digit of a value like 1e300.
                (Some(d), _) if d.abs() >= 1e15 => format!("call ran {d:e} ms"),
                (Some(d), _) => format!("call ran {d} ms"),
                (None, Some(r)) => format!("call retried {r} times"),
                (None, None) => "job ran too long".into(),
            },
            Evidence::Consent { tool, arg } => {
                format!("`{tool}` called without `args.{arg}: true`")
            }
            Evidence::Allowlist { tool } => {
                format!("`{tool}` is not on the tenant's tool allowlist")
            }
            Evidence::Target { path, phrase, .. } => {
                // "an internal host name", "a unique local address".
                let an = phrase.starts_with(['a', 'e', 'i', 'o', 'u']) && !phrase.starts_with("uni");
                format!("`{path}` reaches {} {phrase}", if an { "an" } else { "a" })
            }
            Evidence::Budget { cost_usd, tokens_in, .. } => {
                format!("run spent ${cost_usd:.4} and {tokens_in} prompt tokens, over budget")
            }
            Evidence::Findings(findings) => {
                let mut kinds: Vec<&str> = findings.iter().map(|f| f.kind).collect();
                kinds.sort_unstable();
                kinds.dedup();
                format!("found {}", kinds.join(", "))
            }
        }
    }
}

/// Human duration: `60 s`, `15 min`, `24 h`, `1500 ms`.
fn span(ms: i64) -> String {
    if ms % 3_600_000 == 0 {
        format!("{} h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms % 1_000 == 0 {
        format!("{} s", ms / 1_000)
    } else {
        format!("{ms} ms")
    }
}

/// One rule firing on one event.
#[derive(Clone, Debug)]
pub struct Verdict<'a> {
    /// The rule.
    pub rule: RuleId,
    /// Whom the record is about.
    pub subject: SubjectRef<'a>,
    /// Why.
    pub evidence: Evidence,
    /// An alert to aggregate, for rules that raise one.
    pub alert: Option<AlertTrigger<'a>>,
}

/// A number as RFC 8785 writes it: an integral value without a fraction (`95000`,
/// not `95000.0`), so evidence reads the same as the input's own numbers.
fn number(x: f64) -> Value {
    // 2^53: beyond it not every integer is a double, and a cast could round.
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(60_000), "1 min");
        assert_eq!(span(10_000), "10 s");
        assert_eq!(span(86_400_000), "24 h");
        assert_eq!(span(1_500), "1500 ms");
    }

    #[test]
    fn a_huge_duration_reads_in_a_few_characters() {
        let slow = |d| Evidence::Slow { duration_ms: Some(d), retries: None, max_duration_ms: 60_000, max_retries: 3 };
        assert_eq!(slow(75_000.0).describe(), "call ran 75000 ms");
        assert_eq!(slow(1e301).describe(), "call ran 1e301 ms");
    }

    #[test]
    fn evidence_numbers_are_written_as_rfc_8785_and_absent_facts_left_out() {
        let slow =
            Evidence::Slow { duration_ms: Some(95_000.0), retries: None, max_duration_ms: 60_000, max_retries: 3 };
        assert_eq!(slow.to_json(), json!({"duration_ms": 95000, "max_duration_ms": 60000, "max_retries": 3}));
        assert!(slow.to_json()["duration_ms"].is_i64(), "95000, not 95000.0");
        let budget = Evidence::Budget { cost_usd: 1.25, tokens_in: 10, max_cost_usd: 1.0, max_tokens_in: 5 };
        let want = json!({"cost_usd": 1.25, "max_cost_usd": 1, "max_tokens_in": 5, "tokens_in": 10});
        assert_eq!(budget.to_json(), want);
        assert!(budget.to_json()["max_cost_usd"].is_i64(), "1, not 1.0");
        let fanout = Evidence::Distinct { count: 4, limit: 3, window_ms: None, arg: "vendor_phone".into() };
        assert!(fanout.to_json().get("window_ms").is_none());
        assert_eq!(number(1e300), Value::from(1e300));
    }

    #[test]
    fn findings_list_sorted_kinds_and_no_values() {
        let e = Evidence::Findings(vec![
            Finding { kind: "email", path: "message".into(), preview: "m***@example.com".into(), fingerprint: None },
            Finding {
                kind: "aws_key",
                path: "message".into(),
                preview: "AKI…MPLE".into(),
                fingerprint: Some("ab".into()),
            },
        ]);
        let j = e.to_json();
        assert_eq!(j["kinds"], json!(["aws_key", "email"]));
        assert_eq!(j["findings"][1]["fingerprint"], "ab");
    }
}
