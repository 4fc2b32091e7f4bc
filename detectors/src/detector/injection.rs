//! `injection`: prompt-injection phrases in chat texts.
//!
//! Flags the visitor (`injection_phrase`) and raises the tenant's `prompt_injection`
//! alert (P2). Matching is on normalised text: full-width, mixed-case, zero-width
//! split and oddly spaced variants match; `Dan` in ordinary text does not.

use warden_schemas::event::{Body, Event};

use super::{unless_screened, Cx, Out};
use crate::rules::{Params, RuleId, Rules};
use crate::text::{InjectionConfig, InjectionMatcher};
use crate::verdict::{AlertTrigger, Evidence, Signal, SubjectRef, Verdict};

/// The injection detector.
#[derive(Debug)]
pub struct Injection {
    rules: Vec<RuleId>,
    matcher: Option<InjectionMatcher>,
}

impl Injection {
    /// Compiles the enabled `injection_phrase` rules.
    pub fn new(rules: &Rules) -> Injection {
        let ids: Vec<RuleId> =
            rules.enabled().filter(|r| matches!(r.params, Params::Injection)).map(|r| r.id).collect();
        let matcher = if ids.is_empty() { None } else { InjectionMatcher::new(&InjectionConfig::defaults()).ok() };
        Injection { rules: ids, matcher }
    }

    /// The literals every hit contains, for the engine's [`Screen`](crate::text::Screen).
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.matcher.iter().flat_map(InjectionMatcher::literals)
    }

    /// Flags an injection phrase in the event's text; needs `cx.scratch.norm` (and
    /// `cx.scratch.may_hold_phrase`) filled.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let Body::Webhook(w) = &event.body else {
            return;
        };
        let (Some(matcher), true) = (&self.matcher, cx.scratch.has_norm) else {
            return;
        };
        let Some(tenant) = event.tenant else { return };
        let Some(hit) = unless_screened(cx.scratch.may_hold_phrase, || matcher.find(&cx.scratch.norm)) else {
            return;
        };
        for &id in &self.rules {
            if cx.is_exempt(rules.get(id), event) {
                continue;
            }
            out.push(Verdict {
                rule: id,
                subject: SubjectRef::new("visitor", w.visitor),
                evidence: Evidence::Phrase { matched: hit.label.to_string() },
                alert: Some(AlertTrigger {
                    signal: Signal::PromptInjection,
                    subject: SubjectRef::new("tenant", tenant),
                    sample: w.text,
                }),
            });
        }
    }
}
