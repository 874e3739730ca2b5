//! Tracker strategies: which events of a record are immediate and when a deferred batch
//! is due. The state machine of each is the core's gate (`core/gate.rs`).

use std::time::Duration;

/// How a record decides between immediate and deferred.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Strategy {
    /// The first `limit` events of a record are immediate; the next one defers the record
    /// for `defer_interval`; after the record is processed, counting starts again.
    SimpleCounter,
    /// Immediate while a token is available (`bucket_size` tokens, starts full, refilling at
    /// `refill_rate` tokens per second); otherwise deferred until the next token.
    TokenBucket {
        /// Tokens the bucket holds (burst).
        bucket_size: u64,
        /// Tokens per second (may be fractional, e.g. 0.5).
        refill_rate: f64,
    },
    /// Immediate while the sliding window counter (`limit` per `window_size`) allows;
    /// otherwise deferred, due `defer_interval` after the first deferral.
    SlidingWindow {
        /// The window of the counter.
        window_size: Duration,
    },
}

impl Strategy {
    /// The name used in specs and events.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SimpleCounter => "simple",
            Self::TokenBucket { .. } => "token_bucket",
            Self::SlidingWindow { .. } => "sliding_window",
        }
    }
}
