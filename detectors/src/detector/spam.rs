//! `spam`: shapes and contents of chat texts that are not conversation.
//!
//! Five independent rules over a webhook's `text` (a long text full of repeated
//! letters gets both blocks): `empty_text` (blank after normalisation; an event
//! without `text` is not checked), `too_long` (raw length in Unicode scalar values),
//! `repeated_chars` (one letter or digit N times in a row, punctuation runs exempt),
//! `spam_content` (a URL or a spam word) and `payment_redirect` (a payment-redirection
//! phrase). Words match on word boundaries of the normalised text.

use warden_schemas::event::{Body, Event};

use super::{unless_screened, Cx, Out};
use crate::rules::{Params, RuleId, Rules};
use crate::text::{self, PhraseSet};
use crate::verdict::{Evidence, SubjectRef, Verdict};

#[derive(Debug)]
enum Check {
    Empty,
    TooLong(u64),
    Repeated(u64),
    Content(PhraseSet),
    Payment(PhraseSet),
}

/// The spam detector.
#[derive(Debug, Default)]
pub struct Spam {
    rules: Vec<(RuleId, Check)>,
}

impl Spam {
    /// Compiles the enabled spam rules (phrases were validated by `rules::compile`).
    pub fn new(rules: &Rules) -> Spam {
        let rules = rules
            .enabled()
            .filter_map(|r| {
                let check = match &r.params {
                    Params::EmptyText => Check::Empty,
                    Params::TooLong { max_chars } => Check::TooLong(*max_chars),
                    Params::RepeatedChars { min_run } => Check::Repeated(*min_run),
                    Params::SpamContent { phrases } => Check::Content(PhraseSet::new(phrases).ok()?),
                    Params::PaymentRedirect { phrases } => Check::Payment(PhraseSet::new(phrases).ok()?),
                    _ => return None,
                };
                Some((r.id, check))
            })
            .collect();
        Spam { rules }
    }

    /// The literals of the phrase rules, for the engine's [`Screen`](crate::text::Screen).
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|(_, check)| match check {
                Check::Content(set) | Check::Payment(set) => Some(set.literals()),
                _ => None,
            })
            .flatten()
    }

    /// Runs every spam rule on the event's text; needs `cx.scratch.norm` (and
    /// `cx.scratch.may_hold_phrase`) filled.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let Body::Webhook(w) = &event.body else {
            return;
        };
        let Some(raw) = w.text else { return };
        if !cx.scratch.has_norm {
            return;
        }
        let (norm, may_match) = (&cx.scratch.norm, cx.scratch.may_hold_phrase);
        let find = |set: &PhraseSet| unless_screened(may_match, || set.find(norm));
        for (id, check) in &self.rules {
            let evidence = match check {
                Check::Empty => norm.as_str().is_empty().then_some(Evidence::Blank),
                Check::TooLong(max) => {
                    // Bytes bound chars from above: most texts skip the count.
                    let chars = if raw.len() as u64 <= *max { 0 } else { raw.chars().count() as u64 };
                    (chars > *max).then_some(Evidence::Length { chars, max_chars: *max })
                }
                Check::Repeated(min) => {
                    let min_run = *min;
                    let reach = usize::try_from(min_run).unwrap_or(usize::MAX);
                    text::letter_run_reaching(norm, reach).map(|run| Evidence::RepeatedRun { run: run as u64, min_run })
                }
                Check::Content(words) => {
                    if text::has_url(norm) {
                        Some(Evidence::Url)
                    } else {
                        find(words).map(|m| Evidence::Phrase { matched: words.phrase(m.index).to_string() })
                    }
                }
                Check::Payment(phrases) => {
                    find(phrases).map(|m| Evidence::Phrase { matched: phrases.phrase(m.index).to_string() })
                }
            };
            if let Some(evidence) = evidence {
                if cx.is_exempt(rules.get(*id), event) {
                    continue;
                }
                out.push(Verdict { rule: *id, subject: SubjectRef::new("visitor", w.visitor), evidence, alert: None });
            }
        }
    }
}
