//! Why a tracker call failed.

use super::*;

/// A tracker call with an invalid argument or setting, or whose store failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TrackError {
    /// An argument of `track_event` or `update_config` is not acceptable.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument or setting at fault.
        field: String,
        /// Why.
        reason: String,
    },
    /// The tracker was shut down.
    #[error("the tracker is shut down")]
    ShutDown,
    /// The shared store (Redis) failed or did not answer in time; nothing was changed
    /// by this call unless the store applied it before the answer was lost.
    #[error("tracker store: {0}")]
    Store(#[from] StoreError),
}

/// How the tracker's store failed (the source of [`TrackError::Store`]).
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis failed or did not answer within the store's timeout.
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(#[from] crate::store::redis::RedisStoreError),
    /// The tracker script answered something the tracker cannot read.
    #[error("unexpected reply from the tracker script: {0}")]
    BadReply(String),
    /// The task that sends `track` calls to Redis has stopped.
    #[error("the tracker's batching task has stopped")]
    Stopped,
    /// No answer from Redis within the tracker's call timeout; the event was not tracked.
    #[error("no answer from Redis within {0:?}; the event was not tracked")]
    NoAnswer(Duration),
    /// `update_config` kept finding the record's settings changed by concurrent updates.
    #[error(
        "the settings of ({category}, {id}) changed under {attempts} attempts of update_config in a row"
    )]
    Contended {
        /// The record's category.
        category: String,
        /// The record's id.
        id: String,
        /// Compare-and-set attempts made.
        attempts: usize,
    },
}

/// Two store errors are equal when they say the same (the sources, e.g. the Redis
/// client's errors, have no equality of their own).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for StoreError {}

impl From<PolicyError> for TrackError {
    fn from(e: PolicyError) -> Self {
        Self::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

pub(super) fn invalid(field: &str, reason: impl Into<String>) -> TrackError {
    TrackError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}
