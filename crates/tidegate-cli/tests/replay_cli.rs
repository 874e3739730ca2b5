//! `tidegate replay` as a user runs it: the binary, the shipped example, bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

mod common;

/// `tidegate ARGS` run from the repository root with `stdin`, to completion.
fn tidegate(args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidegate"));
    cmd.args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    common::spawn_with_stdin(&mut cmd, stdin)
        .wait_with_output()
        .unwrap()
}

#[test]
fn replay_of_the_shipped_example_prints_a_decision_per_line_and_a_summary() {
    let out = tidegate(
        &[
            "replay",
            "--policy",
            "fixed_window:3/10s",
            "--input",
            "examples/traffic.jsonl",
        ],
        "",
    );
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let input = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/traffic.jsonl"
    ))
    .unwrap();
    assert_eq!(stdout.lines().count(), input.lines().count());
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["allowed"], true);
    assert_eq!(first["limit"], 3);
    assert!(stdout.contains(r#""allowed":false"#));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("replayed 25 events for 3 keys with fixed_window:3/10s"),
        "{stderr}"
    );
}

#[test]
fn replay_reads_stdin_and_matches_the_python_throttler_example() {
    let input = [
        (1, "A"),
        (5, "A"),
        (12, "A"),
        (15, "B"),
        (20, "B"),
        (25, "B"),
    ]
    .iter()
    .map(|(s, k)| format!("{{\"t_ms\":{},\"key\":\"{k}\"}}\n", s * 1000))
    .collect::<String>();
    let out = tidegate(&["replay", "--policy", "throttle:10s"], &input);
    assert!(out.status.success());
    let allowed: Vec<bool> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["allowed"]
                .as_bool()
                .unwrap()
        })
        .collect();
    assert_eq!(allowed, [true, false, true, true, false, true]);
}

#[test]
fn replay_reports_a_bad_line_with_its_number_and_fails() {
    let out = tidegate(
        &["replay", "--policy", "gcra:5/1s"],
        "{\"t_ms\":0,\"key\":\"a\"}\nnot json\n{\"t_ms\":2,\"key\":\"a\"}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("line 2: not a valid event"), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
}

#[test]
fn replay_rejects_an_invalid_policy_naming_the_field() {
    let out = tidegate(&["replay", "--policy", "token_buckets:5/1s"], "");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("`algorithm` unknown algorithm `token_buckets`; valid: fixed_window"),
        "{stderr}"
    );
}

#[test]
fn replay_through_redis_matches_memory_line_by_line() {
    let server = redis_test_server::RedisServer::start();
    let cluster = redis_test_server::RedisCluster::start();
    let cluster_urls = cluster.urls().join(",");
    for policy in [
        "fixed_window:3/10s",
        "sliding_window:3/10s",
        "sliding_log:3/10s",
        "token_bucket:5/1m,burst=2",
        "leaky_bucket:2/1s",
        "gcra:3/7s",
        "gcra:2/1s;fixed_window:6/1m",
    ] {
        let args = |store: &str| {
            vec![
                "replay".to_string(),
                "--policy".into(),
                policy.into(),
                "--input".into(),
                "examples/traffic.jsonl".into(),
                "--store".into(),
                store.into(),
            ]
        };
        let run = |store: &str| {
            let a = args(store);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let out = tidegate(&a, "");
            assert!(
                out.status.success(),
                "{store}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let memory = run("memory");
        assert_eq!(run(&server.url()), memory, "{policy} single node");
        assert_eq!(run(&cluster_urls), memory, "{policy} cluster");
    }
    assert_eq!(server.cli(&["DBSIZE"]), "0", "the replay deletes its keys");
}

/// Quotas as API providers write them: each replay gives the exact figures of rational
/// arithmetic, and the same lines in memory, on one Redis and on a cluster.
#[test]
fn replay_of_large_quotas_is_exact_and_identical_in_memory_and_redis() {
    let server = redis_test_server::RedisServer::start();
    let cluster = redis_test_server::RedisCluster::start();
    let cluster_urls = cluster.urls().join(",");
    const T: u64 = 1_764_000_000_000; // ms: today's Unix time
    const H: u64 = 3_600_000;
    const D: u64 = 24 * H;
    // (policy, events (t_ms, cost), the expected (allowed, remaining, retry_after_ms)).
    type Case = (&'static str, Vec<(u64, u64)>, Vec<(bool, u64, Option<u64>)>);
    let cases: Vec<Case> = vec![
        (
            "fixed_window:1000000/1d",
            vec![(T, 1_000_000), (T + 1_000, 1), (T + D, 1)],
            vec![
                (true, 0, None),
                (false, 0, Some(D - 1_000)),
                (true, 999_999, None),
            ],
        ),
        (
            // One token every 259.2 ms.
            "token_bucket:10000000/30d",
            vec![(T, 10_000_000), (T, 1), (T + 259, 1), (T + 260, 1)],
            vec![
                (true, 0, None),
                (false, 0, Some(260)),
                (false, 0, Some(1)),
                (true, 0, None),
            ],
        ),
        (
            // One every 10.512 ms, a million at once.
            "gcra:3000000000/365d,burst=1000000",
            vec![(T, 1_000_000), (T, 1), (T + 10, 1), (T + 11, 1)],
            vec![
                (true, 0, None),
                (false, 0, Some(11)),
                (false, 0, Some(1)),
                (true, 0, None),
            ],
        ),
        (
            // A window later the previous window still weighs 5 000 000; 1 ms on it
            // weighs ⌊5e6 × (3.6e9 - 1000) / 3.6e9⌋ = 4 999 998 (a 1.8e16 product).
            "sliding_window:5000000/1h",
            vec![(T, 5_000_000), (T + H, 1), (T + H + 1, 1)],
            vec![(true, 0, None), (false, 0, Some(1)), (true, 1, None)],
        ),
        (
            "sliding_log:1000000/1d",
            vec![
                (T, 600_000),
                (T + 1_000, 400_000),
                (T + 2_000, 1),
                (T + D, 500_000),
            ],
            vec![
                (true, 400_000, None),
                (true, 0, None),
                (false, 0, Some(D - 2_000)),
                (true, 100_000, None),
            ],
        ),
    ];
    for (policy, events, expected) in cases {
        let input: String = events
            .iter()
            .map(|(t, cost)| format!("{{\"t_ms\":{t},\"key\":\"api-key\",\"cost\":{cost}}}\n"))
            .collect();
        let run = |store: &str| {
            let out = tidegate(&["replay", "--policy", policy, "--store", store], &input);
            assert!(
                out.status.success(),
                "{policy} on {store}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let memory = run("memory");
        let got: Vec<(bool, u64, Option<u64>)> = memory
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                (
                    v["allowed"].as_bool().unwrap(),
                    v["remaining"].as_u64().unwrap(),
                    v["retry_after_ms"].as_u64(),
                )
            })
            .collect();
        assert_eq!(got, expected, "{policy}");
        assert_eq!(run(&server.url()), memory, "{policy} single node");
        assert_eq!(run(&cluster_urls), memory, "{policy} cluster");
    }
}

#[test]
fn replay_against_an_unreachable_redis_fails_clearly() {
    let out = tidegate(
        &[
            "replay",
            "--policy",
            "gcra:1/1s",
            "--store",
            "redis://127.0.0.1:1",
        ],
        "{\"t_ms\":0,\"key\":\"a\"}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--store redis://127.0.0.1:1"), "{stderr}");
}

#[test]
fn tracker_replay_prints_outcomes_and_the_ticks_that_deliver() {
    let out = tidegate(
        &[
            "replay",
            "--tracker",
            "simple:limit=1,defer=1s",
            "--input",
            "examples/tracker.jsonl",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["type"].as_str().or(l["event"].as_str()).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "immediate",
            "deferred",
            "deferred",
            "immediate",
            "deferred",
            "deferred",
            "processed",
            "immediate"
        ]
    );
    // The ECONNRESET batch: first deferral at 120 ms + 1 s = 1120 ms, delivered by the 2 s tick.
    assert_eq!(lines[1]["scheduled_at_ms"], 1120);
    assert_eq!(lines[1]["due_in_ms"], 1000);
    assert_eq!(lines[4]["due_in_ms"], 220);
    // At 1500 ms the batch is due already: it waits for the tick at 2000 ms.
    assert_eq!(
        (
            lines[5]["t_ms"].as_u64(),
            lines[5]["scheduled_at_ms"].as_u64()
        ),
        (Some(1500), Some(1120))
    );
    assert_eq!(lines[5]["due_in_ms"], 0);
    assert_eq!(lines[0]["due_in_ms"], serde_json::Value::Null);
    assert_eq!(lines[6]["t_ms"], 2000);
    assert_eq!(lines[6]["records"][0]["count"], 4);
    assert_eq!(lines[6]["records"][0]["details"][0]["host"], "web-2");
}

#[test]
fn tracker_replay_shows_retries_and_runs_on_until_nothing_is_deferred() {
    let input = "{\"t_ms\":0,\"category\":\"c\",\"id\":\"a\"}\n{\"t_ms\":0,\"category\":\"c\",\"id\":\"a\",\"details\":1}\n";
    let out = tidegate(
        &[
            "replay",
            "--tracker",
            "token_bucket:size=1,rate=1/s,processing_interval=100ms,retry_delay=100ms",
            "--processor-fails",
            "2",
        ],
        input,
    );
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l.get("event").is_some())
        .collect();
    let summary: Vec<(String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["t_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    // Due at 1 s (next token); fails at 1000 and 1100 (backoff 100 ms, then 200 ms).
    assert_eq!(
        summary,
        [
            ("retry".into(), 1000),
            ("retry".into(), 1100),
            ("processed".into(), 1300)
        ]
    );
}

#[test]
fn tracker_replay_rejects_bad_specs_and_lines() {
    let out = tidegate(&["replay", "--tracker", "token_bucket:size=2"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid rate: is required by token_bucket")
    );
    let out = tidegate(
        &["replay", "--tracker", "simple:limit=1"],
        "{\"t_ms\":0,\"category\":\"\",\"id\":\"a\"}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("line 1: invalid category: must not be empty")
    );
}

#[test]
fn tracker_replay_through_redis_matches_memory_line_by_line() {
    let server = redis_test_server::RedisServer::start();
    let cluster = redis_test_server::RedisCluster::start();
    let cluster_urls = cluster.urls().join(",");
    for (spec, fails) in [
        ("simple:limit=2,defer=100ms,expire=1h", "0"),
        ("simple:limit=1,defer=300ms,max_batch=1", "3"),
        ("token_bucket:size=2,rate=1/s", "0"),
        ("token_bucket:size=1,rate=2/s,retry_delay=100ms", "2"),
        (
            "sliding_window:limit=3,window=1s,defer=100ms,max_keys=2",
            "0",
        ),
    ] {
        let run = |store: &str| {
            let out = tidegate(
                &[
                    "replay",
                    "--tracker",
                    spec,
                    "--processor-fails",
                    fails,
                    "--input",
                    "examples/tracker.jsonl",
                    "--store",
                    store,
                ],
                "",
            );
            assert!(
                out.status.success(),
                "{spec} on {store}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        };
        let memory = run("memory");
        assert!(memory.0.contains("\"processed\""), "{spec}: {}", memory.0);
        assert_eq!(run(&server.url()), memory, "{spec} single node");
        assert_eq!(run(&cluster_urls), memory, "{spec} cluster");
    }
    assert_eq!(server.cli(&["DBSIZE"]), "0", "the replay deletes its keys");
}

#[test]
fn replay_rejects_times_past_2_pow_52_microseconds_naming_the_line_and_the_field() {
    let max_ms = (1u64 << 52) / 1_000 - 1;
    let input = format!(
        "{{\"t_ms\":{max_ms},\"key\":\"A\"}}\n{{\"t_ms\":18446744073709551,\"key\":\"A\"}}\n"
    );
    let out = tidegate(&["replay", "--policy", "gcra:3/10s"], &input);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "line 2: `t_ms` 18446744073709551 is out of range: at most {max_ms} (2^52 µs, about 142 years)"
        )),
        "{err}"
    );
}

#[test]
fn replay_refuses_a_line_longer_than_one_mebibyte_without_reading_it_all() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(["replay", "--policy", "gcra:3/10s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // 64 MiB without a newline: the replay must stop at its 1 MiB bound.
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..64 {
            if stdin.write_all(&chunk).is_err() {
                return false;
            }
        }
        true
    });
    let out = child.wait_with_output().unwrap();
    assert!(!writer.join().unwrap(), "the whole input was read");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "line 1: cannot read input: the line is longer than 1048576 bytes, the longest accepted"
        ),
        "{err}"
    );
}
