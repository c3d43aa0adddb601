//! The catalog as the planner sees it, read in a constant number of queries
//! whatever the number of tables and partitions (plus, for a table cut into
//! ID ranges, one `max` per partition from the newest down to the first that
//! holds rows, each bounded by the table's lock_timeout), inside one
//! read-only repeatable-read transaction (one consistent picture), with the
//! session in UTC so partition bounds print the same way everywhere.

use std::collections::HashMap;

use postgres::Client;
use serde::Serialize;

use super::convert::plan::JOURNAL_TABLE;
use super::policy::{Spacing, TablePolicy};
use crate::db::quote_ident;
use crate::duration::Timeout;

/// What a `max(key)` read may take beyond its wait for a lock: an index
/// read takes milliseconds; a scan of a large unindexed partition is cut
/// short rather than left to hold up the run.
const MAX_KEY_READ_BUDGET_MS: u64 = 5_000;

/// Marks a table pgm created for a period and has not attached yet, so a
/// run killed between the two steps is finished by the next one.
pub const PENDING_COMMENT_PREFIX: &str = "pgm: pending partition of ";
/// Marks a partition pgm is retiring (detach, then drop or archive), so a run
/// killed after the detach still drops or archives it next time.
pub const RETIRING_COMMENT_PREFIX: &str = "pgm: retiring partition of ";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Bound {
    Default,
    /// The FROM and TO values as PostgreSQL prints them.
    Range {
        from: String,
        to: String,
    },
    /// List or hash bounds, or a multi-column range: not pgm's business.
    Other(String),
}

impl Bound {
    pub fn parse(expression: &str) -> Bound {
        if expression == "DEFAULT" {
            return Bound::Default;
        }
        let range = expression
            .strip_prefix("FOR VALUES FROM (")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|rest| rest.split_once(") TO ("));
        match range {
            Some((from, to)) if !from.contains(", ") && !to.contains(", ") => Bound::Range {
                from: from.to_owned(),
                to: to.to_owned(),
            },
            _ => Bound::Other(expression.to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub valid: bool,
    /// The partitioned index this one is attached to, if any.
    pub attached_to: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub bound: Bound,
    pub detach_pending: bool,
    /// -1 when never analyzed.
    pub estimated_rows: i64,
    pub estimated_bytes: i64,
    pub indexes: Vec<Index>,
    /// Its table access method (`heap`, `columnar`…).
    pub access_method: Option<String>,
    /// The names of its CHECK constraints.
    pub checks: Vec<String>,
    /// Partitioned itself (pg_partman's sub-partitioning).
    pub subpartitioned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionKey {
    pub column: String,
    /// As `format_type` prints it.
    pub sql_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parent {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `p` partitioned, `r` plain table, and so on.
    pub relkind: char,
    /// `r` range, `l` list, `h` hash.
    pub strategy: Option<char>,
    /// The key when it is one plain column.
    pub key: Option<PartitionKey>,
    pub key_columns: i16,
    pub owner: String,
    pub tablespace: Option<String>,
    pub unlogged: bool,
    pub partitions: Vec<Partition>,
    pub indexes: Vec<Index>,
    /// For a table cut into ID ranges: the largest value, read from the
    /// newest partition holding rows; `None` when no partition holds a row
    /// (or it was not read: see `max_key_failure`).
    pub max_key: Option<MaxKey>,
    /// Why the largest key could not be read (a lock held by pending DDL,
    /// a read cut short), in words that say what to do.
    pub max_key_failure: Option<String>,
    /// What Citus makes of the table, when the extension is installed and
    /// the table is in its metadata.
    pub citus: Option<CitusTable>,
    /// The parent's grants to roles other than its owner, for
    /// `[table.partition] inherit_privileges`.
    pub grants: Vec<Grant>,
    /// With `drain_default`: where the rows of the default partition are,
    /// read by `drain::read_default_rows`.
    pub default_rows: Option<DefaultRows>,
}

/// How Citus holds a table (its `pg_dist_partition` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CitusTable {
    /// Hash-distributed: its partitions are distributed on ATTACH, their
    /// rows live in shards on the workers.
    Distributed,
    /// A single-shard table, as schema-based sharding makes every table of
    /// a distributed schema.
    SingleShard { in_distributed_schema: bool },
    /// A copy on every node.
    Reference,
    /// Kept on the coordinator, known to Citus's metadata.
    Local,
}

/// Rows and bytes of one relation, summed over its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct ShardTotals {
    rows: i64,
    bytes: i64,
}

/// One privilege the parent grants, as `aclexplode` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// A role name, or `PUBLIC`.
    pub grantee: String,
    pub privilege: String,
    pub grantable: bool,
}

/// The periods the default partition holds rows of, each read as the
/// smallest key at or after the end of the previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DefaultRows {
    /// Period starts (key space), in order.
    pub periods: Vec<crate::partition::calendar::KeyValue>,
    /// More periods hold rows than were read: the next run reads on.
    pub truncated: bool,
    /// Why the read failed (a lock held, a timeout): the drain waits.
    pub failure: Option<String>,
}

/// The largest key value of an integer-keyed table and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaxKey {
    /// As PostgreSQL prints it.
    pub value: String,
    /// The partition it was read from: pgm reads `max(key)` of the newest
    /// partition holding rows (an index read when the key is indexed), never
    /// the whole table, as pg_partman does.
    pub partition: String,
    /// Whether a valid index on that partition leads with the key: without
    /// one the read scanned the partition.
    pub indexed: bool,
}

/// A table the snapshot reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRead {
    pub schema: String,
    pub name: String,
    /// For a table cut into ID ranges: read its largest key, waiting for a
    /// lock at most this long.
    pub max_key_within: Option<Timeout>,
}

impl TableRead {
    pub fn of(table: &TablePolicy) -> TableRead {
        TableRead {
            schema: table.schema.clone(),
            name: table.name.clone(),
            max_key_within: matches!(table.spacing, Spacing::Ids(_)).then_some(table.lock_timeout),
        }
    }
}

/// A table pgm created for a period and did not attach (its run was stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingTable {
    pub schema: String,
    pub name: String,
    /// The parent it is meant for, qualified and quoted.
    pub parent: String,
    /// The first day of its period, "YYYY-MM-DD".
    pub period_start: String,
}

/// A table pgm began to retire: still a partition (detach not finished) or
/// already detached (drop or archive not done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetiringTable {
    pub schema: String,
    pub name: String,
    /// The parent it belonged to, qualified and quoted.
    pub parent: String,
    pub still_attached: bool,
}

/// A conversion (`pgm partitions convert`) its journal records for a table
/// the snapshot reads: until `--drop-old` or `--abort` ends it, every write
/// to the table is logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversion {
    /// The table, qualified and quoted, as the journal keys it.
    pub table: String,
    /// As the journal writes it: `prepared`, `capturing`, `backfilled`, `swapped`.
    pub phase: String,
    /// After the swap: the old table's name.
    pub kept_as: Option<String>,
    /// The change log's size on disk.
    pub log_bytes: i64,
}

impl Conversion {
    pub fn swapped(&self) -> bool {
        self.phase == "swapped"
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub server_version_num: i32,
    /// The installed version of the citus extension, if any.
    pub citus_version: Option<String>,
    /// Whether the columnar access method is installed (citus_columnar).
    pub columnar_installed: bool,
    /// One per requested name, in order; `None` when it does not exist.
    pub parents: Vec<Option<Parent>>,
    pub pending: Vec<PendingTable>,
    pub retiring: Vec<RetiringTable>,
    /// Conversions journaled for the tables read.
    pub conversions: Vec<Conversion>,
    /// How many catalog queries the snapshot took.
    pub queries: usize,
}

/// The pending marker written on a created, not yet attached partition.
pub fn pending_comment(parent: &str, period_start: &str) -> String {
    format!("{PENDING_COMMENT_PREFIX}{parent} for {period_start}")
}

/// The marker written on a partition before it is detached for retention.
pub fn retiring_comment(parent: &str) -> String {
    format!("{RETIRING_COMMENT_PREFIX}{parent}")
}

/// Whether each default partition holds any row, by parent oid, for
/// `status` and `check`: each default partition's rows counted exactly
/// (written into its `estimated_rows`: the estimate is -1 until analyzed),
/// and every partition's size read as `pg_total_relation_size` (the
/// estimate is 0 until vacuumed). The sizes take ACCESS SHARE on each
/// partition, under a short lock_timeout: when one is locked by pending
/// DDL, the estimates stay.
pub fn default_partitions_with_rows(
    client: &mut Client,
    snapshot: &mut Snapshot,
) -> Result<Vec<(u32, bool)>, postgres::Error> {
    let mut found = Vec::new();
    for parent in snapshot.parents.iter_mut().flatten() {
        if let Some(default) = parent
            .partitions
            .iter_mut()
            .find(|p| p.bound == Bound::Default)
        {
            let sql = format!(
                "SELECT count(*) FROM {}.{}",
                quote_ident(&default.schema),
                quote_ident(&default.name)
            );
            let rows: i64 = client.query_one(&sql, &[])?.get(0);
            default.estimated_rows = rows;
            found.push((parent.oid, rows > 0));
        }
    }
    read_sizes(client, snapshot)?;
    Ok(found)
}

/// Every partition's size on disk, indexes and TOAST included; but for a
/// table Citus holds, whose partitions on the coordinator are empty shells:
/// the snapshot read its shards' sizes.
fn read_sizes(client: &mut Client, snapshot: &mut Snapshot) -> Result<(), postgres::Error> {
    let oids: Vec<u32> = snapshot
        .parents
        .iter()
        .flatten()
        .filter(|parent| parent.citus.is_none())
        .flat_map(|p| p.partitions.iter().map(|partition| partition.oid))
        .collect();
    let mut transaction = client.transaction()?;
    transaction.batch_execute("SET LOCAL lock_timeout = '2s'")?;
    let sizes: HashMap<u32, i64> = match transaction.query(
        "SELECT c.oid, pg_total_relation_size(c.oid) FROM pg_class c WHERE c.oid = ANY($1::oid[])",
        &[&oids],
    ) {
        Ok(rows) => rows.iter().map(|row| (row.get(0), row.get(1))).collect(),
        Err(error) if error.as_db_error().is_some() => HashMap::new(),
        Err(error) => return Err(error),
    };
    transaction.rollback()?;
    for partition in snapshot
        .parents
        .iter_mut()
        .flatten()
        .filter(|parent| parent.citus.is_none())
        .flat_map(|p| p.partitions.iter_mut())
    {
        if let Some(bytes) = sizes.get(&partition.oid) {
            partition.estimated_bytes = *bytes;
        }
    }
    Ok(())
}

/// Reads the tables of these policy entries, in their order; the largest
/// key only of those cut into ID ranges (an epoch key counts from the clock),
/// and where the default partition's rows are only of those that drain it.
pub fn take_tables<'a>(
    client: &mut Client,
    tables: impl IntoIterator<Item = &'a TablePolicy>,
) -> Result<Snapshot, postgres::Error> {
    let tables: Vec<&TablePolicy> = tables.into_iter().collect();
    let reads: Vec<TableRead> = tables.iter().map(|t| TableRead::of(t)).collect();
    let mut snapshot = take_reads(client, &reads)?;
    crate::partition::drain::read_default_rows(client, &tables, &mut snapshot)?;
    Ok(snapshot)
}

/// The parent's grants as the parent query lists them: a JSON array of
/// `[grantee, privilege, grantable]`.
fn parse_grants(json: &str) -> Vec<Grant> {
    let triples: Vec<(String, String, bool)> = serde_json::from_str(json).unwrap_or_default();
    triples
        .into_iter()
        .map(|(grantee, privilege, grantable)| Grant {
            grantee,
            privilege,
            grantable,
        })
        .collect()
}

/// Reads the parents named (schema, table) with their partitions and
/// indexes, reading no table's rows.
pub fn take(client: &mut Client, names: &[(String, String)]) -> Result<Snapshot, postgres::Error> {
    let reads: Vec<TableRead> = names
        .iter()
        .map(|(schema, name)| TableRead {
            schema: schema.clone(),
            name: name.clone(),
            max_key_within: None,
        })
        .collect();
    take_reads(client, &reads)
}

/// Reads these tables with their partitions and indexes, in order.
pub fn take_reads(client: &mut Client, reads: &[TableRead]) -> Result<Snapshot, postgres::Error> {
    let qualified: Vec<String> = reads
        .iter()
        .map(|r| format!("{}.{}", quote_ident(&r.schema), quote_ident(&r.name)))
        .collect();
    let mut transaction = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    transaction.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'")?;
    let mut reader = Reader {
        transaction,
        snapshot: Snapshot::default(),
        started: std::time::Instant::now(),
    };
    let server = reader.query(
        "SELECT current_setting('server_version_num')::int4, \
                (SELECT extversion::text FROM pg_extension WHERE extname = 'citus'), \
                EXISTS (SELECT FROM pg_am WHERE amname = 'columnar')",
        &[],
    )?;
    reader.snapshot.server_version_num = server[0].get(0);
    reader.snapshot.citus_version = server[0].get(1);
    reader.snapshot.columnar_installed = server[0].get(2);
    reader.read_parents(&qualified)?;
    let parent_oids: Vec<u32> = reader
        .snapshot
        .parents
        .iter()
        .flatten()
        .map(|p| p.oid)
        .collect();
    reader.read_partitions(&parent_oids)?;
    if reader.snapshot.citus_version.is_some() {
        reader.read_citus_tables(&parent_oids)?;
        reader.read_shard_totals()?;
    }
    let within: Vec<Option<Timeout>> = reads.iter().map(|r| r.max_key_within).collect();
    reader.read_max_keys(&within)?;
    reader.read_indexes(&parent_oids)?;
    reader.read_markers()?;
    reader.read_conversions(reads)?;
    reader.transaction.commit()?;
    Ok(reader.snapshot)
}

/// The snapshot's transaction and what it has read so far.
struct Reader<'c> {
    transaction: postgres::Transaction<'c>,
    snapshot: Snapshot,
    started: std::time::Instant,
}

impl Reader<'_> {
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let rows = self.transaction.query(sql, params)?;
        self.snapshot.queries += 1;
        tracing::debug!(
            queries = self.snapshot.queries,
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "catalog query done"
        );
        Ok(rows)
    }

    /// The journal rows of the tables read: one query finds the schemas
    /// holding a journal (usually none), one more reads each.
    fn read_conversions(&mut self, reads: &[TableRead]) -> Result<(), postgres::Error> {
        let schemas: Vec<&str> = reads.iter().map(|r| r.schema.as_str()).collect();
        let journals: Vec<String> = self
            .query(
                "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname = $2 AND c.relkind = 'r' AND n.nspname = ANY($1) ORDER BY 1",
                &[&schemas, &JOURNAL_TABLE],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for schema in journals {
            let sql = format!(
                "SELECT source, phase, kept_as, coalesce(pg_total_relation_size(to_regclass(log)), 0) \
                 FROM {}.{} ORDER BY source",
                quote_ident(&schema),
                quote_ident(JOURNAL_TABLE)
            );
            for row in self.query(&sql, &[])? {
                self.snapshot.conversions.push(Conversion {
                    table: row.get(0),
                    phase: row.get(1),
                    kept_as: row.get(2),
                    log_bytes: row.get(3),
                });
            }
        }
        Ok(())
    }

    /// One entry per name, in order, `None` for a name that does not exist.
    fn read_parents(&mut self, qualified: &[String]) -> Result<(), postgres::Error> {
        let rows = self.query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, pt.partstrat::text, \
                    coalesce(pt.partnatts, 0)::int2, \
                    CASE WHEN pt.partnatts = 1 AND pt.partattrs[0] <> 0 THEN a.attname::text END, \
                    CASE WHEN pt.partnatts = 1 AND pt.partattrs[0] <> 0 THEN format_type(a.atttypid, a.atttypmod) END, \
                    pg_get_userbyid(c.relowner)::text, ts.spcname::text, c.relpersistence = 'u', \
                    (SELECT coalesce(json_agg(json_build_array( \
                         CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee)::text END, \
                         g.privilege_type, g.is_grantable) ORDER BY g.grantee, g.privilege_type), '[]')::text \
                     FROM aclexplode(c.relacl) g WHERE g.grantee <> c.relowner) \
             FROM unnest($1::text[]) WITH ORDINALITY AS wanted(name, ord) \
             LEFT JOIN pg_class c ON c.oid = to_regclass(wanted.name) \
             LEFT JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid \
             LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0] \
             LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace \
             ORDER BY wanted.ord",
            &[&qualified],
        )?;
        self.snapshot.parents = rows
            .iter()
            .map(|row| {
                let oid: Option<u32> = row.get(0);
                oid.map(|oid| Parent {
                    oid,
                    schema: row.get(1),
                    name: row.get(2),
                    relkind: first_char(row.get(3)),
                    strategy: row.get::<_, Option<String>>(4).map(|s| first_char(Some(s))),
                    key_columns: row.get(5),
                    key: match (
                        row.get::<_, Option<String>>(6),
                        row.get::<_, Option<String>>(7),
                    ) {
                        (Some(column), Some(sql_type)) => Some(PartitionKey { column, sql_type }),
                        _ => None,
                    },
                    owner: row.get(8),
                    tablespace: row.get(9),
                    unlogged: row.get(10),
                    partitions: Vec::new(),
                    indexes: Vec::new(),
                    max_key: None,
                    max_key_failure: None,
                    citus: None,
                    grants: parse_grants(&row.get::<_, String>(11)),
                    default_rows: None,
                })
            })
            .collect();
        Ok(())
    }

    fn read_partitions(&mut self, parent_oids: &[u32]) -> Result<(), postgres::Error> {
        let rows = self.query(
            // With relation 0, pg_get_expr prints the bound without opening (and
            // locking) each partition: five times faster, and no lock to wait for.
            "SELECT i.inhparent, c.oid, n.nspname::text, c.relname::text, pg_get_expr(c.relpartbound, 0), \
                    i.inhdetachpending, c.reltuples::int8, \
                    c.relpages::int8 * current_setting('block_size')::int8, \
                    (SELECT amname::text FROM pg_am WHERE oid = c.relam), \
                    ARRAY(SELECT conname::text FROM pg_constraint WHERE conrelid = c.oid AND contype = 'c'), \
                    c.relkind = 'p' \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.inhparent = ANY($1::oid[]) AND c.relkind IN ('r', 'p', 'f')",
            &[&parent_oids],
        )?;
        // Rows are matched to their table by maps: with thousands of tables and
        // tens of thousands of partitions a scan per row would be quadratic.
        let parent_position: HashMap<u32, usize> = self
            .snapshot
            .parents
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (p.oid, i)))
            .collect();
        for row in &rows {
            let parent_oid: u32 = row.get(0);
            let partition = Partition {
                oid: row.get(1),
                schema: row.get(2),
                name: row.get(3),
                bound: Bound::parse(&row.get::<_, Option<String>>(4).unwrap_or_default()),
                detach_pending: row.get(5),
                estimated_rows: row.get(6),
                estimated_bytes: row.get(7),
                indexes: Vec::new(),
                access_method: row.get(8),
                checks: row.get(9),
                subpartitioned: row.get(10),
            };
            if let Some(parent) = parent_position
                .get(&parent_oid)
                .and_then(|i| self.snapshot.parents[*i].as_mut())
            {
                parent.partitions.push(partition);
            }
        }
        for parent in self.snapshot.parents.iter_mut().flatten() {
            parent.partitions.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(())
    }

    /// The largest key of each parent asked for (`within` is in policy
    /// order): `max(key)` of its partitions from the highest range down,
    /// stopping at the first that holds a row, so a full scan of the table
    /// never happens. A read that fails is that table's problem, not the run's.
    fn read_max_keys(&mut self, within: &[Option<Timeout>]) -> Result<(), postgres::Error> {
        for (position, within) in within.iter().enumerate() {
            let Some(within) = *within else { continue };
            let Some(Some(parent)) = self.snapshot.parents.get(position) else {
                continue;
            };
            // A key of another type is refused by the planner: nothing to read.
            let Some(column) = integer_key_column(parent) else {
                continue;
            };
            let partitions = newest_first(parent);
            let read = self.read_max_key(&column, &partitions, within)?;
            if let Some(parent) = self.snapshot.parents[position].as_mut() {
                match read {
                    Ok(max_key) => parent.max_key = max_key,
                    Err(failure) => parent.max_key_failure = Some(failure),
                }
            }
        }
        Ok(())
    }

    /// One table's largest key, inside a savepoint under its own
    /// lock_timeout and statement_timeout: a partition locked by pending
    /// DDL (an ALTER, a plain DETACH) makes the read fail fast instead of
    /// queueing the run behind it. The savepoint is rolled back even on
    /// success, which ends both settings and the ACCESS SHARE locks taken.
    /// `Ok(Err(…))` is a failure of this table; `Err` a lost connection.
    fn read_max_key(
        &mut self,
        column: &str,
        partitions: &[(String, String)],
        within: Timeout,
    ) -> Result<Result<Option<MaxKey>, String>, postgres::Error> {
        let budget = Timeout::from_millis(
            u64::try_from(within.0.as_millis())
                .unwrap_or(u64::MAX)
                .saturating_add(MAX_KEY_READ_BUDGET_MS),
        );
        let mut savepoint = self.transaction.savepoint("pgm_max_key")?;
        // On Citus the read runs on the workers' shards too: the settings
        // reach them only when propagated, one statement each.
        if self.snapshot.citus_version.is_some() {
            savepoint.batch_execute("SET LOCAL citus.propagate_set_commands = 'local'")?;
        }
        savepoint.batch_execute(&format!("SET LOCAL lock_timeout = '{}'", within.setting()))?;
        savepoint.batch_execute(&format!(
            "SET LOCAL statement_timeout = '{}'",
            budget.setting()
        ))?;
        let mut found = Ok(None);
        for (schema, name) in partitions {
            self.snapshot.queries += 1;
            let qualified = format!("{}.{}", quote_ident(schema), quote_ident(name));
            let sql = max_key_sql(column, &qualified);
            match savepoint.query_one(&sql, &[&column, &qualified]) {
                Ok(row) => {
                    if let Some(value) = row.get::<_, Option<String>>(0) {
                        let partition = format!("{schema}.{name}");
                        found = Ok(Some(MaxKey {
                            value,
                            partition,
                            indexed: row.get(1),
                        }));
                        break;
                    }
                }
                Err(error) => {
                    let Some(db_error) = error.as_db_error() else {
                        return Err(error);
                    };
                    found = Err(max_key_failure(
                        db_error, column, schema, name, within, budget,
                    ));
                    break;
                }
            }
        }
        savepoint.rollback()?;
        Ok(found)
    }

    /// Which parents Citus holds, and how: one query on its metadata.
    fn read_citus_tables(&mut self, parent_oids: &[u32]) -> Result<(), postgres::Error> {
        // Schema-based sharding (pg_dist_schema) came with Citus 12.
        let schema_based = self
            .snapshot
            .citus_version
            .as_deref()
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
            .is_some_and(|major| major >= 12);
        let in_distributed_schema = if schema_based {
            "EXISTS (SELECT FROM pg_dist_schema ds JOIN pg_class c ON c.relnamespace = ds.schemaid \
             WHERE c.oid = p.logicalrelid)"
        } else {
            "false"
        };
        let rows = self.query(
            &format!(
                "SELECT p.logicalrelid::oid, p.partmethod::text, p.repmodel::text, p.colocationid::int4, \
                        {in_distributed_schema} \
                 FROM pg_dist_partition p WHERE p.logicalrelid::oid = ANY($1::oid[])"
            ),
            &[&parent_oids],
        )?;
        let kinds: HashMap<u32, CitusTable> = rows
            .iter()
            .map(|row| {
                let (method, model, colocation): (String, String, i32) =
                    (row.get(1), row.get(2), row.get(3));
                let kind = match (method.as_str(), model.as_str(), colocation) {
                    (_, "t", _) => CitusTable::Reference,
                    ("h", _, _) => CitusTable::Distributed,
                    (_, _, 0) => CitusTable::Local,
                    _ => CitusTable::SingleShard {
                        in_distributed_schema: row.get(4),
                    },
                };
                (row.get::<_, u32>(0), kind)
            })
            .collect();
        for parent in self.snapshot.parents.iter_mut().flatten() {
            parent.citus = kinds.get(&parent.oid).copied();
        }
        Ok(())
    }

    /// Rows and sizes of the partitions of distributed parents, from their
    /// shards: the coordinator's partitions are empty shells. One query,
    /// one remote call per node, whatever the number of shards. A node that
    /// cannot answer costs only these numbers (the shells' stay), not the run.
    fn read_shard_totals(&mut self) -> Result<(), postgres::Error> {
        let partition_oids: Vec<u32> = self
            .snapshot
            .parents
            .iter()
            .flatten()
            .filter(|p| p.citus == Some(CitusTable::Distributed))
            .flat_map(|p| p.partitions.iter().map(|partition| partition.oid))
            .collect();
        if partition_oids.is_empty() {
            return Ok(());
        }
        let mut savepoint = self.transaction.savepoint("pgm_shard_totals")?;
        self.snapshot.queries += 1;
        let read = savepoint.query(SHARD_TOTALS_SQL, &[&partition_oids]);
        savepoint.rollback()?;
        let rows = match read {
            Ok(rows) => rows,
            Err(error) if error.as_db_error().is_some() => {
                tracing::warn!(
                    "the sizes of distributed partitions could not be read from the workers ({error}); \
                     the coordinator's numbers are shown"
                );
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let totals: HashMap<u32, ShardTotals> = rows
            .iter()
            .map(|row| {
                (
                    row.get::<_, u32>(0),
                    ShardTotals {
                        rows: row.get(1),
                        bytes: row.get(2),
                    },
                )
            })
            .collect();
        for partition in self
            .snapshot
            .parents
            .iter_mut()
            .flatten()
            .flat_map(|p| p.partitions.iter_mut())
        {
            if let Some(totals) = totals.get(&partition.oid) {
                partition.estimated_rows = totals.rows;
                partition.estimated_bytes = totals.bytes;
            }
        }
        Ok(())
    }

    fn read_indexes(&mut self, parent_oids: &[u32]) -> Result<(), postgres::Error> {
        let rows = self.query(
            "SELECT x.indrelid, ic.oid, n.nspname::text, ic.relname::text, x.indisvalid, inh.inhparent \
             FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace \
             LEFT JOIN pg_inherits inh ON inh.inhrelid = ic.oid \
             WHERE x.indrelid = ANY($1::oid[]) \
                OR x.indrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = ANY($1::oid[]))",
            &[&parent_oids],
        )?;
        // Table oid → (parent position, partition position or none for the parent).
        let mut table_position: HashMap<u32, (usize, Option<usize>)> = HashMap::new();
        for (i, parent) in self.snapshot.parents.iter().enumerate() {
            if let Some(parent) = parent {
                table_position.insert(parent.oid, (i, None));
                for (j, partition) in parent.partitions.iter().enumerate() {
                    table_position.insert(partition.oid, (i, Some(j)));
                }
            }
        }
        for row in &rows {
            let table_oid: u32 = row.get(0);
            let index = Index {
                oid: row.get(1),
                schema: row.get(2),
                name: row.get(3),
                valid: row.get(4),
                attached_to: row.get(5),
            };
            let Some(&(i, partition)) = table_position.get(&table_oid) else {
                continue;
            };
            let Some(parent) = self.snapshot.parents[i].as_mut() else {
                continue;
            };
            match partition {
                None => parent.indexes.push(index),
                Some(j) => parent.partitions[j].indexes.push(index),
            }
        }
        Ok(())
    }

    /// Tables pgm marked as pending or retiring.
    fn read_markers(&mut self) -> Result<(), postgres::Error> {
        let rows = self.query(
            "SELECT n.nspname::text, c.relname::text, d.description, c.relispartition \
             FROM pg_description d JOIN pg_class c ON c.oid = d.objoid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE d.classoid = 'pg_class'::regclass AND d.objsubid = 0 AND d.description LIKE 'pgm: %' AND c.relkind = 'r'",
            &[],
        )?;
        for row in &rows {
            let (schema, name, description, is_partition): (String, String, String, bool) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if let Some(rest) = description.strip_prefix(PENDING_COMMENT_PREFIX)
                && let Some((parent, period_start)) = rest.rsplit_once(" for ")
                && !is_partition
            {
                self.snapshot.pending.push(PendingTable {
                    schema,
                    name,
                    parent: parent.to_owned(),
                    period_start: period_start.to_owned(),
                });
            } else if let Some(parent) = description.strip_prefix(RETIRING_COMMENT_PREFIX) {
                self.snapshot.retiring.push(RetiringTable {
                    schema,
                    name,
                    parent: parent.to_owned(),
                    still_attached: is_partition,
                });
            }
        }
        Ok(())
    }
}

/// Per relation of `$1` (oids of distributed tables): the row estimate
/// summed over its shards (-1 when a shard holding data was never
/// analyzed; an empty one counts 0) and the
/// shards' heap bytes, as `citus_relation_size` counts them. Every node
/// looks up the shard names it holds (`to_regclass` answers NULL for the
/// others) in one call of `run_command_on_all_nodes`.
const SHARD_TOTALS_SQL: &str = "\
WITH shards AS ( \
    SELECT s.logicalrelid::oid AS rel, shard_name(s.logicalrelid, s.shardid) AS name \
    FROM pg_dist_shard s WHERE s.logicalrelid::oid = ANY($1::oid[]) \
), answers AS ( \
    SELECT r.result FROM run_command_on_all_nodes(format( \
        $q$SELECT coalesce(json_agg(json_build_array(w.name, \
           CASE WHEN c.reltuples < 0 AND pg_relation_size(c.oid) = 0 THEN 0 ELSE c.reltuples::int8 END, \
           pg_relation_size(c.oid))), '[]') \
           FROM unnest(%L::text[]) AS w(name) JOIN pg_class c ON c.oid = to_regclass(w.name)$q$, \
        (SELECT array_agg(name) FROM shards))) r \
    WHERE r.success \
) \
SELECT sh.rel, \
       CASE WHEN bool_and((e->>1)::int8 >= 0) THEN sum((e->>1)::int8)::int8 ELSE -1 END, \
       sum((e->>2)::int8)::int8 \
FROM answers, json_array_elements(answers.result::json) e JOIN shards sh ON sh.name = e->>0 \
GROUP BY sh.rel";

/// `max(key)` of the partition `$2` (quoted), and whether a valid,
/// non-partial index on it leads with the key `$1` (the read is then an
/// index read, else a scan). The `max` is a subquery of its own: Citus
/// cannot push a catalog subquery down next to an aggregate of a
/// distributed table, and plans a subquery of its own apart.
fn max_key_sql(column: &str, qualified: &str) -> String {
    format!(
        "SELECT (SELECT max({})::text FROM {qualified}), EXISTS (SELECT 1 FROM pg_index x JOIN pg_attribute a \
         ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0] \
         WHERE x.indrelid = to_regclass($2) AND a.attname = $1 AND x.indisvalid AND x.indpred IS NULL)",
        quote_ident(column)
    )
}

/// What a failed `max(key)` read means, and what to do about it.
fn max_key_failure(
    error: &postgres::error::DbError,
    column: &str,
    schema: &str,
    name: &str,
    within: Timeout,
    budget: Timeout,
) -> String {
    use postgres::error::SqlState;
    let read = format!("max({column}) of {schema}.{name}");
    if *error.code() == SqlState::LOCK_NOT_AVAILABLE {
        format!(
            "{read} could not be read: another session holds a lock on it (pending DDL such as an ALTER TABLE \
             or a DETACH) and lock_timeout {within} passed; nothing is planned for this table until the next \
             run once that session ends (pg_locks names it)"
        )
    } else if *error.code() == SqlState::QUERY_CANCELED {
        format!(
            "{read} took longer than {budget} to read; nothing is planned for this table: an index on \
             {column} makes the read instant"
        )
    } else {
        format!(
            "{read} could not be read ({}); nothing is planned for this table",
            error.message()
        )
    }
}

/// The key column of a parent partitioned on an integer.
fn integer_key_column(parent: &Parent) -> Option<String> {
    let key = parent.key.as_ref()?;
    matches!(
        super::calendar::SqlKey::from_sql_type(&key.sql_type),
        Some(super::calendar::SqlKey::Integer(_))
    )
    .then(|| key.column.clone())
}

/// Range partitions (not being detached), highest upper bound first.
fn newest_first(parent: &Parent) -> Vec<(String, String)> {
    let mut ranges: Vec<(Option<i128>, String, String)> = parent
        .partitions
        .iter()
        .filter(|p| !p.detach_pending)
        .filter_map(|p| match &p.bound {
            Bound::Range { to, .. } => {
                let to = to.trim_matches('\'');
                let upper = match to {
                    "MAXVALUE" => Some(i128::MAX),
                    _ => super::calendar::floor_integer(to).map(|(value, _)| value),
                };
                Some((upper, p.schema.clone(), p.name.clone()))
            }
            _ => None,
        })
        .collect();
    ranges.sort_by(|a, b| b.cmp(a));
    ranges
        .into_iter()
        .map(|(_, schema, name)| (schema, name))
        .collect()
}

fn first_char(text: Option<String>) -> char {
    text.and_then(|t| t.chars().next()).unwrap_or('?')
}

#[cfg(test)]
mod tests {
    use super::Bound;

    #[test]
    fn bounds_parse() {
        assert_eq!(Bound::parse("DEFAULT"), Bound::Default);
        assert_eq!(
            Bound::parse(
                "FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-12-01 00:00:00+00')"
            ),
            Bound::Range {
                from: "'2026-11-01 00:00:00+00'".into(),
                to: "'2026-12-01 00:00:00+00'".into()
            }
        );
        assert_eq!(
            Bound::parse("FOR VALUES FROM (MINVALUE) TO (100)"),
            Bound::Range {
                from: "MINVALUE".into(),
                to: "100".into()
            }
        );
        assert!(matches!(
            Bound::parse("FOR VALUES IN (1, 2)"),
            Bound::Other(_)
        ));
        assert!(matches!(
            Bound::parse("FOR VALUES FROM (1, 2) TO (3, 4)"),
            Bound::Other(_)
        ));
    }
}
