//! [`RedisCluster`]: three real redis-server masters joined into a cluster.

use super::*;

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
