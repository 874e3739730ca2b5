//! `GET /admin/top`: the most limited and the most frequent keys of a policy, over real
//! HTTP against a bound server (memory store, and two instances sharing one Redis).

mod support;

use redis_test_server::RedisServer;
use serde_json::{Value, json};
use support::Running;

const TOKEN: &str = "top-test-token-0123456789";

async fn start(extra: &str) -> Running {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n[admin]\ntoken = \"{TOKEN}\"\n[policies]\napi = \"fixed_window:2/1h\"\nopen = \"fixed_window:1000000/1h\"\n"
    );
    Running::start("top.toml", &toml).await
}

/// `n` checks of `key` on `policy`; how many were denied.
async fn denied(s: &Running, policy: &str, key: &str, n: usize) -> usize {
    n - s.admitted(policy, key, n).await
}

/// `GET /admin/top?QUERY` with the admin token (or none): status and body.
async fn top(s: &Running, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = s.client.get(format!("{}/admin/top?{query}", s.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

fn keys(body: &Value) -> Vec<(String, u64)> {
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_string(),
                k["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_denied_keys_come_first_with_counts_totals_and_bound() {
    let s = start("").await;
    // fixed_window:2/1h: every check after the second is denied.
    assert_eq!(denied(&s, "api", "alice", 12).await, 10);
    assert_eq!(denied(&s, "api", "bob", 6).await, 4);
    assert_eq!(denied(&s, "api", "carol", 2).await, 0);
    let (status, body) = top(&s, "policy=api", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "policy": "api", "by": "denied", "n": 20, "capacity": 1000,
            "total": 14, "error_bound": 0,
            "keys": [
                {"key": "alice", "count": 10, "error": 0},
                {"key": "bob", "count": 4, "error": 0},
            ],
        })
    );
    let (status, body) = top(&s, "policy=api&by=all&n=2", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["by"].clone(), body["n"].clone(), body["total"].clone()),
        (json!("all"), json!(2), json!(20))
    );
    assert_eq!(keys(&body), [("alice".into(), 12), ("bob".into(), 6)]);
    // Another policy has summaries of its own.
    let (_, body) = top(&s, "policy=open&by=all", Some(TOKEN)).await;
    assert_eq!(body["total"], 0);
    assert_eq!(body["keys"], json!([]));
    s.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_key_drops_out_of_the_denied_keys_but_stays_among_all() {
    let s = start("").await;
    denied(&s, "api", "alice", 5).await;
    denied(&s, "api", "bob", 4).await;
    let resp = s
        .client
        .delete(format!("{}/admin/keys/api/alice", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (_, body) = top(&s, "policy=api", Some(TOKEN)).await;
    assert_eq!(keys(&body), [("bob".into(), 2)]);
    let (_, body) = top(&s, "policy=api&by=all", Some(TOKEN)).await;
    assert_eq!(keys(&body), [("alice".into(), 5), ("bob".into(), 4)]);
    // Denied again after the reset: counted from zero (the summary never overflowed).
    denied(&s, "api", "alice", 3).await;
    let (_, body) = top(&s, "policy=api", Some(TOKEN)).await;
    assert_eq!(keys(&body), [("bob".into(), 2), ("alice".into(), 1)]);
    s.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_refused_naming_the_parameter_and_the_token_is_required() {
    let s = start("[top]\ncapacity = 50").await;
    let (status, body) = top(&s, "policy=api", None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = top(&s, "policy=api", Some("wrong-token-0123456789")).await;
    assert_eq!(status, 401, "{body}");
    for (query, message) in [
        (
            "policy=api&by=some",
            "`by` must be `denied` or `all`, got `some`",
        ),
        (
            "policy=api&n=0",
            "`n` must be a number from 1 to 50 (top.capacity), got `0`",
        ),
        (
            "policy=api&n=51",
            "`n` must be a number from 1 to 50 (top.capacity), got `51`",
        ),
        (
            "policy=api&n=ten",
            "`n` must be a number from 1 to 50 (top.capacity), got `ten`",
        ),
        ("by=all", "`policy` is missing: /admin/top?policy=NAME"),
    ] {
        let (status, body) = top(&s, query, Some(TOKEN)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["message"], message, "{query}");
    }
    let (status, body) = top(&s, "policy=nope", Some(TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["message"],
        "unknown policy `nope`; configured: api, open"
    );
    let (status, body) = top(&s, "policy=api&n=50", Some(TOKEN)).await;
    assert_eq!(
        (status, body["capacity"].clone()),
        (200, json!(50)),
        "{body}"
    );
    s.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_top_disabled_the_route_says_so() {
    let s = start("[top]\nenabled = false").await;
    denied(&s, "api", "alice", 3).await;
    let (status, body) = top(&s, "policy=api", Some(TOKEN)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["message"],
        "the top-keys summaries are off (top.enabled = false)"
    );
    s.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_each_instance_summarises_the_decisions_it_made() {
    let redis = RedisServer::start();
    let store = format!("[store]\nurl = \"{}\"\ntimeout = \"2s\"", redis.url());
    let (a, b) = (start(&store).await, start(&store).await);
    // One shared limit of 2: `a` admits two and denies one, `b` only denies.
    assert_eq!(denied(&a, "api", "alice", 3).await, 1);
    assert_eq!(denied(&b, "api", "alice", 4).await, 4);
    let (_, on_a) = top(&a, "policy=api", Some(TOKEN)).await;
    let (_, on_b) = top(&b, "policy=api", Some(TOKEN)).await;
    assert_eq!(keys(&on_a), [("alice".into(), 1)]);
    assert_eq!(keys(&on_b), [("alice".into(), 4)]);
    let (_, all_a) = top(&a, "policy=api&by=all", Some(TOKEN)).await;
    assert_eq!(all_a["total"], 3);
    a.stopped().await;
    b.stopped().await;
}
