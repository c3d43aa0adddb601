//! The planner: a pure function of (policy, catalog snapshot, now) that
//! returns the exact steps maintenance runs, in order, each with its SQL,
//! the lock it takes on the parent and whether it must run outside a
//! transaction. Problems of one table become error entries; the other
//! tables plan normally.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

mod creation;
mod indexes;
pub use indexes::child_index_name;
mod retention;

use super::calendar::{self, KeyType, KeyValue};
use super::catalog::{Bound, Parent, Partition, PartitionKey, Snapshot};
use super::policy::{Policy, RetentionAction, TablePolicy};
use crate::db::ident::QualifiedName;
use crate::db::retry::OnRetry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    FinalizeDetach,
    DetachPartition,
    DropPartition,
    ArchivePartition,
    /// A partition detached by an interrupted run stays a plain table (the
    /// policy no longer drops or archives): only its marker is cleared.
    KeepDetached,
    CreateIndex,
    CreatePartition,
    AttachPartition,
    /// Moves the rows of the new range out of the default partition, then
    /// attaches; the move is the step's first statement.
    MoveDefaultRows,
    DropInvalidIndex,
    AttachIndex,
}

/// The strongest lock a step takes on the parent table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lock {
    None,
    AccessShare,
    ShareUpdateExclusive,
    Share,
    AccessExclusive,
}

impl std::fmt::Display for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lock::None => "none",
            Lock::AccessShare => "ACCESS SHARE",
            Lock::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Lock::Share => "SHARE",
            Lock::AccessExclusive => "ACCESS EXCLUSIVE",
        })
    }
}

impl Serialize for Lock {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The managed parent.
    pub table: QualifiedName,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<QualifiedName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<QualifiedName>,
    /// The statements, in order; one transaction unless `transactional` is false.
    pub sql: Vec<String>,
    pub transactional: bool,
    pub lock: Lock,
    /// The lock_timeout each statement runs under (the table's policy).
    pub lock_timeout: String,
    /// Locks on other relations worth knowing (the default partition, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_locks: Option<String>,
    /// A query that must return 0 before the step runs, or the table fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// What a retry after a lock timeout runs first, or instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_retry: Option<OnRetry>,
    pub reason: String,
}

impl Step {
    fn new(table: &TablePolicy, action: Action, reason: impl Into<String>) -> Step {
        Step {
            table: table.parent(),
            action,
            partition: None,
            from: None,
            to: None,
            index: None,
            sql: Vec::new(),
            transactional: true,
            lock: Lock::None,
            lock_timeout: table.lock_timeout.to_string(),
            other_locks: None,
            guard: None,
            on_retry: None,
            reason: reason.into(),
        }
    }

    /// What the step acts on: the index, else the partition, else the table.
    pub fn target(&self) -> &QualifiedName {
        self.index
            .as_ref()
            .or(self.partition.as_ref())
            .unwrap_or(&self.table)
    }

    /// Builds or attaches an index (of the parent or of a partition).
    pub fn is_index_work(&self) -> bool {
        matches!(
            self.action,
            Action::CreateIndex | Action::AttachIndex | Action::DropInvalidIndex
        )
    }
}

/// Why a table (or a part of it) cannot be maintained as the policy says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    MissingTable,
    NotPartitioned,
    NotRange,
    UnsupportedKey,
    UnsupportedKeyType,
    InvalidIndex,
    /// The clock and the policy reach past the years partition bounds can
    /// be written for.
    OutOfRange,
    /// Partitions or periods that do not match the policy: reported and
    /// left alone, they stop nothing.
    Drift,
}

impl ProblemKind {
    pub fn is_warning(self) -> bool {
        self == ProblemKind::Drift
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub table: QualifiedName,
    pub kind: ProblemKind,
    pub partition: Option<QualifiedName>,
    pub message: String,
    /// The table's lock_timeout, kept so the JSON entry has every field a
    /// step has.
    lock_timeout: String,
}

impl Problem {
    fn new(table: &TablePolicy, kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            table: table.parent(),
            kind,
            partition: None,
            message: message.into(),
            lock_timeout: table.lock_timeout.to_string(),
        }
    }
}

/// A problem takes its place among the steps in the plan's JSON, shaped
/// like a step with `"action": "error"`, as it always has been.
impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct ErrorEntry<'a> {
            table: &'a QualifiedName,
            action: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            partition: Option<&'a QualifiedName>,
            sql: [&'static str; 0],
            transactional: bool,
            lock: Lock,
            lock_timeout: &'a str,
            reason: ProblemKind,
            message: &'a str,
            severity: &'static str,
        }
        ErrorEntry {
            table: &self.table,
            action: "error",
            partition: self.partition.as_ref(),
            sql: [],
            transactional: true,
            lock: Lock::None,
            lock_timeout: &self.lock_timeout,
            reason: self.kind,
            message: &self.message,
            severity: if self.kind.is_warning() {
                "warning"
            } else {
                "error"
            },
        }
        .serialize(serializer)
    }
}

/// One line of a table's plan, in order. Most entries are steps, so
/// boxing them would cost more than the size difference.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Entry {
    Step(Step),
    Problem(Problem),
}

impl Entry {
    pub fn table(&self) -> &QualifiedName {
        match self {
            Entry::Step(step) => &step.table,
            Entry::Problem(problem) => &problem.table,
        }
    }

    pub fn step(&self) -> Option<&Step> {
        match self {
            Entry::Step(step) => Some(step),
            Entry::Problem(_) => None,
        }
    }

    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Entry::Problem(problem) => Some(problem),
            Entry::Step(_) => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub now: DateTime<Utc>,
    #[serde(rename = "steps")]
    pub entries: Vec<Entry>,
}

impl Plan {
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.entries.iter().filter_map(Entry::step)
    }

    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.entries.iter().filter_map(Entry::problem)
    }

    /// Problems that stop a table (drift is only reported).
    pub fn failures(&self) -> impl Iterator<Item = &Problem> {
        self.problems().filter(|p| !p.kind.is_warning())
    }

    pub fn has_work(&self) -> bool {
        self.steps().next().is_some()
    }

    /// The entries of one table, in order.
    pub fn for_table<'a>(&'a self, table: &'a QualifiedName) -> impl Iterator<Item = &'a Entry> {
        self.entries.iter().filter(move |e| e.table() == table)
    }
}

/// The plan for every table of the policy. `snapshot.parents` is in policy order.
pub fn plan(policy: &Policy, snapshot: &Snapshot, now: DateTime<Utc>) -> Plan {
    let entries = policy
        .tables
        .iter()
        .enumerate()
        .flat_map(|(position, table)| {
            let parent = snapshot.parents.get(position).and_then(Option::as_ref);
            plan_table(table, parent, snapshot, now)
        })
        .collect();
    Plan { now, entries }
}

/// One existing partition as the planner classifies it.
struct Existing<'a> {
    partition: &'a Partition,
    /// The key range, when it parses.
    range: Option<(KeyValue, KeyValue)>,
    /// The first day of its period, when it is exactly one period.
    period: Option<NaiveDate>,
}

struct Context<'a> {
    table: &'a TablePolicy,
    parent: &'a Parent,
    key: KeyType,
    column: String,
    zone: Tz,
    /// The parent quoted, as statements and markers write it.
    qualified_parent: String,
    default_partition: Option<&'a Partition>,
}

impl Context<'_> {
    fn name_of(partition: &Partition) -> QualifiedName {
        QualifiedName::new(partition.schema.clone(), partition.name.clone())
    }
}

/// The parent and its key, or why the table cannot be planned at all.
fn manageable<'a>(
    table: &TablePolicy,
    parent: Option<&'a Parent>,
) -> Result<(&'a Parent, &'a PartitionKey, KeyType), (ProblemKind, String)> {
    let name = table.qualified_name();
    let Some(parent) = parent else {
        return Err((
            ProblemKind::MissingTable,
            format!(
                "{name} does not exist: create it (PARTITION BY RANGE on its time column) in a migration, or remove its entry"
            ),
        ));
    };
    if parent.relkind != 'p' {
        return Err((
            ProblemKind::NotPartitioned,
            format!(
                "{name} is not a partitioned table: pgm manages tables declared PARTITION BY RANGE (column)"
            ),
        ));
    }
    if parent.strategy != Some('r') {
        let kind = if parent.strategy == Some('l') {
            "LIST"
        } else {
            "HASH"
        };
        return Err((
            ProblemKind::NotRange,
            format!("{name} is partitioned by {kind}: pgm manages RANGE partitioning"),
        ));
    }
    let Some(key) = &parent.key else {
        return Err((
            ProblemKind::UnsupportedKey,
            format!(
                "{name} is partitioned on {}: pgm manages a range key of one plain column",
                if parent.key_columns > 1 {
                    "several columns"
                } else {
                    "an expression"
                }
            ),
        ));
    };
    match KeyType::from_sql_type(&key.sql_type) {
        Some(key_type) => Ok((parent, key, key_type)),
        None => Err((
            ProblemKind::UnsupportedKeyType,
            format!(
                "{name} is partitioned on {} of type {}: pgm manages timestamptz, timestamp, date and integer (epoch seconds) keys",
                key.column, key.sql_type
            ),
        )),
    }
}

pub fn plan_table(
    table: &TablePolicy,
    parent: Option<&Parent>,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Vec<Entry> {
    // Planned only where every bound can be written: a clock or a policy
    // at the ends of the calendar is an error entry, not a crash.
    if let Err(message) = table.check_plannable(now) {
        return vec![Entry::Problem(Problem::new(
            table,
            ProblemKind::OutOfRange,
            message,
        ))];
    }
    let (parent, key, key_type) = match manageable(table, parent) {
        Ok(manageable) => manageable,
        Err((kind, message)) => return vec![Entry::Problem(Problem::new(table, kind, message))],
    };
    let context = Context {
        table,
        parent,
        key: key_type,
        column: key.column.clone(),
        zone: table.time_zone,
        qualified_parent: QualifiedName::new(parent.schema.clone(), parent.name.clone()).quoted(),
        default_partition: parent.partitions.iter().find(|p| p.bound == Bound::Default),
    };
    let mut entries = Vec::new();
    let existing = classify(&context, &mut entries);

    // 1. Retirements an interrupted run left half done.
    plan_interrupted_retirements(&context, &existing, snapshot, now, &mut entries);

    // 2. Retention.
    let (retiring, retired_now) = retention::plan_retention(&context, &existing, now, &mut entries);

    // 3. Indexes on the parent, before new partitions, so that attaching an
    //    (empty) partition builds its indexes at once.
    indexes::plan_parent_indexes(&context, &mut entries);

    // 4. Partitions from the period holding now through premake more.
    let today = calendar::local_date(now, context.zone);
    creation::plan_creation(&context, &existing, snapshot, today, &mut entries);

    // 5. Indexes of the partitions that stay.
    indexes::plan_partition_indexes(&context, &existing, &retiring, &retired_now, &mut entries);
    entries
}

/// A detach left pending, or a detached partition not yet dropped or archived.
fn plan_interrupted_retirements(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    entries: &mut Vec<Entry>,
) {
    let table = context.table;
    let cutoff = table
        .retention
        .as_ref()
        .map(|r| r.cutoff(calendar::local_date(now, context.zone)));
    for entry in existing.iter().filter(|e| e.partition.detach_pending) {
        let partition = entry.partition;
        let mut step = Step::new(
            table,
            Action::FinalizeDetach,
            "an earlier DETACH … CONCURRENTLY was interrupted: finish it",
        );
        step.partition = Some(Context::name_of(partition));
        step.sql = vec![format!(
            "ALTER TABLE {} DETACH PARTITION {} FINALIZE",
            context.qualified_parent,
            Context::name_of(partition).quoted()
        )];
        step.lock = Lock::ShareUpdateExclusive;
        entries.push(Entry::Step(step));
        let marked = snapshot
            .retiring
            .iter()
            .any(|r| r.schema == partition.schema && r.name == partition.name);
        let expired = matches!((entry.period, cutoff), (Some(start), Some(cutoff)) if table.interval.next(start) <= cutoff);
        if marked || expired {
            entries.extend(
                retention::after_detach(
                    context,
                    &Context::name_of(partition),
                    "finishes the retirement of the interrupted run",
                )
                .map(Entry::Step),
            );
        }
    }
    for retiring in snapshot
        .retiring
        .iter()
        .filter(|r| !r.still_attached && r.parent == context.qualified_parent)
    {
        entries.extend(
            retention::after_detach(
                context,
                &QualifiedName::new(retiring.schema.clone(), retiring.name.clone()),
                "detached by an interrupted run",
            )
            .map(Entry::Step),
        );
    }
}

fn classify<'a>(context: &Context<'a>, entries: &mut Vec<Entry>) -> Vec<Existing<'a>> {
    let mut existing = Vec::new();
    for partition in &context.parent.partitions {
        let Bound::Range { from, to } = &partition.bound else {
            continue;
        };
        let range =
            calendar::parse_bound(context.key, from).zip(calendar::parse_bound(context.key, to));
        let period = range.and_then(|(lo, hi)| aligned_period(context, lo, hi));
        if period.is_none() && !partition.detach_pending {
            let mut problem = Problem::new(
                context.table,
                ProblemKind::Drift,
                format!(
                    "partition {}.{} covers [{from}, {to}), which is not one {} period in {}: pgm leaves it as it is",
                    partition.schema, partition.name, context.table.interval, context.zone
                ),
            );
            problem.partition = Some(Context::name_of(partition));
            entries.push(Entry::Problem(problem));
        }
        existing.push(Existing {
            partition,
            range,
            period,
        });
    }
    existing
}

/// The period [lo, hi) is exactly, if it is one.
fn aligned_period(context: &Context<'_>, lo: KeyValue, hi: KeyValue) -> Option<NaiveDate> {
    if lo == KeyValue::MIN || hi == KeyValue::MAX {
        return None;
    }
    let date = key_to_date(context.key, lo, context.zone)?;
    // Bounds read from the catalog may sit at the ends of chrono's calendar.
    let start = context.table.interval.checked_floor(date)?;
    let end = context.table.interval.checked_next(start)?;
    let matches = calendar::key_value(context.key, start, context.zone) == lo
        && calendar::key_value(context.key, end, context.zone) == hi;
    matches.then_some(start)
}

fn key_to_date(key: KeyType, value: KeyValue, zone: Tz) -> Option<NaiveDate> {
    Some(match key {
        KeyType::TimestampTz => {
            calendar::checked_local_date(DateTime::from_timestamp_micros(value)?, zone)?
        }
        KeyType::Timestamp => DateTime::from_timestamp_micros(value)?.naive_utc().date(),
        KeyType::Date => NaiveDate::from_num_days_from_ce_opt(i32::try_from(value).ok()?)?,
        KeyType::EpochSeconds => {
            calendar::checked_local_date(DateTime::from_timestamp(value, 0)?, zone)?
        }
    })
}

fn bounds_text(context: &Context<'_>, start: NaiveDate) -> (String, String) {
    let strip = |literal: String| literal.trim_matches('\'').to_owned();
    (
        strip(calendar::literal(context.key, start, context.zone)),
        strip(calendar::literal(
            context.key,
            context.table.interval.next(start),
            context.zone,
        )),
    )
}

/// The interval of a table, for summaries.
pub fn describe(table: &TablePolicy) -> String {
    let retention = match &table.retention {
        Some(r) => format!(
            ", retention {} → {}",
            r.text,
            match &r.action {
                RetentionAction::Drop => "drop".to_owned(),
                RetentionAction::Detach => "detach".to_owned(),
                RetentionAction::Archive { schema } => format!("archive to {schema}"),
            }
        ),
        None => String::new(),
    };
    format!(
        "{}, premake {}{retention}, {}",
        table.interval, table.premake, table.time_zone
    )
}
