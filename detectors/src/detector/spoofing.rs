//! `spoofing`: bursts of webhooks whose signature failed the gateway's HMAC check.
//!
//! Over N `signature_valid: false` webhooks per (tenant, source) in W raises the
//! `signature_failures` alert (P1) with the source as subject. It emits no decision:
//! a forged sender cannot be pinned to a visitor it chose itself.

use warden_schemas::event::{Body, Event};

use super::{planned_key, Cx, Out, Which};
use crate::rules::{Params, RuleId, Rules};
use crate::state::keys::KeyBuf;
use crate::verdict::{AlertTrigger, Evidence, Signal, SubjectRef, Verdict};

/// The spoofing detector.
#[derive(Debug, Default)]
pub struct Spoofing {
    rules: Vec<(RuleId, u32, i64)>,
}

impl Spoofing {
    /// Compiles the enabled `signature_failures` rules.
    pub fn new(rules: &Rules) -> Spoofing {
        let rules = rules
            .enabled()
            .filter_map(|r| match r.params {
                Params::SignatureFailures { limit, window_ms } => Some((r.id, limit, window_ms)),
                _ => None,
            })
            .collect();
        Spoofing { rules }
    }

    /// Adds the keys [`Spoofing::observe`] will look up to the event's [`Plan`](super::Plan).
    pub fn plan(&self, rules: &Rules, event: &Event<'_>, cx: &mut Cx<'_>) {
        let Body::Webhook(w) = &event.body else {
            return;
        };
        if w.signature_valid != Some(false) {
            return;
        }
        for &(id, ..) in &self.rules {
            if !cx.is_exempt(rules.get(id), event) {
                source_key(&mut cx.scratch.key, id, event, w.source);
                cx.scratch.plan.push(Which::Windows, &cx.scratch.key);
            }
        }
    }

    /// Counts a failed signature; fires while the count is over N.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let Body::Webhook(w) = &event.body else {
            return;
        };
        if w.signature_valid != Some(false) {
            return;
        }
        for &(id, limit, window_ms) in &self.rules {
            if cx.is_exempt(rules.get(id), event) {
                continue;
            }
            let key = planned_key(&mut cx.scratch.plan, &mut cx.scratch.key, Which::Windows, id, |k| {
                source_key(k, id, event, w.source);
            });
            let mut entry = cx.tables.windows.entry(&key, Default::default);
            let count = entry.value().observe(event.ts, limit, window_ms);
            let newest = entry.value().newest().unwrap_or(event.ts);
            entry.keep_until(newest + window_ms + cx.lateness_ms);
            if count > u64::from(limit) {
                let subject = SubjectRef::new("source", w.source);
                out.push(Verdict {
                    rule: id,
                    subject: subject.clone(),
                    evidence: Evidence::Window { count, limit, window_ms },
                    alert: Some(AlertTrigger { signal: Signal::SignatureFailures, subject, sample: w.text }),
                });
            }
        }
    }
}

/// The key a source's failures are counted under; plan and lookup build it here alike.
fn source_key(k: &mut KeyBuf, id: RuleId, event: &Event<'_>, source: &str) {
    k.start(id, event.tenant).part(source);
}
