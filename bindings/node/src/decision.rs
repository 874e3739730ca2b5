//! `Decision`: a limiter's answer for one request, with times in milliseconds.

use napi::bindgen_prelude::Float64Array;
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

/// Numbers per decision in a [`DecisionBatch`]: whether admitted (1, 0; `NaN` when the
/// call failed), then the [`DECISION_SLOTS`].
pub(crate) const BATCH_SLOTS: usize = 1 + DECISION_SLOTS;

/// The answers of one `checkBatch` call, in the calls' order.
#[napi(object)]
pub struct DecisionBatch {
    /// [`BATCH_SLOTS`] numbers per call: admitted (1, 0, or `NaN` when it failed), then
    /// limit, remaining, retry after (`NaN` when admitted), reset after, delay (`NaN`
    /// when none); milliseconds.
    pub slots: Float64Array,
    /// Per failed call, in order: the error's message.
    pub messages: Vec<String>,
    /// Per failed call, in order: the error's code (`InvalidArg`, `GenericFailure`...).
    pub codes: Vec<String>,
}

impl DecisionBatch {
    /// The batch's answers from each call's decision.
    pub(crate) fn from_decisions(decisions: Vec<napi::Result<tidegate_core::Decision>>) -> Self {
        let mut slots = vec![f64::NAN; decisions.len() * BATCH_SLOTS];
        let mut messages = Vec::new();
        let mut codes = Vec::new();
        for (decision, out) in decisions.iter().zip(slots.chunks_exact_mut(BATCH_SLOTS)) {
            match decision {
                Ok(d) => {
                    out[0] = if d.allowed { 1.0 } else { 0.0 };
                    write_decision(d, &mut out[1..]);
                }
                Err(e) => {
                    messages.push(e.reason.clone());
                    codes.push(e.status.as_ref().to_string());
                }
            }
        }
        Self {
            slots: Float64Array::new(slots),
            messages,
            codes,
        }
    }
}
