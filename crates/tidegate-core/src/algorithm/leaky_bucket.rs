//! `leaky_bucket`: traffic shaping. Admitted requests leave evenly spaced, one every
//! `window / limit`; each admitted request is told how long to wait (`delay`), and a
//! request is denied when the `burst` waiting slots are full.
//!
//! The schedule is the [`Gcra`] theoretical arrival time (`next_free`): a request leaves
//! at `max(next_free, now)`, so `delay = max(next_free, now) - now` (rounded up to a
//! whole microsecond), and it occupies `cost` slots. Admission is therefore exactly
//! GCRA's; the difference is that the caller waits `delay` instead of proceeding.

use std::time::Duration;

use super::Algorithm;
use super::gcra::{Gcra, GcraState};
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::rate::Rate;

/// A shaping leaky bucket (a queue of `burst` slots draining at `limit / window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakyBucket {
    gcra: Gcra,
}

impl LeakyBucket {
    /// `limit` departures per `window`, with `burst` (default `limit`) waiting slots.
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

impl Algorithm for LeakyBucket {
    type State = GcraState;

    fn fresh(&self) -> GcraState {
        GcraState::default()
    }

    fn acquire(&self, state: &mut GcraState, now: u64, cost: u64) -> Decision {
        let (mut decision, ahead) = self.gcra.decide(state, now, cost);
        if decision.allowed {
            decision.delay_us = Some(ahead);
        }
        decision
    }

    fn expires_at(&self, state: &GcraState) -> u64 {
        self.gcra.expires_at(state)
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
    fn leaky_bucket_twenty_per_minute_spaces_departures_three_seconds_apart() {
        let lb = LeakyBucket::new(20, Duration::from_secs(60), None).unwrap();
        let mut s = lb.fresh();
        for i in 0..20 {
            let d = lb.acquire(&mut s, 0, 1);
            assert!(d.allowed);
            assert_eq!(d.delay_us, Some(i * 3 * S));
        }
        let d = lb.acquire(&mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!(d.delay_us, None);
        assert_eq!(d.retry_after_us, Some(3 * S));
        // One slot drains every 3 s; the next request waits behind the 19 still queued.
        let d = lb.acquire(&mut s, 3 * S, 1);
        assert!(d.allowed);
        assert_eq!(d.delay_us, Some(57 * S));
    }

    #[test]
    fn leaky_bucket_rounds_fractional_delays_up() {
        let lb = LeakyBucket::new(3, Duration::from_micros(10), None).unwrap();
        let mut s = lb.fresh();
        assert_eq!(lb.acquire(&mut s, 0, 1).delay_us, Some(0));
        // T = 10/3 µs: the second leaves at 3.33 µs, reported as 4.
        assert_eq!(lb.acquire(&mut s, 0, 1).delay_us, Some(4));
        assert_eq!(lb.acquire(&mut s, 0, 1).delay_us, Some(7));
    }
}
