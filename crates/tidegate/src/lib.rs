//! tidegate: rate limiting and event throttling.
//!
//! - [`algorithm`]: the seven limiting algorithms, pure state machines over µs time.
//! - [`Policy`]: an algorithm chosen at run time, parsed from `token_bucket:100/1m,burst=20`
//!   or a TOML table; [`PolicySet`] guards one key with several policies atomically.
//! - [`store::memory::MemoryStore`]: the concurrent in-memory store of per-key states.
//! - [`Limiter`]: policy + store + clock, the thing applications call.
//! - [`lease`]: the `lease` option, whose slices answer a hot key on the Redis store
//!   locally.
//! - [`Throttler`]: first event per key per window, the API of a Python per-key
//!   EventThrottler.
//! - `store::redis` (feature `redis`): the same decisions shared through Redis.
//! - `tracker::EventTracker` (feature `tracker`, on by default): defers events over the
//!   limit and delivers them in batches.
//! - `queue::WorkQueue` (feature `queue`): durable jobs on Redis, one global rate across
//!   every worker, retries, and autoscaling to a deadline.
//!
//! Everything without a runtime lives in the `tidegate-core` crate and is re-exported
//! here under the same paths; `cargo add tidegate --no-default-features` compiles only
//! that (no tokio).
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use tidegate_core::{
    Algorithm, AlgorithmKind, Backoff, Clock, CoarseClock, CostError, Decision, LimitError,
    Limiter, ManualClock, MonotonicClock, Policy, PolicyError, PolicySet, PolicyState, SystemClock,
    Throttler, TopKey, TopKeys, algorithm, backoff, decision, error, headers, lease, limiter,
    policy, policy_set, rate, throttler, time, top_keys,
};

#[cfg(feature = "queue")]
#[cfg_attr(docsrs, doc(cfg(feature = "queue")))]
pub mod queue;
pub mod store;
#[cfg(feature = "tracker")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracker")))]
pub mod tracker;

/// The README's code examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
