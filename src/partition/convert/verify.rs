//! Verify: per partition, the row count and a content hash of the table
//! and of the partitioned table, read in one REPEATABLE READ snapshot. Keys
//! still waiting in the log are left out on both sides: the swap replays
//! them under its lock. The hash is the sum of a 64-bit hash of each row's
//! text, so it does not depend on the order rows are read in and needs no
//! memory beyond the sum.

use std::collections::BTreeMap;

use postgres::Client;

use super::check::Checked;
use super::plan::{Columns, Names, PartitionRange};
use super::source::SourceTable;
use crate::db::{quote_ident, quote_literal};
use crate::partition::planner::{Action, Lock, Step};
use crate::partition::policy::TablePolicy;

/// What source rows outside every range are grouped under.
const OUTSIDE: &str = "(outside every partition)";

pub(super) fn verify_step(
    table: &TablePolicy,
    checked: &Checked,
    source: &SourceTable,
    names: &Names,
    columns: &Columns,
    ranges: &[PartitionRange],
) -> Step {
    let mut step = super::plan::step(
        table,
        Action::ConvertVerify,
        Lock::AccessShare,
        "compares, per partition, the row count and a hash of the rows of the table and of the \
         partitioned table, in one snapshot, leaving out the keys still in the log",
    );
    step.partition = Some(names.target.clone());
    let tally = Tally {
        source,
        names,
        columns,
    };
    step.sql = vec![
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY".to_owned(),
        super::plan::ROW_SECURITY_OFF.to_owned(),
        tally.source_sql(checked, ranges),
        tally.target_sql(),
        format!("SELECT count(*) FROM {}", names.log.quoted()),
    ];
    step
}

/// The two counting queries.
struct Tally<'a> {
    source: &'a SourceTable,
    names: &'a Names,
    columns: &'a Columns,
}

impl Tally<'_> {
    /// The row count and the hash of the rows of `alias`.
    fn counts(&self, alias: &str) -> String {
        let parts: Vec<String> = self
            .source
            .columns
            .iter()
            .filter(|c| c.generated.is_empty())
            .map(|c| format!("{alias}.{}", quote_ident(&c.name)))
            .collect();
        format!(
            "count(*), coalesce(sum(('x' || left(md5(ROW({})::text), 16))::bit(64)::int8), 0)::text",
            parts.join(", ")
        )
    }

    /// The rows of `alias` whose key is not waiting in the log.
    fn unlogged(&self, alias: &str) -> String {
        format!(
            "NOT EXISTS (SELECT FROM {} l WHERE {} = {})",
            self.names.log.quoted(),
            self.columns.key_row("l."),
            self.columns.key_row(&format!("{alias}."))
        )
    }

    /// The table's rows, grouped by the partition their key falls in.
    fn source_sql(&self, checked: &Checked, ranges: &[PartitionRange]) -> String {
        let key = quote_ident(&checked.key);
        let sql_type = self
            .source
            .column(&checked.key)
            .map_or("text", |c| c.sql_type.as_str());
        let default = ranges
            .iter()
            .find(|r| r.range.is_none())
            .map_or(OUTSIDE, |r| r.name.as_str());
        format!(
            "WITH bounds (pgm_partition, pgm_from, pgm_to) AS ({}) \
             SELECT coalesce(b.pgm_partition, {}), {} FROM {} s \
             LEFT JOIN bounds b ON s.{key} >= b.pgm_from AND s.{key} < b.pgm_to WHERE {} GROUP BY 1 ORDER BY 1",
            bounds(ranges, sql_type),
            quote_literal(default),
            self.counts("s"),
            self.names.source.quoted(),
            self.unlogged("s")
        )
    }

    /// The partitioned table's rows, grouped by the partition holding them.
    fn target_sql(&self) -> String {
        format!(
            "SELECT c.relname::text, x.n, x.h FROM (SELECT t.tableoid, {} FROM {} t WHERE {} GROUP BY 1) \
             AS x (tableoid, n, h) JOIN pg_class c ON c.oid = x.tableoid ORDER BY 1",
            self.counts("t"),
            self.names.target.quoted(),
            self.unlogged("t")
        )
    }
}

/// The ranges as a VALUES list (an empty query when there are none).
fn bounds(ranges: &[PartitionRange], sql_type: &str) -> String {
    let values: Vec<String> = ranges
        .iter()
        .filter_map(|r| {
            let (from, to) = r.range.as_ref()?;
            Some(format!(
                "({}, {from}::{sql_type}, {to}::{sql_type})",
                quote_literal(&r.name)
            ))
        })
        .collect();
    if values.is_empty() {
        return format!("SELECT NULL::text, NULL::{sql_type}, NULL::{sql_type} WHERE false");
    }
    format!("VALUES {}", values.join(", "))
}

/// What verify found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub partitions: usize,
    pub rows: i64,
    /// Keys left out, waiting in the log.
    pub logged: i64,
    /// One line per partition that differs.
    pub differences: Vec<String>,
}

type Counts = BTreeMap<String, (i64, String)>;

/// Runs the verify step's statements in one snapshot.
pub(super) fn run_verify(client: &mut Client, step: &Step) -> Result<Verified, postgres::Error> {
    let mut transaction = client.transaction()?;
    let statements = super::run::run_settings(&mut transaction, step)?;
    let read = |transaction: &mut postgres::Transaction<'_>,
                sql: &str|
     -> Result<Counts, postgres::Error> {
        Ok(transaction
            .query(sql, &[])?
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect())
    };
    let source = read(&mut transaction, &statements[0])?;
    let target = read(&mut transaction, &statements[1])?;
    let logged: i64 = transaction.query_one(statements[2].as_str(), &[])?.get(0);
    transaction.commit()?;
    Ok(compare(&source, &target, logged))
}

fn compare(source: &Counts, target: &Counts, logged: i64) -> Verified {
    let mut names: Vec<&String> = source.keys().chain(target.keys()).collect();
    names.sort();
    names.dedup();
    let empty = (0, "0".to_owned());
    let mut differences = Vec::new();
    for name in &names {
        let (a, b) = (
            source.get(*name).unwrap_or(&empty),
            target.get(*name).unwrap_or(&empty),
        );
        if a != b {
            let what = if a.0 == b.0 {
                "the same number of rows with different contents".to_owned()
            } else {
                format!(
                    "{} row(s) in the table, {} in the partitioned table",
                    a.0, b.0
                )
            };
            differences.push(format!("{name}: {what}"));
        }
    }
    Verified {
        partitions: names.len(),
        rows: source.values().map(|(n, _)| n).sum(),
        logged,
        differences,
    }
}
