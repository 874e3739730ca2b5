//! The settings of a tracker as JavaScript passes them, and the tidegate builder they
//! make.

use napi::Result;
use napi_derive::napi;
use tidegate::tracker::{EventTracker, TrackerBuilder, TrackerStore};

use crate::redis_connection::RedisConnection;
use crate::strategy::{StrategySpec, duration_ms, whole};

/// Options of a native tracker; times are milliseconds.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct TrackerOptions {
    /// Events per record before deferral (default 5).
    pub limit: Option<f64>,
    /// How long a new deferred batch waits (default 3 600 000: 1 h).
    pub defer_interval: Option<f64>,
    /// Idle records with nothing waiting are purged after this long (default 24 h).
    pub expire_time: Option<f64>,
    /// Most records; 0 (the default) sets no bound of its own (the memory budget holds).
    pub max_keys: Option<f64>,
    /// How often due batches are handed to the processor (default 1000).
    pub processing_interval: Option<f64>,
    /// Most records per processor call (default 100).
    pub max_batch_size: Option<f64>,
    /// Retries of a failed processor call per round (default 3).
    pub max_retries: Option<f64>,
    /// First retry delay, doubling on each retry (default 1000).
    pub retry_delay: Option<f64>,
    /// Most details kept per deferred batch (default 100).
    pub max_details: Option<f64>,
    /// Largest detail kept, bytes of JSON text (default 8192).
    pub max_detail_bytes: Option<f64>,
    /// Memory budget of the in-memory tracker, bytes (default 64 MiB).
    pub max_memory_bytes: Option<f64>,
    /// Redis: how long a claimed batch stays with this instance without renewal
    /// (default 30 000).
    pub lease: Option<f64>,
    /// The strategy (default simple counter).
    pub strategy: Option<StrategySpec>,
}

/// Records without a bound of their own (`maxKeys: 0`): the largest count a Redis
/// script still holds exactly.
const UNBOUNDED_KEYS: usize = (1 << 53) - 1;

impl TrackerOptions {
    /// The builder with these settings, on Redis under `name` when `redis` is given.
    pub(crate) fn builder(
        &self,
        redis: Option<(&RedisConnection, String)>,
    ) -> Result<TrackerBuilder> {
        let mut b = EventTracker::builder();
        if let Some(n) = self.limit {
            b = b.limit(whole(n));
        }
        if let Some(ms) = self.defer_interval {
            b = b.defer_interval(duration_ms(ms));
        }
        if let Some(ms) = self.expire_time {
            b = b.expire_time(duration_ms(ms));
        }
        b = b.max_keys(match self.max_keys.map(whole) {
            None | Some(0) => UNBOUNDED_KEYS,
            Some(n) => usize::try_from(n).unwrap_or(UNBOUNDED_KEYS),
        });
        if let Some(ms) = self.processing_interval {
            b = b.processing_interval(duration_ms(ms));
        }
        if let Some(n) = self.max_batch_size {
            b = b.max_batch_size(whole(n) as usize);
        }
        if let Some(n) = self.max_retries {
            b = b.max_retries(u32::try_from(whole(n)).unwrap_or(u32::MAX));
        }
        if let Some(ms) = self.retry_delay {
            b = b.retry_delay(duration_ms(ms));
        }
        if let Some(n) = self.max_details {
            b = b.max_details(whole(n) as usize);
        }
        if let Some(n) = self.max_detail_bytes {
            b = b.max_detail_bytes(whole(n) as usize);
        }
        if let Some(n) = self.max_memory_bytes {
            b = b.max_memory_bytes(whole(n) as usize);
        }
        if let Some(ms) = self.lease {
            b = b.lease(duration_ms(ms));
        }
        if let Some(s) = &self.strategy {
            b = b.strategy(s.to_strategy()?);
        }
        if let Some((connection, name)) = redis {
            b = b.store(TrackerStore::redis(connection.store.clone(), name));
        }
        Ok(b)
    }
}
