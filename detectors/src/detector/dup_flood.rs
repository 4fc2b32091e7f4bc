//! `dup_flood`: the same normalised text from one visitor over and over.
//!
//! Texts are compared after normalisation (NFKC, case folding, format characters
//! removed, whitespace collapsed), so `FREE  iPhone` and `free iphone` are one text.
//! Each (tenant, visitor, text) is a sliding window; like every table key, the
//! text is held as part of a 128-bit digest under the deployment's secret (see
//! [`crate::state::keys::StateKey`]), never in full. The default fires on the
//! third identical text within 10 s.

use warden_schemas::event::{Body, Event};

use super::{planned_key, Cx, Out, Which};
use crate::rules::{Params, RuleId, Rules};
use crate::state::keys::KeyBuf;
use crate::verdict::{Evidence, SubjectRef, Verdict};

/// The duplicate-flood detector.
#[derive(Debug, Default)]
pub struct DupFlood {
    rules: Vec<(RuleId, u32, i64)>,
}

impl DupFlood {
    /// Compiles the enabled `dup_flood` rules.
    pub fn new(rules: &Rules) -> DupFlood {
        let rules = rules
            .enabled()
            .filter_map(|r| match r.params {
                Params::DupFlood { limit, window_ms } => Some((r.id, limit, window_ms)),
                _ => None,
            })
            .collect();
        DupFlood { rules }
    }

    /// Adds the keys [`DupFlood::observe`] will look up to the event's [`Plan`](super::Plan).
    pub fn plan(&self, rules: &Rules, event: &Event<'_>, cx: &mut Cx<'_>) {
        let Body::Webhook(w) = &event.body else {
            return;
        };
        if !cx.scratch.has_norm || cx.scratch.norm.as_str().is_empty() {
            return;
        }
        for &(id, ..) in &self.rules {
            if !cx.is_exempt(rules.get(id), event) {
                text_key(&mut cx.scratch.key, id, event, w.visitor, cx.scratch.norm.as_str());
                cx.scratch.plan.push(Which::Windows, &cx.scratch.key);
            }
        }
    }

    /// Counts the event's normalised text; needs `cx.scratch.norm` filled.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let Body::Webhook(w) = &event.body else {
            return;
        };
        if !cx.scratch.has_norm || cx.scratch.norm.as_str().is_empty() {
            return;
        }
        for &(id, limit, window_ms) in &self.rules {
            if cx.is_exempt(rules.get(id), event) {
                continue;
            }
            let norm = cx.scratch.norm.as_str();
            let key = planned_key(&mut cx.scratch.plan, &mut cx.scratch.key, Which::Windows, id, |k| {
                text_key(k, id, event, w.visitor, norm);
            });
            let mut entry = cx.tables.windows.entry(&key, Default::default);
            let count = entry.value().observe(event.ts, limit, window_ms);
            let newest = entry.value().newest().unwrap_or(event.ts);
            entry.keep_until(newest + window_ms + cx.lateness_ms);
            if count > u64::from(limit) {
                out.push(Verdict {
                    rule: id,
                    subject: SubjectRef::new("visitor", w.visitor),
                    evidence: Evidence::Window { count, limit, window_ms },
                    alert: None,
                });
            }
        }
    }
}

/// The key a visitor's text is counted under; plan and lookup build it here alike.
/// The text goes into the key's digest directly: a separate unkeyed hash of it
/// would let texts be made to collide offline.
fn text_key(k: &mut KeyBuf, id: RuleId, event: &Event<'_>, visitor: &str, norm: &str) {
    k.start(id, event.tenant).part(visitor).part(norm);
}
