//! `pgm migrate`, `pgm migrate status`, `pgm migrate baseline`.

use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::cli::{GlobalArgs, MigrateArgs, MigrateCommand, OutputFormat, StatusFormat};
use crate::db::{self, ConnectionSettings};
use crate::exit::{Outcome, UsageError};
use crate::migrate::apply::{self, ApplyError, RunLock};
use crate::migrate::plan::{self, Options, State};
use crate::migrate::render;
use crate::migrate::runner;
use crate::migrate::source::{self, SourceMigration};

pub fn run(
    global: &GlobalArgs,
    args: &MigrateArgs,
    settings: impl FnOnce() -> Result<ConnectionSettings>,
) -> Result<Outcome> {
    let mut sources = load_sources(global)?;
    match &args.command {
        None => {
            let settings = settings()?;
            apply(args, &mut sources, &settings)?;
            if args.maintain && !args.dry_run {
                return super::partitions::maintain(
                    global,
                    || Ok(settings.clone()),
                    false,
                    None,
                    &[],
                );
            }
            Ok(Outcome::Success)
        }
        Some(MigrateCommand::Status { exit_code, format }) => {
            status(&mut sources, &settings()?, *exit_code, *format)
        }
        Some(MigrateCommand::Baseline { version, lock_wait }) => {
            baseline(&mut sources, &settings()?, *version, lock_wait.0)
        }
    }
}

fn load_sources(global: &GlobalArgs) -> Result<Vec<SourceMigration>> {
    source::load(&global.migrations).context(UsageError("invalid migration files".into()))
}

fn apply(
    args: &MigrateArgs,
    sources: &mut [SourceMigration],
    settings: &ConnectionSettings,
) -> Result<Outcome> {
    if args.format == OutputFormat::Sql && !args.dry_run {
        bail!(UsageError(
            "--format sql prints a plan: use it with --dry-run".into()
        ));
    }
    let options = Options {
        lock_timeout: args.locks.lock_timeout,
        statement_timeout: args.locks.statement_timeout,
        target: args.target,
        allow_out_of_order: args.allow_out_of_order,
    };
    let mut client = db::connect(settings)?;
    if args.dry_run {
        let state = read_state(&mut client, sources)?;
        let plan = plan::plan(sources, &state, &options)?;
        let mut out = std::io::stdout().lock();
        let settings_line = format!(
            "lock_timeout {}, {} retries, statement_timeout {}",
            options.lock_timeout, args.locks.lock_retries, options.statement_timeout
        );
        match args.format {
            OutputFormat::Text => render::write_text(&mut out, &plan, &settings_line)?,
            OutputFormat::Sql => render::write_sql(&mut out, &plan)?,
            OutputFormat::Json => render::write_json(&mut out, &plan)?,
        }
        out.flush()?;
        return Ok(Outcome::Success);
    }
    let applied = apply::apply(
        client,
        settings,
        sources,
        &options,
        args.locks.lock_retries,
        &RunLock {
            wait: args.locks.lock_wait.0,
        },
    )
    .map_err(glue_error)?;
    let (reports, already) = (applied.reports, applied.already);
    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Json => render::write_report_json(&mut out, &reports)?,
        _ => render::write_report_text(&mut out, &reports, already)?,
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// The database state, with a pending file that does not parse reported as
/// the input error it is.
fn read_state(
    client: &mut postgres::Client,
    sources: &mut [SourceMigration],
) -> Result<plan::DatabaseState> {
    runner::read_state(client, sources).map_err(|error| match error {
        runner::RunError::InvalidFile(sql) => {
            anyhow::Error::new(sql).context(UsageError("invalid migration files".into()))
        }
        other => other.into(),
    })
}

/// An error of the run, marked as a usage error when it is one of input.
fn glue_error(error: ApplyError) -> anyhow::Error {
    if error.is_input_error() {
        let what = match &error {
            ApplyError::Run(_) => "invalid migration files",
            _ => "nothing to do",
        };
        anyhow::Error::new(error).context(UsageError(what.into()))
    } else {
        error.into()
    }
}

fn status(
    sources: &mut [SourceMigration],
    settings: &ConnectionSettings,
    exit_code: bool,
    format: StatusFormat,
) -> Result<Outcome> {
    let mut client = db::connect(settings)?;
    let state = read_state(&mut client, sources)?;
    let entries = plan::reconcile(sources, &state);
    let mut out = std::io::stdout().lock();
    match format {
        StatusFormat::Text => render::write_status_text(&mut out, &entries)?,
        StatusFormat::Json => render::write_status_json(&mut out, &entries)?,
    }
    out.flush()?;
    let broken: Vec<String> = entries
        .iter()
        .filter(|e| matches!(e.state, State::Divergent | State::Missing))
        .map(|e| format!("V{}__{}", e.version, e.name))
        .collect();
    if !broken.is_empty() {
        bail!(
            "divergent or missing migrations: {} (run pgm migrate for what to do)",
            broken.join(", ")
        );
    }
    let pending = entries.iter().any(|e| {
        matches!(
            e.state,
            State::Pending | State::PartlyApplied | State::OutOfOrder
        )
    });
    Ok(if exit_code && pending {
        Outcome::Pending
    } else {
        Outcome::Success
    })
}

fn baseline(
    sources: &mut [SourceMigration],
    settings: &ConnectionSettings,
    version: i32,
    lock_wait: std::time::Duration,
) -> Result<Outcome> {
    let client = db::connect(settings)?;
    let (count, highest) = apply::baseline(client, sources, version, &RunLock { wait: lock_wait })
        .map_err(glue_error)?;
    writeln!(
        std::io::stdout().lock(),
        "baseline: recorded {count} migration(s) up to version {highest} as applied, without running them"
    )?;
    Ok(Outcome::Success)
}
