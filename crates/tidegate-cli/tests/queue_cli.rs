//! `tidegate queue` as users run it: the binary against a real redis-server — several
//! worker processes sharing one rate, a worker killed mid-job, retries, the autoscaler,
//! and bad input (invalid JSON, unknown queue, unreachable Redis).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use redis_test_server::RedisServer;

/// The binary, with no `TIDEGATE_*` variable from the test's environment.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidegate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TIDEGATE_") {
            c.env_remove(k);
        }
    }
    c.env("LC_ALL", "C");
    c
}

/// Runs `tidegate queue ARGS` on `url`/`queue` with `stdin`, killed after `limit`.
fn queue_cmd(url: &str, queue: &str, args: &[&str], stdin: &str, limit: Duration) -> Output {
    let mut cmd = bin();
    cmd.args(["queue", "--redis", url, "--queue", queue])
        .args(args);
    wait_output(common::spawn_with_stdin(&mut cmd, stdin), limit)
}

/// `tidegate queue ARGS` with nothing on standard input, killed after 10 s.
fn run(url: &str, queue: &str, args: &[&str]) -> Output {
    queue_cmd(url, queue, args, "", Duration::from_secs(10))
}

fn wait_output(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "tidegate did not finish within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stats_json(url: &str, queue: &str) -> serde_json::Value {
    let out = run(url, queue, &["stats", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tidegate-queue-cli-{name}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    format!("bash {}", path.display())
}

#[test]
fn push_then_stats_counts_the_jobs_by_state() {
    let server = RedisServer::start();
    let url = server.url();
    let out = run(
        &url,
        "audit",
        &[
            "push",
            r#"{"wallet":"w1"}"#,
            r#"{"wallet":"w2"}"#,
            "--priority",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "pushed 2 jobs to audit (ids 1..2)");
    let out = queue_cmd(
        &url,
        "audit",
        &["push", "--group", "tenant-a", "--delay", "1m"],
        "{\"wallet\":\"w3\"}\n\n[1,2]\n",
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stats_json(&url, "audit");
    assert_eq!(s["queue"], "audit");
    assert_eq!(s["waiting"], 2);
    assert_eq!(s["delayed"], 2);
    assert_eq!(s["pushed"], 4);
    let table = run(&url, "audit", &["stats"]);
    assert!(
        stdout(&table).contains("waiting    2\n"),
        "{}",
        stdout(&table)
    );
}

#[test]
fn an_invalid_json_line_is_rejected_and_nothing_is_pushed() {
    let server = RedisServer::start();
    let url = server.url();
    let out = queue_cmd(
        &url,
        "audit",
        &["push"],
        "{\"ok\":1}\n{\"broken\":\n{\"ok\":3}\n",
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("tidegate: line 2: invalid JSON payload (nothing was pushed)"),
        "{err}"
    );
    assert_eq!(server.cli(&["DBSIZE"]), "0");
}

#[test]
fn stats_of_an_unknown_queue_fails_with_a_clear_error() {
    let server = RedisServer::start();
    let out = queue_cmd(
        &server.url(),
        "nope",
        &["stats"],
        "",
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "tidegate: queue `nope` does not exist (nothing was ever pushed to it)"
    );
}

#[test]
fn work_on_an_unknown_queue_fails_naming_it_and_creates_nothing() {
    let server = RedisServer::start();
    let out = queue_cmd(
        &server.url(),
        "wallet-adit",
        &["work", "--exec", "true"],
        "",
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "tidegate: queue `wallet-adit` does not exist (nothing was ever pushed to it): check \
         the name, push a job to create it (`tidegate queue push`), or start the worker with \
         --create"
    );
    assert_eq!(server.cli(&["DBSIZE"]), "0");
}

#[test]
fn work_with_create_starts_on_a_queue_nothing_was_pushed_to() {
    let server = RedisServer::start();
    let url = server.url();
    let out = run(
        &url,
        "fresh",
        &[
            "work",
            "--exec",
            "true",
            "--create",
            "--until-empty",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["processed"], 0);
    assert_eq!(report["drained"], true);
    assert_eq!(stats_json(&url, "fresh")["pending"], 0);
}

#[test]
fn redis_url_and_queue_name_come_from_the_variables_serve_shares() {
    let server = RedisServer::start();
    let out = bin()
        .args(["queue", "push", "{\"wallet\":\"w1\"}"])
        .env("TIDEGATE_STORE__URL", server.url())
        .env("TIDEGATE_QUEUE__NAME", "audit")
        .env("TIDEGATE_QUEUE__TIMEOUT", "3s")
        // serve's keys are no business of the queue's
        .env("TIDEGATE_ADMIN__TOKEN", "0123456789abcdef0123")
        .env("TIDEGATE_STORE__ON_ERROR", "fail_closed")
        .env("TIDEGATE_POLICIES__LOGIN", "fixed_window:3/10s")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "pushed 1 job to audit (id 1)");
    assert_eq!(stats_json(&server.url(), "audit")["waiting"], 1);
}

#[test]
fn old_variable_names_are_refused_naming_the_new_ones() {
    let server = RedisServer::start();
    for (var, value, new) in [
        ("TIDEGATE_REDIS_URL", server.url(), "TIDEGATE_STORE__URL"),
        (
            "TIDEGATE_QUEUE",
            "audit".to_string(),
            "TIDEGATE_QUEUE__NAME",
        ),
    ] {
        let out = bin()
            .args([
                "queue",
                "--redis",
                &server.url(),
                "--queue",
                "audit",
                "push",
                "1",
            ])
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        assert_eq!(
            stderr(&out).trim(),
            format!(
                "tidegate: environment variable {var} is no longer read: set {new} instead \
                 (every subcommand reads the same names, see docs/CONFIGURATION.md)"
            )
        );
    }
    let out = bin()
        .args([
            "queue",
            "--redis",
            &server.url(),
            "--queue",
            "audit",
            "push",
            "1",
        ])
        .env("TIDEGATE_QUEUE__NAEM", "audit")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown environment variable TIDEGATE_QUEUE__NAEM"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.cli(&["DBSIZE"]), "0");
}

#[test]
fn unreachable_redis_fails_quickly_with_a_clear_error() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let start = Instant::now();
    for args in [&["stats"][..], &["push", "{}"], &["work", "--exec", "true"]] {
        let out = queue_cmd(&url, "q", args, "", Duration::from_secs(15));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("tidegate: cannot reach Redis for queue `q`: "),
            "{args:?}: {err}"
        );
    }
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn three_worker_processes_share_one_rate_of_ten_per_second() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = temp_dir("rate");
    let jobs: String = (0..30).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    let out = queue_cmd(&url, "paced", &["push"], &jobs, Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let starts = dir.join("starts");
    let handler = write_script(
        &dir,
        "handler.sh",
        &format!(
            "echo \"$TIDEGATE_JOB_CLAIMED_AT $TIDEGATE_JOB_ID\" >> {}\n",
            starts.display()
        ),
    );
    let workers: Vec<Child> = (0..3)
        .map(|_| {
            bin()
                .args(["queue", "--redis", &url, "--queue", "paced", "work"])
                .args(["--exec", &handler, "--rate", "10/1s", "--workers", "2"])
                .args(["--until-empty", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut processed = 0;
    for w in workers {
        let out = wait_output(w, Duration::from_secs(30));
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value =
            serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
        assert_eq!(report["drained"], true);
        processed += report["processed"].as_u64().unwrap();
    }
    assert_eq!(processed, 30);
    let text = std::fs::read_to_string(&starts).unwrap();
    let mut times: Vec<f64> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let mut ids: Vec<u64> = text
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=30).collect::<Vec<_>>(), "every job ran once");
    times.sort_by(f64::total_cmp);
    // 10/1s with burst 1: claims 100 ms apart, so the k-th start after any start comes
    // at least k slots later. Each worker notes the time it got the job, before starting
    // the handler; a worker descheduled between the claim and that reading (tests run in
    // parallel on 2 CPUs) shifts one start late, which shortens the spans that begin at
    // it by as much. A start may read up to 60 ms late here; two claims in one slot, or
    // each process with its own rate, would make some span short by a whole slot or more.
    assert_starts_spaced(&times, 100.0, 60.0);
    let s = stats_json(&url, "paced");
    assert_eq!(
        (s["completed"].as_u64(), s["pending"].as_u64()),
        (Some(30), Some(0))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Asserts that, for every start and every k, the k-th start after it comes at least
/// `k * slot_ms - late_ms` later (times in seconds, sorted).
fn assert_starts_spaced(times: &[f64], slot_ms: f64, late_ms: f64) {
    for (i, first) in times.iter().enumerate() {
        for (k, later) in times[i + 1..].iter().enumerate() {
            let span = (later - first) * 1000.0;
            let slots = (k + 1) as f64;
            assert!(
                span >= slots * slot_ms - late_ms,
                "starts {i} and {} are {span:.1} ms apart, less than {slots} slots of \
                 {slot_ms} ms minus {late_ms} ms: {times:?}",
                i + k + 1
            );
        }
    }
}

#[test]
fn a_job_of_a_killed_worker_is_redelivered_after_its_lease_and_nothing_is_lost() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = temp_dir("kill");
    let jobs: String = (0..5).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    let out = queue_cmd(&url, "crash", &["push"], &jobs, Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let started = dir.join("started");
    let pid = dir.join("pid");
    let done = dir.join("done");
    // The first attempt of the first job hangs (until its worker is killed).
    let handler = write_script(
        &dir,
        "handler.sh",
        &format!(
            "if [ \"$TIDEGATE_JOB_ID\" = 1 ] && [ \"$TIDEGATE_JOB_ATTEMPT\" = 1 ]; then\n  echo $$ > {pid}\n  touch {started}\n  exec sleep 30\nfi\necho \"$TIDEGATE_JOB_QUEUE $TIDEGATE_JOB_ID $TIDEGATE_JOB_ATTEMPT\" >> {done}\n",
            pid = pid.display(),
            started = started.display(),
            done = done.display()
        ),
    );
    let work = |extra: &[&str]| {
        bin()
            .args(["queue", "--redis", &url, "--queue", "crash", "work"])
            .args([
                "--exec",
                &handler,
                "--lease",
                "1s",
                "--until-empty",
                "--json",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut victim = work(&[]);
    let start = Instant::now();
    while !started.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    victim.kill().unwrap(); // SIGKILL: no cleanup, no lease release
    victim.wait().unwrap();
    let orphan = std::fs::read_to_string(&pid).unwrap();
    let _ = Command::new("kill").args(["-9", orphan.trim()]).status();
    let s = stats_json(&url, "crash");
    assert_eq!(
        s["active"], 1,
        "the killed worker's job is still leased: {s}"
    );

    let out = wait_output(work(&["--workers", "2"]), Duration::from_secs(20));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut lines: Vec<String> = std::fs::read_to_string(&done)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "crash 1 2",
            "crash 2 1",
            "crash 3 1",
            "crash 4 1",
            "crash 5 1"
        ]
    );
    let s = stats_json(&url, "crash");
    assert_eq!(s["completed"], 5);
    assert_eq!(s["stalled"], 1);
    assert_eq!(s["pending"], 0);
    assert_eq!(s["failed"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failing_commands_are_retried_then_listed_as_failed_and_retry_failed_brings_them_back() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = temp_dir("retry");
    let out = run(
        &url,
        "flaky",
        &["push", r#"{"kind":"retry"}"#, r#"{"kind":"fatal"}"#],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let handler = write_script(
        &dir,
        "handler.sh",
        "if grep -q fatal; then echo 'bad wallet id' >&2; exit 65; fi\necho 'upstream 503' >&2\nexit 1\n",
    );
    let work = |cmd: &str| {
        let out = queue_cmd(
            &url,
            "flaky",
            &[
                "work",
                "--exec",
                cmd,
                "--max-attempts",
                "3",
                "--backoff",
                "50ms",
                "--jitter",
                "0",
                "--until-empty",
                "--json",
            ],
            "",
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<serde_json::Value>(stdout(&out).lines().last().unwrap()).unwrap()
    };
    let report = work(&handler);
    assert_eq!(
        (report["processed"].as_u64(), report["failed"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(report["retried"], 2);
    let out = run(&url, "flaky", &["failed", "--json"]);
    let failed: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 2);
    let by_kind = |k: &str| {
        failed
            .iter()
            .find(|f| f["payload"]["kind"] == k)
            .unwrap()
            .clone()
    };
    let retried = by_kind("retry");
    assert_eq!(retried["attempts"], 3);
    assert_eq!(retried["error"], "exit code 1: upstream 503");
    let delays: Vec<u64> = retried["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["retry_in_ms"].as_u64())
        .collect();
    assert_eq!(delays, [50, 100]);
    let fatal = by_kind("fatal");
    assert_eq!(fatal["attempts"], 1);
    assert_eq!(fatal["error"], "exit code 65: bad wallet id");

    let out = run(&url, "flaky", &["retry-failed"]);
    assert_eq!(
        stdout(&out).trim(),
        "2 failed job(s) of flaky moved back to waiting"
    );
    assert_eq!(stats_json(&url, "flaky")["waiting"], 2);
    let report = work("cat > /dev/null");
    assert_eq!(report["processed"], 2);
    let s = stats_json(&url, "flaky");
    assert_eq!(
        (s["completed"].as_u64(), s["failed"].as_u64()),
        (Some(2), Some(0))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn work_with_a_deadline_autoscales_and_reports_the_deadline_met() {
    let server = RedisServer::start();
    let url = server.url();
    let jobs: String = (0..12).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    queue_cmd(&url, "deadline", &["push"], &jobs, Duration::from_secs(10));
    let out = queue_cmd(
        &url,
        "deadline",
        &[
            "work",
            "--exec",
            "sleep 0.2",
            "--rate",
            "20/1s",
            "--workers",
            "1..6",
            "--deadline",
            "5s",
            "--initial-avg",
            "200ms",
            "--json",
        ],
        "",
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(report["processed"], 12);
    assert_eq!(report["initial_pending"], 12);
    assert_eq!(report["met_deadline"], true);
    assert_eq!(report["remaining"], 0);
    // 12 jobs of 0.2 s, 5 s less the 0.5 s margin: per worker 300/min, required
    // ceil(12 / (300 * 4.5/60)) = 1.
    assert_eq!(report["scaling"][0]["workers"], 1);
    assert!(report["peak_workers"].as_u64().unwrap() <= 6);
    assert!(stderr(&out).contains("1 worker(s)"), "{}", stderr(&out));
}

#[test]
fn monitor_prints_plain_lines_when_not_on_a_terminal() {
    let server = RedisServer::start();
    let url = server.url();
    run(&url, "watched", &["push", "1", "2", "3"]);
    let out = run(
        &url,
        "watched",
        &["monitor", "--interval", "100ms", "--count", "2"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with("queue=watched waiting=3 delayed=0 active=0 completed=0")),
        "{text}"
    );
    assert!(!text.contains('\x1b'));
}

#[test]
fn clear_removes_every_job() {
    let server = RedisServer::start();
    let url = server.url();
    run(&url, "tmp", &["push", "1", "2"]);
    let out = run(&url, "tmp", &["clear"]);
    assert_eq!(
        stdout(&out).trim(),
        "cleared tmp: 2 job(s) removed, counters reset"
    );
    let s = stats_json(&url, "tmp");
    assert_eq!(
        (s["pending"].as_u64(), s["pushed"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn bad_work_options_name_the_flag() {
    let out = bin()
        .args([
            "queue",
            "--redis",
            "redis://127.0.0.1:1",
            "--queue",
            "q",
            "work",
        ])
        .args(["--exec", "true", "--rate", "20/1m,burst=0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("`burst` must be at least 1"), "{err}");
    let out = bin()
        .args([
            "queue",
            "--redis",
            "redis://127.0.0.1:1",
            "--queue",
            "q",
            "work",
        ])
        .args(["--exec", "true", "--workers", "5..2"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("MIN 5 is above MAX 2"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_webhook_handler_posts_each_job_and_retries_a_non_2xx_answer() {
    let server = RedisServer::start();
    let url = server.url();
    // The first call fails: that job must come again.
    let hook = common::Hook::start(1);
    let jobs = "{\"wallet\":\"a\"}\n{\"wallet\":\"b\"}\n{\"wallet\":\"c\"}\n";
    let out = queue_cmd(&url, "hooked", &["push"], jobs, Duration::from_secs(10));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = queue_cmd(
        &url,
        "hooked",
        &[
            "work",
            "--webhook",
            &hook.url,
            "--backoff",
            "50ms",
            "--until-empty",
        ],
        "",
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bodies = hook.received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert_eq!(bodies[0]["attempt"], 1);
    assert_eq!(bodies[0]["queue"], "hooked");
    let first = &bodies[0]["payload"];
    let again: Vec<_> = bodies[1..]
        .iter()
        .filter(|b| &b["payload"] == first)
        .collect();
    assert_eq!(
        again.len(),
        1,
        "the failed job is posted once more: {bodies:?}"
    );
    assert_eq!(again[0]["attempt"], 2);
    let mut wallets: Vec<&str> = bodies[1..]
        .iter()
        .map(|b| b["payload"]["wallet"].as_str().unwrap())
        .collect();
    wallets.sort_unstable();
    assert_eq!(wallets, ["a", "b", "c"]);
    let s = stats_json(&url, "hooked");
    assert_eq!(
        (s["completed"].as_u64(), s["retried"].as_u64()),
        (Some(3), Some(1))
    );
}

#[test]
fn push_streams_standard_input_in_batches_and_says_what_a_late_bad_line_left_behind() {
    let server = RedisServer::start();
    let url = server.url();
    let jobs: String = (0..25_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    let out = queue_cmd(&url, "many", &["push"], &jobs, Duration::from_secs(20));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "pushed 25000 jobs to many (ids 1..25000)"
    );
    // A bad line after the first batch of 10 000: what was pushed is said, and kept.
    let mut jobs: String = (0..15_000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    jobs.push_str("{\"broken\":\n");
    let out = queue_cmd(&url, "late", &["push"], &jobs, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "tidegate: line 15001: invalid JSON payload (the 10000 jobs before it were pushed, ids 1..10000; nothing after)"
        ),
        "{err}"
    );
    let stats = run(&url, "late", &["stats", "--json"]);
    let s: serde_json::Value = serde_json::from_str(&stdout(&stats)).unwrap();
    assert_eq!(s["pushed"], 10_000);
}
