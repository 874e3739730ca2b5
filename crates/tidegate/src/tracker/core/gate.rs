//! The strategy gate: per record, whether an event is immediate, and when a denied
//! event's batch is due. A small state machine over the µs timeline; the rate arithmetic
//! is the limiter's own (`token_bucket`, `sliding_window`).

use std::time::Duration;

use crate::algorithm::sliding_window::SlidingWindowState;
use crate::algorithm::token_bucket::TokenBucketState;
use crate::algorithm::{Algorithm, SlidingWindow, TokenBucket};
use crate::error::PolicyError;
use crate::time::duration_to_micros;
use crate::tracker::Strategy;

/// A strategy with its parameters checked and the limit and deferral resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    /// The simple counter: `limit` events between two processed batches.
    Counter {
        /// Events admitted before deferral.
        limit: u64,
    },
    /// The token bucket.
    Bucket(TokenBucket),
    /// The sliding window counter.
    Window(SlidingWindow),
}

/// The per-record state of a [`Gate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateState {
    /// Events admitted since the record was last processed.
    Counter(u64),
    /// The bucket's schedule.
    Bucket(TokenBucketState),
    /// The window's counts.
    Window(SlidingWindowState),
}

/// Tokens per second are kept exact to 1/1000 token per second: the bucket refills
/// `round(rate × 1000)` tokens per 1000 s.
const RATE_SCALE: f64 = 1000.0;

impl Gate {
    /// Checks `strategy` with the record's `limit`.
    pub fn new(strategy: Strategy, limit: u64) -> Result<Self, PolicyError> {
        Ok(match strategy {
            Strategy::SimpleCounter => {
                if limit == 0 {
                    return Err(PolicyError::new("limit", "must be at least 1"));
                }
                Self::Counter { limit }
            }
            Strategy::TokenBucket {
                bucket_size,
                refill_rate,
            } => {
                if !refill_rate.is_finite() || refill_rate <= 0.0 {
                    return Err(PolicyError::new(
                        "refill_rate",
                        format!(
                            "must be a finite number of tokens per second above 0, not {refill_rate}"
                        ),
                    ));
                }
                let per_kilosecond = (refill_rate * RATE_SCALE).round();
                if per_kilosecond < 1.0 {
                    return Err(PolicyError::new(
                        "refill_rate",
                        format!(
                            "{refill_rate} is below the smallest rate, 0.001 tokens per second"
                        ),
                    ));
                }
                if bucket_size == 0 {
                    return Err(PolicyError::new("bucket_size", "must be at least 1"));
                }
                let bucket = TokenBucket::new(
                    per_kilosecond as u64,
                    Duration::from_secs(1_000),
                    Some(bucket_size),
                )
                .map_err(|mut e| {
                    if e.field == "limit" {
                        e.field = "refill_rate".into();
                    } else if e.field == "burst" {
                        e.field = "bucket_size".into();
                    }
                    e
                })?;
                Self::Bucket(bucket)
            }
            Strategy::SlidingWindow { window_size } => {
                let window = SlidingWindow::new(limit, window_size).map_err(|mut e| {
                    if e.field == "window" {
                        e.field = "window_size".into();
                    }
                    e
                })?;
                Self::Window(window)
            }
        })
    }

    /// The state of a record that has seen no event.
    pub fn fresh(&self) -> GateState {
        match self {
            Self::Counter { .. } => GateState::Counter(0),
            Self::Bucket(b) => GateState::Bucket(b.fresh()),
            Self::Window(w) => GateState::Window(w.fresh()),
        }
    }

    /// Whether the event at `now` is immediate. When it is not, `Some(wait)` is the
    /// strategy's own idea of when the record is due (token bucket: the next token);
    /// `None` means "after the defer interval". `deferred` says a batch already waits.
    pub fn admit(
        &self,
        state: &mut GateState,
        now: u64,
        deferred: bool,
    ) -> Result<(), Option<u64>> {
        match (self, state) {
            (Self::Counter { limit }, GateState::Counter(admitted)) => {
                if !deferred && *admitted < *limit {
                    *admitted += 1;
                    Ok(())
                } else {
                    Err(None)
                }
            }
            // The state changes only when the event is admitted (as in the Redis script):
            // a denial's refill would otherwise be computed at the old rate if
            // `update_config` changes the rate before the next event.
            (Self::Bucket(b), GateState::Bucket(s)) => {
                let mut next = *s;
                let d = b.acquire(&mut next, now, 1);
                if d.allowed {
                    *s = next;
                    Ok(())
                } else {
                    Err(d.retry_after_us)
                }
            }
            (Self::Window(w), GateState::Window(s)) => {
                let mut next = *s;
                if w.acquire(&mut next, now, 1).allowed {
                    *s = next;
                    Ok(())
                } else {
                    Err(None)
                }
            }
            (gate, state) => {
                // The strategy of the record changed: start it fresh.
                *state = gate.fresh();
                self.admit(state, now, deferred)
            }
        }
    }

    /// Called when a record's batch was processed: the simple counter starts again.
    pub fn processed(&self, state: &mut GateState) {
        if let GateState::Counter(admitted) = state {
            *admitted = 0;
        }
    }
}

/// Converts a deferral to µs, rejecting zero.
pub fn defer_micros(field: &str, d: Duration) -> Result<u64, PolicyError> {
    if d.is_zero() {
        return Err(PolicyError::new(field, "must be greater than zero"));
    }
    Ok(duration_to_micros(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn simple_counter_defers_after_limit_until_processed() {
        let g = Gate::new(Strategy::SimpleCounter, 2).unwrap();
        let mut s = g.fresh();
        assert!(g.admit(&mut s, 0, false).is_ok());
        assert!(g.admit(&mut s, 0, false).is_ok());
        assert_eq!(g.admit(&mut s, 0, false), Err(None));
        g.processed(&mut s);
        assert!(g.admit(&mut s, 0, false).is_ok());
        assert_eq!(
            g.admit(&mut s, 0, true),
            Err(None),
            "a waiting batch defers"
        );
    }

    #[test]
    fn token_bucket_strategy_defers_until_the_next_token() {
        let g = Gate::new(
            Strategy::TokenBucket {
                bucket_size: 2,
                refill_rate: 0.5,
            },
            0,
        )
        .unwrap();
        let mut s = g.fresh();
        assert!(g.admit(&mut s, 0, false).is_ok());
        assert!(g.admit(&mut s, 0, false).is_ok());
        assert_eq!(g.admit(&mut s, 0, false), Err(Some(2 * S)));
        assert!(
            g.admit(&mut s, 2 * S, true).is_ok(),
            "admitted even while a batch waits"
        );
    }

    #[test]
    fn a_bucket_of_a_trillion_tokens_is_exact() {
        // 10^12 tokens at 10^6 per second: a full bucket refills in 10^6 s exactly.
        let g = Gate::new(
            Strategy::TokenBucket {
                bucket_size: 1_000_000_000_000,
                refill_rate: 1_000_000.0,
            },
            0,
        )
        .unwrap();
        let Gate::Bucket(bucket) = &g else {
            unreachable!()
        };
        let mut b = bucket.fresh();
        let d = bucket.acquire(&mut b, 0, 1_000_000_000_000);
        assert!(d.allowed);
        assert_eq!(d.reset_after_us, 1_000_000 * S);
        let mut s = GateState::Bucket(b);
        assert_eq!(g.admit(&mut s, 0, false), Err(Some(1)));
        assert!(g.admit(&mut s, 1, false).is_ok());
    }

    #[test]
    fn invalid_strategy_parameters_name_the_field() {
        let bad_rate = Gate::new(
            Strategy::TokenBucket {
                bucket_size: 1,
                refill_rate: f64::NAN,
            },
            1,
        );
        assert_eq!(bad_rate.unwrap_err().field, "refill_rate");
        let negative = Gate::new(
            Strategy::TokenBucket {
                bucket_size: 1,
                refill_rate: -1.0,
            },
            1,
        );
        assert_eq!(negative.unwrap_err().field, "refill_rate");
        assert_eq!(
            Gate::new(Strategy::SimpleCounter, 0).unwrap_err().field,
            "limit"
        );
        let w = Gate::new(
            Strategy::SlidingWindow {
                window_size: Duration::ZERO,
            },
            1,
        );
        assert_eq!(w.unwrap_err().field, "window_size");
    }
}
