//! [`RedisServer`]: one real redis-server child process on a loopback port.

use super::*;

/// Why a launch attempt failed.
pub(crate) enum LaunchError {
    /// redis-server exited because the port (or bus port) was taken.
    PortInUse,
    /// Anything else: the message explains it.
    Fatal(String),
}

/// Processes of one running redis-server incarnation.
pub(crate) struct Running {
    pub(crate) child: Child,
    /// Killed (SIGKILL, never EOF) before the server so it never removes the dir.
    pub(crate) watchdog: Option<Child>,
}

pub(crate) struct State {
    pub(crate) running: Option<Running>,
    pub(crate) pid: u32,
}

/// A real `redis-server` child process on a loopback port; killed on drop.
pub struct RedisServer {
    pub(crate) port: u16,
    pub(crate) cluster: bool,
    pub(crate) extra_args: Vec<String>,
    pub(crate) dir: PathBuf,
    pub(crate) state: Mutex<State>,
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

    pub(crate) fn start_node(cluster: bool, extra_args: &[&str]) -> RedisServer {
        Self::start_in(make_temp_dir("redis-test-server"), cluster, extra_args)
    }

    /// Starts a node whose working directory `dir` already exists (and may hold its
    /// configuration file, as a sentinel's does).
    pub(crate) fn start_in(dir: PathBuf, cluster: bool, extra_args: &[&str]) -> RedisServer {
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

pub(crate) fn run_cli(port: u16, args: &[&str]) -> String {
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

pub(crate) fn server_args(port: u16, cluster: bool, extra: &[String], dir: &Path) -> Vec<String> {
    // A sentinel reads (and rewrites) its configuration file, named first.
    let config = extra
        .iter()
        .any(|a| a == "--sentinel")
        .then(|| dir.join(SENTINEL_CONFIG).display().to_string());
    let mut args: Vec<String> = config.into_iter().collect();
    args.extend(
        [
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
        .map(|s| (*s).to_owned()),
    );
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
pub(crate) fn shell_words(args: &[String]) -> String {
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
pub(crate) fn launch(
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
pub(crate) fn serves_pid(port: u16, pid: u32) -> bool {
    let Ok(reply) = command_port(port, &["INFO", "server"], Duration::from_millis(500)) else {
        return false;
    };
    let needle = format!("process_id:{pid}");
    reply
        .as_text()
        .is_some_and(|info| info.lines().any(|l| l.trim() == needle))
}
