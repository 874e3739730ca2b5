//! Response headers for Envoy to add (`response_headers_to_add`), for the descriptor
//! closest to its limit: IETF `RateLimit-Policy` / `RateLimit`, and envoyproxy/ratelimit's
//! `X-RateLimit-Limit`, `-Remaining`, `-Reset`. Both are off by default.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::HeaderValue;

/// Which headers to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeaderOptions {
    /// IETF `RateLimit-Policy: "ratelimit";q=<limit>;w=<window s>` and
    /// `RateLimit: "ratelimit";r=<remaining>;t=<reset s>`.
    pub ietf: bool,
    /// envoyproxy/ratelimit's limit, remaining and reset headers, with these names.
    pub x_ratelimit: Option<XRateLimitNames>,
}

impl HeaderOptions {
    /// With or without the IETF headers.
    pub fn ietf(mut self, on: bool) -> Self {
        self.ietf = on;
        self
    }

    /// With envoyproxy/ratelimit's headers under their default names.
    pub fn x_ratelimit(mut self, on: bool) -> Self {
        self.x_ratelimit = on.then(XRateLimitNames::default);
        self
    }
}

/// The names of envoyproxy/ratelimit's headers (its `LIMIT_*_HEADER` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct XRateLimitNames {
    /// Default `X-RateLimit-Limit`.
    pub limit: String,
    /// Default `X-RateLimit-Remaining`.
    pub remaining: String,
    /// Default `X-RateLimit-Reset`.
    pub reset: String,
}

impl Default for XRateLimitNames {
    fn default() -> Self {
        Self {
            limit: "X-RateLimit-Limit".into(),
            remaining: "X-RateLimit-Remaining".into(),
            reset: "X-RateLimit-Reset".into(),
        }
    }
}

/// One limited descriptor: `(over, (remaining, limit, window, reset))`.
pub(crate) type Limited = (bool, (u64, u64, Duration, Duration));

/// The headers for the descriptor closest to its limit (an over-limit one first).
pub(crate) fn build(
    options: &HeaderOptions,
    descriptors: impl Iterator<Item = Limited>,
) -> Vec<HeaderValue> {
    if !options.ietf && options.x_ratelimit.is_none() {
        return Vec::new();
    }
    let Some((_, (remaining, limit, window, reset))) =
        descriptors.min_by_key(|(over, (remaining, ..))| (!over, *remaining))
    else {
        return Vec::new();
    };
    let secs = |d: Duration| d.as_micros().div_ceil(1_000_000);
    let header = |key: &str, value: String| HeaderValue {
        key: key.to_string(),
        value,
        ..HeaderValue::default()
    };
    let mut out = Vec::new();
    if options.ietf {
        out.push(header(
            "RateLimit-Policy",
            format!("\"ratelimit\";q={limit};w={}", secs(window)),
        ));
        out.push(header(
            "RateLimit",
            format!("\"ratelimit\";r={remaining};t={}", secs(reset)),
        ));
    }
    if let Some(names) = &options.x_ratelimit {
        out.push(header(&names.limit, limit.to_string()));
        out.push(header(&names.remaining, remaining.to_string()));
        out.push(header(&names.reset, secs(reset).to_string()));
    }
    out
}
