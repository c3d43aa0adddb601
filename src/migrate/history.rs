//! The history table, in refinery's layout so refinery and pgm read each
//! other's rows, and pgm's two side tables: run timings, and the journal of
//! completed statements of a migration that runs outside a transaction.

use postgres::Client;
use thiserror::Error;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::db::quote_ident;

use super::source::{SourceMigration, Version, VersionWidth};

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
    #[error(
        "{file}{} {} a version above 2147483647, which {tables} cannot hold (32-bit versions, \
         refinery's default): run pgm migrate widen-history once to make them 64-bit (refinery then \
         needs its int8-versions feature), or give the file the next whole-number version",
        if *more > 0 { format!(" and {more} more file(s)") } else { String::new() },
        if *more > 0 { "have" } else { "has" }
    )]
    TooNarrow {
        file: String,
        more: usize,
        tables: String,
    },
}

/// The advisory lock key of the runs that write the history kept in
/// `schema`: pgm's one key for a history in `public` (as every release
/// takes), and a key of the schema's own otherwise, so that the tenants of
/// a schema-per-tenant database migrate side by side while two runs on one
/// tenant still exclude each other.
pub fn run_lock_key(schema: &str) -> i64 {
    if schema == "public" {
        super::apply::MIGRATE_LOCK_KEY
    } else {
        crate::db::lock::key_for(&format!("pgm migrate {schema}"))
    }
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

/// The session setting that pins the history to one schema, whatever the
/// search path holds: a fleet's tenant schema, whose search path can go on
/// to a schema of shared extensions (that may hold a history of its own).
pub const HISTORY_SCHEMA_SETTING: &str = "pgm.history_schema";

/// Where the tables live: the schema `pgm.history_schema` names when set
/// (even one that does not exist: creating the tables then fails, rather
/// than landing elsewhere); else the schema holding the history table when
/// it exists (as refinery finds it through the search path), else the
/// current schema. Resolved once per run and written schema-qualified, so that a
/// migration changing search_path cannot move them. With it, the width of
/// the versions, which decides the checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub schema: String,
    /// The history table's; for a table still to be created, 64 bits only
    /// when a file needs them, so refinery's default build can read it.
    pub width: VersionWidth,
    /// pgm's tables that exist with 32-bit versions.
    pub narrow: Vec<&'static str>,
}

/// Which of pgm's tables exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablesPresent {
    pub history: bool,
    pub runs: bool,
    pub journal: bool,
    pub texts: bool,
}

const ALL_TABLES: [&str; 5] = [
    HISTORY_TABLE,
    RUNS_TABLE,
    JOURNAL_TABLE,
    TEXTS_TABLE,
    REPAIRS_TABLE,
];

impl Tables {
    /// Finds the tables, which exist and their version widths, in one
    /// query; `sources` decide the width of a history table still to create.
    pub fn locate(
        client: &mut Client,
        sources: &[SourceMigration],
    ) -> Result<(Tables, TablesPresent), postgres::Error> {
        // Typed, without a prepare: one round trip (as the reads below).
        let rows = client.query_typed(
            "WITH pinned AS (SELECT nullif(current_setting($3, true), '') AS name), \
             home AS (SELECT coalesce((SELECT oid FROM pg_namespace, pinned WHERE nspname = pinned.name), \
                                      (SELECT c.relnamespace FROM pg_class c, pinned WHERE c.oid = to_regclass($1) AND pinned.name IS NULL), \
                                      (SELECT to_regnamespace(current_schema()) FROM pinned WHERE pinned.name IS NULL), \
                                      (SELECT to_regnamespace('public') FROM pinned WHERE pinned.name IS NULL)) AS nsp) \
             SELECT coalesce(pinned.name, n.nspname::text), c.relname::text, a.atttypid = 'int8'::regtype \
             FROM pinned, home LEFT JOIN pg_namespace n ON n.oid = home.nsp \
             LEFT JOIN pg_class c ON c.relnamespace = home.nsp AND c.relname = ANY($2) AND c.relkind IN ('r', 'p') \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'version' AND NOT a.attisdropped",
            &[
                (&quote_ident(HISTORY_TABLE), Type::TEXT),
                (&ALL_TABLES.as_slice(), Type::TEXT_ARRAY),
                (&HISTORY_SCHEMA_SETTING, Type::TEXT),
            ],
        )?;
        let schema = rows
            .first()
            .and_then(|row| row.get::<_, Option<String>>(0))
            .unwrap_or_else(|| "public".to_owned());
        let found: Vec<(&'static str, bool)> = rows
            .iter()
            .filter_map(|row| {
                let name: Option<String> = row.get(1);
                let table = ALL_TABLES
                    .into_iter()
                    .find(|t| Some(*t) == name.as_deref())?;
                Some((table, row.get::<_, Option<bool>>(2).unwrap_or(false)))
            })
            .collect();
        let exists = |table: &str| found.iter().any(|(t, _)| *t == table);
        let needs_int8 = sources.iter().any(|s| !VersionWidth::Int4.holds(s.version));
        let width = match found.iter().find(|(t, _)| *t == HISTORY_TABLE) {
            Some((_, true)) => VersionWidth::Int8,
            Some((_, false)) => VersionWidth::Int4,
            None if needs_int8 => VersionWidth::Int8,
            None => VersionWidth::Int4,
        };
        let tables = Tables {
            schema,
            width,
            narrow: found
                .iter()
                .filter(|(_, wide)| !wide)
                .map(|(t, _)| *t)
                .collect(),
        };
        let present = TablesPresent {
            history: exists(HISTORY_TABLE),
            runs: exists(RUNS_TABLE),
            journal: exists(JOURNAL_TABLE),
            texts: exists(TEXTS_TABLE),
        };
        Ok((tables, present))
    }

    /// Refuses files whose versions some existing table cannot hold, before
    /// anything runs.
    pub fn check_width(&self, sources: &[SourceMigration]) -> Result<(), HistoryError> {
        let wide: Vec<&SourceMigration> = sources
            .iter()
            .filter(|s| !VersionWidth::Int4.holds(s.version))
            .collect();
        match (wide.first(), self.narrow.is_empty()) {
            (Some(first), false) => Err(HistoryError::TooNarrow {
                file: first.path.display().to_string(),
                more: wide.len() - 1,
                tables: self.narrow.join(", "),
            }),
            _ => Ok(()),
        }
    }

    pub fn history(&self) -> String {
        self.qualified(HISTORY_TABLE)
    }

    /// The run lock of the history kept in this schema.
    pub fn run_lock_key(&self) -> i64 {
        run_lock_key(&self.schema)
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

    pub fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }
}

/// A version as a statement parameter or a column value, whichever width
/// the table has: refinery's tables hold 32-bit versions unless built for
/// 64, and pgm reads and writes both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionValue(pub Version);

impl ToSql for VersionValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *ty {
            Type::INT4 => i32::try_from(self.0)?.to_sql(ty, out),
            _ => self.0.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT4 | Type::INT8)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for VersionValue {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<VersionValue, Box<dyn std::error::Error + Sync + Send>> {
        match *ty {
            Type::INT4 => i32::from_sql(ty, raw).map(|v| VersionValue(v.into())),
            _ => i64::from_sql(ty, raw).map(VersionValue),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT4 | Type::INT8)
    }
}

/// What is read of the history for widening and repair: the tables and
/// their rows.
pub struct HistoryRead<'a> {
    pub tables: &'a Tables,
    pub applied: &'a [Applied],
    pub progress: &'a [(Version, Progress)],
    /// (version, checksum, text) of each applied text pgm recorded.
    pub texts: &'a [(Version, u64, String)],
    pub texts_table: bool,
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
        let checksum = migration.checksum(tables.width).to_string();
        let version = VersionValue(migration.version);
        transaction.execute(&insert, &[&version, &migration.name, &checksum])?;
        transaction.execute(&text, &[&version, &checksum, &migration.text()])?;
    }
    transaction.commit()
}

/// The statements that create whatever is missing.
pub fn create_statements(tables: &Tables, present: TablesPresent) -> Vec<String> {
    let mut statements = Vec::new();
    let version = tables.width.sql_type();
    if !present.history {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version {version} PRIMARY KEY, name varchar(255), \
             applied_on varchar(255), checksum varchar(255))",
            tables.history()
        ));
    }
    if !present.runs {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version {version} PRIMARY KEY, started_at timestamptz NOT NULL, \
             finished_at timestamptz NOT NULL, mode text NOT NULL)",
            tables.runs()
        ));
    }
    if !present.journal {
        statements.push(format!(
            "CREATE TABLE IF NOT EXISTS {} (version {version} NOT NULL, checksum text NOT NULL, \
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
        .query_typed(&sql, &[])
        .map_err(|source| HistoryError::Query {
            table: HISTORY_TABLE,
            source,
        })?;
    rows.iter()
        .map(|row| {
            let VersionValue(version) = row.get(0);
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
        .query_typed(&sql, &[])
        .map_err(|source| HistoryError::Query {
            table: JOURNAL_TABLE,
            source,
        })?;
    rows.iter()
        .map(|row| {
            let VersionValue(version) = row.get(0);
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
             version {} NOT NULL, name text NOT NULL, old_checksum text NOT NULL, new_checksum text NOT NULL, \
             forced bool NOT NULL, os_user text NOT NULL, database_user text NOT NULL DEFAULT session_user, \
             repaired_at timestamptz NOT NULL DEFAULT clock_timestamp())",
            tables.repairs(),
            tables.width.sql_type()
        ),
    ]
}

pub fn create_texts_table(tables: &Tables) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (version {} PRIMARY KEY, checksum text NOT NULL, text text NOT NULL)",
        tables.texts(),
        tables.width.sql_type()
    )
}

/// The applied text of each migration pgm applied (or repaired), with the
/// checksum it was applied under; none before pgm kept them.
pub fn read_applied_texts(
    client: &mut Client,
    tables: &Tables,
    present: TablesPresent,
) -> Result<Vec<(Version, u64, String)>, postgres::Error> {
    if !present.texts {
        return Ok(Vec::new());
    }
    let rows = client.query_typed(
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
            let VersionValue(version) = row.get(0);
            Some((version, checksum.parse().ok()?, row.get(2)))
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

#[cfg(test)]
mod tests {
    use super::run_lock_key;

    #[test]
    fn a_tenant_schema_has_a_run_lock_of_its_own() {
        assert_eq!(
            run_lock_key("public"),
            crate::migrate::apply::MIGRATE_LOCK_KEY
        );
        assert_ne!(run_lock_key("tenant_01"), run_lock_key("public"));
        assert_ne!(run_lock_key("tenant_01"), run_lock_key("tenant_02"));
    }
}
