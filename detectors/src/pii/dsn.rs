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
//! `&`, `#` and spaces belong to an ADO.NET password), at `&`, `;` or `#` in a
//! URL, at whitespace in a libpq keyword/value string.

/// Bytes past a match that a `;`-separated string may still run.
const MAX_RUN: usize = 4096;

/// Password names; a key ending with one of them holds a password.
const NAMES: [&str; 3] = ["password", "passwd", "pwd"];

/// The password values of the DSN match `text[start..*end]`, as byte ranges of
/// `text`, in order. `*end` grows to the end of the last one when the
/// connection string goes on past the match with another password. Empty when
/// the match holds no password. Ranges fall on char boundaries.
pub(super) fn passwords(text: &str, start: usize, end: &mut usize) -> Vec<(usize, usize)> {
    let Some(seg) = text.get(start..*end) else { return Vec::new() };
    if let Some((s, e)) = userinfo_password(seg) {
        return vec![(start + s, start + e)];
    }
    let form = Form::of(seg);
    let run_end = form.run_end(text, start, *end);
    let run = &text[start..run_end];
    let lower = run.to_ascii_lowercase();
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
            let value = value + (run[value..].len() - run[value..].trim_start_matches([' ', '\t']).len());
            let value_end = run[value..].find(|c| form.ends_value(c)).map_or(run.len(), |n| value + n);
            if value_end > value {
                spans.push((start + value, start + value_end));
            }
        }
    }
    spans.sort_unstable();
    spans.dedup();
    if let Some(last) = spans.iter().map(|&(_, e)| e).max() {
        *end = (*end).max(last);
    }
    spans
}

/// The password of `scheme://user:password@host` (the regex's first form, read
/// the same way), as a range of `dsn`.
fn userinfo_password(dsn: &str) -> Option<(usize, usize)> {
    let (scheme, rest) = dsn.split_once("://")?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
    if !scheme_ok {
        return None;
    }
    let at = rest.rfind('@')?;
    let (userinfo, host) = (&rest[..at], &rest[at + 1..]);
    if host.chars().any(|c| c.is_whitespace() || "/?#@\"'<>,;()[]{}".contains(c))
        || userinfo.chars().any(|c| c.is_whitespace() || "/?#\"'<>".contains(c))
    {
        return None;
    }
    let colon = userinfo.find(':')?;
    if userinfo[..colon].contains(['@', '[', ']']) {
        return None;
    }
    let offset = dsn.len() - rest.len();
    (at > colon + 1).then_some((offset + colon + 1, offset + at))
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
    fn of(seg: &str) -> Form {
        if seg.contains(';') {
            Form::Semicolons
        } else if seg.contains("://") {
            Form::Url
        } else {
            Form::Spaces
        }
    }

    fn ends_value(self, c: char) -> bool {
        match self {
            Form::Semicolons => matches!(c, ';' | '\n' | '\r'),
            Form::Url => c.is_whitespace() || matches!(c, '&' | ';' | '#' | '"' | '\'' | '<' | '>'),
            Form::Spaces => c.is_whitespace(),
        }
    }

    /// Where the string that a match starting at `start` and ending at `end`
    /// belongs to ends: never before `end`.
    fn run_end(self, text: &str, start: usize, end: usize) -> usize {
        let rest = &text[end..];
        let stop = match self {
            Form::Semicolons => rest.find(['\n', '\r', '"', '\'', '<', '>']),
            Form::Url => rest.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>')),
            Form::Spaces => {
                // Further `key=value` tokens on the same line belong to it.
                let mut at = 0;
                loop {
                    let token_start = at + (rest[at..].len() - rest[at..].trim_start_matches([' ', '\t']).len());
                    let token_end =
                        rest[token_start..].find(char::is_whitespace).map_or(rest.len(), |n| token_start + n);
                    if token_end == token_start || !rest[token_start..token_end].contains('=') {
                        break;
                    }
                    at = token_end;
                }
                Some(at)
            }
        };
        let mut run_end = end + stop.unwrap_or(rest.len());
        let cap = start + MAX_RUN;
        if run_end > cap && cap > end {
            run_end = cap;
            while !text.is_char_boundary(run_end) {
                run_end -= 1;
            }
        }
        run_end.max(end)
    }
}
