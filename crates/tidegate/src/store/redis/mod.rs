//! The Redis store: the same decisions as the memory store, shared by every instance
//! that talks to the same Redis (a single node or a Redis Cluster).
//!
//! Each decision is one `EVALSHA` of `decide.lua` (reloaded on `NOSCRIPT`), which mirrors
//! the Rust algorithms exactly, reads the server's `TIME` unless a time is given, and
//! sets each key to expire exactly when its state has become equivalent to fresh.
//! Concurrent decisions share one multiplexed connection (per node) and are pipelined.

pub(crate) mod batcher;
mod breaker;
mod decide;
mod lease;
mod limiter;
mod sentinel;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisError, Script};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

pub use limiter::{RedisLimiter, RedisLimiterBuilder, RedisLimiterStats};

use breaker::{Breaker, LogGate};
use decide::DecideCall;

/// The source of a script built on the shared Lua algorithms: `algorithms.lua` followed
/// by the script's own file, given relative to `crates/tidegate/src`. Every script
/// (the limiter's, the tracker's, the queue's) is built this way and no other.
macro_rules! lua_script {
    ($file:literal) => {
        concat!(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/store/redis/algorithms.lua"
            )),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/", $file))
        )
    };
}
#[cfg(any(feature = "tracker", feature = "queue"))]
pub(crate) use lua_script;

/// How long the connection itself waits for a reply. Every call is bounded by its own,
/// shorter timeout (the limiter's `timeout`, the tracker's and the queue's), which
/// answers the caller; this only lets a connection give up on a reply that never comes.
/// It must not be the limiter's `timeout`: the queue's and the tracker's calls (a push of
/// thousands of jobs) legitimately take longer than a decision.
const RESPONSE_SAFETY_NET: Duration = Duration::from_secs(30);

/// The decision script: the algorithms, then the batch protocol.
const DECIDE_LUA: &str = lua_script!("store/redis/decide.lua");

/// A Redis store could not be set up or could not answer.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL list is empty or a URL is malformed.
    #[error("invalid Redis URL `{url}`: {reason}")]
    Url {
        /// The URL at fault.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The TLS settings could not be used.
    #[error("TLS CA file {path}: {reason}")]
    Tls {
        /// The file at fault.
        path: String,
        /// Why it could not be used.
        reason: String,
    },
    /// Redis did not answer, or answered with an error.
    #[error("Redis at {urls}: {source}")]
    Redis {
        /// The URL(s) of the store.
        urls: String,
        /// The client's error.
        #[source]
        source: RedisError,
    },
    /// Redis did not answer within the timeout.
    #[error("Redis at {urls} did not answer within {timeout:?}")]
    Timeout {
        /// The URL(s) of the store.
        urls: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// Redis answered something the store did not expect.
    #[error("Redis at {urls} gave an unexpected reply: {reason}")]
    Reply {
        /// The URL(s) of the store.
        urls: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The circuit breaker is open: Redis failed recently and is not called until it recovers.
    #[error("Redis at {urls} is unavailable (circuit open after repeated failures)")]
    CircuitOpen {
        /// The URL(s) of the store.
        urls: String,
    },
}

/// Settings of a [`RedisStore`] connection. Start from [`RedisOptions::default`] and
/// set fields (`options.timeout = ...`) or chain the `with_*` methods; more settings may
/// come, so it cannot be written as a struct literal outside this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Longest a decision waits for Redis before the failure policy answers (default 50 ms).
    pub timeout: Duration,
    /// Longest the initial connection (and each reconnection) may take (default 2 s).
    pub connect_timeout: Duration,
    /// Consecutive failures that open the circuit breaker (default 3).
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls before one probe (default 1 s).
    pub breaker_cooldown: Duration,
    /// Most decisions sent in one script call (default 64; 1 turns batching off).
    /// When no call is under way, requests are never held back to fill a batch.
    pub batch_max: usize,
    /// Most batched script calls under way at once (default 4); while they run, new
    /// decisions queue up and leave together in the next call. While one runs, another
    /// leaves once it carries a quarter of `batch_max`, or when a call ends.
    pub batch_in_flight: usize,
    /// For `rediss://`: a PEM file of the CA that signed the server's certificate, when
    /// it is not in the system's trust store (default: system roots).
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(2),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(1),
            batch_max: 64,
            batch_in_flight: 4,
            tls_ca_file: None,
        }
    }
}

impl RedisOptions {
    /// Sets [`timeout`](Self::timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets [`breaker_threshold`](Self::breaker_threshold).
    pub fn with_breaker_threshold(mut self, breaker_threshold: u32) -> Self {
        self.breaker_threshold = breaker_threshold;
        self
    }

    /// Sets [`breaker_cooldown`](Self::breaker_cooldown).
    pub fn with_breaker_cooldown(mut self, breaker_cooldown: Duration) -> Self {
        self.breaker_cooldown = breaker_cooldown;
        self
    }

    /// Sets [`batch_max`](Self::batch_max).
    pub fn with_batch_max(mut self, batch_max: usize) -> Self {
        self.batch_max = batch_max;
        self
    }

    /// Sets [`batch_in_flight`](Self::batch_in_flight).
    pub fn with_batch_in_flight(mut self, batch_in_flight: usize) -> Self {
        self.batch_in_flight = batch_in_flight;
        self
    }

    /// Sets [`tls_ca_file`](Self::tls_ca_file).
    pub fn with_tls_ca_file(mut self, tls_ca_file: Option<std::path::PathBuf>) -> Self {
        self.tls_ca_file = tls_ca_file;
        self
    }
}

/// Counters of a [`RedisStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct RedisStats {
    /// Calls that failed (error or timeout).
    pub errors: u64,
    /// Of those, calls that timed out.
    pub timeouts: u64,
    /// Calls refused because the circuit was open.
    pub refused: u64,
    /// Times the circuit opened.
    pub circuit_opened: u64,
    /// Whether the circuit is open now.
    pub circuit_open: bool,
    /// Script calls made by the batcher.
    pub batch_calls: u64,
    /// Decisions those calls carried (`batch_requests / batch_calls` = mean batch size).
    pub batch_requests: u64,
}

#[derive(Clone)]
enum Connection {
    Single(Node),
    Cluster(ClusterConnection),
}

/// The connection to a single primary: at a fixed address (reconnected there by the
/// connection manager), or wherever Redis Sentinel says it is.
#[derive(Clone)]
enum Node {
    Direct(ConnectionManager),
    Sentinel(sentinel::SentinelConnection),
}

impl redis::aio::ConnectionLike for Node {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Node::Direct(c) => c.req_packed_command(cmd),
            Node::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Node::Direct(c) => c.req_packed_commands(cmd, offset, count),
            Node::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Node::Direct(c) => c.get_db(),
            Node::Sentinel(c) => c.get_db(),
        }
    }
}

struct Inner {
    connection: Connection,
    script: Arc<Script>,
    batcher: Option<mpsc::Sender<batcher::Queued<DecideCall>>>,
    batch_counters: Arc<batcher::Counters>,
    options: RedisOptions,
    urls: String,
    breaker: Breaker,
    log_gate: LogGate,
    errors: AtomicU64,
    timeouts: AtomicU64,
    refused: AtomicU64,
}

/// A connection to Redis (single node or cluster) that [`RedisLimiter`]s decide through.
/// Cheap to clone; clones share the connection, the breaker and the counters.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("urls", &self.inner.urls)
            .field("cluster", &self.is_cluster())
            .finish()
    }
}

/// Splits `redis://a:1,redis://b:2` into URLs; more than one selects Redis Cluster.
/// A `redis+sentinel://h1:p1,h2:p2/service[/db]` URL (whose commas separate sentinels)
/// is one URL: the primary that Redis Sentinel names for `service`.
pub fn parse_urls(text: &str) -> Result<Vec<String>, RedisStoreError> {
    let text_trimmed = text.trim();
    if text_trimmed.starts_with(sentinel::SCHEME) {
        sentinel::SentinelUrl::parse(text_trimmed)?;
        return Ok(vec![text_trimmed.to_string()]);
    }
    let urls: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect();
    if urls.is_empty() {
        return Err(RedisStoreError::Url {
            url: text.to_string(),
            reason: "no URL given (expected redis://HOST:PORT, rediss:// for TLS)".into(),
        });
    }
    for url in &urls {
        if url.contains("+sentinel://") {
            return Err(RedisStoreError::Url {
                url: url.clone(),
                reason: "a Sentinel URL stands alone: redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB] \
                         (TLS through Sentinel is not supported)"
                    .into(),
            });
        }
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(RedisStoreError::Url {
                url: url.clone(),
                reason: "must start with redis://, rediss:// (TLS) or redis+sentinel://".into(),
            });
        }
    }
    Ok(urls)
}

impl RedisStore {
    /// Connects to one node (one URL) or a cluster (several URLs of its nodes).
    /// `rediss://` URLs use TLS. Fails if Redis cannot be reached now.
    pub async fn connect(urls: &[String], options: RedisOptions) -> Result<Self, RedisStoreError> {
        Self::start(urls, options, true).await
    }

    /// Like [`connect`](Self::connect), but a single node that cannot be reached yet is
    /// not an error: the store connects on first use, decisions follow each limiter's
    /// failure policy until Redis answers, and it reconnects by itself. (A cluster must
    /// answer once, to learn its topology.) For servers that must start while Redis is
    /// down.
    pub async fn open(urls: &[String], options: RedisOptions) -> Result<Self, RedisStoreError> {
        Self::start(urls, options, false).await
    }

    async fn start(
        urls: &[String],
        options: RedisOptions,
        strict: bool,
    ) -> Result<Self, RedisStoreError> {
        let label = urls.join(",");
        let url_error = |e: RedisError| RedisStoreError::Url {
            url: label.clone(),
            reason: e.to_string(),
        };
        let redis_error = |source| RedisStoreError::Redis {
            urls: label.clone(),
            source,
        };
        let certs = match &options.tls_ca_file {
            Some(path) => Some(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(path).map_err(|e| RedisStoreError::Tls {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?),
            }),
            None => None,
        };
        let connecting = async {
            if let Some(url) = urls
                .first()
                .filter(|u| urls.len() == 1 && u.starts_with(sentinel::SCHEME))
            {
                let url = sentinel::SentinelUrl::parse(url)?;
                sentinel::SentinelConnection::open(
                    url,
                    options.connect_timeout,
                    options.timeout.max(RESPONSE_SAFETY_NET),
                    strict,
                )
                .await
                .map(|c| Connection::Single(Node::Sentinel(c)))
                .map_err(redis_error)
            } else if urls.len() == 1 {
                let client = match certs.clone() {
                    Some(certs) => redis::Client::build_with_tls(urls[0].as_str(), certs),
                    None => redis::Client::open(urls[0].as_str()),
                }
                .map_err(url_error)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(options.timeout.max(RESPONSE_SAFETY_NET)))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                if strict {
                    ConnectionManager::new_with_config(client, config).await
                } else {
                    ConnectionManager::new_lazy_with_config(client, config)
                }
                .map(|c| Connection::Single(Node::Direct(c)))
                .map_err(redis_error)
            } else {
                let mut builder = ClusterClientBuilder::new(urls.to_vec());
                if let Some(certs) = certs.clone() {
                    builder = builder.certs(certs);
                }
                let client = builder
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(options.timeout.max(RESPONSE_SAFETY_NET))
                    .retries(2)
                    .build()
                    .map_err(url_error)?;
                client
                    .get_async_connection()
                    .await
                    .map(Connection::Cluster)
                    .map_err(redis_error)
            }
        };
        let connection = tokio::time::timeout(options.connect_timeout * 2, connecting)
            .await
            .map_err(|_| RedisStoreError::Timeout {
                urls: label.clone(),
                timeout: options.connect_timeout * 2,
            })??;
        let script = Arc::new(Script::new(DECIDE_LUA));
        let batch_counters = Arc::new(batcher::Counters::default());
        let batcher = (options.batch_max > 1).then(|| {
            let call = DecideCall {
                connection: connection.clone(),
                script: Arc::clone(&script),
                urls: Arc::from(label.as_str()),
                cluster: matches!(connection, Connection::Cluster(_)),
            };
            batcher::spawn(
                Arc::new(call),
                options.batch_max,
                options.batch_in_flight,
                Arc::clone(&batch_counters),
            )
        });
        let store = Self {
            inner: Arc::new(Inner {
                connection,
                script,
                batcher,
                batch_counters,
                breaker: Breaker::new(options.breaker_threshold, options.breaker_cooldown),
                log_gate: LogGate::new(Duration::from_secs(10)),
                options,
                urls: label,
                errors: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        };
        match store.load_script().await {
            Ok(()) => {}
            Err(e) if strict => return Err(e),
            // Loaded on first use (NOSCRIPT) once Redis answers.
            Err(e) => store.record_error(&e),
        }
        Ok(store)
    }

    /// Connects to the comma-separated URL list `urls` (see [`parse_urls`]).
    pub async fn connect_str(urls: &str, options: RedisOptions) -> Result<Self, RedisStoreError> {
        Self::connect(&parse_urls(urls)?, options).await
    }

    /// Starts building a limiter named `name` (its keys are `tidegate:<name>:{<key>}:...`).
    pub fn limiter(&self, name: &str, policies: crate::PolicySet) -> RedisLimiterBuilder {
        RedisLimiterBuilder::new(self.clone(), name, policies)
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.connection, Connection::Cluster(_))
    }

    /// `host:port` of the primary in use, for a store opened with a
    /// `redis+sentinel://` URL once it has reached one (`None` otherwise).
    pub fn sentinel_primary(&self) -> Option<String> {
        match &self.inner.connection {
            Connection::Single(Node::Sentinel(c)) => c.primary(),
            _ => None,
        }
    }

    /// Times a store opened with a `redis+sentinel://` URL connected to a primary
    /// named by Sentinel: 1 after the first connection, one more per reconnection
    /// (a failover, or a lost connection); 0 for other stores.
    pub fn sentinel_connections(&self) -> u64 {
        match &self.inner.connection {
            Connection::Single(Node::Sentinel(c)) => c.switches(),
            _ => 0,
        }
    }

    /// The connection settings.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// Counters of failures and of the circuit breaker.
    pub fn stats(&self) -> RedisStats {
        let i = &self.inner;
        RedisStats {
            errors: i.errors.load(Ordering::Relaxed),
            timeouts: i.timeouts.load(Ordering::Relaxed),
            refused: i.refused.load(Ordering::Relaxed),
            circuit_opened: i.breaker.times_opened(),
            circuit_open: i.breaker.is_open(),
            batch_calls: i.batch_counters.calls.load(Ordering::Relaxed),
            batch_requests: i.batch_counters.requests.load(Ordering::Relaxed),
        }
    }

    /// Loads the decision script (on every node of a cluster).
    async fn load_script(&self) -> Result<(), RedisStoreError> {
        let load = async {
            match self.inner.connection.clone() {
                Connection::Single(mut c) => {
                    self.inner.script.prepare_invoke().load_async(&mut c).await
                }
                Connection::Cluster(mut c) => {
                    self.inner.script.prepare_invoke().load_async(&mut c).await
                }
            }
        };
        self.bounded(self.inner.options.connect_timeout, load)
            .await
            .map(|_| ())
    }

    /// Whether Redis answers a PING within the timeout (bypasses the breaker).
    pub async fn ping(&self) -> Result<(), RedisStoreError> {
        let ping = async {
            match self.inner.connection.clone() {
                Connection::Single(mut c) => redis::cmd("PING").query_async::<String>(&mut c).await,
                Connection::Cluster(mut c) => {
                    redis::cmd("PING").query_async::<String>(&mut c).await
                }
            }
        };
        self.bounded(
            self.inner.options.timeout.max(Duration::from_millis(200)),
            ping,
        )
        .await
        .map(|_| ())
    }

    /// Sends `pipe` on the store's connection (the node, the cluster, or the primary
    /// Sentinel names) and waits at most `timeout` for its replies. It does not go
    /// through the circuit breaker: it is for callers that retry by themselves, such as
    /// a sink writing the tracker's batches to a stream.
    pub async fn query_pipeline(
        &self,
        pipe: &redis::Pipeline,
        timeout: Duration,
    ) -> Result<(), RedisStoreError> {
        let query = async {
            match self.inner.connection.clone() {
                Connection::Single(mut c) => pipe.query_async::<()>(&mut c).await,
                Connection::Cluster(mut c) => pipe.query_async::<()>(&mut c).await,
            }
        };
        self.bounded(timeout, query).await
    }

    /// The error of a call that got no answer within `timeout`.
    #[cfg(feature = "queue")]
    pub(crate) fn timeout_error(&self, timeout: Duration) -> RedisStoreError {
        RedisStoreError::Timeout {
            urls: self.inner.urls.clone(),
            timeout,
        }
    }

    async fn bounded<T>(
        &self,
        timeout: Duration,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisStoreError> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(RedisStoreError::Redis {
                urls: self.inner.urls.clone(),
                source,
            }),
            Err(_) => Err(RedisStoreError::Timeout {
                urls: self.inner.urls.clone(),
                timeout,
            }),
        }
    }

    /// Runs one decision through the script (batched with others waiting), within the
    /// timeout and through the breaker.
    pub(crate) async fn decide(
        &self,
        request: decide::Request,
    ) -> Result<Vec<i64>, RedisStoreError> {
        let inner = &*self.inner;
        let permit = inner.breaker.permit();
        if permit == breaker::Permit::Refuse {
            inner.refused.fetch_add(1, Ordering::Relaxed);
            return Err(RedisStoreError::CircuitOpen {
                urls: inner.urls.clone(),
            });
        }
        let timeout = inner.options.timeout;
        let call = async {
            match &inner.batcher {
                Some(batcher) => {
                    let (reply, answer) = oneshot::channel();
                    if batcher
                        .send(batcher::Queued { request, reply })
                        .await
                        .is_err()
                    {
                        return Err(RedisStoreError::Reply {
                            urls: inner.urls.clone(),
                            reason: "the batching task has stopped".into(),
                        });
                    }
                    answer.await.unwrap_or_else(|_| {
                        Err(RedisStoreError::Reply {
                            urls: inner.urls.clone(),
                            reason: "the batching task dropped the request".into(),
                        })
                    })
                }
                None => decide::invoke(&inner.connection, &inner.script, &[&request], &inner.urls)
                    .await
                    .map(|mut parts| parts.swap_remove(0)),
            }
        };
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(RedisStoreError::Timeout {
                urls: inner.urls.clone(),
                timeout,
            }),
        };
        match &result {
            Ok(_) => inner.breaker.success(permit),
            Err(e) => {
                inner.breaker.failure(permit);
                self.record_error(e);
            }
        }
        result
    }

    fn record_error(&self, e: &RedisStoreError) {
        let inner = &*self.inner;
        inner.errors.fetch_add(1, Ordering::Relaxed);
        if matches!(e, RedisStoreError::Timeout { .. }) {
            inner.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(suppressed) = inner.log_gate.pass() {
            tracing::warn!(error = %e, suppressed, "tidegate: Redis store error");
        }
    }

    /// Runs a plain command on the node owning `routing_key` (or any node).
    pub(crate) async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: Cmd,
    ) -> Result<T, RedisStoreError> {
        let timeout = self.inner.options.timeout.max(Duration::from_millis(500));
        let call = async {
            match self.inner.connection.clone() {
                Connection::Single(mut c) => cmd.query_async::<T>(&mut c).await,
                Connection::Cluster(mut c) => cmd.query_async::<T>(&mut c).await,
            }
        };
        self.bounded(timeout, call).await
    }

    /// Runs a script invocation (EVALSHA, loaded on NOSCRIPT) on the node owning its keys,
    /// within `timeout`; errors are counted and logged like the limiter's. Used by the
    /// tracker's and the queue's scripts, which bypass the limiter's batching and breaker.
    #[cfg(any(feature = "tracker", feature = "queue"))]
    pub(crate) async fn run_script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        timeout: Duration,
    ) -> Result<T, RedisStoreError> {
        let call = async {
            match self.inner.connection.clone() {
                Connection::Single(mut c) => invocation.invoke_async::<T>(&mut c).await,
                Connection::Cluster(mut c) => invocation.invoke_async::<T>(&mut c).await,
            }
        };
        let result = self.bounded(timeout, call).await;
        if let Err(e) = &result {
            self.record_error(e);
        }
        result
    }

    /// Every key matching `pattern`, found with SCAN on every primary (never KEYS),
    /// stopping once `limit` distinct keys are found.
    pub(crate) async fn scan(
        &self,
        pattern: &str,
        limit: usize,
    ) -> Result<Vec<String>, RedisStoreError> {
        let mut found: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        let nodes: Vec<Option<(String, u16)>> = match &self.inner.connection {
            Connection::Single(_) => vec![None],
            Connection::Cluster(_) => self.primaries().await?.into_iter().map(Some).collect(),
        };
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, keys): (u64, Vec<String>) = match (&node, self.inner.connection.clone())
                {
                    (Some((host, port)), Connection::Cluster(mut c)) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        let fut = c.route_command(cmd, routing);
                        let value = self.bounded(Duration::from_secs(2), fut).await?;
                        redis::from_redis_value(value).map_err(|source| RedisStoreError::Redis {
                            urls: self.inner.urls.clone(),
                            source: source.into(),
                        })?
                    }
                    _ => self.command(cmd).await?,
                };
                for k in keys {
                    if found.insert(k.clone()) {
                        out.push(k);
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// `(host, port)` of every primary of the cluster.
    async fn primaries(&self) -> Result<Vec<(String, u16)>, RedisStoreError> {
        let text: String = self
            .command(redis::cmd("CLUSTER").arg("NODES").clone())
            .await?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2)?;
                if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                    return None;
                }
                let addr = fields.get(1)?.split('@').next()?;
                let (host, port) = addr.rsplit_once(':')?;
                Some((host.to_string(), port.parse().ok()?))
            })
            .collect())
    }
}
