//! `gcra`: the generic cell rate algorithm, one theoretical arrival time per key.
//!
//! Emission interval `T = window / limit`, tolerance `burst * T`. A request of `cost`
//! computes `new_tat = max(tat, now) + cost * T` and is admitted iff
//! `new_tat - now <= burst * T`. To stay exact when `window / limit` is not a whole
//! number of microseconds, every quantity is kept multiplied by `limit`: the state
//! holds `tat` as whole microseconds plus a remainder `rem / limit` (`0 <= rem < limit`),
//! and one unit of cost adds exactly `window` to the scaled excess.

use std::time::Duration;

use super::Algorithm;
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::rate::Rate;

/// The generic cell rate algorithm (admits exactly what `token_bucket` admits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    rate: Rate,
    /// `burst * window`: the largest scaled excess that is still admitted.
    tolerance: u64,
    /// `window / limit` when it is a whole number of microseconds (100/1s: 10 000 µs):
    /// then the remainder stays 0 and a decision needs one division instead of four.
    interval: Option<u64>,
}

/// Per-key state of [`Gcra`] and [`LeakyBucket`](super::LeakyBucket): the theoretical
/// arrival time `tat + rem / limit` microseconds. 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GcraState {
    /// Whole microseconds of the theoretical arrival time.
    pub tat: u64,
    /// Fraction of a microsecond, in units of `1 / limit` (`rem < limit`).
    pub rem: u64,
}

impl Gcra {
    /// `limit` per `window`, admitting bursts of up to `burst` (default `limit`).
    pub fn new(limit: u64, window: Duration, burst: Option<u64>) -> Result<Self, PolicyError> {
        Ok(Self::from_rate(Rate::new(limit, window, burst)?))
    }

    /// From already validated parameters.
    pub(crate) fn from_rate(rate: Rate) -> Self {
        Self {
            rate,
            tolerance: rate.burst * rate.window,
            interval: (rate.window % rate.limit == 0).then(|| rate.window / rate.limit),
        }
    }

    /// The parameters.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// `(max(tat, now) - now) * limit`: how far the schedule runs ahead of `now`, scaled.
    #[inline]
    pub(crate) fn excess(&self, s: &GcraState, now: u64) -> u64 {
        if s.tat >= now {
            (s.tat - now)
                .saturating_mul(self.rate.limit)
                .saturating_add(s.rem)
        } else {
            0
        }
    }

    /// Admits or denies, returning the decision and the scaled excess before it.
    #[inline]
    pub(crate) fn decide(&self, s: &mut GcraState, now: u64, cost: u64) -> (Decision, u64) {
        if let Some(t) = self.interval
            && s.rem == 0
        {
            return self.decide_whole(t, s, now, cost);
        }
        let Rate { limit, window, .. } = self.rate;
        let excess = self.excess(s, now);
        let needed = excess.saturating_add(cost * window);
        let decision = if needed <= self.tolerance {
            *s = GcraState {
                tat: now + needed / limit,
                rem: needed % limit,
            };
            Decision {
                allowed: true,
                limit,
                remaining: (self.tolerance - needed) / window,
                retry_after_us: None,
                reset_after_us: needed.div_ceil(limit),
                delay_us: None,
            }
        } else {
            Decision {
                allowed: false,
                limit,
                remaining: self.tolerance.saturating_sub(excess) / window,
                retry_after_us: Some((needed - self.tolerance).div_ceil(limit)),
                reset_after_us: excess.div_ceil(limit),
                delay_us: None,
            }
        };
        (decision, excess)
    }
}

impl Gcra {
    /// [`decide`](Self::decide) when the interval `t` is whole microseconds and the
    /// state has no fraction: the same arithmetic divided through by `limit`, so the
    /// schedule is in plain microseconds (`tolerance / limit = burst * t`).
    #[inline]
    fn decide_whole(&self, t: u64, s: &mut GcraState, now: u64, cost: u64) -> (Decision, u64) {
        let limit = self.rate.limit;
        let tolerance = self.rate.burst * t;
        let ahead = s.tat.saturating_sub(now);
        let needed = ahead + cost * t;
        let decision = if needed <= tolerance {
            s.tat = now + needed;
            Decision {
                allowed: true,
                limit,
                remaining: (tolerance - needed) / t,
                retry_after_us: None,
                reset_after_us: needed,
                delay_us: None,
            }
        } else {
            Decision {
                allowed: false,
                limit,
                remaining: tolerance.saturating_sub(ahead) / t,
                retry_after_us: Some(needed - tolerance),
                reset_after_us: ahead,
                delay_us: None,
            }
        };
        (decision, ahead.saturating_mul(limit))
    }
}

impl Algorithm for Gcra {
    type State = GcraState;

    fn fresh(&self) -> GcraState {
        GcraState::default()
    }

    #[inline]
    fn acquire(&self, state: &mut GcraState, now: u64, cost: u64) -> Decision {
        self.decide(state, now, cost).0
    }

    fn peek(&self, state: &GcraState, now: u64, cost: u64) -> Decision {
        self.decide(&mut state.clone(), now, cost).0
    }

    fn expires_at(&self, s: &GcraState) -> u64 {
        s.tat + u64::from(s.rem > 0)
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
    fn gcra_five_per_minute_spaces_tokens_twelve_seconds_apart() {
        let g = Gcra::new(5, Duration::from_secs(60), None).unwrap();
        let mut s = g.fresh();
        for i in 0..5 {
            let d = g.acquire(&mut s, 0, 1);
            assert!(d.allowed, "admit {i}");
            assert_eq!(d.remaining, 4 - i);
        }
        let d = g.acquire(&mut s, 0, 1);
        assert_eq!(d.retry_after_us, Some(12 * S));
        assert_eq!(d.reset_after_us, 60 * S);
        assert!(!g.acquire(&mut s, 12 * S - 1, 1).allowed);
        assert!(g.acquire(&mut s, 12 * S, 1).allowed);
        assert_eq!(g.acquire(&mut s, 18 * S, 1).retry_after_us, Some(6 * S));
    }

    #[test]
    fn gcra_is_exact_when_the_interval_is_not_a_whole_microsecond() {
        // 3 per µs: T = 1/3 µs. Offered 5 per µs, exactly 3 per µs get through.
        let g = Gcra::new(3, Duration::from_micros(1), None).unwrap();
        let mut s = g.fresh();
        let mut admitted = 0;
        for now in 0..1_000u64 {
            for _ in 0..5 {
                admitted += u64::from(g.acquire(&mut s, now, 1).allowed);
            }
        }
        assert_eq!(admitted, 3 * 1_000);
    }

    #[test]
    fn gcra_weighted_cost_is_all_or_nothing() {
        let g = Gcra::new(10, Duration::from_secs(10), None).unwrap();
        let mut s = g.fresh();
        assert!(g.acquire(&mut s, 0, 7).allowed);
        let d = g.acquire(&mut s, 0, 4);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 3);
        assert_eq!(d.retry_after_us, Some(S));
        assert!(g.acquire(&mut s, 0, 3).allowed);
    }

    #[test]
    fn gcra_state_expires_when_the_schedule_catches_up() {
        let g = Gcra::new(3, Duration::from_secs(1), None).unwrap();
        let mut s = g.fresh();
        g.acquire(&mut s, 10, 1);
        // tat = 10 + 333_333 µs + 1/3 µs.
        assert_eq!(
            s,
            GcraState {
                tat: 333_343,
                rem: 1
            }
        );
        assert_eq!(g.expires_at(&s), 333_344);
        assert_eq!(g.excess(&s, 333_344), 0);
    }

    proptest::proptest! {
        /// The whole-microsecond fast path decides exactly as the general arithmetic.
        #[test]
        fn the_whole_interval_fast_path_matches_the_general_arithmetic(
            t in 1u64..=5_000,
            limit in 1u64..=50,
            burst in 1u64..=20,
            steps in proptest::collection::vec((0u64..=20_000, 1u64..=3), 1..60),
        ) {
            let fast = Gcra::new(limit, Duration::from_micros(t * limit), Some(burst)).unwrap();
            proptest::prop_assert_eq!(fast.interval, Some(t));
            let general = Gcra { interval: None, ..fast };
            let (mut a, mut b) = (fast.fresh(), general.fresh());
            let mut now = 0;
            for (dt, cost) in steps {
                now += dt;
                let cost = cost.min(burst);
                proptest::prop_assert_eq!(fast.peek(&a, now, cost), general.peek(&b, now, cost));
                proptest::prop_assert_eq!(fast.decide(&mut a, now, cost), general.decide(&mut b, now, cost));
                proptest::prop_assert_eq!(a, b);
            }
        }
    }
}
