//! Random quotas of every realistic size, and traffic scaled to them: limits 1..10^12,
//! windows 1 ms..10 years, costs up to the capacity, clocks near today's Unix time.

use std::time::Duration;

use proptest::prelude::*;
use tidegate::{AlgorithmKind, Policy};

/// Today's Unix time in µs, roughly (what Redis `TIME` answers).
pub const EPOCH_NOW: u64 = 1_764_000_000_000_000;

/// The latest time the traffic reaches: 71 years after [`EPOCH_NOW`], still below the
/// 2^52 µs the stores are exact for.
const LATEST: u64 = EPOCH_NOW + (1 << 51);

const MS: u64 = 1_000;
const DAY: u64 = 86_400_000_000;
const TEN_YEARS: u64 = 3_650 * DAY;

/// A value in `lo..=hi`, as likely to have 3 digits as 12.
pub fn log_uniform(lo: u64, hi: u64) -> impl Strategy<Value = u64> + Clone {
    let bits = 64 - hi.leading_zeros();
    (1..=bits, any::<u64>()).prop_map(move |(b, r)| (r >> (64 - b)).clamp(lo, hi))
}

/// A limit or burst of 1..10^12: round ones (what quotas are), any, and primes (whose
/// `window / limit` does not reduce).
pub fn amount() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        2 => log_uniform(1, 1_000_000_000_000),
        1 => prop::sample::select(vec![
            1u64, 3, 1_000, 100_000, 1_000_000, 5_000_000, 10_000_000, 3_000_000_000,
            1_000_000_000_000,
        ]),
        1 => prop::sample::select(vec![7u64, 999_983, 2_147_483_647, 999_999_999_989]),
    ]
}

/// A window of 1 ms..10 years (µs): named ones and any.
pub fn window_micros() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        2 => log_uniform(MS, TEN_YEARS),
        1 => prop::sample::select(vec![
            MS, 1_000 * MS, 60_000 * MS, 3_600_000 * MS, DAY, 30 * DAY, 365 * DAY, TEN_YEARS,
        ]),
    ]
}

/// Any valid policy of any algorithm at these sizes (fixed windows first-hit or aligned to
/// the epoch) (a burst the policy cannot take, or
/// one that would take over 50 years to refill, is dropped).
pub fn large_policy() -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(AlgorithmKind::ALL.to_vec()),
        amount(),
        window_micros(),
        prop::option::of(amount()),
        any::<bool>(),
    )
        .prop_map(|(kind, limit, window, burst, epoch)| {
            let window = Duration::from_micros(window);
            let limit = (kind != AlgorithmKind::Throttle).then_some(limit);
            let burst = burst.filter(|_| kind.takes_burst());
            let align = (epoch && kind == AlgorithmKind::FixedWindow).then_some("epoch");
            Policy::new(kind, limit, window, burst)
                .or_else(|_| Policy::new(kind, limit, window, None))
                .and_then(|p| p.aligned(align))
                .unwrap()
        })
}

/// Non-decreasing times from near today's Unix time, with gaps at the scales that
/// matter for a policy of `limit` per `window` µs: none, a microsecond, about one
/// interval `window / limit`, a fraction of the window, the window itself.
pub fn scaled_traffic(
    limit: u64,
    window: u64,
    capacity: u64,
    max_len: usize,
) -> impl Strategy<Value = Vec<(u64, u64)>> {
    let interval = (window / limit).max(1);
    let gap = prop_oneof![
        2 => Just(0u64),
        1 => 0u64..=3,
        2 => 0u64..=2 * interval,
        1 => interval.saturating_sub(2)..=interval + 2,
        2 => (1u64..=64).prop_map(move |k| window / k),
        1 => prop::sample::select(vec![window - 1, window, window + 1]),
    ];
    let cost = prop_oneof![
        2 => Just(1u64),
        1 => Just(capacity),
        1 => Just((capacity / 2).max(1)),
        2 => log_uniform(1, capacity),
    ];
    (0u64..=DAY, prop::collection::vec((gap, cost), 1..=max_len)).prop_map(|(start, steps)| {
        let mut t = EPOCH_NOW + start;
        steps
            .into_iter()
            .map(|(gap, cost)| {
                t = (t + gap).min(LATEST);
                (t, cost)
            })
            .collect()
    })
}

/// A large policy and traffic scaled to it.
pub fn large_case(max_len: usize) -> impl Strategy<Value = (Policy, Vec<(u64, u64)>)> {
    large_policy().prop_flat_map(move |p| {
        let (limit, window, _) = p.parts();
        let capacity = tidegate::Algorithm::capacity(&p);
        (Just(p), scaled_traffic(limit, window, capacity, max_len))
    })
}
