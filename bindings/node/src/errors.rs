//! How tidegate's errors reach JavaScript. The JavaScript wrappers turn the code into
//! the error class: `InvalidArg` becomes a `RangeError` (a value tidegate refuses, with
//! its own message), the conversion codes (`StringExpected`, ...) a `TypeError`.

use std::error::Error as StdError;

use napi::{Error, Status};
use tidegate::tracker::TrackError;
use tidegate_core::{LimitError, PolicyError};

/// A value out of range: thrown as a `RangeError` with `message`.
pub(crate) fn range_error(message: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, message.into())
}

/// A value of the wrong type: thrown as a `TypeError` with `message`.
pub(crate) fn type_error(message: impl Into<String>) -> Error {
    Error::new(Status::ObjectExpected, message.into())
}

/// Any other failure: thrown as an `Error` whose message carries the source chain.
pub(crate) fn failure(e: &(dyn StdError + 'static)) -> Error {
    Error::new(Status::GenericFailure, with_sources(e))
}

/// `e`'s message followed by each source's that it does not already contain.
pub(crate) fn with_sources(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A policy tidegate refuses: a `RangeError` with tidegate's message.
pub(crate) fn policy_error(e: PolicyError) -> Error {
    range_error(e.to_string())
}

/// A limiter that could not decide: a cost it can never admit is a `RangeError`, a
/// full store or a store failure an `Error`.
pub(crate) fn limit_error(e: LimitError) -> Error {
    match e {
        LimitError::Cost(cost) => range_error(cost.to_string()),
        other => failure(&other),
    }
}

/// A tracker call that failed: an invalid argument or setting is a `RangeError`.
pub(crate) fn track_error(e: TrackError) -> Error {
    match e {
        e @ TrackError::Invalid { .. } => range_error(e.to_string()),
        other => failure(&other),
    }
}
