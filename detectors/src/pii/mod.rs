//! TEMPORARY STUB — replaced by the real PII module.
#![allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    AwsKey,
    Email,
}
impl PiiKind {
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::AwsKey => "aws_key",
            PiiKind::Email => "email",
        }
    }
    pub fn is_secret(self) -> bool {
        self == PiiKind::AwsKey
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope(u16);
impl Scope {
    pub const ALL: Scope = Scope(3);
    pub const SECRETS_CARDS_SSN: Scope = Scope(1);
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PiiMatch {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}
#[derive(Debug, Default)]
pub struct PiiScanner;
impl PiiScanner {
    pub fn new() -> Self {
        PiiScanner
    }
    pub fn scan(&self, text: &str, scope: Scope, out: &mut Vec<PiiMatch>) {
        if let Some(i) = text.find("AKIA") {
            if text.len() >= i + 20 {
                out.push(PiiMatch {
                    kind: PiiKind::AwsKey,
                    start: i,
                    end: i + 20,
                });
            }
        }
        if scope == Scope::ALL {
            if let Some(i) = text.find('@') {
                out.push(PiiMatch {
                    kind: PiiKind::Email,
                    start: i,
                    end: i + 1,
                });
            }
        }
    }
}
pub fn mask(_kind: PiiKind, value: &str) -> String {
    format!("…{}", value.len())
}
pub fn redact(text: &str, matches: &[PiiMatch]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for m in matches {
        out.push_str(&text[at..m.start]);
        out.push_str("***");
        at = m.end;
    }
    out.push_str(&text[at..]);
    out
}
