//! Retention: expired partitions detached (CONCURRENTLY when allowed), then
//! dropped or archived, oldest first, at most max_drops_per_run.

use chrono::{DateTime, Utc};

use super::{Action, Context, Entry, Existing, Lock, Step, bounds_text, periods};
use crate::db::ident::QualifiedName;
use crate::db::quote_literal;
use crate::db::retry::OnRetry;
use crate::partition::calendar::{self, KeyType, KeyValue};
use crate::partition::catalog::{self, Partition};
use crate::partition::policy::RetentionAction;
use crate::units::human_bytes;

/// The smallest upper bound a partition keeps, in key space: now minus
/// the retention for time keys; for ID ranges the largest key minus it
/// (nothing expires while the table holds no row).
pub(super) fn cutoff(context: &Context<'_>, now: DateTime<Utc>) -> Option<KeyValue> {
    let retention = context.table.retention.as_ref()?;
    let zone = context.table.time_zone;
    match context.key {
        KeyType::Id(_) => {
            let max = context.parent.max_key.as_ref()?;
            Some(retention.id_cutoff(periods::parse_max_key(&max.value)?))
        }
        key => {
            let day = retention.cutoff(calendar::local_date(now, zone));
            calendar::key_value(key, day, zone)
        }
    }
}

/// Plans detaching (and dropping or archiving) expired partitions; returns
/// the oids of those retired now. Those the cap leaves for later runs are
/// not among them: they stay attached after this run, so they get the
/// declared indexes like any other partition, or the parent index would stay
/// INVALID until their turn comes.
pub(super) fn plan_retention(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    cutoff: Option<KeyValue>,
    entries: &mut Vec<Entry>,
) -> Vec<u32> {
    let table = context.table;
    let (Some(retention), Some(cutoff)) = (&table.retention, cutoff) else {
        return Vec::new();
    };
    let mut expired: Vec<(&Existing<'_>, KeyValue)> = existing
        .iter()
        .filter(|e| !e.partition.detach_pending)
        .filter_map(|e| e.period.map(|start| (e, start)))
        .filter(|(_, start)| {
            context
                .periods
                .next(*start)
                .is_some_and(|end| end <= cutoff)
        })
        .collect();
    expired.sort_by_key(|(_, start)| *start);
    let waiting = expired
        .len()
        .saturating_sub(table.max_drops_per_run as usize);
    expired.truncate(table.max_drops_per_run as usize);
    let retired_now = expired
        .iter()
        .map(|(entry, _)| entry.partition.oid)
        .collect();
    for (position, (entry, start)) in expired.iter().enumerate() {
        let partition = entry.partition;
        let name = Context::name_of(partition);
        let (from, to) = bounds_text(context, *start);
        let size = size_words(partition);
        let mut reason = format!(
            "whole range ends on or before the cutoff {} (retention {}); {size}",
            context.periods.label(cutoff),
            retention.text
        );
        if waiting > 0 && position + 1 == expired.len() {
            reason.push_str(&format!(
                "; max_drops_per_run = {} reached: {waiting} more expired partition(s) wait for later runs",
                table.max_drops_per_run
            ));
        }
        let mut detach = detach_step(context, &name, reason);
        detach.from = Some(from.clone());
        detach.to = Some(to.clone());
        entries.push(Entry::Step(detach));
        if let Some(mut step) = after_detach(context, &name, "") {
            step.from = Some(from);
            step.to = Some(to);
            step.reason.push_str(&format!("; {size}"));
            entries.push(Entry::Step(step));
        }
    }
    retired_now
}

/// Rows and bytes, for the reasons of steps that remove a partition.
pub(super) fn size_words(partition: &Partition) -> String {
    let rows = match partition.estimated_rows {
        ..0 => "row count unknown (never analyzed)".to_owned(),
        n => format!("about {n} rows"),
    };
    format!("{rows}, {}", human_bytes(partition.estimated_bytes))
}

/// The detach: CONCURRENTLY unless a default partition or Citus forbids it, with
/// the partition marked first, so that a run killed after the detach still
/// drops (or archives) it next time instead of forgetting it.
fn detach_step(context: &Context<'_>, name: &QualifiedName, reason: String) -> Step {
    let retention_action = context.table.retention.as_ref().map(|r| &r.action);
    let mut detach = Step::new(context.table, Action::DetachPartition, reason);
    detach.partition = Some(name.clone());
    if !matches!(retention_action, Some(RetentionAction::Detach)) {
        detach.sql.push(format!(
            "COMMENT ON TABLE {} IS {}",
            name.quoted(),
            quote_literal(&catalog::retiring_comment(&context.qualified_parent))
        ));
    }
    let statement = format!(
        "ALTER TABLE {} DETACH PARTITION {}",
        context.qualified_parent,
        name.quoted()
    );
    if context.distributed() {
        detach.sql.push(statement);
        detach.lock = Lock::AccessExclusive;
        detach.reason.push_str(
            "; distributed by Citus, which refuses DETACH … CONCURRENTLY: a plain DETACH under lock_timeout, \
             on the coordinator and on the workers' shards, retried, and left for the next run when it \
             cannot get its lock",
        );
    } else if context.default_partition.is_none() {
        detach.on_retry = Some(finish_cancelled_detach(&statement, name, detach.sql.len()));
        detach.sql.push(format!("{statement} CONCURRENTLY"));
        detach.transactional = false;
        detach.lock = Lock::ShareUpdateExclusive;
    } else {
        detach.sql.push(statement);
        detach.lock = Lock::AccessExclusive;
        detach.reason.push_str(
            "; plain DETACH under lock_timeout: CONCURRENTLY is refused while a default partition exists",
        );
    }
    detach
}

/// A DETACH … CONCURRENTLY cancelled after its first transaction leaves the
/// partition pending: from then on it can only be finished.
fn finish_cancelled_detach(statement: &str, partition: &QualifiedName, position: usize) -> OnRetry {
    OnRetry {
        statement: position,
        when: format!(
            "SELECT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = to_regclass({}) AND inhdetachpending)",
            quote_literal(&partition.quoted())
        ),
        sql: format!("{statement} FINALIZE"),
        instead: true,
        why: "the cancelled detach left the partition pending: finish it".into(),
    }
}

/// What follows the detach of a retired partition, as the policy says.
pub(super) fn after_detach(
    context: &Context<'_>,
    partition: &QualifiedName,
    why: &str,
) -> Option<Step> {
    let table = context.table;
    let qualified = partition.quoted();
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
                    crate::db::quote_ident(archive)
                ),
                format!(
                    "COMMENT ON TABLE {} IS NULL",
                    partition.in_schema(archive).quoted()
                ),
            ];
            step
        }
        // The policy no longer retires: the detached table stays, unmarked.
        Some(RetentionAction::Detach) | None if !why.is_empty() => {
            let mut step = Step::new(
                table,
                Action::KeepDetached,
                format!("kept as a plain table{suffix}"),
            );
            step.sql = vec![format!("COMMENT ON TABLE {qualified} IS NULL")];
            step
        }
        Some(RetentionAction::Detach) | None => return None,
    };
    step.partition = Some(partition.clone());
    Some(step)
}
