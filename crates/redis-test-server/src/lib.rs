//! Test harness that runs REAL `redis-server` processes (a single node or a
//! 3-master cluster) on free loopback ports and stops them on drop.
//!
//! ```no_run
//! use redis_test_server::{RedisCluster, RedisServer};
//!
//! let server = RedisServer::start();
//! assert_eq!(server.cli(&["PING"]), "PONG");
//! server.pause(); // SIGSTOP: connections hang
//! server.resume(); // SIGCONT
//! server.kill(); // SIGKILL: connections are refused
//! server.restart(); // same port, empty dataset
//!
//! let cluster = RedisCluster::start();
//! assert_eq!(cluster.urls().len(), 3);
//! ```
//!
//! Cleanup: every process is SIGKILLed and reaped on drop (also while a test
//! panics). Each process is additionally watched by a tiny `sh` watchdog that
//! holds the read end of a pipe whose write end only this process holds: if
//! the test process dies without running destructors (`process::exit`, abort,
//! SIGKILL, or a server kept in a `static`), the watchdog kills the server and
//! removes its temporary directory.
//!
//! Binaries: `redis-server` and `redis-cli` from `PATH`, overridable with the
//! `REDIS_SERVER_BIN` and `REDIS_CLI_BIN` environment variables.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server (or a cluster) may take to become ready before we panic.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeout used by [`RedisServer::command`] for connecting, reading and writing.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Number of hash slots a Redis cluster must cover.
pub const CLUSTER_SLOTS: u32 = 16384;

/// Offset of the cluster bus port from the client port.
const CLUSTER_BUS_OFFSET: u16 = 10000;
/// How many fresh ports we try when redis-server reports "Address already in use".
const MAX_PORT_ATTEMPTS: usize = 10;
/// Poll interval while waiting for readiness.
const POLL: Duration = Duration::from_millis(20);
/// Number of log lines included in panic messages.
const LOG_TAIL_LINES: usize = 25;

/// Ports (client and cluster bus) owned by live servers of this process, so
/// concurrent tests in the same process never pick the same port.
static RESERVED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

fn cli_bin() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_owned())
}

fn bus_port(port: u16) -> u16 {
    port + CLUSTER_BUS_OFFSET
}

/// Ports a server on `port` occupies.
fn ports_of(port: u16, cluster: bool) -> Vec<u16> {
    if cluster {
        vec![port, bus_port(port)]
    } else {
        vec![port]
    }
}

fn can_bind(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Picks a free loopback port (and a free bus port for cluster nodes) and
/// reserves it for this process. The OS may still hand it to another process
/// before redis-server binds it: callers retry on "Address already in use".
fn reserve_port(cluster: bool) -> u16 {
    for _ in 0..1000 {
        let port = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(listener) => match listener.local_addr() {
                Ok(addr) => addr.port(),
                Err(_) => continue,
            },
            Err(e) => panic!("redis-test-server: cannot bind 127.0.0.1:0 to find a free port: {e}"),
        };
        if cluster && (port > u16::MAX - CLUSTER_BUS_OFFSET || !can_bind(bus_port(port))) {
            continue;
        }
        let wanted = ports_of(port, cluster);
        let mut reserved = lock(&RESERVED_PORTS);
        if wanted.iter().any(|p| reserved.contains(p)) {
            continue;
        }
        reserved.extend(wanted);
        return port;
    }
    panic!("redis-test-server: could not find a free loopback port after 1000 tries");
}

fn release_port(port: u16, cluster: bool) {
    let mut reserved = lock(&RESERVED_PORTS);
    for p in ports_of(port, cluster) {
        reserved.remove(&p);
    }
}

/// Creates a fresh, unique directory under the system temp dir.
fn make_temp_dir(prefix: &str) -> PathBuf {
    loop {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!(
                "redis-test-server: cannot create temp dir {}: {e}",
                dir.display()
            ),
        }
    }
}

/// Last `lines` lines of the file from byte `from` on.
fn log_tail(path: &Path, from: u64, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// Whether a process with this pid exists and is not a zombie (Linux `/proc`,
/// falling back to `kill -0` elsewhere).
pub fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // Format: "pid (comm) STATE ..."; comm may contain spaces or parens.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].trim_start().chars().next());
        return !matches!(state, Some('Z' | 'X' | 'x') | None);
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("redis-test-server: cannot run `kill -{signal} {pid}`: {e}"));
    assert!(
        status.success(),
        "redis-test-server: `kill -{signal} {pid}` failed ({status})"
    );
}

/// Sends an inline `PING` and returns true if `+PONG` arrives within `timeout`
/// (applied to connect, write and read separately).
pub fn ping_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
        || stream.write_all(b"PING\r\n").is_err()
    {
        return false;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    reader.read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

/// A decoded RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`-style status reply.
    Status(String),
    /// `-ERR ...` error reply (without the leading `-`).
    Error(String),
    /// `:N` integer reply.
    Int(i64),
    /// `$N` bulk string; `None` for the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*N` array; `None` for the nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (status, error, integer or bulk string), if it is one.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Reply::Status(s) | Reply::Error(s) => Some(s.clone()),
            Reply::Int(i) => Some(i.to_string()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

fn bad_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| bad_data("empty line"))?;
    let int = || {
        rest.parse::<i64>()
            .map_err(|_| bad_data(format!("bad integer {rest:?}")))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(int()?),
        "$" => match usize::try_from(int()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut buf = vec![0; len + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(len);
                Reply::Bulk(Some(buf))
            }
        },
        "*" => match usize::try_from(int()?) {
            Err(_) => Reply::Array(None),
            Ok(n) => Reply::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?,
            )),
        },
        _ => return Err(bad_data(format!("unexpected reply line {line:?}"))),
    })
}

/// Sends one command (RESP array) to 127.0.0.1:`port` and reads one reply.
pub fn command_port(port: u16, args: &[&str], timeout: Duration) -> io::Result<Reply> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&req)?;
    read_reply(&mut BufReader::new(&stream))
}

/// Spawns the `sh` watchdog that SIGKILLs `pid` and removes `dir` once its
/// stdin reaches EOF, i.e. once every holder of the write end (only this
/// process: Rust opens pipes close-on-exec) is gone. Best effort.
fn spawn_watchdog(pid: u32, dir: &Path) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(r#"read -r line; kill -9 "$1" 2>/dev/null; rm -rf "$2""#)
        .arg("redis-test-server-watchdog")
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Kills a child with SIGKILL (works on stopped processes too) and reaps it.
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Why a launch attempt failed.
enum LaunchError {
    /// redis-server exited because the port (or bus port) was taken.
    PortInUse,
    /// Anything else: the message explains it.
    Fatal(String),
}

/// Processes of one running redis-server incarnation.
struct Running {
    child: Child,
    /// Killed (SIGKILL, never EOF) before the server so it never removes the dir.
    watchdog: Option<Child>,
}

struct State {
    running: Option<Running>,
    pid: u32,
}

/// A real `redis-server` child process on a loopback port; killed on drop.
pub struct RedisServer {
    port: u16,
    cluster: bool,
    extra_args: Vec<String>,
    dir: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("cluster", &self.cluster)
            .field("dir", &self.dir)
            .finish()
    }
}

impl RedisServer {
    /// Starts a standalone redis-server on a free loopback port; panics if it cannot.
    pub fn start() -> RedisServer {
        Self::start_with_args(&[])
    }

    /// Like [`RedisServer::start`], appending extra `redis-server` arguments
    /// (e.g. `["--maxmemory", "10mb"]`); they are reused by [`RedisServer::restart`].
    pub fn start_with_args(extra_args: &[&str]) -> RedisServer {
        Self::start_node(false, extra_args)
    }

    fn start_node(cluster: bool, extra_args: &[&str]) -> RedisServer {
        let dir = make_temp_dir("redis-test-server");
        let extra_args: Vec<String> = extra_args.iter().map(|s| (*s).to_owned()).collect();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last_port = 0;
        for _ in 0..MAX_PORT_ATTEMPTS {
            let port = reserve_port(cluster);
            last_port = port;
            match launch(port, cluster, &extra_args, &dir, deadline) {
                Ok(running) => {
                    let pid = running.child.id();
                    return RedisServer {
                        port,
                        cluster,
                        extra_args,
                        dir,
                        state: Mutex::new(State {
                            running: Some(running),
                            pid,
                        }),
                    };
                }
                Err(LaunchError::PortInUse) => release_port(port, cluster),
                Err(LaunchError::Fatal(msg)) => {
                    release_port(port, cluster);
                    let _ = fs::remove_dir_all(&dir);
                    panic!("{msg}");
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "redis-test-server: {MAX_PORT_ATTEMPTS} ports in a row were already in use \
             (last tried {last_port}); is something grabbing loopback ports?"
        );
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port (stable across [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the current (or, after [`RedisServer::kill`], the last) redis-server process.
    pub fn pid(&self) -> u32 {
        lock(&self.state).pid
    }

    /// Temporary working directory (data dir, `redis.log`, cluster config).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the log file receiving the server's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Last lines of the server log (useful in assertion messages).
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 0, LOG_TAIL_LINES)
    }

    /// Whether the process is running (true while paused; false after kill or a crash).
    pub fn is_running(&self) -> bool {
        let mut state = lock(&self.state);
        match state.running.as_mut() {
            Some(r) => matches!(r.child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn running_pid(&self) -> u32 {
        let state = lock(&self.state);
        match &state.running {
            Some(r) => r.child.id(),
            None => panic!(
                "redis-test-server: server on port {} is not running (killed?)",
                self.port
            ),
        }
    }

    /// Freezes the server with SIGSTOP: connections are accepted by the kernel but never answered.
    pub fn pause(&self) {
        send_signal(self.running_pid(), "STOP");
    }

    /// Unfreezes a paused server with SIGCONT.
    pub fn resume(&self) {
        send_signal(self.running_pid(), "CONT");
    }

    /// Kills the server with SIGKILL and reaps it (no-op if not running); the port stays reserved.
    pub fn kill(&self) {
        let running = lock(&self.state).running.take();
        if let Some(mut r) = running {
            if let Some(mut w) = r.watchdog.take() {
                kill_and_reap(&mut w);
            }
            kill_and_reap(&mut r.child);
        }
    }

    /// Kills the server if needed, then starts a new one on the SAME port and
    /// waits until it answers PING (dataset empty; cluster nodes keep their
    /// node id and slots via their nodes.conf). Panics if it cannot.
    pub fn restart(&self) {
        self.kill();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut state = lock(&self.state);
        loop {
            match launch(
                self.port,
                self.cluster,
                &self.extra_args,
                &self.dir,
                deadline,
            ) {
                Ok(running) => {
                    state.pid = running.child.id();
                    state.running = Some(running);
                    return;
                }
                Err(LaunchError::PortInUse) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(LaunchError::PortInUse) => panic!(
                    "redis-test-server: restart on port {} failed: port taken by another process\n{}",
                    self.port,
                    self.log_tail()
                ),
                Err(LaunchError::Fatal(msg)) => panic!("{msg}"),
            }
        }
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT args...` and returns its stdout,
    /// trimmed (pass `"-c"` first to follow cluster redirects). Blocks while paused.
    pub fn cli(&self, args: &[&str]) -> String {
        run_cli(self.port, args)
    }

    /// Sends a command over a raw RESP connection ([`COMMAND_TIMEOUT`] for each I/O step).
    pub fn command(&self, args: &[&str]) -> io::Result<Reply> {
        command_port(self.port, args, COMMAND_TIMEOUT)
    }

    /// True if an inline `PING` gets `+PONG` within `timeout`.
    pub fn ping(&self, timeout: Duration) -> bool {
        ping_port(self.port, timeout)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
        release_port(self.port, self.cluster);
    }
}

fn run_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(cli_bin())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "redis-test-server: cannot run `{}` (install redis-tools / redis-server, \
                 or set REDIS_CLI_BIN): {e}",
                cli_bin()
            )
        });
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn server_args(port: u16, cluster: bool, extra: &[String], dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(dir.display().to_string());
    if cluster {
        args.extend([
            "--cluster-enabled".to_owned(),
            "yes".to_owned(),
            "--cluster-config-file".to_owned(),
            dir.join(format!("nodes-{port}.conf")).display().to_string(),
            "--cluster-node-timeout".to_owned(),
            "2000".to_owned(),
        ]);
    }
    args.extend(extra.iter().cloned());
    args
}

/// Renders arguments for messages, quoting empty ones and ones with spaces.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts one redis-server process on `port` and waits until it answers PING
/// and reports our child's pid (so a foreign server on the port is never mistaken for ours).
fn launch(
    port: u16,
    cluster: bool,
    extra: &[String],
    dir: &Path,
    deadline: Instant,
) -> Result<Running, LaunchError> {
    let log_path = dir.join("redis.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| {
            LaunchError::Fatal(format!(
                "redis-test-server: cannot open log {}: {e}",
                log_path.display()
            ))
        })?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let stderr = log
        .try_clone()
        .map_err(|e| LaunchError::Fatal(format!("redis-test-server: cannot dup log fd: {e}")))?;
    let bin = server_bin();
    let args = server_args(port, cluster, extra, dir);
    let mut child = Command::new(&bin)
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .spawn()
        .map_err(|e| {
            LaunchError::Fatal(if e.kind() == io::ErrorKind::NotFound {
                format!(
                    "redis-test-server: `{bin}` not found in PATH: install it \
                     (`apt-get install -y redis-server`) or set REDIS_SERVER_BIN"
                )
            } else {
                format!("redis-test-server: cannot spawn `{bin}`: {e}")
            })
        })?;
    let pid = child.id();
    let mut watchdog = spawn_watchdog(pid, dir);
    let fail = |child: &mut Child, watchdog: &mut Option<Child>| {
        if let Some(w) = watchdog.as_mut() {
            kill_and_reap(w);
        }
        kill_and_reap(child);
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                fail(&mut child, &mut watchdog);
                let tail = log_tail(&log_path, log_start, LOG_TAIL_LINES);
                if tail.contains("Address already in use") {
                    return Err(LaunchError::PortInUse);
                }
                return Err(LaunchError::Fatal(format!(
                    "redis-test-server: `{bin} {}` exited early ({status}); log tail:\n{tail}",
                    shell_words(&args)
                )));
            }
            Ok(None) => {}
            Err(e) => {
                fail(&mut child, &mut watchdog);
                return Err(LaunchError::Fatal(format!(
                    "redis-test-server: cannot poll redis-server: {e}"
                )));
            }
        }
        if ping_port(port, Duration::from_millis(500)) && serves_pid(port, pid) {
            return Ok(Running { child, watchdog });
        }
        if Instant::now() >= deadline {
            fail(&mut child, &mut watchdog);
            return Err(LaunchError::Fatal(format!(
                "redis-test-server: redis-server on port {port} did not answer PING within {:?}; \
                 log tail:\n{}",
                STARTUP_TIMEOUT,
                log_tail(&log_path, log_start, LOG_TAIL_LINES)
            )));
        }
        thread::sleep(POLL);
    }
}

/// True if the server on `port` reports `process_id:pid` in `INFO server`.
fn serves_pid(port: u16, pid: u32) -> bool {
    let Ok(reply) = command_port(port, &["INFO", "server"], Duration::from_millis(500)) else {
        return false;
    };
    let needle = format!("process_id:{pid}");
    reply
        .as_text()
        .is_some_and(|info| info.lines().any(|l| l.trim() == needle))
}

/// A 3-master Redis cluster (no replicas) of real redis-server processes; killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts 3 cluster-enabled nodes, runs `redis-cli --cluster create` and
    /// waits until every node reports `cluster_state:ok` and all 16384 slots; panics on failure.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_node(true, &[])).collect();
        let cluster = RedisCluster { nodes };
        let out = Command::new(cli_bin())
            .args(["--cluster", "create"])
            .args(cluster.nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("redis-test-server: cannot run `{}`: {e}", cli_bin()));
        assert!(
            out.status.success(),
            "redis-test-server: `redis-cli --cluster create` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Err(msg) = cluster.wait_ready(STARTUP_TIMEOUT) {
            panic!("redis-test-server: cluster not ready within {STARTUP_TIMEOUT:?}: {msg}");
        }
        cluster
    }

    /// Waits until every node says `cluster_state:ok`, knows all nodes and
    /// sees all 16384 slots in `CLUSTER SLOTS`; `Err` describes the last problem seen.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let problem = self.nodes.iter().find_map(|n| self.node_problem(n));
            match problem {
                None => return Ok(()),
                Some(p) if Instant::now() >= deadline => return Err(p),
                Some(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Describes why `node` is not ready, or `None` if it is.
    fn node_problem(&self, node: &RedisServer) -> Option<String> {
        let t = Duration::from_millis(500);
        let port = node.port();
        let info = match command_port(port, &["CLUSTER", "INFO"], t) {
            Ok(r) => r.as_text().unwrap_or_default(),
            Err(e) => return Some(format!("node {port}: CLUSTER INFO failed: {e}")),
        };
        if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
            return Some(format!("node {port}: cluster_state is not ok:\n{info}"));
        }
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        if !info.lines().any(|l| l.trim() == known) {
            return Some(format!("node {port}: expected {known}:\n{info}"));
        }
        let covered = match command_port(port, &["CLUSTER", "SLOTS"], t) {
            Ok(Reply::Array(Some(ranges))) => ranges
                .iter()
                .map(|range| match range {
                    Reply::Array(Some(v)) => match (v.first(), v.get(1)) {
                        (Some(Reply::Int(a)), Some(Reply::Int(b))) => (b - a + 1) as u32,
                        _ => 0,
                    },
                    _ => 0,
                })
                .sum::<u32>(),
            Ok(other) => return Some(format!("node {port}: unexpected CLUSTER SLOTS {other:?}")),
            Err(e) => return Some(format!("node {port}: CLUSTER SLOTS failed: {e}")),
        };
        (covered != CLUSTER_SLOTS)
            .then(|| format!("node {port}: CLUSTER SLOTS covers {covered}/{CLUSTER_SLOTS} slots"))
    }

    /// The nodes (each supports pause/resume/kill/restart/cli).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i` (0..3).
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// `redis://127.0.0.1:P` for every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Client ports of every node.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Runs `redis-cli -c` (following redirects) against the first running node; returns trimmed stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("redis-test-server: no cluster node is running");
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        node.cli(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_parser_handles_nested_replies() {
        let raw = b"*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n$-1\r\n-ERR x\r\n";
        let reply = read_reply(&mut &raw[..]).unwrap();
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Int(1),
                Reply::Bulk(Some(b"foo".to_vec())),
                Reply::Array(Some(vec![Reply::Bulk(None), Reply::Error("ERR x".into())])),
            ]))
        );
    }

    #[test]
    fn watchdog_kills_server_when_its_pipe_closes() {
        let server = RedisServer::start();
        let pid = server.pid();
        {
            let mut state = lock(&server.state);
            let running = state.running.as_mut().unwrap();
            let watchdog = running.watchdog.as_mut().expect("watchdog spawned");
            // Simulate the test process dying: close the only write end.
            drop(watchdog.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(running.child.try_wait(), Ok(None)) {
                assert!(Instant::now() < deadline, "watchdog did not kill {pid}");
                thread::sleep(POLL);
            }
        }
        assert!(!process_alive(pid));
        // The watchdog also removed the temp dir.
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.dir().exists() {
            assert!(Instant::now() < deadline, "watchdog did not remove the dir");
            thread::sleep(POLL);
        }
    }

    #[test]
    fn taken_port_or_bus_port_is_reported_as_in_use() {
        let dir = make_temp_dir("redis-test-server-unit");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        // Client port taken by someone else.
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let res = launch(port, false, &[], &dir, deadline);
        assert!(matches!(res, Err(LaunchError::PortInUse)));
        // Cluster bus port taken by someone else.
        let port = reserve_port(true);
        let bus = TcpListener::bind((Ipv4Addr::LOCALHOST, bus_port(port))).unwrap();
        let res = launch(port, true, &[], &dir, deadline);
        assert!(matches!(res, Err(LaunchError::PortInUse)));
        drop(bus);
        release_port(port, true);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[should_panic(expected = "exited early")]
    fn bad_config_panics_with_log_tail() {
        RedisServer::start_with_args(&["--no-such-option", "1"]);
    }

    #[test]
    fn reserved_ports_are_unique_and_released() {
        let a = reserve_port(true);
        let b = reserve_port(true);
        assert_ne!(a, b);
        assert!(lock(&RESERVED_PORTS).contains(&bus_port(a)));
        release_port(a, true);
        release_port(b, true);
        assert!(!lock(&RESERVED_PORTS).contains(&a));
    }
}
