//! `tidegate queue`: the Redis work queue from the command line — push jobs, look at
//! them (`stats`, `failed`, `monitor`), `clear`, `retry-failed`, and `work` them off
//! with a shell command or a webhook under one global rate, optionally autoscaled to a
//! deadline.

mod monitor;
mod push;
mod work;

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tidegate::queue::{QueueOptions, QueueStats, WorkQueue};
use tidegate::store::redis::{RedisOptions, RedisStore};

/// Arguments of `tidegate queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Redis URL (`redis://HOST:PORT`, `rediss://` for TLS; several comma-separated URLs
    /// select Redis Cluster); the same variable as `tidegate serve`'s `store.url`.
    #[arg(long, env = tidegate_server::env::STORE_URL, global = true)]
    redis: Option<String>,

    /// PEM file of the CA that signed the Redis server's certificate (`rediss://`);
    /// default: the system's roots.
    #[arg(long, env = tidegate_server::env::STORE_TLS_CA_FILE, global = true)]
    tls_ca_file: Option<PathBuf>,

    /// The queue's name (its keys are `tidegate:queue:{NAME}:...`).
    #[arg(long, short, env = tidegate_server::env::QUEUE_NAME, global = true)]
    queue: Option<String>,

    /// Longest any Redis call may take, e.g. `2s`; connecting gets the same bound.
    #[arg(long, env = tidegate_server::env::QUEUE_TIMEOUT, default_value = "2s", value_parser = duration, global = true)]
    timeout: Duration,

    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Push jobs: each JSON argument is one job's payload; without arguments, one
    /// payload per line of standard input (blank lines skipped). Every payload is
    /// checked before anything is written.
    Push(PushArgs),
    /// Counts by state (a table, or JSON with `--json`).
    Stats(StatsArgs),
    /// Failed jobs with their error and attempts (oldest failure first).
    Failed(FailedArgs),
    /// A live view: counts, rate, workers, progress and ETA against the deadline of an
    /// autoscaled run; plain lines when standard output is not a terminal.
    Monitor(monitor::MonitorArgs),
    /// Remove every job and reset the counters.
    Clear,
    /// Put failed jobs back to waiting (attempts reset, history kept).
    RetryFailed(RetryFailedArgs),
    /// Work jobs off with `--exec CMD` or `--webhook URL`, under `--rate`, with
    /// `--workers N` or `MIN..MAX` and `--deadline` for autoscaling; prints a report.
    Work(Box<work::WorkArgs>),
}

#[derive(Debug, Args)]
struct PushArgs {
    /// JSON payloads, one job each (default: lines of standard input).
    payloads: Vec<String>,
    /// Priority of the jobs: higher runs first; FIFO within a priority.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    priority: i64,
    /// Group (tenant) of the jobs: groups are served round-robin.
    #[arg(long)]
    group: Option<String>,
    /// Delay before the jobs may start, e.g. `30s`.
    #[arg(long, value_parser = duration)]
    delay: Option<Duration>,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct FailedArgs {
    /// Most jobs listed.
    #[arg(long, default_value_t = 20)]
    limit: u64,
    /// One JSON object per job (with the attempt history).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RetryFailedArgs {
    /// Most jobs moved (default: all).
    #[arg(long)]
    limit: Option<u64>,
}

/// Parses a duration like `2s`, `3m`, `250ms`.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    tidegate::policy::parse_window(text)
        .map_err(|e| e.reason)
        .and_then(|d| {
            if d.is_zero() {
                Err("must be greater than zero".into())
            } else {
                Ok(d)
            }
        })
}

/// Runs `tidegate queue`.
pub fn run(args: &QueueArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &QueueArgs) -> Result<ExitCode> {
    tidegate_server::env::check(tidegate_server::env::tidegate_vars())?;
    let Some(url) = args.redis.as_deref() else {
        bail!(
            "--redis URL (or {}) is required, e.g. --redis redis://127.0.0.1:6379",
            tidegate_server::env::STORE_URL
        );
    };
    let Some(name) = args.queue.as_deref() else {
        bail!(
            "--queue NAME (or {}) is required",
            tidegate_server::env::QUEUE_NAME
        );
    };
    // Validate what can be validated before connecting.
    let jobs = match &args.command {
        QueueCommand::Push(push) => Some(push::Jobs::first(push)?),
        _ => None,
    };
    if let QueueCommand::Work(work) = &args.command {
        work.check()?;
    }
    let queue = open(url, args.tls_ca_file.as_deref(), name, args.timeout).await?;
    if let QueueCommand::Work(work) = &args.command
        && !work.create
        && !queue.exists().await?
    {
        bail!(
            "queue `{name}` does not exist (nothing was ever pushed to it): check the name, \
             push a job to create it (`tidegate queue push`), or start the worker with --create"
        );
    }
    match &args.command {
        QueueCommand::Push(_) => {
            if let Some((jobs, first)) = jobs {
                jobs.push_all(&queue, name, first).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Stats(a) => {
            let stats = queue.stats().await?;
            if a.json {
                println!("{}", stats_json(name, &stats));
            } else {
                print!("{}", stats_table(name, &stats));
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Failed(a) => {
            queue.stats().await?; // unknown queue: an error
            let failed = queue.failed_jobs(0, a.limit).await?;
            for f in &failed {
                if a.json {
                    println!("{}", serde_json::to_string(f)?);
                } else {
                    println!(
                        "#{} attempts={} error={:?} payload={}",
                        f.id, f.attempts, f.error, f.payload
                    );
                }
            }
            if !a.json {
                eprintln!("{} failed job(s) listed", failed.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Monitor(a) => monitor::run(&queue, a).await,
        QueueCommand::Clear => {
            let progress = io::stderr().is_terminal();
            let removed = queue
                .clear_with_progress(|n| {
                    if progress {
                        eprint!("\rclearing {name}: {n} job(s) removed");
                    }
                })
                .await
                .with_context(|| {
                    format!("clearing {name} stopped; the jobs removed so far stay removed")
                })?;
            if progress {
                eprintln!();
            }
            println!("cleared {name}: {removed} job(s) removed, counters reset");
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::RetryFailed(a) => {
            queue.stats().await?;
            let moved = queue.retry_failed(a.limit).await?;
            println!("{moved} failed job(s) of {name} moved back to waiting");
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Work(a) => work::run(queue, a).await,
    }
}

/// Connects (bounded by `timeout`) and opens the queue.
async fn open(
    url: &str,
    tls_ca_file: Option<&Path>,
    name: &str,
    timeout: Duration,
) -> Result<WorkQueue> {
    let options = RedisOptions::default()
        .with_timeout(timeout)
        .with_connect_timeout(timeout)
        .with_tls_ca_file(tls_ca_file.map(Path::to_path_buf));
    let store = RedisStore::connect_str(url, options)
        .await
        .with_context(|| format!("cannot reach Redis for queue `{name}`"))?;
    let queue = WorkQueue::open(
        store,
        name,
        QueueOptions {
            timeout,
            ..QueueOptions::default()
        },
    )?;
    Ok(queue)
}

/// The jobs of `push`, all validated before any is written.
fn stats_json(name: &str, s: &QueueStats) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("queue".into(), name.into());
        obj.insert("pending".into(), s.pending().into());
    }
    v
}

fn stats_table(name: &str, s: &QueueStats) -> String {
    let mut out = format!("queue      {name}\n");
    for (label, n) in [
        ("waiting", s.waiting),
        ("delayed", s.delayed),
        ("active", s.active),
        ("completed", s.completed),
        ("failed", s.failed),
        ("stalled", s.stalled),
        ("retried", s.retried),
        ("pushed", s.pushed),
    ] {
        out.push_str(&format!("{label:<10} {n}\n"));
    }
    out.push_str(&format!(
        "workers    {} ({} slots, {} busy)\n",
        s.workers, s.slots, s.busy
    ));
    out
}
