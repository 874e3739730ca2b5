//! Changing one record's settings: a compare and set.

use super::record::Record;
use super::settings::RecordSettings;

impl Record {
    /// Sets `settings` if the record's settings still are `expected`; false (nothing
    /// changed) when they changed meanwhile. The gate's state is kept: a changed
    /// strategy starts it fresh at the record's next event.
    pub fn reconfigure(&mut self, expected: &RecordSettings, settings: RecordSettings) -> bool {
        if self.settings != *expected {
            return false;
        }
        self.settings = settings;
        true
    }
}
