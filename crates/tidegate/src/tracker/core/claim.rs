//! Claiming a due batch: it leaves the record and is counted in flight.

use super::batch::Batch;
use super::record::Record;

impl Record {
    /// Takes the waiting batch out of the record if it is due at `now`, counting it in
    /// flight until it is settled; `None` when nothing is due.
    pub fn claim(&mut self, now: u64) -> Option<Batch> {
        if self.pending.as_ref()?.due_at > now {
            return None;
        }
        self.in_flight += 1;
        self.pending.take()
    }
}
