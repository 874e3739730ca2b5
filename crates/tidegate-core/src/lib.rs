//! tidegate-core: the limiting algorithms, policies and the in-memory limiter, with no
//! async runtime and no network dependency. Most users depend on the `tidegate` crate,
//! which re-exports all of this under the same paths and adds the Redis store, the
//! event tracker and the work queue behind features.
//!
//! - [`algorithm`]: the seven limiting algorithms, pure state machines over µs time.
//! - [`Policy`]: an algorithm chosen at run time, parsed from `token_bucket:100/1m,burst=20`
//!   or a TOML table; [`PolicySet`] guards one key with several policies atomically.
//! - [`store::memory::MemoryStore`]: the concurrent in-memory store of per-key states.
//! - [`Limiter`]: policy + store + clock, the thing applications call.
//! - [`Backoff`]: the exponential backoff retries of the tracker and the queue share.
//! - [`Throttler`]: first event per key per window, with the API of the Python throttler.
//! - [`lease`]: the `lease` option and the slice of a hot key's quota one instance holds.
//! - [`TopKeys`]: the most frequent keys of a stream in fixed memory, with an error bound.
//! - [`headers`]: the `RateLimit-Policy` / `RateLimit` values every front end sends.
#![warn(missing_docs)]
pub mod algorithm;
pub mod backoff;
pub mod decision;
pub mod error;
pub mod headers;
pub mod lease;
pub mod limiter;
pub mod policy;
pub mod policy_set;
pub mod rate;
pub mod store;
mod sweeper;
pub mod throttler;
pub mod time;
pub mod top_keys;

pub use algorithm::Algorithm;
pub use backoff::Backoff;
pub use decision::Decision;
pub use error::{CostError, LimitError, PolicyError};
pub use limiter::Limiter;
pub use policy::{AlgorithmKind, Policy, PolicyState};
pub use policy_set::PolicySet;
pub use throttler::Throttler;
pub use time::{Clock, CoarseClock, ManualClock, MonotonicClock, SystemClock};
pub use top_keys::{TopKey, TopKeys};
