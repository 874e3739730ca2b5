//! `tidegate serve` as Envoy's rate limit service (`[envoy]`): gRPC `ShouldRateLimit`
//! with tonic's client, `POST /json` and `GET /healthcheck` on the HTTP port, reloads on
//! a file change and on SIGHUP, Redis shared by two servers, Redis stopped, gRPC health
//! checking (`Check`, `Watch`) through SIGTERM.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::serve::{Server, TempDir, start_error};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use redis_test_server::RedisServer;
use serde_json::{Value, json};
use tidegate_envoy::health::SERVICE_NAMES;
use tidegate_envoy::health::proto::HealthCheckRequest;
use tidegate_envoy::health::proto::health_check_response::ServingStatus;
use tidegate_envoy::health::proto::health_client::HealthClient;
use tidegate_envoy::proto::rate_limit_response::Code;
use tidegate_envoy::proto::rate_limit_service_client::RateLimitServiceClient;
use tidegate_envoy::proto::{RateLimitRequest, RateLimitResponse};

/// One domain `api`: `path=/login` 3 an hour, `user` 2 an hour per user.
const YAML: &str = "\
domain: api
descriptors:
  - key: path
    value: /login
    rate_limit: { unit: hour, requests_per_unit: 3 }
  - key: user
    rate_limit: { unit: hour, requests_per_unit: 2 }
";

/// `[envoy]` on a free gRPC port, with `extra` lines after it (more keys, other sections).
fn toml(yaml: &Path, extra: &str) -> String {
    format!(
        "[envoy]\nconfig = \"{}\"\ngrpc_listen = \"127.0.0.1:0\"\n{extra}",
        yaml.display()
    )
}

/// The gRPC address the server logged.
fn grpc_addr(server: &Server) -> String {
    let log = server.log();
    let rest = log
        .split("listening on grpc://")
        .nth(1)
        .unwrap_or_else(|| panic!("no gRPC address in the log:\n{log}"));
    rest.split(|c: char| !(c.is_ascii_alphanumeric() || ".:[]".contains(c)))
        .next()
        .unwrap()
        .to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A gRPC client of one server, calling from a blocking test.
struct Grpc {
    rt: tokio::runtime::Runtime,
    client: RateLimitServiceClient<tonic::transport::Channel>,
}

impl Grpc {
    fn connect(server: &Server) -> Grpc {
        let rt = runtime();
        let url = format!("http://{}", grpc_addr(server));
        let client = rt
            .block_on(RateLimitServiceClient::connect(url))
            .expect("gRPC connect");
        Grpc { rt, client }
    }

    fn call(&mut self, entries: &[(&str, &str)]) -> RateLimitResponse {
        let request = request(entries);
        self.rt
            .block_on(self.client.should_rate_limit(request))
            .expect("ShouldRateLimit")
            .into_inner()
    }

    /// The overall code of one call.
    fn code(&mut self, entries: &[(&str, &str)]) -> Code {
        Code::try_from(self.call(entries).overall_code).unwrap()
    }
}

fn request(entries: &[(&str, &str)]) -> RateLimitRequest {
    RateLimitRequest {
        domain: "api".into(),
        descriptors: vec![RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            ..RateLimitDescriptor::default()
        }],
        hits_addend: 0,
    }
}

/// `POST /json` of one descriptor: (status, overallCode).
fn json_call(server: &Server, entries: &[(&str, &str)]) -> (u16, String) {
    let entries: Vec<Value> = entries
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    let r = server.post(
        "/json",
        &json!({"domain": "api", "descriptors": [{"entries": entries}]}),
    );
    let code = serde_json::from_str::<Value>(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
        ["overallCode"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (r.status, code)
}

/// Replaces the file at `path` with `text` at once (a rename), so that the server never
/// reads it half written.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Replaces the file at `path` with `text`, keeping its modification time (so only a
/// SIGHUP, not the watch of the files, can see the change).
fn rewrite_keeping_mtime(path: &Path, text: &str) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn grpc_should_rate_limit_answers_ok_up_to_the_limit_then_over_limit() {
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    let server = Server::with_config(&dir, &toml(&yaml, ""));
    let mut grpc = Grpc::connect(&server);
    for n in 0..3 {
        let r = grpc.call(&[("path", "/login")]);
        assert_eq!(
            Code::try_from(r.overall_code).unwrap(),
            Code::Ok,
            "call {n}"
        );
        let status = &r.statuses[0];
        assert_eq!(status.current_limit.as_ref().unwrap().requests_per_unit, 3);
        assert_eq!(status.limit_remaining, 2 - n);
    }
    assert_eq!(grpc.code(&[("path", "/login")]), Code::OverLimit);
    // Another descriptor has its own counter; an unknown one is not limited.
    assert_eq!(grpc.code(&[("user", "alice")]), Code::Ok);
    assert_eq!(grpc.code(&[("nothing", "here")]), Code::Ok);

    // The envoy front end's statistics are on the server's /metrics.
    let metrics = server.get("/metrics").body;
    assert!(
        metrics
            .contains(r#"tidegate_envoy_over_limit{domain="api",descriptor="api.path_/login"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("tidegate_envoy_total_hits"), "{metrics}");
}

#[test]
fn json_on_the_main_port_answers_as_grpc_and_shares_its_counters() {
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    let server = Server::with_config(
        &dir,
        &toml(
            &yaml,
            "[policies]
api = \"fixed_window:5/1m\"\n",
        ),
    );
    let health = server.get("/healthcheck");
    assert_eq!((health.status, health.body.trim()), (200, "OK"));
    let mut grpc = Grpc::connect(&server);
    assert_eq!(grpc.code(&[("user", "bob")]), Code::Ok);
    assert_eq!(
        json_call(&server, &[("user", "bob")]),
        (200, "OK".to_string())
    );
    assert_eq!(
        json_call(&server, &[("user", "bob")]),
        (429, "OVER_LIMIT".to_string())
    );
    assert_eq!(grpc.code(&[("user", "bob")]), Code::OverLimit);
    // Any Content-Type, as envoyproxy/ratelimit (curl -d sends a form type).
    let r = server.request(
        "POST",
        "/json",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        br#"{"domain":"api","descriptors":[{"entries":[{"key":"user","value":"carol"}]}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The server's own API is still there.
    let r = server.post("/v1/check", &json!({"policy": "api", "key": "k"}));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn an_invalid_yaml_at_start_is_a_config_error_naming_envoy_config_the_file_and_the_line() {
    let dir = TempDir::new();
    let yaml = dir.write(
        "bad.yaml",
        "domain: api\ndescriptors:\n  - key: path\n    rate_limit: { unit: fortnight, requests_per_unit: 3 }\n",
    );
    let config = dir.write("tidegate.toml", &toml(&yaml, ""));
    let (code, stderr) = start_error(&["--config", config.to_str().unwrap()], &[], &dir.0);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`envoy.config`"), "{stderr}");
    assert!(stderr.contains(&yaml.display().to_string()), "{stderr}");
    assert!(stderr.contains("fortnight"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    // --check says the same.
    let (code, stderr) = start_error(
        &["--config", config.to_str().unwrap(), "--check"],
        &[],
        &dir.0,
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`envoy.config`"), "{stderr}");
}

#[test]
fn a_missing_envoy_config_key_is_a_config_error() {
    let dir = TempDir::new();
    let config = dir.write("tidegate.toml", "[envoy]\ngrpc_listen = \"127.0.0.1:0\"\n");
    let (code, stderr) = start_error(&["--config", config.to_str().unwrap()], &[], &dir.0);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`envoy.config`: is required"), "{stderr}");
}

#[test]
fn check_summary_mentions_the_envoy_front_end() {
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    let config = dir.write("tidegate.toml", &toml(&yaml, "headers = \"both\"\n"));
    let out = common::serve::command(
        &["--config", config.to_str().unwrap(), "--check"],
        &[],
        &dir.0,
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("envoy: rate limit service of"), "{stdout}");
    assert!(stdout.contains("grpc://127.0.0.1:0"), "{stdout}");
    assert!(stdout.contains("headers both"), "{stdout}");
}

#[test]
fn editing_the_yaml_while_running_changes_the_limit_and_an_invalid_edit_keeps_the_old_one() {
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    let server = Server::with_config(&dir, &toml(&yaml, ""));
    let mut grpc = Grpc::connect(&server);
    for _ in 0..2 {
        assert_eq!(grpc.code(&[("user", "dave")]), Code::Ok);
    }
    assert_eq!(grpc.code(&[("user", "dave")]), Code::OverLimit);

    replace_file(
        &yaml,
        &YAML.replace("requests_per_unit: 2", "requests_per_unit: 4"),
    );
    assert!(
        server.wait_for_log("envoy config reloaded", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let r = grpc.call(&[("user", "dave")]);
    assert_eq!(
        r.statuses[0]
            .current_limit
            .as_ref()
            .unwrap()
            .requests_per_unit,
        4
    );
    assert_eq!(Code::try_from(r.overall_code).unwrap(), Code::Ok);

    // An invalid edit: logged with its file and line, the limit of 4 stays.
    replace_file(
        &yaml,
        &YAML.replace(
            "unit: hour, requests_per_unit: 3",
            "unit: eon, requests_per_unit: 3",
        ),
    );
    assert!(
        server.wait_for_log("envoy config reload failed", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("envoy config reload failed"))
        .unwrap();
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("ratelimit.yaml"), "{line}");
    assert!(line.contains("line=3"), "{line}");
    assert!(line.contains("eon"), "{line}");
    let r = grpc.call(&[("user", "dave")]);
    assert_eq!(
        r.statuses[0]
            .current_limit
            .as_ref()
            .unwrap()
            .requests_per_unit,
        4
    );
    assert_eq!(r.statuses[0].limit_remaining, 2);
}

#[test]
fn sighup_reloads_the_envoy_config() {
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    let server = Server::with_config(&dir, &toml(&yaml, ""));
    let mut grpc = Grpc::connect(&server);
    let limit = |grpc: &mut Grpc| {
        grpc.call(&[("user", "erin")]).statuses[0]
            .current_limit
            .as_ref()
            .unwrap()
            .requests_per_unit
    };
    assert_eq!(limit(&mut grpc), 2);
    // Same length, same modification time: the watch of the files sees no change.
    rewrite_keeping_mtime(
        &yaml,
        &YAML.replace("requests_per_unit: 2", "requests_per_unit: 7"),
    );
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(limit(&mut grpc), 2, "{}", server.log());
    signal(server.pid(), "-HUP");
    assert!(
        server.wait_for_log("envoy config reloaded", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    assert!(server.log().contains("received SIGHUP"));
    assert_eq!(limit(&mut grpc), 7);
}

#[test]
fn two_servers_on_one_redis_share_a_descriptors_limit() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    let store = format!(
        "[store]\nurl = \"{}\"\non_error = \"fail_closed\"\ntimeout = \"2s\"\n",
        redis.url()
    );
    let a = Server::with_config(&dir, &toml(&yaml, &store));
    let b = Server::with_config(&dir, &toml(&yaml, &store));
    let (mut ga, mut gb) = (Grpc::connect(&a), Grpc::connect(&b));
    let mut ok = 0;
    for i in 0..10 {
        let grpc = if i % 2 == 0 { &mut ga } else { &mut gb };
        if grpc.code(&[("path", "/login")]) == Code::Ok {
            ok += 1;
        }
    }
    assert_eq!(ok, 3);
    // /json of either sees the same counter.
    assert_eq!(json_call(&b, &[("path", "/login")]).1, "OVER_LIMIT");
}

#[test]
fn with_redis_stopped_answers_come_within_the_timeout_as_on_error_says() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    let store = |on_error: &str| {
        format!(
            "[store]\nurl = \"{}\"\non_error = \"{on_error}\"\ntimeout = \"200ms\"\n",
            redis.url()
        )
    };
    let open = Server::with_config(&dir, &toml(&yaml, &store("fail_open")));
    let closed = Server::with_config(&dir, &toml(&yaml, &store("fail_closed")));
    let (mut go, mut gc) = (Grpc::connect(&open), Grpc::connect(&closed));
    assert_eq!(go.code(&[("user", "frank")]), Code::Ok);
    assert_eq!(gc.code(&[("user", "grace")]), Code::Ok);

    signal(redis.pid(), "-STOP");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..3 {
            let started = Instant::now();
            assert_eq!(go.code(&[("user", "frank")]), Code::Ok);
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
            let started = Instant::now();
            assert_eq!(gc.code(&[("user", "grace")]), Code::OverLimit);
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
        let started = Instant::now();
        assert_eq!(json_call(&closed, &[("user", "grace")]).1, "OVER_LIMIT");
        assert!(started.elapsed() < Duration::from_secs(1));
    }));
    signal(redis.pid(), "-CONT");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn a_file_added_to_the_config_directory_is_loaded_with_its_domain() {
    let dir = TempDir::new();
    let yamls = dir.0.join("ratelimit");
    std::fs::create_dir_all(&yamls).unwrap();
    std::fs::write(yamls.join("api.yaml"), YAML).unwrap();
    let server = Server::with_config(&dir, &toml(&yamls, "merge_domains = true\n"));
    let mut grpc = Grpc::connect(&server);
    let limit = |grpc: &mut Grpc| {
        grpc.call(&[("tenant", "acme")]).statuses[0]
            .current_limit
            .as_ref()
            .map(|l| l.requests_per_unit)
    };
    assert_eq!(limit(&mut grpc), None);
    // The same domain in a second file: merged (merge_domains).
    std::fs::write(
        yamls.join("tenants.yaml"),
        "domain: api\ndescriptors:\n  - key: tenant\n    rate_limit: { unit: hour, requests_per_unit: 9 }\n",
    )
    .unwrap();
    assert!(
        server.wait_for_log("envoy config reloaded", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    assert_eq!(limit(&mut grpc), Some(9));
    assert_eq!(grpc.code(&[("path", "/login")]), Code::Ok);
}

/// Waits (at most 30 s after `sent`) for the server to exit, running the gRPC clients'
/// runtime meanwhile: their connections answer the server's graceful shutdown (GOAWAY,
/// PING) as a real client's would.
fn wait_for_exit(
    rt: &tokio::runtime::Runtime,
    server: &mut Server,
    sent: Instant,
) -> std::process::ExitStatus {
    rt.block_on(async {
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(30),
                "no exit 30 s after SIGTERM:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// A gRPC health request for `service`.
fn health_request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

/// Opens a gRPC health `Watch` of `service`; the returned function waits (at most 20 s)
/// for its next status, `None` once the stream has ended.
fn watch<'a>(
    rt: &'a tokio::runtime::Runtime,
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> impl FnMut() -> Option<i32> + 'a {
    let mut stream = rt
        .block_on(health.watch(health_request(service)))
        .expect("Watch")
        .into_inner();
    move || {
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), stream.message()).await })
            .expect("a Watch message or its end within 20 s")
            .expect("Watch stream")
            .map(|r| r.status)
    }
}

#[test]
fn sigterm_turns_grpc_health_not_serving_ends_watch_streams_and_fails_the_healthcheck() {
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    // A long shutdown_timeout: an open Watch stream must not hold the exit until it.
    let config = format!("shutdown_timeout = \"60s\"\n{}", toml(&yaml, ""));
    let mut server = Server::with_config(&dir, &config);
    assert_eq!(server.get("/healthcheck").status, 200);

    let rt = runtime();
    let url = format!("http://{}", grpc_addr(&server));
    let channel = rt
        .block_on(
            tonic::transport::Channel::from_shared(url)
                .unwrap()
                .connect(),
        )
        .expect("gRPC connect");
    let mut health = HealthClient::new(channel);
    for name in SERVICE_NAMES {
        let status = rt
            .block_on(health.check(health_request(name)))
            .unwrap_or_else(|e| panic!("Check {name:?}: {e}"))
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{name:?}");
    }
    let unknown = rt
        .block_on(health.check(health_request("nope")))
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let mut next = watch(&rt, &mut health, "ratelimit");
    assert_eq!(next(), Some(ServingStatus::Serving as i32));

    let sent = Instant::now();
    signal(server.pid(), "-TERM");
    assert_eq!(next(), Some(ServingStatus::NotServing as i32));
    assert_eq!(
        next(),
        None,
        "the Watch stream ends when the listener stops"
    );
    // The HTTP listener is closed as shutdown begins: a new health check fails (the
    // connection is refused or dropped; a request accepted just before gets 503).
    if let Ok(r) = common::serve::http(&server.addr, "GET", "/healthcheck", &[], b"") {
        assert_eq!(r.status, 503, "{r:?}");
    }
    let status = wait_for_exit(&rt, &mut server, sent);
    assert!(status.success(), "{status:?}\n{}", server.log());
}

#[test]
fn during_shutdown_delay_health_checks_fail_while_rate_limit_calls_are_still_answered() {
    let dir = TempDir::new();
    let yaml = dir.write("ratelimit.yaml", YAML);
    let config = format!("shutdown_delay = \"4s\"\n{}", toml(&yaml, ""));
    let mut server = Server::with_config(&dir, &config);
    let rt = runtime();
    let url = format!("http://{}", grpc_addr(&server));
    let connect = || {
        rt.block_on(
            tonic::transport::Channel::from_shared(url.clone())
                .unwrap()
                .connect(),
        )
        .expect("gRPC connect")
    };
    let mut health = HealthClient::new(connect());
    let mut next = watch(&rt, &mut health, "");
    assert_eq!(next(), Some(ServingStatus::Serving as i32));
    assert_eq!(server.get("/healthcheck").status, 200);

    let sent = Instant::now();
    signal(server.pid(), "-TERM");
    assert_eq!(next(), Some(ServingStatus::NotServing as i32));
    // Within the delay (4 s), on new connections: both HTTP checks answer 503, gRPC
    // health NOT_SERVING, and rate limit calls are answered as before.
    assert_eq!(server.get("/healthcheck").status, 503);
    assert_eq!(server.get("/readyz").status, 503);
    let mut fresh = HealthClient::new(connect());
    let status = rt
        .block_on(fresh.check(health_request("ratelimit")))
        .expect("Check during the delay")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    let mut rls = RateLimitServiceClient::new(connect());
    let r = rt
        .block_on(rls.should_rate_limit(request(&[("path", "/login")])))
        .expect("ShouldRateLimit during the delay")
        .into_inner();
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(json_call(&server, &[("path", "/login")]).0, 200);
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "the checks above ran after the delay ({:?}); the machine is too slow for this test",
        sent.elapsed()
    );
    // Then the stream ends and the server exits, after the delay.
    assert_eq!(next(), None);
    let status = wait_for_exit(&rt, &mut server, sent);
    assert!(status.success(), "{status:?}\n{}", server.log());
    assert!(
        sent.elapsed() >= Duration::from_secs(4),
        "exited before shutdown_delay: {:?}",
        sent.elapsed()
    );
    assert!(
        server.log().contains("serving on for shutdown_delay"),
        "{}",
        server.log()
    );
}
