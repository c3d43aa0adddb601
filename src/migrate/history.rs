//! The history table, in refinery's layout so refinery and pgm read each
//! other's rows, and pgm's two side tables: run timings, and the journal of
//! completed statements of a migration that runs outside a transaction.

use postgres::Client;
use thiserror::Error;

use crate::db::quote_ident;

use super::source::{SourceMigration, Version};

pub const HISTORY_TABLE: &str = "refinery_schema_history";
pub const RUNS_TABLE: &str = "pgm_migration_runs";
pub const JOURNAL_TABLE: &str = "pgm_migration_journal";
/// The text of each applied file (PostgreSQL compresses long values).
pub const TEXTS_TABLE: &str = "pgm_migration_texts";
/// One row per repair: what, who, when, and the checksum it replaced.
pub const REPAIRS_TABLE: &str = "pgm_migration_repairs";

#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("reading {table}: {source}")]
    Query {
        table: &'static str,
        source: postgres::Error,
    },
    #[error(
        "{HISTORY_TABLE} row for version {version} has a checksum that is not a number ({checksum:?}); was the table edited by hand?"
    )]
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

/// Where the tables live: the schema holding the history table when it
/// exists (as refinery finds it through the search path), else the current
/// schema. Resolved once per run and written schema-qualified, so that a
/// migration changing search_path cannot move them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub schema: String,
}

impl Tables {
    pub fn locate(client: &mut Client) -> Result<Tables, postgres::Error> {
        let row = client.query_one(
            "SELECT coalesce((SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                              WHERE c.oid = to_regclass($1)), current_schema()::text, 'public')",
            &[&quote_ident(HISTORY_TABLE)],
        )?;
        Ok(Tables { schema: row.get(0) })
    }

    pub fn history(&self) -> String {
        self.qualified(HISTORY_TABLE)
    }

    pub fn runs(&self) -> String {
        self.qualified(RUNS_TABLE)
    }

    pub fn journal(&self) -> String {
        self.qualified(JOURNAL_TABLE)
    }

    pub fn texts(&self) -> String {
        self.qualified(TEXTS_TABLE)
    }

    pub fn repairs(&self) -> String {
        self.qualified(REPAIRS_TABLE)
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }
}

/// The history row of a migration, in refinery's format: `$1` version,
/// `$2` name, `$3` checksum; `applied_on` is the time it is written.
pub fn insert_applied(tables: &Tables) -> String {
    format!(
        "INSERT INTO {} (version, name, applied_on, checksum) VALUES ($1, $2, \
         to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), $3)",
        tables.history()
    )
}

/// Creates the missing tables (`setup`) and writes a history row for each
/// migration, in one transaction, running none of them.
pub fn record_without_running(
    client: &mut Client,
    tables: &Tables,
    setup: &[String],
    migrations: &[&SourceMigration],
) -> Result<(), postgres::Error> {
    let mut transaction = client.transaction()?;
    for statement in setup {
        transaction.batch_execute(statement)?;
    }
    let (insert, text) = (insert_applied(tables), upsert_text(tables));
    for migration in migrations {
        let checksum = migration.checksum.to_string();
        transaction.execute(&insert, &[&migration.version, &migration.name, &checksum])?;
        transaction.execute(&text, &[&migration.version, &checksum, &migration.text()])?;
    }
    transaction.commit()
}

/// Which of pgm's tables exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablesPresent {
    pub history: bool,
    pub runs: bool,
    pub journal: bool,
    pub texts: bool,
}

pub fn tables_present(
    client: &mut Client,
    tables: &Tables,
) -> Result<TablesPresent, postgres::Error> {
    let row = client.query_one(
        "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL, to_regclass($3) IS NOT NULL, \
                to_regclass($4) IS NOT NULL",
        &[&tables.history(), &tables.runs(), &tables.journal(), &tables.texts()],
    )?;
    Ok(TablesPresent {
        history: row.get(0),
        runs: row.get(1),
        journal: row.get(2),
        texts: row.get(3),
    })
}

/// The statements that create whatever is missing.
pub fn create_statements(tables: &Tables, present: TablesPresent) -> Vec<String> {
    let mut statements = Vec::new();
    if !present.history {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version int4 PRIMARY KEY, name varchar(255), \
             applied_on varchar(255), checksum varchar(255))",
            tables.history()
        ));
    }
    if !present.runs {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version int4 PRIMARY KEY, started_at timestamptz NOT NULL, \
             finished_at timestamptz NOT NULL, mode text NOT NULL)",
            tables.runs()
        ));
    }
    if !present.journal {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version int4 NOT NULL, checksum text NOT NULL, \
             statement int4 NOT NULL, completed_at timestamptz NOT NULL DEFAULT clock_timestamp(), \
             PRIMARY KEY (version, statement))",
            tables.journal()
        ));
    }
    if !present.texts {
        statements.push(create_texts_table(tables));
    }
    statements
}

pub fn read_applied(
    client: &mut Client,
    tables: &Tables,
    present: TablesPresent,
) -> Result<Vec<Applied>, HistoryError> {
    if !present.history {
        return Ok(Vec::new());
    }
    let duration = if present.runs {
        format!(
            "(SELECT (extract(epoch FROM r.finished_at - r.started_at) * 1000)::int8 FROM {} r WHERE r.version = h.version)",
            tables.runs()
        )
    } else {
        "NULL::int8".to_owned()
    };
    let sql = format!(
        "SELECT h.version, coalesce(h.name, ''), coalesce(h.applied_on, ''), coalesce(h.checksum, ''), {duration} \
         FROM {} h ORDER BY h.version",
        tables.history()
    );
    let rows = client
        .query(&sql, &[])
        .map_err(|source| HistoryError::Query {
            table: HISTORY_TABLE,
            source,
        })?;
    rows.iter()
        .map(|row| {
            let version: Version = row.get(0);
            let checksum: String = row.get(3);
            Ok(Applied {
                version,
                name: row.get(1),
                applied_on: row.get(2),
                checksum: checksum.parse().map_err(|_| HistoryError::BadChecksum {
                    version,
                    checksum: checksum.clone(),
                })?,
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

pub fn read_progress(
    client: &mut Client,
    tables: &Tables,
    present: TablesPresent,
) -> Result<Vec<(Version, Progress)>, HistoryError> {
    if !present.journal {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT version, min(checksum), count(*) FILTER (WHERE statement > 0) FROM {} GROUP BY version ORDER BY version",
        tables.journal()
    );
    let rows = client
        .query(&sql, &[])
        .map_err(|source| HistoryError::Query {
            table: JOURNAL_TABLE,
            source,
        })?;
    rows.iter()
        .map(|row| {
            let version: Version = row.get(0);
            let checksum: String = row.get(1);
            let completed: i64 = row.get(2);
            Ok((
                version,
                Progress {
                    checksum: checksum.parse().map_err(|_| HistoryError::BadChecksum {
                        version,
                        checksum: checksum.clone(),
                    })?,
                    completed: completed as usize,
                },
            ))
        })
        .collect()
}

/// The tables a repair writes to, created when missing.
pub fn create_repair_tables(tables: &Tables) -> Vec<String> {
    vec![
        create_texts_table(tables),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             version int4 NOT NULL, name text NOT NULL, old_checksum text NOT NULL, new_checksum text NOT NULL, \
             forced bool NOT NULL, os_user text NOT NULL, database_user text NOT NULL DEFAULT session_user, \
             repaired_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            tables.repairs()
        ),
    ]
}

pub fn create_texts_table(tables: &Tables) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (version int4 PRIMARY KEY, checksum text NOT NULL, text text NOT NULL)",
        tables.texts()
    )
}

/// The applied text of each migration pgm applied (or repaired), with the
/// checksum it was applied under; none before pgm kept them.
pub fn read_applied_texts(
    client: &mut Client,
    tables: &Tables,
) -> Result<Vec<(Version, u64, String)>, postgres::Error> {
    let present: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&tables.texts()])?
        .get(0);
    if !present {
        return Ok(Vec::new());
    }
    let rows = client.query(
        &format!(
            "SELECT version, checksum, text FROM {} ORDER BY version",
            tables.texts()
        ),
        &[],
    )?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let checksum: String = row.get(1);
            Some((row.get(0), checksum.parse().ok()?, row.get(2)))
        })
        .collect())
}

/// `$1` version, `$2` the checksum it had, `$3` the new one: the history
/// row takes the new checksum if nobody changed it meanwhile.
pub fn update_checksum(tables: &Tables) -> String {
    format!(
        "UPDATE {} SET checksum = $3 WHERE version = $1 AND checksum = $2",
        tables.history()
    )
}

/// `$1` version, `$2` name, `$3` old checksum, `$4` new checksum, `$5`
/// forced, `$6` the OS user.
pub fn insert_repair(tables: &Tables) -> String {
    format!(
        "INSERT INTO {} (version, name, old_checksum, new_checksum, forced, os_user) VALUES ($1, $2, $3, $4, $5, $6)",
        tables.repairs()
    )
}

/// `$1` version, `$2` checksum, `$3` text.
pub fn upsert_text(tables: &Tables) -> String {
    format!(
        "INSERT INTO {} (version, checksum, text) VALUES ($1, $2, $3) \
         ON CONFLICT (version) DO UPDATE SET checksum = excluded.checksum, text = excluded.text",
        tables.texts()
    )
}
