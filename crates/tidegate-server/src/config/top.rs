//! `[top]`: the summaries of the most frequent and most limited keys of each policy.

use super::*;

/// Default `top.capacity`.
pub(super) const DEFAULT_TOP_CAPACITY: usize = 1000;

/// Largest `top.capacity`.
pub(super) const MAX_TOP_CAPACITY: usize = 100_000;

/// `[top]`: the capacity of each policy's summaries, or `None` when they are off.
pub(super) fn top_settings(raw: &RawTop) -> Result<Option<usize>, Invalid> {
    let capacity = match raw.capacity {
        None => DEFAULT_TOP_CAPACITY,
        Some(Num(n)) if n == 0 || n > MAX_TOP_CAPACITY as u64 => {
            return Err(bad(
                "top.capacity",
                format!("must be a number from 1 to {MAX_TOP_CAPACITY}, got {n}"),
            ));
        }
        Some(Num(n)) => usize::try_from(n).unwrap_or(MAX_TOP_CAPACITY),
    };
    Ok(raw.enabled.is_none_or(|f| f.0).then_some(capacity))
}
