//! The swap, its reverse, and the cleanup, as steps with their exact SQL.
//!
//! The swap is one transaction under lock_timeout, retried: it locks the
//! live table (ACCESS EXCLUSIVE, so no write is in flight), replays the
//! whole log into the standby table, moves the capture triggers from the
//! live table to the standby, exchanges the names, and carries over what
//! depends on the table. The capture goes on after the swap, now logging
//! writes to the partitioned table, so that `--unswap` (the same
//! transaction the other way) loses no write made since; `--drop-old` ends
//! it.

use super::plan::{
    CAPTURE_TRIGGER, Columns, Names, PROBE_BY_KEY, STANDBY_SUFFIX, TRUNCATE_TRIGGER, step, suffixed,
};
use super::source::{DependentKind, SourceTable, fingerprint_sql};
use crate::db::ident::QualifiedName;
use crate::db::{quote_ident, quote_literal};
use crate::partition::planner::{Action, Lock, Step};
use crate::partition::policy::TablePolicy;

/// Which way the names are exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The partitioned table takes the name; the old one is kept aside.
    Swap,
    /// The old table takes the name back; the partitioned one waits again.
    Unswap,
}

/// The swap (or unswap) transaction. `live` is the table holding the name
/// now, as the catalog describes it; `standby` the one that takes it;
/// `aside` the name the live table gets.
pub(super) fn swap_step(
    table: &TablePolicy,
    names: &Names,
    live: &SourceTable,
    standby: &QualifiedName,
    aside: &str,
    direction: Direction,
) -> Step {
    let reason = match direction {
        Direction::Swap => format!(
            "replays the last logged changes, then {standby} takes the name {} and the table is kept as {aside}",
            names.source
        ),
        Direction::Unswap => format!(
            "replays the changes logged since the swap into {standby}, which takes the name {} back; the \
             partitioned table waits again as {aside}",
            names.source
        ),
    };
    let mut swap = step(table, Action::ConvertSwap, Lock::AccessExclusive, &reason);
    swap.partition = Some(standby.clone());
    swap.other_locks = Some(
        "ACCESS EXCLUSIVE on the tables whose foreign keys are re-pointed, for the transaction"
            .to_owned(),
    );
    let live_name = names.source.quoted();
    let mut sql = vec![
        format!("LOCK TABLE {live_name} IN ACCESS EXCLUSIVE MODE"),
        unchanged_since_read(live, &live_name),
        super::plan::ROW_SECURITY_OFF.to_owned(),
    ];
    sql.extend(last_replay(names, live, standby, direction));
    sql.extend([
        format!("DROP TRIGGER {CAPTURE_TRIGGER} ON {live_name}"),
        format!("DROP TRIGGER {TRUNCATE_TRIGGER} ON {live_name}"),
        format!("ALTER TABLE {live_name} RENAME TO {}", quote_ident(aside)),
        format!(
            "ALTER TABLE {} RENAME TO {}",
            standby.quoted(),
            quote_ident(&names.source.name)
        ),
    ]);
    sql.extend(capture_triggers(names));
    sql.extend(index_names(table, names, live, aside, direction));
    sql.extend(carry_over(names, live, aside, direction));
    sql.push(journal_update(names, direction, aside));
    swap.sql = sql;
    swap
}

/// Under the lock: the table is still as it was read when the swap was
/// planned, or the swap stops (and is not retried) before changing
/// anything.
fn unchanged_since_read(live: &SourceTable, live_name: &str) -> String {
    let now = fingerprint_sql(&format!("{}::regclass::oid", quote_literal(live_name)));
    let message = format!(
        "{live_name} changed since this run read it (an index, a constraint, a column, a grant, or \
         an object depending on it was added, changed or removed): nothing was swapped; run the same \
         command again, it reads the table again and carries the change over"
    );
    format!(
        "DO $pgm$ BEGIN IF ({now}) IS DISTINCT FROM {} THEN RAISE EXCEPTION USING \
         ERRCODE = 'object_not_in_prerequisite_state', MESSAGE = {}; END IF; END $pgm$",
        quote_literal(&live.fingerprint),
        quote_literal(&message)
    )
}

/// The last replay, under the lock. On the unswap the old table's own
/// triggers are held off while it takes the changes back, and the
/// partitioned table is set aside.
fn last_replay(
    names: &Names,
    live: &SourceTable,
    standby: &QualifiedName,
    direction: Direction,
) -> Vec<String> {
    let columns = Columns::from_source(live);
    let mut replay: Vec<String> = PROBE_BY_KEY.map(str::to_owned).into();
    // The whole log, from the table holding the name.
    replay.extend(super::plan::replay_statements(
        &columns,
        &names.log,
        (&names.source, standby),
        "",
    ));
    if direction == Direction::Swap {
        return replay;
    }
    let triggers = |state: &str| -> Vec<String> {
        user_triggers(live)
            .iter()
            .map(|t| {
                format!(
                    "ALTER TABLE {} {state} TRIGGER {}",
                    standby.quoted(),
                    quote_ident(t)
                )
            })
            .collect()
    };
    let mut sql = triggers("DISABLE");
    sql.extend(replay);
    sql.extend(triggers("ENABLE"));
    sql.extend(set_aside(live, &names.source.quoted()));
    sql
}

/// On the unswap, the partitioned table goes back to how the swap found
/// it: without the triggers, policies and row security the swap gave it,
/// so that replays into it fire no trigger of the application.
fn set_aside(live: &SourceTable, live_name: &str) -> Vec<String> {
    let mut sql = Vec::new();
    for dependency in &live.dependencies {
        match (&dependency.kind, &dependency.object) {
            (DependentKind::Trigger, Some(name)) => {
                sql.push(format!("DROP TRIGGER {} ON {live_name}", quote_ident(name)));
            }
            (DependentKind::Policy, Some(name)) => {
                sql.push(format!("DROP POLICY {} ON {live_name}", quote_ident(name)));
            }
            _ => {}
        }
    }
    if live.force_row_security {
        sql.push(format!(
            "ALTER TABLE {live_name} NO FORCE ROW LEVEL SECURITY"
        ));
    }
    if live.row_security {
        sql.push(format!(
            "ALTER TABLE {live_name} DISABLE ROW LEVEL SECURITY"
        ));
    }
    sql
}

/// The capture triggers on the table holding the name.
pub(super) fn capture_triggers(names: &Names) -> Vec<String> {
    let table = names.source.quoted();
    vec![
        format!(
            "CREATE TRIGGER {CAPTURE_TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW \
             EXECUTE FUNCTION {}()",
            names.capture.quoted()
        ),
        format!(
            "CREATE TRIGGER {TRUNCATE_TRIGGER} BEFORE TRUNCATE ON {table} FOR EACH STATEMENT \
             EXECUTE FUNCTION {}()",
            names.no_truncate.quoted()
        ),
        // Also in replica mode (`session_replication_role = replica`: a
        // logical replication apply worker, pg_restore --disable-triggers),
        // whose writes a default trigger would not log.
        format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {CAPTURE_TRIGGER}"),
        format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {TRUNCATE_TRIGGER}"),
    ]
}

fn user_triggers(live: &SourceTable) -> Vec<String> {
    live.dependencies
        .iter()
        .filter(|d| d.kind == DependentKind::Trigger)
        .filter_map(|d| d.object.clone())
        .collect()
}

/// The table taking the name takes its indexes' and constraints' names
/// too; the table set aside gets them with a suffix.
fn index_names(
    table: &TablePolicy,
    names: &Names,
    live: &SourceTable,
    aside: &str,
    direction: Direction,
) -> Vec<String> {
    let (away, back) = match direction {
        Direction::Swap => ("_unpartitioned", STANDBY_SUFFIX),
        Direction::Unswap => (STANDBY_SUFFIX, "_unpartitioned"),
    };
    // On the unswap, the indexes the prepare built from the policy have no
    // counterpart on the old table.
    let declared: Vec<&str> = match direction {
        Direction::Swap => Vec::new(),
        Direction::Unswap => table.indexes.iter().map(|i| i.name.as_str()).collect(),
    };
    let indexes = live
        .indexes
        .iter()
        .filter(|i| !declared.contains(&i.name.as_str()));
    let schema = &names.source.schema;
    let aside_table = QualifiedName::new(schema.clone(), aside).quoted();
    let (mut first, mut then) = (Vec::new(), Vec::new());
    for index in indexes {
        let rename = |table: &str, from: &str, to: &str| match &index.constraint {
            Some(_) => format!(
                "ALTER TABLE {table} RENAME CONSTRAINT {} TO {}",
                quote_ident(from),
                quote_ident(to)
            ),
            None => format!(
                "ALTER INDEX {} RENAME TO {}",
                QualifiedName::new(schema.clone(), from).quoted(),
                quote_ident(to)
            ),
        };
        let name = index.constraint.as_deref().unwrap_or(&index.name);
        first.push(rename(&aside_table, name, &suffixed(name, away)));
        then.push(rename(&names.source.quoted(), &suffixed(name, back), name));
    }
    first.extend(then);
    first
}

/// Sequences, identity, views, and (on the swap) triggers, row security
/// and policies, then foreign keys re-pointed NOT VALID. Every statement
/// runs after the renames, so the table's name means the table taking it.
fn carry_over(names: &Names, live: &SourceTable, aside: &str, direction: Direction) -> Vec<String> {
    let table = names.source.quoted();
    let aside = QualifiedName::new(names.source.schema.clone(), aside).quoted();
    let mut sql = Vec::new();
    for column in live.columns.iter().filter(|c| !c.identity.is_empty()) {
        sql.push(format!(
            "SELECT setval(pg_get_serial_sequence({}, {name}), nextval(pg_get_serial_sequence({}, {name})))",
            quote_literal(&table),
            quote_literal(&aside),
            name = quote_literal(&column.name)
        ));
    }
    for dependency in &live.dependencies {
        let definition = dependency.definition.as_deref().unwrap_or_default();
        match (&dependency.kind, &dependency.relation, &dependency.object) {
            (DependentKind::OwnedSequence, _, Some(column)) => sql.push(format!(
                "ALTER SEQUENCE {definition} OWNED BY {table}.{}",
                quote_ident(column)
            )),
            // With its options (security_barrier, security_invoker,
            // check_option), which CREATE OR REPLACE would otherwise reset.
            (DependentKind::View, Some(view), _) => sql.push(format!(
                "CREATE OR REPLACE VIEW {}{definition}",
                view.quoted()
            )),
            (DependentKind::Trigger, _, trigger) if direction == Direction::Swap => {
                sql.push(definition.to_owned());
                // CREATE TRIGGER makes it fire as usual: a disabled trigger
                // (or one for replicas) stays as it was.
                if let (Some(state), Some(trigger)) = (&dependency.trigger_state, trigger) {
                    sql.push(format!(
                        "ALTER TABLE {table} {state} TRIGGER {}",
                        quote_ident(trigger)
                    ));
                }
            }
            (DependentKind::Policy, _, Some(policy)) if direction == Direction::Swap => {
                sql.push(format!(
                    "CREATE POLICY {} ON {table}{definition}",
                    quote_ident(policy)
                ))
            }
            _ => {}
        }
    }
    if direction == Direction::Swap && live.row_security {
        sql.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"));
    }
    if direction == Direction::Swap && live.force_row_security {
        sql.push(format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"));
    }
    sql.extend(foreign_keys(live));
    sql
}

/// Each foreign key pointing at the table dropped and added again NOT
/// VALID, so it now points at the table taking the name.
fn foreign_keys(live: &SourceTable) -> Vec<String> {
    let mut sql = Vec::new();
    for dependency in &live.dependencies {
        if let (DependentKind::ForeignKey, Some(child), Some(name), Some(definition)) = (
            &dependency.kind,
            &dependency.relation,
            &dependency.object,
            &dependency.definition,
        ) {
            let definition = definition.trim_end_matches(" NOT VALID");
            sql.push(format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                child.quoted(),
                quote_ident(name)
            ));
            sql.push(format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {definition} NOT VALID",
                child.quoted(),
                quote_ident(name)
            ));
        }
    }
    sql
}

fn journal_update(names: &Names, direction: Direction, aside: &str) -> String {
    let (phase, kept) = match direction {
        Direction::Swap => ("swapped", quote_literal(aside)),
        Direction::Unswap => ("backfilled", "NULL".to_owned()),
    };
    format!(
        "UPDATE {} SET phase = '{phase}', kept_as = {kept}, updated_at = now() WHERE source = {}",
        names.journal.quoted(),
        quote_literal(&names.source.quoted())
    )
}

/// After the swap: each re-pointed foreign key validated, one transaction
/// each (SHARE UPDATE EXCLUSIVE on the referencing table: its reads and
/// writes go on).
pub(super) fn validate_steps(table: &TablePolicy, live: &SourceTable) -> Vec<Step> {
    foreign_key_validations(table, live, false)
}

/// The validations a swap of `live` leads to: every foreign key pointing
/// at it (`all`), or those not validated yet.
pub(super) fn foreign_key_validations(
    table: &TablePolicy,
    live: &SourceTable,
    all: bool,
) -> Vec<Step> {
    live.dependencies
        .iter()
        .filter(|d| d.kind == DependentKind::ForeignKey && (all || !d.validated))
        .filter_map(|d| {
            let (child, name) = (d.relation.as_ref()?, d.object.as_ref()?);
            let mut validate = step(
                table,
                Action::ConvertValidate,
                Lock::ShareUpdateExclusive,
                &format!(
                    "validates the foreign key {name} of {child}, added NOT VALID by the swap"
                ),
            );
            validate.partition = Some(child.clone());
            validate.other_locks = Some(format!(
                "SHARE UPDATE EXCLUSIVE on {child}; ROW SHARE on the table"
            ));
            validate.sql = vec![format!(
                "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                child.quoted(),
                quote_ident(name)
            )];
            Some(validate)
        })
        .collect()
}

/// `--drop-old`: the capture ends and the old table, the log and the
/// capture's functions go; the journal row with them.
pub(super) fn drop_old_step(table: &TablePolicy, names: &Names, kept: &QualifiedName) -> Step {
    let mut drop = step(
        table,
        Action::ConvertDropOld,
        Lock::AccessExclusive,
        &format!(
            "ends the change capture (DROP TRIGGER takes ACCESS EXCLUSIVE for an instant) and drops {kept}, \
             the log and the capture's functions"
        ),
    );
    drop.partition = Some(kept.clone());
    drop.sql = end_of_conversion(names, kept, "");
    drop
}

/// `--abort` before the swap: the capture ended on the table and the
/// partitioned copy dropped with its partitions, as if the conversion had
/// never started. `IF EXISTS`: a prepare killed between its transactions
/// left part of it.
pub(super) fn abort_step(table: &TablePolicy, names: &Names) -> Step {
    let mut abort = step(
        table,
        Action::ConvertAbort,
        Lock::AccessExclusive,
        &format!(
            "ends the change capture on {} (DROP TRIGGER takes ACCESS EXCLUSIVE for an instant) and drops {} \
             with its partitions, the log, the capture's functions and the journal row; the table itself is \
             not changed",
            names.source, names.target
        ),
    );
    abort.partition = Some(names.target.clone());
    abort.sql = end_of_conversion(names, &names.target, " IF EXISTS");
    abort
}

/// The capture's triggers dropped from the table, then `dropped`, the log,
/// the capture's functions and the journal row.
fn end_of_conversion(names: &Names, dropped: &QualifiedName, if_exists: &str) -> Vec<String> {
    let table_name = names.source.quoted();
    vec![
        format!("DROP TRIGGER{if_exists} {CAPTURE_TRIGGER} ON {table_name}"),
        format!("DROP TRIGGER{if_exists} {TRUNCATE_TRIGGER} ON {table_name}"),
        format!("DROP TABLE{if_exists} {}", dropped.quoted()),
        format!("DROP TABLE{if_exists} {}", names.log.quoted()),
        format!("DROP FUNCTION{if_exists} {}()", names.capture.quoted()),
        format!("DROP FUNCTION{if_exists} {}()", names.no_truncate.quoted()),
        format!(
            "DELETE FROM {} WHERE source = {}",
            names.journal.quoted(),
            quote_literal(&names.source.quoted())
        ),
    ]
}
