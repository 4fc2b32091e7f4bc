//! Finding URLs in a value and judging each one's host as a WHATWG parser finds it for a special
//! scheme: slashes and backslashes after the scheme skipped, the authority ending at the first
//! `/`, `\`, `?` or `#`, the userinfo ending at the LAST `@` before that, the host ending at a
//! `:` outside brackets, then percent-decoding, IDNA and the IPv4 number syntax.
//!
//! Two readings, each flagged if internal:
//! * the whole trimmed value as one URL, exactly as WHATWG reads it (tabs and newlines removed,
//!   spaces and quotes allowed in the userinfo), since a fetch tool would receive it so;
//! * every `scheme:` anywhere in the value but inside another URL, read as prose: the URL also
//!   ends at whitespace, quotes, `<`, `>` and backticks, and a host with trailing punctuation
//!   (`127.0.0.1),`) is judged on its leading host characters too.
//!
//! Linear time: every `:` is a candidate, so the searches for the authority's end, the last `@`
//! and the host's end go through forward-only cursors that never rescan (candidates' positions
//! only grow), and a host longer than any real one is skipped unread.

use std::borrow::Cow;

use memchr::{memchr, memchr_iter, memrchr};

use super::ip::{classify_v4, classify_v6, judge_ascii_host, parse_v6};
use super::InternalTarget;

/// A DNS name is at most 253 bytes; three times that percent-encoded, plus slack.
const MAX_HOST: usize = 1024;
/// An IPv6 literal with brackets is at most 47 bytes; the rest allows a zone id.
const MAX_BRACKETED: usize = 160;

/// How a scheme's authority is introduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// http, https, ws, wss, ftp: any run of `/` and `\` (even none) before the authority.
    Special,
    /// file: exactly two slashes before the host, else there is no host.
    File,
    /// Any other scheme: an authority only after `//`.
    Other,
}

/// The internal target of the first URL in `value` that has one (see the module doc).
pub(super) fn first_internal_url(value: &str) -> Option<InternalTarget> {
    let b = value.as_bytes();
    let has_colon = memchr(b':', b).is_some();
    if !has_colon && memchr(b'/', b).is_none() && memchr(b'\\', b).is_none() {
        return None;
    }
    whole_url(value).or_else(|| if has_colon { prose_urls(b) } else { None })
}

/// The whole trimmed value read as one URL, or as a scheme-relative `//host` reference.
fn whole_url(value: &str) -> Option<InternalTarget> {
    let v = value.trim_matches(|c: char| c <= ' ');
    let cleaned: Cow<[u8]> = if v.bytes().any(|c| matches!(c, b'\t' | b'\n' | b'\r')) {
        Cow::Owned(v.bytes().filter(|c| !matches!(c, b'\t' | b'\n' | b'\r')).collect())
    } else {
        Cow::Borrowed(v.as_bytes())
    };
    let b = &*cleaned;
    let start = if b.len() >= 2 && is_slash(b[0]) && is_slash(b[1]) {
        authority_start(b, 0, Kind::Special)?
    } else {
        let colon = memchr(b':', b)?;
        let scheme = &b[..colon];
        let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic) && scheme.iter().all(|&c| is_scheme_char(c));
        if !valid {
            return None;
        }
        authority_start(b, colon + 1, scheme_kind(scheme))?
    };
    Scanner::new(b, whatwg_end).judge_from(start)
}

/// Every `scheme:` in the value, read as prose, except inside another URL: a URL's
/// path, query and fragment are not judged (design §5), so
/// `https://example.com/login?next=http://localhost/` is the host `example.com`.
/// Each URL's end is looked for from where the last one ended, so this stays linear.
fn prose_urls(b: &[u8]) -> Option<InternalTarget> {
    let mut scanner = Scanner::new(b, prose_end);
    let mut inside_until = 0;
    for colon in memchr_iter(b':', b) {
        if colon < inside_until {
            continue;
        }
        let Some(kind) = scheme_before(b, colon) else {
            continue;
        };
        let Some(start) = authority_start(b, colon + 1, kind) else {
            continue;
        };
        if let Some(t) = scanner.judge_from(start) {
            return Some(t);
        }
        let tail = b.get(start..).unwrap_or_default();
        inside_until = start + tail.iter().position(|&c| ends_prose_url(c)).unwrap_or(tail.len());
    }
    None
}

fn is_slash(c: u8) -> bool {
    c == b'/' || c == b'\\'
}

fn is_scheme_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')
}

/// Where a URL's authority ends for a parser given the URL alone.
fn whatwg_end(c: u8) -> bool {
    matches!(c, b'/' | b'\\' | b'?' | b'#')
}

/// Where an authority ends inside prose, JSON or code.
fn prose_end(c: u8) -> bool {
    whatwg_end(c) || ends_prose_url(c)
}

/// Where a whole URL ends inside prose, JSON or code.
fn ends_prose_url(c: u8) -> bool {
    c <= b' ' || matches!(c, b'"' | b'\'' | b'`' | b'<' | b'>' | 0x7f)
}

fn scheme_kind(scheme: &[u8]) -> Kind {
    let is = |s: &str| scheme.eq_ignore_ascii_case(s.as_bytes());
    if is("file") {
        Kind::File
    } else if is("http") || is("https") || is("ws") || is("wss") || is("ftp") {
        Kind::Special
    } else {
        Kind::Other
    }
}

/// The scheme ending at the `:` at `colon`: the run of scheme characters before it, starting
/// at its first letter (so `(http:`, `1http:` and `"http:` all give `http`). Each run stops at
/// the previous `:`, so walking back is linear overall.
fn scheme_before(b: &[u8], colon: usize) -> Option<Kind> {
    let mut s = colon;
    while s > 0 && is_scheme_char(b[s - 1]) {
        s -= 1;
    }
    while s < colon && !b[s].is_ascii_alphabetic() {
        s += 1;
    }
    (s < colon).then(|| scheme_kind(&b[s..colon]))
}

/// Where the authority begins, `after` being just past the scheme's `:`; `None` when this
/// scheme's URL has no authority here.
fn authority_start(b: &[u8], after: usize, kind: Kind) -> Option<usize> {
    let rest = b.get(after..)?;
    match kind {
        Kind::Special => Some(after + rest.iter().take_while(|&&c| is_slash(c)).count()),
        Kind::File => (rest.len() >= 2 && is_slash(rest[0]) && is_slash(rest[1])).then_some(after + 2),
        Kind::Other => rest.starts_with(b"//").then_some(after + 2),
    }
}

/// A forward-only "next byte matching a predicate" search: the answer for `p` is reused for
/// any later `p` up to it, so monotone queries cost one pass in total.
#[derive(Default)]
struct Next {
    from: usize,
    hit: usize,
    primed: bool,
}

impl Next {
    fn find(&mut self, b: &[u8], p: usize, pred: impl Fn(u8) -> bool) -> usize {
        if !(self.primed && self.from <= p && p <= self.hit) {
            let tail = b.get(p..).unwrap_or_default();
            self.from = p;
            self.hit = tail.iter().position(|&c| pred(c)).map_or(b.len(), |i| p + i);
            self.primed = true;
        }
        self.hit
    }
}

/// The last `@` before a growing end position, found without rescanning.
#[derive(Default)]
struct LastAt {
    scanned: usize,
    last: Option<usize>,
}

impl LastAt {
    /// The last `@` in `b[start..end]`.
    fn within(&mut self, b: &[u8], start: usize, end: usize) -> Option<usize> {
        if end < self.scanned {
            // Not reached by monotone callers; still correct, just not amortised.
            return memrchr(b'@', b.get(start..end)?).map(|i| start + i);
        }
        if let Some(i) = memrchr(b'@', b.get(self.scanned..end)?) {
            self.last = Some(self.scanned + i);
        }
        self.scanned = end;
        self.last.filter(|&a| a >= start)
    }
}

/// Host extraction over one byte string, shared by all the candidate URLs in it.
struct Scanner<'a> {
    b: &'a [u8],
    is_end: fn(u8) -> bool,
    end: Next,
    colon: Next,
    close: Next,
    at: LastAt,
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8], is_end: fn(u8) -> bool) -> Self {
        Scanner {
            b,
            is_end,
            end: Next::default(),
            colon: Next::default(),
            close: Next::default(),
            at: LastAt::default(),
        }
    }

    /// Judges the host of the authority starting at `start`.
    fn judge_from(&mut self, start: usize) -> Option<InternalTarget> {
        let b = self.b;
        let auth_end = self.end.find(b, start, self.is_end);
        let host_start = self.at.within(b, start, auth_end).map_or(start, |a| a + 1);
        if host_start >= auth_end {
            return None;
        }
        if b[host_start] == b'[' {
            let close = self.close.find(b, host_start, |c| c == b']');
            if close >= auth_end || close - host_start > MAX_BRACKETED {
                return None;
            }
            return judge_bracketed(&b[host_start + 1..close]);
        }
        let host_end = self.colon.find(b, host_start, |c| c == b':').min(auth_end);
        if host_end - host_start > MAX_HOST {
            return None;
        }
        judge_host(&b[host_start..host_end])
    }
}

/// Bytes a host name or IPv4 spelling is made of; anything else is read as trailing prose.
fn is_plain_host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')
}

/// Judges a host as written, then, if that is not internal, its leading run of host
/// characters (prose punctuation cut off).
fn judge_host(host: &[u8]) -> Option<InternalTarget> {
    judge_written_host(host).or_else(|| {
        let keep = host.iter().take_while(|&&c| is_plain_host_char(c) || c == b'%' || c >= 0x80).count();
        (keep > 0 && keep < host.len()).then(|| judge_written_host(&host[..keep])).flatten()
    })
}

/// WHATWG host parsing for a special scheme. Plain ASCII hosts need no IDNA and go through
/// the allocation-free parser; the rest go through the `url` crate, with a percent-decoding
/// fallback for hosts it refuses.
fn judge_written_host(host: &[u8]) -> Option<InternalTarget> {
    if host.is_empty() {
        return None;
    }
    if host.iter().all(|&c| is_plain_host_char(c)) {
        return judge_ascii_host(host);
    }
    match url::Host::parse(&String::from_utf8_lossy(host)) {
        Ok(url::Host::Domain(d)) => judge_with_cut(d.as_bytes()),
        Ok(url::Host::Ipv4(a)) => classify_v4(a.into()),
        Ok(url::Host::Ipv6(a)) => classify_v6(a),
        Err(_) => judge_with_cut(&Cow::<[u8]>::from(percent_encoding::percent_decode(host))),
    }
}

/// A decoded host, then its leading plain run: what decoding revealed as junk (`%00`, `%2c`)
/// cuts the host where C-string or lenient parsers would.
fn judge_with_cut(host: &[u8]) -> Option<InternalTarget> {
    judge_ascii_host(host).or_else(|| {
        let keep = host.iter().take_while(|&&c| is_plain_host_char(c)).count();
        (keep > 0 && keep < host.len()).then(|| judge_ascii_host(&host[..keep])).flatten()
    })
}

/// An IPv6 literal from between brackets: WHATWG's parser first, then the system syntax with
/// a zone id (`fe80::1%25eth0`), then percent-decoded; an IPv4 address in brackets too, as
/// some non-WHATWG parsers strip brackets before connecting.
fn judge_bracketed(inner: &[u8]) -> Option<InternalTarget> {
    let mut bracketed = Vec::with_capacity(inner.len() + 2);
    bracketed.push(b'[');
    bracketed.extend_from_slice(inner);
    bracketed.push(b']');
    if let Ok(url::Host::Ipv6(a)) = url::Host::parse(&String::from_utf8_lossy(&bracketed)) {
        return classify_v6(a);
    }
    let decoded: Cow<[u8]> = percent_encoding::percent_decode(inner).into();
    match parse_v6(inner).or_else(|| parse_v6(&decoded)) {
        Some(a) => classify_v6(a),
        None => judge_ascii_host(&decoded),
    }
}
