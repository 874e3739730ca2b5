//! Why a queue operation failed.

use thiserror::Error;

use crate::store::redis::RedisStoreError;

/// A queue operation failed: names the field (or the queue) and the reason.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue name cannot be used in a key.
    #[error("invalid queue name `{name}`: {reason}")]
    Name {
        /// The name given.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A job was rejected before anything was written.
    #[error("invalid job{}: `{field}` {reason}", index_label(*.index))]
    InvalidJob {
        /// Position of the job in a batch (0-based), when pushing several.
        index: Option<usize>,
        /// The field at fault (`payload`, `priority`, `group`, `delay`).
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An option of the queue or of a worker cannot be used.
    #[error("invalid queue option `{field}`: {reason}")]
    Option {
        /// The option at fault.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The queue does not exist: nothing was ever pushed to it (nor a worker started).
    #[error("queue `{name}` does not exist (nothing was ever pushed to it)")]
    UnknownQueue {
        /// The queue's name.
        name: String,
    },
    /// Redis could not be reached or answered with an error.
    #[error(transparent)]
    Store(#[from] RedisStoreError),
    /// Redis answered something the queue did not expect.
    #[error("queue `{name}`: unexpected reply from Redis to `{operation}`: {reason}")]
    Reply {
        /// The queue's name.
        name: String,
        /// The script operation.
        operation: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

fn index_label(index: Option<usize>) -> String {
    index.map_or(String::new(), |i| format!(" #{}", i + 1))
}
