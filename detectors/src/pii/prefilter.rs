//! The literal pre-filter: decides which kinds' regexes run at all.
//!
//! One Aho-Corasick pass over every kind's keywords plus one byte loop counting
//! digits in runs of digits (cards and SSNs have no keyword). Clean text — no keyword,
//! no run of 9+ digits — leaves with an empty set and costs no regex.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::{PiiKind, Scope};

/// Keywords and the kind each one wakes up. Matched ASCII case-insensitively: the
/// regexes decide case, the pre-filter only must never miss.
const KEYWORDS: &[(&str, PiiKind)] = &[
    ("akia", PiiKind::AwsKey),
    ("asia", PiiKind::AwsKey),
    ("abia", PiiKind::AwsKey),
    ("acca", PiiKind::AwsKey),
    ("a3t", PiiKind::AwsKey),
    ("sk-", PiiKind::OpenaiKey),
    ("sk_", PiiKind::StripeKey),
    ("rk_", PiiKind::StripeKey),
    ("ghp_", PiiKind::GithubToken),
    ("gho_", PiiKind::GithubToken),
    ("ghu_", PiiKind::GithubToken),
    ("ghs_", PiiKind::GithubToken),
    ("ghr_", PiiKind::GithubToken),
    ("github_pat_", PiiKind::GithubToken),
    ("xox", PiiKind::SlackToken),
    ("xapp-", PiiKind::SlackToken),
    ("eyj", PiiKind::Jwt),
    ("-----begin", PiiKind::PrivateKey),
    ("://", PiiKind::Dsn),
    ("@", PiiKind::Email),
    ("0x", PiiKind::EthAddress),
    ("+", PiiKind::Phone),
];

/// Kinds the automaton can report (everything but cards and SSNs).
const KEYWORD_KINDS: Scope = {
    let mut s = Scope::empty();
    let mut i = 0;
    while i < KEYWORDS.len() {
        s = s.with(KEYWORDS[i].1);
        i += 1;
    }
    s
};

/// Fewest digits in one run for an SSN (9) and a card (13).
const SSN_DIGITS: u32 = 9;
const CARD_DIGITS: u32 = 13;

/// The compiled keyword automaton.
#[derive(Debug)]
pub(super) struct Prefilter {
    /// `None` only if the automaton failed to build; then every keyword kind runs.
    ac: Option<AhoCorasick>,
}

impl Prefilter {
    pub(super) fn new() -> Prefilter {
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(KEYWORDS.iter().map(|(k, _)| k))
            .ok();
        Prefilter { ac }
    }

    /// The kinds in `scope` worth running on `text`.
    pub(super) fn hits(&self, text: &str, scope: Scope) -> Scope {
        let wanted = scope.intersect(KEYWORD_KINDS);
        let mut hits = Scope::empty();
        if !wanted.is_empty() {
            match &self.ac {
                Some(ac) => {
                    for m in ac.find_overlapping_iter(text) {
                        if let Some(&(_, kind)) = KEYWORDS.get(m.pattern().as_usize()) {
                            hits = hits.with(kind);
                        }
                        if hits.intersect(wanted) == wanted {
                            break;
                        }
                    }
                }
                None => hits = wanted,
            }
        }
        let numeric = scope.contains(PiiKind::Card) || scope.contains(PiiKind::Ssn);
        if numeric {
            let need = if scope.contains(PiiKind::Card) { CARD_DIGITS } else { SSN_DIGITS };
            let most = longest_digit_run(text.as_bytes(), need);
            if most >= SSN_DIGITS {
                hits = hits.with(PiiKind::Ssn);
            }
            if most >= CARD_DIGITS {
                hits = hits.with(PiiKind::Card);
            }
        }
        hits.intersect(scope)
    }
}

/// The most digits in one run of digits joined by single spaces or dashes (so
/// `4111 1111 1111 1111` and `123-45-6789` count whole), stopping early at `enough`.
pub(super) fn longest_digit_run(bytes: &[u8], enough: u32) -> u32 {
    let (mut run, mut most, mut after_digit) = (0u32, 0u32, false);
    for &b in bytes {
        if b.is_ascii_digit() {
            run += 1;
            after_digit = true;
            if run >= enough {
                return run;
            }
        } else if after_digit && (b == b' ' || b == b'-') {
            // One separator may join two digit groups; a second one ends the run.
            after_digit = false;
        } else {
            most = most.max(run);
            run = 0;
            after_digit = false;
        }
    }
    most.max(run)
}
