//! Batching: decisions waiting at the same moment go to Redis in one script call per
//! hash slot, so the per-call cost of `EVALSHA` is paid once for many decisions.
//!
//! The batcher never waits to fill a batch: it takes the first waiting request and
//! whatever else is already queued (up to `max`), so at low load every batch holds one
//! request and adds no latency. At most `in_flight` calls run at once (pipelined over
//! the multiplexed connection); while they run, new requests queue up, and the next
//! call carries all of them. Load therefore turns into larger batches, not more calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::Script;
use redis::cluster_routing::Slot;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Connection, RedisStoreError};

/// One decision's script input (see `decide.lua`).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The state key of each policy.
    pub(crate) keys: Vec<String>,
    /// The policy set: `N`, then per policy algorithm, limit, window µs, burst. Shared by
    /// every request of a limiter, and sent once per script call.
    pub(crate) policies: Arc<[String]>,
    /// µs, or -1 for the server's `TIME`.
    pub(crate) now: i64,
    pub(crate) cost: u64,
    pub(crate) commit: bool,
    pub(crate) grace_ms: u64,
}

impl Request {
    /// Length of this request's part of the script's reply.
    fn reply_len(&self) -> usize {
        2 + 6 * self.keys.len()
    }
}

pub(crate) type Reply = Result<Vec<i64>, RedisStoreError>;

pub(crate) struct Queued {
    pub(crate) request: Request,
    pub(crate) reply: oneshot::Sender<Reply>,
}

async fn query(connection: &Connection, cmd: &redis::Cmd) -> redis::RedisResult<Vec<i64>> {
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
    cmd.arg(requests.len()).arg(sets.len());
    for set in &sets {
        for a in set.iter() {
            cmd.arg(a.as_str());
        }
    }
    for (r, set) in requests.iter().zip(set_of) {
        cmd.arg(set)
            .arg(r.now)
            .arg(r.cost)
            .arg(if r.commit { "1" } else { "0" })
            .arg(r.grace_ms);
    }
    let flat: Vec<i64> = match query(connection, &cmd).await {
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
    let mut out = Vec::with_capacity(requests.len());
    let mut at = 0;
    for r in requests {
        let end = at + r.reply_len();
        let Some(part) = flat.get(at..end) else {
            return Err(RedisStoreError::Reply {
                urls: urls.to_string(),
                reason: format!(
                    "script reply has {} values, expected at least {end}",
                    flat.len()
                ),
            });
        };
        out.push(part.to_vec());
        at = end;
    }
    Ok(out)
}

/// Script calls made by the batcher and the decisions they carried.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) calls: AtomicU64,
    pub(crate) requests: AtomicU64,
}

/// Starts the batcher task; requests sent to the returned channel are answered on their
/// oneshot. Ends when every sender is dropped.
pub(crate) fn spawn(
    connection: Connection,
    script: Arc<Script>,
    urls: Arc<str>,
    max: usize,
    in_flight: usize,
    cluster: bool,
    counters: Arc<Counters>,
) -> mpsc::Sender<Queued> {
    let (tx, mut rx) = mpsc::channel::<Queued>(65_536);
    let calls = Arc::new(Semaphore::new(in_flight.max(1)));
    tokio::spawn(async move {
        let mut waiting = Vec::with_capacity(max);
        loop {
            let Ok(permit) = Arc::clone(&calls).acquire_owned().await else {
                return;
            };
            if rx.recv_many(&mut waiting, max).await == 0 {
                return;
            }
            // One permit per round; the groups of a round (one per hash slot) share it.
            let permit = Arc::new(permit);
            let groups: Vec<Vec<Queued>> = if cluster {
                let mut by_slot: HashMap<Slot, Vec<Queued>> = HashMap::new();
                for q in waiting.drain(..) {
                    by_slot
                        .entry(Slot::for_key(q.request.keys[0].as_bytes()))
                        .or_default()
                        .push(q);
                }
                by_slot.into_values().collect()
            } else {
                vec![std::mem::replace(&mut waiting, Vec::with_capacity(max))]
            };
            for group in groups {
                counters.calls.fetch_add(1, Ordering::Relaxed);
                counters
                    .requests
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                let (connection, script, urls) =
                    (connection.clone(), Arc::clone(&script), Arc::clone(&urls));
                let permit = Arc::clone(&permit);
                tokio::spawn(async move {
                    let _permit = permit;
                    let requests: Vec<&Request> = group.iter().map(|q| &q.request).collect();
                    let result = invoke(&connection, &script, &requests, &urls).await;
                    match result {
                        Ok(parts) => {
                            for (q, part) in group.into_iter().zip(parts) {
                                let _ = q.reply.send(Ok(part));
                            }
                        }
                        Err(e) => {
                            for q in group {
                                let _ = q.reply.send(Err(e.clone()));
                            }
                        }
                    }
                });
            }
        }
    });
    tx
}
