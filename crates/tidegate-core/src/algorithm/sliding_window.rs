//! `sliding_window`: the sliding window counter.
//!
//! Sub-windows of length `window` are aligned to the key's first hit. When `elapsed`
//! (time since the current sub-window started) reaches `window`, the sub-window
//! advances: `previous = current` (or 0 if two or more windows passed), `current = 0`.
//! A request is admitted iff
//! `current + floor(previous * (window - elapsed) / window) + cost <= limit`.
//! When both counts are 0 the state is fresh and the next hit re-aligns the sub-windows.

use std::time::Duration;

use super::Algorithm;
use super::wide::mul_add_div;
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::rate::{check_limit, window_micros};

/// The sliding window counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow {
    limit: u64,
    window: u64,
}

/// Per-key state of [`SlidingWindow`]. 24 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SlidingWindowState {
    /// Microsecond time the current sub-window started.
    pub start: u64,
    /// Cost admitted in the previous sub-window.
    pub previous: u64,
    /// Cost admitted in the current sub-window.
    pub current: u64,
}

impl SlidingWindow {
    /// Up to `limit` cost per sliding `window`.
    pub fn new(limit: u64, window: Duration) -> Result<Self, PolicyError> {
        let window = window_micros(window)?;
        check_limit("limit", limit)?;
        Ok(Self { limit, window })
    }

    /// `(limit, window µs)`.
    pub fn params(&self) -> (u64, u64) {
        (self.limit, self.window)
    }

    /// Advances the sub-windows to `now`; returns `elapsed` in the current one.
    fn advance(&self, s: &mut SlidingWindowState, now: u64) -> u64 {
        if now >= s.start.saturating_add(self.window) {
            let passed = (now - s.start) / self.window;
            s.previous = if passed == 1 { s.current } else { 0 };
            s.current = 0;
            s.start += passed * self.window;
        }
        if s.previous == 0 && s.current == 0 {
            s.start = now;
        }
        now.saturating_sub(s.start)
    }

    /// `floor(previous * (window - elapsed) / window)`: the previous sub-window's weight.
    fn carried(&self, previous: u64, elapsed: u64) -> u64 {
        mul_add_div(previous, self.window - elapsed, 0, self.window).0
    }

    /// Smallest `e` with `floor(previous * (window - e) / window) <= room`, for `room < previous`.
    fn first_elapsed_fitting(&self, previous: u64, room: u64) -> u64 {
        // floor(p*(w-e)/w) <= room  <=>  p*(w-e) < (room+1)*w  <=>  w-e <= ((room+1)*w-1)/p
        if room >= previous {
            return 0;
        }
        // (room+1)*w = q*p + r, so ((room+1)*w-1)/p is q when r > 0, q-1 when r == 0;
        // q <= w since room+1 <= p.
        let (q, r) = mul_add_div(room + 1, self.window, 0, previous);
        self.window - (q - u64::from(r == 0))
    }

    /// Microseconds from `now` until `cost` fits, for the advanced state `s`.
    fn wait(&self, s: &SlidingWindowState, elapsed: u64, cost: u64) -> u64 {
        let estimate = s.current + self.carried(s.previous, elapsed);
        if estimate + cost <= self.limit {
            return 0;
        }
        if s.current + cost <= self.limit {
            // Fits later in this sub-window, once the previous weight has decayed enough.
            let e = self.first_elapsed_fitting(s.previous, self.limit - s.current - cost);
            if e < self.window {
                return e - elapsed;
            }
        }
        // In the next sub-window, `current` becomes the previous weight.
        let to_next = self.window - elapsed;
        if s.current == 0 {
            return to_next;
        }
        to_next + self.first_elapsed_fitting(s.current, self.limit - cost)
    }
}

impl Algorithm for SlidingWindow {
    type State = SlidingWindowState;

    fn fresh(&self) -> SlidingWindowState {
        SlidingWindowState::default()
    }

    fn acquire(&self, s: &mut SlidingWindowState, now: u64, cost: u64) -> Decision {
        let elapsed = self.advance(s, now);
        let estimate = s.current + self.carried(s.previous, elapsed);
        if estimate + cost <= self.limit {
            s.current += cost;
            Decision {
                allowed: true,
                limit: self.limit,
                remaining: self.limit - estimate - cost,
                retry_after_us: None,
                reset_after_us: self.wait(s, elapsed, self.limit),
                delay_us: None,
            }
        } else {
            Decision {
                allowed: false,
                limit: self.limit,
                remaining: self.limit.saturating_sub(estimate),
                retry_after_us: Some(self.wait(s, elapsed, cost)),
                reset_after_us: self.wait(s, elapsed, self.limit),
                delay_us: None,
            }
        }
    }

    fn expires_at(&self, s: &SlidingWindowState) -> u64 {
        if s.current > 0 {
            s.start.saturating_add(2 * self.window)
        } else if s.previous > 0 {
            s.start.saturating_add(self.window)
        } else {
            0
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
    fn sliding_window_weights_the_previous_sub_window_by_its_overlap() {
        let sw = SlidingWindow::new(10, Duration::from_secs(10)).unwrap();
        let mut s = sw.fresh();
        assert_eq!(admitted_in_a_row(&sw, &mut s, 0, 1), 10);
        // At t=15 s: previous = 10 weighted by (10-5)/10 -> 5; current 0: 5 more fit.
        assert_eq!(admitted_in_a_row(&sw, &mut s, 15 * S, 1), 5);
    }

    #[test]
    fn sliding_window_retry_after_is_exact() {
        let sw = SlidingWindow::new(10, Duration::from_secs(10)).unwrap();
        let mut s = sw.fresh();
        for _ in 0..10 {
            sw.acquire(&mut s, 0, 1);
        }
        let d = sw.acquire(&mut s, 5 * S, 1);
        assert!(!d.allowed);
        // The next sub-window starts at 10 s with previous = 10, and
        // floor(10 * (10 s - e) / 10 s) drops to 9 as soon as e = 1 µs.
        assert_eq!(d.retry_after_us, Some(5 * S + 1));
        assert!(!sw.acquire(&mut s, 10 * S, 1).allowed);
        assert!(sw.acquire(&mut s, 10 * S + 1, 1).allowed);
    }

    #[test]
    fn sliding_window_forgets_after_two_idle_windows() {
        let sw = SlidingWindow::new(2, Duration::from_secs(1)).unwrap();
        let mut s = sw.fresh();
        sw.acquire(&mut s, 0, 2);
        assert_eq!(sw.expires_at(&s), 2 * S);
        let d = sw.acquire(&mut s, 2 * S, 2);
        assert!(d.allowed);
        assert_eq!(s.start, 2 * S);
    }
}
