//! A strict, borrowing JSON parser for untrusted input.
//!
//! Why not `serde_json::Value`: the dead-letter contract (design §8) needs things
//! serde_json does not give — duplicate keys rejected, a nesting limit of 64 reported
//! as its own reason, unpaired surrogate escapes reported as `invalid_utf8` rather
//! than as a syntax error — and the engine wants strings borrowed from the message
//! bytes, not copied.
//!
//! # Promises
//! - Linear time in the input length (duplicate-key checks included) and no recursion
//!   deeper than [`MAX_DEPTH`], so hostile input cannot stall or overflow a partition.
//! - Accepts exactly RFC 8259 JSON: no NaN / Infinity, no trailing commas, no
//!   comments, no raw control characters in strings, no duplicate keys, one value.

use std::borrow::Cow;

/// The deepest nesting accepted; the top-level value is level 1 (design §8).
pub const MAX_DEPTH: usize = 64;

/// A parsed JSON value whose strings borrow from the input where no escape forced a copy.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, kept as its validated source text so nothing is lost before it is needed.
    Number(Number<'a>),
    /// A string with escapes resolved.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Value<'a>>),
    /// An object; keys are unique.
    Object(Object<'a>),
}

/// A JSON number as written in the input (grammar-checked, finite as an f64).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Number<'a>(&'a str);

/// A JSON object: its members in input order, keys unique.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    entries: Vec<(Cow<'a, str>, Value<'a>)>,
}

/// Why a text is not acceptable JSON. The variants map onto dead-letter reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An unpaired UTF-16 surrogate escape such as `"\ud800"`: valid JSON syntax that
    /// cannot be UTF-8 text.
    #[error("unpaired surrogate escape at byte {0}")]
    LoneSurrogate(usize),
    /// More than [`MAX_DEPTH`] levels of nesting.
    #[error("nesting deeper than {MAX_DEPTH} levels at byte {0}")]
    TooDeep(usize),
    /// Anything else that is not strict JSON.
    #[error("{what} at byte {at}")]
    Invalid {
        /// What was wrong, for humans.
        what: &'static str,
        /// Byte offset where the parser noticed.
        at: usize,
    },
}

impl<'a> Number<'a> {
    /// The number's text exactly as written.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The value as f64 (always finite: the parser rejects overflowing literals).
    pub fn as_f64(&self) -> f64 {
        match self.small_integer() {
            Some((negative, v)) => {
                let f = v as f64;
                if negative {
                    -f
                } else {
                    f
                }
            }
            None => self.0.parse().unwrap_or(f64::NAN),
        }
    }

    /// Sign and magnitude when the text is a plain integer of at most 15 digits
    /// (`-0` included): every such value is exact as an f64, and most numbers in
    /// events (times, counts, ids) are one, so they skip the general float parser.
    pub fn small_integer(&self) -> Option<(bool, u64)> {
        let (negative, digits) = match self.0.as_bytes() {
            [b'-', rest @ ..] => (true, rest),
            all => (false, all),
        };
        if digits.is_empty() || digits.len() > 15 {
            return None;
        }
        let mut v = 0u64;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u64::from(d - b'0');
        }
        Some((negative, v))
    }

    /// The value as an i64 when it is integral and in range (`3`, `3.0`, `3e2`).
    pub fn as_i64(&self) -> Option<i64> {
        if let Some((negative, v)) = self.small_integer() {
            // At most 15 digits: far inside i64.
            let v = v as i64;
            return Some(if negative { -v } else { v });
        }
        let s = self.0;
        if !s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
            return s.parse().ok();
        }
        let f = self.as_f64();
        // 2^63 is exactly representable; anything at or beyond it does not fit.
        if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
            Some(f as i64)
        } else {
            None
        }
    }
}

impl<'a> Object<'a> {
    /// The value of member `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| k.as_ref() == key).map(|(_, v)| v)
    }

    /// Members in input order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the object has no members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Builds an object from members; the caller guarantees keys are unique.
    pub fn from_entries(entries: Vec<(Cow<'a, str>, Value<'a>)>) -> Self {
        Object { entries }
    }
}

impl<'a> Value<'a> {
    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, when this is one.
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Calls `f` with every string in this value (object keys excluded), depth first.
    /// Numbers are passed as their text so a card number sent as a number is still seen.
    pub fn for_each_text<F: FnMut(&str, bool)>(&self, f: &mut F) {
        match self {
            Value::String(s) => f(s, false),
            Value::Number(n) => f(n.as_str(), true),
            Value::Array(items) => items.iter().for_each(|v| v.for_each_text(f)),
            Value::Object(o) => o.entries.iter().for_each(|(_, v)| v.for_each_text(f)),
            Value::Null | Value::Bool(_) => {}
        }
    }
}

/// Parses `text` as one strict JSON value.
pub fn parse(text: &str) -> Result<Value<'_>, ParseError> {
    let mut p = Parser { src: text, bytes: text.as_bytes(), pos: 0 };
    let result = p.skip_ws().and_then(|_| p.value(1)).and_then(|v| {
        p.skip_ws()?;
        if p.pos != p.bytes.len() {
            return Err(p.invalid("trailing characters after the value"));
        }
        Ok(v)
    });
    match result {
        // invalid_utf8 outranks the syntax reasons (design §8): look past the failure.
        Err(e @ (ParseError::Invalid { .. } | ParseError::TooDeep(_))) => {
            let from = match e {
                ParseError::Invalid { at, .. } | ParseError::TooDeep(at) => at,
                ParseError::LoneSurrogate(at) => at,
            };
            match find_lone_surrogate(&text.as_bytes()[from.min(text.len())..]) {
                Some(off) => Err(ParseError::LoneSurrogate(from + off)),
                None => Err(e),
            }
        }
        other => other,
    }
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn invalid(&self, what: &'static str) -> ParseError {
        ParseError::Invalid { what, at: self.pos }
    }

    fn skip_ws(&mut self) -> Result<(), ParseError> {
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                _ => break,
            }
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        match self.bytes.get(self.pos) {
            None => Err(self.invalid("unexpected end of input")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(_) => Err(self.invalid("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static str, v: Value<'a>) -> Result<Value<'a>, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.invalid("invalid literal"))
        }
    }

    fn enter(&self, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            Err(ParseError::TooDeep(self.pos))
        } else {
            Ok(())
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws()?;
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws()?;
            items.push(self.value(depth + 1)?);
            self.skip_ws()?;
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.invalid("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        self.enter(depth)?;
        let start = self.pos;
        self.pos += 1;
        self.skip_ws()?;
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(Object::default()));
        }
        // Room for an event's top level at once, instead of growing by 4, 8, 16:
        // each growth copies every member parsed so far.
        let mut entries: Vec<(Cow<'a, str>, Value<'a>)> = Vec::with_capacity(if depth == 1 { 12 } else { 4 });
        // Each name's sketch bit, taken as it is read: only an object where two
        // names share one needs the full duplicate check at its end.
        let (mut sketches, mut maybe_duplicate) = (0u64, false);
        loop {
            self.skip_ws()?;
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.invalid("expected a member name"));
            }
            let key = self.string()?;
            let bit = key_sketch(&key);
            maybe_duplicate |= sketches & bit != 0;
            sketches |= bit;
            self.skip_ws()?;
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.invalid("expected `:`"));
            }
            self.pos += 1;
            self.skip_ws()?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
            self.skip_ws()?;
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    if maybe_duplicate && has_duplicate_keys(&entries) {
                        return Err(ParseError::Invalid { what: "duplicate member name", at: start });
                    }
                    return Ok(Value::Object(Object { entries }));
                }
                _ => return Err(self.invalid("expected `,` or `}`")),
            }
        }
    }

    fn number(&mut self) -> Result<Number<'a>, ParseError> {
        let start = self.pos;
        let b = self.bytes;
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => {
                self.pos = i;
                return Err(self.invalid("invalid number"));
            }
        }
        let mut plain = true;
        if b.get(i) == Some(&b'.') {
            plain = false;
            i += 1;
            let digits = i;
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == digits {
                self.pos = i;
                return Err(self.invalid("invalid number"));
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            plain = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let digits = i;
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == digits {
                self.pos = i;
                return Err(self.invalid("invalid number"));
            }
        }
        self.pos = i;
        let text = &self.src[start..i];
        // Only long or exponent forms can overflow an f64; RFC 8785 cannot write those.
        if (!plain || text.len() > 300) && !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(ParseError::Invalid { what: "number out of range", at: start });
        }
        Ok(Number(text))
    }

    /// Parses a string starting at the opening quote; borrows when there is no escape.
    #[inline]
    fn string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        match self.plain_string() {
            Some(s) => Ok(Cow::Borrowed(s)),
            None => self.escaped_string(),
        }
    }

    /// The string at the opening quote when it has no escape (most do), moving
    /// past it; `None`, moving nothing, otherwise. Returns in registers, where
    /// a `Cow` goes through memory.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a str> {
        let b = self.bytes;
        let start = self.pos + 1;
        let mut i = start;
        // Eight bytes at a time up to the first that may end the plain run.
        while let Some(word) = b.get(i..i + 8) {
            let mask = special_bytes(u64::from_le_bytes(word.try_into().ok()?));
            if mask != 0 {
                i += (mask.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        while let Some(&c) = b.get(i) {
            if c == b'"' {
                self.pos = i + 1;
                return self.src.get(start..i);
            }
            if c == b'\\' || c < 0x20 {
                return None;
            }
            i += 1;
        }
        None
    }

    /// [`Parser::string`] for a string with an escape (or an error).
    #[cold]
    fn escaped_string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        self.pos += 1;
        let start = self.pos;
        let b = self.bytes;
        let mut i = start;
        while i < b.len() && b[i] != b'"' && b[i] != b'\\' && b[i] >= 0x20 {
            i += 1;
        }
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.src[start..i]);
        loop {
            let Some(&c) = b.get(i) else {
                self.pos = i;
                return Err(self.invalid("unterminated string"));
            };
            match c {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    i = self.escape(i, &mut out)?;
                }
                0x00..=0x1f => {
                    self.pos = i;
                    return Err(self.invalid("control character in string"));
                }
                _ => {
                    // Copy the run up to the next special byte in one go.
                    let run = i;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\\' && b[i] >= 0x20 {
                        i += 1;
                    }
                    out.push_str(&self.src[run..i]);
                }
            }
        }
    }

    /// Decodes the escape at `i` (a backslash) into `out`; returns the index after it.
    fn escape(&mut self, i: usize, out: &mut String) -> Result<usize, ParseError> {
        let b = self.bytes;
        let c = match b.get(i + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let Some(hi) = hex4(b, i + 2) else {
                    self.pos = i;
                    return Err(self.invalid("invalid \\u escape"));
                };
                if (0xDC00..0xE000).contains(&hi) {
                    return Err(ParseError::LoneSurrogate(i));
                }
                if (0xD800..0xDC00).contains(&hi) {
                    let lo = match (b.get(i + 6), b.get(i + 7)) {
                        (Some(b'\\'), Some(b'u')) => hex4(b, i + 8),
                        _ => None,
                    };
                    let Some(lo) = lo.filter(|lo| (0xDC00..0xE000).contains(lo)) else {
                        return Err(ParseError::LoneSurrogate(i));
                    };
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                    return Ok(i + 12);
                }
                out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                return Ok(i + 6);
            }
            _ => {
                self.pos = i;
                return Err(self.invalid("invalid escape"));
            }
        };
        out.push(c);
        Ok(i + 2)
    }
}

/// In a little-endian word of eight input bytes, the high bit of each byte that
/// is a quote, a backslash or a control character; exact up to and including
/// the lowest such byte (a borrow may flag bytes above it, which the caller
/// never looks at).
fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    // Below 0x20: subtracting 0x20 borrows into the high bit, which `!w` keeps
    // only for ASCII, so UTF-8 bytes (0x80 and up) are never flagged.
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | backslash | control) & HIGHS
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// Duplicate check in linear expected time: pairwise for the small objects events are,
/// a hash set beyond that so a hostile 100k-member object stays linear.
/// One of 64 bits for a member name, from its length and end bytes. The weights
/// give each of the event schema's 28 member names its own bit (a test holds
/// them to it), so an event's top level never needs a string comparison.
fn key_sketch(k: &str) -> u64 {
    let b = k.as_bytes();
    let (first, last) = (b.first().copied().unwrap_or(0), b.last().copied().unwrap_or(0));
    1u64 << ((b.len() as u64 * 5 + u64::from(first) * 9 + u64::from(last) * 15) & 63)
}

fn has_duplicate_keys(entries: &[(Cow<'_, str>, Value<'_>)]) -> bool {
    if entries.len() <= 12 {
        // A key is compared with the earlier ones only when a cheap sketch of
        // it was seen before: distinct keys rarely share one, so most objects
        // need no string comparison.
        let mut seen = 0u64;
        for (i, (k, _)) in entries.iter().enumerate() {
            let bit = key_sketch(k);
            if seen & bit != 0 && entries[..i].iter().any(|(other, _)| other == k) {
                return true;
            }
            seen |= bit;
        }
        return false;
    }
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    entries.iter().any(|(k, _)| !seen.insert(k.as_ref()))
}

/// Finds an unpaired surrogate `\u` escape in text the parser gave up on, reading
/// backslash pairs as escapes; the offset of the first, if any.
fn find_lone_surrogate(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\\', &b[i..]) {
        let at = i + off;
        match b.get(at + 1) {
            Some(b'u') => {
                if let Some(hi) = hex4(b, at + 2) {
                    if (0xDC00..0xE000).contains(&hi) {
                        return Some(at);
                    }
                    if (0xD800..0xDC00).contains(&hi) {
                        let paired = b.get(at + 6) == Some(&b'\\')
                            && b.get(at + 7) == Some(&b'u')
                            && hex4(b, at + 8).is_some_and(|lo| (0xDC00..0xE000).contains(&lo));
                        if !paired {
                            return Some(at);
                        }
                        i = at + 12;
                        continue;
                    }
                }
                i = at + 2;
            }
            Some(_) => i = at + 2,
            None => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> &'static str {
        match parse(text) {
            Ok(_) => "ok",
            Err(ParseError::LoneSurrogate(_)) => "invalid_utf8",
            Err(ParseError::TooDeep(_)) => "too_deep",
            Err(ParseError::Invalid { .. }) => "invalid_json",
        }
    }

    #[test]
    fn accepts_strict_json() {
        for ok in [
            r#"{}"#,
            r#"{"a":1,"b":[true,false,null],"c":"x\"y\u00e9\ud83d\ude00"}"#,
            r#"  [1, -0, 0.5, 1e3, -2.5E-3]  "#,
            r#""\/\b\f\n\r\t""#,
            "{\"a\" : { \"b\" : [ ] } }",
        ] {
            assert_eq!(reason(ok), "ok", "{ok}");
        }
    }

    #[test]
    fn rejects_what_strict_json_rejects() {
        for bad in [
            "",
            "{",
            "{\"a\":1,}",
            "[1,]",
            "{\"a\":NaN}",
            "{\"a\":Infinity}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1}{}",
            "{'a':1}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":1,\"a\":2}",
            "{\"a\":1,\"\\u0061\":2}",
            "{\"a\":1e400}",
            "{\"a\":\"\\x\"}",
            "// c\n{}",
            "\u{feff}{}",
        ] {
            assert_eq!(reason(bad), "invalid_json", "{bad:?}");
        }
    }

    #[test]
    fn depth_limit_counts_the_top_level_as_one() {
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(reason(&ok), "ok");
        assert_eq!(reason(&deep), "too_deep");
        // The parser meets the syntax error first here, so invalid_json wins.
        let broken_then_deep = format!("[1,,{}", "[".repeat(100));
        assert_eq!(reason(&broken_then_deep), "invalid_json");
    }

    #[test]
    fn unpaired_surrogates_are_invalid_utf8_even_after_a_syntax_error() {
        assert_eq!(reason(r#"{"a":"\ud800"}"#), "invalid_utf8");
        assert_eq!(reason(r#"{"a":"\udc00x"}"#), "invalid_utf8");
        assert_eq!(reason(r#"{"a":"\ud800\u0041"}"#), "invalid_utf8");
        assert_eq!(reason(r#"{"a":1,, "b":"\ud800"}"#), "invalid_utf8");
        assert_eq!(reason(r#"{"a":"\\ud800"}"#), "ok");
        assert_eq!(reason(r#"{"a":"\ud83d\ude00"}"#), "ok");
    }

    #[test]
    fn strings_borrow_without_escapes() {
        let v = parse(r#"{"a":"plain","b":"esc\n"}"#).unwrap();
        let o = v.as_object().unwrap();
        assert!(matches!(o.get("a"), Some(Value::String(Cow::Borrowed("plain")))));
        assert!(matches!(o.get("b"), Some(Value::String(Cow::Owned(_)))));
    }

    #[test]
    fn integral_numbers() {
        let n = |s| Number(s).as_i64();
        assert_eq!(n("1767225600000"), Some(1_767_225_600_000));
        assert_eq!(n("1.7672256e12"), Some(1_767_225_600_000));
        assert_eq!(n("3.5"), None);
        assert_eq!(n("1e30"), None);
        assert_eq!(n("99999999999999999999"), None);
    }

    #[test]
    fn large_objects_stay_linear_and_detect_duplicates() {
        let members: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":{i}")).collect();
        let text = format!("{{{}}}", members.join(","));
        assert_eq!(reason(&text), "ok");
        let dup = format!("{{{},\"k7\":1}}", members.join(","));
        assert_eq!(reason(&dup), "invalid_json");
    }

    #[test]
    fn event_member_names_have_distinct_sketches() {
        let names = "type ts tenant id source provider_message_id visitor ip route signature_valid text \
                     session run turn workflow user tool args status duration_ms retries tokens_in \
                     tokens_out cost_usd service level message fields";
        let mut seen = 0u64;
        for name in names.split_whitespace() {
            assert_eq!(seen & key_sketch(name), 0, "{name} shares a sketch bit");
            seen |= key_sketch(name);
        }
        assert_eq!(seen.count_ones(), 28);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn the_parser_rejects_exactly_the_objects_with_a_repeated_name(keys in proptest::collection::vec("[ab]{0,3}", 0..20)) {
            let text = format!("{{{}}}", keys.iter().map(|k| format!("\"{k}\":1")).collect::<Vec<_>>().join(","));
            let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len();
            let rejected = matches!(parse(&text), Err(ParseError::Invalid { what: "duplicate member name", .. }));
            proptest::prop_assert_eq!(rejected, distinct < keys.len(), "{}", text);
        }

        #[test]
        fn duplicates_are_found_whatever_the_sketch(keys in proptest::collection::vec("[ab]{0,3}", 0..14)) {
            let entries: Vec<_> = keys.iter().map(|k| (Cow::Borrowed(k.as_str()), Value::Null)).collect();
            let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len();
            proptest::prop_assert_eq!(has_duplicate_keys(&entries), distinct < keys.len());
        }

        #[test]
        fn the_word_scan_finds_the_first_special_byte(bytes in proptest::array::uniform8(proptest::num::u8::ANY)) {
            let first = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            let mask = special_bytes(u64::from_le_bytes(bytes));
            let found = (mask != 0).then(|| (mask.trailing_zeros() / 8) as usize);
            proptest::prop_assert_eq!(found, first);
        }

        #[test]
        fn strings_read_the_same_by_words_and_by_bytes(s in "[a-z\"\\\\\u{1}\u{e9}]{0,40}") {
            let text = format!("\"{s}\"");
            let parsed = parse(&text).ok();
            let theirs = serde_json::from_str::<String>(&text).ok();
            proptest::prop_assert_eq!(parsed.as_ref().and_then(Value::as_str), theirs.as_deref());
        }

        #[test]
        fn agrees_with_serde_json_on_acceptance(s in r#"[\[\]{}",:0-9a-z\\ .eE+-]{0,40}"#) {
            let ours = parse(&s);
            let theirs = serde_json::from_str::<serde_json::Value>(&s);
            // serde_json accepts duplicate keys; everything else must agree.
            if theirs.is_ok() && ours.is_err() {
                let dup = matches!(ours, Err(ParseError::Invalid { what: "duplicate member name", .. }));
                proptest::prop_assert!(dup, "{:?} rejected: {:?}", s, ours);
            }
            if theirs.is_err() {
                proptest::prop_assert!(ours.is_err(), "{:?} accepted", s);
            }
        }

        #[test]
        fn small_integers_read_as_the_float_parser_reads_them(s in "-?(0|[1-9][0-9]{0,17})") {
            let n = Number(&s);
            let general: f64 = s.parse().unwrap();
            proptest::prop_assert_eq!(n.as_f64().to_bits(), general.to_bits(), "{}", s);
            let mut ours = String::new();
            crate::jcs::write_number(&n, &mut ours);
            let mut slow = String::new();
            crate::jcs::write_f64(general, &mut slow);
            proptest::prop_assert_eq!(ours, slow);
            let exact: i128 = s.parse().unwrap();
            if s.trim_start_matches('-').len() <= 15 {
                proptest::prop_assert_eq!(n.as_i64().map(i128::from), Some(exact));
            }
        }
    }
}
