//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod quotas;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "queue")]
pub mod worker;
