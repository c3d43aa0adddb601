//! `pgm migrate`, `pgm migrate status`, `pgm migrate baseline`, `pgm migrate
//! new`, `pgm migrate wait`.

use std::io::Write;

use anyhow::{Context, Result, bail};

use super::{Done, Output};
use crate::config::{Config, Migrate, MigrateNew, PlanFormat, StatusFormat};
use crate::db::{self, ConnectionSettings, TargetSessionAttrs};
use crate::duration::Timeout;
use crate::exit::{Outcome, UsageError};
use crate::migrate::apply::{self, ApplyError, RunLock};
use crate::migrate::history::HistoryError;
use crate::migrate::plan::{self, Options, State};
use crate::migrate::render;
use crate::migrate::repair::Actor;
use crate::migrate::runner;
use crate::migrate::scaffold::{self, NewError, NewMigration};
use crate::migrate::source::{self, SourceMigration};
use crate::migrate::wait::{self as waiting, WaitOptions};

fn load_sources(config: &Config) -> Result<Vec<SourceMigration>> {
    source::load(&config.migrations).context(UsageError("invalid migration files".into()))
}

/// Reads the migrations while the connection opens: on a slow file system a
/// mature project's thousand files take as long as connecting does. An
/// invalid file is reported at once, without waiting for the connection
/// (which ends with the process).
fn load_while_connecting<T: Send + 'static>(
    config: &Config,
    connect: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<(Vec<SourceMigration>, T)> {
    let connecting = std::thread::spawn(connect);
    let sources = load_sources(config)?;
    let connected = connecting
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    Ok((sources, connected))
}

pub(crate) fn apply(
    config: &Config,
    args: &Migrate,
    settings: &ConnectionSettings,
    output: &mut Output<'_>,
) -> Result<Outcome> {
    if args.format == PlanFormat::Sql && !args.dry_run {
        bail!(UsageError(
            "--format sql prints a plan: use it with --dry-run".into()
        ));
    }
    let options = Options {
        lock_timeout: args.locks.lock_timeout,
        statement_timeout: args.locks.statement_timeout,
        snapshot_wait: args.locks.snapshot_wait,
        target: args.target,
        allow_out_of_order: args.allow_out_of_order,
    };
    let target = if args.dry_run {
        TargetSessionAttrs::Any
    } else {
        TargetSessionAttrs::ReadWrite
    };
    let connection = settings.clone();
    let (mut sources, (mut client, settings)) = load_while_connecting(config, move || {
        db::open_for(&connection, target).map_err(refuse_standbys)
    })?;
    let (sources, settings) = (&mut sources, &settings);
    if args.dry_run {
        let state = read_state(&mut client, sources)?;
        let plan = plan::plan(sources, &state, &options)?;
        let out = &mut *output.out;
        let settings_line = format!(
            "lock_timeout {}, {} retries, statement_timeout {}",
            options.lock_timeout, args.locks.lock_retries, options.statement_timeout
        );
        match args.format {
            PlanFormat::Text => render::write_text(out, &plan, &settings_line)?,
            PlanFormat::Sql => render::write_sql(out, &plan)?,
            PlanFormat::Json => render::write_json(out, &plan)?,
        }
        out.flush()?;
        output.done.summary = format!("{} migration(s) to apply", plan.migrations.len());
        return Ok(Outcome::Success);
    }
    let applied = apply::apply(
        client,
        settings,
        sources,
        &options,
        args.locks.lock_retries,
        &RunLock {
            wait: args.locks.lock_wait,
        },
    )
    .map_err(glue_error)?;
    let (reports, already) = (applied.reports, applied.already);
    let out = &mut *output.out;
    match args.format {
        PlanFormat::Json => render::write_report_json(out, &reports)?,
        _ => render::write_report_text(out, &reports, already)?,
    }
    out.flush()?;
    output.done = applied_done(&reports, already);
    if args.maintain {
        let migrated = std::mem::take(&mut output.done);
        let request = super::partitions::MaintainRequest {
            dry_run: false,
            at: None,
            only: &[],
            format: StatusFormat::Text,
        };
        let outcome = super::partitions::maintain(config, settings, &request, output);
        output.done.summary = format!("{}; {}", migrated.summary, output.done.summary);
        output.done.detail.extend(migrated.detail);
        return outcome;
    }
    Ok(Outcome::Success)
}

/// What a run applied, for a fleet's report.
fn applied_done(reports: &[runner::AppliedReport], already: usize) -> Done {
    let names: Vec<String> = reports
        .iter()
        .map(|r| format!("V{}__{}", r.version, r.name))
        .collect();
    // The first and the last name: a report line stays a line.
    let summary = match names.as_slice() {
        [] => format!("up to date ({already} applied)"),
        [first, .., last] if names.len() > 3 => {
            format!("applied {} migration(s): {first} … {last}", names.len())
        }
        all => format!("applied {} migration(s): {}", all.len(), all.join(", ")),
    };
    let mut detail = serde_json::Map::new();
    detail.insert("applied".into(), names.into());
    Done { summary, detail }
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
        runner::RunError::History(narrow @ HistoryError::TooNarrow { .. }) => {
            anyhow::Error::new(narrow).context(UsageError("invalid migration files".into()))
        }
        other => other.into(),
    })
}

/// An error of the run, marked as a usage error when it is one of input or
/// of where the connection leads.
fn glue_error(error: ApplyError) -> anyhow::Error {
    if error.is_connection_setup_error() {
        return UsageError(error.to_string()).into();
    }
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

pub(crate) fn status(
    config: &Config,
    settings: &ConnectionSettings,
    exit_code: bool,
    format: StatusFormat,
    output: &mut Output<'_>,
) -> Result<Outcome> {
    let connection = settings.clone();
    let (mut sources, mut client) =
        load_while_connecting(config, move || Ok(db::connect(&connection)?))?;
    let state = read_state(&mut client, &mut sources)?;
    let entries = plan::reconcile(&sources, &state);
    let out = &mut *output.out;
    match format {
        StatusFormat::Text => render::write_status_text(out, &entries)?,
        StatusFormat::Json => render::write_status_json(out, &entries)?,
    }
    out.flush()?;
    let pending: Vec<String> = entries
        .iter()
        .filter(|e| e.state != State::Applied)
        .map(|e| format!("V{}__{}", e.version, e.name))
        .collect();
    output.done.summary = match pending.len() {
        0 => format!("{} applied, none pending", entries.len()),
        n => format!("{n} not applied: {}", pending.join(", ")),
    };
    output
        .done
        .detail
        .insert("not_applied".into(), pending.into());
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

pub fn baseline(
    config: &Config,
    settings: &ConnectionSettings,
    version: source::Version,
    lock_wait: std::time::Duration,
) -> Result<Outcome> {
    let mut sources = load_sources(config)?;
    let (client, settings) =
        db::open_for(settings, TargetSessionAttrs::ReadWrite).map_err(refuse_standbys)?;
    let (count, highest) = apply::baseline(
        client,
        &settings,
        &mut sources,
        version,
        &RunLock { wait: lock_wait },
    )
    .map_err(glue_error)?;
    writeln!(
        std::io::stdout().lock(),
        "baseline: recorded {count} migration(s) up to version {highest} as applied, without running them"
    )?;
    Ok(Outcome::Success)
}

/// Only standbys answered: say so the way a run on a replica does.
fn refuse_standbys(error: db::ConnectError) -> anyhow::Error {
    if error.only_standbys() {
        anyhow::Error::new(error).context(
            "this server is a read-only replica (in recovery): point DATABASE_URL at the primary",
        )
    } else {
        error.into()
    }
}

pub fn repair(
    config: &Config,
    settings: &ConnectionSettings,
    files: &[std::path::PathBuf],
    force: bool,
    lock_wait: std::time::Duration,
) -> Result<Outcome> {
    let sources = load_sources(config)?;
    let (client, settings) =
        db::open_for(settings, TargetSessionAttrs::ReadWrite).map_err(refuse_standbys)?;
    let os_user = crate::os::current_account()
        .map(|account| account.name)
        .unwrap_or_else(|| "unknown".to_owned());
    let repaired = apply::repair(
        client,
        &settings,
        &sources,
        files,
        force,
        &Actor { os_user: &os_user },
        &RunLock { wait: lock_wait },
    )
    .map_err(glue_error)?;
    let mut out = std::io::stdout().lock();
    if repaired.is_empty() {
        writeln!(out, "repair: no applied file changed; nothing to record")?;
    }
    for repair in &repaired {
        writeln!(
            out,
            "repaired: {} (version {}): checksum {} recorded, was {}{}",
            repair.path.display(),
            repair.version,
            repair.new_checksum,
            repair.old_checksum,
            if repair.forced {
                " (forced: statements changed or the applied text was unknown)"
            } else {
                " (only comments or whitespace changed)"
            }
        )?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// `pgm migrate widen-history`: the SQL with `--dry-run`, else the run and
/// what it changed.
pub fn widen_history(
    config: &Config,
    settings: &ConnectionSettings,
    dry_run: bool,
    lock_timeout: Timeout,
    lock_retries: u32,
    lock_wait: std::time::Duration,
) -> Result<Outcome> {
    let sources = load_sources(config)?;
    let target = match dry_run {
        true => TargetSessionAttrs::Any,
        false => TargetSessionAttrs::ReadWrite,
    };
    let (mut client, settings) = db::open_for(settings, target).map_err(refuse_standbys)?;
    let widening = if dry_run {
        apply::plan_widening(&mut client, &sources, lock_timeout)
    } else {
        let run_lock = RunLock { wait: lock_wait };
        apply::widen_history(
            client,
            &settings,
            &sources,
            lock_timeout,
            lock_retries,
            &run_lock,
        )
    }
    .map_err(glue_error)?;
    let mut out = std::io::stdout().lock();
    match (widening.steps.is_empty(), dry_run) {
        (true, _) => writeln!(
            out,
            "widen-history: the versions are 64-bit already; nothing to do"
        )?,
        (false, true) => render::write_widening(&mut out, &widening)?,
        (false, false) => writeln!(
            out,
            "widen-history: {} table(s) now hold 64-bit versions; the checksums of {} applied \
             migration(s) are refinery's 64-bit ones",
            widening.tables, widening.checksums
        )?,
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// `pgm migrate new`: writes the file and prints its path.
pub fn new(config: &Config, args: &MigrateNew) -> Result<Outcome> {
    let new = NewMigration {
        name: &args.name,
        no_transaction: args.no_transaction,
        timestamp: args.timestamp,
        now: args.at.unwrap_or_else(chrono::Utc::now),
    };
    let path = scaffold::create(&config.migrations, &new).map_err(|error| match error {
        NewError::Source(_) => {
            anyhow::Error::new(error).context(UsageError("invalid migration files".into()))
        }
        error if error.is_input_error() => UsageError(error.to_string()).into(),
        error => error.into(),
    })?;
    writeln!(std::io::stdout().lock(), "{}", path.display())?;
    Ok(Outcome::Success)
}

/// `pgm migrate wait`: success once every migration (up to `target`) is
/// applied; progress goes to the log, the result to stdout.
pub(crate) fn wait(
    config: &Config,
    settings: &ConnectionSettings,
    target: Option<source::Version>,
    timeout: std::time::Duration,
    interval: std::time::Duration,
    output: &mut Output<'_>,
) -> Result<Outcome> {
    let sources = load_sources(config)?;
    // A gate that opens on an empty directory (a missing mount, a wrong
    // path) would let pods start on any schema.
    if !sources
        .iter()
        .any(|source| target.is_none_or(|target| source.version <= target))
    {
        bail!(UsageError(format!(
            "{} holds no migration{}: there is nothing to wait for; check --migrations and that the files are in the image",
            config.migrations.display(),
            target
                .map(|t| format!(" up to version {t}"))
                .unwrap_or_default()
        )));
    }
    let options = WaitOptions {
        target,
        timeout,
        interval,
    };
    let ready = waiting::wait(settings, &sources, &options)?;
    let what = match (ready.count, target) {
        (0, None) => "no migrations to wait for".to_owned(),
        (0, Some(target)) => format!("no migrations up to version {target} to wait for"),
        (1, None) => "the migration is applied".to_owned(),
        (n, None) => format!("all {n} migrations are applied"),
        (1, Some(target)) => format!("the migration up to version {target} is applied"),
        (n, Some(target)) => format!("all {n} migrations up to version {target} are applied"),
    };
    writeln!(output.out, "ready: {what}")?;
    output.done.summary = format!("ready: {what}");
    Ok(Outcome::Success)
}
