//! warden's outputs. Sinks are handed records; they never reach back into the engine,
//! and nothing here decides which records exist (that is the engine's decide step).
//!
//! # Layout
//! - [`sign`]: Ed25519 signatures of kill-switch commands over RFC 8785 canonical JSON.

pub mod sign;
