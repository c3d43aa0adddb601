//! Runs the steps of one table's plan, and nothing else. Every statement
//! runs under the table's lock_timeout and is retried with jittered backoff;
//! exhausted retries fail that step (and what depends on it), never the run.

use std::time::Instant;

use postgres::Client;
use serde::Serialize;

use super::planner::{Action, Step};
use super::policy::TablePolicy;
use super::progress::BuildProgress;
use crate::db::ConnectionSettings;
use crate::db::blocking::{Blocker, BlockingWatcher};
use crate::db::retry::{is_lock_timeout, pause_before_retry};

/// What happened to one table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    pub table: String,
    pub created: usize,
    pub moved_rows: u64,
    pub detached: usize,
    pub dropped: usize,
    pub archived: usize,
    pub indexes_built: usize,
    pub indexes_attached: usize,
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

    pub fn did_something(&self) -> bool {
        self.created
            + self.detached
            + self.dropped
            + self.archived
            + self.indexes_built
            + self.indexes_attached
            > 0
    }
}

struct Failure {
    error: postgres::Error,
    attempts: u32,
    blocker: Option<Blocker>,
}

pub struct Executor<'a> {
    pub client: &'a mut Client,
    pub settings: &'a ConnectionSettings,
}

impl Executor<'_> {
    pub fn run(&mut self, table: &TablePolicy, steps: &[Step], report: &mut TableReport) {
        let mut blocked_partitions: Vec<String> = Vec::new();
        let mut parent_index_failed = false;
        // PostgreSQL allows one pending detach per parent: once one waits,
        // the other detaches of the table wait for the next run too.
        let mut pending_detach: Option<String> = None;
        for step in steps {
            if step.action == Action::Error {
                let message = step.message.clone().unwrap_or_default();
                if step.is_warning() {
                    report.warnings.push(message);
                } else {
                    report.failures.push(message);
                }
                continue;
            }
            let is_index_step = matches!(
                step.action,
                Action::CreateIndex | Action::AttachIndex | Action::DropInvalidIndex
            );
            if step
                .partition
                .as_ref()
                .is_some_and(|p| blocked_partitions.contains(p))
                || (is_index_step && parent_index_failed)
            {
                continue;
            }
            if let (Action::DetachPartition, Some(waiting)) = (step.action, &pending_detach) {
                report.deferred.push(format!(
                    "the detach of {} waits until the detach of {waiting} is finished",
                    step.target()
                ));
                blocked_partitions.extend(step.partition.clone());
                continue;
            }
            let started = Instant::now();
            let result = self.run_step(table, step, report);
            match result {
                Ok(()) => {
                    tracing::debug!(
                        "{:?} {} done in {} ms",
                        step.action,
                        step.target(),
                        started.elapsed().as_millis()
                    );
                    count(step, report);
                }
                Err(StepError::Deferred(message)) => {
                    tracing::warn!("{}: {message}", report.table);
                    report.deferred.push(message);
                    blocked_partitions.extend(step.partition.clone());
                    pending_detach = step.partition.clone();
                }
                Err(StepError::Refused(message)) => {
                    report.failures.push(message);
                    blocked_partitions.extend(step.partition.clone());
                }
                Err(StepError::Failed(failure)) => {
                    let mut message =
                        format!("{} {} failed", action_words(step.action), step.target());
                    if failure.attempts > 1 {
                        message.push_str(&format!(" after {} attempts", failure.attempts));
                    }
                    message.push_str(&format!(": {}", describe(&failure.error)));
                    if let Some(blocker) = &failure.blocker {
                        message.push_str(&format!(" ({blocker})"));
                    }
                    tracing::error!("{}: {message}", report.table);
                    report.failures.push(message);
                    blocked_partitions.extend(step.partition.clone());
                    if is_index_step && step.partition.is_none() {
                        parent_index_failed = true;
                    }
                }
            }
        }
    }

    fn run_step(
        &mut self,
        table: &TablePolicy,
        step: &Step,
        report: &mut TableReport,
    ) -> Result<(), StepError> {
        match (step.action, &step.from, &step.to) {
            (Action::CreateIndex, _, _) if step.transactional => {
                tracing::info!(
                    "{}: creating index {} on the parent (ON ONLY)",
                    report.table,
                    step.target()
                );
            }
            // Every drop is logged with what it removes.
            (Action::DropPartition | Action::ArchivePartition, Some(from), Some(to)) => {
                tracing::info!(
                    "{}: {} {} [{from}, {to}): {}",
                    report.table,
                    action_words(step.action),
                    step.target(),
                    step.reason
                )
            }
            _ => tracing::info!(
                "{}: {} {}",
                report.table,
                action_words(step.action),
                step.target()
            ),
        }
        if step.transactional {
            self.run_transaction(table, step, report)
        } else {
            self.run_statements(table, step)
        }
    }

    fn run_transaction(
        &mut self,
        table: &TablePolicy,
        step: &Step,
        report: &mut TableReport,
    ) -> Result<(), StepError> {
        let mut watcher: Option<BlockingWatcher> = None;
        let mut attempt = 1;
        loop {
            let result = self.transaction_attempt(table, step, watcher.as_ref());
            match result {
                Ok(moved) => {
                    report.moved_rows += moved;
                    return Ok(());
                }
                Err(AttemptError::Guard(rows)) => {
                    let default = step
                        .other_locks
                        .as_deref()
                        .unwrap_or("the default partition");
                    return Err(StepError::Refused(format!(
                        "cannot attach {}: {rows} row(s) of its range [{}, {}) sit in the default partition ({default}); \
                         set move_default_rows = true to move them in the same transaction as the attach, or move them yourself",
                        step.target(),
                        step.from.as_deref().unwrap_or("?"),
                        step.to.as_deref().unwrap_or("?"),
                    )));
                }
                Err(AttemptError::Sql(error)) => {
                    if is_lock_timeout(&error) && attempt <= table.lock_retries {
                        watcher = watcher.or_else(|| self.start_watcher());
                        pause_before_retry(
                            &format!("{} {}", step.table, step.target()),
                            attempt,
                            table.lock_retries,
                        );
                        attempt += 1;
                        continue;
                    }
                    let blocker = watcher.as_ref().and_then(BlockingWatcher::last_blocker);
                    return Err(StepError::Failed(Failure {
                        error,
                        attempts: attempt,
                        blocker,
                    }));
                }
            }
        }
    }

    /// One try of a transactional step; returns the rows it moved.
    fn transaction_attempt(
        &mut self,
        table: &TablePolicy,
        step: &Step,
        watcher: Option<&BlockingWatcher>,
    ) -> Result<u64, AttemptError> {
        let mut transaction = self.client.transaction().map_err(AttemptError::Sql)?;
        transaction
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = '{}'",
                table.lock_timeout.setting()
            ))
            .map_err(AttemptError::Sql)?;
        if let Some(guard) = &step.guard {
            let rows: i64 = transaction
                .query_one(guard.as_str(), &[])
                .map_err(AttemptError::Sql)?
                .get(0);
            if rows > 0 {
                return Err(AttemptError::Guard(rows));
            }
        }
        let mut moved = 0;
        for sql in &step.sql {
            if let Some(watcher) = watcher {
                watcher.set_in_flight(true);
            }
            let result =
                if step.action == Action::MoveDefaultRows && sql.starts_with("WITH moved AS") {
                    transaction
                        .execute(sql.as_str(), &[])
                        .map(|rows| moved = rows)
                } else {
                    transaction.batch_execute(sql)
                };
            if let Some(watcher) = watcher {
                watcher.set_in_flight(false);
            }
            result.map_err(AttemptError::Sql)?;
        }
        transaction.commit().map_err(AttemptError::Sql)?;
        Ok(moved)
    }

    fn run_statements(&mut self, table: &TablePolicy, step: &Step) -> Result<(), StepError> {
        let set = format!("SET lock_timeout = '{}'", table.lock_timeout.setting());
        self.client.batch_execute(&set).map_err(|error| {
            StepError::Failed(Failure {
                error,
                attempts: 1,
                blocker: None,
            })
        })?;
        let mut watcher: Option<BlockingWatcher> = None;
        for sql in &step.sql {
            let mut statement = sql.clone();
            let mut attempt = 1;
            loop {
                let _progress = (step.action == Action::CreateIndex)
                    .then(|| self.start_progress(step))
                    .flatten();
                if let Some(watcher) = &watcher {
                    watcher.set_in_flight(true);
                }
                let result = self.client.batch_execute(&statement);
                if let Some(watcher) = &watcher {
                    watcher.set_in_flight(false);
                }
                let Err(error) = result else {
                    break;
                };
                if !is_lock_timeout(&error) {
                    return Err(StepError::Failed(Failure {
                        error,
                        attempts: attempt,
                        blocker: None,
                    }));
                }
                if attempt > table.lock_retries {
                    let blocker = watcher.as_ref().and_then(BlockingWatcher::last_blocker);
                    if step.action == Action::DetachPartition {
                        return Err(StepError::Deferred(format!(
                            "the detach of {} waits for transactions that started before it{}; it stays pending and the next run finishes it",
                            step.target(),
                            blocker.map(|b| format!(" ({b})")).unwrap_or_default()
                        )));
                    }
                    return Err(StepError::Failed(Failure {
                        error,
                        attempts: attempt,
                        blocker,
                    }));
                }
                watcher = watcher.or_else(|| self.start_watcher());
                pause_before_retry(
                    &format!("{} {}", step.table, step.target()),
                    attempt,
                    table.lock_retries,
                );
                // A DETACH … CONCURRENTLY cancelled after its first
                // transaction left the partition pending: from then on it can
                // only be finished.
                if step.action == Action::DetachPartition
                    && statement.ends_with(" CONCURRENTLY")
                    && self.detach_pending(step).unwrap_or(false)
                {
                    statement = format!("{} FINALIZE", statement.trim_end_matches(" CONCURRENTLY"));
                }
                // A cancelled concurrent build leaves an INVALID index behind.
                if step.action == Action::CreateIndex && statement.contains(" CONCURRENTLY ") {
                    self.drop_invalid(step).map_err(|error| {
                        StepError::Failed(Failure {
                            error,
                            attempts: attempt,
                            blocker: None,
                        })
                    })?;
                }
                attempt += 1;
            }
        }
        Ok(())
    }

    fn detach_pending(&mut self, step: &Step) -> Result<bool, postgres::Error> {
        let Some((schema, name)) = step.partition.as_deref().and_then(|p| p.split_once('.')) else {
            return Ok(false);
        };
        Ok(self
            .client
            .query_opt(
                "SELECT i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &name],
            )?
            .is_some_and(|row| row.get(0)))
    }

    fn drop_invalid(&mut self, step: &Step) -> Result<(), postgres::Error> {
        let Some((schema, name)) = step.index.as_deref().and_then(|i| i.split_once('.')) else {
            return Ok(());
        };
        let invalid = self
            .client
            .query_opt(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND NOT i.indisvalid",
                &[&schema, &name],
            )?
            .is_some();
        if invalid {
            let sql = format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}.{}",
                crate::db::quote_ident(schema),
                crate::db::quote_ident(name)
            );
            tracing::info!("dropping the INVALID index the cancelled build left: {sql}");
            self.client.batch_execute(&sql)?;
        }
        Ok(())
    }

    fn backend_pid(&mut self) -> Option<i32> {
        self.client
            .query_one("SELECT pg_backend_pid()", &[])
            .ok()
            .map(|row| row.get(0))
    }

    fn start_watcher(&mut self) -> Option<BlockingWatcher> {
        let pid = self.backend_pid()?;
        BlockingWatcher::start(self.settings, pid)
    }

    fn start_progress(&mut self, step: &Step) -> Option<BuildProgress> {
        let pid = self.backend_pid()?;
        BuildProgress::start(self.settings, pid, step.target().to_owned())
    }
}

enum AttemptError {
    Sql(postgres::Error),
    Guard(i64),
}

enum StepError {
    Failed(Failure),
    Deferred(String),
    Refused(String),
}

fn action_words(action: Action) -> &'static str {
    match action {
        Action::FinalizeDetach => "finishing the detach of",
        Action::DetachPartition => "detaching",
        Action::DropPartition => "dropping",
        Action::ArchivePartition => "archiving",
        Action::CreateIndex => "building index",
        Action::CreatePartition => "creating",
        Action::AttachPartition => "attaching",
        Action::MoveDefaultRows => "moving default rows into and attaching",
        Action::DropInvalidIndex => "dropping invalid index",
        Action::AttachIndex => "attaching index",
        Action::Error => "reporting",
    }
}

fn count(step: &Step, report: &mut TableReport) {
    match step.action {
        Action::AttachPartition | Action::MoveDefaultRows => report.created += 1,
        Action::DetachPartition | Action::FinalizeDetach => report.detached += 1,
        Action::DropPartition => report.dropped += 1,
        Action::ArchivePartition => report.archived += 1,
        Action::CreateIndex if !step.transactional => report.indexes_built += 1,
        Action::AttachIndex => report.indexes_attached += 1,
        _ => {}
    }
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
