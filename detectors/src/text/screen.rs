//! One pass that clears most texts of every phrase search at once.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::Normalized;

/// The literals that the engine's phrase searches need present, in one automaton.
///
/// Every match of a phrase set contains one of its phrases, and every match of
/// the injection pattern starts with one of its verbs; so a text holding none of
/// the literals gathered here matches nothing, and the searches are skipped. Most
/// texts hold none, and one vectorised pass over the text replaces a pass per
/// phrase set. Soundness needs only that each search hands over *all* of its
/// literals, exactly as it matches them (see the `literals` methods).
#[derive(Debug, Clone)]
pub struct Screen {
    gate: Gate,
}

#[derive(Debug, Clone)]
enum Gate {
    /// No search is enabled: nothing can match.
    Nothing,
    /// A text may match only if it holds one of these literals.
    Literals(AhoCorasick),
    /// The literals did not compile into one automaton: every text goes to the
    /// searches (slower, never wrong).
    Everything,
}

impl Screen {
    /// Compiles the literals (duplicates and overlaps are fine).
    pub fn new<I, S>(literals: I) -> Screen
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let list: Vec<S> = literals.into_iter().collect();
        if list.is_empty() {
            return Screen { gate: Gate::Nothing };
        }
        // Leftmost-first is the kind the crate gives its Teddy prefilter; a
        // screen only asks whether anything occurs, which any kind answers alike.
        let gate = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&list)
            .map_or(Gate::Everything, Gate::Literals);
        Screen { gate }
    }

    /// False when `text` holds none of the literals, so no phrase search can match it.
    pub fn may_match(&self, text: &Normalized) -> bool {
        match &self.gate {
            Gate::Nothing => false,
            Gate::Literals(any) => any.is_match(text.as_str()),
            Gate::Everything => true,
        }
    }
}
