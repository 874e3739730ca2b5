//! A record's settings and the bounds on the details a batch keeps.

use std::time::Duration;

use super::gate::{Gate, defer_micros};
use crate::error::PolicyError;
use crate::tracker::{ConfigPatch, Strategy};

/// A record's settings: its strategy and limit, the gate built from them, its deferral.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordSettings {
    /// The strategy, as configured.
    pub strategy: Strategy,
    /// Events before deferral (simple counter, sliding window).
    pub limit: u64,
    /// The strategy checked and resolved with the limit.
    pub gate: Gate,
    /// Deferral of a new batch (µs).
    pub defer_us: u64,
}

impl RecordSettings {
    /// Checks a strategy, its limit and the deferral of new batches.
    pub fn new(strategy: Strategy, limit: u64, defer: Duration) -> Result<Self, PolicyError> {
        Ok(Self {
            strategy,
            limit,
            gate: Gate::new(strategy, limit)?,
            defer_us: defer_micros("defer_interval", defer)?,
        })
    }

    /// These settings with `patch` applied, checked; `None` in the patch keeps a value.
    pub fn patched(&self, patch: &ConfigPatch) -> Result<Self, PolicyError> {
        let limit = patch.limit.unwrap_or(self.limit);
        let strategy = patch.strategy.unwrap_or(self.strategy);
        Ok(Self {
            strategy,
            limit,
            gate: Gate::new(strategy, limit)?,
            defer_us: match patch.defer_interval {
                Some(d) => defer_micros("defer_interval", d)?,
                None => self.defer_us,
            },
        })
    }
}

/// What bounds the details one deferred batch keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailLimits {
    /// Most details kept per batch.
    pub max_details: usize,
    /// Largest detail kept (JSON text bytes).
    pub max_detail_bytes: usize,
    /// Most detail bytes (text and overhead, see `detail_cost`) kept per batch.
    pub max_batch_bytes: usize,
}
