//! Whole HTTP requests to `tidegate serve`'s routes (`/v1/check`, `/v1/events`, the
//! admin routes, `/metrics`, Envoy's `/json`), driven in-process through the axum
//! router with `tower::ServiceExt::oneshot`.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tidegate_server::{Config, Server};
use tower::ServiceExt;

/// The token of the admin routes in [`CONFIG`].
pub const ADMIN_TOKEN: &str = "fuzz-admin-token";

/// The server the requests go to: a memory store with one policy of each algorithm, a
/// tracker, the admin routes and the Envoy front end.
const CONFIG: &str = r#"
listen = "127.0.0.1:0"
max_body_bytes = 4096
max_key_bytes = 64
[server]
body_timeout = "1s"
[store]
max_keys = 1000
on_full = "evict"
[admin]
token = "fuzz-admin-token"
[policies]
fixed = "fixed_window:3/10s"
sliding = "sliding_window:5/1s"
log = "sliding_log:5/1s"
bucket = "token_bucket:100/1m,burst=20"
leaky = "leaky_bucket:20/1m"
gcra = ["gcra:10/1s", { algorithm = "fixed_window", limit = 1000, window = "1d" }]
throttle = "throttle:10s"
[tracker]
spec = "simple:limit=2,defer=1s"
sink = { type = "jsonl", path = "/dev/null" }
[envoy]
config = "ENVOY_CONFIG"
grpc_listen = "127.0.0.1:0"
[log]
console = false
"#;

/// The Envoy YAML of [`CONFIG`].
pub const ENVOY_YAML: &str = r#"
domain: fuzz
descriptors:
  - key: remote_address
    rate_limit: { unit: second, requests_per_unit: 5 }
  - key: path
    value: /login
    rate_limit: { unit: minute, requests_per_unit: 3 }
    descriptors:
      - key: user
        rate_limit: { unit: hour, requests_per_unit: 10 }
  - key: api
    policy: "gcra:10/1s"
"#;

fn router() -> &'static axum::Router {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tidegate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let yaml = dir.join("envoy.yaml");
        std::fs::write(&yaml, ENVOY_YAML).expect("the Envoy configuration written");
        let text = CONFIG.replace("ENVOY_CONFIG", &yaml.display().to_string());
        let config = Config::from_toml("fuzz", &text, Vec::<(String, String)>::new())
            .expect("the fuzz configuration is valid");
        crate::runtime().block_on(async {
            Server::bind(config)
                .await
                .expect("the fuzz server binds")
                .into_router()
        })
    })
}

/// Reads the input as `METHOD PATH\n`, header lines `Name: value\n`, an empty line,
/// then the body, and sends it; the answer must come within 5 s, never be a 500, and a
/// 4xx of tidegate's own routes has a JSON body. A line `Authorization: admin` stands
/// for the admin token.
pub fn request(data: &[u8]) {
    let (head, body) = split_head(data);
    let Some(head) = crate::text(head) else {
        return;
    };
    let mut lines = head.lines();
    let Some((method, path)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let mut request = Request::builder().method(method).uri(path);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            let value = if name.eq_ignore_ascii_case("authorization") && value == "admin" {
                format!("Bearer {ADMIN_TOKEN}")
            } else {
                value.to_string()
            };
            request = request.header(name.trim(), value);
        }
    }
    // What the HTTP parser would refuse never reaches the routes.
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    // Envoy's routes answer in plain text, as envoyproxy/ratelimit's do.
    let envoy_route = matches!(request.uri().path(), "/json" | "/healthcheck");
    let router = router().clone();
    let response = crate::runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(5), router.oneshot(request))
            .await
            .expect("answered within 5 s")
            .expect("the router is infallible")
    });
    let status = response.status();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{response:?}");
    if status.is_client_error() && !envoy_route {
        let json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        assert!(json, "a {status} without a JSON body: {response:?}");
    }
}

/// The head (up to the first empty line) and the body.
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[]),
    }
}
