//! `pii`: secrets and personal data where they should not be.
//!
//! Where (design §5): log `message` and `fields` — every kind (logs must hold no
//! PII); tool-call `args` and webhook `text` — secrets, payment cards and SSNs only,
//! since an email or phone number is ordinary data there. Mistyped fields are still
//! scanned. Findings carry kind, field path, masked preview and, with
//! `WARDEN_HMAC_KEY`, an HMAC fingerprint — never the value. Log findings also raise
//! `secret_in_logs` (P0) or `pii_in_logs` (P1) for the service.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use warden_schemas::event::{Body, Event};
use warden_schemas::json::Value;

use super::{Cx, Out};
use crate::pii::{mask, redact, PiiKind, PiiMatch, PiiScanner, Scope};
use crate::rules::{Params, RuleId, Rules};
use crate::verdict::{AlertTrigger, Evidence, Finding, Signal, SubjectRef, Verdict};

/// At most this many findings per event are listed in evidence.
const MAX_FINDINGS: usize = 16;

/// The PII detector.
pub struct Pii {
    rules: Vec<RuleId>,
    scanner: &'static PiiScanner,
    hmac_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in debug output.
        f.debug_struct("Pii")
            .field("rules", &self.rules)
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `path`, emptied and set to `root`: the start of a field path for findings.
fn rooted<'a>(path: &'a mut String, root: &str) -> &'a mut String {
    path.clear();
    path.push_str(root);
    path
}

impl Pii {
    /// Compiles the enabled `pii_leak` rules; `hmac_key` keys fingerprints.
    pub fn new(rules: &Rules, hmac_key: Option<Vec<u8>>) -> Pii {
        let ids = rules.enabled().filter(|r| matches!(r.params, Params::PiiLeak)).map(|r| r.id).collect();
        Pii { rules: ids, scanner: PiiScanner::shared(), hmac_key }
    }

    /// The shared scanner (the decide step redacts alert samples with it).
    pub fn scanner(&self) -> &PiiScanner {
        self.scanner
    }

    /// Scans the event's fields for findings.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        if self.rules.is_empty() {
            return;
        }
        let mut findings = Vec::new();
        // The field path under construction, in a buffer kept across events.
        let path = &mut cx.scratch.path;
        let (subject, is_log, sample) = match &event.body {
            Body::Log(l) => {
                self.scan_text(l.message, "message", Scope::ALL, &mut findings);
                if let Some(fields) = event.raw_fields {
                    self.scan_value(fields, rooted(path, "fields"), Scope::ALL, &mut findings);
                }
                (SubjectRef::new("service", l.service), true, Some(l.message))
            }
            Body::ToolCall(tc) => {
                match (&tc.args, event.raw_args) {
                    (Some(args), _) => {
                        let path = rooted(path, "args");
                        for (k, v) in args.object().iter() {
                            let len = path.len();
                            self.push_key(k, path, Scope::SECRETS_CARDS_SSN, &mut findings);
                            self.scan_value(v, path, Scope::SECRETS_CARDS_SSN, &mut findings);
                            path.truncate(len);
                        }
                    }
                    (None, Some(raw)) => {
                        self.scan_value(raw, rooted(path, "args"), Scope::SECRETS_CARDS_SSN, &mut findings)
                    }
                    (None, None) => {}
                }
                (SubjectRef::new("session", tc.session), false, None)
            }
            Body::Webhook(w) => {
                if let Some(text) = event.raw_text {
                    self.scan_value(text, rooted(path, "text"), Scope::SECRETS_CARDS_SSN, &mut findings);
                }
                (SubjectRef::new("visitor", w.visitor), false, None)
            }
        };
        // Design §3: a mistyped optional field is not read, but its strings are
        // still scanned (`"ip": {"note": "AKIA…"}`); text, args and fields were.
        if !event.field_errors.is_empty() {
            let scope = if is_log { Scope::ALL } else { Scope::SECRETS_CARDS_SSN };
            for name in event.field_errors.iter().filter(|n| !matches!(*n, "text" | "args" | "fields")) {
                if let Some(v) = event.object.get(name) {
                    self.scan_value(v, rooted(&mut cx.scratch.path, name), scope, &mut findings);
                }
            }
        }
        if findings.is_empty() {
            return;
        }
        let any_secret = findings.iter().any(|(secret, _)| *secret);
        let findings: Vec<Finding> = findings.into_iter().map(|(_, f)| f).collect();
        for &id in &self.rules {
            if cx.is_exempt(rules.get(id), event) {
                continue;
            }
            let alert = is_log.then(|| AlertTrigger {
                signal: if any_secret { Signal::SecretInLogs } else { Signal::PiiInLogs },
                subject: subject.clone(),
                sample,
            });
            out.push(Verdict {
                rule: id,
                subject: subject.clone(),
                evidence: Evidence::Findings(findings.clone()),
                alert,
            });
        }
    }

    fn scan_value(&self, v: &Value<'_>, path: &mut String, scope: Scope, out: &mut Vec<(bool, Finding)>) {
        match v {
            Value::String(s) => self.scan_text(s, path, scope, out),
            Value::Number(n) => self.scan_text(n.as_str(), path, scope, out),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    // Written in place: `format!` would allocate per item.
                    let _ = write!(path, "[{i}]");
                    self.scan_value(item, path, scope, out);
                    path.truncate(len);
                }
            }
            Value::Object(o) => {
                for (k, item) in o.iter() {
                    let len = path.len();
                    self.push_key(k, path, scope, out);
                    self.scan_value(item, path, scope, out);
                    path.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }

    /// Appends `.key` to `path`. A key can hold a secret or personal data as well as
    /// a value can (`{"AKIA…": 1}`), and the path is emitted: what the key holds is
    /// reported as a finding at the key's own path, and redacted in the path.
    fn push_key(&self, key: &str, path: &mut String, scope: Scope, out: &mut Vec<(bool, Finding)>) {
        path.push('.');
        let mut matches: Vec<PiiMatch> = Vec::new();
        self.scanner.scan(key, scope, &mut matches);
        if matches.is_empty() {
            path.push_str(key);
            return;
        }
        path.push_str(&redact(key, &matches));
        self.report(key, &matches, path, out);
    }

    fn scan_text(&self, text: &str, path: &str, scope: Scope, out: &mut Vec<(bool, Finding)>) {
        let mut matches: Vec<PiiMatch> = Vec::new();
        self.scanner.scan(text, scope, &mut matches);
        self.report(text, &matches, path, out);
    }

    /// Lists `matches` of `text` (found at `path`) as findings, up to [`MAX_FINDINGS`].
    fn report(&self, text: &str, matches: &[PiiMatch], path: &str, out: &mut Vec<(bool, Finding)>) {
        for m in matches {
            if out.len() >= MAX_FINDINGS {
                // The list is full, but a first secret still outranks the last
                // personal finding: it makes a log's alert P0 (`secret_in_logs`).
                if !m.kind.is_secret() || out.iter().any(|(secret, _)| *secret) {
                    continue;
                }
                out.pop();
            }
            let Some(value) = text.get(m.start..m.end) else {
                continue;
            };
            out.push((
                m.kind.is_secret(),
                Finding {
                    kind: m.kind.name(),
                    path: path.to_string(),
                    preview: mask(m.kind, value),
                    fingerprint: self.fingerprint(m.kind, value),
                },
            ));
        }
    }

    /// HMAC-SHA-256 of the value under the configured key, hex; none without a key
    /// (an unkeyed hash of an SSN or card number is reversible). A disguised or
    /// differently separated value fingerprints as the plain one
    /// ([`crate::pii::fingerprint_form`]).
    fn fingerprint(&self, kind: PiiKind, value: &str) -> Option<String> {
        let key = self.hmac_key.as_ref()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
        mac.update(crate::pii::fingerprint_form(kind, value).as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }
}
