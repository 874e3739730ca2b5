//! The configuration: envoyproxy/ratelimit's YAML, from a file or a directory of files.
//!
//! - `raw`: the files as written (unknown fields refused, each descriptor checked as read,
//!   so that errors carry their line);
//! - [`rule`]: what a descriptor limits requests to;
//! - `tree`: one domain's descriptors and the matching rules.

mod raw;
pub mod rule;
mod tree;

use std::path::{Path, PathBuf};

pub use rule::{Rule, RuleLimit, RuleRef};
pub use tree::{Entry, Matched};

use crate::error::ConfigError;
use crate::map::Map;
use raw::RawFile;
use tree::Node;

/// How files are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Merge files of the same domain (envoyproxy/ratelimit's `MERGE_DOMAIN_CONFIG`);
    /// by default a domain in two files is an error, as there.
    pub merge_domains: bool,
}

impl LoadOptions {
    /// With or without merging the files of one domain.
    pub fn merge_domains(mut self, on: bool) -> Self {
        self.merge_domains = on;
        self
    }
}

/// A loaded configuration: every domain's descriptor tree.
#[derive(Debug, Default)]
pub struct Config {
    domains: Map<String, Node>,
    source: Option<PathBuf>,
    options: LoadOptions,
}

impl Config {
    /// Loads a YAML file, or every `*.yaml` / `*.yml` file of a directory (in name order,
    /// hidden files skipped), with the default options.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Self::load_with(path, LoadOptions::default())
    }

    /// Loads a file or a directory with `options`.
    pub fn load_with(path: impl AsRef<Path>, options: LoadOptions) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(read_err)? {
                let p = entry.map_err(read_err)?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
                if yaml && !name.starts_with('.') && p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut texts = Vec::with_capacity(files.len());
        for f in &files {
            let text = std::fs::read_to_string(f).map_err(|source| ConfigError::Read {
                path: f.clone(),
                source,
            })?;
            texts.push((f.display().to_string(), text));
        }
        let mut config = Self::from_yaml_files(&texts, options)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Builds a configuration from `(file name, YAML text)` pairs, in order.
    pub fn from_yaml_files(
        files: &[(String, String)],
        options: LoadOptions,
    ) -> Result<Config, ConfigError> {
        let mut config = Config {
            options,
            ..Config::default()
        };
        for (name, text) in files {
            config.add_file(name, text)?;
        }
        Ok(config)
    }

    /// Builds a configuration from one YAML text, named `name` in errors.
    pub fn from_yaml(name: &str, text: &str) -> Result<Config, ConfigError> {
        Self::from_yaml_files(
            &[(name.to_string(), text.to_string())],
            LoadOptions::default(),
        )
    }

    fn add_file(&mut self, file: &str, text: &str) -> Result<(), ConfigError> {
        let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|source| ConfigError::Yaml {
            file: file.to_string(),
            message: source.to_string(),
            source,
        })?;
        let domain_line = text
            .lines()
            .position(|l| l.trim_end().starts_with("domain:"))
            .map(|i| i + 1);
        if raw.domain.is_empty() {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: domain_line,
                field: "domain".into(),
                message: "config file cannot have empty domain".into(),
            });
        }
        if self.domains.contains_key(&raw.domain) && !self.options.merge_domains {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                line: domain_line,
                field: "domain".into(),
                message: format!("duplicate domain '{}' in config file", raw.domain),
            });
        }
        let node = self.domains.entry(raw.domain.clone()).or_default();
        node.add(file, &raw.domain, raw.descriptors)
    }

    /// The file or directory this configuration was loaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The options it was loaded with.
    pub fn options(&self) -> LoadOptions {
        self.options
    }

    /// Loads it again from its source (for a reload); `None` if it has no source.
    pub fn reload(&self) -> Option<Result<Config, ConfigError>> {
        self.source
            .as_ref()
            .map(|p| Config::load_with(p, self.options))
    }

    /// The configured domains, in no particular order.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.keys().map(String::as_str)
    }

    /// Whether `domain` is configured.
    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.contains_key(domain)
    }

    /// Whether no domain has any descriptor.
    pub fn is_empty(&self) -> bool {
        self.domains.values().all(Node::is_empty)
    }

    /// The rule a request descriptor of `entries` matches in `domain`, as
    /// envoyproxy/ratelimit finds it; `None` for an unknown domain or no match.
    pub fn find(&self, domain: &str, entries: &[Entry<'_>]) -> Option<Matched> {
        self.domains.get(domain)?.find(domain, entries)
    }

    /// Every rule, for building limiters.
    pub fn rules(&self) -> Vec<RuleRef> {
        let mut out = Vec::new();
        for node in self.domains.values() {
            node.collect(&mut out);
        }
        out
    }
}
