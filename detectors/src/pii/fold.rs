//! Disguised text: characters a reader takes for ASCII, written so that a
//! byte-level search misses them — full-width digits (`４１１１…`), a zero-width
//! space inside a key (`AKIA\u{200B}IOSF…`), a no-break space or a Unicode dash
//! between card groups. [`Folded`] rewrites each to the ASCII a reader would type
//! and remembers where every folded byte came from, so a finding in the folded
//! text is reported as the span of the original that holds it.
//!
//! The fold is per character: the invisible format characters that text
//! normalisation removes are dropped; any other whitespace is a space; Unicode
//! hyphens and minus signs are `-`; a character whose compatibility decomposition
//! (NFKD) is all ASCII becomes that ASCII (full-width and mathematical letters and
//! digits, `①`, `ﬁ`). Anything else stays as it is: look-alikes from other
//! scripts (a Cyrillic `А`) are not folded.

use std::borrow::Cow;

use unicode_normalization::char::decompose_compatible;

/// A folded copy of a text and, for each of its bytes, the original byte offset of
/// the character that produced it.
#[derive(Debug, Default)]
pub(super) struct Folded {
    text: String,
    origin: Vec<u32>,
}

impl Folded {
    /// Folds `original` into `self`; false (and `self` unspecified) when it shows
    /// no disguise (see [`disguises`]), which is always the case for ASCII text,
    /// and then costs no copy.
    /// Texts over 4 GiB are never folded (offsets are 32-bit).
    pub(super) fn fold(&mut self, original: &str) -> bool {
        if original.is_ascii() || original.len() > u32::MAX as usize || !disguises(original) {
            return false;
        }
        self.text.clear();
        self.origin.clear();
        for (i, c) in original.char_indices() {
            push_folded(c, &mut self.text);
            // Every byte of a character's folding maps to that character's start.
            self.origin.resize(self.text.len(), i as u32);
        }
        true
    }

    /// The folded text.
    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    /// The span of `original` (the text last folded) that produced the folded bytes
    /// `start..end`: from the first one's character to the end of the last one's.
    pub(super) fn original_span(&self, original: &str, start: usize, end: usize) -> Option<(usize, usize)> {
        if start >= end {
            return None;
        }
        let from = *self.origin.get(start)? as usize;
        let last = *self.origin.get(end - 1)? as usize;
        let to = last + original.get(last..)?.chars().next()?.len_utf8();
        Some((from, to))
    }
}

/// `value` as a reader would type it (see the module docs): borrowed when nothing
/// folds. Masks are taken of this, and fingerprints of [`fingerprint_form`], which
/// starts from it: a card written in full-width digits shows its last four and
/// fingerprints as the same card in ASCII.
pub fn canonical(value: &str) -> Cow<'_, str> {
    if value.is_ascii() || !value.chars().any(folds) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        push_folded(c, &mut out);
    }
    Cow::Owned(out)
}

/// What a finding's fingerprint is taken of: [`canonical`], and then, for the
/// kinds written with free separators (a card, an SSN, a phone number), its
/// digits alone, and for an email address its domain in lower case. So a card
/// fingerprints alike as `4111 1111 1111 1111`, `4111-1111-1111-1111` or a bare
/// number, and the fingerprint finds the same value wherever it was logged.
pub fn fingerprint_form(kind: super::PiiKind, value: &str) -> Cow<'_, str> {
    use super::PiiKind::{Card, Email, Phone, Ssn};
    let value = canonical(value);
    match kind {
        Card | Ssn | Phone if !value.bytes().all(|b| b.is_ascii_digit()) => {
            Cow::Owned(value.chars().filter(char::is_ascii_digit).collect())
        }
        Email => match value.rsplit_once('@') {
            Some((local, domain)) if domain.bytes().any(|b| b.is_ascii_uppercase()) => {
                Cow::Owned(format!("{local}@{}", domain.to_ascii_lowercase()))
            }
            _ => value,
        },
        _ => value,
    }
}

/// True when `text` may hide a value from a byte search, so that it is worth
/// searching folded: a full-width or mathematical letter or digit, `＠`, a small
/// form (`﹫`); a format character right after a visible ASCII character
/// (`AKIA\u{200B}…`, `ghp_\u{200B}…`); a
/// Unicode space or dash right after an ASCII digit (`4111\u{A0}1111`). Ordinary
/// non-ASCII text (CJK with its full-width punctuation, an emoji joined by
/// U+200D, French with a no-break space before `:`) does not qualify and costs
/// one pass over its characters.
fn disguises(text: &str) -> bool {
    let mut prev = ' ';
    for c in text.chars() {
        let hides = match c {
            '\u{FF10}'..='\u{FF19}' | '\u{FF20}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => true,
            '\u{1D400}'..='\u{1D7FF}' | '\u{FE50}'..='\u{FE6B}' => true,
            c if c.is_ascii() => false,
            c if prev.is_ascii_digit() => crate::text::is_format(c) || c.is_whitespace() || is_dash(c),
            c => prev.is_ascii_graphic() && crate::text::is_format(c),
        };
        if hides {
            return true;
        }
        prev = c;
    }
    false
}

/// True when [`push_folded`] changes `c`.
fn folds(c: char) -> bool {
    folded(c).is_some()
}

/// Appends `c` folded.
fn push_folded(c: char, out: &mut String) {
    match folded(c) {
        Some((buf, n)) => out.extend(buf[..n].iter().map(|&b| char::from(b))),
        None => out.push(c),
    }
}

/// The ASCII `c` folds to (1–4 bytes; none for an invisible format character,
/// which only ever splits what a reader sees as one word), or `None` when `c`
/// stays itself.
fn folded(c: char) -> Option<([u8; 4], usize)> {
    if c.is_ascii() {
        None
    } else if crate::text::is_format(c) {
        Some(([0; 4], 0))
    } else if c.is_whitespace() {
        Some(([b' ', 0, 0, 0], 1))
    } else if is_dash(c) {
        Some(([b'-', 0, 0, 0], 1))
    } else {
        ascii_decomposition(c)
    }
}

/// Hyphens, dashes and minus signs that stand for `-` in a grouped number.
fn is_dash(c: char) -> bool {
    matches!(c, '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}')
}

/// `c`'s compatibility decomposition when it is 1–4 ASCII characters. The
/// large blocks that hold no such character (Cyrillic to Vedic, CJK and Yi,
/// Hangul, the supplementary ideographs) are not looked up, so most non-Latin
/// text costs a range test per character.
fn ascii_decomposition(c: char) -> Option<([u8; 4], usize)> {
    if matches!(c, '\u{400}'..='\u{1CFF}' | '\u{3400}'..='\u{A6FF}' | '\u{AC00}'..='\u{D7FF}' | '\u{20000}'..) {
        return None;
    }
    let (mut buf, mut n, mut ascii) = ([0u8; 4], 0, true);
    decompose_compatible(c, |d| {
        if d.is_ascii() && n < buf.len() {
            buf[n] = d as u8;
            n += 1;
        } else {
            ascii = false;
        }
    });
    // A character that decomposes to itself is not ASCII, so n > 0 means a change.
    (ascii && n > 0).then_some((buf, n))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn folds_disguises_and_maps_spans_back() {
        let original = "card ４１１１\u{00A0}1111\u{2011}1111 1111 key=AKIA\u{200B}IOSF";
        let mut f = Folded::default();
        assert!(f.fold(original));
        assert_eq!(f.as_str(), "card 4111 1111-1111 1111 key=AKIAIOSF");
        let at = f.as_str().find("4111").unwrap();
        let (s, e) = f.original_span(original, at, at + 4).unwrap();
        assert_eq!(&original[s..e], "４１１１");
        let at = f.as_str().find("AKIAIOSF").unwrap();
        let (s, e) = f.original_span(original, at, at + 8).unwrap();
        assert_eq!(&original[s..e], "AKIA\u{200B}IOSF");
    }

    #[test]
    fn leaves_plain_and_foreign_text_alone() {
        let mut f = Folded::default();
        assert!(!f.fold("plain ascii"));
        assert!(!f.fold("Grüße aus Köln, Ж"));
        assert!(!f.fold("你好，我想了解价格？（谢谢）"), "CJK punctuation");
        assert!(!f.fold("family 👨\u{200D}👩\u{200D}👧 prix\u{A0}: dix"), "emoji joiner, French spacing");
        assert!(f.fold("订单４８２１"), "full-width digits");
        assert!(matches!(canonical("Grüße"), Cow::Borrowed(_)));
        assert_eq!(canonical("１２３－４５"), "123-45");
    }

    /// The blocks [`ascii_decomposition`] skips hold no character whose
    /// compatibility decomposition is ASCII.
    #[test]
    fn the_range_gate_skips_no_foldable_character() {
        for c in (0x80..=0x10FFFFu32).filter_map(char::from_u32) {
            let (mut ascii, mut n) = (true, 0);
            decompose_compatible(c, |d| {
                ascii &= d.is_ascii();
                n += 1;
            });
            let folds_to_ascii = ascii && n > 0 && n <= 4;
            assert_eq!(ascii_decomposition(c).is_some(), folds_to_ascii, "U+{:04X}", u32::from(c));
        }
    }

    proptest! {
        /// Every folded byte maps to a char boundary of the original, in order,
        /// and each span maps to a valid slice.
        #[test]
        fn spans_map_to_char_boundaries(s in "[a-z4 \u{00A0}\u{200B}\u{FF11}-\u{FF19}\u{2013}é]{0,40}") {
            let mut f = Folded::default();
            if f.fold(&s) {
                prop_assert_eq!(f.origin.len(), f.as_str().len());
                prop_assert!(f.origin.windows(2).all(|w| w[0] <= w[1]));
                for i in 0..f.as_str().len() {
                    for j in i + 1..=f.as_str().len() {
                        let (a, b) = f.original_span(&s, i, j).unwrap();
                        prop_assert!(s.get(a..b).is_some());
                    }
                }
                let whole = canonical(&s);
                prop_assert_eq!(whole.as_ref(), f.as_str());
            }
        }
    }
}
