//! Where the tracker keeps its records: in this process's memory, or in Redis shared by
//! any number of instances. One interface over both, used by the tracker's loop.

use super::core::RecordSettings;
use super::memory::MemoryRecords;
use super::record::{DeliveredRecord, RecordSnapshot, RecordView, TrackOutcome};
use super::{Details, TrackError};

/// Where an [`EventTracker`](super::EventTracker) keeps its records.
#[derive(Debug, Clone, Default)]
pub enum TrackerStore {
    /// This process's memory (the default): fast, lost with the process unless
    /// `shutdown()` delivers it.
    #[default]
    Memory,
    /// Redis, shared by every tracker built with the same store and name: records,
    /// waiting batches and claimed batches (with their leases) live in Redis.
    #[cfg(feature = "redis")]
    Redis {
        /// The connection.
        store: crate::store::redis::RedisStore,
        /// The tracker's name: instances with the same name share records.
        name: String,
    },
}

impl TrackerStore {
    /// Redis, under the tracker name `name`.
    #[cfg(feature = "redis")]
    pub fn redis(store: crate::store::redis::RedisStore, name: impl Into<String>) -> Self {
        Self::Redis {
            store,
            name: name.into(),
        }
    }
}

/// What a compare-and-set of a record's settings did.
#[derive(Debug)]
pub(crate) enum Reconfigured {
    /// Changed; the record after the change.
    Done(RecordView),
    /// No such record.
    Missing,
    /// Its settings were not the expected ones any more (a concurrent update).
    Changed,
}

/// A batch handed to the processor: its records and, in Redis, the claim holding them.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) claim: Option<String>,
    pub(crate) records: Vec<DeliveredRecord>,
}

pub(crate) enum Records {
    Memory(MemoryRecords),
    #[cfg(feature = "redis")]
    Redis(super::redis::RedisRecords),
}

impl Records {
    pub(crate) fn is_shared(&self) -> bool {
        !matches!(self, Self::Memory(_))
    }

    /// Records held (for Redis, as of the latest tick).
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Memory(m) => m.len(),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.len(),
        }
    }

    /// Bytes of the memory budget in use (0 for Redis).
    pub(crate) fn memory_bytes(&self) -> usize {
        match self {
            Self::Memory(m) => m.memory_bytes(),
            #[cfg(feature = "redis")]
            Self::Redis(_) => 0,
        }
    }

    /// Details left out by a byte bound.
    pub(crate) fn dropped_by_size(&self) -> u64 {
        match self {
            Self::Memory(m) => m.dropped_by_size(),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.dropped_by_size(),
        }
    }

    /// Waiting batches (for Redis, as of the latest tick).
    pub(crate) fn waiting(&self) -> usize {
        match self {
            Self::Memory(m) => m.waiting(),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.waiting(),
        }
    }

    /// When the earliest waiting batch is due (for Redis, read now).
    pub(crate) async fn next_due(&self) -> Result<Option<u64>, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.next_due()),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.refresh().await.map(|g| g.next_due),
        }
    }

    pub(crate) async fn track(
        &self,
        category: &str,
        id: &str,
        details: Details,
        now: u64,
        settings: &RecordSettings,
    ) -> Result<TrackOutcome, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.track(category, id, details, now, *settings)),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.track(category, id, &details, now, settings).await,
        }
    }

    /// [`track`](Self::track) for many events at `now`, answered in order (through
    /// Redis: queued together, sharing script calls and one timeout).
    pub(crate) async fn track_many(
        &self,
        events: &[(&str, &str, &Details)],
        now: u64,
        settings: &RecordSettings,
    ) -> Vec<Result<TrackOutcome, TrackError>> {
        match self {
            Self::Memory(m) => events
                .iter()
                .map(|&(category, id, details)| {
                    Ok(m.track(category, id, details.clone(), now, *settings))
                })
                .collect(),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.track_many(events, now, settings).await,
        }
    }

    /// Claims every due batch, in batches of at most `max` records; the number of claims
    /// taken over from instances whose lease expired.
    pub(crate) async fn claim_due(
        &self,
        now: u64,
        max: usize,
    ) -> Result<(Vec<Claimed>, u64), TrackError> {
        match self {
            Self::Memory(m) => {
                let mut out = Vec::new();
                let mut iter = m.claim_due(now).into_iter().peekable();
                while iter.peek().is_some() {
                    out.push(Claimed {
                        claim: None,
                        records: iter.by_ref().take(max).collect(),
                    });
                }
                Ok((out, 0))
            }
            #[cfg(feature = "redis")]
            Self::Redis(r) => {
                let claims = r.claim_due(now, max).await?;
                let taken = claims.iter().filter(|c| c.taken_over).count() as u64;
                let out = claims
                    .into_iter()
                    .map(|c| Claimed {
                        claim: Some(c.id),
                        records: c.records,
                    })
                    .collect();
                Ok((out, taken))
            }
        }
    }

    /// Extends the leases of the claims this instance holds (Redis only).
    pub(crate) async fn renew(&self, now: u64, claims: &[String]) -> Result<(), TrackError> {
        match self {
            Self::Memory(_) => {
                let _ = (now, claims);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.renew(now, claims).await,
        }
    }

    /// The processor accepted the batch.
    pub(crate) async fn processed(&self, batch: &Claimed) -> Result<(), TrackError> {
        match self {
            Self::Memory(m) => {
                m.processed(&batch.records);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.settle("processed", claim_id(batch)).await,
        }
    }

    /// The dead-letter sink took the batch.
    pub(crate) async fn dead_lettered(&self, batch: &Claimed) -> Result<(), TrackError> {
        match self {
            Self::Memory(m) => {
                m.dead_lettered(&batch.records);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.settle("dead", claim_id(batch)).await,
        }
    }

    /// A round failed: the batch waits again.
    pub(crate) async fn defer_again(&self, batch: Claimed, now: u64) -> Result<(), TrackError> {
        match self {
            Self::Memory(m) => {
                m.defer_again(batch.records, now);
                Ok(())
            }
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.defer_again(claim_id(&batch), now).await,
        }
    }

    pub(crate) async fn settings(
        &self,
        category: &str,
        id: &str,
    ) -> Result<Option<RecordSettings>, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.settings(category, id)),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.settings(category, id).await,
        }
    }

    /// The record as the store holds it (for Redis, read now: every instance's events).
    pub(crate) async fn snapshot(
        &self,
        category: &str,
        id: &str,
    ) -> Result<Option<RecordSnapshot>, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.snapshot(category, id)),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.snapshot(category, id).await,
        }
    }

    /// The records whose waiting batch is due at or before `due_by`, earliest first, at
    /// most `limit` (for Redis, read now).
    pub(crate) async fn waiting_records(
        &self,
        due_by: u64,
        limit: usize,
    ) -> Result<Vec<RecordSnapshot>, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.waiting_records(due_by, limit)),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.waiting_records(due_by, limit).await,
        }
    }

    /// Resets a record at `now`: `None` when it does not exist, else the batch that was
    /// waiting, claimed for this instance to deliver (in Redis under a lease).
    pub(crate) async fn reset(
        &self,
        category: &str,
        id: &str,
        now: u64,
    ) -> Result<Option<Option<Claimed>>, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.reset(category, id, now).map(|batch| {
                batch.map(|r| Claimed {
                    claim: None,
                    records: vec![r],
                })
            })),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.reset(category, id, now).await.map(|done| {
                done.map(|claim| {
                    claim.map(|c| Claimed {
                        claim: Some(c.id),
                        records: c.records,
                    })
                })
            }),
        }
    }

    /// Sets a record's settings if they still are `expected` (compare and set).
    pub(crate) async fn reconfigure(
        &self,
        category: &str,
        id: &str,
        expected: &RecordSettings,
        settings: &RecordSettings,
    ) -> Result<Reconfigured, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.reconfigure(category, id, expected, *settings)),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.reconfigure(category, id, expected, settings).await,
        }
    }

    /// Deletes every record, waiting batch and claim; how many records (or keys) went.
    pub(crate) async fn clear(&self) -> Result<usize, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.clear()),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.clear().await,
        }
    }

    /// Reads the gauges (`len`, `waiting`) from Redis (nothing to do in memory).
    pub(crate) async fn refresh(&self) -> Result<(), TrackError> {
        match self {
            Self::Memory(_) => Ok(()),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.refresh().await.map(|_| ()),
        }
    }

    /// Purges a bounded slice of idle records.
    pub(crate) async fn purge_step(
        &self,
        now: u64,
        expire_us: u64,
        budget: usize,
    ) -> Result<usize, TrackError> {
        match self {
            Self::Memory(m) => Ok(m.purge_step(now, expire_us, budget)),
            #[cfg(feature = "redis")]
            Self::Redis(r) => r.purge_step(now, expire_us, budget).await,
        }
    }
}

#[cfg(feature = "redis")]
fn claim_id(batch: &Claimed) -> &str {
    batch.claim.as_deref().unwrap_or_default()
}
