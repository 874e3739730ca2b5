//! `compose.yaml` and what it uses under `deploy/`, checked without pulling an image:
//! the services, that every file it mounts or reads exists, the ports, that the three
//! tidegate instances run one configuration (one Redis, one namespace, one tracker) that
//! `tidegate serve` accepts with the env file, and that the load balancer and Prometheus
//! name all three instances; then the same cluster with processes: three servers on
//! that configuration behind nginx on its configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::serve::{Server, TempDir, http};
use serde_yaml_ng::Value;
use tidegate_server::Config;

mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The monitoring services, added with `-f compose.yaml -f MONITORING`.
const MONITORING: &str = "deploy/compose.monitoring.yaml";

/// A compose file with its `<<: *anchor` merges applied, as compose reads it.
fn compose_file(path: &str) -> Value {
    let mut v: Value = serde_yaml_ng::from_str(&read(path)).unwrap();
    v.apply_merge().unwrap();
    v
}

/// compose.yaml and the monitoring file, merged as `docker compose -f A -f B` does for
/// services that only one of them defines.
fn compose() -> Value {
    let mut v = compose_file("compose.yaml");
    let extra = compose_file(MONITORING);
    let services = v["services"].as_mapping_mut().unwrap();
    for (name, s) in extra["services"].as_mapping().unwrap() {
        assert!(
            services.insert(name.clone(), s.clone()).is_none(),
            "{MONITORING} redefines {name:?}"
        );
    }
    v
}

fn services(c: &Value) -> BTreeMap<String, Value> {
    c["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The tidegate services (those built from the Dockerfile), by name.
fn tidegate_services(c: &Value) -> BTreeMap<String, Value> {
    services(c)
        .into_iter()
        .filter(|(_, s)| !s["build"].is_null())
        .collect()
}

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=VALUE: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The image's `ENV` variables, as the Dockerfile's runtime stage sets them.
fn dockerfile_env() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let runtime = text
        .split("AS runtime")
        .nth(1)
        .expect("a stage named runtime");
    runtime
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .map(|l| {
            let (k, v) = l.trim().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// What a service's `environment` sets (map or list form).
fn environment(service: &Value) -> Vec<(String, String)> {
    match &service["environment"] {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
                };
                (k.as_str().unwrap().to_string(), v)
            })
            .collect(),
        Value::Sequence(_) => strings(&service["environment"])
            .into_iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A volume `HOST:CONTAINER[:ro]` of a bind mount: (host path, container path).
fn bind(volume: &str) -> (String, String) {
    let mut parts = volume.split(':');
    let host = parts.next().unwrap().to_string();
    let container = parts
        .next()
        .unwrap_or_else(|| panic!("{volume}"))
        .to_string();
    (host, container)
}

/// Host ports a service publishes.
fn host_ports(service: &Value) -> Vec<(u16, u16)> {
    strings(&service["ports"])
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            let n = parts.len();
            assert!(n >= 2, "port {p} publishes no host port");
            (parts[n - 2].parse().unwrap(), parts[n - 1].parse().unwrap())
        })
        .collect()
}

#[test]
fn compose_runs_redis_three_tidegate_instances_and_a_load_balancer() {
    let c = compose();
    let all = services(&c);
    for name in ["redis", "lb"] {
        assert!(all.contains_key(name), "no service {name}");
    }
    let tidegates = tidegate_services(&c);
    assert_eq!(
        tidegates.keys().collect::<Vec<_>>(),
        ["tidegate-1", "tidegate-2", "tidegate-3"]
    );
    let first = &tidegates["tidegate-1"];
    for (name, s) in &tidegates {
        // One image, built from the repository's Dockerfile.
        assert_eq!(s["build"]["context"], ".", "{name}");
        assert!(
            root()
                .join(s["build"]["dockerfile"].as_str().unwrap())
                .is_file()
        );
        assert_eq!(s["image"], first["image"], "{name}");
        // One configuration and one environment for all three.
        assert_eq!(s["volumes"], first["volumes"], "{name}");
        assert_eq!(s["env_file"], first["env_file"], "{name}");
        assert_eq!(s["environment"], first["environment"], "{name}");
        assert!(
            !s["depends_on"]["redis"].is_null(),
            "{name} does not wait for redis"
        );
        // Its health check is the image's (a podman-built OCI image has none).
        let dockerfile = read("Dockerfile");
        let cmd: String = strings(&s["healthcheck"]["test"])[1..]
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            dockerfile.contains(&format!("CMD [{cmd}]")),
            "{name}: healthcheck {cmd} is not the Dockerfile's"
        );
    }
    // Every service a depends_on names exists.
    for (name, s) in &all {
        let deps: Vec<String> = match &s["depends_on"] {
            Value::Mapping(m) => m.keys().map(|k| k.as_str().unwrap().to_string()).collect(),
            other => strings(other),
        };
        for d in deps {
            assert!(
                all.contains_key(&d),
                "{name} depends on unknown service {d}"
            );
        }
    }
}

#[test]
fn every_file_compose_reads_exists_and_ports_do_not_collide() {
    let c = compose();
    let mut published = BTreeSet::new();
    for (name, s) in services(&c) {
        for v in strings(&s["volumes"]) {
            let (host, container) = bind(&v);
            assert!(
                host.starts_with("./"),
                "{name}: {v} is not a bind mount of the repo"
            );
            assert!(root().join(&host).exists(), "{name}: {host} does not exist");
            assert!(container.starts_with('/'), "{name}: {v}");
        }
        for f in strings(&s["env_file"]) {
            // The env file is the user's copy of the example, which git ignores.
            let example = format!("{f}.example");
            assert!(
                root().join(&f).is_file() || root().join(&example).is_file(),
                "{name}: neither {f} nor {example} exists"
            );
            assert!(
                read(".gitignore").lines().any(|l| l.trim() == f),
                "{f} holds a secret: .gitignore must list it"
            );
            assert!(read(".dockerignore").lines().any(|l| l.trim() == f));
        }
        for (host, _) in host_ports(&s) {
            assert!(published.insert(host), "host port {host} published twice");
        }
    }
    let lb = &services(&c)["lb"];
    assert!(
        host_ports(lb).contains(&(8080, 8080)),
        "the load balancer is not on 8080"
    );
}

#[test]
fn the_cluster_configuration_loads_with_the_env_file_and_shares_one_redis_and_tracker() {
    let c = compose();
    let tidegates = tidegate_services(&c);
    let s = &tidegates["tidegate-1"];
    let env = environment(s);
    let config_path = env
        .iter()
        .find(|(k, _)| k == "TIDEGATE_CONFIG")
        .map(|(_, v)| v.clone())
        .expect("TIDEGATE_CONFIG is set");
    let (host, _) = strings(&s["volumes"])
        .iter()
        .map(|v| bind(v))
        .find(|(_, container)| *container == config_path)
        .unwrap_or_else(|| panic!("nothing is mounted at {config_path}"));

    let env_path = format!("{}.example", strings(&s["env_file"])[0]);
    let example = env_file(&read(&env_path));
    for (k, _) in &example {
        assert!(
            k.starts_with("TIDEGATE_"),
            "{env_path}: {k} is not a tidegate variable"
        );
    }
    // What the container sees: the image's ENV, the env file, the service's environment.
    let mut vars = dockerfile_env();
    vars.extend(example.iter().cloned());
    vars.extend(env.iter().cloned());

    // The example's placeholder token is refused, naming the field: a copy must set one.
    let e = Config::load(root().join(&host), vars.clone()).unwrap_err();
    assert_eq!(e.field(), "admin.token", "{e}");
    assert!(e.to_string().contains("placeholder"), "{e}");

    let secret = "3f1c2a9b7d6e5f4031a2b3c4d5e6f708";
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .map(|(k, v)| {
            if k == "TIDEGATE_ADMIN__TOKEN" {
                (k, secret.to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let config = Config::load(root().join(&host), vars)
        .unwrap_or_else(|e| panic!("{host} with {env_path}: {e}"));
    assert_eq!(config.listen().to_string(), "0.0.0.0:8080");
    let summary = config.summary();
    assert!(
        summary.contains("store: redis redis://redis:6379"),
        "{summary}"
    );
    assert!(summary.contains("admin: on"), "{summary}");
    assert!(summary.contains("policy login:"), "{summary}");

    // One tracker in that Redis, under one name: shared by the three.
    let raw: toml::Table = toml::from_str(&read(host.trim_start_matches("./"))).unwrap();
    assert_eq!(raw["tracker"]["store"].as_str(), Some("redis"));
    assert!(raw["tracker"]["name"].as_str().is_some());
    assert!(raw["store"]["namespace"].as_str().is_some());
    // The Redis the configuration names is the compose service.
    assert!(services(&c).contains_key("redis"));
}

#[test]
fn the_load_balancer_and_prometheus_name_the_three_instances() {
    let c = compose();
    let names: Vec<String> = tidegate_services(&c).into_keys().collect();
    let lb = &services(&c)["lb"];
    let (conf_host, conf_container) = bind(&strings(&lb["volumes"])[0]);
    assert_eq!(conf_container, "/etc/nginx/nginx.conf");
    let nginx = read(conf_host.trim_start_matches("./"));
    let upstream = nginx
        .split("upstream ")
        .nth(1)
        .and_then(|u| u.split('}').next())
        .expect("an upstream block");
    let servers: Vec<&str> = upstream
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .map(|l| l.split_whitespace().next().unwrap().trim_end_matches(';'))
        .collect();
    let expected: Vec<String> = names.iter().map(|n| format!("{n}:8080")).collect();
    assert_eq!(servers, expected, "nginx upstream");
    let (_, lb_port) = host_ports(lb)[0];
    assert!(
        nginx.contains(&format!("listen {lb_port};")),
        "nginx listens on {lb_port}"
    );

    let prometheus = &services(&c)["prometheus"];
    let (prom_host, _) = bind(&strings(&prometheus["volumes"])[0]);
    let prom: Value = serde_yaml_ng::from_str(&read(prom_host.trim_start_matches("./"))).unwrap();
    let targets = strings(&prom["scrape_configs"][0]["static_configs"][0]["targets"]);
    assert_eq!(targets, expected, "prometheus targets");
    assert_eq!(prom["scrape_configs"][0]["metrics_path"], "/metrics");

    // Grafana reads the dashboard where its provisioning looks, from that Prometheus.
    let grafana = &services(&c)["grafana"];
    let mounts: Vec<(String, String)> = strings(&grafana["volumes"])
        .iter()
        .map(|v| bind(v))
        .collect();
    let dashboard = mounts
        .iter()
        .find(|(h, _)| h == "./deploy/grafana/tidegate.json")
        .expect("the dashboard is mounted");
    let provider: Value = serde_yaml_ng::from_str(&read(
        "deploy/grafana/provisioning/dashboards/tidegate.yaml",
    ))
    .unwrap();
    let dir = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(Path::new(&dashboard.1).parent().unwrap(), Path::new(dir));
    let datasource: Value = serde_yaml_ng::from_str(&read(
        "deploy/grafana/provisioning/datasources/prometheus.yaml",
    ))
    .unwrap();
    assert_eq!(
        datasource["datasources"][0]["url"],
        "http://prometheus:9090"
    );
    assert!(host_ports(prometheus).iter().any(|&(_, c)| c == 9090));
}

/// The cluster as compose runs it, with processes instead of containers: three `tidegate
/// serve` on `deploy/tidegate.toml` (its Redis a real one on loopback) behind a real
/// nginx on `deploy/nginx.conf` (its three upstream names pointed at them). Skipped
/// without nginx on PATH.
#[test]
fn three_servers_on_the_cluster_configuration_share_limits_and_the_tracker_behind_nginx() {
    let Some(nginx) = which("nginx") else {
        eprintln!("skipped: nginx not found (apt-get install nginx-light)");
        return;
    };
    let redis = redis_test_server::RedisServer::start();
    let dir = TempDir::new();
    let toml = read("deploy/tidegate.toml").replace("redis://redis:6379", &redis.url());
    let config = dir.write("tidegate.toml", &toml);
    let token = "3f1c2a9b7d6e5f4031a2b3c4d5e6f708";
    let servers: Vec<Server> = (0..3)
        .map(|_| {
            Server::start(
                &["--config", config.to_str().unwrap()],
                &[("TIDEGATE_ADMIN__TOKEN", token)],
                &dir.0,
            )
        })
        .collect();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut conf =
        read("deploy/nginx.conf").replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
    for (i, s) in servers.iter().enumerate() {
        conf = conf.replace(&format!("tidegate-{}:8080", i + 1), &s.addr);
    }
    let conf_path = dir.write("nginx.conf", &conf);
    let globals = format!(
        "daemon off; pid {0}/nginx.pid; error_log {0}/nginx.log;",
        dir.0.display()
    );
    let child = std::process::Command::new(nginx)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", &globals])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null()) // errors go to nginx.log
        .spawn()
        .unwrap();
    let _nginx = StopOnDrop(child);
    let lb = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !matches!(http(&lb, "GET", "/healthz", &[], b""), Ok(r) if r.status == 200) {
        assert!(
            std::time::Instant::now() < deadline,
            "nginx did not answer on {lb}: {}",
            std::fs::read_to_string(dir.0.join("nginx.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let post = |path: &str, body: &str| {
        http(
            &lb,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    // `login`: 3 per 10 s per key, whichever instance nginx picks.
    let mut upstreams = BTreeSet::new();
    let mut answers = Vec::new();
    for _ in 0..4 {
        let r = post("/v1/check", r#"{"policy":"login","key":"alice"}"#);
        upstreams.insert(r.header("x-upstream").to_string());
        answers.push((r.status, r.json()["remaining"].as_u64().unwrap()));
    }
    assert_eq!(answers, [(200, 2), (200, 1), (200, 0), (429, 0)]);
    let expected: BTreeSet<String> = servers.iter().map(|s| s.addr.clone()).collect();
    assert_eq!(
        upstreams, expected,
        "nginx spread the requests over the three"
    );

    // One tracker: counts continue from instance to instance.
    let mut counts = Vec::new();
    let mut types = Vec::new();
    for i in 0..7 {
        let r = post(
            "/v1/events",
            &format!(r#"{{"category":"errors","id":"E1","details":{{"i":{i}}}}}"#),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        counts.push(r.json()["count"].as_u64().unwrap());
        types.push(r.json()["type"].as_str().unwrap().to_string());
    }
    assert_eq!(counts, (1..=7).collect::<Vec<u64>>());
    assert_eq!(
        types.iter().filter(|t| *t == "immediate").count(),
        5,
        "{types:?}"
    );

    // The admin routes, with the token of the env file's variable.
    let auth = format!("Bearer {token}");
    let r = http(
        &lb,
        "GET",
        "/admin/keys/login/alice",
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["remaining"], 0);
}

/// nginx stopped on drop: SIGTERM, which its master passes on to the workers (a SIGKILL
/// would leave them running), then SIGKILL if it is still there after 10 s.
struct StopOnDrop(std::process::Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name` on PATH (or in /usr/sbin, where Debian puts nginx).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
