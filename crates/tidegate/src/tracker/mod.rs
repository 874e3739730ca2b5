//! The event tracker: defer, aggregate and batch events over the limit, never lose one.
//!
//! `track_event(category, id, details)` answers `Immediate` while the record's strategy
//! admits, otherwise adds the event to the record's deferred batch (`Deferred`). On each
//! tick, due batches are claimed and handed to the async processor, at most
//! `max_batch_size` records per call; failures are retried with exponential backoff,
//! then deferred again, and after `dead_letter_after` failed rounds handed to the
//! dead-letter sink. Semantics: `docs/TRACKER.md`.

mod budget;
mod builder;
mod config;
#[doc(hidden)]
pub mod core;
mod details;
mod error;
mod event_tracker;
mod memory;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod spec;
mod stats;
mod store;
mod strategy;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::broadcast;

pub use builder::TrackerBuilder;
pub use config::ConfigPatch;
pub use details::Details;
pub use error::{StoreError, TrackError};
pub use event_tracker::EventTracker;
pub use record::{
    DeadLetter, DeliveredRecord, IgnoreReason, RecordKey, RecordSnapshot, RecordState, RecordView,
    TrackOutcome, TrackerEvent,
};
pub use spec::TrackerSpec;
pub use stats::{ShutdownReport, TrackerStats};
pub use store::TrackerStore;
pub use strategy::Strategy;

/// The tracker script (`algorithms.lua` then `tracker.lua`), the arguments it takes for
/// a record's settings and the reader of its `track` reply, for tests that drive it
/// directly.
#[cfg(feature = "redis")]
#[doc(hidden)]
pub use redis::{TRACKER_LUA, settings_args, track_reply};

#[allow(unused_imports)]
use {builder::*, config::*, error::*, event_tracker::*, stats::*};

use self::core::{DetailLimits, RecordSettings};
use crate::Backoff;
use crate::error::PolicyError;
use crate::time::{Clock, SystemClock, duration_to_micros};
use memory::{Bounds, MemoryRecords};
use store::{Claimed, Reconfigured, Records};

/// Compare-and-set attempts of `update_config` against concurrent updates of a record.
pub(super) const UPDATE_ATTEMPTS: usize = 16;

/// Default longest delay between retries of a failed processor call.
pub const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Default most records of a tracker.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Default largest detail kept (bytes of JSON text).
pub const DEFAULT_MAX_DETAIL_BYTES: usize = 8 * 1024;

/// Default most detail bytes kept per deferred batch.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 256 * 1024;

/// Default memory budget of the in-memory tracker (records and details).
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Record slots the purge of idle records looks at per tick (bounded work per tick).
pub(super) const PURGE_BUDGET: usize = 4_096;

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(super) type Processor =
    Arc<dyn Fn(Vec<DeliveredRecord>) -> BoxFuture<Result<(), String>> + Send + Sync>;
pub(super) type DeadLetterSink =
    Arc<dyn Fn(DeadLetter) -> BoxFuture<Result<(), String>> + Send + Sync>;
