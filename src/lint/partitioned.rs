//! pgm's checks of partitioned tables, where squawk has none: a PRIMARY KEY
//! or UNIQUE constraint PostgreSQL will refuse because it lacks a partition
//! key column, and a range-partitioned table no policy entry maintains.
//!
//! Tables are followed across the migrations in version order, so a
//! constraint added by a later file is checked against the key an earlier
//! file gave the table.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::rules::PgmRule;
use crate::migrate::sql::unquote_identifier;
use crate::partition::policy::split_name_path;

/// What the policy file says about which tables pgm maintains.
#[derive(Debug, Clone)]
pub enum PolicyCoverage {
    /// No policy file: no table is maintained.
    NoFile { path: PathBuf },
    Tables {
        path: PathBuf,
        /// (schema, table) of every entry.
        names: Vec<(String, String)>,
    },
}

impl PolicyCoverage {
    fn covers(&self, name: &TableName) -> bool {
        let PolicyCoverage::Tables { names, .. } = self else {
            return false;
        };
        names.iter().any(|(schema, table)| {
            table == &name.table && name.schema.as_ref().is_none_or(|s| s == schema)
        })
    }
}

/// A table as a migration names it; an unqualified name matches any schema,
/// since the search_path it resolves through is the server's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TableName {
    schema: Option<String>,
    table: String,
}

impl TableName {
    fn from_node(node: &SyntaxNode) -> Option<TableName> {
        let text: String = node
            .descendants_with_tokens()
            .filter_map(|element| element.into_token())
            .filter(|token| !token.kind().is_trivia() && token.kind() != SyntaxKind::ONLY_KW)
            .map(|token| token.text().to_owned())
            .collect();
        let mut parts = split_name_path(&text)?;
        let table = parts.pop()?;
        Some(TableName {
            schema: parts.pop(),
            table,
        })
    }

    fn display(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.table),
            None => self.table.clone(),
        }
    }

    fn same_table(&self, other: &TableName) -> bool {
        self.table == other.table
            && (self.schema.is_none() || other.schema.is_none() || self.schema == other.schema)
    }
}

/// One column of a partition key, or an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyPart {
    Column(String),
    Expression(String),
}

/// Partitioned tables created by the migrations read so far, with their keys.
#[derive(Debug, Default)]
pub struct PartitionedTables {
    keys: HashMap<TableName, Vec<KeyPart>>,
}

impl PartitionedTables {
    fn key_of(&self, name: &TableName) -> Option<&Vec<KeyPart>> {
        self.keys
            .iter()
            .find(|(known, _)| known.same_table(name))
            .map(|(_, key)| key)
    }

    /// The partitioned table an ALTER TABLE or CREATE INDEX acts on, with its key.
    fn target_of(&self, statement: &SyntaxNode) -> Option<(TableName, &Vec<KeyPart>)> {
        let name = child(statement, SyntaxKind::TABLE_RELATION_NAME)
            .and_then(|node| TableName::from_node(&node))?;
        let key = self.key_of(&name)?;
        Some((name, key))
    }

    fn forget(&mut self, name: &TableName) {
        self.keys.retain(|known, _| !known.same_table(name));
    }
}

/// A finding before it is placed in its file.
#[derive(Debug)]
pub struct RawFinding {
    pub rule: PgmRule,
    pub range: Range<usize>,
    pub message: String,
    pub help: String,
}

/// Checks one file's statements and records the partitioned tables it
/// creates or drops.
pub fn check(
    root: &SyntaxNode,
    known: &mut PartitionedTables,
    coverage: &PolicyCoverage,
) -> Vec<RawFinding> {
    let mut findings = Vec::new();
    for statement in root.children() {
        match statement.kind() {
            SyntaxKind::CREATE_TABLE => create_table(&statement, known, coverage, &mut findings),
            SyntaxKind::ALTER_TABLE => alter_table(&statement, known, &mut findings),
            SyntaxKind::CREATE_INDEX => {
                concurrent_index(&statement, known, &mut findings);
                create_unique_index(&statement, known, &mut findings);
            }
            SyntaxKind::DROP_TABLE => {
                for name in child_nodes(&statement, SyntaxKind::TABLE_NAME_REF) {
                    if let Some(name) = TableName::from_node(&name) {
                        known.forget(&name);
                    }
                }
            }
            _ => {}
        }
    }
    findings
}

fn create_table(
    statement: &SyntaxNode,
    known: &mut PartitionedTables,
    coverage: &PolicyCoverage,
    findings: &mut Vec<RawFinding>,
) {
    let Some(name_node) = child(statement, SyntaxKind::TABLE_NAME) else {
        return;
    };
    let Some(name) = TableName::from_node(&name_node) else {
        return;
    };
    let Some(partition_by) = child(statement, SyntaxKind::PARTITION_BY) else {
        return;
    };
    let key = partition_key(&partition_by);
    let arguments = child(statement, SyntaxKind::TABLE_ARG_LIST);
    let integer_key = arguments
        .as_ref()
        .is_some_and(|arguments| key_is_integer(arguments, &key));
    if let Some(arguments) = arguments {
        for element in arguments.children() {
            match element.kind() {
                SyntaxKind::COLUMN => check_column(&name, &key, &element, findings),
                kind if is_unique_kind_of(kind) => {
                    let columns = constraint_columns(&element);
                    check_unique(&name, &key, &element, columns, findings);
                }
                _ => {}
            }
        }
    }
    let is_range = child(&partition_by, SyntaxKind::PARTITION_STRATEGY)
        .is_some_and(|s| s.text().to_string().eq_ignore_ascii_case("range"));
    let is_partition = child(statement, SyntaxKind::PARTITION_OF).is_some();
    if is_range && !is_partition && !coverage.covers(&name) {
        findings.push(not_in_policy(
            &name,
            &name_node,
            &key,
            integer_key,
            coverage,
        ));
    }
    known.forget(&name);
    known.keys.insert(name, key);
}

fn alter_table(statement: &SyntaxNode, known: &PartitionedTables, findings: &mut Vec<RawFinding>) {
    let Some((name, key)) = known.target_of(statement) else {
        return;
    };
    for action in statement.children() {
        match action.kind() {
            SyntaxKind::ADD_CONSTRAINT => {
                for constraint in action.children().filter(is_unique_kind) {
                    let columns = constraint_columns(&constraint);
                    check_unique(&name, key, &constraint, columns, findings);
                }
            }
            SyntaxKind::ADD_COLUMN => check_column(&name, key, &action, findings),
            _ => {}
        }
    }
}

/// PostgreSQL refuses CREATE INDEX CONCURRENTLY on a partitioned table
/// (not on `ON ONLY`, which builds nothing).
fn concurrent_index(
    statement: &SyntaxNode,
    known: &PartitionedTables,
    findings: &mut Vec<RawFinding>,
) {
    let has = |kind| {
        statement
            .descendants_with_tokens()
            .any(|element| element.kind() == kind)
    };
    if !has(SyntaxKind::CONCURRENTLY_KW) || has(SyntaxKind::ONLY_KW) {
        return;
    }
    let Some((name, _)) = known.target_of(statement) else {
        return;
    };
    findings.push(RawFinding {
        rule: PgmRule::ConcurrentIndexOnPartitionedTable,
        range: trimmed_range(statement),
        message: format!(
            "PostgreSQL refuses CREATE INDEX CONCURRENTLY on the partitioned table {}",
            name.display()
        ),
        help:
            "`pgm migrate` rolls it out partition by partition (ON ONLY the parent, CONCURRENTLY \
               on each partition, ATTACH PARTITION) when the table exists before the run starts, \
               not when a migration of the same run creates it: put the index in a later deploy, \
               or list it under the table in partman.toml for `pgm partitions maintain`"
                .to_owned(),
    });
}

fn create_unique_index(
    statement: &SyntaxNode,
    known: &PartitionedTables,
    findings: &mut Vec<RawFinding>,
) {
    let unique = statement
        .children_with_tokens()
        .any(|element| element.kind() == SyntaxKind::UNIQUE_KW);
    if !unique {
        return;
    }
    let Some((name, key)) = known.target_of(statement) else {
        return;
    };
    let Some(items) = child(statement, SyntaxKind::PARTITION_ITEM_LIST) else {
        return;
    };
    let columns: Vec<String> = child_nodes(&items, SyntaxKind::PARTITION_ITEM)
        .filter_map(|item| match item_as_key_part(&item) {
            KeyPart::Column(column) => Some(column),
            KeyPart::Expression(_) => None,
        })
        .collect();
    check_unique(&name, key, statement, columns.into_iter(), findings);
}

/// A column's own PRIMARY KEY or UNIQUE, which covers that column alone.
fn check_column(
    table: &TableName,
    key: &[KeyPart],
    column: &SyntaxNode,
    findings: &mut Vec<RawFinding>,
) {
    let name =
        child(column, SyntaxKind::COLUMN_NAME).map(|c| unquote_identifier(&c.text().to_string()));
    for constraint in column.children().filter(is_unique_kind) {
        check_unique(table, key, &constraint, name.iter().cloned(), findings);
    }
}

fn check_unique(
    table: &TableName,
    key: &[KeyPart],
    constraint: &SyntaxNode,
    columns: impl Iterator<Item = String>,
    findings: &mut Vec<RawFinding>,
) {
    let columns: Vec<String> = columns.collect();
    let what = match constraint.kind() {
        SyntaxKind::PRIMARY_KEY_CONSTRAINT => "PRIMARY KEY",
        SyntaxKind::UNIQUE_CONSTRAINT => "UNIQUE constraint",
        _ => "unique index",
    };
    let table_name = table.display();
    let range = trimmed_range(constraint);
    if let Some(expression) = key.iter().find_map(|part| match part {
        KeyPart::Expression(text) => Some(text),
        KeyPart::Column(_) => None,
    }) {
        findings.push(RawFinding {
            rule: PgmRule::UniqueWithoutPartitionKey,
            range,
            message: format!(
                "PostgreSQL will refuse this {what}: {table_name} is partitioned by the expression \
                 {expression}, and a {what} on a partitioned table can only cover plain key columns"
            ),
            help: format!(
                "partition {table_name} by a column (store the expression in a generated column), \
                 or enforce uniqueness on each partition instead"
            ),
        });
        return;
    }
    let missing: Vec<&str> = key
        .iter()
        .filter_map(|part| match part {
            KeyPart::Column(column) if !columns.contains(column) => Some(column.as_str()),
            _ => None,
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    let mut with_key = columns.clone();
    with_key.extend(missing.iter().map(|c| (*c).to_owned()));
    findings.push(RawFinding {
        rule: PgmRule::UniqueWithoutPartitionKey,
        range,
        message: format!(
            "PostgreSQL will refuse this {what} on {table_name}: it lacks the partition key \
             column{} {} (a {what} on a partitioned table must include every partition key column)",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
        ),
        help: format!(
            "include the key: ({}); uniqueness of ({}) alone across all partitions needs a \
             separate table, or a check by the application",
            with_key.join(", "),
            columns.join(", "),
        ),
    });
}

/// Whether the single key column is declared with an integer type: its
/// entry then needs an ID step (or an epoch), not a bare time interval.
fn key_is_integer(arguments: &SyntaxNode, key: &[KeyPart]) -> bool {
    let [KeyPart::Column(key_column)] = key else {
        return false;
    };
    arguments
        .children()
        .filter(|element| element.kind() == SyntaxKind::COLUMN)
        .filter(|column| {
            child(column, SyntaxKind::COLUMN_NAME)
                .is_some_and(|name| unquote_identifier(&name.text().to_string()) == *key_column)
        })
        .any(|column| {
            let text = column.text().to_string();
            let type_word = text
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .split('(')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            matches!(
                type_word.as_str(),
                "smallint"
                    | "int2"
                    | "integer"
                    | "int"
                    | "int4"
                    | "bigint"
                    | "int8"
                    | "serial"
                    | "serial4"
                    | "bigserial"
                    | "serial8"
                    | "smallserial"
                    | "serial2"
                    | "numeric"
                    | "decimal"
            )
        })
}

fn not_in_policy(
    name: &TableName,
    name_node: &SyntaxNode,
    key: &[KeyPart],
    integer_key: bool,
    coverage: &PolicyCoverage,
) -> RawFinding {
    let qualified = match &name.schema {
        Some(schema) => format!("{schema}.{}", name.table),
        None => format!("public.{}", name.table),
    };
    let column = match key.first() {
        Some(KeyPart::Column(column)) => column.as_str(),
        _ => "its key",
    };
    let (where_, fix) = match coverage {
        PolicyCoverage::NoFile { path } => (
            format!("there is no policy file ({})", path.display()),
            format!(
                "create it with `pgm init`, then add an entry for the table; until then, \
                 inserts fail once no partition holds their {column}"
            ),
        ),
        PolicyCoverage::Tables { path, .. } => (
            format!("{} has no entry for it", path.display()),
            format!(
                "add an entry so `pgm partitions maintain` creates its partitions before inserts \
                 need them:\n[[table]]\nname = \"{qualified}\"\n{}\
                 Without one, inserts fail once no partition holds their {column}",
                if integer_key {
                    format!(
                        "interval = 1000000\n# an ID step; if {column} holds time since the epoch, write a \
                         time interval and epoch = \"seconds\" instead\n"
                    )
                } else {
                    "interval = \"monthly\"\n".to_owned()
                }
            ),
        ),
    };
    RawFinding {
        rule: PgmRule::PartitionedTableNotInPolicy,
        range: trimmed_range(name_node),
        message: format!(
            "{} is range-partitioned but no policy maintains its partitions: {where_}",
            name.display()
        ),
        help: fix,
    }
}

fn partition_key(partition_by: &SyntaxNode) -> Vec<KeyPart> {
    child(partition_by, SyntaxKind::PARTITION_ITEM_LIST)
        .map(|items| {
            child_nodes(&items, SyntaxKind::PARTITION_ITEM)
                .map(|item| item_as_key_part(&item))
                .collect()
        })
        .unwrap_or_default()
}

/// A plain column (possibly with a collation or operator class), or an expression.
fn item_as_key_part(item: &SyntaxNode) -> KeyPart {
    let first = item.first_child();
    let column = match first.as_ref().map(SyntaxNode::kind) {
        Some(SyntaxKind::NAME_REF) => first,
        Some(SyntaxKind::COLLATE) => first.and_then(|c| child(&c, SyntaxKind::NAME_REF)),
        _ => None,
    };
    match column {
        Some(name) => KeyPart::Column(unquote_identifier(&name.text().to_string())),
        None => KeyPart::Expression(item.text().to_string()),
    }
}

/// The key columns of a table-level PRIMARY KEY or UNIQUE (INCLUDE columns
/// are not part of the key).
fn constraint_columns(constraint: &SyntaxNode) -> impl Iterator<Item = String> {
    constraint
        .descendants()
        .filter(|node| node.kind() == SyntaxKind::CONSTRAINT_COLUMN_REF_LIST)
        .take(1)
        .flat_map(|list| child_nodes(&list, SyntaxKind::COLUMN_NAME_REF).collect::<Vec<_>>())
        .map(|column| unquote_identifier(&column.text().to_string()))
}

fn is_unique_kind_of(kind: SyntaxKind) -> bool {
    matches!(
        kind,
        SyntaxKind::PRIMARY_KEY_CONSTRAINT | SyntaxKind::UNIQUE_CONSTRAINT
    )
}

fn is_unique_kind(node: &SyntaxNode) -> bool {
    is_unique_kind_of(node.kind())
}

fn child(node: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxNode> {
    node.children().find(|c| c.kind() == kind)
}

fn child_nodes(node: &SyntaxNode, kind: SyntaxKind) -> impl Iterator<Item = SyntaxNode> {
    node.children().filter(move |c| c.kind() == kind)
}

/// The node's range without leading comments or whitespace.
fn trimmed_range(node: &SyntaxNode) -> Range<usize> {
    let range = node.text_range();
    let start = node
        .descendants_with_tokens()
        .filter_map(|element| element.into_token())
        .find(|token| !token.kind().is_trivia())
        .map_or(range.start(), |token| token.text_range().start());
    usize::from(start)..usize::from(range.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(files: &[&str], names: &[(&str, &str)]) -> Vec<(PgmRule, String)> {
        let coverage = PolicyCoverage::Tables {
            path: PathBuf::from("partman.toml"),
            names: names
                .iter()
                .map(|(s, t)| ((*s).to_owned(), (*t).to_owned()))
                .collect(),
        };
        let mut known = PartitionedTables::default();
        files
            .iter()
            .flat_map(|text| {
                let parse = squawk_syntax::SourceFile::parse(text);
                assert!(parse.errors().is_empty(), "{text}");
                check(&parse.syntax_node(), &mut known, &coverage)
            })
            .map(|finding| (finding.rule, finding.message))
            .collect()
    }

    #[test]
    fn keys_and_constraints_are_compared_as_postgresql_folds_names() {
        let created = "CREATE TABLE \"App\".\"Events\" (\"Id\" int, \"At\" date, UNIQUE (\"Id\", \"At\")) \
                       PARTITION BY RANGE (\"At\");";
        assert!(findings(&[created], &[("App", "Events")]).is_empty());
        let later =
            "ALTER TABLE ONLY \"App\".\"Events\" ADD PRIMARY KEY (\"Id\") INCLUDE (\"At\");";
        let found = findings(&[created, later], &[("App", "Events")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].1.contains("lacks the partition key column At"),
            "{found:?}"
        );
        let unquoted = "ALTER TABLE \"App\".\"Events\" ADD UNIQUE (id, at);";
        assert_eq!(
            findings(&[created, unquoted], &[("App", "Events")]).len(),
            1
        );
    }

    #[test]
    fn a_dropped_table_is_forgotten_and_other_tables_are_not_checked() {
        let created = "CREATE TABLE m (id int, at date) PARTITION BY RANGE (at);";
        let dropped = "DROP TABLE IF EXISTS public.m CASCADE;";
        let plain = "CREATE TABLE m (id int PRIMARY KEY, at date);";
        let unique = "CREATE UNIQUE INDEX m_id ON m (id);";
        assert!(findings(&[created, dropped, plain, unique], &[("public", "m")]).is_empty());
        let found = findings(&[created, unique], &[("public", "m")]);
        assert_eq!(found[0].0, PgmRule::UniqueWithoutPartitionKey);
    }

    #[test]
    fn a_concurrent_index_on_a_partitioned_table_is_reported_and_on_only_is_not() {
        let created = "CREATE TABLE m (id int, at date) PARTITION BY RANGE (at);";
        let concurrent = "CREATE INDEX CONCURRENTLY m_id ON m (id);";
        let found = findings(&[created, concurrent], &[("public", "m")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, PgmRule::ConcurrentIndexOnPartitionedTable);
        assert_eq!(
            found[0].1,
            "PostgreSQL refuses CREATE INDEX CONCURRENTLY on the partitioned table m"
        );
        let on_only = "CREATE INDEX m_id ON ONLY m (id);";
        assert!(findings(&[created, on_only], &[("public", "m")]).is_empty());
        let plain_table = "CREATE TABLE p (id int);";
        let on_plain = "CREATE INDEX CONCURRENTLY p_id ON p (id);";
        assert!(findings(&[plain_table, on_plain], &[]).is_empty());
    }

    #[test]
    fn unique_indexes_count_plain_columns_only() {
        let created = "CREATE TABLE m (id int, at date, note text) PARTITION BY RANGE (at);";
        for (index, refused) in [
            ("CREATE UNIQUE INDEX i ON m (id, at DESC);", false),
            ("CREATE UNIQUE INDEX i ON m (id, at COLLATE \"C\");", false),
            ("CREATE UNIQUE INDEX i ON m (id, (at + 1));", true),
            ("CREATE INDEX i ON m (id);", false),
            ("ALTER TABLE m ADD COLUMN code text UNIQUE;", true),
        ] {
            let found = findings(&[created, index], &[("public", "m")]);
            assert_eq!(!found.is_empty(), refused, "{index}: {found:?}");
        }
    }

    #[test]
    fn an_integer_key_is_offered_an_id_step() {
        let help = |text: &str| {
            let coverage = PolicyCoverage::Tables {
                path: PathBuf::from("partman.toml"),
                names: Vec::new(),
            };
            let parse = squawk_syntax::SourceFile::parse(text);
            let found = check(
                &parse.syntax_node(),
                &mut PartitionedTables::default(),
                &coverage,
            );
            found[0].help.clone()
        };
        let by_id = help("CREATE TABLE o (id bigint NOT NULL, at date) PARTITION BY RANGE (id);");
        assert!(
            by_id.contains("interval = 1000000\n# an ID step"),
            "{by_id}"
        );
        // The snippet, from [[table]] to the sentence after it, pastes as TOML.
        let snippet = &by_id[by_id.find("[[table]]").unwrap()..by_id.find("Without one").unwrap()];
        let parsed: toml::Table = toml::from_str(snippet).expect("the snippet is valid TOML");
        assert_eq!(parsed["table"][0]["interval"].as_integer(), Some(1_000_000));
        let by_date = help("CREATE TABLE o (id bigint NOT NULL, at date) PARTITION BY RANGE (at);");
        assert!(by_date.contains("interval = \"monthly\""), "{by_date}");
    }

    #[test]
    fn coverage_matches_unqualified_names_in_any_schema() {
        let created = "CREATE TABLE m (at date) PARTITION BY RANGE (at);";
        assert!(findings(&[created], &[("app", "m")]).is_empty());
        let qualified = "CREATE TABLE other.m (at date) PARTITION BY RANGE (at);";
        let found = findings(&[qualified], &[("app", "m")]);
        assert_eq!(found[0].0, PgmRule::PartitionedTableNotInPolicy);
        let partition = "CREATE TABLE m_2026 PARTITION OF m FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') \
                         PARTITION BY RANGE (at);";
        assert!(findings(&[created, partition], &[("app", "m")]).is_empty());
    }
}
