//! What a transactional migration makes safe for itself, and squawk does not
//! see: a table it creates (by `CREATE TABLE`, `CREATE TABLE … AS` or
//! `SELECT … INTO`) is invisible to every other session until the file
//! commits, so locking or rewriting it blocks nobody; a view it drops and
//! creates again is never missing for a client.
//!
//! Names are resolved as PostgreSQL would when the file says enough: a
//! qualified name is its schema, an unqualified one the first schema of a
//! `SET search_path` earlier in the file. Without one, an unqualified name
//! matches only another unqualified name (both resolve through the same
//! server search_path), never a qualified one: `CREATE TABLE archive.t AS …`
//! excuses `ALTER TABLE archive.t`, not `ALTER TABLE t`.

use std::ops::Range;

use squawk_linter::Rule as SquawkRule;
use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxKind, SyntaxNode};

use crate::partition::policy::split_name_path;

/// squawk's rules about locking or rewriting a table other sessions use:
/// moot for a table the same transaction created (squawk itself excuses
/// the first four, see `SQUAWK_EXCUSES_CREATED`). `adding-required-field` is not here: a `CREATE TABLE … AS` table
/// holds rows, and PostgreSQL refuses a NOT NULL column without a default
/// on it whoever can see the table.
pub const NEW_TABLE_RULES: [SquawkRule; 8] = [
    SquawkRule::RequireConcurrentIndexCreation,
    SquawkRule::ConstraintMissingNotValid,
    SquawkRule::DisallowedUniqueConstraint,
    SquawkRule::AddingForeignKeyConstraint,
    SquawkRule::AddingFieldWithDefault,
    SquawkRule::ChangingColumnType,
    SquawkRule::AddingNotNullableField,
    SquawkRule::AddingSerialPrimaryKeyField,
];

/// The rules squawk itself quiets, in a transaction, for a table created by
/// a plain `CREATE TABLE` with the same last name (in any schema, even with
/// `IF NOT EXISTS`): pgm runs them without that and judges by `SameFile`.
pub const SQUAWK_EXCUSES_CREATED: [SquawkRule; 4] = [
    SquawkRule::RequireConcurrentIndexCreation,
    SquawkRule::ConstraintMissingNotValid,
    SquawkRule::DisallowedUniqueConstraint,
    SquawkRule::AddingForeignKeyConstraint,
];

/// A relation as PostgreSQL would find it: `schema` is `None` when the name
/// resolves through the server's search_path, which the file does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    schema: Option<String>,
    name: String,
}

const TEMP_SCHEMA: &str = "pg_temp";

#[derive(Debug, Default)]
pub struct SameFile {
    /// Statements (byte ranges) that alter or index a table the file created.
    on_new_tables: Vec<Range<usize>>,
    /// `DROP VIEW` statements whose every view the file creates again later.
    recreated_drops: Vec<Range<usize>>,
}

impl SameFile {
    /// Reads the file's statements; `in_transaction` is how pgm runs it.
    /// Statement by statement, every statement commits, so nothing is excused.
    pub fn read(parse: &squawk_syntax::Parse<SourceFile>, in_transaction: bool) -> SameFile {
        if !in_transaction {
            return SameFile::default();
        }
        let mut reader = Reader::default();
        for stmt in parse.tree().stmts() {
            reader.statement(&stmt);
        }
        reader.finish()
    }
}

/// What the statements read so far say: the search path, the tables and
/// views created, the views dropped.
#[derive(Default)]
struct Reader {
    search_path: Option<String>,
    created: Vec<Resolved>,
    on_new_tables: Vec<Range<usize>>,
    drops: Vec<(Range<usize>, Vec<Resolved>)>,
    views: Vec<(usize, Resolved)>,
}

impl Reader {
    fn statement(&mut self, stmt: &ast::Stmt) {
        let node = stmt.syntax();
        let range = usize::from(node.text_range().start())..usize::from(node.text_range().end());
        match stmt {
            ast::Stmt::Set(_) => {
                if let Some(first) = search_path_set(node) {
                    self.search_path = first;
                }
            }
            ast::Stmt::Reset(_)
                if node
                    .text()
                    .to_string()
                    .to_lowercase()
                    .contains("search_path") =>
            {
                self.search_path = None;
            }
            ast::Stmt::CreateTable(create) if create.if_not_exists().is_none() => {
                let name = create.table_name().and_then(|n| name_of(n.syntax()));
                self.created(name, is_temp(create.persistence()));
            }
            ast::Stmt::CreateTableAs(create) if create.if_not_exists().is_none() => {
                let name = create.table_name().and_then(|n| name_of(n.syntax()));
                self.created(name, is_temp(create.persistence()));
            }
            ast::Stmt::SelectInto(_) | ast::Stmt::Select(_) | ast::Stmt::CompoundSelect(_) => {
                // SELECT … INTO creates its table; the INTO of a CTE or a
                // subquery is refused by PostgreSQL, so the first is the one.
                if let Some(into) = node.descendants().find_map(ast::IntoClause::cast) {
                    let name = into.table_name().and_then(|n| name_of(n.syntax()));
                    self.created(name, is_temp(into.persistence()));
                }
            }
            ast::Stmt::AlterTable(_) | ast::Stmt::CreateIndex(_) => self.changed_table(node, range),
            ast::Stmt::DropView(_) | ast::Stmt::DropMaterializedView(_) => {
                self.dropped_views(node, range)
            }
            ast::Stmt::CreateView(create) => {
                let name = create.view().and_then(|v| name_of(v.syntax()));
                self.created_view(range.start, name, is_temp(create.persistence()));
            }
            ast::Stmt::CreateMaterializedView(create) if create.if_not_exists().is_none() => {
                let name = create.view().and_then(|v| name_of(v.syntax()));
                self.created_view(range.start, name, false);
            }
            _ => {}
        }
    }

    fn resolve(&self, name: Option<(Option<String>, String)>, temp: bool) -> Option<Resolved> {
        name.map(|(schema, name)| Resolved {
            schema: if temp {
                Some(TEMP_SCHEMA.to_owned())
            } else {
                schema.or_else(|| self.search_path.clone())
            },
            name,
        })
    }

    fn created(&mut self, name: Option<(Option<String>, String)>, temp: bool) {
        let resolved = self.resolve(name, temp);
        self.created.extend(resolved);
    }

    fn created_view(&mut self, at: usize, name: Option<(Option<String>, String)>, temp: bool) {
        let resolved = self.resolve(name, temp);
        self.views.extend(resolved.map(|name| (at, name)));
    }

    /// An ALTER TABLE or CREATE INDEX: excused when its table is one the
    /// file created (an unqualified name may also be a temporary table).
    fn changed_table(&mut self, node: &SyntaxNode, range: Range<usize>) {
        let target = node
            .children()
            .find(|child| child.kind() == SyntaxKind::TABLE_RELATION_NAME)
            .and_then(|n| name_of(&n));
        let Some((schema, name)) = target else {
            return;
        };
        let candidates = match schema {
            Some(schema) => vec![Some(schema)],
            None => vec![self.search_path.clone(), Some(TEMP_SCHEMA.to_owned())],
        };
        let created = candidates.into_iter().any(|schema| {
            self.created.contains(&Resolved {
                schema,
                name: name.clone(),
            })
        });
        if created {
            self.on_new_tables.push(range);
        }
    }

    fn dropped_views(&mut self, node: &SyntaxNode, range: Range<usize>) {
        // CASCADE drops views the file may not recreate.
        let cascade = node
            .descendants_with_tokens()
            .any(|element| element.kind() == SyntaxKind::CASCADE_KW);
        let names: Option<Vec<Resolved>> = node
            .children()
            .filter(|child| child.kind() == SyntaxKind::VIEW_REF)
            .map(|view| self.resolve(name_of(&view), false))
            .collect();
        if let Some(names) = names
            && !cascade
            && !names.is_empty()
        {
            self.drops.push((range, names));
        }
    }

    /// A drop is excused when every view it drops is created again after it.
    fn finish(self) -> SameFile {
        let views = &self.views;
        let recreated_drops = self
            .drops
            .into_iter()
            .filter(|(range, names)| {
                names.iter().all(|name| {
                    views
                        .iter()
                        .any(|(at, view)| *at >= range.end && view == name)
                })
            })
            .map(|(range, _)| range)
            .collect();
        SameFile {
            on_new_tables: self.on_new_tables,
            recreated_drops,
        }
    }
}

impl SameFile {
    /// Whether squawk's finding of `rule` at byte `offset` is moot here.
    pub fn excuses(&self, rule: SquawkRule, offset: usize) -> bool {
        let within = |ranges: &[Range<usize>]| ranges.iter().any(|r| r.contains(&offset));
        (NEW_TABLE_RULES.contains(&rule) && within(&self.on_new_tables))
            || (rule == SquawkRule::BanDropView && within(&self.recreated_drops))
    }

    /// Whether the statement starting at `offset` alters a table the file created.
    pub fn on_new_table(&self, offset: usize) -> bool {
        self.on_new_tables.iter().any(|r| r.contains(&offset))
    }
}

fn is_temp(persistence: Option<ast::Persistence>) -> bool {
    matches!(persistence, Some(ast::Persistence::Temp(_)))
}

/// `(schema, name)` of a (possibly qualified, possibly quoted) name node.
fn name_of(node: &SyntaxNode) -> Option<(Option<String>, String)> {
    let text: String = node
        .descendants_with_tokens()
        .filter_map(|element| element.into_token())
        .filter(|token| {
            !token.kind().is_trivia()
                && !matches!(
                    token.kind(),
                    SyntaxKind::ONLY_KW
                        | SyntaxKind::STAR
                        | SyntaxKind::L_PAREN
                        | SyntaxKind::R_PAREN
                )
        })
        .map(|token| token.text().to_owned())
        .collect();
    let mut parts = split_name_path(&text)?;
    let name = parts.pop()?;
    Some((parts.pop(), name))
}

/// For `SET [LOCAL|SESSION] search_path …`: `Some(first schema)`, or
/// `Some(None)` for `DEFAULT`; `None` for any other setting.
fn search_path_set(node: &SyntaxNode) -> Option<Option<String>> {
    let text = node.text().to_string();
    let lower = text.to_lowercase();
    let at = lower.find("search_path")?;
    let rest = text[at + "search_path".len()..].trim_start();
    let rest = if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("to") {
        &rest[2..]
    } else {
        rest.strip_prefix('=')?
    };
    let first = rest.trim().trim_end_matches(';').split(',').next()?.trim();
    if first.eq_ignore_ascii_case("default") {
        return Some(None);
    }
    let first = first
        .strip_prefix('\'')
        .and_then(|quoted| quoted.strip_suffix('\''))
        .unwrap_or(first);
    Some(split_name_path(first).and_then(|mut parts| (parts.len() == 1).then(|| parts.remove(0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements (by their first line) whose findings of `rule` are excused.
    fn excused(sql: &str, rule: SquawkRule) -> Vec<String> {
        let parse = SourceFile::parse(sql);
        assert!(parse.errors().is_empty(), "{:?}", parse.errors());
        let same_file = SameFile::read(&parse, true);
        parse
            .tree()
            .stmts()
            .filter(|stmt| same_file.excuses(rule, usize::from(stmt.syntax().text_range().start())))
            .map(|stmt| stmt.syntax().text().to_string())
            .collect()
    }

    const INDEX: SquawkRule = SquawkRule::RequireConcurrentIndexCreation;

    #[test]
    fn tables_created_as_select_or_select_into_are_new() {
        let sql = "CREATE TABLE a AS SELECT 1 AS x;\n\
                   SELECT 1 AS x INTO b;\n\
                   SELECT 1 AS x INTO TEMP c;\n\
                   CREATE INDEX ON a (x);\n\
                   CREATE INDEX ON b (x);\n\
                   CREATE INDEX ON c (x);\n\
                   CREATE INDEX ON d (x);";
        assert_eq!(
            excused(sql, INDEX),
            [
                "CREATE INDEX ON a (x);",
                "CREATE INDEX ON b (x);",
                "CREATE INDEX ON c (x);"
            ]
        );
        assert_eq!(
            excused(
                "CREATE TABLE a AS SELECT 1 AS x; ALTER TABLE a ALTER COLUMN x TYPE bigint;",
                SquawkRule::ChangingColumnType
            )
            .len(),
            1
        );
        // A rule that is not about locking keeps its findings.
        assert!(
            excused(
                "CREATE TABLE a AS SELECT 1 AS x; ALTER TABLE a DROP COLUMN x;",
                SquawkRule::BanDropColumn
            )
            .is_empty()
        );
        // IF NOT EXISTS may have left an older, live table in place.
        assert!(
            excused(
                "CREATE TABLE IF NOT EXISTS a AS SELECT 1 AS x; CREATE INDEX ON a (x);",
                INDEX
            )
            .is_empty()
        );
    }

    #[test]
    fn schemas_quotes_and_search_path_decide_which_table_is_new() {
        let other_schema = "CREATE TABLE archive.t AS SELECT 1 AS x;\n\
                            CREATE INDEX ON t (x);\n\
                            CREATE INDEX ON public.t (x);\n\
                            CREATE INDEX ON archive.t (x);\n\
                            CREATE INDEX ON ARCHIVE.T (x);\n\
                            CREATE INDEX ON \"Archive\".t (x);";
        assert_eq!(
            excused(other_schema, INDEX),
            [
                "CREATE INDEX ON archive.t (x);",
                "CREATE INDEX ON ARCHIVE.T (x);"
            ]
        );
        let quoted = "CREATE TABLE \"Orders\" AS SELECT 1 AS x;\n\
                      CREATE INDEX ON orders (x);\n\
                      CREATE INDEX ON \"Orders\" (x);";
        assert_eq!(excused(quoted, INDEX), ["CREATE INDEX ON \"Orders\" (x);"]);
        let search_path = "SET search_path TO archive, public;\n\
                           CREATE TABLE t AS SELECT 1 AS x;\n\
                           CREATE INDEX ON archive.t (x);\n\
                           CREATE INDEX ON public.t (x);\n\
                           SET LOCAL search_path = 'public';\n\
                           CREATE INDEX ON t (x);";
        assert_eq!(
            excused(search_path, INDEX),
            ["CREATE INDEX ON archive.t (x);"]
        );
    }

    #[test]
    fn a_view_dropped_and_created_again_is_not_a_drop() {
        let rule = SquawkRule::BanDropView;
        let sql = "DROP VIEW v;\n\
                   DROP VIEW IF EXISTS app.w;\n\
                   DROP VIEW gone;\n\
                   DROP VIEW x CASCADE;\n\
                   DROP MATERIALIZED VIEW m;\n\
                   DROP VIEW v2, gone2;\n\
                   CREATE VIEW v AS SELECT 1;\n\
                   CREATE OR REPLACE VIEW app.w AS SELECT 1;\n\
                   CREATE VIEW x AS SELECT 1;\n\
                   CREATE MATERIALIZED VIEW m AS SELECT 1;\n\
                   CREATE VIEW v2 AS SELECT 1;";
        assert_eq!(
            excused(sql, rule),
            [
                "DROP VIEW v;",
                "DROP VIEW IF EXISTS app.w;",
                "DROP MATERIALIZED VIEW m;"
            ]
        );
        // Created before the drop, or in another schema: the drop stands.
        assert!(excused("CREATE VIEW v AS SELECT 1; DROP VIEW v;", rule).is_empty());
        assert!(excused("DROP VIEW app.v; CREATE VIEW v AS SELECT 1;", rule).is_empty());
    }

    #[test]
    fn statement_by_statement_nothing_is_excused() {
        let parse = SourceFile::parse("CREATE TABLE a AS SELECT 1 AS x; CREATE INDEX ON a (x);");
        let same_file = SameFile::read(&parse, false);
        assert!(!same_file.excuses(INDEX, 40));
    }
}
