//! The decision script's protocol (`decide.lua`): one request per decision, many
//! requests per call (through the [batcher](super::batcher)), the reply split back.

use std::sync::Arc;

use redis::Script;
use redis::cluster_routing::Slot;

use super::batcher::BatchCall;
use super::{Connection, RedisStoreError};

/// One decision's script input (see `decide.lua`).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The state key of each policy.
    pub(crate) keys: Vec<String>,
    /// The policy set: `N`, then per policy algorithm, limit, window µs, burst and the
    /// GCRA constants (see `decide.lua`). Shared by
    /// every request of a limiter, and sent once per script call.
    pub(crate) policies: Arc<[String]>,
    /// µs, or -1 for the server's `TIME`.
    pub(crate) now: i64,
    pub(crate) cost: u64,
    pub(crate) mode: Mode,
    pub(crate) grace_ms: u64,
}

/// What a request does with its key (see `decide.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Decide without consuming.
    Peek,
    /// Decide and consume the cost when every policy admits.
    Commit,
    /// Take a lease slice: `want` units if they fit now, else as many as fit but at
    /// least the request's cost (its `cost` is that minimum); the reply's `delay` field
    /// is the number of units granted.
    Take {
        /// Units wanted.
        want: u64,
    },
    /// Return `cost` unspent units of a slice taken at the server's µs time
    /// `taken_at`; the reply's `remaining` field is the number of units refunded.
    Return {
        /// The server's time of the take.
        taken_at: u64,
    },
}

impl Mode {
    /// The script's mode number and its extra argument.
    fn args(self) -> (f64, u64) {
        match self {
            Self::Peek => (0.0, 0),
            Self::Commit => (1.0, 0),
            Self::Take { want } => (2.0, want),
            Self::Return { taken_at } => (3.0, taken_at),
        }
    }
}

impl Request {
    /// Length of this request's part of the script's reply.
    fn reply_len(&self) -> usize {
        2 + 6 * self.keys.len()
    }
}

/// One decision's part of the script's reply, or why the call failed.
pub(crate) type Reply = Result<Vec<i64>, RedisStoreError>;

/// Bytes of one request in the script's packed argument.
const REQUEST_BYTES: usize = 6 * 8;

async fn query(connection: &Connection, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    match connection.clone() {
        Connection::Single(mut c) => cmd.query_async(&mut c).await,
        Connection::Cluster(mut c) => cmd.query_async(&mut c).await,
    }
}

/// Runs the script once for `requests` (all in one hash slot) and splits the reply.
pub(crate) async fn invoke(
    connection: &Connection,
    script: &Script,
    requests: &[&Request],
    urls: &str,
) -> Result<Vec<Vec<i64>>, RedisStoreError> {
    // The distinct policy sets of this call, each sent once.
    let mut sets: Vec<&Arc<[String]>> = Vec::new();
    let set_of: Vec<usize> = requests
        .iter()
        .map(
            |r| match sets.iter().position(|s| Arc::ptr_eq(s, &r.policies)) {
                Some(i) => i + 1,
                None => {
                    sets.push(&r.policies);
                    sets.len()
                }
            },
        )
        .collect();
    // The command is built in one buffer (a `ScriptInvocation` would allocate per
    // argument); NOSCRIPT is handled below, as `invoke_async` would.
    let keys: usize = requests.iter().map(|r| r.keys.len()).sum();
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys);
    for r in requests {
        for k in &r.keys {
            cmd.arg(k.as_str());
        }
    }
    // Every request's numbers in one argument: 6 doubles each (the script's integers
    // are doubles; a u64 converts to the same nearest double as the script's
    // `tonumber` of its decimal text would).
    let mut packed = Vec::with_capacity(REQUEST_BYTES * requests.len());
    for (r, set) in requests.iter().zip(set_of) {
        let (mode, extra) = r.mode.args();
        for v in [
            set as f64,
            r.now as f64,
            r.cost as f64,
            mode,
            r.grace_ms as f64,
            extra as f64,
        ] {
            packed.extend_from_slice(&v.to_le_bytes());
        }
    }
    cmd.arg(packed).arg(sets.len());
    for set in &sets {
        for a in set.iter() {
            cmd.arg(a.as_str());
        }
    }
    let reply = match query(connection, &cmd).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            match connection.clone() {
                Connection::Single(mut c) => script.prepare_invoke().load_async(&mut c).await,
                Connection::Cluster(mut c) => script.prepare_invoke().load_async(&mut c).await,
            }
            .map_err(|source| RedisStoreError::Redis {
                urls: urls.to_string(),
                source,
            })?;
            query(connection, &cmd).await
        }
        other => other,
    }
    .map_err(|source| RedisStoreError::Redis {
        urls: urls.to_string(),
        source,
    })?;
    let redis::Value::BulkString(bytes) = reply else {
        return Err(RedisStoreError::Reply {
            urls: urls.to_string(),
            reason: format!("script reply is not a string: {reply:?}"),
        });
    };
    // Doubles holding integers; `as` truncates like Redis's own integer replies.
    let mut flat = bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as i64);
    let mut out = Vec::with_capacity(requests.len());
    let mut at = 0;
    for r in requests {
        let len = r.reply_len();
        let part: Vec<i64> = flat.by_ref().take(len).collect();
        at += len;
        if part.len() < len {
            return Err(RedisStoreError::Reply {
                urls: urls.to_string(),
                reason: format!(
                    "script reply has {} values, expected at least {at}",
                    bytes.len() / 8
                ),
            });
        }
        out.push(part);
    }
    Ok(out)
}

/// Decision calls through the batcher: requests of one hash slot share an `EVALSHA`.
pub(crate) struct DecideCall {
    pub(crate) connection: Connection,
    pub(crate) script: Arc<Script>,
    pub(crate) urls: Arc<str>,
    pub(crate) cluster: bool,
}

impl BatchCall for DecideCall {
    type Request = Request;
    type Answer = Reply;
    type Group = Option<Slot>;

    fn group(&self, request: &Request) -> Option<Slot> {
        self.cluster
            .then(|| Slot::for_key(request.keys[0].as_bytes()))
    }

    async fn call(&self, requests: Vec<&Request>) -> Vec<Reply> {
        match invoke(&self.connection, &self.script, &requests, &self.urls).await {
            Ok(parts) => parts.into_iter().map(Ok).collect(),
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}
