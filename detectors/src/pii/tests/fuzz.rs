//! A proptest-free fuzz: pseudo-random strings must never panic and must yield
//! sorted, non-overlapping matches on char boundaries.

use super::super::*;

/// Pieces biased toward the detectors' triggers so their code paths run.
const PIECES: &[&str] = &[
    "a",
    "Z",
    "x",
    "0",
    "1",
    "4",
    "9",
    "-",
    " ",
    "@",
    ".",
    "+",
    ":",
    "/",
    "_",
    "=",
    "\n",
    "é",
    "ñ",
    "✓",
    "电",
    "😀",
    // Disguises the scanner folds (zero-width space, no-break space, full-width 4).
    "\u{200B}",
    "\u{A0}",
    "\u{FF14}",
    "sk-",
    "AKIA",
    "ghp_",
    "xoxb-",
    "eyJ",
    "0x",
    "://",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END",
    "4111",
    "1111",
    "123-45-",
    "6789",
    "ssn ",
    "eyJhbGciOiJub25lIn0",
    "mail.com",
    "pw@",
    "ab",
    "FF",
    // Connection strings: keys, separators and the password names.
    "password=",
    "Pwd =",
    "sslpassword=",
    "host=",
    "Server=",
    ";",
    "&",
    "?",
    "#",
    "'",
    "\"",
    "{",
    "}",
    "\\",
    "\\\"",
    "&quot;",
    // Spaces a URL's password runs on through, and placeholder shapes.
    "\u{3000}",
    "\u{2009}",
    "$",
    "$(",
    "<",
    ">",
    "jdbc:oracle:thin:",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Checks one text's findings; returns how many are connection strings.
fn check(scanner: &PiiScanner, text: &str, scope: Scope) -> usize {
    let mut out = Vec::new();
    scanner.scan(text, scope, &mut out);
    let mut outer: Option<PiiMatch> = None;
    for m in &out {
        assert!(m.start < m.end && m.end <= text.len(), "{text:?} {m:?}");
        assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end), "{text:?} {m:?}");
        assert!(scope.contains(m.kind));
        match outer {
            // Only a secret of another kind may overlap, and only wholly inside a secret.
            Some(o) if m.start < o.end => assert!(
                m.start >= o.start && m.end <= o.end && m.kind.is_secret() && o.kind.is_secret() && m.kind != o.kind,
                "overlap or unsorted in {text:?}: {out:?}"
            ),
            Some(o) => assert!(m.start >= o.end, "unsorted in {text:?}: {out:?}"),
            None => {}
        }
        if outer.is_none_or(|o| m.start >= o.end) {
            outer = Some(*m);
        }
        let preview = mask(m.kind, &text[m.start..m.end]);
        if m.kind == PiiKind::Dsn {
            // A disguised text's connection strings were found in its folded
            // copy, whose reading may end elsewhere; the preview reads the
            // value as found either way, so no password it reads may show.
            if matches!(canonical(text), std::borrow::Cow::Borrowed(_)) {
                let mut end = m.end;
                dsn::passwords(text, m.start, &mut end);
                // (It may cover more: a finding overlapping it joins its span.)
                assert!(end <= m.end, "the finding already covers every password: {text:?}");
            }
            let value = &text[m.start..m.end];
            let mut value_end = value.len();
            let passwords: Vec<(usize, usize)> = dsn::passwords(value, 0, &mut value_end)
                .into_iter()
                .filter(|&(_, e)| e <= value.len())
                .map(|(s, e)| (m.start + s, m.start + e))
                .collect();
            // What the preview may show: the string without its passwords
            // (a password can be spelt like a key name beside it).
            let mut kept = String::new();
            let mut at = m.start;
            for &(s, e) in &passwords {
                kept.push_str(&text[at..s]);
                kept.push('\0');
                at = e;
            }
            kept.push_str(&text[at..m.end]);
            for (s, e) in passwords {
                let pw = &text[s..e];
                assert!(pw.len() < 4 || kept.contains(pw) || !preview.contains(pw), "{text:?}: {preview}");
            }
        }
    }
    let red = redact(text, &out);
    assert!(out.is_empty() || red.contains("[REDACTED:"));
    out.iter().filter(|m| m.kind == PiiKind::Dsn).count()
}

#[test]
fn random_strings_never_panic() {
    let scanner = PiiScanner::new();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut text = String::new();
    let mut connection_strings = 0;
    for i in 0..2000 {
        text.clear();
        let len = (rng.next() % 40) as usize;
        for _ in 0..len {
            text.push_str(PIECES[(rng.next() % PIECES.len() as u64) as usize]);
        }
        let scope = if i % 2 == 0 { Scope::ALL } else { Scope::SECRETS_CARDS_SSN };
        connection_strings += check(&scanner, &text, scope);
    }
    assert!(connection_strings > 0, "the pieces should make some connection strings");
}

#[test]
fn mask_never_panics_on_odd_values() {
    for kind in PiiKind::ALL {
        for v in ["", "é", "@", "://@", "-----BEGIN ", "0x", "+", "ü@", "1234", "😀😀😀😀😀😀😀😀😀😀😀😀😀"]
        {
            let m = mask(kind, v);
            assert!(v.chars().count() < 2 || !m.contains(v) || v == "@", "{kind:?} {v:?} {m}");
        }
    }
}
