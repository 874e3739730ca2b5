//! Where the counters live: in memory (one tidegate `Limiter` per rule) or in Redis (one
//! `RedisLimiter` per rule, shared by every instance on the same Redis).

use std::sync::Arc;

use tidegate::store::memory::OnFull;
use tidegate::store::redis::{RedisLimiter, RedisStore};
use tidegate::store::{FailurePolicy, LimitStore};
use tidegate::{
    Algorithm, Clock, CoarseClock, Decision, LimitError, Limiter, PolicyError, PolicySet,
};

/// The store of a [`RateLimiter`](crate::RateLimiter)'s counters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backend {
    /// In this process: one limiter per rule.
    Memory(MemoryBackend),
    /// In Redis: decisions shared exactly by every instance using the same Redis and
    /// namespace.
    Redis(RedisBackend),
}

impl Backend {
    /// In memory, with the default settings.
    pub fn memory() -> Backend {
        Backend::Memory(MemoryBackend::default())
    }

    /// In memory, at most `max_keys` keys per rule, `on_full` deciding past that.
    pub fn memory_with(max_keys: usize, on_full: OnFull) -> Backend {
        Backend::Memory(MemoryBackend { max_keys, on_full })
    }

    /// In Redis through `store` (its `RedisOptions::timeout` bounds every answer), keys
    /// under the namespace `tidegate-envoy`, the failure policy [`FailurePolicy::Local`].
    pub fn redis(store: RedisStore) -> Backend {
        Backend::Redis(RedisBackend {
            store,
            namespace: "tidegate-envoy".into(),
            on_error: FailurePolicy::default(),
        })
    }

    /// Sets the Redis key namespace (no effect in memory).
    pub fn namespace(mut self, namespace: &str) -> Backend {
        if let Backend::Redis(r) = &mut self {
            r.namespace = namespace.to_string();
        }
        self
    }

    /// Sets what answers when Redis cannot in time (no effect in memory).
    pub fn on_error(mut self, on_error: FailurePolicy) -> Backend {
        if let Backend::Redis(r) = &mut self {
            r.on_error = on_error;
        }
        self
    }
}

/// Settings of the memory backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryBackend {
    /// Most keys each rule holds at once (default 1 million).
    pub max_keys: usize,
    /// What a rule whose keys fill `max_keys` does with a new key (default
    /// [`OnFull::Reject`]: the call fails with `UNAVAILABLE`, and Envoy's
    /// `failure_mode_deny` decides).
    pub on_full: OnFull,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self {
            max_keys: 1_000_000,
            on_full: OnFull::default(),
        }
    }
}

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisBackend {
    /// The connection.
    pub store: RedisStore,
    /// Prefix of every key (default `tidegate-envoy`).
    pub namespace: String,
    /// What answers when Redis cannot in time (default [`FailurePolicy::Local`]).
    pub on_error: FailurePolicy,
}

/// The shared clock of the memory limiters.
pub(crate) type SharedClock = Arc<dyn Clock>;

/// The limiter of one rule (or one override), in the backend's store.
pub(crate) enum RuleLimiter {
    Memory(Limiter<PolicySet, String, SharedClock>),
    /// One key per descriptor; an epoch-aligned fixed window (a `rate_limit` rule) finds
    /// its window from the script's time (Redis's clock, or the injected one).
    Redis(Box<RedisLimiter>),
}

impl std::fmt::Debug for RuleLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleLimiter::Memory(_) => f.write_str("RuleLimiter::Memory"),
            RuleLimiter::Redis(r) => write!(f, "RuleLimiter::Redis({r:?})"),
        }
    }
}

impl RuleLimiter {
    /// A limiter of `policies` in `backend`; Redis keys are `<namespace>:envoy:{=<key>}:...`.
    pub(crate) fn new(
        backend: &Backend,
        policies: PolicySet,
        clock: &SharedClock,
    ) -> Result<RuleLimiter, PolicyError> {
        Ok(match backend {
            Backend::Memory(m) => RuleLimiter::Memory(
                Limiter::builder(policies)
                    .max_keys(m.max_keys)
                    .on_full(m.on_full)
                    .clock(Arc::clone(clock))
                    .build(),
            ),
            Backend::Redis(r) => RuleLimiter::Redis(Box::new(
                r.store
                    .limiter("envoy", policies)
                    .namespace(&r.namespace)
                    .on_error(r.on_error)
                    .build()?,
            )),
        })
    }

    /// The largest cost one hit may have.
    pub(crate) fn capacity(&self) -> u64 {
        match self {
            RuleLimiter::Memory(l) => l.algorithm().capacity(),
            RuleLimiter::Redis(r) => r.policies().capacity(),
        }
    }

    /// The policies.
    pub(crate) fn policies(&self) -> &PolicySet {
        match self {
            RuleLimiter::Memory(l) => l.algorithm(),
            RuleLimiter::Redis(r) => r.policies(),
        }
    }

    /// Decides for `key`, consuming `cost` if admitted (`commit`) or only looking.
    /// `at` is an explicit time (an injected clock), else each store's own clock.
    pub(crate) async fn decide(
        &self,
        key: &str,
        cost: u64,
        at: Option<u64>,
        commit: bool,
    ) -> Result<Decision, LimitError> {
        match self {
            RuleLimiter::Memory(l) => {
                let now = at.unwrap_or_else(|| CoarseClock.now_micros());
                if commit {
                    l.check_at(key, cost, now)
                } else {
                    l.peek_at(key, cost, now)
                }
            }
            RuleLimiter::Redis(r) => {
                if commit {
                    r.acquire(key, cost, at).await
                } else {
                    r.peek(key, cost, at).await
                }
            }
        }
    }
}
