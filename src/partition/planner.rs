//! The planner: a pure function of (policy, catalog snapshot, now) that
//! returns the exact steps maintenance runs, in order, each with its SQL,
//! the lock it takes on the parent and whether it must run outside a
//! transaction. Problems of one table become error entries; the other
//! tables plan normally.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::calendar::{self, KeyType, KeyValue};
use super::catalog::{self, Bound, Parent, Partition, Snapshot};
use super::policy::{IndexPolicy, MAX_IDENTIFIER_BYTES, Policy, RetentionAction, TablePolicy};
use crate::db::{quote_ident, quote_literal};

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
            steps.extend(after_detach(
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
        steps.extend(after_detach(
            &context,
            &retiring.schema,
            &retiring.name,
            "detached by an interrupted run",
        ));
    }

    // 2. Retention.
    let (retiring, retired_now) = plan_retention(&context, &existing, now, &mut steps);

    // 3. Indexes on the parent, before new partitions, so that attaching an
    //    (empty) partition builds its indexes at once.
    let today = calendar::local_date(now, context.zone);
    let mut parent_index_planned = Vec::new();
    for index in &table.indexes {
        if let Some(problem) = unique_key_problem(&context, index) {
            steps.push(Step::error(table, "invalid_index", problem));
            continue;
        }
        if !parent.indexes.iter().any(|i| i.name == index.name) {
            let mut step = Step::new(
                table,
                Action::CreateIndex,
                "declared in the policy; built per partition below, then valid",
            );
            step.index = Some(index.name.clone());
            step.sql = vec![format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON ONLY {} {}",
                if index.unique { "UNIQUE " } else { "" },
                quote_ident(&index.name),
                context.qualified_parent,
                index_body(index)
            )];
            step.lock = Lock::Share;
            steps.push(step);
            parent_index_planned.push(index.name.clone());
        }
    }

    // 4. Partitions from the period holding now through premake more.
    plan_creation(&context, &existing, snapshot, today, &mut steps);

    // 5. Indexes of the partitions that stay.
    for index in table
        .indexes
        .iter()
        .filter(|i| unique_key_problem(&context, i).is_none())
    {
        let parent_index = parent.indexes.iter().find(|i| i.name == index.name);
        let first_step_of_index = steps.len();
        for entry in existing
            .iter()
            .filter(|e| !e.partition.detach_pending && !retiring.contains(&e.partition.oid))
        {
            plan_partition_index(
                &context,
                index,
                parent_index.map(|i| i.oid),
                entry.partition,
                &mut steps,
            );
        }
        if let Some(parent_index) = parent_index.filter(|i| !i.valid) {
            let planned_here = steps[first_step_of_index..]
                .iter()
                .any(|s| s.action == Action::AttachIndex);
            let staying = existing
                .iter()
                .filter(|e| !e.partition.detach_pending && !retired_now.contains(&e.partition.oid));
            let attached: Vec<&catalog::Index> = staying
                .clone()
                .filter_map(|e| {
                    e.partition
                        .indexes
                        .iter()
                        .find(|i| i.attached_to == Some(parent_index.oid))
                })
                .collect();
            if !planned_here && attached.len() == staying.count() && !attached.is_empty() {
                // Every partition has the index now (the last ones lacking it
                // were dropped): attaching one again makes PostgreSQL check
                // and mark the parent index valid.
                let child = attached[0];
                let mut step = Step::new(
                    table,
                    Action::AttachIndex,
                    format!("every partition has {} now: marks it valid", index.name),
                );
                step.index = Some(format!("{}.{}", child.schema, child.name));
                step.sql = vec![format!(
                    "ALTER INDEX {}.{} ATTACH PARTITION {}",
                    quote_ident(&parent.schema),
                    quote_ident(&index.name),
                    context.qualified(&child.schema, &child.name)
                )];
                step.lock = Lock::AccessShare;
                step.other_locks = Some(format!("SHARE UPDATE EXCLUSIVE on index {}", index.name));
                steps.push(step);
            }
        }
    }
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
    let start = context.table.interval.floor(date);
    let matches = calendar::key_value(context.key, start, context.zone) == lo
        && calendar::key_value(
            context.key,
            context.table.interval.next(start),
            context.zone,
        ) == hi;
    matches.then_some(start)
}

fn key_to_date(key: KeyType, value: KeyValue, zone: Tz) -> Option<NaiveDate> {
    Some(match key {
        KeyType::TimestampTz => DateTime::from_timestamp_micros(value)?
            .with_timezone(&zone)
            .date_naive(),
        KeyType::Timestamp => DateTime::from_timestamp_micros(value)?.naive_utc().date(),
        KeyType::Date => NaiveDate::from_num_days_from_ce_opt(i32::try_from(value).ok()?)?,
        KeyType::EpochSeconds => DateTime::from_timestamp(value, 0)?
            .with_timezone(&zone)
            .date_naive(),
    })
}

/// Plans detaching (and dropping or archiving) expired partitions; returns
/// the oids of every expired partition, retired now or in a later run.
fn plan_retention(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    now: DateTime<Utc>,
    steps: &mut Vec<Step>,
) -> (Vec<u32>, Vec<u32>) {
    let table = context.table;
    let Some(retention) = &table.retention else {
        return (Vec::new(), Vec::new());
    };
    let cutoff = retention.cutoff(calendar::local_date(now, context.zone));
    let mut expired: Vec<(&Existing<'_>, NaiveDate)> = existing
        .iter()
        .filter(|e| !e.partition.detach_pending)
        .filter_map(|e| e.period.map(|start| (e, start)))
        .filter(|(_, start)| table.interval.next(*start) <= cutoff)
        .collect();
    expired.sort_by_key(|(_, start)| *start);
    let waiting = expired
        .len()
        .saturating_sub(table.max_drops_per_run as usize);
    // Every expired partition is spared index work, also those the cap
    // leaves for later runs.
    let retired = expired
        .iter()
        .map(|(entry, _)| entry.partition.oid)
        .collect();
    expired.truncate(table.max_drops_per_run as usize);
    let retired_now = expired
        .iter()
        .map(|(entry, _)| entry.partition.oid)
        .collect();
    let concurrent = context.default_partition.is_none();
    for (position, (entry, start)) in expired.iter().enumerate() {
        let partition = entry.partition;
        let display = context.display_name(&partition.schema, &partition.name);
        let (from, to) = bounds_text(context, *start);
        let rows = match partition.estimated_rows {
            ..0 => "row count unknown (never analyzed)".to_owned(),
            n => format!("about {n} rows"),
        };
        let mut reason = format!(
            "whole range ends on or before the cutoff {cutoff} (retention {}); {rows}, {}",
            retention.text,
            human_bytes(partition.estimated_bytes)
        );
        if waiting > 0 && position + 1 == expired.len() {
            reason.push_str(&format!(
                "; max_drops_per_run = {} reached: {waiting} more expired partition(s) wait for later runs",
                table.max_drops_per_run
            ));
        }
        let mut detach = Step::new(table, Action::DetachPartition, reason);
        detach.partition = Some(display.clone());
        detach.from = Some(from.clone());
        detach.to = Some(to.clone());
        // Marked first, so that a run killed after the detach still drops
        // (or archives) it next time instead of forgetting it.
        let marker = match retention.action {
            RetentionAction::Detach => None,
            _ => Some(format!(
                "COMMENT ON TABLE {} IS {}",
                context.partition_ref(partition),
                quote_literal(&catalog::retiring_comment(&context.qualified_parent))
            )),
        };
        detach.sql = marker.into_iter().collect();
        if concurrent {
            detach.sql.push(format!(
                "ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY",
                context.qualified_parent,
                context.partition_ref(partition)
            ));
            detach.transactional = false;
            detach.lock = Lock::ShareUpdateExclusive;
        } else {
            detach.sql.push(format!(
                "ALTER TABLE {} DETACH PARTITION {}",
                context.qualified_parent,
                context.partition_ref(partition)
            ));
            detach.lock = Lock::AccessExclusive;
            detach.reason.push_str("; plain DETACH under lock_timeout: CONCURRENTLY is refused while a default partition exists");
        }
        steps.push(detach);
        if let Some(mut step) = after_detach(context, &partition.schema, &partition.name, "") {
            step.from = Some(from.clone());
            step.to = Some(to.clone());
            step.reason.push_str(&format!(
                "; {rows}, {}",
                human_bytes(partition.estimated_bytes)
            ));
            steps.push(step);
        }
    }
    (retired, retired_now)
}

/// What follows the detach of a retired partition, as the policy says.
fn after_detach(context: &Context<'_>, schema: &str, name: &str, why: &str) -> Option<Step> {
    let table = context.table;
    let qualified = context.qualified(schema, name);
    let suffix = if why.is_empty() {
        String::new()
    } else {
        format!("; {why}")
    };
    let mut step = match table.retention.as_ref().map(|r| &r.action) {
        Some(RetentionAction::Drop) => {
            let mut step = Step::new(
                table,
                Action::DropPartition,
                format!("retention_action = drop{suffix}"),
            );
            step.sql = vec![format!("DROP TABLE {qualified}")];
            step
        }
        Some(RetentionAction::Archive { schema: archive }) => {
            let mut step = Step::new(
                table,
                Action::ArchivePartition,
                format!("retention_action = archive: moved to schema {archive}{suffix}"),
            );
            step.sql = vec![
                format!(
                    "ALTER TABLE {qualified} SET SCHEMA {}",
                    quote_ident(archive)
                ),
                format!(
                    "COMMENT ON TABLE {} IS NULL",
                    context.qualified(archive, name)
                ),
            ];
            step
        }
        // The policy no longer retires: the detached table stays, unmarked.
        Some(RetentionAction::Detach) | None if !why.is_empty() => {
            let mut step = Step::new(
                table,
                Action::ArchivePartition,
                format!("kept as a plain table{suffix}"),
            );
            step.sql = vec![format!("COMMENT ON TABLE {qualified} IS NULL")];
            step
        }
        Some(RetentionAction::Detach) | None => return None,
    };
    step.partition = Some(context.display_name(schema, name));
    Some(step)
}

fn plan_creation(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    snapshot: &Snapshot,
    today: NaiveDate,
    steps: &mut Vec<Step>,
) {
    let table = context.table;
    let interval = table.interval;
    let mut start = interval.floor(today);
    for position in 0..=table.premake {
        let lo = calendar::key_value(context.key, start, context.zone);
        let hi = calendar::key_value(context.key, interval.next(start), context.zone);
        let overlapping: Vec<&Existing<'_>> = existing
            .iter()
            .filter(|e| e.range.is_some_and(|(a, b)| a < hi && lo < b))
            .collect();
        let covered_exactly = overlapping.iter().any(|e| e.period == Some(start));
        if overlapping.is_empty() {
            plan_new_partition(context, snapshot, start, position, steps);
        } else if !covered_exactly {
            let names: Vec<String> = overlapping
                .iter()
                .map(|e| format!("{}.{}", e.partition.schema, e.partition.name))
                .collect();
            steps.push(Step::error(
                table,
                "drift",
                format!(
                    "the {interval} period starting {start} overlaps {}: its partition cannot be created until that is resolved",
                    names.join(", ")
                ),
            ));
        }
        start = interval.next(start);
    }
}

fn plan_new_partition(
    context: &Context<'_>,
    snapshot: &Snapshot,
    start: NaiveDate,
    position: u32,
    steps: &mut Vec<Step>,
) {
    let table = context.table;
    let name = table.partition_name(start);
    let schema = &context.parent.schema;
    let qualified = context.qualified(schema, &name);
    let display = context.display_name(schema, &name);
    let (from, to) = bounds_text(context, start);
    let from_literal = calendar::literal(context.key, start, context.zone);
    let to_literal = calendar::literal(context.key, table.interval.next(start), context.zone);
    let period_start = start.format("%Y-%m-%d").to_string();
    let why = if position == 0 {
        "holds now".to_owned()
    } else {
        format!("premake: {position} ahead of now")
    };
    let constraint = bounds_constraint_name(&name);
    let column = quote_ident(&context.column);

    let pending = snapshot.pending.iter().any(|p| {
        p.schema == *schema
            && p.name == name
            && p.parent == context.qualified_parent
            && p.period_start == period_start
    });
    if !pending {
        let mut create = Step::new(
            table,
            Action::CreatePartition,
            format!("period {period_start} ({why}); created unattached, like the parent"),
        );
        create.partition = Some(display.clone());
        create.from = Some(from.clone());
        create.to = Some(to.clone());
        let tablespace = context
            .parent
            .tablespace
            .as_ref()
            .map(|t| format!(" TABLESPACE {}", quote_ident(t)))
            .unwrap_or_default();
        create.sql = vec![
            format!(
                "CREATE {}TABLE {qualified} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE \
                 INCLUDING COMMENTS INCLUDING GENERATED INCLUDING STATISTICS INCLUDING COMPRESSION){tablespace}",
                if context.parent.unlogged {
                    "UNLOGGED "
                } else {
                    ""
                },
                context.qualified_parent
            ),
            format!(
                "ALTER TABLE {qualified} OWNER TO {}",
                quote_ident(&context.parent.owner)
            ),
            format!(
                "ALTER TABLE {qualified} ADD CONSTRAINT {} CHECK ({column} IS NOT NULL AND {column} >= {from_literal} AND {column} < {to_literal})",
                quote_ident(&constraint)
            ),
            format!(
                "COMMENT ON TABLE {qualified} IS {}",
                quote_literal(&catalog::pending_comment(
                    &context.qualified_parent,
                    &period_start
                ))
            ),
        ];
        create.lock = Lock::AccessShare;
        steps.push(create);
    }

    let attach_sql = vec![
        format!(
            "ALTER TABLE {} ATTACH PARTITION {qualified} FOR VALUES FROM ({from_literal}) TO ({to_literal})",
            context.qualified_parent
        ),
        format!(
            "ALTER TABLE {qualified} DROP CONSTRAINT {}",
            quote_ident(&constraint)
        ),
        format!("COMMENT ON TABLE {qualified} IS NULL"),
    ];
    let in_range = format!("{column} >= {from_literal} AND {column} < {to_literal}");
    let reason_tail = if pending {
        " (created by an interrupted run)"
    } else {
        ""
    };
    let mut attach = match context.default_partition {
        Some(default) if table.move_default_rows => {
            let default_ref = context.partition_ref(default);
            let mut step = Step::new(
                table,
                Action::MoveDefaultRows,
                format!(
                    "moves the rows of this period out of the default partition {}.{} into the new partition and attaches it, \
                     in one transaction{reason_tail}",
                    default.schema, default.name
                ),
            );
            step.sql = vec![format!(
                "WITH moved AS (DELETE FROM {default_ref} WHERE {in_range} RETURNING *) INSERT INTO {qualified} SELECT * FROM moved"
            )];
            step.sql.extend(attach_sql);
            step.other_locks = Some(format!(
                "ACCESS EXCLUSIVE on the default partition {}.{} (scanned)",
                default.schema, default.name
            ));
            step
        }
        Some(default) => {
            let mut step = Step::new(
                table,
                Action::AttachPartition,
                format!("attached with its bounds checked in advance{reason_tail}"),
            );
            step.sql = attach_sql;
            step.guard = Some(format!(
                "SELECT count(*) FROM {} WHERE {in_range}",
                context.partition_ref(default)
            ));
            step.other_locks = Some(format!(
                "ACCESS EXCLUSIVE on the default partition {}.{} (scanned)",
                default.schema, default.name
            ));
            step
        }
        None => {
            let mut step = Step::new(
                table,
                Action::AttachPartition,
                format!(
                    "attached without a scan: the CHECK constraint already proves the bounds{reason_tail}"
                ),
            );
            step.sql = attach_sql;
            step
        }
    };
    attach.partition = Some(display);
    attach.from = Some(from);
    attach.to = Some(to);
    attach.lock = Lock::ShareUpdateExclusive;
    steps.push(attach);
}

fn plan_partition_index(
    context: &Context<'_>,
    index: &IndexPolicy,
    parent_index: Option<u32>,
    partition: &Partition,
    steps: &mut Vec<Step>,
) {
    let table = context.table;
    if parent_index.is_some_and(|oid| partition.indexes.iter().any(|i| i.attached_to == Some(oid)))
    {
        return;
    }
    let child_name = child_index_name(&partition.name, &index.name);
    let child_ref = context.qualified(&partition.schema, &child_name);
    let display = context.display_name(&partition.schema, &partition.name);
    let existing = partition.indexes.iter().find(|i| i.name == child_name);
    let mut build_needed = true;
    match existing {
        Some(found) if !found.valid => {
            let mut drop = Step::new(
                table,
                Action::DropInvalidIndex,
                "an interrupted concurrent build left it INVALID: dropped and rebuilt",
            );
            drop.partition = Some(display.clone());
            drop.index = Some(format!("{}.{}", partition.schema, child_name));
            drop.sql = vec![format!("DROP INDEX CONCURRENTLY IF EXISTS {child_ref}")];
            drop.transactional = false;
            steps.push(drop);
        }
        Some(_) => build_needed = false,
        None => {}
    }
    if build_needed {
        let mut build = Step::new(
            table,
            Action::CreateIndex,
            format!(
                "{} lacks {}; built without blocking writes",
                partition.name, index.name
            ),
        );
        build.partition = Some(display.clone());
        build.index = Some(format!("{}.{}", partition.schema, child_name));
        build.sql = vec![format!(
            "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {}",
            if index.unique { "UNIQUE " } else { "" },
            quote_ident(&child_name),
            context.partition_ref(partition),
            index_body(index)
        )];
        build.transactional = false;
        build.other_locks = Some(format!("SHARE UPDATE EXCLUSIVE on {display}"));
        steps.push(build);
    }
    let mut attach = Step::new(
        table,
        Action::AttachIndex,
        format!("joins {} on the parent", index.name),
    );
    attach.partition = Some(display);
    attach.index = Some(format!("{}.{}", partition.schema, child_name));
    attach.sql = vec![format!(
        "ALTER INDEX {}.{} ATTACH PARTITION {child_ref}",
        quote_ident(&context.parent.schema),
        quote_ident(&index.name)
    )];
    attach.lock = Lock::AccessShare;
    attach.other_locks = Some(format!("SHARE UPDATE EXCLUSIVE on index {}", index.name));
    steps.push(attach);
}

/// PostgreSQL refuses a unique index on a partitioned table that lacks the
/// partition key; say so at plan time.
fn unique_key_problem(context: &Context<'_>, index: &IndexPolicy) -> Option<String> {
    if !index.unique {
        return None;
    }
    let includes_key = index.columns.iter().any(|column| {
        let first = column
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_matches('"');
        first.eq_ignore_ascii_case(&context.column)
    });
    (!includes_key).then(|| {
        format!(
            "unique index {} must include the partition key {} (PostgreSQL enforces uniqueness per partition): add it to columns",
            index.name, context.column
        )
    })
}

fn index_body(index: &IndexPolicy) -> String {
    let mut body = format!("USING {} ({})", index.method, index.columns.join(", "));
    if !index.include.is_empty() {
        let include: Vec<String> = index.include.iter().map(|c| quote_ident(c)).collect();
        body.push_str(&format!(" INCLUDE ({})", include.join(", ")));
    }
    if let Some(predicate) = &index.predicate {
        body.push_str(&format!(" WHERE {predicate}"));
    }
    body
}

/// `{partition}_{index}`, shortened with a hash when over 63 bytes so two
/// long names cannot collide.
pub fn child_index_name(partition: &str, index: &str) -> String {
    shorten(&format!("{partition}_{index}"))
}

fn bounds_constraint_name(partition: &str) -> String {
    shorten(&format!("{partition}_pgm_bounds"))
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
