//! The glue between the command line and the core: resolves settings, calls
//! the core, prints results to stdout. Errors get their context here.

mod demo;
mod init;
mod lint;
mod migrate;
mod partitions;
mod ping;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command, PartitionsCommand};
use crate::db::{self, ConnectionSettings, Environment};
use crate::exit::{Outcome, UsageError};

/// Runs one command line.
pub fn run(cli: Cli) -> Result<Outcome> {
    match &cli.command {
        Command::Ping => ping::run(&connection_settings(&cli)?),
        Command::Migrate(args) => migrate::run(&cli.global, args, || connection_settings(&cli)),
        Command::Partitions(PartitionsCommand::Plan {
            at,
            format,
            detailed_exitcode,
        }) => partitions::plan(
            &cli.global,
            || connection_settings(&cli),
            at.as_deref(),
            *format,
            *detailed_exitcode,
        ),
        Command::Partitions(PartitionsCommand::Maintain {
            dry_run,
            at,
            tables,
        }) => partitions::maintain(
            &cli.global,
            || connection_settings(&cli),
            *dry_run,
            at.as_deref(),
            tables,
        ),
        Command::Partitions(PartitionsCommand::Status { format, at }) => partitions::status(
            &cli.global,
            || connection_settings(&cli),
            *format,
            at.as_deref(),
        ),
        Command::Partitions(PartitionsCommand::Check { format, at }) => partitions::check(
            &cli.global,
            || connection_settings(&cli),
            *format,
            at.as_deref(),
        ),
        Command::Demo { keep } => demo::run(&cli.global, *keep),
        Command::Init => init::run(&cli.global),
        Command::Lint(args) => lint::run(&cli.global, args, database_configured(&cli), || {
            connection_settings(&cli)
        }),
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            crate::cli::write_completions(*shell, &mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(Outcome::Success)
        }
        Command::Man => {
            let mut out = std::io::stdout().lock();
            crate::cli::write_man_page(&mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(Outcome::Success)
        }
    }
}

/// Whether the user pointed pgm at a database, rather than leaving every
/// connection setting at its default.
fn database_configured(cli: &Cli) -> bool {
    let environment = Environment::from_process();
    cli.global.database_url.is_some()
        || ["PGHOST", "PGHOSTADDR", "PGDATABASE"]
            .iter()
            .any(|name| environment.var(name).is_some_and(|value| !value.is_empty()))
}

/// The one place connection settings are resolved for every command.
fn connection_settings(cli: &Cli) -> Result<ConnectionSettings> {
    db::resolve(
        cli.global.database_url.as_deref(),
        &Environment::from_process(),
    )
    .context(UsageError("invalid connection settings".into()))
}
