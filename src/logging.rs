//! Log output: tracing to stderr, never stdout (stdout carries results).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

/// Installs the subscriber. `PGM_LOG` (a tracing filter) overrides -v/-q.
pub fn init(cli: &Cli) {
    let global = &cli.global;
    // The demo tells its story on stdout; its progress lines would only
    // interleave with it.
    let quiet_by_default = matches!(cli.command, Command::Demo { .. });
    let level = match (global.verbose, global.quiet) {
        (0, 0) if quiet_by_default => "warn",
        (0, 0) => "info",
        (1, _) => "debug",
        (2.., _) => "trace",
        (_, 1) => "warn",
        (_, _) => "error",
    };
    let filter = std::env::var("PGM_LOG")
        .ok()
        .and_then(|text| EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("warn,pgm={level}")));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match global.log_format {
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
        LogFormat::Text => builder.without_time().with_ansi(colour).try_init(),
    };
}
