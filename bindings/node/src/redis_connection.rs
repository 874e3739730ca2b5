//! `RedisConnection`: one connection to Redis (single node or cluster, TLS), shared by
//! the limiters and trackers made from it.

use std::time::Duration;

use napi::Result;
use napi_derive::napi;
use tidegate::store::redis::{RedisOptions, RedisStore, parse_urls};
use tidegate_core::store::FailurePolicy;

use crate::errors::{failure, policy_error, range_error, type_error};
use crate::policy::{PolicyArg, parse_policy};
use crate::redis_limiter::RedisLimiter;

/// Options of a Redis connection.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct RedisConnectionOptions {
    /// Longest a decision waits for Redis before `onError` answers, in milliseconds
    /// (default 50).
    pub timeout: Option<f64>,
    /// Longest the initial connection (and each reconnection) may take, in milliseconds
    /// (default 2000).
    pub connect_timeout: Option<f64>,
    /// For `rediss://`: a PEM file of the CA that signed the server's certificate.
    pub tls_ca_file: Option<String>,
}

/// Options of a limiter made from a connection.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct RedisLimiterOptions {
    /// What answers when Redis does not in time: `"local"` (default: an in-memory
    /// limiter with the same policies, in this process), `"open"` (admit) or `"closed"`
    /// (deny).
    pub on_error: Option<String>,
    /// Prefix of every key (default `"tidegate"`).
    pub namespace: Option<String>,
}

/// A connection to Redis. Open one with `connectRedis(url)`.
#[napi]
pub struct RedisConnection {
    pub(crate) store: RedisStore,
    url: String,
}

/// Opens a connection to `url` (`redis://host:port`, `rediss://` for TLS, several
/// comma-separated node URLs for a cluster). A single node that cannot be reached yet is
/// not an error: limiters follow `onError` until it answers.
#[napi]
pub async fn connect_redis(
    url: String,
    options: Option<RedisConnectionOptions>,
) -> Result<RedisConnection> {
    let mut opts = RedisOptions::default();
    let o = options.unwrap_or_default();
    if let Some(ms) = o.timeout {
        opts.timeout = millis("timeout", ms)?;
    }
    if let Some(ms) = o.connect_timeout {
        opts.connect_timeout = millis("connectTimeout", ms)?;
    }
    opts.tls_ca_file = o.tls_ca_file.map(Into::into);
    let urls = parse_urls(&url).map_err(|e| range_error(format!("url: {e}")))?;
    let store = RedisStore::open(&urls, opts)
        .await
        .map_err(|e| failure(&e))?;
    Ok(RedisConnection { store, url })
}

/// A positive number of milliseconds as a duration; anything else a `RangeError`.
pub(crate) fn millis(field: &str, ms: f64) -> Result<Duration> {
    if !ms.is_finite() || ms <= 0.0 {
        return Err(range_error(format!(
            "{field} must be a number of milliseconds above 0, got {ms}"
        )));
    }
    Ok(Duration::from_micros((ms * 1_000.0).round() as u64))
}

/// `onError` as tidegate's failure policy.
fn failure_policy(on_error: Option<&str>) -> Result<FailurePolicy> {
    match on_error {
        None | Some("local") => Ok(FailurePolicy::Local),
        Some("open" | "fail_open") => Ok(FailurePolicy::FailOpen),
        Some("closed" | "fail_closed") => Ok(FailurePolicy::FailClosed),
        Some(other) => Err(type_error(format!(
            "onError must be \"local\", \"open\" or \"closed\", got {other:?}"
        ))),
    }
}

#[napi]
impl RedisConnection {
    /// The URL it was opened with.
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A limiter named `name` with `policy`: every limiter with the same Redis,
    /// namespace, name and policies shares each key's quota (other processes, `tidegate
    /// serve`). Its keys are `<namespace>:<name>:{=<key>}:<index>:<algorithm>`.
    #[napi]
    pub fn limiter(
        &self,
        name: String,
        policy: PolicyArg,
        options: Option<RedisLimiterOptions>,
    ) -> Result<RedisLimiter> {
        let policies = parse_policy(policy)?;
        let o = options.unwrap_or_default();
        let mut builder = self
            .store
            .limiter(&name, policies)
            .on_error(failure_policy(o.on_error.as_deref())?);
        if let Some(ns) = &o.namespace {
            builder = builder.namespace(ns);
        }
        let inner = napi::bindgen_prelude::within_runtime_if_available(|| builder.build())
            .map_err(policy_error)?;
        Ok(RedisLimiter::new(inner))
    }
}
