//! The journal of a conversion (`pgm_convert`, one row per source table,
//! written in the same transaction as the work it records) and the other
//! facts a plan needs from the database: whether the objects a conversion
//! makes exist, and the source's key range.

use postgres::Client;
use serde::Serialize;

use super::plan::{Names, PartitionRange};
use crate::db::quote_ident;
use crate::partition::catalog::Bound;

/// How far a conversion got, as its journal row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalPhase {
    /// The partitioned table, its partitions and the log exist.
    Prepared,
    /// The capture triggers exist: the backfill may run.
    Capturing,
    /// Every row was copied; the replay keeps the copy current.
    Backfilled,
    /// The partitioned table has the name; the old table is kept.
    Swapped,
}

impl JournalPhase {
    fn parse(text: &str) -> Option<JournalPhase> {
        Some(match text {
            "prepared" => JournalPhase::Prepared,
            "capturing" => JournalPhase::Capturing,
            "backfilled" => JournalPhase::Backfilled,
            "swapped" => JournalPhase::Swapped,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Journal {
    pub phase: JournalPhase,
    /// The largest primary key when the capture started, as text: the
    /// backfill copies up to it (`None` for a table that was empty).
    pub backfill_until: Option<Vec<String>>,
    /// The primary key of the last row the backfill copied, as text.
    pub backfill_after: Option<Vec<String>>,
    pub copied: i64,
    pub replayed: i64,
    /// The name the old table was given by the swap.
    pub kept_as: Option<String>,
}

/// What the database holds of a conversion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct State {
    pub journal: Option<Journal>,
    pub target_exists: bool,
    /// Entries waiting in the change log.
    pub logged: i64,
    /// The partitions of the target, when it exists.
    pub partitions: Vec<PartitionRange>,
    /// The target as the catalog describes it, when it exists (read by the
    /// run, which compares its columns with the source's).
    pub target: Option<super::source::SourceTable>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("reading the journal {table}: {source}")]
    Query {
        table: String,
        source: postgres::Error,
    },
    #[error(
        "the journal {table} holds the unknown phase \"{phase}\" for {source_table}: written by a newer pgm?"
    )]
    UnknownPhase {
        table: String,
        source_table: String,
        phase: String,
    },
}

/// The journal row of the conversion of `names.source`, and what exists.
pub fn read_state(client: &mut Client, names: &Names) -> Result<State, JournalError> {
    let query_error = |source| JournalError::Query {
        table: names.journal.to_string(),
        source,
    };
    let exists = |client: &mut Client, name: &str| -> Result<bool, postgres::Error> {
        Ok(client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])?
            .get(0))
    };
    let mut state = State {
        target_exists: exists(client, &names.target.quoted()).map_err(query_error)?,
        ..State::default()
    };
    if !exists(client, &names.journal.quoted()).map_err(query_error)? {
        return Ok(state);
    }
    let sql = format!(
        "SELECT phase, backfill_after, copied, replayed, backfill_until, kept_as FROM {} WHERE source = $1",
        names.journal.quoted()
    );
    let row = client
        .query_opt(&sql, &[&names.source.quoted()])
        .map_err(query_error)?;
    if let Some(row) = row {
        let phase: String = row.get(0);
        state.journal = Some(Journal {
            phase: JournalPhase::parse(&phase).ok_or_else(|| JournalError::UnknownPhase {
                table: names.journal.to_string(),
                source_table: names.source.to_string(),
                phase,
            })?,
            backfill_after: row.get(1),
            copied: row.get(2),
            replayed: row.get(3),
            backfill_until: row.get(4),
            kept_as: row.get(5),
        });
    }
    if state.target_exists {
        state.partitions = read_partitions(client, names).map_err(query_error)?;
    }
    if exists(client, &names.log.quoted()).map_err(query_error)? {
        let sql = format!("SELECT count(*) FROM {}", names.log.quoted());
        state.logged = client.query_one(&sql, &[]).map_err(query_error)?.get(0);
    }
    Ok(state)
}

/// The target's partitions with their bounds as PostgreSQL prints them
/// (session in UTC), in bound order.
fn read_partitions(
    client: &mut Client,
    names: &Names,
) -> Result<Vec<PartitionRange>, postgres::Error> {
    let rows = client.query(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, 0) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass($1) ORDER BY 2",
        &[&names.target.quoted()],
    )?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let range = match Bound::parse(row.get(1)) {
                Bound::Range { from, to } => Some((from, to)),
                Bound::Default => None,
                Bound::Other(_) => return None,
            };
            Some(PartitionRange {
                name: row.get(0),
                range,
            })
        })
        .collect())
}

/// The smallest and largest key of the source, printed in the session's
/// settings (UTC, ISO): an index read when the key is indexed.
pub fn read_key_range(
    client: &mut Client,
    names: &Names,
    key: &str,
) -> Result<super::plan::KeyRange, postgres::Error> {
    let key = quote_ident(key);
    let sql = format!(
        "SELECT (SELECT {key}::text FROM {source} ORDER BY {key} LIMIT 1), \
                (SELECT {key}::text FROM {source} ORDER BY {key} DESC LIMIT 1)",
        source = names.source.quoted()
    );
    let row = client.query_one(&sql, &[])?;
    Ok(super::plan::KeyRange {
        min: row.get(0),
        max: row.get(1),
    })
}
