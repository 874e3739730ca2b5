//! `tidegate queue work`: runs a shell command or calls a webhook per job, under the
//! queue's global rate, with a fixed number of workers or autoscaled to a deadline.

use std::os::fd::AsFd;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use tidegate::queue::autoscale::rate_per_min;
use tidegate::queue::{
    AutoscaleOptions, Autoscaler, ClaimedJob, JobError, RetryPolicy, RunReport, WorkQueue, Worker,
    WorkerOptions, parse_rate,
};
use tidegate::rate::Rate;
use tidegate::time::{Clock, SystemClock};
use tokio::io::AsyncWriteExt;

use super::duration;
use tidegate_server::webhook::{Webhook, check_url};

/// Arguments of `tidegate queue work`.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Shell command run per job (`sh -c CMD`), the job's payload (one JSON line) on its
    /// standard input and TIDEGATE_JOB_QUEUE, TIDEGATE_JOB_ID, TIDEGATE_JOB_ATTEMPT,
    /// TIDEGATE_JOB_GROUP, TIDEGATE_JOB_PRIORITY and TIDEGATE_JOB_CLAIMED_AT (Unix time in
    /// seconds with microseconds, when this worker got the job) in its environment. Exit code 0: done;
    /// `--fatal-exit-code` (65): failed without retry; any other: retried. Its standard
    /// output goes to this command's standard error.
    #[arg(long, required_unless_present = "webhook", conflicts_with = "webhook")]
    exec: Option<String>,

    /// URL to `POST` each job to (`{"queue","id","attempt","group","priority","payload"}`);
    /// a 2xx answer is success, anything else is retried.
    #[arg(long)]
    webhook: Option<String>,

    /// Global rate of job starts shared by every worker of every process, e.g. `20/1m`
    /// (one start every 3 s) or `20/1m,burst=5`; burst defaults to 1. Default: none.
    #[arg(long, value_parser = rate_arg)]
    rate: Option<Rate>,

    /// Rate of job starts of each group, e.g. `5/1m`. Default: none.
    #[arg(long, value_parser = rate_arg)]
    group_rate: Option<Rate>,

    /// Jobs run at once: `N`, or `MIN..MAX` (with `--deadline`, the autoscaler picks
    /// within the range; without, MAX run).
    #[arg(long, default_value = "1", value_parser = workers_arg)]
    workers: (usize, usize),

    /// Autoscale to drain the queue within this long (e.g. `3m`), then exit with a
    /// report; exit code 1 if the deadline was missed.
    #[arg(long, value_parser = duration)]
    deadline: Option<Duration>,

    /// Processing time the autoscaler assumes until jobs finish (then it measures).
    #[arg(long, value_parser = duration, default_value = "10s")]
    initial_avg: Duration,

    /// Exit once nothing is waiting, delayed or active (implied by `--deadline`);
    /// otherwise work until SIGINT/SIGTERM.
    #[arg(long)]
    until_empty: bool,

    /// Lease of a running job, renewed every third of it; a job whose worker died runs
    /// again this long after its last renewal.
    #[arg(long, value_parser = duration, default_value = "30s")]
    lease: Duration,

    /// Attempts per job before it goes to the failed set.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,

    /// Delay before the second attempt; each further one is `--backoff-factor` times longer.
    #[arg(long, value_parser = duration, default_value = "1s")]
    backoff: Duration,

    /// Growth of the delay per attempt.
    #[arg(long, default_value_t = 2.0)]
    backoff_factor: f64,

    /// Longest delay between attempts.
    #[arg(long, value_parser = duration, default_value = "5m")]
    backoff_max: Duration,

    /// Largest fraction (0..1) taken off each delay at random.
    #[arg(long, default_value_t = 0.1)]
    jitter: f64,

    /// Longest one job may run; then it is stopped (and retried).
    #[arg(long, value_parser = duration, default_value = "5m")]
    job_timeout: Duration,

    /// With `--exec`: the exit code meaning "failed, do not retry".
    #[arg(long, default_value_t = 65)]
    fatal_exit_code: i32,

    /// This process's worker id (default HOST-PID-RANDOM).
    #[arg(long)]
    worker_id: Option<String>,

    /// Print the final report as JSON.
    #[arg(long)]
    json: bool,

    /// Work the queue even if nothing was ever pushed to it (without this flag an
    /// unknown queue, e.g. a misspelt name, is an error).
    #[arg(long)]
    pub(super) create: bool,
}

fn rate_arg(text: &str) -> Result<Rate, String> {
    parse_rate(text).map_err(|e| e.to_string())
}

/// `N` or `MIN..MAX`.
fn workers_arg(text: &str) -> Result<(usize, usize), String> {
    let num = |s: &str| {
        s.trim().parse::<usize>().map_err(|_| {
            format!("`{s}` is not a number of workers (write N or MIN..MAX, e.g. 1..10)")
        })
    };
    let (min, max) = match text.split_once("..") {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(text)?;
            (n, n)
        }
    };
    if max == 0 {
        return Err("at least one worker is needed".into());
    }
    if min > max {
        return Err(format!("MIN {min} is above MAX {max}"));
    }
    if max > 1_000 {
        return Err(format!("{max} workers is more than the 1000 allowed"));
    }
    Ok((min, max))
}

impl WorkArgs {
    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base: self.backoff,
            factor: self.backoff_factor,
            max: self.backoff_max,
            jitter: self.jitter,
        }
    }

    /// Checks what needs no Redis.
    pub fn check(&self) -> Result<()> {
        self.retry().validate()?;
        if let Some(url) = &self.webhook {
            check_url(url).with_context(|| format!("--webhook `{url}`"))?;
        }
        if self.lease < Duration::from_millis(100) {
            bail!("--lease must be at least 100ms");
        }
        Ok(())
    }
}

/// Runs `tidegate queue work`.
pub async fn run(queue: WorkQueue, args: &WorkArgs) -> Result<ExitCode> {
    let (min, max) = args.workers;
    let name: Arc<str> = Arc::from(queue.name());
    let timeout = args.job_timeout;
    let fatal = args.fatal_exit_code;
    let options = WorkerOptions {
        worker_id: args.worker_id.clone(),
        concurrency: if args.deadline.is_some() {
            min.max(1)
        } else {
            max
        },
        max_concurrency: max,
        lease: args.lease,
        rate: args.rate,
        group_rate: args.group_rate,
        retry: args.retry(),
        ..WorkerOptions::default()
    };
    let worker = match (&args.exec, &args.webhook) {
        (Some(cmd), _) => {
            let cmd: Arc<str> = Arc::from(cmd.as_str());
            let handler = move |job: ClaimedJob| {
                let (cmd, name) = (Arc::clone(&cmd), Arc::clone(&name));
                async move { exec(&cmd, &name, job, timeout, fatal).await }
            };
            Worker::start(queue.clone(), options, handler)?
        }
        (None, Some(url)) => {
            let hook = Arc::new(Webhook::new(url, &[], timeout, None)?);
            let handler = move |job: ClaimedJob| {
                let (hook, name) = (Arc::clone(&hook), Arc::clone(&name));
                async move {
                    let body = json!({
                        "queue": &*name,
                        "id": job.id,
                        "attempt": job.attempt,
                        "group": job.group,
                        "priority": job.priority,
                        "payload": job.payload,
                    });
                    hook.post(body.to_string()).await.map_err(|e| {
                        let e = anyhow::Error::new(e);
                        JobError::retryable(format!("webhook {}: {e:#}", hook.url()))
                    })
                }
            };
            Worker::start(queue.clone(), options, handler)?
        }
        (None, None) => bail!("give --exec CMD or --webhook URL"),
    };
    let rate = args.rate.map_or("no rate".to_string(), |r| {
        format!("rate {:.1}/min", rate_per_min(&r))
    });
    eprintln!(
        "tidegate: working queue {} as {} ({rate}, workers {min}..{max}{})",
        queue.name(),
        worker.worker_id(),
        args.deadline
            .map_or(String::new(), |d| format!(", deadline {}", secs(d)))
    );
    let started = Instant::now();
    if let Some(deadline) = args.deadline {
        let scaler = Autoscaler::new(
            &worker,
            AutoscaleOptions {
                min_workers: min,
                max_workers: max,
                deadline,
                initial_avg: args.initial_avg,
                ..AutoscaleOptions::default()
            },
        )?;
        let mut last = usize::MAX;
        let report = scaler
            .run(shutdown_signal(), |plan, pending| {
                if plan.workers != last {
                    last = plan.workers;
                    eprintln!(
                        "tidegate: [{:>6.1}s] {pending} pending: {} worker(s){}{}",
                        started.elapsed().as_secs_f64(),
                        plan.workers,
                        plan.required
                            .map_or(String::new(), |r| format!(", required {r}")),
                        if plan.emergency { " (emergency)" } else { "" },
                    );
                }
            })
            .await;
        worker.stop().await;
        print_report(&report, args.json);
        return Ok(if report.met_deadline {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let mut drained = false;
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = wait_drained(&queue), if args.until_empty => drained = true,
    }
    let stats = worker.stop().await;
    let total = started.elapsed();
    let report = json!({
        "processed": stats.completed,
        "failed": stats.failed,
        "retried": stats.retried,
        "lease_lost": stats.lease_lost,
        "total_secs": round3(total.as_secs_f64()),
        "drained": drained,
        "avg_processing_secs": stats.avg_processing().map(|d| round3(d.as_secs_f64())),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "tidegate: queue {}: processed {}, failed {}, retried {} in {}{}",
            queue.name(),
            stats.completed,
            stats.failed,
            stats.retried,
            secs(total),
            if drained { " (queue empty)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn print_report(r: &RunReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!(
        "tidegate: processed {}, failed {}, retried {} of {} in {:.1} s (deadline {:.1} s): {}",
        r.processed,
        r.failed,
        r.retried,
        r.initial_pending,
        r.total_secs,
        r.deadline_secs,
        if r.met_deadline {
            "met the deadline".to_string()
        } else if r.remaining > 0 {
            format!("missed the deadline, {} job(s) left", r.remaining)
        } else {
            "missed the deadline".to_string()
        }
    );
    println!(
        "tidegate: peak {} worker(s), average processing {}",
        r.peak_workers,
        r.avg_processing_secs
            .map_or("n/a".to_string(), |s| format!("{s:.2} s"))
    );
}

/// Returns once nothing is waiting, delayed or active (checked every 200 ms).
async fn wait_drained(queue: &WorkQueue) {
    loop {
        match queue.stats().await {
            Ok(s) if s.pending() == 0 => return,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "tidegate queue: stats failed"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One job through `sh -c CMD`.
async fn exec(
    cmd: &str,
    queue: &str,
    job: ClaimedJob,
    timeout: Duration,
    fatal: i32,
) -> Result<(), JobError> {
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let claimed_at = SystemClock.now_micros();
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env(
            "TIDEGATE_JOB_CLAIMED_AT",
            format!("{}.{:06}", claimed_at / 1_000_000, claimed_at % 1_000_000),
        )
        .env("TIDEGATE_JOB_QUEUE", queue)
        .env("TIDEGATE_JOB_ID", job.id.to_string())
        .env("TIDEGATE_JOB_ATTEMPT", job.attempt.to_string())
        .env("TIDEGATE_JOB_PRIORITY", job.priority.to_string())
        .env("TIDEGATE_JOB_GROUP", job.group.as_deref().unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| JobError::retryable(format!("cannot run `sh -c {cmd}`: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let body = format!("{}\n", job.payload);
        // The command may not read its input: never let that block the job.
        tokio::spawn(async move {
            let _ = stdin.write_all(body.as_bytes()).await;
        });
    }
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => {
            return Err(JobError::retryable(format!(
                "timed out after {}",
                secs(timeout)
            )));
        }
        Ok(Err(e)) => return Err(JobError::retryable(format!("waiting for the command: {e}"))),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .chars()
        .take(500)
        .collect();
    let code = output.status.code();
    let mut message = match code {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    };
    if !tail.is_empty() {
        message.push_str(": ");
        message.push_str(&tail);
    }
    if code == Some(fatal) {
        Err(JobError::fatal(message))
    } else {
        Err(JobError::retryable(message))
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
