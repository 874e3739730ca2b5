//! `token_bucket`: a bucket of `burst` tokens, starting full, refilling continuously at
//! `limit / window`; a request is admitted if the bucket holds at least `cost` tokens.
//!
//! A bucket's level is the tolerance minus how far a GCRA schedule runs ahead
//! (`level = burst - (max(tat, now) - now) / T`), so the two admit exactly the same
//! requests with the same decision fields. The bucket is therefore kept as a [`Gcra`]
//! state: one arithmetic, exact for quotas of any size. With `5/1m`, a token is back
//! exactly 12 s after the bucket ran dry.

use std::time::Duration;

use super::Algorithm;
use super::gcra::{Gcra, GcraState};
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::rate::Rate;

/// A token bucket refilling continuously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    gcra: Gcra,
}

/// Per-key state of [`TokenBucket`]: the [`GcraState`] whose schedule is the bucket's
/// deficit (a fresh state is a full bucket). 16 bytes.
pub type TokenBucketState = GcraState;

impl TokenBucket {
    /// `limit` tokens per `window`, holding at most `burst` (default `limit`).
    pub fn new(limit: u64, window: Duration, burst: Option<u64>) -> Result<Self, PolicyError> {
        Ok(Self::from_rate(Rate::new(limit, window, burst)?))
    }

    /// From already validated parameters.
    pub(crate) fn from_rate(rate: Rate) -> Self {
        Self {
            gcra: Gcra::from_rate(rate),
        }
    }

    /// The parameters.
    pub fn rate(&self) -> Rate {
        self.gcra.rate()
    }
}

impl Algorithm for TokenBucket {
    type State = TokenBucketState;

    fn fresh(&self) -> TokenBucketState {
        self.gcra.fresh()
    }

    #[inline]
    fn acquire(&self, s: &mut TokenBucketState, now: u64, cost: u64) -> Decision {
        self.gcra.acquire(s, now, cost)
    }

    fn peek(&self, s: &TokenBucketState, now: u64, cost: u64) -> Decision {
        self.gcra.peek(s, now, cost)
    }

    fn expires_at(&self, s: &TokenBucketState) -> u64 {
        self.gcra.expires_at(s)
    }

    fn capacity(&self) -> u64 {
        self.gcra.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::test_support::*;

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
        assert_eq!(admitted_in_a_row(&tb, &mut s, 0, 1), 20);
        // After an hour idle the bucket holds 20 again, not 6000.
        assert_eq!(admitted_in_a_row(&tb, &mut s, 3_600 * S, 1), 20);
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
