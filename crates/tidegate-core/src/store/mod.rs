//! Where per-key states live, and the interface every store offers.
//!
//! [`memory::MemoryStore`] is the embedded default. Every store answers through
//! [`LimitStore`], an async interface (no runtime needed to define or call it), so
//! callers can switch stores (the Redis store of the `tidegate` crate implements it
//! too) without touching their code.

pub mod memory;

use std::future::Future;

use crate::decision::Decision;
use crate::error::LimitError;

/// The async interface of a limiter over some store: decide, inspect and reset keys.
pub trait LimitStore: Send + Sync {
    /// Decides for `key` with `cost`, at time `at` (µs) if given, else the store's clock.
    fn acquire(
        &self,
        key: &str,
        cost: u64,
        at: Option<u64>,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send;

    /// The decision `acquire` would give, consuming nothing.
    fn peek(
        &self,
        key: &str,
        cost: u64,
        at: Option<u64>,
    ) -> impl Future<Output = Result<Decision, LimitError>> + Send;

    /// Forgets `key`'s state; returns whether there was one.
    fn reset(&self, key: &str) -> impl Future<Output = Result<bool, LimitError>> + Send;
}

/// What a limiter backed by a remote store answers when the store cannot answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit every request (availability over protection).
    FailOpen,
    /// Deny every request (protection over availability).
    FailClosed,
    /// An in-memory limiter with the same policies decides, per instance, until the
    /// store answers again.
    #[default]
    Local,
}
