//! Validated rate parameters shared by the rate-based algorithms.

use std::time::Duration;

use crate::error::PolicyError;
use crate::time::duration_to_micros;

/// The largest value every product of the arithmetic may reach (2^53): the Redis Lua
/// scripts compute with doubles, which are exact integers only up to here.
pub const MAX_EXACT: u64 = 1 << 53;

/// `limit` per `window` (µs), with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Cost admitted per window.
    pub limit: u64,
    /// Window length in microseconds.
    pub window: u64,
    /// Most cost admitted at once (bucket size, tolerance, queue slots).
    pub burst: u64,
}

impl Rate {
    /// Validates `limit` per `window` with an optional `burst` (default `limit`).
    pub fn new(limit: u64, window: Duration, burst: Option<u64>) -> Result<Self, PolicyError> {
        let window = window_micros(window)?;
        check_limit("limit", limit, window)?;
        let burst = burst.unwrap_or(limit);
        check_limit("burst", burst, window)?;
        Ok(Self {
            limit,
            window,
            burst,
        })
    }
}

/// Validates a window length and converts it to whole microseconds.
pub(crate) fn window_micros(window: Duration) -> Result<u64, PolicyError> {
    if window.is_zero() {
        return Err(PolicyError::new("window", "must be greater than zero"));
    }
    if window.subsec_nanos() % 1_000 != 0 {
        return Err(PolicyError::new(
            "window",
            format!("{window:?} is not a whole number of microseconds"),
        ));
    }
    let us = duration_to_micros(window);
    if us >= MAX_EXACT {
        return Err(PolicyError::new(
            "window",
            format!("{window:?} is too long (at most 2^53 µs, about 285 years)"),
        ));
    }
    Ok(us)
}

/// Validates a count (`limit` or `burst`) against a window of `window` µs.
pub(crate) fn check_limit(field: &str, value: u64, window: u64) -> Result<(), PolicyError> {
    if value == 0 {
        return Err(PolicyError::new(field, "must be at least 1"));
    }
    if value.checked_mul(window).is_none_or(|p| p > MAX_EXACT) {
        return Err(PolicyError::new(
            field,
            format!(
                "{value} is too large for a window of {window} µs: {field} × window (µs) \
                 must stay at most 2^53 so the arithmetic is exact (in Redis too); \
                 use a shorter window or a coarser cost unit"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_defaults_burst_to_limit() {
        let r = Rate::new(100, Duration::from_secs(60), None).unwrap();
        assert_eq!((r.limit, r.window, r.burst), (100, 60_000_000, 100));
    }

    #[test]
    fn rate_rejects_zero_limit_window_and_burst_naming_the_field() {
        assert_eq!(
            Rate::new(0, Duration::from_secs(1), None)
                .unwrap_err()
                .field,
            "limit"
        );
        assert_eq!(
            Rate::new(1, Duration::ZERO, None).unwrap_err().field,
            "window"
        );
        assert_eq!(
            Rate::new(1, Duration::from_secs(1), Some(0))
                .unwrap_err()
                .field,
            "burst"
        );
    }

    #[test]
    fn rate_rejects_products_beyond_exact_double_range() {
        let day = Duration::from_secs(86_400);
        assert!(Rate::new(100_000, day, None).is_ok());
        let e = Rate::new(1_000_000_000, day, None).unwrap_err();
        assert_eq!(e.field, "limit");
        assert!(e.reason.contains("2^53"), "{}", e.reason);
    }

    #[test]
    fn rate_rejects_sub_microsecond_windows() {
        let e = Rate::new(1, Duration::from_nanos(1_500), None).unwrap_err();
        assert_eq!(e.field, "window");
    }
}
