//! The `TIDEGATE_*` environment variables: one naming scheme for the server and every
//! `tidegate` subcommand, so servers and queue workers can share one environment (a
//! shell, a compose or Kubernetes env file).
//!
//! A variable is `TIDEGATE_` followed by a key path in capitals, `__` (two underscores)
//! between levels: `TIDEGATE_STORE__URL` is `store.url`, for `tidegate serve` (its
//! `[store]` table) and for `tidegate queue` (its Redis) alike. `serve` reads every
//! such variable as an override of its configuration except the ones listed here as
//! belonging to other subcommands, which it ignores; `queue` reads the few it needs.
//! `docs/CONFIGURATION.md` has the table.

use thiserror::Error;

/// What every variable of the scheme starts with.
pub const PREFIX: &str = "TIDEGATE_";

/// The Redis URL: `store.url` of `serve`, the Redis of `queue`.
pub const STORE_URL: &str = "TIDEGATE_STORE__URL";
/// The CA of a `rediss://` server: `store.tls_ca_file` of `serve`, `queue --tls-ca-file`.
pub const STORE_TLS_CA_FILE: &str = "TIDEGATE_STORE__TLS_CA_FILE";
/// `queue --queue`: the queue's name.
pub const QUEUE_NAME: &str = "TIDEGATE_QUEUE__NAME";
/// `queue --timeout`: the longest any Redis call of the queue may take.
pub const QUEUE_TIMEOUT: &str = "TIDEGATE_QUEUE__TIMEOUT";
/// `listen` of `serve`; also where `tidegate probe /PATH` looks for the local server.
pub const LISTEN: &str = "TIDEGATE_LISTEN";
/// `serve --config`: the configuration file.
pub const CONFIG: &str = "TIDEGATE_CONFIG";

/// The `queue` section: read by `tidegate queue`, ignored by `serve`.
pub const QUEUE_VARS: &[&str] = &[QUEUE_NAME, QUEUE_TIMEOUT];
/// Prefix of the `queue` section.
const QUEUE_PREFIX: &str = "TIDEGATE_QUEUE__";

/// Prefix of the variables `queue work --exec` sets for each job's command
/// (`TIDEGATE_JOB_ID`, ...): outputs, never read, ignored by `serve`.
pub const JOB_PREFIX: &str = "TIDEGATE_JOB_";

/// Names read before the single scheme, and the names that replaced them.
pub const RENAMED: &[(&str, &str)] = &[
    ("TIDEGATE_REDIS_URL", STORE_URL),
    ("TIDEGATE_QUEUE", QUEUE_NAME),
];

/// A `TIDEGATE_*` variable that no subcommand reads.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EnvError {
    /// An old name: the message says the new one.
    #[error(
        "environment variable {old} is no longer read: set {new} instead \
         (every subcommand reads the same names, see docs/CONFIGURATION.md)"
    )]
    Renamed {
        /// The variable as set.
        old: &'static str,
        /// What to set instead.
        new: &'static str,
    },
    /// A variable of the `queue` section that the queue does not read.
    #[error("unknown environment variable {var}: the queue reads {}", QUEUE_VARS.join(", "))]
    UnknownQueueVar {
        /// The variable as set.
        var: String,
    },
}

/// Whether `serve` leaves `var` to another subcommand (and so ignores it). An unknown
/// variable of the `queue` section is not left: [`check`] refuses it.
pub fn belongs_to_another_subcommand(var: &str) -> bool {
    var == CONFIG || QUEUE_VARS.contains(&var) || var.starts_with(JOB_PREFIX)
}

/// Refuses the old names and the variables of the `queue` section that nothing reads;
/// every subcommand that reads the environment calls it first.
pub fn check<K: AsRef<str>>(vars: impl IntoIterator<Item = K>) -> Result<(), EnvError> {
    for var in vars {
        let var = var.as_ref();
        if let Some(&(old, new)) = RENAMED.iter().find(|(old, _)| *old == var) {
            return Err(EnvError::Renamed { old, new });
        }
        if var.starts_with(QUEUE_PREFIX) && !QUEUE_VARS.contains(&var) {
            return Err(EnvError::UnknownQueueVar {
                var: var.to_string(),
            });
        }
    }
    Ok(())
}

/// The names of the process's `TIDEGATE_*` variables, sorted (so errors are stable).
pub fn tidegate_vars() -> Vec<String> {
    let mut vars: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(PREFIX))
        .collect();
    vars.sort();
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_names_are_refused_with_the_new_name() {
        let e = check(["TIDEGATE_STORE__URL", "TIDEGATE_REDIS_URL"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable TIDEGATE_REDIS_URL is no longer read: set \
             TIDEGATE_STORE__URL instead (every subcommand reads the same names, see \
             docs/CONFIGURATION.md)"
        );
        let e = check(["TIDEGATE_QUEUE"]).unwrap_err();
        assert_eq!(
            e,
            EnvError::Renamed {
                old: "TIDEGATE_QUEUE",
                new: "TIDEGATE_QUEUE__NAME"
            }
        );
    }

    #[test]
    fn an_unknown_queue_variable_is_refused_naming_the_known_ones() {
        let e = check(["TIDEGATE_QUEUE__NAEM"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown environment variable TIDEGATE_QUEUE__NAEM: the queue reads \
             TIDEGATE_QUEUE__NAME, TIDEGATE_QUEUE__TIMEOUT"
        );
    }

    #[test]
    fn the_shared_names_pass() {
        check([
            "TIDEGATE_STORE__URL",
            "TIDEGATE_QUEUE__NAME",
            "TIDEGATE_QUEUE__TIMEOUT",
            "TIDEGATE_ADMIN__TOKEN",
            "TIDEGATE_JOB_ID",
            "TIDEGATE_CONFIG",
        ])
        .unwrap();
        assert!(belongs_to_another_subcommand("TIDEGATE_QUEUE__NAME"));
        assert!(belongs_to_another_subcommand("TIDEGATE_JOB_QUEUE"));
        assert!(!belongs_to_another_subcommand("TIDEGATE_STORE__URL"));
        assert!(!belongs_to_another_subcommand("TIDEGATE_QUEUE__NAEM"));
        assert!(!belongs_to_another_subcommand("TIDEGATE_COLOUR"));
    }
}
