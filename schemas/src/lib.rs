//! warden's record contracts: what it reads and what it writes.
//!
//! # Layout
//! - [`json`]: a strict, borrowing JSON parser for untrusted input (duplicate keys,
//!   depth and surrogates checked; linear time).
//! - [`jcs`]: RFC 8785 canonical JSON, the preimage of every id and signature.
//! - [`event`]: `warden.event.v1`, the typed view of one input object.
//! - [`decode`]: bytes → [`event::Event`], or the dead-letter reason why not.
//! - [`output`]: `warden.decision.v1`, `warden.killswitch.v1`, `warden.alert.v1`,
//!   `warden.dlq.v1`, and their deterministic ids.
//!
//! The JSON Schema (draft 2020-12) files for the same records live in `schemas/json/`;
//! a test validates emitted records against them.
//!
//! # Versioning
//! A record's `schema` names its major version (`.v1`). Adding an optional field is
//! compatible; removing or retyping a field, or changing an id recipe, is a new version.
//!
//! # Untrusted input
//! Nothing here panics on input, and decoding is linear in the input size.

pub mod decode;
pub mod event;
pub mod jcs;
pub mod json;
pub mod output;

pub use decode::DecodeError;
pub use event::{Body, Event, EventTime, EventType};
pub use output::{Action, Alert, DeadLetter, Decision, KillSwitch, Mode, Provenance, Record, Severity, Subject};
