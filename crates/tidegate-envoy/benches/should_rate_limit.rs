//! ShouldRateLimit calls per second over loopback HTTP/2: 64 calls in flight on one
//! connection, one and three descriptors per call, memory backend.
//!
//! `cargo bench -p tidegate-envoy --bench should_rate_limit` (add `-- SECONDS` to change
//! the 3 s measured per case).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use tidegate_envoy::{Config, RateLimiter};

const CONCURRENCY: usize = 64;
const KEYS: u64 = 10_000;

const CONFIG: &str = r#"
domain: bench
descriptors:
  - key: client
    rate_limit: { unit: second, requests_per_unit: 1000000 }
  - key: path
    value: /api/*
    rate_limit: { unit: minute, requests_per_unit: 1000000 }
  - key: tenant
    descriptors:
      - key: user
        policy: "gcra:1000000/1s"
"#;

fn descriptor(entries: &[(&str, String)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.clone(),
            })
            .collect(),
        ..RateLimitDescriptor::default()
    }
}

fn request(n: u64, three: bool) -> RateLimitRequest {
    let key = n % KEYS;
    let mut descriptors = vec![descriptor(&[("client", format!("c{key}"))])];
    if three {
        descriptors.push(descriptor(&[("path", format!("/api/{}", key % 100))]));
        descriptors.push(descriptor(&[
            ("tenant", format!("t{}", key % 10)),
            ("user", format!("u{key}")),
        ]));
    }
    RateLimitRequest {
        domain: "bench".into(),
        descriptors,
        hits_addend: 0,
    }
}

async fn run(addr: std::net::SocketAddr, three: bool, seconds: f64) -> f64 {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY as u64 {
        let mut client = RateLimitServiceClient::new(channel.clone());
        let (done, calls) = (Arc::clone(&done), Arc::clone(&calls));
        tasks.push(tokio::spawn(async move {
            let mut n = t * 7919;
            while !done.load(Ordering::Relaxed) {
                client.should_rate_limit(request(n, three)).await.unwrap();
                calls.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_calls = calls.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let n = calls.load(Ordering::Relaxed) - start_calls;
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / elapsed
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let limiter =
            RateLimiter::builder(Config::from_yaml("bench.yaml", CONFIG).unwrap()).build().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = limiter.grpc_service();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        for (name, three) in [("1 descriptor", false), ("3 descriptors", true)] {
            let rate = run(addr, three, seconds).await;
            println!(
                "ShouldRateLimit, memory, {name}, {CONCURRENCY} in flight over one HTTP/2 connection: {rate:.0} calls/s"
            );
        }
    });
}
