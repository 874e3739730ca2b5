//! The `tidegate` npm package's native addon: the in-memory `Limiter`, the Redis
//! connection and its `RedisLimiter`, and the event tracker, over tidegate's engine.
//! The JavaScript API (`EventTracker`, the Express middleware, the stores) wraps these.

mod checker;
mod cost;
mod decision;
mod delivered;
mod errors;
mod headers;
mod key;
mod limiter;
mod millis_clock;
mod outcome;
mod policy;
mod quota;
mod redis_connection;
mod redis_limiter;
mod strategy;
mod tracker;
mod tracker_events;
mod tracker_options;

pub use headers::{rate_limit_value, retry_after_seconds};
pub use redis_connection::{RedisConnectionOptions, connect_redis};
