//! The memory budget of the in-memory tracker: what its records and kept details take.
//!
//! The accounting is of the tracker's own data, estimated from sizes known at compile
//! time plus the bytes of keys and details; allocator overhead is not counted.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes a kept detail takes besides its JSON text: the shared pointer in the batch and
/// the counters of its allocation.
pub(crate) const DETAIL_OVERHEAD: usize = size_of::<super::Details>() + 16;

/// Bytes a kept detail of `len` bytes of text is charged.
pub(crate) fn detail_cost(len: usize) -> usize {
    DETAIL_OVERHEAD + len
}

/// A bound on bytes, charged and released concurrently.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    used: AtomicUsize,
    max: usize,
}

impl MemoryBudget {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Charges `n` bytes if they fit; false (and nothing charged) if not.
    pub(crate) fn try_charge(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    /// Gives back `n` charged bytes.
    pub(crate) fn release(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(n))
            });
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_that_does_not_fit_changes_nothing() {
        let b = MemoryBudget::new(100);
        assert!(b.try_charge(60));
        assert!(!b.try_charge(41));
        assert_eq!(b.used(), 60);
        assert!(b.try_charge(40));
        b.release(30);
        assert_eq!(b.used(), 70);
        b.release(1_000);
        assert_eq!(b.used(), 0);
    }
}
