//! Keyed checks, tidegate against governor 0.10, in the same run; prints the ratio.
//!
//! `cargo bench -p tidegate --bench keyed` (see `docs/BENCHMARKS.md`). Options after
//! `--`: `--rounds N` (default 11), `--ops N` checks per thread per round (default
//! 1_000_000), `--keys 1,10000,1000000`, `--threads 1,2`, `--no-rss`, `--quick`,
//! `--whole-interval` (quota 1000/s with a burst of 10^9: a whole-microsecond emission
//! interval, tidegate's fast path), `--allowed-only` (the caller reads only `allowed`; by default every field of
//! tidegate's decision is folded into a digest, so none of it can be optimised away).
//! Without any argument (`cargo test --benches`) it only makes a short smoke run.
//!
//! Workload: uniformly random u64 keys drawn from a universe of 1, 10k or 1M random
//! keys, pre-generated (one sequence per thread, identical for both libraries), every
//! key inserted once before timing. Same quota for both: 10^9 per second (every check
//! is admitted, so every check does the full admit path and writes its state). The
//! rounds of the three subjects are interleaved; each figure is a median over rounds,
//! and each ratio the median of the ratios within a round (a slow phase of a shared
//! machine then hits both sides of a ratio alike). `waited` is the share of the bench
//! threads' time spent runnable but not running (preempted by other processes), from
//! /proc/thread-self/schedstat: the noise indicator.
//!
//! Memory: `--rss-child governor|tidegate N` (run by the parent in a fresh process)
//! inserts N keys and prints the growth of the resident set (/proc/self/smaps_rollup).
//!
//! Instruction counts: `--count governor|tidegate --keys K --ops N` runs only N checks
//! of one subject (CoarseClock for tidegate, the same key sequence as the timed runs)
//! in `count_loop`, to be run under `valgrind --tool=callgrind
//! --toggle-collect='*count_loop*'` (instructions per check = Ir / N).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use governor::{Quota, RateLimiter};
use tidegate::Limiter;
use tidegate::algorithm::Gcra;
use tidegate::algorithm::gcra::GcraState;
use tidegate::time::{Clock, CoarseClock, MonotonicClock};

/// Checks per second per key, for both libraries.
const LIMIT: u32 = 1_000_000_000;

/// `--whole-interval`: 1000/s with a burst of 10^9 instead (a 1 ms emission interval,
/// whole microseconds, as in most real policies; every check is still admitted).
static WHOLE_INTERVAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
const WHOLE_LIMIT: u32 = 1_000;

struct Options {
    rounds: usize,
    ops: usize,
    keys: Vec<usize>,
    threads: Vec<usize>,
    rss: bool,
    allowed_only: bool,
}

fn parse_list(s: &str) -> Vec<usize> {
    s.split(',')
        .map(|x| x.replace('_', "").parse().expect("a number"))
        .collect()
}

fn options(args: &[String]) -> Options {
    let mut o = Options {
        rounds: 11,
        ops: 1_000_000,
        keys: vec![1, 10_000, 1_000_000],
        threads: vec![1, 2],
        rss: true,
        allowed_only: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().expect("option value").clone();
        match a.as_str() {
            "--rounds" => o.rounds = value().parse().expect("rounds"),
            "--ops" => o.ops = parse_list(&value())[0],
            "--keys" => o.keys = parse_list(&value()),
            "--threads" => o.threads = parse_list(&value()),
            "--no-rss" => o.rss = false,
            "--allowed-only" => o.allowed_only = true,
            "--whole-interval" => WHOLE_INTERVAL.store(true, std::sync::atomic::Ordering::Relaxed),
            "--quick" => {
                o.rounds = 3;
                o.ops = 500_000;
            }
            // `cargo bench` passes `--bench`; filters are not supported.
            _ => {}
        }
    }
    o
}

/// splitmix64: a fast, well-mixed sequence, good enough for benchmark keys.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift, no modulo bias worth mentioning).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

fn universe(n: usize) -> Vec<u64> {
    let mut rng = SplitMix(0x71DE_9A7E_u64.wrapping_mul(n as u64 + 1));
    (0..n).map(|_| rng.next()).collect()
}

fn sequence(universe: &[u64], len: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix(seed);
    (0..len)
        .map(|_| universe[rng.below(universe.len())])
        .collect()
}

/// Folds every field of a decision into one number.
fn digest(d: Result<tidegate::Decision, tidegate::LimitError>) -> u64 {
    match d {
        Ok(d) => {
            u64::from(d.allowed)
                ^ d.limit
                ^ d.remaining.rotate_left(8)
                ^ d.retry_after_us.unwrap_or(1).rotate_left(16)
                ^ d.reset_after_us.rotate_left(24)
                ^ d.delay_us.unwrap_or(1).rotate_left(32)
        }
        Err(_) => u64::MAX,
    }
}

/// Time this thread spent running and waiting on a run queue (ns), if the kernel says.
fn schedstat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

/// One timed run of all threads.
#[derive(Clone, Copy)]
struct Sample {
    /// Wall time divided by the checks of all threads.
    ns_per_check: f64,
    /// Share of the threads' wall time spent runnable but not running.
    waited: f64,
}

/// Runs `check` over each sequence on its own thread, all started together; the wall
/// time runs from the start signal until the last thread finished.
fn timed<F: Fn(&u64) -> u64 + Sync>(check: &F, seqs: &[Vec<u64>]) -> Sample {
    let barrier = Barrier::new(seqs.len() + 1);
    let (elapsed, waited_ns) = std::thread::scope(|s| {
        let handles: Vec<_> = seqs
            .iter()
            .map(|seq| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let before = schedstat();
                    let mut digest = 0u64;
                    for k in seq {
                        digest = digest.wrapping_add(check(black_box(k)));
                    }
                    black_box(digest);
                    match (before, schedstat()) {
                        (Some((_, w0)), Some((_, w1))) => w1.saturating_sub(w0),
                        _ => 0,
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let waited: u64 = handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .sum();
        (start.elapsed(), waited)
    });
    let wall = elapsed.as_nanos() as f64;
    let checks: usize = seqs.iter().map(Vec::len).sum();
    Sample {
        ns_per_check: wall / checks as f64,
        waited: waited_ns as f64 / (wall * seqs.len() as f64),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn whole_interval() -> bool {
    WHOLE_INTERVAL.load(std::sync::atomic::Ordering::Relaxed)
}

fn quota() -> Quota {
    if whole_interval() {
        return Quota::per_second(NonZeroU32::new(WHOLE_LIMIT).expect("non-zero"))
            .allow_burst(NonZeroU32::new(LIMIT).expect("non-zero"));
    }
    Quota::per_second(NonZeroU32::new(LIMIT).expect("non-zero"))
}

fn gcra() -> Gcra {
    if whole_interval() {
        return Gcra::new(
            u64::from(WHOLE_LIMIT),
            Duration::from_secs(1),
            Some(u64::from(LIMIT)),
        )
        .expect("valid rate");
    }
    Gcra::new(u64::from(LIMIT), Duration::from_secs(1), None).expect("valid rate")
}

fn tidegate_limiter<C: Clock + Clone + 'static>(clock: C) -> Limiter<Gcra, u64, C> {
    // No background sweeper: governor has none either (its `retain_recent` is manual),
    // and with this quota every state expires a nanosecond after its check, so a
    // sweeper would turn the workload into insertions.
    Limiter::builder(gcra())
        .sweep_interval(None)
        .clock(clock)
        .build::<u64>()
}

struct Row {
    keys: usize,
    threads: usize,
    /// Median ns per check: governor, tidegate monotonic, tidegate coarse.
    ns: [f64; 3],
    /// Median over rounds of governor ns / tidegate ns: monotonic, coarse.
    ratio: [f64; 2],
    /// (max - min) / median of the ns per check, per subject.
    spread: [f64; 3],
    /// Median share of time the bench threads waited for a CPU.
    waited: f64,
}

/// Runs the three subjects in interleaved rounds: [governor, monotonic, coarse] each.
fn measure<G, M, C>(g: &G, m: &M, c: &C, seqs: &[Vec<u64>], rounds: usize) -> Vec<[Sample; 3]>
where
    G: Fn(&u64) -> u64 + Sync,
    M: Fn(&u64) -> u64 + Sync,
    C: Fn(&u64) -> u64 + Sync,
{
    (0..rounds)
        .map(|round| {
            let mut r = [Sample {
                ns_per_check: 0.0,
                waited: 0.0,
            }; 3];
            // Rotate the order so that no subject always runs first or last.
            for i in 0..3 {
                let which = (round + i) % 3;
                r[which] = match which {
                    0 => timed(g, seqs),
                    1 => timed(m, seqs),
                    _ => timed(c, seqs),
                };
            }
            r
        })
        .collect()
}

fn run_config(keys: usize, threads: usize, o: &Options) -> Row {
    let universe = universe(keys);
    let seqs: Vec<Vec<u64>> = (0..threads)
        .map(|t| sequence(&universe, o.ops, 0xC0FFEE + t as u64))
        .collect();

    let governor = RateLimiter::keyed(quota());
    let monotonic = tidegate_limiter(MonotonicClock);
    let coarse = tidegate_limiter(CoarseClock);
    for k in &universe {
        assert!(governor.check_key(k).is_ok());
        assert!(monotonic.check(k, 1).expect("check").allowed);
        assert!(coarse.check(k, 1).expect("check").allowed);
    }

    // governor's answer to an admitted check, `Ok(())`, carries nothing more.
    let g = |k: &u64| u64::from(governor.check_key(k).is_ok());
    let rounds = if o.allowed_only {
        // A caller that only branches on `allowed`: the optimiser may skip computing
        // the other fields of the decision.
        let m = |k: &u64| u64::from(monotonic.check(k, 1).is_ok_and(|d| d.allowed));
        let c = |k: &u64| u64::from(coarse.check(k, 1).is_ok_and(|d| d.allowed));
        measure(&g, &m, &c, &seqs, o.rounds)
    } else {
        // Every field feeds the digest, as for a caller that also sets rate-limit
        // headers: nothing of the decision may be skipped.
        let m = |k: &u64| digest(monotonic.check(k, 1));
        let c = |k: &u64| digest(coarse.check(k, 1));
        measure(&g, &m, &c, &seqs, o.rounds)
    };
    let column = |f: &dyn Fn(&[Sample; 3]) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    let ns: [Vec<f64>; 3] = std::array::from_fn(|i| column(&|r| r[i].ns_per_check));
    let spread = std::array::from_fn(|i| {
        let v = &ns[i];
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        (hi - lo) / median(&mut v.clone())
    });
    Row {
        keys,
        threads,
        ns: std::array::from_fn(|i| median(&mut ns[i].clone())),
        ratio: std::array::from_fn(|i| {
            median(&mut column(&|r| r[0].ns_per_check / r[i + 1].ns_per_check))
        }),
        spread,
        waited: median(&mut column(&|r| {
            r.iter().map(|s| s.waited).sum::<f64>() / 3.0
        })),
    }
}

/// Cost of one clock reading (ns), median of 5 runs of 1M reads.
fn clock_read_ns<C: Clock>(clock: &C) -> f64 {
    let n = 1_000_000;
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                black_box(clock.now_micros());
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    median(&mut runs)
}

/// How far `CoarseClock` trails `MonotonicClock` (µs), sampled every 10 µs for `d`:
/// (median, 99th percentile, max).
fn coarse_lag(d: Duration) -> (u64, u64, u64) {
    let mut lags = Vec::new();
    let end = Instant::now() + d;
    while Instant::now() < end {
        let coarse = CoarseClock.now_micros();
        let precise = MonotonicClock.now_micros();
        lags.push(precise.saturating_sub(coarse));
        let pause = Instant::now() + Duration::from_micros(10);
        while Instant::now() < pause {
            std::hint::spin_loop();
        }
    }
    lags.sort_unstable();
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), at(1.0))
}

/// Resident set size in bytes, from /proc/self/smaps_rollup (which walks the page
/// tables), else /proc/self/statm (which reads the kernel's counters).
fn rss_bytes() -> u64 {
    if let Ok(rollup) = std::fs::read_to_string("/proc/self/smaps_rollup") {
        let kib = rollup.lines().find_map(|l| {
            l.strip_prefix("Rss:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        if let Some(kib) = kib {
            return kib * 1024;
        }
    }
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm resident field");
    // 4 KiB pages, as on x86-64 Linux.
    pages * 4096
}

/// In a fresh process: inserts `n` keys into one limiter, prints RSS growth per key.
fn rss_child(which: &str, n: usize) {
    let keys = universe(n);
    let before = rss_bytes();
    // Measured while the limiter is alive.
    let after = match which {
        "governor" => {
            let limiter = RateLimiter::keyed(quota());
            for k in &keys {
                assert!(limiter.check_key(k).is_ok());
            }
            assert_eq!(limiter.len(), n);
            rss_bytes()
        }
        "tidegate" => {
            let limiter = tidegate_limiter(MonotonicClock);
            for k in &keys {
                assert!(limiter.check(k, 1).expect("check").allowed);
            }
            assert_eq!(limiter.len(), n);
            let table = limiter.store().table_bytes();
            println!("table_per_key {:.1}", table as f64 / n as f64);
            rss_bytes()
        }
        other => panic!("unknown subject {other}"),
    };
    println!("rss_per_key {:.1}", (after - before) as f64 / n as f64);
}

/// Runs `rss_child` in a fresh process; returns the `name value` lines it printed.
fn rss_in_child(which: &str, n: usize) -> Vec<(String, f64)> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    let Ok(out) = Command::new(exe)
        .args(["--rss-child", which, &n.to_string()])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, v) = l.split_once(' ')?;
            Some((name.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The loop `--count` runs: every check of `seq`, decision digested (out of line, so
/// that a profiler can count exactly its instructions).
#[inline(never)]
fn count_loop<F: Fn(&u64) -> u64>(check: F, seq: &[u64]) -> u64 {
    let mut digest = 0u64;
    for k in seq {
        digest = digest.wrapping_add(check(black_box(k)));
    }
    digest
}

/// `--count SUBJECT`: one subject's checks only, for an instruction counter.
fn count(which: &str, o: &Options) {
    let keys = o.keys[0];
    let universe = universe(keys);
    let seq = sequence(&universe, o.ops, 0xC0FFEE);
    let digest = match which {
        "governor" => {
            let governor = RateLimiter::keyed(quota());
            for k in &universe {
                assert!(governor.check_key(k).is_ok());
            }
            count_loop(|k: &u64| u64::from(governor.check_key(k).is_ok()), &seq)
        }
        "tidegate" => {
            let coarse = tidegate_limiter(CoarseClock);
            for k in &universe {
                assert!(coarse.check(k, 1).expect("check").allowed);
            }
            if o.allowed_only {
                count_loop(
                    |k: &u64| u64::from(coarse.check(k, 1).is_ok_and(|d| d.allowed)),
                    &seq,
                )
            } else {
                count_loop(|k: &u64| digest(coarse.check(k, 1)), &seq)
            }
        }
        other => panic!("unknown subject {other}"),
    };
    println!(
        "{which}: {} checks over {keys} keys, digest {digest}",
        o.ops
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--count") {
        return count(&args[i + 1], &options(&args));
    }
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        let n = args[i + 2].parse().expect("key count");
        return rss_child(&args[i + 1], n);
    }
    let mut o = options(&args);
    if args.is_empty() {
        // Not `cargo bench` (which passes `--bench`) but e.g. `cargo test --benches`:
        // a smoke run of a fraction of a second.
        o = Options {
            rounds: 1,
            ops: 10_000,
            keys: vec![1, 1_000],
            threads: vec![1, 2],
            rss: false,
            allowed_only: false,
        };
    }
    let quota = if whole_interval() {
        format!("{WHOLE_LIMIT}/s burst {LIMIT} (whole-µs interval)")
    } else {
        format!("{LIMIT}/s")
    };
    println!(
        "keyed checks, quota {quota} for both, {} rounds x {} checks per thread, \
         tidegate decision used: {}; ns/check = median over rounds of wall time / checks \
         of all threads; ratio = tidegate throughput / governor throughput (median of \
         per-round ratios)",
        o.rounds,
        o.ops,
        if o.allowed_only {
            "`allowed` only"
        } else {
            "every field"
        }
    );
    println!(
        "governor: RateLimiter::keyed (DashMap, its default clock); tidegate: \
         Limiter<Gcra, u64>, MonotonicClock or CoarseClock (the default)"
    );
    println!();
    println!(
        "| keys | threads | governor ns | tidegate monotonic ns | ratio | tidegate coarse ns | ratio | spread g/m/c | waited |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for &keys in &o.keys {
        for &threads in &o.threads {
            let r = run_config(keys, threads, &o);
            println!(
                "| {} | {} | {:.1} | {:.1} | {:.2}x | {:.1} | {:.2}x | {:.0}%/{:.0}%/{:.0}% | {:.0}% |",
                r.keys,
                r.threads,
                r.ns[0],
                r.ns[1],
                r.ratio[0],
                r.ns[2],
                r.ratio[1],
                r.spread[0] * 100.0,
                r.spread[1] * 100.0,
                r.spread[2] * 100.0,
                r.waited * 100.0,
            );
        }
    }
    println!();
    println!(
        "(spread = (max - min) / median over rounds; waited = share of the bench threads' \
         time spent runnable but not running, i.e. taken by other processes)"
    );
    println!(
        "state per key: tidegate size_of::<(u64, GcraState)>() = {} B; governor size_of::<(u64, InMemoryState)>() = {} B",
        size_of::<(u64, GcraState)>(),
        size_of::<(u64, governor::state::InMemoryState)>()
    );
    let lag_window = if args.is_empty() {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(1)
    };
    let (lag50, lag99, lag_max) = coarse_lag(lag_window);
    println!(
        "clock reading: MonotonicClock {:.1} ns, CoarseClock {:.1} ns; CoarseClock behind \
         MonotonicClock over {lag_window:?}: median {lag50} µs, p99 {lag99} µs, max {lag_max} µs",
        clock_read_ns(&MonotonicClock),
        clock_read_ns(&CoarseClock)
    );
    if o.rss {
        let n = 1_000_000;
        let (mut g, mut t, mut tt) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            let find = |v: &[(String, f64)], name: &str| {
                v.iter().find(|(k, _)| k == name).map(|(_, x)| *x)
            };
            let gv = rss_in_child("governor", n);
            let tv = rss_in_child("tidegate", n);
            g.extend(find(&gv, "rss_per_key"));
            t.extend(find(&tv, "rss_per_key"));
            tt.extend(find(&tv, "table_per_key"));
        }
        let show = |v: &mut Vec<f64>| {
            if v.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.1} B", median(v))
            }
        };
        println!(
            "resident memory per key, {n} keys, fresh process each, median of {}: governor {}, \
             tidegate {} (its tables: {} allocated)",
            g.len(),
            show(&mut g),
            show(&mut t),
            show(&mut tt)
        );
    }
}
