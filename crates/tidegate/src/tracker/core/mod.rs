//! The tracker's core: every decision about a record as a pure state machine over an
//! injected clock. Each operation takes the record's state and `now` (µs) and changes the
//! state in place, returning what the store must know (as the limiter's algorithms take
//! `(state, now, cost)` and return a decision); no locks, no I/O, no async. The stores
//! keep the records (the memory store in sharded tables with a byte budget, Redis in
//! `tracker.lua`, the same operations in Lua) and index waiting batches by due time.
//!
//! - [`Gate`]: the strategy's gate (`gate.rs`), per record.
//! - [`Record::track`]: count an event, ask the gate, defer it (`track.rs`); the
//!   details of a batch are bounded by [`DetailLimits`] (`batch.rs`).
//! - [`Record::claim`]: take a due batch (`claim.rs`).
//! - [`Record::processed`], [`Record::dead_lettered`], [`Record::defer_again`]: settle a
//!   claimed batch (`settle.rs`).
//! - [`Record::reset`]: forget the record's events, handing out its waiting batch
//!   (`reset.rs`).
//! - [`Record::snapshot`]: the record read without changing it (`record.rs`).
//! - [`Record::is_idle`]: whether the purge may remove the record (`purge.rs`).
//! - [`Record::reconfigure`], [`RecordSettings::patched`]: change its settings
//!   (`reconfigure.rs`, `settings.rs`).

mod batch;
mod claim;
mod gate;
mod purge;
mod reconfigure;
mod record;
mod reset;
mod settings;
mod settle;
mod track;

pub use batch::{Batch, DetailFate};
pub use gate::{Gate, GateState, defer_micros};
pub use record::Record;
pub use reset::Reset;
pub use settings::{DetailLimits, RecordSettings};
pub use settle::Requeued;
pub use track::Tracked;
