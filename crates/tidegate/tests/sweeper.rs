//! One sweeper thread serves every limiter of the process: thousands of limiters add no
//! threads, and each still has its expired states swept in the background.
//! (A test binary of its own, with one test, so that no other test's threads are counted.)

use std::time::{Duration, Instant};

use tidegate::{Limiter, ManualClock, Policy};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn thousands_of_limiters_share_one_sweeper_thread_that_still_sweeps_each() {
    let clock = ManualClock::new(0);
    let policy: Policy = "fixed_window:1/1s".parse().unwrap();
    // The first limiter starts the process's shared threads (sweeper, coarse clock).
    let first = Limiter::builder(policy)
        .clock(clock.clone())
        .sweep_interval(Some(Duration::from_millis(20)))
        .build::<String>();
    first.check("k", 1).unwrap();
    let before = threads();
    let limiters: Vec<Limiter<Policy, String, ManualClock>> = (0..2_000)
        .map(|_| {
            Limiter::builder(policy)
                .clock(clock.clone())
                .shards(4)
                .sweep_interval(Some(Duration::from_millis(20)))
                .build()
        })
        .collect();
    for (i, l) in limiters.iter().enumerate() {
        for k in 0..3 {
            l.check(&format!("key-{i}-{k}"), 1).unwrap();
        }
    }
    assert_eq!(threads(), before, "2000 limiters added threads");
    assert!(limiters.iter().all(|l| l.len() == 3));
    // Past the window every state decides like a fresh one: the sweeper removes them all.
    clock.advance(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(10);
    while limiters.iter().any(|l| !l.is_empty()) || !first.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} limiters still hold keys",
            limiters.iter().filter(|l| !l.is_empty()).count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Dropped limiters leave the sweeper; it keeps serving the others.
    drop(limiters);
    first.check("again", 1).unwrap();
    clock.advance(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !first.is_empty() {
        assert!(
            Instant::now() < deadline,
            "not swept after the others were dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(threads(), before);
}
