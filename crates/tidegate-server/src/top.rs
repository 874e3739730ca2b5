//! The top keys of each policy: a [`TopKeys`] summary of every key decided and one of
//! the keys denied, kept by this instance, and `GET /admin/top` that reads them.

use std::sync::{Mutex, PoisonError};

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde_json::json;
use tidegate::TopKeys;

use crate::app::{Answer, ApiError, Shared, ok_json, policy};

/// Most keys `GET /admin/top` lists when `n` is not given.
const DEFAULT_N: usize = 20;

/// One policy's two summaries, behind one short lock (one lock per decision).
#[derive(Debug)]
pub(crate) struct PolicyTop {
    capacity: usize,
    inner: Mutex<Summaries>,
}

#[derive(Debug)]
struct Summaries {
    all: TopKeys,
    denied: TopKeys,
}

/// Which summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    /// Every decision.
    All,
    /// Denials only.
    Denied,
}

impl By {
    fn name(self) -> &'static str {
        match self {
            By::All => "all",
            By::Denied => "denied",
        }
    }
}

impl PolicyTop {
    /// Two empty summaries of `capacity` keys each.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Summaries {
                all: TopKeys::new(capacity),
                denied: TopKeys::new(capacity),
            }),
        }
    }

    /// Counts one decision for `key` (a denial in both summaries).
    pub(crate) fn record(&self, key: &str, allowed: bool) {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        s.all.record(key);
        if !allowed {
            s.denied.record(key);
        }
    }

    /// Forgets `key`'s denials (after an admin reset); every decision stays counted.
    pub(crate) fn forget_denied(&self, key: &str) {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        s.denied.remove(key);
    }

    /// `GET /admin/top`'s answer for policy `name`.
    fn report(&self, name: &str, by: By, n: usize) -> serde_json::Value {
        let s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let t = match by {
            By::All => &s.all,
            By::Denied => &s.denied,
        };
        let keys = t.top(n);
        let (total, error_bound) = (t.total(), t.error_bound());
        drop(s);
        json!({
            "policy": name,
            "by": by.name(),
            "n": n,
            "capacity": self.capacity,
            "total": total,
            "error_bound": error_bound,
            "keys": keys.into_iter().map(|k| json!({"key": k.key, "count": k.count, "error": k.error})).collect::<Vec<_>>(),
        })
    }
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// `GET /admin/top?policy=NAME&by=denied|all&n=20`.
pub(crate) async fn admin_top(State(app): Shared, RawQuery(query): RawQuery) -> Answer {
    let (mut name, mut by, mut n) = (None, By::Denied, None);
    for pair in query.as_deref().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "policy" => name = Some(v),
            "by" => {
                by = match v {
                    "denied" => By::Denied,
                    "all" => By::All,
                    _ => return Err(bad(format!("`by` must be `denied` or `all`, got `{v}`"))),
                }
            }
            "n" => n = Some(v),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| bad("`policy` is missing: /admin/top?policy=NAME".into()))?;
    let p = policy(&app, name)?;
    let Some(top) = &p.top else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "the top-keys summaries are off (top.enabled = false)",
        ));
    };
    let n = match n {
        None => DEFAULT_N.min(top.capacity),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=top.capacity).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "`n` must be a number from 1 to {} (top.capacity), got `{v}`",
                    top.capacity
                )));
            }
        },
    };
    Ok(ok_json(StatusCode::OK, &top.report(name, by, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_counts_in_both_summaries_and_a_reset_forgets_only_the_denials() {
        let t = PolicyTop::new(10);
        t.record("alice", false);
        t.record("alice", false);
        t.record("bob", true);
        let denied = t.report("api", By::Denied, 10);
        assert_eq!(denied["total"], 2);
        assert_eq!(
            denied["keys"],
            json!([{"key": "alice", "count": 2, "error": 0}])
        );
        assert_eq!(t.report("api", By::All, 10)["total"], 3);
        t.forget_denied("alice");
        assert_eq!(t.report("api", By::Denied, 10)["keys"], json!([]));
        assert_eq!(t.report("api", By::All, 10)["keys"][0]["count"], 2);
    }
}
