//! Benchmarks and load for warden.
//!
//! # Layout
//! - [`gen`]: a seeded event generator: the same seed gives the same stream.
//! - [`rig`]: a broker, child processes and metrics, for the end-to-end runs.
//! - `src/bin/warden-gen.rs`: writes a generated stream as JSON lines.
//! - `src/bin/harness.rs`: end-to-end throughput and latency through a real broker.
//! - `src/bin/soak.rs`: a bounded soak at a fixed rate, with detections checked.
//! - `benches/engine.rs`: criterion benchmarks of decoding, windows and the engine.
//! - `scan.sh`: `warden scan` over a generated 1,000,000-event stream.
//! - `RESULTS.md`: recorded figures, with the command and the machine.

pub mod gen;
pub mod rig;
