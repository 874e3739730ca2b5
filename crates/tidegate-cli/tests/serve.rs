//! `tidegate serve` as a user runs it: the built binary on a free loopback port, real
//! HTTP requests, real `redis-server` processes for the shared store, SIGTERM for the
//! graceful shutdown.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::serve::{Resp, Server, TempDir, command, http, start_error};

use redis_test_server::RedisServer;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token-0123456789";

/// The repository root (where `examples/` is).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What these tests ask of a server beyond the shared helpers.
trait ServeExt {
    /// `method path` with the admin bearer token.
    fn admin(&self, method: &str, path: &str) -> Resp;
    /// `POST /v1/check` for `policy` and `key`.
    fn check(&self, policy: &str, key: &str) -> Resp;
}

impl ServeExt for Server {
    fn admin(&self, method: &str, path: &str) -> Resp {
        let auth = format!("Bearer {TOKEN}");
        self.request(method, path, &[("Authorization", &auth)], b"")
    }

    fn check(&self, policy: &str, key: &str) -> Resp {
        self.post("/v1/check", &json!({"policy": policy, "key": key}))
    }
}

fn config_with(dir: &TempDir, extra: &str) -> PathBuf {
    dir.write(
        "tidegate.toml",
        &format!(
            "[admin]\ntoken = \"{TOKEN}\"\n\n[policies]\nlogin = \"fixed_window:3/10s\"\n\
             api = \"token_bucket:100/1m,burst=20\"\nshaped = \"leaky_bucket:10/1s\"\n{extra}"
        ),
    )
}

#[test]
fn embedded_default_serves_and_answers_429_after_the_limit() {
    let dir = TempDir::new();
    let server = Server::start(&[], &[], &dir.0);
    for remaining in [2, 1, 0] {
        let r = server.check("login", "alice");
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["allowed"], true);
        assert_eq!(v["limit"], 3);
        assert_eq!(v["remaining"], remaining);
        assert_eq!(v["retry_after_ms"], Value::Null);
        assert!(v["reset_after_ms"].as_u64().unwrap() <= 10_000);
        assert!(v.get("delay_ms").is_none());
        assert_eq!(r.header("ratelimit-policy"), r#""login";q=3;w=10"#);
        assert_eq!(
            r.header("ratelimit"),
            format!(r#""login";r={remaining};t=10"#)
        );
        assert!(!r.headers.contains_key("retry-after"));
    }
    let r = server.check("login", "alice");
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["remaining"], 0);
    let retry_ms = v["retry_after_ms"].as_u64().unwrap();
    assert!((9_000..=10_000).contains(&retry_ms), "{v}");
    assert_eq!(r.header("retry-after"), "10");
    assert_eq!(r.header("ratelimit"), r#""login";r=0;t=10"#);
    // The same names written with JSON escapes are the same policy and key.
    let r = server.request(
        "POST",
        "/v1/check",
        &[("content-type", "application/json")],
        br#"{"policy": "log\u0069n", "key": "al\u0069ce"}"#,
    );
    assert_eq!(
        (r.status, r.header("ratelimit")),
        (429, r#""login";r=0;t=10"#),
        "{}",
        r.body
    );
    // Another key is independent; the other default policies exist.
    assert_eq!(server.check("login", "bob").status, 200);
    let r = server.check("search", "bob");
    assert_eq!(r.status, 200);
    // Both of its policies are advertised, the second as `search-2`.
    assert_eq!(
        r.header("ratelimit-policy"),
        r#""search";q=10;w=1, "search-2";q=1000;w=86400"#
    );
    // The default bucket holds as many tokens as it refills per window: the first
    // answer reads 100 and 99.
    let r = server.check("api", "bob");
    assert_eq!(
        (r.json()["limit"].as_u64(), r.json()["remaining"].as_u64()),
        (Some(100), Some(99))
    );
    assert_eq!(r.header("ratelimit-policy"), r#""api";q=100;w=60"#);
    // The default tracker answers; no admin routes without a token.
    let r = server.post("/v1/events", &json!({"category": "error", "id": "E1"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["type"], "immediate");
    assert_eq!(server.admin("GET", "/admin/stats").status, 404);
    assert_eq!(server.get("/readyz").status, 200);
    let r = server.get("/nowhere");
    assert_eq!(r.status, 404);
    assert_eq!(r.message(), "no route for GET /nowhere");
    assert_eq!(server.request("DELETE", "/v1/check", &[], b"").status, 405);
}

#[test]
fn check_rejects_bad_input_with_json_errors() {
    let dir = TempDir::new();
    let config = config_with(&dir, "");
    let server = Server::start(&["--config", config.to_str().unwrap()], &[], &dir.0);
    let post = |body: &[u8]| {
        server.request(
            "POST",
            "/v1/check",
            &[("Content-Type", "application/json")],
            body,
        )
    };

    let r = post(b"{\"policy\":\"login\"");
    assert_eq!(r.status, 400);
    assert!(
        r.message().starts_with("invalid JSON body: EOF"),
        "{}",
        r.body
    );
    let r = post(b"{\"policy\":\"login\"}");
    assert_eq!(r.status, 400);
    assert!(r.message().contains("missing field `key`"), "{}", r.body);
    let r = post(b"{\"policy\":\"login\",\"key\":\"a\",\"cots\":2}");
    assert_eq!(r.status, 400);
    assert!(r.message().contains("unknown field `cots`"), "{}", r.body);
    let r = post(b"{\"policy\":\"login\",\"key\":7}");
    assert_eq!(r.status, 400);
    assert!(r.message().contains("invalid type"), "{}", r.body);
    let r = post(b"");
    assert_eq!(r.status, 400);

    let r = server.check("nope", "a");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.message(),
        "unknown policy `nope`; configured: api, login, shaped"
    );
    let r = server.check("login", "");
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "`key` must not be empty");
    let r = server.check("login", &"k".repeat(257));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message(),
        "`key` is 257 bytes long; the limit is 256 bytes"
    );
    assert_eq!(server.check("login", &"k".repeat(256)).status, 200);

    let r = server.post(
        "/v1/check",
        &json!({"policy": "api", "key": "a", "cost": 21}),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.message().contains("cost 21 can never be admitted"),
        "{}",
        r.body
    );
    let r = server.post(
        "/v1/check",
        &json!({"policy": "api", "key": "a", "cost": 0}),
    );
    assert_eq!(r.status, 400);
    let r = server.post(
        "/v1/check",
        &json!({"policy": "api", "key": "a", "cost": 15}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["remaining"], 5);
    let r = server.post(
        "/v1/check",
        &json!({"policy": "api", "key": "a", "cost": 6}),
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["remaining"], 5);

    // Leaky bucket: a delay instead of a refusal while the queue has room.
    server.check("shaped", "s");
    let v = server.check("shaped", "s").json();
    assert_eq!(v["allowed"], true);
    let delay = v["delay_ms"].as_u64().unwrap();
    assert!((1..=100).contains(&delay), "{v}");

    let big = format!(
        "{{\"policy\":\"login\",\"key\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let r = post(big.as_bytes());
    assert_eq!(r.status, 413);
    assert_eq!(r.message(), "the request body is larger than 65536 bytes");
    // The server is still fine.
    assert_eq!(server.check("login", "after").status, 200);
}

#[test]
fn admin_routes_need_the_bearer_token() {
    let dir = TempDir::new();
    let config = config_with(&dir, "");
    let server = Server::start(&["--config", config.to_str().unwrap()], &[], &dir.0);
    for key in ["alice", "bob", "carol", "with/slash"] {
        server.check("login", key);
    }
    server.check("login", "alice");

    let r = server.get("/admin/stats");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), "Bearer");
    assert!(r.message().contains("Authorization: Bearer"), "{}", r.body);
    let r = server.request(
        "GET",
        "/admin/stats",
        &[("Authorization", "Bearer wrong-token-0123456789")],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.message(), "invalid admin token");
    let r = server.request("GET", "/admin/stats", &[("Authorization", TOKEN)], b"");
    assert_eq!(r.status, 401, "the Bearer scheme is required");
    let r = server.request("DELETE", "/admin/keys/login/alice", &[], b"");
    assert_eq!(r.status, 401);

    let r = server.admin("GET", "/admin/stats");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["store"]["type"], "memory");
    assert_eq!(v["policies"]["login"]["allowed"], 5);
    assert_eq!(v["policies"]["login"]["denied"], 0);
    assert_eq!(v["policies"]["login"]["policy"], "fixed_window:3/10s");
    assert_eq!(v["policies"]["login"]["memory"]["keys"], 4);
    assert_eq!(v["tracker"], Value::Null);

    let r = server.admin("GET", "/admin/keys/login/alice");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (
            v["policy"].as_str(),
            v["key"].as_str(),
            v["remaining"].as_u64()
        ),
        (Some("login"), Some("alice"), Some(1))
    );
    assert_eq!(v["tracked"], true);
    assert_eq!(v["next_allowed"], true);
    assert_eq!(
        server.admin("GET", "/admin/keys/login/with%2Fslash").json()["remaining"],
        2
    );
    assert_eq!(
        server.admin("GET", "/admin/keys/login/nobody").json()["tracked"],
        false
    );
    assert_eq!(server.admin("GET", "/admin/keys/nope/alice").status, 404);

    let r = server.admin("GET", "/admin/keys/login?limit=2");
    let v = r.json();
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
    assert_eq!(v["truncated"], true);
    let v = server.admin("GET", "/admin/keys/login").json();
    let mut keys: Vec<&str> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["alice", "bob", "carol", "with/slash"]);
    assert_eq!(v["truncated"], false);
    assert_eq!(server.admin("GET", "/admin/keys/login?limit=0").status, 400);

    let r = server.admin("DELETE", "/admin/keys/login/alice");
    assert_eq!(
        r.json(),
        json!({"policy": "login", "key": "alice", "reset": true})
    );
    assert_eq!(
        server.admin("DELETE", "/admin/keys/login/alice").json()["reset"],
        false
    );
    assert_eq!(server.check("login", "alice").json()["remaining"], 2);

    // No tracker configured: /v1/events says so.
    let r = server.post("/v1/events", &json!({"category": "c", "id": "i"}));
    assert_eq!(r.status, 404);
    assert!(r.message().contains("no event tracker"), "{}", r.body);
}

#[test]
fn metrics_count_decisions_by_policy_and_outcome() {
    let dir = TempDir::new();
    let config = config_with(&dir, "");
    let server = Server::start(&["--config", config.to_str().unwrap()], &[], &dir.0);
    for _ in 0..5 {
        server.check("login", "m");
    }
    let r = server.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("text/plain"));
    let text = r.body;
    for line in [
        r#"tidegate_decisions_total{policy="login",outcome="allowed"} 3"#,
        r#"tidegate_decisions_total{policy="login",outcome="denied"} 2"#,
        r#"tidegate_decisions_total{policy="api",outcome="allowed"} 0"#,
        r#"tidegate_decision_duration_seconds_count{policy="login"} 5"#,
        r#"tidegate_memory_keys{policy="login"} 1"#,
        "# TYPE tidegate_decision_duration_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(
        text.contains(r#"tidegate_decision_duration_seconds_bucket{policy="login",le="0.001"}"#),
        "{text}"
    );
}

/// A webhook receiver: answers 500 to the first request, 200 after; keeps the bodies.
#[test]
fn events_are_tracked_and_deferred_batches_reach_the_webhook_with_retries() {
    let dir = TempDir::new();
    let hook = common::Hook::start(1);
    let (url, received) = (hook.url.clone(), hook.accepted);
    let config = config_with(
        &dir,
        &format!(
            "[tracker]\nspec = \"simple:limit=1,defer=300ms,processing_interval=50ms,retry_delay=50ms\"\n\
             sink = {{ type = \"webhook\", url = \"{url}\" }}\n"
        ),
    );
    let server = Server::start(&["--config", config.to_str().unwrap()], &[], &dir.0);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut outcomes = Vec::new();
    for n in 0..4 {
        let r = server.post(
            "/v1/events",
            &json!({"category": "error", "id": "ECONNRESET", "details": {"n": n}}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        outcomes.push(r.json());
    }
    assert_eq!(outcomes[0]["type"], "immediate");
    assert_eq!(outcomes[0]["scheduled_at_ms"], Value::Null);
    for (i, o) in outcomes.iter().enumerate().skip(1) {
        assert_eq!(o["type"], "deferred");
        assert_eq!(o["count"], i as u64 + 1);
        assert_eq!(o["deferred"], i as u64);
        let at = o["scheduled_at_ms"].as_u64().unwrap();
        assert!((before + 250..before + 5_000).contains(&at), "{o}");
        assert!(o["due_in_ms"].as_u64().unwrap() <= 300);
    }
    // Bad events.
    let r = server.post("/v1/events", &json!({"category": "error"}));
    assert_eq!(r.status, 400);
    assert!(r.message().contains("missing field `id`"));
    let r = server.post("/v1/events", &json!({"category": "", "id": "x"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "`category` must not be empty");

    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no delivery:\n{}", server.log());
        thread::sleep(Duration::from_millis(20));
    }
    let got = received.lock().unwrap()[0].clone();
    let record = &got["records"][0];
    assert_eq!(record["category"], "error");
    assert_eq!(record["id"], "ECONNRESET");
    assert_eq!(record["count"], 3);
    assert_eq!(record["details"], json!([{"n": 1}, {"n": 2}, {"n": 3}]));
    assert!(record["first_seen_ms"].as_u64().unwrap() >= before);
    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains(r#"tidegate_sink_errors_total{sink="webhook"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("tidegate_tracker_delivered_events_total 3"),
        "{metrics}"
    );
    let stats = server.admin("GET", "/admin/stats").json();
    assert_eq!(stats["tracker"]["deferred"], 3);
    assert_eq!(stats["tracker"]["immediate"], 1);
}

#[test]
fn invalid_configurations_stop_the_start_naming_the_field() {
    let dir = TempDir::new();
    let run = |text: &str, env: &[(&str, &str)]| {
        let path = dir.write("bad.toml", text);
        start_error(&["--config", path.to_str().unwrap()], env, &dir.0)
    };
    let (code, err) = run("colour = \"red\"\n[policies]\na = \"gcra:1/1s\"\n", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("`colour`: unknown field `colour`"), "{err}");
    assert!(err.contains("line 1, column 1"), "{err}");
    let (code, err) = run("[policies]\nlogin = \"fixed_window:0/10s\"\n", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "`policies.login`: invalid policy `fixed_window:0/10s`: `limit` must be at least 1"
        ),
        "{err}"
    );
    let (code, err) = run(
        "[policies]\nlogin = { algorithm = \"fixed_window\", limit = 3, window = \"10s\", burts = 1 }\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("`policies.login`"), "{err}");
    assert!(err.contains("`burts` is not a policy field"), "{err}");
    let (code, err) = run(
        "[store]\nurl = \"redis://127.0.0.1:1\"\non_error = \"maybe\"\n[policies]\na = \"gcra:1/1s\"\n",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("`store.on_error`: `maybe` is not one of"),
        "{err}"
    );
    let (code, err) = run(
        "[policies]\na = \"gcra:1/1s\"\n",
        &[("TIDEGATE_ADMIN__TOKEN", "short")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("`admin.token`"), "{err}");
    assert!(err.contains("(set by TIDEGATE_ADMIN__TOKEN)"), "{err}");
    let (code, err) = run("[tracker]\nsink = { type = \"jsonl\" }\n", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`tracker.sink`: missing field `path`"),
        "{err}"
    );

    let missing = dir.0.join("missing.toml");
    let (code, err) = start_error(&["--config", missing.to_str().unwrap()], &[], &dir.0);
    assert_eq!(code, 2);
    assert!(err.contains("missing.toml"), "{err}");
    assert!(err.contains("cannot read the config file"), "{err}");
}

#[test]
fn starts_while_redis_is_down_and_follows_on_error() {
    let dir = TempDir::new();
    // Nothing listens on port 1.
    let server = Server::start(
        &[],
        &[
            ("TIDEGATE_STORE__URL", "redis://127.0.0.1:1"),
            ("TIDEGATE_STORE__ON_ERROR", "fail_closed"),
            ("TIDEGATE_STORE__CONNECT_TIMEOUT", "200ms"),
        ],
        &dir.0,
    );
    let r = server.get("/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["store"], "redis");
    let r = server.check("login", "k");
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(server.log().contains("Redis does not answer yet"));
}

#[test]
fn the_example_configuration_loads_and_serves() {
    let dir = TempDir::new();
    let example = repo().join("examples/tidegate.toml");
    let out = command(
        &["--config", example.to_str().unwrap(), "--check"],
        &[],
        &dir.0,
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(
        summary.contains("policy search: gcra:10/1s;fixed_window:1000/1day"),
        "{summary}"
    );
    // Served from a scratch directory (the JSON-lines sink file is relative).
    let mut server = Server::start(
        &["--config", example.to_str().unwrap()],
        &[("TIDEGATE_ADMIN__TOKEN", TOKEN)],
        &dir.0,
    );
    assert_eq!(server.check("checkout", "c").status, 200);
    assert_eq!(server.admin("GET", "/admin/stats").status, 200);
    for _ in 0..7 {
        server.post(
            "/v1/events",
            &json!({"category": "login_failed", "id": "u1"}),
        );
    }
    assert!(server.terminate().0.success(), "{}", server.log());
    let lines = std::fs::read_to_string(dir.0.join("tidegate-events.jsonl")).unwrap();
    let record: Value = serde_json::from_str(lines.trim()).unwrap();
    assert_eq!(record["count"], 2);
}

#[test]
fn two_servers_on_one_redis_share_a_policy_exactly() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let config = dir.write(
        "redis.toml",
        &format!(
            "[store]\nurl = \"{}\"\non_error = \"fail_closed\"\ntimeout = \"2s\"\n\
             [admin]\ntoken = \"{TOKEN}\"\n[policies]\nhourly = \"fixed_window:100/1h\"\n",
            redis.url()
        ),
    );
    let args = ["--config", config.to_str().unwrap()];
    let a = Server::start(&args, &[], &dir.0);
    let b = Server::start(&args, &[], &dir.0);
    assert_eq!(a.get("/readyz").json()["store"], "redis");
    let mut allowed = 0;
    for i in 0..300 {
        let server = if i % 2 == 0 { &a } else { &b };
        let r = server.check("hourly", "shared-key");
        match r.status {
            200 => allowed += 1,
            429 => {}
            other => panic!("status {other}: {}", r.body),
        }
    }
    assert_eq!(allowed, 100);
    let stats = a.admin("GET", "/admin/stats").json();
    assert_eq!(stats["store"]["type"], "redis");
    assert_eq!(stats["policies"]["hourly"]["allowed"], 50);
    assert_eq!(stats["policies"]["hourly"]["denied"], 100);
    assert_eq!(stats["policies"]["hourly"]["redis"]["fallbacks"], 0);
    // Keys are listed with SCAN, seen by both; a reset on one is seen by the other.
    let v = b.admin("GET", "/admin/keys/hourly").json();
    assert_eq!(v["keys"], json!(["shared-key"]));
    let v = b.admin("GET", "/admin/keys/hourly/shared-key").json();
    assert_eq!(
        (v["remaining"].as_u64(), v["next_allowed"].as_bool()),
        (Some(0), Some(false))
    );
    assert_eq!(
        a.admin("DELETE", "/admin/keys/hourly/shared-key").json()["reset"],
        true
    );
    assert_eq!(b.check("hourly", "shared-key").json()["remaining"], 99);
    // Redis gone: not ready, and the failure policy (fail_closed) answers.
    redis.kill();
    let r = a.get("/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["status"], "unavailable");
    assert_eq!(a.check("hourly", "shared-key").status, 429);
    let metrics = a.get("/metrics").body;
    assert!(
        metrics.contains(r#"tidegate_store_fallbacks_total{policy="hourly"} 1"#),
        "{metrics}"
    );
}

#[test]
fn graceful_shutdown_delivers_every_accepted_deferred_event() {
    let dir = TempDir::new();
    let config = config_with(
        &dir,
        "[tracker]\nspec = \"simple:limit=1,defer=1h\"\nsink = { type = \"jsonl\", path = \"events.jsonl\" }\n",
    );
    let mut server = Server::start(&["--config", config.to_str().unwrap()], &[], &dir.0);
    let addr = server.addr.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    // Four clients post events until the server stops answering.
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (addr, stop, sent) = (addr.clone(), Arc::clone(&stop), Arc::clone(&sent));
            thread::spawn(move || {
                let mut deferred: HashMap<String, u64> = HashMap::new();
                let mut n = 0u64;
                loop {
                    let id = format!("id-{}", n % 5);
                    let body = json!({"category": format!("client-{c}"), "id": id, "details": n});
                    match http(
                        &addr,
                        "POST",
                        "/v1/events",
                        &[("Content-Type", "application/json")],
                        body.to_string().as_bytes(),
                    ) {
                        Ok(r) if r.status == 200 => {
                            let v: Value = serde_json::from_str(&r.body).unwrap();
                            if v["type"] == "deferred" {
                                *deferred.entry(format!("client-{c}/{id}")).or_default() += 1;
                            }
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) if r.status == 503 => {}
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.body),
                        Err(_) if stop.load(Ordering::Relaxed) => break,
                        Err(e) => panic!("request failed before shutdown: {e}"),
                    }
                    n += 1;
                }
                deferred
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent.load(Ordering::Relaxed) < 400 {
        assert!(Instant::now() < deadline, "too slow:\n{}", server.log());
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let (status, _) = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.log());
    let mut acknowledged: HashMap<String, u64> = HashMap::new();
    for client in clients {
        for (k, n) in client.join().unwrap() {
            *acknowledged.entry(k).or_default() += n;
        }
    }
    let mut delivered: HashMap<String, u64> = HashMap::new();
    let text = std::fs::read_to_string(dir.0.join("events.jsonl")).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        *delivered
            .entry(format!(
                "{}/{}",
                v["category"].as_str().unwrap(),
                v["id"].as_str().unwrap()
            ))
            .or_default() += v["count"].as_u64().unwrap();
    }
    assert_eq!(acknowledged.len(), 20, "{acknowledged:?}");
    assert_eq!(delivered, acknowledged);
    let log = server.log();
    assert!(log.contains("signal=\"SIGTERM\""), "{log}");
    assert!(log.contains("every pending batch was delivered"), "{log}");
}

#[test]
fn deferred_batches_go_to_a_redis_stream() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let config = dir.write(
        "stream.toml",
        &format!(
            "[store]\nurl = \"{}\"\n[policies]\na = \"gcra:10/1s\"\n\
             [tracker]\nspec = \"simple:limit=2,defer=1h\"\n\
             sink = {{ type = \"redis_stream\", key = \"events\", maxlen = 1000 }}\n",
            redis.url()
        ),
    );
    let mut server = Server::start(&["--config", config.to_str().unwrap()], &[], &dir.0);
    for id in ["a", "a", "a", "b", "b", "b", "b"] {
        server.post("/v1/events", &json!({"category": "c", "id": id}));
    }
    assert_eq!(redis.cli(&["XLEN", "events"]), "0");
    assert!(server.terminate().0.success(), "{}", server.log());
    assert_eq!(redis.cli(&["XLEN", "events"]), "2");
    let entries = redis.cli(&["XRANGE", "events", "-", "+"]);
    let mut counts: Vec<u64> = entries
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| {
            serde_json::from_str::<Value>(l.trim()).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2], "{entries}");
}

/// Sums delivered counts per `category/id` in a JSON-lines sink file (missing = empty).
fn delivered_counts(path: &Path) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        *out.entry(format!(
            "{}/{}",
            v["category"].as_str().unwrap(),
            v["id"].as_str().unwrap()
        ))
        .or_default() += v["count"].as_u64().unwrap();
    }
    out
}

#[test]
fn a_server_killed_while_holding_a_claimed_batch_loses_nothing_the_others_deliver_it() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    // The first server's sink is a webhook that accepts the request and never answers:
    // the server has claimed the batch and is stuck delivering it when it is killed.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("http://{}/hook", hang.local_addr().unwrap());
    let (arrived_tx, arrived) = mpsc::channel();
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hang.incoming() {
            let Ok(stream) = stream else { continue };
            held.push(stream);
            let _ = arrived_tx.send(());
        }
    });
    let tracker = |sink: &str| {
        format!(
            "[store]\nurl = \"{}\"\ntimeout = \"2s\"\n[tracker]\nstore = \"redis\"\nname = \"alerts\"\n\
             lease = \"2s\"\nspec = \"simple:limit=1,defer=300ms,processing_interval=100ms\"\n\
             sink = {sink}\n",
            redis.url()
        )
    };
    let dying_config = dir.write(
        "dying.toml",
        &tracker(&format!(
            "{{ type = \"webhook\", url = \"{hang_url}\", timeout = \"60s\" }}"
        )),
    );
    let mut dying = Server::start(&["--config", dying_config.to_str().unwrap()], &[], &dir.0);
    let post = |server: &Server, id: &str, n: u64| {
        let r = server.post(
            "/v1/events",
            &json!({"category": "error", "id": id, "details": {"n": n}}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["type"].as_str().unwrap().to_string()
    };
    let mut deferred: HashMap<String, u64> = HashMap::new();
    for n in 0..6 {
        if post(&dying, "E1", n) == "deferred" {
            *deferred.entry("error/E1".into()).or_default() += 1;
        }
    }
    assert_eq!(deferred["error/E1"], 5);
    arrived
        .recv_timeout(Duration::from_secs(15))
        .expect("the first server claims the batch and calls its sink");
    // Two more servers join while the first one holds the claim; then it is killed.
    let survivor_config = |name: &str| {
        dir.write(
            &format!("{name}.toml"),
            &tracker(&format!("{{ type = \"jsonl\", path = \"{name}.jsonl\" }}")),
        )
    };
    let b_config = survivor_config("b");
    let c_config = survivor_config("c");
    let b = Server::start(&["--config", b_config.to_str().unwrap()], &[], &dir.0);
    let c = Server::start(&["--config", c_config.to_str().unwrap()], &[], &dir.0);
    let status = Command::new("kill")
        .args(["-KILL", &dying.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = dying.child.wait();
    // Traffic goes on through the survivors, on the same record and others.
    for n in 0..40u64 {
        let server = if n % 2 == 0 { &b } else { &c };
        let id = format!("E{}", n % 4 + 1);
        if post(server, &id, n) == "deferred" {
            *deferred.entry(format!("error/{id}")).or_default() += 1;
        }
    }
    // The survivors deliver everything, including the dead server's batch after its
    // lease (2 s) expires.
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let mut total = delivered_counts(&dir.0.join("b.jsonl"));
        for (k, n) in delivered_counts(&dir.0.join("c.jsonl")) {
            *total.entry(k).or_default() += n;
        }
        if deferred
            .iter()
            .all(|(k, n)| total.get(k).copied().unwrap_or(0) >= *n)
        {
            break total;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered: deferred {deferred:?}, delivered {total:?}\nb:\n{}\nc:\n{}",
            b.log(),
            c.log()
        );
        thread::sleep(Duration::from_millis(100));
    };
    // At-least-once, and here exactly once: the dead server never delivered its batch.
    assert_eq!(delivered, deferred);
    let taken_over: u64 = [&b, &c]
        .iter()
        .map(|s| {
            let text = s.get("/metrics").body;
            text.lines()
                .find_map(|l| l.strip_prefix("tidegate_tracker_taken_over_total "))
                .map_or(0, |n| n.trim().parse().unwrap())
        })
        .sum();
    assert_eq!(
        taken_over, 1,
        "one survivor took the dead server's batch over"
    );
}

#[test]
fn serve_and_queue_share_one_environment() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let url = redis.url();
    // One environment (a shell, an env file) for servers and queue workers alike.
    let shared: &[(&str, &str)] = &[
        ("TIDEGATE_STORE__URL", &url),
        ("TIDEGATE_QUEUE__NAME", "wallet-audit"),
        ("TIDEGATE_QUEUE__TIMEOUT", "3s"),
        ("TIDEGATE_ADMIN__TOKEN", TOKEN),
        ("TIDEGATE_POLICIES__LOGIN", "fixed_window:2/10s"),
    ];
    // serve starts with the queue's variables set, and uses the shared Redis ...
    let mut server = Server::start(&[], shared, &dir.0);
    let r = server.get("/readyz");
    assert_eq!((r.status, r.json()["store"].clone()), (200, json!("redis")));
    assert_eq!(server.check("login", "alice").json()["remaining"], 1);
    assert_eq!(redis.cli(&["KEYS", "tidegate:login:*"]).lines().count(), 1);
    // ... and the queue runs with the server's variables, on the same Redis.
    let queue = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidegate"));
        cmd.arg("queue").args(args).current_dir(&dir.0);
        for (k, _) in std::env::vars() {
            if k.starts_with("TIDEGATE_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.envs(shared.iter().copied()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "queue {args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        queue(&["push", r#"{"wallet":"0x12"}"#]).trim(),
        "pushed 1 job to wallet-audit (id 1)"
    );
    let stats: Value = serde_json::from_str(&queue(&["stats", "--json"])).unwrap();
    assert_eq!(
        (stats["queue"].clone(), stats["waiting"].clone()),
        (json!("wallet-audit"), json!(1))
    );
    assert!(server.terminate().0.success(), "{}", server.log());
}

#[test]
fn old_variable_names_stop_the_start_naming_the_new_ones() {
    let dir = TempDir::new();
    let (code, err) = start_error(&[], &[("TIDEGATE_QUEUE", "wallet-audit")], &dir.0);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "tidegate: invalid configuration (embedded default): environment variable \
         TIDEGATE_QUEUE is no longer read: set TIDEGATE_QUEUE__NAME instead (every \
         subcommand reads the same names, see docs/CONFIGURATION.md)"
    );
    let (code, err) = start_error(
        &[],
        &[("TIDEGATE_REDIS_URL", "redis://127.0.0.1:1")],
        &dir.0,
    );
    assert_eq!(code, 2);
    assert!(err.contains("set TIDEGATE_STORE__URL instead"), "{err}");
    // A truly unknown variable is still an error naming it.
    let (code, err) = start_error(&[], &[("TIDEGATE_COLOUR", "red")], &dir.0);
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `colour`"), "{err}");
    assert!(err.contains("(set by TIDEGATE_COLOUR)"), "{err}");
}

#[test]
fn the_example_placeholder_admin_token_is_refused() {
    let dir = TempDir::new();
    let example = std::fs::read_to_string(repo().join("examples/tidegate.toml")).unwrap();
    let placeholder = "# token = \"change-me-to-a-long-random-secret\"";
    assert!(
        example.contains(placeholder),
        "the example shows its placeholder"
    );
    let path = dir.write(
        "tidegate.toml",
        &example.replace(placeholder, &placeholder[2..]),
    );
    let (code, err) = start_error(
        &["--config", path.to_str().unwrap(), "--check"],
        &[],
        &dir.0,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "`admin.token`: is a placeholder (it says `change me`): set a secret of your own"
        ),
        "{err}"
    );
}
