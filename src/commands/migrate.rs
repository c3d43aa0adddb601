//! `pgm migrate`, `pgm migrate status`, `pgm migrate baseline`.

use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::cli::{GlobalArgs, MigrateArgs, MigrateCommand, OutputFormat, StatusFormat};
use crate::db::lock::SessionLock;
use crate::db::{self, ConnectionSettings};
use crate::exit::{Outcome, UsageError};
use crate::migrate::plan::{self, Options, State};
use crate::migrate::runner::{self, Runner};
use crate::migrate::source::{self, SourceMigration};
use crate::migrate::{history, render};

/// The advisory lock every `pgm migrate` of a database takes ("pgm mig" in ASCII).
pub const MIGRATE_LOCK_KEY: i64 = 0x0070_676d_206d_6967;

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
    refuse_replica(&mut client)?;
    let mut lock = SessionLock::acquire(
        client,
        MIGRATE_LOCK_KEY,
        "the migration lock",
        args.locks.lock_wait.0,
        |holder, waited| match holder {
            Some(holder) => tracing::info!(
                "waiting for the migration lock ({}s so far): held by {holder}",
                waited.as_secs()
            ),
            None => tracing::info!(
                "waiting for the migration lock ({}s so far)",
                waited.as_secs()
            ),
        },
    )?;
    let client = lock.client();
    let state = read_state(client, sources)?;
    // Check the history against the files before creating anything.
    let planned = plan::plan(sources, &state, &options)?;
    let mut runner = Runner {
        client,
        settings,
        lock_retries: args.locks.lock_retries,
    };
    runner.run_setup(&planned.setup)?;
    let already = state.applied.len();
    let mut reports = Vec::new();
    for migration in &planned.migrations {
        reports.push(runner.run(migration)?);
    }
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

fn refuse_replica(client: &mut postgres::Client) -> Result<()> {
    let in_recovery: bool = client.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
    if in_recovery {
        bail!(
            "this server is a read-only replica (in recovery): point DATABASE_URL at the primary"
        );
    }
    Ok(())
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
    let mut client = db::connect(settings)?;
    refuse_replica(&mut client)?;
    let mut lock = SessionLock::acquire(
        client,
        MIGRATE_LOCK_KEY,
        "the migration lock",
        lock_wait,
        |_, _| {
            tracing::info!("waiting for the migration lock");
        },
    )?;
    let client = lock.client();
    let state = read_state(client, sources)?;
    if !state.applied.is_empty() {
        bail!(
            "the history already holds {} migration(s), up to version {}: baseline is for a database pgm has not migrated yet",
            state.applied.len(),
            state
                .applied
                .iter()
                .map(|a| a.version)
                .max()
                .unwrap_or_default()
        );
    }
    let covered: Vec<&SourceMigration> = sources.iter().filter(|s| s.version <= version).collect();
    if covered.is_empty() {
        bail!(UsageError(format!(
            "no migration has a version at or below {version}: nothing to baseline"
        )));
    }
    let tables = &state.tables;
    let present = history::tables_present(client, tables)?;
    let mut transaction = client.transaction()?;
    for statement in history::create_statements(tables, present) {
        transaction.batch_execute(&statement)?;
    }
    let insert = format!(
        "INSERT INTO {} (version, name, applied_on, checksum) VALUES ($1, $2, \
         to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), $3)",
        tables.history()
    );
    for source in &covered {
        transaction.execute(
            &insert,
            &[&source.version, &source.name, &source.checksum.to_string()],
        )?;
    }
    transaction.commit().context("recording the baseline")?;
    writeln!(
        std::io::stdout().lock(),
        "baseline: recorded {} migration(s) up to version {} as applied, without running them",
        covered.len(),
        covered.last().map(|s| s.version).unwrap_or(version)
    )?;
    Ok(Outcome::Success)
}
