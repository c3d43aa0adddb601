//! A whole `pgm migrate` run on the database: refuse a replica; stop there
//! when everything is applied; else refuse a session that a pooler does not
//! keep to itself, take the run lock on the session that then does the
//! work, read the state, plan, create the history tables, run each
//! migration (confirming the lock before each, see [`Tripwire`]). Also
//! `baseline`.

use std::time::{Duration, Instant};

use postgres::Client;
use thiserror::Error;

use std::path::PathBuf;

use super::history::HistoryRead;
use super::history::{self, HistoryError};
use super::plan::{self, Options, PlanError, Role};
use super::repair::{self, Actor, RepairError, Repaired};
use super::runner::{self, AppliedReport, RunError, Runner};
use super::source::{SourceMigration, Version};
use super::widen::{self, WidenError, Widening};
use crate::db::lock::{self, Holder, LockError, SessionLock};
use crate::db::pooler::{self, PoolerError};
use crate::db::retry::backend_pid;
use crate::db::retry::{GaveUp, LockRetry};
use crate::db::{ConnectionSettings, server};
use crate::duration::Timeout;

/// The advisory lock every `pgm migrate` of a database takes ("pgm mig" in ASCII).
pub const MIGRATE_LOCK_KEY: i64 = 0x0070_676d_206d_6967;
const MIGRATE_LOCK: &str = "the migration lock";

#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("this server is a read-only replica (in recovery): point DATABASE_URL at the primary")]
    Replica,
    #[error(transparent)]
    Pooled(#[from] PoolerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{what}: {source}")]
    Query {
        what: &'static str,
        source: postgres::Error,
    },
    #[error(
        "the history already holds {count} migration(s), up to version {highest}: baseline is for a database pgm has not migrated yet"
    )]
    AlreadyMigrated { count: usize, highest: Version },
    #[error(transparent)]
    Repair(#[from] RepairError),
    #[error("no migration has a version at or below {0}: nothing to baseline")]
    NothingToBaseline(Version),
    #[error(transparent)]
    Widen(#[from] WidenError),
    #[error("widening the history table failed{}; it was rolled back: {}",
        if .0.attempts > 1 { format!(" after {} attempts", .0.attempts) } else { String::new() },
        describe_gave_up(.0))]
    WidenFailed(GaveUp<postgres::Error>),
}

fn describe_gave_up(gave_up: &GaveUp<postgres::Error>) -> String {
    let error = gave_up.error.to_string();
    match &gave_up.blocker {
        Some(blocker) => format!("{error} (blocked by {blocker})"),
        None => error,
    }
}

impl ApplyError {
    /// A problem with the files or the request, rather than with the run.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            ApplyError::Run(
                RunError::InvalidFile(_) | RunError::History(HistoryError::TooNarrow { .. })
            ) | ApplyError::NothingToBaseline(_)
                | ApplyError::Widen(_)
                | ApplyError::Repair(
                    RepairError::UnknownFile(_)
                        | RepairError::NotApplied(_)
                        | RepairError::Unchanged(_)
                        | RepairError::Renamed { .. }
                )
        )
    }

    /// The connection leads somewhere a run cannot be protected: a
    /// configuration problem, which trying again does not fix.
    pub fn is_connection_setup_error(&self) -> bool {
        matches!(self, ApplyError::Pooled(PoolerError::TransactionPooling(_)))
    }
}

/// What a run applied, and how many were applied before it.
pub struct Applied {
    pub already: usize,
    pub reports: Vec<AppliedReport>,
}

/// How long to wait for another run's lock.
pub struct RunLock {
    pub wait: Duration,
}

pub fn apply(
    mut client: Client,
    settings: &ConnectionSettings,
    sources: &mut [SourceMigration],
    options: &Options,
    lock_retries: u32,
    run_lock: &RunLock,
) -> Result<Applied, ApplyError> {
    refuse_replica(&mut client)?;
    // Nothing to do is found without the run lock and the pooler check
    // (which opens a second session): every migration this run knows of is
    // applied, and no other run undoes that. Anything else is read again
    // under the lock.
    if let Some(already) = up_to_date(&mut client, sources, options)? {
        return Ok(Applied {
            already,
            reports: Vec::new(),
        });
    }
    let (mut lock, key) = lock_runs(&mut client, settings, run_lock)?;
    let client = lock.client();
    let state = runner::read_state(client, sources)?;
    // Check the history against the files before creating anything.
    let planned = plan::plan(sources, &state, options)?;
    let mut runner = Runner {
        client,
        settings,
        lock_retries,
    };
    let mut tripwire = Tripwire::new(key);
    if !planned.setup.is_empty() {
        tripwire.check(runner.client, false)?;
    }
    runner.run_setup(&planned.setup)?;
    let mut reports = Vec::with_capacity(planned.migrations.len());
    for migration in &planned.migrations {
        let guarded = migration.steps.iter().any(|step| step.role == Role::Guard);
        tripwire.check(runner.client, guarded)?;
        reports.push(runner.run(migration)?);
    }
    Ok(Applied {
        already: state.applied.len(),
        reports,
    })
}

/// The check before each migration that this session still holds the run
/// lock. In full it reads pg_locks, whose cost grows with the server's lock
/// table (max_locks_per_transaction): at 1,024 it cost more than a small
/// migration. So it runs in full first and then at most once a second; in
/// between, the server process serving the session must be the one that
/// passed it, which is what a pooler moving the session would change. A
/// migration that confirms the lock inside its own transaction (its guard
/// step) needs nothing in between.
struct Tripwire {
    key: i64,
    confirmed: Option<(i32, Instant)>,
}

impl Tripwire {
    const FULL_EVERY: Duration = Duration::from_secs(1);

    fn new(key: i64) -> Tripwire {
        Tripwire {
            key,
            confirmed: None,
        }
    }

    fn check(&mut self, client: &mut Client, guarded: bool) -> Result<(), ApplyError> {
        if let Some((pid, at)) = self.confirmed
            && at.elapsed() < Self::FULL_EVERY
            && (guarded || backend_pid(client) == Some(pid))
        {
            return Ok(());
        }
        lock::confirm(client, self.key, MIGRATE_LOCK)?;
        self.confirmed = backend_pid(client).map(|pid| (pid, Instant::now()));
        Ok(())
    }
}

/// How many migrations are applied, when that is all of them (up to the
/// target) and the tables exist: a run with nothing to do.
fn up_to_date(
    client: &mut Client,
    sources: &mut [SourceMigration],
    options: &Options,
) -> Result<Option<usize>, ApplyError> {
    let state = runner::read_state(client, sources)?;
    let planned = plan::plan(sources, &state, options)?;
    Ok((planned.setup.is_empty() && planned.migrations.is_empty()).then_some(state.applied.len()))
}

fn refuse_replica(client: &mut Client) -> Result<(), ApplyError> {
    let replica = server::in_recovery(client).map_err(|source| ApplyError::Query {
        what: "checking whether the server is a replica",
        source,
    })?;
    if replica {
        return Err(ApplyError::Replica);
    }
    Ok(())
}

/// Records the migrations up to `version` as applied without running them;
/// returns how many, and the highest.
pub fn baseline(
    mut client: Client,
    settings: &ConnectionSettings,
    sources: &mut [SourceMigration],
    version: Version,
    run_lock: &RunLock,
) -> Result<(usize, Version), ApplyError> {
    let (mut lock, key) = lock_runs(&mut client, settings, run_lock)?;
    let client = lock.client();
    let state = runner::read_state(client, sources)?;
    if !state.applied.is_empty() {
        return Err(ApplyError::AlreadyMigrated {
            count: state.applied.len(),
            highest: state
                .applied
                .iter()
                .map(|a| a.version)
                .max()
                .unwrap_or_default(),
        });
    }
    let covered: Vec<&SourceMigration> = sources.iter().filter(|s| s.version <= version).collect();
    let Some(highest) = covered.last().map(|s| s.version) else {
        return Err(ApplyError::NothingToBaseline(version));
    };
    lock::confirm(client, key, MIGRATE_LOCK)?;
    history::record_without_running(client, &state.tables, &state.setup, &covered).map_err(
        |source| ApplyError::Query {
            what: "recording the baseline",
            source,
        },
    )?;
    Ok((covered.len(), highest))
}

/// Records the new checksum of edited applied files (see `repair`), under
/// the run lock so that no migrate runs meanwhile.
pub fn repair(
    mut client: Client,
    settings: &ConnectionSettings,
    sources: &[SourceMigration],
    files: &[PathBuf],
    force: bool,
    actor: &Actor<'_>,
    run_lock: &RunLock,
) -> Result<Vec<Repaired>, ApplyError> {
    let (mut lock, key) = lock_runs(&mut client, settings, run_lock)?;
    let client = lock.client();
    let read = read_history(client, sources)?;
    lock::confirm(client, key, MIGRATE_LOCK)?;
    Ok(repair::repair(
        client,
        &read.borrowed(),
        sources,
        files,
        force,
        actor,
    )?)
}

/// The steps that widen the history to 64-bit versions (see `widen`), read
/// without the run lock: for `--dry-run`.
pub fn plan_widening(
    client: &mut Client,
    sources: &[SourceMigration],
    lock_timeout: Timeout,
) -> Result<Widening, ApplyError> {
    let read = read_history(client, sources)?;
    Ok(widen::plan(&read.borrowed(), sources, lock_timeout)?)
}

/// Widens the history to 64-bit versions under the run lock, in one
/// transaction retried on lock timeouts; returns the steps it ran.
pub fn widen_history(
    mut client: Client,
    settings: &ConnectionSettings,
    sources: &[SourceMigration],
    lock_timeout: Timeout,
    lock_retries: u32,
    run_lock: &RunLock,
) -> Result<Widening, ApplyError> {
    let (mut lock, key) = lock_runs(&mut client, settings, run_lock)?;
    let client = lock.client();
    let read = read_history(client, sources)?;
    let widening = widen::plan(&read.borrowed(), sources, lock_timeout)?;
    let steps = &widening.steps;
    if steps.is_empty() {
        return Ok(widening);
    }
    lock::confirm(client, key, MIGRATE_LOCK)?;
    let mut retry = LockRetry::new(settings, lock_retries);
    retry
        .run(
            client,
            "widening the history table",
            None,
            |client, watch, _| {
                watch
                    .around(|| {
                        steps
                            .iter()
                            .try_for_each(|step| runner::execute(client, step))
                    })
                    .inspect_err(|_| runner::back_to_idle(client))
            },
        )
        .map_err(ApplyError::WidenFailed)?;
    Ok(widening)
}

/// Everything the widening plan reads.
struct OwnedHistory {
    tables: history::Tables,
    present: history::TablesPresent,
    applied: Vec<history::Applied>,
    progress: Vec<(Version, history::Progress)>,
    texts: Vec<(Version, u64, String)>,
}

impl OwnedHistory {
    fn borrowed(&self) -> HistoryRead<'_> {
        HistoryRead {
            tables: &self.tables,
            applied: &self.applied,
            progress: &self.progress,
            texts: &self.texts,
            texts_table: self.present.texts,
        }
    }
}

fn read_history(
    client: &mut Client,
    sources: &[SourceMigration],
) -> Result<OwnedHistory, ApplyError> {
    let query = |what| move |source| ApplyError::Query { what, source };
    let (tables, present) =
        history::Tables::locate(client, sources).map_err(query("locating the history table"))?;
    let applied = history::read_applied(client, &tables, present).map_err(RunError::from)?;
    let progress = history::read_progress(client, &tables, present).map_err(RunError::from)?;
    let texts = history::read_applied_texts(client, &tables, present)
        .map_err(query("reading the applied texts"))?;
    Ok(OwnedHistory {
        tables,
        present,
        applied,
        progress,
        texts,
    })
}

/// Refuses a replica and a session a pooler shares with other clients,
/// then waits for the run lock on this session.
/// The lock is the one of the schema the history is kept in (see
/// [`history::run_lock_key`]), which the session's search path decides.
fn lock_runs<'c>(
    client: &'c mut Client,
    settings: &ConnectionSettings,
    run_lock: &RunLock,
) -> Result<(SessionLock<&'c mut Client>, i64), ApplyError> {
    refuse_replica(client)?;
    pooler::require_own_session(client, settings)?;
    let (tables, _) = history::Tables::locate(client, &[]).map_err(|source| ApplyError::Query {
        what: "locating the history table",
        source,
    })?;
    let key = tables.run_lock_key();
    let lock = SessionLock::acquire(client, key, MIGRATE_LOCK, run_lock.wait, log_wait)?;
    Ok((lock, key))
}

fn log_wait(holder: Option<&Holder>, waited: Duration) {
    match holder {
        Some(holder) => tracing::info!(
            "waiting for the migration lock ({}s so far): held by {holder}",
            waited.as_secs()
        ),
        None => tracing::info!(
            "waiting for the migration lock ({}s so far)",
            waited.as_secs()
        ),
    }
}
