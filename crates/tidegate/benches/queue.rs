//! Work queue throughput and rate accuracy, one JSON line per measurement so a script
//! can compare with BullMQ (`scripts/bench-queue`, same shapes with `"system":"bullmq"`).
//!
//! - `noop`: jobs/s with no rate limit and a handler that does nothing, one process,
//!   concurrency 1 and 50 (jobs pushed beforehand, not timed; timed from the worker's
//!   start until it completed them all).
//! - `rate`: a `50/1s` (burst 1) rate over 10 s with 4 concurrent slots: starts counted
//!   in each second after the first start (target: 50 +-1 in every second).
//! - `push`: jobs/s of `push` (one job per call) by 1 and 64 concurrent producers, and
//!   the jobs per script call (concurrent pushes share one; measured on the bench's own
//!   server). Only with `--push-only`, which runs just this.
//!
//! Sizes: `JOBS_C1` (5000), `JOBS_C50` (20000), `RATE` (50) from the environment, as
//! `scripts/bench-queue` sets them, or `--jobs-c1`, `--jobs`, `--rate`, `--rate-secs`.
//!
//! Starts its own redis-server (from `PATH`) unless `--redis URL` is given.
//!
//! Run: `cargo bench -p tidegate --features queue --bench queue [-- --redis URL]
//! [--jobs N] [--rate-secs S] [--push-only]`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_test_server::RedisServer;
use serde_json::json;
use tidegate::queue::{
    ClaimedJob, Job, QueueOptions, WorkQueue, Worker, WorkerOptions, parse_rate,
};
use tidegate::store::redis::{RedisOptions, RedisStore};

struct Args {
    redis: Option<String>,
    jobs_c1: u64,
    jobs: u64,
    rate: u64,
    rate_secs: u64,
    push_only: bool,
}

fn args() -> Args {
    // The same environment variables as scripts/bench-queue (which runs BullMQ too).
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mut a = Args {
        redis: None,
        jobs_c1: env("JOBS_C1", 5_000),
        jobs: env("JOBS_C50", 20_000),
        rate: env("RATE", 50),
        rate_secs: 10,
        push_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--redis" => a.redis = it.next(),
            "--push-only" => a.push_only = true,
            "--jobs" => a.jobs = it.next().and_then(|v| v.parse().ok()).expect("--jobs N"),
            "--jobs-c1" => a.jobs_c1 = it.next().and_then(|v| v.parse().ok()).expect("--jobs-c1 N"),
            "--rate" => a.rate = it.next().and_then(|v| v.parse().ok()).expect("--rate N"),
            "--rate-secs" => {
                a.rate_secs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rate-secs S")
            }
            _ => {} // `--bench` and filters from cargo
        }
    }
    a
}

async fn fresh_queue(store: &RedisStore, name: &str) -> WorkQueue {
    let q = WorkQueue::open(store.clone(), name, QueueOptions::default()).unwrap();
    q.clear().await.unwrap();
    q
}

async fn push(q: &WorkQueue, n: u64) {
    let jobs: Vec<Job> = (0..n).map(|i| Job::new(json!({ "n": i }))).collect();
    for chunk in jobs.chunks(2_000) {
        q.push_many(chunk).await.unwrap();
    }
}

async fn noop(store: &RedisStore, concurrency: usize, jobs: u64, print: bool) {
    let q = fresh_queue(store, &format!("bench-noop-{concurrency}")).await;
    push(&q, jobs).await;
    let handler = |_job: ClaimedJob| async { Ok(()) };
    let started = Instant::now();
    let worker = Worker::start(
        q.clone(),
        WorkerOptions {
            concurrency,
            max_concurrency: concurrency,
            idle_poll: Duration::from_millis(1),
            ..WorkerOptions::default()
        },
        handler,
    )
    .unwrap();
    while worker.stats().completed < jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    worker.stop().await;
    if !print {
        q.clear().await.unwrap();
        return;
    }
    println!(
        "{}",
        json!({
            "system": "tidegate",
            "test": "noop",
            "concurrency": concurrency,
            "jobs": jobs,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "jobs_per_s": (jobs as f64 / secs).round(),
        })
    );
    q.clear().await.unwrap();
}

async fn rate(store: &RedisStore, per_s: u64, secs: u64) {
    let q = fresh_queue(store, "bench-rate").await;
    // More jobs than the rate can start in the window, so it never runs dry.
    push(&q, per_s * (secs + 2)).await;
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let s = Arc::clone(&starts);
    let handler = move |_job: ClaimedJob| {
        s.lock().unwrap().push(Instant::now());
        async { Ok(()) }
    };
    let worker = Worker::start(
        q.clone(),
        WorkerOptions {
            concurrency: 4,
            max_concurrency: 4,
            rate: Some(parse_rate(&format!("{per_s}/1s")).unwrap()),
            ..WorkerOptions::default()
        },
        handler,
    )
    .unwrap();
    let first = loop {
        if let Some(&t) = starts.lock().unwrap().first() {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    tokio::time::sleep_until(
        (first + Duration::from_secs(secs) + Duration::from_millis(50)).into(),
    )
    .await;
    worker.stop().await;
    let starts = starts.lock().unwrap().clone();
    let mut per_second = vec![0u64; secs as usize];
    for t in starts {
        let i = (t - first).as_secs() as usize;
        if i < per_second.len() {
            per_second[i] += 1;
        }
    }
    let worst = per_second
        .iter()
        .map(|&n| (n as i64 - per_s as i64).abs())
        .max()
        .unwrap_or(0);
    println!(
        "{}",
        json!({
            "system": "tidegate",
            "test": "rate",
            "rate": per_s,
            "seconds": secs,
            "per_second": per_second,
            "max_dev": worst,
        })
    );
    q.clear().await.unwrap();
}

/// EVALSHA calls so far, from `INFO commandstats` (when the bench started the server).
fn script_calls(server: Option<&RedisServer>) -> Option<u64> {
    let info = server?.cli(&["INFO", "commandstats"]);
    let line = info.lines().find(|l| l.starts_with("cmdstat_evalsha:"))?;
    line.split(&[':', ','][..])
        .find_map(|kv| kv.strip_prefix("calls="))
        .and_then(|v| v.parse().ok())
}

/// `push` of one job at a time by `tasks` concurrent producers, `jobs` in all: jobs/s
/// and, on the bench's own server, jobs per script call.
async fn push_concurrent(store: &RedisStore, server: Option<&RedisServer>, tasks: u64, jobs: u64) {
    let q = fresh_queue(store, &format!("bench-push-{tasks}")).await;
    let calls_before = script_calls(server);
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            for i in (t..jobs).step_by(tasks as usize) {
                q.push(Job::new(json!({ "n": i }))).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let calls = script_calls(server)
        .zip(calls_before)
        .map(|(after, before)| after - before);
    println!(
        "{}",
        json!({
            "system": "tidegate",
            "test": "push",
            "concurrency": tasks,
            "jobs": jobs,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "jobs_per_s": (jobs as f64 / secs).round(),
            "jobs_per_script_call": calls.map(|c| ((jobs as f64 / c.max(1) as f64) * 10.0).round() / 10.0),
        })
    );
    q.clear().await.unwrap();
}

fn main() {
    let a = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = a.redis.is_none().then(RedisServer::start);
    let url = a
        .redis
        .clone()
        .unwrap_or_else(|| server.as_ref().unwrap().url());
    eprintln!("queue benchmark on {url}");
    runtime.block_on(async {
        let store = RedisStore::connect_str(
            &url,
            RedisOptions::default().with_timeout(Duration::from_secs(2)),
        )
        .await
        .expect("Redis must be reachable");
        noop(&store, 8, 500, false).await; // warm-up (script load, connections)
        if !a.push_only {
            noop(&store, 1, a.jobs_c1.max(1), true).await;
            noop(&store, 50, a.jobs.max(1), true).await;
        }
        if a.push_only {
            for tasks in [1, 64] {
                push_concurrent(&store, server.as_ref(), tasks, a.jobs.max(1)).await;
            }
            return;
        }
        rate(&store, a.rate.max(1), a.rate_secs.max(1)).await;
    });
}
