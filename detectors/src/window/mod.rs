//! Bounded, exact windows over event time.
//!
//! - [`SlidingWindow`]: "N per W" with N timestamps per key.
//! - [`DistinctSet`]: "over N distinct values in W" with N + 1 values per key.
//! - [`RecentCalls`]: the last few calls of a session.

mod distinct;
mod kept;
mod recent;
mod sliding;

pub use distinct::DistinctSet;
pub use recent::RecentCalls;
pub use sliding::SlidingWindow;
