//! What one `TopKeys::record` costs, in ns: keys it holds (a skewed stream over fewer
//! keys than its capacity) and keys it does not (a uniform stream over ten times its
//! capacity: every record displaces a key, its worst case); then the displacing stream
//! from two threads through one `std::sync::Mutex`, as `tidegate serve` records a
//! policy's decisions (the time per record, per thread, lock and contention included).
//!
//! `cargo bench -p tidegate-core --bench top_keys` (options after `--`: `--ops N`,
//! default 5_000_000; `--capacity K`, default 1000). Without arguments
//! (`cargo test --benches`) it makes a short smoke run.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use tidegate_core::TopKeys;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let ops = if smoke {
        10_000
    } else {
        arg(&args, "--ops", 5_000_000)
    };
    let capacity = arg(&args, "--capacity", 1000);
    // SplitMix64, fixed seed: the same streams every run.
    let mut x = 0x1234_5678_u64;
    let mut next = move || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let universe = |n: usize| -> Vec<String> { (0..n).map(|i| format!("user-{i}")).collect() };
    let held = universe(capacity / 2);
    let displaced = universe(capacity * 10);
    // Skewed: the square of a uniform draw favours small indices.
    let skewed: Vec<&str> = (0..ops)
        .map(|_| {
            let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
            held[((u * u) * held.len() as f64) as usize].as_str()
        })
        .collect();
    let uniform: Vec<&str> = (0..ops)
        .map(|_| displaced[(next() % displaced.len() as u64) as usize].as_str())
        .collect();
    println!("TopKeys::record, capacity {capacity}, {ops} records per row");
    for (label, stream) in [
        ("keys held (skewed, capacity / 2 keys)", &skewed),
        ("keys displaced (uniform, 10 x capacity keys)", &uniform),
    ] {
        let mut t = TopKeys::new(capacity);
        let start = Instant::now();
        for key in stream.iter() {
            t.record(black_box(key));
        }
        let ns = start.elapsed().as_nanos() as f64 / stream.len() as f64;
        black_box(t.top(10));
        println!("{label}: {ns:.0} ns per record");
    }
    let shared = Mutex::new(TopKeys::new(capacity));
    let halves = uniform.split_at(uniform.len() / 2);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for half in [halves.0, halves.1] {
            let shared = &shared;
            scope.spawn(move || {
                for key in half {
                    shared
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .record(black_box(key));
                }
            });
        }
    });
    let ns = start.elapsed().as_nanos() as f64 / (uniform.len() / 2) as f64;
    println!("keys displaced, 2 threads through one Mutex: {ns:.0} ns per record per thread");
}
