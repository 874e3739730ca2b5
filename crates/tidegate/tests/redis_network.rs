//! The Redis store over an impaired network: redis-server runs in a network namespace
//! of its own, reached over a veth pair (10.200.N.1/30 here, 10.200.N.2/30 there).
//! Packet loss and a silent drop (no RST) are iptables rules inside that namespace
//! (`-m statistic --mode random --probability 0.3 -j DROP`, `-j DROP`); added latency
//! is a relay in this process that holds every chunk 200 ms each way (used because
//! `tc qdisc ... netem` needs the kernel's `sch_netem`, which not every kernel has).
//! Every decision answers within the timeout, the circuit opens and closes after the
//! network heals, and the queue and the tracker lose no job and no batch across a cut.
//!
//! Needs root and `ip` (iproute2) and `iptables`: without them each test prints why it
//! is skipped and passes.
#![cfg(all(feature = "queue", feature = "tracker"))]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::redis::{runtime, unique};
use support::worker::{counting_worker, drained_and_none_lost};

use serde_json::{Value, json};
use tidegate::PolicySet;
use tidegate::queue::{Job, QueueOptions, WorkQueue};
use tidegate::store::redis::{RedisLimiter, RedisOptions, RedisStore};
use tidegate::store::{FailurePolicy, LimitStore};
use tidegate::tracker::{EventTracker, TrackerStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream as AsyncTcpStream};

const REDIS_PORT: u16 = 6379;
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A network namespace holding one redis-server, and the veth pair to it; removed
/// (with the server) on drop.
struct Isolated {
    ns: String,
    ip: Ipv4Addr,
    redis: Child,
    dir: std::path::PathBuf,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Isolated {
    /// Sets the namespace up, or says why it cannot (then the test is skipped): not
    /// root, no `ip` or `iptables`, or no network namespaces. Past that, a failure
    /// fails the test.
    fn start(test: &str) -> Option<Isolated> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = format!("tgnet{}-{n}", std::process::id());
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let available = if !root {
            Err("not root".to_string())
        } else if Command::new("iptables").arg("-V").output().is_err() {
            Err("no iptables".to_string())
        } else {
            run(&["ip", "netns", "add", &ns])
        };
        if let Err(why) = available {
            println!(
                "SKIPPED {test}: cannot put Redis in a network namespace ({why}); this test \
                 needs root, iproute2 (`ip`) and iptables"
            );
            return None;
        }
        Some(Self::start_in(ns, n).unwrap_or_else(|e| panic!("{test}: {e}")))
    }

    fn start_in(ns: String, n: u64) -> Result<Isolated, String> {
        let pid = std::process::id();
        let (host_if, ns_if) = (
            format!("tgh{}{n}", pid % 100_000),
            format!("tgr{}{n}", pid % 100_000),
        );
        // A /30 that no interface here uses yet.
        let used = Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .map_err(|e| format!("`ip`: {e}"))?;
        let used = String::from_utf8_lossy(&used.stdout).into_owned();
        let subnet = (0..250u32)
            .map(|i| ((pid + n as u32 * 7 + i) % 250 + 1) as u8)
            .find(|s| !used.contains(&format!("10.200.{s}.")))
            .ok_or("no free 10.200.N.0/30")?;
        let (host_ip, ns_ip) = (
            format!("10.200.{subnet}.1/30"),
            format!("10.200.{subnet}.2/30"),
        );
        let mut net = Isolated {
            ns: ns.clone(),
            ip: Ipv4Addr::new(10, 200, subnet, 2),
            redis: Command::new("true").spawn().map_err(|e| e.to_string())?,
            dir: std::env::temp_dir().join(format!("tidegate-netns-{pid}-{n}")),
        };
        let exec = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", &ns];
            all.extend_from_slice(args);
            run(&all)
        };
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        run(&["ip", "link", "set", &ns_if, "netns", &ns])?;
        run(&["ip", "addr", "add", &host_ip, "dev", &host_if])?;
        run(&["ip", "link", "set", &host_if, "up"])?;
        exec(&["ip", "addr", "add", &ns_ip, "dev", &ns_if])?;
        exec(&["ip", "link", "set", &ns_if, "up"])?;
        exec(&["ip", "link", "set", "lo", "up"])?;
        exec(&["iptables", "-L", "-n"])?;
        std::fs::create_dir_all(&net.dir).map_err(|e| e.to_string())?;
        let _ = net.redis.wait();
        let bind = net.ip.to_string();
        net.redis = Command::new("ip")
            .args(["netns", "exec", &ns, "redis-server", "--port"])
            .arg(REDIS_PORT.to_string())
            // Reached over a private veth, not loopback: protected mode would refuse it.
            .args([
                "--bind",
                &bind,
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(&net.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !net.pings(Duration::from_millis(300)) {
            if Instant::now() > deadline {
                return Err("redis-server in the namespace did not answer PING".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(net)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, REDIS_PORT))
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    fn pings(&self, timeout: Duration) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), timeout) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(timeout));
        let mut line = String::new();
        s.write_all(b"PING\r\n").is_ok()
            && BufReader::new(s).read_line(&mut line).is_ok()
            && line.starts_with("+PONG")
    }

    fn iptables(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.ns, "iptables"];
        all.extend_from_slice(args);
        run(&all).unwrap();
    }

    /// Drops `percent` % of the packets each way (random, silent).
    fn lose(&self, percent: u32) {
        let p = format!("{:.2}", f64::from(percent) / 100.0);
        for chain in ["INPUT", "OUTPUT"] {
            self.iptables(&[
                "-A",
                chain,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ]);
        }
    }

    /// Drops every packet each way, silently (no RST, no ICMP).
    fn cut(&self) {
        for chain in ["INPUT", "OUTPUT"] {
            self.iptables(&["-I", chain, "-j", "DROP"]);
        }
    }

    /// Removes every rule: the network is healthy again.
    fn heal(&self) {
        for chain in ["INPUT", "OUTPUT"] {
            self.iptables(&["-F", chain]);
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let _ = self.redis.kill();
        let _ = self.redis.wait();
        let _ = run(&["ip", "netns", "del", &self.ns]); // and the veth pair with it
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A relay on 127.0.0.1 to `to` that holds every chunk `delay` in each direction.
async fn slow_relay(to: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = AsyncTcpStream::connect(to).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(delayed_pump(cr, sw, delay));
            tokio::spawn(delayed_pump(sr, cw, delay));
        }
    });
    addr
}

async fn delayed_pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (send, mut chunks) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((at, bytes)) = chunks.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0
            || send
                .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
        {
            return;
        }
    }
}

fn options(timeout: Duration) -> RedisOptions {
    RedisOptions::default()
        .with_timeout(timeout)
        .with_connect_timeout(Duration::from_millis(500))
        .with_breaker_threshold(3)
        .with_breaker_cooldown(Duration::from_millis(200))
}

/// Scheduling slack on a loaded machine on top of the timeout.
const SLACK: Duration = Duration::from_millis(450);

fn generous(store: &RedisStore) -> RedisLimiter {
    let policies: PolicySet = "fixed_window:1000000/1h".parse().unwrap();
    store
        .limiter(&unique("net"), policies)
        .on_error(FailurePolicy::FailClosed)
        .build()
        .unwrap()
}

/// `calls` decisions, each within `timeout + SLACK`; how many Redis answered (an
/// admit: the limit is never reached) and the slowest.
async fn decide_many(limiter: &RedisLimiter, calls: u32, timeout: Duration) -> (u32, Duration) {
    let (mut answered, mut slowest) = (0, Duration::ZERO);
    for i in 0..calls {
        let start = Instant::now();
        let d = limiter
            .acquire(&format!("k{}", i % 7), 1, None)
            .await
            .unwrap();
        let took = start.elapsed();
        assert!(took < timeout + SLACK, "decision {i} took {took:?}");
        answered += u32::from(d.allowed);
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (answered, slowest)
}

/// Decides until Redis answers again; the time it took.
async fn until_answered(limiter: &RedisLimiter, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if limiter.acquire("heal", 1, None).await.unwrap().allowed {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "Redis not used again {within:?} after healing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn decisions_answer_within_the_timeout_through_loss_and_a_silent_drop_and_the_circuit_closes_after()
{
    let Some(net) = Isolated::start("loss_and_silent_drop") else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let timeout = Duration::from_millis(50);
        let store = RedisStore::connect(&[net.url()], options(timeout))
            .await
            .unwrap();
        let limiter = generous(&store);
        let (answered, _) = decide_many(&limiter, 20, timeout).await;
        assert_eq!(answered, 20, "a healthy network: Redis decides");

        net.lose(30);
        let (answered, slowest) = decide_many(&limiter, 100, timeout).await;
        println!(
            "30% loss each way: {answered}/100 decisions answered by Redis, the rest by \
             fail_closed; slowest {} ms (timeout 50 ms)",
            slowest.as_millis()
        );
        net.heal();
        until_answered(&limiter, Duration::from_secs(10)).await;

        let opened = store.stats().circuit_opened;
        net.cut();
        let (answered, slowest) = decide_many(&limiter, 60, timeout).await;
        assert_eq!(answered, 0, "nothing crosses a silent drop");
        let stats = store.stats();
        assert!(
            stats.circuit_opened > opened && stats.refused > 0,
            "{stats:?}"
        );
        println!(
            "silent drop: 60/60 decisions by fail_closed, slowest {} ms; circuit opened, {} calls \
             refused without waiting",
            slowest.as_millis(),
            stats.refused
        );
        net.heal();
        let healed = until_answered(&limiter, Duration::from_secs(15)).await;
        assert!(!store.stats().circuit_open, "the circuit closed");
        println!(
            "healed: Redis decides again {} ms after the drop rule was removed",
            healed.as_millis()
        );
    });
}

#[test]
fn decisions_answer_within_the_timeout_over_200_ms_of_added_latency() {
    let Some(net) = Isolated::start("latency") else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let relay = slow_relay(net.addr(), Duration::from_millis(200)).await;
        let url = format!("redis://{relay}");
        // Connecting itself crosses the relay: open, not connect, with the short timeout.
        let short = Duration::from_millis(50);
        let store = RedisStore::open(std::slice::from_ref(&url), options(short))
            .await
            .unwrap();
        let limiter = generous(&store);
        let (answered, slowest) = decide_many(&limiter, 30, short).await;
        assert_eq!(answered, 0, "a 400 ms round trip never fits in 50 ms");
        assert!(store.stats().circuit_opened >= 1);
        println!(
            "200 ms each way, timeout 50 ms: 30/30 decisions by fail_closed, slowest {} ms",
            slowest.as_millis()
        );
        // With a timeout above the round trip, Redis decides, slowly.
        let long = Duration::from_millis(1500);
        let store = RedisStore::connect(&[url], options(long)).await.unwrap();
        let limiter = generous(&store);
        let (answered, slowest) = decide_many(&limiter, 5, long).await;
        assert_eq!(answered, 5);
        assert!(
            slowest >= Duration::from_millis(400),
            "the relay delays: {slowest:?}"
        );
        println!(
            "200 ms each way, timeout 1.5 s: 5/5 decisions by Redis, slowest {} ms",
            slowest.as_millis()
        );
    });
}

#[test]
fn the_queue_and_the_tracker_lose_no_job_and_no_batch_across_a_silent_cut() {
    let Some(net) = Isolated::start("queue_and_tracker_cut") else {
        return;
    };
    let net = Arc::new(net);
    let rt = runtime();
    rt.block_on(async {
        let store = RedisStore::connect(&[net.url()], options(Duration::from_millis(200)))
            .await
            .unwrap();

        // The queue: 60 jobs, a cut of 3 s while a worker runs them, 20 more pushed
        // during the cut (retried by the producer until acknowledged).
        let q = WorkQueue::open(store.clone(), &unique("cutq"), QueueOptions::default()).unwrap();
        let jobs: Vec<Job> = (0..60).map(|i| Job::new(json!({ "n": i }))).collect();
        q.push_many(&jobs).await.unwrap();
        let (worker, seen) = counting_worker(&q, 4, Duration::from_millis(30));
        while seen.lock().unwrap().len() < 15 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        net.cut();
        let cut_at = Instant::now();
        let mut push_errors = 0;
        for i in 60..80 {
            while q.push(Job::new(json!({ "n": i }))).await.is_err() {
                push_errors += 1;
                if cut_at.elapsed() > Duration::from_secs(3) {
                    net.heal();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        net.heal();
        let twice = drained_and_none_lost(&q, worker, &seen, 80, "across the cut").await;
        println!(
            "queue across a 3 s silent cut: 80/80 jobs ran ({twice} more than once: their \
             leases ran out during the cut, so they were claimed again); {push_errors} push \
             attempts failed during the cut and were retried"
        );

        // The tracker: 90 deferred events; the first delivery cuts the network before its
        // settle can reach Redis, so that batch stays leased and is delivered again.
        let delivered: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
        let d = Arc::clone(&delivered);
        let n2 = Arc::clone(&net);
        let tracker = EventTracker::builder()
            .manual_ticks()
            .store(TrackerStore::redis(store.clone(), unique("cutt")))
            .limit(1)
            .defer_interval(Duration::from_millis(100))
            .processing_interval(Duration::from_millis(50))
            .lease(Duration::from_secs(1))
            .processor(move |batch| {
                let d = Arc::clone(&d);
                let net = Arc::clone(&n2);
                async move {
                    let first = d.lock().unwrap().is_empty();
                    d.lock()
                        .unwrap()
                        .extend(batch.into_iter().map(|r| (r.id.clone(), r.count)));
                    if first {
                        net.cut();
                    }
                    Ok::<_, String>(())
                }
            })
            .build()
            .unwrap();
        let mut deferred = 0;
        for i in 0..100u64 {
            let o = tracker
                .track_event_at("login", &format!("u{}", i % 10), Value::Null, i * 1_000)
                .await
                .unwrap();
            deferred += u64::from(o.kind() == "deferred");
        }
        assert_eq!(deferred, 90);
        let ms = 1_000u64;
        let mut t = 200 * ms;
        tracker.tick_at(t).await; // delivers the first batch, whose processor cuts
        tokio::time::sleep(Duration::from_secs(1)).await;
        t += 100 * ms;
        tracker.tick_at(t).await; // fails: the network is cut
        net.heal();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            t += 500 * ms;
            tracker.tick_at(t).await;
            if matches!(tracker.next_due_micros().await, Ok(None)) {
                break;
            }
            assert!(Instant::now() < deadline, "batches still due after the cut");
        }
        let delivered = delivered.lock().unwrap().clone();
        let mut per_id: BTreeMap<String, u64> = BTreeMap::new();
        for (id, count) in &delivered {
            *per_id.entry(id.clone()).or_default() += count;
        }
        let total: u64 = per_id.values().sum();
        assert!(
            per_id.len() == 10 && per_id.values().all(|&c| c >= 9),
            "a deferred event was lost: {per_id:?}"
        );
        println!(
            "tracker across a silent cut (the first delivery's settle sent into the cut): \
             {total} deferred events delivered for 90 deferred ({} more than once), in {} \
             records' batches",
            total - 90,
            delivered.len()
        );
        tracker.clear().await.unwrap();
    });
}
