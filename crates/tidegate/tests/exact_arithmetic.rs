//! Every algorithm against a reference model in exact arithmetic, on quotas of every size
//! (limits 1..10^12, windows 1 ms..10 years, costs up to the capacity, clocks near
//! today's Unix time).
//!
//! The reference is written from the definitions in docs/ALGORITHMS.md, not from the
//! code: each model only says whether a request fits now and how admitting it changes
//! the state, in `u128` with the original scaling (the bucket level in units of
//! `1 / window` token, the GCRA schedule in units of `1 / limit` µs). Every decision
//! field is then found by search over that predicate alone: `remaining` is the largest
//! cost that fits now, `retry_after` the first instant the same cost fits, `reset_after`
//! the first instant a cost of the full capacity fits.

mod support;

use proptest::prelude::*;
use support::quotas::large_case;
use tidegate::{Algorithm, AlgorithmKind, Decision, Policy};

/// A reference state machine: what fits, and what admitting does.
#[derive(Debug, Clone)]
enum Model {
    Fixed {
        start: u64,
        count: u64,
    },
    Sliding {
        start: u64,
        previous: u64,
        current: u64,
    },
    Log {
        entries: Vec<(u64, u64)>,
    },
    Bucket {
        level: u128,
        last: u64,
    },
    Gcra {
        tat: u64,
        rem: u128,
    },
    Throttle {
        last: Option<u64>,
    },
}

/// A policy's parameters and its reference state.
#[derive(Debug, Clone)]
struct Reference {
    kind: AlgorithmKind,
    limit: u64,
    window: u64,
    burst: u64,
    /// A fixed window aligned to the epoch.
    epoch: bool,
    model: Model,
}

impl Reference {
    fn new(p: &Policy) -> Self {
        let (limit, window, burst) = p.parts();
        let burst = burst.unwrap_or(limit);
        let model = match p.kind() {
            AlgorithmKind::FixedWindow => Model::Fixed { start: 0, count: 0 },
            AlgorithmKind::SlidingWindow => Model::Sliding {
                start: 0,
                previous: 0,
                current: 0,
            },
            AlgorithmKind::SlidingLog => Model::Log { entries: vec![] },
            AlgorithmKind::TokenBucket => Model::Bucket {
                level: u128::from(burst) * u128::from(window),
                last: 0,
            },
            AlgorithmKind::Gcra | AlgorithmKind::LeakyBucket => Model::Gcra { tat: 0, rem: 0 },
            AlgorithmKind::Throttle => Model::Throttle { last: None },
        };
        Self {
            kind: p.kind(),
            limit,
            window,
            burst,
            epoch: matches!(p, Policy::FixedWindow(a) if a.is_epoch_aligned()),
            model,
        }
    }

    fn capacity(&self) -> u64 {
        match self.kind {
            AlgorithmKind::Throttle => 1,
            k if k.takes_burst() => self.burst,
            _ => self.limit,
        }
    }

    /// The state as time passes to `now` with nothing admitted (windows advance,
    /// buckets refill); observably the same state.
    fn at(&self, now: u64) -> Model {
        let (l, w) = (self.limit, self.window);
        match self.model.clone() {
            Model::Fixed { start, count } if count > 0 && now >= start + w => {
                Model::Fixed { start, count: 0 }
            }
            Model::Sliding {
                mut start,
                mut previous,
                mut current,
            } => {
                if now >= start + w {
                    let passed = (now - start) / w;
                    previous = if passed == 1 { current } else { 0 };
                    current = 0;
                    start += passed * w;
                }
                if previous == 0 && current == 0 {
                    start = now;
                }
                Model::Sliding {
                    start,
                    previous,
                    current,
                }
            }
            Model::Log { mut entries } => {
                entries.retain(|&(t, _)| now.saturating_sub(t) < w);
                Model::Log { entries }
            }
            Model::Bucket { level, last } if now > last => {
                let full = u128::from(self.burst) * u128::from(w);
                let level = (level + u128::from(now - last) * u128::from(l)).min(full);
                Model::Bucket { level, last: now }
            }
            m => m,
        }
    }

    /// `⌈max(tat, now) - now⌉` for the GCRA schedule (the leaky bucket's delay).
    fn ahead(&self, now: u64) -> u64 {
        match self.model {
            Model::Gcra { tat, rem } if tat >= now => {
                let excess = u128::from(tat - now) * u128::from(self.limit) + rem;
                excess.div_ceil(u128::from(self.limit)) as u64
            }
            _ => 0,
        }
    }

    fn fits(&self, now: u64, cost: u64) -> bool {
        let (l, w, b) = (
            u128::from(self.limit),
            u128::from(self.window),
            u128::from(self.burst),
        );
        let c = u128::from(cost);
        match self.at(now) {
            Model::Fixed { count, .. } => count + cost <= self.limit,
            Model::Sliding {
                start,
                previous,
                current,
            } => {
                let elapsed = u128::from(now - start);
                let carried = u128::from(previous) * (w - elapsed) / w;
                u128::from(current) + carried + c <= l
            }
            Model::Log { entries } => entries.iter().map(|e| e.1).sum::<u64>() + cost <= self.limit,
            Model::Bucket { level, .. } => level >= c * w,
            Model::Gcra { tat, rem } => {
                let excess = if tat >= now {
                    u128::from(tat - now) * l + rem
                } else {
                    0
                };
                excess + c * w <= b * w
            }
            Model::Throttle { last } => last.is_none_or(|last| now >= last + self.window),
        }
    }

    fn admit(&mut self, now: u64, cost: u64) {
        let (l, w) = (u128::from(self.limit), u128::from(self.window));
        self.model = match self.at(now) {
            Model::Fixed { start, count } => Model::Fixed {
                start: match (count, self.epoch) {
                    (0, true) => now - now % self.window,
                    (0, false) => now,
                    _ => start,
                },
                count: count + cost,
            },
            Model::Sliding {
                start,
                previous,
                current,
            } => Model::Sliding {
                start,
                previous,
                current: current + cost,
            },
            Model::Log { mut entries } => {
                entries.push((now, cost));
                Model::Log { entries }
            }
            Model::Bucket { level, last } => Model::Bucket {
                level: level - u128::from(cost) * w,
                last,
            },
            Model::Gcra { tat, rem } => {
                let excess = if tat >= now {
                    u128::from(tat - now) * l + rem
                } else {
                    0
                };
                let needed = excess + u128::from(cost) * w;
                Model::Gcra {
                    tat: now + (needed / l) as u64,
                    rem: needed % l,
                }
            }
            Model::Throttle { .. } => Model::Throttle { last: Some(now) },
        };
    }

    /// The largest cost that fits at `now` (fitting is monotone in the cost).
    fn largest_fitting(&self, now: u64) -> u64 {
        let (mut lo, mut hi) = (0, self.capacity());
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.fits(now, mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// The first `d >= 0` with `cost` fitting at `now + d` (monotone in time).
    fn wait(&self, now: u64, cost: u64) -> u64 {
        let refill = u128::from(self.burst) * u128::from(self.window) / u128::from(self.limit);
        let (mut lo, mut hi) = (0u64, 2 * self.window.max(refill as u64) + 2);
        assert!(self.fits(now + hi, cost), "{self:?} never fits {cost}");
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.fits(now + mid, cost) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// The decision for `cost` at `now`, admitting it if it fits.
    fn decide(&mut self, now: u64, cost: u64) -> Decision {
        let allowed = self.fits(now, cost);
        let delay = (allowed && self.kind == AlgorithmKind::LeakyBucket).then(|| self.ahead(now));
        let retry = (!allowed).then(|| self.wait(now, cost));
        if allowed {
            self.admit(now, cost);
        }
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.largest_fitting(now),
            retry_after_us: retry,
            reset_after_us: self.wait(now, self.capacity()),
            delay_us: delay,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn every_algorithm_decides_as_exact_arithmetic_on_quotas_of_any_size(
        (policy, traffic) in large_case(40),
    ) {
        let mut reference = Reference::new(&policy);
        let mut state = policy.fresh();
        for (i, &(t, cost)) in traffic.iter().enumerate() {
            let peeked = policy.peek(&state, t, cost);
            let got = policy.acquire(&mut state, t, cost);
            let want = reference.decide(t, cost);
            prop_assert_eq!(got, want, "event {} (t {}, cost {}) on {}", i, t, cost, policy);
            prop_assert_eq!(peeked, got, "peek differs at event {} on {}", i, policy);
        }
    }
}

#[test]
fn the_quotas_real_apis_use_decide_exactly() {
    // Each policy: its full quota at once is admitted, one more unit is denied until
    // exactly one interval (or the window) has passed.
    let now = support::quotas::EPOCH_NOW;
    for spec in [
        "fixed_window:1000000/1d",
        "token_bucket:10000000/30d",
        "gcra:3000000000/365d,burst=1000000",
        "sliding_window:5000000/1h",
        "sliding_log:1000000/1d",
        "leaky_bucket:1000000000000/3650d",
    ] {
        let policy: Policy = spec.parse().unwrap();
        let mut reference = Reference::new(&policy);
        let mut state = policy.fresh();
        let capacity = policy.capacity();
        for (t, cost) in [(now, capacity), (now, 1), (now + 1, 1)] {
            let got = policy.acquire(&mut state, t, cost);
            assert_eq!(got, reference.decide(t, cost), "{spec} at {t}");
        }
        let retry = policy.peek(&state, now, 1).retry_after_us.unwrap();
        assert!(!policy.peek(&state, now + retry - 1, 1).allowed, "{spec}");
        assert!(policy.peek(&state, now + retry, 1).allowed, "{spec}");
    }
}
