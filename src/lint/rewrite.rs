//! Whether `ALTER TABLE … ADD COLUMN` rewrites the table, for
//! `adding-field-with-default`. Since PostgreSQL 11 a column whose default
//! is not volatile is added without a rewrite (the value is stored once, in
//! the catalog); a volatile default, a serial or identity column, or a domain
//! with constraints still rewrites every row under an ACCESS EXCLUSIVE lock.
//!
//! With a server, pgm asks it: in a transaction it rolls back, it adds the
//! same column (type and default) to an empty temporary table and compares
//! the table's `relfilenode` before and after, which is exactly whether
//! PostgreSQL rewrites. The table is empty, so a volatile default is never
//! evaluated (no sequence advances). Without a server, or when the probe
//! fails (a type or function the migrations create first), the default is
//! judged by its functions: only built-ins none of whose overloads is
//! volatile (`non_volatile_functions.txt`) keep it from rewriting.

use std::collections::HashSet;
use std::sync::OnceLock;

use postgres::Client;
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};

const NON_VOLATILE_FUNCTIONS: &str = include_str!("non_volatile_functions.txt");

fn non_volatile_functions() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        NON_VOLATILE_FUNCTIONS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    })
}

const SERIAL_TYPES: [&str; 6] = [
    "serial",
    "serial4",
    "serial8",
    "bigserial",
    "smallserial",
    "serial2",
];

/// The server pgm lint connected to, to ask.
pub struct ServerProbe {
    client: Client,
}

impl ServerProbe {
    pub fn new(client: Client) -> ServerProbe {
        ServerProbe { client }
    }

    /// Whether adding a column of this type and default rewrites the table;
    /// `None` when the server cannot say (an unknown type or function).
    pub fn rewrites(&mut self, column: &str) -> Option<bool> {
        let mut transaction = self.client.transaction().ok()?;
        transaction
            .batch_execute(
                "SET LOCAL statement_timeout = '5s'; SET LOCAL lock_timeout = '1s';\
                 CREATE TEMPORARY TABLE pgm_lint_probe () ON COMMIT DROP",
            )
            .ok()?;
        let relfilenode = |transaction: &mut postgres::Transaction<'_>| {
            transaction
                .query_one(
                    "SELECT relfilenode::int8 FROM pg_class WHERE oid = 'pg_temp.pgm_lint_probe'::regclass",
                    &[],
                )
                .ok()
                .map(|row| row.get::<_, i64>(0))
        };
        let before = relfilenode(&mut transaction)?;
        // One statement through the extended protocol: nothing else can run.
        transaction
            .execute(
                &format!("ALTER TABLE pg_temp.pgm_lint_probe ADD COLUMN {column}"),
                &[],
            )
            .ok()?;
        let after = relfilenode(&mut transaction)?;
        transaction.rollback().ok()?;
        Some(before != after)
    }
}

/// One `ADD COLUMN` pgm judges itself: with a default, or of a serial type.
pub struct AddedColumn {
    /// Where a finding points: the default, or the serial type.
    pub range: std::ops::Range<usize>,
    /// The statement's start, to tell whether its table is new.
    pub statement: usize,
    /// The column as the probe adds it: `probe TYPE [COLLATE …] [DEFAULT …]`.
    probe: String,
    default: Option<ast::Expr>,
    serial: bool,
}

/// The `ADD COLUMN`s with a default (not generated) or a serial type.
pub fn added_columns(root: &SyntaxNode) -> Vec<AddedColumn> {
    let mut columns = Vec::new();
    for statement in root.children().filter_map(ast::AlterTable::cast) {
        let start = usize::from(statement.syntax().text_range().start());
        for action in statement.actions() {
            let ast::AlterTableAction::AddColumn(add) = action else {
                continue;
            };
            let Some(ty) = add.ty() else { continue };
            let default = add.constraints().find_map(|constraint| match constraint {
                ast::Constraint::DefaultConstraint(default) => default.expr(),
                _ => None,
            });
            let type_text = ty.syntax().text().to_string();
            let serial = SERIAL_TYPES.contains(&type_text.trim().to_lowercase().as_str());
            let node = match (&default, serial) {
                (Some(expr), _) => expr.syntax().clone(),
                (None, true) => ty.syntax().clone(),
                (None, false) => continue,
            };
            let mut probe = format!("probe {type_text}");
            if let Some(collate) = add.collate() {
                probe.push_str(&format!(" {}", collate.syntax().text()));
            }
            if let Some(expr) = &default {
                probe.push_str(&format!(" DEFAULT {}", expr.syntax().text()));
            }
            let range = node.text_range();
            columns.push(AddedColumn {
                range: usize::from(range.start())..usize::from(range.end()),
                statement: start,
                probe,
                default,
                serial,
            });
        }
    }
    columns
}

impl AddedColumn {
    pub fn is_serial(&self) -> bool {
        self.serial
    }

    /// Whether adding the column rewrites the table on this major version.
    pub fn rewrites(&self, major: u32, probe: Option<&mut ServerProbe>) -> bool {
        if self.serial {
            return true;
        }
        let Some(default) = &self.default else {
            return false;
        };
        if major < 11 {
            return !is_null(default.syntax());
        }
        if let Some(verdict) = probe.and_then(|probe| probe.rewrites(&self.probe)) {
            return verdict;
        }
        is_volatile(default.syntax())
    }
}

fn is_null(node: &SyntaxNode) -> bool {
    node.text().to_string().trim().eq_ignore_ascii_case("null")
}

/// Without a server: a default is volatile when it calls any function but
/// the known non-volatile built-ins, or one qualified by another schema than
/// pg_catalog. Keywords such as `CURRENT_TIMESTAMP` and special forms such
/// as `EXTRACT` are stable or immutable.
pub fn is_volatile(expr: &SyntaxNode) -> bool {
    expr.descendants()
        .filter_map(ast::CallExpr::cast)
        .any(|call| match call.expr() {
            None => false,
            Some(function) => {
                let name: Vec<String> = function
                    .syntax()
                    .descendants_with_tokens()
                    .filter_map(|element| element.into_token())
                    .filter(|token| !token.kind().is_trivia() && token.kind() != SyntaxKind::DOT)
                    .map(|token| crate::migrate::sql::unquote_identifier(token.text()))
                    .collect();
                match name.as_slice() {
                    [name] => !non_volatile_functions().contains(name.as_str()),
                    [schema, name] if schema == "pg_catalog" => {
                        !non_volatile_functions().contains(name.as_str())
                    }
                    _ => true,
                }
            }
        })
        || expr
            .descendants()
            .any(|node| node.kind() == SyntaxKind::SELECT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use squawk_syntax::SourceFile;

    fn offline(default: &str) -> bool {
        let sql = format!("ALTER TABLE t ADD COLUMN c text DEFAULT {default};");
        let parse = SourceFile::parse(&sql);
        assert!(parse.errors().is_empty(), "{sql}");
        let columns = added_columns(&parse.syntax_node());
        assert_eq!(columns.len(), 1, "{sql}");
        columns[0].rewrites(14, None)
    }

    #[test]
    fn offline_only_known_non_volatile_built_ins_avoid_the_rewrite() {
        for stable in [
            "'x'",
            "-1",
            "(1 + 2)",
            "now()",
            "pg_catalog.now()",
            "CURRENT_TIMESTAMP",
            "CURRENT_DATE",
            "date_trunc('day', now())",
            "lower('X') || 'y'",
            "'{}'::jsonb",
            "ARRAY[]::text[]",
            "now() + interval '1 day'",
        ] {
            assert!(!offline(stable), "{stable}");
        }
        for volatile in [
            "random()",
            "clock_timestamp()",
            "gen_random_uuid()",
            "nextval('s')",
            "(random() * 10)::int",
            "lower(gen_random_uuid()::text)",
            "my_func()",
            "app.immutable_func()",
        ] {
            assert!(offline(volatile), "{volatile}");
        }
    }

    #[test]
    fn serial_columns_rewrite_and_old_versions_rewrite_for_any_default() {
        let parse = SourceFile::parse(
            "ALTER TABLE t ADD COLUMN a bigserial, ADD COLUMN b int DEFAULT 1, ADD COLUMN c int DEFAULT NULL, ADD COLUMN d int;",
        );
        let columns = added_columns(&parse.syntax_node());
        assert_eq!(columns.len(), 3);
        assert!(columns[0].rewrites(14, None));
        assert!(!columns[1].rewrites(14, None));
        assert!(columns[1].rewrites(10, None));
        assert!(!columns[2].rewrites(10, None));
    }
}
