//! The configuration: defaults, field-naming errors, environment overrides.

use super::*;
use std::error::Error;

use crate::error_text::chain;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err(text: &str) -> ConfigError {
    let e = Config::from_toml("t.toml", text, env(&[])).unwrap_err();
    eprintln!("{e}");
    e
}

#[test]
fn the_embedded_default_is_valid() {
    let s = Config::embedded_default(env(&[])).unwrap();
    assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(
        s.store,
        StoreSettings::Memory {
            max_keys: None,
            max_memory_bytes: DEFAULT_STORE_MEMORY_BYTES as usize,
            on_full: OnFull::Reject
        }
    );
    let names: Vec<&str> = s.policies.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["api", "login", "search"]);
    assert_eq!(s.policies[2].1.policies().len(), 2);
    assert!(s.admin_token.is_none());
    assert_eq!(s.tracker.unwrap().sink, SinkSettings::Jsonl { path: None });
}

#[test]
fn policies_take_strings_tables_and_lists() {
    let s = Config::from_toml(
        "t.toml",
        r#"
        [policies]
        a = "token_bucket:100/1m,burst=20"
        b = { algorithm = "fixed_window", limit = 3, window = "10s" }
        c = ["gcra:10/1s", { algorithm = "fixed_window", limit = 1000, window = "1d" }]
        d = "gcra:10/1s;fixed_window:1000/1d"
        "#,
        env(&[]),
    )
    .unwrap();
    let text: Vec<String> = s.policies.iter().map(|(_, p)| p.to_string()).collect();
    assert_eq!(
        text,
        [
            "token_bucket:100/1m,burst=20",
            "fixed_window:3/10s",
            "gcra:10/1s;fixed_window:1000/1day",
            "gcra:10/1s;fixed_window:1000/1day"
        ]
    );
}

#[test]
fn errors_name_the_field() {
    let e = err("colour = 1\n[policies]\na = \"gcra:1/1s\"");
    assert_eq!(e.field, "colour");
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    assert!(e.message.contains("line 1, column 1"), "{e}");
    let e =
        err("[store]\nurl = \"redis://x:1\"\nonerror = \"local\"\n[policies]\na = \"gcra:1/1s\"");
    assert_eq!(e.field, "store.onerror");
    assert!(e.message.contains("unknown field `onerror`"), "{e}");
    let e = err("[policies]\nlogin = \"fixed_window:0/10s\"");
    assert_eq!(e.field, "policies.login");
    assert!(e.message.contains("`limit` must be at least 1"), "{e}");
    assert!(
        e.to_string()
            .starts_with("invalid configuration (t.toml): `policies.login`: invalid policy"),
        "{e}"
    );
    let e = err("[policies]\nlogin = { algorithm = \"fixed_window\", limit = 3 }");
    assert_eq!(e.field, "policies.login");
    let e =
        err("[store]\nurl = \"redis://x:1\"\non_error = \"open\"\n[policies]\na = \"gcra:1/1s\"");
    assert_eq!(e.field, "store.on_error");
    let e = err("[store]\ntimeout = \"50ms\"\n[policies]\na = \"gcra:1/1s\"");
    assert_eq!(e.field, "store.timeout");
    let e = err("[admin]\ntoken = \"short\"\n[policies]\na = \"gcra:1/1s\"");
    assert_eq!(e.field, "admin.token");
    let e = err("[policies]\n\"a b\" = \"gcra:1/1s\"");
    assert_eq!(e.field, "policies.a b");
    let e = err("[tracker]\nspec = \"simple:limit=0\"\nsink = { type = \"jsonl\", path = \"-\" }");
    assert_eq!(e.field, "tracker.spec");
    let e = err("[tracker]\nsink = { type = \"jsonl\", path = \"-\", colour = 1 }");
    assert_eq!(e.field, "tracker.sink");
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    let e = err("[tracker]\nsink = { type = \"redis_stream\", key = \"k\" }");
    assert_eq!(e.field, "tracker.sink.type");
    let e = err("[tracker]\nsink = { type = \"webhook\", url = \"ftp://x\" }");
    assert_eq!(e.field, "tracker.sink.url");
    let e = err(
        "[tracker]\nsink = { type = \"webhook\", url = \"http://x\", headers = { \"a b\" = \"1\" } }",
    );
    assert_eq!(e.field, "tracker.sink.headers.a b");
    let sink = "sink = { type = \"jsonl\", path = \"e.jsonl\" }";
    let e = err(&format!("[tracker]\nstore = \"redis\"\n{sink}"));
    assert_eq!(e.field, "tracker.store", "{e}");
    let e = err(&format!("[tracker]\nstore = \"disk\"\n{sink}"));
    assert_eq!(e.field, "tracker.store");
    let redis = "[store]\nurl = \"redis://127.0.0.1:1\"\n";
    let e = err(&format!(
        "{redis}[tracker]\nstore = \"redis\"\nname = \" \"\n{sink}"
    ));
    assert_eq!(e.field, "tracker.name");
    let e = err(&format!(
        "{redis}[tracker]\nstore = \"redis\"\nlease = \"soon\"\n{sink}"
    ));
    assert_eq!(e.field, "tracker.lease");
    let e = err("[log]\nformat = \"xml\"\n[policies]\na = \"gcra:1/1s\"");
    assert_eq!(e.field, "log.format");
    let e = err("listen = \"nowhere\"\n[policies]\na = \"gcra:1/1s\"");
    assert_eq!(e.field, "listen");
    let e = err("");
    assert_eq!(e.field, "policies");
    let e = err("[policies\n");
    assert_eq!(e.field, "");
}

#[test]
fn environment_overrides_apply_and_are_named_in_errors() {
    let text = "listen = \"127.0.0.1:1\"\n[policies]\na = \"gcra:1/1s\"";
    let s = Config::from_toml(
        "t.toml",
        text,
        env(&[
            ("TIDEGATE_LISTEN", "127.0.0.1:2"),
            ("TIDEGATE_ADMIN__TOKEN", "1234567890123456"),
            ("TIDEGATE_POLICIES__B", "fixed_window:3/10s"),
            ("TIDEGATE_MAX_KEY_BYTES", "64"),
            ("TIDEGATE_CONFIG", "ignored.toml"),
            ("OTHER", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(s.listen.port(), 2);
    assert_eq!(s.admin_token.as_deref(), Some("1234567890123456"));
    assert_eq!(s.policies.len(), 2);
    assert_eq!(s.max_key_bytes, 64);
    let mut s = Config::from_toml("t.toml", text, env(&[])).unwrap();
    s.set_listen("127.0.0.1:3".parse().unwrap());
    assert_eq!(s.listen().port(), 3);
    let e =
        Config::from_toml("t.toml", text, env(&[("TIDEGATE_STORE__TIMEOUT", "50ms")])).unwrap_err();
    assert_eq!(e.field, "store.timeout");
    assert!(
        e.message.ends_with("(set by TIDEGATE_STORE__TIMEOUT)"),
        "{e}"
    );
    let e = Config::from_toml("t.toml", text, env(&[("TIDEGATE_COLOUR", "red")])).unwrap_err();
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    assert!(e.message.contains("TIDEGATE_COLOUR"), "{e}");
    let e = Config::from_toml("t.toml", text, env(&[("TIDEGATE_POLICIES__A__LIMIT", "3")]))
        .unwrap_err();
    assert_eq!(e.field, "policies.a.limit");
}

#[test]
fn a_placeholder_admin_token_is_refused() {
    for token in [
        "change-me-to-a-long-random-secret",
        "CHANGEME-0123456789abcdef",
        "please_change_me_0123456789",
    ] {
        let e = err(&format!(
            "[admin]\ntoken = \"{token}\"\n[policies]\na = \"gcra:1/1s\""
        ));
        assert_eq!(e.field, "admin.token", "{token}");
        assert!(e.message.starts_with("is a placeholder"), "{e}");
    }
    let s = Config::from_toml(
        "t.toml",
        "[admin]\ntoken = \"0f3c9a1e7b2d4c6e8a0b\"\n[policies]\na = \"gcra:1/1s\"",
        env(&[]),
    )
    .unwrap();
    assert_eq!(s.admin_token.as_deref(), Some("0f3c9a1e7b2d4c6e8a0b"));
}

#[test]
fn variables_of_other_subcommands_are_ignored() {
    let text = "[policies]\na = \"gcra:1/1s\"";
    let s = Config::from_toml(
        "t.toml",
        text,
        env(&[
            ("TIDEGATE_QUEUE__NAME", "wallet-audit"),
            ("TIDEGATE_QUEUE__TIMEOUT", "5s"),
            ("TIDEGATE_JOB_ID", "7"),
            ("TIDEGATE_STORE__URL", "redis://127.0.0.1:6379"),
        ]),
    )
    .unwrap();
    assert!(matches!(s.store, StoreSettings::Redis { .. }));
}

#[test]
fn old_variable_names_and_unknown_queue_variables_are_refused_by_name() {
    let text = "[policies]\na = \"gcra:1/1s\"";
    let e = Config::from_toml("t.toml", text, env(&[("TIDEGATE_QUEUE", "audit")])).unwrap_err();
    assert_eq!(
        chain(&e),
        "invalid configuration (t.toml): environment variable TIDEGATE_QUEUE is no longer \
         read: set TIDEGATE_QUEUE__NAME instead (every subcommand reads the same names, \
         see docs/CONFIGURATION.md)"
    );
    let e = Config::from_toml(
        "t.toml",
        text,
        env(&[("TIDEGATE_REDIS_URL", "redis://127.0.0.1:6379")]),
    )
    .unwrap_err();
    assert!(chain(&e).contains("set TIDEGATE_STORE__URL instead"), "{e}");
    let e = Config::from_toml("t.toml", text, env(&[("TIDEGATE_QUEUE__NAEM", "a")])).unwrap_err();
    assert_eq!(
        e.source().map(ToString::to_string).unwrap_or_default(),
        "unknown environment variable TIDEGATE_QUEUE__NAEM: the queue reads \
         TIDEGATE_QUEUE__NAME, TIDEGATE_QUEUE__TIMEOUT"
    );
}

/// A one-domain envoyproxy/ratelimit YAML in a fresh file; its path.
fn envoy_yaml(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tidegate-config-envoy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const ENVOY_YAML: &str = "domain: api\ndescriptors:\n  - key: user\n    rate_limit: { unit: second, requests_per_unit: 5 }\n";

#[test]
fn envoy_defaults_to_envoyproxy_ratelimits_grpc_port_and_no_headers() {
    let yaml = envoy_yaml("defaults.yaml", ENVOY_YAML);
    let s = Config::from_toml(
        "t.toml",
        &format!("[envoy]\nconfig = \"{}\"\n", yaml.display()),
        env(&[]),
    )
    .unwrap();
    let e = s.envoy.unwrap();
    assert_eq!(e.grpc_listen, "0.0.0.0:8081".parse().unwrap());
    assert!(!e.all_or_nothing && !e.merge_domains);
    assert_eq!(e.headers, tidegate_envoy::HeaderOptions::default());
    assert_eq!(e.namespace, None);
    assert!(s.policies.is_empty(), "an [envoy] section alone is enough");
}

#[test]
fn envoy_keys_are_set_by_tidegate_envoy_variables() {
    let yaml = envoy_yaml("env.yaml", ENVOY_YAML);
    let s = Config::from_toml(
        "t.toml",
        "[policies]\na = \"fixed_window:1/1s\"\n",
        env(&[
            ("TIDEGATE_ENVOY__CONFIG", yaml.to_str().unwrap()),
            ("TIDEGATE_ENVOY__GRPC_LISTEN", "127.0.0.1:9081"),
            ("TIDEGATE_ENVOY__ALL_OR_NOTHING", "true"),
            ("TIDEGATE_ENVOY__HEADERS", "both"),
        ]),
    )
    .unwrap();
    let e = s.envoy.unwrap();
    assert_eq!(e.grpc_listen, "127.0.0.1:9081".parse().unwrap());
    assert!(e.all_or_nothing);
    assert_eq!(
        e.headers,
        tidegate_envoy::HeaderOptions::default()
            .ietf(true)
            .x_ratelimit(true)
    );
}

#[test]
fn envoy_errors_name_the_field_and_the_reason() {
    let yaml = envoy_yaml("errors.yaml", ENVOY_YAML);
    let with = |extra: &str| {
        err(&format!(
            "[envoy]\nconfig = \"{}\"\n{extra}",
            yaml.display()
        ))
    };
    let e = with("headers = \"all\"\n");
    assert_eq!(e.field(), "envoy.headers");
    assert!(e.reason().contains("off, ietf, x-ratelimit, both"), "{e}");
    let e = with("grpc_listen = \"8081\"\n");
    assert_eq!(e.field(), "envoy.grpc_listen");
    let e = with("namespace = \"rl\"\n");
    assert_eq!(e.field(), "envoy.namespace");
    assert!(e.reason().contains("Redis store"), "{e}");
    let e = with(
        "[store]\nurl = \"redis://127.0.0.1:6379\"\n[policies]\nenvoy = \"fixed_window:1/1s\"\n",
    );
    assert_eq!(e.field(), "envoy.namespace");
    let e = with("colour = \"blue\"\n");
    assert!(e.to_string().contains("colour"), "{e}");
    let e = err("[envoy]\n");
    assert_eq!(e.field(), "envoy.config");
    let bad = envoy_yaml(
        "bad.yaml",
        "domain: api\ndescriptors:\n  - key: user\n    rate_limit: { unit: fortnight }\n",
    );
    let e = err(&format!("[envoy]\nconfig = \"{}\"\n", bad.display()));
    assert_eq!(e.field(), "envoy.config");
    assert!(e.reason().contains("bad.yaml"), "{e}");
    assert!(e.reason().contains("line 3"), "{e}");
    let e = err("[envoy]\nconfig = \"/nonexistent/ratelimit\"\n");
    assert_eq!(e.field(), "envoy.config");
    assert!(e.reason().contains("/nonexistent/ratelimit"), "{e}");
}

#[test]
fn dashboard_queues_need_redis_the_admin_token_and_usable_names() {
    const ADMIN: &str = "[admin]\ntoken = \"0f3c9a1e7b2d4c6e8a0b\"\n";
    const REDIS: &str = "[store]\nurl = \"redis://127.0.0.1:1\"\n";
    const POLICIES: &str = "[policies]\na = \"gcra:1/1s\"\n";
    let with = |dashboard: &str| format!("{REDIS}{ADMIN}[dashboard]\n{dashboard}\n{POLICIES}");
    let s = Config::from_toml("t.toml", &with("queues = [\"emails\", \"sms\"]"), env(&[])).unwrap();
    assert_eq!(s.dashboard_queues, ["emails", "sms"]);
    let s = Config::from_toml(
        "t.toml",
        &format!("{REDIS}{ADMIN}{POLICIES}"),
        env(&[("TIDEGATE_DASHBOARD__QUEUES", "emails, sms")]),
    )
    .unwrap();
    assert_eq!(s.dashboard_queues, ["emails", "sms"]);
    let s = Config::from_toml("t.toml", &format!("{ADMIN}{POLICIES}"), env(&[])).unwrap();
    assert!(s.dashboard_queues.is_empty());

    let e = err(&format!(
        "{ADMIN}[dashboard]\nqueues = [\"emails\"]\n{POLICIES}"
    ));
    assert_eq!(e.field, "dashboard.queues");
    assert!(e.message.contains("needs the Redis store"), "{e}");
    let e = err(&format!(
        "{REDIS}[dashboard]\nqueues = [\"emails\"]\n{POLICIES}"
    ));
    assert_eq!(e.field, "dashboard.queues");
    assert!(e.message.contains("needs admin.token"), "{e}");
    let e = err(&with("queues = [\"a b\"]"));
    assert_eq!(e.field, "dashboard.queues");
    assert!(e.message.contains("`a b` must not contain ' '"), "{e}");
    let e = err(&with("queues = [\"emails\", \"emails\"]"));
    assert!(e.message.contains("names `emails` twice"), "{e}");
    let e = err(&with("queues = [\"\"]"));
    assert!(e.message.contains("must not be empty"), "{e}");
    let e = err(&with("watch = [\"emails\"]"));
    assert_eq!(e.field, "dashboard.watch");
    assert!(e.message.contains("unknown field `watch`"), "{e}");
}

#[test]
fn top_is_on_with_a_thousand_keys_unless_turned_off_and_its_capacity_is_checked() {
    let policies = "[policies]\na = \"gcra:1/1s\"";
    let parse = |text: &str, vars: &[(&str, &str)]| Config::from_toml("t.toml", text, env(vars));
    assert_eq!(parse(policies, &[]).unwrap().top, Some(1000));
    let s = parse(&format!("[top]\ncapacity = 50\n{policies}"), &[]).unwrap();
    assert_eq!(s.top, Some(50));
    assert!(
        s.summary().contains("top: on (capacity 50 keys"),
        "{}",
        s.summary()
    );
    let s = parse(&format!("[top]\nenabled = false\n{policies}"), &[]).unwrap();
    assert_eq!(s.top, None);
    let s = parse(policies, &[("TIDEGATE_TOP__ENABLED", "false")]).unwrap();
    assert_eq!(s.top, None);
    for bad in ["0", "100001"] {
        let e = err(&format!("[top]\ncapacity = {bad}\n{policies}"));
        assert_eq!(e.field, "top.capacity");
        assert!(
            e.message
                .contains(&format!("must be a number from 1 to 100000, got {bad}")),
            "{e}"
        );
    }
    let e = err(&format!("[top]\nsize = 5\n{policies}"));
    assert_eq!(e.field, "top.size");
    let e = parse(policies, &[("TIDEGATE_TOP__ENABLED", "maybe")]).unwrap_err();
    assert_eq!(e.field, "top.enabled");
}

#[test]
fn shutdown_delay_is_none_by_default_a_duration_when_set_and_never_zero() {
    let policy = "[policies]\napi = \"gcra:10/1s\"\n";
    let s = Config::from_toml("t.toml", policy, env(&[])).unwrap();
    assert_eq!(s.shutdown_delay, std::time::Duration::ZERO);
    let s = Config::from_toml(
        "t.toml",
        &format!("shutdown_delay = \"5s\"\n{policy}"),
        env(&[]),
    )
    .unwrap();
    assert_eq!(s.shutdown_delay, std::time::Duration::from_secs(5));
    let e = err(&format!("shutdown_delay = \"0s\"\n{policy}")).to_string();
    assert!(e.contains("shutdown_delay"), "{e}");
}
