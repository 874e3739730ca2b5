//! The `policy` argument: a short-form string (several policies separated by `;`) or an
//! array of them.

use napi::Either;
use tidegate_core::PolicySet;

use crate::errors::policy_error;

/// A policy string or an array of policy strings.
pub(crate) type PolicyArg = Either<String, Vec<String>>;

/// `policy` as one policy set; tidegate's parse error is a `RangeError` with its message.
pub(crate) fn parse_policy(policy: PolicyArg) -> napi::Result<PolicySet> {
    let text = match policy {
        Either::A(text) => text,
        // As `tidegate replay --policy A --policy B` does.
        Either::B(parts) => parts.join(";"),
    };
    text.parse::<PolicySet>().map_err(policy_error)
}
