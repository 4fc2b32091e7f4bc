//! The one normalisation every text detector sees; see the module docs of `text`.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;

/// A normalised text, reused across events so the hot path does not allocate.
///
/// Whitespace runs are single spaces; the spaces that stood for a line break are
/// remembered, because an injection pattern must not reach across one.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    text: String,
    /// Byte offsets of the spaces that replaced a run holding a line break, ascending.
    breaks: Vec<usize>,
    /// The input was ASCII, so the text is (callers may then read bytes as characters).
    ascii: bool,
}

impl Normalized {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the text is known to be ASCII (it came from ASCII input); false
    /// says nothing.
    pub fn is_ascii(&self) -> bool {
        self.ascii
    }

    /// Whether the space at byte offset `at` replaced a line break.
    pub fn is_line_break(&self, at: usize) -> bool {
        self.breaks.binary_search(&at).is_ok()
    }

    /// The text cut at every line break: the pieces a multi-word pattern may span.
    pub fn lines(&self) -> impl Iterator<Item = &str> + '_ {
        let mut from = 0;
        self.breaks.iter().map(Some).chain(std::iter::once(None)).map(move |brk| {
            let to = brk.copied().unwrap_or(self.text.len());
            let line = self.text.get(from..to).unwrap_or("");
            from = to + 1;
            line
        })
    }

    fn clear(&mut self) {
        self.text.clear();
        self.breaks.clear();
        self.ascii = false;
    }
}

/// Normalises `raw` into `out` (cleared first): format characters removed, NFKC, case
/// folding, whitespace runs collapsed to one space, trimmed.
pub fn normalize_into(raw: &str, out: &mut Normalized) {
    if raw.is_ascii() {
        normalize_ascii(raw, out);
    } else {
        normalize_unicode(raw, out);
    }
}

/// [`normalize_into`] for any text.
fn normalize_unicode(raw: &str, out: &mut Normalized) {
    out.clear();
    let mut ws = Whitespace::default();
    let chars = raw.chars().filter(|c| !is_format(*c)).map(turkic_i).nfkc().default_case_fold().nfkc();
    for c in chars.filter(|c| !is_format(*c)) {
        ws.push(c, out, |c| c);
    }
    unmix_scripts(out);
}

/// Rewrites the Cyrillic and Greek look-alikes in each word that also holds a
/// Latin letter (`іgnоrе`, `frее`) as the Latin letters they pass for. A word
/// mixing scripts like that is a disguise; a word of one script is left alone,
/// so Russian and Greek text read as themselves. Words here are split at ASCII
/// characters other than letters, which costs no Unicode property lookup.
fn unmix_scripts(out: &mut Normalized) {
    let text = &out.text;
    if !words(text).any(is_mixed) {
        return;
    }
    let mut rewritten = String::with_capacity(text.len());
    let mut breaks = Vec::with_capacity(out.breaks.len());
    let mut next_break = out.breaks.iter().copied().peekable();
    let (mut word_end, mut mixed) = (0, false);
    for (i, c) in text.char_indices() {
        if next_break.peek() == Some(&i) {
            next_break.next();
            breaks.push(rewritten.len());
        }
        if i >= word_end && !splits_words(c) {
            word_end = text[i..].find(splits_words).map_or(text.len(), |n| i + n);
            mixed = is_mixed(&text[i..word_end]);
        }
        match latin_lookalike(c) {
            Some(latin) if mixed && i < word_end => rewritten.push(latin),
            _ => rewritten.push(c),
        }
    }
    out.text = rewritten;
    out.breaks = breaks;
}

fn splits_words(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_alphabetic()
}

/// The words of `text` (see [`unmix_scripts`]).
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(splits_words).filter(|w| !w.is_empty())
}

/// A word holding a Latin letter and a look-alike of one.
fn is_mixed(word: &str) -> bool {
    !word.is_ascii()
        && word.bytes().any(|b| b.is_ascii_alphabetic())
        && word.chars().any(|c| latin_lookalike(c).is_some())
}

/// The Latin letter a case-folded Cyrillic or Greek letter is made to pass for
/// (uppercase look-alikes such as `В`, `Н`, `Т` fold to letters listed here).
fn latin_lookalike(c: char) -> Option<char> {
    Some(match c {
        'а' | 'α' => 'a',
        'в' | 'β' => 'b',
        'с' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'һ' | 'н' | 'η' => 'h',
        'і' | 'ι' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'ӏ' => 'l',
        'м' | 'μ' => 'm',
        'ν' => 'v',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' => 'u',
        'ԝ' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'ү' => 'y',
        'ζ' => 'z',
        _ => return None,
    })
}

/// [`normalize_into`] for ASCII text (most chat and log text), byte by byte:
/// NFKC is the identity on ASCII, case folding is lowercasing, and nothing is a
/// format character, so only whitespace needs work. Bytes are written into the
/// text's own buffer and checked back into a `String` (never failing: every
/// byte written is ASCII) so the loop does no per-character UTF-8 encoding.
fn normalize_ascii(raw: &str, out: &mut Normalized) {
    out.breaks.clear();
    let mut bytes = std::mem::take(&mut out.text).into_bytes();
    bytes.clear();
    if is_single_spaced(raw.as_bytes()) {
        // Most chat lines: nothing to collapse or trim, so normalising is
        // lowercasing, done on the whole line at once.
        bytes.extend_from_slice(raw.as_bytes());
        bytes.make_ascii_lowercase();
    } else {
        collapse_ascii(raw, &mut bytes, &mut out.breaks);
    }
    out.text = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    out.ascii = true;
}

/// True when the only whitespace in `raw` is single spaces between other
/// characters (and it holds no control character): then [`collapse_ascii`]
/// would only lowercase it. Written as passes without early exits so that they
/// vectorise.
fn is_single_spaced(raw: &[u8]) -> bool {
    let controls = raw.iter().fold(false, |seen, &b| seen | (b < b' '));
    !controls && raw.first() != Some(&b' ') && raw.last() != Some(&b' ') && memchr::memmem::find(raw, b"  ").is_none()
}

/// [`normalize_ascii`]'s general case: lowercases `raw` into `bytes`, whitespace
/// runs collapsed to one space and trimmed; a run holding a line break is noted
/// in `breaks` (the offset of its space).
fn collapse_ascii(raw: &str, bytes: &mut Vec<u8>, breaks: &mut Vec<usize>) {
    bytes.reserve(raw.len());
    let (mut pending, mut pending_break) = (false, false);
    for &b in raw.as_bytes() {
        // char::is_whitespace on ASCII: tab, line feed, vertical tab, form feed,
        // carriage return, space.
        if matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ') {
            pending = true;
            pending_break |= b != b'\t' && b != b' ';
            continue;
        }
        if pending && !bytes.is_empty() {
            if pending_break {
                breaks.push(bytes.len());
            }
            bytes.push(b' ');
        }
        pending = false;
        pending_break = false;
        bytes.push(b.to_ascii_lowercase());
    }
}

/// Collapses whitespace runs while characters are appended.
#[derive(Default)]
struct Whitespace {
    pending: bool,
    pending_break: bool,
}

impl Whitespace {
    #[inline]
    fn push(&mut self, c: char, out: &mut Normalized, map: impl Fn(char) -> char) {
        if c.is_whitespace() {
            self.pending = true;
            self.pending_break |= is_line_break(c);
            return;
        }
        if self.pending && !out.text.is_empty() {
            if self.pending_break {
                out.breaks.push(out.text.len());
            }
            out.text.push(' ');
        }
        self.pending = false;
        self.pending_break = false;
        out.text.push(map(c));
    }
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// The Turkic i's as the plain one: default case folding turns `İ` into `i` plus
/// a combining dot and leaves dotless `ı` alone, so `İGNORE` and `ıgnore` would
/// read as other words than `ignore` (the phrases are English; Unicode's Turkic
/// folding maps both pairs to `i` too).
fn turkic_i(c: char) -> char {
    match c {
        '\u{130}' | '\u{131}' => 'i',
        c => c,
    }
}

/// Invisible characters that split a word without showing: removed so they cannot
/// hide a phrase (`fr\u{AD}ee`, `ign\u{200B}ore`, `jail\u{E0041}break`). Every
/// format character (Unicode general category Cf, as of Unicode 15.1): the
/// zero-width and bidirectional controls, the Mongolian vowel separator, the tag
/// characters (U+E0000 block, a known way to smuggle hidden text to a model),
/// interlinear annotation marks, and the prepended marks of Arabic, Syriac,
/// Kaithi and other scripts, which change no letter a phrase is made of.
pub(crate) fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{600}'..='\u{605}'
            | '\u{61C}'
            | '\u{6DD}'
            | '\u{70F}'
            | '\u{890}'..='\u{891}'
            | '\u{8E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `raw` normalised by the ASCII path and by the general one.
    fn both_ways(raw: &str) -> (Normalized, Normalized) {
        let (mut fast, mut general) = (Normalized::new(), Normalized::new());
        normalize_ascii(raw, &mut fast);
        normalize_unicode(raw, &mut general);
        (fast, general)
    }

    proptest! {
        #[test]
        fn ascii_text_normalises_as_any_text_does(raw in "[ -~\t\n\x0b\x0c\r\x00-\x1f]{0,60}") {
            let (fast, general) = both_ways(&raw);
            prop_assert_eq!(fast.as_str(), general.as_str());
            prop_assert_eq!(&fast.breaks, &general.breaks);
            prop_assert!(fast.is_ascii() && !general.is_ascii());
        }

        /// Mostly words and single spaces, so the lowercasing shortcut is taken
        /// (and, where a space doubles or ends the line, left) often.
        #[test]
        fn plain_lines_normalise_as_any_text_does(raw in "[A-Za-z0-9 .,?]{0,60}") {
            let (fast, general) = both_ways(&raw);
            prop_assert_eq!(fast.as_str(), general.as_str());
            prop_assert_eq!(&fast.breaks, &general.breaks);
            prop_assert_eq!(is_single_spaced(raw.as_bytes()), fast.as_str() == raw.to_ascii_lowercase());
        }

        #[test]
        fn letter_runs_read_the_same_by_bytes_and_by_chars(raw in "[aAb1 .\t-]{0,60}") {
            let (fast, general) = both_ways(&raw);
            prop_assert_eq!(crate::text::longest_letter_run(&fast), crate::text::longest_letter_run(&general));
        }
    }
}
