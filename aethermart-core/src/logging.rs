//! Logs of the binaries, on stderr: the filter from [`LOG`], the format from [`LOG_FORMAT`]
//! (human-readable text, coloured only on a terminal, or one JSON object per line).

use std::io::IsTerminal;

/// The log filter (`info`, `aethermart_core=debug,sqlx=warn`, …).
pub const LOG: &str = "AETHERMART_LOG";
/// The log format: `text` (default) or `json`.
pub const LOG_FORMAT: &str = "AETHERMART_LOG_FORMAT";

/// Installs the process's log subscriber; `default_filter` applies when [`LOG`] is unset or
/// invalid. An unknown [`LOG_FORMAT`] is an error naming the variable.
pub fn init(default_filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let format = std::env::var(LOG_FORMAT).unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.as_str() {
        "" | "text" => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        other => {
            return Err(format!(
                "{LOG_FORMAT} is malformed: {other:?} is not `text` or `json`"
            ));
        }
    }
    Ok(())
}
