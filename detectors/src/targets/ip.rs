//! Address and name classification, and the WHATWG IPv4 number syntax (`127.1`, `0x7f.1`,
//! `017700000001`, `2130706433`), written over bytes so the whole-value check needs no
//! allocation.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::InternalTarget;

/// Cloud metadata endpoints reached by IPv4 address (AWS/GCP/Azure, Alibaba, Oracle).
const METADATA_V4: [u32; 3] = [
    u32::from_be_bytes([169, 254, 169, 254]),
    u32::from_be_bytes([100, 100, 100, 200]),
    u32::from_be_bytes([192, 0, 0, 192]),
];

/// AWS's IPv6 instance-metadata endpoint.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// What the WHATWG IPv4 parser made of a host, plus how many parts it was spelled in: the
/// whole-value rule takes only a dotted quad.
#[derive(Clone, Copy, Debug)]
pub(super) struct V4 {
    pub addr: u32,
    /// Number of dot-separated parts after dropping one trailing empty part.
    pub parts: usize,
}

/// Classifies an IPv4 address; metadata endpoints are checked before the ranges holding them.
pub(super) fn classify_v4(addr: u32) -> Option<InternalTarget> {
    if METADATA_V4.contains(&addr) {
        return Some(InternalTarget::Metadata);
    }
    let [a, b, _, _] = addr.to_be_bytes();
    match (a, b) {
        (0, _) => Some(InternalTarget::Unspecified),
        (127, _) => Some(InternalTarget::Loopback),
        (10, _) | (192, 168) => Some(InternalTarget::Private),
        (172, 16..=31) => Some(InternalTarget::Private),
        (169, 254) => Some(InternalTarget::LinkLocal),
        _ => None,
    }
}

/// Classifies an IPv6 address; IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible
/// (`::a.b.c.d`) addresses are judged by the IPv4 address they carry.
pub(super) fn classify_v6(addr: Ipv6Addr) -> Option<InternalTarget> {
    if addr == METADATA_V6 {
        return Some(InternalTarget::Metadata);
    }
    if addr.is_unspecified() {
        return Some(InternalTarget::Unspecified);
    }
    if addr.is_loopback() {
        return Some(InternalTarget::Loopback);
    }
    let seg = addr.segments();
    if seg[..5] == [0; 5] && (seg[5] == 0 || seg[5] == 0xffff) {
        let o = addr.octets();
        return classify_v4(u32::from(Ipv4Addr::new(o[12], o[13], o[14], o[15])));
    }
    match seg[0] {
        0xfc00..=0xfdff => Some(InternalTarget::UniqueLocal),
        0xfe80..=0xfebf => Some(InternalTarget::LinkLocal),
        _ => None,
    }
}

/// Classifies a host name, case-insensitively and ignoring trailing dots. `in_url` also admits
/// GCE's short `metadata` name, which as a whole argument value is just an ordinary word.
pub(super) fn classify_name(name: &[u8], in_url: bool) -> Option<InternalTarget> {
    let mut end = name.len();
    while end > 0 && name[end - 1] == b'.' {
        end -= 1;
    }
    let n = &name[..end];
    let is = |s: &str| n.eq_ignore_ascii_case(s.as_bytes());
    if is("metadata.google.internal") || (in_url && is("metadata")) {
        return Some(InternalTarget::Metadata);
    }
    if is("localhost")
        || is("ip6-localhost")
        || is("ip6-loopback")
        || is("localhost.localdomain")
        || has_subdomain_of(n, b".localhost")
    {
        return Some(InternalTarget::Localhost);
    }
    if has_subdomain_of(n, b".internal") {
        return Some(InternalTarget::InternalName);
    }
    None
}

/// `name` ends with `suffix` (which starts with a dot) and has a non-empty label before it.
fn has_subdomain_of(name: &[u8], suffix: &[u8]) -> bool {
    name.len() > suffix.len()
        && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        && name[name.len() - suffix.len() - 1] != b'.'
}

/// WHATWG "ends in a number": decides whether a host is parsed as IPv4 (and so either is an
/// address or is invalid) rather than treated as a domain name.
pub(super) fn ends_in_number(host: &[u8]) -> bool {
    let trimmed = match host.strip_suffix(b".") {
        Some(rest) if !rest.is_empty() => rest,
        Some(_) => return false,
        None => host,
    };
    let last = match memchr::memrchr(b'.', trimmed) {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    };
    (!last.is_empty() && last.iter().all(u8::is_ascii_digit)) || ipv4_number(last).is_some()
}

/// WHATWG IPv4 number parser: decimal, `0x` hex or leading-zero octal. Values past `u32` are
/// clamped to `u32::MAX as u64 + 1`, which every range check then rejects.
fn ipv4_number(part: &[u8]) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if part.len() >= 2 && part[0] == b'0' && (part[1] | 0x20) == b'x' {
        (&part[2..], 16)
    } else if part.len() >= 2 && part[0] == b'0' {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    const CLAMP: u64 = u32::MAX as u64 + 1;
    let mut value: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)?;
        value = (value * u64::from(radix) + u64::from(d)).min(CLAMP);
    }
    Some(value)
}

/// WHATWG IPv4 parser over an ASCII host (`None` = not a valid IPv4 host). Callers decide
/// first, with [`ends_in_number`], that the host is meant as IPv4 at all.
pub(super) fn parse_v4(host: &[u8]) -> Option<V4> {
    let host = match host.strip_suffix(b".") {
        Some(rest) if !rest.is_empty() => rest,
        _ => host,
    };
    let mut nums = [0u64; 4];
    let mut parts = 0;
    for part in host.split(|&c| c == b'.') {
        if parts == 4 {
            return None;
        }
        nums[parts] = ipv4_number(part)?;
        parts += 1;
    }
    let (last, init) = nums[..parts].split_last()?;
    if init.iter().any(|&n| n > 255) || *last >= 1u64 << (8 * (5 - parts)) {
        return None;
    }
    let mut addr = *last;
    for (i, &n) in init.iter().enumerate() {
        addr += n << (8 * (3 - i));
    }
    Some(V4 { addr: u32::try_from(addr).ok()?, parts })
}

/// Parses an IPv6 literal (no brackets) with an optional `%zone`, which WHATWG rejects but
/// system resolvers accept; `None` if it is not one.
pub(super) fn parse_v6(text: &[u8]) -> Option<Ipv6Addr> {
    let addr = match memchr::memchr(b'%', text) {
        Some(i) if i > 0 => &text[..i],
        _ => text,
    };
    std::str::from_utf8(addr).ok()?.parse().ok()
}

/// Judges an ASCII host already lowercased or not, percent-decoded, without IDNA: IPv4 when it
/// ends in a number, else a name. The fast path for plain hosts and the fallback for hosts the
/// `url` crate refuses.
pub(super) fn judge_ascii_host(host: &[u8]) -> Option<InternalTarget> {
    if ends_in_number(host) {
        parse_v4(host).and_then(|v| classify_v4(v.addr))
    } else {
        classify_name(host, true)
    }
}
