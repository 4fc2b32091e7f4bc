//! `replay`: a provider message id delivered again.
//!
//! Per (tenant, source, provider_message_id) it keeps the first sighting; a later
//! delivery within W of it (24 h by default) is a replay, decided on subject kind
//! `message`. The entry is evicted W after its first sighting, so memory holds one
//! day of ids (design §6). An empty or blank id counts as no id.
//!
//! Like every table, the replay table holds a 128-bit digest of the key (tenant,
//! source, id), not the id: provider ids run to 60 bytes and more (WhatsApp's
//! `wamid.…`), and a day of them is most of a busy partition's keys. Two ids are
//! told apart unless their digests collide (see [`crate::state::keys::StateKey`]).

use warden_schemas::event::{Body, Event, Webhook};

use super::{planned_key, Cx, Out, Which};
use crate::rules::{Params, RuleId, Rules};
use crate::state::keys::KeyBuf;
use crate::verdict::{Evidence, SubjectRef, Verdict};

/// The replay detector.
#[derive(Debug, Default)]
pub struct Replay {
    rules: Vec<(RuleId, i64)>,
}

impl Replay {
    /// Compiles the enabled `replay` rules.
    pub fn new(rules: &Rules) -> Replay {
        let rules = rules
            .enabled()
            .filter_map(|r| match r.params {
                Params::Replay { window_ms } => Some((r.id, window_ms)),
                _ => None,
            })
            .collect();
        Replay { rules }
    }

    /// Adds the keys [`Replay::observe`] will look up to the event's [`Plan`](super::Plan).
    pub fn plan(&self, rules: &Rules, event: &Event<'_>, cx: &mut Cx<'_>) {
        let Body::Webhook(w) = &event.body else {
            return;
        };
        let Some(pmid) = message_id(w) else {
            return;
        };
        for &(id, _) in &self.rules {
            if !cx.is_exempt(rules.get(id), event) {
                message_key(&mut cx.scratch.key, id, event, w.source, pmid);
                cx.scratch.plan.push(Which::Replay, &cx.scratch.key);
            }
        }
    }

    /// Fires when the event's message id was first seen less than W away.
    pub fn observe<'a>(&'a self, rules: &Rules, event: &'a Event<'a>, cx: &mut Cx<'_>, out: Out<'_, 'a>) {
        let Body::Webhook(w) = &event.body else {
            return;
        };
        let Some(pmid) = message_id(w) else {
            return;
        };
        for &(id, window_ms) in &self.rules {
            if cx.is_exempt(rules.get(id), event) {
                continue;
            }
            // The table holds a 128-bit digest of the key, however long the id.
            let key = planned_key(&mut cx.scratch.plan, &mut cx.scratch.key, Which::Replay, id, |k| {
                message_key(k, id, event, w.source, pmid);
            });
            // One probe: the entry tells whether this is the first sighting.
            let mut entry = cx.tables.replay.entry(&key, || event.ts);
            let first = *entry.value();
            if !entry.is_fresh() && (event.ts - first).abs() < window_ms {
                out.push(Verdict {
                    rule: id,
                    subject: SubjectRef::new("message", pmid),
                    evidence: Evidence::Replay { first_seen: first, window_ms },
                    alert: None,
                });
            } else {
                // New, or first seen longer ago than W: this delivery is the first sighting.
                *entry.value() = event.ts;
                entry.set_evict_at(event.ts + window_ms);
            }
        }
    }
}

/// The key a message id is remembered under; plan and lookup build it here alike.
/// The event's provider message id; an empty (or blank) one is none: a gateway
/// that sends `""` for "no id" would otherwise have every message after its
/// first dropped as a replay of it.
fn message_id<'w>(w: &'w Webhook<'_>) -> Option<&'w str> {
    w.provider_message_id.as_deref().filter(|id| !id.trim().is_empty())
}

fn message_key(k: &mut KeyBuf, id: RuleId, event: &Event<'_>, source: &str, pmid: &str) {
    k.start(id, event.tenant).part(source).part(pmid);
}
