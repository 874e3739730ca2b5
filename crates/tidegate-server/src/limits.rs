//! The named policies the server decides with: each a memory [`Limiter`] or a
//! [`RedisLimiter`], with its header value and metric handles made once at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;
use metrics::{Counter, Histogram};
use serde_json::{Value, json};
use tidegate::headers::policy_set_value;
use tidegate::store::LimitStore;
use tidegate::store::redis::{RedisLimiter, RedisStore};
use tidegate::{Decision, LimitError, Limiter, PolicySet};

use crate::ServeError;
use crate::config::StoreSettings;

/// Where one policy's states live.
pub(crate) enum Backend {
    /// This process's memory.
    Memory(Limiter<PolicySet>),
    /// Redis, shared by every instance.
    Redis(Box<RedisLimiter>),
}

impl Backend {
    /// Decides for `key`, consuming `cost` if admitted.
    pub(crate) async fn acquire(&self, key: &str, cost: u64) -> Result<Decision, LimitError> {
        match self {
            Backend::Memory(l) => l.check(key, cost),
            Backend::Redis(l) => l.acquire(key, cost, None).await,
        }
    }

    /// What a request of `cost` would get now, consuming nothing.
    pub(crate) async fn peek(&self, key: &str, cost: u64) -> Result<Decision, LimitError> {
        match self {
            Backend::Memory(l) => l.peek(key, cost),
            Backend::Redis(l) => l.peek(key, cost, None).await,
        }
    }

    /// Forgets `key`; whether it had state.
    pub(crate) async fn reset(&self, key: &str) -> Result<bool, LimitError> {
        match self {
            Backend::Memory(l) => Ok(l.reset(key)),
            Backend::Redis(l) => LimitStore::reset(&**l, key).await,
        }
    }

    /// Whether `key` has state (memory only; `None` for Redis).
    pub(crate) fn tracked(&self, key: &str) -> Option<bool> {
        match self {
            Backend::Memory(l) => Some(l.state(key).is_some()),
            Backend::Redis(_) => None,
        }
    }

    /// Up to `limit` keys with state, and whether there were more. Redis: SCAN.
    pub(crate) async fn keys(&self, limit: usize) -> Result<(Vec<String>, bool), LimitError> {
        match self {
            Backend::Memory(l) => {
                let mut keys = Vec::new();
                let mut more = false;
                l.store().for_each(|k, _| {
                    if keys.len() < limit {
                        keys.push(k.clone());
                    } else {
                        more = true;
                    }
                });
                Ok((keys, more))
            }
            Backend::Redis(l) => {
                let mut keys = l.keys(limit.saturating_add(1)).await?;
                let more = keys.len() > limit;
                keys.truncate(limit);
                Ok((keys, more))
            }
        }
    }

    /// Store counters for `/admin/stats`.
    pub(crate) fn stats(&self) -> Value {
        match self {
            Backend::Memory(l) => json!({ "memory": l.stats() }),
            Backend::Redis(l) => json!({ "redis": l.stats() }),
        }
    }
}

/// One named policy.
pub(crate) struct NamedPolicy {
    /// Its name.
    pub(crate) name: String,
    /// Its policies (one or several).
    pub(crate) policies: PolicySet,
    /// Where its states live.
    pub(crate) backend: Backend,
    /// `RateLimit-Policy`: every policy of the list (`name`, `name-2`, ...).
    pub(crate) policy_header: HeaderValue,
    allowed: Counter,
    denied: Counter,
    errors: Counter,
    /// Decision latency.
    pub(crate) latency: Histogram,
    /// Its top keys (`None`: `top.enabled = false`).
    pub(crate) top: Option<crate::top::PolicyTop>,
    /// Warnings about a full memory store refusing keys (one per 10 s).
    pub(crate) full_log: crate::log_every::LogEvery,
    counts: [AtomicU64; 3],
}

/// Which way a decision went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// Admitted.
    Allowed = 0,
    /// Refused.
    Denied = 1,
    /// No decision (bad cost, store error).
    Error = 2,
}

impl NamedPolicy {
    fn new(name: String, policies: PolicySet, backend: Backend, top: Option<usize>) -> Self {
        let header = policy_set_value(&name, &policies);
        let counter = |outcome: &'static str| metrics::counter!("tidegate_decisions_total", "policy" => name.clone(), "outcome" => outcome);
        Self {
            policy_header: HeaderValue::from_str(&header)
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            allowed: counter("allowed"),
            denied: counter("denied"),
            errors: counter("error"),
            latency: metrics::histogram!(crate::telemetry::DECISION_SECONDS, "policy" => name.clone()),
            counts: Default::default(),
            top: top.map(crate::top::PolicyTop::new),
            full_log: crate::log_every::LogEvery::new(std::time::Duration::from_secs(10)),
            name,
            policies,
            backend,
        }
    }

    /// Counts a decision.
    pub(crate) fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Allowed => self.allowed.increment(1),
            Outcome::Denied => self.denied.increment(1),
            Outcome::Error => self.errors.increment(1),
        }
        self.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counters for `/admin/stats`.
    pub(crate) fn stats(&self) -> Value {
        let n = |o: Outcome| self.counts[o as usize].load(Ordering::Relaxed);
        let mut v = json!({
            "policy": self.policies.to_string(),
            "allowed": n(Outcome::Allowed),
            "denied": n(Outcome::Denied),
            "errors": n(Outcome::Error),
        });
        if let (Value::Object(m), Value::Object(s)) = (&mut v, self.backend.stats()) {
            m.extend(s);
        }
        v
    }

    /// Refreshes the gauges and counters read from the store (before a scrape).
    pub(crate) fn publish(&self) {
        let policy = self.name.clone();
        match &self.backend {
            Backend::Memory(l) => {
                let s = l.stats();
                metrics::gauge!("tidegate_memory_keys", "policy" => policy.clone())
                    .set(s.keys as f64);
                metrics::gauge!("tidegate_memory_max_keys", "policy" => policy.clone())
                    .set(s.max_keys as f64);
                for (outcome, n) in [
                    ("rejected", s.rejected),
                    ("evicted", s.displaced),
                    ("untracked", s.untracked),
                ] {
                    metrics::counter!("tidegate_memory_full_total", "policy" => policy.clone(), "outcome" => outcome)
                        .absolute(n);
                }
            }
            Backend::Redis(l) => {
                metrics::counter!("tidegate_store_fallbacks_total", "policy" => policy)
                    .absolute(l.stats().fallbacks);
            }
        }
    }
}

/// Keys a memory store of `set` can hold in `budget` bytes, each key up to
/// `max_key_bytes` long: the table entry (key and state headers, with hashbrown's free
/// buckets and control byte), the states, the key's text and both allocations' overhead.
pub(crate) fn keys_in_budget(set: &PolicySet, budget: usize, max_key_bytes: usize) -> usize {
    let entry = 2 * (size_of::<String>() + size_of::<Vec<u64>>() + 1);
    let states = 32 * set.policies().len() + 16;
    let key = max_key_bytes + 16;
    (budget / (entry + states + key)).max(1)
}

/// What is new about full memory stores since the last call, per policy.
#[derive(Debug, Default)]
pub(crate) struct FullWatch {
    seen: HashMap<String, (u64, u64)>,
}

impl FullWatch {
    /// Logs a warning for each policy whose memory store evicted live states or admitted
    /// untracked new keys since its last warning, at most one per policy per 10 s (the
    /// caller calls this every second; refusals are logged where they are answered).
    pub(crate) fn check(&mut self, policies: &Policies) {
        for p in policies.by_name.values() {
            let Backend::Memory(l) = &p.backend else {
                continue;
            };
            let s = l.stats();
            let now = (s.displaced, s.untracked);
            let before = self.seen.get(&p.name).copied().unwrap_or_default();
            if now != before && p.full_log.ready() {
                self.seen.insert(p.name.clone(), now);
                tracing::warn!(
                    policy = %p.name,
                    max_keys = s.max_keys,
                    evicted = now.0 - before.0,
                    admitted_untracked = now.1 - before.1,
                    "the memory store of policy {} is full (store.max_keys {}): new keys evicted others or went untracked (store.on_full)",
                    p.name,
                    s.max_keys
                );
            }
        }
    }
}

/// Every policy, by name, and the Redis store if there is one.
pub(crate) struct Policies {
    /// By name.
    pub(crate) by_name: HashMap<String, NamedPolicy>,
    /// The shared Redis connection.
    pub(crate) redis: Option<RedisStore>,
}

impl Policies {
    /// Returns the unspent lease slices of every Redis policy (at shutdown); the units
    /// given back. A slice Redis does not take back stays stranded, within its bound.
    pub(crate) async fn release_leases(&self) -> u64 {
        let mut returned = 0;
        for (name, policy) in &self.by_name {
            if let Backend::Redis(limiter) = &policy.backend {
                match limiter.release_leases().await {
                    Ok(n) => returned += n,
                    Err(e) => {
                        tracing::warn!(policy = %name, error = %e, "could not return lease slices to Redis");
                    }
                }
            }
        }
        returned
    }

    /// Builds the limiters (connecting to Redis when configured).
    pub(crate) async fn build(
        store: &StoreSettings,
        policies: &[(String, PolicySet)],
        max_key_bytes: usize,
        top: Option<usize>,
    ) -> Result<Self, ServeError> {
        let mut by_name = HashMap::with_capacity(policies.len());
        let redis = match store {
            StoreSettings::Memory {
                max_keys,
                max_memory_bytes,
                on_full,
            } => {
                let share = max_memory_bytes / policies.len().max(1);
                for (name, set) in policies {
                    let max_keys =
                        max_keys.unwrap_or_else(|| keys_in_budget(set, share, max_key_bytes));
                    let limiter = Limiter::builder(set.clone())
                        .max_keys(max_keys)
                        .on_full(*on_full)
                        .build();
                    by_name.insert(
                        name.clone(),
                        NamedPolicy::new(name.clone(), set.clone(), Backend::Memory(limiter), top),
                    );
                }
                None
            }
            StoreSettings::Redis {
                urls,
                options,
                on_error,
                namespace,
                deny_cache,
            } => {
                // A single node that is down now is not fatal: decisions follow
                // `on_error` and `/readyz` answers 503 until it answers.
                let store = RedisStore::open(urls, options.clone())
                    .await
                    .map_err(|source| ServeError::Redis {
                        urls: urls.join(","),
                        source,
                    })?;
                if let Err(e) = store.ping().await {
                    tracing::warn!(error = %e, ?on_error, "Redis does not answer yet; decisions follow on_error until it does");
                }
                for (name, set) in policies {
                    let limiter = store
                        .limiter(name, set.clone())
                        .namespace(namespace)
                        .on_error(*on_error)
                        .deny_cache(*deny_cache)
                        .build()
                        .map_err(|source| ServeError::Policy {
                            policy: name.clone(),
                            source,
                        })?;
                    by_name.insert(
                        name.clone(),
                        NamedPolicy::new(
                            name.clone(),
                            set.clone(),
                            Backend::Redis(Box::new(limiter)),
                            top,
                        ),
                    );
                }
                Some(store)
            }
        };
        Ok(Self { by_name, redis })
    }

    /// Publishes the store's own counters as metrics.
    pub(crate) fn publish(&self) {
        for p in self.by_name.values() {
            p.publish();
        }
        if let Some(store) = &self.redis {
            let s = store.stats();
            metrics::counter!("tidegate_store_errors_total").absolute(s.errors);
            metrics::counter!("tidegate_store_timeouts_total").absolute(s.timeouts);
            metrics::counter!("tidegate_store_refused_total").absolute(s.refused);
            metrics::gauge!("tidegate_store_circuit_open").set(f64::from(u8::from(s.circuit_open)));
        }
    }
}
