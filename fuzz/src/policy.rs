//! The policy short form, the policy set (`gcra:10/1s;fixed_window:1000/1d`) and the
//! policy's TOML table.

use std::collections::BTreeMap;

use tidegate::{Policy, PolicySet};

/// Parses the input as a policy and as a policy set; what parses prints to a string
/// that parses back to the same value.
pub fn short_form(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    if let Ok(policy) = text.parse::<Policy>() {
        assert_round_trip(text, &policy);
    }
    if let Ok(set) = text.parse::<PolicySet>() {
        let printed = set.to_string();
        let again: PolicySet = printed
            .parse()
            .unwrap_or_else(|e| panic!("{printed:?} (printed from {text:?}) does not parse: {e}"));
        assert_eq!(again, set, "{text:?} printed as {printed:?}");
    }
}

/// Parses the input as a TOML document of named policies (`name = "gcra:10/1s"` or
/// `name = { algorithm = "fixed_window", limit = 3, window = "10s" }`); every accepted
/// policy prints to a short form that parses back to it, through TOML too.
pub fn toml_table(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(policies) = toml::from_str::<BTreeMap<String, Policy>>(text) else {
        return;
    };
    for policy in policies.values() {
        assert_round_trip(text, policy);
    }
    let printed = toml::to_string(&policies).expect("policies serialize");
    let again: BTreeMap<String, Policy> = toml::from_str(&printed)
        .unwrap_or_else(|e| panic!("{printed:?} (printed from {text:?}) does not parse: {e}"));
    assert_eq!(again, policies, "{text:?} printed as {printed:?}");
}

fn assert_round_trip(text: &str, policy: &Policy) {
    let printed = policy.to_string();
    let again: Policy = printed
        .parse()
        .unwrap_or_else(|e| panic!("{printed:?} (printed from {text:?}) does not parse: {e}"));
    assert_eq!(&again, policy, "{text:?} printed as {printed:?}");
}
