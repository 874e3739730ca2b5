//! Forwards the tracker's lifecycle events (`processed`, `retry`, `process_failed`,
//! `config_updated`, `error`) to JavaScript as JSON text. `immediate`, `deferred` and
//! `ignored` are emitted by the JavaScript wrapper from `trackEvent`'s answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use napi::Status;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use serde_json::{Value, json};
use tidegate::tracker::TrackerEvent;
use tokio::sync::broadcast::{Receiver, error::RecvError, error::TryRecvError};

use crate::decision::ms;
use crate::delivered::{batch_value, view_value};

/// The JavaScript function receiving each event's JSON text (weak: it does not keep
/// the process alive).
pub(crate) type EventSink = ThreadsafeFunction<String, (), String, Status, false, true>;

/// The event as `{"event": name, ...}`, or `None` for events the wrapper emits itself.
fn event_value(event: &TrackerEvent) -> Option<Value> {
    Some(match event {
        TrackerEvent::Processed(records) => {
            json!({"event": "processed", "events": batch_value(records)})
        }
        TrackerEvent::Retry {
            attempt,
            max_retries,
            delay,
            events,
        } => json!({
            "event": "retry",
            "attempt": attempt,
            "maxRetries": max_retries,
            "delay": ms(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX)),
            "events": batch_value(events),
        }),
        TrackerEvent::ProcessFailed {
            error,
            events,
            attempts,
        } => json!({
            "event": "process_failed",
            "error": error,
            "events": batch_value(events),
            "attempts": attempts,
        }),
        TrackerEvent::ConfigUpdated(view) => {
            json!({"event": "config_updated", "record": view_value(view)})
        }
        TrackerEvent::Error(message) => json!({"event": "error", "message": message}),
        _ => return None,
    })
}

/// How often a forwarder with nothing to forward looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Runs until the tracker is dropped or `stop` is set; then forwards what is left.
pub(crate) async fn forward(
    mut events: Receiver<TrackerEvent>,
    sink: EventSink,
    stop: Arc<AtomicBool>,
) {
    loop {
        let received = match tokio::time::timeout(STOP_CHECK, events.recv()).await {
            Ok(received) => received,
            Err(_) if stop.load(Ordering::Acquire) => break,
            Err(_) => continue,
        };
        let value = match received {
            Ok(event) => match event_value(&event) {
                Some(v) => v,
                None => continue,
            },
            Err(RecvError::Lagged(missed)) => lagged(missed),
            Err(RecvError::Closed) => return,
        };
        if !send(&sink, value) {
            return;
        }
    }
    loop {
        let value = match events.try_recv() {
            Ok(event) => match event_value(&event) {
                Some(v) => v,
                None => continue,
            },
            Err(TryRecvError::Lagged(missed)) => lagged(missed),
            Err(_) => return,
        };
        if !send(&sink, value) {
            return;
        }
    }
}

/// The `error` event of a forwarder that fell behind.
fn lagged(missed: u64) -> Value {
    json!({
        "event": "error",
        "message": format!("{missed} tracker events were missed: the listeners fell behind"),
    })
}

/// Hands one event to JavaScript; false once JavaScript is gone.
fn send(sink: &EventSink, value: Value) -> bool {
    sink.call(value.to_string(), ThreadsafeFunctionCallMode::NonBlocking) != Status::Closing
}
