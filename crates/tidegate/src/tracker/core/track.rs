//! Tracking one event: the gate decides, a denied event joins the waiting batch.

use super::batch::{Batch, DetailFate};
use super::record::Record;
use super::settings::DetailLimits;
use crate::tracker::Details;

/// What tracking one event did to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// The gate admitted it: handle it now.
    Immediate,
    /// It joined the waiting batch.
    Deferred {
        /// The event opened the batch (the store indexes it by its due time).
        opened: bool,
        /// What became of its detail.
        detail: DetailFate,
    },
}

impl Record {
    /// Tracks one event at `now`: counts it, asks the gate, and when the gate denies
    /// adds it (and its detail, within `limits` and what `charge` accepts) to the
    /// waiting batch, opening one due at the gate's wait or else the record's deferral.
    pub fn track(
        &mut self,
        now: u64,
        detail: Details,
        limits: &DetailLimits,
        charge: impl FnOnce(usize) -> bool,
    ) -> Tracked {
        self.total += 1;
        self.last_seen = now;
        let settings = self.settings;
        let wait = match settings
            .gate
            .admit(&mut self.gate, now, self.pending.is_some())
        {
            Ok(()) => return Tracked::Immediate,
            Err(wait) => wait,
        };
        let opened = self.pending.is_none();
        let batch = match &mut self.pending {
            Some(p) => {
                p.count += 1;
                p.last_seen = now;
                p
            }
            None => self
                .pending
                .insert(Batch::open(now, now + wait.unwrap_or(settings.defer_us))),
        };
        let detail = batch.add_detail(detail, limits, charge);
        Tracked::Deferred { opened, detail }
    }
}
