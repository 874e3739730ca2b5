//! `Decision`: a limiter's answer for one request, with times in milliseconds.

use napi_derive::napi;

/// The outcome of one decision.
#[napi(object)]
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// Whether the request was admitted (and its cost consumed).
    pub allowed: bool,
    /// The policy's limit (the binding policy's, when several guard the key).
    pub limit: f64,
    /// Cost that could still be admitted right now, after this decision.
    pub remaining: f64,
    /// Milliseconds until this cost could be admitted; absent when admitted.
    pub retry_after: Option<f64>,
    /// Milliseconds until the full quota is back.
    pub reset_after: f64,
    /// For `leaky_bucket`: milliseconds the admitted request waits; absent otherwise.
    pub delay: Option<f64>,
}

/// Microseconds as milliseconds.
pub(crate) fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// Slots of the numbers `checkInto` writes: limit, remaining, retry after (`NaN` when
/// admitted), reset after, delay (`NaN` when none); milliseconds.
pub(crate) const DECISION_SLOTS: usize = 5;

/// The decision's numbers into `out` (see [`DECISION_SLOTS`]).
pub(crate) fn write_decision(d: &tidegate_core::Decision, out: &mut [f64]) {
    out[0] = d.limit as f64;
    out[1] = d.remaining as f64;
    out[2] = d.retry_after_us.map_or(f64::NAN, ms);
    out[3] = ms(d.reset_after_us);
    out[4] = d.delay_us.map_or(f64::NAN, ms);
}

impl From<tidegate_core::Decision> for Decision {
    fn from(d: tidegate_core::Decision) -> Self {
        Self {
            allowed: d.allowed,
            limit: d.limit as f64,
            remaining: d.remaining as f64,
            retry_after: d.retry_after_us.map(ms),
            reset_after: ms(d.reset_after_us),
            delay: d.delay_us.map(ms),
        }
    }
}
