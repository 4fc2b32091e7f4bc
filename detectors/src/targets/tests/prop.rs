//! Property tests: no panic on any input, and agreement with the `url` crate wherever a WHATWG
//! parser would connect to an internal host.

use proptest::prelude::*;

use super::super::ip::{classify_name, classify_v4, classify_v6};
use super::super::InternalTarget::Loopback;
use super::super::{file_secret, internal_target};

/// Host spellings, internal and not, including encoded, full-width and ignorable-character ones.
const HOSTS: &[&str] = &[
    "127.0.0.1",
    "127.1",
    "0x7f.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f.0x0.0.1",
    "0x0000007f.1",
    "127.0.0.1.",
    "127.0.0.1..",
    "127\t.0.0.1",
    "127.0.0.1%2e",
    "%31%32%37.0.0.1",
    "\u{ff11}\u{ff12}\u{ff17}.0.0.1",
    "localhost",
    "LOCALHOST.",
    "a.localhost",
    "l\u{ad}ocalhost",
    "%6cocalhost",
    "LocalHost%2E",
    "x.internal",
    "metadata.google.internal",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[fe80::1]",
    "[fd00:ec2::254]",
    "10.0.0.1",
    "169.254.169.254",
    "0",
    "0.0.0.0",
    "evil.com",
    "8.8.8.8",
    "1.2.3.4.5",
];

proptest! {
    #[test]
    fn never_panics_on_any_string(s in ".*") {
        let _ = internal_target(&s);
        let _ = file_secret(&s);
    }

    #[test]
    fn never_panics_on_url_like_strings(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "http", "HTTPS", "file", "gopher", ":", "/", "//", "\\", "@", "#", "?", "[", "]", "%",
                "%2", "%25", "%2e", "%c0%ae", "..", ".", "0x", "7f", "127", "0", "1", "::", "ffff",
                "localhost", ".internal", "\t", "\n", " ", "\"", "id_rsa", ".env", "/etc", "\u{ff0e}", "é",
            ]),
            0..40,
        )
    ) {
        let s = parts.concat();
        let _ = internal_target(&s);
        let _ = file_secret(&s);
    }

    /// Whenever the `url` crate (a WHATWG parser) gives an internal host, so do we, whatever
    /// userinfo, slashes, port and tail surround it.
    #[test]
    fn agrees_with_whatwg_on_internal_hosts(
        scheme in prop::sample::select(vec![
            "http://", "http:", "http:/\\", "HTTP:\\\\", "ws://", "https:///", "ftp:\t//", "wss:",
        ]),
        user in prop::collection::vec(prop::sample::select(vec![
            "a", "evil.com", "@", ":", "%40", "#", "?", "\\", " ", "[", "]", "127.0.0.1", "\t", "/", "x:y",
        ]), 0..4),
        at in any::<bool>(),
        host in prop::sample::select(HOSTS),
        port in prop::sample::select(vec!["", ":80", ":", ":x", "::"]),
        tail in prop::collection::vec(prop::sample::select(vec![
            "/", "\\", "?", "#", "@", "evil.com", " ", "%40", ":", "a", "\n",
        ]), 0..4),
    ) {
        let at = if at { "@" } else { "" };
        let s = format!("{scheme}{}{at}{host}{port}{}", user.concat(), tail.concat());
        if let Ok(parsed) = url::Url::parse(&s) {
            let want = match parsed.host() {
                Some(url::Host::Ipv4(a)) => classify_v4(a.into()),
                Some(url::Host::Ipv6(a)) => classify_v6(a),
                Some(url::Host::Domain(d)) => classify_name(d.as_bytes(), true),
                None => None,
            };
            if want.is_some() {
                prop_assert_eq!(internal_target(&s), want, "{:?}", s);
            }
        }
    }

    #[test]
    fn public_dotted_quads_are_not_internal(a in 11u8..=99, b: u8, c: u8, d: u8) {
        let ip = format!("{a}.{b}.{c}.{d}");
        prop_assert_eq!(internal_target(&ip), None);
        prop_assert_eq!(internal_target(&format!("http://{ip}/")), None);
    }

    #[test]
    fn loopback_spellings_agree(d: u8, x in 0u32..(1 << 24)) {
        let addr = (127u32 << 24) | x;
        for url in [
            format!("http://127.0.0.{d}/"),
            format!("http://{addr}/"),
            format!("http://{addr:#x}/"),
            format!("http://0{addr:o}/"),
            format!("http://127.{x}/"),
        ] {
            prop_assert_eq!(internal_target(&url), Some(Loopback), "{}", url);
        }
    }
}
