//! Holding a partition's state to its memory budget and each tenant to its key
//! quota, by spilling the coldest detector keys (design §6).
//!
//! The check is cheap (counts the tables keep) and runs every
//! [`Limits::CHECK_EVERY`] events; a pass brings usage down to
//! [`Limits::LOW_WATER`] of the limit, so passes are rare. A tenant over its quota
//! loses its own coldest keys first; then, if the partition is still over budget,
//! every table gives up its coldest keys in proportion to its size. Only detector
//! tables spill: records in force and alert buckets are few and are iterated.

use super::spill::SharedSpill;
use crate::detector::LAYOUT;
use crate::PartitionState;

/// How much memory a partition's state may use, and how many in-memory keys one
/// tenant may hold in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Approximate bytes of state (see [`crate::engine::Usage::bytes`]).
    pub budget_bytes: usize,
    /// In-memory detector keys per tenant; 0 = no quota.
    pub tenant_quota: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { budget_bytes: usize::MAX, tenant_quota: 0 }
    }
}

impl Limits {
    /// Fraction of a limit a pass brings usage down to.
    pub const LOW_WATER: f64 = 0.8;
    /// Events between checks.
    pub const CHECK_EVERY: u32 = 1024;
}

impl PartitionState {
    /// Lets the detector tables spill to `store` and holds them to `limits`.
    pub fn attach_spill(&mut self, store: SharedSpill, limits: Limits) {
        for (t, (tag, _)) in self.tables.each_mut().into_iter().zip(LAYOUT) {
            t.attach_spill(tag, store.clone());
        }
        self.limits = Some(limits);
    }

    /// Changes the limits of a state with a spill store (a partition's share of the
    /// budget changes as partitions come and go).
    pub fn set_limits(&mut self, limits: Limits) {
        if self.limits.is_some() {
            self.limits = Some(limits);
        }
    }

    /// Brings the state within its limits; returns how many keys spilled (the
    /// `warden_quota_exceeded_total` counter). A no-op without a spill store.
    pub fn enforce_limits(&mut self) -> usize {
        let Some(limits) = self.limits else { return 0 };
        let mut spilled = 0;
        if limits.tenant_quota > 0 {
            spilled += self.enforce_quota(limits.tenant_quota);
        }
        let bytes = self.approx_bytes();
        if bytes > limits.budget_bytes {
            let target = (limits.budget_bytes as f64 * Limits::LOW_WATER) as usize;
            spilled += self.spill_bytes(bytes - target);
        }
        spilled
    }

    fn enforce_quota(&mut self, quota: usize) -> usize {
        if self.tables.len() <= quota {
            return 0;
        }
        let mut tables = self.tables.each_mut();
        let mut counts = Vec::new();
        for t in &tables {
            t.tenant_counts(&mut counts);
        }
        counts.sort_unstable();
        counts.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1 += b.1;
            }
            same
        });
        let target = (quota as f64 * Limits::LOW_WATER) as usize;
        let mut spilled = 0;
        for (scope, held) in counts.iter().filter(|(_, n)| *n > quota) {
            let excess = held - target;
            for t in tables.iter_mut() {
                let n = t.tenant_count(scope);
                spilled += t.spill_coldest((n * excess).div_ceil(*held), Some(scope));
            }
        }
        spilled
    }

    fn spill_bytes(&mut self, excess: usize) -> usize {
        let mut tables = self.tables.each_mut();
        let sizes: Vec<usize> = tables.iter().zip(LAYOUT).map(|(t, (_, heap))| t.approx_bytes(heap)).collect();
        let total: usize = sizes.iter().sum();
        if total == 0 {
            return 0;
        }
        let mut spilled = 0;
        for (t, size) in tables.iter_mut().zip(sizes) {
            // This table's share of the excess, in keys.
            let share = excess as f64 * size as f64 / total as f64;
            let per_key = size as f64 / t.len().max(1) as f64;
            spilled += t.spill_coldest((share / per_key).ceil() as usize, None);
        }
        spilled
    }
}
