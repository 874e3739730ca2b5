//! `sliding_log`: exact. A request is admitted iff the cost admitted in
//! `(now - window, now]` plus its own cost is at most `limit`.
//!
//! The state is the log of admitted hits (merged per timestamp) with a running total of
//! cost, so each decision drops expired entries (amortised O(1)) and finds the retry
//! time by binary search.

use std::collections::VecDeque;
use std::time::Duration;

use super::Algorithm;
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::rate::{check_limit, window_micros};

/// Cumulative costs are re-based to 0 once the dropped cost reaches this (2^52), so they
/// never overflow however long a key stays busy.
const REBASE_AT: u64 = 1 << 52;

/// The exact sliding log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingLog {
    limit: u64,
    window: u64,
}

/// Per-key state of [`SlidingLog`]: 40 bytes plus 16 bytes per distinct timestamp in the
/// window (at most `limit` entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SlidingLogState {
    /// `(time, cumulative cost up to and including this entry)`, oldest first.
    entries: VecDeque<(u64, u64)>,
    /// Cumulative cost of the entries already dropped.
    dropped: u64,
}

impl SlidingLogState {
    /// Cost admitted by the entries still in the log.
    pub fn total(&self) -> u64 {
        self.entries
            .back()
            .map_or(0, |&(_, cum)| cum - self.dropped)
    }

    /// Number of log entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl SlidingLog {
    /// Up to `limit` cost in any `window`.
    pub fn new(limit: u64, window: Duration) -> Result<Self, PolicyError> {
        let window = window_micros(window)?;
        check_limit("limit", limit)?;
        Ok(Self { limit, window })
    }

    /// `(limit, window µs)`.
    pub fn params(&self) -> (u64, u64) {
        (self.limit, self.window)
    }

    /// Drops entries outside `(now - window, now]`.
    fn expire(&self, s: &mut SlidingLogState, now: u64) {
        while let Some(&(t, cum)) = s.entries.front() {
            if now.saturating_sub(t) < self.window {
                break;
            }
            s.dropped = cum;
            s.entries.pop_front();
        }
        if s.entries.is_empty() {
            s.dropped = 0;
        } else if s.dropped >= REBASE_AT {
            // Only differences of cumulative costs matter: keep them small for good.
            for entry in &mut s.entries {
                entry.1 -= s.dropped;
            }
            s.dropped = 0;
        }
    }

    /// Microseconds until the log has room for `cost` (entries expire oldest first).
    fn wait(&self, s: &SlidingLogState, now: u64, cost: u64) -> u64 {
        let total = s.total();
        if total + cost <= self.limit {
            return 0;
        }
        // Expire entries until at least `total + cost - limit` cost has left the log.
        let must_leave = s.dropped + (total + cost - self.limit);
        let i = s.entries.partition_point(|&(_, cum)| cum < must_leave);
        let (t, _) = s.entries[i];
        (t + self.window).saturating_sub(now)
    }

    fn decision(&self, s: &SlidingLogState, now: u64, allowed: bool, cost: u64) -> Decision {
        let total = s.total();
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit.saturating_sub(total),
            retry_after_us: (!allowed).then(|| self.wait(s, now, cost)),
            reset_after_us: s
                .entries
                .back()
                .map_or(0, |&(t, _)| (t + self.window).saturating_sub(now)),
            delay_us: None,
        }
    }
}

impl Algorithm for SlidingLog {
    type State = SlidingLogState;

    fn fresh(&self) -> SlidingLogState {
        SlidingLogState::default()
    }

    fn acquire(&self, s: &mut SlidingLogState, now: u64, cost: u64) -> Decision {
        self.expire(s, now);
        let allowed = s.total() + cost <= self.limit;
        if allowed {
            let cum = s.entries.back().map_or(s.dropped, |&(_, cum)| cum) + cost;
            match s.entries.back_mut() {
                Some(last) if last.0 == now => last.1 = cum,
                _ => s.entries.push_back((now, cum)),
            }
        }
        self.decision(s, now, allowed, cost)
    }

    fn peek(&self, state: &SlidingLogState, now: u64, cost: u64) -> Decision {
        let live = state
            .entries
            .partition_point(|&(t, _)| now.saturating_sub(t) >= self.window);
        let view = SlidingLogState {
            dropped: match live {
                0 => state.dropped,
                n => state.entries[n - 1].1,
            },
            entries: state.entries.range(live..).copied().collect(),
        };
        let allowed = view.total() + cost <= self.limit;
        let mut after = view;
        if allowed {
            // The decision reports what is left after consuming.
            let cum = after.entries.back().map_or(after.dropped, |&(_, c)| c) + cost;
            after.entries.push_back((now, cum));
        }
        self.decision(&after, now, allowed, cost)
    }

    fn expires_at(&self, s: &SlidingLogState) -> u64 {
        s.entries
            .back()
            .map_or(0, |&(t, _)| t.saturating_add(self.window))
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
    fn sliding_log_admits_exactly_limit_in_any_window() {
        let sl = SlidingLog::new(3, Duration::from_secs(10)).unwrap();
        let mut s = sl.fresh();
        assert!(sl.acquire(&mut s, 0, 1).allowed);
        assert!(sl.acquire(&mut s, 4 * S, 1).allowed);
        assert!(sl.acquire(&mut s, 8 * S, 1).allowed);
        let d = sl.acquire(&mut s, 9 * S, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, Some(S));
        // The hit at 0 leaves the window (now - 0 >= 10 s) at exactly 10 s.
        assert!(!sl.acquire(&mut s, 10 * S - 1, 1).allowed);
        assert!(sl.acquire(&mut s, 10 * S, 1).allowed);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn sliding_log_retry_after_waits_for_enough_weighted_cost_to_leave() {
        let sl = SlidingLog::new(10, Duration::from_secs(10)).unwrap();
        let mut s = sl.fresh();
        sl.acquire(&mut s, 0, 3);
        sl.acquire(&mut s, S, 3);
        sl.acquire(&mut s, 2 * S, 4);
        let d = sl.acquire(&mut s, 3 * S, 5);
        // 5 must leave: the hits at 0 (3) and 1 s (3) -> at 11 s.
        assert_eq!(d.retry_after_us, Some(8 * S));
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_after_us, 9 * S);
    }

    #[test]
    fn sliding_log_merges_hits_at_the_same_instant() {
        let sl = SlidingLog::new(100, Duration::from_secs(1)).unwrap();
        let mut s = sl.fresh();
        for _ in 0..50 {
            sl.acquire(&mut s, 7, 1);
        }
        assert_eq!((s.len(), s.total()), (1, 50));
    }

    #[test]
    fn sliding_log_peek_matches_acquire_without_changing_state() {
        let sl = SlidingLog::new(3, Duration::from_secs(10)).unwrap();
        let mut s = sl.fresh();
        sl.acquire(&mut s, 0, 2);
        sl.acquire(&mut s, 5 * S, 1);
        for (now, cost) in [(6 * S, 1), (10 * S, 1), (10 * S, 2), (15 * S, 3)] {
            let before = s.clone();
            let peeked = sl.peek(&s, now, cost);
            assert_eq!(s, before);
            assert_eq!(peeked, sl.acquire(&mut s.clone(), now, cost));
        }
    }
}
