//! The in-memory record store of the tracker: records in sharded hash tables and an
//! index of deferred batches by due time, so a tick touches only what is due.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;

use super::Details;
use super::budget::{MemoryBudget, detail_cost};
use super::record::{DeliveredRecord, IgnoreReason, RecordKey, RecordView, TrackOutcome};
use super::store::Reconfigured;
use super::strategy::{Gate, GateState};

/// A record's settings: its strategy and limit, the gate built from them, its deferral.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RecordSettings {
    pub(crate) strategy: super::Strategy,
    pub(crate) limit: u64,
    pub(crate) gate: Gate,
    pub(crate) defer_us: u64,
}

/// A deferred batch waiting in a record.
#[derive(Debug)]
struct Pending {
    count: u64,
    first_seen: u64,
    last_seen: u64,
    /// `(scheduled_at µs, sequence)`: the batch's place in the due index.
    due: (u64, u64),
    details: Vec<Details>,
    /// Bytes the kept details are charged (text and overhead).
    detail_bytes: usize,
    dropped: u64,
    failed_rounds: u32,
}

#[derive(Debug)]
struct Entry {
    key: Arc<RecordKey>,
    settings: RecordSettings,
    state: GateState,
    total: u64,
    first_seen: u64,
    last_seen: u64,
    pending: Option<Pending>,
    /// Batches of this record handed to the processor and not settled yet.
    in_flight: u32,
}

impl Entry {
    fn view(&self) -> RecordView {
        RecordView {
            key: Arc::clone(&self.key),
            total: self.total,
            deferred: self.pending.as_ref().map_or(0, |p| p.count),
            scheduled_at_us: self.pending.as_ref().map(|p| p.due.0),
            first_seen_us: self.first_seen,
            last_seen_us: self.last_seen,
        }
    }
}

/// Bytes a record takes besides its key text: the table entry (with hashbrown's control
/// byte and free buckets: up to twice the entry), the shared key header, its slot in the
/// due index.
const RECORD_OVERHEAD: usize = 2 * size_of::<Entry>() + size_of::<RecordKey>() + 16 + 64;

/// Bytes a record of `(category, id)` is charged.
fn record_cost(key: &RecordKey) -> usize {
    RECORD_OVERHEAD + key.category.len() + key.id.len()
}

/// What bounds the in-memory records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Most records.
    pub(crate) max_keys: usize,
    /// Most details kept per batch.
    pub(crate) max_details: usize,
    /// Largest detail kept (JSON text bytes).
    pub(crate) max_detail_bytes: usize,
    /// Most detail bytes kept per batch.
    pub(crate) max_batch_bytes: usize,
    /// Most bytes for records and details together.
    pub(crate) max_memory_bytes: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records by `(category, id)` and deferred batches by due time.
pub(crate) struct MemoryRecords {
    shards: Box<[Mutex<HashTable<Entry>>]>,
    hasher: ahash::RandomState,
    due: Mutex<BTreeMap<(u64, u64), Arc<RecordKey>>>,
    seq: AtomicU64,
    len: AtomicUsize,
    bounds: Bounds,
    budget: MemoryBudget,
    /// Details left out by a byte bound (per event, per batch, the memory budget).
    dropped_by_size: AtomicU64,
    /// `(shard, bucket)` where the next purge step starts.
    sweep_cursor: Mutex<(usize, usize)>,
}

impl MemoryRecords {
    pub(crate) fn new(bounds: Bounds) -> Self {
        let shards = (std::thread::available_parallelism().map_or(4, |n| n.get()) * 8)
            .clamp(16, 256)
            .next_power_of_two();
        Self {
            shards: (0..shards).map(|_| Mutex::new(HashTable::new())).collect(),
            hasher: ahash::RandomState::new(),
            due: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            bounds,
            budget: MemoryBudget::new(bounds.max_memory_bytes),
            dropped_by_size: AtomicU64::new(0),
            sweep_cursor: Mutex::new((0, 0)),
        }
    }

    fn hash(&self, category: &str, id: &str) -> u64 {
        self.hasher.hash_one((category, id))
    }

    fn shard(&self, hash: u64) -> &Mutex<HashTable<Entry>> {
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Bytes charged to the memory budget now.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Details left out by a byte bound so far.
    pub(crate) fn dropped_by_size(&self) -> u64 {
        self.dropped_by_size.load(Ordering::Relaxed)
    }

    /// Keeps `detail` in `p` if every bound allows, else counts it as dropped; a null
    /// detail (an event without details) is not kept.
    fn push_detail(&self, p: &mut Pending, detail: Details) {
        if detail.is_null() {
            return;
        }
        let b = &self.bounds;
        let cost = detail_cost(detail.len());
        let fits = p.details.len() < b.max_details;
        let by_size = detail.len() > b.max_detail_bytes
            || p.detail_bytes + cost > b.max_batch_bytes
            || !(fits && self.budget.try_charge(cost));
        if fits && !by_size {
            p.details.push(detail);
            p.detail_bytes += cost;
            return;
        }
        p.dropped += 1;
        if fits {
            self.dropped_by_size.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Keeps an already charged detail in `p` (merging a failed batch back), or drops it
    /// and gives its bytes back.
    fn merge_detail(&self, p: &mut Pending, detail: Details) {
        let cost = detail_cost(detail.len());
        if p.details.len() < self.bounds.max_details
            && p.detail_bytes + cost <= self.bounds.max_batch_bytes
        {
            p.details.push(detail);
            p.detail_bytes += cost;
        } else {
            p.dropped += 1;
            self.budget.release(cost);
        }
    }

    /// Gives back the bytes of a settled batch's details.
    fn release_details(&self, r: &DeliveredRecord) {
        self.budget
            .release(r.details.iter().map(|d| detail_cost(d.len())).sum());
    }

    /// Deferred batches waiting (not yet claimed).
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.due).len()
    }

    /// When the earliest waiting batch is due.
    pub(crate) fn next_due(&self) -> Option<u64> {
        lock(&self.due).keys().next().map(|&(t, _)| t)
    }

    /// Tracks one event of `(category, id)` at `now`.
    pub(crate) fn track(
        &self,
        category: &str,
        id: &str,
        details: Details,
        now: u64,
        settings: RecordSettings,
    ) -> TrackOutcome {
        let hash = self.hash(category, id);
        let mut table = lock(self.shard(hash));
        let entry = match table.find_mut(hash, |e| e.key.category == category && e.key.id == id) {
            Some(e) => e,
            None => {
                let fresh = Entry {
                    key: Arc::new(RecordKey {
                        category: category.to_string(),
                        id: id.to_string(),
                    }),
                    settings,
                    state: settings.gate.fresh(),
                    total: 0,
                    first_seen: now,
                    last_seen: now,
                    pending: None,
                    in_flight: 0,
                };
                let refused = if self
                    .len
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < self.bounds.max_keys).then_some(n + 1)
                    })
                    .is_err()
                {
                    Some(IgnoreReason::KeyLimitReached)
                } else if !self.budget.try_charge(record_cost(&fresh.key)) {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    Some(IgnoreReason::MemoryLimitReached)
                } else {
                    None
                };
                if let Some(reason) = refused {
                    let mut record = fresh.view();
                    record.total = 1;
                    return TrackOutcome::Ignored { reason, record };
                }
                table
                    .insert_unique(hash, fresh, |e| self.hash(&e.key.category, &e.key.id))
                    .into_mut()
            }
        };
        entry.total += 1;
        entry.last_seen = now;
        let settings = entry.settings;
        match settings
            .gate
            .admit(&mut entry.state, now, entry.pending.is_some())
        {
            Ok(()) => TrackOutcome::Immediate(entry.view()),
            Err(wait) => {
                match &mut entry.pending {
                    Some(p) => {
                        p.count += 1;
                        p.last_seen = now;
                        self.push_detail(p, details);
                    }
                    None => {
                        let due = (
                            now + wait.unwrap_or(settings.defer_us),
                            self.seq.fetch_add(1, Ordering::Relaxed),
                        );
                        let mut p = Pending {
                            count: 1,
                            first_seen: now,
                            last_seen: now,
                            due,
                            details: Vec::new(),
                            detail_bytes: 0,
                            dropped: 0,
                            failed_rounds: 0,
                        };
                        self.push_detail(&mut p, details);
                        entry.pending = Some(p);
                        lock(&self.due).insert(due, Arc::clone(&entry.key));
                    }
                }
                TrackOutcome::Deferred(entry.view())
            }
        }
    }

    /// Takes every batch due at `now` (all of them with `u64::MAX`) out of its record.
    pub(crate) fn claim_due(&self, now: u64) -> Vec<DeliveredRecord> {
        let taken = {
            let mut due = lock(&self.due);
            let later = due.split_off(&(now.saturating_add(1), 0));
            std::mem::replace(&mut *due, later)
        };
        let mut out = Vec::with_capacity(taken.len());
        for (slot, key) in taken {
            let hash = self.hash(&key.category, &key.id);
            let mut table = lock(self.shard(hash));
            let Some(entry) = table.find_mut(hash, |e| Arc::ptr_eq(&e.key, &key)) else {
                continue;
            };
            if entry.pending.as_ref().is_some_and(|p| p.due == slot) {
                let p = entry.pending.take().expect("checked above");
                entry.in_flight += 1;
                out.push(DeliveredRecord {
                    category: key.category.clone(),
                    id: key.id.clone(),
                    count: p.count,
                    first_seen_us: p.first_seen,
                    last_seen_us: p.last_seen,
                    details: p.details,
                    details_dropped: p.dropped,
                    failed_rounds: p.failed_rounds,
                });
            }
        }
        out
    }

    fn with_entry(&self, category: &str, id: &str, f: impl FnOnce(&mut Entry)) -> bool {
        let hash = self.hash(category, id);
        let mut table = lock(self.shard(hash));
        match table.find_mut(hash, |e| e.key.category == category && e.key.id == id) {
            Some(e) => {
                f(e);
                true
            }
            None => false,
        }
    }

    /// The processor accepted these records.
    pub(crate) fn processed(&self, records: &[DeliveredRecord]) {
        for r in records {
            self.release_details(r);
            self.with_entry(&r.category, &r.id, |e| {
                e.in_flight = e.in_flight.saturating_sub(1);
                e.settings.gate.processed(&mut e.state);
            });
        }
    }

    /// These records left for the dead-letter sink: settle them.
    pub(crate) fn dead_lettered(&self, records: &[DeliveredRecord]) {
        for r in records {
            self.release_details(r);
            self.with_entry(&r.category, &r.id, |e| {
                e.in_flight = e.in_flight.saturating_sub(1);
            });
        }
    }

    /// A round of processing failed: put the records back as deferred, due again after
    /// their deferral, merged before any batch that started meanwhile.
    pub(crate) fn defer_again(&self, records: Vec<DeliveredRecord>, now: u64) {
        for r in records {
            let hash = self.hash(&r.category, &r.id);
            let mut table = lock(self.shard(hash));
            let Some(e) =
                table.find_mut(hash, |e| e.key.category == r.category && e.key.id == r.id)
            else {
                self.release_details(&r);
                continue;
            };
            e.in_flight = e.in_flight.saturating_sub(1);
            let due = (
                now + e.settings.defer_us,
                self.seq.fetch_add(1, Ordering::Relaxed),
            );
            let detail_bytes = r.details.iter().map(|d| detail_cost(d.len())).sum();
            let mut back = Pending {
                count: r.count,
                first_seen: r.first_seen_us,
                last_seen: r.last_seen_us,
                due,
                details: r.details,
                detail_bytes,
                dropped: r.details_dropped,
                failed_rounds: r.failed_rounds + 1,
            };
            if let Some(newer) = e.pending.take() {
                lock(&self.due).remove(&newer.due);
                back.count += newer.count;
                back.last_seen = newer.last_seen;
                back.dropped += newer.dropped;
                for d in newer.details {
                    self.merge_detail(&mut back, d);
                }
                back.due = back.due.min(newer.due);
            }
            lock(&self.due).insert(back.due, Arc::clone(&e.key));
            e.pending = Some(back);
        }
    }

    /// Deletes every record and waiting batch; how many records went.
    pub(crate) fn clear(&self) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut table = lock(shard);
            removed += table.len();
            let bytes = table
                .iter()
                .map(|e| record_cost(&e.key) + e.pending.as_ref().map_or(0, |p| p.detail_bytes))
                .sum();
            self.budget.release(bytes);
            table.clear();
            table.shrink_to(0, |_| 0);
        }
        lock(&self.due).clear();
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Changes one record's settings if they still are `expected`.
    pub(crate) fn reconfigure(
        &self,
        category: &str,
        id: &str,
        expected: &RecordSettings,
        settings: RecordSettings,
    ) -> Reconfigured {
        let mut out = Reconfigured::Missing;
        self.with_entry(category, id, |e| {
            out = if e.settings == *expected {
                e.settings = settings;
                Reconfigured::Done(e.view())
            } else {
                Reconfigured::Changed
            };
        });
        out
    }

    /// The record's current settings, if it exists.
    pub(crate) fn settings(&self, category: &str, id: &str) -> Option<RecordSettings> {
        let mut out = None;
        self.with_entry(category, id, |e| out = Some(e.settings));
        out
    }

    /// Removes records idle since `now - expire_us`, looking at most at `budget` buckets
    /// (continuing where the last call stopped, shard after shard); never a record with a
    /// waiting or in-flight batch. Returns how many were removed.
    pub(crate) fn purge_step(&self, now: u64, expire_us: u64, budget: usize) -> usize {
        let mut cursor = lock(&self.sweep_cursor);
        let (shard, start) = *cursor;
        let mut table = lock(&self.shards[shard % self.shards.len()]);
        let buckets = table.num_buckets();
        let end = start.saturating_add(budget).min(buckets);
        let mut removed = 0;
        for i in start..end {
            let idle = table.get_bucket(i).is_some_and(|e| {
                e.pending.is_none()
                    && e.in_flight == 0
                    && now.saturating_sub(e.last_seen) >= expire_us
            });
            if idle && let Ok(entry) = table.get_bucket_entry(i) {
                let (gone, _) = entry.remove();
                self.budget.release(record_cost(&gone.key));
                removed += 1;
            }
        }
        if end >= buckets && table.len() < table.capacity() / 4 {
            // Give the memory of a table that emptied back (hashbrown never shrinks on
            // its own): the next pass starts at this shard's first bucket anyway.
            let len = table.len();
            table.shrink_to(len, |e| self.hash(&e.key.category, &e.key.id));
        }
        *cursor = if end >= buckets {
            ((shard + 1) % self.shards.len(), 0)
        } else {
            (shard, end)
        };
        self.len.fetch_sub(removed, Ordering::Relaxed);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Strategy;

    fn settings(limit: u64) -> RecordSettings {
        RecordSettings {
            strategy: Strategy::SimpleCounter,
            limit,
            gate: Gate::new(Strategy::SimpleCounter, limit).unwrap(),
            defer_us: 1_000,
        }
    }

    fn bounds() -> Bounds {
        Bounds {
            max_keys: 100,
            max_details: 10,
            max_detail_bytes: 100,
            max_batch_bytes: 1_000,
            max_memory_bytes: 1 << 20,
        }
    }

    #[test]
    fn reconfigure_sets_only_over_the_expected_settings() {
        let records = MemoryRecords::new(bounds());
        records.track("c", "i", Details::null(), 0, settings(5));
        assert!(matches!(
            records.reconfigure("c", "i", &settings(4), settings(1)),
            Reconfigured::Changed
        ));
        assert_eq!(records.settings("c", "i"), Some(settings(5)));
        assert!(matches!(
            records.reconfigure("c", "i", &settings(5), settings(1)),
            Reconfigured::Done(_)
        ));
        assert_eq!(records.settings("c", "i"), Some(settings(1)));
        assert!(matches!(
            records.reconfigure("c", "missing", &settings(5), settings(1)),
            Reconfigured::Missing
        ));
    }
}
