//! The literal pre-filter: decides which kinds' regexes run at all.
//!
//! One pass over the text's bytes. Each keyword has an *anchor*, its rarest byte;
//! only where an anchor byte stands is the keyword compared around it, so common
//! letters cost one table look-up each and every occurrence of every keyword is
//! still found (each occurrence contains its anchor). The same pass counts digits:
//! only a text with enough of them pays for the digit-run walk (cards and SSNs have
//! no keyword). Clean text leaves with an empty set and costs no regex.

use super::{PiiKind, Scope};

/// Keywords, the kind each one wakes up, and the offset of its anchor byte.
/// Matched ASCII case-insensitively: the regexes decide case, the pre-filter only
/// must never miss. Anchors are the keyword's least common byte in chat and log
/// text, so few positions need a comparison.
const KEYWORDS: &[(&str, PiiKind, usize)] = &[
    ("akia", PiiKind::AwsKey, 1),
    ("asia", PiiKind::AwsKey, 1),
    ("abia", PiiKind::AwsKey, 1),
    ("acca", PiiKind::AwsKey, 1),
    ("a3t", PiiKind::AwsKey, 1),
    ("sk-", PiiKind::OpenaiKey, 1),
    ("sk_", PiiKind::StripeKey, 2),
    ("rk_", PiiKind::StripeKey, 2),
    ("ghp_", PiiKind::GithubToken, 3),
    ("gho_", PiiKind::GithubToken, 3),
    ("ghu_", PiiKind::GithubToken, 3),
    ("ghs_", PiiKind::GithubToken, 3),
    ("ghr_", PiiKind::GithubToken, 3),
    ("github_pat_", PiiKind::GithubToken, 6),
    ("xox", PiiKind::SlackToken, 0),
    ("xapp-", PiiKind::SlackToken, 0),
    ("eyj", PiiKind::Jwt, 2),
    ("-----begin", PiiKind::PrivateKey, 0),
    ("://", PiiKind::Dsn, 0),
    // Connection strings without a URL (`Server=…;Password=…`) hold a `=`; the
    // finder then looks for the password's name before it runs the regex. (Their
    // names' letters are common in chat; `=` is not.)
    ("=", PiiKind::Dsn, 0),
    ("@", PiiKind::Email, 0),
    ("0x", PiiKind::EthAddress, 1),
    ("+", PiiKind::Phone, 0),
    ("jdbc:oracle:", PiiKind::Dsn, 0),
];

/// Kinds a keyword can report (everything but cards and SSNs).
const KEYWORD_KINDS: Scope = {
    let mut s = Scope::empty();
    let mut i = 0;
    while i < KEYWORDS.len() {
        s = s.with(KEYWORDS[i].1);
        i += 1;
    }
    s
};

/// Fewest digits in one run for an SSN (9) and a card (13).
const SSN_DIGITS: u32 = 9;
const CARD_DIGITS: u32 = 13;

/// A byte's entry in [`Prefilter::bytes`]: which keywords it anchors (a range of
/// [`Prefilter::anchored`]: first index, then count) and whether it is a digit.
/// Zero for most bytes, so the scan's common case is one test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ByteClass(u32);

impl ByteClass {
    const DIGIT: u32 = 1 << 16;

    fn first(self) -> usize {
        (self.0 & 0xff) as usize
    }

    fn count(self) -> usize {
        (self.0 >> 8 & 0xff) as usize
    }

    fn digit(self) -> u32 {
        self.0 >> 16
    }
}

/// The anchor table, built once.
#[derive(Debug)]
pub(super) struct Prefilter {
    bytes: [ByteClass; 256],
    /// Indexes into [`KEYWORDS`] (and `words`), grouped by anchor byte.
    anchored: Vec<u8>,
    /// Each keyword prepared for a word-at-a-time comparison.
    words: Vec<Word>,
}

impl Prefilter {
    pub(super) fn new() -> Prefilter {
        let mut bytes = [ByteClass::default(); 256];
        let mut anchored = Vec::with_capacity(KEYWORDS.len());
        for b in 0..=255u8 {
            let first = anchored.len();
            for (i, &(word, _, at)) in KEYWORDS.iter().enumerate() {
                if word.as_bytes()[at].eq_ignore_ascii_case(&b) {
                    anchored.push(i as u8);
                }
            }
            let count = anchored.len() - first;
            let digit = if b.is_ascii_digit() { ByteClass::DIGIT } else { 0 };
            // KEYWORDS has far fewer than 256 entries, so both fit a byte; a byte
            // that anchors nothing keeps `first` at 0 so its class is 0 or DIGIT.
            let first = if count == 0 { 0 } else { first };
            bytes[usize::from(b)] = ByteClass(first as u32 | (count as u32) << 8 | digit);
        }
        let words = KEYWORDS.iter().map(|&(word, kind, at)| Word::new(word, kind, at)).collect();
        Prefilter { bytes, anchored, words }
    }

    /// The kinds in `scope` worth running on `text`.
    pub(super) fn hits(&self, text: &str, scope: Scope) -> Scope {
        let wanted = scope.intersect(KEYWORD_KINDS);
        let numeric = scope.contains(PiiKind::Card) || scope.contains(PiiKind::Ssn);
        let bytes = text.as_bytes();
        let mut hits = Scope::empty();
        let mut digits = 0u32;
        if !wanted.is_empty() {
            // Indexed, not `iter().enumerate()`: the compiled loop is shorter.
            for i in 0..bytes.len() {
                let class = self.bytes[usize::from(bytes[i])];
                if class.0 == 0 {
                    continue;
                }
                // Numbers are scanned too: keep a plain digit to one more test.
                if class.0 == ByteClass::DIGIT {
                    digits += 1;
                    continue;
                }
                digits += class.digit();
                for &k in &self.anchored[class.first()..][..class.count()] {
                    let word = &self.words[usize::from(k)];
                    if !hits.contains(word.kind) && word.is_at(bytes, i) {
                        hits = hits.with(word.kind);
                    }
                }
                if !numeric && hits.intersect(wanted) == wanted {
                    break;
                }
            }
        } else {
            // No keyword wanted: nothing to count digits for, walk the runs at once.
            digits = SSN_DIGITS;
        }
        if numeric && digits >= SSN_DIGITS {
            let need = if scope.contains(PiiKind::Card) { CARD_DIGITS } else { SSN_DIGITS };
            let most = longest_digit_run(bytes, need);
            if most >= SSN_DIGITS {
                hits = hits.with(PiiKind::Ssn);
            }
            if most >= CARD_DIGITS {
                hits = hits.with(PiiKind::Card);
            }
        }
        hits.intersect(scope)
    }
}

/// A keyword ready to be compared eight bytes at a time: its first (up to) eight
/// bytes as a little-endian word, the bits that fold ASCII case at its letters,
/// and which bytes count.
#[derive(Debug)]
struct Word {
    text: &'static [u8],
    kind: PiiKind,
    anchor: usize,
    head: u64,
    fold: u64,
    mask: u64,
}

impl Word {
    fn new(word: &'static str, kind: PiiKind, anchor: usize) -> Word {
        let (mut head, mut fold, mut mask) = (0u64, 0u64, 0u64);
        for (i, &b) in word.as_bytes().iter().take(8).enumerate() {
            head |= u64::from(b) << (8 * i);
            mask |= 0xff << (8 * i);
            if b.is_ascii_lowercase() {
                fold |= 0x20 << (8 * i);
            }
        }
        Word { text: word.as_bytes(), kind, anchor, head, fold, mask }
    }

    /// True when the keyword occurs in `bytes`, any ASCII case, with its anchor at
    /// position `i`. Setting bit 5 maps exactly the two cases of a letter onto its
    /// lower case, so the word compare is the same as a byte-wise case-blind one.
    fn is_at(&self, bytes: &[u8], i: usize) -> bool {
        let Some(start) = i.checked_sub(self.anchor) else {
            return false;
        };
        let Some(found) = bytes.get(start..start + self.text.len()) else {
            return false;
        };
        match bytes.get(start..start + 8) {
            Some(eight) => {
                let w = u64::from_le_bytes(eight.try_into().unwrap_or_default());
                (w | self.fold) & self.mask == self.head
                    && found[self.text.len().min(8)..].eq_ignore_ascii_case(&self.text[self.text.len().min(8)..])
            }
            None => found.eq_ignore_ascii_case(self.text),
        }
    }
}

/// The most digits in one run of digits joined by single spaces or dashes (so
/// `4111 1111 1111 1111` and `123-45-6789` count whole), stopping early at `enough`.
pub(super) fn longest_digit_run(bytes: &[u8], enough: u32) -> u32 {
    let (mut run, mut most, mut after_digit) = (0u32, 0u32, false);
    for &b in bytes {
        if b.is_ascii_digit() {
            run += 1;
            after_digit = true;
            if run >= enough {
                return run;
            }
        } else if after_digit && (b == b' ' || b == b'-') {
            // One separator may join two digit groups; a second one ends the run.
            after_digit = false;
        } else {
            most = most.max(run);
            run = 0;
            after_digit = false;
        }
    }
    most.max(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the pre-filter must answer, the slow way: every keyword searched for in
    /// the lowercased text, and the digit-run walk run on every text.
    fn oracle(text: &str, scope: Scope) -> Scope {
        let lower = text.to_ascii_lowercase();
        let mut hits = Scope::empty();
        for &(word, kind, _) in KEYWORDS {
            if lower.contains(word) {
                hits = hits.with(kind);
            }
        }
        let most = longest_digit_run(text.as_bytes(), CARD_DIGITS);
        if most >= SSN_DIGITS {
            hits = hits.with(PiiKind::Ssn);
        }
        if most >= CARD_DIGITS {
            hits = hits.with(PiiKind::Card);
        }
        hits.intersect(scope)
    }

    #[test]
    fn every_anchor_is_a_byte_of_its_keyword() {
        for &(word, _, at) in KEYWORDS {
            assert!(at < word.len(), "{word}");
            assert_eq!(word, word.to_ascii_lowercase(), "keywords are lowercase");
        }
    }

    #[test]
    fn bytes_that_anchor_nothing_cost_one_test() {
        let p = Prefilter::new();
        for b in [b'q', b'Q', b'z', b' ', b'.', 0xc3] {
            assert_eq!(p.bytes[usize::from(b)], ByteClass(0), "{b:#x}");
        }
        assert_eq!(p.bytes[usize::from(b'7')], ByteClass(ByteClass::DIGIT));
        assert_eq!(p.bytes[usize::from(b'K')].count(), 2, "akia, sk-");
    }

    #[test]
    fn keywords_are_found_at_either_end_and_in_any_case() {
        let p = Prefilter::new();
        for &(word, kind, _) in KEYWORDS {
            for text in [word.to_string(), word.to_ascii_uppercase(), format!("x {word}"), format!("{word} x")] {
                assert!(p.hits(&text, Scope::ALL).contains(kind), "{text:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_searching_every_keyword(
            parts in proptest::collection::vec(prop::sample::select(vec![
                "akia", "AsIa", "abia", "acca", "a3t", "sk-", "SK_", "rk_", "ghp_", "gho_", "ghu_",
                "ghs_", "ghr_", "github_pat_", "xox", "xapp-", "eyJ", "-----BEGIN", "://", "@", "0x",
                "+", "a", "k", "s", "_", "-", "x", "j", "3", "0", "1234", "567890 ", "12345-", "9-",
                " ", "é", "g", "h",
            ]), 0..24),
            narrow in any::<bool>(),
        ) {
            let text = parts.concat();
            let scope = if narrow { Scope::SECRETS_CARDS_SSN } else { Scope::ALL };
            prop_assert_eq!(Prefilter::new().hits(&text, scope), oracle(&text, scope), "{:?}", text);
        }
    }
}
