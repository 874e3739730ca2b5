//! The wallet-audit scenario of a Temporal + Redis rate-limit manager on the work queue,
//! with time scaled down so it runs in seconds: 108 audit events of five types (8, 6,
//! 4, 3 and 2 s of processing; 10% take twice as long, 5% fail once and are retried),
//! rebalances first, one global rate for every worker, autoscaled between 1 and 10
//! workers to a 3-minute deadline.
//!
//! The manager's own numbers cannot work: 108 events at 20/min need 5.4 minutes of starts,
//! whatever the number of workers. The example prints the formula's verdict for them,
//! then runs at a rate that can meet the deadline (45/min by default; `--rate` to change).
//!
//! Needs a Redis server: `redis-server --port 6379 --save ''` in another terminal, then
//!
//! ```text
//! cargo run -p tidegate --features queue --example wallet_audit -- \
//!     [--redis redis://127.0.0.1:6379] [--scale 30] [--rate 45/1m] [--events 108]
//! ```
//!
//! `--scale 30` runs 30 times faster than real time: the 3-minute deadline is 6 s.

use std::time::Duration;

use serde_json::json;
use tidegate::queue::autoscale::rate_per_min;
use tidegate::queue::{
    AutoscaleOptions, Autoscaler, ClaimedJob, Job, JobError, PlanInput, QueueOptions, RetryPolicy,
    WorkQueue, Worker, WorkerOptions, parse_rate, plan,
};
use tidegate::rate::Rate;
use tidegate::store::redis::{RedisOptions, RedisStore};

/// The manager's event types: name, processing seconds, priority.
const EVENT_TYPES: [(&str, u64, i64); 5] = [
    ("REBALANCE_NEEDED", 8, 10),
    ("OPEN_POSITION_DETECTED", 6, 5),
    ("OPEN_ORDER_DETECTED", 4, 0),
    ("NEW_BALANCE_UPDATE", 3, 0),
    ("BALANCE_CHECK_REQUIRED", 2, 0),
];

struct Args {
    redis: String,
    scale: f64,
    rate: String,
    events: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        redis: std::env::var("TIDEGATE_STORE__URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        scale: 30.0,
        rate: "45/1m".into(),
        events: 108,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--redis" => a.redis = value()?,
            "--scale" => {
                a.scale = value()?
                    .parse()
                    .map_err(|_| "--scale must be a number".to_string())?
            }
            "--rate" => a.rate = value()?,
            "--events" => {
                a.events = value()?
                    .parse()
                    .map_err(|_| "--events must be a whole number".to_string())?
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if !(a.scale >= 1.0 && a.scale <= 1000.0) {
        return Err("--scale must be between 1 and 1000".into());
    }
    Ok(a)
}

/// A deterministic number in 0..100 for a job (so runs are repeatable).
fn dice(id: u64, salt: u64) -> u64 {
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 29)) % 100
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args().map_err(|e| format!("wallet_audit: {e}"))?;
    let scaled = |d: Duration| d.div_f64(a.scale);
    let deadline = Duration::from_secs(180);
    let rate = parse_rate(&a.rate)?;

    // 1. The formula on the manager's numbers (real time).
    let target = plan(&PlanInput {
        pending: 108,
        rate_per_min: Some(20.0),
        avg_processing: Duration::from_secs(10),
        time_left: deadline,
        min_workers: 1,
        max_workers: 10,
        emergency_window: Duration::from_secs(30),
    });
    println!(
        "target: 108 events, 20/min, 10 s each, 3 min, 1..10 workers -> {} workers \
         (required {}, rate allows {}); draining takes {:.1} min: {}",
        target.workers,
        shown(target.required),
        shown(target.rate_limited),
        target.projected.unwrap_or_default().as_secs_f64() / 60.0,
        if target.on_track {
            "fits"
        } else {
            "cannot meet 3 min at 20/min"
        }
    );

    // 2. The run, `scale` times faster: the rate's window and every duration shrink.
    let run_rate = Rate::new(
        rate.limit,
        Duration::from_micros(rate.window).div_f64(a.scale),
        Some(rate.burst),
    )?;
    let store = RedisStore::connect_str(
        &a.redis,
        RedisOptions::default().with_timeout(Duration::from_secs(2)),
    )
    .await
    .map_err(|e| {
        format!("wallet_audit: {e}\n(start one with `redis-server --port 6379 --save ''`, or pass --redis URL)")
    })?;
    let queue = WorkQueue::open(store, "wallet-audit-example", QueueOptions::default())?;
    queue.clear().await?;
    let jobs: Vec<Job> = (0..a.events)
        .map(|i| {
            let (kind, _, priority) = EVENT_TYPES[(dice(i, 7) % 5) as usize];
            Job::new(json!({"type": kind, "wallet": format!("0x{:04x}", i)})).priority(priority)
        })
        .collect();
    queue.push_many(&jobs).await?;
    println!(
        "run: {} events at {} ({:.0}/min), deadline 3 min, 1..10 workers, time x{} \
         (deadline {:.1} s real)",
        a.events,
        a.rate,
        rate_per_min(&rate),
        a.scale,
        scaled(deadline).as_secs_f64()
    );

    let scale = a.scale;
    let handler = move |job: ClaimedJob| async move {
        let kind = job.payload["type"].as_str().unwrap_or_default().to_string();
        let secs = EVENT_TYPES
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map_or(10, |t| t.1);
        let mut work = Duration::from_secs(secs);
        if dice(job.id, 1) < 10 {
            work *= 2; // a slow response
        }
        tokio::time::sleep(work.div_f64(scale)).await;
        if job.attempt == 1 && dice(job.id, 2) < 5 {
            return Err(JobError::retryable(format!(
                "{kind}: API error (simulated)"
            )));
        }
        Ok(())
    };
    let worker = Worker::start(
        queue.clone(),
        WorkerOptions {
            concurrency: 1,
            max_concurrency: 10,
            rate: Some(run_rate),
            lease: Duration::from_secs(5),
            retry: RetryPolicy {
                max_attempts: 3,
                base: scaled(Duration::from_secs(2)),
                max: scaled(Duration::from_secs(30)),
                ..RetryPolicy::default()
            },
            idle_poll: Duration::from_millis(20),
            ..WorkerOptions::default()
        },
        handler,
    )?;
    let scaler = Autoscaler::new(
        &worker,
        AutoscaleOptions {
            min_workers: 1,
            max_workers: 10,
            deadline: scaled(deadline),
            initial_avg: scaled(Duration::from_secs(10)),
            interval: Duration::from_millis(100),
            ..AutoscaleOptions::default()
        },
    )?;
    let started = std::time::Instant::now();
    let mut last = 0;
    let report = scaler
        .run(std::future::pending(), |p, pending| {
            if p.workers != last {
                last = p.workers;
                println!(
                    "  t={:>5.1} min  pending {pending:>3}  -> {} workers (required {}, rate allows {}{})",
                    started.elapsed().as_secs_f64() * scale / 60.0,
                    p.workers,
                    shown(p.required),
                    shown(p.rate_limited),
                    if p.emergency { ", emergency" } else { "" }
                );
            }
        })
        .await;
    worker.stop().await;
    println!(
        "report: processed {}, failed {}, retried {}, total {:.2} min (deadline 3 min): {}",
        report.processed,
        report.failed,
        report.retried,
        report.total_secs * a.scale / 60.0,
        if report.met_deadline {
            "met the deadline"
        } else {
            "MISSED the deadline"
        }
    );
    queue.clear().await?;
    Ok(())
}

/// A bound of the plan, or `-` when it does not apply.
fn shown(bound: Option<u64>) -> String {
    bound.map_or_else(|| "-".into(), |n| n.to_string())
}
