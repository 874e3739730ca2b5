//! The settings every record starts with, and a change to one record's settings.

use super::*;

/// A change to one record's settings (`update_config`); `None` keeps a value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConfigPatch {
    /// Events per record before deferral (simple counter, sliding window).
    pub limit: Option<u64>,
    /// Deferral of a new batch.
    pub defer_interval: Option<Duration>,
    /// The strategy (with its own parameters).
    pub strategy: Option<Strategy>,
}

/// Settings shared by every record (each may be changed per record with `update_config`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Defaults {
    pub(super) strategy: Strategy,
    pub(super) limit: u64,
    pub(super) defer_interval: Duration,
}

impl Defaults {
    pub(super) fn settings(&self) -> Result<RecordSettings, TrackError> {
        Ok(RecordSettings::new(
            self.strategy,
            self.limit,
            self.defer_interval,
        )?)
    }
}
