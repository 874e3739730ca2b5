//! The container image of the repository's `Dockerfile`, built and run with podman: a
//! static `tidegate` built here stands in for the Dockerfile's `build` stage
//! (`podman build --build-context build=DIR`), so the runtime stage checked here is the
//! one users get. Three containers on the host network share one real `redis-server`
//! and one policy; the test checks the shared limit is exact across them, the image's
//! HEALTHCHECK, that the server runs as a non-root user and stops cleanly on SIGTERM.
//!
//! Needs podman (with runc) and permission to run it; without podman it prints why and
//! passes, unless `REQUIRE_PODMAN=1` (set by `scripts/test`) makes that a
//! failure.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::serve::{Resp, TempDir, http};
use redis_test_server::RedisServer;
use serde_json::json;

/// The uid:gid the image runs as.
const IMAGE_USER: &str = "65532:65532";

/// The repository root (the build context).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// podman with the options this kind of host needs: runc (crun may fail in nested
/// containers), cgroupfs and file events (no systemd), and a containers.conf without
/// default ulimits (raising `nofile` past the hard limit is refused without
/// CAP_SYS_RESOURCE).
struct Podman {
    conf: PathBuf,
}

impl Podman {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", &self.conf)
            .args([
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(args);
        cmd
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("podman {args:?}: {e}"))
    }

    /// Runs podman and returns its standard output, panicking with its stderr on failure.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// Removes the test's containers and image, also when the test fails, and the untagged
/// images a failed build leaves behind (those that were not there before it).
struct Cleanup<'a> {
    podman: &'a Podman,
    image: String,
    containers: Vec<String>,
    untagged_before: Vec<String>,
}

impl Podman {
    fn untagged_images(&self) -> Vec<String> {
        let out = self.output(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.podman.output(&["rm", "-f", "-t", "2", c]);
        }
        let _ = self.podman.output(&["rmi", "-f", &self.image]);
        for id in self.podman.untagged_images() {
            if !self.untagged_before.contains(&id) {
                let _ = self.podman.output(&["rmi", "-f", &id]);
            }
        }
    }
}

/// Why podman cannot be used here, if it cannot.
fn podman_unusable(podman: &Podman) -> Option<String> {
    match podman
        .command(&["info", "--format", "{{.Host.OCIRuntime.Name}}"])
        .output()
    {
        Err(e) => Some(format!(
            "podman not found ({e}); scripts/test installs it: apt-get install podman runc"
        )),
        Ok(out) if !out.status.success() => Some(format!(
            "`podman info` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// `tidegate` linked statically for this machine (glibc, `+crt-static`), in its own
/// target directory so the normal build is left alone.
fn build_static_binary() -> PathBuf {
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let target_dir = repo_root().join("target/static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let start = Instant::now();
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "-p",
            "tidegate-cli",
            "--locked",
            "--target",
            &triple,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS") // it would win over RUSTFLAGS
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .status()
        .expect("running cargo build");
    assert!(status.success(), "the static build failed: {status}");
    eprintln!(
        "container test: static build took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let bin = target_dir.join(&triple).join("debug/tidegate");
    let ldd = Command::new("ldd").arg(&bin).output().expect("running ldd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&ldd.stdout),
        String::from_utf8_lossy(&ldd.stderr)
    );
    assert!(
        text.contains("statically linked") || text.contains("not a dynamic executable"),
        "{} is not static; ldd says:\n{text}",
        bin.display()
    );
    bin
}

/// `n` distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn check(addr: &str, key: &str) -> Resp {
    let body = json!({"policy": "shared", "key": key}).to_string();
    http(
        addr,
        "POST",
        "/v1/check",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("POST /v1/check on {addr}: {e}"))
}

/// Waits until `addr` answers `/readyz` with 200 (its Redis connected).
fn wait_ready(podman: &Podman, name: &str, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http(addr, "GET", "/readyz", &[], b"")
            && r.status == 200
        {
            return;
        }
        if Instant::now() > deadline {
            let logs = podman.output(&["logs", name]);
            panic!(
                "container {name} is not ready on {addr} after 60 s; its log:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_containers_of_the_image_share_one_redis_limit_exactly() {
    let started = Instant::now();
    let work = TempDir::new();
    let conf = work.write("containers.conf", "[containers]\ndefault_ulimits = []\n");
    let podman = Podman { conf };
    if let Some(why) = podman_unusable(&podman) {
        assert!(
            std::env::var_os("REQUIRE_PODMAN").is_none(),
            "REQUIRE_PODMAN is set but {why}"
        );
        eprintln!("container test skipped: {why}");
        return;
    }

    // The Dockerfile's `build` stage, supplied from here: out/tidegate, out/data and
    // this machine's root certificates.
    let bin = build_static_binary();
    let stage = work.0.join("build-stage");
    std::fs::create_dir_all(stage.join("out/data")).unwrap();
    std::fs::copy(&bin, stage.join("out/tidegate")).unwrap();
    let bundle = "etc/ssl/certs/ca-certificates.crt";
    std::fs::create_dir_all(stage.join("etc/ssl/certs")).unwrap();
    if std::fs::copy(Path::new("/").join(bundle), stage.join(bundle)).is_err() {
        eprintln!(
            "container test: no /{bundle} here (ca-certificates): the image gets an empty one"
        );
        std::fs::write(stage.join(bundle), "").unwrap();
    }
    let tag = format!("localhost/tidegate-test:{}", std::process::id());
    let mut cleanup = Cleanup {
        podman: &podman,
        image: tag.clone(),
        containers: Vec::new(),
        untagged_before: podman.untagged_images(),
    };
    let root = repo_root();
    let stage_arg = format!("build={}", stage.display());
    let dockerfile = root.join("Dockerfile");
    podman.ok(&[
        "build",
        "--format",
        "docker", // keeps HEALTHCHECK (the OCI format has no field for it)
        "--build-context",
        &stage_arg,
        "-f",
        dockerfile.to_str().unwrap(),
        "-t",
        &tag,
        root.to_str().unwrap(),
    ]);

    // What the image declares.
    let user = podman.ok(&["image", "inspect", &tag, "--format", "{{.Config.User}}"]);
    assert_eq!(user, IMAGE_USER);
    let health = podman.ok(&[
        "image",
        "inspect",
        &tag,
        "--format",
        "{{json .Config.Healthcheck.Test}}",
    ]);
    assert!(
        health.contains("\"probe\"") && health.contains("/healthz"),
        "{health}"
    );
    let ports = podman.ok(&[
        "image",
        "inspect",
        &tag,
        "--format",
        "{{json .Config.ExposedPorts}}",
    ]);
    assert!(
        ports.contains("8080/tcp") && ports.contains("8081/tcp"),
        "{ports}"
    );

    // One Redis, one configuration, three containers on the host network. The Redis is
    // named (redis-host, through --add-host) so the static binary's name lookup is used.
    let redis = RedisServer::start();
    let config = work.write(
        "tidegate.toml",
        &format!(
            // A generous timeout: on a loaded machine the default 50 ms could let the
            // failure policy answer a decision, which is not what this test is about.
            "[store]\nurl = \"redis://redis-host:{port}\"\nnamespace = \"container-test\"\n\
             timeout = \"5s\"\non_error = \"fail_closed\"\n\n\
             [policies]\nshared = \"token_bucket:10/1d\"\n",
            port = redis.port()
        ),
    );
    let mount = format!("{}:/etc/tidegate/tidegate.toml:ro", config.display());
    let mut addrs = Vec::new();
    for (i, port) in free_ports(3).into_iter().enumerate() {
        let name = format!("tidegate-test-{}-{i}", std::process::id());
        let listen = format!("TIDEGATE_LISTEN=0.0.0.0:{port}");
        cleanup.containers.push(name.clone());
        podman.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "host",
            "--add-host",
            "redis-host:127.0.0.1",
            "-e",
            &listen,
            "-e",
            "TIDEGATE_CONFIG=/etc/tidegate/tidegate.toml",
            "-v",
            &mount,
            &tag,
        ]);
        addrs.push((name, format!("127.0.0.1:{port}")));
    }
    for (name, addr) in &addrs {
        wait_ready(&podman, name, addr);
    }

    // 30 requests, round-robin: exactly 10 admitted, in one sequence of `remaining`.
    let mut admitted = Vec::new();
    let mut per_instance = [(0, 0); 3];
    for n in 0..30 {
        let (_, addr) = &addrs[n % 3];
        let r = check(addr, "one-key");
        match r.status {
            200 => {
                admitted.push(r.json()["remaining"].as_u64().unwrap());
                per_instance[n % 3].0 += 1;
            }
            429 => per_instance[n % 3].1 += 1,
            other => panic!("request {n} on {addr}: {other} {}", r.body),
        }
    }
    assert_eq!(
        admitted,
        (0..10).rev().collect::<Vec<u64>>(),
        "{per_instance:?}"
    );
    assert_eq!(per_instance, [(4, 6), (3, 7), (3, 7)]);

    for (name, addr) in &addrs {
        // The image's HEALTHCHECK passes, and its probe fails where nothing listens.
        podman.ok(&["healthcheck", "run", name]);
        let status = podman.ok(&["inspect", name, "--format", "{{.State.Health.Status}}"]);
        assert_eq!(status, "healthy", "{name}");
        let out = podman.ok(&["exec", name, "/usr/local/bin/tidegate", "probe", "/readyz"]);
        assert!(out.ends_with("/readyz: 200 OK"), "{out}");
        let refused = podman.output(&[
            "exec",
            name,
            "/usr/local/bin/tidegate",
            "probe",
            "--timeout",
            "2s",
            "http://127.0.0.1:1/healthz",
        ]);
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("cannot connect to 127.0.0.1:1"),
            "{refused:?}"
        );

        // Not root: inside the container, and as the kernel sees it from here (rootful
        // podman maps no ids; rootless podman maps 65532 into this user's subordinate
        // ids, which are not root either).
        let user = podman.ok(&["top", name, "user"]);
        assert_eq!(
            user.lines().nth(1).map(str::trim),
            Some("tidegate"),
            "{user}"
        );
        let pid = podman.ok(&["inspect", name, "--format", "{{.State.Pid}}"]);
        let uids = |pid: &str| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let line = status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .unwrap()
                .to_string();
            line.split_whitespace()
                .skip(1)
                .map(|id| id.parse::<u32>().unwrap())
                .collect::<Vec<u32>>()
        };
        let host_uids = uids(&pid);
        if uids("self")[0] == 0 {
            assert_eq!(host_uids, [65532; 4], "{name}");
        } else {
            assert!(!host_uids.contains(&0), "{name}: {host_uids:?}");
        }
        // Every decision came from Redis: none from the failure policy.
        let metrics = http(addr, "GET", "/metrics", &[], b"").unwrap().body;
        assert!(
            metrics.contains("tidegate_store_fallbacks_total{policy=\"shared\"} 0\n"),
            "{name}: {metrics}"
        );
    }

    // Run as shipped (no variables, its own network namespace, port 8080 published):
    // it listens on every interface, so the host reaches it.
    let name = format!("tidegate-test-{}-default", std::process::id());
    cleanup.containers.push(name.clone());
    let host_port = free_ports(1)[0];
    let publish = format!("127.0.0.1:{host_port}:8080");
    podman.ok(&["run", "-d", "--name", &name, "-p", &publish, &tag]);
    let published = format!("127.0.0.1:{host_port}");
    wait_ready(&podman, &name, &published);
    let r = http(
        &published,
        "POST",
        "/v1/check",
        &[("Content-Type", "application/json")],
        br#"{"policy":"login","key":"k"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    podman.ok(&["healthcheck", "run", &name]);

    // SIGTERM (the image's STOPSIGNAL): a graceful stop, exit status 0.
    let (first, _) = &addrs[0];
    podman.ok(&["stop", "-t", "20", first]);
    let code = podman.ok(&["inspect", first, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(code, "0", "{first} stopped with status {code}");

    drop(cleanup);
    eprintln!(
        "container test: {:.1} s in all (static build included)",
        started.elapsed().as_secs_f64()
    );
}
