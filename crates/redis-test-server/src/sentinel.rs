//! [`RedisSentinel`]: a primary, its replica and real `redis-server --sentinel`
//! processes watching them, with a short failure detection so failovers happen in
//! seconds.

use super::*;

/// The configuration file a sentinel is started with, in its directory.
pub(crate) const SENTINEL_CONFIG: &str = "sentinel.conf";

/// The service name the sentinels monitor the primary under.
pub const SENTINEL_SERVICE: &str = "tidegate";

/// How long a sentinel waits before it calls an unanswering primary down.
pub const SENTINEL_DOWN_AFTER: Duration = Duration::from_millis(1000);

/// A primary, one replica (`replicaof` the primary) and 1–3 sentinels (quorum: a
/// majority) on free loopback ports; every process is killed on drop.
#[derive(Debug)]
pub struct RedisSentinel {
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// Starts the primary, its replica and `sentinels` sentinels, and waits until
    /// the replica is in sync and every sentinel knows the replica and the other
    /// sentinels (so a failover can happen); panics on failure.
    pub fn start(sentinels: usize) -> RedisSentinel {
        assert!(
            (1..=5).contains(&sentinels),
            "redis-test-server: 1 to 5 sentinels, not {sentinels}"
        );
        let primary = RedisServer::start();
        let port = primary.port().to_string();
        let replica = RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &port]);
        let quorum = sentinels / 2 + 1;
        let config = format!(
            "sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {port} {quorum}\n\
             sentinel down-after-milliseconds {SENTINEL_SERVICE} {}\n\
             sentinel failover-timeout {SENTINEL_SERVICE} 3000\n\
             sentinel parallel-syncs {SENTINEL_SERVICE} 1\n",
            SENTINEL_DOWN_AFTER.as_millis()
        );
        let group = RedisSentinel {
            nodes: vec![primary, replica],
            sentinels: (0..sentinels)
                .map(|_| {
                    // A sentinel rewrites (and fsyncs) its configuration in its main
                    // loop; on a busy disk that can stall it past 2 s, which puts it in
                    // TILT mode (no failover for 30 s). Memory-backed when available.
                    let shm = Path::new("/dev/shm");
                    let base = if shm.is_dir() {
                        shm.to_path_buf()
                    } else {
                        std::env::temp_dir()
                    };
                    let dir = make_temp_dir_in(&base, "redis-test-sentinel");
                    fs::write(dir.join(SENTINEL_CONFIG), &config).unwrap_or_else(|e| {
                        panic!("redis-test-server: cannot write the sentinel configuration: {e}")
                    });
                    RedisServer::start_in(dir, false, &["--sentinel"])
                })
                .collect(),
        };
        if let Err(msg) = group.wait_ready(STARTUP_TIMEOUT * 2) {
            panic!("redis-test-server: Sentinel group not ready: {msg}");
        }
        group
    }

    /// Waits until the replica is in sync and every sentinel sees one primary, one
    /// replica and the other sentinels.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let problem = self.problem();
            match problem {
                None => return Ok(()),
                Some(p) if Instant::now() >= deadline => return Err(p),
                Some(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn problem(&self) -> Option<String> {
        let t = Duration::from_millis(500);
        for node in &self.nodes {
            let info = command_port(node.port(), &["INFO", "replication"], t)
                .ok()
                .and_then(|r| r.as_text())
                .unwrap_or_default();
            if info.contains("role:slave") && !info.contains("master_link_status:up") {
                return Some(format!("replica {} not in sync:\n{info}", node.port()));
            }
        }
        for s in &self.sentinels {
            let reply = command_port(s.port(), &["SENTINEL", "MASTER", SENTINEL_SERVICE], t);
            let Ok(Reply::Array(Some(fields))) = reply else {
                return Some(format!(
                    "sentinel {}: SENTINEL MASTER gave {reply:?}",
                    s.port()
                ));
            };
            let fields: Vec<String> = fields.iter().filter_map(Reply::as_text).collect();
            let field = |name: &str| {
                fields
                    .iter()
                    .position(|f| f == name)
                    .and_then(|i| fields.get(i + 1))
                    .cloned()
                    .unwrap_or_default()
            };
            let others = (self.sentinels.len() - 1).to_string();
            if field("num-slaves") != "1" || field("num-other-sentinels") != others {
                return Some(format!(
                    "sentinel {}: sees {} replicas and {} other sentinels (want 1 and {others})",
                    s.port(),
                    field("num-slaves"),
                    field("num-other-sentinels")
                ));
            }
        }
        None
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2/tidegate`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(RedisServer::addr).collect();
        format!("redis+sentinel://{}/{SENTINEL_SERVICE}", hosts.join(","))
    }

    /// The two data nodes: 0 started as the primary, 1 as its replica (roles change
    /// with failovers).
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// The sentinels.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// The port the first answering sentinel names as the primary.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let reply = command_port(
                s.port(),
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE],
                Duration::from_millis(500),
            );
            match reply {
                Ok(Reply::Array(Some(v))) => v.get(1)?.as_text()?.parse().ok(),
                _ => None,
            }
        })
    }

    /// The data node the sentinels name as the primary.
    pub fn primary(&self) -> &RedisServer {
        let port = self
            .primary_port()
            .expect("redis-test-server: no sentinel named a primary");
        self.nodes
            .iter()
            .find(|n| n.port() == port)
            .expect("redis-test-server: the sentinels name an unknown primary")
    }

    /// The data node that is not [`primary`](Self::primary).
    pub fn replica(&self) -> &RedisServer {
        let primary = self.primary().port();
        self.nodes
            .iter()
            .find(|n| n.port() != primary)
            .expect("two nodes")
    }

    /// Waits until a sentinel names a primary other than `port` and that node says
    /// `role:master`; returns its port.
    pub fn wait_for_new_primary(&self, port: u16, timeout: Duration) -> Result<u16, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(new) = self.primary_port().filter(|p| *p != port) {
                let info = command_port(new, &["INFO", "replication"], Duration::from_millis(500))
                    .ok()
                    .and_then(|r| r.as_text())
                    .unwrap_or_default();
                if info.contains("role:master") {
                    return Ok(new);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no failover away from {port} within {timeout:?}; sentinel log:\n{}",
                    self.sentinels[0].log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}
