//! The in-memory store: per-key algorithm states in sharded hash tables.
//!
//! Each shard is a `hashbrown::HashTable<(K, S)>` behind a short spin-then-yield lock,
//! picked by bits of the key's hash that the table itself does not use. A decision
//! locks one shard for one lookup and one state update: O(1), no allocation for a known
//! key. The number of keys is bounded by `max_keys`; at the bound, state that has
//! become equivalent to fresh is evicted first, and what happens to a new key when
//! nothing can be evicted is [`OnFull`]. Expired states are removed by
//! [`MemoryStore::sweep_step`], a bounded chunk of one shard at a time, which the
//! [`Limiter`](crate::Limiter) runs on a background thread.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hashbrown::HashTable;

use crate::algorithm::Algorithm;
use crate::decision::Decision;
use crate::error::LimitError;

/// What a full store does with a key it has never seen, once no state that decides like
/// a fresh one can be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnFull {
    /// Refuse the request with [`LimitError::StoreFull`] (the default: a full store
    /// never lets a request through unlimited).
    #[default]
    Reject,
    /// Evict, among the states the eviction scan looks at, the one that expires soonest
    /// (the closest to a fresh state), and track the new key. The evicted key starts
    /// again from a fresh state: its limit is relaxed once, not switched off.
    Evict,
    /// Decide as for a fresh key but keep no state (counted as untracked): the limit is
    /// not enforced for new keys while the store is full.
    AdmitUntracked,
}

/// Settings of a [`MemoryStore`]: start from `MemoryConfig::default()` and set the
/// fields you need (more may come, so the struct cannot be written out in full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// Most keys held at once.
    pub max_keys: usize,
    /// What a full store does with a new key.
    pub on_full: OnFull,
    /// Number of shards (rounded up to a power of two); 0 picks one from the CPU count.
    pub shards: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            max_keys: 10_000_000,
            on_full: OnFull::default(),
            shards: 0,
        }
    }
}

/// Counters of a [`MemoryStore`], read with [`MemoryStore::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MemoryStats {
    /// Keys held now.
    pub keys: usize,
    /// The configured bound.
    pub max_keys: usize,
    /// Fresh-equivalent states evicted to make room for new keys.
    pub evicted: u64,
    /// New keys refused because the store was full ([`OnFull::Reject`]).
    pub rejected: u64,
    /// New keys decided without keeping state ([`OnFull::AdmitUntracked`]).
    pub untracked: u64,
    /// Live states evicted to make room for new keys ([`OnFull::Evict`]).
    pub displaced: u64,
    /// Expired states removed by sweeping.
    pub swept: u64,
}

/// How many buckets a full store looks at for an evictable state before giving up.
const EVICTION_SCAN: usize = 64;

/// The lock of one shard: a spin lock released with a plain store, whose waiters yield
/// their time slice instead of sleeping in the kernel (`spin::mutex::SpinMutex` with
/// `spin::relax::Yield`).
///
/// Why not `std::sync::Mutex`: a waiter there may sleep on a futex, so its unlock must be
/// an atomic swap to learn whether to wake one, a second locked instruction per
/// decision; `parking_lot::Mutex` unlocks with a compare-exchange for the same reason.
/// Measured on a 2-core x86-64 VM (see docs/BENCHMARKS.md), one lookup + GCRA step on
/// 10k keys: std ~15-17 ns, parking_lot ~14-16 ns, a store-released spin lock ~10-12 ns;
/// two threads on one hot key: std 16-58 ns, spin lock 10-12 ns.
/// The price: a waiter burns (yielded) CPU while the lock is held, so it only suits
/// short critical sections. Every hold here is short and bounded: one lookup and one
/// algorithm step, a scan of at most `EVICTION_SCAN` or a sweep budget of buckets, or
/// (rarely) one shard's table growing. A panic while the lock is held releases it (the
/// guard's drop), and the state left is a valid state.
type ShardLock<T> = spin::mutex::SpinMutex<T, spin::relax::Yield>;

#[repr(align(128))]
struct Shard<K, S> {
    table: ShardLock<Table<K, S>>,
}

struct Table<K, S> {
    entries: HashTable<(K, S)>,
    /// Next bucket the sweeper (and the eviction scan) looks at.
    cursor: usize,
}

/// Concurrent map from key to algorithm state, bounded by `max_keys`.
pub struct MemoryStore<S, K = String> {
    shards: Box<[Shard<K, S>]>,
    shard_mask: usize,
    hasher: ahash::RandomState,
    config: MemoryConfig,
    len: AtomicUsize,
    evicted: AtomicU64,
    rejected: AtomicU64,
    untracked: AtomicU64,
    displaced: AtomicU64,
    swept: AtomicU64,
}

impl<S, K> std::fmt::Debug for MemoryStore<S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("config", &self.config)
            .field("keys", &self.len.load(Ordering::Relaxed))
            .finish()
    }
}

impl<S, K: Hash + Eq> MemoryStore<S, K> {
    /// An empty store.
    pub fn new(config: MemoryConfig) -> Self {
        let shards = match config.shards {
            0 => {
                let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
                (cpus * 16).clamp(64, 1024)
            }
            n => n,
        }
        .next_power_of_two();
        Self {
            shards: (0..shards)
                .map(|_| Shard {
                    table: ShardLock::new(Table {
                        entries: HashTable::new(),
                        cursor: 0,
                    }),
                })
                .collect(),
            shard_mask: shards - 1,
            hasher: ahash::RandomState::new(),
            config,
            len: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
            displaced: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
            swept: AtomicU64::new(0),
        }
    }

    /// The settings.
    pub fn config(&self) -> MemoryConfig {
        self.config
    }

    #[inline]
    fn shard_of(&self, hash: u64) -> &Shard<K, S> {
        // hashbrown uses the low bits (bucket) and the top 7 bits (tag): pick the shard
        // from bits in between, so keys of one shard still spread over its buckets.
        &self.shards[(hash >> 32) as usize & self.shard_mask]
    }

    /// Decides for `key` at `now` with `cost`, creating its state if needed.
    ///
    /// The caller has checked `cost` (see [`Algorithm::check_cost`]).
    // Always inlined: the path of a known key is small (new keys go to `acquire_new`),
    // and the lock's compare-exchange waits for every earlier store to drain, so a
    // call's register spills sit on the critical path of the next decision (measured:
    // ~10% at 10k keys when the caller reads `allowed` only).
    #[inline(always)]
    pub fn acquire<A, Q>(
        &self,
        alg: &A,
        key: &Q,
        now: u64,
        cost: u64,
    ) -> Result<Decision, LimitError>
    where
        A: Algorithm<State = S>,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let mut table = self.shard_of(hash).table.lock();
        if let Some((_, state)) = table.entries.find_mut(hash, |(k, _)| k.borrow() == key) {
            return Ok(alg.acquire(state, now, cost));
        }
        self.acquire_new(table, alg, key, hash, now, cost)
    }

    /// `acquire` for a key the table does not hold; out of line, so that the path of a
    /// known key stays small enough to be inlined into the caller.
    #[cold]
    #[inline(never)]
    fn acquire_new<A, Q>(
        &self,
        mut table: spin::mutex::SpinMutexGuard<'_, Table<K, S>, spin::relax::Yield>,
        alg: &A,
        key: &Q,
        hash: u64,
        now: u64,
        cost: u64,
    ) -> Result<Decision, LimitError>
    where
        A: Algorithm<State = S>,
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut state = alg.fresh();
        let decision = alg.acquire(&mut state, now, cost);
        let room = self.make_room(&mut table, alg, now)
            || (self.config.on_full == OnFull::Evict && self.evict_elsewhere(alg, hash));
        if !room {
            return match self.config.on_full {
                OnFull::Reject => {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    Err(LimitError::StoreFull {
                        max_keys: self.config.max_keys,
                    })
                }
                OnFull::AdmitUntracked => {
                    self.untracked.fetch_add(1, Ordering::Relaxed);
                    Ok(decision)
                }
                // Nothing to evict: every other shard was empty or busy.
                OnFull::Evict => {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    Err(LimitError::StoreFull {
                        max_keys: self.config.max_keys,
                    })
                }
            };
        }
        table
            .entries
            .insert_unique(hash, (key.to_owned(), state), |(k, _)| {
                self.hasher.hash_one(k)
            });
        Ok(decision)
    }

    /// The decision `acquire` would give, without creating or changing any state.
    pub fn peek<A, Q>(&self, alg: &A, key: &Q, now: u64, cost: u64) -> Decision
    where
        A: Algorithm<State = S>,
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let table = self.shard_of(hash).table.lock();
        match table.entries.find(hash, |(k, _)| k.borrow() == key) {
            Some((_, state)) => alg.peek(state, now, cost),
            None => alg.peek(&alg.fresh(), now, cost),
        }
    }

    /// Counts one more key, evicting a fresh-equivalent state of this shard if the store
    /// is full. Returns false when there is no room.
    fn make_room<A: Algorithm<State = S>>(
        &self,
        table: &mut Table<K, S>,
        alg: &A,
        now: u64,
    ) -> bool {
        let max = self.config.max_keys;
        if self
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
        {
            return true;
        }
        let buckets = table.entries.num_buckets();
        let mut soonest: Option<(usize, u64)> = None;
        for _ in 0..EVICTION_SCAN.min(buckets) {
            let i = table.cursor % buckets;
            table.cursor = i + 1;
            if let Some((_, s)) = table.entries.get_bucket(i) {
                let expires = alg.expires_at(s);
                if expires <= now
                    && let Ok(entry) = table.entries.get_bucket_entry(i)
                {
                    entry.remove();
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                if soonest.is_none_or(|(_, e)| expires < e) {
                    soonest = Some((i, expires));
                }
            }
        }
        if self.config.on_full == OnFull::Evict
            && let Some((i, _)) = soonest
            && let Ok(entry) = table.entries.get_bucket_entry(i)
        {
            entry.remove();
            self.displaced.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// [`OnFull::Evict`] when the new key's own shard had nothing to evict: evicts the
    /// soonest-expiring scanned state of another shard whose lock is free right now
    /// (never waiting for one while holding its own, so no two shards wait on each other).
    #[cold]
    fn evict_elsewhere<A: Algorithm<State = S>>(&self, alg: &A, hash: u64) -> bool {
        let own = (hash >> 32) as usize & self.shard_mask;
        for offset in 1..self.shards.len() {
            let Some(mut table) = self.shards[(own + offset) & self.shard_mask]
                .table
                .try_lock()
            else {
                continue;
            };
            let buckets = table.entries.num_buckets();
            let mut soonest: Option<(usize, u64)> = None;
            for _ in 0..EVICTION_SCAN.min(buckets) {
                let i = table.cursor % buckets;
                table.cursor = i + 1;
                if let Some((_, s)) = table.entries.get_bucket(i) {
                    let expires = alg.expires_at(s);
                    if soonest.is_none_or(|(_, e)| expires < e) {
                        soonest = Some((i, expires));
                    }
                }
            }
            if let Some((i, _)) = soonest
                && let Ok(entry) = table.entries.get_bucket_entry(i)
            {
                entry.remove();
                self.displaced.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// A copy of `key`'s state, if the store holds one.
    pub fn get<Q>(&self, key: &Q) -> Option<S>
    where
        S: Clone,
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let table = self.shard_of(hash).table.lock();
        table
            .entries
            .find(hash, |(k, _)| k.borrow() == key)
            .map(|(_, s)| s.clone())
    }

    /// Forgets `key` (its next request starts fresh). Returns whether it was held.
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let mut table = self.shard_of(hash).table.lock();
        match table.entries.find_entry(hash, |(k, _)| k.borrow() == key) {
            Ok(entry) => {
                entry.remove();
                self.len.fetch_sub(1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Forgets every key, one shard at a time.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut table = shard.table.lock();
            let old = std::mem::take(&mut table.entries);
            table.cursor = 0;
            drop(table);
            self.len.fetch_sub(old.len(), Ordering::Relaxed);
            // Keys and states are dropped (and memory freed) outside the lock.
            drop(old);
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Bytes allocated for the shards' hash tables: entries, free buckets and control
    /// bytes (not heap memory owned by keys or states, such as a `String`'s buffer).
    pub fn table_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.table.lock().entries.allocation_size())
            .sum()
    }

    /// Calls `f` with every key and state, one shard lock at a time (keep `f` short:
    /// deciders waiting for that shard spin and yield meanwhile).
    pub fn for_each(&self, mut f: impl FnMut(&K, &S)) {
        for shard in self.shards.iter() {
            let table = shard.table.lock();
            for (k, s) in table.entries.iter() {
                f(k, s);
            }
        }
    }

    /// Removes expired states from at most `budget` buckets of shard `shard`, continuing
    /// where the previous step on that shard stopped. Returns `(removed, wrapped)`, where
    /// `wrapped` says the shard's cursor went round to its start.
    pub fn sweep_step<A: Algorithm<State = S>>(
        &self,
        alg: &A,
        shard: usize,
        now: u64,
        budget: usize,
    ) -> (usize, bool) {
        let mut table = self.shards[shard & self.shard_mask].table.lock();
        let buckets = table.entries.num_buckets();
        let start = table.cursor.min(buckets);
        let end = start.saturating_add(budget).min(buckets);
        let mut removed = 0;
        for i in start..end {
            if let Some((_, s)) = table.entries.get_bucket(i)
                && alg.expires_at(s) <= now
                && let Ok(entry) = table.entries.get_bucket_entry(i)
            {
                entry.remove();
                removed += 1;
            }
        }
        let wrapped = end >= buckets;
        table.cursor = if wrapped { 0 } else { end };
        if table.entries.is_empty() && buckets > 0 {
            // Give a drained shard's memory back.
            table
                .entries
                .shrink_to_fit(|(k, _)| self.hasher.hash_one(k));
        }
        drop(table);
        if removed > 0 {
            self.len.fetch_sub(removed, Ordering::Relaxed);
            self.swept.fetch_add(removed as u64, Ordering::Relaxed);
        }
        (removed, wrapped)
    }

    /// Sweeps every shard once, `budget` buckets per lock hold. Returns states removed.
    pub fn sweep_all<A: Algorithm<State = S>>(&self, alg: &A, now: u64, budget: usize) -> usize {
        let mut removed = 0;
        for shard in 0..self.shards.len() {
            loop {
                let (n, wrapped) = self.sweep_step(alg, shard, now, budget.max(1));
                removed += n;
                if wrapped {
                    break;
                }
            }
        }
        removed
    }

    /// The counters.
    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            keys: self.len(),
            max_keys: self.config.max_keys,
            evicted: self.evicted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            untracked: self.untracked.load(Ordering::Relaxed),
            displaced: self.displaced.load(Ordering::Relaxed),
            swept: self.swept.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::algorithm::gcra::GcraState;
    use crate::algorithm::{FixedWindow, Gcra, Throttle};

    const S: u64 = 1_000_000;

    fn store<St>(max_keys: usize, on_full: OnFull) -> MemoryStore<St, String> {
        MemoryStore::new(MemoryConfig {
            max_keys,
            on_full,
            shards: 1,
        })
    }

    #[test]
    fn memory_store_keeps_one_state_per_key() {
        let fw = FixedWindow::new(2, Duration::from_secs(10)).unwrap();
        let st = store(100, OnFull::Reject);
        assert!(st.acquire(&fw, "a", 0, 1).unwrap().allowed);
        assert!(st.acquire(&fw, "a", 0, 1).unwrap().allowed);
        assert!(!st.acquire(&fw, "a", 0, 1).unwrap().allowed);
        assert!(st.acquire(&fw, "b", 0, 1).unwrap().allowed);
        assert_eq!(st.len(), 2);
        assert!(st.remove("a"));
        assert!(!st.remove("a"));
        assert!(st.acquire(&fw, "a", 0, 1).unwrap().allowed);
        assert_eq!(st.get("a").unwrap().count, 1);
    }

    #[test]
    fn full_store_evicts_fresh_equivalent_state_first() {
        let t = Throttle::new(Duration::from_secs(10)).unwrap();
        let st = store(2, OnFull::Reject);
        st.acquire(&t, "old", 0, 1).unwrap();
        st.acquire(&t, "live", 5 * S, 1).unwrap();
        // At 12 s "old" is fresh again (0 + 10 s), "live" is not: "old" makes room.
        assert!(st.acquire(&t, "new", 12 * S, 1).unwrap().allowed);
        assert!(st.get("old").is_none());
        assert!(st.get("live").is_some());
        assert_eq!(st.stats().evicted, 1);
    }

    #[test]
    fn full_store_rejects_evicts_the_soonest_expiring_or_admits_untracked_as_configured() {
        let t = Throttle::new(Duration::from_secs(10)).unwrap();
        let reject = store(1, OnFull::Reject);
        reject.acquire(&t, "a", 0, 1).unwrap();
        assert_eq!(
            reject.acquire(&t, "b", S, 1),
            Err(LimitError::StoreFull { max_keys: 1 })
        );
        assert_eq!(reject.stats().rejected, 1);

        let evict = store(2, OnFull::Evict);
        evict.acquire(&t, "a", 0, 1).unwrap();
        evict.acquire(&t, "b", 5 * S, 1).unwrap();
        // "a" expires first (at 10 s): it makes room for "c", which is tracked.
        assert!(evict.acquire(&t, "c", 6 * S, 1).unwrap().allowed);
        assert!(!evict.acquire(&t, "c", 6 * S, 1).unwrap().allowed);
        assert!(evict.get("a").is_none() && evict.get("b").is_some());
        assert_eq!((evict.len(), evict.stats().displaced), (2, 1));

        let admit = store(1, OnFull::AdmitUntracked);
        admit.acquire(&t, "a", 0, 1).unwrap();
        assert!(admit.acquire(&t, "b", S, 1).unwrap().allowed);
        assert!(
            admit.acquire(&t, "b", S, 1).unwrap().allowed,
            "untracked: no state kept"
        );
        assert_eq!(admit.len(), 1);
        assert_eq!(admit.stats().untracked, 2);
    }

    #[test]
    fn table_bytes_counts_buckets_and_control_bytes() {
        let g = Gcra::new(1, Duration::from_secs(1), None).unwrap();
        let st: MemoryStore<_, u64> = MemoryStore::new(MemoryConfig {
            max_keys: 1_000,
            on_full: OnFull::Reject,
            shards: 2,
        });
        assert_eq!(st.table_bytes(), 0);
        for k in 0..100u64 {
            st.acquire(&g, &k, 0, 1).unwrap();
        }
        let entry = size_of::<(u64, GcraState)>();
        assert!(
            st.table_bytes() >= 100 * (entry + 1),
            "{}",
            st.table_bytes()
        );
        assert!(
            st.table_bytes() <= 4 * 100 * (entry + 1) + 2 * 64,
            "{}",
            st.table_bytes()
        );
        st.clear();
        assert_eq!(st.table_bytes(), 0);
    }

    #[test]
    fn sweeping_removes_only_expired_states_in_bounded_steps() {
        let g = Gcra::new(1, Duration::from_secs(1), None).unwrap();
        let st: MemoryStore<_, u64> = MemoryStore::new(MemoryConfig {
            max_keys: 100_000,
            on_full: OnFull::Reject,
            shards: 4,
        });
        for k in 0..10_000u64 {
            // Keys < 5000 expire at 1 s, the others at 3 s.
            let now = if k < 5_000 { 0 } else { 2 * S };
            st.acquire(&g, &k, now, 1).unwrap();
        }
        let (removed, wrapped) = st.sweep_step(&g, 0, 2 * S, 16);
        assert!(removed <= 16 && !wrapped);
        let removed = removed + st.sweep_all(&g, 2 * S, 256);
        assert_eq!(removed, 5_000);
        assert_eq!(st.len(), 5_000);
        assert_eq!(st.sweep_all(&g, 3 * S, 256), 5_000);
        assert!(st.is_empty());
        assert_eq!(st.stats().swept, 10_000);
    }
}
