//! Draining the default partition (`drain_default = true`): where its rows
//! are, read before planning, so the planner (pure) can give each period
//! holding rows its partition and move the rows there.
//!
//! How rows move, and why this way: a partition of a range cannot be
//! attached (nor created `PARTITION OF`) while the default partition holds
//! rows of that range: the server scans the default and refuses. Rows are
//! visible through the parent only in attached partitions, so the move of
//! a period's rows from the default and the attach of its partition must
//! commit together, or readers of the parent would miss rows (or see them
//! twice) in between. Each period is therefore one transaction, the
//! attach-with-move maintain already uses for new periods (`DELETE FROM
//! default … RETURNING` into the unattached partition, then `ATTACH`), the
//! way pg_partman's `partition_data_time` also moves one whole period per
//! transaction (it refuses a batch smaller than the partition interval for
//! the same reason). Splitting a period into batches that each commit
//! would leave the moved rows in an unattached table, invisible to the
//! application until the last batch: a row in none of the places it can be
//! read. A kill rolls back the period being moved (its rows stay in the
//! default); the partition created unattached before it is recognised by
//! its marker and attached, with the move, by the next run. Rows a writer
//! adds to the default for that period while the move runs make the
//! attach's scan fail and roll the whole transaction back; the executor
//! retries it like a serialization failure, and the retry moves them too.
//! The default partition is not locked before the move: an application
//! transaction that read the parent and then inserts would deadlock with
//! that lock, whereas this way pgm is always the side that waits.

use postgres::Client;

use super::calendar::{self, KeyType, KeyValue, SqlKey};
use super::catalog::{Bound, DefaultRows, Parent, Snapshot};
use super::planner::{self, Periods};
use super::policy::TablePolicy;
use crate::db::quote_ident;
use crate::duration::Timeout;

/// Periods read per table and run: a default holding rows of more periods
/// is drained over several runs.
pub const MAX_PERIODS_PER_RUN: usize = 100;

/// How long one read of the default partition may take beyond the
/// table's lock_timeout: without an index on the key each read scans it.
const READ_BUDGET_MS: u64 = 60_000;

/// Fills `default_rows` of every parent whose table drains its default.
pub fn read_default_rows(
    client: &mut Client,
    tables: &[&TablePolicy],
    snapshot: &mut Snapshot,
) -> Result<(), postgres::Error> {
    for (position, table) in tables.iter().enumerate() {
        if !table.drain_default {
            continue;
        }
        let Some(Some(parent)) = snapshot.parents.get(position) else {
            continue;
        };
        let Some((default, column, periods, key)) = drain_target(table, parent) else {
            continue;
        };
        let rows = read_periods(client, table, &default, &column, periods, key)?;
        snapshot.queries += rows.periods.len() + 1;
        if let Some(Some(parent)) = snapshot.parents.get_mut(position) {
            parent.default_rows = Some(rows);
        }
    }
    Ok(())
}

/// The default partition (quoted), the key column (quoted) and the
/// periods of a table pgm can plan.
fn drain_target(
    table: &TablePolicy,
    parent: &Parent,
) -> Option<(String, String, Periods, KeyType)> {
    let default = parent
        .partitions
        .iter()
        .find(|p| p.bound == Bound::Default)?;
    let key = parent.key.as_ref()?;
    let key_type = planner::key_type(table, key, SqlKey::from_sql_type(&key.sql_type)?).ok()?;
    Some((
        format!(
            "{}.{}",
            quote_ident(&default.schema),
            quote_ident(&default.name)
        ),
        quote_ident(&key.column),
        planner::periods_of(table, key_type),
        key_type,
    ))
}

/// The periods holding rows, each found as `min(key)` at or after the end
/// of the previous one: one index read per period when the key is indexed.
fn read_periods(
    client: &mut Client,
    table: &TablePolicy,
    default: &str,
    column: &str,
    periods: Periods,
    key: KeyType,
) -> Result<DefaultRows, postgres::Error> {
    let budget = Timeout::from_millis(
        u64::try_from(table.lock_timeout.0.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(READ_BUDGET_MS),
    );
    let mut transaction = client.build_transaction().read_only(true).start()?;
    transaction.batch_execute(&format!(
        "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL lock_timeout = '{}'; \
         SET LOCAL statement_timeout = '{}'",
        table.lock_timeout.setting(),
        budget.setting()
    ))?;
    let mut found = DefaultRows::default();
    let mut from: Option<KeyValue> = None;
    loop {
        if found.periods.len() == MAX_PERIODS_PER_RUN {
            found.truncated = true;
            break;
        }
        let filter = from
            .map(|start| format!(" WHERE {column} >= {}", periods.literal(start)))
            .unwrap_or_default();
        let sql = format!("SELECT min({column})::text FROM ONLY {default}{filter}");
        let smallest: Option<String> = match transaction.query_one(&sql, &[]) {
            Ok(row) => row.get(0),
            Err(error) => {
                let Some(db_error) = error.as_db_error() else {
                    return Err(error);
                };
                found.failure = Some(format!(
                    "the rows of the default partition {default} could not be read ({}); nothing is drained \
                     this run",
                    db_error.message()
                ));
                break;
            }
        };
        let Some(start) = smallest
            .and_then(|text| key_value(key, &text))
            .and_then(|value| periods.holding(value))
        else {
            break;
        };
        found.periods.push(start);
        match periods.next(start) {
            Some(end) if end != KeyValue::MAX => from = Some(end),
            _ => break,
        }
    }
    transaction.rollback()?;
    Ok(found)
}

/// A key value as PostgreSQL prints it (session in UTC, ISO dates); an
/// integer key may be a numeric with a fraction, floored.
fn key_value(key: KeyType, text: &str) -> Option<KeyValue> {
    match key {
        KeyType::Id(_) | KeyType::Epoch(..) => {
            let (value, _) = calendar::floor_integer(text)?;
            KeyValue::try_from(value).ok()
        }
        _ => calendar::parse_bound(key, text),
    }
}
