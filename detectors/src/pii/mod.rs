//! Finds secrets and personal data in free text.
//!
//! Secrets: AWS key ids, OpenAI-style `sk-` keys, Stripe keys, GitHub tokens, Slack
//! tokens, JWTs, PEM/PGP private keys and URLs carrying a password. Personal data:
//! emails, E.164 phone numbers, US SSNs, payment cards (Luhn + issuer prefix) and
//! Ethereum addresses.
//!
//! The promise: findings are byte spans and kinds only; nothing here returns or logs
//! a matched value — callers show [`mask`]ed previews or [`redact`]ed text. Clean
//! text costs one pass over its bytes (keywords and digits) and runs no regex: each kind's
//! regex runs only when its literal keyword appeared (the gitleaks approach).

mod dsn;
mod fold;
mod mask;
mod personal;
mod prefilter;
mod secrets;
#[cfg(test)]
mod tests;

pub use self::fold::{canonical, fingerprint_form};
pub use self::mask::{mask, mask_credential_assignments, redact};

use self::prefilter::Prefilter;

/// One kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    /// AWS access key id (`AKIA…`, `ASIA…`).
    AwsKey,
    /// OpenAI/Anthropic-style `sk-` key.
    OpenaiKey,
    /// Stripe secret or restricted key.
    StripeKey,
    /// GitHub token (`ghp_`, `github_pat_`, …).
    GithubToken,
    /// Slack token (`xoxb-`, `xapp-`, …).
    SlackToken,
    /// JSON Web Token.
    Jwt,
    /// PEM or PGP private key, header and body.
    PrivateKey,
    /// URL or connection string with a password.
    Dsn,
    /// Email address.
    Email,
    /// E.164 phone number.
    Phone,
    /// US social security number.
    Ssn,
    /// Payment card number.
    Card,
    /// Ethereum address.
    EthAddress,
}

impl PiiKind {
    /// Every kind, secrets first.
    pub const ALL: [PiiKind; 13] = [
        PiiKind::AwsKey,
        PiiKind::OpenaiKey,
        PiiKind::StripeKey,
        PiiKind::GithubToken,
        PiiKind::SlackToken,
        PiiKind::Jwt,
        PiiKind::PrivateKey,
        PiiKind::Dsn,
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::Ssn,
        PiiKind::Card,
        PiiKind::EthAddress,
    ];

    /// The snake_case name used in findings and redaction markers.
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::AwsKey => "aws_key",
            PiiKind::OpenaiKey => "openai_key",
            PiiKind::StripeKey => "stripe_key",
            PiiKind::GithubToken => "github_token",
            PiiKind::SlackToken => "slack_token",
            PiiKind::Jwt => "jwt",
            PiiKind::PrivateKey => "private_key",
            PiiKind::Dsn => "dsn",
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Ssn => "ssn",
            PiiKind::Card => "card",
            PiiKind::EthAddress => "eth_address",
        }
    }

    /// True for credentials (the 8 secret kinds), false for personal data.
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            PiiKind::AwsKey
                | PiiKind::OpenaiKey
                | PiiKind::StripeKey
                | PiiKind::GithubToken
                | PiiKind::SlackToken
                | PiiKind::Jwt
                | PiiKind::PrivateKey
                | PiiKind::Dsn
        )
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of kinds to look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope(u16);

impl Scope {
    /// Every kind (log messages and fields must hold no PII at all).
    pub const ALL: Scope = Scope((1 << 13) - 1);
    /// Secrets, cards and SSNs only: in tool args and webhook text an email or phone
    /// number is ordinary data.
    pub const SECRETS_CARDS_SSN: Scope = Scope(
        PiiKind::AwsKey.bit()
            | PiiKind::OpenaiKey.bit()
            | PiiKind::StripeKey.bit()
            | PiiKind::GithubToken.bit()
            | PiiKind::SlackToken.bit()
            | PiiKind::Jwt.bit()
            | PiiKind::PrivateKey.bit()
            | PiiKind::Dsn.bit()
            | PiiKind::Card.bit()
            | PiiKind::Ssn.bit(),
    );

    /// Whether `kind` is in this scope.
    pub fn contains(self, kind: PiiKind) -> bool {
        self.0 & kind.bit() != 0
    }

    const fn with(self, kind: PiiKind) -> Scope {
        Scope(self.0 | kind.bit())
    }

    const fn empty() -> Scope {
        Scope(0)
    }

    fn intersect(self, other: Scope) -> Scope {
        Scope(self.0 & other.0)
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One finding: a kind and a byte span of the scanned text, on char boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PiiMatch {
    /// What was found.
    pub kind: PiiKind,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

/// The compiled scanner; build once, share, call [`PiiScanner::scan`] per string.
#[derive(Debug)]
pub struct PiiScanner {
    prefilter: Prefilter,
    secrets: secrets::Secrets,
    personal: personal::Personal,
}

impl Default for PiiScanner {
    fn default() -> Self {
        PiiScanner::new()
    }
}

impl PiiScanner {
    /// Builds the keyword automaton and every regex once. Never panics: a kind whose
    /// regex failed to build is skipped (a test proves they all build).
    pub fn new() -> Self {
        PiiScanner {
            prefilter: Prefilter::new(),
            secrets: secrets::Secrets::new(),
            personal: personal::Personal::new(),
        }
    }

    /// The process's scanner, built on first use: its regexes take milliseconds to
    /// build, and every caller (the pii detector, alert samples, argument paths in
    /// evidence) must find the same things.
    pub fn shared() -> &'static PiiScanner {
        static SHARED: std::sync::OnceLock<PiiScanner> = std::sync::OnceLock::new();
        SHARED.get_or_init(PiiScanner::new)
    }

    /// `text` with what `scope` finds in it replaced by `[REDACTED:kind]`; borrowed
    /// when nothing is found (the common case, and allocation-free).
    pub fn redacted<'t>(&self, text: &'t str, scope: Scope) -> std::borrow::Cow<'t, str> {
        let mut matches = Vec::new();
        self.scan(text, scope, &mut matches);
        if matches.is_empty() {
            std::borrow::Cow::Borrowed(text)
        } else {
            std::borrow::Cow::Owned(redact(text, &matches))
        }
    }

    /// Appends the findings in `text` for kinds in `scope` to `out`, sorted by
    /// start. They do not overlap, but for a secret of another kind found wholly
    /// inside a secret, listed right after it (see `resolve_overlaps`).
    ///
    /// A text written in disguise (full-width digits, a zero-width space inside a
    /// key: see [`fold`]) is also searched as a reader would type it, and what is
    /// found there is reported as the span of `text` that holds it.
    pub fn scan(&self, text: &str, scope: Scope, out: &mut Vec<PiiMatch>) {
        let base = out.len();
        self.find(text, scope, out);
        let mut folded = fold::Folded::default();
        if folded.fold(text) {
            let from = out.len();
            self.find(folded.as_str(), scope, out);
            let mut keep = from;
            for i in from..out.len() {
                let m = out[i];
                if let Some((start, end)) = folded.original_span(text, m.start, m.end) {
                    out[keep] = PiiMatch { kind: m.kind, start, end };
                    keep += 1;
                }
            }
            out.truncate(keep);
        }
        if out.len() > base {
            resolve_overlaps(out, base);
        }
    }

    /// Appends what the regexes find in `text`, unsorted and possibly overlapping.
    fn find(&self, text: &str, scope: Scope, out: &mut Vec<PiiMatch>) {
        let hits = self.prefilter.hits(text, scope);
        if hits.is_empty() {
            return;
        }
        self.secrets.find(text, hits, out);
        self.personal.find(text, hits, out);
    }
}

/// Sorts `out[base..]` by start and resolves overlaps: the earlier start wins,
/// then the longer span, then secrets over personal data (a DSN wins over the
/// email-looking `user:pw@host` inside it); the winner's span grows over the
/// whole of what it overlaps. Two exceptions keep a secret from being hidden
/// by what surrounds it:
/// - personal data holding a token is that token (`ghp_…@github.com` is a
///   GitHub token, not an email), over both spans;
/// - a secret of another kind wholly inside a secret is kept too, listed right
///   after it (`https://oauth2:ghp_…@github.com` is a DSN *and* a GitHub
///   token), so both kinds are reported; redaction skips it, being covered.
fn resolve_overlaps(out: &mut Vec<PiiMatch>, base: usize) {
    let tail = &mut out[base..];
    tail.sort_unstable_by(|a, b| {
        a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(b.kind.is_secret().cmp(&a.kind.is_secret()))
    });
    let mut keep = base;
    // The last finding kept that no other contains.
    let mut outer: Option<usize> = None;
    for i in base..out.len() {
        let m = out[i];
        if let Some(o) = outer.filter(|&o| m.start < out[o].end) {
            let kept = out[o];
            // Only a token takes over: a connection string or a key read from
            // another start would be read (and previewed) differently.
            if m.kind.is_secret() && !kept.kind.is_secret() && !matches!(m.kind, PiiKind::Dsn | PiiKind::PrivateKey) {
                out[o] = PiiMatch { kind: m.kind, start: kept.start, end: kept.end.max(m.end) };
            } else if m.kind.is_secret()
                && kept.kind.is_secret()
                && m.end <= kept.end
                && !out[o..keep].iter().any(|n| n.kind == m.kind)
            {
                out[keep] = m;
                keep += 1;
            } else if kept.kind != PiiKind::Dsn {
                // A finding running past the kept one's end is covered with it,
                // so redaction leaves none of it. (Not a connection string's:
                // its span is where its reading ends, and a longer one reads on.)
                out[o].end = kept.end.max(m.end);
            }
            continue;
        }
        out[keep] = m;
        outer = Some(keep);
        keep += 1;
    }
    out.truncate(keep);
}
