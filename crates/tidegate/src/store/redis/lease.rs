//! Leases for hot keys on the Redis limiter: the table of this instance's slices, one
//! per key, each behind its own async lock, so that one take at a time per key is in
//! flight and an instance never holds more than one slice of a key. The accounting of
//! a slice is [`crate::lease::LeaseState`]; the take and the return are modes of
//! `decide.lua` ([`Mode::Take`](super::decide::Mode), `Mode::Return`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::lease::{LeaseState, Slice};
use crate::policy::Policy;

/// Most keys with a lease held at once per limiter; beyond it, new keys are decided
/// exactly (one round trip each) until slices are spent or expire.
const MAX_LEASED_KEYS: usize = 10_000;

/// One key's lease, locked across its take.
pub(super) type Cell = Arc<tokio::sync::Mutex<LeaseState>>;

/// The slices this instance holds for one limiter.
pub(super) struct LeaseTable {
    /// Units per slice.
    pub(super) units: u64,
    /// For a bucket, `T = period / parts` µs (see [`Slice::interval`]).
    pub(super) interval: Option<(u64, u64)>,
    cells: Mutex<HashMap<String, Cell>>,
}

impl LeaseTable {
    /// The table for `policy`'s lease, if it has one.
    pub(super) fn for_policy(policy: &Policy) -> Option<Self> {
        let lease = policy.lease()?;
        let interval = policy.kind().takes_burst().then(|| {
            let (limit, window, burst) = policy.parts();
            crate::algorithm::Gcra::new(limit, std::time::Duration::from_micros(window), burst)
                .expect("the parameters of a valid policy")
                .interval()
        });
        Some(Self {
            units: lease.units(crate::algorithm::Algorithm::capacity(policy)),
            interval,
            cells: Mutex::new(HashMap::new()),
        })
    }

    /// The lease cell of `key`, or `None` when the table is full of held slices.
    pub(super) fn cell(&self, key: &str) -> Option<Cell> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cell) = cells.get(key) {
            return Some(Arc::clone(cell));
        }
        if cells.len() >= MAX_LEASED_KEYS {
            // Forget keys holding nothing that no one is using.
            cells.retain(|_, c| {
                Arc::strong_count(c) > 1 || c.try_lock().map_or(true, |s| s.slice().is_some())
            });
            if cells.len() >= MAX_LEASED_KEYS {
                return None;
            }
        }
        let cell = Cell::default();
        cells.insert(key.to_string(), Arc::clone(&cell));
        Some(cell)
    }

    /// Forgets `key`'s slice (after a reset of the key).
    pub(super) fn forget(&self, key: &str) {
        self.cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Gives up every slice still valid at local time `now`, with its key.
    pub(super) async fn drain(&self, now: u64) -> Vec<(String, Slice)> {
        let cells: Vec<(String, Cell)> = self
            .cells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        let mut out = Vec::new();
        for (key, cell) in cells {
            if let Some(slice) = cell.lock().await.release(now) {
                out.push((key, slice));
            }
        }
        out
    }
}
