//! A load generator for `scripts/bench-envoy`: calls per second that a running
//! `tidegate serve` answers, 64 calls in flight, for `DURATION` seconds after 0.5 s of
//! warm-up, and the median and 99th percentile of the calls' latencies in that time;
//! 10 000 distinct clients.
//!
//! ```text
//! envoy_load grpc ADDR DESCRIPTORS SECONDS   # ShouldRateLimit, one HTTP/2 connection, domain `bench`
//! envoy_load tonic ADDR DESCRIPTORS SECONDS  # the same calls through tonic's generated client
//! envoy_load check ADDR SECONDS              # POST /v1/check (policy `bench`), 64 HTTP/1.1 connections
//!                                            # (200 or 429 both count as answered)
//! ```
//!
//! `grpc` sends each call as Envoy's own gRPC client does: the request message encoded
//! once (per client), an HTTP/2 stream with its headers and one data frame, the answer
//! read from the stream with its `grpc-status` trailer; every answer must be `grpc-status`
//! 0 with `overall_code` OK. `tonic` builds, encodes and decodes every message through
//! tonic's client stack (a channel to the connection's task, codecs, `Status`), which
//! costs the machine about as much per call as the server does.
//!
//! gRPC calls run on one thread, `/v1/check` calls on two.
//! It prints the calls answered in all, warm-up included, on stderr (to divide a
//! profile of the server by).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const CONCURRENCY: u64 = 64;
const KEYS: u64 = 10_000;

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

/// Call `n`: one descriptor (`client`), or three (`client`, `path`, `tenant`+`user`).
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

/// What an HTTP/2 caller needs: the connection, the method's URI, and each client's
/// request message in gRPC framing (a zero flag byte, the length, the message).
#[derive(Clone)]
struct H2Caller {
    send: h2::client::SendRequest<Bytes>,
    uri: http::Uri,
    bodies: Arc<Vec<Bytes>>,
}

/// Every client's request, encoded and framed once.
fn framed_requests(three: bool) -> Vec<Bytes> {
    (0..KEYS)
        .map(|n| {
            let message = request(n, three).encode_to_vec();
            let mut framed = BytesMut::with_capacity(5 + message.len());
            framed.put_u8(0);
            framed.put_u32(u32::try_from(message.len()).expect("a small message"));
            framed.put_slice(&message);
            framed.freeze()
        })
        .collect()
}

/// The `grpc-status` of an answer: in its trailers, or in its headers when it has no
/// message (a trailers-only answer).
fn grpc_status(headers: Option<&http::HeaderMap>) -> Option<&str> {
    headers?.get("grpc-status")?.to_str().ok()
}

/// One `ShouldRateLimit` over a stream of the HTTP/2 connection; panics unless it is
/// answered `grpc-status` 0 with `overall_code` OK.
async fn h2_call(mut caller: H2Caller, n: u64) -> H2Caller {
    caller.send = caller.send.ready().await.expect("HTTP/2 connection");
    let request = http::Request::post(caller.uri.clone())
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(())
        .unwrap();
    let (response, mut stream) = caller.send.send_request(request, false).expect("a stream");
    stream
        .send_data(caller.bodies[(n % KEYS) as usize].clone(), true)
        .expect("the request message");
    let response = response.await.expect("ShouldRateLimit answers");
    assert_eq!(response.status(), 200, "ShouldRateLimit: HTTP status");
    let (head, mut body) = response.into_parts();
    let mut message = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the answer's message");
        let _ = body.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("the answer's trailers");
    let status = grpc_status(trailers.as_ref()).or(grpc_status(Some(&head.headers)));
    assert_eq!(
        status,
        Some("0"),
        "ShouldRateLimit: grpc-status ({head:?}, {trailers:?})"
    );
    let answer = RateLimitResponse::decode(message.get(5..).expect("a framed message"))
        .expect("a RateLimitResponse");
    assert_eq!(
        answer.overall_code,
        Code::Ok as i32,
        "every call is within its limits"
    );
    caller
}

/// One `POST /v1/check` on a kept-alive connection; its status.
async fn check(stream: &mut BufReader<tokio::net::TcpStream>, n: u64) -> std::io::Result<u16> {
    let body = format!(r#"{{"policy":"bench","key":"k{}"}}"#, n % KEYS);
    let head = format!(
        "POST /v1/check HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .get_mut()
        .write_all(format!("{head}{body}").as_bytes())
        .await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0;
    loop {
        line.clear();
        stream.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    Ok(status)
}

/// What the callers share: calls made, whether the measured time has begun, whether it
/// is over.
#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    measuring: AtomicBool,
    done: AtomicBool,
}

/// Counts the callers' calls for `seconds` after a warm-up (from which on `measuring` is
/// set, so that the callers note their latencies); calls per second.
async fn measure(counters: &Counters, seconds: f64) -> f64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    counters.measuring.store(true, Ordering::Relaxed);
    let before = counters.calls.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let n = counters.calls.load(Ordering::Relaxed) - before;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    counters.done.store(true, Ordering::Relaxed);
    rate
}

/// Caller `t`: makes one call after another with its connection `conn` (handed to `call`
/// and back) until the measurement is done; the latencies of the measured calls.
fn caller<C, F, Fut>(
    counters: &Arc<Counters>,
    t: u64,
    mut conn: C,
    call: F,
) -> tokio::task::JoinHandle<Vec<Duration>>
where
    C: Send + 'static,
    F: Fn(C, u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = C> + Send,
{
    let counters = Arc::clone(counters);
    tokio::spawn(async move {
        let (mut n, mut latencies) = (t * 7919, Vec::new());
        while !counters.done.load(Ordering::Relaxed) {
            let start = Instant::now();
            conn = call(conn, n).await;
            if counters.measuring.load(Ordering::Relaxed) {
                latencies.push(start.elapsed());
            }
            counters.calls.fetch_add(1, Ordering::Relaxed);
            n += 1;
        }
        latencies
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: envoy_load grpc|tonic ADDR DESCRIPTORS SECONDS | envoy_load check ADDR SECONDS";
    // gRPC: every call goes through the one HTTP/2 connection's task, so the callers run
    // on that task's thread (a second thread would only hand each call over between
    // threads, and take the server's second vCPU). HTTP/1.1: 64 connections, 2 threads.
    let runtime = if matches!(args.first().map(String::as_str), Some("grpc" | "tonic")) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .unwrap();
    let counters = Arc::new(Counters::default());
    let (rate, mut latencies) = runtime.block_on(async {
        let mut tasks = Vec::new();
        let seconds: f64;
        match args.first().map(String::as_str) {
            Some("grpc") if args.len() == 4 => {
                seconds = args[3].parse().expect(usage);
                let tcp = tokio::net::TcpStream::connect(&args[1])
                    .await
                    .expect("connect");
                tcp.set_nodelay(true).unwrap();
                let (send, connection) = h2::client::handshake(tcp).await.expect("HTTP/2");
                tokio::spawn(async move { connection.await.expect("HTTP/2 connection") });
                let caller_state = H2Caller {
                    send,
                    uri: format!(
                        "http://{}/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
                        args[1]
                    )
                    .parse()
                    .expect(usage),
                    bodies: Arc::new(framed_requests(args[2] == "3")),
                };
                for t in 0..CONCURRENCY {
                    tasks.push(caller(&counters, t, caller_state.clone(), h2_call));
                }
            }
            Some("tonic") if args.len() == 4 => {
                let three = args[2] == "3";
                seconds = args[3].parse().expect(usage);
                let channel = tonic::transport::Channel::from_shared(format!("http://{}", args[1]))
                    .unwrap()
                    .connect()
                    .await
                    .expect("gRPC connect");
                for t in 0..CONCURRENCY {
                    let client = RateLimitServiceClient::new(channel.clone());
                    tasks.push(caller(
                        &counters,
                        t,
                        client,
                        move |mut client, n| async move {
                            client
                                .should_rate_limit(request(n, three))
                                .await
                                .expect("ShouldRateLimit");
                            client
                        },
                    ));
                }
            }
            Some("check") if args.len() == 3 => {
                seconds = args[2].parse().expect(usage);
                for t in 0..CONCURRENCY {
                    let stream = tokio::net::TcpStream::connect(&args[1])
                        .await
                        .expect("connect");
                    stream.set_nodelay(true).unwrap();
                    let stream = BufReader::new(stream);
                    tasks.push(caller(&counters, t, stream, |mut stream, n| async move {
                        let status = check(&mut stream, n).await.expect("POST /v1/check");
                        assert!(
                            status == 200 || status == 429,
                            "POST /v1/check answered {status}"
                        );
                        stream
                    }));
                }
            }
            _ => panic!("{usage}"),
        }
        let rate = measure(&counters, seconds).await;
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        (rate, latencies)
    });
    latencies.sort_unstable();
    let ms = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!("{rate:.0} (p50 {:.2} ms, p99 {:.2} ms)", ms(0.5), ms(0.99));
    // Warm-up included: to divide a profile's totals of the server by.
    eprintln!(
        "{} calls answered in all",
        counters.calls.load(Ordering::Relaxed)
    );
}
