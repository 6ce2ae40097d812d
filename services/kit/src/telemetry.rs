//! Logs: human-readable on a terminal, JSON lines in containers (`VECHE_LOG_FORMAT=json`).

pub use process::LogFormat;

/// Installs the global subscriber. `VECHE_LOG` (or `RUST_LOG`) filters, default `info`.
/// Calling it twice is harmless (tests start many servers in one process).
pub fn init(format: LogFormat) {
    process::init_logs(format, "info");
}
