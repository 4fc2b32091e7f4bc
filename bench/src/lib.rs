//! Benchmarks and load for warden.
//!
//! # Layout
//! - [`gen`]: a seeded event generator: the same seed gives the same stream.
//! - `src/bin/warden-gen.rs`: writes a generated stream as JSON lines.
//! - `benches/engine.rs`: criterion benchmarks of decoding, windows and the engine.
//! - `scan.sh`: `warden scan` over a generated 1,000,000-event stream.
//! - `RESULTS.md`: recorded figures, with the command and the machine.

pub mod gen;
