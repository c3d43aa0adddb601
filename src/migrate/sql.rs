//! Splitting a migration file into statements and classifying them, with
//! squawk's parser (dollar quotes, nested comments and E-strings included),
//! to decide whether the file runs in one transaction or statement by
//! statement outside any.

use std::fmt;
use std::path::{Path, PathBuf};

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SyntaxKind, SyntaxNode};
use thiserror::Error;

use crate::location::{LineIndex, Location};

/// The header that makes a file run outside a transaction whatever it holds.
pub const NO_TRANSACTION_HEADER: &str = "-- pgm:no-transaction";

#[derive(Debug, Error)]
pub enum SqlError {
    #[error("{location}: cannot parse this SQL: {message}\n{snippet}")]
    Syntax {
        location: Location,
        message: String,
        snippet: String,
    },
    #[error(
        "{location}: {statement} is not allowed in a migration: pgm runs each migration in its own \
         transaction (or, for files that need it, outside any), so remove it\n{snippet}"
    )]
    TransactionControl {
        location: Location,
        statement: String,
        snippet: String,
    },
    #[error(
        "{}: mixes statements that cannot run inside a transaction with statements that should: \
         {} at line {} cannot run in a transaction, {} at line {} should run in one.\n  \
         Split the file: keep the transactional statements here and move the others ({}) to a \
         new migration with the next version, or put `{NO_TRANSACTION_HEADER}` on the first line \
         to run every statement on its own, without atomicity",
        location.path.display(), outside, location.line, inside.0, inside.1, outside_lines
    )]
    MixedModes {
        /// Where the first statement that cannot run in a transaction starts.
        location: Location,
        /// The first of them; its line is the location's.
        outside: String,
        inside: (String, usize),
        outside_lines: String,
    },
}

impl SqlError {
    pub fn location(&self) -> &Location {
        match self {
            SqlError::Syntax { location, .. }
            | SqlError::TransactionControl { location, .. }
            | SqlError::MixedModes { location, .. } => location,
        }
    }

    fn offset_order(&self) -> (usize, usize) {
        let location = self.location();
        (location.line, location.column)
    }
}

/// How a statement relates to transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementClass {
    /// PostgreSQL refuses it inside a transaction block.
    OutsideTransaction,
    /// DDL and DML: should run atomically.
    Transactional,
    /// Runs either way (SET, ANALYZE, SELECT…).
    Neutral,
}

#[derive(Debug, Clone)]
pub struct Statement {
    /// Byte range in the file.
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
    /// A short label: "CREATE INDEX CONCURRENTLY", "ALTER TABLE"…
    pub label: String,
    pub class: StatementClass,
    /// For CREATE INDEX CONCURRENTLY: the index name, so a rerun can find an
    /// INVALID leftover of an interrupted build.
    pub concurrent_index: Option<String>,
    /// A CONCURRENTLY statement: it waits for every transaction older than
    /// itself, blocking no reads or writes meanwhile.
    pub waits_for_older_transactions: bool,
    /// For a named CREATE INDEX CONCURRENTLY: its parts, so that on a
    /// partitioned table (where PostgreSQL refuses it) it can be rolled
    /// out partition by partition.
    pub index_parts: Option<IndexParts>,
}

/// A CREATE INDEX CONCURRENTLY taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexParts {
    /// The index name as PostgreSQL stores it.
    pub name: String,
    pub unique: bool,
    /// The table as the statement writes it (quotes and schema included):
    /// resolved by the server, on its search path.
    pub table: String,
    /// Everything after the table, as written: USING, the columns,
    /// INCLUDE, NULLS NOT DISTINCT, WITH, TABLESPACE, WHERE.
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One transaction: the statements and the history row commit together.
    Transaction,
    /// Statement by statement, each committing on its own, progress journaled.
    NoTransaction,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Transaction => "transaction",
            Mode::NoTransaction => "no-transaction",
        })
    }
}

#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub path: PathBuf,
    pub text: String,
    pub statements: Vec<Statement>,
    pub mode: Mode,
    /// Why the mode was chosen, for plans and logs.
    pub mode_reason: String,
}

impl ParsedFile {
    pub fn statement_text(&self, statement: &Statement) -> &str {
        &self.text[statement.start..statement.end]
    }
}

/// Every reason the pending files cannot run, across all of them, so that
/// one run reports them all.
#[derive(Debug, Error)]
pub struct InvalidFiles(pub Vec<SqlError>);

impl std::fmt::Display for InvalidFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        if self.0.len() > 1 {
            let mut files: Vec<&Path> =
                self.0.iter().map(|p| p.location().path.as_path()).collect();
            files.dedup();
            write!(
                f,
                "\n{} problems in {} file(s); no migration ran: fix them all, then run again",
                self.0.len(),
                files.len()
            )?;
        }
        Ok(())
    }
}

/// A file as pgm would run it, with every reason `pgm migrate` would refuse
/// it (in file order). `pgm lint` reports them all; `migrate` stops at the first.
#[derive(Debug)]
pub struct Examined {
    /// The statements that could be read, and the mode the file runs in when
    /// it has no problems.
    pub file: ParsedFile,
    pub problems: Vec<SqlError>,
    /// squawk's tree of the file, for the linter's rules.
    pub syntax: squawk_syntax::Parse<ast::SourceFile>,
}

pub fn examine(path: &Path, text: String) -> Examined {
    let parse = ast::SourceFile::parse(&text);
    let lines = LineIndex::new(&text);
    let mut problems = Vec::new();
    if let Some(error) = parse.errors().first() {
        let offset = usize::from(error.range().start());
        let location = lines.location(path, offset);
        problems.push(SqlError::Syntax {
            snippet: location.snippet(&text),
            location,
            message: error.message().to_owned(),
        });
        let file = ParsedFile {
            path: path.to_path_buf(),
            text,
            statements: Vec::new(),
            mode: Mode::Transaction,
            mode_reason: "the file cannot be parsed".to_owned(),
        };
        return Examined {
            file,
            problems,
            syntax: parse,
        };
    }
    let mut statements = Vec::new();
    for stmt in parse.tree().stmts() {
        let range = stmt.syntax().text_range();
        let start = usize::from(range.start());
        let (line, column) = lines.line_column(start);
        let Some((label, class)) = classify(&stmt) else {
            let location = lines.location(path, start);
            problems.push(SqlError::TransactionControl {
                snippet: location.snippet(&text),
                location,
                statement: first_words(&text[start..usize::from(range.end())]),
            });
            continue;
        };
        statements.push(Statement {
            start,
            end: usize::from(range.end()),
            line,
            column,
            concurrent_index: concurrent_index_name(&stmt),
            index_parts: index_parts(&stmt),
            waits_for_older_transactions: has_token(stmt.syntax(), SyntaxKind::CONCURRENTLY_KW),
            label,
            class,
        });
    }
    let (mode, mode_reason) = choose_mode(path, &text, &lines, &statements, &mut problems);
    problems.sort_by_key(SqlError::offset_order);
    let file = ParsedFile {
        path: path.to_path_buf(),
        text,
        statements,
        mode,
        mode_reason,
    };
    Examined {
        file,
        problems,
        syntax: parse,
    }
}

/// Transaction or statement by statement, and why; a file that mixes both
/// kinds of statements is a problem.
fn choose_mode(
    path: &Path,
    text: &str,
    lines: &LineIndex<'_>,
    statements: &[Statement],
    problems: &mut Vec<SqlError>,
) -> (Mode, String) {
    let forced = text
        .lines()
        .take_while(|line| line.trim_start().starts_with("--") || line.trim().is_empty())
        .any(|line| line.trim() == NO_TRANSACTION_HEADER);
    let outside = statements
        .iter()
        .find(|s| s.class == StatementClass::OutsideTransaction);
    let inside = statements
        .iter()
        .find(|s| s.class == StatementClass::Transactional);
    match (forced, outside, inside) {
        (true, _, _) => (
            Mode::NoTransaction,
            format!("the file starts with `{NO_TRANSACTION_HEADER}`"),
        ),
        (false, Some(outside), Some(inside)) => {
            let outside_lines = statements
                .iter()
                .filter(|s| s.class == StatementClass::OutsideTransaction)
                .map(|s| format!("line {}", s.line))
                .collect::<Vec<_>>()
                .join(", ");
            problems.push(SqlError::MixedModes {
                location: lines.location(path, outside.start),
                outside: outside.label.clone(),
                inside: (inside.label.clone(), inside.line),
                outside_lines,
            });
            (
                Mode::Transaction,
                "the file mixes both kinds of statements".to_owned(),
            )
        }
        (false, Some(outside), None) => (
            Mode::NoTransaction,
            format!(
                "{} (line {}) cannot run inside a transaction",
                outside.label, outside.line
            ),
        ),
        (false, None, _) => (
            Mode::Transaction,
            "every statement can run in one transaction".to_owned(),
        ),
    }
}

fn has_token(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.descendants_with_tokens()
        .any(|element| element.kind() == kind)
}

/// The statement's label and class; `None` for transaction control, which
/// has no place in a migration.
fn classify(stmt: &ast::Stmt) -> Option<(String, StatementClass)> {
    use StatementClass::{Neutral, OutsideTransaction, Transactional};
    let node = stmt.syntax();
    let concurrently = has_token(node, SyntaxKind::CONCURRENTLY_KW);
    let (label, class) = match stmt {
        ast::Stmt::CreateIndex(_) if concurrently => {
            ("CREATE INDEX CONCURRENTLY", OutsideTransaction)
        }
        ast::Stmt::DropIndex(_) if concurrently => ("DROP INDEX CONCURRENTLY", OutsideTransaction),
        ast::Stmt::Reindex(_) if concurrently => ("REINDEX CONCURRENTLY", OutsideTransaction),
        ast::Stmt::Reindex(_)
            if has_token(node, SyntaxKind::DATABASE_KW)
                || has_token(node, SyntaxKind::SYSTEM_KW) =>
        {
            ("REINDEX DATABASE/SYSTEM", OutsideTransaction)
        }
        ast::Stmt::AlterTable(_) if concurrently && has_token(node, SyntaxKind::DETACH_KW) => {
            ("DETACH PARTITION CONCURRENTLY", OutsideTransaction)
        }
        ast::Stmt::Vacuum(_) => ("VACUUM", OutsideTransaction),
        ast::Stmt::AlterSystem(_) => ("ALTER SYSTEM", OutsideTransaction),
        ast::Stmt::CreateDatabase(_) => ("CREATE DATABASE", OutsideTransaction),
        ast::Stmt::DropDatabase(_) => ("DROP DATABASE", OutsideTransaction),
        ast::Stmt::AlterDatabase(_) if has_token(node, SyntaxKind::TABLESPACE_KW) => {
            ("ALTER DATABASE SET TABLESPACE", OutsideTransaction)
        }
        ast::Stmt::CreateTablespace(_) => ("CREATE TABLESPACE", OutsideTransaction),
        ast::Stmt::DropTablespace(_) => ("DROP TABLESPACE", OutsideTransaction),
        ast::Stmt::CreateSubscription(_) => ("CREATE SUBSCRIPTION", OutsideTransaction),
        ast::Stmt::AlterSubscription(_) => ("ALTER SUBSCRIPTION", OutsideTransaction),
        ast::Stmt::DropSubscription(_) => ("DROP SUBSCRIPTION", OutsideTransaction),
        ast::Stmt::Begin(_)
        | ast::Stmt::Commit(_)
        | ast::Stmt::Rollback(_)
        | ast::Stmt::PrepareTransaction(_) => return None,
        ast::Stmt::Set(_)
        | ast::Stmt::Reset(_)
        | ast::Stmt::Show(_)
        | ast::Stmt::Analyze(_)
        | ast::Stmt::Select(_)
        | ast::Stmt::Checkpoint(_) => return Some((kind_label(node), Neutral)),
        _ => return Some((kind_label(node), Transactional)),
    };
    Some((label.to_owned(), class))
}

/// "CREATE_TABLE" → "CREATE TABLE".
fn kind_label(node: &SyntaxNode) -> String {
    format!("{:?}", node.kind()).replace('_', " ")
}

fn concurrent_index_name(stmt: &ast::Stmt) -> Option<String> {
    let ast::Stmt::CreateIndex(create) = stmt else {
        return None;
    };
    if !has_token(create.syntax(), SyntaxKind::CONCURRENTLY_KW) {
        return None;
    }
    let name = create.index()?;
    Some(unquote_identifier(&name.syntax().text().to_string()))
}

fn index_parts(stmt: &ast::Stmt) -> Option<IndexParts> {
    let ast::Stmt::CreateIndex(create) = stmt else {
        return None;
    };
    create.concurrently_token()?;
    let relation = create.table_relation_name()?;
    // `ON ONLY t` is PostgreSQL's to refuse, as written.
    if relation.only_token().is_some() || relation.star_token().is_some() {
        return None;
    }
    let table = relation.syntax().text().to_string().trim().to_owned();
    let statement = create.syntax();
    let text = statement.text().to_string();
    let offset = usize::from(relation.syntax().text_range().end() - statement.text_range().start());
    let body = text[offset..]
        .trim()
        .trim_end_matches(';')
        .trim_end()
        .to_owned();
    Some(IndexParts {
        name: concurrent_index_name(stmt)?,
        unique: create.unique_token().is_some(),
        table,
        body,
    })
}

/// An identifier as PostgreSQL stores it: quoted names verbatim, others
/// folded to lower case.
pub(crate) fn unquote_identifier(text: &str) -> String {
    let text = text.trim();
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => text.to_lowercase(),
    }
}

fn first_words(text: &str) -> String {
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file, or the first reason it cannot run.
    fn parse(text: &str) -> Result<ParsedFile, SqlError> {
        let mut examined = examine(Path::new("V1__t.sql"), text.to_owned());
        match examined.problems.is_empty() {
            true => Ok(examined.file),
            false => Err(examined.problems.remove(0)),
        }
    }

    #[test]
    fn splits_with_dollar_quotes_comments_and_e_strings() {
        let file = parse(
            "/* a /* nested */ comment; */\n\
             CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN NEW.x := 'a;b'; RETURN NEW; END $$ LANGUAGE plpgsql;\n\
             SELECT E'it\\'s; fine';\n\
             CREATE TABLE t (id int);",
        )
        .unwrap();
        let labels: Vec<_> = file
            .statements
            .iter()
            .map(|s| (s.label.as_str(), s.line))
            .collect();
        assert_eq!(
            labels,
            [("CREATE FUNCTION", 2), ("SELECT", 3), ("CREATE TABLE", 4)]
        );
        assert_eq!(file.mode, Mode::Transaction);
    }

    #[test]
    fn concurrent_statements_need_no_transaction() {
        let file = parse("CREATE INDEX CONCURRENTLY \"Idx\" ON t (a);\nANALYZE t;\n").unwrap();
        assert_eq!(file.mode, Mode::NoTransaction);
        assert_eq!(file.statements[0].concurrent_index.as_deref(), Some("Idx"));
        let file = parse("create index concurrently if not exists My_Idx on t (a);").unwrap();
        assert_eq!(
            file.statements[0].concurrent_index.as_deref(),
            Some("my_idx")
        );
        for text in [
            "DROP INDEX CONCURRENTLY i;",
            "REINDEX INDEX CONCURRENTLY i;",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY;",
            "VACUUM (ANALYZE) t;",
            "ALTER SYSTEM SET work_mem = '4MB';",
        ] {
            assert_eq!(parse(text).unwrap().mode, Mode::NoTransaction, "{text}");
        }
        assert_eq!(
            parse("ALTER TABLE p DETACH PARTITION c FINALIZE;")
                .unwrap()
                .mode,
            Mode::Transaction
        );
    }

    #[test]
    fn a_concurrent_index_is_taken_apart_for_partitioned_tables() {
        let file = parse(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"Ev_Idx\" ON app.\"Events\" USING btree (a, lower(b)) \
             INCLUDE (c) WITH (fillfactor = 90) WHERE a > 0;\n\
             CREATE INDEX CONCURRENTLY ON t (a);\n\
             CREATE INDEX CONCURRENTLY i ON ONLY t (a);\n",
        )
        .unwrap();
        assert_eq!(
            file.statements[0].index_parts,
            Some(IndexParts {
                name: "Ev_Idx".to_owned(),
                unique: true,
                table: "app.\"Events\"".to_owned(),
                body: "USING btree (a, lower(b)) INCLUDE (c) WITH (fillfactor = 90) WHERE a > 0"
                    .to_owned(),
            })
        );
        assert_eq!(file.statements[1].index_parts, None, "no name");
        assert_eq!(file.statements[2].index_parts, None, "ON ONLY");
        let plain = parse("create index concurrently i on t (a);").unwrap();
        let parts = plain.statements[0].index_parts.clone().unwrap();
        assert_eq!(
            (parts.unique, parts.table.as_str(), parts.body.as_str()),
            (false, "t", "(a)")
        );
    }

    #[test]
    fn mixing_is_refused_with_how_to_split() {
        let err =
            parse("CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("CREATE INDEX CONCURRENTLY at line 2 cannot run in a transaction"),
            "{text}"
        );
        assert!(
            text.contains("CREATE TABLE at line 1 should run in one"),
            "{text}"
        );
        assert!(
            text.contains("move the others (line 2) to a new migration"),
            "{text}"
        );
    }

    #[test]
    fn the_header_forces_no_transaction() {
        let file =
            parse("-- pgm:no-transaction\nCREATE TABLE t (a int);\nINSERT INTO t VALUES (1);")
                .unwrap();
        assert_eq!(file.mode, Mode::NoTransaction);
        assert!(file.mode_reason.contains("pgm:no-transaction"));
    }

    #[test]
    fn transaction_control_is_refused_with_its_location() {
        let err = parse("CREATE TABLE t (a int);\n  COMMIT;\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("V1__t.sql:2:3: COMMIT is not allowed in a migration"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_point_at_the_place() {
        let err = parse("CREATE TABLE t (a int);\nCREATE TABEL u (b int);\n").unwrap_err();
        assert!(err.to_string().starts_with("V1__t.sql:2:"), "{err}");
    }
}
