//! `fixed_window`: a window of length `window` opens at the key's first admitted hit;
//! up to `limit` cost is admitted in it; the count resets when the window ends.
//!
//! With `align=epoch` the windows are instead the same for every key and every process:
//! they start at multiples of `window` since the Unix epoch (`now - now % window`), the
//! windows of envoyproxy/ratelimit and of most Redis counters, so that counts agree with
//! them during a migration.

use std::time::Duration;

use super::Algorithm;
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::lease::{Lease, PackedLease};
use crate::rate::{check_limit, window_micros};

/// Fixed windows anchored at each key's first admitted hit, or aligned to the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindow {
    limit: u64,
    window: u64,
    epoch_aligned: bool,
    lease: PackedLease,
}

/// Per-key state of [`FixedWindow`]: the window's start and the cost admitted in it. 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FixedWindowState {
    /// Microsecond time the current window opened.
    pub start: u64,
    /// Cost admitted since `start` (0 = no open window).
    pub count: u64,
}

impl FixedWindow {
    /// Up to `limit` cost per `window`.
    pub fn new(limit: u64, window: Duration) -> Result<Self, PolicyError> {
        let window = window_micros(window)?;
        check_limit("limit", limit)?;
        Ok(Self {
            limit,
            window,
            epoch_aligned: false,
            lease: PackedLease::default(),
        })
    }

    /// Up to `limit` cost per `window`, the windows starting at multiples of `window`
    /// since the Unix epoch (the clock must give Unix times, as every tidegate clock
    /// but a [`ManualClock`](crate::ManualClock) set otherwise does).
    pub fn epoch_aligned(limit: u64, window: Duration) -> Result<Self, PolicyError> {
        Ok(Self {
            epoch_aligned: true,
            ..Self::new(limit, window)?
        })
    }

    /// `(limit, window µs)`.
    pub fn params(&self) -> (u64, u64) {
        (self.limit, self.window)
    }

    /// Whether the windows are aligned to the epoch rather than to each key's first hit.
    pub fn is_epoch_aligned(&self) -> bool {
        self.epoch_aligned
    }

    /// The `lease` option: how much a shared store hands out at once (the algorithm
    /// itself ignores it; see [`crate::lease`]).
    pub fn lease(&self) -> Option<Lease> {
        self.lease.get()
    }

    /// The same policy with the `lease` option set.
    pub(crate) fn with_lease(self, lease: Option<Lease>) -> Self {
        Self {
            lease: PackedLease::new(lease),
            ..self
        }
    }

    /// The start of a window opened by an admitted hit at `now`.
    #[inline]
    fn window_start(&self, now: u64) -> u64 {
        if self.epoch_aligned {
            now - now % self.window
        } else {
            now
        }
    }
}

impl Algorithm for FixedWindow {
    type State = FixedWindowState;

    fn fresh(&self) -> FixedWindowState {
        FixedWindowState::default()
    }

    fn acquire(&self, s: &mut FixedWindowState, now: u64, cost: u64) -> Decision {
        let end = s.start.saturating_add(self.window);
        if s.count > 0 && now >= end {
            s.count = 0;
        }
        if s.count + cost <= self.limit {
            if s.count == 0 {
                s.start = self.window_start(now);
            }
            s.count += cost;
            Decision {
                allowed: true,
                limit: self.limit,
                remaining: self.limit - s.count,
                retry_after_us: None,
                reset_after_us: s.start + self.window - now,
                delay_us: None,
            }
        } else {
            // The window is open (a fresh one admits any cost up to the limit).
            Decision {
                allowed: false,
                limit: self.limit,
                remaining: self.limit - s.count,
                retry_after_us: Some(end - now),
                reset_after_us: end - now,
                delay_us: None,
            }
        }
    }

    fn expires_at(&self, s: &FixedWindowState) -> u64 {
        if s.count == 0 {
            0
        } else {
            s.start.saturating_add(self.window)
        }
    }

    fn capacity(&self) -> u64 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::test_support::*;

    #[test]
    fn fixed_window_three_per_twenty_seconds_resets_at_the_window_end() {
        let fw = FixedWindow::new(3, Duration::from_secs(20)).unwrap();
        let mut s = fw.fresh();
        assert_eq!(admitted_in_a_row(&fw, &mut s, 0, 1), 3);
        let d = fw.acquire(&mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, Some(20 * S));
        let d = fw.acquire(&mut s, 19 * S, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, Some(S));
        let d = fw.acquire(&mut s, 20 * S, 1);
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_after_us), (2, 20 * S));
    }

    #[test]
    fn fixed_window_opens_at_the_first_admitted_hit_not_on_a_grid() {
        let fw = FixedWindow::new(1, Duration::from_secs(10)).unwrap();
        let mut s = fw.fresh();
        assert!(fw.acquire(&mut s, 7 * S, 1).allowed);
        assert!(!fw.acquire(&mut s, 16 * S, 1).allowed);
        assert!(fw.acquire(&mut s, 17 * S, 1).allowed);
    }

    #[test]
    fn epoch_aligned_windows_start_at_multiples_of_the_window() {
        let fw = FixedWindow::epoch_aligned(2, Duration::from_secs(60)).unwrap();
        let mut s = fw.fresh();
        // A first hit at 1 min 50 s opens the window [1 min, 2 min): 10 s are left.
        let d = fw.acquire(&mut s, 110 * S, 1);
        assert!(d.allowed);
        assert_eq!((s.start, d.reset_after_us), (60 * S, 10 * S));
        assert!(fw.acquire(&mut s, 115 * S, 1).allowed);
        let d = fw.acquire(&mut s, 119 * S, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, Some(S));
        // At 2 min exactly the next window opens, whatever the first hit's offset was.
        let d = fw.acquire(&mut s, 120 * S, 1);
        assert!(d.allowed);
        assert_eq!((s.start, d.reset_after_us), (120 * S, 60 * S));
        // A key first seen late in a window gets only what is left of it.
        let mut late = fw.fresh();
        assert_eq!(fw.acquire(&mut late, 179 * S, 2).reset_after_us, S);
        assert!(fw.acquire(&mut late, 180 * S, 2).allowed);
    }
}
