//! Property tests of the algorithms' invariants on random traffic: small quotas with
//! dense traffic, and quotas of every size (limits up to 10^12, windows up to 10 years,
//! costs up to the capacity, clocks near today's Unix time).

mod support;

use std::time::Duration;

use proptest::prelude::*;
use tidegate::algorithm::{FixedWindow, Gcra, SlidingLog, Throttle, TokenBucket};
use tidegate::{Algorithm, AlgorithmKind, Policy, PolicySet};

/// Random traffic: non-decreasing times (µs) with costs in `1..=max_cost`.
fn traffic(max_gap: u64, max_cost: u64) -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0..=max_gap, 1..=max_cost), 1..200).prop_map(|steps| {
        let mut t = 0;
        steps
            .into_iter()
            .map(|(gap, cost)| {
                t += gap;
                (t, cost)
            })
            .collect()
    })
}

/// A window of 1 µs .. 10 s, often a "round" one and often one that does not divide.
fn window() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1u64..=10).prop_map(Duration::from_secs),
        (1u64..=10_000_000).prop_map(Duration::from_micros),
        Just(Duration::from_millis(333)),
    ]
}

/// Any valid policy of any algorithm.
fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(AlgorithmKind::ALL.to_vec()),
        1u64..=20,
        window(),
        prop::option::of(1u64..=30),
    )
        .prop_map(|(kind, limit, window, burst)| {
            let burst = burst.filter(|_| kind.takes_burst());
            let limit = (kind != AlgorithmKind::Throttle).then_some(limit);
            Policy::new(kind, limit, window, burst).unwrap()
        })
}

fn admitted<A: Algorithm>(alg: &A, traffic: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut state = alg.fresh();
    traffic
        .iter()
        .copied()
        .filter(|&(t, cost)| {
            alg.check_cost(cost).is_ok() && alg.acquire(&mut state, t, cost).allowed
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sliding_log_never_admits_more_than_limit_in_any_window(
        limit in 1u64..=20,
        window in window(),
        traffic in traffic(400_000, 5),
    ) {
        let alg = SlidingLog::new(limit, window).unwrap();
        let w = window.as_micros() as u64;
        let ok = admitted(&alg, &traffic);
        for &(t, _) in &ok {
            // Any window (t - w, t] ending at an admitted event.
            let in_window: u64 = ok.iter().filter(|&&(u, _)| u <= t && t - u < w).map(|&(_, c)| c).sum();
            prop_assert!(in_window <= limit, "{in_window} > {limit} in the window ending at {t}");
        }
    }

    #[test]
    fn gcra_and_token_bucket_decide_identically(
        limit in 1u64..=50,
        window in window(),
        burst in prop::option::of(1u64..=60),
        traffic in traffic(3_000_000, 8),
    ) {
        let gcra = Gcra::new(limit, window, burst).unwrap();
        let bucket = TokenBucket::new(limit, window, burst).unwrap();
        let (mut g, mut b) = (gcra.fresh(), bucket.fresh());
        for (t, cost) in traffic {
            if gcra.check_cost(cost).is_err() {
                continue;
            }
            prop_assert_eq!(gcra.acquire(&mut g, t, cost), bucket.acquire(&mut b, t, cost), "at {}", t);
        }
    }

    #[test]
    fn gcra_and_token_bucket_agree_on_fractional_interval_boundaries(
        limit in 2u64..=7,
        burst in 1u64..=3,
        gaps in prop::collection::vec(prop::sample::select(vec![0u64, 1, 1_428, 1_429, 3_333, 3_334, 6_666, 10_000]), 1..60),
    ) {
        // 10 ms / limit is a fraction of a microsecond for every limit here but 2 and 5.
        let window = Duration::from_millis(10);
        let gcra = Gcra::new(limit, window, Some(burst)).unwrap();
        let bucket = TokenBucket::new(limit, window, Some(burst)).unwrap();
        let (mut g, mut b, mut t) = (gcra.fresh(), bucket.fresh(), 0);
        for gap in gaps {
            t += gap;
            prop_assert_eq!(gcra.acquire(&mut g, t, 1), bucket.acquire(&mut b, t, 1), "at {}", t);
        }
    }

    #[test]
    fn fixed_window_never_exceeds_limit_per_window(
        limit in 1u64..=20,
        window in window(),
        traffic in traffic(400_000, 5),
    ) {
        let alg = FixedWindow::new(limit, window).unwrap();
        let w = window.as_micros() as u64;
        // Windows open at the first admitted hit at or after the previous window's end.
        let (mut start, mut sum) = (None::<u64>, 0);
        for (t, cost) in admitted(&alg, &traffic) {
            match start {
                Some(s) if t < s + w => sum += cost,
                _ => {
                    start = Some(t);
                    sum = cost;
                }
            }
            prop_assert!(sum <= limit);
        }
    }

    #[test]
    fn throttle_admits_events_at_least_a_window_apart(
        window in window(),
        traffic in traffic(3_000_000, 1),
    ) {
        let alg = Throttle::new(window).unwrap();
        let w = window.as_micros() as u64;
        let ok = admitted(&alg, &traffic);
        for pair in ok.windows(2) {
            prop_assert!(pair[1].0 - pair[0].0 >= w);
        }
        // And it is the first event per window: every denied event is within w of the last admitted.
        let mut state = alg.fresh();
        let mut last = None;
        for (t, _) in traffic {
            let allowed = alg.acquire(&mut state, t, 1).allowed;
            prop_assert_eq!(allowed, last.is_none_or(|l: u64| t >= l + w));
            if allowed {
                last = Some(t);
            }
        }
    }

    #[test]
    fn remaining_retry_after_and_reset_after_match_what_the_next_request_gets(
        policies in prop::collection::vec(policy(), 1..=2),
        traffic in traffic(2_000_000, 4),
    ) {
        let alg = PolicySet::new(policies).unwrap();
        let capacity = alg.capacity();
        let mut state = alg.fresh();
        for (t, cost) in traffic {
            let cost = cost.min(capacity);
            let d = alg.acquire(&mut state, t, cost);
            if let Some(retry) = d.retry_after_us {
                prop_assert!(!d.allowed && retry > 0);
                prop_assert!(!alg.peek(&state, t + retry - 1, cost).allowed, "admitted before retry_after");
                prop_assert!(alg.peek(&state, t + retry, cost).allowed, "still denied at retry_after");
            } else {
                prop_assert!(d.allowed);
                if d.remaining >= 1 {
                    prop_assert!(alg.peek(&state, t, d.remaining.min(capacity)).allowed, "remaining does not fit");
                }
                if d.remaining < capacity {
                    prop_assert!(!alg.peek(&state, t, d.remaining + 1).allowed, "more than remaining fits");
                }
            }
            if alg.policies().len() == 1 && d.reset_after_us > 0 {
                let reset = d.reset_after_us;
                prop_assert!(alg.peek(&state, t + reset, capacity).allowed, "quota not back at reset_after");
                prop_assert!(!alg.peek(&state, t + reset - 1, capacity).allowed, "quota back before reset_after");
            }
        }
    }

    #[test]
    fn peek_never_changes_the_next_decision(
        p in policy(),
        traffic in traffic(2_000_000, 3),
    ) {
        let (mut a, mut b) = (p.fresh(), p.fresh());
        for (t, cost) in traffic {
            let cost = cost.min(p.capacity());
            let _ = p.peek(&b, t, cost);
            prop_assert_eq!(p.acquire(&mut a, t, cost), p.acquire(&mut b, t, cost));
        }
    }

    #[test]
    fn a_state_past_expires_at_decides_like_a_fresh_one(
        p in policy(),
        traffic in traffic(2_000_000, 3),
        probe_cost in 1u64..=3,
    ) {
        let mut state = p.fresh();
        for (t, cost) in &traffic {
            p.acquire(&mut state, *t, (*cost).min(p.capacity()));
        }
        let last = traffic.last().unwrap().0;
        let at = p.expires_at(&state).max(last);
        let cost = probe_cost.min(p.capacity());
        // The same follow-up traffic gives the same decisions from either state.
        let mut fresh = p.fresh();
        let mut now = at;
        for step in [0, 1, 500_000, 500_000, 7] {
            now += step;
            prop_assert_eq!(p.acquire(&mut state, now, cost), p.acquire(&mut fresh, now, cost));
        }
    }

    #[test]
    fn at_any_size_retry_after_and_reset_after_are_the_exact_boundaries(
        (p, traffic) in support::quotas::large_case(40),
    ) {
        let capacity = p.capacity();
        let mut state = p.fresh();
        for (t, cost) in traffic {
            let d = p.acquire(&mut state, t, cost);
            if let Some(retry) = d.retry_after_us {
                prop_assert!(!d.allowed && retry > 0);
                prop_assert!(!p.peek(&state, t + retry - 1, cost).allowed, "admitted before retry_after");
                prop_assert!(p.peek(&state, t + retry, cost).allowed, "still denied at retry_after");
            }
            if d.remaining >= 1 {
                prop_assert!(p.peek(&state, t, d.remaining).allowed, "remaining does not fit");
            }
            if d.remaining < capacity {
                prop_assert!(!p.peek(&state, t, d.remaining + 1).allowed, "more than remaining fits");
            }
            if d.reset_after_us > 0 {
                let reset = d.reset_after_us;
                prop_assert!(p.peek(&state, t + reset, capacity).allowed, "quota not back at reset_after");
                prop_assert!(!p.peek(&state, t + reset - 1, capacity).allowed, "quota back before reset_after");
            }
        }
    }

    #[test]
    fn at_any_size_a_state_past_expires_at_decides_like_a_fresh_one(
        (p, traffic) in support::quotas::large_case(30),
        probe in support::quotas::amount(),
    ) {
        let mut state = p.fresh();
        for &(t, cost) in &traffic {
            p.acquire(&mut state, t, cost);
        }
        let at = p.expires_at(&state).max(traffic.last().unwrap().0);
        let cost = probe.min(p.capacity());
        let mut fresh = p.fresh();
        let (_, window, _) = p.parts();
        let mut now = at;
        for step in [0, 1, window / 3, window, 7] {
            now += step;
            prop_assert_eq!(p.acquire(&mut state, now, cost), p.acquire(&mut fresh, now, cost));
        }
    }

    #[test]
    fn at_any_size_no_window_admits_more_than_the_limit(
        (p, traffic) in support::quotas::large_case(40),
    ) {
        let (limit, w, _) = p.parts();
        for kind in [AlgorithmKind::SlidingLog, AlgorithmKind::FixedWindow] {
            let alg = Policy::new(kind, Some(limit), Duration::from_micros(w), None).unwrap();
            let traffic: Vec<_> = traffic.iter().map(|&(t, c)| (t, c.min(limit))).collect();
            let ok = admitted(&alg, &traffic);
            for &(t, _) in &ok {
                let in_window: u128 = ok
                    .iter()
                    .filter(|&&(u, _)| u <= t && t - u < w)
                    .map(|&(_, c)| u128::from(c))
                    .sum();
                // A fixed window admits at most the limit per window of its own, so at
                // most twice the limit in any sliding span of one window.
                let bound = if kind == AlgorithmKind::SlidingLog { 1 } else { 2 };
                prop_assert!(
                    in_window <= bound * u128::from(limit),
                    "{} admitted {} > {} × {} in the window ending at {}", kind, in_window, bound, limit, t
                );
            }
        }
    }
}
