//! The glue between the configuration and the core: resolves connection
//! settings, calls the core, prints results to stdout. Errors get their
//! context here.

mod demo;
mod fleet;
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

/// Where a command writes its results (stdout, or a fleet target's
/// buffer), and what it did, in a few words and as data, for a fleet's
/// report.
pub(crate) struct Output<'a> {
    pub out: &'a mut dyn Write,
    pub done: Done,
}

/// What a command did on one database.
#[derive(Debug, Default, Clone)]
pub(crate) struct Done {
    /// One line: "applied 3 migrations", "created 4, dropped 1 partitions".
    pub summary: String,
    /// The same as data: applied, created, dropped…
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl<'a> Output<'a> {
    pub fn new(out: &'a mut dyn Write) -> Output<'a> {
        Output {
            out,
            done: Done::default(),
        }
    }
}

/// Runs `command` writing to stdout.
fn to_stdout(command: impl FnOnce(&mut Output<'_>) -> Result<Outcome>) -> Result<Outcome> {
    let mut stdout = std::io::stdout();
    command(&mut Output::new(&mut stdout))
}

/// Runs one invocation.
pub fn run(config: Config) -> Result<Outcome> {
    if config.fleet.is_some() {
        return fleet::run(&config);
    }
    let settings = || connection_settings(&config);
    match &config.command {
        Command::Ping { format } => ping::run(&settings()?, *format),
        Command::Migrate(migrate) => {
            to_stdout(|out| migrate::apply(&config, migrate, &settings()?, out))
        }
        Command::MigrateStatus { exit_code, format } => {
            to_stdout(|out| migrate::status(&config, &settings()?, *exit_code, *format, out))
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
        } => {
            to_stdout(|out| migrate::wait(&config, &settings()?, *target, *timeout, *interval, out))
        }
        Command::PartitionsPlan {
            at,
            format,
            detailed_exitcode,
        } => to_stdout(|out| {
            partitions::plan(&config, &settings()?, *at, *format, *detailed_exitcode, out)
        }),
        Command::PartitionsMaintain {
            dry_run,
            at,
            tables,
            format,
        } => to_stdout(|out| {
            let request = partitions::MaintainRequest {
                dry_run: *dry_run,
                at: *at,
                only: tables,
                format: *format,
            };
            partitions::maintain(&config, &settings()?, &request, out)
        }),
        Command::PartitionsStatus { format, at } => {
            to_stdout(|out| partitions::status(&config, &settings()?, *format, *at, out))
        }
        Command::PartitionsCheck { format, at } => {
            to_stdout(|out| partitions::check(&config, &settings()?, *format, *at, out))
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
pub(crate) fn connection_settings(config: &Config) -> Result<ConnectionSettings> {
    db::resolve(config.database_url.as_deref(), &Environment::from_process())
        .context(UsageError("invalid connection settings".into()))
}
