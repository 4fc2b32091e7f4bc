//! State key layout.
//!
//! A table key is `[rule id: u16 BE][tenant: 0 | 1 + len-prefixed bytes][parts:
//! len-prefixed bytes ...]`. Length prefixes make keys unambiguous (`("a","bc")` and
//! `("ab","c")` differ) and decodable, so the block registry can be rebuilt from
//! restored state. In the store a key is prefixed with its partition and table tag.

use super::codec::{get_bytes, get_str, get_varint, put_bytes, put_varint, CodecError};
use crate::rules::RuleId;

/// Builds keys into a reused buffer so lookups of existing keys allocate nothing.
#[derive(Debug, Default)]
pub struct KeyBuf {
    buf: Vec<u8>,
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
        self
    }

    /// Appends a text part.
    pub fn part(&mut self, s: &str) -> &mut Self {
        put_bytes(&mut self.buf, s.as_bytes());
        self
    }

    /// Appends raw bytes as a part.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        put_bytes(&mut self.buf, b);
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
        let (rule, mut rest) = key.split_at_checked(2).ok_or(CodecError("short key"))?;
        let rule = RuleId(u16::from_be_bytes([rule[0], rule[1]]));
        let (&tag, tail) = rest.split_first().ok_or(CodecError("short key"))?;
        rest = tail;
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
    fn byte_order_follows_rule_order() {
        let mut a = KeyBuf::default();
        a.start(RuleId(1), Some("zzz"));
        let a = a.as_slice().to_vec();
        let mut b = KeyBuf::default();
        b.start(RuleId(2), Some("aaa"));
        assert!(a.as_slice() < b.as_slice());
    }
}
