//! Finders for personal data: emails, phones and Ethereum addresses by regex;
//! cards and SSNs by one walk over runs of digit groups (no regex).

use regex::Regex;

use super::secrets::{bounded, is_placeholder};
use super::{PiiKind, PiiMatch, Scope};

pub(super) const EMAIL: &str =
    r"[\p{L}\p{M}\p{N}._%+\-]+@(?:[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}\-]*[\p{L}\p{M}\p{N}])?\.)+[\p{L}\p{M}]{2,}";
/// E.164 with spaces or dashes, and one group in parentheses as people write an
/// area code or a trunk prefix (`+1 (415) 555-2671`, `+44 (0)20 7946 0958`); the
/// form with parentheses needs 10 to 15 digits in all, counted after the match.
pub(super) const PHONE: &str =
    r"\+[1-9](?:[ -]?[0-9]){0,3}[ -]?\([0-9]{1,5}\)(?:[ -]?[0-9]){4,13}|\+[1-9](?:[ -]?[0-9]){7,14}";
pub(super) const ETH: &str = r"0x[0-9a-fA-F]{40}";

/// Every personal-data pattern (a test proves each one compiles).
#[cfg(test)]
pub(super) const PATTERNS: [&str; 3] = [EMAIL, PHONE, ETH];

/// `scheme://user@host` with no password, the host ending the URL or followed
/// by a port or a path: `text[start..end]` is the URL's user and host, not an
/// email address (`postgres://app@db.internal:5432/app`). A user that is itself
/// an address (`postgres://maria@example.com:pw@db`) is followed by `:` and a
/// password, and stays an email.
fn is_url_user_at_host(text: &str, start: usize, end: usize) -> bool {
    let rest = &text.as_bytes()[end..];
    text[..start].ends_with("//")
        && match rest.first() {
            None => true,
            Some(b) if b.is_ascii_whitespace() || b"/?#\"'>)],".contains(b) => true,
            Some(b':') => rest.get(1).is_some_and(u8::is_ascii_digit),
            Some(_) => false,
        }
}

/// `text[start..end]`, a match of the phone pattern or a part of one ending at
/// a space, is a phone: nothing alphanumeric follows it, and it has 8 to 15
/// digits (10 to 15 with a group in parentheses, which it must close: short
/// runs with one are scores and formulas).
fn is_phone(text: &str, start: usize, end: usize) -> bool {
    let candidate = &text[start..end];
    let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
    let least = if candidate.contains('(') { 10 } else { 8 };
    !text[end..].chars().next().is_some_and(char::is_alphanumeric)
        && (least..=15).contains(&digits)
        && candidate.contains('(') == candidate.contains(')')
        && !candidate.ends_with([' ', '-', '('])
}

/// Digit groups kept per run; a longer run is cut (it is no card or SSN anyway).
const MAX_GROUPS: usize = 16;

/// How far before a bare 9-digit number an `ssn` keyword may stand, in bytes.
const SSN_KEYWORD_WINDOW: usize = 24;

/// The compiled personal-data regexes; `None` where one failed to build.
#[derive(Debug)]
pub(super) struct Personal {
    email: Option<Regex>,
    phone: Option<Regex>,
    eth: Option<Regex>,
}

impl Personal {
    pub(super) fn new() -> Personal {
        Personal { email: Regex::new(EMAIL).ok(), phone: Regex::new(PHONE).ok(), eth: Regex::new(ETH).ok() }
    }

    /// Pushes candidates of the personal kinds in `hits` (unsorted, may overlap).
    pub(super) fn find(&self, text: &str, hits: Scope, out: &mut Vec<PiiMatch>) {
        if hits.contains(PiiKind::Email) {
            for m in self.email.iter().flat_map(|re| re.find_iter(text)) {
                // A local part cannot start with a dot; the domain must end the token.
                let start = m.start() + (m.as_str().len() - m.as_str().trim_start_matches('.').len());
                let next = text[m.end()..].chars().next();
                if !next.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
                    && !text[start..].starts_with('@')
                    && !is_url_user_at_host(text, start, m.end())
                {
                    out.push(PiiMatch { kind: PiiKind::Email, start, end: m.end() });
                }
            }
        }
        if hits.contains(PiiKind::Phone) {
            for m in self.phone.iter().flat_map(|re| re.find_iter(text)) {
                if text[..m.start()].chars().next_back().is_some_and(char::is_alphanumeric) {
                    continue;
                }
                // The pattern reads on into a number a space after the phone
                // (`+14155552671 123-45-6789`): when the whole match is no
                // phone, its longest part ending at a space may be.
                let cuts = m.as_str().rmatch_indices(' ').map(|(i, _)| i);
                let end = std::iter::once(m.as_str().len())
                    .chain(cuts)
                    .map(|len| m.start() + len)
                    .find(|&end| is_phone(text, m.start(), end));
                if let Some(end) = end {
                    out.push(PiiMatch { kind: PiiKind::Phone, start: m.start(), end });
                }
            }
        }
        if hits.contains(PiiKind::EthAddress) {
            for m in self.eth.iter().flat_map(|re| re.find_iter(text)) {
                // 64-hex hashes run on past 40; the zero address is a placeholder.
                if bounded(text, m.start(), m.end()) && !is_placeholder(&m.as_str()[2..]) {
                    out.push(PiiMatch { kind: PiiKind::EthAddress, start: m.start(), end: m.end() });
                }
            }
        }
        if hits.contains(PiiKind::Card) || hits.contains(PiiKind::Ssn) {
            numeric(text, hits, out);
        }
    }
}

/// One run of digit groups joined by single spaces or dashes.
struct Run {
    groups: [(usize, usize); MAX_GROUPS],
    seps: [u8; MAX_GROUPS],
    n: usize,
    /// Nothing number-like or word-like touches the run on the left / right.
    left_ok: bool,
    right_ok: bool,
}

impl Run {
    fn len(&self, g: usize) -> usize {
        self.groups[g].1 - self.groups[g].0
    }
}

/// Walks every run of digits once and pushes cards and SSNs found in it.
fn numeric(text: &str, hits: Scope, out: &mut Vec<PiiMatch>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut run =
            Run { groups: [(0, 0); MAX_GROUPS], seps: [0; MAX_GROUPS], n: 0, left_ok: false, right_ok: false };
        run.left_ok = edge_ok(text[..i].chars().next_back(), i.checked_sub(2).and_then(|j| b.get(j).copied()));
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            run.groups[run.n] = (start, i);
            run.n += 1;
            let joined = i + 1 < b.len() && (b[i] == b' ' || b[i] == b'-') && b[i + 1].is_ascii_digit();
            if !joined || run.n == MAX_GROUPS {
                break;
            }
            run.seps[run.n - 1] = b[i];
            i += 1;
        }
        run.right_ok = edge_ok(text[i..].chars().next(), b.get(i + 1).copied());
        if hits.contains(PiiKind::Ssn) {
            ssn(text, &run, out);
        }
        if hits.contains(PiiKind::Card) {
            cards(text, &run, out);
        }
    }
}

/// A run edge is clean unless a word char touches it or a `.`/`-` continues the
/// number (`1.4111…`, `4111….5`); a comma may separate CSV values.
fn edge_ok(neighbour: Option<char>, beyond: Option<u8>) -> bool {
    match neighbour {
        None => true,
        Some(c) if c.is_alphanumeric() || c == '_' => false,
        Some('.' | '-') => !beyond.is_some_and(|b| b.is_ascii_digit()),
        Some(_) => true,
    }
}

/// The whole run as an SSN (`123-45-6789`, `123 45 6789`, or 9 digits after an
/// `ssn` keyword); else each dashed `ddd-dd-dddd` set off by spaces inside a
/// longer run (`4111… 078-05-1120`, `+1415… 123-45-6789`: numbers a space
/// apart read as one run). Space-joined groups inside a run are not tried:
/// `555 123 45 6789` is more likely a phone.
fn ssn(text: &str, run: &Run, out: &mut Vec<PiiMatch>) {
    let shape = |a: usize| [run.len(a), run.len(a + 1), run.len(a + 2)] == [3, 2, 4];
    if run.left_ok && run.right_ok {
        let (start, end) = (run.groups[0].0, run.groups[run.n - 1].1);
        let dashed = run.n == 3 && run.seps[0] == run.seps[1] && shape(0);
        let bare = run.n == 1 && run.len(0) == 9 && ssn_keyword_before(text, start);
        if dashed || bare {
            push_valid_ssn(text, start, end, out);
            return;
        }
    }
    for a in 0..run.n.saturating_sub(2) {
        let z = a + 2;
        let left = if a == 0 { run.left_ok } else { run.seps[a - 1] == b' ' };
        let right = if z == run.n - 1 { run.right_ok } else { run.seps[z] == b' ' };
        if left && right && run.seps[a] == b'-' && run.seps[a + 1] == b'-' && shape(a) && run.n > 3 {
            push_valid_ssn(text, run.groups[a].0, run.groups[z].1, out);
        }
    }
}

/// Pushes `text[start..end]` (9 digits, maybe separated) if its groups are a
/// valid SSN's: no 000, 666 or 9xx area, no 00 group, no 0000 serial.
fn push_valid_ssn(text: &str, start: usize, end: usize, out: &mut Vec<PiiMatch>) {
    let mut d = text.as_bytes()[start..end].iter().filter(|b| b.is_ascii_digit()).map(|b| b - b'0');
    let mut num = |k: usize| d.by_ref().take(k).fold(0u32, |acc, x| acc * 10 + u32::from(x));
    let (area, group, serial) = (num(3), num(2), num(4));
    if area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 {
        out.push(PiiMatch { kind: PiiKind::Ssn, start, end });
    }
}

/// `ssn` or `social security` shortly before `at` (a bare 9 digits is otherwise
/// just a number).
fn ssn_keyword_before(text: &str, at: usize) -> bool {
    let mut lo = at.saturating_sub(SSN_KEYWORD_WINDOW);
    while !text.is_char_boundary(lo) {
        lo += 1;
    }
    let window = &text.as_bytes()[lo..at];
    [&b"ssn"[..], b"social security", b"social_security", b"social-security"]
        .iter()
        .any(|k| window.windows(k.len()).any(|w| w.eq_ignore_ascii_case(k)))
}

/// Tries the whole run, then sub-runs of its groups, longest first; a sub-run
/// must be set off by spaces (a dash-joined neighbour makes it part of one number).
fn cards(text: &str, run: &Run, out: &mut Vec<PiiMatch>) {
    let mut a = 0;
    'outer: while a < run.n {
        let left = if a == 0 { run.left_ok } else { run.seps[a - 1] == b' ' };
        if left {
            for z in (a..run.n).rev() {
                let right = if z == run.n - 1 { run.right_ok } else { run.seps[z] == b' ' };
                if right && is_card(text, run, a, z) {
                    out.push(PiiMatch { kind: PiiKind::Card, start: run.groups[a].0, end: run.groups[z].1 });
                    a = z + 1;
                    continue 'outer;
                }
            }
        }
        a += 1;
    }
}

/// Groups `a..=z` form a card: one separator kind, a card grouping, 13–19 digits,
/// a real issuer prefix and a valid Luhn check digit.
fn is_card(text: &str, run: &Run, a: usize, z: usize) -> bool {
    if z > a && run.seps[a..z].iter().any(|&s| s != run.seps[a]) {
        return false;
    }
    let lens = (a..=z).map(|g| run.len(g));
    let count: usize = lens.clone().sum();
    if !(13..=19).contains(&count) {
        return false;
    }
    let n = z - a + 1;
    let grouped = n == 1
        || (lens.clone().take(n - 1).all(|l| l == 4) && (1..=4).contains(&run.len(z)))
        || (n == 3 && run.len(a) == 4 && run.len(a + 1) == 6 && (4..=5).contains(&run.len(z)));
    if !grouped {
        return false;
    }
    let mut digits = [0u8; 19];
    let bytes = text.as_bytes()[run.groups[a].0..run.groups[z].1].iter().filter(|b| b.is_ascii_digit());
    for (slot, b) in digits.iter_mut().zip(bytes) {
        *slot = b - b'0';
    }
    let digits = &digits[..count];
    known_issuer(digits) && luhn(digits)
}

/// The issuer ranges of the card networks in use: Visa, Mastercard, Amex,
/// Discover, JCB, Diners, UnionPay, Maestro, Mir, RuPay, Troy, Verve, Elo and
/// UATP. Luhn alone passes one number in ten, so this keeps order ids, tracking
/// numbers and 13-digit millisecond timestamps (`1767225600009`) out, while every
/// real card, whichever network issued it, still counts (docs/choices.md).
fn known_issuer(d: &[u8]) -> bool {
    let prefix = |k: usize| d.iter().take(k).fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    match d.first() {
        Some(4 | 6) => true,
        Some(5) => (50..=58).contains(&prefix(2)),
        Some(3) => {
            matches!(prefix(2), 34 | 36 | 37 | 38)
                || (300..=305).contains(&prefix(3))
                || (3528..=3589).contains(&prefix(4))
        }
        // Mastercard's 2-series and Mir.
        Some(2) => (2221..=2720).contains(&prefix(4)) || (2200..=2204).contains(&prefix(4)),
        // UATP: always 15 digits.
        Some(1) => d.len() == 15,
        // RuPay's 81 and 82 series.
        Some(8) => matches!(prefix(2), 81 | 82),
        // Troy.
        Some(9) => prefix(4) == 9792,
        _ => false,
    }
}

/// The Luhn mod-10 check.
pub(super) fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}
