//! `Quota`: what one policy of a limiter advertises in `RateLimit-Policy`.

use napi_derive::napi;
use tidegate_core::PolicySet;

/// One policy's quota: `limit` units per `windowMs`.
#[napi(object)]
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    /// Units per window (requests, when each costs 1).
    pub limit: f64,
    /// The window, in milliseconds.
    pub window_ms: f64,
}

/// The quotas of every policy of `policies`, in order.
pub(crate) fn quotas(policies: &PolicySet) -> Vec<Quota> {
    policies
        .policies()
        .iter()
        .map(|p| Quota {
            limit: p.limit() as f64,
            window_ms: p.window().as_secs_f64() * 1_000.0,
        })
        .collect()
}
