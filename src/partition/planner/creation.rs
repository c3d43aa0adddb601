//! Creation: the partitions from the period holding now through premake
//! more, each created like the parent with a CHECK on its bounds, then
//! attached (moving default-partition rows first when asked).

use chrono::NaiveDate;

use super::{Action, Context, Entry, Existing, Lock, Problem, ProblemKind, Step, bounds_text};
use crate::db::ident::{QualifiedName, shorten_identifier};
use crate::db::{quote_ident, quote_literal};
use crate::partition::calendar;
use crate::partition::catalog::{self, Snapshot};

pub(super) fn plan_creation(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    snapshot: &Snapshot,
    today: NaiveDate,
    entries: &mut Vec<Entry>,
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
            plan_new_partition(context, snapshot, start, position, entries);
        } else if !covered_exactly {
            let names: Vec<String> = overlapping
                .iter()
                .map(|e| format!("{}.{}", e.partition.schema, e.partition.name))
                .collect();
            entries.push(Entry::Problem(Problem::new(
                table,
                ProblemKind::Drift,
                format!(
                    "the {interval} period starting {start} overlaps {}: its partition cannot be created until that is resolved",
                    names.join(", ")
                ),
            )));
        }
        start = interval.next(start);
    }
}

fn plan_new_partition(
    context: &Context<'_>,
    snapshot: &Snapshot,
    start: NaiveDate,
    position: u32,
    entries: &mut Vec<Entry>,
) {
    let table = context.table;
    let name = table.partition_name(start);
    let schema = &context.parent.schema;
    let partition = QualifiedName::new(schema.clone(), name.clone());
    let qualified = partition.quoted();
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
        create.partition = Some(partition.clone());
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
        entries.push(Entry::Step(create));
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
            let default_ref = Context::name_of(default).quoted();
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
                Context::name_of(default).quoted()
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
    attach.partition = Some(partition);
    attach.from = Some(from);
    attach.to = Some(to);
    attach.lock = Lock::ShareUpdateExclusive;
    entries.push(Entry::Step(attach));
}

fn bounds_constraint_name(partition: &str) -> String {
    shorten_identifier(&format!("{partition}_pgm_bounds"))
}
