//! The plan of a conversion: a pure function of the policy entry, the
//! checked source table, its key range, the journal and now. The fixed
//! steps (the partitioned table, the capture) are planner steps with their
//! exact SQL and locks; the backfill and replay batches are steps too,
//! whose statements run again and again with their parameters (`$1`…)
//! until there is nothing left.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::check::Checked;
use super::journal::{JournalPhase, State};
use super::source::SourceTable;
use crate::db::ident::{QualifiedName, shorten_identifier};
use crate::db::{quote_ident, quote_literal};
use crate::partition::calendar::{self, KeyType, KeyValue};
use crate::partition::planner::{self, Action, Lock, PeriodPartition, Step};
use crate::partition::policy::TablePolicy;

/// The name of the row trigger capturing changes.
pub const CAPTURE_TRIGGER: &str = "pgm_convert_capture";
/// The name of the statement trigger refusing TRUNCATE.
pub const TRUNCATE_TRIGGER: &str = "pgm_convert_truncate";
/// The journal table, in the source's schema.
pub const JOURNAL_TABLE: &str = "pgm_convert";

/// The objects a conversion makes next to the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Names {
    pub source: QualifiedName,
    pub target: QualifiedName,
    pub log: QualifiedName,
    pub capture: QualifiedName,
    pub no_truncate: QualifiedName,
    pub journal: QualifiedName,
}

impl Names {
    pub fn of(source: &QualifiedName) -> Names {
        let sibling = |suffix: &str| source.with_name(&format!("{}{suffix}", source.name));
        Names {
            source: source.clone(),
            target: sibling("_partitioned"),
            log: sibling("_pgm_log"),
            capture: sibling("_pgm_capture"),
            no_truncate: sibling("_pgm_no_truncate"),
            journal: QualifiedName::new(source.schema.clone(), JOURNAL_TABLE),
        }
    }
}

trait WithName {
    fn with_name(&self, name: &str) -> QualifiedName;
}

impl WithName for QualifiedName {
    fn with_name(&self, name: &str) -> QualifiedName {
        QualifiedName::new(self.schema.clone(), shorten_identifier(name))
    }
}

/// The smallest and largest key of the source, as PostgreSQL prints them
/// (session in UTC); `None` for an empty table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRange {
    pub min: Option<String>,
    pub max: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{0} already exists and no conversion of {1} is journaled in {2}: pgm makes it; rename or drop it"
    )]
    TargetExists(String, String, String),
    #[error("{table}: the key value {value} cannot be read as a {key:?} key")]
    KeyValue {
        table: String,
        value: String,
        key: KeyType,
    },
    #[error("{0}")]
    Partitions(String),
    #[error(
        "{table} and {target} no longer have the same columns ({differences}): a migration changed the table \
         during the conversion; make the same change to {target}, then run again"
    )]
    ColumnsDiffer {
        table: String,
        target: String,
        differences: String,
    },
}

/// Every step of the phases built so far.
#[derive(Debug, Clone, Serialize)]
pub struct ConvertPlan {
    pub now: DateTime<Utc>,
    pub names: Names,
    /// The fixed steps still to run, in order.
    pub prepare: Vec<Step>,
    /// Whether the journal says every row was copied.
    pub backfilled: bool,
    pub backfill: Backfill,
    pub replay: Step,
    /// Statistics for the partitioned table before verify and the swap.
    pub analyze: Step,
    pub verify: Step,
    pub swap: Step,
    /// After the swap, one transaction each.
    pub validate: Vec<Step>,
    /// The name the old table keeps after the swap.
    pub keep_as: String,
}

/// The backfill's batch, in its two forms: the first batch, and every
/// batch after the last copied primary key.
#[derive(Debug, Clone, Serialize)]
pub struct Backfill {
    pub first: Step,
    pub next: Step,
}

pub fn plan(
    table: &TablePolicy,
    checked: &Checked,
    source: &SourceTable,
    range: &KeyRange,
    state: &State,
    keep_as: &str,
    now: DateTime<Utc>,
) -> Result<ConvertPlan, PlanError> {
    let names = Names::of(&source.name);
    let phase = state.journal.as_ref().map(|j| j.phase);
    if phase.is_none() && state.target_exists {
        return Err(PlanError::TargetExists(
            names.target.to_string(),
            names.source.to_string(),
            names.journal.to_string(),
        ));
    }
    if let Some(target) = &state.target {
        same_columns(source, target)?;
    }
    let mut prepare = Vec::new();
    let ranges = partition_steps(table, checked, source, range, state, now, &mut prepare)?;
    if phase.is_none_or(|p| p < JournalPhase::Capturing) {
        prepare.push(capture_step(table, checked, &names));
    }
    let columns = Columns::of(checked, source);
    Ok(ConvertPlan {
        now,
        prepare,
        backfilled: phase >= Some(JournalPhase::Backfilled),
        backfill: backfill_steps(table, &names, &columns),
        replay: replay_step(table, &names, &columns),
        analyze: analyze_step(table, &names),
        verify: super::verify::verify_step(table, checked, source, &names, &columns, &ranges),
        swap: super::swap::swap_step(
            table,
            &names,
            source,
            &names.target,
            keep_as,
            super::swap::Direction::Swap,
        ),
        validate: super::swap::foreign_key_validations(table, source, true),
        keep_as: keep_as.to_owned(),
        names,
    })
}

/// The copy, the replay and verify name the source's columns in the
/// partitioned table: a column added, dropped or retyped on one side only
/// stops the run with what differs.
fn same_columns(source: &SourceTable, target: &SourceTable) -> Result<(), PlanError> {
    let describe = |table: &SourceTable| -> Vec<String> {
        let mut columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.sql_type))
            .collect();
        columns.sort();
        columns
    };
    let (ours, theirs) = (describe(source), describe(target));
    let mut differences: Vec<String> = ours
        .iter()
        .filter(|c| !theirs.contains(c))
        .map(|c| format!("{c} only in {}", source.name))
        .collect();
    differences.extend(
        theirs
            .iter()
            .filter(|c| !ours.contains(c))
            .map(|c| format!("{c} only in {}", target.name)),
    );
    if differences.is_empty() {
        return Ok(());
    }
    Err(PlanError::ColumnsDiffer {
        table: source.name.to_string(),
        target: target.name.to_string(),
        differences: differences.join("; "),
    })
}

/// The step making the partitioned table and its partitions (or, once it
/// exists, the partitions it lacks); returns every partition it will have.
fn partition_steps(
    table: &TablePolicy,
    checked: &Checked,
    source: &SourceTable,
    range: &KeyRange,
    state: &State,
    now: DateTime<Utc>,
    prepare: &mut Vec<Step>,
) -> Result<Vec<PartitionRange>, PlanError> {
    let names = Names::of(&source.name);
    let as_range = |p: PeriodPartition| PartitionRange {
        name: p.name,
        range: Some((p.from_literal, p.to_literal)),
    };
    if state.journal.is_none() {
        let partitions = partitions(table, checked, range, now)?;
        let (first, rest) = partitions.split_at(partitions.len().min(PARTITIONS_PER_TRANSACTION));
        prepare.push(create_step(table, checked, source, &names, first));
        prepare.extend(rest.chunks(PARTITIONS_PER_TRANSACTION).map(|chunk| {
            let reason = format!(
                "{} more partition(s) of the prepare, from {}",
                chunk.len(),
                chunk[0].name
            );
            extend_step(table, source, &names, chunk, &reason)
        }));
        let mut ranges: Vec<PartitionRange> = partitions.into_iter().map(as_range).collect();
        if table.default_partition {
            ranges.push(PartitionRange {
                name: default_partition(&names).name,
                range: None,
            });
        }
        return Ok(ranges);
    }
    let missing = missing_partitions(table, checked, range, state, now)?;
    prepare.extend(missing.chunks(PARTITIONS_PER_TRANSACTION).map(|chunk| {
        let reason = format!(
            "{} partition(s) the table's keys need that the partitioned table lacks (keys written since \
             the prepare outside its partitions, or a prepare stopped before its last partitions)",
            chunk.len()
        );
        extend_step(table, source, &names, chunk, &reason)
    }));
    let mut ranges = state.partitions.clone();
    ranges.extend(missing.into_iter().map(as_range));
    Ok(ranges)
}

/// The partitions from the oldest key through the newest (or now, for a
/// time key, when later) and premake more.
fn partitions(
    table: &TablePolicy,
    checked: &Checked,
    range: &KeyRange,
    now: DateTime<Utc>,
) -> Result<Vec<PeriodPartition>, PlanError> {
    let key = checked.key_type;
    let parse = |text: &Option<String>| -> Result<Option<KeyValue>, PlanError> {
        text.as_deref()
            .map(|value| {
                calendar::parse_bound(key, value).ok_or_else(|| PlanError::KeyValue {
                    table: checked.table.to_string(),
                    value: value.to_owned(),
                    key,
                })
            })
            .transpose()
    };
    let (min, max) = (parse(&range.min)?, parse(&range.max)?);
    let reference = match key {
        KeyType::Id(_) => None,
        _ => calendar::key_now(key, now, table.time_zone),
    };
    let last = max.max(reference).unwrap_or(0);
    let first = min.unwrap_or(last).min(last);
    planner::covering(table, key, first, last).map_err(PlanError::Partitions)
}

/// The partitions the table's keys now need (rows written since the
/// prepare may lie before the first partition or after the last) that the
/// partitioned table lacks: periods overlapping no existing partition.
fn missing_partitions(
    table: &TablePolicy,
    checked: &Checked,
    range: &KeyRange,
    state: &State,
    now: DateTime<Utc>,
) -> Result<Vec<PeriodPartition>, PlanError> {
    let key = checked.key_type;
    let existing: Vec<(KeyValue, KeyValue)> = state
        .partitions
        .iter()
        .filter_map(|p| {
            let (from, to) = p.range.as_ref()?;
            Some((
                calendar::parse_bound(key, from)?,
                calendar::parse_bound(key, to)?,
            ))
        })
        .collect();
    let mut needed = partitions(table, checked, range, now)?;
    needed.retain(|p| !existing.iter().any(|&(lo, hi)| p.start < hi && lo < p.end));
    Ok(needed)
}

/// Creating a partition locks it, its TOAST table and each of its indexes
/// until commit, in the server's shared lock table (by default about 6400
/// entries for every session together): partitions are created at most
/// this many per transaction, so that a table converted into thousands of
/// partitions does not run the server out of lock slots.
const PARTITIONS_PER_TRANSACTION: usize = 100;

/// Partitions added to the partitioned table before it takes the name:
/// nothing uses it, so its ACCESS EXCLUSIVE lock stops nobody.
fn extend_step(
    table: &TablePolicy,
    source: &SourceTable,
    names: &Names,
    missing: &[PeriodPartition],
    reason: &str,
) -> Step {
    let mut extend = step(table, Action::ConvertCreateTable, Lock::None, reason);
    extend.partition = Some(names.target.clone());
    extend.other_locks = Some(format!(
        "ACCESS EXCLUSIVE on {}, which nothing uses until the swap",
        names.target
    ));
    for partition in missing {
        let name = QualifiedName::new(names.target.schema.clone(), partition.name.clone());
        let bounds = format!(
            "FOR VALUES FROM ({}) TO ({})",
            partition.from_literal, partition.to_literal
        );
        extend
            .sql
            .extend(partition_sql(table, source, names, &name, &bounds));
    }
    extend
}

/// The columns as the copy and the log name them.
pub(super) struct Columns {
    /// Every column but stored generated ones, quoted, comma-separated.
    pub(super) copied: String,
    /// The primary key's columns, quoted.
    pub(super) key: Vec<String>,
    /// The primary key's columns with their types, for the log table.
    pub(super) key_types: Vec<(String, String)>,
}

impl Columns {
    /// The columns of a table whose primary key is known from the catalog.
    pub(super) fn from_source(source: &SourceTable) -> Columns {
        let key = source
            .primary_key()
            .map(|k| k.columns.clone())
            .unwrap_or_default();
        Columns::new(&key, source)
    }

    pub(super) fn of(checked: &Checked, source: &SourceTable) -> Columns {
        Columns::new(&checked.primary_key, source)
    }

    fn new(primary_key: &[String], source: &SourceTable) -> Columns {
        let copied: Vec<String> = source
            .columns
            .iter()
            .filter(|c| c.generated.is_empty())
            .map(|c| quote_ident(&c.name))
            .collect();
        let key_types = primary_key
            .iter()
            .map(|name| {
                let sql_type = source.column(name).map_or("text", |c| c.sql_type.as_str());
                (quote_ident(name), sql_type.to_owned())
            })
            .collect::<Vec<_>>();
        Columns {
            copied: copied.join(", "),
            key: key_types.iter().map(|(n, _)| n.clone()).collect(),
            key_types,
        }
    }

    /// `(a, b)`, or `(t.a, t.b)` with a prefix.
    pub(super) fn key_row(&self, prefix: &str) -> String {
        let parts: Vec<String> = self.key.iter().map(|k| format!("{prefix}{k}")).collect();
        format!("({})", parts.join(", "))
    }

    pub(super) fn key_list(&self) -> String {
        self.key.join(", ")
    }
}

/// A step of the conversion of `table`, in a transaction until told otherwise.
pub(super) fn step(table: &TablePolicy, action: Action, lock: Lock, reason: &str) -> Step {
    Step {
        lock,
        ..Step::new(table, action, reason)
    }
}

/// The journal, the partitioned table, its partitions and the log, in one
/// transaction: a kill leaves none of them, and the journal row says it is
/// done.
fn create_step(
    table: &TablePolicy,
    checked: &Checked,
    source: &SourceTable,
    names: &Names,
    partitions: &[PeriodPartition],
) -> Step {
    let mut step = step(
        table,
        Action::ConvertCreateTable,
        Lock::AccessShare,
        &format!(
            "the partitioned table {} like the source, {} partition(s), the change log {} and the journal row",
            names.target,
            partitions.len(),
            names.log
        ),
    );
    step.partition = Some(names.target.clone());
    let referenced = if source.constraints.iter().any(|c| c.kind == 'f') {
        "; SHARE ROW EXCLUSIVE on the tables its foreign keys reference, for the transaction"
    } else {
        ""
    };
    step.other_locks = Some(format!(
        "ACCESS EXCLUSIVE on {} and its partitions, which nothing uses until the swap{referenced}",
        names.target
    ));
    step.sql = create_journal(names);
    step.sql
        .extend(create_target(table, checked, source, names, partitions));
    step.sql.push(create_log(checked, source, names));
    step.sql.push(format!(
        "INSERT INTO {} (source, target, log, key, phase) VALUES ({}, {}, {}, {}, 'prepared')",
        names.journal.quoted(),
        quote_literal(&names.source.quoted()),
        quote_literal(&names.target.quoted()),
        quote_literal(&names.log.quoted()),
        quote_literal(&checked.key)
    ));
    step
}

/// The journal, made by the first conversion in the schema. Two starting
/// at once would both try to create it (and one fail on the catalog's
/// unique index): a transaction lock keyed on its name makes them take
/// turns.
fn create_journal(names: &Names) -> Vec<String> {
    let key = crate::db::lock::key_for(&format!("pgm partitions convert {}", names.journal));
    vec![
        format!("SELECT pg_advisory_xact_lock({key})"),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (source text PRIMARY KEY, target text NOT NULL, log text NOT NULL, \
         key text NOT NULL, phase text NOT NULL, kept_as text, backfill_until text[], backfill_after text[], copied int8 NOT NULL DEFAULT 0, \
         replayed int8 NOT NULL DEFAULT 0, started_at timestamptz NOT NULL DEFAULT now(), \
         updated_at timestamptz NOT NULL DEFAULT now())",
            names.journal.quoted()
        ),
    ]
}

fn create_target(
    table: &TablePolicy,
    checked: &Checked,
    source: &SourceTable,
    names: &Names,
    partitions: &[PeriodPartition],
) -> Vec<String> {
    let target = names.target.quoted();
    let owner = quote_ident(&source.owner);
    let mut sql = vec![
        format!(
            "CREATE TABLE {target} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED \
             INCLUDING IDENTITY INCLUDING COMMENTS INCLUDING STORAGE INCLUDING COMPRESSION) \
             PARTITION BY RANGE ({})",
            names.source.quoted(),
            quote_ident(&checked.key)
        ),
        format!("ALTER TABLE {target} OWNER TO {owner}"),
    ];
    if let Some(comment) = &source.comment {
        sql.push(format!(
            "COMMENT ON TABLE {target} IS {}",
            quote_literal(comment)
        ));
    }
    sql.extend(source.grants.iter().map(|g| g.sql(&target)));
    sql.extend(statistics_targets(source, &target));
    // On the empty parent first: each partition then gets its own copy as
    // it is created.
    sql.extend(target_indexes(table, checked, source, &target));
    for partition in partitions {
        let name = QualifiedName::new(names.target.schema.clone(), partition.name.clone());
        let bounds = format!(
            "FOR VALUES FROM ({}) TO ({})",
            partition.from_literal, partition.to_literal
        );
        sql.extend(partition_sql(table, source, names, &name, &bounds));
    }
    if table.default_partition {
        sql.extend(partition_sql(
            table,
            source,
            names,
            &default_partition(names),
            "DEFAULT",
        ));
    }
    sql
}

/// The source's per-column statistics targets set on `table` (quoted): a
/// partition does not take them from its parent.
fn statistics_targets(source: &SourceTable, table: &str) -> Vec<String> {
    source
        .columns
        .iter()
        .filter_map(|c| Some((c, c.statistics?)))
        .map(|(column, target)| {
            format!(
                "ALTER TABLE {table} ALTER COLUMN {} SET STATISTICS {target}",
                quote_ident(&column.name)
            )
        })
        .collect()
}

/// One partition of the partitioned table, in the source's tablespace,
/// with its storage parameters and statistics targets (a partitioned table
/// holds none itself), owned by its owner. The policy's `[table.partition]`
/// storage parameters and tablespace, which the partitions `maintain`
/// creates later get, take precedence, so that all partitions agree.
fn partition_sql(
    table: &TablePolicy,
    source: &SourceTable,
    names: &Names,
    name: &QualifiedName,
    bounds: &str,
) -> Vec<String> {
    let tablespace = table
        .partition
        .tablespace
        .as_ref()
        .or(source.tablespace.as_ref())
        .map(|t| format!(" TABLESPACE {}", quote_ident(t)))
        .unwrap_or_default();
    let policy = &table.partition.with;
    let mut parameters: Vec<String> = source
        .storage_parameters
        .iter()
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default();
            !policy.iter().any(|(n, _)| n == name)
        })
        .cloned()
        .collect();
    parameters.extend(policy.iter().map(|(n, v)| format!("{n}={v}")));
    let with = if parameters.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", parameters.join(", "))
    };
    let mut sql = vec![
        format!(
            "CREATE TABLE {} PARTITION OF {} {bounds}{with}{tablespace}",
            name.quoted(),
            names.target.quoted()
        ),
        format!(
            "ALTER TABLE {} OWNER TO {}",
            name.quoted(),
            quote_ident(&source.owner)
        ),
    ];
    sql.extend(statistics_targets(source, &name.quoted()));
    sql
}

/// The source's indexes and constraints, its foreign keys to other tables
/// and the policy's declared indexes, built while the table is empty.
fn target_indexes(
    table: &TablePolicy,
    checked: &Checked,
    source: &SourceTable,
    target: &str,
) -> Vec<String> {
    let mut sql: Vec<String> = source
        .indexes
        .iter()
        .filter_map(|index| standby_index(index, target))
        .collect();
    // A partitioned table takes no NOT VALID foreign key before PostgreSQL
    // 18: added while empty, the check is instant, and every copied row is
    // checked as it comes.
    sql.extend(
        source
            .constraints
            .iter()
            .filter(|c| c.kind == 'f' && c.references != Some(source.oid))
            .map(|c| {
                format!(
                    "ALTER TABLE {target} ADD CONSTRAINT {} {}",
                    quote_ident(&c.name),
                    c.definition.trim_end_matches(" NOT VALID")
                )
            }),
    );
    let existing: Vec<&str> = source.indexes.iter().map(|i| i.name.as_str()).collect();
    sql.extend(
        table
            .indexes
            .iter()
            .filter(|index| !existing.contains(&index.name.as_str()))
            .filter_map(|index| planner::on_empty_parent(index, target, &checked.key)),
    );
    sql
}

/// What the partitioned table's copy of a source index is called until the
/// swap gives it the source's name (and the source's index this suffix).
pub const STANDBY_SUFFIX: &str = "_partitioned";

/// The name an index or constraint has on the other table.
pub(super) fn suffixed(name: &str, suffix: &str) -> String {
    shorten_identifier(&format!("{name}{suffix}"))
}

/// A source index built on the partitioned table while it is empty: a
/// constraint (primary key, unique) added as the source has it, any other
/// index from its definition; named with `STANDBY_SUFFIX` until the swap.
fn standby_index(index: &super::source::SourceIndex, target: &str) -> Option<String> {
    match (&index.constraint, &index.constraint_definition) {
        (Some(constraint), Some(definition)) => Some(format!(
            "ALTER TABLE {target} ADD CONSTRAINT {} {definition}",
            quote_ident(&suffixed(constraint, STANDBY_SUFFIX))
        )),
        _ => Some(format!(
            "CREATE {}INDEX {} ON {target} USING {}",
            if index.unique { "UNIQUE " } else { "" },
            quote_ident(&suffixed(&index.name, STANDBY_SUFFIX)),
            index.body.as_ref()?
        )),
    }
}

fn default_partition(names: &Names) -> QualifiedName {
    names
        .target
        .with_name(&format!("{}_default", names.source.name))
}

/// A partition of the target as verify compares it: its name and bound
/// literals, `None` for the default partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionRange {
    pub name: String,
    pub range: Option<(String, String)>,
}

/// The log: one row per touched primary key, in the order written.
fn create_log(checked: &Checked, source: &SourceTable, names: &Names) -> String {
    let columns = Columns::of(checked, source);
    let key_columns: Vec<String> = columns
        .key_types
        .iter()
        .map(|(name, sql_type)| format!("{name} {sql_type} NOT NULL"))
        .collect();
    format!(
        "CREATE TABLE {} (seq int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {})",
        names.log.quoted(),
        key_columns.join(", ")
    )
}

/// The capture: a row trigger logging the primary key of every written
/// row, and a statement trigger refusing TRUNCATE, which row triggers do
/// not see. Their functions run as their owner (SECURITY DEFINER, with a
/// fixed search_path), so writers need no privilege on the log.
fn capture_step(table: &TablePolicy, checked: &Checked, names: &Names) -> Step {
    let mut step = step(
        table,
        Action::ConvertStartCapture,
        Lock::ShareRowExclusive,
        "from now on every write to the table logs the primary keys it touches, and the backfill is bounded \
         by the largest primary key now (later rows reach the new table through the log); TRUNCATE is \
         refused until the conversion ends",
    );
    let refuse = format!(
        "BEGIN RAISE EXCEPTION 'TRUNCATE of % is refused while pgm partitions convert runs: the change \
         capture cannot see it', {}; END",
        quote_literal(&names.source.to_string())
    );
    let key = &checked.primary_key;
    let descending: Vec<String> = key
        .iter()
        .map(|k| format!("{} DESC", quote_ident(k)))
        .collect();
    step.sql = vec![
        function(&names.capture, &capture_body(key, names)),
        function(&names.no_truncate, &refuse),
    ];
    step.sql.extend(super::swap::capture_triggers(names));
    step.sql.push(ROW_SECURITY_OFF.to_owned());
    step.sql.push(format!(
        "UPDATE {} SET phase = 'capturing', backfill_until = (SELECT ARRAY[{}] FROM {} ORDER BY {} \
         LIMIT 1), updated_at = now() WHERE source = {}",
        names.journal.quoted(),
        key_text(key),
        names.source.quoted(),
        descending.join(", "),
        quote_literal(&names.source.quoted())
    ));
    step
}

/// The capture's PL/pgSQL body: the new key of an INSERT, the old key of
/// a DELETE, the old key of an UPDATE and the new one when it differs.
fn capture_body(key: &[String], names: &Names) -> String {
    let values = |row: &str| {
        let parts: Vec<String> = key
            .iter()
            .map(|c| format!("{row}.{}", quote_ident(c)))
            .collect();
        format!("({})", parts.join(", "))
    };
    let key_list: Vec<String> = key.iter().map(|c| quote_ident(c)).collect();
    let insert = |row: &str| {
        format!(
            "INSERT INTO {} ({}) VALUES {};",
            names.log.quoted(),
            key_list.join(", "),
            values(row)
        )
    };
    format!(
        "BEGIN IF TG_OP = 'INSERT' THEN {new} ELSIF TG_OP = 'DELETE' THEN {old} \
         ELSE {old} IF {} IS DISTINCT FROM {} THEN {new} END IF; END IF; RETURN NULL; END",
        values("OLD"),
        values("NEW"),
        new = insert("NEW"),
        old = insert("OLD"),
    )
}

/// The primary key's columns as text, for `ARRAY[…]`.
fn key_text(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A trigger function with a PL/pgSQL body, in a dollar quote the body
/// cannot close. Plain `CREATE`: a function someone else made under this
/// name stops the step rather than being taken over (its owner could
/// change its body later, and it runs as a definer).
fn function(name: &QualifiedName, body: &str) -> String {
    let mut tag = String::from("$pgm$");
    while body.contains(&tag) {
        tag.insert(tag.len() - 1, '_');
    }
    format!(
        "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
         SET search_path = pg_catalog, pg_temp AS {tag}{body}{tag}",
        name.quoted()
    )
}

/// One batch of the copy, up to the bound the capture step journaled
/// (`$2`, or `$3` in the later form): `$1` the batch size; in the later
/// form `$2` the last copied primary key. Both as text. Returns the rows
/// read and the last primary key of the batch; the journal records it in
/// the same transaction (`$1` the key, `$2` the rows).
fn backfill_steps(table: &TablePolicy, names: &Names, columns: &Columns) -> Backfill {
    let parameter = |number: usize| {
        let values: Vec<String> = columns
            .key_types
            .iter()
            .enumerate()
            .map(|(i, (_, sql_type))| format!("(${number}::text[])[{}]::{sql_type}", i + 1))
            .collect();
        format!("({})", values.join(", "))
    };
    let key = columns.key_row("");
    let first = format!(" WHERE {key} <= {}", parameter(2));
    let next = format!(
        " WHERE {key} > {} AND {key} <= {}",
        parameter(2),
        parameter(3)
    );
    let journal = format!(
        "UPDATE {} SET backfill_after = coalesce($1, backfill_after), copied = copied + $2, \
         phase = CASE WHEN $2 = 0 THEN 'backfilled' ELSE phase END, updated_at = now() WHERE source = {}",
        names.journal.quoted(),
        quote_literal(&names.source.quoted())
    );
    let reason = "copies the next rows in primary key order up to the bound; never overwrites a row (the \
                  replay corrects what changed since); repeated until a batch copies nothing";
    let mut step = step(table, Action::ConvertBackfill, Lock::AccessShare, reason);
    step.partition = Some(names.target.clone());
    let mut first_step = step.clone();
    first_step.sql = vec![
        ROW_SECURITY_OFF.to_owned(),
        backfill_batch(names, columns, &first),
        journal.clone(),
    ];
    step.sql = vec![
        ROW_SECURITY_OFF.to_owned(),
        backfill_batch(names, columns, &next),
        journal,
    ];
    Backfill {
        first: first_step,
        next: step,
    }
}

fn backfill_batch(names: &Names, columns: &Columns, filter: &str) -> String {
    let key_text: Vec<String> = columns.key.iter().map(|k| format!("{k}::text")).collect();
    let descending: Vec<String> = columns.key.iter().map(|k| format!("{k} DESC")).collect();
    format!(
        "WITH batch AS (SELECT {cols} FROM {source}{filter} ORDER BY {keys} LIMIT $1), \
         copied AS (INSERT INTO {target} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM batch \
         ON CONFLICT DO NOTHING) \
         SELECT (SELECT count(*) FROM batch), \
         (SELECT ARRAY[{key_text}] FROM batch ORDER BY {descending} LIMIT 1)",
        cols = columns.copied,
        source = names.source.quoted(),
        keys = columns.key_list(),
        target = names.target.quoted(),
        key_text = key_text.join(", "),
        descending = descending.join(", "),
    )
}

/// One batch of the replay, in one REPEATABLE READ snapshot: the first
/// `$1` log entries; each key deleted from the target and copied again
/// from the source if it still has it; the entries removed.
fn replay_step(table: &TablePolicy, names: &Names, columns: &Columns) -> Step {
    let mut replay = step(
        table,
        Action::ConvertReplay,
        Lock::AccessShare,
        "applies the oldest logged changes: each logged key is deleted from the partitioned table and \
         copied again from the table if it still holds it; repeated until the log is nearly empty, and \
         again right before the swap, so that the swap's own replay (under its lock) is short",
    );
    replay.partition = Some(names.target.clone());
    let log = names.log.quoted();
    replay.sql = vec![
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_owned(),
        ROW_SECURITY_OFF.to_owned(),
    ];
    replay.sql.extend(PROBE_BY_KEY.map(str::to_owned));
    replay.sql.push(format!(
        "SELECT count(*), max(seq) FROM (SELECT seq FROM {log} ORDER BY seq LIMIT $1) entries"
    ));
    replay.sql.extend(replay_statements(
        columns,
        &names.log,
        (&names.source, &names.target),
        " WHERE seq <= $1",
    ));
    replay.sql.extend([format!(
        "UPDATE {} SET replayed = replayed + $1, updated_at = now() WHERE source = {}",
        names.journal.quoted(),
        quote_literal(&names.source.quoted())
    )]);
    replay
}

/// The logged keys (the entries `entries` selects) applied from `live` to
/// `standby`: each deleted there and copied again from `live` if it still
/// holds it; then those entries removed.
pub(super) fn replay_statements(
    columns: &Columns,
    log: &QualifiedName,
    (live, standby): (&QualifiedName, &QualifiedName),
    entries: &str,
) -> [String; 3] {
    let (log, keys) = (log.quoted(), columns.key_list());
    [
        format!(
            "DELETE FROM {} t USING (SELECT DISTINCT {keys} FROM {log}{entries}) k WHERE {} = {}",
            standby.quoted(),
            columns.key_row("t."),
            columns.key_row("k.")
        ),
        format!(
            "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {} \
             WHERE ({keys}) IN (SELECT {keys} FROM {log}{entries})",
            standby.quoted(),
            live.quoted(),
            cols = columns.copied
        ),
        format!("DELETE FROM {log}{entries}"),
    ]
}

/// ANALYZE of the partitioned table: autovacuum analyzes partitions but
/// never a partitioned parent, whose statistics the application's queries
/// need from the swap on.
fn analyze_step(table: &TablePolicy, names: &Names) -> Step {
    let mut analyze = step(
        table,
        Action::ConvertVerify,
        Lock::None,
        "statistics for the partitioned table and its partitions, which the application's queries use \
         from the swap on (autovacuum never analyzes a partitioned parent)",
    );
    analyze.partition = Some(names.target.clone());
    analyze.other_locks = Some(format!(
        "SHARE UPDATE EXCLUSIVE on {}, which nothing uses until the swap",
        names.target
    ));
    analyze.sql = vec![format!("ANALYZE {}", names.target.quoted())];
    analyze
}

/// Every read of the table's rows for the copy, the replay, the check and
/// the swap: row-level security that would hide rows from pgm's role must
/// stop the conversion (PostgreSQL then raises an error) rather than
/// filter what is copied and compared, and publish a partial table.
pub(super) const ROW_SECURITY_OFF: &str = "SET LOCAL row_security = off";

/// Applying a few logged keys to a big table must probe its index per key:
/// a hash join would read the whole table (under the swap's lock, even),
/// and the planner picks one when its statistics lag behind the copy.
pub(super) const PROBE_BY_KEY: [&str; 2] = [
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
];
