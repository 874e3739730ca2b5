//! A job to push, and the names a queue accepts.

use std::time::Duration;

use super::{MAX_PRIORITY, QueueError};

/// A job to push: a JSON payload, a priority (higher first; FIFO within a priority), an
/// optional group (tenant) and an optional delay.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// What the handler receives.
    pub payload: serde_json::Value,
    /// Higher runs first (default 0), within `-MAX_PRIORITY..=MAX_PRIORITY`.
    pub priority: i64,
    /// The job's group: groups are served round-robin, each with its own rate if set.
    pub group: Option<String>,
    /// How long the job waits before it may start (default none).
    pub delay: Duration,
}

impl Job {
    /// A job with `payload`, priority 0, no group, no delay.
    pub fn new(payload: serde_json::Value) -> Self {
        Self {
            payload,
            priority: 0,
            group: None,
            delay: Duration::ZERO,
        }
    }

    /// Sets the priority (higher first).
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Sets the delay before the job may start.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Checks the job; errors name the field.
    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |field: &str, reason: String| QueueError::InvalidJob {
            index: None,
            field: field.into(),
            reason,
        };
        if self.priority.abs() > MAX_PRIORITY {
            return Err(bad(
                "priority",
                format!(
                    "{} is outside -{MAX_PRIORITY}..={MAX_PRIORITY}",
                    self.priority
                ),
            ));
        }
        if let Some(group) = &self.group {
            check_name(group).map_err(|reason| bad("group", format!("`{group}` {reason}")))?;
        }
        if self.delay > Duration::from_secs(10 * 365 * 86_400) {
            return Err(bad(
                "delay",
                format!("{:?} is longer than 10 years", self.delay),
            ));
        }
        Ok(())
    }
}

/// Checks a queue name: non-empty, at most 200 bytes, no braces, no whitespace; the
/// reason when it is not usable.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 200 {
        return Err(format!("is {} bytes long (at most 200)", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '{' | '}') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "must not contain {c:?} (no braces, whitespace or control characters)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_validation_names_the_field() {
        let e = Job::new(serde_json::json!(1))
            .priority(MAX_PRIORITY + 1)
            .validate();
        assert!(matches!(e, Err(QueueError::InvalidJob { ref field, .. }) if field == "priority"));
        let e = Job::new(serde_json::json!(1)).group("a{b}").validate();
        assert!(matches!(e, Err(QueueError::InvalidJob { ref field, .. }) if field == "group"));
        assert!(
            Job::new(serde_json::json!(1))
                .group("tenant-1")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn queue_names_with_braces_are_rejected() {
        assert!(check_name("wallet-audit").is_ok());
        assert!(check_name("a}b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
    }
}
