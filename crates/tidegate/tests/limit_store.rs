//! The async store interface gives the same decisions as the synchronous limiter.

use tidegate::store::LimitStore;
use tidegate::{Limiter, ManualClock, PolicySet};

async fn drive(store: &impl LimitStore) -> Vec<bool> {
    let mut allowed = Vec::new();
    for (t, key) in [
        (0, "a"),
        (0, "a"),
        (0, "a"),
        (500_000, "a"),
        (1_000_000, "a"),
        (0, "b"),
    ] {
        allowed.push(store.acquire(key, 1, Some(t)).await.unwrap().allowed);
    }
    allowed
}

#[tokio::test]
async fn memory_limiter_answers_through_the_async_store_interface() {
    let policies: PolicySet = "fixed_window:2/1s".parse().unwrap();
    let limiter = Limiter::builder(policies)
        .clock(ManualClock::new(0))
        .build::<String>();
    assert_eq!(
        drive(&limiter).await,
        [true, true, false, false, true, true]
    );
    let peeked = LimitStore::peek(&limiter, "a", 2, Some(1_000_000))
        .await
        .unwrap();
    assert!(!peeked.allowed);
    assert!(LimitStore::reset(&limiter, "a").await.unwrap());
    assert!(limiter.acquire("a", 1, None).await.unwrap().allowed);
    assert!(
        limiter.acquire("a", 3, None).await.is_err(),
        "cost above capacity is an error"
    );
}
