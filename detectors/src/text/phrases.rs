//! Literal phrase sets matched on word boundaries of a normalised text.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::{normalize_into, Normalized, TextError};

/// A set of phrases, normalised like the text they are matched against and compiled
/// into one Aho-Corasick automaton: one pass over the text whatever the list's size.
#[derive(Debug, Clone)]
pub struct PhraseSet {
    phrases: Vec<String>,
    automaton: AhoCorasick,
    /// The same phrases with leftmost-first semantics, asked only whether any
    /// occurs at all: that kind gets the crate's vectorised (Teddy) prefilter,
    /// the standard kind above does not, and most texts hold no phrase.
    any: AhoCorasick,
}

/// Where a phrase of a [`PhraseSet`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhraseMatch {
    /// The phrase's position in the set (see [`PhraseSet::phrase`]).
    pub index: usize,
    /// Byte offset of the match in the normalised text.
    pub start: usize,
    /// Byte offset just past the match.
    pub end: usize,
}

impl PhraseSet {
    /// Normalises and compiles the phrases; a phrase that is blank once normalised
    /// is an error (it would match nothing useful).
    pub fn new<I, S>(phrases: I) -> Result<PhraseSet, TextError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut norm = Normalized::new();
        let mut list = Vec::new();
        for (index, phrase) in phrases.into_iter().enumerate() {
            normalize_into(phrase.as_ref(), &mut norm);
            if norm.as_str().is_empty() {
                return Err(TextError::BlankPhrase { index });
            }
            list.push(norm.as_str().to_string());
        }
        let automaton = AhoCorasick::new(&list).map_err(|e| TextError::Automaton(e.to_string()))?;
        let any = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&list)
            .map_err(|e| TextError::Automaton(e.to_string()))?;
        Ok(PhraseSet { phrases: list, automaton, any })
    }

    /// The first phrase (by position in the text) standing on word boundaries.
    pub fn find(&self, text: &Normalized) -> Option<PhraseMatch> {
        self.find_in(text.as_str())
    }

    /// Like [`find`](Self::find) over a slice of normalised text.
    pub fn find_in(&self, t: &str) -> Option<PhraseMatch> {
        let on_words = |m: &aho_corasick::Match| word_start(t, m.start()) && word_end(t, m.end());
        let to_match =
            |m: aho_corasick::Match| PhraseMatch { index: m.pattern().as_usize(), start: m.start(), end: m.end() };
        // The first match (the earliest to end, as an overlapping search reports
        // first) by the plain search, which skips ahead with the automaton's
        // prefilter: most texts hold no phrase, and most matches stand on words.
        if !self.any.is_match(t) {
            return None;
        }
        let first = self.automaton.find(t)?;
        if on_words(&first) {
            return Some(to_match(first));
        }
        // Overlapping search: the first candidate failed the boundary test (`free`
        // in `freedom`) while a later or shorter one may pass.
        self.automaton.find_overlapping_iter(t).find(on_words).map(to_match)
    }

    /// The normalised phrase at `index`, as matched; empty if out of range.
    pub fn phrase(&self, index: usize) -> &str {
        self.phrases.get(index).map_or("", String::as_str)
    }

    /// The normalised phrases, as the set matches them: every match contains
    /// one ([`Screen`](super::Screen)).
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.phrases.iter().map(String::as_str)
    }

    /// How many phrases the set holds.
    pub fn len(&self) -> usize {
        self.phrases.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }
}

/// Whether a word may start at byte `at`: nothing word-like just before it.
pub(super) fn word_start(t: &str, at: usize) -> bool {
    t.get(..at).and_then(|s| s.chars().next_back()).is_none_or(|c| !is_word(c))
}

/// Whether a word may end at byte `at`: nothing word-like just after it.
pub(super) fn word_end(t: &str, at: usize) -> bool {
    t.get(at..).and_then(|s| s.chars().next()).is_none_or(|c| !is_word(c))
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}
