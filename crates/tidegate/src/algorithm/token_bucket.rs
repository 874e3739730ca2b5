//! `token_bucket`: a bucket of `burst` tokens, starting full, refilling continuously at
//! `limit / window`; a request is admitted if the bucket holds at least `cost` tokens.
//!
//! Exactness: the level is kept in units of `1 / window` token, so refilling for `dt`
//! microseconds adds exactly `dt * limit` and a token is worth exactly `window`. With
//! `5/1m`, a token is back exactly 12 s after the bucket ran dry.

use std::time::Duration;

use super::Algorithm;
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::rate::Rate;

/// A token bucket refilling continuously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    rate: Rate,
    /// `burst * window`: the level of a full bucket.
    full: u64,
}

/// Per-key state of [`TokenBucket`]: the scaled level and when it was measured. 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenBucketState {
    /// Tokens × window.
    pub level: u64,
    /// Microsecond time at which `level` was measured.
    pub last: u64,
}

impl TokenBucket {
    /// `limit` tokens per `window`, holding up to `burst` (default `limit`).
    pub fn new(limit: u64, window: Duration, burst: Option<u64>) -> Result<Self, PolicyError> {
        Ok(Self::from_rate(Rate::new(limit, window, burst)?))
    }

    /// From already validated parameters.
    pub(crate) fn from_rate(rate: Rate) -> Self {
        Self {
            rate,
            full: rate.burst * rate.window,
        }
    }

    /// The parameters.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Microseconds until the bucket holds `target` (scaled) again.
    fn wait_for(&self, level: u64, target: u64) -> u64 {
        target.saturating_sub(level).div_ceil(self.rate.limit)
    }
}

impl Algorithm for TokenBucket {
    type State = TokenBucketState;

    fn fresh(&self) -> TokenBucketState {
        TokenBucketState {
            level: self.full,
            last: 0,
        }
    }

    fn acquire(&self, s: &mut TokenBucketState, now: u64, cost: u64) -> Decision {
        let Rate { limit, window, .. } = self.rate;
        if now > s.last {
            let refill = (now - s.last).saturating_mul(limit);
            s.level = s.level.saturating_add(refill).min(self.full);
            s.last = now;
        }
        let needed = cost * window;
        if s.level >= needed {
            s.level -= needed;
            Decision {
                allowed: true,
                limit,
                remaining: s.level / window,
                retry_after_us: None,
                reset_after_us: self.wait_for(s.level, self.full),
                delay_us: None,
            }
        } else {
            Decision {
                allowed: false,
                limit,
                remaining: s.level / window,
                retry_after_us: Some(self.wait_for(s.level, needed)),
                reset_after_us: self.wait_for(s.level, self.full),
                delay_us: None,
            }
        }
    }

    fn expires_at(&self, s: &TokenBucketState) -> u64 {
        s.last + self.wait_for(s.level, self.full)
    }

    fn capacity(&self) -> u64 {
        self.rate.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn token_bucket_five_per_minute_has_a_token_back_at_exactly_twelve_seconds() {
        let tb = TokenBucket::new(5, Duration::from_secs(60), None).unwrap();
        let mut s = tb.fresh();
        for i in 0..5 {
            assert!(tb.acquire(&mut s, 0, 1).allowed, "admit {i}");
        }
        let d = tb.acquire(&mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, Some(12 * S));
        assert_eq!(d.remaining, 0);
        assert!(!tb.acquire(&mut s, 12 * S - 1, 1).allowed);
        let d = tb.acquire(&mut s, 12 * S, 1);
        assert!(d.allowed);
        let d = tb.acquire(&mut s, 18 * S, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, Some(6 * S));
    }

    #[test]
    fn token_bucket_burst_caps_the_bucket() {
        let tb = TokenBucket::new(100, Duration::from_secs(60), Some(20)).unwrap();
        let mut s = tb.fresh();
        let mut admitted = 0;
        while tb.acquire(&mut s, 0, 1).allowed {
            admitted += 1;
        }
        assert_eq!(admitted, 20);
        // After an hour idle the bucket holds 20 again, not 6000.
        let mut admitted = 0;
        while tb.acquire(&mut s, 3_600 * S, 1).allowed {
            admitted += 1;
        }
        assert_eq!(admitted, 20);
    }

    #[test]
    fn token_bucket_reports_reset_until_full() {
        let tb = TokenBucket::new(10, Duration::from_secs(10), None).unwrap();
        let mut s = tb.fresh();
        let d = tb.acquire(&mut s, 0, 4);
        assert_eq!((d.remaining, d.reset_after_us), (6, 4 * S));
        assert_eq!(tb.expires_at(&s), 4 * S);
    }
}
