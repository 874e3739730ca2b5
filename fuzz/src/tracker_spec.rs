//! The tracker's one-line spec (`simple:limit=2,defer=100ms,expire=1h`).

use tidegate::tracker::{EventTracker, TrackerSpec};

/// Parses the input as a tracker spec; an accepted spec is applied to a tracker
/// builder, whose checks accept or refuse it without panicking.
pub fn spec(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(spec) = text.parse::<TrackerSpec>() else {
        return;
    };
    crate::runtime().block_on(async {
        if let Ok(tracker) = spec.apply(EventTracker::builder().manual_ticks()).build() {
            tracker.shutdown().await;
        }
    });
}
