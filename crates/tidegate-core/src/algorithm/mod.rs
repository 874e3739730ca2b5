//! The limiting algorithms: pure state machines `(state, now, cost) -> (state, decision)`.
//!
//! Each algorithm's arithmetic lives in its own module and nowhere else; the stores
//! only hold the states. Time is whole microseconds, all arithmetic is integer and
//! exact (see `docs/ALGORITHMS.md` for every formula).

pub mod fixed_window;
pub mod gcra;
pub mod leaky_bucket;
pub mod sliding_log;
pub mod sliding_window;
#[cfg(test)]
mod test_support;
pub mod throttle;
pub mod token_bucket;
mod wide;

pub use fixed_window::FixedWindow;
pub use gcra::Gcra;
pub use leaky_bucket::LeakyBucket;
pub use sliding_log::SlidingLog;
pub use sliding_window::SlidingWindow;
pub use throttle::Throttle;
pub use token_bucket::TokenBucket;

use crate::decision::Decision;
use crate::error::CostError;

/// A rate-limiting algorithm with fixed parameters, operating on per-key states.
///
/// Callers must pass `1 <= cost <= capacity()` to [`acquire`](Self::acquire) and
/// [`peek`](Self::peek); [`check_cost`](Self::check_cost) turns anything else into an
/// error, because such a request could never be admitted.
pub trait Algorithm: Send + Sync {
    /// The per-key state.
    type State: Clone + Send + 'static;

    /// The state of a key that has never been seen.
    fn fresh(&self) -> Self::State;

    /// Decides at `now` whether `cost` fits; consumes it from `state` only if it does.
    ///
    /// A denied request may still normalise `state` (advance windows, drop expired
    /// entries), which never changes any later decision.
    fn acquire(&self, state: &mut Self::State, now: u64, cost: u64) -> Decision;

    /// The decision [`acquire`](Self::acquire) would give, without changing anything.
    fn peek(&self, state: &Self::State, now: u64, cost: u64) -> Decision {
        let mut scratch = state.clone();
        self.acquire(&mut scratch, now, cost)
    }

    /// The time (µs) from which `state` is equivalent to [`fresh`](Self::fresh): every
    /// later decision would be the same for a fresh state, so it may be forgotten.
    fn expires_at(&self, state: &Self::State) -> u64;

    /// The largest cost one request can ever be admitted with.
    fn capacity(&self) -> u64;

    /// Rejects a cost that can never be admitted (zero, or above the capacity).
    fn check_cost(&self, cost: u64) -> Result<(), CostError> {
        let capacity = self.capacity();
        if cost == 0 {
            Err(CostError::Zero)
        } else if cost > capacity {
            Err(CostError::ExceedsCapacity { cost, capacity })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;
    use crate::policy::PolicyState;

    #[test]
    fn per_key_states_stay_compact() {
        assert_eq!(size_of::<gcra::GcraState>(), 16);
        assert_eq!(size_of::<token_bucket::TokenBucketState>(), 16);
        assert_eq!(size_of::<fixed_window::FixedWindowState>(), 16);
        assert_eq!(size_of::<sliding_window::SlidingWindowState>(), 24);
        assert_eq!(size_of::<throttle::ThrottleState>(), 16);
        assert_eq!(size_of::<sliding_log::SlidingLogState>(), 40);
        assert_eq!(size_of::<PolicyState>(), 32);
    }
}
