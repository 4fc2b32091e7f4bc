//! [`RecentCalls`]: the last few tool calls of a session, as hashes of
//! (tool, canonical arguments), for the `repeat_call` rule.

use crate::state::codec::{get_varint, put_varint, CodecError, Decode, Encode};

/// The fingerprints of a session's most recent calls, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecentCalls {
    calls: Vec<u64>,
}

impl RecentCalls {
    /// How many of the kept calls equal `call`.
    pub fn repeats_of(&self, call: u64) -> usize {
        self.calls.iter().filter(|&&c| c == call).count()
    }

    /// Appends `call`, keeping only the newest `history`.
    pub fn push(&mut self, call: u64, history: usize) {
        if history == 0 {
            return;
        }
        if self.calls.len() >= history {
            let excess = self.calls.len() + 1 - history;
            self.calls.drain(..excess);
        }
        self.calls.push(call);
    }
}

impl Encode for RecentCalls {
    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.calls.len() as u64);
        for &c in &self.calls {
            out.extend_from_slice(&c.to_be_bytes());
        }
    }
}

impl Decode for RecentCalls {
    fn decode(input: &mut &[u8]) -> Result<Self, CodecError> {
        let n = get_varint(input)? as usize;
        let mut calls = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let (head, rest) = input.split_at_checked(8).ok_or(CodecError("truncated call"))?;
            let mut b = [0u8; 8];
            b.copy_from_slice(head);
            calls.push(u64::from_be_bytes(b));
            *input = rest;
        }
        Ok(RecentCalls { calls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_history() {
        let mut r = RecentCalls::default();
        for c in [1, 2, 1, 3, 4, 5] {
            r.push(c, 5);
        }
        assert_eq!(r.calls, [2, 1, 3, 4, 5]);
        assert_eq!(r.repeats_of(1), 1);
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(RecentCalls::decode(&mut &buf[..]).unwrap(), r);
    }
}
