//! State key layout.
//!
//! A key is built as `[rule id: u16 BE][tenant: 0 | 1 + len-prefixed bytes][parts:
//! len-prefixed bytes ...]`. Length prefixes make keys unambiguous (`("a","bc")` and
//! `("ab","c")` differ) and decodable, so the block registry can be rebuilt from
//! the records in force (which keep these bytes in their values).
//!
//! A table holds each key as a [`StateKey`]: the rule id, then digests of the
//! tenant scope and of the whole key. Fixed-size keys sit inline in a table's
//! slots, so a lookup chases no pointer to compare key bytes and a new key
//! allocates nothing. In the store a key is prefixed with its partition and table
//! tag.

use xxhash_rust::xxh3::{xxh3_128_with_secret, xxh3_64_with_secret};

use super::codec::{get_bytes, get_str, get_varint, put_bytes, put_varint, CodecError};
use super::digest_secret;
use crate::rules::RuleId;

/// A key as a table holds it: `[rule id: u16 BE][tenant scope: 6 bytes][key: 16
/// bytes]`. The rule id stays in the clear so a checkpoint can file the key under
/// the rule's name; the 48-bit scope digest groups a tenant's keys for quotas;
/// the 128-bit digest of everything after the rule id tells keys apart. Both
/// digests are keyed by the deployment's secret ([`super::seed_state_hashes`]):
/// keys come from the input, and with a public function colliding keys could be
/// computed offline to merge one subject's state into another's. (xxh3 under a
/// secret is not a MAC; docs/choices.md weighs what that leaves.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey([u8; StateKey::LEN]);

impl StateKey {
    /// Bytes in a state key.
    pub const LEN: usize = 24;

    /// The state key of `key`, a key built by [`KeyBuf`].
    pub fn of(key: &[u8]) -> StateKey {
        let (id, rest) = key.split_at_checked(2).unwrap_or((&[0, 0], key));
        StateKey::digest(id, rest, scope_of(rest))
    }

    /// [`StateKey::of`], given the scope (a prefix of `rest`) already found.
    fn digest(id: &[u8], rest: &[u8], scope: &[u8]) -> StateKey {
        let secret = digest_secret();
        let mut out = [0u8; Self::LEN];
        out[..2].copy_from_slice(id);
        out[2..8].copy_from_slice(&xxh3_64_with_secret(scope, secret).to_le_bytes()[..6]);
        out[8..].copy_from_slice(&xxh3_128_with_secret(rest, secret).to_le_bytes());
        StateKey(out)
    }

    /// A state key read back from its bytes ([`StateKey::as_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<StateKey, CodecError> {
        bytes.try_into().map(StateKey).map_err(|_| CodecError("state key of the wrong length"))
    }

    /// The key's bytes, as checkpoints and spill records hold them.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The rule (or, in alert tables, the signal) the key belongs to.
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }

    /// The digest of the key's tenant scope: equal for every key of one tenant.
    pub fn scope(&self) -> TenantScope {
        let mut s = [0u8; 6];
        s.copy_from_slice(&self.0[2..8]);
        s
    }
}

/// A digest of a key's tenant (or of "no tenant"), as [`StateKey::scope`] gives it.
pub type TenantScope = [u8; 6];

/// The tenant part of a key's bytes after the rule id: the tag byte and, for a
/// tenant, its length-prefixed name.
fn scope_of(rest: &[u8]) -> &[u8] {
    if rest.first() == Some(&1) {
        let mut tail = &rest[1..];
        if get_bytes(&mut tail).is_ok() {
            return &rest[..rest.len() - tail.len()];
        }
    }
    rest.get(..1).unwrap_or(&[])
}

/// Builds keys into a reused buffer so lookups of existing keys allocate nothing.
#[derive(Debug, Default)]
pub struct KeyBuf {
    buf: Vec<u8>,
    /// Where the tenant scope ends in `buf` (so [`KeyBuf::state_key`] need not
    /// parse it back out).
    scope_end: usize,
}

impl KeyBuf {
    /// Starts a key for `rule` scoped by `tenant`.
    pub fn start(&mut self, rule: RuleId, tenant: Option<&str>) -> &mut Self {
        self.buf.clear();
        self.buf.extend_from_slice(&rule.0.to_be_bytes());
        match tenant {
            None => self.buf.push(0),
            Some(t) => {
                self.buf.push(1);
                put_bytes(&mut self.buf, t.as_bytes());
            }
        }
        self.scope_end = self.buf.len();
        self
    }

    /// Appends a text part.
    pub fn part(&mut self, s: &str) -> &mut Self {
        put_bytes(&mut self.buf, s.as_bytes());
        self
    }

    /// Appends a number part.
    pub fn num(&mut self, n: u64) -> &mut Self {
        put_varint(&mut self.buf, n);
        self
    }

    /// The key built so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The key built so far, as tables hold it.
    pub fn state_key(&self) -> StateKey {
        match (self.buf.get(..2), self.buf.get(2..), self.buf.get(2..self.scope_end)) {
            (Some(id), Some(rest), Some(scope)) => StateKey::digest(id, rest, scope),
            _ => StateKey::of(&self.buf),
        }
    }

    /// The key built so far without its rule id: what a value keeps to tell
    /// its key's subject ([`KeyReader::with_rule`]).
    pub fn after_rule(&self) -> &[u8] {
        self.buf.get(2..).unwrap_or(&[])
    }
}

/// Reads a key built by [`KeyBuf`].
#[derive(Debug)]
pub struct KeyReader<'a> {
    /// The rule the key belongs to.
    pub rule: RuleId,
    /// The tenant scope.
    pub tenant: Option<&'a str>,
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// Splits off the rule and tenant.
    pub fn new(key: &'a [u8]) -> Result<Self, CodecError> {
        let (rule, rest) = key.split_at_checked(2).ok_or(CodecError("short key"))?;
        Self::with_rule(RuleId(u16::from_be_bytes([rule[0], rule[1]])), rest)
    }

    /// Reads a key whose rule id is held apart: `rest` is what
    /// [`KeyBuf::after_rule`] gave.
    pub fn with_rule(rule: RuleId, rest: &'a [u8]) -> Result<Self, CodecError> {
        let (&tag, mut rest) = rest.split_first().ok_or(CodecError("short key"))?;
        let tenant = match tag {
            0 => None,
            1 => Some(get_str(&mut rest)?),
            _ => return Err(CodecError("bad tenant tag")),
        };
        Ok(KeyReader { rule, tenant, rest })
    }

    /// The next text part.
    pub fn part(&mut self) -> Result<&'a str, CodecError> {
        get_str(&mut self.rest)
    }

    /// The next raw part.
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        get_bytes(&mut self.rest)
    }

    /// The next number part.
    pub fn num(&mut self) -> Result<u64, CodecError> {
        get_varint(&mut self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unambiguous_and_decodable() {
        let mut a = KeyBuf::default();
        a.start(RuleId(3), Some("t")).part("a").part("bc");
        let a = a.as_slice().to_vec();
        let mut b = KeyBuf::default();
        b.start(RuleId(3), Some("t")).part("ab").part("c");
        assert_ne!(a, b.as_slice());
        let mut r = KeyReader::new(&a).unwrap();
        assert_eq!((r.rule, r.tenant), (RuleId(3), Some("t")));
        assert_eq!((r.part().unwrap(), r.part().unwrap()), ("a", "bc"));
        let mut none = KeyBuf::default();
        none.start(RuleId(1), None).num(7);
        let mut r = KeyReader::new(none.as_slice()).unwrap();
        assert_eq!((r.tenant, r.num().unwrap()), (None, 7));
    }

    #[test]
    fn state_keys_keep_the_rule_and_group_by_tenant() {
        let mut k = KeyBuf::default();
        let mut key = |rule: u16, tenant: Option<&str>, part: &str| {
            k.start(RuleId(rule), tenant).part(part);
            let key = k.state_key();
            assert_eq!(key, StateKey::of(k.as_slice()), "the scope it kept is the one the bytes hold");
            key
        };
        let (a1, a2, b1) = (key(3, Some("a"), "x"), key(3, Some("a"), "y"), key(3, Some("b"), "x"));
        let none = key(3, None, "x");
        assert_eq!(a1.id(), 3);
        assert_ne!(a1, a2);
        assert_eq!(a1.scope(), a2.scope(), "one tenant, one scope");
        assert_ne!(a1.scope(), b1.scope());
        assert_ne!(a1.scope(), none.scope());
        assert_eq!(key(3, Some("a"), "x"), a1, "deterministic");
        assert_ne!(key(4, Some("a"), "x"), a1, "the rule is part of the key");
        assert_eq!(key(4, Some("a"), "x").as_bytes()[2..], a1.as_bytes()[2..], "and only the rule differs");
        assert_eq!(StateKey::from_bytes(a1.as_bytes()).unwrap(), a1);
        assert!(StateKey::from_bytes(&a1.as_bytes()[1..]).is_err());
    }

    #[test]
    fn a_reader_takes_the_rule_apart_from_the_rest() {
        let mut k = KeyBuf::default();
        k.start(RuleId(9), Some("t")).part("session").part("s-1");
        let mut r = KeyReader::with_rule(RuleId(9), k.after_rule()).unwrap();
        assert_eq!((r.rule, r.tenant, r.part().unwrap(), r.part().unwrap()), (RuleId(9), Some("t"), "session", "s-1"));
    }

    #[test]
    fn byte_order_follows_rule_order() {
        let mut a = KeyBuf::default();
        a.start(RuleId(1), Some("zzz"));
        let a = a.as_slice().to_vec();
        let mut b = KeyBuf::default();
        b.start(RuleId(2), Some("aaa"));
        assert!(a.as_slice() < b.as_slice());
    }
}
