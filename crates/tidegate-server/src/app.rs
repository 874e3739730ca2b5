//! The HTTP routes of `tidegate serve`. Every answer, errors included, is JSON (except
//! `/metrics`, Prometheus text).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tidegate::tracker::{Details, EventTracker, TrackError, TrackOutcome};
use tidegate::{Clock, Decision, LimitError, SystemClock};
use tidegate_http::headers::{
    RATELIMIT, RATELIMIT_POLICY, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET,
    push_limit_member, retry_after_secs, secs_ceil,
};

use crate::json::{DecisionJson, ms};
use crate::limits::{NamedPolicy, Outcome, Policies};

/// Most keys `GET /admin/keys/{policy}` lists at once.
pub(crate) const MAX_KEY_LISTING: usize = 10_000;

/// Longest `/readyz` waits for Redis to answer `PING`.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Seconds between two log lines about store errors on the decision path.
const STORE_LOG_EVERY_SECS: u64 = 10;

/// Everything the handlers share.
pub(crate) struct App {
    /// The named policies.
    pub(crate) policies: Policies,
    /// The event tracker, if configured.
    pub(crate) tracker: Option<EventTracker>,
    /// The admin token; `None`: no admin routes.
    pub(crate) admin_token: Option<String>,
    /// Longest key, category or id.
    pub(crate) max_key_bytes: usize,
    /// Largest body.
    pub(crate) max_body_bytes: usize,
    /// Send `X-RateLimit-*`.
    pub(crate) legacy_headers: bool,
    /// Prometheus.
    pub(crate) metrics: PrometheusHandle,
    /// Set when shutdown begins: `/readyz` answers 503.
    pub(crate) draining: AtomicBool,
    /// Turns true when shutdown begins (bodies still arriving are given up).
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
    /// Longest wait for a request's body.
    pub(crate) body_timeout: std::time::Duration,
    /// When the server started.
    pub(crate) started: Instant,
    /// Last store-error log line (Unix seconds).
    last_store_log: AtomicU64,
}

impl App {
    /// The shared state.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        policies: Policies,
        tracker: Option<EventTracker>,
        admin_token: Option<String>,
        max_key_bytes: usize,
        max_body_bytes: usize,
        legacy_headers: bool,
        metrics: PrometheusHandle,
        (stop, body_timeout): (tokio::sync::watch::Receiver<bool>, std::time::Duration),
    ) -> Self {
        Self {
            policies,
            tracker,
            admin_token,
            max_key_bytes,
            max_body_bytes,
            legacy_headers,
            metrics,
            draining: AtomicBool::new(false),
            stop,
            body_timeout,
            started: Instant::now(),
            last_store_log: AtomicU64::new(0),
        }
    }
}

pub(crate) type Shared = State<Arc<App>>;

/// The router: public routes, and the admin routes when a token is configured.
pub(crate) fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/v1/check", post(check))
        .route("/v1/events", post(track))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if app.admin_token.is_some() {
        let admin = Router::new()
            .route("/admin/stats", get(admin_stats))
            .route("/admin/top", get(crate::top::admin_top))
            .route("/admin/keys/{policy}", get(admin_list_keys))
            .route(
                "/admin/keys/{policy}/{key}",
                get(admin_peek_key).delete(admin_reset_key),
            )
            .route_layer(middleware::from_fn_with_state(
                Arc::clone(&app),
                require_admin,
            ));
        router = router.merge(admin);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(app.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            crate::body::read_body,
        ))
        .with_state(app)
}

/// `{"error": <reason phrase>, "message": ...}` with `status`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message.into(),
    });
    (status, json_body(&body)).into_response()
}

fn json_body(v: &Value) -> ([(axum::http::HeaderName, HeaderValue); 1], String) {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        v.to_string(),
    )
}

/// An error answer (status and message), rendered as [`error`] JSON.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

pub(crate) type Answer = Result<Response, ApiError>;

pub(crate) fn ok_json(status: StatusCode, v: &Value) -> Response {
    (status, json_body(v)).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The body as `T` (which may borrow from it), or the JSON error response: 413 when too
/// large, 400 otherwise.
fn parse_body<'a, T: Deserialize<'a>>(
    app: &App,
    body: &'a Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, ApiError> {
    let body = body.as_ref().map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than {} bytes",
                    app.max_body_bytes
                ),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {}", r.body_text()),
            )
        }
    })?;
    // Only the object form: serde would also take `["api", "k", 1]` for a struct.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON object: expected {shape}"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {e}; expected {shape}"),
        )
    })
}

/// Checks a key-like field: not empty, at most `max_key_bytes`.
fn check_key(app: &App, field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("`{field}` must not be empty"),
        ));
    }
    if value.len() > app.max_key_bytes {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "`{field}` is {} bytes long; the limit is {} bytes",
                value.len(),
                app.max_key_bytes
            ),
        ));
    }
    Ok(())
}

pub(crate) fn policy<'a>(app: &'a App, name: &str) -> Result<&'a NamedPolicy, ApiError> {
    app.policies.by_name.get(name).ok_or_else(|| {
        let mut known: Vec<&str> = app.policies.by_name.keys().map(String::as_str).collect();
        known.sort_unstable();
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "unknown policy `{name}`; configured: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        )
    })
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest<'a> {
    /// Borrowed from the body unless it holds escapes.
    #[serde(borrow)]
    policy: Cow<'a, str>,
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(default = "one")]
    cost: u64,
}

const CHECK_SHAPE: &str = r#"{"policy": "...", "key": "...", "cost": 1} (cost optional)"#;

/// `POST /v1/check`.
async fn check(State(app): Shared, body: Result<Bytes, BytesRejection>) -> Answer {
    let req: CheckRequest = parse_body(&app, &body, CHECK_SHAPE)?;
    check_key(&app, "key", &req.key)?;
    let p = policy(&app, &req.policy)?;
    let start = Instant::now();
    let result = p.backend.acquire(&req.key, req.cost).await;
    p.latency.record(start.elapsed().as_secs_f64());
    Ok(match result {
        Ok(d) => {
            if let Some(top) = &p.top {
                top.record(&req.key, d.allowed);
            }
            p.count(if d.allowed {
                Outcome::Allowed
            } else {
                Outcome::Denied
            });
            decision_response(&app, p, &d)
        }
        Err(LimitError::Cost(e)) => {
            p.count(Outcome::Error);
            error(StatusCode::BAD_REQUEST, format!("policy `{}`: {e}", p.name))
        }
        Err(LimitError::StoreFull { max_keys }) => {
            p.count(Outcome::Error);
            if let Some(skipped) = p.full_log.ready_with_count() {
                tracing::warn!(
                    policy = %p.name,
                    max_keys,
                    refused_since_last_line = skipped,
                    "the memory store of policy {} is full (store.max_keys {max_keys}): new keys are refused with 503 (store.on_full = reject)",
                    p.name
                );
            }
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "policy `{}`: the memory store holds its maximum of {max_keys} keys and refuses new ones (store.on_full = \"reject\"); retry later",
                    p.name
                ),
            );
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        Err(e) => {
            p.count(Outcome::Error);
            log_store_error(&app, &p.name, &e);
            let mut resp = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the rate limiter store could not decide, please retry later",
            );
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
    })
}

/// 200 or 429 with the decision and the rate-limit headers (as the layer sends them).
fn decision_response(app: &App, p: &NamedPolicy, d: &Decision) -> Response {
    let status = if d.allowed {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    // A typed body: serialised straight into one buffer, with no JSON tree in between.
    let mut body = Vec::with_capacity(128);
    serde_json::to_writer(&mut body, &DecisionJson::from(d))
        .expect("a struct of numbers and booleans always serialises");
    let mut resp = (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response();
    let headers = resp.headers_mut();
    add_rate_headers(app, p, d, headers);
    if !d.allowed {
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from(retry_after_secs(d.retry_after_us.unwrap_or(0))),
        );
    }
    resp
}

fn add_rate_headers(app: &App, p: &NamedPolicy, d: &Decision, headers: &mut HeaderMap) {
    headers.insert(RATELIMIT_POLICY, p.policy_header.clone());
    let mut limit = String::with_capacity(p.name.len() + 16);
    push_limit_member(
        &mut limit,
        &p.name,
        d.remaining,
        secs_ceil(d.reset_after_us),
    );
    if let Ok(v) = HeaderValue::from_str(&limit) {
        headers.insert(RATELIMIT, v);
    }
    if app.legacy_headers {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(d.limit));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
        headers.insert(
            X_RATELIMIT_RESET,
            HeaderValue::from(now + secs_ceil(d.reset_after_us)),
        );
    }
}

fn log_store_error(app: &App, policy: &str, e: &LimitError) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prev = app.last_store_log.load(Ordering::Relaxed);
    if (prev == 0 || now >= prev + STORE_LOG_EVERY_SECS)
        && app
            .last_store_log
            .compare_exchange(prev, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(policy, error = %e, "the rate limiter store could not decide");
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRequest {
    category: String,
    id: String,
    /// Kept as the JSON text it came as (no parsed tree is ever built).
    #[serde(default)]
    details: Option<Box<serde_json::value::RawValue>>,
}

const EVENT_SHAPE: &str =
    r#"{"category": "...", "id": "...", "details": {...}} (details optional)"#;

/// `POST /v1/events`.
async fn track(State(app): Shared, body: Result<Bytes, BytesRejection>) -> Answer {
    let Some(tracker) = &app.tracker else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no event tracker is configured (add a [tracker] section)",
        ));
    };
    let req: EventRequest = parse_body(&app, &body, EVENT_SHAPE)?;
    for (field, value) in [("category", &req.category), ("id", &req.id)] {
        check_key(&app, field, value)?;
    }
    Ok(
        match tracker
            .track_event(
                &req.category,
                &req.id,
                req.details.map_or_else(Details::null, Details::from_raw),
            )
            .await
        {
            Ok(outcome) => {
                let r = outcome.record();
                let mut v = json!({
                    "type": outcome.kind(),
                    "count": r.total,
                    "deferred": r.deferred,
                    "scheduled_at_ms": r.scheduled_at_ms(),
                    "due_in_ms": r.scheduled_at_us.map(|us| ms(us.saturating_sub(SystemClock.now_micros()))),
                });
                if let TrackOutcome::Ignored { reason, .. } = &outcome {
                    v["reason"] = serde_json::to_value(reason).unwrap_or(Value::Null);
                }
                ok_json(StatusCode::OK, &v)
            }
            Err(TrackError::Invalid { field, reason }) => {
                error(StatusCode::BAD_REQUEST, format!("`{field}` {reason}"))
            }
            Err(TrackError::ShutDown) => {
                let mut resp = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is shutting down",
                );
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
            // The store failed (or a failure added later): not tracked, say so.
            Err(e) => {
                tracing::warn!(error = %e, "tracking an event failed");
                let mut resp = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the event was not tracked: {e}"),
                );
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
        },
    )
}

async fn healthz() -> Response {
    ok_json(StatusCode::OK, &json!({"status": "ok"}))
}

async fn readyz(State(app): Shared) -> Response {
    if app.draining.load(Ordering::Relaxed) {
        return ok_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "shutting_down"}),
        );
    }
    match &app.policies.redis {
        None => ok_json(
            StatusCode::OK,
            &json!({"status": "ready", "store": "memory"}),
        ),
        // Within a fixed bound whatever `store.timeout`: probes have their own timeouts.
        Some(store) => match tokio::time::timeout(READY_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => ok_json(
                StatusCode::OK,
                &json!({"status": "ready", "store": "redis"}),
            ),
            Ok(Err(e)) => ok_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable", "store": "redis", "message": e.to_string()}),
            ),
            Err(_) => ok_json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable", "store": "redis", "message": format!("Redis did not answer PING within {READY_TIMEOUT:?}")}),
            ),
        },
    }
}

async fn metrics(State(app): Shared) -> Response {
    app.policies.publish();
    if let Some(t) = &app.tracker {
        let s = t.stats();
        metrics::gauge!("tidegate_tracker_records").set(s.records as f64);
        metrics::gauge!("tidegate_tracker_waiting").set(s.waiting as f64);
        metrics::gauge!("tidegate_tracker_retrying").set(s.retrying as f64);
        for (outcome, n) in [
            ("immediate", s.immediate),
            ("deferred", s.deferred),
            ("ignored", s.ignored),
        ] {
            metrics::counter!("tidegate_tracker_events_total", "outcome" => outcome).absolute(n);
        }
        metrics::counter!("tidegate_tracker_delivered_events_total").absolute(s.processed_events);
        metrics::counter!("tidegate_tracker_failed_rounds_total").absolute(s.failed_rounds);
        metrics::counter!("tidegate_tracker_taken_over_total").absolute(s.taken_over);
        metrics::gauge!("tidegate_tracker_memory_bytes").set(s.memory_bytes as f64);
        metrics::counter!("tidegate_tracker_details_dropped_by_size_total")
            .absolute(s.details_dropped_by_size);
    }
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// Admits requests with `Authorization: Bearer <admin token>` (compared in constant time).
pub(crate) async fn require_admin(State(app): Shared, req: Request, next: Next) -> Response {
    let expected = app.admin_token.as_deref().unwrap_or_default().as_bytes();
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let unauthorized = |message: &str| {
        let mut resp = error(StatusCode::UNAUTHORIZED, message);
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        resp
    };
    match given {
        None => unauthorized("admin routes need `Authorization: Bearer <admin token>`"),
        Some(token) if bool::from(token.as_bytes().ct_eq(expected)) && !expected.is_empty() => {
            next.run(req).await
        }
        Some(_) => unauthorized("invalid admin token"),
    }
}

async fn admin_stats(State(app): Shared) -> Response {
    ok_json(StatusCode::OK, &stats(&app))
}

/// What `GET /admin/stats` answers (and each dashboard snapshot starts from): uptime,
/// the store's counters, each policy's decisions and the tracker's counters.
pub(crate) fn stats(app: &App) -> Value {
    let mut policies = serde_json::Map::new();
    let mut names: Vec<&String> = app.policies.by_name.keys().collect();
    names.sort_unstable();
    for name in names {
        policies.insert(name.clone(), app.policies.by_name[name].stats());
    }
    let store = match &app.policies.redis {
        None => json!({"type": "memory"}),
        Some(s) => {
            let mut v = json!({"type": if s.is_cluster() { "redis_cluster" } else { "redis" }});
            if let (Value::Object(m), Ok(Value::Object(stats))) =
                (&mut v, serde_json::to_value(s.stats()))
            {
                m.extend(stats);
            }
            v
        }
    };
    json!({
        "uptime_s": app.started.elapsed().as_secs(),
        "store": store,
        "policies": policies,
        "tracker": app.tracker.as_ref().map(EventTracker::stats),
    })
}

fn path_error(r: &PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("invalid path: {}", r.body_text()),
    )
}

fn store_error(e: &LimitError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

async fn admin_peek_key(
    State(app): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let Path((name, key)) = path.map_err(|r| path_error(&r))?;
    let p = policy(&app, &name)?;
    let d = p.backend.peek(&key, 1).await.map_err(|e| store_error(&e))?;
    // The peek describes a request of cost 1; `remaining` is what is left now.
    let mut v = json!({
        "policy": name,
        "key": key,
        "limit": d.limit,
        "remaining": if d.allowed { d.remaining + 1 } else { d.remaining },
        "next_allowed": d.allowed,
        "retry_after_ms": d.retry_after_us.map(ms),
        "reset_after_ms": ms(d.reset_after_us),
    });
    if let Some(tracked) = p.backend.tracked(&key) {
        v["tracked"] = json!(tracked);
    }
    Ok(ok_json(StatusCode::OK, &v))
}

async fn admin_reset_key(
    State(app): Shared,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let Path((name, key)) = path.map_err(|r| path_error(&r))?;
    let p = policy(&app, &name)?;
    let existed = p.backend.reset(&key).await.map_err(|e| store_error(&e))?;
    if let Some(top) = &p.top {
        top.forget_denied(&key);
    }
    tracing::info!(policy = %name, key = %key, existed, "admin: key reset");
    Ok(ok_json(
        StatusCode::OK,
        &json!({"policy": name, "key": key, "reset": existed}),
    ))
}

async fn admin_list_keys(
    State(app): Shared,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Answer {
    let Path(name) = path.map_err(|r| path_error(&r))?;
    let p = policy(&app, &name)?;
    let mut limit = 100;
    for pair in query.as_deref().unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("limit=") {
            match v.parse::<usize>() {
                Ok(n) if (1..=MAX_KEY_LISTING).contains(&n) => limit = n,
                _ => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("`limit` must be a number from 1 to {MAX_KEY_LISTING}, got `{v}`"),
                    ));
                }
            }
        }
    }
    let (keys, more) = p.backend.keys(limit).await.map_err(|e| store_error(&e))?;
    Ok(ok_json(
        StatusCode::OK,
        &json!({"policy": name, "keys": keys, "truncated": more}),
    ))
}
