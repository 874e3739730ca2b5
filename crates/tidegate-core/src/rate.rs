//! Validated rate parameters shared by the rate-based algorithms.

use std::time::Duration;

use crate::error::PolicyError;
use crate::time::duration_to_micros;

/// The largest `limit`, `burst` or cost: 10^15. Sums of a few of them stay far below
/// 2^53, where the Redis Lua scripts' doubles are exact integers.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000_000;

/// The longest window, and the longest time a bucket may take to refill its burst
/// (`burst × window / limit`): 50 years of 365 days, in µs.
pub const MAX_WINDOW_MICROS: u64 = 50 * 365 * 86_400 * 1_000_000;

/// Times (µs) the arithmetic is exact for on every store: below 2^52 µs, i.e. Unix times
/// until the year 2112. A time plus twice [`MAX_WINDOW_MICROS`] stays below 2^53.
pub const MAX_TIME_MICROS: u64 = 1 << 52;

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
        check_limit("limit", limit)?;
        let burst = burst.unwrap_or(limit);
        check_limit("burst", burst)?;
        let refill = (u128::from(burst) * u128::from(window)).div_ceil(u128::from(limit));
        if refill > u128::from(MAX_WINDOW_MICROS) {
            return Err(PolicyError::new(
                "burst",
                format!(
                    "{burst} takes {refill} µs to refill at {limit} per {window} µs: \
                     burst × window / limit must be at most 50 years"
                ),
            ));
        }
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
    if !window.subsec_nanos().is_multiple_of(1_000) {
        return Err(PolicyError::new(
            "window",
            format!("{window:?} is not a whole number of microseconds"),
        ));
    }
    let us = duration_to_micros(window);
    if us > MAX_WINDOW_MICROS {
        return Err(PolicyError::new(
            "window",
            format!(
                "{window:?} is too long: at most 18250 days (50 years of 365 days; `y` in a window \
                 is 365.25 days, so `50y` is longer)"
            ),
        ));
    }
    Ok(us)
}

/// Checks a `limit` or `burst`: at least 1, at most [`MAX_AMOUNT`]. Any window fits: the
/// arithmetic is exact for every product of the two (see `docs/ALGORITHMS.md`).
pub(crate) fn check_limit(field: &str, value: u64) -> Result<(), PolicyError> {
    if value == 0 {
        return Err(PolicyError::new(field, "must be at least 1"));
    }
    if value > MAX_AMOUNT {
        return Err(PolicyError::new(
            field,
            format!("{value} is too large: at most 10^15"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_of_50y_is_refused_saying_that_a_year_there_is_365_25_days() {
        let e = "fixed_window:1/50y".parse::<crate::Policy>().unwrap_err();
        assert!(e.reason.contains("at most 18250 days"), "{e}");
        assert!(e.reason.contains("`50y` is longer"), "{e}");
        assert!("fixed_window:1/18250d".parse::<crate::Policy>().is_ok());
    }

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
    fn rate_accepts_quotas_of_any_realistic_size() {
        let day = Duration::from_secs(86_400);
        let year = 365 * day;
        assert!(Rate::new(1_000_000, day, None).is_ok());
        assert!(Rate::new(3_000_000_000, year, Some(1_000_000)).is_ok());
        assert!(Rate::new(MAX_AMOUNT, 10 * year, None).is_ok());
        assert!(Rate::new(MAX_AMOUNT, Duration::from_millis(1), Some(MAX_AMOUNT)).is_ok());
    }

    #[test]
    fn rate_names_the_bound_it_exceeds() {
        let day = Duration::from_secs(86_400);
        let e = Rate::new(MAX_AMOUNT + 1, day, None).unwrap_err();
        assert_eq!(e.field, "limit");
        assert!(e.reason.contains("10^15"), "{}", e.reason);
        let e = Rate::new(1, 18_251 * day, None).unwrap_err();
        assert_eq!(e.field, "window");
        assert!(e.reason.contains("50 years"), "{}", e.reason);
        assert!(Rate::new(1, 18_250 * day, None).is_ok());
        // A burst that would take longer than 50 years to refill.
        let e = Rate::new(1, day, Some(18_251)).unwrap_err();
        assert_eq!(e.field, "burst");
        assert!(e.reason.contains("50 years"), "{}", e.reason);
        assert!(Rate::new(1, day, Some(18_250)).is_ok());
    }

    #[test]
    fn rate_rejects_sub_microsecond_windows() {
        let e = Rate::new(1, Duration::from_nanos(1_500), None).unwrap_err();
        assert_eq!(e.field, "window");
    }
}
