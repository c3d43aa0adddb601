//! Columnar conversion on Citus: partitions whose whole range is older than
//! `columnar_after` become columnar with Citus's
//! `alter_table_set_access_method`, one partition per transaction, after
//! their indexes are built and before the retention drops them.
//!
//! Citus converts a partition by copying it into a new table, detaching the
//! old one from the parent, dropping it and attaching the new one, all in
//! the caller's transaction: the parent's ACCESS EXCLUSIVE lock is taken
//! after the copy, under the transaction's lock_timeout (on the workers
//! too), and held to the commit. A CHECK proving the bounds, added NOT VALID
//! in a step of its own (an instant's lock) and validated in the conversion's
//! transaction (reads and writes go on), lets that ATTACH skip its scan.

use super::{Action, Context, Entry, Existing, Lock, Problem, ProblemKind, Step, bounds_text};
use super::{creation, retention};
use crate::db::{quote_ident, quote_literal};
use crate::partition::calendar::{self, KeyValue};
use crate::partition::catalog::Snapshot;

const COLUMNAR: &str = "columnar";

pub(super) fn plan_columnar(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    snapshot: &Snapshot,
    retention_cutoff: Option<KeyValue>,
    now: chrono::DateTime<chrono::Utc>,
    entries: &mut Vec<Entry>,
) {
    let table = context.table;
    let Some(after) = &table.columnar_after else {
        return;
    };
    if !context.distributed() {
        entries.push(Entry::Problem(Problem::new(
            table,
            ProblemKind::CitusUnsupported,
            format!(
                "{}: columnar_after = \"{}\" converts partitions with Citus's alter_table_set_access_method, \
                 and {} is not distributed by Citus: distribute it (create_distributed_table) or remove \
                 columnar_after",
                table.location,
                after.text,
                table.qualified_name()
            ),
        )));
        return;
    }
    if !snapshot.columnar_installed {
        entries.push(Entry::Problem(Problem::new(
            table,
            ProblemKind::CitusUnsupported,
            format!(
                "{}: columnar_after = \"{}\" needs Citus's columnar access method, which this database \
                 lacks: run CREATE EXTENSION citus_columnar on the coordinator (in a migration), or remove \
                 columnar_after",
                table.location, after.text
            ),
        )));
        return;
    }
    let zone = table.time_zone;
    let day = after.cutoff(calendar::local_date(now, zone));
    let Some(cutoff) = calendar::key_value(context.key, day, zone) else {
        return;
    };
    let ends_by = |start: KeyValue, limit: KeyValue| {
        context.periods.next(start).is_some_and(|end| end <= limit)
    };
    let mut due: Vec<(&Existing<'_>, KeyValue)> = existing
        .iter()
        .filter(|e| !e.partition.detach_pending)
        .filter(|e| e.partition.access_method.as_deref() != Some(COLUMNAR))
        .filter_map(|e| e.period.map(|start| (e, start)))
        .filter(|(_, start)| ends_by(*start, cutoff))
        // Expired partitions are dropped (now or by a later run), not converted.
        .filter(|(_, start)| !retention_cutoff.is_some_and(|limit| ends_by(*start, limit)))
        .collect();
    due.sort_by_key(|(_, start)| *start);
    for (entry, start) in due {
        plan_conversion(context, entry, start, cutoff, entries);
    }
}

fn plan_conversion(
    context: &Context<'_>,
    entry: &Existing<'_>,
    start: KeyValue,
    cutoff: KeyValue,
    entries: &mut Vec<Entry>,
) {
    let (table, partition) = (context.table, entry.partition);
    let name = Context::name_of(partition);
    let qualified = name.quoted();
    let constraint = creation::bounds_constraint_name(&partition.name);
    let (from, to) = bounds_text(context, start);
    if !partition.checks.contains(&constraint) {
        let end = context.periods.next(start).unwrap_or(KeyValue::MAX);
        let mut prepare = Step::new(
            table,
            Action::ColumnarPrepare,
            "a CHECK proving its bounds, NOT VALID (no row read), so that the conversion below attaches the \
             columnar table without a scan under the parent's lock",
        );
        prepare.sql = vec![format!(
            "ALTER TABLE {qualified} ADD CONSTRAINT {} CHECK ({}) NOT VALID",
            quote_ident(&constraint),
            creation::bounds_check_sql(
                &quote_ident(&context.column),
                &context.periods.literal(start),
                &context.periods.literal(end)
            )
        )];
        prepare.other_locks = Some(format!("ACCESS EXCLUSIVE on {name} for an instant"));
        prepare.partition = Some(name.clone());
        prepare.from = Some(from.clone());
        prepare.to = Some(to.clone());
        entries.push(Entry::Step(prepare));
    }
    let after = table
        .columnar_after
        .as_ref()
        .map_or("", |a| a.text.as_str());
    let mut convert = Step::new(
        table,
        Action::ColumnarPartition,
        format!(
            "whole range ends on or before {} (columnar_after {after}); {}",
            context.periods.label(cutoff),
            retention::size_words(partition)
        ),
    );
    convert.sql = vec![
        format!(
            "ALTER TABLE {qualified} VALIDATE CONSTRAINT {}",
            quote_ident(&constraint)
        ),
        format!(
            "SELECT alter_table_set_access_method({}, {})",
            quote_literal(&qualified),
            quote_literal(COLUMNAR)
        ),
        format!(
            "ALTER TABLE {qualified} DROP CONSTRAINT {}",
            quote_ident(&constraint)
        ),
    ];
    convert.lock = Lock::AccessExclusive;
    convert.other_locks = Some(format!(
        "SHARE UPDATE EXCLUSIVE on {name} while the CHECK is validated (reads and writes go on), EXCLUSIVE while \
         Citus copies its rows (reads go on, writes to it wait), then ACCESS EXCLUSIVE on it and on the parent \
         from the detach of the old table to the commit (the attach reads no row: the CHECK proves the bounds)"
    ));
    convert.partition = Some(name);
    convert.from = Some(from);
    convert.to = Some(to);
    entries.push(Entry::Step(convert));
}
