//! The work queue against real redis-server processes: ordering, delays, exactly-once
//! completion, the shared rate, stalled jobs, retries and backoff, groups, Cluster.
#![cfg(feature = "queue")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_test_server::{RedisCluster, RedisServer};
use serde_json::json;
use tidegate::queue::{
    Claim, ClaimOptions, ClaimedJob, FailOutcome, Job, JobError, JobState, QueueError,
    QueueOptions, RetryPolicy, WorkQueue, Worker, WorkerOptions, parse_rate,
};
use tidegate::store::redis::{RedisOptions, RedisStore};

async fn queue_on(urls: &[String], name: &str) -> WorkQueue {
    let store = RedisStore::connect(urls, RedisOptions::default())
        .await
        .unwrap();
    WorkQueue::open(store, name, QueueOptions::default()).unwrap()
}

async fn queue(server: &RedisServer, name: &str) -> WorkQueue {
    queue_on(&[server.url()], name).await
}

fn claimer(worker: &str) -> ClaimOptions {
    ClaimOptions {
        worker_id: worker.into(),
        lease: Duration::from_secs(30),
        max_attempts: 3,
        rate: None,
        group_rate: None,
        reserve: Duration::ZERO,
    }
}

async fn claim_job(q: &WorkQueue, o: &ClaimOptions) -> ClaimedJob {
    match q.claim(o).await.unwrap() {
        Claim::Job(job) => job,
        other => panic!("expected a job, got {other:?}"),
    }
}

/// Waits (bounded) until nothing is waiting, delayed or active.
async fn drained(q: &WorkQueue, within: Duration) {
    let start = Instant::now();
    loop {
        let s = q.stats().await.unwrap();
        if s.pending() == 0 {
            return;
        }
        assert!(
            start.elapsed() < within,
            "queue not drained in {within:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_runs_first_and_equal_priorities_run_in_push_order() {
    let server = RedisServer::start();
    let q = queue(&server, "prio").await;
    let pushes = [
        (0, "a"),
        (5, "b"),
        (0, "c"),
        (-2, "d"),
        (5, "e"),
        (9, "f"),
        (0, "g"),
    ];
    for (p, name) in pushes {
        q.push(Job::new(json!(name)).priority(p)).await.unwrap();
    }
    let o = claimer("w");
    let mut order = Vec::new();
    for _ in 0..pushes.len() {
        order.push(
            claim_job(&q, &o)
                .await
                .payload
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(order, ["f", "b", "e", "a", "c", "g", "d"]);
    assert_eq!(q.claim(&o).await.unwrap(), Claim::Empty { next_due: None });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_job_can_claim_the_next_in_the_same_call() {
    let server = RedisServer::start();
    let q = queue(&server, "chain").await;
    let ids = q
        .push_many(&[Job::new(json!("a")), Job::new(json!("b"))])
        .await
        .unwrap();
    let o = claimer("w");
    let first = claim_job(&q, &o).await;
    let (completed, next) = q.complete_and_claim(&first, &o).await.unwrap();
    assert!(completed);
    assert!(matches!(next, Claim::Job(ref j) if j.id == ids[1] && j.payload == json!("b")));
    let Claim::Job(second) = next else {
        unreachable!()
    };
    let (completed, next) = q.complete_and_claim(&second, &o).await.unwrap();
    assert!(completed);
    assert_eq!(next, Claim::Empty { next_due: None });
    assert_eq!(q.stats().await.unwrap().completed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_starts_only_once_due() {
    let server = RedisServer::start();
    let q = queue(&server, "delay").await;
    let id = q
        .push(Job::new(json!({"later": true})).delay(Duration::from_millis(1_500)))
        .await
        .unwrap();
    q.push(Job::new(json!({"now": true}))).await.unwrap();
    let o = claimer("w");
    assert_eq!(claim_job(&q, &o).await.payload, json!({"now": true}));
    assert_eq!(q.job(id).await.unwrap().unwrap().state, JobState::Delayed);
    match q.claim(&o).await.unwrap() {
        Claim::Empty { next_due: Some(d) } => assert!(d <= Duration::from_millis(1_500)),
        other => panic!("expected nothing due yet, got {other:?}"),
    }
    let s = q.stats().await.unwrap();
    assert_eq!((s.waiting, s.delayed, s.active), (0, 1, 1));
    // (1.5 s: a loaded machine must not make the job due before the checks above.)
    tokio::time::sleep(Duration::from_millis(1_520)).await;
    let job = claim_job(&q, &o).await;
    assert_eq!(job.id, id);
    assert_eq!(job.payload, json!({"later": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pushed_job_completes_exactly_once_across_two_workers() {
    let server = RedisServer::start();
    let q = queue(&server, "once").await;
    let jobs: Vec<Job> = (0..300).map(|i| Job::new(json!({ "n": i }))).collect();
    let ids = q.push_many(&jobs).await.unwrap();
    assert_eq!(ids.len(), 300);
    let seen: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..2 {
        let seen = Arc::clone(&seen);
        let handler = move |job: ClaimedJob| {
            let seen = Arc::clone(&seen);
            async move {
                *seen.lock().unwrap().entry(job.id).or_default() += 1;
                tokio::task::yield_now().await;
                Ok(())
            }
        };
        let options = WorkerOptions {
            worker_id: Some(format!("w{w}")),
            concurrency: 8,
            ..WorkerOptions::default()
        };
        workers.push(Worker::start(q.clone(), options, handler).unwrap());
    }
    drained(&q, Duration::from_secs(20)).await;
    for w in &workers {
        w.stop().await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|&n| n == 1), "a job ran twice");
    assert!(ids.iter().all(|id| seen.contains_key(id)));
    let s = q.stats().await.unwrap();
    assert_eq!(
        (s.completed, s.failed, s.stalled, s.pushed),
        (300, 0, 0, 300)
    );
    let total: u64 = workers.iter().map(|w| w.stats().completed).sum();
    assert_eq!(total, 300);
    let recent = q.completed_jobs(5).await.unwrap();
    assert_eq!(recent.len(), 5);
    assert!(recent[0]["finished_ms"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_rate_spaces_starts_across_workers() {
    let server = RedisServer::start();
    let q = queue(&server, "rate").await;
    q.push_many(&(0..8).map(|i| Job::new(json!(i))).collect::<Vec<_>>())
        .await
        .unwrap();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..3 {
        let starts = Arc::clone(&starts);
        let handler = move |_job: ClaimedJob| {
            starts.lock().unwrap().push(Instant::now());
            async { Ok(()) }
        };
        let options = WorkerOptions {
            worker_id: Some(format!("w{w}")),
            concurrency: 3,
            rate: Some(parse_rate("20/1s").unwrap()),
            ..WorkerOptions::default()
        };
        workers.push(Worker::start(q.clone(), options, handler).unwrap());
    }
    drained(&q, Duration::from_secs(10)).await;
    for w in &workers {
        w.stop().await;
    }
    let mut starts = starts.lock().unwrap().clone();
    starts.sort();
    assert_eq!(starts.len(), 8);
    // 20/1s with burst 1: one start every 50 ms. A handler woken late (2 CPUs shared
    // with parallel tests) lengthens one gap and shortens the next by as much; two
    // starts in one slot would show a gap near 0, and two consecutive gaps span two slots.
    let gaps: Vec<Duration> = starts.windows(2).map(|p| p[1] - p[0]).collect();
    for (i, gap) in gaps.iter().enumerate() {
        assert!(*gap >= Duration::from_millis(25), "gap {i}: {gaps:?}");
    }
    for pair in gaps.windows(2) {
        assert!(pair[0] + pair[1] >= Duration::from_millis(92), "{gaps:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_claim_says_how_long_to_wait() {
    let server = RedisServer::start();
    let q = queue(&server, "wait").await;
    q.push_many(&[Job::new(json!(1)), Job::new(json!(2))])
        .await
        .unwrap();
    let o = ClaimOptions {
        rate: Some(parse_rate("20/1m").unwrap()),
        ..claimer("w")
    };
    claim_job(&q, &o).await;
    match q.claim(&o).await.unwrap() {
        Claim::Wait(d) => assert!(
            d > Duration::from_millis(2_900) && d <= Duration::from_secs(3),
            "{d:?}"
        ),
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_within_reach_of_the_next_slot_reserves_it_and_only_one_slot_ahead() {
    let server = RedisServer::start();
    let q = queue(&server, "reserve").await;
    q.push_many(&[Job::new(json!(1)), Job::new(json!(2)), Job::new(json!(3))])
        .await
        .unwrap();
    let o = ClaimOptions {
        rate: Some(parse_rate("20/1m").unwrap()),
        reserve: Duration::from_secs(5),
        ..claimer("w")
    };
    assert_eq!(claim_job(&q, &o).await.start_in, Duration::ZERO);
    // The next slot is 3 s away: within reach, so the job is claimed with that start.
    let second = claim_job(&q, &o).await;
    assert!(
        second.start_in > Duration::from_millis(2_900) && second.start_in <= Duration::from_secs(3),
        "{:?}",
        second.start_in
    );
    // The slot after that is 6 s away: come back when it is within reach (in ~1 s).
    match q.claim(&o).await.unwrap() {
        Claim::Wait(d) => assert!(
            d > Duration::from_millis(900) && d <= Duration::from_secs(1),
            "{d:?}"
        ),
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_lease_expires_returns_to_waiting_and_counts_as_stalled() {
    let server = RedisServer::start();
    let q = queue(&server, "stall").await;
    let id = q.push(Job::new(json!("x"))).await.unwrap();
    let dead = ClaimOptions {
        lease: Duration::from_millis(150),
        ..claimer("dead")
    };
    let first = claim_job(&q, &dead).await;
    assert_eq!(first.attempt, 1);
    let live = claimer("live");
    assert_eq!(
        q.claim(&live).await.unwrap(),
        Claim::Empty { next_due: None }
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = claim_job(&q, &live).await;
    assert_eq!((second.id, second.attempt), (id, 2));
    // The dead worker's late result is refused: the job is the live worker's now.
    assert!(!q.complete(&first).await.unwrap());
    assert!(q.complete(&second).await.unwrap());
    let s = q.stats().await.unwrap();
    assert_eq!((s.stalled, s.completed, s.pending()), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_renews_the_lease_of_a_long_job() {
    let server = RedisServer::start();
    let q = queue(&server, "renew").await;
    q.push(Job::new(json!("slow"))).await.unwrap();
    let handler = |_job: ClaimedJob| async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        Ok(())
    };
    let options = WorkerOptions {
        lease: Duration::from_millis(300),
        ..WorkerOptions::default()
    };
    let worker = Worker::start(q.clone(), options, handler).unwrap();
    drained(&q, Duration::from_secs(5)).await;
    worker.stop().await;
    let s = q.stats().await.unwrap();
    assert_eq!((s.completed, s.stalled, s.started), (1, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_as_configured_then_fail_with_the_error_and_retry_failed_brings_it_back() {
    let server = RedisServer::start();
    let q = queue(&server, "retry").await;
    let id = q.push(Job::new(json!({"flaky": true}))).await.unwrap();
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = Arc::clone(&healthy);
    let handler = move |job: ClaimedJob| {
        let ok = h.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            if ok {
                Ok(())
            } else {
                Err(JobError::retryable(format!(
                    "upstream 503 on attempt {}",
                    job.attempt
                )))
            }
        }
    };
    let retry = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(60),
        factor: 2.0,
        max: Duration::from_secs(1),
        jitter: 0.0,
    };
    let options = WorkerOptions {
        retry,
        idle_poll: Duration::from_millis(10),
        ..WorkerOptions::default()
    };
    let worker = Worker::start(q.clone(), options, handler).unwrap();
    drained(&q, Duration::from_secs(5)).await;
    let failed = q.failed_jobs(0, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    let f = &failed[0];
    assert_eq!((f.id, f.attempts), (id, 4));
    assert_eq!(f.error, "upstream 503 on attempt 4");
    assert_eq!(f.history.len(), 4);
    let delays: Vec<Option<u64>> = f.history.iter().map(|a| a.retry_in_ms).collect();
    assert_eq!(delays, [Some(60), Some(120), Some(240), None]);
    for pair in f.history.windows(2) {
        let waited = pair[1].started_ms.unwrap() - pair[0].ended_ms;
        assert!(waited >= pair[0].retry_in_ms.unwrap(), "{:?}", f.history);
    }
    let s = q.stats().await.unwrap();
    assert_eq!((s.failed, s.retried, s.completed), (1, 3, 0));

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(q.retry_failed(None).await.unwrap(), 1);
    drained(&q, Duration::from_secs(5)).await;
    worker.stop().await;
    let s = q.stats().await.unwrap();
    assert_eq!((s.failed, s.completed), (0, 1));
    assert!(
        q.job(id).await.unwrap().is_none(),
        "completed jobs are removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_retryable_error_fails_the_job_at_once() {
    let server = RedisServer::start();
    let q = queue(&server, "fatal").await;
    let id = q.push(Job::new(json!({"bad": "input"}))).await.unwrap();
    let o = claimer("w");
    let job = claim_job(&q, &o).await;
    let outcome = q
        .fail(&job, "payload has no wallet id", false, Duration::ZERO, 5)
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::Failed);
    let info = q.job(id).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(info.attempts, 1);
    assert_eq!(info.error.as_deref(), Some("payload has no wallet id"));
    assert_eq!(info.history[0].retryable, Some(false));

    // Through a worker too.
    q.push(Job::new(json!(2))).await.unwrap();
    let handler = |_job: ClaimedJob| async { Err(JobError::fatal("schema mismatch")) };
    let worker = Worker::start(q.clone(), WorkerOptions::default(), handler).unwrap();
    drained(&q, Duration::from_secs(5)).await;
    let stats = worker.stop().await;
    assert_eq!((stats.failed, stats.retried), (1, 0));
    assert_eq!(q.stats().await.unwrap().failed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_served_round_robin_each_under_its_own_rate() {
    let server = RedisServer::start();
    let q = queue(&server, "groups").await;
    let mut jobs: Vec<Job> = (0..5)
        .map(|i| Job::new(json!(format!("a{i}"))).group("a"))
        .collect();
    jobs.extend((0..2).map(|i| Job::new(json!(format!("b{i}"))).group("b")));
    q.push_many(&jobs).await.unwrap();
    let o = claimer("w");
    let mut order = Vec::new();
    for _ in 0..7 {
        order.push(
            claim_job(&q, &o)
                .await
                .payload
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(order, ["a0", "b0", "a1", "b1", "a2", "a3", "a4"]);

    q.push_many(&[
        Job::new(json!("a")).group("a"),
        Job::new(json!("a")).group("a"),
        Job::new(json!("b")).group("b"),
    ])
    .await
    .unwrap();
    let limited = ClaimOptions {
        group_rate: Some(parse_rate("1/1m").unwrap()),
        ..claimer("w")
    };
    let first = claim_job(&q, &limited).await.group.unwrap();
    let second = claim_job(&q, &limited).await.group.unwrap();
    assert_ne!(first, second, "each group starts once");
    assert!(
        matches!(q.claim(&limited).await.unwrap(), Claim::Wait(d) if d > Duration::from_secs(50))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_of_an_unknown_queue_is_an_error_and_clear_empties_a_queue() {
    let server = RedisServer::start();
    let q = queue(&server, "never-pushed").await;
    assert!(
        matches!(q.stats().await, Err(QueueError::UnknownQueue { name }) if name == "never-pushed")
    );
    assert!(!q.exists().await.unwrap());
    q.push_many(&[
        Job::new(json!(1)),
        Job::new(json!(2)).delay(Duration::from_secs(60)),
    ])
    .await
    .unwrap();
    let job = claim_job(&q, &claimer("w")).await;
    q.fail(&job, "boom", false, Duration::ZERO, 1)
        .await
        .unwrap();
    q.push(Job::new(json!(3)).group("g")).await.unwrap();
    assert_eq!(q.clear().await.unwrap(), 3);
    let s = q.stats().await.unwrap();
    assert_eq!((s.pending(), s.failed, s.pushed), (0, 0, 0));
    let keys = server.cli(&["--scan", "--pattern", "tidegate:queue:*"]);
    assert_eq!(keys.trim(), "tidegate:queue:{never-pushed}:meta");
    // Ids keep growing after a clear.
    assert_eq!(q.push(Job::new(json!(4))).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_sharing_script_calls_each_get_the_ids_of_their_own_jobs() {
    let server = RedisServer::start();
    let q = queue(&server, "shared").await;
    // 64 producers, each pushing single jobs and small batches at the same time.
    let mut handles = Vec::new();
    for p in 0..64u64 {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..5u64 {
                let id = q.push(Job::new(json!([p, i, 0]))).await.unwrap();
                mine.push((id, json!([p, i, 0])));
                let jobs: Vec<Job> = (1..=3).map(|k| Job::new(json!([p, i, k]))).collect();
                let ids = q.push_many(&jobs).await.unwrap();
                assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
                for (k, id) in (1..=3).zip(ids) {
                    mine.push((id, json!([p, i, k])));
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    assert_eq!(all.len(), 64 * 5 * 4);
    let mut ids: Vec<_> = all.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "every job has its own id");
    for (id, payload) in &all {
        let job = q.job(*id).await.unwrap().expect("the job exists");
        assert_eq!(&job.payload, payload, "job {id}");
    }
    assert_eq!(q.stats().await.unwrap().pending(), all.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_job_in_a_batch_writes_nothing() {
    let server = RedisServer::start();
    let q = queue(&server, "batch").await;
    let err = q
        .push_many(&[Job::new(json!(1)), Job::new(json!(2)).group("bad group")])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid job #2: `group` `bad group` must not contain ' ' (no braces, whitespace or control characters)"
    );
    assert!(!q.exists().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_works_on_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let q = queue_on(&cluster.urls(), "clustered").await;
    q.push_many(
        &(0..20)
            .map(|i| Job::new(json!(i)).group(format!("g{}", i % 3)))
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let d = Arc::clone(&done);
    let handler = move |_job: ClaimedJob| {
        d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok(()) }
    };
    let options = WorkerOptions {
        concurrency: 4,
        rate: Some(parse_rate("200/1s").unwrap()),
        ..WorkerOptions::default()
    };
    let worker = Worker::start(q.clone(), options, handler).unwrap();
    drained(&q, Duration::from_secs(10)).await;
    worker.stop().await;
    assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 20);
    assert_eq!(q.stats().await.unwrap().completed, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_deletes_a_large_queue_in_short_batches_and_reports_progress() {
    let server = RedisServer::start();
    let q = queue(&server, "big").await;
    let jobs: Vec<Job> = (0..20_000).map(|i| Job::new(json!(i))).collect();
    q.push_many(&jobs).await.unwrap();
    let grouped: Vec<Job> = (0..5_500).map(|i| Job::new(json!(i)).group("g")).collect();
    q.push_many(&grouped).await.unwrap();
    // Any script call over 20 ms from now on is logged by Redis.
    server.cli(&["CONFIG", "SET", "slowlog-log-slower-than", "20000"]);
    server.cli(&["SLOWLOG", "RESET"]);
    let mut seen = Vec::new();
    let removed = q.clear_with_progress(|n| seen.push(n)).await.unwrap();
    assert_eq!(removed, 25_500);
    assert_eq!(seen.last(), Some(&25_500));
    assert!(seen.len() >= 26, "{} batches", seen.len());
    assert!(
        seen.windows(2)
            .all(|w| w[1] - w[0] <= tidegate::queue::CLEAR_BATCH as u64),
        "{seen:?}"
    );
    let slow = server.cli(&["SLOWLOG", "LEN"]);
    assert_eq!(slow.trim(), "0", "{}", server.cli(&["SLOWLOG", "GET", "5"]));
    let s = q.stats().await.unwrap();
    assert_eq!((s.pending(), s.pushed), (0, 0));
    let keys = server.cli(&["--scan", "--pattern", "tidegate:queue:*"]);
    assert_eq!(keys.trim(), "tidegate:queue:{big}:meta");
}
