//! Concurrency stress tests of the in-memory store: many threads, one key or many keys;
//! the admitted total must be exactly what the policy allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use tidegate::store::memory::OnFull;
use tidegate::{Limiter, ManualClock, Policy, PolicySet};

const THREADS: u64 = 8;

/// Runs `THREADS` threads that each make `per_thread` checks via `check`; returns admits.
fn hammer(per_thread: u64, check: impl Fn(u64, u64) -> bool + Send + Sync + 'static) -> u64 {
    let check = Arc::new(check);
    let admitted = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (check, admitted) = (Arc::clone(&check), Arc::clone(&admitted));
            thread::spawn(move || {
                for i in 0..per_thread {
                    if check(t, i) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    admitted.load(Ordering::Relaxed)
}

fn frozen_limiter<A>(alg: A) -> Limiter<A, String, ManualClock>
where
    A: tidegate::Algorithm + 'static,
    A::State: Sync,
{
    Limiter::builder(alg)
        .clock(ManualClock::new(1_000))
        .sweep_interval(None)
        .build()
}

#[test]
fn many_threads_on_one_key_admit_exactly_the_limit_for_every_algorithm() {
    for spec in [
        "fixed_window:1000/1h",
        "sliding_window:1000/1h",
        "sliding_log:1000/1h",
        "token_bucket:1000/1h",
        "leaky_bucket:1000/1h",
        "gcra:1000/1h",
        "throttle:1h",
    ] {
        let limiter = frozen_limiter(spec.parse::<Policy>().unwrap());
        let limit = limiter.algorithm().limit();
        let l = limiter.clone();
        let admitted = hammer(2_000, move |_, _| l.check("hot", 1).unwrap().allowed);
        assert_eq!(admitted, limit, "{spec}");
    }
}

#[test]
fn many_threads_on_many_keys_admit_exactly_the_limit_per_key() {
    const KEYS: u64 = 5_000;
    let limiter = frozen_limiter("gcra:3/1h".parse::<Policy>().unwrap());
    let l = limiter.clone();
    // Every thread walks all keys several times, in a different order.
    let admitted = hammer(KEYS * 4, move |t, i| {
        let key = (i * 7 + t * 1_009) % KEYS;
        l.check(&format!("user-{key}"), 1).unwrap().allowed
    });
    assert_eq!(admitted, KEYS * 3);
    assert_eq!(limiter.len() as u64, KEYS);
}

#[test]
fn weighted_multi_policy_checks_stay_atomic_under_contention() {
    // 10 per key per hour and 25 per key per day, costs 1..=3: every key ends with
    // exactly 10 admitted cost or less than 3 short of it, never more.
    let set: PolicySet = "fixed_window:10/1h;sliding_log:25/1d".parse().unwrap();
    let limiter = frozen_limiter(set);
    let cost_admitted = Arc::new(AtomicU64::new(0));
    let (l, c) = (limiter.clone(), Arc::clone(&cost_admitted));
    hammer(3_000, move |t, i| {
        let cost = 1 + (t + i) % 3;
        let ok = l.check(&format!("k{}", i % 50), cost).unwrap().allowed;
        if ok {
            c.fetch_add(cost, Ordering::Relaxed);
        }
        ok
    });
    let total = cost_admitted.load(Ordering::Relaxed);
    assert!(total <= 50 * 10, "admitted {total} > 500");
    // Once a key is full no cost fits, so every key got at least 10 - 2.
    assert!(total >= 50 * 8, "admitted {total}");
    for k in 0..50 {
        let d = limiter.peek(&format!("k{k}"), 1).unwrap();
        assert!(d.remaining <= 2);
    }
}

#[test]
fn bounded_store_never_holds_more_than_max_keys_under_contention() {
    let limiter = Limiter::builder("gcra:1/1h".parse::<Policy>().unwrap())
        .clock(ManualClock::new(0))
        .sweep_interval(None)
        .max_keys(1_000)
        .on_full(OnFull::Reject)
        .build::<u64>();
    let l = limiter.clone();
    let admitted = hammer(1_000, move |t, i| {
        l.check(&(t * 1_000 + i), 1).is_ok_and(|d| d.allowed)
    });
    assert_eq!(admitted, 1_000);
    assert_eq!(limiter.len(), 1_000);
    assert_eq!(limiter.stats().rejected, THREADS * 1_000 - 1_000);
}
