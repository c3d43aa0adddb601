//! The planner: a pure function of (policy, catalog snapshot, now) that
//! returns the exact steps maintenance runs, in order, each with its SQL,
//! the lock it takes on the parent and whether it must run outside a
//! transaction. Problems of one table become error entries; the other
//! tables plan normally.

use chrono::{DateTime, Utc};
use serde::Serialize;

mod columnar;
mod creation;
mod default_partition;
mod indexes;
pub use indexes::{child_index_name, on_empty_parent};
mod periods;
pub use periods::Periods;
mod retention;

use super::calendar::{self, KeyType, KeyValue, SqlKey};
use super::catalog::{Bound, CitusTable, Parent, Partition, PartitionKey, Snapshot};
use super::policy::{Policy, RetentionAction, Spacing, TablePolicy};
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
    /// On Citus: a CHECK proving a partition's bounds, NOT VALID, before
    /// its conversion to columnar.
    ColumnarPrepare,
    /// On Citus: one partition converted to the columnar access method.
    ColumnarPartition,
    /// `default_partition = true`: the default partition created like the
    /// parent and attached, in one transaction.
    CreateDefaultPartition,
    /// `pgm partitions convert`: the partitioned table, its partitions and
    /// the change log, made next to the table being converted.
    ConvertCreateTable,
    /// `pgm partitions convert`: the triggers capturing changes to the table.
    ConvertStartCapture,
    /// `pgm partitions convert`: one batch of the copy, run again and again.
    ConvertBackfill,
    /// `pgm partitions convert`: one batch of captured changes applied.
    ConvertReplay,
    /// `pgm partitions convert`: the table and the partitioned table compared.
    ConvertVerify,
    /// `pgm partitions convert`: the names exchanged (or exchanged back).
    ConvertSwap,
    /// `pgm partitions convert`: a re-pointed foreign key validated.
    ConvertValidate,
    /// `pgm partitions convert --drop-old`: the old table dropped.
    ConvertDropOld,
    /// `pgm partitions convert --abort`: the partitioned copy and the
    /// capture dropped before the swap.
    ConvertAbort,
}

/// The strongest lock a step takes on the parent table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lock {
    None,
    AccessShare,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    AccessExclusive,
}

impl std::fmt::Display for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lock::None => "none",
            Lock::AccessShare => "ACCESS SHARE",
            Lock::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            Lock::Share => "SHARE",
            Lock::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
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
    /// On a table Citus distributes, the transaction's lock_timeout also
    /// holds for the statements Citus sends to the workers: it is set after
    /// `SET LOCAL citus.propagate_set_commands = 'local'`, without which
    /// Citus keeps it on the coordinator and a lock wait on a worker shard
    /// would hold the coordinator's lock (and the writers queued behind it)
    /// for as long as it lasts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lock_timeout_on_workers: bool,
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
    pub(crate) fn new(table: &TablePolicy, action: Action, reason: impl Into<String>) -> Step {
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
            lock_timeout_on_workers: false,
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
    /// The policy's interval does not fit the key's type (an integer key
    /// with a time interval and no epoch, say).
    KeyMismatch,
    InvalidIndex,
    /// The clock and the policy reach past the years partition bounds can
    /// be written for.
    OutOfRange,
    /// Partitions or periods that do not match the policy: reported and
    /// left alone, they stop nothing.
    Drift,
    /// The policy keeps more partitions than PostgreSQL plans queries over
    /// comfortably: a warning with the count.
    ManyPartitions,
    /// The largest key of an ID-ranged table could not be read or used
    /// (a lock held by pending DDL, a value beyond bigint): without it no
    /// range can be placed, so nothing is planned for the table.
    UnknownMaxKey,
    /// `pgm partitions convert` has not finished with the table: before
    /// the swap nothing is planned for it; after, retention waits.
    Converting,
    /// A Citus table of a kind pgm does not manage (reference, local,
    /// single-shard or in a distributed schema).
    CitusUnsupported,
    /// A partition name leaves no room for the suffix Citus adds to the
    /// names of its shards.
    NameTooLong,
    /// A partition is itself partitioned (pg_partman's sub-partitioning):
    /// pgm would create new partitions as plain tables, so nothing is planned.
    Subpartitioned,
    /// `default_partition = false` is written and the table has one: kept.
    UnwantedDefaultPartition,
    /// The default partition holds rows older than the retention: kept.
    DefaultRowsPastRetention,
    /// Where the default partition's rows are could not be read: no drain.
    DefaultRowsUnread,
}

impl ProblemKind {
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            ProblemKind::Drift
                | ProblemKind::ManyPartitions
                | ProblemKind::Converting
                | ProblemKind::UnwantedDefaultPartition
                | ProblemKind::DefaultRowsPastRetention
                | ProblemKind::DefaultRowsUnread
        )
    }
}

/// More partitions than this per table slow the planning of every query
/// that cannot prune them.
pub const MANY_PARTITIONS: i64 = 1000;

/// A warning when a fixed interval or an ID step makes the policy keep
/// more than `MANY_PARTITIONS` partitions: premake ahead plus those the
/// retention keeps. Calendar intervals are not counted: daily partitions
/// kept for years are a count chosen by name, not a slip of a number.
fn many_partitions(table: &TablePolicy) -> Option<Problem> {
    let kept = match (table.spacing, &table.retention) {
        (Spacing::Calendar(_), _) => return None,
        (_, None) => 0,
        (Spacing::Fixed(fixed), Some(r)) => {
            r.approximate_days().saturating_mul(24 * 60) / i64::from(fixed.minutes)
        }
        (Spacing::Ids(step), Some(r)) => i64::try_from(r.amount).unwrap_or(i64::MAX) / step.max(1),
    };
    let retention = table.retention.as_ref().map_or("none", |r| r.text.as_str());
    let count = i64::from(table.premake)
        .saturating_add(1)
        .saturating_add(kept);
    let fewer = match table.spacing {
        Spacing::Ids(_) => "a larger step or a smaller retention keeps fewer",
        _ => "a longer interval or a shorter retention keeps fewer",
    };
    (count > MANY_PARTITIONS).then(|| {
        Problem::new(
            table,
            ProblemKind::ManyPartitions,
            format!(
                "{}: {} with interval {} keeps about {count} partitions (premake = {} ahead, about \
                 {kept} kept by retention {retention}); more than {MANY_PARTITIONS} slow the planning of every \
                 query that does not prune them: {fewer}",
                table.interval_location,
                table.qualified_name(),
                interval_text(table.spacing),
                table.premake
            ),
        )
    })
}

/// What a conversion left running means for the table, and how to end it.
fn converting(table: &TablePolicy, conversion: &crate::partition::catalog::Conversion) -> Problem {
    let name = table.qualified_name();
    let log = crate::units::human_bytes(conversion.log_bytes);
    let message = if conversion.swapped() {
        format!(
            "{name}: converted, but its conversion is not finished: the old table {} is kept and every write \
             is still logged (log: {log}); retention waits (`--unswap` would give back retired rows): run \
             `pgm partitions convert {name} --drop-old` when the new table has proved itself",
            QualifiedName::new(
                table.schema.clone(),
                conversion.kept_as.clone().unwrap_or_default()
            )
        )
    } else {
        format!(
            "{name}: being converted (journal: {}); every write is logged until it ends (log: {log}): run \
             `pgm partitions convert {name}` to finish it, or `--abort` to drop the partitioned copy",
            conversion.phase
        )
    };
    Problem::new(table, ProblemKind::Converting, message)
}

/// The interval as the policy writes it: a number for an ID step.
fn interval_text(spacing: Spacing) -> String {
    match spacing {
        Spacing::Ids(step) => step.to_string(),
        _ => format!("\"{spacing}\""),
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
    /// For each ID-ranged table, the key value its partitions are counted
    /// from and where that number came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub counted_from: Vec<CountedFrom>,
    /// The tables Citus distributes, with what that changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub distributed: Vec<DistributedTable>,
}

/// A table Citus distributes, as the plan tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistributedTable {
    pub table: QualifiedName,
    /// What pgm does differently for it, in words.
    pub note: String,
}

/// What changes for a table Citus distributes.
pub const DISTRIBUTED_NOTE: &str = "distributed by Citus: new partitions are created like the parent and \
distributed by Citus on ATTACH; retired with a plain DETACH (Citus refuses CONCURRENTLY) under lock_timeout, \
retried and left for the next run when it cannot get its lock; every transaction sets \
citus.propagate_set_commands = 'local' before lock_timeout so the workers' shards are locked under it too; \
sizes and rows are the shards'";

/// The largest key of an ID-ranged table as the plan used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountedFrom {
    pub table: QualifiedName,
    pub value: KeyValue,
    /// Where the value came from, in words.
    pub source: String,
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

    /// What the plan says of a table Citus distributes.
    pub fn distributed(&self, table: &QualifiedName) -> Option<&DistributedTable> {
        self.distributed.iter().find(|d| &d.table == table)
    }

    /// Where the partitions of an ID-ranged table are counted from.
    pub fn counted_from(&self, table: &QualifiedName) -> Option<&CountedFrom> {
        self.counted_from.iter().find(|c| &c.table == table)
    }
}

/// The plan for every table of the policy. `snapshot.parents` is in policy order.
pub fn plan(policy: &Policy, snapshot: &Snapshot, now: DateTime<Utc>) -> Plan {
    let parent_of = |position: usize| snapshot.parents.get(position).and_then(Option::as_ref);
    let entries = policy
        .tables
        .iter()
        .enumerate()
        .flat_map(|(position, table)| plan_table(table, parent_of(position), snapshot, now))
        .collect();
    let counted_from = policy
        .tables
        .iter()
        .enumerate()
        .filter_map(|(position, table)| counted_from(table, parent_of(position)?, now))
        .collect();
    let distributed = policy
        .tables
        .iter()
        .enumerate()
        .filter(|(position, _)| {
            parent_of(*position).is_some_and(|p| p.citus == Some(CitusTable::Distributed))
        })
        .map(|(_, table)| DistributedTable {
            table: table.parent(),
            note: DISTRIBUTED_NOTE.to_owned(),
        })
        .collect();
    Plan {
        now,
        entries,
        counted_from,
        distributed,
    }
}

/// For an ID-ranged table, the value its partitions are counted from.
fn counted_from(table: &TablePolicy, parent: &Parent, now: DateTime<Utc>) -> Option<CountedFrom> {
    let (_, _, key) = manageable(table, Some(parent)).ok()?;
    if !matches!(key, KeyType::Id(_)) {
        return None;
    }
    let (value, source) = reference_point(table, parent, key, now).ok()?;
    Some(CountedFrom {
        table: table.parent(),
        value,
        source,
    })
}

/// One existing partition as the planner classifies it.
struct Existing<'a> {
    partition: &'a Partition,
    /// The key range, when it parses.
    range: Option<(KeyValue, KeyValue)>,
    /// The start of its period, when it is exactly one period.
    period: Option<KeyValue>,
}

struct Context<'a> {
    table: &'a TablePolicy,
    parent: &'a Parent,
    key: KeyType,
    periods: Periods,
    column: String,
    /// The parent quoted, as statements and markers write it.
    qualified_parent: String,
    default_partition: Option<&'a Partition>,
}

impl Context<'_> {
    /// A table Citus distributes: its partitions' rows live in shards on
    /// the workers, and Citus refuses DETACH … CONCURRENTLY.
    fn distributed(&self) -> bool {
        self.parent.citus == Some(CitusTable::Distributed)
    }

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
    if let Some(problem) = parent.citus.and_then(|kind| citus_unsupported(&name, kind)) {
        return Err((ProblemKind::CitusUnsupported, problem));
    }
    if parent.relkind != 'p' {
        let convert = if table.key.is_some() {
            format!("; `pgm partitions convert {name}` makes it one online")
        } else {
            String::new()
        };
        return Err((
            ProblemKind::NotPartitioned,
            format!(
                "{name} is not a partitioned table: pgm manages tables declared PARTITION BY RANGE (column){convert}"
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
    if let Some((column, at)) = &table.key
        && column != &key.column
    {
        return Err((
            ProblemKind::KeyMismatch,
            format!(
                "{at}: key = \"{column}\", but {name} is partitioned on {}: write key = \"{}\" or remove it",
                key.column, key.column
            ),
        ));
    }
    match SqlKey::from_sql_type(&key.sql_type) {
        Some(sql_key) => Ok((parent, key, key_type(table, key, sql_key)?)),
        None => Err((
            ProblemKind::UnsupportedKeyType,
            format!(
                "{name} is partitioned on {} of type {}: pgm manages timestamptz, timestamp, date and integer \
                 (smallint, integer, bigint, numeric) keys",
                key.column, key.sql_type
            ),
        )),
    }
}

/// Why pgm does not manage a Citus table of this kind, and what to do;
/// `None` for a distributed table, which it manages.
fn citus_unsupported(name: &str, kind: CitusTable) -> Option<String> {
    let distribute = format!(
        "distribute it by a column instead (SELECT create_distributed_table('{name}', 'tenant_id')), \
         or remove its entry"
    );
    Some(match kind {
        CitusTable::Distributed => return None,
        CitusTable::Reference => format!(
            "{name} is a Citus reference table (a copy on every node): Citus cannot partition a reference \
             table, so pgm has nothing to manage; {distribute}"
        ),
        CitusTable::Local => format!(
            "{name} is a Citus local table (added with citus_add_local_table_to_metadata): pgm manages \
             partitioned tables distributed by a column, or not known to Citus at all; \
             SELECT undistribute_table('{name}') makes it a plain table again, or {distribute}"
        ),
        CitusTable::SingleShard {
            in_distributed_schema: true,
        } => format!(
            "{name} is in a distributed schema (Citus schema-based sharding), where every table is one \
             shard and a table created there is distributed as it is created: pgm does not manage \
             partitions there; keep the table in a regular schema and {distribute}"
        ),
        CitusTable::SingleShard {
            in_distributed_schema: false,
        } => format!(
            "{name} is a single-shard Citus table (distributed without a column): pgm manages partitioned \
             tables distributed by a column; {distribute}"
        ),
    })
}

/// The key as the policy reads it. An integer key is never taken for time
/// unless the policy says so with `epoch`: IDs read as seconds would give
/// partitions no row ever falls into.
pub fn key_type(
    table: &TablePolicy,
    key: &PartitionKey,
    sql_key: SqlKey,
) -> Result<KeyType, (ProblemKind, String)> {
    let (name, at) = (table.qualified_name(), &table.interval_location);
    let (column, sql_type) = (&key.column, &key.sql_type);
    let mismatch = |message: String| Err((ProblemKind::KeyMismatch, format!("{at}: {message}")));
    let interval = table.spacing;
    let time = match (sql_key, interval) {
        (SqlKey::Integer(integer), Spacing::Ids(_)) => return Ok(KeyType::Id(integer)),
        (SqlKey::Integer(integer), _) => {
            return match table.epoch {
                Some(unit) => Ok(KeyType::Epoch(unit, integer)),
                None => mismatch(format!(
                    "{name} is partitioned on {column} of type {sql_type}, and interval = \"{interval}\" \
                     does not say what it holds: for IDs write a step as a number, like interval = 1000000; \
                     if {column} holds time since the epoch, keep the interval and add epoch = \"seconds\" \
                     (or \"milliseconds\", \"microseconds\")"
                )),
            };
        }
        (_, Spacing::Ids(step)) => {
            return mismatch(format!(
                "interval = {step} is an ID step, but {name} is partitioned on {column} of type {sql_type}: \
                 write a time interval, like interval = \"monthly\""
            ));
        }
        (SqlKey::Date, Spacing::Fixed(fixed)) if fixed.is_sub_day() => {
            return mismatch(format!(
                "interval = \"{fixed}\" is shorter than a day, but {name} is partitioned on {column} of type \
                 date: use whole days, like interval = \"daily\""
            ));
        }
        (SqlKey::TimestampTz, _) => KeyType::TimestampTz,
        (SqlKey::Timestamp, _) => KeyType::Timestamp,
        (SqlKey::Date, _) => KeyType::Date,
    };
    match table.epoch {
        Some(unit) => mismatch(format!(
            "epoch = \"{unit}\" is for an integer key holding time, but {name} is partitioned on \
             {column} of type {sql_type}: remove epoch"
        )),
        None => Ok(time),
    }
}

/// How the table's key is cut, as the planner and status read it.
pub fn periods_of(table: &TablePolicy, key: KeyType) -> Periods {
    let zone = table.time_zone;
    match (table.spacing, key) {
        (Spacing::Ids(step), KeyType::Id(integer)) => Periods::Ids { step, integer },
        // `key_type` refuses an ID step on any other key: kept total.
        (Spacing::Ids(step), _) => Periods::Ids {
            step,
            integer: calendar::IntegerType::Bigint,
        },
        (Spacing::Calendar(interval), key) => Periods::Calendar {
            interval,
            key,
            zone,
        },
        (Spacing::Fixed(fixed), key) => Periods::Fixed { fixed, key, zone },
    }
}

/// The key value the partitions are counted from: now for time keys; for
/// ID ranges the largest key read from the catalog (0 for an empty table,
/// or the lowest existing range), with where it came from. An ID-ranged
/// table whose largest key is unknown is an error, never counted from a
/// guess: ranges placed from a wrong point would leave new rows without one.
pub fn reference_point(
    table: &TablePolicy,
    parent: &Parent,
    key: KeyType,
    now: DateTime<Utc>,
) -> Result<(KeyValue, String), String> {
    if let Some(now) = calendar::key_now(key, now, table.time_zone) {
        return Ok((now, "holds now".to_owned()));
    }
    let name = table.qualified_name();
    if let Some(failure) = &parent.max_key_failure {
        return Err(format!("{name}: the largest key is unknown: {failure}"));
    }
    let column = parent.key.as_ref().map_or("key", |k| k.column.as_str());
    if let Some(max) = &parent.max_key {
        let Some(value) = periods::parse_max_key(&max.value) else {
            return Err(format!(
                "{name}: the largest {column}, {}, is beyond bigint's range, which pgm plans ID ranges in; \
                 nothing is planned for this table",
                max.value
            ));
        };
        let how = if max.indexed {
            "an index read"
        } else {
            "a scan of it: no index on that partition leads with the key"
        };
        return Ok((
            value,
            format!(
                "holds the largest {column}, {}, read as max({column}) of {} ({how})",
                max.value, max.partition
            ),
        ));
    }
    let periods = periods_of(table, key);
    let lowest = parent
        .partitions
        .iter()
        .filter_map(|p| match &p.bound {
            Bound::Range { from, to } => periods.aligned(
                calendar::parse_bound(key, from)?,
                calendar::parse_bound(key, to)?,
            ),
            _ => None,
        })
        .min();
    Ok(match lowest {
        Some(start) => (start, "is the lowest: the table holds no row".to_owned()),
        None => (0, "holds 0: the table holds no row".to_owned()),
    })
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
    let conversion = snapshot
        .conversions
        .iter()
        .find(|c| c.table == table.parent().quoted());
    if let Some(before_swap) = conversion.filter(|c| !c.swapped()) {
        return vec![Entry::Problem(converting(table, before_swap))];
    }
    let (parent, key, key_type) = match manageable(table, parent) {
        Ok(manageable) => manageable,
        Err((kind, message)) => return vec![Entry::Problem(Problem::new(table, kind, message))],
    };
    let (point, why) = match reference_point(table, parent, key_type, now) {
        Ok(point) => point,
        Err(message) => {
            return vec![Entry::Problem(Problem::new(
                table,
                ProblemKind::UnknownMaxKey,
                message,
            ))];
        }
    };
    let context = Context {
        table,
        parent,
        key: key_type,
        periods: periods_of(table, key_type),
        column: key.column.clone(),
        qualified_parent: QualifiedName::new(parent.schema.clone(), parent.name.clone()).quoted(),
        default_partition: parent.partitions.iter().find(|p| p.bound == Bound::Default),
    };
    if let Some(problem) = subpartitioned(&context) {
        return vec![Entry::Problem(problem)];
    }
    let mut entries = Vec::new();
    let existing = classify(&context, &mut entries);

    let cutoff = retention::cutoff(&context, now);
    // 1. Retirements an interrupted run left half done.
    plan_interrupted_retirements(&context, &existing, snapshot, cutoff, &mut entries);

    // 2. Retention, unless a conversion keeps the old table: `--unswap`
    //    would give back rows retired from the new one.
    let retired_now = match conversion {
        Some(swapped) => {
            entries.push(Entry::Problem(converting(table, swapped)));
            Default::default()
        }
        None => retention::plan_retention(&context, &existing, cutoff, &mut entries),
    };

    // 3. Indexes on the parent, before new partitions, so that attaching an
    //    (empty) partition builds its indexes at once.
    indexes::plan_parent_indexes(&context, &mut entries);

    // 4. Partitions from the period holding now (or the largest ID)
    //    through premake more.
    default_partition::plan_default_partition(&context, &mut entries);
    creation::plan_creation(&context, &existing, snapshot, point, &why, &mut entries);
    if let Some(window) = creation_window(&context, point) {
        default_partition::plan_drain(&context, &existing, snapshot, window, cutoff, &mut entries);
    }

    // 5. Indexes of the partitions that stay.
    indexes::plan_partition_indexes(&context, &existing, &retired_now, &mut entries);

    // 6. On Citus, partitions past columnar_after become columnar, with
    //    the indexes just built.
    columnar::plan_columnar(&context, &existing, snapshot, cutoff, now, &mut entries);
    entries.extend(many_partitions(table).map(Entry::Problem));
    if context.distributed() {
        for step in entries.iter_mut().filter_map(|entry| match entry {
            Entry::Step(step) if step.transactional => Some(step),
            _ => None,
        }) {
            step.lock_timeout_on_workers = true;
        }
    }
    entries
}

/// The key range creation covers: the period holding `point` and premake more.
fn creation_window(context: &Context<'_>, point: KeyValue) -> Option<(KeyValue, KeyValue)> {
    let first = context.periods.holding(point)?;
    let mut end = first;
    for _ in 0..=context.table.premake {
        end = context.periods.next(end).unwrap_or(KeyValue::MAX);
    }
    Some((first, end))
}

/// pg_partman's sub-partitioned sets: a partition that is itself
/// partitioned. A new partition made like the parent would be a plain
/// table, so the table is refused until pgm supports them.
fn subpartitioned(context: &Context<'_>) -> Option<Problem> {
    let sub = context
        .parent
        .partitions
        .iter()
        .find(|p| p.subpartitioned)?;
    let mut problem = Problem::new(
        context.table,
        ProblemKind::Subpartitioned,
        format!(
            "{}: its partition {}.{} is itself partitioned (sub-partitioning): pgm does not manage \
             sub-partitioned tables yet and would create new partitions as plain tables; nothing is planned \
             for it: remove its entry and keep it under pg_partman",
            context.table.qualified_name(),
            sub.schema,
            sub.name
        ),
    );
    problem.partition = Some(Context::name_of(sub));
    Some(problem)
}

/// A detach left pending, or a detached partition not yet dropped or archived.
fn plan_interrupted_retirements(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    snapshot: &Snapshot,
    cutoff: Option<KeyValue>,
    entries: &mut Vec<Entry>,
) {
    let table = context.table;
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
        let expired = matches!((entry.period, cutoff), (Some(start), Some(cutoff)) if context.periods.next(start).is_some_and(|end| end <= cutoff));
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
        let period = range.and_then(|(lo, hi)| context.periods.aligned(lo, hi));
        if period.is_none() && !partition.detach_pending {
            let mut problem = Problem::new(
                context.table,
                ProblemKind::Drift,
                format!(
                    "partition {}.{} covers [{from}, {to}), which is not one {}: pgm leaves it as it is",
                    partition.schema,
                    partition.name,
                    context.periods.describe()
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

/// One period of a table's key space, as a partition covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodPartition {
    pub start: KeyValue,
    /// The start of the next period: the partition holds [start, end).
    pub end: KeyValue,
    /// The partition's name, as the policy names it.
    pub name: String,
    /// The bounds as SQL writes them in `FOR VALUES FROM (…) TO (…)`.
    pub from_literal: String,
    pub to_literal: String,
}

/// More partitions than this are not made in one go by a conversion.
pub const MAX_COVERING: usize = 10_000;

/// The partitions of the periods holding `first` through `last`, and
/// premake more: the partitions a conversion makes for a table whose keys
/// run from `first` to `last` (now, for a time key, when later).
pub fn covering(
    table: &TablePolicy,
    key: KeyType,
    first: KeyValue,
    last: KeyValue,
) -> Result<Vec<PeriodPartition>, String> {
    let periods = periods_of(table, key);
    let out_of_range = || {
        format!(
            "{}: the {} from the key value {first} through {last} and premake = {} more reach past the \
             values its key can hold",
            table.qualified_name(),
            periods.describe(),
            table.premake
        )
    };
    let mut start = periods.holding(first).ok_or_else(out_of_range)?;
    let last = periods.holding(last).ok_or_else(out_of_range)?;
    let mut found = Vec::new();
    let mut after_last = 0;
    while after_last <= table.premake {
        let end = periods.next(start).ok_or_else(out_of_range)?;
        found.push(PeriodPartition {
            start,
            end,
            name: periods.name(table, start).ok_or_else(out_of_range)?,
            from_literal: periods.literal(start),
            to_literal: periods.literal(end),
        });
        if found.len() > MAX_COVERING {
            return Err(format!(
                "{}: its keys span more than {MAX_COVERING} partitions of one {}: choose a longer interval",
                table.qualified_name(),
                periods.kind()
            ));
        }
        if start >= last {
            after_last += 1;
        }
        start = end;
    }
    Ok(found)
}

/// The bounds of the period starting at `start`, as plans show them.
fn bounds_text(context: &Context<'_>, start: KeyValue) -> (String, String) {
    let strip = |literal: String| literal.trim_matches('\'').to_owned();
    let end = context.periods.next(start).unwrap_or(KeyValue::MAX);
    (
        strip(context.periods.literal(start)),
        strip(context.periods.literal(end)),
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
    match table.spacing {
        Spacing::Ids(_) => format!("{}, premake {}{retention}", table.spacing, table.premake),
        Spacing::Calendar(_) | Spacing::Fixed(_) => format!(
            "{}, premake {}{retention}, {}",
            table.spacing, table.premake, table.time_zone
        ),
    }
}
