//! What a run will do, as the exact statements in order. Pure: built from the
//! files, the history, the journal and the catalog facts read beforehand; the
//! runner executes these steps and `--dry-run` prints them.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::db::ident::QualifiedName;
use crate::db::retry::OnRetry;
use crate::db::{quote_ident, quote_literal};
use crate::duration::Timeout;
// Named as `pgm partitions maintain` names the indexes it rolls out.
use crate::partition::planner::child_index_name;

use super::history::{Applied, Progress, Tables};
use super::source::{Kind, SourceMigration, Version};
use super::sql::{IndexParts, Mode};

#[derive(Debug, Clone)]
pub struct Options {
    pub lock_timeout: Timeout,
    pub statement_timeout: Timeout,
    /// How long a CONCURRENTLY statement may wait for older transactions.
    pub snapshot_wait: Timeout,
    pub target: Option<Version>,
    pub allow_out_of_order: bool,
}

/// A value bound to a step's `$n` placeholder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Param {
    Int(i32),
    /// A migration's version, bound at the width of the table's column.
    Version(i64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "role", content = "index")]
pub enum Role {
    Setup,
    Begin,
    Setting,
    /// Stops the transaction unless no other session holds the run lock.
    Guard,
    /// The file's statement with this index (0-based).
    Statement(usize),
    /// An INVALID index of this statement's name, left by an interrupted
    /// build, dropped before the statement runs again.
    DropLeftover(usize),
    Journal(usize),
    StartJournal,
    History,
    Commit,
    Reset,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub role: Role,
    pub sql: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// What a retry after a lock timeout runs first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_retry: Option<OnRetry>,
    /// Waits long for older transactions, under the snapshot budget: its
    /// waits are reported as they happen, and its lock timeout is final.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub patient: bool,
}

impl Step {
    pub(crate) fn new(role: Role, sql: impl Into<String>) -> Step {
        Step::with(role, sql, Vec::new())
    }

    pub(crate) fn with(role: Role, sql: impl Into<String>, params: Vec<Param>) -> Step {
        Step {
            role,
            sql: sql.into(),
            params,
            on_retry: None,
            patient: false,
        }
    }

    /// Whether a lock timeout of this step is retried: the file's own
    /// statements and the drops before them, not pgm's bookkeeping.
    pub fn retried_on_lock_timeout(&self) -> bool {
        matches!(self.role, Role::Statement(_) | Role::DropLeftover(_))
    }

    /// The SQL with its parameters written in as literals, through the one
    /// quoting helper: what a DBA would paste into psql, and what a step
    /// sent in a batch (which takes no parameters) carries.
    pub fn inlined(&self) -> String {
        // One pass over pgm's own SQL: a value written in (a file's text
        // may hold `$1`) is never read again for placeholders.
        let mut sql = String::with_capacity(self.sql.len());
        let mut rest = self.sql.as_str();
        while let Some(dollar) = rest.find('$') {
            sql.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let param = after[..digits]
                .parse::<usize>()
                .ok()
                .and_then(|number| self.params.get(number.checked_sub(1)?));
            match param {
                Some(Param::Int(value)) => sql.push_str(&value.to_string()),
                Some(Param::Version(value)) => sql.push_str(&value.to_string()),
                Some(Param::Text(value)) => sql.push_str(&quote_literal(value)),
                None => sql.push_str(&rest[dollar..dollar + 1 + digits]),
            }
            rest = &after[digits..];
        }
        sql.push_str(rest);
        sql
    }

    /// The same step with its parameters written in.
    fn with_literals(self) -> Step {
        Step {
            sql: self.inlined(),
            params: Vec::new(),
            ..self
        }
    }
}

/// A statement ended by a semicolon, as a script shows it and as a batch
/// joins it to the next: a final line comment keeps the semicolon off its
/// line.
pub fn terminated(sql: &str) -> String {
    let trimmed = sql.trim_end();
    if trimmed.ends_with(';') {
        trimmed.to_owned()
    } else if trimmed
        .lines()
        .last()
        .is_some_and(|line| line.contains("--"))
    {
        format!("{trimmed}\n;")
    } else {
        format!("{trimmed};")
    }
}

/// How a migration's steps reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Every step in one simple query, one round trip: BEGIN, the settings,
    /// the file, the history rows, COMMIT, RESET ALL.
    OneQuery,
    /// Each step (or run of pgm's own steps) on its own.
    StepByStep,
}

/// The steps of a migration as the one query string sent, and where each
/// step starts in it, so that an error position (1-based, in characters
/// of the whole string) is traced back to a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneQuery {
    pub text: String,
    /// Per step, the character offset (0-based) where it starts.
    starts: Vec<usize>,
}

impl OneQuery {
    /// Each step terminated, one per line: the lines the SQL plan shows.
    pub fn of(steps: &[Step]) -> OneQuery {
        let mut text = String::new();
        let mut chars = 0;
        let mut starts = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            debug_assert!(step.params.is_empty(), "a batch takes no parameters");
            if index > 0 {
                text.push('\n');
                chars += 1;
            }
            let sql = terminated(&step.sql);
            starts.push(chars);
            chars += sql.chars().count();
            text.push_str(&sql);
        }
        OneQuery { text, starts }
    }

    /// The step a server error position points into, and the 1-based
    /// character position inside that step's SQL.
    pub fn step_at(&self, position: usize) -> Option<(usize, usize)> {
        let offset = position.checked_sub(1)?;
        let step = self
            .starts
            .partition_point(|start| *start <= offset)
            .checked_sub(1)?;
        Some((step, offset - self.starts[step] + 1))
    }
}

#[derive(Debug, Clone)]
pub struct PlannedMigration<'a> {
    pub source: &'a SourceMigration,
    /// Statements already done by an interrupted run (no-transaction files).
    pub resume_at: usize,
    /// Statements whose effect is already in place (an index a killed run
    /// finished building but did not journal), with why.
    pub skipped: Vec<(usize, String)>,
    /// Statements planned as other statements than the file's, with why
    /// (a concurrent index build on a partitioned table, partition by
    /// partition).
    pub expanded: Vec<(usize, String)>,
    pub steps: Vec<Step>,
    pub delivery: Delivery,
}

impl PlannedMigration<'_> {
    /// The one query to send, when the steps go as one.
    pub fn one_query(&self) -> Option<OneQuery> {
        (self.delivery == Delivery::OneQuery).then(|| OneQuery::of(&self.steps))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Plan<'a> {
    pub setup: Vec<Step>,
    pub migrations: Vec<PlannedMigration<'a>>,
}

/// An index named by a pending CREATE INDEX CONCURRENTLY, as the catalog has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingIndex {
    pub schema: String,
    pub name: String,
    pub valid: bool,
}

/// The partitioned table a pending CREATE INDEX CONCURRENTLY names, with
/// every partition below it and their indexes, as the catalog has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionedTarget {
    /// The table as the statement writes it.
    pub table: String,
    pub name: QualifiedName,
    /// Every partition at every level, each after its parent.
    pub partitions: Vec<PartitionNode>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionNode {
    pub name: QualifiedName,
    /// The table it is a partition of.
    pub parent: QualifiedName,
    /// Itself partitioned (sub-partitioned).
    pub partitioned: bool,
    pub indexes: Vec<PartitionIndex>,
}

/// An index of a partition: its name (in the partition's schema), whether
/// it is valid, and the index of the parent table it is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionIndex {
    pub name: String,
    pub valid: bool,
    pub attached_to: Option<String>,
}

/// Everything read from the database that the plan depends on.
#[derive(Debug, Clone)]
pub struct DatabaseState {
    pub tables: Tables,
    pub setup: Vec<String>,
    pub applied: Vec<Applied>,
    pub progress: Vec<(Version, Progress)>,
    pub indexes: Vec<ExistingIndex>,
    /// Partitioned tables named by pending CREATE INDEX CONCURRENTLY.
    pub partitioned: Vec<PartitionedTarget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Applied,
    Pending,
    /// Started outside a transaction and interrupted; the next run resumes it.
    PartlyApplied,
    /// Applied, but the file changed since.
    Divergent,
    /// Applied, but its file is gone.
    Missing,
    /// New, with a version below the highest applied one.
    OutOfOrder,
}

#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub version: Version,
    pub name: String,
    pub state: State,
    pub source: Option<&'a SourceMigration>,
    pub applied: Option<Applied>,
    pub progress: Option<Progress>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the migrations do not match the history of this database:{}", problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    Inconsistent { problems: Vec<String> },
}

/// Every migration, from the files and the history, with its state.
pub fn reconcile<'a>(sources: &'a [SourceMigration], state: &DatabaseState) -> Vec<Entry<'a>> {
    let applied: BTreeMap<Version, &Applied> =
        state.applied.iter().map(|a| (a.version, a)).collect();
    let progress: BTreeMap<Version, &Progress> =
        state.progress.iter().map(|(v, p)| (*v, p)).collect();
    let highest_applied = state.applied.iter().map(|a| a.version).max();
    let width = state.tables.width;
    let mut entries: Vec<Entry<'a>> = sources
        .iter()
        .map(|source| {
            let applied_row = applied.get(&source.version).copied();
            let state = match applied_row {
                Some(row) if row.checksum == source.checksum(width) && row.name == source.name => {
                    State::Applied
                }
                Some(_) => State::Divergent,
                None if progress.contains_key(&source.version) => State::PartlyApplied,
                None if source.kind == Kind::Versioned
                    && highest_applied.is_some_and(|h| h > source.version) =>
                {
                    State::OutOfOrder
                }
                None => State::Pending,
            };
            Entry {
                version: source.version,
                name: source.name.clone(),
                state,
                source: Some(source),
                applied: applied_row.cloned(),
                progress: progress.get(&source.version).map(|p| (*p).clone()),
            }
        })
        .collect();
    for row in &state.applied {
        if !sources.iter().any(|s| s.version == row.version) {
            entries.push(Entry {
                version: row.version,
                name: row.name.clone(),
                state: State::Missing,
                source: None,
                applied: Some(row.clone()),
                progress: None,
            });
        }
    }
    entries.sort_by_key(|entry| entry.version);
    entries
}

pub fn plan<'a>(
    sources: &'a [SourceMigration],
    state: &DatabaseState,
    options: &Options,
) -> Result<Plan<'a>, PlanError> {
    let entries = reconcile(sources, state);
    let width = state.tables.width;
    let mut problems = Vec::new();
    for entry in &entries {
        match (entry.state, entry.source, &entry.applied) {
            (State::Divergent, Some(source), Some(applied)) => problems.push(if applied.name != source.name {
                format!(
                    "{}: version {} was applied as \"{}\" but the file is named \"{}\": a migration's name and \
                     contents are fixed once applied; restore the original and put the change in a new migration",
                    source.path.display(), entry.version, applied.name, source.name
                )
            } else {
                format!(
                    "{}: changed after it was applied on {} (checksum {} then, {} now): restore the applied \
                     version and put the change in a new migration (if only comments or whitespace changed, \
                     `pgm migrate repair` records the new checksum)",
                    source.path.display(), applied.applied_on, applied.checksum, source.checksum(width)
                )
            }),
            (State::Missing, _, Some(applied)) => problems.push(format!(
                "V{}__{}: applied on {} but its file is missing from the migrations directory: restore it \
                 (pgm never forgets an applied migration)",
                applied.version, applied.name, applied.applied_on
            )),
            (State::OutOfOrder, Some(source), _) if !options.allow_out_of_order => problems.push(format!(
                "{}: version {} is new but below the highest applied version {}: give it a version above that, \
                 or pass --allow-out-of-order if it is independent of the later ones",
                source.path.display(),
                entry.version,
                state.applied.iter().map(|a| a.version).max().unwrap_or_default()
            )),
            (State::PartlyApplied, Some(source), _) => {
                let progress = entry.progress.as_ref().expect("partly applied entries have progress");
                if progress.checksum != source.checksum(width) {
                    problems.push(format!(
                        "{}: an interrupted run completed {} of its statements, and the file changed since: \
                         restore the file as it was to finish it, then make further changes in a new migration",
                        source.path.display(), progress.completed
                    ));
                }
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        return Err(PlanError::Inconsistent { problems });
    }
    let setup = state
        .setup
        .iter()
        .map(|sql| Step::new(Role::Setup, sql.clone()))
        .collect();
    let migrations = entries
        .iter()
        .filter(|entry| {
            matches!(
                entry.state,
                State::Pending | State::PartlyApplied | State::OutOfOrder
            )
        })
        .filter(|entry| options.target.is_none_or(|target| entry.version <= target))
        .map(|entry| {
            let source = entry.source.expect("pending entries have a file");
            let resume_at = entry.progress.as_ref().map_or(0, |p| p.completed);
            plan_migration(source, resume_at, state, options)
        })
        .collect();
    Ok(Plan { setup, migrations })
}

fn history_steps(source: &SourceMigration, tables: &Tables, started_at: &str) -> Vec<Step> {
    vec![
        Step::with(
            Role::History,
            super::history::insert_applied(tables),
            vec![
                Param::Version(source.version),
                Param::Text(source.name.clone()),
                Param::Text(source.checksum(tables.width).to_string()),
            ],
        ),
        Step::with(
            Role::History,
            format!(
                "INSERT INTO {} (version, started_at, finished_at, mode) VALUES ($1, {started_at}, clock_timestamp(), $2) \
                 ON CONFLICT (version) DO UPDATE SET started_at = EXCLUDED.started_at, \
                 finished_at = EXCLUDED.finished_at, mode = EXCLUDED.mode",
                tables.runs()
            ),
            vec![
                Param::Version(source.version),
                Param::Text(source.parsed().mode.to_string()),
            ],
        ),
        // The text as applied, so that a later edit can be shown to be
        // comments or whitespace only (`pgm migrate repair`).
        Step::with(
            Role::History,
            super::history::upsert_text(tables),
            vec![
                Param::Version(source.version),
                Param::Text(source.checksum(tables.width).to_string()),
                Param::Text(source.text().to_owned()),
            ],
        ),
    ]
}

fn plan_migration<'a>(
    source: &'a SourceMigration,
    resume_at: usize,
    state: &DatabaseState,
    options: &Options,
) -> PlannedMigration<'a> {
    let tables = &state.tables;
    let file = source.parsed();
    let mut steps = Vec::new();
    let mut skipped = Vec::new();
    let mut expanded = Vec::new();
    match file.mode {
        Mode::Transaction => {
            steps.push(Step::new(Role::Begin, "BEGIN"));
            steps.push(Step::new(
                Role::Setting,
                format!(
                    "SET LOCAL lock_timeout = '{}'",
                    options.lock_timeout.setting()
                ),
            ));
            steps.push(Step::new(
                Role::Setting,
                format!(
                    "SET LOCAL statement_timeout = '{}'",
                    options.statement_timeout.setting()
                ),
            ));
            steps.push(Step::new(
                Role::Guard,
                run_lock_guard(tables.run_lock_key()),
            ));
            for (index, statement) in file.statements.iter().enumerate() {
                steps.push(Step::new(
                    Role::Statement(index),
                    file.statement_text(statement),
                ));
            }
            // Sent in one query string with the file, which takes no
            // parameters: the values are written in as literals. Step by
            // step they stay parameters: the file may have changed how
            // literals are read.
            let one_query = delivery(source) == Delivery::OneQuery;
            steps.extend(
                history_steps(source, tables, "transaction_timestamp()")
                    .into_iter()
                    .map(|step| {
                        if one_query {
                            step.with_literals()
                        } else {
                            step
                        }
                    }),
            );
            steps.push(Step::new(Role::Commit, "COMMIT"));
        }
        Mode::NoTransaction => {
            steps.extend(statement_steps(
                source,
                resume_at,
                state,
                options,
                &mut skipped,
                &mut expanded,
            ));
        }
    }
    // A SET in one migration must not leak into the next.
    steps.push(Step::new(Role::Reset, "RESET ALL"));
    PlannedMigration {
        source,
        resume_at,
        skipped,
        expanded,
        steps,
        delivery: delivery(source),
    }
}

/// One query for a transactional file, so that it costs one round trip.
/// But PostgreSQL reads a whole query string before running any of it, so
/// a file that changes how string literals are read
/// (`standard_conforming_strings`, `backslash_quote`) for its later
/// statements goes step by step, as psql would run it.
fn delivery(source: &SourceMigration) -> Delivery {
    let file = source.parsed();
    let text = file.text.to_ascii_lowercase();
    if file.mode == Mode::Transaction
        && !text.contains("standard_conforming_strings")
        && !text.contains("backslash_quote")
    {
        Delivery::OneQuery
    } else {
        Delivery::StepByStep
    }
}

/// A migration outside a transaction: each statement alone, journaled, from
/// where an interrupted run stopped; its history row in a last transaction.
fn statement_steps(
    source: &SourceMigration,
    resume_at: usize,
    state: &DatabaseState,
    options: &Options,
    skipped: &mut Vec<(usize, String)>,
    expanded: &mut Vec<(usize, String)>,
) -> Vec<Step> {
    let tables = &state.tables;
    let mut steps = Vec::new();
    // Concurrent builds may run for long and block no reads or writes:
    // only the lock wait is bounded, a statement timeout would only
    // leave INVALID indexes behind.
    steps.push(lock_timeout_step(options.lock_timeout));
    steps.push(Step::new(Role::Setting, "SET statement_timeout = 0"));
    let journal = tables.journal();
    if resume_at == 0 {
        steps.push(Step::with(
            Role::StartJournal,
            format!("INSERT INTO {journal} (version, checksum, statement) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING"),
            vec![Param::Version(source.version), Param::Text(source.checksum(tables.width).to_string())],
        ));
    }
    let file = source.parsed();
    for (index, statement) in file.statements.iter().enumerate().skip(resume_at) {
        let planned = StatementToPlan {
            source,
            index,
            statement,
        };
        steps.extend(one_statement_steps(
            &planned, state, options, skipped, expanded,
        ));
        steps.push(journal_step(source, tables, index));
    }
    steps.extend(closing_steps(source, tables));
    steps
}

/// One statement of a no-transaction file, with its place in the file.
struct StatementToPlan<'a> {
    source: &'a SourceMigration,
    index: usize,
    statement: &'a super::sql::Statement,
}

/// The steps of one statement: nothing when an interrupted run already
/// built its index; the partition-by-partition rollout on a partitioned
/// table; else the statement, after the drop of an INVALID leftover.
fn one_statement_steps(
    planned: &StatementToPlan<'_>,
    state: &DatabaseState,
    options: &Options,
    skipped: &mut Vec<(usize, String)>,
    expanded: &mut Vec<(usize, String)>,
) -> Vec<Step> {
    let StatementToPlan {
        index, statement, ..
    } = *planned;
    let existing = statement
        .concurrent_index
        .as_ref()
        .and_then(|name| state.indexes.iter().find(|i| &i.name == name));
    if let Some(index_row) = existing.filter(|index_row| index_row.valid) {
        skipped.push((
            index,
            format!(
                "index {}.{} already exists and is valid (an interrupted run built it)",
                index_row.schema, index_row.name
            ),
        ));
        return Vec::new();
    }
    let target = statement.index_parts.as_ref().and_then(|parts| {
        let target = state.partitioned.iter().find(|t| t.table == parts.table)?;
        Some((parts, target))
    });
    if let Some((parts, target)) = target {
        expanded.push((
            index,
            format!(
                "{} is partitioned, where PostgreSQL refuses CREATE INDEX CONCURRENTLY: {} is created \
                 ON ONLY it (INVALID), built concurrently on each partition and attached to it; \
                 it turns valid with the last",
                target.name, parts.name
            ),
        ));
        return partitioned_index_steps(index, parts, target, options);
    }
    statement_steps_alone(planned, existing, options)
}

/// A statement on its own, after the drop of the INVALID index an
/// interrupted concurrent build of it left.
fn statement_steps_alone(
    planned: &StatementToPlan<'_>,
    leftover: Option<&ExistingIndex>,
    options: &Options,
) -> Vec<Step> {
    let StatementToPlan {
        source,
        index,
        statement,
    } = *planned;
    // A CONCURRENTLY statement's table lock lets reads and writes through,
    // and its wait for older transactions blocks nobody: it may wait long,
    // under its own budget, instead of failing into the same wall again
    // and again.
    let patient = statement.waits_for_older_transactions;
    let mut steps = Vec::new();
    if patient {
        steps.push(lock_timeout_step(options.snapshot_wait));
    }
    if let Some(index_row) = leftover {
        let mut drop = Step::new(
            Role::DropLeftover(index),
            format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}.{}",
                quote_ident(&index_row.schema),
                quote_ident(&index_row.name)
            ),
        );
        drop.patient = patient;
        steps.push(drop);
    }
    let mut run = Step::new(
        Role::Statement(index),
        source.parsed().statement_text(statement),
    );
    // A patient statement is not retried (its lock timeout already waited
    // the whole budget): an INVALID index it leaves is dropped by the next
    // run's plan (above).
    run.on_retry = statement
        .concurrent_index
        .as_deref()
        .filter(|_| !patient)
        // Unqualified, as the statement names it: looked up on the search path.
        .map(|name| OnRetry::drop_invalid_index(&quote_ident(name)));
    run.patient = patient;
    steps.push(run);
    if patient {
        steps.push(lock_timeout_step(options.lock_timeout));
    }
    steps
}

/// The history rows of a no-transaction file, in one transaction once its
/// last statement is done, and its journal cleared.
fn closing_steps(source: &SourceMigration, tables: &Tables) -> Vec<Step> {
    let journal = tables.journal();
    let started_at = format!(
        "coalesce((SELECT completed_at FROM {journal} WHERE version = {} AND statement = 0), transaction_timestamp())",
        source.version
    );
    let mut steps = vec![Step::new(Role::Begin, "BEGIN")];
    steps.extend(history_steps(source, tables, &started_at));
    steps.push(Step::with(
        Role::History,
        format!("DELETE FROM {journal} WHERE version = $1"),
        vec![Param::Version(source.version)],
    ));
    steps.push(Step::new(Role::Commit, "COMMIT"));
    steps
}

/// A CREATE INDEX CONCURRENTLY on a partitioned table, as `pgm partitions
/// maintain` rolls out an index: the index ON ONLY the parent (instant,
/// INVALID), then per partition a concurrent build and an ATTACH; the
/// parent index turns valid when every partition has one attached. A
/// sub-partitioned partition gets its own ON ONLY index, built the same way
/// below it, then attached. Every step holds when repeated, and what a
/// killed run finished (an index attached, a build done) is not planned
/// again: the statement is journaled after its last ATTACH.
fn partitioned_index_steps(
    statement: usize,
    parts: &IndexParts,
    target: &PartitionedTarget,
    options: &Options,
) -> Vec<Step> {
    let rollout = Rollout {
        statement,
        parts,
        target,
        options,
    };
    let mut steps = vec![rollout.on_only(&parts.name, &target.name)];
    let parent_index = QualifiedName::new(target.name.schema.clone(), parts.name.clone());
    rollout.below(&target.name, &parent_index, &mut steps);
    steps
}

/// One partitioned index statement, rolled out partition by partition.
struct Rollout<'a> {
    statement: usize,
    parts: &'a IndexParts,
    target: &'a PartitionedTarget,
    options: &'a Options,
}

impl Rollout<'_> {
    /// The index `index` of `table`'s partitions: each partition's own,
    /// built (or, for a sub-partitioned one, rolled out below it) and attached.
    fn below(&self, table: &QualifiedName, index: &QualifiedName, steps: &mut Vec<Step>) {
        let partitions = self.target.partitions.iter().filter(|p| &p.parent == table);
        for partition in partitions {
            let attached = partition
                .indexes
                .iter()
                .find(|i| i.attached_to.as_deref() == Some(index.name.as_str()));
            if let Some(attached) = attached {
                // Attached already; a sub-partitioned one may still lack
                // indexes below it.
                if partition.partitioned && !attached.valid {
                    let own =
                        QualifiedName::new(partition.name.schema.clone(), attached.name.clone());
                    self.below(&partition.name, &own, steps);
                }
                continue;
            }
            let child = QualifiedName::new(
                partition.name.schema.clone(),
                child_index_name(&partition.name.name, &self.parts.name),
            );
            if partition.partitioned {
                steps.push(self.on_only(&child.name, &partition.name));
                self.below(&partition.name, &child, steps);
            } else {
                steps.extend(self.build(partition, &child));
            }
            steps.push(Step::new(
                Role::Statement(self.statement),
                format!(
                    "ALTER INDEX {} ATTACH PARTITION {}",
                    index.quoted(),
                    child.quoted()
                ),
            ));
        }
    }

    /// The index created on the partitioned table alone: INVALID until
    /// every partition has one attached.
    fn on_only(&self, name: &str, table: &QualifiedName) -> Step {
        Step::new(
            Role::Statement(self.statement),
            format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON ONLY {} {}",
                self.unique(),
                quote_ident(name),
                table.quoted(),
                self.parts.body
            ),
        )
    }

    /// A leaf partition's index, built concurrently under the snapshot
    /// budget, after the drop of an INVALID one a killed build left; none
    /// when a valid one is there.
    fn build(&self, partition: &PartitionNode, child: &QualifiedName) -> Vec<Step> {
        let existing = partition.indexes.iter().find(|i| i.name == child.name);
        if existing.is_some_and(|found| found.valid) {
            return Vec::new();
        }
        let mut steps = vec![lock_timeout_step(self.options.snapshot_wait)];
        if existing.is_some() {
            let mut drop = Step::new(
                Role::DropLeftover(self.statement),
                format!("DROP INDEX CONCURRENTLY IF EXISTS {}", child.quoted()),
            );
            drop.patient = true;
            steps.push(drop);
        }
        let mut build = Step::new(
            Role::Statement(self.statement),
            format!(
                "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {}",
                self.unique(),
                quote_ident(&child.name),
                partition.name.quoted(),
                self.parts.body
            ),
        );
        build.patient = true;
        steps.push(build);
        steps.push(lock_timeout_step(self.options.lock_timeout));
        steps
    }

    fn unique(&self) -> &'static str {
        if self.parts.unique { "UNIQUE " } else { "" }
    }
}

/// The run lock, confirmed inside the migration's own transaction. This
/// session holds it, so taking it again for the transaction succeeds at
/// once; it fails only when another session holds it, which means a pooler
/// moved this session to a server connection without it. Once taken, no
/// other run can take the lock before COMMIT: the migration and its history
/// row never run unprotected, and the check costs no round trip of its own.
pub fn run_lock_guard(key: i64) -> String {
    format!(
        "DO $$BEGIN IF NOT pg_try_advisory_xact_lock({key}) THEN RAISE EXCEPTION \
         'another session holds the migration lock' USING HINT = 'this session is no longer the one \
         that took it: a pooler moved it to another server connection; connect directly or through \
         a session pooler'; END IF; END$$"
    )
}

fn lock_timeout_step(timeout: Timeout) -> Step {
    Step::new(
        Role::Setting,
        format!("SET lock_timeout = '{}'", timeout.setting()),
    )
}

fn journal_step(source: &SourceMigration, tables: &Tables, index: usize) -> Step {
    Step::with(
        Role::Journal(index),
        format!(
            "INSERT INTO {} (version, checksum, statement) VALUES ($1, $2, $3)",
            tables.journal()
        ),
        vec![
            Param::Version(source.version),
            Param::Text(source.checksum(tables.width).to_string()),
            Param::Int(index as i32 + 1),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::fixtures::*;
    use crate::migrate::source::VersionWidth;

    /// One line a step: role, SQL, parameters; checksums as `CHECKSUM`.
    fn listing(steps: &[Step], source: &SourceMigration) -> Vec<String> {
        steps
            .iter()
            .map(|step| {
                let params: Vec<String> = step
                    .params
                    .iter()
                    .map(|param| match param {
                        Param::Text(text)
                            if *text == source.checksum(VersionWidth::Int4).to_string() =>
                        {
                            "CHECKSUM".to_owned()
                        }
                        Param::Text(text) => format!("{text:?}"),
                        Param::Int(value) => value.to_string(),
                        Param::Version(value) => value.to_string(),
                    })
                    .collect();
                if params.is_empty() {
                    format!("{:?}: {}", step.role, step.sql)
                } else {
                    format!("{:?}: {} [{}]", step.role, step.sql, params.join(", "))
                }
            })
            .collect()
    }

    /// The steps but the history rows, which the two full listings pin.
    fn outline(migration: &PlannedMigration<'_>) -> Vec<String> {
        listing(&migration.steps, migration.source)
            .into_iter()
            .filter(|line| !line.starts_with("History"))
            .collect()
    }

    fn versions(plan: &Plan<'_>) -> Vec<Version> {
        plan.migrations.iter().map(|m| m.source.version).collect()
    }

    fn problems(result: Result<Plan<'_>, PlanError>) -> Vec<String> {
        match result {
            Err(PlanError::Inconsistent { problems }) => problems,
            Ok(plan) => panic!("planned {:?}", versions(&plan)),
        }
    }

    const HISTORY_ROW: &str = "INSERT INTO \"public\".\"refinery_schema_history\" (version, name, applied_on, \
         checksum) VALUES ($1, $2, to_char(clock_timestamp() AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), $3)";
    const RUN_ROW_UPSERT: &str = "ON CONFLICT (version) DO UPDATE SET started_at = \
         EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, mode = EXCLUDED.mode";
    const TEXT_ROW: &str = "INSERT INTO \"public\".\"pgm_migration_texts\" (version, checksum, text) \
         VALUES ($1, $2, $3) ON CONFLICT (version) DO UPDATE SET checksum = excluded.checksum, \
         text = excluded.text";

    #[test]
    fn a_transactional_migration_commits_with_its_history_rows() {
        let sources = [migration(
            "V1__a.sql",
            "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
        )];
        let plan = plan(&sources, &fresh_database(), &options()).unwrap();
        assert_eq!(
            listing(&plan.migrations[0].steps, &sources[0]),
            [
                "Begin: BEGIN".to_owned(),
                "Setting: SET LOCAL lock_timeout = '2s'".to_owned(),
                "Setting: SET LOCAL statement_timeout = '5min'".to_owned(),
                format!(
                    "Guard: {}",
                    run_lock_guard(crate::migrate::apply::MIGRATE_LOCK_KEY)
                ),
                "Statement(0): CREATE TABLE a (id int);".to_owned(),
                "Statement(1): INSERT INTO a VALUES (1);".to_owned(),
                format!(
                    "History: {}",
                    HISTORY_ROW.replace("$1", "1").replace("$2", "'a'").replace(
                        "$3",
                        &format!("'{}'", sources[0].checksum(VersionWidth::Int4))
                    )
                ),
                format!(
                    "History: INSERT INTO \"public\".\"pgm_migration_runs\" (version, started_at, \
                     finished_at, mode) VALUES (1, transaction_timestamp(), clock_timestamp(), \
                     'transaction') {RUN_ROW_UPSERT}"
                ),
                format!(
                    "History: {}",
                    TEXT_ROW
                        .replace("$1", "1")
                        .replace(
                            "$2",
                            &format!("'{}'", sources[0].checksum(VersionWidth::Int4))
                        )
                        .replace("$3", &quote_literal(sources[0].text()))
                ),
                "Commit: COMMIT".to_owned(),
                "Reset: RESET ALL".to_owned(),
            ]
        );
        assert_eq!(plan.migrations[0].resume_at, 0);
        assert!(plan.migrations[0].skipped.is_empty());
        assert_eq!(plan.migrations[0].delivery, Delivery::OneQuery);
    }

    #[test]
    fn the_one_query_is_the_steps_one_per_line_and_positions_trace_back_to_a_step() {
        let sources = [migration(
            "V1__a.sql",
            "CREATE TABLE a (id int);\nSELECT '日本🐘', x FROM a;\n",
        )];
        let plan = plan(&sources, &fresh_database(), &options()).unwrap();
        let query = plan.migrations[0].one_query().unwrap();
        let lines: Vec<String> = plan.migrations[0]
            .steps
            .iter()
            .map(|step| terminated(&step.sql))
            .collect();
        assert_eq!(query.text, lines.join("\n"));
        // PostgreSQL counts characters of the whole string, 1-based.
        let at = |needle: &str| {
            query.text[..query.text.find(needle).unwrap()]
                .chars()
                .count()
                + 1
        };
        assert_eq!(query.step_at(1), Some((0, 1)));
        assert_eq!(query.step_at(at("CREATE")), Some((4, 1)));
        assert_eq!(query.step_at(at("x FROM")), Some((5, 15)));
        let commit = plan.migrations[0]
            .steps
            .iter()
            .position(|step| step.role == Role::Commit)
            .unwrap();
        assert_eq!(query.step_at(at("COMMIT")), Some((commit, 1)));
        assert_eq!(query.step_at(0), None);
    }

    #[test]
    fn a_file_that_changes_how_literals_read_goes_step_by_step() {
        let sources = [
            migration(
                "V1__a.sql",
                "SET LOCAL standard_conforming_strings = off;\nSELECT 1;\n",
            ),
            migration("V2__i.sql", TWO_CONCURRENT_INDEXES),
        ];
        let plan = plan(&sources, &fresh_database(), &options()).unwrap();
        assert_eq!(plan.migrations[0].delivery, Delivery::StepByStep);
        assert!(plan.migrations[0].one_query().is_none());
        assert_eq!(plan.migrations[1].delivery, Delivery::StepByStep);
    }

    #[test]
    fn a_value_written_in_is_not_read_again_for_placeholders() {
        let step = Step::with(
            Role::History,
            "INSERT INTO t VALUES ($1, $2, $10, $3)",
            vec![
                Param::Int(7),
                Param::Text("AS $$ SELECT $1 + $2 $$ -- it's".to_owned()),
            ],
        );
        assert_eq!(
            step.inlined(),
            "INSERT INTO t VALUES (7, 'AS $$ SELECT $1 + $2 $$ -- it''s', $10, $3)"
        );
    }

    #[test]
    fn a_file_that_changes_how_literals_read_keeps_its_history_values_as_parameters() {
        let sources = [migration(
            "V1__a.sql",
            "SET LOCAL standard_conforming_strings = off;\nSELECT 1;\n",
        )];
        let plan = plan(&sources, &fresh_database(), &options()).unwrap();
        assert!(
            plan.migrations[0]
                .steps
                .iter()
                .filter(|step| step.role == Role::History)
                .all(|step| !step.params.is_empty())
        );
    }

    #[test]
    fn a_final_line_comment_keeps_the_semicolon_off_its_line() {
        assert_eq!(terminated("SELECT 1;  \n"), "SELECT 1;");
        assert_eq!(terminated("SELECT 1"), "SELECT 1;");
        assert_eq!(terminated("SELECT 1 -- one"), "SELECT 1 -- one\n;");
    }

    #[test]
    fn a_no_transaction_migration_journals_each_statement_then_commits_its_history() {
        let sources = [migration("V2__i.sql", TWO_CONCURRENT_INDEXES)];
        let plan = plan(&sources, &fresh_database(), &options()).unwrap();
        let journal =
            "INSERT INTO \"public\".\"pgm_migration_journal\" (version, checksum, statement)";
        assert_eq!(
            listing(&plan.migrations[0].steps, &sources[0]),
            [
                "Setting: SET lock_timeout = '2s'".to_owned(),
                "Setting: SET statement_timeout = 0".to_owned(),
                format!(
                    "StartJournal: {journal} VALUES ($1, $2, 0) ON CONFLICT DO NOTHING [2, CHECKSUM]"
                ),
                "Setting: SET lock_timeout = '30min'".to_owned(),
                "Statement(0): CREATE INDEX CONCURRENTLY IF NOT EXISTS a_x_idx ON a (x);"
                    .to_owned(),
                "Setting: SET lock_timeout = '2s'".to_owned(),
                format!("Journal(0): {journal} VALUES ($1, $2, $3) [2, CHECKSUM, 1]"),
                "Setting: SET lock_timeout = '30min'".to_owned(),
                "Statement(1): CREATE INDEX CONCURRENTLY IF NOT EXISTS a_y_idx ON a (y);"
                    .to_owned(),
                "Setting: SET lock_timeout = '2s'".to_owned(),
                format!("Journal(1): {journal} VALUES ($1, $2, $3) [2, CHECKSUM, 2]"),
                "Begin: BEGIN".to_owned(),
                format!("History: {HISTORY_ROW} [2, \"i\", CHECKSUM]"),
                format!(
                    "History: INSERT INTO \"public\".\"pgm_migration_runs\" (version, started_at, \
                     finished_at, mode) VALUES ($1, coalesce((SELECT completed_at FROM \
                     \"public\".\"pgm_migration_journal\" WHERE version = 2 AND statement = 0), \
                     transaction_timestamp()), clock_timestamp(), $2) {RUN_ROW_UPSERT} \
                     [2, \"no-transaction\"]"
                ),
                format!("History: {TEXT_ROW} [2, CHECKSUM, {:?}]", sources[0].text()),
                "History: DELETE FROM \"public\".\"pgm_migration_journal\" WHERE version = $1 [2]"
                    .to_owned(),
                "Commit: COMMIT".to_owned(),
                "Reset: RESET ALL".to_owned(),
            ]
        );
    }

    #[test]
    fn pending_migrations_run_in_version_order_after_the_setup() {
        let sources = [
            migration("V3__c.sql", "CREATE TABLE c ();"),
            migration("V1__a.sql", "CREATE TABLE a ();"),
            migration("U2__b.sql", "CREATE TABLE b ();"),
        ];
        let mut state = fresh_database();
        state.setup = vec!["CREATE TABLE h ()".to_owned()];
        let plan = plan(&sources, &state, &options()).unwrap();
        assert_eq!(versions(&plan), [1, 2, 3]);
        assert_eq!(
            listing(&plan.setup, &sources[0]),
            ["Setup: CREATE TABLE h ()"]
        );
    }

    #[test]
    fn applied_migrations_are_not_planned_again() {
        let sources = [
            migration("V1__a.sql", "CREATE TABLE a ();"),
            migration("V2__b.sql", "CREATE TABLE b ();"),
        ];
        let mut state = fresh_database();
        state.applied = vec![history_row(&sources[0])];
        assert_eq!(versions(&plan(&sources, &state, &options()).unwrap()), [2]);
        state.applied.push(history_row(&sources[1]));
        let plan = plan(&sources, &state, &options()).unwrap();
        assert!(plan.migrations.is_empty() && plan.setup.is_empty());
    }

    #[test]
    fn the_target_is_the_last_version_planned() {
        let sources = [
            migration("V1__a.sql", "CREATE TABLE a ();"),
            migration("V2__b.sql", "CREATE TABLE b ();"),
            migration("V3__c.sql", "CREATE TABLE c ();"),
        ];
        let options = Options {
            target: Some(2),
            ..options()
        };
        assert_eq!(
            versions(&plan(&sources, &fresh_database(), &options).unwrap()),
            [1, 2]
        );
    }

    #[test]
    fn a_new_version_below_the_highest_applied_is_refused_unless_allowed() {
        let sources = [
            migration("V1__a.sql", "CREATE TABLE a ();"),
            migration("V2__b.sql", "CREATE TABLE b ();"),
            migration("V3__c.sql", "CREATE TABLE c ();"),
        ];
        let mut state = fresh_database();
        state.applied = vec![history_row(&sources[0]), history_row(&sources[2])];
        assert_eq!(
            problems(plan(&sources, &state, &options())),
            [
                "migrations/V2__b.sql: version 2 is new but below the highest applied version 3: give \
                 it a version above that, or pass --allow-out-of-order if it is independent of the \
                 later ones"
            ]
        );
        let allowed = Options {
            allow_out_of_order: true,
            ..options()
        };
        assert_eq!(versions(&plan(&sources, &state, &allowed).unwrap()), [2]);
    }

    #[test]
    fn an_unversioned_migration_may_come_after_higher_versions() {
        let sources = [
            migration("U1__refresh.sql", "SELECT 1;"),
            migration("V2__b.sql", "CREATE TABLE b ();"),
        ];
        let mut state = fresh_database();
        state.applied = vec![history_row(&sources[1])];
        assert_eq!(versions(&plan(&sources, &state, &options()).unwrap()), [1]);
    }

    #[test]
    fn changed_renamed_and_missing_applied_migrations_are_all_reported() {
        let original = [
            migration("V1__a.sql", "CREATE TABLE a ();"),
            migration("V2__b.sql", "CREATE TABLE b ();"),
            migration("V3__c.sql", "CREATE TABLE c ();"),
        ];
        let mut state = fresh_database();
        state.applied = original.iter().map(history_row).collect();
        let now = [
            migration("V1__a.sql", "CREATE TABLE a (id int);"),
            migration("V2__bee.sql", "CREATE TABLE b ();"),
        ];
        assert_eq!(
            problems(plan(&now, &state, &options())),
            [
                format!(
                    "migrations/V1__a.sql: changed after it was applied on 2026-01-05T10:00:00.000000Z \
                     (checksum {} then, {} now): restore the applied version and put the change in a \
                     new migration (if only comments or whitespace changed, `pgm migrate repair` \
                     records the new checksum)",
                    original[0].checksum(VersionWidth::Int4), now[0].checksum(VersionWidth::Int4)
                ),
                "migrations/V2__bee.sql: version 2 was applied as \"b\" but the file is named \"bee\": \
                 a migration's name and contents are fixed once applied; restore the original and put \
                 the change in a new migration"
                    .to_owned(),
                "V3__c: applied on 2026-01-05T10:00:00.000000Z but its file is missing from the \
                 migrations directory: restore it (pgm never forgets an applied migration)"
                    .to_owned(),
            ]
        );
        let states: Vec<State> = reconcile(&now, &state).iter().map(|e| e.state).collect();
        assert_eq!(states, [State::Divergent, State::Divergent, State::Missing]);
    }

    #[test]
    fn a_partly_applied_migration_resumes_after_its_journaled_statements() {
        let sources = [migration("V2__i.sql", TWO_CONCURRENT_INDEXES)];
        let mut state = fresh_database();
        state.progress = vec![journal(&sources[0], 1)];
        assert_eq!(reconcile(&sources, &state)[0].state, State::PartlyApplied);
        let plan = plan(&sources, &state, &options()).unwrap();
        let migration = &plan.migrations[0];
        assert_eq!(migration.resume_at, 1);
        assert_eq!(
            outline(migration),
            [
                "Setting: SET lock_timeout = '2s'",
                "Setting: SET statement_timeout = 0",
                "Setting: SET lock_timeout = '30min'",
                "Statement(1): CREATE INDEX CONCURRENTLY IF NOT EXISTS a_y_idx ON a (y);",
                "Setting: SET lock_timeout = '2s'",
                "Journal(1): INSERT INTO \"public\".\"pgm_migration_journal\" (version, checksum, \
                 statement) VALUES ($1, $2, $3) [2, CHECKSUM, 2]",
                "Begin: BEGIN",
                "Commit: COMMIT",
                "Reset: RESET ALL",
            ]
        );
    }

    #[test]
    fn a_partly_applied_migration_whose_file_changed_is_refused() {
        let started = migration("V2__i.sql", TWO_CONCURRENT_INDEXES);
        let sources = [migration(
            "V2__i.sql",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_z_idx ON a (z);",
        )];
        let mut state = fresh_database();
        state.progress = vec![journal(&started, 1)];
        assert_eq!(
            problems(plan(&sources, &state, &options())),
            [
                "migrations/V2__i.sql: an interrupted run completed 1 of its statements, and the file \
                 changed since: restore the file as it was to finish it, then make further changes in \
                 a new migration"
            ]
        );
    }

    #[test]
    fn an_index_an_interrupted_run_built_valid_is_journaled_without_building_it_again() {
        let sources = [migration("V2__i.sql", TWO_CONCURRENT_INDEXES)];
        let mut state = fresh_database();
        state.progress = vec![journal(&sources[0], 0)];
        state.indexes = vec![index("a_x_idx", true)];
        let plan = plan(&sources, &state, &options()).unwrap();
        let migration = &plan.migrations[0];
        assert_eq!(
            migration.skipped,
            [(
                0,
                "index public.a_x_idx already exists and is valid (an interrupted run built it)"
                    .to_owned()
            )]
        );
        let statements: Vec<String> = outline(migration)
            .into_iter()
            .filter(|line| line.starts_with("Statement") || line.starts_with("Journal"))
            .map(|line| line.split(':').next().unwrap().to_owned())
            .collect();
        assert_eq!(statements, ["Journal(0)", "Statement(1)", "Journal(1)"]);
    }

    #[test]
    fn an_invalid_index_left_by_an_interrupted_build_is_dropped_before_the_build_reruns() {
        let sources = [migration("V2__i.sql", TWO_CONCURRENT_INDEXES)];
        let mut state = fresh_database();
        state.progress = vec![journal(&sources[0], 1)];
        state.indexes = vec![index("a_x_idx", true), index("a_y_idx", false)];
        let plan = plan(&sources, &state, &options()).unwrap();
        let migration = &plan.migrations[0];
        assert!(
            migration.skipped.is_empty(),
            "statement 0 is already journaled"
        );
        assert_eq!(
            outline(migration)[2..6],
            [
                "Setting: SET lock_timeout = '30min'",
                "DropLeftover(1): DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"a_y_idx\"",
                "Statement(1): CREATE INDEX CONCURRENTLY IF NOT EXISTS a_y_idx ON a (y);",
                "Setting: SET lock_timeout = '2s'",
            ]
        );
    }

    fn node(
        name: &str,
        parent: &str,
        partitioned: bool,
        indexes: &[(&str, bool, Option<&str>)],
    ) -> PartitionNode {
        PartitionNode {
            name: QualifiedName::new("public", name),
            parent: QualifiedName::new("public", parent),
            partitioned,
            indexes: indexes
                .iter()
                .map(|(name, valid, attached_to)| PartitionIndex {
                    name: (*name).to_owned(),
                    valid: *valid,
                    attached_to: attached_to.map(str::to_owned),
                })
                .collect(),
        }
    }

    #[test]
    fn a_concurrent_index_on_a_partitioned_table_is_rolled_out_partition_by_partition() {
        let sources = [migration(
            "V2__e.sql",
            "CREATE UNIQUE INDEX CONCURRENTLY e_x_idx ON e (x, at) WHERE x > 0;",
        )];
        let mut state = fresh_database();
        state.progress = vec![journal(&sources[0], 0)];
        // e_1 done by a killed run, e_2 left INVALID, e_3 built but not
        // attached, e_4 untouched, e_5 sub-partitioned into e_5a.
        state.indexes = vec![index("e_x_idx", false)];
        state.partitioned = vec![PartitionedTarget {
            table: "e".to_owned(),
            name: QualifiedName::new("public", "e"),
            partitions: vec![
                node("e_1", "e", false, &[("e_1_e_x_idx", true, Some("e_x_idx"))]),
                node("e_2", "e", false, &[("e_2_e_x_idx", false, None)]),
                node("e_3", "e", false, &[("e_3_e_x_idx", true, None)]),
                node("e_4", "e", false, &[("e_4_pkey", true, None)]),
                node("e_5", "e", true, &[]),
                node("e_5a", "e_5", false, &[]),
            ],
        }];
        let plan = plan(&sources, &state, &options()).unwrap();
        let migration = &plan.migrations[0];
        assert_eq!(migration.expanded.len(), 1);
        assert!(
            migration.expanded[0]
                .1
                .starts_with("public.e is partitioned")
        );
        assert_eq!(
            outline(migration)[3..],
            [
                "Statement(0): CREATE UNIQUE INDEX IF NOT EXISTS \"e_x_idx\" ON ONLY \"public\".\"e\" (x, at) WHERE x > 0",
                "Setting: SET lock_timeout = '30min'",
                "DropLeftover(0): DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"e_2_e_x_idx\"",
                "Statement(0): CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"e_2_e_x_idx\" ON \"public\".\"e_2\" (x, at) WHERE x > 0",
                "Setting: SET lock_timeout = '2s'",
                "Statement(0): ALTER INDEX \"public\".\"e_x_idx\" ATTACH PARTITION \"public\".\"e_2_e_x_idx\"",
                "Statement(0): ALTER INDEX \"public\".\"e_x_idx\" ATTACH PARTITION \"public\".\"e_3_e_x_idx\"",
                "Setting: SET lock_timeout = '30min'",
                "Statement(0): CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"e_4_e_x_idx\" ON \"public\".\"e_4\" (x, at) WHERE x > 0",
                "Setting: SET lock_timeout = '2s'",
                "Statement(0): ALTER INDEX \"public\".\"e_x_idx\" ATTACH PARTITION \"public\".\"e_4_e_x_idx\"",
                "Statement(0): CREATE UNIQUE INDEX IF NOT EXISTS \"e_5_e_x_idx\" ON ONLY \"public\".\"e_5\" (x, at) WHERE x > 0",
                "Setting: SET lock_timeout = '30min'",
                "Statement(0): CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"e_5a_e_x_idx\" ON \"public\".\"e_5a\" (x, at) WHERE x > 0",
                "Setting: SET lock_timeout = '2s'",
                "Statement(0): ALTER INDEX \"public\".\"e_5_e_x_idx\" ATTACH PARTITION \"public\".\"e_5a_e_x_idx\"",
                "Statement(0): ALTER INDEX \"public\".\"e_x_idx\" ATTACH PARTITION \"public\".\"e_5_e_x_idx\"",
                "Journal(0): INSERT INTO \"public\".\"pgm_migration_journal\" (version, checksum, statement) VALUES ($1, $2, $3) [2, CHECKSUM, 1]",
                "Begin: BEGIN",
                "Commit: COMMIT",
                "Reset: RESET ALL",
            ]
        );
        let patient: Vec<bool> = migration
            .steps
            .iter()
            .filter(|s| s.patient)
            .map(|s| s.sql.contains("CONCURRENTLY"))
            .collect();
        assert_eq!(patient, [true; 4]);
    }

    #[test]
    fn a_partitioned_index_already_valid_is_journaled_without_rolling_it_out_again() {
        let sources = [migration(
            "V2__e.sql",
            "CREATE INDEX CONCURRENTLY e_x_idx ON e (x);",
        )];
        let mut state = fresh_database();
        state.progress = vec![journal(&sources[0], 0)];
        state.indexes = vec![index("e_x_idx", true)];
        state.partitioned = vec![PartitionedTarget {
            table: "e".to_owned(),
            name: QualifiedName::new("public", "e"),
            partitions: vec![node(
                "e_1",
                "e",
                false,
                &[("e_1_e_x_idx", true, Some("e_x_idx"))],
            )],
        }];
        let plan = plan(&sources, &state, &options()).unwrap();
        assert_eq!(plan.migrations[0].skipped.len(), 1);
        assert!(plan.migrations[0].expanded.is_empty());
    }
}
