//! The in-memory record store of the tracker: records in sharded hash tables and an
//! index of deferred batches by due time, so a tick touches only what is due.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;

use super::Details;
use super::budget::{MemoryBudget, detail_cost};
use super::core::{DetailFate, DetailLimits, Record, RecordSettings, Tracked};
use super::record::{DeliveredRecord, IgnoreReason, RecordKey, RecordSnapshot, TrackOutcome};
use super::store::Reconfigured;

/// A record in its shard: its identity, its state (decided by the core) and, while a
/// batch waits, that batch's sequence number in the due index.
#[derive(Debug)]
struct Entry {
    key: Arc<RecordKey>,
    record: Record,
    /// The waiting batch's place in the due index is `(due_at, seq)`.
    seq: u64,
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
    /// What bounds the details of each batch.
    pub(crate) details: DetailLimits,
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
                let key = Arc::new(RecordKey {
                    category: category.to_string(),
                    id: id.to_string(),
                });
                let refused = if self
                    .len
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < self.bounds.max_keys).then_some(n + 1)
                    })
                    .is_err()
                {
                    Some(IgnoreReason::KeyLimitReached)
                } else if !self.budget.try_charge(record_cost(&key)) {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    Some(IgnoreReason::MemoryLimitReached)
                } else {
                    None
                };
                if let Some(reason) = refused {
                    let record = Record::refused(key, now);
                    return TrackOutcome::Ignored { reason, record };
                }
                let fresh = Entry {
                    key,
                    record: Record::new(settings, now),
                    seq: 0,
                };
                table
                    .insert_unique(hash, fresh, |e| self.hash(&e.key.category, &e.key.id))
                    .into_mut()
            }
        };
        let tracked = entry.record.track(now, details, &self.bounds.details, |n| {
            self.budget.try_charge(n)
        });
        let view = entry.record.view(Arc::clone(&entry.key));
        match tracked {
            Tracked::Immediate => TrackOutcome::Immediate(view),
            Tracked::Deferred { opened, detail } => {
                if detail == (DetailFate::Dropped { by_size: true }) {
                    self.dropped_by_size.fetch_add(1, Ordering::Relaxed);
                }
                if opened && let Some(p) = &entry.record.pending {
                    entry.seq = self.seq.fetch_add(1, Ordering::Relaxed);
                    lock(&self.due).insert((p.due_at, entry.seq), Arc::clone(&entry.key));
                }
                TrackOutcome::Deferred(view)
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
        for ((_, seq), key) in taken {
            let hash = self.hash(&key.category, &key.id);
            let mut table = lock(self.shard(hash));
            let Some(entry) = table.find_mut(hash, |e| Arc::ptr_eq(&e.key, &key)) else {
                continue;
            };
            if entry.seq == seq
                && let Some(batch) = entry.record.claim(now)
            {
                out.push(batch.deliver(&key));
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
            self.with_entry(&r.category, &r.id, |e| e.record.processed());
        }
    }

    /// These records left for the dead-letter sink: settle them.
    pub(crate) fn dead_lettered(&self, records: &[DeliveredRecord]) {
        for r in records {
            self.release_details(r);
            self.with_entry(&r.category, &r.id, |e| e.record.dead_lettered());
        }
    }

    /// A round of processing failed: put the records back as deferred (the core decides
    /// when they are due and how they merge with a batch that started meanwhile).
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
            let newer = e.record.pending.as_ref().map(|p| (p.due_at, e.seq));
            let requeued = e
                .record
                .defer_again(r, now, &self.bounds.details, |n| self.budget.release(n));
            let due_at = e.record.pending.as_ref().map_or(0, |p| p.due_at);
            let mut due = lock(&self.due);
            if let Some(slot) = newer {
                due.remove(&slot);
            }
            if !requeued.kept_place {
                e.seq = self.seq.fetch_add(1, Ordering::Relaxed);
            }
            due.insert((due_at, e.seq), Arc::clone(&e.key));
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
                .map(|e| {
                    record_cost(&e.key) + e.record.pending.as_ref().map_or(0, |p| p.detail_bytes)
                })
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
            out = if e.record.reconfigure(expected, settings) {
                Reconfigured::Done(e.record.view(Arc::clone(&e.key)))
            } else {
                Reconfigured::Changed
            };
        });
        out
    }

    /// The record's current settings, if it exists.
    pub(crate) fn settings(&self, category: &str, id: &str) -> Option<RecordSettings> {
        let mut out = None;
        self.with_entry(category, id, |e| out = Some(e.record.settings));
        out
    }

    /// The record, read without changing it.
    pub(crate) fn snapshot(&self, category: &str, id: &str) -> Option<RecordSnapshot> {
        let mut out = None;
        self.with_entry(category, id, |e| {
            out = Some(e.record.snapshot(Arc::clone(&e.key)));
        });
        out
    }

    /// The records whose waiting batch is due at or before `due_by`, earliest first, at
    /// most `limit`, read without changing them.
    pub(crate) fn waiting_records(&self, due_by: u64, limit: usize) -> Vec<RecordSnapshot> {
        let keys: Vec<Arc<RecordKey>> = lock(&self.due)
            .range(..(due_by.saturating_add(1), 0))
            .take(limit)
            .map(|(_, k)| Arc::clone(k))
            .collect();
        keys.iter()
            .filter_map(|k| self.snapshot(&k.category, &k.id))
            .filter(|s| s.view.scheduled_at_us.is_some())
            .collect()
    }

    /// Resets the record at `now` (the core decides): `None` when it does not exist,
    /// else the batch that was waiting, now claimed for delivery. A record with nothing
    /// in flight is removed.
    pub(crate) fn reset(
        &self,
        category: &str,
        id: &str,
        now: u64,
    ) -> Option<Option<DeliveredRecord>> {
        let hash = self.hash(category, id);
        let mut table = lock(self.shard(hash));
        let Ok(mut found) =
            table.find_entry(hash, |e| e.key.category == category && e.key.id == id)
        else {
            return None;
        };
        let e = found.get_mut();
        if let Some(p) = &e.record.pending {
            lock(&self.due).remove(&(p.due_at, e.seq));
        }
        let reset = e.record.reset(now);
        let batch = reset.batch.map(|b| b.deliver(&e.key));
        if reset.remove {
            let (gone, _) = found.remove();
            self.budget.release(record_cost(&gone.key));
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        Some(batch)
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
            let idle = table
                .get_bucket(i)
                .is_some_and(|e| e.record.is_idle(now, expire_us));
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
    use std::time::Duration;

    use crate::tracker::Strategy;

    fn settings(limit: u64) -> RecordSettings {
        RecordSettings::new(Strategy::SimpleCounter, limit, Duration::from_millis(1)).unwrap()
    }

    fn bounds() -> Bounds {
        Bounds {
            max_keys: 100,
            details: DetailLimits {
                max_details: 10,
                max_detail_bytes: 100,
                max_batch_bytes: 1_000,
            },
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
