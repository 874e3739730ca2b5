//! `RedisLimiter`: limits shared through Redis; every call returns a Promise and never
//! blocks the event loop.

use std::sync::Arc;

use futures_util::future::join_all;

use napi::Result;
use napi_derive::napi;
use tidegate::store::redis::RedisLimiter as CoreRedisLimiter;
use tidegate_core::store::LimitStore;

use crate::cost::to_cost;
use crate::decision::{Decision, DecisionBatch};
use crate::errors::{limit_error, range_error};
use crate::quota::{Quota, quotas};

/// Decides per key through Redis, sharing each key's quota with every limiter of the
/// same name and policies on the same Redis. Made by `RedisConnection.limiter`.
#[napi]
pub struct RedisLimiter {
    inner: Arc<CoreRedisLimiter>,
}

impl RedisLimiter {
    pub(crate) fn new(inner: CoreRedisLimiter) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }
}

#[napi]
impl RedisLimiter {
    /// The limiter's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// The policies, in short form.
    #[napi(getter)]
    pub fn policy(&self) -> String {
        self.inner.policies().to_string()
    }

    /// Each policy's limit and window, for `RateLimit-Policy`.
    #[napi]
    pub fn quotas(&self) -> Vec<Quota> {
        quotas(self.inner.policies())
    }

    /// Decides now for `key` through Redis, consuming `cost` (default 1) if admitted.
    /// When Redis does not answer within the timeout, `onError` answers.
    #[napi]
    pub async fn check(&self, key: String, cost: Option<f64>) -> Result<Decision> {
        let cost = to_cost(cost)?;
        let limiter = Arc::clone(&self.inner);
        limiter
            .acquire(&key, cost, None)
            .await
            .map(Decision::from)
            .map_err(limit_error)
    }

    /// Decides for many keys at once (`keys[i]` at `costs[i]`): one call and one
    /// promise for the lot; the store sends them to Redis in its own batches.
    #[napi]
    pub async fn check_batch(
        &self,
        keys: Vec<String>,
        costs: Vec<Option<f64>>,
    ) -> Result<DecisionBatch> {
        if keys.len() != costs.len() {
            return Err(range_error(format!(
                "keys and costs differ in length ({}, {})",
                keys.len(),
                costs.len()
            )));
        }
        let limiter = &self.inner;
        let calls = keys.iter().zip(costs).map(|(key, cost)| async move {
            let cost = to_cost(cost)?;
            limiter.acquire(key, cost, None).await.map_err(limit_error)
        });
        Ok(DecisionBatch::from_decisions(join_all(calls).await))
    }

    /// The decision `check` would give now, consuming nothing.
    #[napi]
    pub async fn peek(&self, key: String, cost: Option<f64>) -> Result<Decision> {
        let cost = to_cost(cost)?;
        let limiter = Arc::clone(&self.inner);
        limiter
            .peek(&key, cost, None)
            .await
            .map(Decision::from)
            .map_err(limit_error)
    }

    /// Forgets `key`'s state in Redis; resolves to whether there was one.
    #[napi]
    pub async fn reset(&self, key: String) -> Result<bool> {
        let limiter = Arc::clone(&self.inner);
        limiter.reset(&key).await.map_err(limit_error)
    }
}
