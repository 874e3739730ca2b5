//! Errors of the library, each naming what was wrong and why.

use std::sync::Arc;

use thiserror::Error;

/// A policy that cannot be used: names the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid policy{}: `{field}` {reason}", policy_label(.policy))]
pub struct PolicyError {
    /// The policy's name or text, when known.
    pub policy: Option<String>,
    /// The field at fault (`algorithm`, `limit`, `window`, `burst`, ...).
    pub field: String,
    /// Why the value was rejected.
    pub reason: String,
}

fn policy_label(policy: &Option<String>) -> String {
    match policy {
        Some(p) => format!(" `{p}`"),
        None => String::new(),
    }
}

impl PolicyError {
    /// An error about `field` for `reason`, policy not yet known.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            policy: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Attaches the policy's name or text, unless one is already attached.
    pub fn in_policy(mut self, policy: impl Into<String>) -> Self {
        if self.policy.is_none() {
            self.policy = Some(policy.into());
        }
        self
    }
}

/// A request cost that no policy state could ever admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CostError {
    /// Cost zero is not a request.
    #[error("cost must be at least 1")]
    Zero,
    /// The cost is above what the policy admits even when its quota is full.
    #[error("cost {cost} can never be admitted: the policy admits at most {capacity} at once")]
    ExceedsCapacity {
        /// The requested cost.
        cost: u64,
        /// The most the policy admits in one request.
        capacity: u64,
    },
}

/// Why a limiter could not decide.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The cost can never be admitted by this limiter's policies.
    #[error(transparent)]
    Cost(#[from] CostError),
    /// The store is full (`max_keys`) and configured to reject new keys.
    #[error("the store holds its maximum of {max_keys} keys and rejects new ones")]
    StoreFull {
        /// The configured bound.
        max_keys: usize,
    },
    /// A remote store failed an operation that has no failure policy (reset, listing).
    #[error("store error: {message}")]
    Store {
        /// What the store reported (the source's own text).
        message: String,
        /// The store's error itself, for callers that inspect or downcast it.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl LimitError {
    /// A [`LimitError::Store`] carrying `source` (its text becomes the message).
    pub fn store(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Store {
            message: source.to_string(),
            source: Arc::new(source),
        }
    }
}

/// Errors are equal when they say the same; a store error's source is compared by its
/// text, which is all two independent sources can share.
impl PartialEq for LimitError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Cost(a), Self::Cost(b)) => a == b,
            (Self::StoreFull { max_keys: a }, Self::StoreFull { max_keys: b }) => a == b,
            (Self::Store { message: a, .. }, Self::Store { message: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for LimitError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_error_names_policy_field_and_reason() {
        let e = PolicyError::new("window", "must be greater than zero").in_policy("login");
        assert_eq!(
            e.to_string(),
            "invalid policy `login`: `window` must be greater than zero"
        );
    }

    #[test]
    fn store_error_keeps_its_source_and_its_text() {
        let io = std::io::Error::other("connection reset");
        let e = LimitError::store(io);
        assert_eq!(e.to_string(), "store error: connection reset");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "connection reset");
        assert_eq!(e.clone(), e);
    }

    #[test]
    fn cost_error_says_the_capacity() {
        let e = CostError::ExceedsCapacity {
            cost: 7,
            capacity: 5,
        };
        assert_eq!(
            e.to_string(),
            "cost 7 can never be admitted: the policy admits at most 5 at once"
        );
    }
}
