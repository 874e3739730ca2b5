//! `tidegate serve` against hostile clients and unlucky configurations: the built binary
//! on a loopback port, raw TCP clients, bounded resources, JSON answers to bad input.

use std::time::{Duration, Instant};

mod common;

use common::serve::{Server, TempDir, start_error};
use serde_json::{Value, json};

/// A tracker delivering to `events.jsonl` in `dir` after 200 ms, with `extra` keys.
fn tracker_config(dir: &TempDir, extra: &str) -> String {
    let sink = dir.0.join("events.jsonl");
    format!(
        "[policies]\napi = \"fixed_window:3/1h\"\n\n[tracker]\n\
         spec = \"simple:limit=1,defer=200ms,processing_interval=50ms\"\n{extra}\n\
         sink = {{ type = \"jsonl\", path = \"{}\" }}\n",
        sink.display()
    )
}

/// The records delivered to `events.jsonl` so far (waits up to 10 s for `n`).
fn delivered(dir: &TempDir, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(dir.0.join("events.jsonl")).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn event_details_are_bounded_in_bytes_counted_when_dropped_and_written_compact() {
    let dir = TempDir::new();
    let server = Server::with_config(
        &dir,
        &tracker_config(&dir, "max_detail_bytes = 1000\nmax_batch_bytes = 4000"),
    );
    let first = server.post("/v1/events", &json!({"category": "c", "id": "i"}));
    assert_eq!(first.json()["type"], "immediate");
    // Too large for one detail: tracked, its detail counted as dropped.
    let big = json!({"category": "c", "id": "i", "details": vec![1; 600]});
    let r = server.post("/v1/events", &big);
    assert_eq!(
        (r.status, r.json()["type"].clone()),
        (200, json!("deferred"))
    );
    // Whitespace is not kept: details are stored as compact JSON text.
    let spaced = br#"{"category": "c", "id": "i", "details": { "a" : [ 1 ,
        2 ], "s": "x  y" }}"#;
    let r = server.request(
        "POST",
        "/v1/events",
        &[("Content-Type", "application/json")],
        spaced,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Fill the batch's 4000 bytes (each detail's text plus 32 bytes of overhead): four
    // 902-byte details fit after the 25-byte one above, two do not.
    for _ in 0..6 {
        let d = json!({"category": "c", "id": "i", "details": "x".repeat(900)});
        assert_eq!(server.post("/v1/events", &d).status, 200);
    }
    let records = delivered(&dir, 1);
    assert_eq!(records.len(), 1, "{}", server.log());
    let r = &records[0];
    assert_eq!(r["count"], 8);
    assert_eq!(r["details"][0], json!({"a": [1, 2], "s": "x  y"}));
    assert_eq!(r["details"].as_array().unwrap().len(), 5, "{r}");
    assert_eq!(r["details_dropped"], 3);
    let line = std::fs::read_to_string(dir.0.join("events.jsonl")).unwrap();
    assert!(
        line.contains(r#""details":[{"a":[1,2],"s":"x  y"},"#),
        "{line}"
    );
    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains("tidegate_tracker_details_dropped_by_size_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tidegate_tracker_memory_bytes "),
        "{metrics}"
    );
}

#[test]
fn a_tracker_memory_budget_too_small_is_refused_at_start() {
    let dir = TempDir::new();
    let path = dir.write("t.toml", &tracker_config(&dir, "max_memory_bytes = 1000"));
    let (code, err) = start_error(&["--config", path.to_str().unwrap()], &[], &dir.0);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`tracker.max_memory_bytes`: must be at least 65536 (64 KiB)"),
        "{err}"
    );
}
