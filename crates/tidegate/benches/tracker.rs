//! Event tracker throughput in memory, and the cost of a tick as non-due batches pile up.
//!
//! Run: `cargo bench -p tidegate --bench tracker`
//!
//! 1. `track_event` on 1, 10k and 1M records, 1 and 2 threads, small details (a JSON
//!    number), simple counter with limit 5 and a 1 h deferral: after five immediate
//!    events per record every event joins a deferred batch (details kept up to the cap
//!    of 100, then counted).
//! 2. A tick that claims and delivers 100 due batches while N other batches are not
//!    due, for N = 1k .. 1M: with the due-time index the tick should not grow with N.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tidegate::ManualClock;
use tidegate::tracker::EventTracker;

/// Runs a future that completes without waiting (the memory tracker's calls do).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the memory tracker should not wait"),
    }
}

fn tracker(defer: Duration) -> EventTracker {
    EventTracker::builder()
        .manual_ticks()
        .clock(ManualClock::new(0))
        .limit(5)
        .defer_interval(defer)
        // Room for every record of the largest run (the defaults bound a tracker to
        // 100k records and 64 MiB, which would ignore most events of the 1M runs).
        .max_keys(2_000_000)
        .max_memory_bytes(4 << 30)
        .processor(|_batch| async { Ok::<_, String>(()) })
        .build()
        .unwrap()
}

fn throughput(records: usize, threads: usize, events_per_thread: usize) -> f64 {
    let t = tracker(Duration::from_secs(3_600));
    let ids: Arc<Vec<String>> = Arc::new((0..records).map(|i| format!("user-{i}")).collect());
    // Warm up: create every record once.
    for id in ids.iter() {
        ready(t.track_event_at("api", id, json!(null), 0)).unwrap();
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|th| {
            let (t, ids) = (t.clone(), Arc::clone(&ids));
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ th as u64;
                for i in 0..events_per_thread {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = &ids[(x % ids.len() as u64) as usize];
                    std::hint::black_box(ready(t.track_event_at("api", id, json!(i), 1)).unwrap());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    (threads * events_per_thread) as f64 / start.elapsed().as_secs_f64()
}

fn tick_cost(not_due: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hour = 3_600_000_000u64;
    let mut samples = Vec::new();
    for _ in 0..3 {
        let t = tracker(Duration::from_secs(3_600));
        // 100 batches deferred at 0 (due at 1 h), then N deferred at 1 s (due at 1 h + 1 s).
        for (prefix, at, n) in [("due", 0, 100), ("later", 1_000_000, not_due)] {
            for i in 0..n {
                let id = format!("{prefix}-{i}");
                for _ in 0..6 {
                    ready(t.track_event_at("c", &id, json!(null), at)).unwrap();
                }
            }
        }
        let start = Instant::now();
        rt.block_on(t.tick_at(hour));
        samples.push(start.elapsed());
        assert_eq!(t.stats().processed_records, 100);
        assert_eq!(t.stats().waiting, not_due);
    }
    samples.sort();
    samples[1]
}

fn main() {
    let quick = std::env::args().len() <= 1 || std::env::args().any(|a| a == "--test");
    let events = if quick { 20_000 } else { 2_000_000 };
    println!(
        "track_event throughput (simple counter, limit 5, 1 h deferral, details = a JSON number)"
    );
    println!("| records | threads | events/s |");
    println!("|---:|---:|---:|");
    for records in [1usize, 10_000, 1_000_000] {
        if quick && records > 10_000 {
            continue;
        }
        for threads in [1usize, 2] {
            let rate = throughput(records, threads, events);
            println!("| {records} | {threads} | {:.0} |", rate);
        }
    }
    println!();
    println!(
        "tick claiming and delivering 100 due batches while N batches are not due (median of 3)"
    );
    println!("| N not due | tick |");
    println!("|---:|---:|");
    let sizes: &[usize] = if quick {
        &[1_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000]
    };
    for &n in sizes {
        println!("| {n} | {:?} |", tick_cost(n));
    }
}
