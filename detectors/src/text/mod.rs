//! Text normalisation and phrase matching for the spam, injection and duplicate
//! detectors.
//!
//! Every webhook text is normalised once per event ([`normalize_into`]): format
//! characters removed (all of category Cf: zero-width space / joiner / non-joiner,
//! word joiner, BOM, soft hyphen, bidi controls, tag characters), Unicode NFKC, full case folding, every run of whitespace made
//! one space, trimmed. Full-width, mixed-case and oddly spaced variants of a phrase
//! therefore all reach the matchers as the same string. Two disguises NFKC leaves
//! are undone as well: the Turkic `İ` / `ı` read as `i`, and Cyrillic or Greek
//! look-alikes inside a word that also holds Latin letters (`іgnоrе`) read as the
//! Latin letters they imitate.
//!
//! Phrases ([`PhraseSet`]) match on word boundaries of the normalised text, so
//! `act as` is not found inside `react as`. The injection matcher
//! ([`InjectionMatcher`]) adds the verb → object → noun pattern of the design
//! ("ignore … previous … instructions", each gap at most 20 characters and never
//! across a sentence end or a line break).

mod injection;
mod normalize;
mod phrases;
mod screen;
#[cfg(test)]
mod tests;

pub use injection::{InjectionConfig, InjectionHit, InjectionMatcher};
pub(crate) use normalize::is_format;
pub use normalize::{normalize_into, Normalized};
pub use phrases::{PhraseMatch, PhraseSet};
pub use screen::Screen;

/// The default spam words of the `spam_content` rule.
pub const SPAM_WORDS: &[&str] = &["buy", "click", "free", "winner", "prize", "giveaway"];

/// The default phrases of the `payment_redirect` rule: paying a deposit, and
/// (new, changed, updated) (bank, account) details, and a new account.
pub const PAYMENT_PHRASES: &[&str] = &[
    "pay deposit",
    "pay a deposit",
    "pay the deposit",
    "new bank details",
    "new account details",
    "changed bank details",
    "changed account details",
    "updated bank details",
    "updated account details",
    "new account",
];

/// Why a phrase list or pattern could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A phrase is blank once normalised, so it would match everywhere or nowhere.
    #[error("phrase {index} is blank after normalisation")]
    BlankPhrase {
        /// Its position in the list.
        index: usize,
    },
    /// The list is too large for the matcher.
    #[error("phrase list cannot be compiled: {0}")]
    Automaton(String),
    /// The injection pattern built from the word lists did not compile.
    #[error("injection pattern cannot be compiled: {0}")]
    Pattern(String),
}

/// Whether the text holds a URL: `http://`, `https://` or `www.` at the start of a word.
pub fn has_url(text: &Normalized) -> bool {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    // Built once: `str::match_indices` builds a searcher per call and needle.
    static HTTP: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("http"));
    static WWW: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("www."));
    let t = text.as_str();
    let b = t.as_bytes();
    let scheme = |at: usize| b[at + 4..].starts_with(b"://") || b[at + 4..].starts_with(b"s://");
    HTTP.find_iter(b).any(|at| scheme(at) && phrases::word_start(t, at))
        || WWW.find_iter(b).any(|at| phrases::word_start(t, at))
}

/// The longest run of one letter or digit repeated, if it is at least `min`
/// characters long: [`longest_letter_run`], answered without visiting most bytes.
///
/// Why it can skip: every run of `min` or more covers one of the positions
/// `min - 1`, `2 min - 1`, …, so on ASCII text only those are probed, each run
/// found is measured in full both ways, and the next probe starts `min - 1`
/// past its end. Runs shorter than `min` may go unmeasured, which changes
/// nothing: they cannot be the answer.
pub fn letter_run_reaching(text: &Normalized, min: usize) -> Option<usize> {
    if !text.is_ascii() {
        let run = longest_letter_run(text);
        return (run >= min).then_some(run);
    }
    let b = text.as_str().as_bytes();
    let step = min.max(1);
    let (mut best, mut probe) = (0, step - 1);
    while let Some(&c) = b.get(probe) {
        if !c.is_ascii_alphanumeric() {
            probe += step;
            continue;
        }
        let start = b[..probe].iter().rposition(|&x| x != c).map_or(0, |p| p + 1);
        let end = b[probe..].iter().position(|&x| x != c).map_or(b.len(), |p| probe + p);
        best = best.max(end - start);
        probe = end + step - 1;
    }
    (best >= min).then_some(best)
}

/// The longest run of one Unicode letter or digit repeated, in characters.
///
/// Runs of punctuation (`----------`) and whitespace are not counted: they are
/// formatting, not spam.
pub fn longest_letter_run(text: &Normalized) -> usize {
    if text.is_ascii() {
        // The same walk over bytes: on ASCII, is_alphanumeric is the ASCII test.
        let (mut best, mut run, mut prev) = (0, 0, 0u8);
        for &b in text.as_str().as_bytes() {
            run = if !b.is_ascii_alphanumeric() {
                0
            } else if run > 0 && b == prev {
                run + 1
            } else {
                1
            };
            prev = b;
            best = best.max(run);
        }
        return best;
    }
    let (mut best, mut run, mut prev) = (0, 0, '\0');
    for c in text.as_str().chars() {
        if !c.is_alphanumeric() {
            run = 0;
        } else if run > 0 && c == prev {
            run += 1;
        } else {
            run = 1;
        }
        prev = c;
        best = best.max(run);
    }
    best
}
