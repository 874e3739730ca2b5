//! `tidegate replay`: what-if runs of a policy over recorded traffic.
//!
//! Input: JSON lines `{"t_ms": 1500, "key": "u1", "cost": 1}` (`t_ms` on a virtual
//! clock, non-decreasing; `cost` optional, default 1). Output: one JSON decision per
//! input line on stdout, in order; a summary on stderr. The decisions come from the
//! same `Limiter` code an application runs, driven by the virtual clock; with
//! `--store redis://...` from the Redis store, the virtual time passed to its script,
//! so the output is comparable line by line.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
// Times must stay below 2^52 µs (about 142 years): beyond, the memory and the Redis
// stores (whose Lua numbers are doubles) would no longer decide alike.
use tidegate::rate::MAX_TIME_MICROS;
use tidegate::store::LimitStore;
use tidegate::store::redis::{RedisLimiter, RedisOptions, RedisStore};
use tidegate::{Decision, LimitError, Limiter, ManualClock, PolicySet};

use crate::lines::BoundedLines;
use tidegate_server::json::DecisionJson;

/// Lines between two sweeps of expired keys, so long replays stay bounded in memory.
const SWEEP_EVERY: u64 = 100_000;

/// Arguments of `tidegate replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Policy in short form, e.g. `token_bucket:100/1m,burst=20`, `fixed_window:3/10s`,
    /// `throttle:10s`. Several policies guarding each key together: repeat the flag or
    /// separate them with `;`.
    #[arg(
        long,
        short,
        required_unless_present = "tracker",
        conflicts_with = "tracker"
    )]
    policy: Vec<String>,

    /// Replay through the event tracker instead, e.g. `simple:limit=2,defer=100ms,expire=1h`,
    /// `token_bucket:size=2,rate=1/s`, `sliding_window:limit=3,window=1s,defer=100ms`
    /// (plus `processing_interval=`, `max_keys=`, `max_batch=`). Input lines are
    /// `{"t_ms":0,"category":"auth","id":"u1","details":{...}}`.
    #[arg(long)]
    pub(crate) tracker: Option<String>,

    /// With `--tracker`: the first N processor calls fail, to show retries.
    #[arg(long, default_value_t = 0, requires = "tracker")]
    pub(crate) processor_fails: u32,

    /// JSON-lines input file (default: standard input).
    #[arg(long, short)]
    input: Option<PathBuf>,

    /// Where states live: `memory` (default), or `redis://HOST:PORT` (`rediss://` for
    /// TLS); several comma-separated URLs select Redis Cluster. The replay uses its own
    /// key namespace and deletes its keys at the end.
    #[arg(long, default_value = "memory")]
    store: String,
}

/// Where the replay's decisions are made.
enum Backend {
    Memory(Limiter<PolicySet, String, ManualClock>, ManualClock),
    Redis(Box<RedisLimiter>),
}

impl Backend {
    async fn decide(&self, key: &str, cost: u64, now: u64) -> Result<Decision, LimitError> {
        match self {
            Backend::Memory(limiter, clock) => {
                clock.set_micros(now);
                limiter.check_at(key, cost, now)
            }
            Backend::Redis(limiter) => limiter.acquire(key, cost, Some(now)).await,
        }
    }

    /// Drops state that can no longer matter (memory) so long replays stay bounded.
    fn sweep(&self) {
        if let Backend::Memory(limiter, _) = self {
            limiter.sweep();
        }
    }

    /// Deletes the replay's keys from Redis.
    async fn clean_up(&self) -> Result<()> {
        if let Backend::Redis(limiter) = self {
            for key in limiter.keys(usize::MAX).await? {
                limiter.reset(&key).await?;
            }
        }
        Ok(())
    }
}

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    t_ms: u64,
    key: String,
    #[serde(default = "one")]
    cost: u64,
}

fn one() -> u64 {
    1
}

/// One output line.
#[derive(Debug, Serialize)]
struct Line<'a> {
    t_ms: u64,
    key: &'a str,
    #[serde(flatten)]
    decision: DecisionJson,
}

/// Runs the replay; returns the exit code (1 when a line was bad).
/// Opens `--input`, or standard input.
pub(crate) fn open_input(input: &Option<PathBuf>) -> Result<Box<dyn BufRead>> {
    Ok(match input {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(io::stdin().lock()),
    })
}

/// An input event with its virtual time.
pub(crate) trait Timed {
    /// Milliseconds on the virtual clock.
    fn t_ms(&self) -> u64;
}

/// JSON-lines events in order: blank lines skipped, each line parsed, `t_ms` checked
/// never to decrease; errors carry the line number.
pub(crate) struct EventLines<R> {
    lines: BoundedLines<R>,
    last_t: u64,
    /// The fields of an event, for error messages.
    shape: &'static str,
}

impl<R: BufRead> EventLines<R> {
    pub(crate) fn new(input: R, shape: &'static str) -> Self {
        Self {
            lines: BoundedLines::new(input),
            last_t: 0,
            shape,
        }
    }

    /// The next event as `(line number, event, time in µs)`.
    pub(crate) fn next_event<T: serde::de::DeserializeOwned + Timed>(
        &mut self,
    ) -> Option<Result<(usize, T, u64)>> {
        loop {
            let (number, line) = match self.lines.next_line()? {
                Ok((n, l)) => (n, l.to_string()),
                Err(e) => return Some(Err(e)),
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(self.parse(number, &line));
        }
    }

    fn parse<T: serde::de::DeserializeOwned + Timed>(
        &mut self,
        number: usize,
        line: &str,
    ) -> Result<(usize, T, u64)> {
        let event: T = serde_json::from_str(line)
            .with_context(|| format!("line {number}: not a valid event {}", self.shape))?;
        let t = event.t_ms();
        if t < self.last_t {
            anyhow::bail!(
                "line {number}: t_ms {t} is earlier than the previous event's {} (t_ms must not decrease)",
                self.last_t
            );
        }
        let max_ms = MAX_TIME_MICROS / 1_000 - 1;
        if t > max_ms {
            anyhow::bail!(
                "line {number}: `t_ms` {t} is out of range: at most {max_ms} (2^52 µs, about 142 years)"
            );
        }
        self.last_t = t;
        Ok((number, event, t * 1_000))
    }
}

impl Timed for Event {
    fn t_ms(&self) -> u64 {
        self.t_ms
    }
}

pub fn run(args: &ReplayArgs) -> Result<ExitCode> {
    if let Some(spec) = &args.tracker {
        return crate::replay_tracker::run(
            spec,
            args.processor_fails,
            &args.store,
            open_input(&args.input)?,
        );
    }
    let policies: PolicySet = args.policy.join(";").parse().context("--policy")?;
    let input = open_input(&args.input)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let backend = runtime.block_on(backend(&policies, &args.store))?;
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let summary = runtime.block_on(replay(&backend, &policies, input, &mut out));
    out.flush().context("writing decisions")?;
    runtime
        .block_on(backend.clean_up())
        .context("deleting the replay's keys")?;
    match summary {
        Ok(s) => {
            eprintln!("{s}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("tidegate replay: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Totals printed on stderr at the end.
#[derive(Debug, Default)]
struct Summary {
    policies: String,
    lines: u64,
    allowed: u64,
    denied: u64,
    admitted_cost: u64,
    keys: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |n: u64| {
            if self.lines == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.lines as f64
            }
        };
        write!(
            f,
            "replayed {} events for {} keys with {}: {} allowed ({:.1}%), {} denied ({:.1}%), admitted cost {}",
            self.lines,
            self.keys,
            self.policies,
            self.allowed,
            pct(self.allowed),
            self.denied,
            pct(self.denied),
            self.admitted_cost
        )
    }
}

/// Connects to the Redis of `--store URL`, with a timeout long enough for a replay.
pub(crate) async fn connect(store: &str) -> Result<RedisStore> {
    let options = RedisOptions::default().with_timeout(std::time::Duration::from_secs(5));
    RedisStore::connect_str(store, options)
        .await
        .with_context(|| format!("--store {store}"))
}

/// A name no other replay uses: `replay-<pid>-<µs since the epoch>`.
pub(crate) fn unique_name() -> String {
    format!(
        "replay-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros())
    )
}

async fn backend(policies: &PolicySet, store: &str) -> Result<Backend> {
    if store == "memory" {
        let clock = ManualClock::new(0);
        let limiter = Limiter::builder(policies.clone())
            .sweep_interval(None)
            .clock(clock.clone())
            .build::<String>();
        return Ok(Backend::Memory(limiter, clock));
    }
    let redis = connect(store).await?;
    let name = unique_name();
    // A replay must not silently fall back: Redis errors end it.
    let limiter = redis
        .limiter(&name, policies.clone())
        .on_error(tidegate::store::FailurePolicy::FailClosed)
        .build()?;
    Ok(Backend::Redis(Box::new(limiter)))
}

async fn replay(
    backend: &Backend,
    policies: &PolicySet,
    input: impl BufRead,
    out: &mut impl Write,
) -> Result<Summary> {
    let mut summary = Summary {
        policies: policies.to_string(),
        ..Summary::default()
    };
    let mut keys = HashSet::new();
    let mut events = EventLines::new(input, "{\"t_ms\", \"key\", \"cost\"}");
    while let Some(next) = events.next_event::<Event>() {
        let (number, event, now) = next?;
        let d = backend
            .decide(&event.key, event.cost, now)
            .await
            .with_context(|| format!("line {number}: key {:?}", event.key))?;
        if let Backend::Redis(limiter) = backend
            && limiter.stats().fallbacks > 0
        {
            anyhow::bail!(
                "line {number}: Redis did not answer; the replay stops rather than guess"
            );
        }
        summary.lines += 1;
        if d.allowed {
            summary.allowed += 1;
            summary.admitted_cost += event.cost;
        } else {
            summary.denied += 1;
        }
        if !keys.contains(event.key.as_str()) {
            keys.insert(event.key.clone());
        }
        let line = Line {
            t_ms: event.t_ms,
            key: &event.key,
            decision: DecisionJson::from(&d),
        };
        serde_json::to_writer(&mut *out, &line).context("writing decisions")?;
        out.write_all(b"\n").context("writing decisions")?;
        if summary.lines.is_multiple_of(SWEEP_EVERY) {
            backend.sweep();
        }
    }
    summary.keys = keys.len();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run_str(policy: &str, input: &str) -> (Result<Summary>, String) {
        let policies: PolicySet = policy.parse().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let backend = rt.block_on(backend(&policies, "memory")).unwrap();
        let mut out = Vec::new();
        let r = rt.block_on(replay(&backend, &policies, input.as_bytes(), &mut out));
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn replay_prints_one_decision_per_line_in_order() {
        let input = "{\"t_ms\":1000,\"key\":\"A\"}\n{\"t_ms\":5000,\"key\":\"A\"}\n\n{\"t_ms\":12000,\"key\":\"A\",\"cost\":1}\n";
        let (summary, out) = run_str("throttle:10s", input);
        let summary = summary.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            r#"{"t_ms":5000,"key":"A","allowed":false,"limit":1,"remaining":0,"retry_after_ms":6000,"reset_after_ms":6000}"#
        );
        assert_eq!((summary.allowed, summary.denied, summary.keys), (2, 1, 1));
    }

    #[test]
    fn replay_reports_the_number_of_a_bad_line() {
        let input = "{\"t_ms\":1,\"key\":\"A\"}\n{\"t_ms\":2,\"kee\":\"A\"}\n";
        let (r, out) = run_str("fixed_window:3/10s", input);
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.starts_with("line 2: not a valid event"), "{e}");
        assert_eq!(out.lines().count(), 1);

        let (r, _) = run_str(
            "fixed_window:3/10s",
            "{\"t_ms\":5,\"key\":\"A\"}\n{\"t_ms\":4,\"key\":\"A\"}\n",
        );
        assert!(format!("{:#}", r.unwrap_err()).contains("line 2: t_ms 4 is earlier"));

        let (r, _) = run_str(
            "fixed_window:3/10s",
            "{\"t_ms\":5,\"key\":\"A\",\"cost\":4}\n",
        );
        let e = format!("{:#}", r.unwrap_err());
        assert!(
            e.contains("line 1") && e.contains("cost 4 can never be admitted"),
            "{e}"
        );
    }

    fn garbage() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            Just(format!("{{\"t_ms\":{},\"key\":\"a\"}}", u64::MAX)),
            Just("{\"t_ms\":1,\"key\":\"a\",\"cost\":-1}".to_string()),
            Just("{\"t_ms\":1e3,\"key\":\"a\"}".to_string()),
            Just("{\"t_ms\":1,\"key\":\"a\",\"extra\":1}".to_string()),
            Just("[]".to_string()),
            Just("\u{0}\r".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Fuzzed replay input: events in time order (any key, costs up to u64::MAX,
        /// times up to the bound) with one line possibly replaced by garbage, through
        /// every algorithm. The replay never panics; it prints one decision per line
        /// up to the first bad one, whose number its error names.
        #[test]
        fn replay_of_fuzzed_lines_never_panics_and_stops_at_the_first_bad_line(
            policy in prop::sample::select(vec![
                "gcra:10/1s", "fixed_window:3/10s,align=epoch", "sliding_window:5/1s",
                "sliding_log:3/1s", "token_bucket:100/1m,burst=20", "leaky_bucket:20/1m",
                "throttle:10s", "gcra:1000000000000000/1ms;fixed_window:1/18250d",
            ]),
            start in prop_oneof![Just(0u64), Just(MAX_TIME_MICROS / 1_000 - 100_000)],
            events in prop::collection::vec(
                (0u64..20_000, "\\PC{0,6}", prop_oneof![Just(1u64), 0u64..5, Just(u64::MAX)]),
                0..30,
            ),
            bad in prop::option::of((any::<prop::sample::Index>(), garbage())),
        ) {
            let mut t = start;
            let mut lines: Vec<String> = events
                .iter()
                .map(|(dt, key, cost)| {
                    t += dt;
                    serde_json::json!({"t_ms": t, "key": key, "cost": cost}).to_string()
                })
                .collect();
            let mut bad_line = None;
            if let Some((i, g)) = bad
                && !lines.is_empty()
            {
                let i = i.index(lines.len());
                lines[i] = g;
                bad_line = Some(i + 1);
            }
            let (r, out) = run_str(policy, &lines.join("\n"));
            let printed = out.lines().count();
            match r {
                Ok(summary) => {
                    prop_assert_eq!(summary.lines as usize, printed);
                    let blank = lines.iter().filter(|l| l.trim().is_empty()).count();
                    prop_assert_eq!(printed, lines.len() - blank);
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    prop_assert!(e.starts_with("line "), "{}", e);
                    let n: usize = e[5..].split(':').next().unwrap().parse().unwrap();
                    prop_assert!(printed < n, "{} decisions printed before the error {}", printed, e);
                    // A valid line fails only on a cost of 0 or one no policy can ever
                    // admit, or a time past the clock's bound.
                    if bad_line != Some(n) {
                        prop_assert!(
                            e.contains("can never be admitted")
                                || e.contains("cost must be at least 1")
                                || e.contains("is out of range"),
                            "{}",
                            e
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn replay_reports_leaky_bucket_delays() {
        let input = "{\"t_ms\":0,\"key\":\"A\"}\n{\"t_ms\":0,\"key\":\"A\"}\n";
        let (_, out) = run_str("leaky_bucket:20/1m", input);
        assert!(
            out.lines().nth(1).unwrap().ends_with(r#""delay_ms":3000}"#),
            "{out}"
        );
    }
}
