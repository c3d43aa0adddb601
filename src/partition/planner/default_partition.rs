//! The default partition: created when the policy asks for one, and
//! drained (`drain_default`) by giving every period it holds rows of its
//! partition, the rows moved in the attach's transaction (see
//! `partition::drain` for why one period is one transaction).

use super::creation::{like_parent, plan_new_partition};
use super::{Action, Context, Entry, Existing, Lock, Problem, ProblemKind, Step};
use crate::db::ident::{QualifiedName, shorten_identifier};
use crate::partition::calendar::KeyValue;
use crate::partition::catalog::Snapshot;

/// `default_partition = true` and none exists: one transaction creates it
/// like the parent and attaches it as the default (an empty table: the
/// attach scans nothing). `false`, written, with one present: reported,
/// never dropped (it may hold rows).
pub(super) fn plan_default_partition(context: &Context<'_>, entries: &mut Vec<Entry>) {
    let table = context.table;
    match (context.default_partition, table.default_partition) {
        (None, true) => entries.push(Entry::Step(create_default(context))),
        (Some(default), false) if table.default_partition_written => {
            let name = Context::name_of(default);
            let mut problem = Problem::new(
                table,
                ProblemKind::UnwantedDefaultPartition,
                format!(
                    "{}: default_partition = false, but {name} is its default partition: pgm never drops it (it \
                     may hold rows); drop it yourself once it is empty, or write default_partition = true",
                    table.qualified_name()
                ),
            );
            problem.partition = Some(name);
            entries.push(Entry::Problem(problem));
        }
        _ => {}
    }
}

fn create_default(context: &Context<'_>) -> Step {
    let parent = context.parent;
    let name = QualifiedName::new(
        parent.schema.clone(),
        shorten_identifier(&format!("{}_default", parent.name)),
    );
    let mut step = Step::new(
        context.table,
        Action::CreateDefaultPartition,
        "default_partition = true and the table has none: created like the parent and attached as the \
         default partition, in one transaction",
    );
    step.sql = like_parent(context, &name);
    step.sql.push(format!(
        "ALTER TABLE {} ATTACH PARTITION {} DEFAULT",
        context.qualified_parent,
        name.quoted()
    ));
    step.partition = Some(name);
    step.lock = Lock::ShareUpdateExclusive;
    step
}

/// Every period the default partition holds rows of, outside the periods
/// creation plans (now through premake) and without a partition: its
/// partition created, then attached with the rows moved. Periods older
/// than retention are reported, never dropped.
pub(super) fn plan_drain(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    snapshot: &Snapshot,
    creation_window: (KeyValue, KeyValue),
    cutoff: Option<KeyValue>,
    entries: &mut Vec<Entry>,
) {
    let table = context.table;
    let Some(rows) = &context.parent.default_rows else {
        return;
    };
    if !table.drain_default || context.default_partition.is_none() {
        return;
    }
    if let Some(failure) = &rows.failure {
        entries.push(Entry::Problem(Problem::new(
            table,
            ProblemKind::DefaultRowsUnread,
            format!("{}: {failure}", table.qualified_name()),
        )));
        return;
    }
    let periods = &context.periods;
    let mut expired = Vec::new();
    for &start in &rows.periods {
        let (window_start, window_end) = creation_window;
        if start >= window_start && start < window_end {
            continue;
        }
        let Some(end) = periods.next(start) else {
            continue;
        };
        let covered = existing
            .iter()
            .any(|e| e.range.is_some_and(|(lo, hi)| lo < end && start < hi));
        if covered {
            continue;
        }
        if cutoff.is_some_and(|cutoff| end <= cutoff) {
            expired.push(start);
            continue;
        }
        let more = if rows.truncated {
            "; more periods are read by the next run"
        } else {
            ""
        };
        plan_new_partition(
            context,
            snapshot,
            start,
            &format!("drain_default: the default partition holds rows of this period{more}"),
            entries,
        );
    }
    if let Some(&oldest) = expired.first() {
        entries.push(Entry::Problem(Problem::new(
            table,
            ProblemKind::DefaultRowsPastRetention,
            format!(
                "{}: the default partition holds rows of {} {}(s) older than the retention (the oldest starting \
                 {}): pgm never deletes rows; delete or archive them yourself, or lengthen retention",
                table.qualified_name(),
                expired.len(),
                periods.kind(),
                periods.label(oldest)
            ),
        )));
    }
}
