//! Where per-key states live, and the interface every store offers: the in-memory store
//! and [`LimitStore`] (from `tidegate-core`), and the Redis store (feature `redis`).

pub use tidegate_core::store::*;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
