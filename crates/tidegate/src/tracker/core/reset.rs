//! Resetting a record: it forgets its events so the next one is decided afresh, and
//! hands out its waiting batch (never dropped).

use super::batch::Batch;
use super::record::Record;

/// What a reset did to a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Reset {
    /// The batch that was waiting, now claimed (counted in flight): the store hands it to
    /// the processor as a due batch.
    pub batch: Option<Batch>,
    /// Nothing is in flight: the store removes the record. Otherwise the record stays,
    /// with no events counted, until its batches are settled and it is purged.
    pub remove: bool,
}

impl Record {
    /// Forgets the record's events at `now`: its gate starts fresh, its counts start from
    /// zero, and its waiting batch (if any) is taken out as claimed, to be delivered now
    /// rather than lost. The next event is decided as the first of a new record (with
    /// the simple counter: immediate). Its settings stay while it is kept.
    pub fn reset(&mut self, now: u64) -> Reset {
        let batch = self.pending.take();
        if batch.is_some() {
            self.in_flight += 1;
        }
        self.gate = self.settings.gate.fresh();
        self.total = 0;
        self.first_seen = now;
        self.last_seen = now;
        Reset {
            batch,
            remove: self.in_flight == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tracker::Details;
    use crate::tracker::Strategy;
    use crate::tracker::core::{DetailLimits, RecordSettings, Tracked};

    fn limits() -> DetailLimits {
        DetailLimits {
            max_details: 10,
            max_detail_bytes: 100,
            max_batch_bytes: 1_000,
        }
    }

    fn record(limit: u64) -> Record {
        let s =
            RecordSettings::new(Strategy::SimpleCounter, limit, Duration::from_secs(1)).unwrap();
        Record::new(s, 0)
    }

    #[test]
    fn a_reset_record_without_batches_is_removed() {
        let mut r = record(1);
        r.track(0, Details::null(), &limits(), |_| true);
        let reset = r.reset(5);
        assert_eq!(reset.batch, None);
        assert!(reset.remove);
    }

    #[test]
    fn a_reset_hands_out_the_waiting_batch_and_the_next_event_is_immediate() {
        let mut r = record(1);
        r.track(0, Details::null(), &limits(), |_| true);
        r.track(1, Details::null(), &limits(), |_| true);
        r.track(2, Details::null(), &limits(), |_| true);
        let reset = r.reset(3);
        assert_eq!(reset.batch.as_ref().map(|b| b.count), Some(2));
        assert!(
            !reset.remove,
            "the claimed batch keeps the record until it is settled"
        );
        assert_eq!((r.total, r.in_flight, r.first_seen), (0, 1, 3));
        assert_eq!(
            r.track(4, Details::null(), &limits(), |_| true),
            Tracked::Immediate
        );
        assert!(matches!(
            r.track(5, Details::null(), &limits(), |_| true),
            Tracked::Deferred { opened: true, .. }
        ));
    }

    #[test]
    fn a_record_reset_while_a_batch_is_processed_stays_until_it_is_settled() {
        let mut r = record(1);
        r.track(0, Details::null(), &limits(), |_| true);
        r.track(1, Details::null(), &limits(), |_| true);
        let claimed = r.claim(u64::MAX).unwrap();
        let reset = r.reset(2);
        assert_eq!(reset.batch, None);
        assert!(!reset.remove);
        assert_eq!(claimed.count, 1);
        r.processed();
        assert!(r.is_idle(2, 0));
    }
}
