//! The clock of a Python `Limiter`: the monotonic clock for `check` and `peek`, or the
//! caller's own timeline for `check_at` and `peek_at` (replays), never both.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tidegate_core::{Clock, CoarseClock};

const UNSET: u8 = 0;
const LIVE: u8 = 1;
const REPLAY: u8 = 2;

/// Latched by the first call: live (monotonic) or replay (the latest time given).
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    mode: AtomicU8,
    latest: AtomicU64,
}

impl Timeline {
    /// Checks that this limiter runs on the monotonic clock (latching it on first use).
    pub(crate) fn live(&self) -> PyResult<()> {
        match self
            .mode
            .compare_exchange(UNSET, LIVE, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) | Err(LIVE) => Ok(()),
            Err(_) => Err(PyValueError::new_err(
                "this Limiter runs on replay time (check_at or peek_at was called on it): \
                 use check_at/peek_at, or a separate Limiter for live traffic",
            )),
        }
    }

    /// Checks that this limiter runs on replay time and records `now` (µs).
    pub(crate) fn replay(&self, now: u64) -> PyResult<()> {
        match self
            .mode
            .compare_exchange(UNSET, REPLAY, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) | Err(REPLAY) => {
                self.latest.fetch_max(now, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => Err(PyValueError::new_err(
                "this Limiter runs on the monotonic clock (check or peek was called on it): \
                 use check/peek, or a separate Limiter for replays with check_at",
            )),
        }
    }
}

impl Clock for Timeline {
    fn now_micros(&self) -> u64 {
        if self.mode.load(Ordering::Relaxed) == REPLAY {
            self.latest.load(Ordering::Relaxed)
        } else {
            CoarseClock.now_micros()
        }
    }
}
