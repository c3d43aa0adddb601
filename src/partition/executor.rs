//! Runs the steps of one table's plan, and nothing else: each statement of a
//! step, the guard it declares, and on a lock-timeout retry the cleanup it
//! declares. Exhausted retries fail that step (and what depends on it),
//! never the run.

use std::time::Instant;

use postgres::Client;
use serde::Serialize;

use super::planner::{Action, Entry, Step};
use super::policy::TablePolicy;
use super::progress::BuildProgress;
use crate::db::ConnectionSettings;
use crate::db::ident::QualifiedName;
use crate::db::retry::{self, AttemptError, GaveUp, LockRetry, Watch};

/// What happened to one table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    pub table: String,
    /// Partitions created (and attached, unless a later step failed).
    pub created: usize,
    /// Partitions attached: those created now, and those an interrupted
    /// run created and left unattached.
    pub attached: usize,
    pub moved_rows: u64,
    pub detached: usize,
    pub dropped: usize,
    pub archived: usize,
    pub indexes_built: usize,
    pub indexes_attached: usize,
    /// Partitions converted to columnar (Citus).
    pub columnar: usize,
    /// Steps that waited on other sessions past every retry and are left for
    /// the next run (a detach waiting for old snapshots, say).
    pub deferred: Vec<String>,
    pub failures: Vec<String>,
    pub warnings: Vec<String>,
    /// Set when the table was not maintained at all, with why.
    pub skipped: Option<String>,
}

impl TableReport {
    pub fn new(table: &str) -> Self {
        TableReport {
            table: table.to_owned(),
            ..TableReport::default()
        }
    }

    fn count(&mut self, step: &Step, moved_rows: u64) {
        self.moved_rows += moved_rows;
        match step.action {
            Action::CreatePartition | Action::CreateDefaultPartition => self.created += 1,
            Action::AttachPartition | Action::MoveDefaultRows => self.attached += 1,
            Action::DetachPartition | Action::FinalizeDetach => self.detached += 1,
            Action::DropPartition => self.dropped += 1,
            Action::ArchivePartition => self.archived += 1,
            Action::CreateIndex if step.partition.is_some() => self.indexes_built += 1,
            Action::AttachIndex => self.indexes_attached += 1,
            Action::ColumnarPartition => self.columnar += 1,
            Action::ColumnarPrepare
            | Action::CreateIndex
            | Action::DropInvalidIndex
            | Action::KeepDetached
            | Action::ConvertCreateTable
            | Action::ConvertStartCapture
            | Action::ConvertBackfill
            | Action::ConvertReplay
            | Action::ConvertVerify
            | Action::ConvertSwap
            | Action::ConvertValidate
            | Action::ConvertDropOld
            | Action::ConvertAbort => {}
        }
    }
}

pub struct Executor<'a> {
    pub client: &'a mut Client,
    pub settings: &'a ConnectionSettings,
}

/// Which steps can no longer run because one they depend on did not.
#[derive(Default)]
struct Blocked {
    partitions: Vec<QualifiedName>,
    parent_index_failed: bool,
    /// PostgreSQL allows one pending detach per parent: once one waits,
    /// the other detaches of the table wait for the next run too.
    pending_detach: Option<QualifiedName>,
}

impl Blocked {
    fn blocks(&self, step: &Step) -> bool {
        step.partition
            .as_ref()
            .is_some_and(|p| self.partitions.contains(p))
            || (step.is_index_work() && self.parent_index_failed)
    }

    fn add(&mut self, step: &Step) {
        self.partitions.extend(step.partition.clone());
    }
}

impl Executor<'_> {
    pub fn run(&mut self, table: &TablePolicy, entries: &[Entry], report: &mut TableReport) {
        let mut retry = LockRetry::new(self.settings, table.lock_retries);
        let mut blocked = Blocked::default();
        for entry in entries {
            let step = match entry {
                Entry::Step(step) => step,
                Entry::Problem(problem) if problem.kind.is_warning() => {
                    report.warnings.push(problem.message.clone());
                    continue;
                }
                Entry::Problem(problem) => {
                    report.failures.push(problem.message.clone());
                    continue;
                }
            };
            if blocked.blocks(step) {
                continue;
            }
            if let (Action::DetachPartition, Some(waiting)) = (step.action, &blocked.pending_detach)
            {
                report.deferred.push(format!(
                    "the detach of {} is left for the next run, after that of {waiting}, which did not finish",
                    step.target()
                ));
                blocked.add(step);
                continue;
            }
            log_start(step);
            let started = Instant::now();
            match self.run_step(&mut retry, step) {
                Ok(moved_rows) => {
                    tracing::debug!(
                        "{:?} {} done in {} ms",
                        step.action,
                        step.target(),
                        started.elapsed().as_millis()
                    );
                    report.count(step, moved_rows);
                }
                Err(StepError::Deferred(message)) => {
                    tracing::warn!("{}: {message}", report.table);
                    report.deferred.push(message);
                    blocked.add(step);
                    blocked.pending_detach = step.partition.clone();
                }
                Err(StepError::Refused(message)) => {
                    report.failures.push(message);
                    blocked.add(step);
                }
                Err(StepError::Failed(failure)) => {
                    let message = failure_message(step, &failure);
                    tracing::error!("{}: {message}", report.table);
                    report.failures.push(message);
                    blocked.add(step);
                    if step.is_index_work() && step.partition.is_none() {
                        blocked.parent_index_failed = true;
                    }
                }
            }
        }
        // Statements outside a transaction set lock_timeout for the session.
        let _ = self.client.batch_execute("RESET lock_timeout");
    }

    /// Runs one step on its own, with the retries `retry` allows: done, or
    /// why not, in words.
    pub(crate) fn run_one(&mut self, retry: &mut LockRetry<'_>, step: &Step) -> Result<(), String> {
        log_start(step);
        match self.run_step(retry, step) {
            Ok(_) => Ok(()),
            Err(StepError::Deferred(message) | StepError::Refused(message)) => Err(message),
            Err(StepError::Failed(failure)) => Err(failure_message(step, &failure)),
        }
    }

    /// Runs one transactional step like [`Executor::run_one`], with `before`
    /// run ahead of each attempt, in its own transactions: a retry's
    /// backoff lets work pile up that `before` does while no lock is held.
    pub(crate) fn run_one_after(
        &mut self,
        retry: &mut LockRetry<'_>,
        step: &Step,
        mut before: impl FnMut(&mut Client) -> Result<(), postgres::Error>,
    ) -> Result<(), String> {
        log_start(step);
        let what = format!("{} {}", step.table, step.target());
        let result = retry.run(self.client, &what, None, |client, watch, _| {
            before(client)?;
            transaction_attempt(client, step, watch)
        });
        result.map(|_| ()).map_err(|gave_up| match gave_up {
            GaveUp {
                error: TransactionError::Guard(rows),
                ..
            } => guard_refusal(step, rows),
            GaveUp {
                error: TransactionError::Sql(error) | TransactionError::Raced(error),
                attempts,
                blocker,
            } => failure_message(
                step,
                &GaveUp {
                    error,
                    attempts,
                    blocker,
                },
            ),
        })
    }

    /// Runs one step; returns the rows it moved out of the default partition.
    fn run_step(&mut self, retry: &mut LockRetry<'_>, step: &Step) -> Result<u64, StepError> {
        if step.transactional {
            self.run_transaction(retry, step)
        } else {
            self.run_statements(retry, step).map(|()| 0)
        }
    }

    fn run_transaction(
        &mut self,
        retry: &mut LockRetry<'_>,
        step: &Step,
    ) -> Result<u64, StepError> {
        let what = format!("{} {}", step.table, step.target());
        let result = retry.run(
            self.client,
            &what,
            step.on_retry.as_ref(),
            |client, watch, _| transaction_attempt(client, step, watch),
        );
        match result {
            Ok((moved_rows, _)) => Ok(moved_rows),
            Err(GaveUp {
                error: TransactionError::Guard(rows),
                ..
            }) => Err(StepError::Refused(guard_refusal(step, rows))),
            // Retention can wait: a plain detach that never got its lock
            // (a long report holds the table) is left for the next run, as a
            // concurrent detach waiting for old snapshots is.
            Err(GaveUp {
                error: TransactionError::Sql(error) | TransactionError::Raced(error),
                attempts,
                blocker,
            }) if step.action == Action::DetachPartition && retry::is_lock_timeout(&error) => {
                Err(StepError::Deferred(format!(
                    "the detach of {} did not get its lock within lock_timeout {} in {attempts} attempt(s){}{}; \
                     the partition stays attached and the next run detaches it",
                    step.target(),
                    step.lock_timeout,
                    on_node(&error),
                    blocker.map(|b| format!(" ({b})")).unwrap_or_default()
                )))
            }
            Err(GaveUp {
                error: TransactionError::Sql(error) | TransactionError::Raced(error),
                attempts,
                blocker,
            }) => Err(StepError::Failed(GaveUp {
                error,
                attempts,
                blocker,
            })),
        }
    }

    fn run_statements(&mut self, retry: &mut LockRetry<'_>, step: &Step) -> Result<(), StepError> {
        let set = format!("SET lock_timeout = '{}'", step.lock_timeout);
        self.client.batch_execute(&set).map_err(|error| {
            StepError::Failed(GaveUp {
                error,
                attempts: 1,
                blocker: None,
            })
        })?;
        let what = format!("{} {}", step.table, step.target());
        for (position, statement) in step.sql.iter().enumerate() {
            let cleanup = step.on_retry.as_ref().filter(|r| r.statement == position);
            let settings = self.settings;
            let result = if step.action == Action::CreateIndex {
                retry.run_patient(self.client, &what, |client, watch, _| {
                    let _progress = watch_build(client, settings, step);
                    watch.around(|| client.batch_execute(statement))
                })
            } else {
                retry.run(self.client, &what, cleanup, |client, watch, replacement| {
                    let sql = replacement.unwrap_or(statement);
                    watch.around(|| client.batch_execute(sql))
                })
            };
            match result {
                Ok(_) => {}
                Err(gave_up)
                    if step.action == Action::DetachPartition
                        && gave_up.error.is_lock_timeout() =>
                {
                    return Err(StepError::Deferred(format!(
                        "the detach of {} waits for transactions that started before it{}; it stays pending and the next run finishes it",
                        step.target(),
                        gave_up
                            .blocker
                            .map(|b| format!(" ({b})"))
                            .unwrap_or_default()
                    )));
                }
                Err(gave_up) => return Err(StepError::Failed(gave_up)),
            }
        }
        Ok(())
    }
}

/// One try of a transactional step; returns the rows it moved.
fn transaction_attempt(
    client: &mut Client,
    step: &Step,
    watch: Watch<'_>,
) -> Result<u64, TransactionError> {
    attempt_transaction(client, step, watch).map_err(|error| match error {
        TransactionError::Sql(error)
            if attaches(step)
                && error.code() == Some(&postgres::error::SqlState::CHECK_VIOLATION) =>
        {
            TransactionError::Raced(error)
        }
        other => other,
    })
}

/// Steps whose ATTACH scans the default partition for rows of the range.
fn attaches(step: &Step) -> bool {
    matches!(
        step.action,
        Action::AttachPartition | Action::MoveDefaultRows | Action::CreateDefaultPartition
    )
}

fn attempt_transaction(
    client: &mut Client,
    step: &Step,
    watch: Watch<'_>,
) -> Result<u64, TransactionError> {
    let mut transaction = client.transaction()?;
    for setting in transaction_settings(step) {
        transaction.batch_execute(&setting)?;
    }
    if let Some(guard) = &step.guard {
        let rows: i64 = transaction.query_one(guard.as_str(), &[])?.get(0);
        if rows > 0 {
            return Err(TransactionError::Guard(rows));
        }
    }
    let mut moved_rows = 0;
    for (position, sql) in step.sql.iter().enumerate() {
        if step.action == Action::MoveDefaultRows && position == 0 {
            moved_rows = watch.around(|| transaction.execute(sql.as_str(), &[]))?;
        } else {
            watch.around(|| transaction.batch_execute(sql))?;
        }
    }
    transaction.commit()?;
    Ok(moved_rows)
}

/// The settings a step's transaction starts with, as the plan shows them.
/// Sent one by one: Citus passes on the text of the statement it is given,
/// and a worker must get one SET, not a batch.
pub(crate) fn transaction_settings(step: &Step) -> Vec<String> {
    let lock_timeout = format!("SET LOCAL lock_timeout = '{}'", step.lock_timeout);
    if step.lock_timeout_on_workers {
        vec![
            "SET LOCAL citus.propagate_set_commands = 'local'".to_owned(),
            lock_timeout,
        ]
    } else {
        vec![lock_timeout]
    }
}

fn watch_build(
    client: &mut Client,
    settings: &ConnectionSettings,
    step: &Step,
) -> Option<BuildProgress> {
    let pid = retry::backend_pid(client)?;
    BuildProgress::start(settings, pid, step.target().to_string())
}

enum TransactionError {
    Sql(postgres::Error),
    /// Rows of the new range sit in the default partition.
    Guard(i64),
    /// An attach lost a race with a writer (see `is_conflict`).
    Raced(postgres::Error),
}

impl From<postgres::Error> for TransactionError {
    fn from(error: postgres::Error) -> Self {
        TransactionError::Sql(error)
    }
}

impl AttemptError for TransactionError {
    fn is_lock_timeout(&self) -> bool {
        matches!(self, TransactionError::Sql(error) if retry::is_lock_timeout(error))
    }

    /// An attach whose scan of the default partition met a row a writer
    /// committed there after the move's snapshot (23514) lost a race, as a
    /// serialization failure does: the whole transaction rolled back, and
    /// a retry moves that row too. Waiting for writers this way, rather
    /// than locking the default partition first, keeps pgm the side that
    /// yields: a lock taken up front could deadlock with an application
    /// transaction that read the parent and then inserts.
    fn is_conflict(&self) -> bool {
        match self {
            TransactionError::Sql(error) => retry::is_conflict(error),
            TransactionError::Raced(_) => true,
            TransactionError::Guard(_) => false,
        }
    }
}

enum StepError {
    Failed(GaveUp<postgres::Error>),
    Deferred(String),
    Refused(String),
}

fn guard_refusal(step: &Step, rows: i64) -> String {
    let default = step
        .other_locks
        .as_deref()
        .unwrap_or("the default partition");
    format!(
        "cannot attach {}: {rows} row(s) of its range [{}, {}) sit in the default partition ({default}); \
         set move_default_rows = true to move them in the same transaction as the attach, or move them yourself",
        step.target(),
        step.from.as_deref().unwrap_or("?"),
        step.to.as_deref().unwrap_or("?"),
    )
}

fn failure_message(step: &Step, failure: &GaveUp<postgres::Error>) -> String {
    let mut message = format!("{} {} failed", action_words(step), step.target());
    if failure.attempts > 1 {
        message.push_str(&format!(" after {} attempts", failure.attempts));
    }
    message.push_str(&format!(": {}", describe(&failure.error)));
    if let Some(blocker) = &failure.blocker {
        message.push_str(&format!(" ({blocker})"));
    }
    message
}

/// Every step is logged as it starts; every drop with what it removes.
fn log_start(step: &Step) {
    match (step.action, &step.from, &step.to) {
        (Action::CreateIndex, _, _) if step.partition.is_none() => {
            tracing::info!(
                "{}: creating index {} on the parent (ON ONLY)",
                step.table,
                step.target()
            );
        }
        (Action::DropPartition | Action::ArchivePartition, Some(from), Some(to)) => {
            tracing::info!(
                "{}: {} {} [{from}, {to}): {}",
                step.table,
                action_words(step),
                step.target(),
                step.reason
            )
        }
        _ => tracing::info!("{}: {} {}", step.table, action_words(step), step.target()),
    }
}

fn action_words(step: &Step) -> &'static str {
    match step.action {
        Action::FinalizeDetach => "finishing the detach of",
        Action::DetachPartition => "detaching",
        Action::DropPartition => "dropping",
        Action::ArchivePartition => "archiving",
        Action::KeepDetached => "keeping as a plain table",
        Action::CreateIndex if step.partition.is_none() => "creating index on the parent",
        Action::CreateIndex => "building index",
        Action::CreatePartition => "creating",
        Action::AttachPartition => "attaching",
        Action::MoveDefaultRows => "moving default rows into and attaching",
        Action::DropInvalidIndex => "dropping invalid index",
        Action::AttachIndex => "attaching index",
        Action::ColumnarPrepare => "adding the bounds CHECK (NOT VALID) to",
        Action::ColumnarPartition => "converting to columnar",
        Action::CreateDefaultPartition => "creating the default partition",
        Action::ConvertCreateTable => "creating the partitioned table for",
        Action::ConvertStartCapture => "starting the change capture on",
        Action::ConvertBackfill => "copying a batch of",
        Action::ConvertReplay => "replaying captured changes of",
        Action::ConvertVerify => "verifying",
        Action::ConvertSwap => "swapping",
        Action::ConvertValidate => "validating the foreign key of",
        Action::ConvertDropOld => "dropping",
        Action::ConvertAbort => "aborting the conversion of",
    }
}

/// Where Citus says a statement it sent failed (" on a worker, while
/// executing command on host:port"), or nothing for a local failure.
fn on_node(error: &postgres::Error) -> String {
    error
        .as_db_error()
        .and_then(|db| db.where_())
        .filter(|context| context.starts_with("while executing command on"))
        .map(|context| format!(" on a worker, {context}"))
        .unwrap_or_default()
}

fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => error.to_string(),
    }
}
