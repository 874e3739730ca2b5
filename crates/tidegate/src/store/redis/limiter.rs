//! A limiter whose states live in Redis, with a failure policy for when Redis cannot answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::decide::{Mode, Request};
use super::lease::LeaseTable;
use super::{RedisStore, RedisStoreError};
use crate::algorithm::Algorithm;
use crate::algorithm::Gcra;
use crate::decision::Decision;
use crate::error::{LimitError, PolicyError};
use crate::lease::{Grant, Spend};
use crate::limiter::Limiter;
use crate::policy::Policy;
use crate::policy_set::PolicySet;
use crate::store::{FailurePolicy, LimitStore};
use crate::time::{Clock, CoarseClock, MonotonicClock, duration_to_micros};

/// Extra TTL given to keys written on an explicit (virtual) clock, whose time does not
/// follow the server's: long enough for a replay to come back to a key.
const EXPLICIT_TIME_GRACE_MS: u64 = 60_000;

/// Most keys the deny cache holds.
const DENY_CACHE_CAPACITY: usize = 100_000;

/// Counters of a [`RedisLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct RedisLimiterStats {
    /// Decisions answered by Redis.
    pub decisions: u64,
    /// Decisions answered by the failure policy because Redis could not answer.
    pub fallbacks: u64,
    /// Denials answered from the local deny cache without a round trip.
    pub deny_cache_hits: u64,
    /// Decisions answered from a lease slice held by this instance, without a round trip.
    pub leased: u64,
    /// Lease slices taken from Redis (each one round trip, counted in `decisions`).
    pub lease_takes: u64,
}

/// Builds a [`RedisLimiter`].
#[derive(Debug)]
pub struct RedisLimiterBuilder {
    store: RedisStore,
    name: String,
    policies: PolicySet,
    namespace: String,
    on_error: FailurePolicy,
    deny_cache: bool,
}

impl RedisLimiterBuilder {
    pub(super) fn new(store: RedisStore, name: &str, policies: PolicySet) -> Self {
        Self {
            store,
            name: name.to_string(),
            policies,
            namespace: "tidegate".into(),
            on_error: FailurePolicy::default(),
            deny_cache: false,
        }
    }

    /// Prefix of every key (default `tidegate`).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_string();
        self
    }

    /// What decides when Redis cannot answer in time (default [`FailurePolicy::Local`]).
    pub fn on_error(mut self, on_error: FailurePolicy) -> Self {
        self.on_error = on_error;
        self
    }

    /// Answer a key that Redis just denied locally until its `retry_after` (default off).
    ///
    /// Saves a round trip per request from a client that keeps knocking while denied.
    /// Trade-off: during that time the key is not re-checked, so a reset of the key or
    /// capacity freed by another policy is seen only when the cached `retry_after` ends
    /// (never later than when the denied cost could have been admitted anyway).
    pub fn deny_cache(mut self, on: bool) -> Self {
        self.deny_cache = on;
        self
    }

    /// The limiter; rejects a namespace or name containing `{`, `}` or `:`.
    pub fn build(self) -> Result<RedisLimiter, PolicyError> {
        for (field, value) in [("namespace", &self.namespace), ("name", &self.name)] {
            if value.is_empty() || value.contains(['{', '}', ':']) {
                return Err(PolicyError::new(
                    field,
                    format!("`{value}` must be non-empty and free of `{{`, `}}` and `:`"),
                ));
            }
        }
        let prefix = format!("{}:{}", self.namespace, self.name);
        let suffixes = self
            .policies
            .policies()
            .iter()
            .enumerate()
            .map(|(i, p)| format!("}}:{i}:{}", p.kind()))
            .collect();
        let policy_args = std::iter::once(self.policies.policies().len().to_string())
            .chain(self.policies.policies().iter().flat_map(policy_args))
            .collect();
        let leases = match self.policies.policies() {
            [one] => LeaseTable::for_policy(one),
            many => {
                if many.iter().any(|p| p.lease().is_some()) {
                    return Err(PolicyError::new(
                        "lease",
                        format!(
                            "applies to a key guarded by one policy; `{}` has {}",
                            self.policies,
                            many.len()
                        ),
                    ));
                }
                None
            }
        };
        let fallback = (self.on_error == FailurePolicy::Local)
            .then(|| Limiter::builder(self.policies.clone()).build());
        Ok(RedisLimiter {
            store: self.store,
            name: self.name,
            prefix,
            suffixes,
            policy_args,
            on_error: self.on_error,
            deny_cache: self.deny_cache.then(|| Mutex::new(HashMap::new())),
            fallback,
            leases,
            policies: self.policies,
            decisions: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            deny_cache_hits: AtomicU64::new(0),
            leased: AtomicU64::new(0),
            lease_takes: AtomicU64::new(0),
        })
    }
}

/// The script arguments describing one policy: algorithm, limit, window µs, burst, and
/// for the GCRA family its constants (`Gcra::interval` and `Gcra::tolerance`), so the
/// script does not derive them on every call; for an epoch-aligned fixed window a 1
/// first; 0s otherwise.
fn policy_args(p: &Policy) -> [String; 8] {
    let (limit, window, burst) = p.parts();
    let burst = burst.unwrap_or(limit);
    let ((period, parts), (tol_us, tol_frac)) = match p {
        _ if p.kind().takes_burst() => {
            let gcra = Gcra::new(limit, std::time::Duration::from_micros(window), Some(burst))
                .expect("the parameters of a valid policy");
            (gcra.interval(), gcra.tolerance())
        }
        Policy::FixedWindow(fw) if fw.is_epoch_aligned() => ((1, 0), (0, 0)),
        _ => ((0, 0), (0, 0)),
    };
    [
        p.kind().to_string(),
        limit.to_string(),
        window.to_string(),
        burst.to_string(),
        period.to_string(),
        parts.to_string(),
        tol_us.to_string(),
        tol_frac.to_string(),
    ]
}

/// Decides per key through Redis, shared by every instance using the same Redis, name
/// and policies. Falls back per its [`FailurePolicy`] when Redis cannot answer in time.
pub struct RedisLimiter {
    store: RedisStore,
    name: String,
    prefix: String,
    policies: PolicySet,
    suffixes: Vec<String>,
    /// The script's description of the policy set: `N`, then per policy 4 values.
    policy_args: Arc<[String]>,
    on_error: FailurePolicy,
    deny_cache: Option<Mutex<HashMap<String, (u64, Decision)>>>,
    /// The insurance limiter of [`FailurePolicy::Local`].
    fallback: Option<Limiter<PolicySet>>,
    /// The slices held, when the policy has a `lease`.
    leases: Option<LeaseTable>,
    decisions: AtomicU64,
    fallbacks: AtomicU64,
    deny_cache_hits: AtomicU64,
    leased: AtomicU64,
    lease_takes: AtomicU64,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("name", &self.name)
            .field("policies", &self.policies.to_string())
            .field("on_error", &self.on_error)
            .finish()
    }
}

impl RedisLimiter {
    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policies guarding each key.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The store this limiter decides through.
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// The counters.
    pub fn stats(&self) -> RedisLimiterStats {
        RedisLimiterStats {
            decisions: self.decisions.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            deny_cache_hits: self.deny_cache_hits.load(Ordering::Relaxed),
            leased: self.leased.load(Ordering::Relaxed),
            lease_takes: self.lease_takes.load(Ordering::Relaxed),
        }
    }

    /// The Redis key of policy `i` for `key`: `<namespace>:<name>:{=<key>}:<i>:<algorithm>`.
    ///
    /// The hash tag `{=<key>}` puts every policy key of one user key in one Cluster slot
    /// (the `=` keeps the tag non-empty for an empty key or one starting with `}`).
    pub fn redis_key(&self, key: &str, i: usize) -> String {
        let mut k = String::with_capacity(self.prefix.len() + key.len() + 20);
        k.push_str(&self.prefix);
        k.push_str(":{=");
        k.push_str(key);
        k.push_str(&self.suffixes[i]);
        k
    }

    /// Runs the script for `key`; `Err` means Redis could not answer.
    async fn run(
        &self,
        key: &str,
        cost: u64,
        at: Option<u64>,
        commit: bool,
    ) -> Result<Decision, RedisStoreError> {
        let mode = if commit { Mode::Commit } else { Mode::Peek };
        let reply = self.call(key, cost, at, mode).await?;
        Ok(decode(&reply, self.suffixes.len()))
    }

    /// Sends one request for `key` to the script; the raw reply.
    async fn call(
        &self,
        key: &str,
        cost: u64,
        at: Option<u64>,
        mode: Mode,
    ) -> Result<Vec<i64>, RedisStoreError> {
        let n = self.suffixes.len();
        let request = Request {
            keys: (0..n).map(|i| self.redis_key(key, i)).collect(),
            policies: Arc::clone(&self.policy_args),
            now: at.map_or(-1, |t| t as i64),
            cost,
            mode,
            grace_ms: if at.is_some() {
                EXPLICIT_TIME_GRACE_MS
            } else {
                0
            },
        };
        self.store.decide(request).await
    }

    /// Decides from this instance's slice of `key`'s quota, taking a new slice from
    /// Redis when it cannot pay (one round trip); `None` when no lease can be held for
    /// the key now (the table is full), to decide exactly instead.
    async fn acquire_leased(
        &self,
        leases: &LeaseTable,
        key: &str,
        cost: u64,
    ) -> Option<Result<Decision, LimitError>> {
        let cell = leases.cell(key)?;
        let mut state = cell.lock().await;
        let now = MonotonicClock.now_micros();
        let limit = self.policies.policies()[0].limit();
        let take = match state.spend(now, cost, leases.units) {
            Spend::Local { left, reset_after } => {
                self.leased.fetch_add(1, Ordering::Relaxed);
                return Some(Ok(Decision {
                    allowed: true,
                    limit,
                    remaining: left,
                    retry_after_us: None,
                    reset_after_us: reset_after,
                    delay_us: None,
                }));
            }
            Spend::Denied { retry_after } => {
                self.leased.fetch_add(1, Ordering::Relaxed);
                return Some(Ok(Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    retry_after_us: Some(retry_after),
                    reset_after_us: retry_after,
                    delay_us: None,
                }));
            }
            Spend::Take(take) => take,
        };
        let sent_at = MonotonicClock.now_micros();
        let want = take.want;
        match self.call(key, take.min, None, Mode::Take { want }).await {
            Ok(reply) => {
                self.decisions.fetch_add(1, Ordering::Relaxed);
                let mut d = decode(&reply, 1);
                if !d.allowed {
                    let retry_after = d.retry_after_us.unwrap_or(0);
                    state.denied(take, MonotonicClock.now_micros(), retry_after);
                    return Some(Ok(d));
                }
                self.lease_takes.fetch_add(1, Ordering::Relaxed);
                let grant = Grant {
                    units: d.delay_us.unwrap_or(0),
                    sent_at,
                    taken_at: reply[1].max(0) as u64,
                    reset_after: d.reset_after_us,
                    interval: leases.interval,
                };
                let left = state.granted(take, cost, grant);
                d.remaining = d.remaining.saturating_add(left);
                d.delay_us = None;
                Some(Ok(d))
            }
            Err(_) => {
                state.refused(take);
                drop(state);
                Some(self.fail(key, cost, None, true))
            }
        }
    }

    /// Returns the unspent part of every slice this instance holds to Redis, where the
    /// algorithm allows it (see docs/REDIS_STORE.md, "Leases for hot keys"); call it
    /// before an instance stops. Answers the units given back; a slice that could not
    /// be returned (Redis did not answer, its window ended) stays stranded, within the
    /// documented bound. Without a lease, does nothing.
    pub async fn release_leases(&self) -> Result<u64, LimitError> {
        let Some(leases) = &self.leases else {
            return Ok(0);
        };
        // A slice must still be valid when Redis runs the return, up to a timeout away.
        let margin = duration_to_micros(self.store.options().timeout);
        let slices = leases.drain(MonotonicClock.now_micros() + margin).await;
        let mut given_back = 0;
        let mut failed = None;
        for (key, slice) in slices {
            let mode = Mode::Return {
                taken_at: slice.taken_at,
            };
            match self.call(&key, slice.left, None, mode).await {
                Ok(reply) => given_back += reply[4].max(0) as u64,
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(store_error(e)),
            None => Ok(given_back),
        }
    }

    /// What the failure policy answers when Redis cannot.
    fn fail(
        &self,
        key: &str,
        cost: u64,
        at: Option<u64>,
        commit: bool,
    ) -> Result<Decision, LimitError> {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let now = at.unwrap_or_else(|| CoarseClock.now_micros());
        match self.on_error {
            FailurePolicy::FailOpen => Ok(self.policies.peek(&self.policies.fresh(), now, cost)),
            FailurePolicy::Local => match &self.fallback {
                Some(local) if commit => local.check_at(key, cost, now),
                Some(local) => local.peek_at(key, cost, now),
                None => unreachable!("a Local limiter is built with its fallback"),
            },
            // FailClosed, and any policy this code does not know: deny.
            _ => {
                let wait = duration_to_micros(self.store.options().breaker_cooldown).max(1);
                let p = &self.policies.policies()[0];
                Ok(Decision {
                    allowed: false,
                    limit: p.limit(),
                    remaining: 0,
                    retry_after_us: Some(wait),
                    reset_after_us: wait,
                    delay_us: None,
                })
            }
        }
    }

    fn cached_denial(&self, key: &str) -> Option<Decision> {
        let cache = self.deny_cache.as_ref()?;
        let now = MonotonicClock.now_micros();
        let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
        let &(until, mut decision) = map.get(key)?;
        if now >= until {
            map.remove(key);
            return None;
        }
        let left = until - now;
        decision.retry_after_us = Some(left);
        decision.reset_after_us = decision.reset_after_us.max(left);
        Some(decision)
    }

    fn remember_denial(&self, key: &str, d: &Decision) {
        let (Some(cache), Some(retry)) = (self.deny_cache.as_ref(), d.retry_after_us) else {
            return;
        };
        let now = MonotonicClock.now_micros();
        let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= DENY_CACHE_CAPACITY {
            map.retain(|_, (until, _)| *until > now);
            if map.len() >= DENY_CACHE_CAPACITY {
                return;
            }
        }
        map.insert(key.to_string(), (now + retry, *d));
    }

    /// Up to `limit` keys this limiter holds state for, found with SCAN.
    pub async fn keys(&self, limit: usize) -> Result<Vec<String>, LimitError> {
        let pattern = format!("{}:{{=*", self.prefix);
        let raw = self
            .store
            .scan(&pattern, limit.saturating_mul(self.suffixes.len()))
            .await
            .map_err(store_error)?;
        let head = self.prefix.len() + 3;
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::new();
        for k in raw {
            if let Some(end) = k.rfind("}:")
                && end >= head
                && seen.insert(k[head..end].to_string())
            {
                keys.push(k[head..end].to_string());
                if keys.len() >= limit {
                    break;
                }
            }
        }
        Ok(keys)
    }

    /// Checks the cost and rejects what can never fit.
    fn check_cost(&self, cost: u64) -> Result<(), LimitError> {
        self.policies.check_cost(cost).map_err(LimitError::from)
    }
}

fn store_error(e: RedisStoreError) -> LimitError {
    LimitError::store(e)
}

/// Turns the script's reply into the combined decision.
fn decode(reply: &[i64], n: usize) -> Decision {
    let opt = |v: i64| (v >= 0).then_some(v as u64);
    let one = |i: usize| {
        let r = &reply[2 + 6 * i..2 + 6 * (i + 1)];
        Decision {
            allowed: r[0] == 1,
            limit: r[1] as u64,
            remaining: r[2] as u64,
            retry_after_us: opt(r[3]),
            reset_after_us: r[4] as u64,
            delay_us: opt(r[5]),
        }
    };
    if n == 1 {
        return one(0);
    }
    let each: Vec<Decision> = (0..n).map(one).collect();
    Decision::combine(&each)
}

impl LimitStore for RedisLimiter {
    async fn acquire(&self, key: &str, cost: u64, at: Option<u64>) -> Result<Decision, LimitError> {
        self.check_cost(cost)?;
        if at.is_none()
            && let Some(leases) = &self.leases
            && let Some(decided) = self.acquire_leased(leases, key, cost).await
        {
            return decided;
        }
        if at.is_none()
            && let Some(d) = self.cached_denial(key)
        {
            self.deny_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(d);
        }
        match self.run(key, cost, at, true).await {
            Ok(d) => {
                self.decisions.fetch_add(1, Ordering::Relaxed);
                if !d.allowed && at.is_none() {
                    self.remember_denial(key, &d);
                }
                Ok(d)
            }
            Err(_) => self.fail(key, cost, at, true),
        }
    }

    async fn peek(&self, key: &str, cost: u64, at: Option<u64>) -> Result<Decision, LimitError> {
        self.check_cost(cost)?;
        match self.run(key, cost, at, false).await {
            Ok(d) => Ok(d),
            Err(_) => self.fail(key, cost, at, false),
        }
    }

    async fn reset(&self, key: &str) -> Result<bool, LimitError> {
        if let Some(cache) = &self.deny_cache {
            cache.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        }
        if let Some(local) = &self.fallback {
            local.reset(key);
        }
        if let Some(leases) = &self.leases {
            leases.forget(key);
        }
        let mut del = redis::cmd("DEL");
        for i in 0..self.suffixes.len() {
            del.arg(self.redis_key(key, i));
        }
        let n: u64 = self.store.command(del).await.map_err(store_error)?;
        Ok(n > 0)
    }
}
