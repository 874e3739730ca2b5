//! Shared setup of the Redis tests: unique names and a runtime that keeps connections.

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A limiter or tracker name no other test of this process uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A two-thread runtime; a store's connection driver lives on the runtime it was made
/// in, so keep it as long as the store.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
