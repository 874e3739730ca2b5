//! The descriptor tree of one domain, and envoyproxy/ratelimit's matching rules on it.

use std::sync::Arc;

use super::raw::{RawDescriptor, composite_key};
use super::rule::{Rule, RuleRef};
use crate::error::ConfigError;
use crate::map::Map;

/// One entry of a request's descriptor: a key and its value.
pub type Entry<'a> = (&'a str, &'a str);

/// One level of the tree: the descriptors below a node, by composite key.
#[derive(Debug, Default)]
pub(crate) struct Node {
    children: Map<String, Node>,
    /// Composite keys containing `*`, in configuration order, split on `*`.
    wildcards: Vec<(String, Vec<String>)>,
    rule: Option<RuleRef>,
    value_to_metric: bool,
    share_threshold: bool,
}

/// The rule a request descriptor matched, and the name its statistics go under.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Matched {
    /// The rule.
    pub rule: RuleRef,
    /// The statistics key: the rule's path, or with `detailed_metric` / `value_to_metric`
    /// the request's values.
    pub stat_key: String,
    /// Per entry, the wildcard pattern that stands for its value in the counter key: set
    /// for entries matched by a wildcard with `share_threshold`, so that every value
    /// matching the pattern shares one counter.
    pub shared_values: Vec<Option<String>>,
}

impl Node {
    /// Adds `descriptors` (read from `file`) below this node, whose path is `path`.
    pub(crate) fn add(
        &mut self,
        file: &str,
        path: &str,
        descriptors: Vec<RawDescriptor>,
    ) -> Result<(), ConfigError> {
        for d in descriptors {
            let f = d.fields;
            let key = composite_key(&f.key, &f.value);
            let child_path = format!("{path}.{key}");
            if self.children.contains_key(&key) {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    line: None,
                    field: "key".into(),
                    message: format!("duplicate descriptor composite key '{child_path}'"),
                });
            }
            let rule = d.limit.map(|limit| {
                let r = f.rate_limit.as_ref();
                Arc::new(Rule {
                    path: child_path.clone(),
                    limit,
                    name: r.map(|r| r.name.clone()).filter(|n| !n.is_empty()),
                    replaces: r
                        .map(|r| r.replaces.iter().map(|x| x.name.clone()).collect())
                        .unwrap_or_default(),
                    shadow_mode: f.shadow_mode,
                    quota_mode: f.quota_mode,
                    detailed_metric: f.detailed_metric,
                    metadata: f.metadata.clone(),
                })
            });
            let mut node = Node {
                rule,
                value_to_metric: f.value_to_metric,
                share_threshold: f.share_threshold,
                ..Node::default()
            };
            node.add(file, &child_path, f.descriptors)?;
            if key.contains('*') {
                let parts = key.split('*').map(str::to_string).collect();
                self.wildcards.push((key.clone(), parts));
            }
            self.children.insert(key, node);
        }
        Ok(())
    }

    /// Whether no descriptor is configured below this node.
    pub(crate) fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Appends every rule of this subtree.
    pub(crate) fn collect(&self, out: &mut Vec<RuleRef>) {
        if let Some(r) = &self.rule {
            out.push(Arc::clone(r));
        }
        for c in self.children.values() {
            c.collect(out);
        }
    }

    /// The child matching `entry`: `key_value` exactly, else the first wildcard pattern
    /// matching `key_value`, else `key` alone. Also says how it matched.
    fn child(&self, key: &str, value: &str) -> Option<(&Node, How<'_>)> {
        let mut kv = String::with_capacity(key.len() + 1 + value.len());
        kv.push_str(key);
        kv.push('_');
        kv.push_str(value);
        if let Some(n) = self.children.get(&kv) {
            return Some((n, How::Value));
        }
        for (pattern, parts) in &self.wildcards {
            if wildcard_match(parts, &kv) {
                let n = &self.children[pattern];
                let shown = pattern
                    .strip_prefix(key)
                    .and_then(|p| p.strip_prefix('_'))
                    .unwrap_or(pattern);
                return Some((n, How::Wildcard(shown)));
            }
        }
        self.children.get(key).map(|n| (n, How::Key))
    }

    /// The rule for a request descriptor of `entries`, as envoyproxy/ratelimit finds it:
    /// walk down one level per entry; the rule is the one at the node the last entry
    /// reaches (a descriptor of N entries matches a rule nested N deep, never one above
    /// or below); at each level `key_value` beats a wildcard beats `key` alone, without
    /// backtracking.
    pub(crate) fn find(&self, domain: &str, entries: &[Entry<'_>]) -> Option<Matched> {
        let mut level = self;
        let mut found = None;
        // The steps taken, kept to build the one statistics name the rule needs.
        let mut steps: Vec<(&Node, How<'_>)> = Vec::with_capacity(entries.len());
        for (i, &(key, value)) in entries.iter().enumerate() {
            let next = level.child(key, value);
            if let Some((node, how)) = next {
                steps.push((node, how));
                if i == entries.len() - 1
                    && let Some(rule) = &node.rule
                {
                    found = Some(Arc::clone(rule));
                }
            }
            match next {
                Some((node, _)) if !node.children.is_empty() => level = node,
                _ => break,
            }
        }
        let rule = found?;
        let mut shared_values = vec![None; entries.len()];
        for (i, (node, how)) in steps.iter().enumerate() {
            if let How::Wildcard(pattern) = how
                && node.share_threshold
            {
                shared_values[i] = Some(pattern.to_string());
            }
        }
        let stat_key = stat_key(domain, entries, &steps, rule.detailed_metric);
        Some(Matched {
            stat_key,
            rule,
            shared_values,
        })
    }
}

/// The statistics name of a descriptor that matched a rule by `steps`: the domain, then
/// per entry its key and the value shown for it: with `detailed`, the request's value (or
/// the pattern of a wildcard with `share_threshold`); otherwise the configured value or
/// pattern, or the request's value where `value_to_metric` asks for it.
fn stat_key(
    domain: &str,
    entries: &[Entry<'_>],
    steps: &[(&Node, How<'_>)],
    detailed: bool,
) -> String {
    let mut name = String::with_capacity(
        domain.len()
            + entries
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    name.push_str(domain);
    for (&(key, value), (node, how)) in entries.iter().zip(steps) {
        let shown = if detailed {
            match how {
                How::Wildcard(pattern) if node.share_threshold => Some(*pattern),
                _ => Some(value),
            }
        } else {
            match how {
                How::Wildcard(pattern) if node.share_threshold => Some(*pattern),
                How::Wildcard(_) if node.value_to_metric => Some(value),
                How::Wildcard(pattern) => Some(*pattern),
                How::Value => Some(value),
                How::Key if node.value_to_metric => Some(value),
                How::Key => None,
            }
        };
        name.push('.');
        name.push_str(key);
        if let Some(v) = shown.filter(|v| !v.is_empty()) {
            name.push('_');
            name.push_str(v);
        }
    }
    name
}

/// How a level matched a request entry.
#[derive(Clone, Copy)]
enum How<'a> {
    Value,
    /// The pattern's value part (after `key_`).
    Wildcard(&'a str),
    Key,
}

/// Whether `text` matches a pattern split on `*` (each `*` matching any run of
/// characters, possibly empty).
pub(crate) fn wildcard_match(parts: &[String], text: &str) -> bool {
    let (first, rest) = match parts.split_first() {
        Some(x) => x,
        None => return text.is_empty(),
    };
    let Some(mut tail) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return tail.is_empty();
    };
    if tail.len() < last.len() + middle.iter().map(String::len).sum::<usize>() {
        return false;
    }
    let Some(body) = tail.strip_suffix(last.as_str()) else {
        return false;
    };
    tail = body;
    for part in middle {
        match tail.find(part.as_str()) {
            Some(at) => tail = &tail[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        let parts: Vec<String> = pattern.split('*').map(str::to_string).collect();
        wildcard_match(&parts, text)
    }

    #[test]
    fn wildcards_match_prefixes_and_inner_runs() {
        assert!(m("path_/foo*", "path_/foo"));
        assert!(m("path_/foo*", "path_/foo/bar"));
        assert!(!m("path_/foo*", "path_/fo"));
        assert!(m("path_a*b*c", "path_aXbYc"));
        assert!(m("path_a*b*c", "path_abc"));
        assert!(!m("path_a*b*c", "path_acb"));
        assert!(!m("path_ab*ba", "path_aba"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exact2"));
    }
}
