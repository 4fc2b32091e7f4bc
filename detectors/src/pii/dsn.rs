//! Where the passwords of a [`DSN`](super::secrets::DSN) match lie.
//!
//! The regex finds a URL or connection string; this module reads it the way its
//! driver would, so that the finding's span (what redaction removes) and its
//! preview (what [`mask`](super::mask) shows) agree on every password in it:
//!
//! - `scheme://user:password@host`: the userinfo ends at the last `@`, and the
//!   password may hold `@`, `;` or `:` unescaped;
//! - parameters (`?…&password=…`, `;password=…`, `Password=…;`, `password=… `):
//!   every key whose name ends with `password`, `passwd` or `pwd` is a password
//!   (`sslpassword`, `SSL Password` and `trustStorePassword` hold secrets too),
//!   and a repeated key is covered each time (drivers take the last one).
//!
//! A value ends where its syntax ends it: at `;` in a `;`-separated string (so
//! `&`, `#` and spaces belong to an ADO.NET password), at `&` in a URL (a `#` or
//! `;` in a JDBC password is the password's), at whitespace in a libpq
//! keyword/value string; or at a quote that closes the text the string sits in
//! (`connectionString="…;Password=x" />`). A quoted value runs to its
//! closing quote, whatever it holds: `"…"` and `'…'` (a doubled quote or, as
//! libpq writes it, `\'` stays inside) and, in `;`-separated strings and JDBC
//! URLs, ODBC's `{…}` (`}}` stays inside). The quotes belong to the span.

/// Bytes past a match that a `;`-separated string may still run.
const MAX_RUN: usize = 4096;

/// Bytes a quoted value may run before it counts as unterminated (and is read
/// unquoted): bounds the reading of a line full of open quotes.
const MAX_QUOTED: usize = 1024;

/// Password names; a key ending with one of them holds a password.
const NAMES: [&str; 3] = ["password", "passwd", "pwd"];

/// The password values of the DSN match `text[start..*end]`, as byte ranges of
/// `text`, in order. `*end` grows to the end of the last one when the
/// connection string goes on past the match with another password, until the
/// string read from `start` to `*end` is the string the mask will read. Empty
/// when the match holds no password. Ranges fall on char boundaries.
pub(super) fn passwords(text: &str, start: usize, end: &mut usize) -> Vec<(usize, usize)> {
    // A grown match can read differently (its first value closes its quote);
    // a few rounds settle any real string, and the last reading is kept.
    let mut spans = read_passwords(text, start, end);
    for _ in 0..4 {
        let before = *end;
        let again = read_passwords(text, start, end);
        if *end == before {
            return again;
        }
        spans = again;
    }
    spans
}

fn read_passwords(text: &str, start: usize, end: &mut usize) -> Vec<(usize, usize)> {
    let Some(seg) = text.get(start..*end) else { return Vec::new() };
    if let Some((s, e)) = userinfo_password(seg).or_else(|| oracle_password(seg)) {
        return vec![(start + s, start + e)];
    }
    let form = Form::of(seg);
    let run_end = form.run_end(text, start, *end);
    let run = &text[start..run_end];
    let lower = run.to_ascii_lowercase();
    let limit = floor_boundary(text, (start + MAX_RUN).max(run_end));
    let mut spans = Vec::new();
    for name in NAMES {
        let mut from = 0;
        while let Some(i) = lower[from..].find(name).map(|i| from + i) {
            from = i + name.len();
            let after = &run[from..];
            let eq = after.len() - after.trim_start_matches([' ', '\t']).len();
            if !after[eq..].starts_with('=') {
                continue;
            }
            let value = from + eq + 1;
            let value = start + value + (run[value..].len() - run[value..].trim_start_matches([' ', '\t']).len());
            // Read in `text`, not the run: a value may hold the quote that ended it.
            let value_end =
                form.quoted_end(&text[..limit], value).unwrap_or_else(|| form.unquoted_end(text, value, limit));
            if value_end > value {
                spans.push((value, value_end));
            }
        }
    }
    spans.sort_unstable();
    // A name inside another password's quotes gives a span inside that one.
    spans.dedup_by(|next, kept| {
        let overlaps = next.0 < kept.1;
        if overlaps {
            kept.1 = kept.1.max(next.1);
        }
        overlaps
    });
    if let Some(last) = spans.iter().map(|&(_, e)| e).max() {
        *end = (*end).max(last);
    }
    spans
}

/// The password of `scheme://user:password@host` (the regex's first form, read
/// the same way), as a range of `dsn`.
fn userinfo_password(dsn: &str) -> Option<(usize, usize)> {
    let (scheme, rest) = match dsn.strip_prefix("//") {
        Some(rest) => ("", rest), // scheme-relative
        None => dsn.split_once("://")?,
    };
    let mut chars = scheme.chars();
    let scheme_ok = scheme.is_empty()
        || (chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')));
    if !scheme_ok {
        return None;
    }
    let at = rest.rfind('@')?;
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    if host.chars().any(|c| c.is_whitespace() || "/?#@\"'<>,;()[]{}".contains(c))
        || userinfo.contains(['/', '?', '#', '"', '\'', '<', '>'])
    {
        return None;
    }
    let colon = userinfo.find(':')?;
    let user = &userinfo[..colon];
    if user.contains(['[', ']']) || user.contains(char::is_whitespace) || !spaces_are_inner(&userinfo[colon + 1..]) {
        return None;
    }
    let offset = dsn.len() - rest.len();
    (at > colon + 1).then_some((offset + colon + 1, offset + at))
}

/// A space a URL's password may hold (the regex's `inner_space!`): Unicode
/// whitespace that is neither ASCII nor a line break. A URL cannot hold a space
/// unescaped, so one inside a password is there to split it.
pub(super) fn is_inner_space(c: char) -> bool {
    c.is_whitespace() && !c.is_ascii() && !matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// True when `password` holds no whitespace, or one [`is_inner_space`] between
/// other characters after a part holding an ASCII letter and no `@`
/// (`3000\u{A0}log in` is a port and then text), as the regex's first form
/// reads it.
fn spaces_are_inner(password: &str) -> bool {
    let mut spaces = password.match_indices(char::is_whitespace);
    match (spaces.next(), spaces.next()) {
        (None, _) => true,
        (Some((i, space)), None) => {
            let (before, after) = (&password[..i], &password[i + space.len()..]);
            space.chars().all(is_inner_space)
                && before.bytes().any(|b| b.is_ascii_alphabetic())
                && !before.contains('@')
                && !after.is_empty()
        }
        _ => false,
    }
}

/// The password of Oracle's `jdbc:oracle:thin:user/password@host…` (the regex's
/// second form): from the first `/` to the last `@`, as a range of `dsn`.
fn oracle_password(dsn: &str) -> Option<(usize, usize)> {
    let lower = dsn.get(..16)?.to_ascii_lowercase();
    if !lower.starts_with("jdbc:oracle:") {
        return None;
    }
    let driver_end = 12 + dsn[12..].find(':')? + 1;
    let rest = &dsn[driver_end..];
    let at = rest.rfind('@')?;
    let slash = rest[..at].find('/')?;
    (at > slash + 1).then_some((driver_end + slash + 1, driver_end + at))
}

/// How a parameter string separates its pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `Server=…;Password=…;` (ADO.NET, ODBC, `jdbc:sqlserver:`).
    Semicolons,
    /// `scheme://host/db?user=…&password=…`.
    Url,
    /// `host=… password=…` (libpq).
    Spaces,
}

impl Form {
    /// The form of the string a match `seg` starts: a URL's first separator after
    /// `//`; else `;`-separated when a `;` stands outside its quoted values
    /// (`Server=db Port=1433;Password=a b;` too), else space-separated. The form
    /// can change as a match grows, once at most (a `;` stays in it), and
    /// [`passwords`] reads until it stops changing, so the finder and the mask
    /// (which sees the grown match) read alike.
    fn of(seg: &str) -> Form {
        if let Some(slashes) = seg.find("://").filter(|&i| !seg[..i].contains('=')) {
            let after = &seg[slashes + 3..];
            return match after.find(['?', ';', '&']).map(|i| after.as_bytes()[i]) {
                Some(b';') => Form::Semicolons,
                _ => Form::Url,
            };
        }
        if has_unquoted_semicolon(seg) {
            Form::Semicolons
        } else {
            Form::Spaces
        }
    }

    /// Where the value starting at byte `at` of `s` ends, when it is quoted:
    /// just past its closing quote. `None` for an unquoted or unterminated value
    /// (a line break ends a quote that was never closed), and when the closing
    /// quote is followed by more of a value.
    fn quoted_end(self, s: &str, at: usize) -> Option<usize> {
        let b = s.as_bytes();
        if let Some(end) = escaped_quote_end(&b[..b.len().min(at + MAX_QUOTED)], at) {
            return Some(end);
        }
        let close = match b.get(at)? {
            b'"' => b'"',
            b'\'' => b'\'',
            b'{' if self != Form::Spaces => b'}',
            _ => return None,
        };
        let b = &b[..b.len().min(at + MAX_QUOTED)];
        let mut i = at + 1;
        while let Some(&c) = b.get(i) {
            match c {
                b'\n' | b'\r' => return None,
                b'\\' if close == b'\'' => i += 2,
                _ if c == close && b.get(i + 1) == Some(&close) => i += 2,
                // A value goes on after a quote that closes nothing (`{a}b`).
                _ if c == close => return b.get(i + 1).is_none_or(|&n| ends_quoted(n)).then_some(i + 1),
                _ => i += 1,
            }
        }
        None
    }

    /// Where the unquoted value starting at byte `at` of `text` ends (at most at
    /// `limit`, a char boundary): at its string's separator, or at a quote or
    /// bracket that closes the string the connection string sits in (`"` before
    /// a space, `,`, `/`, `>`, …). A quote inside a value
    /// (`Password=S3cret"Pw9;`) belongs to it, as its driver reads it.
    fn unquoted_end(self, text: &str, at: usize, limit: usize) -> usize {
        let b = text.as_bytes();
        let mut i = at;
        while i < limit {
            let c = b[i];
            let separator = match self {
                Form::Semicolons => matches!(c, b';' | b'\n' | b'\r'),
                Form::Url => c.is_ascii_whitespace() || c == b'&',
                Form::Spaces => c.is_ascii_whitespace(),
            };
            let closes = matches!(c, b'"' | b'\'' | b'<' | b'>') && b.get(i + 1).is_none_or(|&n| closes_string(n));
            if separator || closes {
                break;
            }
            i += 1;
        }
        i
    }

    /// Where the string that a match starting at `start` and ending at `end`
    /// belongs to ends: never before `end`.
    fn run_end(self, text: &str, start: usize, end: usize) -> usize {
        // Nothing past the cap is read, so a long line costs each match at most
        // MAX_RUN bytes, whatever it holds.
        let text = &text[..floor_boundary(text, start + MAX_RUN).max(end)];
        let rest = &text[end..];
        let stop = match self {
            Form::Semicolons => {
                // A quote ends the string unless it opens a value (`Password="…"`).
                let mut at = end;
                loop {
                    match text.as_bytes().get(at) {
                        None => break None,
                        Some(b'"' | b'\'' | b'{') if after_equals(text, at) => match self.quoted_end(text, at) {
                            Some(e) => at = e,
                            None => break Some(at - end),
                        },
                        Some(b'\n' | b'\r' | b'"' | b'\'' | b'<' | b'>') => break Some(at - end),
                        Some(_) => at += 1,
                    }
                }
            }
            Form::Url => rest.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>')),
            Form::Spaces => {
                // Further `key=value` tokens on the same line belong to it.
                let mut at = end;
                loop {
                    let token_start = at + (text[at..].len() - text[at..].trim_start_matches([' ', '\t']).len());
                    let mut token_end = token_start;
                    while let Some(c) = text[token_end..].chars().next() {
                        if c.is_whitespace() {
                            break;
                        }
                        let quoted =
                            if after_equals(text, token_end) { self.quoted_end(text, token_end) } else { None };
                        token_end = quoted.unwrap_or(token_end + c.len_utf8());
                    }
                    if token_end == token_start || !text[token_start..token_end].contains('=') {
                        break;
                    }
                    at = token_end;
                }
                Some(at - end)
            }
        };
        end + stop.unwrap_or(rest.len())
    }
}

/// Whether byte `i` of `s` is the first of a value: `=` before it, spaces allowed.
fn after_equals(s: &str, i: usize) -> bool {
    s.as_bytes()[..i].iter().rev().find(|&&c| c != b' ' && c != b'\t') == Some(&b'=')
}

/// Whether `b` may follow a quoted value: a separator, or the end of a string
/// the connection string is quoted in.
fn ends_quoted(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b';' | b'&' | b'#' | b'"' | b'\'' | b'<' | b'>' | b',' | b')')
}

/// Whether `b`, right after a quote or bracket, shows that the quote closed the
/// text around a connection string (an XML attribute, a JSON string) rather
/// than sat inside a value.
fn closes_string(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'/' | b'>' | b'<' | b',' | b'}' | b']' | b')')
}

/// Whether `seg` holds a `;` outside its quoted values (libpq's
/// `password='a;b'` is still a space-separated string).
fn has_unquoted_semicolon(seg: &str) -> bool {
    let b = seg.as_bytes();
    let mut at = 0;
    while let Some(&c) = b.get(at) {
        match c {
            b';' => return true,
            b'"' | b'\'' | b'{' if after_equals(seg, at) => {
                at = Form::Semicolons.quoted_end(seg, at).unwrap_or(at + 1);
            }
            _ => at += 1,
        }
    }
    false
}

/// A value quoted the way it appears inside a string literal or markup: `\"…\"`,
/// `\'…\'` (a connection string in code or a JSON-encoded log line),
/// `&quot;…&quot;`, `&apos;…&apos;` (XML) or `""…""` (a CSV cell). Where it ends, past the closing
/// quote, if it opens at `at` and closes before a line break within `b`.
fn escaped_quote_end(b: &[u8], at: usize) -> Option<usize> {
    const QUOTES: [&[u8]; 5] = [b"\\\"", b"\\'", b"&quot;", b"&apos;", b"\"\""];
    let rest = b.get(at..)?;
    let quote = QUOTES.iter().find(|q| rest.starts_with(q))?;
    // Quotes doubled as a CSV cell writes them (`""se;cret""`) open a value only
    // when a value character follows: `Password="";` is an empty value.
    if *quote == b"\"\"" && rest.get(2).is_none_or(|&c| c.is_ascii_whitespace() || b";\"',".contains(&c)) {
        return None;
    }
    let body = &rest[quote.len()..];
    let line = body.iter().position(|&c| c == b'\n' || c == b'\r').unwrap_or(body.len());
    let close = body[..line].windows(quote.len()).position(|w| w == *quote)?;
    Some(at + quote.len() + close + quote.len())
}

/// The char boundary at or before `at`, and never past the end of `text`.
pub(super) fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}
