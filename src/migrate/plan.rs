//! What a run will do, as the exact statements in order. Pure: built from the
//! files, the history, the journal and the catalog facts read beforehand; the
//! runner executes these steps and `--dry-run` prints them.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::db::quote_ident;
use crate::db::retry::OnRetry;
use crate::duration::Timeout;

use super::history::{Applied, Progress, Tables};
use super::source::{Kind, SourceMigration, Version};
use super::sql::Mode;

#[derive(Debug, Clone)]
pub struct Options {
    pub lock_timeout: Timeout,
    pub statement_timeout: Timeout,
    pub target: Option<Version>,
    pub allow_out_of_order: bool,
}

/// A value bound to a step's `$n` placeholder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Param {
    Int(i32),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "role", content = "index")]
pub enum Role {
    Setup,
    Begin,
    Setting,
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
}

impl Step {
    fn new(role: Role, sql: impl Into<String>) -> Step {
        Step::with(role, sql, Vec::new())
    }

    fn with(role: Role, sql: impl Into<String>, params: Vec<Param>) -> Step {
        Step {
            role,
            sql: sql.into(),
            params,
            on_retry: None,
        }
    }

    /// Whether a lock timeout of this step is retried: the file's own
    /// statements and the drops before them, not pgm's bookkeeping.
    pub fn retried_on_lock_timeout(&self) -> bool {
        matches!(self.role, Role::Statement(_) | Role::DropLeftover(_))
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
    pub steps: Vec<Step>,
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

/// Everything read from the database that the plan depends on.
#[derive(Debug, Clone)]
pub struct DatabaseState {
    pub tables: Tables,
    pub setup: Vec<String>,
    pub applied: Vec<Applied>,
    pub progress: Vec<(Version, Progress)>,
    pub indexes: Vec<ExistingIndex>,
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
    let mut entries: Vec<Entry<'a>> = sources
        .iter()
        .map(|source| {
            let applied_row = applied.get(&source.version).copied();
            let state = match applied_row {
                Some(row) if row.checksum == source.checksum && row.name == source.name => {
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
                     version and put the change in a new migration",
                    source.path.display(), applied.applied_on, applied.checksum, source.checksum
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
                if progress.checksum != source.checksum {
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
                Param::Int(source.version),
                Param::Text(source.name.clone()),
                Param::Text(source.checksum.to_string()),
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
                Param::Int(source.version),
                Param::Text(source.parsed().mode.to_string()),
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
    let indexes = &state.indexes;
    let tables = &state.tables;
    let file = source.parsed();
    let mut steps = Vec::new();
    let mut skipped = Vec::new();
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
            for (index, statement) in file.statements.iter().enumerate() {
                steps.push(Step::new(
                    Role::Statement(index),
                    file.statement_text(statement),
                ));
            }
            steps.extend(history_steps(source, tables, "transaction_timestamp()"));
            steps.push(Step::new(Role::Commit, "COMMIT"));
        }
        Mode::NoTransaction => {
            // Concurrent builds may run for long and block no reads or writes:
            // only the lock wait is bounded, a statement timeout would only
            // leave INVALID indexes behind.
            steps.push(Step::new(
                Role::Setting,
                format!("SET lock_timeout = '{}'", options.lock_timeout.setting()),
            ));
            steps.push(Step::new(Role::Setting, "SET statement_timeout = 0"));
            let journal = tables.journal();
            if resume_at == 0 {
                steps.push(Step::with(
                    Role::StartJournal,
                    format!("INSERT INTO {journal} (version, checksum, statement) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING"),
                    vec![Param::Int(source.version), Param::Text(source.checksum.to_string())],
                ));
            }
            for (index, statement) in file.statements.iter().enumerate().skip(resume_at) {
                let existing = statement
                    .concurrent_index
                    .as_ref()
                    .and_then(|name| indexes.iter().find(|i| &i.name == name));
                match existing {
                    Some(index_row) if !index_row.valid => steps.push(Step::new(
                        Role::DropLeftover(index),
                        format!(
                            "DROP INDEX CONCURRENTLY IF EXISTS {}.{}",
                            quote_ident(&index_row.schema),
                            quote_ident(&index_row.name)
                        ),
                    )),
                    Some(index_row) => {
                        skipped.push((
                            index,
                            format!(
                                "index {}.{} already exists and is valid (an interrupted run built it)",
                                index_row.schema, index_row.name
                            ),
                        ));
                        steps.push(journal_step(source, tables, index));
                        continue;
                    }
                    None => {}
                }
                let mut run = Step::new(Role::Statement(index), file.statement_text(statement));
                run.on_retry = statement
                    .concurrent_index
                    .as_deref()
                    .map(drop_cancelled_build);
                steps.push(run);
                steps.push(journal_step(source, tables, index));
            }
            steps.push(Step::new(Role::Begin, "BEGIN"));
            let started_at = format!(
                "coalesce((SELECT completed_at FROM {journal} WHERE version = {} AND statement = 0), transaction_timestamp())",
                source.version
            );
            steps.extend(history_steps(source, tables, &started_at));
            steps.push(Step::with(
                Role::History,
                format!("DELETE FROM {journal} WHERE version = $1"),
                vec![Param::Int(source.version)],
            ));
            steps.push(Step::new(Role::Commit, "COMMIT"));
        }
    }
    // A SET in one migration must not leak into the next.
    steps.push(Step::new(Role::Reset, "RESET ALL"));
    PlannedMigration {
        source,
        resume_at,
        skipped,
        steps,
    }
}

/// A concurrent build cancelled by lock_timeout leaves an INVALID index
/// under its name; it goes before the statement runs again. The name is
/// looked up on the search path, as the statement itself wrote it.
fn drop_cancelled_build(index: &str) -> OnRetry {
    let name = quote_ident(index);
    OnRetry {
        statement: 0,
        when: format!(
            "SELECT EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass({}) AND NOT indisvalid)",
            crate::db::quote_literal(&name)
        ),
        sql: format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"),
        instead: false,
        why: "the cancelled build left an INVALID index: dropped before building again".into(),
    }
}

fn journal_step(source: &SourceMigration, tables: &Tables, index: usize) -> Step {
    Step::with(
        Role::Journal(index),
        format!(
            "INSERT INTO {} (version, checksum, statement) VALUES ($1, $2, $3)",
            tables.journal()
        ),
        vec![
            Param::Int(source.version),
            Param::Text(source.checksum.to_string()),
            Param::Int(index as i32 + 1),
        ],
    )
}
