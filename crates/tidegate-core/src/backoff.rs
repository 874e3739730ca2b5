//! Exponential backoff between retries: the one formula the event tracker's deliveries
//! and the work queue's jobs both retry by.

use std::time::Duration;

use thiserror::Error;

/// The delay before retry number `n` (after the `n`th failed attempt):
/// `min(base × factor^(n-1), max)`, then shortened by a random fraction of up to
/// `jitter` so that retries of work that failed together spread out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay after the first failed attempt.
    pub base: Duration,
    /// Growth per further attempt (at least 1).
    pub factor: f64,
    /// The longest delay.
    pub max: Duration,
    /// Largest fraction (0..=1) taken off each delay at random (0 = exact delays).
    pub jitter: f64,
}

/// A backoff that cannot be used: names the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{field}` {reason}")]
pub struct BackoffError {
    /// The field at fault (`base`, `factor`, `max`, `jitter`).
    pub field: &'static str,
    /// Why the value was rejected.
    pub reason: &'static str,
}

impl Backoff {
    /// Doubling from `base`, capped at `max`, without jitter.
    pub const fn doubling(base: Duration, max: Duration) -> Self {
        Self {
            base,
            factor: 2.0,
            max,
            jitter: 0.0,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), BackoffError> {
        let bad = |field, reason| Err(BackoffError { field, reason });
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return bad("factor", "must be a finite number of at least 1");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return bad("jitter", "must be between 0 and 1");
        }
        if self.max < self.base {
            return bad("max", "must not be shorter than `base`");
        }
        Ok(())
    }

    /// The delay after failed attempt number `attempt` (1-based; 0 counts as 1), with
    /// `random` in `0.0..1.0` choosing the jitter.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exp = self
            .factor
            .powi(attempt.saturating_sub(1).min(1_000) as i32);
        let raw = self.base.as_secs_f64() * exp;
        let capped = raw.min(self.max.as_secs_f64());
        let jittered = capped * (1.0 - self.jitter * random.clamp(0.0, 1.0));
        Duration::try_from_secs_f64(jittered.max(0.0)).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let b = Backoff::doubling(SECOND, Duration::from_secs(5));
        let delays: Vec<u64> = (1..=5).map(|n| b.delay(n, 0.5).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        assert_eq!(b.delay(0, 0.0), SECOND);
    }

    #[test]
    fn jitter_takes_off_at_most_its_fraction() {
        let b = Backoff {
            jitter: 0.25,
            ..Backoff::doubling(SECOND * 4, SECOND * 4)
        };
        assert_eq!(b.delay(1, 0.0), SECOND * 4);
        assert_eq!(b.delay(1, 1.0), SECOND * 3);
        assert_eq!(b.delay(1, 7.0), SECOND * 3, "random is clamped to 0..=1");
    }

    #[test]
    fn huge_attempt_counts_and_factors_stay_at_the_cap() {
        let b = Backoff {
            factor: 1e300,
            ..Backoff::doubling(SECOND, Duration::MAX)
        };
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::MAX);
    }

    #[test]
    fn invalid_values_name_the_field() {
        let ok = Backoff::doubling(SECOND, SECOND);
        let field = |b: Backoff| b.validate().unwrap_err().field;
        assert_eq!(field(Backoff { factor: 0.5, ..ok }), "factor");
        assert_eq!(
            field(Backoff {
                factor: f64::NAN,
                ..ok
            }),
            "factor"
        );
        assert_eq!(field(Backoff { jitter: 1.5, ..ok }), "jitter");
        assert_eq!(
            field(Backoff {
                max: SECOND / 2,
                ..ok
            }),
            "max"
        );
        assert_eq!(ok.validate(), Ok(()));
    }
}
