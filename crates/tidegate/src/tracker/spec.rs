//! Tracker settings in one line, for the CLI: `simple:limit=2,defer=100ms,expire=1h`,
//! `token_bucket:size=2,rate=1/s`, `sliding_window:limit=3,window=1s,defer=100ms`, each
//! optionally with `processing_interval=`, `max_keys=`, `max_batch=`, `max_retries=`,
//! `retry_delay=`.

use std::str::FromStr;
use std::time::Duration;

use super::{Strategy, TrackError, TrackerBuilder, invalid};
use crate::policy::parse_window;

/// Parsed tracker settings; unset values keep the builder's defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrackerSpec {
    /// The strategy.
    pub strategy: Option<Strategy>,
    /// Events per record before deferral.
    pub limit: Option<u64>,
    /// Deferral of a new batch.
    pub defer_interval: Option<Duration>,
    /// Idle records are purged after this.
    pub expire_time: Option<Duration>,
    /// Tick period.
    pub processing_interval: Option<Duration>,
    /// Most records held.
    pub max_keys: Option<usize>,
    /// Most records per processor call.
    pub max_batch_size: Option<usize>,
    /// Retries per round.
    pub max_retries: Option<u32>,
    /// First retry delay.
    pub retry_delay: Option<Duration>,
}

impl TrackerSpec {
    /// The tick period (default 1 s).
    pub fn processing_interval(&self) -> Duration {
        self.processing_interval.unwrap_or(Duration::from_secs(1))
    }

    /// Applies the settings to `builder`.
    pub fn apply(&self, mut b: TrackerBuilder) -> TrackerBuilder {
        if let Some(s) = self.strategy {
            b = b.strategy(s);
        }
        if let Some(v) = self.limit {
            b = b.limit(v);
        }
        if let Some(v) = self.defer_interval {
            b = b.defer_interval(v);
        }
        if let Some(v) = self.expire_time {
            b = b.expire_time(v);
        }
        b = b.processing_interval(self.processing_interval());
        if let Some(v) = self.max_keys {
            b = b.max_keys(v);
        }
        if let Some(v) = self.max_batch_size {
            b = b.max_batch_size(v);
        }
        if let Some(v) = self.max_retries {
            b = b.max_retries(v);
        }
        if let Some(v) = self.retry_delay {
            b = b.retry_delay(v);
        }
        b
    }
}

fn number<T: FromStr>(field: &str, v: &str) -> Result<T, TrackError> {
    v.trim()
        .parse()
        .map_err(|_| invalid(field, format!("`{v}` is not a whole number")))
}

fn duration(field: &str, v: &str) -> Result<Duration, TrackError> {
    parse_window(v).map_err(|e| invalid(field, e.reason))
}

/// `1/s`, `30/1m`, `0.5`: tokens per second.
fn rate(v: &str) -> Result<f64, TrackError> {
    let (count, per) = v.split_once('/').unwrap_or((v, "1s"));
    let count: f64 = count.trim().parse().map_err(|_| {
        invalid(
            "rate",
            format!("`{v}` is not a rate like `1/s`, `30/1m` or `0.5`"),
        )
    })?;
    let per = duration("rate", per)?;
    let r = count / per.as_secs_f64();
    if !r.is_finite() || r <= 0.0 {
        return Err(invalid(
            "rate",
            format!("`{v}` must be a positive finite rate"),
        ));
    }
    Ok(r)
}

impl FromStr for TrackerSpec {
    type Err = TrackError;

    fn from_str(text: &str) -> Result<Self, TrackError> {
        let (name, options) = text.trim().split_once(':').unwrap_or((text.trim(), ""));
        let mut spec = TrackerSpec::default();
        let (mut size, mut refill, mut window) = (None, None, None);
        for option in options.split(',').filter(|o| !o.trim().is_empty()) {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| invalid(option.trim(), "expected key=value"))?;
            match key.trim() {
                "limit" => spec.limit = Some(number("limit", value)?),
                "defer" | "defer_interval" => spec.defer_interval = Some(duration("defer", value)?),
                "expire" | "expire_time" => spec.expire_time = Some(duration("expire", value)?),
                "processing_interval" | "interval" => {
                    spec.processing_interval = Some(duration("processing_interval", value)?)
                }
                "max_keys" => spec.max_keys = Some(number("max_keys", value)?),
                "max_batch" | "max_batch_size" => {
                    spec.max_batch_size = Some(number("max_batch", value)?)
                }
                "max_retries" => spec.max_retries = Some(number("max_retries", value)?),
                "retry_delay" => spec.retry_delay = Some(duration("retry_delay", value)?),
                "size" | "bucket_size" => size = Some(number("size", value)?),
                "rate" | "refill_rate" => refill = Some(rate(value)?),
                "window" | "window_size" => window = Some(duration("window", value)?),
                other => {
                    return Err(invalid(
                        other,
                        "is not a tracker option (limit, defer, expire, size, rate, window, \
                         processing_interval, max_keys, max_batch, max_retries, retry_delay)",
                    ));
                }
            }
        }
        spec.strategy = Some(match name {
            "simple" | "simple_counter" => Strategy::SimpleCounter,
            "token_bucket" => Strategy::TokenBucket {
                bucket_size: size.ok_or_else(|| invalid("size", "is required by token_bucket"))?,
                refill_rate: refill
                    .ok_or_else(|| invalid("rate", "is required by token_bucket"))?,
            },
            "sliding_window" => Strategy::SlidingWindow {
                window_size: window
                    .ok_or_else(|| invalid("window", "is required by sliding_window"))?,
            },
            other => {
                return Err(invalid(
                    "strategy",
                    format!(
                        "unknown strategy `{other}`; valid: simple, token_bucket, sliding_window"
                    ),
                ));
            }
        });
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_specs_of_every_strategy_parse() {
        let s: TrackerSpec = "simple:limit=2,defer=100ms,expire=1h".parse().unwrap();
        assert_eq!(s.strategy, Some(Strategy::SimpleCounter));
        assert_eq!(s.limit, Some(2));
        assert_eq!(s.defer_interval, Some(Duration::from_millis(100)));
        let s: TrackerSpec = "token_bucket:size=2,rate=1/s".parse().unwrap();
        assert_eq!(
            s.strategy,
            Some(Strategy::TokenBucket {
                bucket_size: 2,
                refill_rate: 1.0
            })
        );
        let s: TrackerSpec = "token_bucket:size=10,rate=30/1m".parse().unwrap();
        assert!(
            matches!(s.strategy, Some(Strategy::TokenBucket { refill_rate, .. }) if refill_rate == 0.5)
        );
        let s: TrackerSpec =
            "sliding_window:limit=3,window=1s,defer=100ms,processing_interval=50ms,max_batch=10"
                .parse()
                .unwrap();
        assert_eq!(s.processing_interval(), Duration::from_millis(50));
        assert_eq!(s.max_batch_size, Some(10));
    }

    #[test]
    fn bad_tracker_specs_name_the_option() {
        let e = "simpel:limit=2".parse::<TrackerSpec>().unwrap_err();
        assert!(e.to_string().contains("unknown strategy `simpel`"), "{e}");
        let e = "token_bucket:size=2".parse::<TrackerSpec>().unwrap_err();
        assert_eq!(e.to_string(), "invalid rate: is required by token_bucket");
        let e = "simple:limit=x".parse::<TrackerSpec>().unwrap_err();
        assert_eq!(e.to_string(), "invalid limit: `x` is not a whole number");
        let e = "token_bucket:size=2,rate=-1/s"
            .parse::<TrackerSpec>()
            .unwrap_err();
        assert!(e.to_string().starts_with("invalid rate:"), "{e}");
        let e = "simple:colour=red".parse::<TrackerSpec>().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid colour: is not a tracker option"),
            "{e}"
        );
    }
}
