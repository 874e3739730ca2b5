//! The dashboard routes of a bound server over real HTTP: the page and its assets with
//! their policy and types, the admin token on the event stream, the snapshots it sends
//! (memory, and Redis with watched work queues on a real redis-server), and a shutdown
//! that an open stream does not hold up.

use std::time::{Duration, Instant};

use redis_test_server::RedisServer;
use serde_json::Value;
use tidegate::queue::{Job, QueueOptions, WorkQueue};
use tidegate::store::redis::{RedisOptions, RedisStore};
use tidegate_server::{Config, ServeError, Server, Stopped};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TOKEN: &str = "dashboard-test-token-0123456789";
const NO_ENV: [(&str, &str); 0] = [];

fn config(extra: &str) -> Config {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nshutdown_timeout = \"20s\"\n{extra}\n[admin]\ntoken = \"{TOKEN}\"\n[policies]\napi = \"fixed_window:2/1h\"\n"
    );
    Config::from_toml("test.toml", &toml, NO_ENV).unwrap()
}

async fn start(
    config: Config,
) -> (
    String,
    oneshot::Sender<()>,
    JoinHandle<Result<Stopped, ServeError>>,
) {
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addrs().http;
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop, running)
}

async fn stop(stop: oneshot::Sender<()>, running: JoinHandle<Result<Stopped, ServeError>>) {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

/// Reads server-sent events from `resp` until `n` `snapshot` events have arrived.
async fn snapshots(resp: &mut reqwest::Response, n: usize) -> Vec<Value> {
    let mut text = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("a snapshot within 10 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut lines = block.lines();
            assert_eq!(lines.next(), Some("event: snapshot"), "{block}");
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            out.push(serde_json::from_str(data).unwrap());
        }
    }
    out
}

async fn events(client: &reqwest::Client, base: &str) -> reqwest::Response {
    let resp = client
        .get(format!("{base}/admin/dashboard/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    resp
}

async fn check(client: &reqwest::Client, base: &str, key: &str) -> u16 {
    client
        .post(format!("{base}/v1/check"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"policy":"api","key":"{key}"}}"#))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_there_is_no_dashboard() {
    let toml = "listen = \"127.0.0.1:0\"\n[policies]\napi = \"fixed_window:2/1h\"\n";
    let (base, tx, running) = start(Config::from_toml("t.toml", toml, NO_ENV).unwrap()).await;
    let client = reqwest::Client::new();
    for path in [
        "/dashboard",
        "/dashboard/dashboard.js",
        "/admin/dashboard/events",
    ] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    stop(tx, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_come_with_a_strict_policy_and_their_types() {
    let (base, tx, running) = start(config("")).await;
    let client = reqwest::Client::new();
    let mut page = String::new();
    for (path, ty) in [
        ("/dashboard", "text/html; charset=utf-8"),
        ("/dashboard/dashboard.js", "text/javascript; charset=utf-8"),
        ("/dashboard/dashboard.css", "text/css; charset=utf-8"),
    ] {
        // No token needed: the assets hold no data.
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        assert_eq!(h["content-type"], ty, "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = resp.text().await.unwrap();
        assert!(!body.is_empty());
        if path == "/dashboard" {
            page = body;
        }
    }
    // Every script is a file of this server; no inline script or style, no other origin.
    for (i, _) in page.match_indices("<script") {
        let tag = &page[i..i + page[i..].find('>').unwrap()];
        assert!(tag.contains("src=\"/dashboard/"), "{tag}");
    }
    assert!(!page.contains("<style"));
    assert!(!page.contains(" style="));
    for (i, _) in page.match_indices(" on") {
        let name: String = page[i + 1..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        assert!(
            !page[i + 1 + name.len()..].starts_with('='),
            "inline event handler `{name}`"
        );
    }
    assert!(!page.contains("http://") && !page.contains("https://"));
    stop(tx, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_refuses_a_missing_or_wrong_token() {
    let (base, tx, running) = start(config("")).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/admin/dashboard/events");
    let missing = client.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = serde_json::from_str(&missing.text().await.unwrap()).unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("Bearer"),
        "{body}"
    );
    let wrong = client
        .get(&url)
        .bearer_auth("not-the-token-at-all-0000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = serde_json::from_str(&wrong.text().await.unwrap()).unwrap();
    assert_eq!(body["message"], "invalid admin token");
    stop(tx, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_a_json_snapshot_each_second_with_the_counts() {
    let (base, tx, running) = start(config("")).await;
    let client = reqwest::Client::new();
    let mut resp = events(&client, &base).await;
    let first = snapshots(&mut resp, 1).await.remove(0);
    assert_eq!(first["store"]["type"], "memory");
    assert_eq!(first["policies"]["api"]["policy"], "fixed_window:2/1h");
    assert_eq!(first["policies"]["api"]["denied"], 0);
    assert!(first["t_ms"].as_u64().unwrap() > 0);
    assert_eq!(first["queues"], serde_json::json!([]));
    assert!(first["tracker"].is_null());
    for expected in [200, 200, 429, 429, 429] {
        assert_eq!(check(&client, &base, "mallory").await, expected);
    }
    // The counts show up in a later snapshot, taken about a second after the one before.
    let mut prev = first;
    let started = Instant::now();
    loop {
        let next = snapshots(&mut resp, 1).await.remove(0);
        let dt = next["t_ms"].as_u64().unwrap() - prev["t_ms"].as_u64().unwrap();
        assert!((500..=5_000).contains(&dt), "{dt} ms between snapshots");
        if next["policies"]["api"]["denied"] == 3 {
            assert_eq!(next["policies"]["api"]["allowed"], 2);
            assert_eq!(next["policies"]["api"]["memory"]["keys"], 1);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{next}");
        prev = next;
    }
    stop(tx, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_does_not_hold_the_shutdown_up() {
    let (base, tx, running) = start(config("")).await;
    let client = reqwest::Client::new();
    let mut resp = events(&client, &base).await;
    snapshots(&mut resp, 1).await;
    let begun = Instant::now();
    tx.send(()).unwrap();
    // shutdown_timeout is 20 s: a stream that held the shutdown up would take that long.
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the server stops within 5 s with a stream open")
        .unwrap()
        .unwrap();
    assert!(begun.elapsed() < Duration::from_secs(5));
    // And the client sees the stream end (no snapshot keeps coming).
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = resp.chunk().await {}
    })
    .await
    .expect("the stream ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_a_snapshot_has_the_round_trip_and_each_watched_queue() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&[redis.url()], RedisOptions::default())
        .await
        .unwrap();
    let emails = WorkQueue::open(store, "emails", QueueOptions::default()).unwrap();
    for i in 0..3 {
        emails.push(Job::new(serde_json::json!(i))).await.unwrap();
    }
    let (base, tx, running) = start(config(&format!(
        "[store]\nurl = \"{}\"\n[dashboard]\nqueues = [\"emails\", \"sms\"]\n",
        redis.url()
    )))
    .await;
    let client = reqwest::Client::new();
    let mut resp = events(&client, &base).await;
    let s = snapshots(&mut resp, 1).await.remove(0);
    assert_eq!(s["store"]["type"], "redis");
    let ping = s["store"]["ping_ms"].as_f64().unwrap();
    assert!(ping > 0.0 && ping < 1_000.0, "{ping}");
    assert_eq!(s["store"]["circuit_open"], false);
    assert!(s["policies"]["api"]["redis"]["fallbacks"].is_u64());
    let queues = s["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2, "{s}");
    assert_eq!(queues[0]["name"], "emails");
    assert_eq!(queues[0]["state"], "ok");
    assert_eq!(queues[0]["pending"], 3);
    assert_eq!(queues[0]["stats"]["waiting"], 3);
    assert_eq!(queues[0]["stats"]["pushed"], 3);
    assert_eq!(queues[0]["stats"]["workers"], 0);
    assert_eq!(queues[1]["name"], "sms");
    assert_eq!(queues[1]["state"], "unknown");
    drop(resp);
    stop(tx, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_get_a_json_405() {
    let (base, tx, running) = start(config("")).await;
    let client = reqwest::Client::new();
    for path in [
        "/dashboard",
        "/dashboard/dashboard.js",
        "/admin/dashboard/events",
    ] {
        let resp = client
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{path}");
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(body["message"], format!("POST is not allowed on {path}"));
    }
    stop(tx, running).await;
}
