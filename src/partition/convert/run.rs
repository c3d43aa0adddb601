//! Runs a conversion's plan, phase by phase, and nothing else: the fixed
//! steps through the partition executor (lock_timeout, retries through
//! `LockRetry`), the backfill and replay batches as their steps show them,
//! each batch its own transaction recording its progress in the journal.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::Client;

use super::Phase;
use super::check::{self, CheckError, Checked};
use super::journal::{self, JournalError, JournalPhase, State};
use super::plan::{self, ConvertPlan, Names, PlanError};
use super::progress::CopyProgress;
use super::render;
use super::source;
use super::swap::{self, Direction};
use crate::db::ConnectionSettings;
use crate::db::ident::QualifiedName;
use crate::db::lock::{self, LockError, SessionLock};
use crate::db::pooler::{self, PoolerError};
use crate::db::retry::{AttemptError, GaveUp, LockRetry, Watch};
use crate::partition::executor::Executor;
use crate::partition::planner::Step;
use crate::partition::policy::TablePolicy;
use postgres::error::SqlState;
use postgres::types::ToSql;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub until: Phase,
    pub dry_run: bool,
    pub batch_size: u32,
    pub pause: Duration,
    pub unswap: bool,
    pub drop_old: bool,
    pub abort: bool,
}

/// The name the old table keeps: `--keep-as`, else `TABLE_unpartitioned`.
fn keep_as_name(keep_as: Option<&str>, names: &Names) -> String {
    keep_as.map_or_else(
        || crate::db::ident::shorten_identifier(&format!("{}_unpartitioned", names.source.name)),
        str::to_owned,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The table cannot be converted; nothing was changed.
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Pooled(#[from] PoolerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "{0}: another pgm (convert or maintain) holds its lock; nothing was done: run again when it is finished"
    )]
    Busy(String),
    #[error("{table}: {message}")]
    Step { table: String, message: String },
    #[error(
        "{table}: the partitioned table differs from the table; nothing will be swapped:{}",
        differences.iter().map(|d| format!("\n  - {d}")).collect::<String>()
    )]
    Differs {
        table: String,
        differences: Vec<String>,
    },
    #[error("{what}: {source}")]
    Query {
        what: String,
        source: postgres::Error,
    },
    #[error("{0} does not exist")]
    Missing(String),
    #[error(
        "--keep-as \"{0}\" cannot be the old table's name: it must be a new name of 1 to 63 bytes, other \
         than the table's and the partitioned table's"
    )]
    KeepAs(String),
    #[error("{0} was not swapped: --unswap reverses a swap while the old table is kept")]
    NotSwapped(String),
    #[error(
        "{0} is swapped: --abort drops the partitioned copy before the swap; run --unswap first to give \
         the name back to the old table, then --abort"
    )]
    AbortAfterSwap(String),
    #[error(transparent)]
    Output(#[from] std::io::Error),
}

fn query(what: &str) -> impl FnOnce(postgres::Error) -> ConvertError + '_ {
    move |source| ConvertError::Query {
        what: what.to_owned(),
        source,
    }
}

/// What a run is asked to do: the options, the old table's name after the
/// swap (`--keep-as`), and now.
pub struct Request<'a> {
    pub options: Options,
    pub keep_as: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Runs the conversion of `table` through `options.until`, or prints it.
pub fn run(
    client: &mut Client,
    settings: &ConnectionSettings,
    table: &TablePolicy,
    request: &Request<'_>,
    out: &mut dyn Write,
) -> Result<(), ConvertError> {
    // Key values travel as text between batches: one way of printing them.
    client
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
        .map_err(query("setting up the session"))?;
    if request.options.dry_run {
        return plan_and(client, table, request, out, None);
    }
    pooler::require_own_session(client, settings)?;
    let key = lock::key_for(&format!("pgm partitions {}", table.parent()));
    let Some(mut guard) = SessionLock::try_acquire(&mut *client, key)
        .map_err(query("taking the table's advisory lock"))?
    else {
        return Err(ConvertError::Busy(table.qualified_name()));
    };
    guard.confirm(&format!("the lock of {}", table.parent()))?;
    plan_and(guard.client(), table, request, out, Some(settings))
}

/// Checks, plans, and prints the plan (`settings` unset) or runs it.
fn plan_and(
    client: &mut Client,
    table: &TablePolicy,
    request: &Request<'_>,
    out: &mut dyn Write,
    settings: Option<&ConnectionSettings>,
) -> Result<(), ConvertError> {
    let (options, now) = (request.options, request.now);
    let names = Names::of(&table.parent());
    let mut state = journal::read_state(client, &names)?;
    if options.abort {
        return abort(client, table, options, &state, out, settings);
    }
    if let Some(kept) = state.journal.as_ref().and_then(swapped) {
        // Asked to stop before the swap, which is done: only say so.
        let settings = settings.filter(|_| options.until == Phase::Swap);
        return after_swap(client, table, options, &kept, out, settings);
    }
    if options.unswap {
        return Err(ConvertError::NotSwapped(table.qualified_name()));
    }
    let key = table.key.as_ref().map_or("", |(key, _)| key.as_str());
    let source = source::read_source(client, &names.source, key)
        .map_err(query("reading the table from the catalog"))?;
    let checked = check::check(table, source.as_ref(), now)?;
    render::write_check(out, &checked, &state)?;
    let Some(source) = source.filter(|_| options.until > Phase::Check) else {
        return Ok(());
    };
    if state.target_exists {
        state.target = source::read_source(client, &names.target, "")
            .map_err(query("reading the partitioned table from the catalog"))?;
    }
    let range = journal::read_key_range(client, &names, &checked.key)
        .map_err(query("reading the smallest and largest key"))?;
    let keep_as = keep_as_name(request.keep_as, &names);
    if keep_as.is_empty()
        || keep_as.len() > crate::db::ident::MAX_IDENTIFIER_BYTES
        || [&names.source.name, &names.target.name].contains(&&keep_as)
    {
        return Err(ConvertError::KeepAs(keep_as));
    }
    let plan = plan::plan(table, &checked, &source, &range, &state, &keep_as, now)?;
    let Some(settings) = settings else {
        return Ok(render::write_plan(out, &plan, options)?);
    };
    let mut runner = Runner::new(client, settings, table, options);
    runner.run(&plan, &checked, &state, out)?;
    if options.until == Phase::Swap {
        let kept = QualifiedName::new(names.source.schema.clone(), keep_as);
        runner.after_swap(&names, &kept, out)?;
    }
    Ok(())
}

/// `--abort`: everything the conversion made, dropped, when the journal has
/// a conversion of the table that is not swapped.
fn abort(
    client: &mut Client,
    table: &TablePolicy,
    options: Options,
    state: &State,
    out: &mut dyn Write,
    settings: Option<&ConnectionSettings>,
) -> Result<(), ConvertError> {
    let names = Names::of(&table.parent());
    let Some(journal) = &state.journal else {
        writeln!(
            out,
            "abort: no conversion of {} is journaled; nothing to do",
            names.source
        )?;
        return Ok(());
    };
    if journal.phase == JournalPhase::Swapped {
        return Err(ConvertError::AbortAfterSwap(table.qualified_name()));
    }
    let step = swap::abort_step(table, &names);
    let Some(settings) = settings else {
        return Ok(crate::partition::render::write_sql_step(out, &step)?);
    };
    Runner::new(client, settings, table, options).run_step(&step)?;
    writeln!(out, "abort: {}", step.reason)?;
    Ok(())
}

/// The old table's name, when the journal says the swap is done.
fn swapped(journal: &journal::Journal) -> Option<String> {
    (journal.phase == JournalPhase::Swapped).then(|| journal.kept_as.clone().unwrap_or_default())
}

/// After the swap: validate the re-pointed foreign keys, then unswap or
/// drop the old table when asked.
fn after_swap(
    client: &mut Client,
    table: &TablePolicy,
    options: Options,
    kept: &str,
    out: &mut dyn Write,
    settings: Option<&ConnectionSettings>,
) -> Result<(), ConvertError> {
    let names = Names::of(&table.parent());
    let kept = QualifiedName::new(names.source.schema.clone(), kept);
    writeln!(
        out,
        "{}: swapped; the old table is kept as {kept}",
        names.source
    )?;
    let Some(settings) = settings else {
        let live = read_live(client, &names)?;
        return Ok(render::write_after_swap(
            out, table, &names, &live, &kept, options,
        )?);
    };
    Runner::new(client, settings, table, options).after_swap(&names, &kept, out)
}

fn read_live(client: &mut Client, names: &Names) -> Result<source::SourceTable, ConvertError> {
    source::read_source(client, &names.source, "")
        .map_err(query("reading the table from the catalog"))?
        .ok_or_else(|| ConvertError::Missing(names.source.to_string()))
}

struct Runner<'a> {
    client: &'a mut Client,
    settings: &'a ConnectionSettings,
    table: &'a TablePolicy,
    options: Options,
    retry: LockRetry<'a>,
}

impl<'a> Runner<'a> {
    fn new(
        client: &'a mut Client,
        settings: &'a ConnectionSettings,
        table: &'a TablePolicy,
        options: Options,
    ) -> Runner<'a> {
        Runner {
            client,
            settings,
            table,
            options,
            retry: LockRetry::new(settings, table.lock_retries),
        }
    }

    /// Validates what the swap added NOT VALID; then `--unswap` or
    /// `--drop-old` when asked.
    fn after_swap(
        &mut self,
        names: &Names,
        kept: &QualifiedName,
        out: &mut dyn Write,
    ) -> Result<(), ConvertError> {
        let live = read_live(self.client, names)?;
        if self.options.unswap {
            let step = swap::swap_step(
                self.table,
                names,
                &live,
                kept,
                &names.target.name,
                Direction::Unswap,
            );
            self.run_step(&step)?;
            writeln!(
                out,
                "unswap: {} is the old table again; {}",
                names.source, step.reason
            )?;
            // The unswap re-points the foreign keys NOT VALID, as the swap does.
            for step in swap::foreign_key_validations(self.table, &live, true) {
                self.run_step(&step)?;
                writeln!(out, "validate: {}", step.reason)?;
            }
            return Ok(());
        }
        for step in swap::validate_steps(self.table, &live) {
            self.run_step(&step)?;
            writeln!(out, "validate: {}", step.reason)?;
        }
        if self.options.drop_old {
            self.drop_old(names, kept, out)?;
        }
        Ok(())
    }

    fn drop_old(
        &mut self,
        names: &Names,
        kept: &QualifiedName,
        out: &mut dyn Write,
    ) -> Result<(), ConvertError> {
        let count = |client: &mut Client, name: &QualifiedName| -> Result<i64, ConvertError> {
            let sql = format!("SELECT count(*) FROM {}", name.quoted());
            Ok(client
                .query_one(sql.as_str(), &[])
                .map_err(query("counting rows"))?
                .get(0))
        };
        let (old, new) = (
            count(self.client, kept)?,
            count(self.client, &names.source)?,
        );
        writeln!(
            out,
            "drop-old: {kept} holds {old} row(s), {} holds {new}; dropping {kept}",
            names.source
        )?;
        out.flush()?;
        self.run_step(&swap::drop_old_step(self.table, names, kept))?;
        writeln!(
            out,
            "drop-old: done; the conversion of {} is finished",
            names.source
        )?;
        Ok(())
    }

    fn run(
        &mut self,
        plan: &ConvertPlan,
        checked: &Checked,
        state: &State,
        out: &mut dyn Write,
    ) -> Result<(), ConvertError> {
        for step in &plan.prepare {
            self.run_step(step)?;
            writeln!(out, "prepare: {}", step.reason)?;
        }
        if self.options.until == Phase::Prepare {
            return Ok(());
        }
        let phase = state.journal.as_ref().map(|j| j.phase);
        if phase < Some(JournalPhase::Backfilled) {
            let copied = self.backfill(plan)?;
            writeln!(
                out,
                "backfill: {copied} row(s) copied by this run; every row is copied"
            )?;
        }
        if self.options.until == Phase::Backfill {
            return Ok(());
        }
        let replayed = self.replay(plan)?;
        writeln!(
            out,
            "replay: {replayed} logged change(s) applied to {}; the capture goes on logging",
            plan.names.target
        )?;
        if self.options.until == Phase::Replay {
            return Ok(());
        }
        self.run_step(&plan.analyze)?;
        self.verify(plan, out)?;
        if self.options.until == Phase::Verify {
            return Ok(());
        }
        // What was written during ANALYZE and verify, applied now rather
        // than by the swap's replay, which holds the table's lock.
        let caught_up = self.replay(plan)?;
        writeln!(
            out,
            "replay: {caught_up} change(s) logged since applied before the swap"
        )?;
        self.swap(plan)?;
        writeln!(
            out,
            "swap: {} is partitioned; the old table is kept as {}",
            checked.table, plan.keep_as
        )?;
        Ok(())
    }

    /// Compares both tables; any difference is an error naming it.
    fn verify(&mut self, plan: &ConvertPlan, out: &mut dyn Write) -> Result<(), ConvertError> {
        let verified = super::verify::run_verify(self.client, &plan.verify)
            .map_err(query("verifying the partitioned table"))?;
        if !verified.differences.is_empty() {
            return Err(ConvertError::Differs {
                table: self.table.qualified_name(),
                differences: verified.differences,
            });
        }
        writeln!(
            out,
            "verify: {} row(s) equal in {} partition(s); {} key(s) still in the log are replayed at the swap",
            verified.rows, verified.partitions, verified.logged
        )?;
        Ok(())
    }

    /// The swap, each attempt after its first preceded by a replay of the
    /// whole log: what was written while the last attempt waited for its
    /// lock and backed off is applied without the lock, so the swap's own
    /// replay, which holds it, stays short however long the retries took.
    fn swap(&mut self, plan: &ConvertPlan) -> Result<(), ConvertError> {
        let mut executor = Executor {
            client: self.client,
            settings: self.settings,
        };
        let mut first = true;
        executor
            .run_one_after(&mut self.retry, &plan.swap, |client| {
                if std::mem::take(&mut first) {
                    return Ok(());
                }
                let mut transaction = client.transaction()?;
                set_lock_timeout(&mut transaction, &plan.replay)?;
                let statements = run_settings(&mut transaction, &plan.replay)?;
                apply_replay(&mut transaction, statements, None, None)?;
                transaction.commit()
            })
            .map_err(|message| ConvertError::Step {
                table: self.table.qualified_name(),
                message,
            })
    }

    fn run_step(&mut self, step: &Step) -> Result<(), ConvertError> {
        let mut executor = Executor {
            client: self.client,
            settings: self.settings,
        };
        executor
            .run_one(&mut self.retry, step)
            .map_err(|message| ConvertError::Step {
                table: self.table.qualified_name(),
                message,
            })
    }

    /// Copies batches until one copies nothing; returns the rows copied.
    fn backfill(&mut self, plan: &ConvertPlan) -> Result<i64, ConvertError> {
        // Read again: the capture step of this run journaled the bound.
        let state = journal::read_state(self.client, &plan.names)?;
        let journal = state.journal.as_ref();
        let until = journal.and_then(|j| j.backfill_until.clone());
        let mut after = journal.and_then(|j| j.backfill_after.clone());
        let total = self.estimated_rows(&plan.names)?;
        let progress = CopyProgress::start(
            format!("{} → {}", plan.names.source, plan.names.target),
            total,
            journal.map_or(0, |j| j.copied),
        );
        let mut copied = 0;
        loop {
            let step = match after {
                None => &plan.backfill.first,
                Some(_) => &plan.backfill.next,
            };
            let (rows, last) = self.batch(step, until.as_ref(), after.as_ref())?;
            copied += rows;
            progress.advance(rows);
            if rows == 0 {
                return Ok(copied);
            }
            after = last;
            std::thread::sleep(self.options.pause);
        }
    }

    fn estimated_rows(&mut self, names: &Names) -> Result<u64, ConvertError> {
        let row = self
            .client
            .query_one(
                "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = to_regclass($1)",
                &[&names.source.quoted()],
            )
            .map_err(query("reading the table's row estimate"))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// One backfill batch and its journal row, in one transaction under
    /// lock_timeout, retried.
    fn batch(
        &mut self,
        step: &Step,
        until: Option<&Vec<String>>,
        after: Option<&Vec<String>>,
    ) -> Result<(i64, Option<Vec<String>>), ConvertError> {
        let limit = i64::from(self.options.batch_size);
        let limit: &(dyn ToSql + Sync) = &limit;
        let result =
            self.in_transaction("backfill batch", step, |transaction, statements, watch| {
                let row = watch.around(|| match after {
                    None => transaction.query_one(statements[0].as_str(), &[limit, &until]),
                    Some(after) => {
                        transaction.query_one(statements[0].as_str(), &[limit, after, &until])
                    }
                })?;
                let (rows, last): (i64, Option<Vec<String>>) = (row.get(0), row.get(1));
                transaction.execute(statements[1].as_str(), &[&last, &rows])?;
                Ok((rows, last))
            });
        result.map_err(|gave_up| self.failed("backfill batch", &gave_up))
    }

    /// Applies log batches until one finds fewer entries than a full batch;
    /// returns the entries applied.
    fn replay(&mut self, plan: &ConvertPlan) -> Result<i64, ConvertError> {
        let mut applied = 0;
        loop {
            let entries = self.replay_batch_or_whole_log(&plan.replay)?;
            applied += entries;
            if entries < i64::from(self.options.batch_size) {
                return Ok(applied);
            }
        }
    }

    /// A batch whose copy breaks a unique constraint of the target ran into
    /// a row whose key is logged after the batch: the value moved from that
    /// key to one in the batch. Over every entry of the log no such row is
    /// left (each stale row's key is in it), so the batch runs again over
    /// all of them; otherwise the same batch would fail on every run.
    fn replay_batch_or_whole_log(&mut self, step: &Step) -> Result<i64, ConvertError> {
        let limit = i64::from(self.options.batch_size);
        let result = match self.replay_batch(step, Some(limit)) {
            Err(gave_up) if gave_up.error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tracing::info!(
                    "{}: a replay batch met a value moved between logged keys ({}); applying the whole log at once",
                    self.table.parent(),
                    describe(&gave_up.error)
                );
                self.replay_batch(step, None)
            }
            other => other,
        };
        result.map_err(|gave_up| self.failed("replay batch", &gave_up))
    }

    /// One replay batch: the first `limit` log entries, or all of them.
    fn replay_batch(
        &mut self,
        step: &Step,
        limit: Option<i64>,
    ) -> Result<i64, GaveUp<postgres::Error>> {
        self.in_transaction("replay batch", step, |transaction, statements, watch| {
            apply_replay(transaction, statements, limit, Some(watch))
        })
    }

    /// `work` on the step's statements after its settings, in one
    /// transaction under the step's lock_timeout, retried on lock timeouts
    /// and conflicts (see [`BatchError`]).
    fn in_transaction<T>(
        &mut self,
        what: &str,
        step: &Step,
        mut work: impl FnMut(
            &mut postgres::Transaction<'_>,
            &[String],
            Watch<'_>,
        ) -> Result<T, postgres::Error>,
    ) -> Result<T, GaveUp<postgres::Error>> {
        let label = format!("{} {what}", self.table.parent());
        let result = self
            .retry
            .run(self.client, &label, None, |client, watch, _| {
                let mut transaction = client.transaction()?;
                set_lock_timeout(&mut transaction, step)?;
                let statements = run_settings(&mut transaction, step)?;
                let value = work(&mut transaction, statements, watch)?;
                transaction.commit()?;
                Ok::<_, BatchError>(value)
            });
        result.map(|(value, _)| value).map_err(|gave_up| GaveUp {
            error: gave_up.error.0,
            attempts: gave_up.attempts,
            blocker: gave_up.blocker,
        })
    }

    fn failed(&self, what: &str, gave_up: &GaveUp<postgres::Error>) -> ConvertError {
        ConvertError::Step {
            table: self.table.qualified_name(),
            message: format!(
                "a {what} failed after {} attempt(s): {}",
                gave_up.attempts,
                describe(&gave_up.error)
            ),
        }
    }
}

/// A batch's failure. Besides lock timeouts and conflicts, a foreign key
/// violation is retried: a row read in the batch's snapshot can reference
/// a row deleted since (the delete's cascade, logged, removes the row
/// itself later); the next attempt reads a snapshot without it. A row
/// that breaks the key for good fails every attempt and stops the run.
struct BatchError(postgres::Error);

impl From<postgres::Error> for BatchError {
    fn from(error: postgres::Error) -> Self {
        BatchError(error)
    }
}

impl AttemptError for BatchError {
    fn is_lock_timeout(&self) -> bool {
        self.0.is_lock_timeout()
    }

    fn is_conflict(&self) -> bool {
        self.0.is_conflict() || self.0.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
    }
}

/// The replay step's statements after its settings, in `transaction`: the
/// count of the first `limit` entries (all when `None`), three statements
/// up to the largest seq read, the journal. Returns the entries applied.
fn apply_replay(
    transaction: &mut postgres::Transaction<'_>,
    statements: &[String],
    limit: Option<i64>,
    watch: Option<Watch<'_>>,
) -> Result<i64, postgres::Error> {
    let row = transaction.query_one(statements[0].as_str(), &[&limit])?;
    let (entries, upto): (i64, Option<i64>) = (row.get(0), row.get(1));
    if let Some(upto) = upto {
        for sql in &statements[1..4] {
            let mut execute = || transaction.execute(sql.as_str(), &[&upto]);
            match watch {
                Some(watch) => watch.around(execute)?,
                None => execute()?,
            };
        }
        transaction.execute(statements[4].as_str(), &[&entries])?;
    }
    Ok(entries)
}

/// Runs the step's leading `SET` statements (the transaction's isolation
/// and settings); returns the statements after them.
pub(super) fn run_settings<'s>(
    transaction: &mut postgres::Transaction<'_>,
    step: &'s Step,
) -> Result<&'s [String], postgres::Error> {
    let settings = step
        .sql
        .iter()
        .take_while(|s| s.starts_with("SET "))
        .count();
    for setting in &step.sql[..settings] {
        transaction.batch_execute(setting)?;
    }
    Ok(&step.sql[settings..])
}

/// The settings every step's transaction starts with, as the executor
/// sends them (the step's lock_timeout).
fn set_lock_timeout(
    transaction: &mut postgres::Transaction<'_>,
    step: &Step,
) -> Result<(), postgres::Error> {
    crate::partition::executor::transaction_settings(step)
        .iter()
        .try_for_each(|setting| transaction.batch_execute(setting))
}

fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            let hint = if db.message().starts_with("no partition of relation") {
                "; a row written during this run has a key outside the partitioned table's partitions: run \
                 the same command again, it adds the partitions the table's keys need first"
            } else {
                ""
            };
            format!("{}: {}{detail}{hint}", db.code().code(), db.message())
        }
        None if error.is_lock_timeout() => "lock timeout".to_owned(),
        None => error.to_string(),
    }
}
