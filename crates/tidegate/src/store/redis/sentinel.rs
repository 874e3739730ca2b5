//! A primary found through Redis Sentinel: `redis+sentinel://h1:p1,h2:p2/service[/db]`.
//!
//! The connection asks the sentinels (`SENTINEL get-master-addr-by-name`) where the
//! primary is, checks with `ROLE` that the node it reaches is a primary, and sends
//! every command there. It asks again when the connection to the primary fails, when
//! the primary answers `READONLY` (it was demoted) and, without waiting for an error,
//! when a sentinel names another primary (polled every [`POLL`]). Resolution runs in a
//! task of its own: a caller that gives up (its timeout) does not abort it, so a slow
//! network delays the switch but never prevents it.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, RedisError, RedisFuture, ServerErrorKind, Value,
};
use tokio::sync::watch;

use super::RedisStoreError;

/// How often a sentinel is asked whether the primary moved.
pub(crate) const POLL: Duration = Duration::from_millis(500);

/// The scheme of a Sentinel URL.
pub(crate) const SCHEME: &str = "redis+sentinel://";

/// A parsed `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// `host:port` of each sentinel, asked in this order.
    pub(crate) sentinels: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub(crate) service: String,
    /// `user:password@` (or `:password@`) for the primary, as written; empty for none.
    pub(crate) credentials: String,
    /// The database number on the primary.
    pub(crate) db: i64,
}

impl SentinelUrl {
    /// Parses a Sentinel URL; the error says what is wrong.
    pub(crate) fn parse(url: &str) -> Result<Self, RedisStoreError> {
        let bad = |reason: &str| RedisStoreError::Url {
            url: url.to_string(),
            reason: format!(
                "{reason} (expected redis+sentinel://[user:password@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB])"
            ),
        };
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("must start with redis+sentinel://"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no service name after the sentinels"))?;
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((c, h)) => (format!("{c}@"), h),
            None => (String::new(), authority),
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim) {
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(bad(&format!("sentinel `{host}` has no port")));
            };
            if name.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad(&format!("sentinel `{host}` is not HOST:PORT")));
            }
            sentinels.push(host.to_string());
        }
        let mut parts = path.split('/');
        let service = parts.next().unwrap_or_default().to_string();
        if service.is_empty() {
            return Err(bad("the service name is empty"));
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| bad(&format!("database `{db}` is not a number")))?,
        };
        if parts.next().is_some() {
            return Err(bad("too many path segments"));
        }
        Ok(Self {
            sentinels,
            service,
            credentials,
            db,
        })
    }

    /// The URL of the data node at `addr` (`host:port`).
    fn node_url(&self, addr: &str) -> String {
        format!("redis://{}{addr}/{}", self.credentials, self.db)
    }
}

/// The primary connection now in use, and which resolution made it.
#[derive(Clone)]
struct Current {
    addr: String,
    connection: MultiplexedConnection,
    generation: u64,
}

/// The outcome of one resolution, shared with every caller waiting for it.
type Outcome = Option<Result<Current, RedisError>>;

#[derive(Default)]
struct Slot {
    current: Option<Current>,
    resolving: Option<watch::Receiver<Outcome>>,
    generation: u64,
}

struct Shared {
    url: SentinelUrl,
    connect_timeout: Duration,
    response_timeout: Duration,
    slot: Mutex<Slot>,
    /// The connection kept to each sentinel that answered, by `host:port`.
    to_sentinels: Mutex<Vec<(String, MultiplexedConnection)>>,
    /// Times a resolution reached a primary (1 after the first connection).
    switches: std::sync::atomic::AtomicU64,
}

/// A connection to the primary that Sentinel names, following it across failovers.
/// Cheap to clone; clones share the connection.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<Shared>,
}

impl SentinelConnection {
    /// Sets up the connection and starts the watch of the sentinels. With `strict`,
    /// resolves the primary now and fails if it cannot.
    pub(crate) async fn open(
        url: SentinelUrl,
        connect_timeout: Duration,
        response_timeout: Duration,
        strict: bool,
    ) -> Result<Self, RedisError> {
        let shared = Arc::new(Shared {
            url,
            connect_timeout,
            response_timeout,
            slot: Mutex::new(Slot::default()),
            to_sentinels: Mutex::new(Vec::new()),
            switches: std::sync::atomic::AtomicU64::new(0),
        });
        tokio::spawn(watch_sentinels(Arc::downgrade(&shared)));
        let connection = Self { shared };
        if strict {
            connection.current().await?;
        }
        Ok(connection)
    }

    /// `host:port` of the primary in use, if connected.
    pub(crate) fn primary(&self) -> Option<String> {
        lock(&self.shared.slot)
            .current
            .as_ref()
            .map(|c| c.addr.clone())
    }

    /// Times a (re)resolution connected to a primary.
    pub(crate) fn switches(&self) -> u64 {
        self.shared
            .switches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The connection to the primary, resolving it first if there is none.
    async fn current(&self) -> Result<Current, RedisError> {
        let mut waiting = {
            let mut slot = lock(&self.shared.slot);
            if let Some(current) = &slot.current {
                return Ok(current.clone());
            }
            match &slot.resolving {
                Some(waiting) => waiting.clone(),
                None => {
                    let (publish, waiting) = watch::channel(None);
                    slot.resolving = Some(waiting.clone());
                    tokio::spawn(resolve(Arc::clone(&self.shared), publish));
                    waiting
                }
            }
        };
        let outcome = waiting
            .wait_for(Option::is_some)
            .await
            .map_err(|_| error("the Sentinel resolution stopped".into()))?;
        outcome.clone().expect("waited for an outcome")
    }

    /// After a failed call on `generation`'s connection: forget it when the error
    /// means the primary is gone or demoted, so the next call asks the sentinels.
    fn failed(&self, generation: u64, e: &RedisError) {
        if must_resolve_again(e) {
            self.shared.forget(generation);
        }
    }
}

impl Shared {
    fn forget(&self, generation: u64) {
        let mut slot = lock(&self.slot);
        if slot
            .current
            .as_ref()
            .is_some_and(|c| c.generation == generation)
        {
            slot.current = None;
        }
    }

    /// Asks each sentinel in turn for the primary's `host:port`.
    async fn ask_sentinels(&self) -> Result<String, RedisError> {
        let mut last = error("no sentinel answered".into());
        for sentinel in &self.url.sentinels {
            match self.ask(sentinel).await {
                Ok(addr) => return Ok(addr),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Asks one sentinel, over the connection kept to it from the last question (one
    /// connection per sentinel, made again after an error).
    async fn ask(&self, sentinel: &str) -> Result<String, RedisError> {
        let kept = lock(&self.to_sentinels)
            .iter()
            .find(|(s, _)| s == sentinel)
            .map(|(_, c)| c.clone());
        let mut connection = match kept {
            Some(c) => c,
            None => {
                let client = redis::Client::open(format!("redis://{sentinel}"))?;
                let c = self.connect(&client).await?;
                lock(&self.to_sentinels).push((sentinel.to_string(), c.clone()));
                c
            }
        };
        let reply: Result<Option<(String, u16)>, RedisError> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.url.service)
            .query_async(&mut connection)
            .await;
        let reply =
            reply.inspect_err(|_| lock(&self.to_sentinels).retain(|(s, _)| s != sentinel))?;
        match reply {
            Some((host, port)) => Ok(format!("{host}:{port}")),
            None => Err(error(format!(
                "sentinel {sentinel} does not know the service `{}`",
                self.url.service
            ))),
        }
    }

    async fn connect(&self, client: &redis::Client) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.connect_timeout));
        let connection = client.get_multiplexed_async_connection_with_config(&config);
        match tokio::time::timeout(self.connect_timeout * 2, connection).await {
            Ok(r) => r,
            Err(_) => Err(error(format!(
                "no connection within {:?}",
                self.connect_timeout * 2
            ))),
        }
    }

    /// Finds the primary and connects to it; checks with `ROLE` that it is one.
    async fn connect_primary(&self) -> Result<(String, MultiplexedConnection), RedisError> {
        let addr = self.ask_sentinels().await?;
        let client = redis::Client::open(self.url.node_url(&addr))?;
        let mut connection = self.connect(&client).await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut connection).await?;
        let is_primary = matches!(role.first(), Some(Value::BulkString(b)) if b == b"master");
        if !is_primary {
            return Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ReadOnly),
                "the node Sentinel named is not a primary (yet)",
                addr,
            )));
        }
        // Long calls (a queue's large push) are bounded by their callers; this only
        // lets the connection give up on a reply that never comes.
        connection.set_response_timeout(self.response_timeout);
        Ok((addr, connection))
    }
}

/// One resolution: publishes its outcome to every waiting caller.
async fn resolve(shared: Arc<Shared>, publish: watch::Sender<Outcome>) {
    let outcome = shared.connect_primary().await;
    let outcome = {
        let mut slot = lock(&shared.slot);
        slot.resolving = None;
        outcome.map(|(addr, connection)| {
            slot.generation += 1;
            let current = Current {
                addr,
                connection,
                generation: slot.generation,
            };
            slot.current = Some(current.clone());
            shared
                .switches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            current
        })
    };
    let _ = publish.send(Some(outcome));
}

/// Polls the sentinels every [`POLL`] while the connection lives, and forgets the
/// primary in use as soon as they name another one (a failover), before any call fails.
async fn watch_sentinels(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(POLL).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let in_use = lock(&shared.slot)
            .current
            .as_ref()
            .map(|c| (c.addr.clone(), c.generation));
        let Some((addr, generation)) = in_use else {
            continue;
        };
        if let Ok(named) = shared.ask_sentinels().await
            && named != addr
        {
            tracing::info!(from = %addr, to = %named, "tidegate: Sentinel moved the primary");
            shared.forget(generation);
        }
    }
}

/// Whether an error means the connection no longer reaches a writable primary.
fn must_resolve_again(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
    ) || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

fn error(detail: String) -> RedisError {
    RedisError::from((ErrorKind::Io, "Redis Sentinel", detail))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A server error carried as a reply value (as pipelines return them) also counts.
fn reply_error(value: &Value) -> Option<RedisError> {
    match value {
        Value::ServerError(e) => Some(RedisError::from(e.clone())),
        _ => None,
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut current = self.current().await?;
            let result = current.connection.req_packed_command(cmd).await;
            match &result {
                Err(e) => self.failed(current.generation, e),
                Ok(value) => {
                    if let Some(e) = reply_error(value) {
                        self.failed(current.generation, &e);
                    }
                }
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut current = self.current().await?;
            let result = current
                .connection
                .req_packed_commands(cmd, offset, count)
                .await;
            match &result {
                Err(e) => self.failed(current.generation, e),
                Ok(values) => {
                    if let Some(e) = values.iter().find_map(reply_error) {
                        self.failed(current.generation, &e);
                    }
                }
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.url.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_its_sentinels_service_and_db() {
        let url =
            SentinelUrl::parse("redis+sentinel://:pw@10.0.0.1:26379,s2:26380/cache/3").unwrap();
        assert_eq!(url.sentinels, ["10.0.0.1:26379", "s2:26380"]);
        assert_eq!(url.service, "cache");
        assert_eq!(url.db, 3);
        assert_eq!(url.node_url("h:1"), "redis://:pw@h:1/3");
        let plain = SentinelUrl::parse("redis+sentinel://s:26379/mymaster").unwrap();
        assert_eq!((plain.db, plain.credentials.as_str()), (0, ""));
    }

    #[test]
    fn a_malformed_sentinel_url_is_refused_with_the_reason() {
        for (url, reason) in [
            ("redis+sentinel://s:26379", "no service name"),
            ("redis+sentinel://s:26379/", "service name is empty"),
            ("redis+sentinel://s/mymaster", "has no port"),
            ("redis+sentinel://s:0/mymaster", "is not HOST:PORT"),
            ("redis+sentinel://s:1/m/x", "database `x`"),
            ("redis+sentinel://s:1/m/1/2", "too many path segments"),
        ] {
            let e = SentinelUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(reason), "{url}: {e}");
        }
    }

    #[test]
    fn a_sentinel_url_is_one_store_url_and_stands_alone() {
        use super::super::parse_urls;
        let urls = parse_urls(" redis+sentinel://a:1,b:2/svc ").unwrap();
        assert_eq!(urls, ["redis+sentinel://a:1,b:2/svc"]);
        for url in [
            "redis://a:1,redis+sentinel://b:2/svc",
            "rediss+sentinel://a:1/svc",
        ] {
            let e = parse_urls(url).unwrap_err().to_string();
            assert!(e.contains("Sentinel URL stands alone"), "{url}: {e}");
        }
        assert!(parse_urls("redis+sentinel://a/svc").is_err());
    }
}
