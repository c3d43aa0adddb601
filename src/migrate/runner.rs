//! Runs a migration plan on the session that holds the run lock. A
//! transactional migration goes as one query, one round trip, and is
//! retried whole when a lock wait times out; a statement of a
//! no-transaction migration is sent and retried alone, after dropping the
//! INVALID index an interrupted concurrent build left.

use std::time::Instant;

use postgres::Client;
use postgres::error::ErrorPosition;
use postgres::types::{ToSql, Type};
use thiserror::Error;

use crate::db::ConnectionSettings;
use crate::db::blocking::Blocker;
use crate::db::retry::{GaveUp, LockRetry, Watch};

use super::history::{self, HistoryError};
use super::plan::{
    DatabaseState, ExistingIndex, OneQuery, Param, PartitionIndex, PartitionNode,
    PartitionedTarget, PlannedMigration, Role, Step,
};
use super::source::{SourceMigration, Version};
use super::sql::{InvalidFiles, Mode};
use crate::db::ident::QualifiedName;
use crate::location::LineIndex;
use crate::location::Location;

#[derive(Debug, Error)]
pub enum RunError {
    /// Pending migrations do not parse (or mix modes): nothing ran.
    #[error(transparent)]
    InvalidFile(#[from] InvalidFiles),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{what}: {source}")]
    Query {
        what: String,
        source: postgres::Error,
    },
    #[error("{0}")]
    Failed(Box<MigrationFailure>),
}

/// A migration that failed, with everything needed to act on it.
#[derive(Debug)]
pub struct MigrationFailure {
    pub file: String,
    pub location: Option<Location>,
    pub snippet: String,
    pub sqlstate: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub attempts: u32,
    pub blocker: Option<Blocker>,
    /// What the failure left behind, in words.
    pub aftermath: String,
}

impl std::fmt::Display for MigrationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed", self.file)?;
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        write!(f, "; {}", self.aftermath)?;
        if let Some(location) = &self.location {
            write!(f, "\n  --> {location}\n{}", self.snippet)?;
        }
        match &self.sqlstate {
            Some(code) => write!(f, "\n  = {code}: {}", self.message)?,
            None => write!(f, "\n  = {}", self.message)?,
        }
        if let Some(detail) = &self.detail {
            write!(f, "\n  = detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        if let Some(blocker) = &self.blocker {
            write!(f, "\n  = lock: {blocker}")?;
        }
        if self.sqlstate.as_deref() == Some(postgres::error::SqlState::LOCK_NOT_AVAILABLE.code()) {
            write!(
                f,
                "\n  = help: another session held a lock this migration needs for longer than lock_timeout; \
                 run again when it is done, or raise --lock-timeout / --lock-retries"
            )?;
        }
        Ok(())
    }
}

/// Reads everything the plan depends on, and parses the pending files.
pub fn read_state(
    client: &mut Client,
    sources: &mut [SourceMigration],
) -> Result<DatabaseState, RunError> {
    let query = |what: &str| {
        let what = what.to_owned();
        move |source| RunError::Query { what, source }
    };
    let (tables, present) =
        history::Tables::locate(client, sources).map_err(query("locating the migration tables"))?;
    tables.check_width(sources)?;
    let applied = history::read_applied(client, &tables, present)?;
    let progress = history::read_progress(client, &tables, present)?;
    let applied_versions: Vec<_> = applied.iter().map(|a| a.version).collect();
    super::source::parse_pending(sources, &applied_versions)?;
    let names: Vec<String> = pending_no_transaction_statements(sources)
        .filter_map(|statement| statement.concurrent_index.clone())
        .collect();
    let indexes = read_existing_indexes(client, &names)
        .map_err(query("looking for indexes of interrupted builds"))?;
    let mut targets: Vec<String> = pending_no_transaction_statements(sources)
        .filter_map(|statement| {
            statement
                .index_parts
                .as_ref()
                .map(|parts| parts.table.clone())
        })
        .collect();
    targets.sort();
    targets.dedup();
    let mut partitioned = Vec::new();
    for table in targets {
        if let Some(target) = read_partitioned(client, &table).map_err(query(
            "reading the partitions of a table indexed concurrently",
        ))? {
            partitioned.push(target);
        }
    }
    Ok(DatabaseState {
        setup: history::create_statements(&tables, present),
        tables,
        applied,
        progress,
        indexes,
        partitioned,
    })
}

/// The statements of the parsed (pending) files that run outside a
/// transaction: the ones whose catalog state the plan needs.
fn pending_no_transaction_statements(
    sources: &[SourceMigration],
) -> impl Iterator<Item = &super::sql::Statement> {
    sources
        .iter()
        .filter(|source| source.is_parsed() && source.parsed().mode == Mode::NoTransaction)
        .flat_map(|source| source.parsed().statements.iter())
}

/// The indexes of these names on the search path, valid or left INVALID by
/// an interrupted concurrent build.
fn read_existing_indexes(
    client: &mut Client,
    names: &[String],
) -> Result<Vec<ExistingIndex>, postgres::Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client.query_typed(
        "SELECT n.nspname::text, c.relname::text, i.indisvalid \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = ANY($1) AND n.nspname = ANY(current_schemas(false))",
        &[(&names, Type::TEXT_ARRAY)],
    )?;
    Ok(rows
        .iter()
        .map(|row| ExistingIndex {
            schema: row.get(0),
            name: row.get(1),
            valid: row.get(2),
        })
        .collect())
}

/// The table a CREATE INDEX CONCURRENTLY names, when it is partitioned:
/// every partition below it, with its indexes and what each is attached to.
fn read_partitioned(
    client: &mut Client,
    table: &str,
) -> Result<Option<PartitionedTarget>, postgres::Error> {
    let Some(row) = client.query_opt(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = to_regclass($1::text) AND c.relkind = 'p'",
        &[&table],
    )?
    else {
        return Ok(None);
    };
    let name = QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1));
    let rows = client.query(
        "WITH RECURSIVE tree AS ( \
           SELECT inhrelid AS oid, inhparent AS parent FROM pg_inherits WHERE inhparent = to_regclass($1::text) \
           UNION ALL SELECT i.inhrelid, i.inhparent FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid) \
         SELECT pn.nspname::text, p.relname::text, cn.nspname::text, c.relname::text, c.relkind = 'p', \
                ic.relname::text, x.indisvalid, pi.relname::text \
         FROM tree t \
         JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
         JOIN pg_class p ON p.oid = t.parent JOIN pg_namespace pn ON pn.oid = p.relnamespace \
         LEFT JOIN pg_index x ON x.indrelid = c.oid \
         LEFT JOIN pg_class ic ON ic.oid = x.indexrelid \
         LEFT JOIN pg_inherits h ON h.inhrelid = x.indexrelid \
         LEFT JOIN pg_class pi ON pi.oid = h.inhparent \
         ORDER BY cn.nspname, c.relname, ic.relname",
        &[&table],
    )?;
    let mut partitions: Vec<PartitionNode> = Vec::new();
    for row in rows {
        let partition = QualifiedName::new(row.get::<_, String>(2), row.get::<_, String>(3));
        if partitions.last().is_none_or(|last| last.name != partition) {
            partitions.push(PartitionNode {
                name: partition,
                parent: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
                partitioned: row.get(4),
                indexes: Vec::new(),
            });
        }
        if let Some(index) = row.get::<_, Option<String>>(5) {
            let node = partitions.last_mut().expect("pushed above");
            node.indexes.push(PartitionIndex {
                name: index,
                valid: row.get(6),
                attached_to: row.get(7),
            });
        }
    }
    Ok(Some(PartitionedTarget {
        table: table.to_owned(),
        name,
        partitions,
    }))
}

pub struct Runner<'a> {
    pub client: &'a mut Client,
    /// To open the watcher session that explains lock timeouts.
    pub settings: &'a ConnectionSettings,
    pub lock_retries: u32,
}

/// One applied migration, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppliedReport {
    pub version: Version,
    pub name: String,
    pub file: String,
    pub mode: Mode,
    pub statements: usize,
    pub resumed_at: usize,
    pub attempts: u32,
    pub duration_ms: u128,
}

/// A step that failed for good, and where.
struct StepFailure {
    role: Role,
    /// Where in the step's SQL the error points: 1-based, in characters.
    position: Option<usize>,
    gave_up: GaveUp<postgres::Error>,
}

impl StepFailure {
    /// A step sent alone: the server's position is already the step's.
    fn alone(role: Role, gave_up: GaveUp<postgres::Error>) -> StepFailure {
        StepFailure {
            role,
            position: original_position(&gave_up.error),
            gave_up,
        }
    }
}

fn original_position(error: &postgres::Error) -> Option<usize> {
    match error.as_db_error()?.position()? {
        ErrorPosition::Original(position) => Some(*position as usize),
        ErrorPosition::Internal { .. } => None,
    }
}

/// After a failure inside BEGIN the session is in an aborted transaction:
/// back to idle, without the migration's settings.
pub(crate) fn back_to_idle(client: &mut Client) {
    let _ = client.batch_execute("ROLLBACK");
    let _ = client.batch_execute("RESET ALL");
}

impl Runner<'_> {
    pub fn run_setup(&mut self, steps: &[Step]) -> Result<(), RunError> {
        for step in steps {
            execute(self.client, step).map_err(|source| RunError::Query {
                what: "creating the migration tables".into(),
                source,
            })?;
        }
        Ok(())
    }

    pub fn run(&mut self, planned: &PlannedMigration<'_>) -> Result<AppliedReport, RunError> {
        let source = planned.source;
        let started = Instant::now();
        tracing::info!(
            "applying {} ({}, {}{})",
            source.file_name(),
            source.parsed().mode,
            plural(source.parsed().statements.len(), "statement"),
            if planned.resume_at > 0 {
                format!(", resuming at statement {}", planned.resume_at + 1)
            } else {
                String::new()
            }
        );
        for (index, why) in &planned.skipped {
            tracing::info!(
                "{}: statement {} is already done: {why}",
                source.file_name(),
                index + 1
            );
        }
        for (index, why) in &planned.expanded {
            tracing::info!("{}: statement {}: {why}", source.file_name(), index + 1);
        }
        let mut retry = LockRetry::new(self.settings, self.lock_retries);
        let attempts = match source.parsed().mode {
            Mode::Transaction => self.run_transaction(&mut retry, planned)?,
            Mode::NoTransaction => self.run_statements(&mut retry, planned)?,
        };
        let duration = started.elapsed();
        tracing::debug!(
            "applied {} in {} ms",
            source.file_name(),
            duration.as_millis()
        );
        Ok(AppliedReport {
            version: source.version,
            name: source.name.clone(),
            file: source.file_name(),
            mode: source.parsed().mode,
            statements: source.parsed().statements.len(),
            resumed_at: planned.resume_at,
            attempts,
            duration_ms: duration.as_millis(),
        })
    }

    /// The whole migration in one transaction, retried whole.
    fn run_transaction(
        &mut self,
        retry: &mut LockRetry<'_>,
        planned: &PlannedMigration<'_>,
    ) -> Result<u32, RunError> {
        let Some(query) = planned.one_query() else {
            return self.run_transaction_step_by_step(retry, planned);
        };
        let what = format!("{} (rolled back)", planned.source.file_name());
        // One round trip. An error stops the query where it happened and
        // leaves the transaction aborted: nothing of it stays.
        let result = retry.run(self.client, &what, None, |client, watch, _| {
            watch
                .around(|| client.batch_execute(&query.text))
                .inspect_err(|_| back_to_idle(client))
        });
        result.map(|(_, attempts)| attempts).map_err(|gave_up| {
            let failure = self.locate(planned, &query, gave_up);
            failure_error(
                planned.source,
                &failure,
                "it was rolled back: nothing of it is applied".into(),
            )
        })
    }

    /// Which step of a failed one-query migration failed. The server's
    /// error position counts characters of the whole query: traced back to
    /// its step. Without one, the steps run again one by one in a
    /// transaction that is rolled back, until one fails.
    fn locate(
        &mut self,
        planned: &PlannedMigration<'_>,
        query: &OneQuery,
        gave_up: GaveUp<postgres::Error>,
    ) -> StepFailure {
        let error = &gave_up.error;
        if let Some((step, position)) =
            original_position(error).and_then(|position| query.step_at(position))
        {
            return StepFailure {
                role: planned.steps[step].role,
                position: Some(position),
                gave_up,
            };
        }
        // Replayed, in a transaction rolled back, to name the statement:
        // for errors of the data (classes 22, 23), of names and rules (42),
        // and for a lock timeout, which waits once more at most lock_timeout.
        // A statement timeout would run as long again: named by the message.
        let replay = error.code().is_some_and(|code| {
            ["22", "23", "42", "55P03"]
                .iter()
                .any(|prefix| code.code().starts_with(prefix))
        });
        if replay {
            tracing::debug!(
                "{}: finding the failed statement: running the migration again in a transaction that is rolled back",
                planned.source.file_name()
            );
        }
        let (role, position) = if replay {
            replay_until_failure(self.client, &planned.steps)
        } else {
            None
        }
        .unwrap_or((Role::Commit, None));
        StepFailure {
            role,
            position,
            gave_up,
        }
    }

    /// A transactional migration whose file changes how literals are read:
    /// each step on its own, pgm's own steps in shared round trips.
    fn run_transaction_step_by_step(
        &mut self,
        retry: &mut LockRetry<'_>,
        planned: &PlannedMigration<'_>,
    ) -> Result<u32, RunError> {
        let what = format!("{} (rolled back)", planned.source.file_name());
        let mut failed_role = Role::Begin;
        let result = retry.run(self.client, &what, None, |client, watch, _| {
            let result = round_trips(&planned.steps)
                .into_iter()
                .try_for_each(|group| run_group(client, group, watch));
            result.map_err(|(role, error)| {
                failed_role = role;
                back_to_idle(client);
                error
            })
        });
        result.map(|(_, attempts)| attempts).map_err(|gave_up| {
            failure_error(
                planned.source,
                &StepFailure::alone(failed_role, gave_up),
                "it was rolled back: nothing of it is applied".into(),
            )
        })
    }

    /// Statement by statement, each retried alone, each completion journaled.
    fn run_statements(
        &mut self,
        retry: &mut LockRetry<'_>,
        planned: &PlannedMigration<'_>,
    ) -> Result<u32, RunError> {
        let source = planned.source;
        let mut most_attempts = 1;
        let mut completed = planned.resume_at;
        for step in &planned.steps {
            let what = format!("{} statement {}", source.file_name(), completed + 1);
            let result = if step.patient {
                retry.run_patient(self.client, &what, |client, watch, _| {
                    watch.around(|| execute(client, step))
                })
            } else if step.retried_on_lock_timeout() {
                retry.run(
                    self.client,
                    &what,
                    step.on_retry.as_ref(),
                    |client, watch, _| watch.around(|| execute(client, step)),
                )
            } else {
                execute(self.client, step)
                    .map(|()| ((), 1))
                    .map_err(|error| GaveUp {
                        error,
                        attempts: 1,
                        blocker: None,
                    })
            };
            let gave_up = match result {
                Ok((_, attempts)) => {
                    most_attempts = most_attempts.max(attempts);
                    if let Role::Journal(index) = step.role {
                        completed = index + 1;
                    }
                    continue;
                }
                Err(gave_up) => gave_up,
            };
            if matches!(step.role, Role::Commit | Role::History) {
                let _ = self.client.batch_execute("ROLLBACK");
            }
            let _ = self.client.batch_execute("RESET ALL");
            let mut failure = StepFailure::alone(step.role, gave_up);
            // A step of an expanded statement is not the file's text: the
            // server's error position says nothing about the file.
            if let Role::Statement(index) | Role::DropLeftover(index) = step.role
                && planned.expanded.iter().any(|(e, _)| *e == index)
            {
                failure.position = None;
            }
            return Err(failure_error(
                source,
                &failure,
                resume_words(source, completed),
            ));
        }
        Ok(most_attempts)
    }
}

/// What a failed no-transaction migration left, and where the next run starts.
fn resume_words(source: &SourceMigration, completed: usize) -> String {
    let statements = &source.parsed().statements;
    match statements.get(completed) {
        Some(statement) if completed > 0 => format!(
            "statements 1 to {completed} of {} are applied and journaled; the next run resumes at statement {} (line {})",
            statements.len(),
            completed + 1,
            statement.line
        ),
        _ => format!(
            "no statement of it completed; the next run starts it again{}",
            if statements.iter().any(|s| s.concurrent_index.is_some()) {
                ", dropping any INVALID index the failed build left"
            } else {
                ""
            }
        ),
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Runs one step: without parameters over the simple protocol (a file's
/// statement may be anything psql would accept), with them as a prepared
/// statement.
pub fn execute(client: &mut Client, step: &Step) -> Result<(), postgres::Error> {
    if step.params.is_empty() {
        return client.batch_execute(&step.sql);
    }
    // Typed parameters go with the query in one round trip, without a
    // separate prepare.
    let params: Vec<(&(dyn ToSql + Sync), Type)> = step
        .params
        .iter()
        .map(|param| match param {
            Param::Int(value) => (value as &(dyn ToSql + Sync), Type::INT4),
            // Declared 64-bit: the server converts to the column's width.
            Param::Version(value) => (value as &(dyn ToSql + Sync), Type::INT8),
            Param::Text(value) => (value as &(dyn ToSql + Sync), Type::TEXT),
        })
        .collect();
    client.execute_typed(&step.sql, &params).map(|_| ())
}

/// Runs the steps of a failed transactional migration again, one by one
/// and up to COMMIT, in a transaction that is then rolled back: the step
/// that fails and where in it, or none when all of them pass this time.
fn replay_until_failure(client: &mut Client, steps: &[Step]) -> Option<(Role, Option<usize>)> {
    let mut failed = None;
    for step in steps.iter().take_while(|step| step.role != Role::Commit) {
        if let Err(error) = execute(client, step) {
            if !matches!(step.role, Role::Begin | Role::Setting) {
                failed = Some((step.role, original_position(&error)));
            }
            break;
        }
    }
    back_to_idle(client);
    failed
}

/// Splits the steps into runs to send at once: consecutive steps without
/// parameters and without a statement of the file (BEGIN, the SET LOCALs,
/// COMMIT, RESET ALL) share one round trip; every other step is alone, so a
/// failure still points at its statement.
fn round_trips(steps: &[Step]) -> Vec<&[Step]> {
    let groupable = |step: &Step| {
        step.params.is_empty()
            && matches!(
                step.role,
                Role::Begin | Role::Setting | Role::Guard | Role::Commit | Role::Reset
            )
    };
    let mut groups = Vec::new();
    let mut start = 0;
    while start < steps.len() {
        let mut end = start + 1;
        if groupable(&steps[start]) {
            while end < steps.len() && groupable(&steps[end]) {
                end += 1;
            }
        }
        groups.push(&steps[start..end]);
        start = end;
    }
    groups
}

fn run_group(
    client: &mut Client,
    group: &[Step],
    watch: Watch<'_>,
) -> Result<(), (Role, postgres::Error)> {
    let result = match group {
        [step] => watch.around(|| execute(client, step)),
        _ => {
            let sql = group
                .iter()
                .map(|step| step.sql.as_str())
                .collect::<Vec<_>>()
                .join(";\n");
            client.batch_execute(&sql)
        }
    };
    result.map_err(|error| (group[0].role, error))
}

fn failure_error(source: &SourceMigration, failure: &StepFailure, aftermath: String) -> RunError {
    let GaveUp {
        error,
        attempts,
        blocker,
    } = &failure.gave_up;
    let db = error.as_db_error();
    let statement = match failure.role {
        Role::Statement(index) | Role::DropLeftover(index) => source.parsed().statements.get(index),
        _ => None,
    };
    let (location, snippet) = match statement {
        Some(statement) => {
            let text = source.parsed().statement_text(statement);
            // Past the statement's text (the `;` a batch adds): its end.
            let offset_in_statement = match failure.position {
                Some(position) => text
                    .char_indices()
                    .nth(position.saturating_sub(1))
                    .map_or(text.len(), |(offset, _)| offset),
                None => 0,
            };
            let location = LineIndex::new(source.text())
                .location(&source.path, statement.start + offset_in_statement);
            let snippet = location.snippet(source.text());
            (Some(location), snippet)
        }
        None => (None, String::new()),
    };
    let message = match (db, failure.role) {
        (Some(db), Role::History) => format!("while recording the history row: {}", db.message()),
        (Some(db), _) => db.message().to_owned(),
        (None, role) => format!("{error} (while running the {role:?} step)"),
    };
    RunError::Failed(Box::new(MigrationFailure {
        file: source.path.display().to_string(),
        location,
        snippet,
        sqlstate: db.map(|db| db.code().code().to_owned()),
        message,
        detail: db.and_then(|db| db.detail()).map(str::to_owned),
        hint: db.and_then(|db| db.hint()).map(str::to_owned),
        attempts: *attempts,
        blocker: blocker.clone(),
        aftermath,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(role: Role, params: Vec<Param>) -> Step {
        Step {
            role,
            sql: format!("{role:?}"),
            params,
            on_retry: None,
            patient: false,
        }
    }

    #[test]
    fn control_steps_share_a_round_trip_and_statements_stay_alone() {
        let steps = vec![
            step(Role::Begin, vec![]),
            step(Role::Setting, vec![]),
            step(Role::Setting, vec![]),
            step(Role::Statement(0), vec![]),
            step(Role::Statement(1), vec![]),
            step(Role::History, vec![Param::Int(1)]),
            step(Role::Commit, vec![]),
            step(Role::Reset, vec![]),
        ];
        let sizes: Vec<usize> = round_trips(&steps)
            .iter()
            .map(|group| group.len())
            .collect();
        assert_eq!(sizes, [3, 1, 1, 1, 2]);
    }
}
