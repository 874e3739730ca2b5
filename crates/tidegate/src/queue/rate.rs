//! The rate a queue paces its starts at, written `20/1m` (burst 1 by default).

use std::time::Duration;

use crate::error::PolicyError;
use crate::policy::{AlgorithmKind, Policy};
use crate::rate::Rate;

/// Parses a queue rate: `20/1m`, `20/1m,burst=2` or `gcra:20/1m[,burst=N]`. Unlike a
/// policy, the burst defaults to 1, so starts are spaced evenly (`20/1m` = one start
/// every 3 s). Errors name the field at fault.
pub fn parse_rate(text: &str) -> Result<Rate, PolicyError> {
    let trimmed = text.trim();
    let body = trimmed.strip_prefix("gcra:").unwrap_or(trimmed);
    if let Some((name, _)) = body.split_once(':') {
        return Err(PolicyError::new(
            "algorithm",
            format!(
                "`{name}` cannot pace a queue: its rate is GCRA (write `20/1m` or `gcra:20/1m`)"
            ),
        )
        .in_policy(trimmed));
    }
    let with_burst = if body.contains("burst=") {
        format!("gcra:{body}")
    } else {
        format!("gcra:{body},burst=1")
    };
    let policy: Policy = with_burst.parse().map_err(|e: PolicyError| PolicyError {
        policy: Some(trimmed.to_string()),
        ..e
    })?;
    debug_assert_eq!(policy.kind(), AlgorithmKind::Gcra);
    let (limit, window, burst) = policy.parts();
    Rate::new(limit, Duration::from_micros(window), burst).map_err(|e| e.in_policy(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_defaults_to_burst_one_and_accepts_the_gcra_prefix() {
        let r = parse_rate("20/1m").unwrap();
        assert_eq!((r.limit, r.window, r.burst), (20, 60_000_000, 1));
        let r = parse_rate("gcra:10/1s,burst=3").unwrap();
        assert_eq!((r.limit, r.window, r.burst), (10, 1_000_000, 3));
    }

    #[test]
    fn rate_takes_quotas_of_any_realistic_size() {
        let r = parse_rate("1000000/1d").unwrap();
        assert_eq!((r.limit, r.window, r.burst), (1_000_000, 86_400_000_000, 1));
        let r = parse_rate("gcra:3000000000/365d,burst=1000000").unwrap();
        assert_eq!((r.limit, r.burst), (3_000_000_000, 1_000_000));
    }

    #[test]
    fn rate_errors_name_the_field() {
        assert_eq!(parse_rate("0/1m").unwrap_err().field, "limit");
        assert_eq!(parse_rate("20/0s").unwrap_err().field, "window");
        assert_eq!(parse_rate("20/1m,burst=0").unwrap_err().field, "burst");
        assert_eq!(
            parse_rate("token_bucket:20/1m").unwrap_err().field,
            "algorithm"
        );
        assert_eq!(parse_rate("20").unwrap_err().field, "window");
    }
}
