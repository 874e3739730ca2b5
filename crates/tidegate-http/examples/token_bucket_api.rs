//! The per-route token-bucket API of an Express token-bucket limiter: 60 requests per minute
//! per client everywhere, 5 per minute on `/api/expensive`, clients identified by
//! `x-api-key` or else their IP, and admin endpoints to see and reset a client's bucket.
//!
//! Run: `cargo run -p tidegate-http --example token_bucket_api` (127.0.0.1:3000), then
//!
//! ```sh
//! for i in $(seq 1 7); do curl -s -o /dev/null -w '%{http_code} ' localhost:3000/api/expensive; done; echo
//! curl -s -H 'authorization: Bearer admin-secret' localhost:3000/api/admin/stats
//! curl -s -H 'authorization: Bearer admin-secret' localhost:3000/api/admin/bucket/127.0.0.1
//! curl -s -X POST -H 'authorization: Bearer admin-secret' localhost:3000/api/admin/reset/127.0.0.1
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tidegate::{Limiter, Policy};
use tidegate_http::{ArcStore, KeyExtractor, RateLimitLayer};

/// Token for the admin endpoints (`ADMIN_TOKEN`, default `admin-secret`).
fn admin_token() -> String {
    std::env::var("ADMIN_TOKEN").unwrap_or_else(|_| "admin-secret".into())
}

/// `x-api-key` when present, else the peer's IP address.
fn client_key(parts: &Parts) -> Option<String> {
    if let Some(key) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(format!("key:{key}"));
    }
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    Some(peer.0.ip().to_string())
}

#[derive(Clone)]
struct Limits {
    global: Arc<Limiter<Policy>>,
    expensive: Arc<Limiter<Policy>>,
}

fn authorized(headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", admin_token());
    headers
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

fn forbidden() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "Unauthorized" })),
    )
        .into_response()
}

async fn stats(State(l): State<Limits>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return forbidden();
    }
    Json(json!({ "global": l.global.stats(), "expensive": l.expensive.stats() })).into_response()
}

async fn bucket(
    State(l): State<Limits>,
    Path(client): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return forbidden();
    }
    let peek = |limiter: &Limiter<Policy>| {
        limiter.peek(client.as_str(), 1).map(|d| {
            json!({ "remaining_after_next": d.remaining, "limit": d.limit, "full_in_ms": d.reset_after().as_millis() as u64 })
        })
    };
    match (peek(&l.global), peek(&l.expensive)) {
        (Ok(g), Ok(e)) => {
            Json(json!({ "client": client, "global": g, "expensive": e })).into_response()
        }
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": "cannot read the bucket" })),
        )
            .into_response(),
    }
}

async fn reset(
    State(l): State<Limits>,
    Path(client): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return forbidden();
    }
    let was_tracked = l.global.reset(client.as_str()) | l.expensive.reset(client.as_str());
    Json(json!({ "client": client, "reset": was_tracked })).into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let global_policy: Policy = "token_bucket:60/1m".parse()?;
    let expensive_policy: Policy = "token_bucket:5/1m".parse()?;
    let limits = Limits {
        global: Arc::new(Limiter::new(global_policy)),
        expensive: Arc::new(Limiter::new(expensive_policy)),
    };
    let global = RateLimitLayer::builder(
        "global",
        ArcStore(Arc::clone(&limits.global)),
        global_policy,
    )
    .key(KeyExtractor::custom(client_key))
    .skip(|parts| parts.uri.path().starts_with("/api/admin/"))
    .build();
    let expensive = RateLimitLayer::builder(
        "expensive",
        ArcStore(Arc::clone(&limits.expensive)),
        expensive_policy,
    )
    .key(KeyExtractor::custom(client_key))
    .message("Too many requests to /api/expensive, please slow down")
    .build();

    let app = Router::new()
        .route(
            "/api/expensive",
            get(|| async { "expensive result" }).layer(expensive),
        )
        .route("/api/cheap", get(|| async { "cheap result" }))
        .route("/api/admin/stats", get(stats))
        .route("/api/admin/bucket/{client}", get(bucket))
        .route("/api/admin/reset/{client}", post(reset))
        .layer(global)
        .with_state(limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("API on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
