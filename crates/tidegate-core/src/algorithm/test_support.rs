//! Helpers shared by the algorithms' unit tests.

use super::Algorithm;

/// One second in µs.
pub(crate) const S: u64 = 1_000_000;

/// How many requests of `cost` at `now` are admitted in a row before the first denial.
pub(crate) fn admitted_in_a_row<A: Algorithm>(a: &A, s: &mut A::State, now: u64, cost: u64) -> u64 {
    let mut admitted = 0;
    while a.acquire(s, now, cost).allowed {
        admitted += 1;
    }
    admitted
}
