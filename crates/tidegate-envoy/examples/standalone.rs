//! A standalone rate limit service for Envoy: gRPC on one port, `POST /json` and
//! `GET /healthcheck` on another, the configuration reloaded on SIGHUP.
//!
//! ```text
//! cargo run -p tidegate-envoy --example standalone -- CONFIG [GRPC_ADDR] [HTTP_ADDR] [REDIS_URL]
//! cargo run -p tidegate-envoy --example standalone -- config/ 127.0.0.1:8081 127.0.0.1:8080
//! ```
//!
//! Without `REDIS_URL` the counters are in memory.

use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate_envoy::{Backend, RateLimiter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = args
        .next()
        .ok_or("usage: standalone CONFIG [GRPC_ADDR] [HTTP_ADDR] [REDIS_URL]")?;
    let grpc_addr = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let http_addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let backend = match args.next() {
        Some(url) => Backend::redis(RedisStore::open(&[url], RedisOptions::default()).await?),
        None => Backend::memory(),
    };
    let limiter = RateLimiter::from_path(&config, backend)?;
    eprintln!(
        "domains {:?}: gRPC on {grpc_addr}, HTTP on {http_addr}",
        limiter.domains()
    );

    let reloader = limiter.clone();
    tokio::spawn(async move {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("SIGHUP handler");
        while hup.recv().await.is_some() {
            match reloader.reload() {
                Ok(()) => eprintln!("reloaded: domains {:?}", reloader.domains()),
                Err(e) => eprintln!("reload failed, the previous configuration stays: {e}"),
            }
        }
    });

    let http = tokio::net::TcpListener::bind(&http_addr).await?;
    let router = limiter.router();
    tokio::spawn(async move { axum::serve(http, router).await });
    tonic::transport::Server::builder()
        .add_service(limiter.grpc_service())
        .serve(grpc_addr.parse()?)
        .await?;
    Ok(())
}
