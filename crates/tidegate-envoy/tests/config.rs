//! The configuration: which limit each request descriptor gets and every load error, the
//! facts of envoyproxy/ratelimit's own configuration tests, on fixtures written here.

use tidegate_envoy::config::{Config, LoadOptions, RuleLimit};
use tidegate_envoy::{ConfigError, Unit};

const SHOP: &str = r#"
domain: shop
descriptors:
  # A key/value with no limit of its own, and limits one level down.
  - key: tenant
    value: acme
    descriptors:
      - key: route
        rate_limit: { unit: second, requests_per_unit: 5 }
      - key: route
        value: checkout
        rate_limit: { unit: second, requests_per_unit: 10 }
  # A key alone, and a more specific key/value beside it.
  - key: client
    rate_limit: { unit: minute, requests_per_unit: 20 }
  - key: client
    value: partner
    rate_limit: { unit: MINUTE, requests_per_unit: 30 }
  # A key/value with no limit: lets that value through unlimited by the key-only rule.
  - key: client
    value: internal
  - key: region
    rate_limit: { unit: Hour, requests_per_unit: 1 }
  - key: plan
    rate_limit: { name: plan_daily, unit: day, requests_per_unit: 1 }
  - key: cart
    value: big
    rate_limit: { unit: day, requests_per_unit: 15 }
    descriptors:
      - key: item
        value: tv
        rate_limit: { unit: day, requests_per_unit: 25 }
  - key: health
    rate_limit: { unlimited: true }
  - key: user
    detailed_metric: true
    rate_limit: { unit: week, requests_per_unit: 70 }
  - key: path
    value: /api/*
    rate_limit: { unit: month, requests_per_unit: 40 }
  - key: path
    value: /static/*/img*
    rate_limit: { unit: year, requests_per_unit: 50 }
  - key: path
    rate_limit: { unit: second, requests_per_unit: 60 }
  - key: burst
    policy: "gcra:10/1s;fixed_window:1000/1d"
"#;

fn shop() -> Config {
    Config::from_yaml("shop.yaml", SHOP).unwrap()
}

/// `(requests_per_unit, unit)` of the rule `entries` match in `domain`, `None` for no
/// rule, `Some((u32::MAX, Second))` standing for unlimited.
fn limit_of(config: &Config, domain: &str, entries: &[(&str, &str)]) -> Option<(u32, Unit)> {
    let m = config.find(domain, entries)?;
    Some(match &m.rule.limit {
        RuleLimit::Units {
            requests_per_unit,
            unit,
        } => (*requests_per_unit, *unit),
        RuleLimit::Unlimited => (u32::MAX, Unit::Second),
        other => panic!("unexpected {other:?}"),
    })
}

#[test]
fn each_descriptor_gets_the_most_specific_rule_at_its_depth() {
    let c = shop();
    type Case = (&'static [(&'static str, &'static str)], Option<(u32, Unit)>);
    let table: &[Case] = &[
        // Unknown domain, or a value with no rule.
        (&[("tenant", "other")], None),
        // A node without a rate limit of its own gives none.
        (&[("tenant", "acme")], None),
        // Request deeper than the configuration: no limit.
        (&[("client", "partner"), ("route", "x")], None),
        (&[("cart", "big"), ("item", "radio")], None),
        // Two deep: key alone, and key/value beating it.
        (
            &[("tenant", "acme"), ("route", "search")],
            Some((5, Unit::Second)),
        ),
        (
            &[("tenant", "acme"), ("route", "checkout")],
            Some((10, Unit::Second)),
        ),
        // One deep: key alone, key/value beating it, and a key/value without limit.
        (&[("client", "someone")], Some((20, Unit::Minute))),
        (&[("client", "partner")], Some((30, Unit::Minute))),
        (&[("client", "internal")], None),
        (&[("region", "eu")], Some((1, Unit::Hour))),
        (&[("plan", "free")], Some((1, Unit::Day))),
        // A rule at each of two depths: the depth of the request decides.
        (&[("cart", "big")], Some((15, Unit::Day))),
        (&[("cart", "big"), ("item", "tv")], Some((25, Unit::Day))),
        (&[("health", "x")], Some((u32::MAX, Unit::Second))),
        (&[("user", "alice")], Some((70, Unit::Week))),
        // Wildcards: a trailing `*` is a prefix match, inner `*`s match any run; an
        // exact or wildcard value beats the key alone.
        (&[("path", "/api/")], Some((40, Unit::Month))),
        (&[("path", "/api/v1/orders")], Some((40, Unit::Month))),
        (&[("path", "/static/css/img.png")], Some((50, Unit::Year))),
        (&[("path", "/static/img")], Some((60, Unit::Second))),
        (&[("path", "/other")], Some((60, Unit::Second))),
    ];
    for (entries, expected) in table {
        assert_eq!(limit_of(&c, "shop", entries), *expected, "{entries:?}");
    }
    assert_eq!(limit_of(&c, "elsewhere", &[("client", "x")]), None);
    let plan = c.find("shop", &[("plan", "free")]).unwrap();
    assert_eq!(plan.rule.name.as_deref(), Some("plan_daily"));
    assert_eq!(c.find("shop", &[("region", "eu")]).unwrap().rule.name, None);
}

#[test]
fn value_to_metric_puts_request_values_in_statistics_keys() {
    let c = Config::from_yaml(
        "v.yaml",
        "domain: d\ndescriptors:\n  - key: route\n    value_to_metric: true\n    descriptors:\n      - key: method\n        rate_limit: { unit: second, requests_per_unit: 1 }\n  - key: host\n    value: api*\n    value_to_metric: true\n    rate_limit: { unit: second, requests_per_unit: 1 }\n",
    )
    .unwrap();
    let key = |e: &[(&str, &str)]| c.find("d", e).unwrap().stat_key;
    assert_eq!(
        key(&[("route", "/a"), ("method", "GET")]),
        "d.route_/a.method"
    );
    assert_eq!(key(&[("host", "api.example")]), "d.host_api.example");
}

#[test]
fn an_error_reads_as_file_field_reason_and_position() {
    let e = Config::from_yaml(
        "bad.yaml",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: fortnight\n      requests_per_unit: 1\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        // The path and position are the descriptor's (`key: k` of `- key: k`).
        "bad.yaml: descriptors[0]: `rate_limit.unit`: invalid rate limit unit 'fortnight' \
         (valid: second, minute, hour, day, week, month, year) at line 3 column 5"
    );
}

#[test]
fn an_error_in_a_later_descriptor_is_marked_with_that_descriptors_line() {
    let yaml = "domain: d\ndescriptors:\n  - key: a\n    rate_limit:\n      unit: second\n      requests_per_unit: 1\n  - key: b\n    descriptors:\n      - key: c\n        rate_limit:\n          unit: fortnight\n          requests_per_unit: 1\n";
    let e = Config::from_yaml("later.yaml", yaml).unwrap_err();
    assert_eq!(e.line(), Some(9), "{e}");
}

#[test]
fn a_policy_descriptor_carries_a_tidegate_policy_set() {
    let c = shop();
    let m = c.find("shop", &[("burst", "k")]).unwrap();
    match &m.rule.limit {
        RuleLimit::Policy(set) => {
            assert_eq!(set.to_string(), "gcra:10/1s;fixed_window:1000/1day")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn statistics_keys_name_the_rule_or_with_detailed_metric_the_values() {
    let c = shop();
    let key = |e: &[(&str, &str)]| c.find("shop", e).unwrap().stat_key;
    assert_eq!(key(&[("client", "someone")]), "shop.client");
    assert_eq!(key(&[("client", "partner")]), "shop.client_partner");
    assert_eq!(key(&[("user", "alice")]), "shop.user_alice");
    assert_eq!(key(&[("path", "/api/v2")]), "shop.path_/api/*");
    assert_eq!(
        key(&[("tenant", "acme"), ("route", "search")]),
        "shop.tenant_acme.route"
    );
}

fn load_err(files: &[(&str, &str)], merge: bool) -> ConfigError {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    Config::from_yaml_files(&files, LoadOptions::default().merge_domains(merge)).unwrap_err()
}

#[test]
fn load_errors_name_the_file_the_field_and_the_line() {
    let cases: &[(&str, &str, &str, Option<usize>)] = &[
        (
            "descriptors: []\n",
            "config file cannot have empty domain",
            "domain",
            None,
        ),
        (
            "domain: d\ndescriptors:\n  - value: v\n    rate_limit: { unit: second, requests_per_unit: 1 }\n",
            "descriptor has empty key",
            "key",
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1 }\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 2 }\n",
            "duplicate descriptor composite key 'k'",
            "key",
            // The line of the list holding the two.
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: fortnight\n      requests_per_unit: 1\n",
            "invalid rate limit unit 'fortnight'",
            "rate_limit.unit",
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: { requests_per_unit: 1 }\n",
            "invalid rate limit unit ''",
            "rate_limit.unit",
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unlimited: true, unit: second }\n",
            "should not specify rate limit unit when unlimited",
            "rate_limit.unit",
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: { name: a, unit: second, requests_per_unit: 1, replaces: [{ name: a }] }\n",
            "replaces should not contain name of same descriptor",
            "rate_limit.replaces",
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: { name: a, unit: second, requests_per_unit: 1, replaces: [{ name: '' }] }\n",
            "should not have an empty replaces entry",
            "rate_limit.replaces",
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    ratelimit: { unit: second, requests_per_unit: 1 }\n",
            "unknown field `ratelimit`",
            "",
            Some(4),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1, unlimted: true }\n",
            "unknown field `unlimted`",
            "",
            Some(4),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    value: exact\n    share_threshold: true\n    rate_limit: { unit: second, requests_per_unit: 1 }\n",
            "can only be used with wildcard values",
            "share_threshold",
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    policy: \"gcra:0/1s\"\n",
            "`limit` must be at least 1",
            "policy",
            Some(3),
        ),
        (
            "domain: d\ndescriptors:\n  - just a string\n",
            "invalid type",
            "",
            Some(3),
        ),
        ("domain: d\ndescriptors: [\n", "", "", Some(3)),
    ];
    for (yaml, message, field, line) in cases {
        let e = load_err(&[("bad.yaml", yaml)], false);
        let text = e.to_string();
        assert!(text.starts_with("bad.yaml"), "{text}");
        assert!(text.contains(message), "{yaml:?}: {text}");
        if !field.is_empty() {
            assert!(text.contains(&format!("`{field}`")), "{yaml:?}: {text}");
        }
        if let Some(line) = line {
            assert!(
                e.line().is_some_and(|l| l >= *line && l <= line + 2),
                "{yaml:?}: line {:?}, wanted about {line}: {text}",
                e.line()
            );
        }
        assert_eq!(e.file(), Some("bad.yaml"));
    }
}

#[test]
fn a_domain_in_two_files_is_an_error_unless_merged() {
    let a = "domain: d\ndescriptors:\n  - key: a\n    rate_limit: { unit: second, requests_per_unit: 1 }\n";
    let b = "domain: d\ndescriptors:\n  - key: b\n    rate_limit: { unit: second, requests_per_unit: 2 }\n";
    let e = load_err(&[("a.yaml", a), ("b.yaml", b)], false);
    assert_eq!(
        e.to_string(),
        "b.yaml:1: `domain`: duplicate domain 'd' in config file"
    );
    let files = vec![
        ("a.yaml".to_string(), a.to_string()),
        ("b.yaml".to_string(), b.to_string()),
    ];
    let c = Config::from_yaml_files(&files, LoadOptions::default().merge_domains(true)).unwrap();
    assert_eq!(limit_of(&c, "d", &[("a", "x")]), Some((1, Unit::Second)));
    assert_eq!(limit_of(&c, "d", &[("b", "x")]), Some((2, Unit::Second)));
    // Merged, a key in both files is still a duplicate.
    let e = load_err(&[("a.yaml", a), ("a2.yaml", a)], true);
    assert!(
        e.to_string()
            .contains("duplicate descriptor composite key 'd.a'"),
        "{e}"
    );
}

#[test]
fn bare_numbers_and_booleans_are_read_as_strings_and_metadata_is_kept() {
    let c = Config::from_yaml(
        "n.yaml",
        "domain: d\ndescriptors:\n  - key: status\n    value: 200\n    metadata: { team: core, tier: 1 }\n    rate_limit: { unit: second, requests_per_unit: 3 }\n",
    )
    .unwrap();
    let m = c.find("d", &[("status", "200")]).unwrap();
    assert!(m.rule.metadata.is_some());
}

#[test]
fn a_directory_loads_its_yaml_files_in_name_order() {
    let dir = std::env::temp_dir().join(format!("tidegate-envoy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), "domain: one\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1 }\n").unwrap();
    std::fs::write(dir.join("b.yml"), "domain: two\ndescriptors:\n  - key: k\n    rate_limit: { unit: minute, requests_per_unit: 2 }\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml").unwrap();
    std::fs::write(dir.join(".hidden.yaml"), "not: yaml: at all").unwrap();
    let c = Config::load(&dir).unwrap();
    assert_eq!(limit_of(&c, "one", &[("k", "v")]), Some((1, Unit::Second)));
    assert_eq!(limit_of(&c, "two", &[("k", "v")]), Some((2, Unit::Minute)));
    std::fs::write(dir.join("c.yaml"), "domain: one\n").unwrap();
    let e = Config::load(&dir).unwrap_err();
    assert!(
        e.to_string().contains("c.yaml") && e.to_string().contains("duplicate domain"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(Config::load(&dir), Err(ConfigError::Read { .. })));
}
