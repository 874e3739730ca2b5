//! Which records the purge of idle records may remove.

use super::record::Record;

impl Record {
    /// Whether the record may be purged at `now`: nothing waiting, nothing in flight,
    /// and no event for `expire_us`.
    pub fn is_idle(&self, now: u64, expire_us: u64) -> bool {
        self.pending.is_none()
            && self.in_flight == 0
            && now.saturating_sub(self.last_seen) >= expire_us
    }
}
