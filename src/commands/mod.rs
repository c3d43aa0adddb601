//! The glue between the configuration and the core: resolves connection
//! settings, calls the core, prints results to stdout. Errors get their
//! context here.

mod demo;
mod init;
mod lint;
mod migrate;
mod partitions;
mod ping;

use std::io::Write;

use anyhow::{Context, Result};

use crate::config::{Command, Config};
use crate::db::{self, ConnectionSettings, Environment};
use crate::exit::{Outcome, UsageError};

/// Runs one invocation.
pub fn run(config: Config) -> Result<Outcome> {
    let settings = || connection_settings(&config);
    match &config.command {
        Command::Ping { format } => ping::run(&settings()?, *format),
        Command::Migrate(migrate) => migrate::apply(&config, migrate, &settings()?),
        Command::MigrateStatus { exit_code, format } => {
            migrate::status(&config, &settings()?, *exit_code, *format)
        }
        Command::Repair {
            files,
            force,
            lock_wait,
        } => migrate::repair(&config, &settings()?, files, *force, *lock_wait),
        Command::Baseline { version, lock_wait } => {
            migrate::baseline(&config, &settings()?, *version, *lock_wait)
        }
        Command::WidenHistory {
            dry_run,
            lock_timeout,
            lock_retries,
            lock_wait,
        } => migrate::widen_history(
            &config,
            &settings()?,
            *dry_run,
            *lock_timeout,
            *lock_retries,
            *lock_wait,
        ),
        Command::MigrateNew(new) => migrate::new(&config, new),
        Command::MigrateWait {
            target,
            timeout,
            interval,
        } => migrate::wait(&config, &settings()?, *target, *timeout, *interval),
        Command::PartitionsPlan {
            at,
            format,
            detailed_exitcode,
        } => partitions::plan(&config, &settings()?, *at, *format, *detailed_exitcode),
        Command::PartitionsMaintain {
            dry_run,
            at,
            tables,
        } => partitions::maintain(&config, &settings()?, *dry_run, *at, tables),
        Command::PartitionsStatus { format, at } => {
            partitions::status(&config, &settings()?, *format, *at)
        }
        Command::PartitionsCheck { format, at } => {
            partitions::check(&config, &settings()?, *format, *at)
        }
        Command::PartitionsConvert(convert) => partitions::convert(&config, &settings()?, convert),
        Command::PartitionsImport(import) => partitions::import_pg_partman(&settings()?, import),
        Command::Demo { keep, at } => demo::run(*keep, *at),
        Command::Init => init::run(&config),
        Command::Lint(lint) => lint::run(&config, lint, database_configured(&config), settings),
        Command::Print(text) => {
            let mut out = std::io::stdout().lock();
            out.write_all(text)?;
            out.flush()?;
            Ok(Outcome::Success)
        }
    }
}

/// Whether the user pointed pgm at a database, rather than leaving every
/// connection setting at its default.
fn database_configured(config: &Config) -> bool {
    let environment = Environment::from_process();
    config.database_url.is_some()
        || ["PGHOST", "PGHOSTADDR", "PGDATABASE"]
            .iter()
            .any(|name| environment.var(name).is_some_and(|value| !value.is_empty()))
}

/// The one place connection settings are resolved for every command.
fn connection_settings(config: &Config) -> Result<ConnectionSettings> {
    db::resolve(config.database_url.as_deref(), &Environment::from_process())
        .context(UsageError("invalid connection settings".into()))
}
