//! `[log]`: what is logged, where, and how.

use super::*;

/// `[log]`: level or filter, format, file, console.
pub(super) fn log_settings(raw: RawLog) -> Result<LogSettings, Invalid> {
    let level = raw.level.unwrap_or_else(|| "info".into());
    let filter: Targets = level.parse().map_err(|e| {
        bad(
            "log.level",
            format!(
                "`{level}` is not a level or filter like `info` or `tidegate=debug,warn` ({e})"
            ),
        )
    })?;
    let format = match raw.format.as_deref().map(str::trim) {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(bad(
                "log.format",
                format!("`{other}` is not one of text, json"),
            ));
        }
    };
    Ok(LogSettings {
        filter,
        level,
        format,
        file: raw.file,
        console: raw.console.is_none_or(|f| f.0),
    })
}
