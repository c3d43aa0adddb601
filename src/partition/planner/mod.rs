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
mod retention;

pub use indexes::child_index_name;

use super::calendar::{self, KeyType, KeyValue};
use super::catalog::{Bound, Parent, Partition, Snapshot};
use super::policy::{MAX_IDENTIFIER_BYTES, Policy, RetentionAction, TablePolicy};
use crate::db::quote_ident;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    FinalizeDetach,
    DetachPartition,
    DropPartition,
    ArchivePartition,
    CreateIndex,
    CreatePartition,
    AttachPartition,
    MoveDefaultRows,
    DropInvalidIndex,
    AttachIndex,
    Error,
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
    /// The managed parent, "schema.table".
    pub table: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
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
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Step {
    fn new(table: &TablePolicy, action: Action, reason: impl Into<String>) -> Step {
        Step {
            table: table.qualified_name(),
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
            reason: reason.into(),
            message: None,
        }
    }

    fn error(table: &TablePolicy, kind: &str, message: impl Into<String>) -> Step {
        Step {
            message: Some(message.into()),
            ..Step::new(table, Action::Error, kind)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub now: DateTime<Utc>,
    pub steps: Vec<Step>,
}

impl Plan {
    /// Error entries that stop a table (drift is only reported).
    pub fn failures(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| s.action == Action::Error && !s.is_warning())
    }

    pub fn has_work(&self) -> bool {
        self.steps.iter().any(|s| s.action != Action::Error)
    }
}

impl Step {
    /// What the step acts on: the index, else the partition, else the table.
    pub fn target(&self) -> &str {
        self.index
            .as_deref()
            .or(self.partition.as_deref())
            .unwrap_or(&self.table)
    }

    /// Drift is reported and left alone; it stops nothing.
    pub fn is_warning(&self) -> bool {
        self.action == Action::Error && self.reason == "drift"
    }
}

/// The plan for every table of the policy. `snapshot.parents` is in policy order.
pub fn plan(policy: &Policy, snapshot: &Snapshot, now: DateTime<Utc>) -> Plan {
    let steps = policy
        .tables
        .iter()
        .enumerate()
        .flat_map(|(position, table)| {
            let parent = snapshot.parents.get(position).and_then(Option::as_ref);
            plan_table(table, parent, snapshot, now)
        })
        .collect();
    Plan { now, steps }
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
    qualified_parent: String,
    default_partition: Option<&'a Partition>,
}

impl Context<'_> {
    fn qualified(&self, schema: &str, name: &str) -> String {
        format!("{}.{}", quote_ident(schema), quote_ident(name))
    }

    fn partition_ref(&self, partition: &Partition) -> String {
        self.qualified(&partition.schema, &partition.name)
    }

    fn display_name(&self, schema: &str, name: &str) -> String {
        format!("{schema}.{name}")
    }
}

pub fn plan_table(
    table: &TablePolicy,
    parent: Option<&Parent>,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Vec<Step> {
    let name = table.qualified_name();
    if let Err(message) = table.check_plannable(now) {
        return vec![Step::error(table, "out_of_range", message)];
    }
    let Some(parent) = parent else {
        return vec![Step::error(
            table,
            "missing_table",
            format!(
                "{name} does not exist: create it (PARTITION BY RANGE on its time column) in a migration, or remove its entry"
            ),
        )];
    };
    if parent.relkind != 'p' {
        return vec![Step::error(
            table,
            "not_partitioned",
            format!(
                "{name} is not a partitioned table: pgm manages tables declared PARTITION BY RANGE (column)"
            ),
        )];
    }
    if parent.strategy != Some('r') {
        let kind = if parent.strategy == Some('l') {
            "LIST"
        } else {
            "HASH"
        };
        return vec![Step::error(
            table,
            "not_range",
            format!("{name} is partitioned by {kind}: pgm manages RANGE partitioning"),
        )];
    }
    let Some(key) = &parent.key else {
        return vec![Step::error(
            table,
            "unsupported_key",
            format!(
                "{name} is partitioned on {}: pgm manages a range key of one plain column",
                if parent.key_columns > 1 {
                    "several columns"
                } else {
                    "an expression"
                }
            ),
        )];
    };
    let Some(key_type) = KeyType::from_sql_type(&key.sql_type) else {
        return vec![Step::error(
            table,
            "unsupported_key_type",
            format!(
                "{name} is partitioned on {} of type {}: pgm manages timestamptz, timestamp, date and integer (epoch seconds) keys",
                key.column, key.sql_type
            ),
        )];
    };
    let context = Context {
        table,
        parent,
        key: key_type,
        column: key.column.clone(),
        zone: table.time_zone,
        qualified_parent: format!(
            "{}.{}",
            quote_ident(&parent.schema),
            quote_ident(&parent.name)
        ),
        default_partition: parent.partitions.iter().find(|p| p.bound == Bound::Default),
    };
    let mut steps = Vec::new();
    let existing = classify(&context, &mut steps);

    // 1. Retirements an interrupted run left half done: a detach left
    //    pending, or a detached partition not yet dropped or archived.
    let cutoff = table
        .retention
        .as_ref()
        .map(|r| r.cutoff(calendar::local_date(now, context.zone)));
    for entry in existing.iter().filter(|e| e.partition.detach_pending) {
        let partition = entry.partition;
        let display = context.display_name(&partition.schema, &partition.name);
        let mut step = Step::new(
            table,
            Action::FinalizeDetach,
            "an earlier DETACH … CONCURRENTLY was interrupted: finish it",
        );
        step.partition = Some(display.clone());
        step.sql = vec![format!(
            "ALTER TABLE {} DETACH PARTITION {} FINALIZE",
            context.qualified_parent,
            context.partition_ref(partition)
        )];
        step.lock = Lock::ShareUpdateExclusive;
        steps.push(step);
        let marked = snapshot
            .retiring
            .iter()
            .any(|r| r.schema == partition.schema && r.name == partition.name);
        let expired = matches!((entry.period, cutoff), (Some(start), Some(cutoff)) if table.interval.next(start) <= cutoff);
        if marked || expired {
            steps.extend(retention::after_detach(
                &context,
                &partition.schema,
                &partition.name,
                "finishes the retirement of the interrupted run",
            ));
        }
    }
    for retiring in snapshot
        .retiring
        .iter()
        .filter(|r| !r.still_attached && r.parent == context.qualified_parent)
    {
        steps.extend(retention::after_detach(
            &context,
            &retiring.schema,
            &retiring.name,
            "detached by an interrupted run",
        ));
    }

    // 2. Retention.
    let (retiring, retired_now) = retention::plan_retention(&context, &existing, now, &mut steps);

    // 3. Indexes on the parent, before new partitions, so that attaching an
    //    (empty) partition builds its indexes at once.
    indexes::plan_parent_indexes(&context, &mut steps);

    // 4. Partitions from the period holding now through premake more.
    let today = calendar::local_date(now, context.zone);
    creation::plan_creation(&context, &existing, snapshot, today, &mut steps);

    // 5. Indexes of the partitions that stay.
    indexes::plan_partition_indexes(&context, &existing, &retiring, &retired_now, &mut steps);
    steps
}

fn classify<'a>(context: &Context<'a>, steps: &mut Vec<Step>) -> Vec<Existing<'a>> {
    let mut existing = Vec::new();
    for partition in &context.parent.partitions {
        let Bound::Range { from, to } = &partition.bound else {
            continue;
        };
        let range =
            calendar::parse_bound(context.key, from).zip(calendar::parse_bound(context.key, to));
        let period = range.and_then(|(lo, hi)| aligned_period(context, lo, hi));
        if period.is_none() && !partition.detach_pending {
            let mut step = Step::error(
                context.table,
                "drift",
                format!(
                    "partition {}.{} covers [{from}, {to}), which is not one {} period in {}: pgm leaves it as it is",
                    partition.schema, partition.name, context.table.interval, context.zone
                ),
            );
            step.partition = Some(context.display_name(&partition.schema, &partition.name));
            steps.push(step);
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

fn shorten(name: &str) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name.to_owned();
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut cut = MAX_IDENTIFIER_BYTES - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &name[..cut], hash as u32)
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

fn human_bytes(bytes: i64) -> String {
    let bytes = bytes.max(0) as f64;
    match bytes {
        b if b >= 1024.0 * 1024.0 * 1024.0 => format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0)),
        b if b >= 1024.0 * 1024.0 => format!("{:.1} MiB", b / (1024.0 * 1024.0)),
        b if b >= 1024.0 => format!("{:.0} kB", b / 1024.0),
        b => format!("{b:.0} B"),
    }
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
