//! Index rollout: each declared index created ON ONLY the parent, built
//! CONCURRENTLY on every partition that stays, and attached.

use super::{Action, Context, Entry, Existing, Lock, Problem, ProblemKind, Step};
use crate::db::ident::{QualifiedName, shorten_identifier};
use crate::db::quote_ident;
use crate::partition::catalog::{self, Partition};
use crate::partition::policy::IndexPolicy;

pub(super) fn plan_parent_indexes(context: &Context<'_>, entries: &mut Vec<Entry>) {
    let (table, parent) = (context.table, context.parent);
    for index in &table.indexes {
        if let Some(problem) = unique_key_problem(context, index) {
            entries.push(Entry::Problem(Problem::new(
                table,
                ProblemKind::InvalidIndex,
                problem,
            )));
            continue;
        }
        if !parent.indexes.iter().any(|i| i.name == index.name) {
            let mut step = Step::new(
                table,
                Action::CreateIndex,
                "declared in the policy; built per partition below, then valid",
            );
            step.index = Some(QualifiedName::new(
                parent.schema.clone(),
                index.name.clone(),
            ));
            step.sql = vec![format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON ONLY {} {}",
                if index.unique { "UNIQUE " } else { "" },
                quote_ident(&index.name),
                context.qualified_parent,
                index_body(index)
            )];
            step.lock = Lock::Share;
            entries.push(Entry::Step(step));
        }
    }
}

pub(super) fn plan_partition_indexes(
    context: &Context<'_>,
    existing: &[Existing<'_>],
    retired_now: &[u32],
    entries: &mut Vec<Entry>,
) {
    let (table, parent) = (context.table, context.parent);
    for index in table
        .indexes
        .iter()
        .filter(|i| unique_key_problem(context, i).is_none())
    {
        let parent_index = parent.indexes.iter().find(|i| i.name == index.name);
        let first_entry_of_index = entries.len();
        for entry in existing
            .iter()
            .filter(|e| !e.partition.detach_pending && !retired_now.contains(&e.partition.oid))
        {
            plan_partition_index(
                context,
                index,
                parent_index.map(|i| i.oid),
                entry.partition,
                entries,
            );
        }
        if let Some(parent_index) = parent_index.filter(|i| !i.valid) {
            let planned_here = entries[first_entry_of_index..]
                .iter()
                .filter_map(Entry::step)
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
                let child = QualifiedName::new(child.schema.clone(), child.name.clone());
                step.sql = vec![format!(
                    "ALTER INDEX {}.{} ATTACH PARTITION {}",
                    quote_ident(&parent.schema),
                    quote_ident(&index.name),
                    child.quoted()
                )];
                step.index = Some(child);
                step.lock = Lock::AccessShare;
                step.other_locks = Some(format!("SHARE UPDATE EXCLUSIVE on index {}", index.name));
                entries.push(Entry::Step(step));
            }
        }
    }
}

fn plan_partition_index(
    context: &Context<'_>,
    index: &IndexPolicy,
    parent_index: Option<u32>,
    partition: &Partition,
    entries: &mut Vec<Entry>,
) {
    let table = context.table;
    if parent_index.is_some_and(|oid| partition.indexes.iter().any(|i| i.attached_to == Some(oid)))
    {
        return;
    }
    let child_name = child_index_name(&partition.name, &index.name);
    let child = QualifiedName::new(partition.schema.clone(), child_name.clone());
    let child_ref = child.quoted();
    let partition_name = Context::name_of(partition);
    let existing = partition.indexes.iter().find(|i| i.name == child_name);
    let mut build_needed = true;
    match existing {
        Some(found) if !found.valid => {
            let mut drop = Step::new(
                table,
                Action::DropInvalidIndex,
                "an interrupted concurrent build left it INVALID: dropped and rebuilt",
            );
            drop.partition = Some(partition_name.clone());
            drop.index = Some(child.clone());
            drop.sql = vec![format!("DROP INDEX CONCURRENTLY IF EXISTS {child_ref}")];
            drop.transactional = false;
            entries.push(Entry::Step(drop));
        }
        Some(_) => build_needed = false,
        None => {}
    }
    if build_needed {
        let mut build = Step::new(
            table,
            Action::CreateIndex,
            format!(
                "{} lacks {}; built without blocking writes, waiting up to {} for older transactions",
                partition.name, index.name, table.snapshot_wait
            ),
        );
        // Its wait for older transactions blocks nobody: under its own
        // budget, one attempt (an INVALID leftover is the next plan's).
        build.lock_timeout = table.snapshot_wait.to_string();
        build.partition = Some(partition_name.clone());
        build.sql = vec![format!(
            "CREATE {}INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {}",
            if index.unique { "UNIQUE " } else { "" },
            quote_ident(&child_name),
            partition_name.quoted(),
            index_body(index)
        )];
        build.index = Some(child.clone());
        build.transactional = false;
        build.other_locks = Some(format!("SHARE UPDATE EXCLUSIVE on {partition_name}"));
        entries.push(Entry::Step(build));
    }
    let mut attach = Step::new(
        table,
        Action::AttachIndex,
        format!("joins {} on the parent", index.name),
    );
    attach.partition = Some(partition_name);
    attach.index = Some(child);
    attach.sql = vec![format!(
        "ALTER INDEX {}.{} ATTACH PARTITION {child_ref}",
        quote_ident(&context.parent.schema),
        quote_ident(&index.name)
    )];
    attach.lock = Lock::AccessShare;
    attach.other_locks = Some(format!("SHARE UPDATE EXCLUSIVE on index {}", index.name));
    entries.push(Entry::Step(attach));
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

/// A declared index built on a partitioned table that is still empty (a
/// conversion's new table): a plain CREATE INDEX on the parent, which
/// PostgreSQL cascades to every partition at once; `None` for a unique
/// index without the key, which maintenance reports.
pub fn on_empty_parent(index: &IndexPolicy, parent: &str, key: &str) -> Option<String> {
    let includes_key = index.columns.iter().any(|column| {
        let first = column.split_whitespace().next().unwrap_or("");
        first.trim_matches('"').eq_ignore_ascii_case(key)
    });
    if index.unique && !includes_key {
        return None;
    }
    Some(format!(
        "CREATE {}INDEX {} ON {parent} {}",
        if index.unique { "UNIQUE " } else { "" },
        quote_ident(&index.name),
        index_body(index)
    ))
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
    shorten_identifier(&format!("{partition}_{index}"))
}
