//! The check phase: a pure function of the policy entry, the source table
//! as the catalog describes it, and now. It changes nothing; it says why
//! the table cannot be converted, every reason at once, or what the
//! conversion will carry over and how.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::source::{Constraint, DependentKind, SourceTable};
use crate::db::ident::QualifiedName;
use crate::partition::calendar::{KeyType, SqlKey};
use crate::partition::catalog::PartitionKey;
use crate::partition::planner;
use crate::partition::policy::TablePolicy;

/// How one dependent of the table gets to the partitioned table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "when", content = "how")]
pub enum Carry {
    /// Made part of the new table when it is created.
    AtPrepare(String),
    /// Moved in the swap's transaction (or right after it).
    AtSwap(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependent {
    pub name: String,
    pub carry: Carry,
}

/// A table that can be converted, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub table: QualifiedName,
    pub key: String,
    pub key_type: KeyType,
    /// The primary key's columns, which the change capture logs.
    pub primary_key: Vec<String>,
    pub dependents: Vec<Dependent>,
}

/// One reason a table cannot be converted; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{at}: the entry names no key column: add key = \"<column>\", the column to partition on"
    )]
    NoKeyInPolicy { at: String },
    #[error("{table} does not exist")]
    Missing { table: QualifiedName },
    #[error("{table} is already partitioned: `pgm partitions maintain` looks after it as it is")]
    AlreadyPartitioned { table: QualifiedName },
    #[error("{table} is not a plain table (relkind {relkind}): only tables can be converted")]
    NotATable { table: QualifiedName, relkind: char },
    #[error(
        "{table} takes part in table inheritance: a partitioned table can neither inherit nor be inherited"
    )]
    Inheritance { table: QualifiedName },
    #[error("{table} is UNLOGGED: convert a logged table (ALTER TABLE … SET LOGGED first)")]
    Unlogged { table: QualifiedName },
    #[error("{at}: key = \"{column}\", but {table} has no column {column}{near}")]
    KeyMissing {
        at: String,
        table: QualifiedName,
        column: String,
        near: String,
    },
    #[error("{0}")]
    KeyType(String),
    #[error(
        "{table}.{column} may hold NULL ({nulls} row(s) do): a range-partitioned table has no place for a NULL \
         key; fill them, then add ADD CONSTRAINT … CHECK ({column} IS NOT NULL) NOT VALID, VALIDATE it, and \
         SET NOT NULL (which then needs no scan)"
    )]
    KeyNullable {
        table: QualifiedName,
        column: String,
        nulls: i64,
    },
    #[error(
        "{table} has no primary key: the change capture logs each written row by its primary key; add \
         PRIMARY KEY (…, {key}) first"
    )]
    NoPrimaryKey { table: QualifiedName, key: String },
    #[error(
        "{what} {name} of {table} is ({columns}), without the key {key}: a partitioned table's unique \
         constraints must include it; make it {should_be}"
    )]
    UniqueWithoutKey {
        what: &'static str,
        name: String,
        table: QualifiedName,
        columns: String,
        key: String,
        should_be: String,
    },
    #[error("{name} cannot be carried over to the partitioned table: {why}")]
    Dependent { name: String, why: String },
}

/// Why a table cannot be converted: every reason found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} cannot be converted; nothing was changed:{}", list(.refusals))]
pub struct CheckError {
    pub table: QualifiedName,
    pub refusals: Vec<Refusal>,
}

fn list(refusals: &[Refusal]) -> String {
    refusals.iter().map(|r| format!("\n  - {r}")).collect()
}

/// Whether `source` can be converted as `table` says, at `now`.
pub fn check(
    table: &TablePolicy,
    source: Option<&SourceTable>,
    now: DateTime<Utc>,
) -> Result<Checked, CheckError> {
    let name = table.parent();
    let fail = |refusals: Vec<Refusal>| CheckError {
        table: name.clone(),
        refusals,
    };
    let Some((key, _)) = &table.key else {
        return Err(fail(vec![Refusal::NoKeyInPolicy {
            at: table.location.to_string(),
        }]));
    };
    let Some(source) = source else {
        return Err(fail(vec![Refusal::Missing {
            table: table.parent(),
        }]));
    };
    let mut refusals = shape(source);
    if !refusals.is_empty() {
        return Err(fail(refusals));
    }
    let key_type = check_key(table, source, key, &mut refusals);
    if let Err(message) = table.check_plannable(now) {
        refusals.push(Refusal::KeyType(message));
    }
    unique_constraints(source, key, &mut refusals);
    let dependents = dependents(source, &mut refusals);
    match (key_type, source.primary_key()) {
        (Some(key_type), Some(primary_key)) if refusals.is_empty() => Ok(Checked {
            table: source.name.clone(),
            key: key.clone(),
            key_type,
            primary_key: primary_key.columns.clone(),
            dependents,
        }),
        _ => Err(fail(refusals)),
    }
}

/// The kind of relation, and what partitioning forbids.
fn shape(source: &SourceTable) -> Vec<Refusal> {
    let table = source.name.clone();
    let refusal = match source.relkind {
        'p' => Some(Refusal::AlreadyPartitioned { table }),
        'r' if source.inheritance => Some(Refusal::Inheritance { table }),
        'r' if source.unlogged => Some(Refusal::Unlogged { table }),
        'r' => None,
        relkind => Some(Refusal::NotATable { table, relkind }),
    };
    refusal.into_iter().collect()
}

/// The key column: present, NOT NULL, of a type the policy's planner cuts.
fn check_key(
    table: &TablePolicy,
    source: &SourceTable,
    key: &str,
    refusals: &mut Vec<Refusal>,
) -> Option<KeyType> {
    let at = table.key.as_ref().map(|(_, at)| at.to_string());
    let Some(column) = source.column(key) else {
        let names: Vec<&str> = source.columns.iter().map(|c| c.name.as_str()).collect();
        let near = crate::suggest::did_you_mean(key, &names)
            .map(|n| format!(" (did you mean {n}?)"))
            .unwrap_or_default();
        refusals.push(Refusal::KeyMissing {
            at: at.unwrap_or_default(),
            table: source.name.clone(),
            column: key.to_owned(),
            near,
        });
        return None;
    };
    if !column.not_null {
        refusals.push(Refusal::KeyNullable {
            table: source.name.clone(),
            column: key.to_owned(),
            nulls: source.null_keys.unwrap_or(0),
        });
    }
    let partition_key = PartitionKey {
        column: key.to_owned(),
        sql_type: column.sql_type.clone(),
    };
    let result = match SqlKey::from_sql_type(&column.sql_type) {
        Some(sql_key) => planner::key_type(table, &partition_key, sql_key).map_err(|(_, m)| m),
        None => Err(format!(
            "{}.{key} is of type {}: pgm partitions timestamptz, timestamp, date and integer (smallint, \
             integer, bigint, numeric) keys",
            source.name, column.sql_type
        )),
    };
    result.map_err(|m| refusals.push(Refusal::KeyType(m))).ok()
}

/// The primary key must exist; it and every unique constraint or index
/// must include the key.
fn unique_constraints(source: &SourceTable, key: &str, refusals: &mut Vec<Refusal>) {
    if source.primary_key().is_none() {
        refusals.push(Refusal::NoPrimaryKey {
            table: source.name.clone(),
            key: key.to_owned(),
        });
    }
    let constraints = source
        .constraints
        .iter()
        .filter(|c| matches!(c.kind, 'p' | 'u'));
    for constraint in constraints {
        if !constraint.columns.iter().any(|c| c == key) {
            refusals.push(without_key(source, constraint, key));
        }
        if constraint.deferrable {
            refusals.push(Refusal::Dependent {
                name: format!("deferrable constraint {}", constraint.name),
                why: "the copy and the replay write with ON CONFLICT, which PostgreSQL refuses on a \
                      deferrable primary key or unique constraint: recreate it NOT DEFERRABLE for the \
                      conversion"
                    .into(),
            });
        }
    }
    let indexes = source
        .indexes
        .iter()
        .filter(|i| i.unique && i.constraint.is_none());
    for index in indexes.filter(|i| !i.columns.iter().any(|c| c == key)) {
        refusals.push(Refusal::UniqueWithoutKey {
            what: "unique index",
            name: index.name.clone(),
            table: source.name.clone(),
            columns: index.columns.join(", "),
            key: key.to_owned(),
            should_be: format!("an index on ({}, {key})", index.columns.join(", ")),
        });
    }
    for exclusion in source.constraints.iter().filter(|c| c.kind == 'x') {
        refusals.push(Refusal::Dependent {
            name: format!("exclusion constraint {}", exclusion.name),
            why: "exclusion constraints are not carried over yet: drop it for the conversion, add it back after"
                .into(),
        });
    }
}

fn without_key(source: &SourceTable, constraint: &Constraint, key: &str) -> Refusal {
    let what = if constraint.kind == 'p' {
        "PRIMARY KEY"
    } else {
        "UNIQUE"
    };
    let columns = constraint.columns.join(", ");
    Refusal::UniqueWithoutKey {
        what,
        name: constraint.name.clone(),
        table: source.name.clone(),
        columns: columns.clone(),
        key: key.to_owned(),
        should_be: format!("{what} ({columns}, {key})"),
    }
}

/// Everything that depends on the table with how it is carried over; what
/// cannot be is refused with why and what to do.
fn dependents(source: &SourceTable, refusals: &mut Vec<Refusal>) -> Vec<Dependent> {
    let mut carried = own_parts(source);
    for dependency in &source.dependencies {
        match carry(dependency.kind.clone()) {
            Ok(carry) => carried.push(Dependent {
                name: dependency.name.clone(),
                carry,
            }),
            Err(why) => refusals.push(Refusal::Dependent {
                name: dependency.name.clone(),
                why,
            }),
        }
    }
    for own in source.constraints.iter().filter(|c| c.kind == 'f') {
        if own.references == Some(source.oid) {
            refusals.push(Refusal::Dependent {
                name: format!("foreign key {} (it references the table itself)", own.name),
                why: "a self-referencing foreign key is not carried over yet: drop it for the conversion".into(),
            });
        }
    }
    carried
}

/// The table's own grants, comments, identity columns and row security.
fn own_parts(source: &SourceTable) -> Vec<Dependent> {
    let mut parts = Vec::new();
    let mut at_prepare = |name: String, how: &str| {
        parts.push(Dependent {
            name,
            carry: Carry::AtPrepare(how.to_owned()),
        });
    };
    if !source.grants.is_empty() {
        at_prepare(
            format!(
                "grants ({})",
                source
                    .grants
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "granted again on the new table",
        );
    }
    if source.comment.is_some() || source.columns.iter().any(|c| c.comment.is_some()) {
        at_prepare("comments".into(), "copied to the new table and its columns");
    }
    if !source.storage_parameters.is_empty() {
        at_prepare(
            format!(
                "storage parameters ({})",
                source.storage_parameters.join(", ")
            ),
            "set on each partition the prepare creates (a partitioned table holds none); partitions \
             `maintain` creates later get those the policy's [table.partition] `with` names, which take \
             precedence at the prepare too",
        );
    }
    let statistics: Vec<String> = source
        .columns
        .iter()
        .filter_map(|c| Some(format!("{} {}", c.name, c.statistics?)))
        .collect();
    if !statistics.is_empty() {
        at_prepare(
            format!("statistics targets ({})", statistics.join(", ")),
            "set on the new table's columns and its partitions",
        );
    }
    for column in source.columns.iter().filter(|c| !c.identity.is_empty()) {
        at_prepare(
            format!("identity column {}", column.name),
            "an identity column of the new table; its sequence is set past the old one's at the swap",
        );
    }
    for foreign_key in source
        .constraints
        .iter()
        .filter(|c| c.kind == 'f' && c.references != Some(source.oid))
    {
        at_prepare(
            format!(
                "foreign key {} ({})",
                foreign_key.name, foreign_key.definition
            ),
            "added to the new table while it is empty (SHARE ROW EXCLUSIVE on the referenced table for \
             the prepare's transaction); each copied row is checked",
        );
    }
    if source.row_security {
        parts.push(Dependent {
            name: "row level security".into(),
            carry: Carry::AtSwap(
                "enabled (and forced, as on the table) on the new table, with the policies".into(),
            ),
        });
    }
    parts
}

fn carry(kind: DependentKind) -> Result<Carry, String> {
    let swap = |how: &str| Ok(Carry::AtSwap(how.to_owned()));
    match kind {
        DependentKind::View => swap("recreated from its definition in the swap's transaction"),
        DependentKind::ForeignKey => swap(
            "dropped and added again NOT VALID against the new table in the swap's transaction, validated after it",
        ),
        DependentKind::Trigger => swap("created on the new table at the swap, so it does not fire on the backfill"),
        DependentKind::Policy => swap("created on the new table at the swap"),
        DependentKind::OwnedSequence => {
            swap("owned by the new table's column from the swap on; defaults keep using it")
        }
        DependentKind::MaterializedView => Err(
            "a materialized view cannot be pointed at another table without being rebuilt: drop it for the \
             conversion and create it again after"
                .into(),
        ),
        DependentKind::Publication => Err(
            "its subscribers know the table by identity: drop the table from the publication for the \
             conversion (ALTER PUBLICATION … DROP TABLE), add the converted table after and refresh the \
             subscriptions"
                .into(),
        ),
        DependentKind::PublicationOfPartitions => Err(
            "after the swap it would publish the partitions under their own names, which its subscribers \
             do not have: ALTER PUBLICATION … SET (publish_via_partition_root = true) first, so that the \
             partitioned table's changes are published as the table's"
                .into(),
        ),
        DependentKind::Rule => Err("rules are not carried over: drop the rule, create it again after".into()),
        DependentKind::Statistics => Err(
            "extended statistics are not carried over yet: drop them for the conversion, create them again after"
                .into(),
        ),
        DependentKind::Function => Err(
            "a function whose SQL-standard body (BEGIN ATOMIC) names the table stays bound to the old table: \
             drop it for the conversion, create it again after"
                .into(),
        ),
        DependentKind::Other => {
            Err("pgm does not know how to carry it over, and converting would leave it behind".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;
    use crate::partition::convert::source::{Column, Dependency, Grant, SourceIndex};
    use crate::partition::policy;

    fn table_policy(extra: &str) -> TablePolicy {
        let text = format!(
            "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\npremake = 2\n{extra}"
        );
        policy::parse(Path::new("partman.toml"), &text)
            .expect("a valid policy")
            .tables
            .remove(0)
    }

    fn column(name: &str, sql_type: &str, not_null: bool) -> Column {
        Column {
            name: name.into(),
            sql_type: sql_type.into(),
            not_null,
            default: None,
            identity: String::new(),
            generated: String::new(),
            comment: None,
            statistics: None,
        }
    }

    fn primary_key(columns: &[&str]) -> Constraint {
        Constraint {
            deferrable: false,
            name: "events_pkey".into(),
            kind: 'p',
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            definition: format!("PRIMARY KEY ({})", columns.join(", ")),
            references: None,
        }
    }

    fn events() -> SourceTable {
        SourceTable {
            oid: 1,
            name: QualifiedName::new("public", "events"),
            relkind: 'r',
            owner: "app".into(),
            tablespace: None,
            unlogged: false,
            inheritance: false,
            row_security: false,
            force_row_security: false,
            comment: None,
            grants: vec![Grant {
                grantee: None,
                privilege: "SELECT".into(),
                grantable: false,
                column: None,
            }],
            columns: vec![
                column("id", "bigint", true),
                column("created_at", "timestamp with time zone", true),
            ],
            constraints: vec![primary_key(&["id", "created_at"])],
            indexes: Vec::<SourceIndex>::new(),
            dependencies: Vec::new(),
            null_keys: None,
            server_version_num: 170000,
            fingerprint: String::new(),
            storage_parameters: Vec::new(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn refusals(extra: &str, source: &SourceTable) -> Vec<String> {
        match check(&table_policy(extra), Some(source), now()) {
            Ok(_) => Vec::new(),
            Err(error) => error.refusals.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_table_fit_for_conversion_is_checked_with_its_key_and_primary_key() {
        let checked = check(
            &table_policy("key = \"created_at\""),
            Some(&events()),
            now(),
        )
        .unwrap();
        assert_eq!(checked.key_type, KeyType::TimestampTz);
        assert_eq!(checked.primary_key, ["id", "created_at"]);
        assert_eq!(
            checked.dependents,
            [Dependent {
                name: "grants (SELECT to PUBLIC)".into(),
                carry: Carry::AtPrepare("granted again on the new table".into()),
            }]
        );
    }

    #[test]
    fn every_reason_is_given_at_once() {
        let mut source = events();
        source.columns[1].not_null = false;
        source.null_keys = Some(7);
        source.constraints = vec![primary_key(&["id"])];
        source.dependencies.push(Dependency {
            kind: DependentKind::MaterializedView,
            name: "materialized view public.daily".into(),
            definition: None,
            relation: None,
            object: None,
            validated: true,
            trigger_state: None,
        });
        let found = refusals("key = \"created_at\"", &source);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("public.events.created_at may hold NULL (7 row(s) do)"));
        assert!(found[1].ends_with("make it PRIMARY KEY (id, created_at)"));
        assert!(found[2].starts_with("materialized view public.daily cannot be carried over"));
    }

    #[test]
    fn a_policy_without_a_key_an_id_key_with_a_time_interval_and_a_view_are_told_apart() {
        assert_eq!(
            refusals("", &events()),
            [
                "partman.toml:1:1: the entry names no key column: add key = \"<column>\", the column to partition on"
            ]
        );
        let found = refusals("key = \"id\"", &events());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("does not say what it holds"),
            "{found:#?}"
        );
        let mut view = events();
        view.relkind = 'v';
        assert_eq!(
            refusals("key = \"created_at\"", &view),
            ["public.events is not a plain table (relkind v): only tables can be converted"]
        );
    }
}
