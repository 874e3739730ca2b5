//! The circuit breaker in front of Redis, and rate-limited logging of store errors.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::time::{Clock, MonotonicClock, duration_to_micros};

/// Whether a call may go to Redis now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// The circuit is closed: go ahead.
    Call,
    /// The circuit is open but the cool-down is over: this call probes for recovery.
    Probe,
    /// The circuit is open: do not call, use the failure policy.
    Refuse,
}

/// Opens after `threshold` consecutive failures; while open, calls are refused for
/// `cooldown`, after which one call probes: success closes the circuit, failure reopens it.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown_us: u64,
    failures: AtomicU32,
    /// µs (monotonic) until which the circuit stays open; 0 = closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    opened: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_us: duration_to_micros(cooldown),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn permit(&self) -> Permit {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Permit::Call;
        }
        if MonotonicClock.now_micros() < until {
            return Permit::Refuse;
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Permit::Probe,
            Err(_) => Permit::Refuse,
        }
    }

    #[inline]
    pub(crate) fn success(&self, permit: Permit) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if permit == Permit::Probe {
            self.open_until.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
    }

    pub(crate) fn failure(&self, permit: Permit) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if permit == Permit::Probe || failures >= self.threshold {
            let until = MonotonicClock.now_micros() + self.cooldown_us;
            if self.open_until.swap(until, Ordering::AcqRel) == 0 {
                self.opened.fetch_add(1, Ordering::Relaxed);
            }
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Whether the circuit is open now.
    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// How many times the circuit opened.
    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

/// Lets one log line through per `period`, counting the ones it held back.
#[derive(Debug)]
pub(crate) struct LogGate {
    period_us: u64,
    next_us: AtomicU64,
    suppressed: AtomicU64,
}

impl LogGate {
    pub(crate) fn new(period: Duration) -> Self {
        Self {
            period_us: duration_to_micros(period),
            next_us: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(number held back since the last line)` if a line may be logged now.
    pub(crate) fn pass(&self) -> Option<u64> {
        let now = MonotonicClock.now_micros();
        let next = self.next_us.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_us
                .compare_exchange(
                    next,
                    now + self.period_us,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_probes_after_cooldown() {
        let b = Breaker::new(2, Duration::from_millis(30));
        assert_eq!(b.permit(), Permit::Call);
        b.failure(Permit::Call);
        assert_eq!(b.permit(), Permit::Call);
        b.failure(Permit::Call);
        assert_eq!(b.permit(), Permit::Refuse);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.permit(), Permit::Probe);
        assert_eq!(b.permit(), Permit::Refuse, "one probe at a time");
        b.failure(Permit::Probe);
        assert_eq!(b.permit(), Permit::Refuse, "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        let p = b.permit();
        assert_eq!(p, Permit::Probe);
        b.success(p);
        assert_eq!(b.permit(), Permit::Call);
        assert!(!b.is_open());
        assert_eq!(b.times_opened(), 1);
    }

    #[test]
    fn log_gate_passes_one_line_per_period_and_counts_the_rest() {
        let g = LogGate::new(Duration::from_millis(30));
        assert_eq!(g.pass(), Some(0));
        assert_eq!(g.pass(), None);
        assert_eq!(g.pass(), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(g.pass(), Some(2));
    }
}
