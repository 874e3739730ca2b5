//! `throttle`: the first event per key per window. An event is admitted if no event was
//! admitted for the key in the last `window`: exactly `window` after the last admitted
//! one is admitted; an event earlier than the last admitted one is not.

use std::time::Duration;

use super::Algorithm;
use crate::decision::Decision;
use crate::error::PolicyError;
use crate::rate::window_micros;

/// First event per key per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    window: u64,
}

/// Per-key state of [`Throttle`]: when the last event was admitted. 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ThrottleState {
    /// Microsecond time of the last admitted event, if any.
    pub last: Option<u64>,
}

impl Throttle {
    /// One event per `window`.
    pub fn new(window: Duration) -> Result<Self, PolicyError> {
        Ok(Self {
            window: window_micros(window)?,
        })
    }

    /// From an already validated window in microseconds.
    pub(crate) fn from_micros(window: u64) -> Self {
        Self { window }
    }

    /// The window in microseconds.
    pub fn window_micros(&self) -> u64 {
        self.window
    }
}

impl Algorithm for Throttle {
    type State = ThrottleState;

    fn fresh(&self) -> ThrottleState {
        ThrottleState::default()
    }

    fn acquire(&self, s: &mut ThrottleState, now: u64, _cost: u64) -> Decision {
        match s.last {
            Some(last) if now < last.saturating_add(self.window) => Decision {
                allowed: false,
                limit: 1,
                remaining: 0,
                retry_after_us: Some(last + self.window - now),
                reset_after_us: last + self.window - now,
                delay_us: None,
            },
            _ => {
                s.last = Some(now);
                Decision {
                    allowed: true,
                    limit: 1,
                    remaining: 0,
                    retry_after_us: None,
                    reset_after_us: self.window,
                    delay_us: None,
                }
            }
        }
    }

    fn expires_at(&self, s: &ThrottleState) -> u64 {
        s.last.map_or(0, |last| last.saturating_add(self.window))
    }

    fn capacity(&self) -> u64 {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::test_support::*;

    #[test]
    fn throttle_ten_seconds_admits_the_first_event_per_key_per_window() {
        let t = Throttle::new(Duration::from_secs(10)).unwrap();
        let (mut a, mut b) = (t.fresh(), t.fresh());
        let got = [
            t.acquire(&mut a, S, 1).allowed,
            t.acquire(&mut a, 5 * S, 1).allowed,
            t.acquire(&mut a, 12 * S, 1).allowed,
            t.acquire(&mut b, 15 * S, 1).allowed,
            t.acquire(&mut b, 20 * S, 1).allowed,
            t.acquire(&mut b, 25 * S, 1).allowed,
        ];
        assert_eq!(got, [true, false, true, true, false, true]);
    }

    #[test]
    fn throttle_denies_events_earlier_than_the_last_admitted_one() {
        let t = Throttle::new(Duration::from_secs(10)).unwrap();
        let mut s = t.fresh();
        assert!(t.acquire(&mut s, 100 * S, 1).allowed);
        let d = t.acquire(&mut s, 50 * S, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, Some(60 * S));
    }
}
