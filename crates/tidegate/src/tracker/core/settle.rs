//! Settling a claimed batch: processed, dead-lettered, or deferred again after a failed
//! round.

use super::batch::Batch;
use super::record::Record;
use super::settings::DetailLimits;
use crate::tracker::record::DeliveredRecord;

/// Where a batch deferred again waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requeued {
    /// The batch took the place of a newer batch (opened while it was in flight) that
    /// was due no later: the store keeps that batch's place in its due index. Otherwise
    /// the batch needs a new place at its due time.
    pub kept_place: bool,
}

impl Record {
    /// The processor accepted a claimed batch of this record: it is no longer in
    /// flight, and the simple counter starts again.
    pub fn processed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.settings.gate.processed(&mut self.gate);
    }

    /// The dead-letter sink took a claimed batch of this record.
    pub fn dead_lettered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A round of processing failed for `back`, a claimed batch of this record: it waits
    /// again with one more failed round, due the record's deferral after `now`, merged
    /// before any batch that opened meanwhile (due at the earlier of the two). Details
    /// of the newer batch beyond `limits` are dropped and their bytes given to `release`.
    pub fn defer_again(
        &mut self,
        back: DeliveredRecord,
        now: u64,
        limits: &DetailLimits,
        release: impl FnMut(usize),
    ) -> Requeued {
        self.in_flight = self.in_flight.saturating_sub(1);
        let mut batch = Batch::back(back, now + self.settings.defer_us);
        let mut kept_place = false;
        if let Some(newer) = self.pending.take() {
            if newer.due_at <= batch.due_at {
                batch.due_at = newer.due_at;
                kept_place = true;
            }
            batch.absorb(newer, limits, release);
        }
        self.pending = Some(batch);
        Requeued { kept_place }
    }
}
