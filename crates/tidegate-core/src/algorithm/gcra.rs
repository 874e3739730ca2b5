//! `gcra`: the generic cell rate algorithm, one theoretical arrival time per key.
//!
//! Emission interval `T = window / limit`, tolerance `burst * T`. A request of `cost`
//! computes `new_tat = max(tat, now) + cost * T` and is admitted iff
//! `new_tat - now <= burst * T`. To stay exact when `T` is not a whole number of
//! microseconds, `T` is kept in lowest terms, `period / parts` µs, and every span of
//! time as whole microseconds plus a fraction in units of `1 / parts` µs: adding and
//! comparing spans is then exact integer arithmetic, and the products (`cost × period`,
//! a span divided by `T`) go through [`mul_add_div`], exact for quotas of any size.

use std::time::Duration;

use super::Algorithm;
use super::wide::{gcd, mul_add_div};
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::rate::Rate;

/// The generic cell rate algorithm (admits exactly what `token_bucket` admits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    rate: Rate,
    /// `T = period / parts` µs, in lowest terms (`window / g`, `limit / g`).
    period: u64,
    /// The denominator of every fraction of a microsecond; 1 when `T` is whole.
    parts: u64,
    /// `burst × T`: the furthest the schedule may run ahead of `now`.
    tolerance: Span,
}

/// Per-key state of [`Gcra`], [`TokenBucket`](super::TokenBucket) and
/// [`LeakyBucket`](super::LeakyBucket): the theoretical arrival time `tat + rem / parts`
/// microseconds, where `T = period / parts` in lowest terms. 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GcraState {
    /// Whole microseconds of the theoretical arrival time.
    pub tat: u64,
    /// Fraction of a microsecond, in units of `1 / parts` (`rem < parts`).
    pub rem: u64,
}

/// A span of time: `us + frac / parts` µs with `frac < parts`. The derived order
/// (`us`, then `frac`) is the order of the values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    us: u64,
    frac: u64,
}

impl Span {
    /// The span rounded up to whole microseconds.
    #[inline]
    fn ceil(self) -> u64 {
        self.us + u64::from(self.frac > 0)
    }
}

impl Gcra {
    /// `limit` per `window`, admitting bursts of up to `burst` (default `limit`).
    pub fn new(limit: u64, window: Duration, burst: Option<u64>) -> Result<Self, PolicyError> {
        Ok(Self::from_rate(Rate::new(limit, window, burst)?))
    }

    /// From already validated parameters.
    pub(crate) fn from_rate(rate: Rate) -> Self {
        let g = gcd(rate.window, rate.limit);
        let (period, parts) = (rate.window / g, rate.limit / g);
        let (us, frac) = mul_add_div(rate.burst, period, 0, parts);
        Self {
            rate,
            period,
            parts,
            tolerance: Span { us, frac },
        }
    }

    /// The parameters.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The emission interval in lowest terms, `(period, parts)`: `window / limit` is
    /// `period / parts` µs.
    pub fn interval(&self) -> (u64, u64) {
        (self.period, self.parts)
    }

    /// The tolerance `burst × window / limit` as whole µs and a remainder in units of
    /// `1 / parts` µs.
    pub fn tolerance(&self) -> (u64, u64) {
        (self.tolerance.us, self.tolerance.frac)
    }

    #[inline]
    fn add(&self, a: Span, b: Span) -> Span {
        let frac = a.frac + b.frac;
        if frac >= self.parts {
            Span {
                us: a.us + b.us + 1,
                frac: frac - self.parts,
            }
        } else {
            Span {
                us: a.us + b.us,
                frac,
            }
        }
    }

    /// `a - b`, for `a >= b`.
    #[inline]
    fn sub(&self, a: Span, b: Span) -> Span {
        if a.frac >= b.frac {
            Span {
                us: a.us - b.us,
                frac: a.frac - b.frac,
            }
        } else {
            Span {
                us: a.us - b.us - 1,
                frac: a.frac + self.parts - b.frac,
            }
        }
    }

    /// `⌊span / T⌋`: how many whole intervals fit in `span`.
    #[inline]
    fn intervals(&self, span: Span) -> u64 {
        mul_add_div(span.us, self.parts, span.frac, self.period).0
    }

    /// `max(tat, now) - now`: how far the schedule runs ahead of `now`.
    #[inline]
    fn ahead(&self, s: &GcraState, now: u64) -> Span {
        // A state written with other parameters (a patched rate) may hold a fraction of
        // a whole microsecond or more: carry it first.
        let (tat, rem) = if s.rem >= self.parts {
            (s.tat + s.rem / self.parts, s.rem % self.parts)
        } else {
            (s.tat, s.rem)
        };
        if tat >= now {
            Span {
                us: tat - now,
                frac: rem,
            }
        } else {
            Span::default()
        }
    }

    /// Admits or denies, returning the decision and `⌈max(tat, now) - now⌉` before it
    /// (the leaky bucket's delay).
    // Always inlined: a call here passes the 64-byte decision through memory, and its
    // spills and reloads sit on every decision's critical path (see `MemoryStore::acquire`).
    #[inline(always)]
    pub(crate) fn decide(&self, s: &mut GcraState, now: u64, cost: u64) -> (Decision, u64) {
        if self.parts == 1 {
            return self.decide_whole(s, now, cost);
        }
        let limit = self.rate.limit;
        let ahead = self.ahead(s, now);
        let cost_span = if cost == 1 {
            // `T` itself: one division (quotient and remainder together), not the wide
            // product. Not kept in the struct: every tracker record holds one `Gcra`.
            Span {
                us: self.period / self.parts,
                frac: self.period % self.parts,
            }
        } else {
            let (us, frac) = mul_add_div(cost, self.period, 0, self.parts);
            Span { us, frac }
        };
        let needed = self.add(ahead, cost_span);
        let decision = if needed <= self.tolerance {
            *s = GcraState {
                tat: now.saturating_add(needed.us),
                rem: needed.frac,
            };
            Decision {
                allowed: true,
                limit,
                remaining: self.intervals(self.sub(self.tolerance, needed)),
                retry_after_us: None,
                reset_after_us: needed.ceil(),
                delay_us: None,
            }
        } else {
            Decision {
                allowed: false,
                limit,
                remaining: if ahead <= self.tolerance {
                    self.intervals(self.sub(self.tolerance, ahead))
                } else {
                    0
                },
                retry_after_us: Some(self.sub(needed, self.tolerance).ceil()),
                reset_after_us: ahead.ceil(),
                delay_us: None,
            }
        };
        (decision, ahead.ceil())
    }

    /// [`decide`](Self::decide) when `T` is whole microseconds (`parts == 1`, e.g. 100/1s:
    /// 10 000 µs): every fraction is 0, so spans are plain microseconds and a decision
    /// needs one division.
    #[inline]
    fn decide_whole(&self, s: &mut GcraState, now: u64, cost: u64) -> (Decision, u64) {
        let (limit, t, tolerance) = (self.rate.limit, self.period, self.tolerance.us);
        let ahead = (s.tat + s.rem).saturating_sub(now);
        let needed = ahead + cost * t;
        let decision = if needed <= tolerance {
            *s = GcraState {
                tat: now.saturating_add(needed),
                rem: 0,
            };
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
        (decision, ahead)
    }
}

impl Algorithm for Gcra {
    type State = GcraState;

    fn fresh(&self) -> GcraState {
        GcraState::default()
    }

    #[inline(always)]
    fn acquire(&self, state: &mut GcraState, now: u64, cost: u64) -> Decision {
        self.decide(state, now, cost).0
    }

    fn peek(&self, state: &GcraState, now: u64, cost: u64) -> Decision {
        self.decide(&mut state.clone(), now, cost).0
    }

    fn expires_at(&self, s: &GcraState) -> u64 {
        let ahead = self.ahead(s, 0);
        ahead.ceil()
    }

    fn capacity(&self) -> u64 {
        self.rate.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::test_support::*;

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
        assert_eq!(g.ahead(&s, 333_344), Span::default());
    }

    #[test]
    fn gcra_admits_a_million_a_day_exactly() {
        // T = 86.4 ms; the scaled tolerance (10^6 × 86 400 s in µs) is far beyond 2^53.
        let g = Gcra::new(1_000_000, Duration::from_secs(86_400), None).unwrap();
        let mut s = g.fresh();
        let now = 1_764_000_000_000_000;
        let d = g.acquire(&mut s, now, 1_000_000);
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_after_us), (0, 86_400 * S));
        let d = g.acquire(&mut s, now, 1);
        assert_eq!(d.retry_after_us, Some(86_400));
        assert!(!g.acquire(&mut s, now + 86_399, 1).allowed);
        assert!(g.acquire(&mut s, now + 86_400, 1).allowed);
    }

    #[test]
    fn gcra_is_exact_for_a_limit_coprime_with_its_window() {
        // 10^12 - 11 (prime) per 10 years: T is a fraction with a 40-bit denominator.
        let limit = 999_999_999_989;
        let window = 10 * 365 * 86_400 * S;
        let g = Gcra::new(limit, Duration::from_micros(window), None).unwrap();
        assert_eq!((g.period, g.parts), (window, limit));
        let mut s = g.fresh();
        let d = g.acquire(&mut s, 0, limit);
        assert!(d.allowed);
        assert_eq!(d.reset_after_us, window);
        // One unit comes back after T = 315.36... µs: denied at 315, admitted at 316.
        assert_eq!(g.peek(&s, 0, 1).retry_after_us, Some(316));
        assert!(!g.peek(&s, 315, 1).allowed);
        assert!(g.peek(&s, 316, 1).allowed);
        assert_eq!(g.peek(&s, 316, 1).remaining, 0);
    }

    /// The same interval with its fraction not in lowest terms, `(t × k) / k`: always
    /// takes the general arithmetic.
    fn unreduced(fast: Gcra, k: u64) -> Gcra {
        let (period, parts) = (fast.period * k, k);
        let (us, frac) = mul_add_div(fast.rate.burst, period, 0, parts);
        Gcra {
            period,
            parts,
            tolerance: Span { us, frac },
            ..fast
        }
    }

    proptest::proptest! {
        /// The whole-microsecond fast path decides exactly as the general arithmetic.
        #[test]
        fn the_whole_interval_fast_path_matches_the_general_arithmetic(
            t in 1u64..=5_000,
            limit in 1u64..=50,
            burst in 1u64..=20,
            k in 2u64..=1_000,
            steps in proptest::collection::vec((0u64..=20_000, 1u64..=3), 1..60),
        ) {
            let fast = Gcra::new(limit, Duration::from_micros(t * limit), Some(burst)).unwrap();
            proptest::prop_assert_eq!((fast.period, fast.parts), (t, 1));
            let general = unreduced(fast, k);
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
