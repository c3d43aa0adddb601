//! The history table, in refinery's layout so refinery and pgm read each
//! other's rows, and pgm's two side tables: run timings, and the journal of
//! completed statements of a migration that runs outside a transaction.

use postgres::Client;
use thiserror::Error;

use crate::db::quote_ident;

use super::source::Version;

pub const HISTORY_TABLE: &str = "refinery_schema_history";
pub const RUNS_TABLE: &str = "pgm_migration_runs";
pub const JOURNAL_TABLE: &str = "pgm_migration_journal";

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("reading {table}: {source}")]
    Query { table: &'static str, source: postgres::Error },
    #[error("{HISTORY_TABLE} row for version {version} has a checksum that is not a number ({checksum:?}); was the table edited by hand?")]
    BadChecksum { version: Version, checksum: String },
}

/// A row of the history table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: Version,
    pub name: String,
    pub applied_on: String,
    pub checksum: u64,
    /// From pgm's run table; none for rows written by refinery or by baseline.
    pub duration_ms: Option<i64>,
}

/// Which of the three tables exist (in the schema the search path resolves to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablesPresent {
    pub history: bool,
    pub runs: bool,
    pub journal: bool,
}

impl TablesPresent {
    pub fn all(&self) -> bool {
        self.history && self.runs && self.journal
    }
}

pub fn tables_present(client: &mut Client) -> Result<TablesPresent, postgres::Error> {
    let row = client.query_one(
        "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL",
        &[&quote_ident(HISTORY_TABLE), &quote_ident(RUNS_TABLE), &quote_ident(JOURNAL_TABLE)],
    )?;
    Ok(TablesPresent { history: row.get(0), runs: row.get(1), journal: row.get(2) })
}

/// The statements that create whatever is missing.
pub fn create_statements(present: TablesPresent) -> Vec<String> {
    let mut statements = Vec::new();
    if !present.history {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version int4 PRIMARY KEY, name varchar(255), \
             applied_on varchar(255), checksum varchar(255))",
            quote_ident(HISTORY_TABLE)
        ));
    }
    if !present.runs {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version int4 PRIMARY KEY, started_at timestamptz NOT NULL, \
             finished_at timestamptz NOT NULL, mode text NOT NULL)",
            quote_ident(RUNS_TABLE)
        ));
    }
    if !present.journal {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version int4 NOT NULL, checksum text NOT NULL, \
             statement int4 NOT NULL, completed_at timestamptz NOT NULL DEFAULT clock_timestamp(), \
             PRIMARY KEY (version, statement))",
            quote_ident(JOURNAL_TABLE)
        ));
    }
    statements
}

pub fn read_applied(client: &mut Client, present: TablesPresent) -> Result<Vec<Applied>, HistoryError> {
    if !present.history {
        return Ok(Vec::new());
    }
    let duration = if present.runs {
        format!(
            "(SELECT (extract(epoch FROM r.finished_at - r.started_at) * 1000)::int8 FROM {} r WHERE r.version = h.version)",
            quote_ident(RUNS_TABLE)
        )
    } else {
        "NULL::int8".to_owned()
    };
    let sql = format!(
        "SELECT h.version, coalesce(h.name, ''), coalesce(h.applied_on, ''), coalesce(h.checksum, ''), {duration} \
         FROM {} h ORDER BY h.version",
        quote_ident(HISTORY_TABLE)
    );
    let rows = client.query(&sql, &[]).map_err(|source| HistoryError::Query { table: HISTORY_TABLE, source })?;
    rows.iter()
        .map(|row| {
            let version: Version = row.get(0);
            let checksum: String = row.get(3);
            Ok(Applied {
                version,
                name: row.get(1),
                applied_on: row.get(2),
                checksum: checksum.parse().map_err(|_| HistoryError::BadChecksum { version, checksum: checksum.clone() })?,
                duration_ms: row.get(4),
            })
        })
        .collect()
}

/// Journal of a migration that runs outside a transaction: the checksum it
/// was started with and how many statements are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub checksum: u64,
    pub completed: usize,
}

pub fn read_progress(client: &mut Client, present: TablesPresent) -> Result<Vec<(Version, Progress)>, HistoryError> {
    if !present.journal {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT version, min(checksum), count(*) FILTER (WHERE statement > 0) FROM {} GROUP BY version ORDER BY version",
        quote_ident(JOURNAL_TABLE)
    );
    let rows = client.query(&sql, &[]).map_err(|source| HistoryError::Query { table: JOURNAL_TABLE, source })?;
    rows.iter()
        .map(|row| {
            let version: Version = row.get(0);
            let checksum: String = row.get(1);
            let completed: i64 = row.get(2);
            Ok((
                version,
                Progress {
                    checksum: checksum.parse().map_err(|_| HistoryError::BadChecksum { version, checksum: checksum.clone() })?,
                    completed: completed as usize,
                },
            ))
        })
        .collect()
}
