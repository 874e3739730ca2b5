//! Leases for hot keys against exact decisions, in one run on one local redis-server.
//!
//! One hot key shared by two instances (two `RedisStore` connections, each with its
//! own `RedisLimiter` and 32 concurrent tasks), first with exact decisions (one script
//! call per batch of decisions), then with `lease=N` slices answered locally. Prints
//! decisions/s, Redis script calls per decision (from `INFO commandstats`) and the
//! ratios lease / exact of the same run, for a fixed window far below its limit and a
//! token bucket at its limit (most decisions denied).
//!
//! Run: `cargo bench -p tidegate --features redis --bench redis_leases`
//! (`TIDEGATE_BENCH_SECS` sets the seconds per measurement, default 3.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_test_server::RedisServer;
use tidegate::store::LimitStore;
use tidegate::store::redis::{RedisOptions, RedisStore};

const INSTANCES: usize = 2;
const TASKS: usize = 32;

fn seconds() -> Duration {
    let secs = std::env::var("TIDEGATE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Calls of EVALSHA so far, from `INFO commandstats`.
fn evalsha_calls(server: &RedisServer) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]);
    info.lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .and_then(|l| {
            l.split(&[':', ','][..])
                .find_map(|kv| kv.strip_prefix("calls="))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Run {
    per_sec: f64,
    admitted_per_sec: f64,
    calls_per_decision: f64,
}

/// `INSTANCES` instances × `TASKS` tasks deciding on one key under `policy`.
async fn run(server: &RedisServer, name: &str, policy: &str) -> Run {
    let mut limiters = Vec::new();
    for _ in 0..INSTANCES {
        let options = RedisOptions::default().with_timeout(Duration::from_secs(2));
        let store = RedisStore::connect(&[server.url()], options).await.unwrap();
        limiters.push(Arc::new(
            store
                .limiter(name, policy.parse().unwrap())
                .build()
                .unwrap(),
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let admitted = Arc::new(AtomicU64::new(0));
    let calls_before = evalsha_calls(server);
    let mut handles = Vec::new();
    for limiter in &limiters {
        for _ in 0..TASKS {
            let (limiter, stop, count) =
                (Arc::clone(limiter), Arc::clone(&stop), Arc::clone(&count));
            let admits = Arc::clone(&admitted);
            handles.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let d = limiter.acquire("hot", 1, None).await.unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                    if d.allowed {
                        admits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    let started = Instant::now();
    tokio::time::sleep(seconds()).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let decisions = count.load(Ordering::Relaxed);
    for l in &limiters {
        assert_eq!(l.stats().fallbacks, 0, "Redis must answer every call");
        l.release_leases().await.unwrap();
    }
    let calls = evalsha_calls(server) - calls_before;
    Run {
        per_sec: decisions as f64 / elapsed,
        admitted_per_sec: admitted.load(Ordering::Relaxed) as f64 / elapsed,
        calls_per_decision: calls as f64 / decisions as f64,
    }
}

fn main() {
    let server = RedisServer::start();
    println!(
        "redis-server on 127.0.0.1:{}, {INSTANCES} instances x {TASKS} tasks on one key, {:?} per measurement",
        server.port(),
        seconds()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (label, exact) in [
            // Far below its limit: every decision admits.
            ("fixed_window", "fixed_window:1000000000000000/1h"),
            // At its limit: 20 000 admitted per second, the rest denied.
            ("token_bucket", "token_bucket:20000/1s,burst=1000"),
        ] {
            let base = run(&server, &format!("exact_{label}"), exact).await;
            println!(
                "{label:<13} exact      {:>10.0} decisions/s  {:>8.0} admitted/s  {:>8.4} script calls/decision",
                base.per_sec, base.admitted_per_sec, base.calls_per_decision
            );
            for lease in [10u64, 100, 1000] {
                let policy = format!("{exact},lease={lease}");
                let r = run(&server, &format!("lease{lease}_{label}"), &policy).await;
                println!(
                    "{label:<13} lease={lease:<5} {:>10.0} decisions/s  {:>8.0} admitted/s  {:>8.4} script calls/decision  ratio {:>6.2}x decisions/s, {:>7.4}x calls/decision",
                    r.per_sec,
                    r.admitted_per_sec,
                    r.calls_per_decision,
                    r.per_sec / base.per_sec,
                    r.calls_per_decision / base.calls_per_decision
                );
            }
        }
    });
}
