//! [`RedisCluster`]: three real redis-server masters joined into a cluster.

use super::*;

/// A 3-master Redis cluster of real redis-server processes, without replicas or with
/// one per master; killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    replicas: usize,
}

impl RedisCluster {
    /// Starts 3 cluster-enabled nodes, runs `redis-cli --cluster create` and
    /// waits until every node reports `cluster_state:ok` and all 16384 slots; panics on failure.
    pub fn start() -> RedisCluster {
        Self::start_masters_with(0)
    }

    /// Like [`start`](Self::start) with one replica per master (6 nodes: 0–2 start as
    /// masters, 3–5 as their replicas), waiting until every replica is in sync, so a
    /// killed master fails over to its replica (after `cluster-node-timeout`, 2 s).
    pub fn start_with_replicas() -> RedisCluster {
        Self::start_masters_with(1)
    }

    fn start_masters_with(replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| RedisServer::start_node(true, &[]))
            .collect();
        let cluster = RedisCluster { nodes, replicas };
        let out = Command::new(cli_bin())
            .args(["--cluster", "create"])
            .args(cluster.nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
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
        if covered != CLUSTER_SLOTS {
            return Some(format!(
                "node {port}: CLUSTER SLOTS covers {covered}/{CLUSTER_SLOTS} slots"
            ));
        }
        let replication = command_port(port, &["INFO", "replication"], t)
            .ok()
            .and_then(|r| r.as_text())
            .unwrap_or_default();
        if replication.contains("role:slave") && !replication.contains("master_link_status:up") {
            return Some(format!("replica {port} not in sync:\n{replication}"));
        }
        if replication.contains("role:master")
            && self.replicas > 0
            && !replication.contains("connected_slaves:1")
        {
            return Some(format!("master {port} has no replica in sync yet"));
        }
        None
    }

    /// The node that is master of the slot of `key`, as `CLUSTER SLOTS` on a running
    /// node says.
    pub fn master_of(&self, key: &str) -> &RedisServer {
        let node = self
            .nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        let t = Duration::from_millis(500);
        let slot = match command_port(node.port(), &["CLUSTER", "KEYSLOT", key], t) {
            Ok(Reply::Int(s)) => s,
            other => panic!("redis-test-server: CLUSTER KEYSLOT gave {other:?}"),
        };
        let Ok(Reply::Array(Some(ranges))) = command_port(node.port(), &["CLUSTER", "SLOTS"], t)
        else {
            panic!("redis-test-server: CLUSTER SLOTS failed");
        };
        for range in ranges {
            let Reply::Array(Some(v)) = range else {
                continue;
            };
            let (Some(Reply::Int(a)), Some(Reply::Int(b)), Some(Reply::Array(Some(m)))) =
                (v.first(), v.get(1), v.get(2))
            else {
                continue;
            };
            if (*a..=*b).contains(&slot) {
                let port = match m.get(1) {
                    Some(Reply::Int(p)) => *p as u16,
                    other => panic!("redis-test-server: unexpected CLUSTER SLOTS entry {other:?}"),
                };
                return self
                    .nodes
                    .iter()
                    .find(|n| n.port() == port)
                    .expect("the master is one of the nodes");
            }
        }
        panic!("redis-test-server: no master for slot {slot}");
    }

    /// Waits until a running node other than `port` is master of `key`'s slot and
    /// every running node agrees (`cluster_state:ok`); returns its port.
    pub fn wait_for_failover(
        &self,
        key: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<u16, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                command_port(n.port(), &["CLUSTER", "INFO"], Duration::from_millis(500))
                    .ok()
                    .and_then(|r| r.as_text())
                    .is_some_and(|i| i.lines().any(|l| l.trim() == "cluster_state:ok"))
            });
            if ok {
                let master = self.master_of(key).port();
                if master != port {
                    return Ok(master);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no failover away from {port} within {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The nodes (each supports pause/resume/kill/restart/cli).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i` (0..3, or 0..6 with replicas).
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
