//! `Throttler`: process only the first event per key within a window (the Python
//! per-key event throttler's API), thread-safe, with idle keys cleaned up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::algorithm::Algorithm;
use crate::algorithm::throttle::{Throttle, ThrottleState};
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::limiter::Limiter;
use crate::rate::window_micros;
use crate::time::{Clock, MICROS_PER_SEC, duration_to_micros};

/// A throttle whose window can change while in use (applies to existing keys at once).
#[derive(Debug)]
pub struct AdjustableThrottle {
    window: AtomicU64,
}

impl AdjustableThrottle {
    fn current(&self) -> Throttle {
        Throttle::from_micros(self.window.load(Ordering::Relaxed))
    }
}

impl Algorithm for AdjustableThrottle {
    type State = ThrottleState;

    fn fresh(&self) -> ThrottleState {
        ThrottleState::default()
    }

    fn acquire(&self, state: &mut ThrottleState, now: u64, cost: u64) -> Decision {
        self.current().acquire(state, now, cost)
    }

    fn expires_at(&self, state: &ThrottleState) -> u64 {
        self.current().expires_at(state)
    }

    fn capacity(&self) -> u64 {
        1
    }
}

/// The latest event timestamp seen: the Throttler's notion of "now" for cleanup.
#[derive(Debug, Clone, Default)]
struct LatestSeen(Arc<AtomicU64>);

impl LatestSeen {
    #[inline]
    fn observe(&self, t: u64) {
        if t > self.0.load(Ordering::Relaxed) {
            self.0.fetch_max(t, Ordering::Relaxed);
        }
    }
}

impl Clock for LatestSeen {
    fn now_micros(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Decides, per key, whether an event is the first one within the window.
///
/// Timestamps come from the caller (seconds, or any [`Duration`] since an epoch of the
/// caller's choosing). Keys idle for longer than the window, measured against the latest
/// timestamp seen, are removed in the background. Cheap to clone; clones share state.
///
/// ```
/// use std::time::Duration;
/// use tidegate_core::Throttler;
///
/// let throttler = Throttler::new(Duration::from_secs(10))?;
/// assert!(throttler.should_process(1, "e1", "userA")); // first event
/// assert!(!throttler.should_process(5, "e2", "userA")); // within 10 s window
/// assert!(throttler.should_process(12, "e3", "userA")); // after window
/// assert!(throttler.should_process(15, "e4", "userB")); // new user
/// assert!(!throttler.should_process(20, "e5", "userB")); // still within window
///
/// throttler.update_window(Duration::from_secs(20))?;
/// assert_eq!(throttler.window(), Duration::from_secs(20));
/// assert_eq!(throttler.key_count(), 2);
/// throttler.clear();
/// assert_eq!(throttler.key_count(), 0);
/// # Ok::<(), tidegate_core::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct Throttler {
    limiter: Limiter<AdjustableThrottle, String, LatestSeen>,
    latest: LatestSeen,
}

impl std::fmt::Debug for Throttler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttler")
            .field("window", &self.window())
            .field("keys", &self.key_count())
            .finish()
    }
}

impl Throttler {
    /// A throttler admitting the first event per key per `window`.
    pub fn new(window: Duration) -> Result<Self, PolicyError> {
        Self::with_cleanup_interval(window, Duration::from_secs(1))
    }

    /// Like [`new`](Self::new), sweeping idle keys every `interval`.
    pub fn with_cleanup_interval(
        window: Duration,
        interval: Duration,
    ) -> Result<Self, PolicyError> {
        let algorithm = AdjustableThrottle {
            window: AtomicU64::new(window_micros(window)?),
        };
        let latest = LatestSeen::default();
        let limiter = Limiter::builder(algorithm)
            .clock(latest.clone())
            .sweep_interval(Some(interval))
            .build();
        Ok(Self { limiter, latest })
    }

    /// Whether the event at `timestamp` (whole seconds) should be processed for `key`.
    /// `event_id` does not affect the decision.
    pub fn should_process(&self, timestamp: u64, event_id: &str, key: &str) -> bool {
        self.should_process_at(
            Duration::from_micros(timestamp.saturating_mul(MICROS_PER_SEC)),
            event_id,
            key,
        )
    }

    /// Whether the event at `timestamp` should be processed for `key`.
    pub fn should_process_at(&self, timestamp: Duration, _event_id: &str, key: &str) -> bool {
        let now = duration_to_micros(timestamp);
        self.latest.observe(now);
        // Cost 1 always fits a throttle; a full store (10 million keys) refuses new keys,
        // which are then not processed.
        self.limiter.check_at(key, 1, now).is_ok_and(|d| d.allowed)
    }

    /// Changes the window; it applies to existing keys at once.
    pub fn update_window(&self, window: Duration) -> Result<(), PolicyError> {
        let us = window_micros(window)?;
        self.limiter.algorithm().window.store(us, Ordering::Relaxed);
        Ok(())
    }

    /// The current window.
    pub fn window(&self) -> Duration {
        Duration::from_micros(self.limiter.algorithm().window.load(Ordering::Relaxed))
    }

    /// Forgets every key.
    pub fn clear(&self) {
        self.limiter.store().clear();
    }

    /// Number of keys tracked (idle ones are removed in the background).
    pub fn key_count(&self) -> usize {
        self.limiter.len()
    }

    /// Removes keys idle for longer than the window now; returns how many.
    pub fn cleanup(&self) -> usize {
        self.limiter.sweep()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttler_window_update_applies_to_existing_keys() {
        let t = Throttler::new(Duration::from_secs(10)).unwrap();
        assert!(t.should_process(0, "e1", "k"));
        t.clear();
        assert!(t.should_process(0, "e1", "k"));
        t.update_window(Duration::from_secs(30)).unwrap();
        assert!(
            !t.should_process(20, "e2", "k"),
            "30 s window now applies to k"
        );
        assert!(t.should_process(30, "e3", "k"));
    }

    #[test]
    fn throttler_cleans_up_idle_keys_against_the_latest_timestamp() {
        let t = Throttler::new(Duration::from_secs(10)).unwrap();
        for i in 0..100 {
            t.should_process(0, "e", &format!("user{i}"));
        }
        t.should_process(5, "e", "late");
        assert_eq!(t.cleanup(), 0);
        t.should_process(10, "e", "late");
        assert_eq!(t.cleanup(), 100, "the keys last seen at 0 are idle at 10");
        assert_eq!(t.key_count(), 1);
    }

    #[test]
    fn throttler_rejects_a_zero_window() {
        assert_eq!(Throttler::new(Duration::ZERO).unwrap_err().field, "window");
        let t = Throttler::new(Duration::from_secs(1)).unwrap();
        assert!(t.update_window(Duration::ZERO).is_err());
        assert_eq!(t.window(), Duration::from_secs(1));
    }
}
