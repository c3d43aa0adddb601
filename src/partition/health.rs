//! What `pgm partitions status` shows and `pgm partitions check` judges:
//! per managed table, its partitions, how far ahead it is covered, and its
//! problems. Pure, like the planner: built from the policy, the snapshot,
//! the clock, and whether each default partition holds rows.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::calendar::{self, KeyType, KeyValue, SqlKey};
use super::catalog::{Bound, Index, Parent, Partition, Snapshot};
use super::planner;
use super::policy::{Policy, TablePolicy};

#[derive(Debug, Clone, Serialize)]
pub struct PartitionRow {
    pub name: String,
    /// Bounds as PostgreSQL prints them; "DEFAULT" for the default partition.
    pub from: String,
    pub to: String,
    /// -1 when never analyzed.
    pub estimated_rows: i64,
    pub estimated_bytes: i64,
    pub invalid_indexes: Vec<String>,
    pub detach_pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The table cannot be managed (missing, not range-partitioned…).
    Table,
    /// Fewer partitions ready than premake, or none holding now.
    Coverage,
    DefaultRows,
    InvalidIndex,
    DetachPending,
    Drift,
    /// A conversion not finished: its log grows with every write.
    Conversion,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableHealth {
    pub table: String,
    pub premake: u32,
    /// Periods ready after the one holding now (None: no partition holds now).
    pub periods_ahead: Option<u32>,
    /// The upper bound of the last partition in the unbroken run from now.
    pub covered_until: Option<String>,
    pub partitions: Vec<PartitionRow>,
    pub default_partition_has_rows: Option<bool>,
    pub problems: Vec<Problem>,
}

/// `default_has_rows` gives, per parent oid, whether its default partition
/// holds any row (measured exactly by the caller).
pub fn assess(
    policy: &Policy,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    default_has_rows: &[(u32, bool)],
) -> Vec<TableHealth> {
    policy
        .tables
        .iter()
        .enumerate()
        .map(|(position, table)| {
            let parent = snapshot.parents.get(position).and_then(Option::as_ref);
            assess_table(table, parent, snapshot, now, default_has_rows)
        })
        .collect()
}

fn assess_table(
    table: &TablePolicy,
    parent: Option<&Parent>,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    default_has_rows: &[(u32, bool)],
) -> TableHealth {
    let name = table.qualified_name();
    let mut health = TableHealth {
        table: name.clone(),
        premake: table.premake,
        periods_ahead: None,
        covered_until: None,
        partitions: Vec::new(),
        default_partition_has_rows: None,
        problems: planner_problems(table, parent, snapshot, now),
    };
    let Some(parent) = parent else {
        return health;
    };
    let Some(key) = parent.key.as_ref().and_then(|k| {
        let sql_key = SqlKey::from_sql_type(&k.sql_type)?;
        planner::key_type(table, k, sql_key).ok()
    }) else {
        return health;
    };
    let mut ranges = Vec::new();
    for partition in &parent.partitions {
        if let Bound::Range { from, to } = &partition.bound
            && let (Some(lo), Some(hi)) = (
                calendar::parse_bound(key, from),
                calendar::parse_bound(key, to),
            )
            && !partition.detach_pending
        {
            ranges.push((lo, hi, to.trim_matches('\'').to_owned()));
        }
        health.problems.extend(partition_problems(partition));
        health.partitions.push(partition_row(partition));
    }
    for index in parent.indexes.iter().filter(|i| !i.valid) {
        health.problems.push(Problem {
            kind: ProblemKind::InvalidIndex,
            message: format!("index {}.{} on {name} is INVALID: some partitions lack it; maintain builds and attaches them", index.schema, index.name),
        });
    }
    if let Some(default) = parent.partitions.iter().find(|p| p.bound == Bound::Default) {
        let has_rows = default_has_rows
            .iter()
            .find(|(oid, _)| *oid == parent.oid)
            .map(|(_, rows)| *rows);
        health.default_partition_has_rows = has_rows;
        if has_rows == Some(true) {
            health.problems.push(Problem {
                kind: ProblemKind::DefaultRows,
                message: format!(
                    "the default partition {}.{} holds {} row(s): they belong to periods with no partition; \
                     with drain_default = true maintain gives each period its partition and moves them there \
                     (rows older than the retention are only reported)",
                    default.schema, default.name, default.estimated_rows
                ),
            });
        }
    }
    // Listed in time order, the default partition last.
    health.partitions.sort_by_key(|row| {
        let start = calendar::parse_bound(key, &format!("'{}'", row.from))
            .or_else(|| calendar::parse_bound(key, &row.from));
        (start.is_none(), start)
    });
    ranges.sort();
    assess_coverage(&mut health, table, parent, key, now, &ranges);
    health
}

/// What the planner refuses or reports as drift.
fn planner_problems(
    table: &TablePolicy,
    parent: Option<&Parent>,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Vec<Problem> {
    planner::plan_table(table, parent, snapshot, now)
        .iter()
        .filter_map(planner::Entry::problem)
        // A warning about the policy itself, shown by plan: not the table's health.
        .filter(|problem| problem.kind != planner::ProblemKind::ManyPartitions)
        .map(|problem| Problem {
            kind: match problem.kind {
                planner::ProblemKind::Converting => ProblemKind::Conversion,
                planner::ProblemKind::DefaultRowsPastRetention
                | planner::ProblemKind::DefaultRowsUnread => ProblemKind::DefaultRows,
                kind if kind.is_warning() => ProblemKind::Drift,
                _ => ProblemKind::Table,
            },
            message: problem.message.clone(),
        })
        .collect()
}

fn partition_row(partition: &Partition) -> PartitionRow {
    let (from, to) = match &partition.bound {
        Bound::Default => ("DEFAULT".to_owned(), String::new()),
        Bound::Range { from, to } => (
            from.trim_matches('\'').to_owned(),
            to.trim_matches('\'').to_owned(),
        ),
        Bound::Other(text) => (text.clone(), String::new()),
    };
    PartitionRow {
        name: partition.name.clone(),
        from,
        to,
        estimated_rows: partition.estimated_rows,
        estimated_bytes: partition.estimated_bytes,
        invalid_indexes: invalid_indexes(partition).map(|i| i.name.clone()).collect(),
        detach_pending: partition.detach_pending,
    }
}

fn invalid_indexes(partition: &Partition) -> impl Iterator<Item = &Index> {
    partition.indexes.iter().filter(|i| !i.valid)
}

fn partition_problems(partition: &Partition) -> Vec<Problem> {
    let mut problems: Vec<Problem> = invalid_indexes(partition)
        .map(|index| Problem {
            kind: ProblemKind::InvalidIndex,
            message: format!("index {}.{} on {} is INVALID (an interrupted build): maintain drops and rebuilds it", partition.schema, index.name, partition.name),
        })
        .collect();
    if partition.detach_pending {
        problems.push(Problem {
            kind: ProblemKind::DetachPending,
            message: format!("the detach of {}.{} is pending (interrupted, or waiting for old transactions): maintain finishes it", partition.schema, partition.name),
        });
    }
    problems
}

/// The unbroken run of partitions from the one holding now, against premake.
fn assess_coverage(
    health: &mut TableHealth,
    table: &TablePolicy,
    parent: &Parent,
    key: KeyType,
    now: DateTime<Utc>,
    ranges: &[(KeyValue, KeyValue, String)],
) {
    let name = &health.table;
    // Without a reference point the planner's problem says why.
    let Ok((mut at, _)) = planner::reference_point(table, parent, key, now) else {
        return;
    };
    // ID ranges are counted from the largest key, time from the clock.
    let point = match (key, &parent.key) {
        (KeyType::Id(_), Some(k)) => format!("the largest {}", k.column),
        _ => "now".to_owned(),
    };
    let mut covered = 0u32;
    let mut until = None;
    // A range to MAXVALUE holds the type's largest value too, and nothing follows it.
    let holds =
        |lo: KeyValue, hi: KeyValue, at: KeyValue| lo <= at && (at < hi || hi == KeyValue::MAX);
    while let Some((_, hi, text)) = ranges.iter().find(|(lo, hi, _)| holds(*lo, *hi, at)) {
        covered += 1;
        until = Some(text.clone());
        if *hi == KeyValue::MAX {
            // Nothing can follow it: as covered as premake asks.
            covered = covered.max(table.premake + 1);
            break;
        }
        at = *hi;
    }
    let problem = match covered.checked_sub(1) {
        None => Some(format!(
            "no partition of {name} holds {point}: inserts fail{}",
            if parent.partitions.iter().any(|p| p.bound == Bound::Default) {
                " over to the default partition"
            } else {
                ""
            }
        )),
        Some(ahead) if ahead < table.premake => Some(format!(
            "{name} is covered until {} ({ahead} partition(s) after {point}, premake wants {}): run pgm partitions maintain",
            until.as_deref().unwrap_or("?"),
            table.premake
        )),
        Some(_) => None,
    };
    health.problems.extend(problem.map(|message| Problem {
        kind: ProblemKind::Coverage,
        message,
    }));
    health.covered_until = until;
    health.periods_ahead = covered.checked_sub(1);
}
