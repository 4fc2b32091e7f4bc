//! The small per-key values detectors and the decide step keep, with their codecs.

use super::codec::{
    get_bytes, get_i64, get_str, get_varint, put_bytes, put_i64, put_varint, CodecError, Decode, Encode,
};
use crate::EventTime;

/// A call counter (per turn, run, or run and tool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Calls so far.
    pub count: u64,
}

/// A "seen" mark (a run already counted as a workflow run start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen;

/// A run's summed usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Summed `cost_usd` in nano-dollars, so sums are exact.
    pub cost_nanos: i64,
    /// Summed `tokens_in`.
    pub tokens_in: u64,
}

/// A record in force on a (rule, tenant, subject): the decide step's TTL gate, and
/// what an operator's lift needs to name the record it lifts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InForce {
    /// The record's `event_ts`.
    pub event_ts: EventTime,
    /// `event_ts + ttl_ms`.
    pub expires_at: EventTime,
    /// The action emitted (index into `Action::ALL`).
    pub action: u8,
    /// SHA-256 of the triggering event's canonical JSON.
    pub event_sha256: [u8; 32],
    /// The entry's key after its rule id (tenant, subject kind and id): a table
    /// holds keys as digests, and a lift or a restore needs the subject back.
    pub key: Box<[u8]>,
}

/// An alert bucket: one (signal, tenant, subject, 5-minute bucket).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertBucket {
    /// Triggers so far.
    pub count: u64,
    /// The count carried by the last record emitted.
    pub emitted: u64,
    /// Event time of the first trigger.
    pub first_seen: EventTime,
    /// Event time of the newest trigger.
    pub last_seen: EventTime,
    /// The watermark has passed the bucket's end: a trigger now is late.
    pub closed: bool,
    /// Name of the rule of the first trigger.
    pub rule: String,
    /// Up to three redacted samples.
    pub samples: Vec<String>,
    /// The entry's key after its signal (tenant, subject, bucket start): a table
    /// holds keys as digests, and closing a bucket needs them back.
    pub key: Box<[u8]>,
}

impl Encode for Counter {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.count);
    }
}

impl Decode for Counter {
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError> {
        Ok(Counter { count: get_varint(input)? })
    }
}

impl Encode for Seen {
    fn encode(&self, _: &mut Vec<u8>) {}
}

impl Decode for Seen {
    fn decode(_: &mut &[u8]) -> Result<Self, CodecError> {
        Ok(Seen)
    }
}

impl Encode for Budget {
    fn encode(&self, out: &mut Vec<u8>) {
        put_i64(out, self.cost_nanos);
        put_varint(out, self.tokens_in);
    }
}

impl Decode for Budget {
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError> {
        Ok(Budget { cost_nanos: get_i64(input)?, tokens_in: get_varint(input)? })
    }
}

impl Encode for InForce {
    fn encode(&self, out: &mut Vec<u8>) {
        put_i64(out, self.event_ts);
        put_i64(out, self.expires_at);
        out.push(self.action);
        out.extend_from_slice(&self.event_sha256);
        put_bytes(out, &self.key);
    }
}

impl Decode for InForce {
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError> {
        let event_ts = get_i64(input)?;
        let expires_at = get_i64(input)?;
        let (head, rest) = input.split_at_checked(33).ok_or(CodecError("truncated in-force entry"))?;
        let mut event_sha256 = [0u8; 32];
        event_sha256.copy_from_slice(&head[1..]);
        *input = rest;
        let key = get_bytes(input)?.into();
        Ok(InForce { event_ts, expires_at, action: head[0], event_sha256, key })
    }
}

impl Encode for AlertBucket {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.count);
        put_varint(out, self.emitted);
        put_i64(out, self.first_seen);
        put_i64(out, self.last_seen);
        out.push(u8::from(self.closed));
        put_bytes(out, self.rule.as_bytes());
        put_varint(out, self.samples.len() as u64);
        for s in &self.samples {
            put_bytes(out, s.as_bytes());
        }
        put_bytes(out, &self.key);
    }
}

impl Decode for AlertBucket {
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError> {
        let count = get_varint(input)?;
        let emitted = get_varint(input)?;
        let first_seen = get_i64(input)?;
        let last_seen = get_i64(input)?;
        let closed = get_bytes_fixed(input)? != 0;
        let rule = get_str(input)?.to_string();
        let n = get_varint(input)?.min(3);
        let mut samples = Vec::with_capacity(n as usize);
        for _ in 0..n {
            samples.push(get_str(input)?.to_string());
        }
        let key = get_bytes(input)?.into();
        Ok(AlertBucket { count, emitted, first_seen, last_seen, closed, rule, samples, key })
    }
}

fn get_bytes_fixed(input: &mut &[u8]) -> Result<u8, CodecError> {
    let (&b, rest) = input.split_first().ok_or(CodecError("truncated"))?;
    *input = rest;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let b = AlertBucket {
            count: 4,
            emitted: 1,
            first_seen: 10,
            last_seen: 20,
            closed: true,
            rule: "injection_phrase".into(),
            samples: vec!["a".into(), "b".into()],
            key: b"\x01\x01t".to_vec().into(),
        };
        let mut buf = Vec::new();
        b.encode(&mut buf);
        assert_eq!(AlertBucket::decode(&mut &buf[..]).unwrap(), b);
        let f = InForce { event_ts: 1, expires_at: 2, action: 3, event_sha256: [7; 32], key: b"\x00".to_vec().into() };
        buf.clear();
        f.encode(&mut buf);
        assert_eq!(InForce::decode(&mut &buf[..]).unwrap(), f);
    }
}
