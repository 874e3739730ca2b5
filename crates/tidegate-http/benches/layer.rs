//! HTTP overhead of the rate-limit layer: `wrk` against the same trivial endpoint served
//! without the layer, with the layer on the memory store, and with the layer on a local
//! redis-server, in one run; prints req/s, p50/p99 latency and the ratio to "no layer".
//!
//! Run: `cargo bench -p tidegate-http --bench layer -- --full` (needs `wrk`, Debian
//! package `wrk`; `TIDEGATE_BENCH_SECS` sets the seconds per measurement, default 5).
//! `-- --serve` starts the endpoints, prints their addresses and serves until killed
//! (to load them by hand, or to profile the process with callgrind or perf).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use redis_test_server::RedisServer;
use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate::{Limiter, Policy, PolicySet};
use tidegate_http::{KeyExtractor, RateLimitLayer};

struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

/// `wrk --latency` on `url`; requests/s and p50/p99 in µs.
fn wrk(url: &str, secs: u64) -> Run {
    let out = Command::new("wrk")
        .args([
            "-t",
            "1",
            "-c",
            "32",
            "-d",
            &format!("{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("wrk (Debian package wrk) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |label: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` in wrk output:\n{text}"));
        let value = line.trim_start()[label.len()..]
            .split_whitespace()
            .next()
            .unwrap();
        parse(value)
    };
    Run {
        rps: field("Requests/sec:"),
        p50_us: field("50%"),
        p99_us: field("99%"),
    }
}

/// `123.45us`, `1.20ms`, `2s`, or a plain number.
fn parse(v: &str) -> f64 {
    for (suffix, scale) in [("us", 1.0), ("ms", 1_000.0), ("s", 1_000_000.0)] {
        if let Some(n) = v.strip_suffix(suffix) {
            return n.parse::<f64>().unwrap() * scale;
        }
    }
    v.parse().unwrap()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

fn main() {
    let secs = std::env::var("TIDEGATE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5u64);
    let serve_only = std::env::args().any(|a| a == "--serve");
    if !serve_only && (std::env::args().len() <= 1 || std::env::args().any(|a| a == "--test")) {
        println!(
            "layer bench: pass --full to run it (it needs wrk and takes ~{}s)",
            3 * secs
        );
        return;
    }
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Every request is admitted: the measured cost is the full decision and headers.
    let policy: Policy = "token_bucket:1000000000/1s".parse().unwrap();
    let (plain, memory, shared) = rt.block_on(async {
        let hello = || Router::new().route("/", get(|| async { "ok" }));
        let plain = serve(hello()).await;
        let memory_layer =
            RateLimitLayer::builder("api", Limiter::new(PolicySet::from(policy)), policy)
                .key(KeyExtractor::peer_ip())
                .build();
        let memory = serve(hello().layer(memory_layer)).await;
        let store = RedisStore::connect(&[redis.url()], RedisOptions::default())
            .await
            .unwrap();
        let limiter = store
            .limiter("bench", PolicySet::from(policy))
            .build()
            .unwrap();
        let redis_layer = RateLimitLayer::builder("api", limiter, policy)
            .key(KeyExtractor::peer_ip())
            .build();
        let shared = serve(hello().layer(redis_layer)).await;
        (plain, memory, shared)
    });
    std::thread::sleep(Duration::from_millis(200));
    if serve_only {
        println!("no layer: http://{plain}/");
        println!("layer, memory store: http://{memory}/");
        println!("layer, Redis store: http://{shared}/");
        loop {
            std::thread::park();
        }
    }
    let base = wrk(&format!("http://{plain}/"), secs);
    println!(
        "wrk -t1 -c32 -d{secs}s, axum on 1 tokio worker, 2 vCPUs shared with wrk and redis-server"
    );
    println!("| endpoint | req/s | ratio | p50 | p99 | p99 added |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, r: &Run| {
        println!(
            "| {name} | {:.0} | {:.3} | {:.0} µs | {:.0} µs | {:+.0} µs |",
            r.rps,
            r.rps / base.rps,
            r.p50_us,
            r.p99_us,
            r.p99_us - base.p99_us
        );
    };
    row("no layer", &base);
    row(
        "layer, memory store",
        &wrk(&format!("http://{memory}/"), secs),
    );
    row(
        "layer, Redis store",
        &wrk(&format!("http://{shared}/"), secs),
    );
}
