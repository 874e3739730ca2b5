//! tidegate for HTTP: a tower [`Layer`](tower::Layer) that rate-limits requests, for
//! axum 0.8 and any tower service over `http::Request<B>`.
//!
//! - [`RateLimitLayer`]: one or more named limits, each any
//!   [`LimitStore`](tidegate::store::LimitStore) (the in-memory
//!   [`tidegate::Limiter`], the Redis limiter, ...), checked in order with one key and
//!   cost per request. Clones of the layer and of its service share state.
//! - Keys ([`KeyExtractor`]): the client address (default; IPv6 grouped by /64;
//!   `X-Forwarded-For` / `Forwarded` honoured only from trusted proxies, see
//!   [`ClientIp`]), a header, the authenticated [`Subject`], or a closure. A request
//!   without a key follows [`MissingKey`] (default: 400).
//! - Denied requests get `429`, `Retry-After` (seconds rounded up, at least 1) and
//!   `{"error":"Too Many Requests","message":...,"retry_after":s,"limit":n,"remaining":0}`.
//! - Every limited response carries `RateLimit-Policy: "api";q=100;w=60` and
//!   `RateLimit: "api";r=42;t=18` (draft-ietf-httpapi-ratelimit-headers), one list
//!   member per limit; legacy `X-RateLimit-*` on request.
//! - Store errors: `503` (store full or unreachable), `500` for a cost no policy can
//!   ever admit (a configuration error, logged).
//!
//! The crate's README is the guide: keys, trusted proxies, headers, skip, deny handler,
//! missing keys.
//!
//! ```
//! use std::net::SocketAddr;
//!
//! use axum::{Router, body::Body, extract::ConnectInfo, http::Request, routing::get};
//! use tidegate::{Limiter, Policy};
//! use tidegate_http::{ClientIp, KeyExtractor, RateLimitLayer};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy: Policy = "fixed_window:2/1m".parse()?;
//! let layer = RateLimitLayer::builder("api", Limiter::new(policy), policy)
//!     // Behind a load balancer at 10.0.0.0/8: trust its X-Forwarded-For.
//!     .key(KeyExtractor::client_ip(ClientIp::new().trust(["10.0.0.0/8".parse()?])))
//!     .skip(|req| req.uri.path() == "/healthz")
//!     .build();
//! let app = Router::new().route("/", get(|| async { "hello" })).layer(layer);
//!
//! // Serve it with the peer address available to the layer:
//! // axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
//! let peer: SocketAddr = "192.0.2.7:50000".parse()?;
//! let request = || {
//!     let mut req = Request::new(Body::empty());
//!     req.extensions_mut().insert(ConnectInfo(peer));
//!     req
//! };
//! let ok = app.clone().oneshot(request()).await?;
//! assert_eq!(ok.status(), 200);
//! assert_eq!(ok.headers()["ratelimit-policy"], r#""api";q=2;w=60"#);
//! assert_eq!(ok.headers()["ratelimit"], r#""api";r=1;t=60"#);
//! app.clone().oneshot(request()).await?;
//! let denied = app.oneshot(request()).await?;
//! assert_eq!(denied.status(), 429);
//! assert_eq!(denied.headers()["retry-after"], "60");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod headers;
pub mod ip;
pub mod key;
pub mod layer;

pub use ip::{Cidr, CidrError, ClientIp, ForwardedHeader, IpKey};
pub use key::{Key, KeyExtractor, MissingKey, Subject};
pub use layer::{
    ArcStore, DEFAULT_MAX_KEY_LEN, DEFAULT_MESSAGE, Denied, Quota, RateLimit, RateLimitLayer,
    RateLimitLayerBuilder, ResponseFuture,
};

/// The README's code examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
