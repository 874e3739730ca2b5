//! The IETF `RateLimit` values and the `Retry-After` seconds the Express middleware
//! sends, written by tidegate's one formatter
//! (`tidegate_core::headers`), which `tidegate serve` and the tower layer use too.

use napi_derive::napi;
use tidegate_core::headers::{HeaderText, LimitMember, retry_after_secs, secs_ceil};

/// Milliseconds as JavaScript holds them, as whole microseconds (`NaN` and negatives
/// as 0).
fn micros(ms: f64) -> u64 {
    // `as` saturates: NaN and negatives become 0.
    (ms * 1_000.0).round() as u64
}

/// The `RateLimit` value of a decision: `"name";r=REMAINING;t=RESET_SECONDS`, the reset
/// (milliseconds) rounded up to whole seconds.
#[napi(js_name = "rateLimitValue")]
pub fn rate_limit_value(name: String, remaining: f64, reset_after: f64) -> String {
    let mut text = HeaderText::new();
    LimitMember::new(&name).push(
        &mut text,
        // `as` saturates: NaN and negatives become 0.
        remaining as u64,
        secs_ceil(micros(reset_after)),
    );
    String::from_utf8_lossy(text.as_bytes()).into_owned()
}

/// The `Retry-After` seconds of a wait in milliseconds: rounded up, at least 1.
#[napi(js_name = "retryAfterSeconds")]
pub fn retry_after_seconds(retry_after: f64) -> f64 {
    retry_after_secs(micros(retry_after)) as f64
}
