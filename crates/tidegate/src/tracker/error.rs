//! Why a tracker call failed.

use super::*;

/// A tracker call with an invalid argument or setting.
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
    Store(String),
}

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
