//! The flash-sale app: login limited per IP before validation, purchases limited per
//! authenticated user, the order auth → limiter → validation → handler, and a waiting
//! room that lets a bounded, steady flow reach the purchase handler.
//!
//! Run: `cargo run -p tidegate-http --example flash_sale` (listens on 127.0.0.1:3000), then
//!
//! Bodies are JSON sent with `Content-Type: application/json`; without that header the
//! answer is `415` saying so (validation errors are `400`).
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
use axum::extract::rejection::JsonRejection;
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
async fn login(body: Result<Json<Login>, JsonRejection>) -> Response {
    match body {
        Ok(Json(l)) if !l.user.is_empty() && !l.password.is_empty() => {
            Json(json!({ "token": format!("token-{}", l.user) })).into_response()
        }
        Err(JsonRejection::MissingJsonContentType(_)) => not_json(),
        _ => bad_request("expected {\"user\": \"...\", \"password\": \"...\"}"),
    }
}

async fn pay_ticket(body: Result<Json<Purchase>, JsonRejection>) -> Response {
    match body {
        Ok(Json(p)) if (1..=4).contains(&p.quantity) && !p.ticket_id.is_empty() => {
            Json(json!({ "status": "paid", "ticket_id": p.ticket_id, "quantity": p.quantity }))
                .into_response()
        }
        Err(JsonRejection::MissingJsonContentType(_)) => not_json(),
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

/// A body sent without `Content-Type: application/json` (curl's `-d` alone sends
/// `application/x-www-form-urlencoded`), whatever it holds.
fn not_json() -> Response {
    (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Json(json!({
            "error": "Unsupported Media Type",
            "message": "send the body as JSON with the header `Content-Type: application/json`",
        })),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves the app on a free loopback port; returns its base URL.
    async fn serve() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = app().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        format!("http://{addr}")
    }

    async fn post(url: &str, content_type: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut request = client.post(url).header("authorization", "Bearer token-ana");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.body(body.to_owned()).send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_str(&response.text().await.unwrap()).unwrap(),
        )
    }

    #[tokio::test]
    async fn valid_json_without_its_content_type_gets_415_saying_which_header() {
        let base = serve().await;
        let login = r#"{"user":"ana","password":"pw"}"#;
        let purchase = r#"{"ticket_id":"A1","quantity":1}"#;
        for (path, body) in [("/auth/login", login), ("/ticket/pay-ticket", purchase)] {
            for content_type in [None, Some("application/x-www-form-urlencoded")] {
                let (status, answer) = post(&format!("{base}{path}"), content_type, body).await;
                assert_eq!(status, 415, "{path} {content_type:?}: {answer}");
                assert_eq!(
                    answer,
                    json!({
                        "error": "Unsupported Media Type",
                        "message": "send the body as JSON with the header `Content-Type: application/json`",
                    })
                );
            }
        }
    }

    #[tokio::test]
    async fn json_with_its_content_type_is_served_and_invalid_json_gets_400() {
        let base = serve().await;
        let json_type = Some("application/json");
        let (status, answer) = post(
            &format!("{base}/auth/login"),
            json_type,
            r#"{"user":"ana","password":"pw"}"#,
        )
        .await;
        assert_eq!((status, answer), (200, json!({"token": "token-ana"})));
        let (status, answer) = post(
            &format!("{base}/ticket/pay-ticket"),
            json_type,
            r#"{"ticket_id":"A1","quantity":9}"#,
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            answer["message"],
            "expected {\"ticket_id\": \"...\", \"quantity\": 1..4}"
        );
        let (status, _) = post(&format!("{base}/auth/login"), json_type, "{not json").await;
        assert_eq!(status, 400);
    }
}
