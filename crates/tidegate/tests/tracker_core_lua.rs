//! The tracker's pure core (`tracker/core/`) against its Lua mirror (`tracker.lua`) on a
//! real redis-server: random sequences of operations (track with various records,
//! strategies, limits, details and times; claim due batches; settle each way; reconfigure;
//! purge; clock advances) go to both, and after every step the outcome and the whole
//! state (every record's fields, gate state and details, the due and idle indexes, the
//! record count) must be the same.
#![cfg(all(feature = "redis", feature = "tracker"))]

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use redis::{Connection, Script, Value};
use redis_test_server::RedisServer;
use serde_json::json;
use tidegate::tracker::core::{DetailLimits, GateState, Record, RecordSettings, Tracked};
use tidegate::tracker::{
    ConfigPatch, DeliveredRecord, Details, RecordKey, Strategy as TrackStrategy, TRACKER_LUA,
    settings_args, track_reply,
};

const MS: u64 = 1_000;

/// The records a run may touch; `("a", "b1")` and `("ab", "1")` check that the script's
/// record names keep category and id apart.
const KEYS: [(&str, &str); 4] = [("a", "b1"), ("ab", "1"), ("a", "2"), ("c", "1")];

/// Most records (one key fewer than KEYS, so creation is refused at times).
const MAX_KEYS: usize = 3;

/// Largest detail kept; the oversized detail below is longer.
const MAX_DETAIL_BYTES: usize = 16;

/// The script's stand-in for a detail over `max_detail_bytes` (as the Redis store sends).
const OVERSIZED: &str = "\u{1}";

#[derive(Debug, Clone)]
enum Op {
    /// The clock moves on by this many µs.
    Advance(u64),
    /// One event of `KEYS[key]`; detail 0 none, 1 small, 2 oversized.
    Track { key: usize, detail: u8 },
    /// Claims up to `max` due batches.
    Claim { max: usize },
    /// Settles the claim held at this index (modulo): 0 processed, 1 dead, 2 defer again.
    Settle { claim: usize, how: u8 },
    /// Reconfigures a record with the patch; `stale` sends settings it no longer has.
    Reconfigure {
        key: usize,
        patch: ConfigPatch,
        stale: bool,
    },
    /// Purges records idle for `expire` µs.
    Purge { expire: u64 },
    /// Resets a record (its waiting batch becomes a claim held here).
    Reset { key: usize },
}

#[derive(Debug, Clone)]
struct Run {
    defaults: RecordSettings,
    max_details: usize,
    ops: Vec<Op>,
}

fn strategy() -> impl Strategy<Value = TrackStrategy> {
    prop_oneof![
        Just(TrackStrategy::SimpleCounter),
        (1u64..=3, prop::sample::select(vec![0.5, 2.0, 12.5])).prop_map(|(size, rate)| {
            TrackStrategy::TokenBucket {
                bucket_size: size,
                refill_rate: rate,
            }
        }),
        prop::sample::select(vec![150u64, 400]).prop_map(|ms| TrackStrategy::SlidingWindow {
            window_size: Duration::from_millis(ms),
        }),
    ]
}

fn patch() -> impl Strategy<Value = ConfigPatch> {
    (
        prop::option::of(1u64..=3),
        prop::option::of(prop::sample::select(vec![60u64, 250, 900])),
        prop::option::of(strategy()),
    )
        .prop_map(|(limit, defer, strategy)| ConfigPatch {
            limit,
            defer_interval: defer.map(Duration::from_millis),
            strategy,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..400).prop_map(|ms| Op::Advance(ms * MS)),
        8 => (0..KEYS.len(), 0u8..3).prop_map(|(key, detail)| Op::Track { key, detail }),
        3 => (1usize..=3).prop_map(|max| Op::Claim { max }),
        3 => (0usize..4, 0u8..3).prop_map(|(claim, how)| Op::Settle { claim, how }),
        1 => (0..KEYS.len(), patch(), any::<bool>())
            .prop_map(|(key, patch, stale)| Op::Reconfigure { key, patch, stale }),
        1 => prop::sample::select(vec![0u64, 100 * MS, 1_000 * MS]).prop_map(|expire| Op::Purge { expire }),
        1 => (0..KEYS.len()).prop_map(|key| Op::Reset { key }),
    ]
}

fn run() -> impl Strategy<Value = Run> {
    (
        strategy(),
        1u64..=3,
        prop::sample::select(vec![50u64, 120, 300]),
        0usize..=3,
        prop::collection::vec(op(), 1..60),
    )
        .prop_filter_map("valid settings", |(s, limit, defer, max_details, ops)| {
            Some(Run {
                defaults: RecordSettings::new(s, limit, Duration::from_millis(defer)).ok()?,
                max_details,
                ops,
            })
        })
}

/// The script's name of a record: `<#category>:<category><id>`.
fn rec_of(key: usize) -> String {
    let (c, i) = KEYS[key];
    format!("{}:{c}{i}", c.len())
}

fn detail(kind: u8, n: usize) -> Details {
    match kind {
        0 => Details::null(),
        1 => Details::from(json!(n)),
        _ => Details::from(json!("a detail far over the byte bound")),
    }
}

/// The detail as the Redis store sends it.
fn script_detail(d: &Details) -> String {
    if d.is_null() {
        String::new()
    } else if d.len() > MAX_DETAIL_BYTES {
        OVERSIZED.to_string()
    } else {
        d.as_str().to_string()
    }
}

/// The core with the storage the script has: records, the due index with sequence
/// numbers, the record count, the claims held.
struct Model {
    records: BTreeMap<usize, (Record, u64)>,
    due: BTreeMap<(u64, u64), usize>,
    seq: u64,
    limits: DetailLimits,
}

/// One side of the comparison: the script on Redis under its own prefix.
struct Lua<'a> {
    con: &'a mut Connection,
    script: &'a Script,
    prefix: String,
    head: Vec<String>,
    max_details: usize,
}

impl Lua<'_> {
    fn call<T: redis::FromRedisValue>(&mut self, op: &str, args: &[String]) -> T {
        let mut inv = self.script.key(self.prefix.as_str());
        inv.arg(op);
        for a in args {
            inv.arg(a.as_str());
        }
        inv.invoke(self.con).expect("the tracker script answers")
    }

    fn track(&mut self, now: u64, key: usize, detail: &str) -> Vec<i64> {
        let mut inv = self.script.key(self.prefix.as_str());
        for a in &self.head {
            inv.arg(a.as_str());
        }
        let (c, i) = KEYS[key];
        inv.arg(1).arg(now).arg(c).arg(i).arg(detail);
        let packed: Vec<u8> = inv.invoke(self.con).expect("track answers");
        track_reply(&packed).expect("track answers whole doubles")
    }

    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(format!("{}{key}", self.prefix))
            .query(self.con)
            .unwrap()
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        Value::Int(i) => i.to_string(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Parses a claim reply into its id and records (as `RedisRecords` does).
fn parse_claim(v: &[Value]) -> (String, Vec<DeliveredRecord>) {
    let items: Vec<String> = v.iter().map(text).collect();
    let mut it = items.into_iter();
    let id = it.next().unwrap();
    let _taken_over = it.next().unwrap();
    let mut out = Vec::new();
    while let Some(category) = it.next() {
        let mut n = || it.next().unwrap();
        let id = n();
        let count = n().parse().unwrap();
        let first_seen_us = n().parse().unwrap();
        let last_seen_us = n().parse().unwrap();
        let details_dropped = n().parse().unwrap();
        let failed_rounds = n().parse().unwrap();
        let nd: usize = n().parse().unwrap();
        let details = (0..nd)
            .map(|_| Details::from_json(&it.next().unwrap()).unwrap())
            .collect();
        out.push(DeliveredRecord {
            category,
            id,
            count,
            first_seen_us,
            last_seen_us,
            details,
            details_dropped,
            failed_rounds,
        });
    }
    (id, out)
}

fn key_of(r: &DeliveredRecord) -> usize {
    KEYS.iter()
        .position(|&(c, i)| c == r.category && i == r.id)
        .unwrap()
}

fn view_tuple(kind: i64, r: &Record) -> Vec<i64> {
    vec![
        kind,
        r.total as i64,
        r.pending.as_ref().map_or(0, |p| p.count as i64),
        r.pending.as_ref().map_or(-1, |p| p.due_at as i64),
        r.first_seen as i64,
        r.last_seen as i64,
    ]
}

/// The script's 21 record fields as the core's record gives them (the sequence number,
/// field 20, is the store's: compared through the order of the due index instead).
fn fields(r: &Record) -> Vec<f64> {
    let s = settings_args(&r.settings);
    let kind = match s[5].as_str() {
        "c" => 1.0,
        "b" => 2.0,
        _ => 3.0,
    };
    let (adm, sk) = match r.gate {
        GateState::Counter(n) => (n as f64, 1.0),
        GateState::Bucket(_) => (0.0, 2.0),
        GateState::Window(_) => (0.0, 3.0),
    };
    let num = |i: usize| s[i].parse::<f64>().unwrap();
    let mut out = vec![
        r.total as f64,
        r.first_seen as f64,
        r.last_seen as f64,
        r.in_flight as f64,
        adm,
        sk,
        kind,
        num(6),
        num(7),
        num(8),
        num(1),
        num(9),
        num(3),
    ];
    match &r.pending {
        None => out.extend([-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        Some(p) => out.extend([
            p.count as f64,
            p.first_seen as f64,
            p.last_seen as f64,
            p.dropped as f64,
            p.failed_rounds as f64,
            p.due_at as f64,
            p.details.len() as f64,
        ]),
    }
    out
}

/// Compares every record, its gate state and details, the due and idle indexes and the
/// record count.
fn same_state(step: usize, m: &Model, lua: &mut Lua<'_>) -> Result<(), TestCaseError> {
    for (k, &(c, i)) in KEYS.iter().enumerate() {
        let rec = rec_of(k);
        let raw = lua.get(&format!("r:{rec}"));
        let model = m.records.get(&k).map(|(r, _)| r);
        prop_assert_eq!(
            raw.is_some(),
            model.is_some(),
            "step {}: record {} exists",
            step,
            k
        );
        let read: Vec<i64> = lua.call("record", &[c.to_string(), i.to_string()]);
        let (Some(raw), Some(r)) = (raw, model) else {
            prop_assert!(read.is_empty(), "step {}: read of missing {}", step, k);
            continue;
        };
        let s = r.snapshot(std::sync::Arc::new(RecordKey {
            category: c.into(),
            id: i.into(),
        }));
        let mut want = view_tuple(0, r)[1..].to_vec();
        want.extend([
            i64::from(s.in_flight),
            i64::from(s.failed_rounds),
            s.details as i64,
            s.details_dropped as i64,
        ]);
        prop_assert_eq!(read, want, "step {}: read of {}", step, k);
        let mut got: Vec<f64> = raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        got.remove(19);
        prop_assert_eq!(got, fields(r), "step {}: record {} fields", step, k);
        let gate = lua.get(&format!("g:{rec}")).unwrap_or_default();
        let doubles: Vec<u64> = gate
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as u64)
            .collect();
        match r.gate {
            GateState::Counter(_) => prop_assert!(doubles.is_empty(), "step {step}: {doubles:?}"),
            GateState::Bucket(s) => {
                let lua_state = if doubles.is_empty() {
                    vec![0, 0]
                } else {
                    doubles
                };
                prop_assert_eq!(lua_state, vec![s.tat, s.rem], "step {}: bucket {}", step, k);
            }
            GateState::Window(s) => {
                let lua_state = if doubles.is_empty() {
                    vec![0, 0, 0]
                } else {
                    doubles
                };
                prop_assert_eq!(
                    lua_state,
                    vec![s.start, s.previous, s.current],
                    "step {}: window {}",
                    step,
                    k
                );
            }
        }
        let details: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("{}d:{rec}", lua.prefix))
            .arg(0)
            .arg(-1)
            .query(lua.con)
            .unwrap();
        let kept: Vec<String> = r.pending.as_ref().map_or(Vec::new(), |p| {
            p.details.iter().map(|d| d.as_str().to_string()).collect()
        });
        prop_assert_eq!(details, kept, "step {}: details of {}", step, k);
    }
    let due: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("{}due", lua.prefix))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(lua.con)
        .unwrap();
    let due: Vec<(String, u64)> = due
        .into_iter()
        .map(|(member, score)| (member[16..].to_string(), score as u64))
        .collect();
    let model_due: Vec<(String, u64)> = m.due.iter().map(|(&(t, _), &k)| (rec_of(k), t)).collect();
    prop_assert_eq!(due, model_due, "step {}: the due index", step);
    let seen: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("{}seen", lua.prefix))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(lua.con)
        .unwrap();
    let mut seen: Vec<(String, u64)> = seen.into_iter().map(|(m, s)| (m, s as u64)).collect();
    seen.sort();
    let mut idle: Vec<(String, u64)> = m
        .records
        .iter()
        .filter(|(_, (r, _))| r.pending.is_none() && r.in_flight == 0)
        .map(|(&k, (r, _))| (rec_of(k), r.last_seen))
        .collect();
    idle.sort();
    // Every idle record, and only those, scored at or before its last event (an event
    // of an idle record leaves its score; the purge moves it on).
    let members = |v: &[(String, u64)]| v.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>();
    prop_assert_eq!(
        members(&seen),
        members(&idle),
        "step {}: the idle index",
        step
    );
    for ((member, score), (_, last_seen)) in seen.iter().zip(&idle) {
        prop_assert!(
            score <= last_seen,
            "step {}: {} scored {} after its last event {}",
            step,
            member,
            score,
            last_seen
        );
    }
    let n: Option<u64> = lua
        .get("n")
        .map(|b| String::from_utf8(b).unwrap().parse().unwrap());
    prop_assert_eq!(
        n.unwrap_or(0),
        m.records.len() as u64,
        "step {}: records",
        step
    );
    Ok(())
}

fn check(run: Run, lua: &mut Lua<'_>) -> Result<(), TestCaseError> {
    let mut m = Model {
        records: BTreeMap::new(),
        due: BTreeMap::new(),
        seq: 0,
        limits: DetailLimits {
            max_details: run.max_details,
            max_detail_bytes: MAX_DETAIL_BYTES,
            max_batch_bytes: usize::MAX,
        },
    };
    let mut claims: Vec<(String, Vec<DeliveredRecord>)> = Vec::new();
    let mut now = 1_000 * MS;
    for (step, op) in run.ops.iter().enumerate() {
        match op {
            Op::Advance(us) => now += us,
            &Op::Track { key, detail: kind } => {
                let d = detail(kind, step);
                let got = lua.track(now, key, &script_detail(&d));
                let refused = !m.records.contains_key(&key) && m.records.len() >= MAX_KEYS;
                let want = match refused {
                    true => vec![2, 1, 0, -1, now as i64, now as i64],
                    false => {
                        let (r, seq) = m
                            .records
                            .entry(key)
                            .or_insert((Record::new(run.defaults, now), 0));
                        let tracked = r.track(now, d, &m.limits, |_| true);
                        match tracked {
                            Tracked::Immediate => view_tuple(0, r),
                            Tracked::Deferred { opened, .. } => {
                                if opened {
                                    m.seq += 1;
                                    *seq = m.seq;
                                    let due_at = r.pending.as_ref().unwrap().due_at;
                                    m.due.insert((due_at, *seq), key);
                                }
                                view_tuple(1, r)
                            }
                        }
                    }
                };
                prop_assert_eq!(got, want, "step {}: track {:?}", step, op);
            }
            &Op::Claim { max } => {
                let lease_until = now + (1 << 40);
                let v: Vec<Value> = lua.call(
                    "claim",
                    &[now.to_string(), lease_until.to_string(), max.to_string()],
                );
                let slots: Vec<(u64, u64)> = m
                    .due
                    .range(..(now + 1, 0))
                    .take(max)
                    .map(|(&s, _)| s)
                    .collect();
                let mut want = Vec::new();
                for slot in slots {
                    let key = m.due.remove(&slot).unwrap();
                    let (r, _) = m.records.get_mut(&key).unwrap();
                    let batch = r.claim(now).expect("due");
                    let (c, i) = KEYS[key];
                    want.push(batch.deliver(&RecordKey {
                        category: c.into(),
                        id: i.into(),
                    }));
                }
                if want.is_empty() {
                    prop_assert!(v.is_empty(), "step {}: nothing due, {:?}", step, v);
                } else {
                    let (id, got) = parse_claim(&v);
                    prop_assert_eq!(&got, &want, "step {}: claim", step);
                    claims.push((id, want));
                }
            }
            &Op::Settle { claim, how } => {
                if claims.is_empty() {
                    continue;
                }
                let (id, records) = claims.remove(claim % claims.len());
                let answer: i64 = match how {
                    0 | 1 => {
                        for r in &records {
                            if let Some((rec, _)) = m.records.get_mut(&key_of(r)) {
                                if how == 0 {
                                    rec.processed();
                                } else {
                                    rec.dead_lettered();
                                }
                            }
                        }
                        let op = if how == 0 { "processed" } else { "dead" };
                        lua.call(op, &[id])
                    }
                    _ => {
                        for r in records {
                            let key = key_of(&r);
                            let Some((rec, seq)) = m.records.get_mut(&key) else {
                                continue;
                            };
                            if let Some(p) = &rec.pending {
                                m.due.remove(&(p.due_at, *seq));
                            }
                            let q = rec.defer_again(r, now, &m.limits, |_| {});
                            if !q.kept_place {
                                m.seq += 1;
                                *seq = m.seq;
                            }
                            m.due
                                .insert((rec.pending.as_ref().unwrap().due_at, *seq), key);
                        }
                        let cap = lua.max_details.to_string();
                        lua.call("defer", &[now.to_string(), id, cap])
                    }
                };
                prop_assert_eq!(answer, 1, "step {}: settled", step);
            }
            Op::Reconfigure { key, patch, stale } => {
                let Some((r, _)) = m.records.get_mut(key) else {
                    continue;
                };
                let current = r.settings;
                let Ok(settings) = current.patched(patch) else {
                    continue;
                };
                let expected = if *stale {
                    RecordSettings::new(
                        current.strategy,
                        current.limit + 1,
                        Duration::from_micros(current.defer_us),
                    )
                    .unwrap()
                } else {
                    current
                };
                let want = if r.reconfigure(&expected, settings) {
                    view_tuple(0, r)[1..].to_vec()
                } else {
                    vec![-1]
                };
                let (c, i) = KEYS[*key];
                let mut args = vec![c.to_string(), i.to_string()];
                args.extend(settings_args(&expected));
                args.extend(settings_args(&settings));
                let got: Vec<i64> = lua.call("configure", &args);
                prop_assert_eq!(got, want, "step {}: reconfigure {:?}", step, op);
            }
            &Op::Purge { expire } => {
                let Some(cutoff) = now.checked_sub(expire) else {
                    continue;
                };
                let idle: Vec<usize> = m
                    .records
                    .iter()
                    .filter(|(_, (r, _))| r.is_idle(now, expire))
                    .map(|(&k, _)| k)
                    .collect();
                for k in &idle {
                    m.records.remove(k);
                }
                let got: i64 = lua.call("purge", &[cutoff.to_string(), "1000".to_string()]);
                prop_assert_eq!(got, idle.len() as i64, "step {}: purged", step);
            }
            &Op::Reset { key } => {
                let (c, i) = KEYS[key];
                let lease_until = now + (1 << 40);
                let args = [now, lease_until].map(|n| n.to_string());
                let v: Vec<Value> = lua.call("reset", &[&args[..], &[c.into(), i.into()]].concat());
                let Some((r, seq)) = m.records.get_mut(&key) else {
                    prop_assert!(v.is_empty(), "step {}: reset of a missing record", step);
                    same_state(step, &m, lua)?;
                    continue;
                };
                if let Some(p) = &r.pending {
                    m.due.remove(&(p.due_at, *seq));
                }
                let reset = r.reset(now);
                if reset.remove {
                    m.records.remove(&key);
                }
                let removed = if reset.remove { "1" } else { "0" };
                prop_assert_eq!(text(&v[0]), removed, "step {}: reset removes", step);
                match reset.batch {
                    None => prop_assert_eq!(v.len(), 1, "step {}: reset claims nothing", step),
                    Some(b) => {
                        let want = vec![b.deliver(&RecordKey {
                            category: c.into(),
                            id: i.into(),
                        })];
                        let (id, got) = parse_claim(&v[1..]);
                        prop_assert_eq!(&got, &want, "step {}: reset's claim", step);
                        claims.push((id, want));
                    }
                }
            }
        }
        same_state(step, &m, lua)?;
    }
    Ok(())
}

#[test]
fn the_core_and_the_lua_script_agree_on_every_step_of_random_operations() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let con = std::cell::RefCell::new(client.get_connection().unwrap());
    let script = Script::new(TRACKER_LUA);
    let case = std::cell::Cell::new(0u64);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    runner
        .run(&run(), |run| {
            case.set(case.get() + 1);
            let mut con = con.borrow_mut();
            let mut head = vec![
                "track".to_string(),
                MAX_KEYS.to_string(),
                run.max_details.to_string(),
            ];
            head.extend(settings_args(&run.defaults));
            let mut lua = Lua {
                con: &mut con,
                script: &script,
                prefix: format!("tidegate:tracker:{{core{}}}:", case.get()),
                head,
                max_details: run.max_details,
            };
            check(run, &mut lua)
        })
        .unwrap();
}
