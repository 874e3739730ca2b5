//! The flash-sale app: login limited per IP before validation, purchases limited per
//! authenticated user, the order auth → limiter → validation → handler, and a waiting
//! room that lets a bounded, steady flow reach the purchase handler.
//!
//! Run: `cargo run -p tidegate-http --example flash_sale` (listens on 127.0.0.1:3000), then
//!
//! ```sh
//! for i in $(seq 1 7); do curl -s -X POST localhost:3000/auth/login \
//!   -H 'content-type: application/json' -d '{"user":"ana","password":"pw"}'; echo; done
//! TOKEN=token-ana
//! for i in $(seq 1 5); do curl -s -X POST localhost:3000/ticket/pay-ticket \
//!   -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
//!   -d '{"ticket_id":"A1","quantity":1}'; echo; done
//! ```

use std::net::SocketAddr;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tidegate::{Limiter, Policy, PolicySet};
use tidegate_http::{KeyExtractor, RateLimitLayer, Subject};

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

#[derive(Deserialize)]
struct Purchase {
    ticket_id: String,
    quantity: u32,
}

/// Validation happens after the limiter: a flood of malformed requests is limited too.
async fn login(body: Result<Json<Login>, axum::extract::rejection::JsonRejection>) -> Response {
    match body {
        Ok(Json(l)) if !l.user.is_empty() && !l.password.is_empty() => {
            Json(json!({ "token": format!("token-{}", l.user) })).into_response()
        }
        _ => bad_request("expected {\"user\": \"...\", \"password\": \"...\"}"),
    }
}

async fn pay_ticket(
    body: Result<Json<Purchase>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(p)) if (1..=4).contains(&p.quantity) && !p.ticket_id.is_empty() => {
            Json(json!({ "status": "paid", "ticket_id": p.ticket_id, "quantity": p.quantity }))
                .into_response()
        }
        _ => bad_request("expected {\"ticket_id\": \"...\", \"quantity\": 1..4}"),
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "Bad Request", "message": message })),
    )
        .into_response()
}

/// Authentication first: `Authorization: Bearer token-<user>` becomes the request's
/// subject, which the purchase limiter keys on.
async fn require_auth(mut request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer token-"))
        .map(str::to_owned);
    match user {
        Some(user) if !user.is_empty() => {
            request.extensions_mut().insert(Subject(user));
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "Unauthorized", "message": "log in first" })),
        )
            .into_response(),
    }
}

fn limiter(spec: &str) -> Result<Limiter<PolicySet>, tidegate::PolicyError> {
    Ok(Limiter::new(spec.parse::<PolicySet>()?))
}

/// The routes with their limiters.
fn app() -> Result<Router, Box<dyn std::error::Error>> {
    // Brute force: 5 login attempts per IP per minute, before any validation.
    let login_policy: Policy = "fixed_window:5/1m".parse()?;
    let login_limit = RateLimitLayer::builder("login", limiter("fixed_window:5/1m")?, login_policy)
        .message("Too many login attempts, try again later")
        .build();

    // Hoarding: each user may attempt 3 purchases per minute.
    let purchase_policy: Policy = "fixed_window:3/1m".parse()?;
    let purchase_limit =
        RateLimitLayer::builder("purchase", limiter("fixed_window:3/1m")?, purchase_policy)
            .key(KeyExtractor::subject())
            .message("You have reached the purchase limit for this minute")
            .build();

    // The waiting room: at most 20 purchases per second reach the handler, evenly spaced;
    // up to 100 wait their turn (the layer holds each for its `delay`), the rest are told
    // the room is full. One shared key: it is a valve for the whole sale.
    let valve_policy: Policy = "leaky_bucket:20/1s,burst=100".parse()?;
    let valve = RateLimitLayer::builder(
        "waiting_room",
        limiter("leaky_bucket:20/1s,burst=100")?,
        valve_policy,
    )
    .key(KeyExtractor::custom(|_| Some("sale".to_owned())))
    .message("The waiting room is full; please retry shortly")
    .build();

    let auth = Router::new()
        .route("/auth/login", post(login))
        .layer(login_limit);
    // Layers run outside-in: auth → purchase limiter → waiting room → validation + handler.
    let ticket = Router::new()
        .route("/ticket/pay-ticket", post(pay_ticket))
        .layer(valve)
        .layer(purchase_limit)
        .layer(middleware::from_fn(require_auth));
    Ok(auth.merge(ticket))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = app()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("flash sale on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
