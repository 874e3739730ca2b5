//! `tidegate replay --tracker SPEC`: recorded events through the event tracker on a
//! virtual clock whose ticks fall at multiples of the processing interval from 0.
//!
//! One JSON outcome per input line (`type`, `count`, `deferred`, `scheduled_at_ms`,
//! `due_in_ms`, `reason`), and a line per tick that delivers (`"event":"processed"`), retries or
//! fails a round. At the end of the input the clock runs on until nothing is deferred.

use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use crate::json::{ms, record_json};
use crate::replay::{EventLines, Timed};
use serde::Deserialize;
use serde_json::json;
use tidegate::ManualClock;
use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate::time::duration_to_micros;
use tidegate::tracker::{
    Details, EventTracker, TrackOutcome, TrackerEvent, TrackerSpec, TrackerStore,
};
use tokio::sync::broadcast::Receiver;

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    t_ms: u64,
    category: String,
    id: String,
    #[serde(default)]
    details: Details,
}

impl Timed for Event {
    fn t_ms(&self) -> u64 {
        self.t_ms
    }
}

/// Runs the tracker replay; exit code 1 when a line was bad.
pub fn run(
    spec: &str,
    processor_fails: u32,
    store: &str,
    input: Box<dyn BufRead>,
) -> Result<ExitCode> {
    let spec: TrackerSpec = spec.parse().context("--tracker")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let tracker_store = runtime.block_on(tracker_store(store))?;
    let mut out = BufWriter::new(io::stdout().lock());
    let result = runtime.block_on(replay(
        &spec,
        processor_fails,
        tracker_store,
        input,
        &mut out,
    ));
    out.flush().context("writing outcomes")?;
    match result {
        Ok(summary) => {
            eprintln!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("tidegate replay: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The tracker's store: memory, or Redis under a name of its own (deleted at the end).
async fn tracker_store(store: &str) -> Result<TrackerStore> {
    if store == "memory" {
        return Ok(TrackerStore::Memory);
    }
    let options = RedisOptions::default().with_timeout(std::time::Duration::from_secs(5));
    let redis = RedisStore::connect_str(store, options)
        .await
        .with_context(|| format!("--store {store}"))?;
    Ok(TrackerStore::redis(redis, crate::replay::unique_name()))
}

/// Writes what the tracker reported since the last call (ticks, retries, failures).
fn write_events(rx: &mut Receiver<TrackerEvent>, t_ms: u64, out: &mut impl Write) -> Result<()> {
    while let Ok(event) = rx.try_recv() {
        let line = match event {
            TrackerEvent::Processed(records) => json!({
                "t_ms": t_ms,
                "event": "processed",
                "records": records.iter().map(record_json).collect::<Vec<_>>(),
            }),
            TrackerEvent::Retry {
                attempt,
                max_retries,
                delay,
                events,
            } => json!({
                "t_ms": t_ms,
                "event": "retry",
                "attempt": attempt,
                "max_retries": max_retries,
                "delay_ms": delay.as_millis() as u64,
                "records": events.len(),
            }),
            TrackerEvent::ProcessFailed {
                error,
                events,
                attempts,
            } => json!({
                "t_ms": t_ms,
                "event": "process_failed",
                "error": error,
                "attempts": attempts,
                "records": events.len(),
            }),
            TrackerEvent::Error(message) => {
                json!({"t_ms": t_ms, "event": "error", "message": message})
            }
            _ => continue,
        };
        writeln!(out, "{line}").context("writing outcomes")?;
    }
    Ok(())
}

/// Runs every tick at or before `limit` (multiples of `interval`), writing what they did.
async fn tick_until(
    tracker: &EventTracker,
    clock: &ManualClock,
    interval: u64,
    limit: u64,
    next_tick: &mut u64,
    rx: &mut Receiver<TrackerEvent>,
    out: &mut impl Write,
) -> Result<()> {
    while *next_tick <= limit {
        let t = *next_tick;
        clock.set_micros(t);
        tracker.tick_at(t).await;
        write_events(rx, ms(t), out)?;
        *next_tick += interval;
    }
    Ok(())
}

async fn replay(
    spec: &TrackerSpec,
    processor_fails: u32,
    store: TrackerStore,
    input: Box<dyn BufRead>,
    out: &mut impl Write,
) -> Result<String> {
    let clock = ManualClock::new(0);
    let calls = Arc::new(AtomicU32::new(0));
    let delivered = Arc::new(Mutex::new((0u64, 0u64)));
    let (c, d) = (Arc::clone(&calls), Arc::clone(&delivered));
    let tracker = spec
        .apply(EventTracker::builder())
        .manual_ticks()
        .store(store)
        .clock(clock.clone())
        .processor(move |batch| {
            let call = c.fetch_add(1, Ordering::SeqCst) + 1;
            let d = Arc::clone(&d);
            async move {
                if call <= processor_fails {
                    return Err(format!("processor call {call} fails (--processor-fails)"));
                }
                let mut totals = d.lock().unwrap_or_else(|e| e.into_inner());
                totals.0 += batch.len() as u64;
                totals.1 += batch.iter().map(|r| r.count).sum::<u64>();
                Ok(())
            }
        })
        .build()
        .context("--tracker")?;
    let result = replay_lines(spec, &tracker, &clock, input, out).await;
    // A Redis tracker's keys go whatever happened.
    let cleared = tracker.clear().await;
    let lines = result?;
    cleared.context("deleting the replay's keys")?;
    let s = tracker.stats();
    let (records, events) = *delivered.lock().unwrap_or_else(|e| e.into_inner());
    Ok(format!(
        "replayed {lines} events: {} immediate, {} deferred, {} ignored; processed {records} records holding {events} events in {} processor calls ({} failed rounds)",
        s.immediate,
        s.deferred,
        s.ignored,
        calls.load(Ordering::SeqCst),
        s.failed_rounds,
    ))
}

/// Replays the input lines, then runs the clock on until nothing is deferred; the number
/// of lines.
async fn replay_lines(
    spec: &TrackerSpec,
    tracker: &EventTracker,
    clock: &ManualClock,
    input: Box<dyn BufRead>,
    out: &mut impl Write,
) -> Result<u64> {
    let mut rx = tracker.subscribe();
    let interval = duration_to_micros(spec.processing_interval());
    let mut next_tick = 0u64;
    let mut lines = 0u64;
    let mut input = EventLines::new(input, "{\"t_ms\", \"category\", \"id\", \"details\"}");
    while let Some(next) = input.next_event::<Event>() {
        let (number, event, now) = next?;
        tick_until(tracker, clock, interval, now, &mut next_tick, &mut rx, out).await?;
        clock.set_micros(now);
        let outcome = tracker
            .track_event_at(&event.category, &event.id, event.details, now)
            .await
            .with_context(|| format!("line {number}"))?;
        let r = outcome.record();
        let mut line = json!({
            "t_ms": event.t_ms,
            "category": event.category,
            "id": event.id,
            "type": outcome.kind(),
            "count": r.total,
            "deferred": r.deferred,
            "scheduled_at_ms": r.scheduled_at_ms(),
            // 0 once the batch is due: it then waits for the next tick.
            "due_in_ms": r.scheduled_at_us.map(|us| ms(us.saturating_sub(now))),
        });
        if let TrackOutcome::Ignored { reason, .. } = &outcome {
            line["reason"] = serde_json::to_value(reason)?;
        }
        writeln!(out, "{line}").context("writing outcomes")?;
        write_events(&mut rx, event.t_ms, out)?;
        lines += 1;
    }
    // Run the clock on until nothing is deferred, skipping idle ticks.
    while let Some(due) = tracker.next_due_micros().await? {
        if due > next_tick {
            next_tick = due.div_ceil(interval) * interval;
        }
        let t = next_tick;
        tick_until(tracker, clock, interval, t, &mut next_tick, &mut rx, out).await?;
    }
    Ok(lines)
}
