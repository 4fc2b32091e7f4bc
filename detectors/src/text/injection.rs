//! Prompt-injection phrases: the override pattern and the persona / mode phrases.

use regex::Regex;

use super::{Normalized, PhraseSet, TextError};

/// Longest gap between the words of the override pattern, in characters.
const MAX_GAP: usize = 20;

/// The word lists and phrases the injection matcher is built from.
#[derive(Debug, Clone)]
pub struct InjectionConfig {
    /// Override verbs: `ignore`, `disregard`, …
    pub verbs: Vec<String>,
    /// What is overridden: `previous`, `all`, `your`, …
    pub objects: Vec<String>,
    /// The instructions themselves: `instructions`, `rules`, `prompt`, …
    pub nouns: Vec<String>,
    /// Phrases that are an attack on their own (`developer mode`, `you are DAN`).
    pub phrases: Vec<String>,
}

impl InjectionConfig {
    /// The design's defaults (§5). DAN counts only as a persona (`you are DAN`,
    /// `known as DAN`, `DAN mode`, `act as DAN`), never the name Dan in prose.
    pub fn defaults() -> Self {
        let list = |words: &[&str]| words.iter().map(|w| w.to_string()).collect();
        InjectionConfig {
            verbs: list(&["ignore", "disregard", "forget", "skip", "bypass", "override"]),
            objects: list(&["previous", "prior", "above", "earlier", "all", "initial", "your"]),
            nouns: list(&["instruction", "instructions", "rules", "prompt", "prompts", "guidelines", "directions"]),
            phrases: list(&[
                "act as",
                "pretend you are",
                "pretend to be",
                "you are now",
                "developer mode",
                "do anything now",
                "system prompt",
                "jailbreak",
                "you are dan",
                "known as dan",
                "dan mode",
                "act as dan",
            ]),
        }
    }
}

/// Finds prompt-injection attempts in a normalised text.
#[derive(Debug, Clone)]
pub struct InjectionMatcher {
    /// verb, gap, object, gap, noun; gaps never cross `.`, `!` or `?`.
    pattern: Regex,
    /// The pattern's verbs as it matches them: each match starts with one.
    verbs: Vec<String>,
    phrases: PhraseSet,
}

/// What the matcher found: a label built from the matched fixed words, never from the
/// surrounding user text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectionHit {
    /// `ignore previous instructions`, `developer mode`, …
    pub label: String,
}

impl InjectionMatcher {
    /// Compiles the pattern and phrase set.
    pub fn new(config: &InjectionConfig) -> Result<Self, TextError> {
        // An empty list would leave an empty alternation that matches anywhere,
        // and a pattern with no verb has no literal for the engine's screen.
        if config.verbs.is_empty() || config.objects.is_empty() || config.nouns.is_empty() {
            return Err(TextError::Pattern("the verb, object and noun lists must not be empty".into()));
        }
        let alt = |words: &[String]| {
            let mut words: Vec<String> = words.iter().map(|w| regex::escape(&w.to_lowercase())).collect();
            // Longest first, so `instructions` wins over `instruction`.
            words.sort_by_key(|w| std::cmp::Reverse(w.len()));
            words.join("|")
        };
        let gap = format!("[^.!?]{{0,{MAX_GAP}}}?");
        let source = format!(
            r"\b(?P<verb>{})\b{gap}\b(?P<object>{})\b{gap}\b(?P<noun>{})\b",
            alt(&config.verbs),
            alt(&config.objects),
            alt(&config.nouns)
        );
        let pattern = Regex::new(&source).map_err(|e| TextError::Pattern(e.to_string()))?;
        let phrases = PhraseSet::new(&config.phrases)?;
        let verbs = config.verbs.iter().map(|w| w.to_lowercase()).collect();
        Ok(InjectionMatcher { pattern, verbs, phrases })
    }

    /// Literals of which every hit contains one: the phrases and the verbs
    /// ([`Screen`](super::Screen)).
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.phrases.literals().chain(self.verbs.iter().map(String::as_str))
    }

    /// The first injection found in the text, if any.
    pub fn find(&self, text: &Normalized) -> Option<InjectionHit> {
        if let Some(m) = self.phrases.find(text) {
            return Some(InjectionHit { label: self.phrases.phrase(m.index).to_string() });
        }
        // Each line on its own: the pattern's gaps may not cross a line break.
        text.lines().find_map(|line| {
            // `captures` allocates its slots on every call; most lines do not match.
            if !self.pattern.is_match(line) {
                return None;
            }
            let caps = self.pattern.captures(line)?;
            let word = |name| caps.name(name).map_or("", |m| m.as_str());
            Some(InjectionHit { label: format!("{} {} {}", word("verb"), word("object"), word("noun")) })
        })
    }
}
