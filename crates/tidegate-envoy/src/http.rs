//! The HTTP front end, as an axum `Router` to merge into a server: `POST /json` (the
//! request and response in proto3 JSON; 200 when OK, 429 when over the limit, 400 for a
//! bad request) and `GET /healthcheck` (200 `OK`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;

use crate::error::RequestError;
use crate::json;
use crate::service::RateLimiter;

impl RateLimiter {
    /// `POST /json` and `GET /healthcheck`, to merge into an axum server.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/json", post(json_handler))
            .route("/healthcheck", get(|| async { "OK" }))
            .with_state(self.clone())
    }
}

async fn json_handler(State(limiter): State<RateLimiter>, body: Bytes) -> Response {
    let request = match json::parse_request(&body) {
        Ok(r) => r,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("invalid request: {e}\n")).into_response();
        }
    };
    match limiter.should_rate_limit(&request).await {
        Ok(response) => {
            let status = if response.overall_code == Code::OverLimit as i32 {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::OK
            };
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                json::write_response(&response),
            )
                .into_response()
        }
        Err(e @ RequestError::Invalid(_)) | Err(e @ RequestError::Override(_)) => {
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
