//! `tidegate queue monitor`: counts by state, rates, workers, progress and ETA against
//! the deadline of an autoscaled run. Redraws in place on a terminal; prints one plain
//! line per update otherwise (logs, pipes, tests).

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use tidegate::queue::{QueueStats, WorkQueue};

use super::duration;

/// Arguments of `tidegate queue monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Time between updates.
    #[arg(long, value_parser = duration, default_value = "1s")]
    interval: Duration,

    /// Stop after this many updates (default: until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

/// Rates are measured over this much recent time.
const RATE_WINDOW_MS: u64 = 10_000;

struct Sample {
    at_ms: u64,
    started: u64,
    completed: u64,
}

/// What one update shows, computed from the stats and the recent samples.
struct View {
    starts_per_min: Option<f64>,
    done_per_min: Option<f64>,
    /// (done, total) of the autoscaled run.
    progress: Option<(u64, u64)>,
    eta: Option<Duration>,
    deadline_in: Option<i64>,
}

fn view(s: &QueueStats, samples: &VecDeque<Sample>) -> View {
    let rate = |f: fn(&Sample) -> u64| {
        let (first, last) = (samples.front()?, samples.back()?);
        let dt = last.at_ms.checked_sub(first.at_ms).filter(|&d| d > 0)?;
        Some(f(last).saturating_sub(f(first)) as f64 * 60_000.0 / dt as f64)
    };
    let starts_per_min = rate(|s| s.started);
    let done_per_min = rate(|s| s.completed);
    let pending = s.pending();
    let eta = match done_per_min {
        _ if pending == 0 => Some(Duration::ZERO),
        Some(r) if r > 0.0 => Some(Duration::from_secs_f64(pending as f64 / r * 60.0)),
        _ => None,
    };
    let progress = s
        .deadline
        .map(|d| (d.total.saturating_sub(pending).min(d.total), d.total));
    let deadline_in = s
        .deadline
        .map(|d| d.deadline_ms as i64 - s.server_ms as i64);
    View {
        starts_per_min,
        done_per_min,
        progress,
        eta,
        deadline_in,
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn fmt_ms_signed(ms: i64) -> String {
    if ms >= 0 {
        fmt_duration(Duration::from_millis(ms as u64))
    } else {
        format!(
            "-{}",
            fmt_duration(Duration::from_millis(ms.unsigned_abs()))
        )
    }
}

fn fmt_rate(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.1}/min"))
}

/// One plain line (no terminal).
fn line(name: &str, s: &QueueStats, v: &View) -> String {
    let mut out = format!(
        "queue={name} waiting={} delayed={} active={} completed={} failed={} stalled={} starts={} completions={} workers={} slots={} busy={}",
        s.waiting,
        s.delayed,
        s.active,
        s.completed,
        s.failed,
        s.stalled,
        fmt_rate(v.starts_per_min),
        fmt_rate(v.done_per_min),
        s.workers,
        s.slots,
        s.busy
    );
    if let Some((done, total)) = v.progress {
        out.push_str(&format!(" progress={done}/{total}"));
    }
    out.push_str(&format!(" eta={}", v.eta.map_or("-".into(), fmt_duration)));
    if let Some(ms) = v.deadline_in {
        out.push_str(&format!(" deadline_in={}", fmt_ms_signed(ms)));
    }
    out
}

/// The terminal view.
fn screen(name: &str, s: &QueueStats, v: &View) -> String {
    let mut out = format!("tidegate queue {name}   (Ctrl-C to quit)\n\n");
    out.push_str(&format!(
        "  waiting   {:>8}   delayed {:>8}   active  {:>8}\n",
        s.waiting, s.delayed, s.active
    ));
    out.push_str(&format!(
        "  completed {:>8}   failed  {:>8}   stalled {:>8}\n",
        s.completed, s.failed, s.stalled
    ));
    out.push_str(&format!(
        "  starts    {:>12}   completions {:>12}\n",
        fmt_rate(v.starts_per_min),
        fmt_rate(v.done_per_min)
    ));
    out.push_str(&format!(
        "  workers   {} process(es), {} slot(s), {} busy\n\n",
        s.workers, s.slots, s.busy
    ));
    if let Some((done, total)) = v.progress {
        let width = 40;
        let filled = (done * width).checked_div(total).unwrap_or(width) as usize;
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        out.push_str(&format!(
            "  [{}{}] {pct:>3}%  {done}/{total}\n",
            "#".repeat(filled),
            "-".repeat(width as usize - filled)
        ));
    }
    let eta = v.eta.map_or("-".into(), fmt_duration);
    match v.deadline_in {
        Some(ms) => {
            let verdict = match v.eta {
                Some(eta) if (eta.as_millis() as i64) <= ms => "on track".to_string(),
                Some(eta) => format!(
                    "behind by {}",
                    fmt_duration(Duration::from_millis(
                        (eta.as_millis() as i64 - ms.max(0)) as u64
                    ))
                ),
                None => "no completions yet".to_string(),
            };
            out.push_str(&format!(
                "  ETA {eta}   deadline in {}   ({verdict})\n",
                fmt_ms_signed(ms)
            ));
        }
        None => out.push_str(&format!("  ETA {eta}\n")),
    }
    out
}

/// Runs `tidegate queue monitor`.
pub async fn run(queue: &WorkQueue, args: &MonitorArgs) -> Result<ExitCode> {
    let tty = std::io::stdout().is_terminal();
    let mut samples: VecDeque<Sample> = VecDeque::new();
    let mut updates = 0u64;
    let mut ticker = tokio::time::interval(args.interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let s = queue.stats().await?;
        samples.push_back(Sample {
            at_ms: s.server_ms,
            started: s.started,
            completed: s.completed,
        });
        while samples
            .front()
            .is_some_and(|f| f.at_ms + RATE_WINDOW_MS < s.server_ms)
        {
            samples.pop_front();
        }
        // A clear resets the counters: start measuring again.
        if samples.len() > 1
            && samples
                .front()
                .is_some_and(|f| f.started > s.started || f.completed > s.completed)
        {
            samples.drain(..samples.len() - 1);
        }
        let v = view(&s, &samples);
        let mut stdout = std::io::stdout().lock();
        if tty {
            write!(stdout, "\x1b[H\x1b[2J{}", screen(queue.name(), &s, &v))?;
        } else {
            writeln!(stdout, "{}", line(queue.name(), &s, &v))?;
        }
        stdout.flush()?;
        updates += 1;
        if args.count.is_some_and(|c| updates >= c) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate::queue::DeadlineInfo;

    fn stats() -> QueueStats {
        QueueStats {
            waiting: 60,
            delayed: 0,
            active: 4,
            failed: 1,
            completed: 43,
            stalled: 0,
            pushed: 108,
            retried: 0,
            started: 48,
            workers: 1,
            slots: 4,
            busy: 4,
            deadline: Some(DeadlineInfo {
                deadline_ms: 1_000_180_000,
                total: 108,
            }),
            created_ms: 1_000_000_000,
            server_ms: 1_000_060_000,
        }
    }

    #[test]
    fn the_view_shows_progress_rate_eta_and_the_deadline() {
        let s = stats();
        let samples: VecDeque<Sample> = [
            Sample {
                at_ms: 1_000_050_000,
                started: 45,
                completed: 40,
            },
            Sample {
                at_ms: 1_000_060_000,
                started: 48,
                completed: 43,
            },
        ]
        .into();
        let v = view(&s, &samples);
        assert_eq!(v.starts_per_min, Some(18.0));
        assert_eq!(v.progress, Some((44, 108)));
        // 64 pending at 18/min: 213.3 s; the deadline is 120 s away.
        assert_eq!(v.eta.map(|d| d.as_secs()), Some(213));
        let text = screen("wallet-audit", &s, &v);
        assert!(text.contains("44/108"), "{text}");
        assert!(text.contains("deadline in 2m00s"), "{text}");
        assert!(text.contains("behind by 1m33s"), "{text}");
        let plain = line("wallet-audit", &s, &v);
        assert!(
            plain.contains("progress=44/108 eta=3m33s deadline_in=2m00s"),
            "{plain}"
        );
    }
}
