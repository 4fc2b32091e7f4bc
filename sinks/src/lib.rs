//! warden's outputs. Sinks are handed records; they never reach back into the engine,
//! and nothing here decides which records exist (that is the engine's decide step).
//!
//! # Layout
//! - [`kafka`]: the idempotent producer of decisions, commands, alerts, dead letters.
//! - [`metrics`]: the Prometheus registry (the only place that registers metrics).
//! - [`http`]: `/metrics`, `/health`, `/ready`, `/v1/blocks/...` (GET; DELETE lifts).
//! - [`registry`]: the dashmap read model of records in force.
//! - [`sign`]: Ed25519 signatures of kill-switch commands over RFC 8785 JSON.

pub mod http;
pub mod kafka;
pub mod latency;
pub mod metrics;
pub mod registry;
pub mod sign;
