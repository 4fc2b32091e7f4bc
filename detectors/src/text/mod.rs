//! TEMPORARY STUB — replaced by the real text module.
#![allow(missing_docs)]
pub const SPAM_WORDS: &[&str] = &["buy", "click", "free", "winner", "prize", "giveaway"];
pub const PAYMENT_PHRASES: &[&str] = &["pay deposit", "pay a deposit", "pay the deposit", "new account"];
#[derive(Debug, Default)]
pub struct Normalized {
    text: String,
}
impl Normalized {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn is_line_break(&self, _at: usize) -> bool {
        false
    }
}
pub fn normalize_into(raw: &str, out: &mut Normalized) {
    out.text = raw.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
}
#[derive(Debug)]
pub struct TextError;
impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad phrase")
    }
}
impl std::error::Error for TextError {}
#[derive(Debug)]
pub struct PhraseSet {
    p: Vec<String>,
}
pub struct PhraseMatch {
    pub index: usize,
    pub start: usize,
    pub end: usize,
}
impl PhraseSet {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(phrases: I) -> Result<PhraseSet, TextError> {
        Ok(PhraseSet {
            p: phrases.into_iter().map(|s| s.as_ref().to_lowercase()).collect(),
        })
    }
    pub fn find(&self, text: &Normalized) -> Option<PhraseMatch> {
        let words: Vec<&str> = text.as_str().split(|c: char| !c.is_alphanumeric()).collect();
        self.p
            .iter()
            .position(|p| words.contains(&p.as_str()) || (p.contains(' ') && text.as_str().contains(p.as_str())))
            .map(|index| PhraseMatch {
                index,
                start: 0,
                end: 0,
            })
    }
    pub fn phrase(&self, index: usize) -> &str {
        &self.p[index]
    }
}
pub struct InjectionConfig;
impl InjectionConfig {
    pub fn defaults() -> Self {
        InjectionConfig
    }
}
#[derive(Debug)]
pub struct InjectionMatcher;
pub struct InjectionHit {
    pub label: String,
}
impl InjectionMatcher {
    pub fn new(_: &InjectionConfig) -> Result<Self, TextError> {
        Ok(InjectionMatcher)
    }
    pub fn find(&self, t: &Normalized) -> Option<InjectionHit> {
        ["ignore previous instructions", "system prompt"]
            .iter()
            .find(|p| t.as_str().contains(*p))
            .map(|p| InjectionHit { label: p.to_string() })
    }
}
pub fn has_url(t: &Normalized) -> bool {
    t.as_str().contains("http://") || t.as_str().contains("https://") || t.as_str().contains("www.")
}
pub fn longest_letter_run(t: &Normalized) -> usize {
    let mut best = 0;
    let mut run = 0;
    let mut prev = None;
    for c in t.as_str().chars() {
        if c.is_alphanumeric() && Some(c) == prev {
            run += 1
        } else {
            run = 1
        }
        if !c.is_alphanumeric() {
            run = 0
        }
        best = best.max(run);
        prev = Some(c);
    }
    best
}
