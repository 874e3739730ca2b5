//! Test harness that runs REAL `redis-server` processes (a single node, a 3-master
//! cluster with or without replicas, a primary and replica watched by sentinels) on
//! free loopback ports and stops them on drop.
//!
//! ```no_run
//! use redis_test_server::{RedisCluster, RedisSentinel, RedisServer};
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
//!
//! let group = RedisSentinel::start(3); // a primary, its replica, 3 sentinels
//! let url = group.url(); // redis+sentinel://127.0.0.1:P1,.../tidegate
//! group.primary().kill();
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

mod cluster;
mod ports;
mod process;
mod resp;
mod sentinel;
mod server;

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

pub use cluster::RedisCluster;
pub use process::process_alive;
pub use resp::{Reply, command_port, ping_port};
pub use sentinel::{RedisSentinel, SENTINEL_DOWN_AFTER, SENTINEL_SERVICE};
pub use server::RedisServer;
#[allow(unused_imports)]
use {ports::*, process::*, resp::*, sentinel::*, server::*};

/// How long a server (or a cluster) may take to become ready before we panic.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeout used by [`RedisServer::command`] for connecting, reading and writing.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Number of hash slots a Redis cluster must cover.
pub const CLUSTER_SLOTS: u32 = 16384;

/// Offset of the cluster bus port from the client port.
pub(crate) const CLUSTER_BUS_OFFSET: u16 = 10000;
/// How many fresh ports we try when redis-server reports "Address already in use".
pub(crate) const MAX_PORT_ATTEMPTS: usize = 10;
/// Poll interval while waiting for readiness.
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// Number of log lines included in panic messages.
pub(crate) const LOG_TAIL_LINES: usize = 25;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

pub(crate) fn cli_bin() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_owned())
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
