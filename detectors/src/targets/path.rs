//! File-system secrets in an argument: `..` segments, `/etc`, `/root`, dotenv files and SSH
//! private keys, after percent-decoding (repeated, at most five times) and reading `\` as `/`.
//!
//! Matching is ASCII case-insensitive: the target may sit on a case-insensitive file system
//! (macOS, Windows), and `/ETC/` or `.ENV` in a benign argument is rare. Names are matched as
//! whole path segments, bounded by `/`, the ends of the value, or punctuation that cannot be
//! part of a file name in an argument (whitespace, quotes, `=`, `:`, `?`, `&`, brackets, …), so
//! `a..b`, `...`, `.environment`, `process.env` and `apples/etc` do not count.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memchr3};

use super::FileSecret;

/// The design's bound on decoding rounds: enough for any real double encoding, and keeps the
/// work linear.
const MAX_DECODE_ROUNDS: usize = 5;

/// SSH private key file names; `_sk` (FIDO) and `_work`-style suffixes are caught by the
/// segment rule in [`ssh_key_at`].
const SSH_KEYS: [&[u8]; 4] = [b"id_rsa", b"id_dsa", b"id_ecdsa", b"id_ed25519"];

/// The leftmost file-secret reference in `value`.
pub(super) fn first_file_secret(value: &str) -> Option<FileSecret> {
    let raw = value.as_bytes();
    // Every pattern needs one of these bytes: clean words and numbers stop here.
    if memchr3(b'.', b'/', b'\\', raw).is_none() && memchr2(b'%', b'_', raw).is_none() {
        return None;
    }
    let mut text: Cow<[u8]> = Cow::Borrowed(raw);
    for _ in 0..MAX_DECODE_ROUNDS {
        match decode_once(&text) {
            Some(next) => text = Cow::Owned(next),
            None => break,
        }
    }
    scan(&text)
}

/// One round of percent-decoding; `None` when nothing changes. Besides `%XX`, decodes IIS-style
/// `%u00XX` for ASCII and the overlong UTF-8 forms of `.`, `/` and `\` (`%c0%ae`), which old
/// servers decoded into path punctuation.
fn decode_once(s: &[u8]) -> Option<Vec<u8>> {
    memchr(b'%', s)?;
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == b'%' {
            if let Some(v) = hex_at(s, i + 1, 2) {
                out.push(v as u8);
                i += 3;
                continue;
            }
            if matches!(s.get(i + 1), Some(b'u' | b'U')) {
                if let Some(v @ 0..=0x7f) = hex_at(s, i + 2, 4) {
                    out.push(v as u8);
                    i += 6;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    let out = fix_overlong(out);
    (out != s).then_some(out)
}

/// The value of `len` hex digits at `s[at..]`.
fn hex_at(s: &[u8], at: usize, len: usize) -> Option<u32> {
    let digits = s.get(at..at + len)?;
    digits.iter().try_fold(0u32, |acc, &d| Some(acc * 16 + (d as char).to_digit(16)?))
}

/// Replaces overlong two-byte encodings of `.`, `/`, `\` with the byte itself.
fn fix_overlong(s: Vec<u8>) -> Vec<u8> {
    if memchr2(0xc0, 0xc1, &s).is_none() {
        return s;
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let pair = s.get(i..i + 2);
        let ascii = match pair {
            Some([0xc0, 0xae]) => Some(b'.'),
            Some([0xc0, 0xaf]) => Some(b'/'),
            Some([0xc1, 0x9c]) => Some(b'\\'),
            _ => None,
        };
        match ascii {
            Some(a) => {
                out.push(a);
                i += 2;
            }
            None => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

/// The byte at `i`, with `\` read as `/` and ASCII letters lowercased.
fn at(s: &[u8], i: usize) -> Option<u8> {
    s.get(i).map(|&c| if c == b'\\' { b'/' } else { c.to_ascii_lowercase() })
}

/// Ends a path segment: a separator, or punctuation that cannot belong to a file name as an
/// argument carries it.
fn is_boundary(c: u8) -> bool {
    c <= b' '
        || matches!(
            c,
            b'/' | b'\\'
                | b'"'
                | b'\''
                | b'`'
                | b'='
                | b':'
                | b';'
                | b','
                | b'?'
                | b'#'
                | b'&'
                | b'|'
                | b'<'
                | b'>'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'@'
                | b'*'
                | b'!'
                | b'+'
                | 0x7f
        )
}

/// Whether position `i` ends a segment (a boundary byte or the end of the value).
fn ends_segment(s: &[u8], i: usize) -> bool {
    s.get(i).is_none_or(|&c| is_boundary(c))
}

/// `s[i..]` starts with `word` (lowercase ASCII), with `\` read as `/`.
fn starts_with_at(s: &[u8], i: usize, word: &[u8]) -> bool {
    word.iter().enumerate().all(|(k, &w)| at(s, i + k) == Some(w))
}

/// One left-to-right pass; each check looks a bounded distance ahead, except the SSH-key check,
/// which reads to its segment's end once per segment.
fn scan(s: &[u8]) -> Option<FileSecret> {
    for i in 0..s.len() {
        let c = at(s, i)?;
        let seg_start = i == 0 || ends_segment(s, i - 1);
        if c == b'/' {
            if let Some(found) = system_dir_at(s, i, seg_start) {
                return Some(found);
            }
        }
        if !seg_start {
            continue;
        }
        if starts_with_at(s, i, b"..") && ends_segment(s, i + 2) {
            return Some(FileSecret::ParentSegment);
        }
        if starts_with_at(s, i, b".env") && (ends_segment(s, i + 4) || at(s, i + 4) == Some(b'.')) {
            return Some(FileSecret::DotEnv);
        }
        if c == b'i' && ssh_key_at(s, i) {
            return Some(FileSecret::SshKey);
        }
    }
    None
}

/// `/etc/` or `/root/` anywhere (the design's rule); also `/etc` or `/root` ending the path
/// (`ls /etc`, a value of exactly `/root`) when the `/` itself starts a path, so that prose such
/// as `apples/etc` is not read as one.
fn system_dir_at(s: &[u8], i: usize, slash_starts_path: bool) -> Option<FileSecret> {
    for (dir, kind) in [(&b"/etc"[..], FileSecret::Etc), (&b"/root"[..], FileSecret::Root)] {
        if starts_with_at(s, i, dir) {
            let after = i + dir.len();
            if at(s, after) == Some(b'/') || (slash_starts_path && ends_segment(s, after)) {
                return Some(kind);
            }
        }
    }
    None
}

/// An SSH private key name starting segment `s[i..]`: the bare name, or it followed by `.`, `_`
/// or `-` and more (`id_rsa.bak`, `id_ed25519_sk`, `id_rsa_work`), but not a `.pub` public key,
/// which is no secret.
fn ssh_key_at(s: &[u8], i: usize) -> bool {
    let Some(name) = SSH_KEYS.iter().find(|k| starts_with_at(s, i, k)) else {
        return false;
    };
    let after = i + name.len();
    if !(ends_segment(s, after) || matches!(at(s, after), Some(b'.' | b'_' | b'-'))) {
        return false;
    }
    let mut end = after;
    while !ends_segment(s, end) {
        end += 1;
    }
    while end > after && s[end - 1] == b'.' {
        end -= 1;
    }
    !(end >= after + 4 && s[end - 4..end].eq_ignore_ascii_case(b".pub"))
}
