//! The library as a program embedding it uses it: a configuration from TOML, a server
//! bound on a free loopback port, real HTTP requests, a graceful shutdown.

use std::error::Error;
use std::time::Duration;

use serde_json::Value;
use tidegate_server::{Config, ConfigError, ServeError, Server, Stopped};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const NO_ENV: [(&str, &str); 0] = [];

fn config(toml: &str) -> Config {
    Config::from_toml("test.toml", toml, NO_ENV).unwrap()
}

/// Binds `config`, runs it until the returned sender fires.
async fn start(
    config: Config,
) -> (
    String,
    oneshot::Sender<()>,
    JoinHandle<Result<Stopped, ServeError>>,
) {
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addrs().http;
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop, running)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    (status, headers, body)
}

/// Waits at most 10 s for the server to stop.
async fn stopped(
    stop: oneshot::Sender<()>,
    running: JoinHandle<Result<Stopped, ServeError>>,
) -> Stopped {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns once the shutdown future completes")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_server_decides_over_http_and_run_returns_after_shutdown() {
    let (base, stop, running) = start(config(
        "listen = \"127.0.0.1:0\"\n[policies]\nlogin = \"fixed_window:2/1h\"\napi = \"gcra:10/1s;fixed_window:1000/1d\"\n",
    ))
    .await;
    let client = reqwest::Client::new();
    let check = format!("{base}/v1/check");
    let body = r#"{"policy": "login", "key": "alice"}"#;
    let (status, headers, first) = post(&client, &check, body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["allowed"], true);
    assert_eq!(first["remaining"], 1);
    assert_eq!(headers["ratelimit-policy"], "\"login\";q=2;w=3600");
    let (_, headers, _) = post(&client, &check, r#"{"policy": "api", "key": "alice"}"#).await;
    assert_eq!(
        headers["ratelimit-policy"], "\"api\";q=10;w=1, \"api-2\";q=1000;w=86400",
        "every policy of a list is advertised, as the Node middleware does"
    );
    assert_eq!(post(&client, &check, body).await.0, 200);
    let (status, headers, denied) = post(&client, &check, body).await;
    assert_eq!(status, 429, "{denied}");
    assert_eq!(denied["allowed"], false);
    assert!(headers.contains_key("retry-after"));
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    let report = stopped(stop, running).await;
    assert!(report.drained);
    assert!(report.undelivered.is_empty());
    let after = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(
        after.is_err(),
        "still answering after run returned: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_the_deferred_events_to_the_sink() {
    let dir = std::env::temp_dir().join(format!("tidegate-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&events);
    let (base, stop, running) = start(config(&format!(
        "listen = \"127.0.0.1:0\"\n[tracker]\nspec = \"simple:limit=1,defer=1h\"\n\
         sink = {{ type = \"jsonl\", path = {:?} }}\n",
        events.display().to_string()
    )))
    .await;
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/events");
    let event = r#"{"category": "login_failed", "id": "alice"}"#;
    let (status, _, first) = post(&client, &url, event).await;
    assert_eq!(
        (status, first["type"].as_str()),
        (200, Some("immediate")),
        "{first}"
    );
    for _ in 0..2 {
        let (_, _, later) = post(&client, &url, event).await;
        assert_eq!(later["type"], "deferred", "{later}");
    }
    assert_eq!(std::fs::read_to_string(&events).unwrap_or_default(), "");

    let report = stopped(stop, running).await;
    assert!(report.undelivered.is_empty());
    let written = std::fs::read_to_string(&events).unwrap();
    let records: Vec<Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{written}");
    assert_eq!(
        (
            &records[0]["category"],
            &records[0]["id"],
            &records[0]["count"]
        ),
        (
            &Value::from("login_failed"),
            &Value::from("alice"),
            &Value::from(2)
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_an_address_in_use_names_it_and_keeps_the_os_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = config("[policies]\napi = \"gcra:10/1s\"\n");
    config.set_listen(addr);
    let e = Server::bind(config).await.unwrap_err();
    assert_eq!(e.to_string(), format!("`listen`: cannot bind {addr}"));
    let ServeError::Bind { addr: at, source } = &e else {
        panic!("not a bind error: {e:?}");
    };
    assert_eq!(*at, addr);
    assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
    drop(taken);
}

#[test]
fn a_config_error_names_the_origin_the_field_and_the_reason() {
    let e: ConfigError = Config::from_toml(
        "t.toml",
        "[policies]\nlogin = \"fixed_window:0/10s\"\n",
        NO_ENV,
    )
    .unwrap_err();
    assert_eq!(e.origin(), "t.toml");
    assert_eq!(e.field(), "policies.login");
    assert!(e.reason().contains("`limit` must be at least 1"), "{e}");
    assert!(
        e.to_string()
            .starts_with("invalid configuration (t.toml): `policies.login`: invalid policy"),
        "{e}"
    );
    let e = Config::from_toml(
        "t.toml",
        "[policies]\na = \"gcra:1/1s\"\n",
        [("TIDEGATE_ADMIN__TOKEN", "short")],
    )
    .unwrap_err();
    assert_eq!(e.field(), "admin.token");
    assert!(
        e.reason().ends_with("(set by TIDEGATE_ADMIN__TOKEN)"),
        "{e}"
    );
}

#[test]
fn a_config_file_that_cannot_be_read_keeps_the_io_error_as_its_source() {
    let missing = std::env::temp_dir().join("tidegate-server-test-missing.toml");
    let e = Config::load(&missing, NO_ENV).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "invalid configuration ({}): cannot read the config file",
            missing.display()
        )
    );
    let source = e.source().expect("the io error");
    let io = source
        .downcast_ref::<std::io::Error>()
        .expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn an_old_variable_name_is_the_source_of_the_config_error() {
    let e = Config::embedded_default([("TIDEGATE_REDIS_URL", "redis://127.0.0.1:1")]).unwrap_err();
    assert_eq!(e.to_string(), "invalid configuration (embedded default)");
    let source = e.source().expect("the environment error");
    let env = source
        .downcast_ref::<tidegate_server::env::EnvError>()
        .expect("an EnvError");
    assert!(matches!(
        env,
        tidegate_server::env::EnvError::Renamed { new, .. } if *new == "TIDEGATE_STORE__URL"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_section_binds_grpc_serves_json_and_reloads_keeping_the_old_config_on_error() {
    let dir = std::env::temp_dir().join(format!("tidegate-server-envoy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = dir.join("ratelimit.yaml");
    let good = "domain: api\ndescriptors:\n  - key: user\n    rate_limit: { unit: hour, requests_per_unit: 1 }\n";
    std::fs::write(&yaml, good).unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[envoy]\nconfig = \"{}\"\ngrpc_listen = \"127.0.0.1:0\"\n",
        yaml.display()
    );
    let server = Server::bind(config(&toml)).await.unwrap();
    let grpc = server.local_addrs().grpc.expect("a gRPC address");
    assert!(grpc.ip().is_loopback() && grpc.port() != 0, "{grpc}");
    let reloader = server.envoy_reloader().expect("a reloader");
    let http = server.local_addrs().http;
    let (stop, stopped_rx) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped_rx.await;
    }));
    let base = format!("http://{http}");
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(health.text().await.unwrap(), "OK");
    let body = r#"{"domain":"api","descriptors":[{"entries":[{"key":"user","value":"a"}]}]}"#;
    assert_eq!(post(&client, &format!("{base}/json"), body).await.0, 200);
    assert_eq!(post(&client, &format!("{base}/json"), body).await.0, 429);

    std::fs::write(
        &yaml,
        "domain: api\ndescriptors:\n  - key: user\n    rate_limit: { unit: fortnight }\n",
    )
    .unwrap();
    let e = reloader.reload().unwrap_err();
    assert!(e.to_string().contains("ratelimit.yaml"), "{e}");
    assert_eq!(post(&client, &format!("{base}/json"), body).await.0, 429);
    std::fs::write(
        &yaml,
        good.replace("requests_per_unit: 1", "requests_per_unit: 5"),
    )
    .unwrap();
    reloader.reload().unwrap();
    assert_eq!(post(&client, &format!("{base}/json"), body).await.0, 200);

    stopped(stop, running).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_an_envoy_section_there_is_no_grpc_listener_nor_reloader() {
    let server = Server::bind(config(
        "listen = \"127.0.0.1:0\"\n[policies]\na = \"fixed_window:2/1h\"\n",
    ))
    .await
    .unwrap();
    assert_eq!(server.local_addrs().grpc, None);
    assert!(server.envoy_reloader().is_none());
}
