//! `tidegate serve` on a `redis+sentinel://` URL, with real `redis-server --sentinel`
//! processes: its limits, its tracker and the tracker's `redis_stream` sink all reach
//! the primary Sentinel names, and after the primary is SIGKILLed the same server
//! decides and delivers on the promoted replica without a restart.

mod common;

use std::time::{Duration, Instant};

use common::serve::{Server, TempDir};
use redis_test_server::RedisSentinel;
use serde_json::json;

fn check(server: &Server, key: &str) -> u16 {
    server
        .post("/v1/check", &json!({"policy": "api", "key": key}))
        .status
}

#[test]
fn serve_on_a_sentinel_url_limits_and_streams_on_the_primary_and_follows_a_failover() {
    let group = RedisSentinel::start(3);
    let dir = TempDir::new();
    let config = format!(
        "[store]\nurl = \"{}\"\ntimeout = \"50ms\"\non_error = \"fail_closed\"\n\
         [policies]\napi = \"fixed_window:3/1h\"\n\
         [tracker]\nspec = \"simple:limit=1,defer=1h\"\n\
         sink = {{ type = \"redis_stream\", key = \"events\" }}\n",
        group.url()
    );
    let mut server = Server::with_config(&dir, &config);

    // The limit is kept on the primary.
    let statuses: Vec<u16> = (0..4).map(|_| check(&server, "alice")).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "{}", server.log());
    let old = group.primary();
    assert_ne!(
        old.cli(&["KEYS", "tidegate:api:*"]),
        "",
        "keys on the primary"
    );

    let killed = Instant::now();
    old.kill();
    group
        .wait_for_new_primary(old.port(), Duration::from_secs(30))
        .unwrap();
    // The same server decides on the promoted replica: a fresh key is admitted (by
    // Redis: `fail_closed` would deny it) and written there.
    let answered = loop {
        if check(&server, "bob") == 200 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no decision answered by the new primary: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "tidegate serve: SIGKILL of the Sentinel primary -> first decision answered by \
         the promoted replica after {} ms",
        answered.as_millis()
    );
    let new = group.primary();
    assert_ne!(new.port(), old.port());
    assert_ne!(new.cli(&["KEYS", "tidegate:api:*bob*"]), "");

    // The tracker's deferred batch goes to the stream on the new primary at shutdown.
    for id in ["a", "a", "a"] {
        let r = server.post("/v1/events", &json!({"category": "c", "id": id}));
        assert!(r.status < 300, "{} {}", r.status, server.log());
    }
    assert!(server.terminate().0.success(), "{}", server.log());
    assert_eq!(new.cli(&["XLEN", "events"]), "1", "{}", server.log());
    let entry = new.cli(&["XRANGE", "events", "-", "+"]);
    assert!(entry.contains("\"count\":2"), "{entry}");
}
