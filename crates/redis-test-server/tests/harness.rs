//! Integration tests of the harness against real redis-server processes.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use redis_test_server::{RedisCluster, RedisServer, process_alive};

/// Raw TCP `PING` with a read timeout: `Some(reply)` or `None` if nothing arrived.
fn raw_ping(port: u16, read_timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

fn wait_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn single_server_ping_set_get() {
    let server = RedisServer::start();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.cli(&["PING"]), "PONG");
    assert_eq!(server.cli(&["SET", "k", "v"]), "OK");
    assert_eq!(server.cli(&["GET", "k"]), "v");
    assert_eq!(server.cli(&["DBSIZE"]), "1");
    assert_eq!(server.cli(&["CONFIG", "GET", "save"]), "save");
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
    assert!(server.ping(Duration::from_millis(200)));
}

#[test]
fn pause_blocks_and_resume_answers() {
    let server = RedisServer::start();
    server.pause();
    assert!(server.is_running());
    assert_eq!(raw_ping(server.port(), Duration::from_millis(200)), None);
    server.resume();
    let reply = raw_ping(server.port(), Duration::from_secs(2)).expect("answer after resume");
    assert!(reply.starts_with("+PONG"), "{reply:?}");
}

#[test]
fn kill_refuses_and_restart_reuses_port() {
    let server = RedisServer::start();
    let (port, old_pid) = (server.port(), server.pid());
    server.cli(&["SET", "k", "v"]);
    server.kill();
    assert!(!server.is_running());
    assert!(!process_alive(old_pid));
    let err = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect_err("must be refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    server.restart();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), old_pid);
    assert!(
        raw_ping(port, Duration::from_secs(2))
            .unwrap()
            .starts_with("+PONG")
    );
    assert_eq!(server.cli(&["DBSIZE"]), "0");
    // restart() on a running server kills it first.
    let pid = server.pid();
    server.restart();
    assert!(!process_alive(pid));
    assert_eq!(server.cli(&["PING"]), "PONG");
}

#[test]
fn concurrent_starts_get_distinct_ports() {
    let servers: Vec<RedisServer> = (0..6)
        .map(|_| thread::spawn(RedisServer::start))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for s in &servers {
        assert_eq!(s.cli(&["PING"]), "PONG");
    }
}

#[test]
fn drop_leaves_no_process_or_dir() {
    let running = RedisServer::start();
    let paused = RedisServer::start();
    paused.pause();
    let killed = RedisServer::start();
    killed.kill();
    let info: Vec<_> = [&running, &paused, &killed]
        .iter()
        .map(|s| (s.pid(), s.dir().to_path_buf()))
        .collect();
    drop((running, paused, killed));
    for (pid, dir) in info {
        let status = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "pid {pid} still exists");
        assert!(!dir.exists(), "{} not removed", dir.display());
    }
}

#[test]
fn drop_during_panic_cleans_up() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = thread::spawn(move || {
        let server = RedisServer::start();
        tx.send(server.pid()).unwrap();
        panic!("test failure while a server is alive");
    })
    .join();
    assert!(result.is_err());
    let pid = rx.recv().unwrap();
    assert!(!process_alive(pid));
}

#[test]
fn cluster_serves_and_redirects() {
    let cluster = RedisCluster::start();
    assert_eq!(cluster.urls().len(), 3);
    let ports = cluster.ports();
    for node in cluster.nodes() {
        let info = node.cli(&["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
    }
    let p1 = ports[0].to_string();
    let set = Command::new("redis-cli")
        .args(["-c", "-p", &p1, "SET", "foo", "bar"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&set.stdout).trim(), "OK");
    assert_eq!(cluster.node(1).cli(&["-c", "GET", "foo"]), "bar");
    assert_eq!(cluster.node(2).cli(&["-c", "GET", "foo"]), "bar");
    assert_eq!(cluster.cli(&["GET", "foo"]), "bar");

    // A node can be killed and restarted on its port; it rejoins with its slots.
    let node = cluster.node(2);
    let old = node.pid();
    node.kill();
    node.restart();
    assert_eq!(node.port(), ports[2]);
    assert_ne!(node.pid(), old);
    cluster.wait_ready(Duration::from_secs(10)).unwrap();
    assert_eq!(cluster.cli(&["SET", "{x}a", "1"]), "OK");

    let pids: Vec<u32> = cluster.nodes().iter().map(RedisServer::pid).collect();
    drop(cluster);
    for pid in pids {
        assert!(!process_alive(pid), "cluster node {pid} survived drop");
    }
}

/// Runs the ignored test `name` of this binary in a child process with `env` set.
fn run_helper(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Helper run in a child process by `servers_die_with_the_test_process`.
#[test]
#[ignore = "helper: only meaningful when spawned by another test"]
fn helper_exit_without_drop() {
    if std::env::var_os("RTS_HELPER_EXIT").is_none() {
        return;
    }
    let server = RedisServer::start();
    println!("PID={} DIR={}", server.pid(), server.dir().display());
    // Exit without running destructors, like an aborted test binary.
    std::process::exit(0);
}

#[test]
fn servers_die_with_the_test_process() {
    let out = run_helper("helper_exit_without_drop", &[("RTS_HELPER_EXIT", "1")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PID="))
        .unwrap_or_else(|| panic!("no PID line in helper output:\n{stdout}"));
    let (pid, dir) = line.split_once(" DIR=").unwrap();
    wait_dead(pid.parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(dir).exists() {
        assert!(Instant::now() < deadline, "{dir} not removed");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Helper run in a child process by `missing_binary_panics_clearly`.
#[test]
#[ignore = "helper: only meaningful when spawned by another test"]
fn helper_missing_binary() {
    if std::env::var_os("RTS_HELPER_MISSING").is_none() {
        return;
    }
    let _server = RedisServer::start();
}

#[test]
fn missing_binary_panics_clearly() {
    let out = run_helper(
        "helper_missing_binary",
        &[
            ("RTS_HELPER_MISSING", "1"),
            ("REDIS_SERVER_BIN", "/nonexistent/redis-server"),
        ],
    );
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("not found in PATH"), "{all}");
}
