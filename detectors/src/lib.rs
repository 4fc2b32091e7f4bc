//! warden's detection engine: events in, verdicts and output records out, state
//! passed in.
//!
//! # Overview
//! An [`Engine`] holds the compiled [`rules::Rules`] and one of each detector
//! (rate, dup_flood, replay, spam, injection, loop, pii, fanout, spoofing, policy).
//! [`Engine::handle`] runs them on one decoded event against one partition's
//! [`PartitionState`], and the decide step turns the [`Verdict`]s into decisions,
//! kill-switch commands and alerts with deterministic ids.
//!
//! # Example
//! ```
//! use warden_detectors::{Engine, rules::Rules, Tally};
//! use warden_schemas::Provenance;
//!
//! let engine = Engine::new(Rules::defaults(), None);
//! let mut state = engine.new_state();
//! let (mut out, mut tally) = (Vec::new(), Tally::default());
//! let line = br#"{"type":"tool_call","ts":1767225600000,"tenant":"t","session":"s","tool":"place_call","args":{"consent":false}}"#;
//! let source = Provenance::File { file: "-".into(), line: 1 };
//! engine.handle_bytes(line, &source, &mut state, &mut out, &mut tally);
//! assert_eq!(out.len(), 1); // consent_gate blocks the session
//! ```
//!
//! # Semantics
//! Event time everywhere: windows, TTLs, alert buckets and eviction come from the
//! events' `ts`, never from a clock, so replaying a stream gives the same records.
//! "N per W" is exact for a key whose events arrive in `ts` order (see
//! [`window::SlidingWindow`]). Each partition keeps a watermark (newest `ts` minus
//! the allowed lateness); state past its horizon is evicted as it passes.
//!
//! # Untrusted input
//! Nothing here panics on input; decoding and every matcher are linear in the
//! input size; memory per key is bounded by its rule, not by traffic.
//!
//! # Performance
//! Lookups of existing keys allocate nothing (keys are built in a reused buffer);
//! text is normalised once per event; literal pre-filters decide which regexes run.
//!
//! # Layout
//! - [`engine`]: [`Engine`], [`PartitionState`], the event-time clock.
//! - [`detector`]: one module per detector.
//! - [`decide`]: verdicts → records, TTL gate, alert aggregation, lifts.
//! - [`rules`]: raw config, defaults, compiled rules.
//! - [`window`]: exact bounded windows. [`text`]: normalisation and phrases.
//!   [`pii`]: secret and PII scanner. [`targets`]: internal-network and file-secret checks.
//! - [`state`]: tables, key layout, codec, and the [`state::StateStore`] trait with
//!   its in-memory and RocksDB (feature `rocksdb`) implementations.

pub mod decide;
pub mod detector;
pub mod engine;
pub mod pii;
pub mod rules;
pub mod state;
pub mod tally;
pub mod targets;
pub mod text;
pub mod verdict;
pub mod window;

pub use engine::{Engine, Outcome, PartitionState, Usage};
pub use tally::Tally;
pub use verdict::{Evidence, Verdict};
pub use warden_schemas::EventTime;
