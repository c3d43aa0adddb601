//! `pgm migrate repair`: an applied file was edited. When the applied text
//! is known (pgm keeps it from the run that applied the file) and only
//! comments or whitespace changed, the history takes the new checksum; any
//! other change is refused with the first statement that differs, unless
//! forced. Every repair leaves a row saying what, who, when and the old
//! checksum.

use std::path::{Path, PathBuf};

use postgres::Client;
use squawk_lexer::TokenKind;
use thiserror::Error;

use super::history::{self, Applied, HistoryRead, Tables, VersionValue};
use super::source::{SourceMigration, Version, VersionWidth};
use crate::location::{LineIndex, Location};

#[derive(Debug, Error)]
pub enum RepairError {
    #[error("{}: not a migration of the directory (give the path of a file under the migrations directory)", .0.display())]
    UnknownFile(PathBuf),
    #[error("{}: not applied yet, so there is nothing to repair: pgm migrate will run it", .0.display())]
    NotApplied(PathBuf),
    #[error("{}: unchanged since it was applied: nothing to repair", .0.display())]
    Unchanged(PathBuf),
    #[error(
        "{}: version {version} was applied as \"{applied_name}\": a migration's name is fixed once applied; rename the file back",
        path.display()
    )]
    Renamed {
        path: PathBuf,
        version: Version,
        applied_name: String,
    },
    #[error(
        "{location}: this statement changed after the file was applied, not only comments or whitespace\n{snippet}\n  \
         applied: {applied}\n  now:     {current}\n  \
         Restore the applied text and put the change in a new migration; or, if the database already \
         has this change (made by hand), record it with --force"
    )]
    Changed {
        location: Location,
        snippet: String,
        applied: String,
        current: String,
    },
    #[error(
        "{}: applied before pgm kept the text of applied files, so it cannot show that only comments or \
         whitespace changed: compare it with the version control history, then record it with --force",
        .0.display()
    )]
    NoAppliedText(PathBuf),
    #[error("{}: its history row changed while pgm was repairing it; nothing was recorded: run again", .0.display())]
    Raced(PathBuf),
    #[error("{what}: {source}")]
    Query {
        what: &'static str,
        source: postgres::Error,
    },
}

/// How the current text of a file differs from the applied one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The same statements, token for token.
    CommentsOrWhitespace,
    /// The first statement whose tokens differ: its offset in the current
    /// text and both statements, one line each.
    Statement {
        offset: usize,
        applied: String,
        current: String,
    },
}

/// Compares the two texts' token streams, comments and whitespace left out.
pub fn compare(applied: &str, current: &str) -> Change {
    let (old, new) = (significant_tokens(applied), significant_tokens(current));
    let differs_at = old
        .iter()
        .zip(&new)
        .position(|(a, b)| (a.kind, a.text(applied)) != (b.kind, b.text(current)));
    let index = match differs_at {
        Some(index) => index,
        None if old.len() == new.len() => return Change::CommentsOrWhitespace,
        None => old.len().min(new.len()),
    };
    Change::Statement {
        offset: new.get(index).map_or(current.len(), |token| token.start),
        applied: statement_around(applied, &old, index),
        current: statement_around(current, &new, index),
    }
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
}

impl Token {
    fn text<'a>(&self, source: &'a str) -> &'a str {
        &source[self.start..self.end]
    }
}

fn significant_tokens(text: &str) -> Vec<Token> {
    let mut start = 0;
    let mut tokens = Vec::new();
    for token in squawk_lexer::tokenize(text) {
        let end = start + token.len as usize;
        if !matches!(
            token.kind,
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment { .. }
        ) {
            tokens.push(Token {
                kind: token.kind,
                start,
                end,
            });
        }
        start = end;
    }
    tokens
}

/// The statement holding token `index` (between the semicolons around it),
/// its tokens joined by single spaces, at most 160 characters.
fn statement_around(text: &str, tokens: &[Token], index: usize) -> String {
    if tokens.is_empty() || index >= tokens.len() {
        return "(nothing: the file ends here)".to_owned();
    }
    let first = tokens[..index]
        .iter()
        .rposition(|token| token.kind == TokenKind::Semi)
        .map_or(0, |semi| semi + 1);
    let last = tokens[index..]
        .iter()
        .position(|token| token.kind == TokenKind::Semi)
        .map_or(tokens.len(), |semi| index + semi + 1);
    let joined = tokens[first..last]
        .iter()
        .map(|token| token.text(text))
        .collect::<Vec<_>>()
        .join(" ");
    match joined.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// What a repair recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    pub path: PathBuf,
    pub version: Version,
    pub old_checksum: u64,
    pub new_checksum: u64,
    pub forced: bool,
}

/// Who repairs: the OS user running pgm, recorded with the database role.
pub struct Actor<'a> {
    pub os_user: &'a str,
}

/// Repairs the named files (every divergent file when none is named).
/// Nothing is recorded unless every named file can be repaired.
pub fn repair(
    client: &mut Client,
    history: &HistoryRead<'_>,
    sources: &[SourceMigration],
    files: &[PathBuf],
    force: bool,
    actor: &Actor<'_>,
) -> Result<Vec<Repaired>, RepairError> {
    let tables = history.tables;
    let chosen = choose(sources, history.applied, files, tables.width)?;
    let mut repairs = Vec::new();
    for (source, applied) in chosen {
        let known = history
            .texts
            .iter()
            .find(|(version, checksum, _)| {
                *version == applied.version && *checksum == applied.checksum
            })
            .map(|(_, _, text)| text.as_str());
        let forced = match known.map(|text| compare(text, source.text())) {
            Some(Change::CommentsOrWhitespace) => false,
            _ if force => true,
            Some(Change::Statement {
                offset,
                applied,
                current,
            }) => {
                let location = LineIndex::new(source.text()).location(&source.path, offset);
                return Err(RepairError::Changed {
                    snippet: location.snippet(source.text()),
                    location,
                    applied,
                    current,
                });
            }
            None => return Err(RepairError::NoAppliedText(source.path.clone())),
        };
        repairs.push((source, applied, forced));
    }
    record(client, tables, &repairs, actor)
}

/// The divergent migrations to repair, each with its history row.
fn choose<'a>(
    sources: &'a [SourceMigration],
    applied: &'a [Applied],
    files: &[PathBuf],
    width: VersionWidth,
) -> Result<Vec<(&'a SourceMigration, &'a Applied)>, RepairError> {
    let row = |source: &SourceMigration| applied.iter().find(|a| a.version == source.version);
    if files.is_empty() {
        return Ok(sources
            .iter()
            .filter_map(|source| row(source).map(|applied| (source, applied)))
            .filter(|(source, applied)| {
                applied.checksum != source.checksum(width) && applied.name == source.name
            })
            .collect());
    }
    let mut chosen = Vec::new();
    for file in files {
        let source = sources
            .iter()
            .find(|source| same_file(&source.path, file))
            .ok_or_else(|| RepairError::UnknownFile(file.clone()))?;
        let applied = row(source).ok_or_else(|| RepairError::NotApplied(file.clone()))?;
        if applied.name != source.name {
            return Err(RepairError::Renamed {
                path: file.clone(),
                version: applied.version,
                applied_name: applied.name.clone(),
            });
        }
        if applied.checksum == source.checksum(width) {
            return Err(RepairError::Unchanged(file.clone()));
        }
        chosen.push((source, applied));
    }
    Ok(chosen)
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Writes the new checksums, the texts and the audit rows in one transaction.
fn record(
    client: &mut Client,
    tables: &Tables,
    repairs: &[(&SourceMigration, &Applied, bool)],
    actor: &Actor<'_>,
) -> Result<Vec<Repaired>, RepairError> {
    let query = |source| RepairError::Query {
        what: "recording the repair",
        source,
    };
    let mut transaction = client.transaction().map_err(query)?;
    for statement in history::create_repair_tables(tables) {
        transaction.batch_execute(&statement).map_err(query)?;
    }
    for (source, applied, forced) in repairs {
        let (old, new) = (
            applied.checksum.to_string(),
            source.checksum(tables.width).to_string(),
        );
        let version = VersionValue(source.version);
        let updated = transaction
            .execute(&history::update_checksum(tables), &[&version, &old, &new])
            .map_err(query)?;
        if updated != 1 {
            return Err(RepairError::Raced(source.path.clone()));
        }
        transaction
            .execute(
                &history::insert_repair(tables),
                &[&version, &source.name, &old, &new, forced, &actor.os_user],
            )
            .map_err(query)?;
        transaction
            .execute(
                &history::upsert_text(tables),
                &[&version, &new, &source.text()],
            )
            .map_err(query)?;
    }
    transaction.commit().map_err(query)?;
    Ok(repairs
        .iter()
        .map(|(source, applied, forced)| Repaired {
            path: source.path.clone(),
            version: source.version,
            old_checksum: applied.checksum,
            new_checksum: source.checksum(tables.width),
            forced: *forced,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_whitespace_are_not_changes() {
        let applied = "CREATE TABLE t (id int); -- first\nINSERT INTO t VALUES (1);\n";
        let current = "/* why: the ids */\nCREATE TABLE t (\n  id int\n);\n\nINSERT INTO t VALUES (1); -- seed\n";
        assert_eq!(compare(applied, current), Change::CommentsOrWhitespace);
    }

    #[test]
    fn the_first_changed_statement_is_shown() {
        let applied = "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\nSELECT 1;\n";
        let current = "CREATE TABLE t (id int);\nINSERT INTO t VALUES (2);\nSELECT 1;\n";
        let Change::Statement {
            offset,
            applied,
            current: now,
        } = compare(applied, current)
        else {
            panic!("a changed value is a change");
        };
        assert_eq!(&current[offset..offset + 1], "2");
        assert_eq!(applied, "INSERT INTO t VALUES ( 1 ) ;");
        assert_eq!(now, "INSERT INTO t VALUES ( 2 ) ;");
    }

    #[test]
    fn string_contents_and_function_bodies_count() {
        let applied =
            "SELECT 'a -- b';\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;";
        let changed_string =
            "SELECT 'a -- c';\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;";
        let changed_body = "SELECT 'a -- b';\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1 -- x\n $$ LANGUAGE sql;";
        assert!(matches!(
            compare(applied, changed_string),
            Change::Statement { .. }
        ));
        assert!(matches!(
            compare(applied, changed_body),
            Change::Statement { .. }
        ));
    }

    #[test]
    fn an_added_statement_is_a_change() {
        let applied = "SELECT 1;";
        let current = "SELECT 1;\nSELECT 2;";
        let Change::Statement {
            applied, current, ..
        } = compare(applied, current)
        else {
            panic!("an added statement is a change");
        };
        assert_eq!(applied, "(nothing: the file ends here)");
        assert_eq!(current, "SELECT 2 ;");
    }
}
