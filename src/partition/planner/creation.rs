//! Creation: the partitions from the period holding now through premake
//! more, each created like the parent with a CHECK on its bounds, then
//! attached (moving default-partition rows first when asked).

use super::{Action, Context, Entry, Existing, Lock, Problem, ProblemKind, Step, bounds_text};
use crate::db::ident::{
    CITUS_SHARD_SUFFIX_BYTES, MAX_IDENTIFIER_BYTES, QualifiedName, shorten_identifier,
};
use crate::db::{quote_ident, quote_literal};
use crate::partition::calendar::{KeyType, KeyValue};
use crate::partition::catalog::{self, Snapshot};

/// The partitions of the period holding `point` (now, or the largest ID)
/// and premake more; `why` says where `point` came from.
pub(super) fn plan_creation(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    snapshot: &Snapshot,
    point: KeyValue,
    why: &str,
    entries: &mut Vec<Entry>,
) {
    let table = context.table;
    let periods = &context.periods;
    let mut start = periods.holding(point);
    for position in 0..=table.premake {
        // The previous range ends at MAXVALUE: every larger ID has a range.
        if position > 0 && start == Some(KeyValue::MAX) && matches!(context.key, KeyType::Id(_)) {
            return;
        }
        let Some((lo, hi)) = start.and_then(|lo| Some((lo, periods.next(lo)?))) else {
            entries.push(Entry::Problem(Problem::new(
                table,
                ProblemKind::OutOfRange,
                format!(
                    "{} cannot be planned: the {} holding {point} and premake = {} more reach past the \
                     values its key can hold",
                    table.qualified_name(),
                    periods.describe(),
                    table.premake
                ),
            )));
            return;
        };
        let overlapping: Vec<&Existing<'_>> = existing
            .iter()
            .filter(|e| e.range.is_some_and(|(a, b)| a < hi && lo < b))
            .collect();
        let covered_exactly = overlapping.iter().any(|e| e.period == Some(lo));
        if let Some(problem) = epoch_overflow(context, lo, hi) {
            entries.push(Entry::Problem(problem));
            return;
        }
        if overlapping.is_empty() {
            let why = match (position, context.key) {
                (0, _) => why.to_owned(),
                (_, KeyType::Id(_)) => format!("premake: {position} ahead"),
                _ => format!("premake: {position} ahead of now"),
            };
            plan_new_partition(context, snapshot, lo, &why, entries);
        } else if !covered_exactly {
            let names: Vec<String> = overlapping
                .iter()
                .map(|e| format!("{}.{}", e.partition.schema, e.partition.name))
                .collect();
            entries.push(Entry::Problem(Problem::new(
                table,
                ProblemKind::Drift,
                format!(
                    "the {} starting {} overlaps {}: its partition cannot be created until that is resolved",
                    periods.kind(),
                    periods.label(lo),
                    names.join(", ")
                ),
            )));
        }
        start = Some(hi);
    }
}

/// A period of an epoch key whose bound its column's type cannot hold:
/// planned, the CREATE would fail at run time.
fn epoch_overflow(context: &Context<'_>, lo: KeyValue, hi: KeyValue) -> Option<Problem> {
    let periods = &context.periods;
    let (bound, integer) = [lo, hi]
        .into_iter()
        .find_map(|bound| Some((bound, periods.epoch_overflow(bound)?)))?;
    let column = &context.column;
    let sql_type = context
        .parent
        .key
        .as_ref()
        .map_or("", |k| k.sql_type.as_str());
    let unit = context
        .table
        .epoch
        .map(|u| u.to_string())
        .unwrap_or_default();
    Some(Problem::new(
        context.table,
        ProblemKind::OutOfRange,
        format!(
            "{}: the {} starting {} needs the bound {bound} ({unit} since the epoch), which {column} of type \
             {sql_type} cannot hold (at most {}): change {column} to bigint in a migration",
            context.table.qualified_name(),
            periods.kind(),
            periods.label(lo),
            integer.max()
        ),
    ))
}

/// One period's partition, with everything its statements need.
struct NewPartition {
    name: QualifiedName,
    period_start: String,
    from: String,
    to: String,
    from_literal: String,
    to_literal: String,
    constraint: String,
    column: String,
}

impl NewPartition {
    /// The key in this period's range, as SQL; an end at MINVALUE or
    /// MAXVALUE (the ends of an integer type) bounds nothing.
    fn in_range(&self) -> String {
        in_range_sql(&self.column, &self.from_literal, &self.to_literal)
    }
}

/// The key (quoted) in [from, to), as SQL.
fn in_range_sql(column: &str, from_literal: &str, to_literal: &str) -> String {
    let lower = (from_literal != "MINVALUE").then(|| format!("{column} >= {from_literal}"));
    let upper = (to_literal != "MAXVALUE").then(|| format!("{column} < {to_literal}"));
    let terms: Vec<String> = lower.into_iter().chain(upper).collect();
    match terms.is_empty() {
        true => "true".to_owned(),
        false => terms.join(" AND "),
    }
}

/// The CHECK that proves a partition's bounds, as creation writes it.
pub(super) fn bounds_check_sql(column: &str, from_literal: &str, to_literal: &str) -> String {
    format!(
        "{column} IS NOT NULL AND {}",
        in_range_sql(column, from_literal, to_literal)
    )
}

pub(super) fn plan_new_partition(
    context: &Context<'_>,
    snapshot: &Snapshot,
    start: KeyValue,
    why: &str,
    entries: &mut Vec<Entry>,
) {
    let periods = &context.periods;
    let Some(name) = periods.name(context.table, start) else {
        entries.push(Entry::Problem(Problem::new(
            context.table,
            ProblemKind::OutOfRange,
            format!(
                "{}: the {} starting at {} has no local date to name its partition after",
                context.table.qualified_name(),
                periods.kind(),
                periods.literal(start)
            ),
        )));
        return;
    };
    if let Some(problem) = citus_name_problem(context, &name) {
        // One entry says it for every name of the template.
        let said = entries
            .iter()
            .filter_map(Entry::problem)
            .any(|p| p.kind == ProblemKind::NameTooLong);
        if !said {
            entries.push(Entry::Problem(problem));
        }
        return;
    }
    let (from, to) = bounds_text(context, start);
    let end = periods.next(start).unwrap_or(KeyValue::MAX);
    let new = NewPartition {
        name: QualifiedName::new(context.parent.schema.clone(), name.clone()),
        period_start: periods.label(start),
        from,
        to,
        from_literal: periods.literal(start),
        to_literal: periods.literal(end),
        constraint: bounds_constraint_name(&name),
        column: quote_ident(&context.column),
    };
    let pending = snapshot.pending.iter().any(|p| {
        p.schema == new.name.schema
            && p.name == new.name.name
            && p.parent == context.qualified_parent
            && p.period_start == new.period_start
    });
    if !pending {
        entries.push(Entry::Step(create_step(context, &new, why)));
    }
    entries.push(Entry::Step(attach_step(context, new, pending)));
}

/// On a table Citus distributes, each partition's shards are named after it
/// with `_` and the shard id appended: a name that leaves no room for that
/// would be cut and hashed by Citus on every worker.
fn citus_name_problem(context: &Context<'_>, name: &str) -> Option<Problem> {
    let room = MAX_IDENTIFIER_BYTES - CITUS_SHARD_SUFFIX_BYTES;
    (context.distributed() && name.len() > room).then(|| {
        let mut problem = Problem::new(
            context.table,
            ProblemKind::NameTooLong,
            format!(
                "{}: partition names like \"{name}\" are {} bytes; {} is distributed by Citus, whose shards \
                 add _ and the shard id (_NNNNNN, {CITUS_SHARD_SUFFIX_BYTES} bytes) within PostgreSQL's \
                 {MAX_IDENTIFIER_BYTES}, so they must be at most {room}: set a shorter naming template \
                 (naming = \"ev_p{{YYYY}}_{{MM}}\", say)",
                context.table.location,
                name.len(),
                context.table.qualified_name()
            ),
        );
        problem.partition = Some(QualifiedName::new(context.parent.schema.clone(), name.to_owned()));
        problem
    })
}

/// The table, like the parent, with a CHECK proving its bounds and a
/// marker, so a run stopped before the attach is finished by the next.
fn create_step(context: &Context<'_>, new: &NewPartition, why: &str) -> Step {
    let qualified = new.name.quoted();
    let mut create = Step::new(
        context.table,
        Action::CreatePartition,
        format!(
            "period {} ({why}); created unattached, like the parent",
            new.period_start
        ),
    );
    create.partition = Some(new.name.clone());
    create.from = Some(new.from.clone());
    create.to = Some(new.to.clone());
    create.sql = like_parent(context, &new.name);
    create.sql.extend([
        format!(
            "ALTER TABLE {qualified} ADD CONSTRAINT {} CHECK ({})",
            quote_ident(&new.constraint),
            bounds_check_sql(&new.column, &new.from_literal, &new.to_literal)
        ),
        format!(
            "COMMENT ON TABLE {qualified} IS {}",
            quote_literal(&catalog::pending_comment(
                &context.qualified_parent,
                &new.period_start
            ))
        ),
    ]);
    create.lock = Lock::AccessShare;
    create
}

/// A table like the parent, with the parent's owner and persistence, the
/// policy's storage parameters and tablespace (else the parent's), and the
/// parent's grants when the policy inherits them: what every partition pgm
/// creates gets, the default partition included.
pub(super) fn like_parent(context: &Context<'_>, name: &QualifiedName) -> Vec<String> {
    let qualified = name.quoted();
    let properties = &context.table.partition;
    let tablespace = properties
        .tablespace
        .as_ref()
        .or(context.parent.tablespace.as_ref())
        .map(|t| format!(" TABLESPACE {}", quote_ident(t)))
        .unwrap_or_default();
    let with = match properties.with.is_empty() {
        true => String::new(),
        false => format!(
            " WITH ({})",
            properties
                .with
                .iter()
                .map(|(parameter, value)| format!("{parameter} = {value}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let unlogged = if context.parent.unlogged {
        "UNLOGGED "
    } else {
        ""
    };
    let mut sql = vec![
        format!(
            "CREATE {unlogged}TABLE {qualified} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE \
             INCLUDING COMMENTS INCLUDING GENERATED INCLUDING STATISTICS INCLUDING COMPRESSION){with}{tablespace}",
            context.qualified_parent
        ),
        format!(
            "ALTER TABLE {qualified} OWNER TO {}",
            quote_ident(&context.parent.owner)
        ),
    ];
    if properties.inherit_privileges {
        sql.extend(context.parent.grants.iter().map(|grant| {
            let grantee = match grant.grantee.as_str() {
                "PUBLIC" => "PUBLIC".to_owned(),
                role => quote_ident(role),
            };
            let option = if grant.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            };
            format!(
                "GRANT {} ON TABLE {qualified} TO {grantee}{option}",
                grant.privilege
            )
        }));
    }
    sql
}

/// The attach: without a scan when no default partition exists; else with
/// the default partition's rows of the range moved first, or refused.
fn attach_step(context: &Context<'_>, new: NewPartition, pending: bool) -> Step {
    let table = context.table;
    let qualified = new.name.quoted();
    let attach_sql = vec![
        format!(
            "ALTER TABLE {} ATTACH PARTITION {qualified} FOR VALUES FROM ({}) TO ({})",
            context.qualified_parent, new.from_literal, new.to_literal
        ),
        format!(
            "ALTER TABLE {qualified} DROP CONSTRAINT {}",
            quote_ident(&new.constraint)
        ),
        format!("COMMENT ON TABLE {qualified} IS NULL"),
    ];
    let reason_tail = if pending {
        " (created by an interrupted run)"
    } else {
        ""
    };
    let mut attach = match context.default_partition {
        Some(default) => {
            let default_name = Context::name_of(default);
            let mut step = if table.move_default_rows || table.drain_default {
                let mut step = Step::new(
                    table,
                    Action::MoveDefaultRows,
                    format!(
                        "moves the rows of this period out of the default partition {default_name} into the new \
                         partition and attaches it, in one transaction{reason_tail}"
                    ),
                );
                step.sql = vec![format!(
                    "WITH moved AS (DELETE FROM {} WHERE {} RETURNING *) INSERT INTO {qualified} SELECT * FROM moved",
                    default_name.quoted(),
                    new.in_range()
                )];
                step
            } else {
                let mut step = Step::new(
                    table,
                    Action::AttachPartition,
                    format!("attached with its bounds checked in advance{reason_tail}"),
                );
                step.guard = Some(format!(
                    "SELECT count(*) FROM {} WHERE {}",
                    default_name.quoted(),
                    new.in_range()
                ));
                step
            };
            step.sql.extend(attach_sql);
            step.other_locks = Some(format!(
                "ACCESS EXCLUSIVE on the default partition {default_name} (scanned)"
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
    attach.partition = Some(new.name);
    attach.from = Some(new.from);
    attach.to = Some(new.to);
    attach.lock = Lock::ShareUpdateExclusive;
    attach
}

pub(super) fn bounds_constraint_name(partition: &str) -> String {
    shorten_identifier(&format!("{partition}_pgm_bounds"))
}
