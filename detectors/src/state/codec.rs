//! A small, explicit binary codec for checkpointed state and its keys.
//!
//! Hand-written rather than serde-derived so the on-disk layout is visible in one
//! file and stays stable: varints for counts, fixed-width big-endian for times.

use thiserror::Error;

/// A checkpointed value or key that does not decode (corrupt or from another version).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("corrupt state record: {0}")]
pub struct CodecError(pub &'static str);

/// Appends encodings to a byte buffer.
pub trait Encode {
    /// Appends `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
}

/// Reads encodings back.
pub trait Decode: Sized {
    /// Reads one value from the front of `input`, advancing it.
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError>;
}

/// Appends an unsigned LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint.
pub fn get_varint(input: &mut &[u8]) -> Result<u64, CodecError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first().ok_or(CodecError("truncated varint"))?;
        *input = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CodecError("varint too long"))
}

/// Appends a big-endian i64 (order-preserving for non-negative times).
pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Reads a big-endian i64.
pub fn get_i64(input: &mut &[u8]) -> Result<i64, CodecError> {
    let (head, rest) = input.split_at_checked(8).ok_or(CodecError("truncated i64"))?;
    *input = rest;
    let mut b = [0u8; 8];
    b.copy_from_slice(head);
    Ok(i64::from_be_bytes(b))
}

/// Appends a length-prefixed byte string.
/// Inlined: every state key is built from a few of these.
#[inline]
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads a length-prefixed byte string.
pub fn get_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], CodecError> {
    let len = usize::try_from(get_varint(input)?).map_err(|_| CodecError("length"))?;
    let (head, rest) = input.split_at_checked(len).ok_or(CodecError("truncated bytes"))?;
    *input = rest;
    Ok(head)
}

/// Reads a length-prefixed UTF-8 string.
pub fn get_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, CodecError> {
    std::str::from_utf8(get_bytes(input)?).map_err(|_| CodecError("not UTF-8"))
}

impl Encode for i64 {
    fn encode(&self, out: &mut Vec<u8>) {
        put_i64(out, *self);
    }
}

impl Decode for i64 {
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError> {
        get_i64(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut out = Vec::new();
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, v);
        }
        put_i64(&mut out, -5);
        put_bytes(&mut out, b"abc");
        let mut input = &out[..];
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(get_varint(&mut input).unwrap(), v);
        }
        assert_eq!(get_i64(&mut input).unwrap(), -5);
        assert_eq!(get_bytes(&mut input).unwrap(), b"abc");
        assert!(input.is_empty());
        assert!(get_i64(&mut input).is_err());
    }
}
