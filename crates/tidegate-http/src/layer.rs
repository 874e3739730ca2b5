//! The tower [`Layer`] and its [`Service`]: decide per request, answer 429 or pass the
//! request on, and add the rate-limit headers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use serde::Serialize;
use tidegate::store::LimitStore;
use tidegate::{Decision, LimitError, Policy};
use tower::{Layer, Service};

use crate::headers::{
    HeaderText, LimitMember, RATELIMIT, RATELIMIT_POLICY, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING,
    X_RATELIMIT_RESET, duration_secs_ceil, header_value, push_policy_member, retry_after_secs,
    secs_ceil,
};
use crate::key::{Key, KeyExtractor, MissingKey};

/// The default message of a denied request's JSON body.
pub const DEFAULT_MESSAGE: &str = "Too many requests, please try again later.";

/// Longest key accepted by default (bytes); longer keys count as missing.
pub const DEFAULT_MAX_KEY_LEN: usize = 256;

/// Seconds between two log lines about the same kind of error, per layer.
const LOG_EVERY_SECS: u64 = 60;

/// What a policy advertises in `RateLimit-Policy`: its limit (`q`) and window (`w`,
/// whole seconds rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests (cost units) per window.
    pub limit: u64,
    /// The window.
    pub window: Duration,
}

impl Quota {
    /// `limit` per `window`.
    pub fn new(limit: u64, window: Duration) -> Self {
        Self { limit, window }
    }
}

impl From<&Policy> for Quota {
    fn from(policy: &Policy) -> Self {
        Self::new(policy.limit(), policy.window())
    }
}

impl From<Policy> for Quota {
    fn from(policy: Policy) -> Self {
        Self::from(&policy)
    }
}

/// A [`LimitStore`] shared through an [`Arc`], for stores that are not `Clone` (such as
/// the Redis limiter) used by several layers.
#[derive(Debug)]
pub struct ArcStore<T>(pub Arc<T>);

impl<T> Clone for ArcStore<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: LimitStore> LimitStore for ArcStore<T> {
    fn acquire(
        &self,
        key: &str,
        cost: u64,
        at: Option<u64>,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        self.0.acquire(key, cost, at)
    }

    fn peek(
        &self,
        key: &str,
        cost: u64,
        at: Option<u64>,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send {
        self.0.peek(key, cost, at)
    }

    fn reset(&self, key: &str) -> impl Future<Output = Result<bool, LimitError>> + Send {
        self.0.reset(key)
    }
}

/// A denied request, handed to a custom deny handler.
#[derive(Debug)]
pub struct Denied<'a> {
    /// The denying policy's decision (`allowed == false`).
    pub decision: Decision,
    /// The denying policy's name.
    pub policy: &'a str,
    /// The request's key.
    pub key: &'a str,
    /// The configured message.
    pub message: &'a str,
    /// The request head.
    pub parts: &'a Parts,
}

#[derive(Serialize)]
struct DenyBody<'a> {
    error: &'static str,
    message: &'a str,
    retry_after: u64,
    limit: u64,
    remaining: u64,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl Denied<'_> {
    /// `Retry-After` seconds: the wait rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.decision.retry_after_us.unwrap_or(0))
    }

    /// The default JSON body:
    /// `{"error":"Too Many Requests","message":...,"retry_after":s,"limit":n,"remaining":0}`.
    pub fn json_body(&self) -> String {
        serde_json::to_string(&DenyBody {
            error: "Too Many Requests",
            message: self.message,
            retry_after: self.retry_after_secs(),
            limit: self.decision.limit,
            remaining: self.decision.remaining,
        })
        .unwrap_or_default()
    }

    /// The default response: `429`, `Retry-After` and [`json_body`](Self::json_body).
    pub fn default_response(&self) -> Response<Body> {
        let mut resp = json_response(StatusCode::TOO_MANY_REQUESTS, self.json_body());
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(self.retry_after_secs()));
        resp
    }
}

/// A JSON response with `status` and `body`.
fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `{"error":...,"message":...}` with `status`.
fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::to_string(&ErrorBody {
        error: status.canonical_reason().unwrap_or("Error"),
        message,
    })
    .unwrap_or_default();
    json_response(status, body)
}

type SkipFn = dyn Fn(&Parts) -> bool + Send + Sync;
type CostFn = dyn Fn(&Parts) -> u64 + Send + Sync;
type DenyFn = dyn for<'a> Fn(&Denied<'a>) -> Response<Body> + Send + Sync;

#[derive(Clone)]
enum Cost {
    Fixed(u64),
    Each(Arc<CostFn>),
}

struct NamedLimit<S> {
    name: Box<str>,
    member: LimitMember,
    store: S,
}

struct Shared<S> {
    limits: Vec<NamedLimit<S>>,
    policy_header: HeaderValue,
    key: KeyExtractor,
    missing: MissingKey,
    skip: Option<Arc<SkipFn>>,
    cost: Cost,
    message: Box<str>,
    deny: Option<Arc<DenyFn>>,
    legacy: bool,
    max_key_len: usize,
    last_cost_log: AtomicU64,
    last_store_log: AtomicU64,
}

/// Builds a [`RateLimitLayer`]: its named limits, key, and behaviour.
pub struct RateLimitLayerBuilder<S> {
    limits: Vec<(String, S, Quota)>,
    key: KeyExtractor,
    missing: MissingKey,
    skip: Option<Arc<SkipFn>>,
    cost: Cost,
    message: String,
    deny: Option<Arc<DenyFn>>,
    legacy: bool,
    max_key_len: usize,
}

impl<S> fmt::Debug for RateLimitLayerBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayerBuilder")
            .field(
                "limits",
                &self
                    .limits
                    .iter()
                    .map(|(n, _, q)| (n, q))
                    .collect::<Vec<_>>(),
            )
            .field("key", &self.key)
            .field("missing", &self.missing)
            .field("legacy", &self.legacy)
            .finish_non_exhaustive()
    }
}

impl<S: LimitStore + 'static> RateLimitLayerBuilder<S> {
    /// Adds a named limit, checked after those added before it. Its quota is what the
    /// `RateLimit-Policy` header advertises (`Quota::from(&policy)` for a [`Policy`]).
    pub fn limit(mut self, name: impl Into<String>, store: S, quota: impl Into<Quota>) -> Self {
        self.limits.push((name.into(), store, quota.into()));
        self
    }

    /// How keys are derived (default: [`KeyExtractor::peer_ip`]).
    pub fn key(mut self, key: KeyExtractor) -> Self {
        self.key = key;
        self
    }

    /// What happens when a request has no key (default: [`MissingKey::Deny`], a 400).
    pub fn missing_key(mut self, missing: MissingKey) -> Self {
        self.missing = missing;
        self
    }

    /// Requests for which `skip` is true pass without limiting or headers.
    pub fn skip<F>(mut self, skip: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.skip = Some(Arc::new(skip));
        self
    }

    /// Every request costs `cost` (default 1); 0 lets requests pass unlimited.
    pub fn cost(mut self, cost: u64) -> Self {
        self.cost = Cost::Fixed(cost);
        self
    }

    /// Each request costs what `cost` says; 0 lets that request pass unlimited.
    pub fn cost_fn<F>(mut self, cost: F) -> Self
    where
        F: Fn(&Parts) -> u64 + Send + Sync + 'static,
    {
        self.cost = Cost::Each(Arc::new(cost));
        self
    }

    /// The `message` of a denied request's JSON body (default [`DEFAULT_MESSAGE`]).
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Builds the response of a denied request instead of the default 429. The layer
    /// still adds the `RateLimit` headers and, if the handler set none, `Retry-After`.
    pub fn deny_handler<F>(mut self, handler: F) -> Self
    where
        F: for<'a> Fn(&Denied<'a>) -> Response<Body> + Send + Sync + 'static,
    {
        self.deny = Some(Arc::new(handler));
        self
    }

    /// Also send `X-RateLimit-Limit`, `-Remaining` and `-Reset` (epoch seconds) for the
    /// binding policy (default off).
    pub fn legacy_headers(mut self, on: bool) -> Self {
        self.legacy = on;
        self
    }

    /// Longest key accepted, in bytes (default [`DEFAULT_MAX_KEY_LEN`]); a longer key
    /// counts as missing.
    pub fn max_key_len(mut self, len: usize) -> Self {
        self.max_key_len = len;
        self
    }

    /// The layer.
    pub fn build(self) -> RateLimitLayer<S> {
        let mut policy = String::new();
        for (name, _, quota) in &self.limits {
            push_policy_member(
                &mut policy,
                name,
                quota.limit,
                duration_secs_ceil(quota.window),
            );
        }
        let policy_header = HeaderValue::from_maybe_shared(Bytes::from(policy))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        RateLimitLayer {
            shared: Arc::new(Shared {
                limits: self
                    .limits
                    .into_iter()
                    .map(|(name, store, _)| NamedLimit {
                        member: LimitMember::new(&name),
                        name: name.into(),
                        store,
                    })
                    .collect(),
                policy_header,
                key: self.key,
                missing: self.missing,
                skip: self.skip,
                cost: self.cost,
                message: self.message.into(),
                deny: self.deny,
                legacy: self.legacy,
                max_key_len: self.max_key_len,
                last_cost_log: AtomicU64::new(0),
                last_store_log: AtomicU64::new(0),
            }),
        }
    }
}

/// A tower [`Layer`] that rate-limits requests with one or more named limits.
///
/// Limits are checked in the order added, with the same key and cost; the first that
/// denies answers the request (limits after it are not charged, those before it are).
/// Clones share the limits' state.
pub struct RateLimitLayer<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for RateLimitLayer<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for RateLimitLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("policy", &self.shared.policy_header)
            .field("key", &self.shared.key)
            .finish_non_exhaustive()
    }
}

impl<S: LimitStore + 'static> RateLimitLayer<S> {
    /// A layer with one limit named `name`, default settings otherwise.
    pub fn new(name: impl Into<String>, store: S, quota: impl Into<Quota>) -> Self {
        Self::builder(name, store, quota).build()
    }

    /// Starts building a layer whose first limit is `name`.
    pub fn builder(
        name: impl Into<String>,
        store: S,
        quota: impl Into<Quota>,
    ) -> RateLimitLayerBuilder<S> {
        RateLimitLayerBuilder {
            limits: Vec::new(),
            key: KeyExtractor::default(),
            missing: MissingKey::default(),
            skip: None,
            cost: Cost::Fixed(1),
            message: DEFAULT_MESSAGE.to_owned(),
            deny: None,
            legacy: false,
            max_key_len: DEFAULT_MAX_KEY_LEN,
        }
        .limit(name, store, quota)
    }

    /// The `RateLimit-Policy` header value this layer sends.
    pub fn policy_header(&self) -> &HeaderValue {
        &self.shared.policy_header
    }
}

impl<Svc, S> Layer<Svc> for RateLimitLayer<S> {
    type Service = RateLimit<Svc, S>;

    fn layer(&self, inner: Svc) -> RateLimit<Svc, S> {
        RateLimit {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The rate-limiting [`Service`] built by [`RateLimitLayer`]. Clones share state.
pub struct RateLimit<Svc, S> {
    inner: Svc,
    shared: Arc<Shared<S>>,
}

impl<Svc: Clone, S> Clone for RateLimit<Svc, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Svc: fmt::Debug, S> fmt::Debug for RateLimit<Svc, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("policy", &self.shared.policy_header)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of a [`RateLimit`] call: the inner service's future when the limits
    /// decided at once (the in-memory store), a boxed future when they have to be waited
    /// for (a remote store) or the request waits (a shaping policy's delay).
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        // The request was passed on; the headers are added to its response.
        Inner {
            #[pin]
            future: F,
            headers: Option<RateHeaders>,
        },
        // The layer answered itself (429, 400, 503, 500).
        Answered {
            response: Option<Response<Body>>,
        },
        // The decision or the delay is still pending.
        Waiting {
            future: Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>,
        },
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "Inner",
            State::Answered { .. } => "Answered",
            State::Waiting { .. } => "Waiting",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, headers } => {
                let mut resp = std::task::ready!(future.poll(cx))?.map(Body::new);
                if let Some(headers) = headers.take() {
                    headers.add_to(resp.headers_mut());
                }
                Poll::Ready(Ok(resp))
            }
            StateProj::Answered { response } => Poll::Ready(Ok(response
                .take()
                .expect("a RateLimit future is not polled after it completed"))),
            StateProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

impl<Svc, S, ReqB, ResB> Service<Request<ReqB>> for RateLimit<Svc, S>
where
    Svc: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    Svc::Future: Send,
    ReqB: Send + 'static,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
    S: LimitStore + 'static,
{
    type Response = Response<Body>;
    type Error = Svc::Error;
    type Future = ResponseFuture<Svc::Future, Svc::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let mut decide = Box::pin(Arc::clone(&self.shared).decide_owned(parts));
        // A store that decides without waiting (the in-memory one) is done here: the
        // request then goes to the inner service polled ready, with no clone of it and
        // no boxed future. The waker is unused: a future left pending is moved into the
        // returned one, whose first poll comes with the task's waker.
        let state = match decide
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready((parts, outcome)) => match outcome {
                Outcome::Respond(response) => State::Answered {
                    response: Some(response),
                },
                Outcome::Pass => State::Inner {
                    future: self.inner.call(Request::from_parts(parts, body)),
                    headers: None,
                },
                Outcome::Limited {
                    headers,
                    delay_us: 0,
                } => State::Inner {
                    future: self.inner.call(Request::from_parts(parts, body)),
                    headers: Some(headers),
                },
                delayed => {
                    let inner = self.take_ready();
                    State::Waiting {
                        future: Box::pin(finish(inner, parts, body, delayed)),
                    }
                }
            },
            Poll::Pending => {
                let inner = self.take_ready();
                State::Waiting {
                    future: Box::pin(async move {
                        let (parts, outcome) = decide.await;
                        finish(inner, parts, body, outcome).await
                    }),
                }
            }
        };
        ResponseFuture { state }
    }
}

impl<Svc: Clone, S> RateLimit<Svc, S> {
    /// The inner service polled ready, for a future that calls it later; a clone takes
    /// its place.
    fn take_ready(&mut self) -> Svc {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

/// What the limits decided for one request.
enum Outcome {
    Pass,
    Limited { headers: RateHeaders, delay_us: u64 },
    Respond(Response<Body>),
}

/// The headers of a limited request, added to its response.
struct RateHeaders {
    policy: HeaderValue,
    limit: Option<HeaderValue>,
    /// The binding decision, when the legacy headers are on.
    legacy: Option<Decision>,
}

impl RateHeaders {
    /// Adds `RateLimit-Policy`, `RateLimit` (appended, so stacked layers each list their
    /// policies) and, if enabled, the legacy headers of the binding policy.
    fn add_to(self, headers: &mut HeaderMap) {
        headers.append(RATELIMIT_POLICY, self.policy);
        if let Some(v) = self.limit {
            headers.append(RATELIMIT, v);
        }
        if let Some(binding) = self.legacy {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let reset = now + secs_ceil(binding.reset_after_us);
            headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(binding.limit));
            headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(binding.remaining));
            headers.insert(X_RATELIMIT_RESET, HeaderValue::from(reset));
        }
    }
}

/// The rest of a request once its limits decided: wait out a delay, call the inner
/// service and add the headers, or answer.
async fn finish<Svc, ReqB, ResB>(
    mut inner: Svc,
    parts: Parts,
    body: ReqB,
    outcome: Outcome,
) -> Result<Response<Body>, Svc::Error>
where
    Svc: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: HttpBody<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let headers = match outcome {
        Outcome::Respond(resp) => return Ok(resp),
        Outcome::Pass => None,
        Outcome::Limited { headers, delay_us } => {
            if delay_us > 0 {
                tokio::time::sleep(Duration::from_micros(delay_us)).await;
            }
            Some(headers)
        }
    };
    let mut resp = inner
        .call(Request::from_parts(parts, body))
        .await?
        .map(Body::new);
    if let Some(headers) = headers {
        headers.add_to(resp.headers_mut());
    }
    Ok(resp)
}

impl<S: LimitStore> Shared<S> {
    /// [`decide`](Self::decide), owning what it needs (a store may take its time).
    async fn decide_owned(self: Arc<Self>, parts: Parts) -> (Parts, Outcome) {
        let outcome = self.decide(&parts).await;
        (parts, outcome)
    }

    async fn decide(&self, parts: &Parts) -> Outcome {
        if self.skip.as_ref().is_some_and(|skip| skip(parts)) {
            return Outcome::Pass;
        }
        let cost = match &self.cost {
            Cost::Fixed(c) => *c,
            Cost::Each(f) => f(parts),
        };
        if cost == 0 {
            return Outcome::Pass;
        }
        let extracted = self.key.extract(parts);
        let key = match extracted.as_ref().map(Key::as_str) {
            Some(key) if key.len() <= self.max_key_len => key,
            _ => match &self.missing {
                MissingKey::Deny => {
                    return Outcome::Respond(error_response(
                        StatusCode::BAD_REQUEST,
                        "no rate-limit key could be derived from this request",
                    ));
                }
                MissingKey::Allow => return Outcome::Pass,
                MissingKey::Fallback(key) => key,
            },
        };
        let mut header = HeaderText::new();
        let mut binding: Option<Decision> = None;
        let mut delay_us = 0;
        for limit in &self.limits {
            let d = match limit.store.acquire(key, cost, None).await {
                Ok(d) => d,
                Err(e) => return Outcome::Respond(self.error(&limit.name, cost, e)),
            };
            limit
                .member
                .push(&mut header, d.remaining, secs_ceil(d.reset_after_us));
            let combined = match binding {
                None => d,
                Some(b) => Decision::combine(&[b, d]),
            };
            binding = Some(combined);
            if !d.allowed {
                let denied = Denied {
                    decision: d,
                    policy: &limit.name,
                    key,
                    message: &self.message,
                    parts,
                };
                let mut resp = match &self.deny {
                    Some(handler) => handler(&denied),
                    None => denied.default_response(),
                };
                let headers = resp.headers_mut();
                if !headers.contains_key(RETRY_AFTER) {
                    headers.insert(RETRY_AFTER, HeaderValue::from(denied.retry_after_secs()));
                }
                self.headers(&header, combined).add_to(headers);
                return Outcome::Respond(resp);
            }
            delay_us = delay_us.max(d.delay_us.unwrap_or(0));
        }
        match binding {
            Some(binding) => Outcome::Limited {
                headers: self.headers(&header, binding),
                delay_us,
            },
            None => Outcome::Pass,
        }
    }

    /// The headers of a request limited with `binding`, its `RateLimit` value `limit`.
    fn headers(&self, limit: &HeaderText, binding: Decision) -> RateHeaders {
        RateHeaders {
            policy: self.policy_header.clone(),
            limit: header_value(limit),
            legacy: self.legacy.then_some(binding),
        }
    }

    /// The response to a store error: 500 for a cost no policy can admit (a
    /// configuration error), 503 when the store cannot decide. Logged at most once a
    /// minute per kind.
    fn error(&self, policy: &str, cost: u64, e: LimitError) -> Response<Body> {
        match e {
            LimitError::Cost(cost_error) => {
                if should_log(&self.last_cost_log) {
                    tracing::error!(
                        policy,
                        cost,
                        error = %cost_error,
                        "rate limit misconfigured: the request cost can never be admitted"
                    );
                }
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("rate limit `{policy}` is misconfigured: {cost_error}"),
                )
            }
            // The store cannot decide (full, unreachable, or a failure added later).
            _ => {
                if should_log(&self.last_store_log) {
                    tracing::warn!(policy, error = %e, "rate limiter store could not decide");
                }
                let mut resp = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the rate limiter is unavailable, please retry later",
                );
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
        }
    }
}

/// Whether a log line is due: at most one per [`LOG_EVERY_SECS`] per `last`.
fn should_log(last: &AtomicU64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prev = last.load(Ordering::Relaxed);
    (prev == 0 || now >= prev + LOG_EVERY_SECS)
        && last
            .compare_exchange(prev, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}
