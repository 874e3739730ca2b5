//! A tracker strategy as JavaScript describes it (`SimpleCounterStrategy`,
//! `TokenBucketStrategy`, `SlidingWindowStrategy` give one).

use std::time::Duration;

use napi::Result;
use napi_derive::napi;
use tidegate::tracker::Strategy;

use crate::errors::type_error;

/// A strategy and its parameters.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct StrategySpec {
    /// `"simple"`, `"token_bucket"` or `"sliding_window"`.
    pub kind: String,
    /// Token bucket: tokens the bucket holds (burst).
    pub bucket_size: Option<f64>,
    /// Token bucket: tokens per second (may be fractional, e.g. 0.5).
    pub refill_rate: Option<f64>,
    /// Sliding window: the window, in milliseconds.
    pub window_size: Option<f64>,
}

impl StrategySpec {
    /// tidegate's strategy. Out-of-range parameters are left for tidegate to refuse
    /// with its own message (a zero bucket, a rate below 0.001/s, a zero window).
    pub(crate) fn to_strategy(&self) -> Result<Strategy> {
        match self.kind.as_str() {
            "simple" => Ok(Strategy::SimpleCounter),
            "token_bucket" => Ok(Strategy::TokenBucket {
                bucket_size: whole(self.bucket_size.unwrap_or(10.0)),
                refill_rate: self.refill_rate.unwrap_or(1.0),
            }),
            "sliding_window" => Ok(Strategy::SlidingWindow {
                window_size: duration_ms(self.window_size.unwrap_or(60_000.0)),
            }),
            other => Err(type_error(format!(
                "strategy must be a SimpleCounterStrategy, TokenBucketStrategy or SlidingWindowStrategy, got kind {other:?}"
            ))),
        }
    }
}

/// A non-negative whole number; anything else becomes 0, which tidegate refuses
/// with its own message where 0 is not allowed.
pub(crate) fn whole(n: f64) -> u64 {
    if n.is_finite() && n >= 0.0 {
        n.floor() as u64
    } else {
        0
    }
}

/// Milliseconds as a duration (exact to the microsecond); negative or non-finite is
/// zero, which tidegate refuses where a duration must be positive.
pub(crate) fn duration_ms(ms: f64) -> Duration {
    if ms.is_finite() && ms > 0.0 {
        Duration::from_micros((ms * 1_000.0).round() as u64)
    } else {
        Duration::ZERO
    }
}
