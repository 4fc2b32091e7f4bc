//! The whole-value rule: an argument that, trimmed, is itself an internal address or name
//! (optionally with a `:port`), as a `host` parameter would carry it. Allocation-free for ASCII.

use super::ip::{classify_name, classify_v4, classify_v6, ends_in_number, parse_v4, parse_v6};
use super::InternalTarget;

/// Longer than any host name (253) plus brackets, zone id and port: cannot be a bare host.
const MAX_WHOLE: usize = 320;

/// The whole-value verdict for `value` (see the module doc).
pub(super) fn whole_value(value: &str) -> Option<InternalTarget> {
    let v = value.trim();
    if v.is_empty() || v.len() > MAX_WHOLE {
        return None;
    }
    if !v.is_ascii() {
        return non_ascii(v);
    }
    let b = v.as_bytes();
    if !b.iter().all(|&c| c.is_ascii_alphanumeric() || b"-._:[]%".contains(&c)) {
        return None;
    }
    if let Some(rest) = b.strip_prefix(b"[") {
        let close = memchr::memchr(b']', rest)?;
        if !(close + 1 == rest.len() || is_port(&rest[close + 1..])) {
            return None;
        }
        return parse_v6(&rest[..close]).and_then(classify_v6);
    }
    let colons = memchr::memchr_iter(b':', b).count();
    if colons >= 2 {
        return parse_v6(b).and_then(classify_v6);
    }
    let host = match memchr::memchr(b':', b) {
        Some(i) if is_port(&b[i..]) => &b[..i],
        Some(_) => return None,
        None => b,
    };
    if ends_in_number(host) {
        let v4 = parse_v4(host)?;
        if looks_like_address(v4.parts) {
            return classify_v4(v4.addr);
        }
        return None;
    }
    classify_name(host, false)
}

/// `:` followed by one to five digits.
fn is_port(s: &[u8]) -> bool {
    matches!(s.split_first(), Some((b':', d)) if (1..=5).contains(&d.len()) && d.iter().all(u8::is_ascii_digit))
}

/// Whether a WHATWG IPv4 spelling is meant as an address rather than a number: a dotted
/// quad only (any part may be octal or hex, `0x7f.0.0.1`), as design §5 says. A shortened
/// (`127.1`) or dotless (`0x7f000001`, `2130706433`) spelling is an address in a URL's host,
/// but as a whole value it is as likely a price (`127.50`), a version or a date.
fn looks_like_address(parts: usize) -> bool {
    parts == 4
}

/// Full-width digits and dots, or an internationalised spelling of a name: let IDNA map it
/// (through the `url` crate), then apply the same rules.
fn non_ascii(v: &str) -> Option<InternalTarget> {
    if v.chars().any(|c| c.is_whitespace() || "/\\@?#:".contains(c)) {
        return None;
    }
    match url::Host::parse(v).ok()? {
        url::Host::Domain(d) => classify_name(d.as_bytes(), false),
        url::Host::Ipv4(a) => {
            let dots = v.chars().filter(|c| matches!(c, '.' | '\u{3002}' | '\u{ff0e}' | '\u{ff61}')).count();
            let trailing = v.ends_with(['.', '\u{3002}', '\u{ff0e}', '\u{ff61}']);
            let parts = dots + 1 - usize::from(trailing && dots > 0);
            looks_like_address(parts).then(|| classify_v4(u32::from(a))).flatten()
        }
        url::Host::Ipv6(a) => classify_v6(a),
    }
}
