//! The limiter: an algorithm, the in-memory store of its per-key states, and a clock.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::algorithm::Algorithm;
use crate::decision::Decision;
use crate::error::LimitError;
use crate::store::LimitStore;
use crate::store::memory::{MemoryConfig, MemoryStats, MemoryStore, OnFull};
use crate::sweeper::{self, Step, SweepJob};
use crate::time::{Clock, CoarseClock};

/// Buckets examined per shard lock hold by the background sweeper.
const SWEEP_BUDGET: usize = 1024;

struct Shared<A: Algorithm, K> {
    algorithm: A,
    store: MemoryStore<A::State, K>,
}

/// Decides allow/deny per key with one algorithm (or a [`PolicySet`](crate::PolicySet)),
/// keeping states in memory. Cheap to clone; clones share the states.
///
/// ```
/// use tidegate_core::{Limiter, Policy};
///
/// let limiter = Limiter::new("fixed_window:3/10s".parse::<Policy>()?);
/// for _ in 0..3 {
///     assert!(limiter.check("alice", 1)?.allowed);
/// }
/// let denied = limiter.check("alice", 1)?;
/// assert!(!denied.allowed);
/// assert!(denied.retry_after().unwrap() <= std::time::Duration::from_secs(10));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Limiter<A: Algorithm, K = String, C = CoarseClock> {
    shared: Arc<Shared<A, K>>,
    clock: C,
}

impl<A: Algorithm, K, C: Clone> Clone for Limiter<A, K, C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            clock: self.clock.clone(),
        }
    }
}

impl<A, K, C> std::fmt::Debug for Limiter<A, K, C>
where
    A: Algorithm + std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("algorithm", &self.shared.algorithm)
            .field("store", &self.shared.store)
            .finish()
    }
}

/// Builds a [`Limiter`] with non-default settings.
#[derive(Debug, Clone)]
pub struct LimiterBuilder<A, C = CoarseClock> {
    algorithm: A,
    config: MemoryConfig,
    sweep_interval: Option<Duration>,
    clock: C,
}

impl<A: Algorithm + 'static, C: Clock + Clone + 'static> LimiterBuilder<A, C> {
    /// Most keys held at once (default 10 million).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.config.max_keys = max_keys;
        self
    }

    /// What a full store does with a new key (default [`OnFull::Reject`]).
    pub fn on_full(mut self, on_full: OnFull) -> Self {
        self.config.on_full = on_full;
        self
    }

    /// Number of shards (default: from the CPU count).
    pub fn shards(mut self, shards: usize) -> Self {
        self.config.shards = shards;
        self
    }

    /// How often the background sweeper passes over all keys (default 1 s); `None`
    /// turns it off (expired states are then only evicted when the store is full, or by
    /// [`Limiter::sweep`]).
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The clock (default [`CoarseClock`]: monotonic, one atomic load per decision,
    /// at most about a millisecond behind; [`MonotonicClock`](crate::MonotonicClock)
    /// reads the OS clock on every decision for per-key rates above ~1000/s).
    pub fn clock<C2: Clock + Clone + 'static>(self, clock: C2) -> LimiterBuilder<A, C2> {
        LimiterBuilder {
            algorithm: self.algorithm,
            config: self.config,
            sweep_interval: self.sweep_interval,
            clock,
        }
    }

    /// The limiter; hands it to the process's one sweeper thread unless sweeping is off.
    pub fn build<K>(self) -> Limiter<A, K, C>
    where
        K: Hash + Eq + Send + Sync + 'static,
        A::State: Sync,
    {
        let shared = Arc::new(Shared {
            algorithm: self.algorithm,
            store: MemoryStore::new(self.config),
        });
        if let Some(interval) = self.sweep_interval {
            let job = LimiterSweep {
                shared: Arc::downgrade(&shared),
                clock: self.clock.clone(),
                shard: 0,
            };
            sweeper::register(Box::new(job), interval);
        }
        Limiter {
            shared,
            clock: self.clock,
        }
    }
}

/// The sweeper thread's job for one limiter: one shard per call, in bounded steps.
struct LimiterSweep<A: Algorithm, K, C> {
    shared: Weak<Shared<A, K>>,
    clock: C,
    shard: usize,
}

impl<A, K, C> SweepJob for LimiterSweep<A, K, C>
where
    A: Algorithm + Send + Sync + 'static,
    A::State: Send + Sync,
    K: Hash + Eq + Send + Sync + 'static,
    C: Clock + Send + 'static,
{
    fn step(&mut self) -> Step {
        let Some(shared) = self.shared.upgrade() else {
            return Step::Dropped;
        };
        if shared.store.is_empty() {
            return Step::Empty;
        }
        let shards = shared.store.shard_count();
        let shard = self.shard % shards;
        loop {
            let (_, wrapped) = shared.store.sweep_step(
                &shared.algorithm,
                shard,
                self.clock.now_micros(),
                SWEEP_BUDGET,
            );
            if wrapped {
                break;
            }
        }
        self.shard = (shard + 1) % shards;
        Step::Swept { shards }
    }
}

impl<A: Algorithm + 'static> Limiter<A> {
    /// A limiter with string keys, default settings and the default clock.
    pub fn new(algorithm: A) -> Self
    where
        A::State: Sync,
    {
        Self::builder(algorithm).build()
    }

    /// Starts building a limiter for `algorithm`.
    pub fn builder(algorithm: A) -> LimiterBuilder<A> {
        LimiterBuilder {
            algorithm,
            config: MemoryConfig::default(),
            sweep_interval: Some(Duration::from_secs(1)),
            clock: CoarseClock,
        }
    }
}

impl<A: Algorithm, K: Hash + Eq, C: Clock> Limiter<A, K, C> {
    /// Decides now for `key`, consuming `cost` if admitted.
    // Always inlined, as `MemoryStore::acquire`: the known key's path is small.
    #[inline(always)]
    pub fn check<Q>(&self, key: &Q, cost: u64) -> Result<Decision, LimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_at(key, cost, self.clock.now_micros())
    }

    /// Decides at time `now` (µs on this limiter's timeline) for `key`.
    #[inline(always)]
    pub fn check_at<Q>(&self, key: &Q, cost: u64, now: u64) -> Result<Decision, LimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let shared = &*self.shared;
        shared.algorithm.check_cost(cost)?;
        shared.store.acquire(&shared.algorithm, key, now, cost)
    }

    /// The decision `check` would give now, consuming nothing.
    pub fn peek<Q>(&self, key: &Q, cost: u64) -> Result<Decision, LimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.peek_at(key, cost, self.clock.now_micros())
    }

    /// The decision `check_at` would give, consuming nothing.
    pub fn peek_at<Q>(&self, key: &Q, cost: u64, now: u64) -> Result<Decision, LimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shared = &*self.shared;
        shared.algorithm.check_cost(cost)?;
        Ok(shared.store.peek(&shared.algorithm, key, now, cost))
    }

    /// Forgets `key`'s state; returns whether there was one.
    pub fn reset<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared.store.remove(key)
    }

    /// A copy of `key`'s state, if held.
    pub fn state<Q>(&self, key: &Q) -> Option<A::State>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shared.store.get(key)
    }

    /// Removes every expired state now (the background sweeper does this gradually).
    pub fn sweep(&self) -> usize {
        let shared = &*self.shared;
        shared
            .store
            .sweep_all(&shared.algorithm, self.clock.now_micros(), SWEEP_BUDGET)
    }

    /// The current time on this limiter's clock (µs).
    pub fn now_micros(&self) -> u64 {
        self.clock.now_micros()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> &A {
        &self.shared.algorithm
    }

    /// The store of states.
    pub fn store(&self) -> &MemoryStore<A::State, K> {
        &self.shared.store
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.shared.store.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.shared.store.is_empty()
    }

    /// The store's counters.
    pub fn stats(&self) -> MemoryStats {
        self.shared.store.stats()
    }
}

impl<A, C> LimitStore for Limiter<A, String, C>
where
    A: Algorithm,
    A::State: Sync,
    C: Clock,
{
    async fn acquire(&self, key: &str, cost: u64, at: Option<u64>) -> Result<Decision, LimitError> {
        self.check_at(key, cost, at.unwrap_or_else(|| self.clock.now_micros()))
    }

    async fn peek(&self, key: &str, cost: u64, at: Option<u64>) -> Result<Decision, LimitError> {
        self.peek_at(key, cost, at.unwrap_or_else(|| self.clock.now_micros()))
    }

    async fn reset(&self, key: &str) -> Result<bool, LimitError> {
        Ok(Limiter::reset(self, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CostError;
    use crate::policy::Policy;
    use crate::policy_set::PolicySet;
    use crate::time::ManualClock;

    #[test]
    fn limiter_rejects_a_cost_that_can_never_fit_as_an_error() {
        let limiter = Limiter::new("token_bucket:100/1m,burst=20".parse::<Policy>().unwrap());
        assert_eq!(
            limiter.check("k", 21),
            Err(LimitError::Cost(CostError::ExceedsCapacity {
                cost: 21,
                capacity: 20
            }))
        );
        assert_eq!(
            limiter.check("k", 0),
            Err(LimitError::Cost(CostError::Zero))
        );
        assert!(limiter.is_empty(), "an error creates no state");
        assert!(limiter.check("k", 20).unwrap().allowed);
    }

    #[test]
    fn limiter_uses_its_clock_and_sweeps_expired_keys() {
        let clock = ManualClock::new(0);
        let limiter = Limiter::builder("throttle:10s".parse::<Policy>().unwrap())
            .sweep_interval(None)
            .clock(clock.clone())
            .build::<String>();
        assert!(limiter.check("a", 1).unwrap().allowed);
        assert!(!limiter.check("a", 1).unwrap().allowed);
        clock.advance(Duration::from_secs(10));
        assert_eq!(limiter.sweep(), 1);
        assert!(limiter.is_empty());
        assert!(limiter.check("a", 1).unwrap().allowed);
    }

    #[test]
    fn background_sweeper_empties_an_idle_limiter() {
        let clock = ManualClock::new(0);
        let limiter = Limiter::builder("gcra:10/1s".parse::<Policy>().unwrap())
            .sweep_interval(Some(Duration::from_millis(10)))
            .shards(4)
            .clock(clock.clone())
            .build::<u64>();
        for k in 0..1_000u64 {
            limiter.check(&k, 1).unwrap();
        }
        clock.advance(Duration::from_secs(1));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !limiter.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(limiter.is_empty(), "{} keys left", limiter.len());
        assert_eq!(limiter.stats().swept, 1_000);
    }

    #[test]
    fn several_policies_per_key_through_the_limiter() {
        let set: PolicySet = "gcra:10/1s;fixed_window:15/1h".parse().unwrap();
        let clock = ManualClock::new(0);
        let limiter = Limiter::builder(set).clock(clock.clone()).build::<String>();
        let admitted = (0..20)
            .filter(|_| limiter.check("k", 1).unwrap().allowed)
            .count();
        assert_eq!(admitted, 10);
        clock.advance(Duration::from_secs(10));
        let admitted = (0..20)
            .filter(|_| limiter.check("k", 1).unwrap().allowed)
            .count();
        assert_eq!(admitted, 5, "the hourly policy caps the total at 15");
    }
}
