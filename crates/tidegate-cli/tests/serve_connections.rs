//! Connection abuse against `tidegate serve`: a slowloris client and 10 000 idle
//! connections held at once must not keep a normal client from being served, and a
//! body dribbled in byte by byte is cut at `server.body_timeout` however steadily it
//! comes. The figures print with `--nocapture`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::serve::{Server, TempDir};

/// Connections the test holds idle (fewer if the hard open-file limit is lower).
const IDLE: usize = 10_000;
/// Slowloris connections, each sending one header byte at a time.
const SLOW: usize = 200;

/// Raises this process's soft open-file limit to `want` (at most the hard limit) with
/// `prlimit`, so that it and the server it starts can hold the connections; the limit
/// reached.
fn raise_open_file_limit(want: u64) -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line.split_whitespace().skip(3);
    let soft: u64 = fields.next().unwrap().parse().unwrap();
    let hard: u64 = fields
        .next()
        .unwrap()
        .parse()
        .unwrap_or(u64::MAX /* unlimited */);
    let target = want.min(hard);
    if soft >= target {
        return soft;
    }
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={target}:"))
        .status()
        .expect("prlimit (util-linux) raises the open-file limit");
    assert!(status.success(), "prlimit --nofile={target}: {status:?}");
    target
}

/// The value of metric `name` (no labels).
fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get("/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Waits until the server holds at least `n` connections (besides the one asking).
fn wait_for_open(server: &Server, n: usize, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let open = metric(server, "tidegate_connections_open");
        if open >= n as f64 {
            return open;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections open after {within:?}, {n} held"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slowloris_and_ten_thousand_idle_connections_do_not_keep_a_normal_client_waiting() {
    let limit = raise_open_file_limit(IDLE as u64 + SLOW as u64 + 1_000);
    let idle = IDLE.min((limit as usize).saturating_sub(SLOW + 600));
    if idle < IDLE {
        eprintln!("open-file limit {limit}: holding {idle} idle connections, not {IDLE}");
    }
    let dir = TempDir::new();
    // Long enough header timeout to hold them all while the normal client is measured.
    let server = Server::with_config(
        &dir,
        &format!(
            "[server]\nmax_connections = {}\nheader_timeout = \"60s\"\n\n\
             [policies]\napi = \"fixed_window:1000000/1h\"\n",
            IDLE + SLOW + 100
        ),
    );
    let start = Instant::now();
    let mut held = Vec::with_capacity(idle);
    for i in 0..idle {
        let s = TcpStream::connect(&server.addr)
            .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", server.log()));
        held.push(s);
    }
    // The slowloris: one byte of a header every 100 ms on each connection.
    let stop = Arc::new(AtomicBool::new(false));
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    let dribbler = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut slow = slow;
            for byte in request.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for s in &mut slow {
                    let _ = s.write_all(&[*byte]);
                }
                thread::sleep(Duration::from_millis(100));
            }
            slow
        })
    };
    // Opened back to back: the listen backlog must hold the burst (with a short one,
    // the kernel drops handshakes the clients retry only seconds later).
    let open = wait_for_open(&server, idle + SLOW, Duration::from_secs(20));
    let accepted_in = start.elapsed();
    assert!(
        accepted_in < Duration::from_secs(20),
        "{} connections took {accepted_in:?} to be accepted",
        idle + SLOW
    );
    // A normal client, on fresh connections, while all of them are held.
    let mut times = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        let r = server.post(
            "/v1/check",
            &serde_json::json!({"policy": "api", "key": format!("normal-{i}")}),
        );
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{r:?}");
        times.push(took);
    }
    times.sort_unstable();
    let (median, worst) = (times[times.len() / 2], times[times.len() - 1]);
    println!(
        "held {idle} idle + {SLOW} slowloris connections (all accepted \
         after {accepted_in:?}: {open} open by tidegate_connections_open); a normal client's 50 checks on fresh connections: \
         median {median:?}, slowest {worst:?}"
    );
    assert!(
        worst < Duration::from_secs(2),
        "a normal request took {worst:?} (median {median:?})"
    );
    stop.store(true, Ordering::Relaxed);
    let slow = dribbler.join().unwrap();
    drop(held);
    drop(slow);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn a_slowloris_connection_is_closed_at_the_header_timeout_however_steadily_it_sends() {
    let dir = TempDir::new();
    let server = Server::with_config(
        &dir,
        "[server]\nheader_timeout = \"1s\"\n\n[policies]\napi = \"fixed_window:3/1h\"\n",
    );
    let mut s = server.connect();
    let start = Instant::now();
    let mut closed_after = None;
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .chain([b'a'; 200].iter())
    {
        if s.write_all(&[*byte]).is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let closed_after = closed_after.unwrap_or_else(|| start.elapsed());
    println!("a header dribbled at 20 bytes/s: the connection was closed after {closed_after:?}");
    // Closed at about 1 s, not after the 12 s the dribble would take.
    assert!(
        closed_after < Duration::from_secs(4),
        "closed after {closed_after:?}"
    );
}

#[test]
fn a_body_dribbled_byte_by_byte_is_cut_at_the_body_timeout_with_a_408() {
    let dir = TempDir::new();
    let server = Server::with_config(
        &dir,
        "[server]\nbody_timeout = \"1s\"\n\n[policies]\napi = \"fixed_window:3/1h\"\n",
    );
    let body = br#"{"policy": "api", "key": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;
    let mut s = server.connect();
    s.write_all(
        format!(
            "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let start = Instant::now();
    let reader = {
        let mut r = s.try_clone().unwrap();
        thread::spawn(move || {
            let mut out = Vec::new();
            let _ = r.read_to_end(&mut out);
            (String::from_utf8_lossy(&out).to_string(), start.elapsed())
        })
    };
    // One byte every 50 ms: each well within the timeout, the whole body (~4 s) not.
    for byte in body {
        if s.write_all(&[*byte]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let (answer, took) = reader.join().unwrap();
    println!(
        "a body dribbled at 20 bytes/s was answered after {took:?}: {}",
        answer.lines().next().unwrap_or("")
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        (Duration::from_millis(900)..Duration::from_millis(2_500)).contains(&took),
        "answered after {took:?}"
    );
    let r = common::serve::parse_response(&answer).unwrap();
    assert_eq!(
        r.message(),
        "the request body did not arrive within 1s (server.body_timeout)"
    );
}
