//! Finders for the 8 secret kinds: API keys and tokens, JWTs, private keys, DSNs.
//!
//! The regex crate has no look-around, so word boundaries, placeholders and the
//! JWT/DSN structure are checked by hand on each candidate.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use regex::Regex;

use super::{dsn, PiiKind, PiiMatch, Scope};

pub(super) const AWS: &str = r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}";
pub(super) const OPENAI: &str = r"sk-[A-Za-z0-9_-]{20,}";
pub(super) const STRIPE: &str = r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}";
pub(super) const GITHUB: &str = r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}";
pub(super) const SLACK: &str = r"(?:xox[a-z]-|xapp-|xoxe\.xox[a-z]-)[A-Za-z0-9-]{10,}";
pub(super) const JWT: &str = r"eyJ[A-Za-z0-9_-]{2,}={0,2}\.[A-Za-z0-9_-]{2,}={0,2}(?:\.[A-Za-z0-9_-]*)?";
pub(super) const PEM: &str = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----";
/// A quoted value in a connection string: `"…"` or `'…'` (a doubled quote or a
/// backslash escape stays inside) or ODBC's `{…}` (`}}` stays inside).
///
/// An unquoted value never starts with a quote or `{`, so the two readings never
/// both match at one place: were the unquoted `{a` a match while the braced
/// reading still looked for its `}`, the search would read ahead to the end of
/// the line at every such match, quadratic on a line of `Pwd={a;`.
macro_rules! quoted {
    () => {
        r#""(?:[^"\r\n]|"")*"|'(?:[^'\\\r\n]|''|\\.)*'|\{(?:[^}\r\n]|\}\})*\}"#
    };
}

/// `Server=…`, `host=…`: the pair that names where a connection string goes.
macro_rules! server_pair {
    () => {
        concat!(
            r#"(?-u:\b)(?:server|host|hostaddr|data source|address|addr)[ \t]*=[ \t]*(?:"#,
            quoted!(),
            r#"|[^;\s"'<>={][^;\s"'<>=]*)"#
        )
    };
}

/// `Password=…`, `pwd=…`, `ConnectionPassword=…`: a key ending in a password's name.
macro_rules! password_pair {
    () => {
        concat!(
            r#"(?-u:\b)[a-z_]{0,40}(?:password|passwd|pwd)[ \t]*=[ \t]*(?:"#,
            quoted!(),
            r#"|[^;\s"'<>{][^;\s"'<>]*)"#
        )
    };
}

/// Up to 8 more pairs between the server's and the password's, and a separator.
macro_rules! other_pairs {
    () => {
        concat!(
            r#"(?:[; \t]+[a-z][a-z ]{0,30}?[ \t]*=[ \t]*(?:"#,
            quoted!(),
            r#"|(?:[^;\s"'<>={][^;\s"'<>=]*)?)){0,8}?[; \t]+"#
        )
    };
}

/// One space inside a URL's password ([`dsn::is_inner_space`]): Unicode
/// whitespace but ASCII whitespace and the line breaks.
macro_rules! inner_space {
    () => {
        r"[\s&&[^\t\n\x0B\x0C\r \x{85}\x{2028}\x{2029}]]"
    };
}

/// A URL or connection string with a password, in four forms:
/// - `scheme://user:password@host`, or `//user:password@host` without a scheme
///   (as in `https://u:p@https://v:q@h`); the user may hold `@` (Azure's
///   `admin@server`). A password may hold `@` unescaped
///   (`u:p@ss@host`): the userinfo ends at the last `@` of the authority, as URL
///   parsers read it, so no part of it is taken for the host and left in a preview.
///   A URL cannot hold a space unescaped, so a space inside a password is a
///   disguise: a password may hold one Unicode space that is neither ASCII nor
///   a line break ([`dsn::is_inner_space`]: no-break, thin, ideographic)
///   between other characters, when the part before it holds an ASCII letter
///   and no `@`. So `u:pa\u{A0}ss@host` is one password and no `pa` is left
///   behind, while `host:3000\u{A0}…@` (a port), `host:3000を参照\u{3000}…@`
///   (CJK prose), `host:Main\u{2009}Page\u{2009}by\u{2009}bob@` (spaced words)
///   and `u:p@db\u{A0}ops@x.io` (a DSN ending at `db`) read as text after a URL.
///   A plain space still ends a password;
/// - Oracle's `jdbc:oracle:thin:user/password@host:port:sid`, whose password
///   may hold one such space too (after `/` there is no port to mistake);
/// - a URL with a password parameter, as JDBC writes them
///   (`jdbc:postgresql://db/app?user=a&password=…`, `jdbc:sqlserver://db;password=…`);
/// - keyword/value strings naming a server and a password, in either order
///   (ADO.NET `Server=db;User ID=sa;Password=…;`, libpq `host=db password=…`).
///
/// A value may be quoted (`"…"`, `'…'`, ODBC's `{…}`) and then hold `;` and spaces;
/// [`dsn`] reads the quotes the same way.
pub(super) const DSN: &str = concat!(
    r#"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//[^\s:/?#"'<>\[\]]*:"#,
    r#"(?:[^\s/?#@"'<>]*[A-Za-z][^\s/?#@"'<>]*"#,
    inner_space!(),
    r#")?[^\s/?#"'<>]+@[^\s/?#@"'<>,;()\[\]{}]*"#,
    r#"|(?i:jdbc:oracle:(?:thin|oci8?|kprb):)[^\s/@:"'<>]+/(?:[^\s@"'<>]+"#,
    inner_space!(),
    r#")?[^\s@"'<>]+@[^\s"'<>,;()\[\]{}]*"#,
    r#"|[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9+.\-]+:)?//[^\s"'<>?;#]*[?;&][^\s"'<>#]*?"#,
    r#"(?i:password|passwd|pwd)=(?:\{(?:[^}\r\n]|\}\})*\}|[^\s&;"'<>#{][^\s&;"'<>#]*)"#,
    "|(?i:",
    server_pair!(),
    other_pairs!(),
    password_pair!(),
    ")|(?i:",
    password_pair!(),
    other_pairs!(),
    server_pair!(),
    ")",
);

/// Every secret pattern (a test proves each one compiles).
#[cfg(test)]
pub(super) const PATTERNS: [&str; 8] = [AWS, OPENAI, STRIPE, GITHUB, SLACK, JWT, PEM, DSN];

/// A JWT part longer than this is not decoded (bounds the allocation).
const MAX_JWT_PART: usize = 16 * 1024;

/// The compiled secret regexes; `None` where a regex failed to build (kind skipped).
#[derive(Debug)]
pub(super) struct Secrets {
    aws: Option<Regex>,
    openai: Option<Regex>,
    stripe: Option<Regex>,
    github: Option<Regex>,
    slack: Option<Regex>,
    jwt: Option<Regex>,
    pem: Option<Regex>,
    dsn: Option<Regex>,
    /// `password`, `passwd`, `pwd` or `jdbc:oracle:` in any case: a text without
    /// a URL must name a password (or be Oracle's `user/password@host`) before
    /// the connection-string regex runs.
    dsn_markers: Option<aho_corasick::AhoCorasick>,
}

impl Secrets {
    pub(super) fn new() -> Secrets {
        let re = |p: &str| Regex::new(p).ok();
        Secrets {
            aws: re(AWS),
            openai: re(OPENAI),
            stripe: re(STRIPE),
            github: re(GITHUB),
            slack: re(SLACK),
            jwt: re(JWT),
            pem: re(PEM),
            dsn: re(DSN),
            dsn_markers: aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(["password", "passwd", "pwd", "jdbc:oracle:"])
                .ok(),
        }
    }

    /// Pushes candidates of the secret kinds in `hits` (unsorted, may overlap).
    pub(super) fn find(&self, text: &str, hits: Scope, out: &mut Vec<PiiMatch>) {
        let tokens = [
            (PiiKind::AwsKey, &self.aws),
            (PiiKind::OpenaiKey, &self.openai),
            (PiiKind::StripeKey, &self.stripe),
            (PiiKind::GithubToken, &self.github),
            (PiiKind::SlackToken, &self.slack),
        ];
        for (kind, re) in tokens {
            if !hits.contains(kind) {
                continue;
            }
            for m in re.iter().flat_map(|re| re.find_iter(text)) {
                // Unlike other candidates, a prefixed token may follow `_`
                // (`KEY_AKIA…`, `token_ghp_…`): its prefix marks where it starts.
                let b = text.as_bytes();
                let starts_clean = m.start().checked_sub(1).is_none_or(|i| b[i] == b'_' || !is_word(b[i]));
                let ends_clean = !b.get(m.end()).copied().is_some_and(is_word);
                if starts_clean && ends_clean && !is_placeholder(variable_part(kind, m.as_str())) {
                    out.push(PiiMatch { kind, start: m.start(), end: m.end() });
                }
            }
        }
        if hits.contains(PiiKind::Jwt) {
            for m in self.jwt.iter().flat_map(|re| re.find_iter(text)) {
                let before_ok = !text[..m.start()].bytes().next_back().is_some_and(is_b64url);
                if before_ok && is_jwt(m.as_str()) {
                    out.push(PiiMatch { kind: PiiKind::Jwt, start: m.start(), end: m.end() });
                }
            }
        }
        if hits.contains(PiiKind::PrivateKey) {
            for m in self.pem.iter().flat_map(|re| re.find_iter(text)) {
                let end = key_body_end(text, m.end());
                out.push(PiiMatch { kind: PiiKind::PrivateKey, start: m.start(), end });
            }
        }
        if hits.contains(PiiKind::Dsn)
            && (text.contains("://") || self.dsn_markers.as_ref().is_none_or(|a| a.is_match(text)))
        {
            if let Some(re) = &self.dsn {
                find_dsns(re, text, out);
            }
        }
    }
}

/// The connection-string regex searches windows of this many bytes. At a
/// match, the search reads ahead while a longer reading may still match (an
/// open quote looking for its close), so on a long line of near-misses an
/// unbounded search would read to the end of the line at every match.
const DSN_WINDOW: usize = 4096;
/// Windows overlap by this much, so a connection string up to this long is
/// seen whole in one of them; the reader (`dsn::passwords`) reads past a
/// window anyway.
const DSN_OVERLAP: usize = 1024;

/// Pushes every connection string with a password that is not a placeholder.
fn find_dsns(re: &Regex, text: &str, out: &mut Vec<PiiMatch>) {
    let mut covered = 0;
    let mut from = 0;
    loop {
        let window_end = dsn::floor_boundary(text, from + DSN_WINDOW);
        let window = &text[..window_end];
        let mut at = from;
        while let Some(m) = re.find_at(window, at) {
            at = m.end();
            if m.start() < covered {
                continue; // inside the previous string, read past its match
            }
            // A scheme-relative `//user:pw@host` counts right after another
            // URL or inside a word (`https://u:p@https://v:q@h`), not after a
            // space or `;` where `//TODO:fix@later` is a code comment.
            let before = text[..m.start()].bytes().next_back();
            if m.as_str().starts_with("//")
                && !before.is_some_and(|b| b.is_ascii_alphanumeric() || b":./-_".contains(&b))
            {
                continue;
            }
            let mut end = m.end();
            let passwords = dsn::passwords(text, m.start(), &mut end);
            if passwords.iter().any(|&(s, e)| !is_placeholder_password(&text[s..e])) {
                out.push(PiiMatch { kind: PiiKind::Dsn, start: m.start(), end });
            }
            // Every password of the string was read, found or a placeholder:
            // a match inside it would read them again (a line of `Password=$x;`
            // would cost a run's reading per match).
            covered = end;
        }
        if window_end == text.len() {
            return;
        }
        let mut next = window_end.saturating_sub(DSN_OVERLAP).max(covered).max(from + 1);
        while !text.is_char_boundary(next) {
            next += 1;
        }
        from = next;
    }
}

/// Alnum or `_`: a neighbour like that makes the candidate part of a longer token.
pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_b64url(b: u8) -> bool {
    is_word(b) || b == b'-'
}

/// No word byte directly before `start` or at `end`.
pub(super) fn bounded(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let before = start.checked_sub(1).and_then(|i| b.get(i).copied());
    !before.is_some_and(is_word) && !b.get(end).copied().is_some_and(is_word)
}

/// The part of a token after its fixed prefix.
fn variable_part(kind: PiiKind, value: &str) -> &str {
    let rest = match kind {
        PiiKind::AwsKey => value.get(4..),
        PiiKind::StripeKey => value.get(8..),
        PiiKind::GithubToken => value.strip_prefix("github_pat_").or_else(|| value.get(4..)),
        PiiKind::SlackToken => value.get(if value.starts_with("xoxe.") { 10 } else { 5 }..),
        PiiKind::OpenaiKey => {
            // `sk-proj-`, `sk-ant-api03-`, ...: skip short lowercase segments.
            let mut rest = value.get(3..).unwrap_or("");
            for _ in 0..3 {
                match rest.split_once('-') {
                    Some((seg, tail))
                        if seg.len() <= 12 && seg.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
                    {
                        rest = tail
                    }
                    _ => break,
                }
            }
            Some(rest)
        }
        _ => Some(value),
    };
    rest.unwrap_or("")
}

/// Empty, or one repeated character once separators are ignored (`XXXX`, `x-x-x`).
pub(super) fn is_placeholder(variable: &str) -> bool {
    let mut chars = variable.chars().filter(|&c| c != '-' && c != '_');
    match chars.next() {
        None => true,
        Some(first) => chars.all(|c| c == first),
    }
}

/// `****`, `<password>`, `${PASSWORD}`, `{{pw}}`, `{db_password}`, `{0}`, or
/// empty, quoted or not: documentation, not a password.
///
/// ODBC braces a password that holds `;` (`PWD={S3c;ret}`) and templates brace a
/// name (`PWD={password}`): braces around anything but a bare name, or a one- or
/// two-digit index, hold a password.
fn is_placeholder_password(pw: &str) -> bool {
    let pw = ["\\\"", "\\'", "&quot;", "&apos;", "\"", "'"]
        .iter()
        .find_map(|&q| pw.strip_prefix(q)?.strip_suffix(q))
        .unwrap_or(pw);
    if let Some(inner) = pw.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        let name = inner.bytes().all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b'-'));
        let index = inner.len() <= 2 && inner.bytes().all(|b| b.is_ascii_digit());
        return inner.starts_with('{') || name || index;
    }
    pw.is_empty()
        || (pw.chars().count() > 1 && is_placeholder(pw))
        || pw.starts_with(['$', '<', '{'])
        || is_masked_word(pw)
        || is_path(pw)
}

/// `/srv/app`, `~/work`: logfmt's `pwd=` is the working directory.
fn is_path(pw: &str) -> bool {
    (pw.starts_with('/') || pw.starts_with("~/"))
        && pw.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-~".contains(&b))
}

/// `[FILTERED]`, `REDACTED`, `masked`: what a log writes where it removed a password.
fn is_masked_word(pw: &str) -> bool {
    let word = pw.strip_prefix('[').and_then(|p| p.strip_suffix(']')).unwrap_or(pw);
    ["filtered", "redacted", "masked", "hidden", "removed", "omitted"].iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether the first two dot-separated parts decode to JSON objects.
fn is_jwt(candidate: &str) -> bool {
    let mut parts = candidate.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else { return false };
    is_json_object(header) && is_json_object(payload)
}

fn is_json_object(part: &str) -> bool {
    let part = part.trim_end_matches('=');
    if part.len() > MAX_JWT_PART {
        return false;
    }
    match URL_SAFE_NO_PAD.decode(part) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// Where a private key that starts with a header ending at `from` ends: through
/// the `-----END …-----` line when that is the next `-----`, else the end of the
/// base64/whitespace run after the header. Redaction must remove the body too.
fn key_body_end(text: &str, from: usize) -> usize {
    let rest = &text.as_bytes()[from..];
    if let Some(i) = memchr::memmem::find(rest, b"-----") {
        if rest[i..].starts_with(b"-----END") {
            let label = i + 8;
            let line_end = memchr::memchr(b'\n', &rest[label..]).map_or(rest.len(), |n| label + n);
            if let Some(j) = memchr::memmem::find(&rest[label..line_end], b"-----") {
                return from + label + j + 5;
            }
        }
    }
    // The body is base64 and whitespace; a blank line after some body ends it.
    let mut body = rest.len();
    let (mut seen, mut blank_line) = (false, false);
    for (i, &b) in rest.iter().enumerate() {
        let ends = !(b.is_ascii_alphanumeric() || b"+/= \t\r\n".contains(&b)) || (b == b'\n' && seen && blank_line);
        if ends {
            body = i;
            break;
        }
        if b == b'\n' {
            blank_line = true;
        } else if !b.is_ascii_whitespace() {
            (seen, blank_line) = (true, false);
        }
    }
    let trimmed = rest[..body].iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |p| p + 1);
    from + trimmed
}
