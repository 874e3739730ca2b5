//! The layer over real HTTP on loopback: axum served with the peer address, called with
//! reqwest. Limiters run on a manual clock, so every figure is exact.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use tidegate::store::memory::OnFull;
use tidegate::{Limiter, ManualClock, Policy};
use tidegate_http::{
    ClientIp, Denied, KeyExtractor, MissingKey, RateLimitLayer, RateLimitLayerBuilder, Subject,
};
use tower::{Layer, ServiceExt};

mod common;

use common::serve;

type TestLimiter = Limiter<Policy, String, ManualClock>;

fn limiter(spec: &str) -> (TestLimiter, ManualClock, Policy) {
    let policy: Policy = spec.parse().unwrap();
    let clock = ManualClock::new(0);
    let limiter = Limiter::builder(policy)
        .sweep_interval(None)
        .clock(clock.clone())
        .build::<String>();
    (limiter, clock, policy)
}

fn builder(
    name: &str,
    spec: &str,
) -> (RateLimitLayerBuilder<TestLimiter>, TestLimiter, ManualClock) {
    let (limiter, clock, policy) = limiter(spec);
    (
        RateLimitLayer::builder(name, limiter.clone(), policy),
        limiter,
        clock,
    )
}

fn app(layer: RateLimitLayer<TestLimiter>) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/healthz", get(|| async { "healthy" }))
        .layer(layer)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

async fn get1(url: &str, name: &str, value: &str) -> Answer {
    get_with(url, &[(name, value)]).await
}

async fn get_url(url: &str) -> Answer {
    get_with(url, &[]).await
}

#[tokio::test]
async fn denied_request_gets_429_retry_after_exact_body_and_ietf_headers() {
    let (b, _limiter, clock) = builder("api", "fixed_window:2/1m");
    let url = serve(app(b.build())).await;

    let first = get_url(&url).await;
    assert_eq!((first.status, first.body.as_str()), (200, "ok"));
    assert_eq!(first.header("ratelimit-policy"), Some(r#""api";q=2;w=60"#));
    assert_eq!(first.header("ratelimit"), Some(r#""api";r=1;t=60"#));
    assert_eq!(first.header("retry-after"), None);
    assert_eq!(
        first.header("x-ratelimit-limit"),
        None,
        "legacy off by default"
    );

    clock.advance(Duration::from_millis(500));
    let second = get_url(&url).await;
    assert_eq!(second.status, 200);
    assert_eq!(
        second.header("ratelimit"),
        Some(r#""api";r=0;t=60"#),
        "59.5 s rounds up"
    );

    clock.advance(Duration::from_millis(20_000));
    let denied = get_url(&url).await;
    assert_eq!(denied.status, 429);
    assert_eq!(denied.header("retry-after"), Some("40"), "39.5 s rounds up");
    assert_eq!(denied.header("content-type"), Some("application/json"));
    assert_eq!(
        denied.body,
        r#"{"error":"Too Many Requests","message":"Too many requests, please try again later.","retry_after":40,"limit":2,"remaining":0}"#
    );
    assert_eq!(denied.header("ratelimit-policy"), Some(r#""api";q=2;w=60"#));
    assert_eq!(denied.header("ratelimit"), Some(r#""api";r=0;t=40"#));

    clock.advance(Duration::from_millis(39_499));
    let almost = get_url(&url).await;
    assert_eq!(almost.header("retry-after"), Some("1"), "at least 1 s");
    clock.advance(Duration::from_millis(1));
    assert_eq!(get_url(&url).await.status, 200, "window over");
}

#[tokio::test]
async fn legacy_headers_when_enabled_and_custom_message() {
    let (b, _limiter, _clock) = builder("api", "fixed_window:1/10s");
    let url = serve(app(b.legacy_headers(true).message("slow \"down\"").build())).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let ok = get_url(&url).await;
    assert_eq!(ok.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(ok.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = ok.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(
        (now + 10..=now + 12).contains(&reset),
        "epoch seconds: {reset} vs {now}"
    );

    let denied = get_url(&url).await;
    assert_eq!(denied.status, 429);
    assert_eq!(denied.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        denied.body,
        r#"{"error":"Too Many Requests","message":"slow \"down\"","retry_after":10,"limit":1,"remaining":0}"#
    );
}

#[tokio::test]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_do_not_change_the_key() {
    let (b, limiter, _clock) = builder("api", "fixed_window:1/1m");
    // The peer (127.0.0.1) is not inside the trusted range.
    let ip = ClientIp::new().trust(["10.0.0.0/8".parse().unwrap()]);
    let url = serve(app(b.key(KeyExtractor::client_ip(ip)).build())).await;

    let a = get_with(&url, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(a.status, 200);
    let b = get_with(&url, &[("x-forwarded-for", "198.51.100.2")]).await;
    assert_eq!(b.status, 429, "same peer, same key");
    let c = get_with(&url, &[("forwarded", "for=198.51.100.3")]).await;
    assert_eq!(c.status, 429);
    assert!(limiter.state("127.0.0.1").is_some());
    assert_eq!(limiter.len(), 1);
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_set_the_key() {
    let (b, limiter, _clock) = builder("api", "fixed_window:1/1m");
    let ip = ClientIp::new().trust(["127.0.0.1/32".parse().unwrap()]);
    let url = serve(app(b.key(KeyExtractor::client_ip(ip)).build())).await;

    let xff = |v| get1(&url, "x-forwarded-for", v);
    assert_eq!(xff("198.51.100.1").await.status, 200);
    assert_eq!(xff("198.51.100.2").await.status, 200, "another client");
    assert_eq!(xff("198.51.100.1").await.status, 429);
    // A spoofed left part is ignored: the right-most untrusted address counts.
    assert_eq!(xff("6.6.6.6, 198.51.100.2").await.status, 429);
    assert!(limiter.state("198.51.100.1").is_some());
    assert!(limiter.state("6.6.6.6").is_none());

    let fwd = |v| get1(&url, "forwarded", v);
    assert_eq!(fwd("for=198.51.100.3;proto=http").await.status, 200);
    assert_eq!(fwd("for=198.51.100.3").await.status, 429);
    assert_eq!(
        fwd(r#"for="[2001:db8:1:2::1]:4711""#).await.status,
        200,
        "IPv6 client"
    );
    assert_eq!(
        fwd(r#"for="[2001:db8:1:2::ffff]""#).await.status,
        429,
        "same /64"
    );
    assert!(limiter.state("2001:db8:1:2::/64").is_some());
    // Without a forwarding header, the proxy itself is the client.
    assert_eq!(get_url(&url).await.status, 200);
    assert!(limiter.state("127.0.0.1").is_some());
}

#[tokio::test]
async fn skip_predicate_passes_requests_without_limiting() {
    let (b, limiter, _clock) = builder("api", "fixed_window:1/1m");
    let url = serve(app(b.skip(|req| req.uri.path() == "/healthz").build())).await;
    for _ in 0..3 {
        let h = get_url(&format!("{url}/healthz")).await;
        assert_eq!((h.status, h.body.as_str()), (200, "healthy"));
        assert_eq!(h.header("ratelimit"), None);
    }
    assert!(limiter.is_empty());
    assert_eq!(get_url(&url).await.status, 200);
    assert_eq!(get_url(&url).await.status, 429);
}

#[tokio::test]
async fn custom_deny_handler_builds_the_response() {
    let (b, _limiter, _clock) = builder("api", "fixed_window:1/30s");
    let layer = b
        .deny_handler(|d: &Denied<'_>| {
            let body = format!(
                "{} denied {} on {} (limit {}, retry in {} s)",
                d.policy,
                d.key,
                d.parts.uri.path(),
                d.decision.limit,
                d.retry_after_secs()
            );
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp
        })
        .build();
    let url = serve(app(layer)).await;
    assert_eq!(get_url(&url).await.status, 200);
    let denied = get_url(&url).await;
    assert_eq!(denied.status, 503);
    assert_eq!(
        denied.body,
        "api denied 127.0.0.1 on / (limit 1, retry in 30 s)"
    );
    assert_eq!(
        denied.header("retry-after"),
        Some("30"),
        "added by the layer"
    );
    assert_eq!(denied.header("ratelimit"), Some(r#""api";r=0;t=30"#));
    assert_eq!(denied.header("ratelimit-policy"), Some(r#""api";q=1;w=30"#));
}

#[tokio::test]
async fn missing_key_deny_allow_or_fallback() {
    let key = || KeyExtractor::header("x-api-key");

    let (b, _l, _c) = builder("api", "fixed_window:1/1m");
    let url = serve(app(b.key(key()).build())).await;
    let denied = get_url(&url).await;
    assert_eq!(denied.status, 400, "default: deny");
    assert_eq!(
        denied.body,
        r#"{"error":"Bad Request","message":"no rate-limit key could be derived from this request"}"#
    );
    let empty = get_with(&url, &[("x-api-key", "")]).await;
    assert_eq!(empty.status, 400, "an empty key is no key");
    assert_eq!(get_with(&url, &[("x-api-key", "k1")]).await.status, 200);
    assert_eq!(get_with(&url, &[("x-api-key", "k1")]).await.status, 429);
    assert_eq!(get_with(&url, &[("x-api-key", "k2")]).await.status, 200);
    let long = "k".repeat(300);
    assert_eq!(get_with(&url, &[("x-api-key", &long)]).await.status, 400);

    let (b, limiter, _c) = builder("api", "fixed_window:1/1m");
    let url = serve(app(b.key(key()).missing_key(MissingKey::Allow).build())).await;
    for _ in 0..3 {
        let a = get_url(&url).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("ratelimit"), None, "not limited");
    }
    assert!(limiter.is_empty());

    let (b, limiter, _c) = builder("api", "fixed_window:1/1m");
    let layer = b
        .key(key())
        .missing_key(MissingKey::Fallback("anonymous".into()))
        .build();
    let url = serve(app(layer)).await;
    assert_eq!(get_url(&url).await.status, 200);
    assert_eq!(
        get_url(&url).await.status,
        429,
        "all keyless requests share one key"
    );
    assert_eq!(get_with(&url, &[("x-api-key", "k1")]).await.status, 200);
    assert!(limiter.state("anonymous").is_some());
}

#[tokio::test]
async fn authenticated_subject_is_the_key() {
    let (b, limiter, _c) = builder("purchase", "fixed_window:1/1m");
    // A stand-in auth layer: the bearer token names the user.
    let auth = tower::util::MapRequestLayer::new(|mut req: Request<Body>| {
        let user = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|u| Subject(u.to_owned()));
        if let Some(user) = user {
            req.extensions_mut().insert(user);
        }
        req
    });
    // Router::layer wraps: the last added runs first, so auth runs before the limit.
    let app = app(b.key(KeyExtractor::subject()).build()).layer(auth);
    let url = serve(app).await;
    let as_user = |u| get1(&url, "authorization", u);
    assert_eq!(as_user("Bearer alice").await.status, 200);
    assert_eq!(as_user("Bearer alice").await.status, 429);
    assert_eq!(as_user("Bearer bob").await.status, 200);
    assert_eq!(get_url(&url).await.status, 400, "unauthenticated: no key");
    assert!(limiter.state("alice").is_some());
}

fn with_peer(peer: &str) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    req.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    req
}

#[tokio::test]
async fn cloned_services_share_limits() {
    let (b, _limiter, _clock) = builder("api", "fixed_window:3/1m");
    let layer = b.build();
    let handler = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    });
    let mut one = layer.layer(handler);
    let mut two = one.clone();
    let mut three = layer.clone().layer(handler);
    let peer = "192.0.2.1:1234";
    let status = |r: Response<Body>| r.status().as_u16();
    assert_eq!(
        status((&mut one).oneshot(with_peer(peer)).await.unwrap()),
        200
    );
    assert_eq!(
        status((&mut two).oneshot(with_peer(peer)).await.unwrap()),
        200
    );
    let third = (&mut three).oneshot(with_peer(peer)).await.unwrap();
    assert_eq!(third.headers()["ratelimit"], r#""api";r=0;t=60"#);
    assert_eq!(status(one.oneshot(with_peer(peer)).await.unwrap()), 429);
    assert_eq!(
        status(two.oneshot(with_peer("192.0.2.2:1")).await.unwrap()),
        200
    );
}

#[tokio::test]
async fn per_route_policies_on_two_routes() {
    let (login, login_limiter, _c) = builder("login", "fixed_window:1/10s");
    let (api, api_limiter, _c) = builder("api", "token_bucket:100/1m,burst=3");
    let app = Router::new()
        .route("/login", get(|| async { "welcome" }).layer(login.build()))
        .route("/api", get(|| async { "data" }).layer(api.build()));
    let url = serve(app).await;

    let l = get_url(&format!("{url}/login")).await;
    assert_eq!(l.header("ratelimit-policy"), Some(r#""login";q=1;w=10"#));
    assert_eq!(get_url(&format!("{url}/login")).await.status, 429);
    for expect in [2, 1, 0] {
        let a = get_url(&format!("{url}/api")).await;
        assert_eq!(a.status, 200, "the login limit does not apply to /api");
        assert_eq!(a.header("ratelimit-policy"), Some(r#""api";q=100;w=60"#));
        let r = a.header("ratelimit").unwrap();
        assert!(r.starts_with(&format!("\"api\";r={expect};t=")), "{r}");
    }
    let denied = get_url(&format!("{url}/api")).await;
    assert_eq!(denied.status, 429);
    assert_eq!(
        denied.header("retry-after"),
        Some("1"),
        "0.6 s to the next token"
    );
    assert_eq!((login_limiter.len(), api_limiter.len()), (1, 1));
}

#[tokio::test]
async fn several_named_limits_each_appear_in_the_headers() {
    let (per_sec, clock, p1) = limiter("fixed_window:2/1s");
    let per_hour = Limiter::builder("fixed_window:3/1h".parse::<Policy>().unwrap())
        .sweep_interval(None)
        .clock(clock.clone())
        .build::<String>();
    let layer = RateLimitLayer::builder("burst", per_sec, p1)
        .limit(
            "hourly",
            per_hour.clone(),
            "fixed_window:3/1h".parse::<Policy>().unwrap(),
        )
        .legacy_headers(true)
        .build();
    let url = serve(app(layer)).await;

    let a = get_url(&url).await;
    assert_eq!(
        a.header("ratelimit-policy"),
        Some(r#""burst";q=2;w=1, "hourly";q=3;w=3600"#)
    );
    assert_eq!(
        a.header("ratelimit"),
        Some(r#""burst";r=1;t=1, "hourly";r=2;t=3600"#)
    );
    assert_eq!(
        a.header("x-ratelimit-remaining"),
        Some("1"),
        "binding: least remaining"
    );
    get_url(&url).await;
    let d = get_url(&url).await;
    assert_eq!(d.status, 429);
    assert_eq!(
        d.header("ratelimit"),
        Some(r#""burst";r=0;t=1"#),
        "stops at the first denial"
    );
    assert!(d.body.contains(r#""limit":2"#));

    clock.advance(Duration::from_secs(1));
    assert_eq!(get_url(&url).await.status, 200);
    let d = get_url(&url).await;
    assert_eq!(d.status, 429, "hourly quota spent");
    assert_eq!(
        d.header("ratelimit"),
        Some(r#""burst";r=0;t=1, "hourly";r=0;t=3599"#)
    );
    assert_eq!(d.header("retry-after"), Some("3599"));
    assert!(d.body.contains(r#""limit":3"#), "{}", d.body);
}

#[tokio::test]
async fn weighted_cost_from_a_closure() {
    let (b, _l, _c) = builder("api", "fixed_window:10/1m");
    let layer = b
        .cost_fn(|req| {
            req.headers
                .get("x-cost")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1)
        })
        .build();
    let url = serve(app(layer)).await;
    let a = get_with(&url, &[("x-cost", "4")]).await;
    assert_eq!(a.header("ratelimit"), Some(r#""api";r=6;t=60"#));
    let b = get_url(&url).await;
    assert_eq!(b.header("ratelimit"), Some(r#""api";r=5;t=60"#));
    let free = get_with(&url, &[("x-cost", "0")]).await;
    assert_eq!(
        (free.status, free.header("ratelimit")),
        (200, None),
        "cost 0 is free"
    );
    let denied = get_with(&url, &[("x-cost", "6")]).await;
    assert_eq!(denied.status, 429);
    assert!(
        denied.body.ends_with(r#""limit":10,"remaining":5}"#),
        "{}",
        denied.body
    );
}

#[tokio::test]
async fn store_errors_answer_503_and_impossible_costs_500() {
    let policy: Policy = "fixed_window:5/1m".parse().unwrap();
    let full = Limiter::builder(policy)
        .sweep_interval(None)
        .max_keys(1)
        .shards(1)
        .on_full(OnFull::Reject)
        .clock(ManualClock::new(0))
        .build::<String>();
    let layer = RateLimitLayer::builder("api", full, policy)
        .key(KeyExtractor::header("x-api-key"))
        .cost_fn(|req| if req.uri.path() == "/healthz" { 6 } else { 1 })
        .build();
    let url = serve(app(layer)).await;
    assert_eq!(get_with(&url, &[("x-api-key", "a")]).await.status, 200);
    let full = get_with(&url, &[("x-api-key", "b")]).await;
    assert_eq!(full.status, 503);
    assert_eq!(full.header("retry-after"), Some("1"));
    assert_eq!(
        full.body,
        r#"{"error":"Service Unavailable","message":"the rate limiter is unavailable, please retry later"}"#
    );
    let bad = get_with(&format!("{url}/healthz"), &[("x-api-key", "a")]).await;
    assert_eq!(bad.status, 500);
    assert_eq!(
        bad.body,
        r#"{"error":"Internal Server Error","message":"rate limit `api` is misconfigured: cost 6 can never be admitted: the policy admits at most 5 at once"}"#
    );
}

#[tokio::test]
async fn leaky_bucket_delay_holds_the_request_back() {
    let (b, _l, _c) = builder("shaped", "leaky_bucket:10/1s");
    let svc = b
        .build()
        .layer(tower::service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let peer = "192.0.2.1:1";
    let start = std::time::Instant::now();
    let first = svc.clone().oneshot(with_peer(peer)).await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(90));
    let second = svc.oneshot(with_peer(peer)).await.unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "the second request leaves 100 ms after the first"
    );
}
