//! Redis store throughput against its baseline, in one run on one local redis-server.
//!
//! Baseline: `redis-benchmark -P 16 -c 50` running a minimal single-key GCRA script with
//! EVALSHA. Then tidegate's `RedisLimiter` (gcra, server time) at 1, 64 and 256
//! concurrent tasks, on one hot key and on 10k keys, with batching on and off; p50/p99
//! latency per decision at 64 tasks. Prints decisions/s and the ratio to the baseline.
//!
//! Then the event tracker on Redis (`track_event`, 64 concurrent producers, 1 key and
//! 10k keys, simple counter with limit 5 so nearly every event is deferred with small
//! details), against the same baseline.
//!
//! Each limiter row also gives, per decision, Redis's time inside `EVALSHA` (`INFO
//! commandstats`), redis-server's CPU time (`INFO cpu`) and this process's CPU time.
//!
//! Run: `cargo bench -p tidegate --features redis --bench redis` (`-- tracker` runs only
//! the baseline and the tracker, `-- limiter` only the baseline and the limiter; `TIDEGATE_BENCH_SECS` sets the seconds per measurement,
//! default 3; `TIDEGATE_BENCH_THREADS` the client runtime's threads, default 2.)

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_test_server::RedisServer;
use tidegate::store::LimitStore;
use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate::tracker::{EventTracker, TrackerStore};

/// A minimal GCRA (no weights, no multi-policy): what a hand-written limiter would run.
const BASELINE_GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now <= burst * interval then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
  return 1
end
return 0
"#;

/// Threads of the client's tokio runtime (`TIDEGATE_BENCH_THREADS`, default 2).
fn client_threads() -> usize {
    std::env::var("TIDEGATE_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

fn seconds() -> Duration {
    let secs = std::env::var("TIDEGATE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// `redis-benchmark -P 16 -c 50` on EVALSHA of the baseline script; requests per second.
fn baseline(server: &RedisServer) -> f64 {
    let sha = server.cli(&["SCRIPT", "LOAD", BASELINE_GCRA]);
    let requests = (150_000.0 * seconds().as_secs_f64()) as u64;
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-P", "16", "-c", "50", "-n", &requests.to_string(), "-q"])
        // Interval 1 µs, burst 10^9: every call is admitted and writes, like tidegate's runs.
        .args(["EVALSHA", &sha, "1", "bench:{hot}", "1", "1000000000"])
        .output()
        .expect("redis-benchmark (Debian package redis-tools) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    // Progress lines end in \r; the last says "EVALSHA ...: 104712.05 requests per second, p50=..."
    let rps = text
        .split("requests per second")
        .next()
        .and_then(|head| head.rsplit(' ').find(|w| !w.is_empty()))
        .and_then(|n| n.parse::<f64>().ok());
    rps.unwrap_or_else(|| panic!("cannot read redis-benchmark output: {text}"))
}

struct Run {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    mean_batch: f64,
    /// Redis's time inside EVALSHA per decision (`INFO commandstats`), µs.
    script_us: f64,
    /// redis-server's CPU time per decision (`INFO cpu`, user + sys), µs.
    server_cpu_us: f64,
    /// This process's CPU time per decision (`/proc/self/stat`, user + sys), µs.
    client_cpu_us: f64,
}

/// redis-server's CPU seconds so far (user + sys), from `INFO cpu`.
fn server_cpu(server: &RedisServer) -> f64 {
    let info = server.cli(&["INFO", "cpu"]);
    ["used_cpu_user:", "used_cpu_sys:"]
        .iter()
        .filter_map(|f| info.lines().find_map(|l| l.strip_prefix(f)))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// This process's CPU seconds so far (user + sys, every thread).
fn client_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and
    // 13th, in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

async fn run(server: &RedisServer, store: &RedisStore, tasks: usize, keys: u64, name: &str) -> Run {
    let limiter = Arc::new(
        store
            .limiter(name, "gcra:1000000000/1s".parse().unwrap())
            .build()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let before = store.stats();
    let (usec_before, _) = evalsha_usec(server);
    let (server_before, client_before) = (server_cpu(server), client_cpu());
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (limiter, stop, count) = (Arc::clone(&limiter), Arc::clone(&stop), Arc::clone(&count));
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = t as u64;
            while !stop.load(Ordering::Relaxed) {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = format!("k{}", (i >> 33) % keys);
                let start = Instant::now();
                let d = limiter.acquire(&key, 1, None).await.unwrap();
                latencies.push(start.elapsed());
                assert!(d.allowed);
                count.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(seconds()).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (server_after, client_after) = (server_cpu(server), client_cpu());
    let (usec_after, _) = evalsha_usec(server);
    assert_eq!(
        limiter.stats().fallbacks,
        0,
        "Redis must answer every decision"
    );
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let after = store.stats();
    let calls = after.batch_calls - before.batch_calls;
    let decisions = count.load(Ordering::Relaxed).max(1) as f64;
    Run {
        per_sec: decisions / elapsed,
        script_us: (usec_after - usec_before) as f64 / decisions,
        server_cpu_us: (server_after - server_before) * 1e6 / decisions,
        client_cpu_us: (client_after - client_before) * 1e6 / decisions,
        p50: pct(0.50),
        p99: pct(0.99),
        mean_batch: if calls == 0 {
            1.0
        } else {
            (after.batch_requests - before.batch_requests) as f64 / calls as f64
        },
    }
}

/// Total µs and calls of EVALSHA so far, from `INFO commandstats`.
fn evalsha_usec(server: &RedisServer) -> (u64, u64) {
    let info = server.cli(&["INFO", "commandstats"]);
    let line = info
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .unwrap_or("");
    let field = |name: &str| {
        line.split(&[':', ','][..])
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("usec="), field("calls="))
}

/// Tracked events per second with `tasks` producers over `keys` records, and Redis's
/// own time per event (µs, from `INFO commandstats`).
async fn run_tracker(
    server: &RedisServer,
    store: &RedisStore,
    tasks: usize,
    keys: u64,
    name: &str,
) -> (f64, f64) {
    let tracker = EventTracker::builder()
        .store(TrackerStore::redis(store.clone(), name))
        .manual_ticks()
        .limit(5)
        .defer_interval(Duration::from_secs(3_600))
        .processor(|_batch| async { Ok::<_, String>(()) })
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (tracker, stop, count) = (tracker.clone(), Arc::clone(&stop), Arc::clone(&count));
        handles.push(tokio::spawn(async move {
            let mut i = t as u64;
            while !stop.load(Ordering::Relaxed) {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = format!("u{}", (i >> 33) % keys);
                let details = serde_json::json!({"path": "/api/items", "status": 429});
                tracker
                    .track_event("api_request", &id, details)
                    .await
                    .unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    let (usec_before, _) = evalsha_usec(server);
    tokio::time::sleep(seconds()).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    let (usec_after, _) = evalsha_usec(server);
    let events = count.load(Ordering::Relaxed);
    let per_sec = events as f64 / started.elapsed().as_secs_f64();
    tracker.clear().await.unwrap();
    (
        per_sec,
        (usec_after - usec_before) as f64 / events.max(1) as f64,
    )
}

/// Time for one tick to claim and deliver 100 due batches while `not_due` batches wait,
/// on the Redis tracker (median of 3).
async fn tracker_tick_cost(store: &RedisStore, not_due: usize) -> Duration {
    let hour = 3_600_000_000u64;
    let mut samples = Vec::new();
    for round in 0..3 {
        let tracker = EventTracker::builder()
            .store(TrackerStore::redis(
                store.clone(),
                format!("tick{not_due}x{round}"),
            ))
            .manual_ticks()
            .max_keys(not_due + 100)
            .limit(1)
            .defer_interval(Duration::from_secs(3_600))
            .lease(Duration::from_secs(7_200))
            .processor(|_batch| async { Ok::<_, String>(()) })
            .build()
            .unwrap();
        // 100 batches deferred at 0 (due at 1 h), N deferred at 1 s (due at 1 h + 1 s),
        // two events each, sent by 64 concurrent producers.
        for (prefix, at, n) in [("due", 0u64, 100usize), ("later", 1_000_000, not_due)] {
            let mut handles = Vec::new();
            for p in 0..64usize {
                let tracker = tracker.clone();
                handles.push(tokio::spawn(async move {
                    for i in (p..n).step_by(64) {
                        let id = format!("{prefix}-{i}");
                        for _ in 0..2 {
                            tracker
                                .track_event_at("c", &id, serde_json::Value::Null, at)
                                .await
                                .unwrap();
                        }
                    }
                }));
            }
            for h in handles {
                h.await.unwrap();
            }
        }
        let start = Instant::now();
        tracker.tick_at(hour).await;
        samples.push(start.elapsed());
        let s = tracker.stats();
        assert_eq!((s.processed_records, s.waiting), (100, not_due));
        tracker.clear().await.unwrap();
    }
    samples.sort();
    samples[1]
}

fn main() {
    let only_tracker = std::env::args().skip(1).any(|a| a == "tracker");
    let only_limiter = std::env::args().skip(1).any(|a| a == "limiter");
    let server = RedisServer::start();
    println!(
        "redis-server {} on 127.0.0.1:{}, {:?} per measurement",
        server
            .cli(&["INFO", "server"])
            .lines()
            .find(|l| l.starts_with("redis_version"))
            .unwrap_or("?"),
        server.port(),
        seconds()
    );
    let (usec_before, calls_before) = evalsha_usec(&server);
    let cpu_before = server_cpu(&server);
    let base = baseline(&server);
    let (usec_after, calls_after) = evalsha_usec(&server);
    let calls = (calls_after - calls_before).max(1) as f64;
    println!(
        "baseline  redis-benchmark -P 16 -c 50 EVALSHA single-key GCRA: {base:>10.0} decisions/s  µs/decision: script {:>4.1} redis cpu {:>4.1}",
        (usec_after - usec_before) as f64 / calls,
        (server_cpu(&server) - cpu_before) * 1e6 / calls
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads())
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = RedisOptions::default().with_timeout(Duration::from_secs(2));
        let store = RedisStore::connect(&[server.url()], options).await.unwrap();
        for keys in [1u64, 10_000].into_iter().filter(|_| !only_limiter) {
            for tasks in [1usize, 64] {
                let (per_sec, usec) =
                    run_tracker(&server, &store, tasks, keys, &format!("bench{keys}x{tasks}")).await;
                println!(
                    "tracker   track_event keys={keys:<6} tasks={tasks:<4} {per_sec:>10.0} events/s     ratio {:>5.2}x  Redis {usec:.1} µs/event",
                    per_sec / base
                );
            }
        }
        if !only_limiter {
            println!("tracker   tick claiming and delivering 100 due batches while N wait (median of 3)");
        }
        for not_due in [1_000usize, 10_000, 100_000].into_iter().filter(|_| !only_limiter) {
            let d = tracker_tick_cost(&store, not_due).await;
            println!("tracker   tick  not_due={not_due:<7} {d:>10.2?}");
        }
        if only_tracker {
            return;
        }
        for batch_max in [64, 1] {
            let options = RedisOptions::default().with_timeout(Duration::from_secs(2)).with_batch_max(batch_max);
            let store = RedisStore::connect(&[server.url()], options).await.unwrap();
            let label = if batch_max > 1 { "batched" } else { "unbatched" };
            for keys in [1u64, 10_000] {
                for tasks in [1usize, 64, 256] {
                    let name = format!("bench{batch_max}x{keys}x{tasks}");
                    let r = run(&server, &store, tasks, keys, &name).await;
                    println!(
                        "tidegate  {label:<9} keys={keys:<6} tasks={tasks:<4} {:>10.0} decisions/s  ratio {:>5.2}x  p50 {:>8.1?}  p99 {:>8.1?}  mean batch {:>5.1}  µs/decision: script {:>4.1} redis cpu {:>4.1} client cpu {:>4.1}",
                        r.per_sec,
                        r.per_sec / base,
                        r.p50,
                        r.p99,
                        r.mean_batch,
                        r.script_us,
                        r.server_cpu_us,
                        r.client_cpu_us
                    );
                }
            }
        }
    });
}
