//! Rate-limited log lines: at most one per interval, with a count of what was skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Allows one log line per `every`; counts the occasions in between.
#[derive(Debug)]
pub(crate) struct LogEvery {
    every_ms: u64,
    epoch: Instant,
    /// When the last line was allowed (ms since `epoch`, +1 so that 0 means never).
    last_ms: AtomicU64,
    skipped: AtomicU64,
}

impl LogEvery {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every_ms: every.as_millis() as u64,
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged now.
    pub(crate) fn ready(&self) -> bool {
        self.ready_with_count().is_some()
    }

    /// `Some(occasions skipped since the last line)` when a line may be logged now.
    pub(crate) fn ready_with_count(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now < last + self.every_ms
            || self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.skipped.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_count_of_the_rest() {
        let l = LogEvery::new(Duration::from_secs(3_600));
        assert_eq!(l.ready_with_count(), Some(0));
        assert!(!l.ready());
        assert!(!l.ready());
        let l = LogEvery::new(Duration::ZERO);
        assert!(l.ready());
        assert!(l.ready());
    }
}
