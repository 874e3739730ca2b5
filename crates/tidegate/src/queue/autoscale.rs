//! Autoscaling to a deadline: how many jobs to run at once so the queue drains in time
//! without asking for more than the rate lets start.
//!
//! The formula ([`plan`], a pure function):
//!
//! ```text
//! per_worker_per_min = 60 / avg_processing_secs
//! required           = ceil(pending / (per_worker_per_min * minutes_left))
//! rate_limited       = ceil(rate_per_min / per_worker_per_min)
//! workers            = clamp(min(required, rate_limited), min_workers, max_workers)
//! ```
//!
//! 108 jobs, 20/min, 10 s per job, 3 minutes, 1..10 workers: `per_worker_per_min` = 6,
//! `required` = 6, `rate_limited` = 4, so 4 workers. Emergency (work remains and the
//! deadline is within `emergency_window`, or has passed): as many workers as the rate
//! can keep busy, `clamp(rate_limited, min, max)`. Never more workers than pending jobs
//! (unless `min_workers` says so). An empty queue: `min_workers`.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{DeadlineInfo, QueueError, WorkQueue, WorkerHandle};
use crate::rate::Rate;

/// What the formula needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanInput {
    /// Jobs not done yet (waiting + delayed + active).
    pub pending: u64,
    /// The global rate in starts per minute (`None`: no rate).
    pub rate_per_min: Option<f64>,
    /// Mean processing time of one job.
    pub avg_processing: Duration,
    /// Time left until the deadline (zero: passed).
    pub time_left: Duration,
    /// Fewest workers.
    pub min_workers: usize,
    /// Most workers.
    pub max_workers: usize,
    /// Work remaining this close to the deadline triggers the emergency scale-up.
    pub emergency_window: Duration,
}

/// What the formula decided, with its intermediate values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Plan {
    /// Workers to run.
    pub workers: usize,
    /// Jobs one worker finishes per minute: `60 / avg_processing_secs`.
    pub per_worker_per_min: f64,
    /// Workers needed to finish in time (`None` once the deadline passed or when empty).
    pub required: Option<u64>,
    /// Workers the rate can keep busy (`None` without a rate).
    pub rate_limited: Option<u64>,
    /// Whether the emergency scale-up applies.
    pub emergency: bool,
    /// Time to drain `pending` with `workers` at the rate (`None` when empty).
    pub projected: Option<Duration>,
    /// Whether that time fits before the deadline.
    pub on_track: bool,
}

/// `ceil` that ignores floating-point noise just above a whole number.
fn ceil(x: f64) -> u64 {
    let r = x.round();
    if (x - r).abs() < 1e-9 {
        r.max(0.0) as u64
    } else {
        x.ceil().max(0.0) as u64
    }
}

/// The deadline formula (module docs). Pure: the same input always gives the same plan.
pub fn plan(input: &PlanInput) -> Plan {
    let min = input.min_workers;
    let max = input.max_workers.max(min);
    let avg = input.avg_processing.as_secs_f64().max(1e-3);
    let per_worker_per_min = 60.0 / avg;
    let rate_limited = input
        .rate_per_min
        .map(|r| ceil(r / per_worker_per_min).max(1));
    if input.pending == 0 {
        return Plan {
            workers: min,
            per_worker_per_min,
            required: None,
            rate_limited,
            emergency: false,
            projected: None,
            on_track: true,
        };
    }
    // More workers than jobs, or than the rate can keep busy, would only wait.
    let most_useful = rate_limited
        .map_or(max as u64, |r| r.min(max as u64))
        .min(input.pending) as usize;
    let minutes_left = input.time_left.as_secs_f64() / 60.0;
    let required = (minutes_left > 0.0)
        .then(|| ceil(input.pending as f64 / (per_worker_per_min * minutes_left)).max(1));
    let emergency = required.is_none() || input.time_left <= input.emergency_window;
    let workers = if emergency {
        most_useful.clamp(min, max)
    } else {
        let r = required.unwrap_or(u64::MAX);
        let wanted = rate_limited.map_or(r, |rl| r.min(rl)).min(input.pending);
        (wanted.min(max as u64) as usize).clamp(min, max)
    };
    let throughput_per_min = match input.rate_per_min {
        Some(rate) => (workers as f64 * per_worker_per_min).min(rate),
        None => workers as f64 * per_worker_per_min,
    };
    let projected = (throughput_per_min > 0.0).then(|| {
        Duration::from_secs_f64((input.pending as f64 / throughput_per_min * 60.0).min(1e12))
    });
    Plan {
        workers,
        per_worker_per_min,
        required,
        rate_limited,
        emergency,
        projected,
        on_track: projected.is_some_and(|p| p <= input.time_left),
    }
}

/// Jobs per minute a rate admits on average.
pub fn rate_per_min(rate: &Rate) -> f64 {
    rate.limit as f64 * 60_000_000.0 / rate.window as f64
}

/// Settings of an [`Autoscaler`].
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleOptions {
    /// Fewest workers (default 1).
    pub min_workers: usize,
    /// Most workers (default 10; at most the worker's `max_concurrency`).
    pub max_workers: usize,
    /// The run must drain the queue within this long from its start.
    pub deadline: Duration,
    /// The processing time assumed until jobs have finished (default 10 s).
    pub initial_avg: Duration,
    /// How often the plan is recomputed and the queue checked for drained (default 250 ms).
    pub interval: Duration,
    /// The plan aims to finish this long before the deadline, so start-up and reporting
    /// overheads do not make an exactly-fitting plan miss it (default: a tenth of the
    /// deadline).
    pub safety_margin: Option<Duration>,
    /// Work remaining this close to the deadline triggers the emergency scale-up
    /// (default: a sixth of the deadline).
    pub emergency_window: Option<Duration>,
    /// Stop once nothing is waiting, delayed or active (default true).
    pub until_drained: bool,
}

impl Default for AutoscaleOptions {
    fn default() -> Self {
        Self {
            min_workers: 1,
            max_workers: 10,
            deadline: Duration::from_secs(180),
            initial_avg: Duration::from_secs(10),
            interval: Duration::from_millis(250),
            safety_margin: None,
            emergency_window: None,
            until_drained: true,
        }
    }
}

/// One change of the worker count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScaleEvent {
    /// Seconds since the run started.
    pub at_secs: f64,
    /// Workers from then on.
    pub workers: usize,
    /// Jobs pending then.
    pub pending: u64,
    /// Whether it was the emergency scale-up.
    pub emergency: bool,
}

/// The end of an autoscaled run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// Jobs pending when the run started.
    pub initial_pending: u64,
    /// Jobs this run completed.
    pub processed: u64,
    /// Jobs this run moved to the failed set.
    pub failed: u64,
    /// Failed attempts this run retried.
    pub retried: u64,
    /// Jobs pending when the run ended (0 when drained).
    pub remaining: u64,
    /// Wall time of the run, in seconds.
    pub total_secs: f64,
    /// The deadline, in seconds.
    pub deadline_secs: f64,
    /// Whether the queue drained before the deadline.
    pub met_deadline: bool,
    /// The mean processing time measured (seconds), if any job finished.
    pub avg_processing_secs: Option<f64>,
    /// The most workers used at once.
    pub peak_workers: usize,
    /// Every change of the worker count.
    pub scaling: Vec<ScaleEvent>,
}

/// Sets a [`WorkerHandle`]'s concurrency from [`plan`] until the queue drains (or a stop
/// signal), then reports.
#[derive(Debug)]
pub struct Autoscaler<'a> {
    worker: &'a WorkerHandle,
    options: AutoscaleOptions,
}

impl<'a> Autoscaler<'a> {
    /// An autoscaler of `worker`; checks the options (errors name the field).
    pub fn new(worker: &'a WorkerHandle, options: AutoscaleOptions) -> Result<Self, QueueError> {
        let bad = |field: &str, reason: String| QueueError::Option {
            field: field.into(),
            reason,
        };
        if options.max_workers == 0 || options.min_workers > options.max_workers {
            return Err(bad(
                "workers",
                format!(
                    "{}..{} is not a range of at least one worker (MIN..MAX with MIN <= MAX, MAX >= 1)",
                    options.min_workers, options.max_workers
                ),
            ));
        }
        if options.max_workers > worker.max_concurrency() {
            return Err(bad(
                "max_workers",
                format!(
                    "{} is above the worker's max_concurrency {}",
                    options.max_workers,
                    worker.max_concurrency()
                ),
            ));
        }
        if options.deadline.is_zero() {
            return Err(bad("deadline", "must be greater than zero".into()));
        }
        if options.interval.is_zero() {
            return Err(bad("interval", "must be greater than zero".into()));
        }
        Ok(Self { worker, options })
    }

    fn input(&self, pending: u64, avg: Duration, time_left: Duration) -> PlanInput {
        let o = &self.options;
        PlanInput {
            pending,
            rate_per_min: self.worker.options().rate.as_ref().map(rate_per_min),
            avg_processing: avg,
            time_left,
            min_workers: o.min_workers,
            max_workers: o.max_workers,
            emergency_window: o.emergency_window.unwrap_or(o.deadline / 6),
        }
    }

    /// Runs until the queue drains (with `until_drained`) or `stop` completes,
    /// recomputing the plan every `interval`; `on_plan` sees every plan (for logs or a
    /// live view). The worker keeps running (at `min_workers`) afterwards.
    pub async fn run(
        &self,
        stop: impl std::future::Future<Output = ()>,
        mut on_plan: impl FnMut(&Plan, u64),
    ) -> RunReport {
        let queue: &WorkQueue = self.worker.queue();
        let o = &self.options;
        let started = Instant::now();
        let base = self.worker.stats();
        let mut stop = std::pin::pin!(stop);
        let mut initial_pending = None;
        let mut pending = 0;
        let mut scaling = Vec::new();
        let mut peak = 0;
        loop {
            match queue.stats().await {
                Ok(stats) => {
                    pending = stats.pending();
                    if initial_pending.is_none() {
                        initial_pending = Some(pending);
                        self.worker.set_deadline(Some(DeadlineInfo {
                            deadline_ms: stats.server_ms + o.deadline.as_millis() as u64,
                            total: pending,
                        }));
                    }
                    if o.until_drained && pending == 0 {
                        break;
                    }
                    let s = self.worker.stats();
                    let avg = s.avg_processing().unwrap_or(o.initial_avg);
                    let margin = o.safety_margin.unwrap_or(o.deadline / 10);
                    let time_left = o
                        .deadline
                        .saturating_sub(started.elapsed())
                        .saturating_sub(margin);
                    let p = plan(&self.input(pending, avg, time_left));
                    if p.workers != self.worker.concurrency() || scaling.is_empty() {
                        let set = self.worker.set_concurrency(p.workers);
                        peak = peak.max(set);
                        scaling.push(ScaleEvent {
                            at_secs: started.elapsed().as_secs_f64(),
                            workers: set,
                            pending,
                            emergency: p.emergency,
                        });
                    }
                    on_plan(&p, pending);
                }
                Err(QueueError::UnknownQueue { .. }) if o.until_drained => {
                    pending = 0;
                    initial_pending.get_or_insert(0);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tidegate queue: autoscaler could not read the stats")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(o.interval) => {}
                _ = &mut stop => break,
            }
        }
        let total = started.elapsed();
        self.worker.set_concurrency(o.min_workers);
        self.worker.set_deadline(None);
        let end = self.worker.stats();
        RunReport {
            initial_pending: initial_pending.unwrap_or(pending),
            processed: end.completed - base.completed,
            failed: end.failed - base.failed,
            retried: end.retried - base.retried,
            remaining: pending,
            total_secs: total.as_secs_f64(),
            deadline_secs: o.deadline.as_secs_f64(),
            met_deadline: pending == 0 && total <= o.deadline,
            avg_processing_secs: end.avg_processing().map(|d| d.as_secs_f64()),
            peak_workers: peak,
            scaling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wallet_audit() -> PlanInput {
        PlanInput {
            pending: 108,
            rate_per_min: Some(20.0),
            avg_processing: Duration::from_secs(10),
            time_left: Duration::from_secs(180),
            min_workers: 1,
            max_workers: 10,
            emergency_window: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_wallet_audit_example_gives_four_workers() {
        let p = plan(&wallet_audit());
        assert_eq!(p.per_worker_per_min, 6.0);
        assert_eq!(p.required, Some(6));
        assert_eq!(p.rate_limited, Some(4));
        assert_eq!(p.workers, 4);
        assert!(!p.emergency);
        // 108 jobs at 20/min take 5.4 minutes: that deadline cannot be met.
        assert_eq!(p.projected, Some(Duration::from_secs(324)));
        assert!(!p.on_track);
    }

    #[test]
    fn an_empty_queue_scales_down_to_the_minimum() {
        let p = plan(&PlanInput {
            pending: 0,
            min_workers: 2,
            ..wallet_audit()
        });
        assert_eq!(p.workers, 2);
        assert!(p.on_track && !p.emergency);
    }

    #[test]
    fn a_passed_deadline_runs_as_many_workers_as_the_rate_can_use() {
        let p = plan(&PlanInput {
            time_left: Duration::ZERO,
            ..wallet_audit()
        });
        assert!(p.emergency);
        assert_eq!(p.required, None);
        assert_eq!(p.workers, 4);
    }

    #[test]
    fn a_rate_below_one_workers_capacity_gives_one_worker() {
        let p = plan(&PlanInput {
            rate_per_min: Some(2.0),
            ..wallet_audit()
        });
        assert_eq!(p.rate_limited, Some(1));
        assert_eq!(p.workers, 1);
    }

    #[test]
    fn fewer_jobs_need_fewer_workers_as_work_drains() {
        let p = plan(&PlanInput {
            pending: 20,
            time_left: Duration::from_secs(120),
            ..wallet_audit()
        });
        // 20 / (6 * 2) = 1.67 -> 2
        assert_eq!(p.required, Some(2));
        assert_eq!(p.workers, 2);
        assert!(p.on_track);
    }

    #[test]
    fn the_emergency_scales_up_to_the_rate_and_never_above_max_workers() {
        let near = PlanInput {
            pending: 5,
            time_left: Duration::from_secs(20),
            ..wallet_audit()
        };
        // Normally 5 / (6 * 1/3) = 2.5 -> 3 workers; in the emergency window: 4 (the rate).
        assert_eq!(
            plan(&PlanInput {
                emergency_window: Duration::ZERO,
                ..near
            })
            .workers,
            3
        );
        let p = plan(&near);
        assert!(p.emergency);
        assert_eq!(p.workers, 4);
        let capped = plan(&PlanInput {
            max_workers: 2,
            ..near
        });
        assert_eq!(capped.workers, 2);
        let no_rate = plan(&PlanInput {
            rate_per_min: None,
            ..near
        });
        // Without a rate: as many as there are jobs left (5), not max_workers (10).
        assert_eq!(no_rate.workers, 5);
    }

    #[test]
    fn min_and_max_bound_the_plan() {
        let p = plan(&PlanInput {
            pending: 1_000_000,
            rate_per_min: None,
            ..wallet_audit()
        });
        assert_eq!(p.workers, 10);
        let p = plan(&PlanInput {
            pending: 1,
            min_workers: 3,
            ..wallet_audit()
        });
        assert_eq!(p.workers, 3);
    }

    #[test]
    fn the_rate_per_minute_of_a_rate() {
        let r = crate::queue::parse_rate("20/1m").unwrap();
        assert_eq!(rate_per_min(&r), 20.0);
        let r = crate::queue::parse_rate("10/1s").unwrap();
        assert_eq!(rate_per_min(&r), 600.0);
    }
}
