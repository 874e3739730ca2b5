//! The Grafana dashboard `deploy/grafana/tidegate.json` against what `tidegate serve`
//! really exposes: two servers (Redis store with a Redis tracker, a failing-then-working
//! webhook sink, the Envoy front end and a low connection bound; and a memory store) are
//! driven until every kind of metric appears, `/metrics` is scraped, and every query of
//! the dashboard must name metrics that exist, with labels they carry, `rate()` only on
//! counters, histogram buckets only of histograms, legends only of grouped labels, and
//! variables the dashboard defines.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::Hook;
use common::serve::{Server, TempDir, http};
use redis_test_server::RedisServer;
use serde_json::{Value, json};

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["instance", "job"];

/// What one or more `/metrics` scrapes hold.
#[derive(Default, Debug)]
struct Scrape {
    /// Family name → `counter`, `gauge`, `histogram`, ...
    types: BTreeMap<String, String>,
    /// Sample name (`_bucket`, `_sum`, `_count` included) → the label names it carries.
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Scrape {
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    self.types.insert(name.into(), kind.into());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = self.samples.entry(line[..end].to_string()).or_default();
            if line[end..].starts_with('{') {
                let inner = &line[end + 1..line.rfind('}').unwrap()];
                for pair in split_labels(inner) {
                    let (name, _) = pair.split_once('=').unwrap();
                    labels.insert(name.trim().to_string());
                }
            }
        }
    }

    /// The family a sample name belongs to, and its type.
    fn family(&self, sample: &str) -> Option<(&str, &str)> {
        if let Some((name, kind)) = self.types.get_key_value(sample) {
            return Some((name, kind));
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && let Some((name, kind)) = self.types.get_key_value(base)
                && (kind == "histogram" || (kind == "summary" && suffix != "_bucket"))
            {
                return Some((name, kind));
            }
        }
        None
    }
}

/// `a="x",b="y,z"` into `a="x"`, `b="y,z"` (commas inside values kept).
fn split_labels(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// `expr` with the text of every string literal removed (kept: the quotes).
fn strip_strings(expr: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
            None => {
                if c == '"' || c == '\'' || c == '`' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// One metric name in a query: where, inside which function calls, with which matchers.
#[derive(Debug)]
struct Use {
    name: String,
    /// Enclosing calls and clauses, innermost last (`sum`, `rate`, `by`, ...).
    within: Vec<String>,
    /// Label names of its `{...}` matchers.
    matchers: Vec<String>,
}

/// A PromQL query's metric uses and the labels of its `by (...)` / `without (...)`.
struct Query {
    uses: Vec<Use>,
    grouped: BTreeSet<String>,
}

fn parse_query(expr: &str) -> Query {
    let text = strip_strings(expr);
    let chars: Vec<char> = text.chars().collect();
    let mut uses = Vec::new();
    let mut grouped = BTreeSet::new();
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            if j < chars.len() && chars[j] == '(' {
                if word == "by" || word == "without" {
                    let close = j + chars[j..].iter().position(|&c| c == ')').unwrap();
                    let inner: String = chars[j + 1..close].iter().collect();
                    grouped.extend(
                        inner
                            .split(',')
                            .map(|l| l.trim().to_string())
                            .filter(|l| !l.is_empty()),
                    );
                    i = close + 1;
                } else {
                    stack.push(word);
                    i = j + 1;
                }
                continue;
            }
            if word.starts_with("tidegate_") {
                let mut matchers = Vec::new();
                if j < chars.len() && chars[j] == '{' {
                    let close = j + chars[j..].iter().position(|&c| c == '}').unwrap();
                    let inner: String = chars[j + 1..close].iter().collect();
                    for m in inner.split(',').filter(|m| !m.trim().is_empty()) {
                        let name: String = m.trim().chars().take_while(|&c| is_ident(c)).collect();
                        matchers.push(name);
                    }
                    i = close + 1;
                }
                uses.push(Use {
                    name: word,
                    within: stack.clone(),
                    matchers,
                });
            }
            continue;
        }
        match c {
            '(' => stack.push(String::new()),
            ')' => {
                stack.pop();
            }
            '[' => {
                // A range (`[5m]`, `[$__rate_interval]`): skipped.
                i += chars[i..].iter().position(|&c| c == ']').unwrap();
            }
            _ => {}
        }
        i += 1;
    }
    Query { uses, grouped }
}

/// Every string under a key named `key`, anywhere in `v`, with its JSON path.
fn strings_under(v: &Value, key: &str, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{path}.{k}");
                if k == key
                    && let Some(s) = child.as_str()
                {
                    out.push((p.clone(), s.to_string()));
                }
                strings_under(child, key, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                strings_under(child, key, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `$name` and `${name}` references in `text`.
fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|&c| c.is_ascii_alphanumeric() || c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// `{{label}}` references of a legend.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}").map(|(l, _)| l.trim().to_string()))
        .collect()
}

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/tidegate.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn post(server: &Server, path: &str, body: Value) -> u16 {
    server.post(path, &body).status
}

/// Polls `server`'s `/metrics` until `done` says so (at most 20 s); the last text.
fn scrape_until(server: &Server, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = server.get("/metrics").body;
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Drives a Redis-backed server through every path that creates a metric, and a memory
/// one; returns both scrapes.
fn scrape_exercised_servers() -> Scrape {
    let redis = RedisServer::start();
    let hook = Hook::start(1); // the first delivery fails: a sink error, then a retry
    let dir = TempDir::new();
    dir.write(
        "ratelimit.yaml",
        "domain: test\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n  \
         - key: s\n    shadow_mode: true\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n",
    );
    let server = Server::with_config(
        &dir,
        &format!(
            "[server]\nmax_connections = 2\n\n\
             [store]\nurl = \"{url}\"\nnamespace = \"grafana-test\"\n\n\
             [policies]\nlogin = \"fixed_window:2/1h\"\n\n\
             [tracker]\nstore = \"redis\"\nname = \"grafana-test\"\n\
             spec = \"simple:limit=1,defer=100ms,processing_interval=50ms,max_retries=3,retry_delay=50ms\"\n\
             sink = {{ type = \"webhook\", url = \"{hook}\", timeout = \"5s\" }}\n\n\
             [envoy]\nconfig = \"ratelimit.yaml\"\ngrpc_listen = \"127.0.0.1:0\"\n",
            url = redis.url(),
            hook = hook.url,
        ),
    );
    let check = json!({"policy": "login", "key": "alice"});
    assert_eq!(post(&server, "/v1/check", check.clone()), 200);
    assert_eq!(post(&server, "/v1/check", check.clone()), 200);
    assert_eq!(post(&server, "/v1/check", check), 429);
    for _ in 0..3 {
        let event = json!({"category": "errors", "id": "E1", "details": {"n": 1}});
        assert_eq!(post(&server, "/v1/events", event), 200);
    }
    for key in ["k", "k", "s", "s"] {
        let body =
            json!({"domain": "test", "descriptors": [{"entries": [{"key": key, "value": "v"}]}]});
        let status = post(&server, "/json", body);
        assert!(status == 200 || status == 429, "/json: {status}");
    }
    // Two idle connections fill max_connections: the next one is refused with 503.
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http(&server.addr, "GET", "/healthz", &[], b"");
        if matches!(&r, Ok(r) if r.status == 503) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection was refused: {r:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    drop(idle);
    thread::sleep(Duration::from_millis(200));

    let mut scrape = Scrape::default();
    let text = scrape_until(&server, |t| {
        t.contains("tidegate_sink_errors_total")
            && t.lines().any(|l| {
                l.starts_with("tidegate_tracker_delivered_events_total ") && !l.ends_with(" 0")
            })
    });
    scrape.add(&text);

    let memory = Server::with_config(
        &dir,
        "[policies]\napi = \"token_bucket:10/1s\"\n\n\
         [tracker]\nspec = \"simple:limit=1\"\nsink = { type = \"jsonl\", path = \"-\" }\n",
    );
    assert_eq!(
        post(&memory, "/v1/check", json!({"policy": "api", "key": "k"})),
        200
    );
    scrape.add(&memory.get("/metrics").body);
    scrape
}

#[test]
fn every_metric_the_dashboard_queries_is_exposed_by_tidegate_serve() {
    let dash = dashboard();
    let scrape = scrape_exercised_servers();

    let mut exprs = Vec::new();
    strings_under(&dash["panels"], "expr", "panels", &mut exprs);
    // The variables' selectors: checked as the queries are, except for rate().
    let mut selectors = Vec::new();
    let templating = dash["templating"]["list"].as_array().unwrap();
    for (i, var) in templating.iter().enumerate() {
        if var["type"] == "query" {
            let q = var["query"]["query"].as_str().unwrap();
            // label_values(METRIC{...}, LABEL): the metric must exist and carry LABEL.
            let inner = q
                .strip_prefix("label_values(")
                .unwrap()
                .strip_suffix(')')
                .unwrap();
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let metric: String = selector
                .trim()
                .chars()
                .take_while(|&c| is_ident(c))
                .collect();
            let label = label.trim();
            let labels = scrape.samples.get(&metric);
            assert!(
                labels.is_some_and(|l| l.contains(label)) || TARGET_LABELS.contains(&label),
                "variable {}: {metric} with label {label} is not exposed",
                var["name"]
            );
            selectors.push((format!("templating.list[{i}]"), selector.to_string()));
        }
    }
    assert!(exprs.len() > 20, "only {} queries found", exprs.len());
    let selector_count = selectors.len();
    exprs.extend(selectors);
    let first_selector = exprs.len() - selector_count;

    let defined: BTreeSet<String> = templating
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (n, (path, expr)) in exprs.iter().enumerate() {
        let is_selector = n >= first_selector;
        for var in variables(expr) {
            if !var.starts_with("__") && !defined.contains(&var) {
                problems.push(format!("{path}: ${var} is not a variable of the dashboard"));
            }
        }
        let query = parse_query(expr);
        if query.uses.is_empty() {
            problems.push(format!("{path}: no tidegate metric in `{expr}`"));
        }
        let mut labels_here: BTreeSet<String> =
            TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        for u in &query.uses {
            used.insert(u.name.clone());
            let Some(labels) = scrape.samples.get(&u.name) else {
                problems.push(format!(
                    "{path}: {} is not exposed by tidegate serve",
                    u.name
                ));
                continue;
            };
            labels_here.extend(labels.iter().cloned());
            let Some((family, kind)) = scrape.family(&u.name) else {
                problems.push(format!("{path}: {} has no # TYPE", u.name));
                continue;
            };
            let rated = u
                .within
                .iter()
                .any(|f| ["rate", "irate", "increase"].contains(&f.as_str()));
            let part = &u.name[family.len()..];
            match (kind, part) {
                _ if is_selector => {}
                ("counter", _) if !rated => problems.push(format!(
                    "{path}: the counter {} is used without rate()/increase()",
                    u.name
                )),
                ("gauge", _) if rated => {
                    problems.push(format!("{path}: rate() of the gauge {}", u.name))
                }
                ("histogram", "") => problems.push(format!(
                    "{path}: the histogram {} is queried without _bucket/_sum/_count",
                    u.name
                )),
                ("histogram", "_bucket") if !u.within.iter().any(|f| f == "histogram_quantile") => {
                    problems.push(format!("{path}: {} outside histogram_quantile()", u.name))
                }
                _ => {}
            }
            for m in &u.matchers {
                if !labels.contains(m) && !TARGET_LABELS.contains(&m.as_str()) {
                    problems.push(format!("{path}: {} has no label `{m}`", u.name));
                }
            }
        }
        for g in &query.grouped {
            if !labels_here.contains(g) {
                problems.push(format!("{path}: `by ({g})` but no metric here has `{g}`"));
            }
        }
    }

    // Legends name only labels the query keeps.
    let mut targets = Vec::new();
    collect_targets(&dash["panels"], &mut targets);
    for t in &targets {
        let expr = t["expr"].as_str().unwrap_or("");
        let grouped = parse_query(expr).grouped;
        for label in legend_labels(t["legendFormat"].as_str().unwrap_or("")) {
            if !grouped.contains(&label) {
                problems.push(format!(
                    "legend {{{{{label}}}}} of `{expr}`: the query does not keep `{label}`"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The dashboard covers each area of the metrics.
    for needed in [
        "tidegate_decisions_total",
        "tidegate_decision_duration_seconds_bucket",
        "tidegate_store_errors_total",
        "tidegate_store_circuit_open",
        "tidegate_store_fallbacks_total",
        "tidegate_tracker_events_total",
        "tidegate_envoy_over_limit",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not show {needed}"
        );
    }
}

fn collect_targets<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for p in panels.as_array().into_iter().flatten() {
        if let Some(ts) = p["targets"].as_array() {
            out.extend(ts);
        }
        collect_targets(&p["panels"], out);
    }
}

#[test]
fn the_dashboard_is_importable_json_with_a_data_source_variable() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "tidegate");
    let vars = dash["templating"]["list"].as_array().unwrap();
    let ds = vars.iter().find(|v| v["type"] == "datasource").unwrap();
    assert_eq!(ds["query"], "prometheus");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());
    let mut ids = BTreeSet::new();
    let mut targets = Vec::new();
    collect_targets(&dash["panels"], &mut targets);
    for p in dash["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], ds_ref.as_str(), "{}", p["title"]);
            assert!(p["gridPos"]["w"].as_u64().unwrap() <= 24, "{}", p["title"]);
        }
    }
    for t in targets {
        assert_eq!(t["datasource"]["uid"], ds_ref.as_str(), "{t}");
    }
}

#[test]
fn queries_are_parsed_into_metrics_calls_and_labels() {
    let q = parse_query(
        r#"histogram_quantile(0.99, sum by (policy, le) (rate(tidegate_x_bucket{instance=~"$i", policy="a,b"}[$__rate_interval]))) / tidegate_y"#,
    );
    assert_eq!(q.uses.len(), 2);
    assert_eq!(q.uses[0].name, "tidegate_x_bucket");
    // `sum by (...) (` opens an unnamed group: only calls written `f(` are named.
    assert_eq!(q.uses[0].within, ["histogram_quantile", "", "rate"]);
    assert_eq!(q.uses[0].matchers, ["instance", "policy"]);
    assert_eq!(q.uses[1].name, "tidegate_y");
    assert!(q.uses[1].within.is_empty());
    assert_eq!(q.grouped, BTreeSet::from(["policy".into(), "le".into()]));
    assert_eq!(
        variables("a{x=~\"$instance\"}[${__rate_interval}]"),
        ["instance", "__rate_interval"]
    );
    assert_eq!(legend_labels("p99 {{policy}} {{ le }}"), ["policy", "le"]);
    let mut s = Scrape::default();
    s.add(
        "# TYPE tidegate_h histogram\ntidegate_h_bucket{policy=\"a,b\",le=\"0.1\"} 1\n\
         tidegate_h_sum{policy=\"a\"} 1\n# TYPE tidegate_c counter\ntidegate_c 3\n",
    );
    assert_eq!(
        s.family("tidegate_h_bucket"),
        Some(("tidegate_h", "histogram"))
    );
    assert_eq!(s.family("tidegate_c"), Some(("tidegate_c", "counter")));
    assert_eq!(s.family("tidegate_c_count"), None);
    assert_eq!(
        s.samples["tidegate_h_bucket"],
        BTreeSet::from(["policy".into(), "le".into()])
    );
}
