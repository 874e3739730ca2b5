//! The tracker's records in Redis, shared by any number of instances: every change is
//! one call of `tracker.lua` (atomic), claimed batches carry a lease, and a batch whose
//! claimer died is taken over by another instance once its lease expires.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::{Arc, OnceLock};

use redis::Script;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::core::{Gate, RecordSettings};
use super::record::{
    DeliveredRecord, IgnoreReason, RecordKey, RecordSnapshot, RecordView, TrackOutcome,
};
use super::store::Reconfigured;
use super::{Details, StoreError, Strategy, TrackError};
use crate::store::redis::batcher::{self, BatchCall, Counters, Queued};
use crate::store::redis::{RedisStore, RedisStoreError};

/// The tracker script: the Lua algorithms, then the tracker's operations.
pub const TRACKER_LUA: &str = crate::store::redis::lua_script!("tracker/tracker.lua");

/// Sent in place of a detail over `max_detail_bytes` (no JSON text starts with U+0001):
/// the script counts it as dropped if the event is deferred.
const OVERSIZED_DETAIL: &str = "\u{1}";

/// How long a tracker call to Redis may take before it fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Most events decided by one `track` call: concurrent `track_event` calls share a
/// script call (never waiting to fill one), like the limiter's batching.
const TRACK_BATCH: usize = 64;

/// `track` calls in flight at once.
const TRACK_IN_FLIGHT: usize = 4;

/// `track` calls through the Redis batcher: events of one tracker (one hash tag) share a
/// script call. A request is `[now, category, id, detail]`; its answer the six values of
/// its outcome.
struct TrackCall {
    store: RedisStore,
    script: Arc<Script>,
    prefix: String,
    /// `track`, max_keys, max_details and the default settings of new records.
    head: Vec<String>,
}

impl BatchCall for TrackCall {
    type Request = [String; 4];
    type Answer = Result<[i64; 6], TrackError>;
    type Group = ();

    fn group(&self, _request: &[String; 4]) {}

    async fn call(&self, requests: Vec<&[String; 4]>) -> Vec<Self::Answer> {
        let mut invocation = self.script.key(self.prefix.as_str());
        for a in &self.head {
            invocation.arg(a.as_str());
        }
        invocation.arg(requests.len());
        for r in &requests {
            for a in r.iter() {
                invocation.arg(a.as_str());
            }
        }
        let result: Result<Vec<u8>, TrackError> = self
            .store
            .run_script(&invocation, CALL_TIMEOUT)
            .await
            .map_err(store_error);
        match result.map(|packed| track_reply(&packed)) {
            Ok(Some(v)) if v.len() == 6 * requests.len() => v
                .chunks_exact(6)
                .map(|part| {
                    let mut out = [0i64; 6];
                    out.copy_from_slice(part);
                    Ok(out)
                })
                .collect(),
            Ok(v) => {
                let e = bad_reply(format!(
                    "track answered {} values for {} events",
                    v.map_or(0, |v| v.len()),
                    requests.len()
                ));
                requests.iter().map(|_| Err(e.clone())).collect()
            }
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}

/// The numbers of a `track` reply: the script packs them as little-endian doubles (one
/// bulk string, where a reply of integers took the client longer to parse than the
/// rest of the call); each is a whole number below 2^53, exact as a double. `None` when
/// the length is not a whole number of doubles.
pub fn track_reply(packed: &[u8]) -> Option<Vec<i64>> {
    if !packed.len().is_multiple_of(8) {
        return None;
    }
    Some(
        packed
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as i64)
            .collect(),
    )
}

/// Claims one tick makes at most (each up to `max_batch_size` records).
const MAX_CLAIMS_PER_TICK: usize = 1_000;

/// A batch claimed from Redis: its claim id and records.
#[derive(Debug)]
pub(crate) struct RedisClaim {
    pub(crate) id: String,
    pub(crate) records: Vec<DeliveredRecord>,
    /// Taken over from an instance whose lease expired.
    pub(crate) taken_over: bool,
}

/// What Redis said about the tracker as a whole (see `gauges` in the script).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    pub(crate) records: usize,
    pub(crate) waiting: usize,
    pub(crate) next_due: Option<u64>,
}

/// The records of one named tracker in Redis.
pub(crate) struct RedisRecords {
    store: RedisStore,
    /// `tidegate:tracker:{<name>}:`, the prefix (and hash tag) of every key.
    prefix: String,
    script: Arc<Script>,
    /// The batching task of `track` calls, started on first use (inside a runtime).
    batcher: OnceLock<mpsc::Sender<Queued<TrackCall>>>,
    max_keys: usize,
    max_details: usize,
    max_detail_bytes: usize,
    /// Details not sent because they were over `max_detail_bytes`.
    dropped_by_size: AtomicU64,
    lease_us: u64,
    records: AtomicUsize,
    waiting: AtomicUsize,
}

fn store_error(e: RedisStoreError) -> TrackError {
    TrackError::Store(StoreError::Redis(e))
}

/// The record's settings as the script's arguments (its SETTINGS order).
pub fn settings_args(s: &RecordSettings) -> [String; 10] {
    let (size, rate, window) = match s.strategy {
        Strategy::SimpleCounter => (0, 0.0, 0),
        Strategy::TokenBucket {
            bucket_size,
            refill_rate,
        } => (bucket_size, refill_rate, 0),
        Strategy::SlidingWindow { window_size } => {
            (0, 0.0, crate::time::duration_to_micros(window_size))
        }
    };
    let (kind, l, w, b) = match s.gate {
        Gate::Counter { limit } => ("c", limit, 0, 0),
        Gate::Bucket(bucket) => {
            let r = bucket.rate();
            ("b", r.limit, r.window, r.burst)
        }
        Gate::Window(window) => {
            let (limit, w) = window.params();
            ("w", limit, w, 0)
        }
    };
    [
        s.strategy.name().to_string(),
        s.limit.to_string(),
        size.to_string(),
        rate.to_string(),
        window.to_string(),
        kind.to_string(),
        l.to_string(),
        w.to_string(),
        b.to_string(),
        s.defer_us.to_string(),
    ]
}

/// Parses the script's settings reply back into settings.
fn parse_settings(v: &[Option<String>]) -> Result<RecordSettings, TrackError> {
    let field = |i: usize| v.get(i).cloned().flatten().unwrap_or_default();
    let int = |i: usize| field(i).parse::<u64>().unwrap_or(0);
    let strategy = match field(0).as_str() {
        "token_bucket" => Strategy::TokenBucket {
            bucket_size: int(2),
            refill_rate: field(3).parse().unwrap_or(0.0),
        },
        "sliding_window" => Strategy::SlidingWindow {
            window_size: Duration::from_micros(int(4)),
        },
        _ => Strategy::SimpleCounter,
    };
    let limit = int(1);
    Ok(RecordSettings {
        strategy,
        limit,
        gate: Gate::new(strategy, limit)?,
        defer_us: int(9),
    })
}

/// A `track` answer as the event's outcome.
fn outcome(
    category: &str,
    id: &str,
    reply: Result<<TrackCall as BatchCall>::Answer, oneshot::error::RecvError>,
) -> Result<TrackOutcome, TrackError> {
    let v = reply.map_err(|_| TrackError::Store(StoreError::Stopped))??;
    let record = view(category, id, &v[1..]);
    Ok(match v[0] {
        0 => TrackOutcome::Immediate(record),
        1 => TrackOutcome::Deferred(record),
        _ => TrackOutcome::Ignored {
            reason: IgnoreReason::KeyLimitReached,
            record,
        },
    })
}

/// A record view from the script's `{total, deferred, scheduled_at, first, last}`.
fn view(category: &str, id: &str, v: &[i64]) -> RecordView {
    RecordView {
        key: std::sync::Arc::new(RecordKey {
            category: category.to_string(),
            id: id.to_string(),
        }),
        total: v[0].max(0) as u64,
        deferred: v[1].max(0) as u64,
        scheduled_at_us: (v[2] >= 0).then_some(v[2] as u64),
        first_seen_us: v[3].max(0) as u64,
        last_seen_us: v[4].max(0) as u64,
    }
}

/// A snapshot from the script's `record` reply: the view's five values, then in flight,
/// failed rounds, details kept and dropped of the waiting batch.
fn snapshot_of(category: &str, id: &str, v: &[i64]) -> Result<RecordSnapshot, TrackError> {
    if v.len() != 9 {
        return Err(bad_reply(format!("record has {} values", v.len())));
    }
    let count = |i: usize| v[i].max(0) as u64;
    Ok(RecordSnapshot {
        view: view(category, id, &v[..5]),
        in_flight: count(5) as u32,
        failed_rounds: count(6) as u32,
        details: count(7),
        details_dropped: count(8),
    })
}

/// Escapes the glob characters of SCAN MATCH.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn bad_reply(reason: impl Into<String>) -> TrackError {
    TrackError::Store(StoreError::BadReply(reason.into()))
}

impl RedisRecords {
    pub(crate) fn new(
        store: RedisStore,
        name: &str,
        max_keys: usize,
        max_details: usize,
        max_detail_bytes: usize,
        lease: Duration,
    ) -> Self {
        Self {
            store,
            prefix: format!("tidegate:tracker:{{{name}}}:"),
            script: Arc::new(Script::new(TRACKER_LUA)),
            batcher: OnceLock::new(),
            max_keys,
            max_details,
            max_detail_bytes,
            dropped_by_size: AtomicU64::new(0),
            lease_us: crate::time::duration_to_micros(lease),
            records: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        op: &str,
        args: &[&str],
    ) -> Result<T, TrackError> {
        let mut invocation = self.script.key(&self.prefix);
        invocation.arg(op);
        for a in args {
            invocation.arg(*a);
        }
        self.store
            .run_script(&invocation, CALL_TIMEOUT)
            .await
            .map_err(store_error)
    }

    /// Records held, as of the latest [`refresh`](Self::refresh).
    pub(crate) fn len(&self) -> usize {
        self.records.load(Ordering::Relaxed)
    }

    /// Waiting batches, as of the latest refresh.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Reads the gauges from Redis and caches them.
    pub(crate) async fn refresh(&self) -> Result<Gauges, TrackError> {
        let v: Vec<i64> = self.call("gauges", &[]).await?;
        if v.len() != 6 {
            return Err(bad_reply(format!("gauges has {} values", v.len())));
        }
        let g = Gauges {
            records: v[0].max(0) as usize,
            waiting: v[1].max(0) as usize,
            next_due: (v[3] >= 0).then_some(v[3] as u64),
        };
        self.records.store(g.records, Ordering::Relaxed);
        self.waiting.store(g.waiting, Ordering::Relaxed);
        Ok(g)
    }

    /// Details not sent because they were over `max_detail_bytes`.
    pub(crate) fn dropped_by_size(&self) -> u64 {
        self.dropped_by_size.load(Ordering::Relaxed)
    }

    pub(crate) async fn track(
        &self,
        category: &str,
        id: &str,
        details: &Details,
        now: u64,
        settings: &RecordSettings,
    ) -> Result<TrackOutcome, TrackError> {
        let answer = self.queue(category, id, details, now, settings).await?;
        // Bounded from the caller's side too: a request still queued behind stuck calls
        // when this gives up is dropped by the batcher, never sent.
        match tokio::time::timeout(CALL_TIMEOUT, answer).await {
            Ok(reply) => outcome(category, id, reply),
            Err(_) => Err(TrackError::Store(StoreError::NoAnswer(CALL_TIMEOUT))),
        }
    }

    /// [`track`](Self::track) for many events at once, answered in order: all are
    /// queued for the batcher (sharing its script calls) before any answer is awaited,
    /// and the lot shares one timeout, not a timer per event.
    pub(crate) async fn track_many(
        &self,
        events: &[(&str, &str, &Details)],
        now: u64,
        settings: &RecordSettings,
    ) -> Vec<Result<TrackOutcome, TrackError>> {
        let mut answers = Vec::with_capacity(events.len());
        for &(category, id, details) in events {
            answers.push(self.queue(category, id, details, now, settings).await);
        }
        let mut out = Vec::with_capacity(events.len());
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        for (&(category, id, _), answer) in events.iter().zip(answers) {
            out.push(match answer {
                Ok(answer) => match tokio::time::timeout_at(deadline, answer).await {
                    Ok(reply) => outcome(category, id, reply),
                    Err(_) => Err(TrackError::Store(StoreError::NoAnswer(CALL_TIMEOUT))),
                },
                Err(e) => Err(e),
            });
        }
        out
    }

    /// Queues one event for the batcher; the receiver gets the script's six numbers.
    async fn queue(
        &self,
        category: &str,
        id: &str,
        details: &Details,
        now: u64,
        settings: &RecordSettings,
    ) -> Result<oneshot::Receiver<<TrackCall as BatchCall>::Answer>, TrackError> {
        let detail = if details.is_null() {
            String::new()
        } else if details.len() > self.max_detail_bytes {
            // Not sent, but the record counts it in `details_dropped` as memory does.
            self.dropped_by_size.fetch_add(1, Ordering::Relaxed);
            OVERSIZED_DETAIL.to_string()
        } else {
            details.as_str().to_string()
        };
        let batcher = self.batcher.get_or_init(|| self.spawn_batcher(settings));
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            request: [
                now.to_string(),
                category.to_string(),
                id.to_string(),
                detail,
            ],
            reply,
        };
        batcher
            .send(queued)
            .await
            .map_err(|_| TrackError::Store(StoreError::Stopped))?;
        Ok(answer)
    }

    /// Starts the task that sends waiting `track` requests, up to [`TRACK_BATCH`] per
    /// script call and [`TRACK_IN_FLIGHT`] calls at once. New records get `settings`
    /// (the tracker's defaults, fixed when it is built).
    fn spawn_batcher(&self, settings: &RecordSettings) -> mpsc::Sender<Queued<TrackCall>> {
        let mut head: Vec<String> = vec![
            "track".into(),
            self.max_keys.to_string(),
            self.max_details.to_string(),
        ];
        head.extend(settings_args(settings));
        let call = TrackCall {
            store: self.store.clone(),
            script: Arc::clone(&self.script),
            prefix: self.prefix.clone(),
            head,
        };
        batcher::spawn(
            Arc::new(call),
            TRACK_BATCH,
            TRACK_IN_FLIGHT,
            Arc::new(Counters::default()),
        )
    }

    /// Claims due batches (and batches whose lease expired), each of at most `max`
    /// records, under a lease of this instance.
    pub(crate) async fn claim_due(
        &self,
        now: u64,
        max: usize,
    ) -> Result<Vec<RedisClaim>, TrackError> {
        let mut out = Vec::new();
        let lease_until = now.saturating_add(self.lease_us).to_string();
        let (now, max) = (now.to_string(), max.to_string());
        for _ in 0..MAX_CLAIMS_PER_TICK {
            let v: Vec<redis::Value> = self.call("claim", &[&now, &lease_until, &max]).await?;
            if v.is_empty() {
                break;
            }
            out.push(parse_claim(v)?);
        }
        Ok(out)
    }

    /// Extends the leases of claims this instance still holds.
    pub(crate) async fn renew(&self, now: u64, claims: &[String]) -> Result<(), TrackError> {
        if claims.is_empty() {
            return Ok(());
        }
        let lease_until = now.saturating_add(self.lease_us).to_string();
        let mut args: Vec<&str> = vec![&lease_until];
        args.extend(claims.iter().map(String::as_str));
        self.call::<i64>("renew", &args).await.map(|_| ())
    }

    /// The processor took the claim (`processed`) or the dead-letter sink did (`dead`).
    pub(crate) async fn settle(&self, op: &str, claim: &str) -> Result<(), TrackError> {
        self.call::<i64>(op, &[claim]).await.map(|_| ())
    }

    /// A round failed: the claim's records wait again.
    pub(crate) async fn defer_again(&self, claim: &str, now: u64) -> Result<(), TrackError> {
        let (now, cap) = (now.to_string(), self.max_details.to_string());
        self.call::<i64>("defer", &[&now, claim, &cap])
            .await
            .map(|_| ())
    }

    pub(crate) async fn settings(
        &self,
        category: &str,
        id: &str,
    ) -> Result<Option<RecordSettings>, TrackError> {
        let v: Vec<Option<String>> = self.call("settings", &[category, id]).await?;
        if v.is_empty() {
            return Ok(None);
        }
        parse_settings(&v).map(Some)
    }

    pub(crate) async fn reconfigure(
        &self,
        category: &str,
        id: &str,
        expected: &RecordSettings,
        settings: &RecordSettings,
    ) -> Result<Reconfigured, TrackError> {
        let (e, s) = (settings_args(expected), settings_args(settings));
        let mut args: Vec<&str> = vec![category, id];
        args.extend(e.iter().chain(&s).map(String::as_str));
        let v: Vec<i64> = self.call("configure", &args).await?;
        Ok(match v.len() {
            5 => Reconfigured::Done(view(category, id, &v)),
            0 => Reconfigured::Missing,
            _ => Reconfigured::Changed,
        })
    }

    /// The record as Redis holds it, or `None`.
    pub(crate) async fn snapshot(
        &self,
        category: &str,
        id: &str,
    ) -> Result<Option<RecordSnapshot>, TrackError> {
        let v: Vec<i64> = self.call("record", &[category, id]).await?;
        if v.is_empty() {
            return Ok(None);
        }
        snapshot_of(category, id, &v).map(Some)
    }

    /// The records whose waiting batch is due at or before `due_by`, earliest first, at
    /// most `limit`.
    pub(crate) async fn waiting_records(
        &self,
        due_by: u64,
        limit: usize,
    ) -> Result<Vec<RecordSnapshot>, TrackError> {
        let (due_by, limit) = (due_by.to_string(), limit.to_string());
        let v: Vec<redis::Value> = self.call("waiting", &[&due_by, &limit]).await?;
        let items = texts(v)?;
        items
            .chunks(11)
            .map(|part| {
                let [category, id, values @ ..] = part else {
                    return Err(bad_reply("a waiting record ends early"));
                };
                let values = values
                    .iter()
                    .map(|s| {
                        s.parse::<i64>()
                            .map_err(|_| bad_reply(format!("`{s}` is not a number")))
                    })
                    .collect::<Result<Vec<i64>, TrackError>>()?;
                snapshot_of(category, id, &values)
            })
            .collect()
    }

    /// Resets the record at `now`: `None` when it does not exist, else the batch that was
    /// waiting, claimed under a lease of this instance.
    pub(crate) async fn reset(
        &self,
        category: &str,
        id: &str,
        now: u64,
    ) -> Result<Option<Option<RedisClaim>>, TrackError> {
        let lease_until = now.saturating_add(self.lease_us).to_string();
        let now = now.to_string();
        let mut v: Vec<redis::Value> = self
            .call("reset", &[&now, &lease_until, category, id])
            .await?;
        if v.is_empty() {
            return Ok(None);
        }
        v.remove(0);
        if v.is_empty() {
            return Ok(Some(None));
        }
        parse_claim(v).map(|c| Some(Some(c)))
    }

    pub(crate) async fn purge_step(
        &self,
        now: u64,
        expire_us: u64,
        budget: usize,
    ) -> Result<usize, TrackError> {
        let Some(cutoff) = now.checked_sub(expire_us) else {
            return Ok(0);
        };
        let (cutoff, budget) = (cutoff.to_string(), budget.to_string());
        let removed: i64 = self.call("purge", &[&cutoff, &budget]).await?;
        Ok(removed.max(0) as usize)
    }

    /// Deletes every key of this tracker (records, batches, claims).
    pub(crate) async fn clear(&self) -> Result<usize, TrackError> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let keys = self
            .store
            .scan(&pattern, usize::MAX)
            .await
            .map_err(store_error)?;
        for chunk in keys.chunks(500) {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(chunk);
            self.store.command::<i64>(cmd).await.map_err(store_error)?;
        }
        Ok(keys.len())
    }
}

/// A reply's items as text (bulk strings, integers).
fn texts(v: Vec<redis::Value>) -> Result<Vec<String>, TrackError> {
    v.into_iter()
        .map(|x| match x {
            redis::Value::BulkString(b) => {
                String::from_utf8(b).map_err(|e| bad_reply(e.to_string()))
            }
            redis::Value::Int(i) => Ok(i.to_string()),
            redis::Value::SimpleString(s) => Ok(s),
            other => Err(bad_reply(format!("{other:?}"))),
        })
        .collect()
}

/// Parses a claim reply: `{id, taken_over, then per record: category, id, count,
/// first_seen, last_seen, dropped, failed_rounds, #details, details...}`.
fn parse_claim(v: Vec<redis::Value>) -> Result<RedisClaim, TrackError> {
    let items = texts(v)?;
    let mut items = items.into_iter();
    let mut next = || items.next().ok_or_else(|| bad_reply("a claim ends early"));
    let int = |s: String| -> Result<u64, TrackError> {
        s.parse::<u64>()
            .map_err(|_| bad_reply(format!("`{s}` is not a count")))
    };
    let id = next()?;
    let taken_over = next()? == "1";
    let mut records = Vec::new();
    while let Ok(category) = next() {
        let rid = next()?;
        let count = int(next()?)?;
        let first_seen_us = int(next()?)?;
        let last_seen_us = int(next()?)?;
        let details_dropped = int(next()?)?;
        let failed_rounds = int(next()?)? as u32;
        let n = int(next()?)?;
        let mut details = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            let text = next()?;
            details.push(
                Details::from_json(&text).unwrap_or_else(|_| Details::from(Value::String(text))),
            );
        }
        records.push(DeliveredRecord {
            category,
            id: rid,
            count,
            first_seen_us,
            last_seen_us,
            details,
            details_dropped,
            failed_rounds,
        });
    }
    Ok(RedisClaim {
        id,
        records,
        taken_over,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_reply_reads_back_the_whole_numbers_the_script_packed() {
        let numbers = [0i64, 1, -1, 1_733_616_000_000_000, (1 << 53) - 1];
        let packed: Vec<u8> = numbers
            .iter()
            .flat_map(|&n| (n as f64).to_le_bytes())
            .collect();
        assert_eq!(track_reply(&packed), Some(numbers.to_vec()));
    }

    #[test]
    fn a_track_reply_that_is_not_whole_doubles_is_refused() {
        assert_eq!(track_reply(&[0; 12]), None);
        assert_eq!(track_reply(&[]), Some(Vec::new()));
    }
}
