//! The table to convert as the catalog describes it: columns, constraints,
//! indexes and everything that depends on it, read in one read-only
//! REPEATABLE READ transaction with the session in UTC, so the check and
//! the prepare plan are pure functions of one consistent picture.

use postgres::Client;
use serde::Serialize;

use crate::db::ident::QualifiedName;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    /// As `format_type` prints it.
    pub sql_type: String,
    pub not_null: bool,
    /// The default expression, as `pg_get_expr` prints it.
    pub default: Option<String>,
    /// `a` GENERATED ALWAYS, `d` BY DEFAULT, empty when not an identity.
    pub identity: String,
    /// `s` for a stored generated column.
    pub generated: String,
    pub comment: Option<String>,
    /// Its statistics target, when set (`ALTER COLUMN … SET STATISTICS`).
    pub statistics: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    pub name: String,
    /// `p` primary key, `u` unique, `c` check, `f` foreign key, `x` exclusion.
    pub kind: char,
    /// Its columns, in order (empty for a CHECK on an expression).
    pub columns: Vec<String>,
    /// As `pg_get_constraintdef` prints it.
    pub definition: String,
    /// For a foreign key, the table it references.
    pub references: Option<u32>,
    /// DEFERRABLE (checked at commit, or when asked).
    pub deferrable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceIndex {
    pub name: String,
    /// What follows `USING ` in `pg_get_indexdef`: the method, the keys,
    /// INCLUDE, storage parameters and the predicate, ready to follow
    /// `CREATE INDEX name ON other USING `.
    pub body: Option<String>,
    pub unique: bool,
    /// The constraint it backs (a primary key or unique constraint).
    pub constraint: Option<String>,
    /// That constraint as `pg_get_constraintdef` prints it.
    pub constraint_definition: Option<String>,
    /// Its plain columns; expressions are left out.
    pub columns: Vec<String>,
}

/// What the catalog records as depending on the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DependentKind {
    View,
    MaterializedView,
    /// A foreign key of another table referencing this one.
    ForeignKey,
    Trigger,
    Policy,
    Publication,
    /// A publication of every table, or of the table's schema, that
    /// publishes partitions under their own names.
    PublicationOfPartitions,
    Rule,
    Statistics,
    Function,
    /// A sequence owned by one of the table's columns (serial, identity).
    OwnedSequence,
    /// Anything else, as `pg_describe_object` names it.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    pub kind: DependentKind,
    /// As people read it: `view public.recent_events`.
    pub name: String,
    /// What recreates it, when pgm can carry it over: a view's query, a
    /// foreign key's or trigger's definition, a policy's clauses after
    /// `CREATE POLICY name ON table`.
    pub definition: Option<String>,
    /// The relation it belongs to: the view itself, or the table holding
    /// the foreign key.
    pub relation: Option<QualifiedName>,
    /// Its own name: the constraint, trigger or policy; for an owned
    /// sequence, the column owning it.
    pub object: Option<String>,
    /// False for a foreign key added NOT VALID and not validated yet.
    pub validated: bool,
    /// A trigger not in the default state, as `ALTER TABLE` sets it:
    /// `DISABLE`, `ENABLE REPLICA` or `ENABLE ALWAYS`.
    pub trigger_state: Option<String>,
}

/// One privilege granted on the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// `None` for PUBLIC.
    pub grantee: Option<String>,
    /// SELECT, INSERT, …
    pub privilege: String,
    pub grantable: bool,
    /// For a privilege on one column.
    pub column: Option<String>,
}

impl Grant {
    /// The same grant on another table (`table` quoted).
    pub fn sql(&self, table: &str) -> String {
        let grantee = self
            .grantee
            .as_deref()
            .map_or_else(|| "PUBLIC".to_owned(), crate::db::quote_ident);
        let option = if self.grantable {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        let column = self
            .column
            .as_deref()
            .map(|c| format!(" ({})", crate::db::quote_ident(c)))
            .unwrap_or_default();
        format!(
            "GRANT {}{column} ON {table} TO {grantee}{option}",
            self.privilege
        )
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let grantee = self.grantee.as_deref().unwrap_or("PUBLIC");
        let column = self
            .column
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        write!(f, "{}{column} to {grantee}", self.privilege)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceTable {
    pub oid: u32,
    pub name: QualifiedName,
    /// `r` plain table, `p` partitioned, and so on.
    pub relkind: char,
    pub owner: String,
    pub tablespace: Option<String>,
    pub unlogged: bool,
    /// Whether it inherits from, or is inherited by, another table.
    pub inheritance: bool,
    pub row_security: bool,
    pub force_row_security: bool,
    pub comment: Option<String>,
    /// Its storage parameters (`fillfactor=90`, `autovacuum_…`), as the
    /// catalog writes them.
    pub storage_parameters: Vec<String>,
    /// The privileges granted on it, but the owner's own.
    pub grants: Vec<Grant>,
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<SourceIndex>,
    pub dependencies: Vec<Dependency>,
    /// The number of rows whose key is NULL, read only when the key column
    /// may hold NULL.
    pub null_keys: Option<i64>,
    pub server_version_num: i32,
    /// What the swap carries over, as [`fingerprint_sql`] sums it up when
    /// the table was read.
    pub fingerprint: String,
}

impl SourceTable {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn primary_key(&self) -> Option<&Constraint> {
        self.constraints.iter().find(|c| c.kind == 'p')
    }
}

/// Reads the table, or `None` when it does not exist. `key` is the column
/// whose NULLs are counted when it is nullable.
pub fn read_source(
    client: &mut Client,
    name: &QualifiedName,
    key: &str,
) -> Result<Option<SourceTable>, postgres::Error> {
    let mut transaction = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    transaction.batch_execute(
        "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'",
    )?;
    let Some(mut table) = read_table(&mut transaction, name)? else {
        return Ok(None);
    };
    table.columns = read_columns(&mut transaction, table.oid)?;
    table.grants = read_grants(&mut transaction, table.oid)?;
    table.constraints = read_constraints(&mut transaction, table.oid)?;
    table.indexes = read_indexes(&mut transaction, table.oid)?;
    table.dependencies = read_dependencies(&mut transaction, table.oid)?;
    table.dependencies.extend(read_publications_of_partitions(
        &mut transaction,
        table.oid,
        table.server_version_num,
    )?);
    table.fingerprint = transaction
        .query_one(fingerprint_sql("$1::oid").as_str(), &[&table.oid])?
        .get(0);
    if table.column(key).is_some_and(|c| !c.not_null) {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {} IS NULL",
            table.name.quoted(),
            crate::db::quote_ident(key)
        );
        table.null_keys = Some(transaction.query_one(&sql, &[])?.get(0));
    }
    transaction.commit()?;
    Ok(Some(table))
}

fn read_table(
    transaction: &mut postgres::Transaction<'_>,
    name: &QualifiedName,
) -> Result<Option<SourceTable>, postgres::Error> {
    let row = transaction.query_opt(
        "SELECT c.oid, c.relkind::text, pg_get_userbyid(c.relowner)::text, ts.spcname::text, \
                c.relpersistence = 'u', \
                c.relhassubclass OR EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid), \
                c.relrowsecurity, c.relforcerowsecurity, obj_description(c.oid, 'pg_class'), \
                current_setting('server_version_num')::int4, coalesce(c.reloptions, '{}')::text[] \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace \
         WHERE n.nspname = $1 AND c.relname = $2",
        &[&name.schema, &name.name],
    )?;
    Ok(row.map(|row| SourceTable {
        oid: row.get(0),
        name: name.clone(),
        relkind: row.get::<_, String>(1).chars().next().unwrap_or('?'),
        owner: row.get(2),
        tablespace: row.get(3),
        unlogged: row.get(4),
        inheritance: row.get(5),
        row_security: row.get(6),
        force_row_security: row.get(7),
        comment: row.get(8),
        grants: Vec::new(),
        columns: Vec::new(),
        constraints: Vec::new(),
        indexes: Vec::new(),
        dependencies: Vec::new(),
        null_keys: None,
        server_version_num: row.get(9),
        fingerprint: String::new(),
        storage_parameters: row.get(10),
    }))
}

fn read_columns(
    transaction: &mut postgres::Transaction<'_>,
    oid: u32,
) -> Result<Vec<Column>, postgres::Error> {
    let rows = transaction.query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, \
                col_description(a.attrelid, a.attnum), nullif(a.attstattarget::int4, -1) \
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        &[&oid],
    )?;
    Ok(rows
        .iter()
        .map(|row| Column {
            name: row.get(0),
            sql_type: row.get(1),
            not_null: row.get(2),
            default: row.get(3),
            identity: row.get(4),
            generated: row.get(5),
            comment: row.get(6),
            statistics: row.get(7),
        })
        .collect())
}

fn read_grants(
    transaction: &mut postgres::Transaction<'_>,
    oid: u32,
) -> Result<Vec<Grant>, postgres::Error> {
    let rows = transaction.query(
        "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END, \
                a.privilege_type, a.is_grantable, NULL::text \
         FROM pg_class c, aclexplode(c.relacl) a \
         WHERE c.oid = $1 AND a.grantee <> c.relowner \
         UNION ALL \
         SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee)::text END, \
                a.privilege_type, a.is_grantable, att.attname::text \
         FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid, aclexplode(att.attacl) a \
         WHERE c.oid = $1 AND att.attnum > 0 AND NOT att.attisdropped AND a.grantee <> c.relowner \
         ORDER BY 4 NULLS FIRST, 1 NULLS FIRST, 2",
        &[&oid],
    )?;
    Ok(rows
        .iter()
        .map(|row| Grant {
            grantee: row.get(0),
            privilege: row.get(1),
            grantable: row.get(2),
            column: row.get(3),
        })
        .collect())
}

fn read_constraints(
    transaction: &mut postgres::Transaction<'_>,
    oid: u32,
) -> Result<Vec<Constraint>, postgres::Error> {
    let rows = transaction.query(
        "SELECT c.conname::text, c.contype::text, \
                coalesce(ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(num, ord) \
                               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num \
                               ORDER BY k.ord), '{}'), \
                pg_get_constraintdef(c.oid), nullif(c.confrelid, 0), c.condeferrable \
         FROM pg_constraint c WHERE c.conrelid = $1 ORDER BY c.conname",
        &[&oid],
    )?;
    Ok(rows
        .iter()
        .map(|row| Constraint {
            name: row.get(0),
            kind: row.get::<_, String>(1).chars().next().unwrap_or('?'),
            columns: row.get(2),
            definition: row.get(3),
            references: row.get(4),
            deferrable: row.get(5),
        })
        .collect())
}

fn read_indexes(
    transaction: &mut postgres::Transaction<'_>,
    oid: u32,
) -> Result<Vec<SourceIndex>, postgres::Error> {
    let rows = transaction.query(INDEXES, &[&oid])?;
    Ok(rows
        .iter()
        .map(|row| SourceIndex {
            name: row.get(0),
            body: row.get(1),
            unique: row.get(2),
            constraint: row.get(3),
            columns: row.get(4),
            constraint_definition: row.get(5),
        })
        .collect())
}

/// The indexes of a table. The body is cut from `pg_get_indexdef` after the
/// prefix that function writes (`CREATE [UNIQUE] INDEX name ON [ONLY]
/// schema.table USING `, every identifier through quote_ident), so it is
/// exact whatever the names hold.
const INDEXES: &str = "\
SELECT c.relname::text,
       CASE WHEN left(d.def, length(d.prefix)) = d.prefix THEN substr(d.def, length(d.prefix) + 1) END,
       i.indisunique, con.conname::text,
       coalesce(ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(num, ord)
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
                      ORDER BY k.ord), '{}'),
       pg_get_constraintdef(con.oid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
CROSS JOIN LATERAL (SELECT pg_get_indexdef(i.indexrelid) AS def,
  format('CREATE %sINDEX %s ON %s%s.%s USING ', CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END,
         quote_ident(c.relname), CASE WHEN c.relkind = 'I' THEN 'ONLY ' ELSE '' END,
         quote_ident(n.nspname), quote_ident(t.relname)) AS prefix) d
WHERE i.indrelid = $1 ORDER BY c.relname";

/// Everything `pg_depend` records against the table, but its own parts
/// (columns' defaults, constraints, indexes, row type, TOAST table), each
/// named and classified; the statement recreating it when pgm can.
fn read_dependencies(
    transaction: &mut postgres::Transaction<'_>,
    oid: u32,
) -> Result<Vec<Dependency>, postgres::Error> {
    let rows = transaction.query(DEPENDENCIES, &[&oid])?;
    let mut found: Vec<Dependency> = rows
        .iter()
        .map(|row| Dependency {
            kind: dependent_kind(row.get(0)),
            name: row.get(1),
            definition: row.get(2),
            relation: row
                .get::<_, Option<String>>(3)
                .zip(row.get::<_, Option<String>>(4))
                .map(|(schema, name)| QualifiedName::new(schema, name)),
            object: row.get(5),
            validated: row.get(6),
            trigger_state: row.get(7),
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup();
    Ok(found)
}

fn dependent_kind(kind: &str) -> DependentKind {
    match kind {
        "view" => DependentKind::View,
        "materialized_view" => DependentKind::MaterializedView,
        "foreign_key" => DependentKind::ForeignKey,
        "trigger" => DependentKind::Trigger,
        "policy" => DependentKind::Policy,
        "publication" => DependentKind::Publication,
        "rule" => DependentKind::Rule,
        "statistics" => DependentKind::Statistics,
        "function" => DependentKind::Function,
        "owned_sequence" => DependentKind::OwnedSequence,
        _ => DependentKind::Other,
    }
}

/// Publications that take the table in without naming it (`FOR ALL
/// TABLES`, `FOR TABLES IN SCHEMA` from PostgreSQL 15) and would publish
/// a partitioned table's rows under its partitions' names.
fn read_publications_of_partitions(
    transaction: &mut postgres::Transaction<'_>,
    oid: u32,
    server_version_num: i32,
) -> Result<Vec<Dependency>, postgres::Error> {
    let of_schema = if server_version_num >= 150_000 {
        " OR EXISTS (SELECT FROM pg_publication_namespace pn WHERE pn.pnpubid = p.oid \
           AND pn.pnnspid = (SELECT relnamespace FROM pg_class WHERE oid = $1))"
    } else {
        ""
    };
    let sql = format!(
        "SELECT 'publication ' || quote_ident(p.pubname) \
           || CASE WHEN p.puballtables THEN ' (FOR ALL TABLES)' ELSE ' (FOR TABLES IN SCHEMA)' END \
         FROM pg_publication p WHERE NOT p.pubviaroot AND (p.puballtables{of_schema}) ORDER BY p.pubname"
    );
    let rows = if of_schema.is_empty() {
        transaction.query(sql.as_str(), &[])?
    } else {
        transaction.query(sql.as_str(), &[&oid])?
    };
    Ok(rows
        .iter()
        .map(|row| Dependency {
            kind: DependentKind::PublicationOfPartitions,
            name: row.get(0),
            definition: None,
            relation: None,
            object: None,
            validated: true,
            trigger_state: None,
        })
        .collect())
}

/// An md5 of what the swap carries over and relies on, as the catalog holds
/// it: the dependents, the columns, the indexes, the constraints, the
/// grants and row security of the table whose oid `oid` gives (SQL). Read
/// with the table and again under the swap's lock: an object added since,
/// such as a view created during a long backfill, stops the swap rather
/// than being left on the old table.
pub(super) fn fingerprint_sql(oid: &str) -> String {
    // On one line, as plans print statements.
    let dependents = DEPENDENCIES
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace("$1", oid);
    format!(
        "SELECT md5(concat_ws(' | ', \
           (SELECT string_agg(d::text, ', ' ORDER BY d::text) FROM ({dependents}) d), \
           (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull \
                || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '') || ' ' || a.attidentity::text \
                || ' ' || a.attgenerated::text, ', ' ORDER BY a.attnum) \
            FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
            WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped), \
           (SELECT string_agg(pg_get_indexdef(i.indexrelid), ', ' ORDER BY pg_get_indexdef(i.indexrelid)) \
            FROM pg_index i WHERE i.indrelid = {oid}), \
           (SELECT string_agg(c.conname || ' ' || pg_get_constraintdef(c.oid), ', ' ORDER BY c.conname) \
            FROM pg_constraint c WHERE c.conrelid = {oid}), \
           (SELECT concat_ws(' ', c.relacl::text, c.relrowsecurity, c.relforcerowsecurity) FROM pg_class c \
            WHERE c.oid = {oid})))"
    )
}

/// One row per dependent object: (kind, name for people, definition).
/// The table's own parts are left out: its defaults, its own constraints,
/// its indexes, its row type and TOAST table, and the internal triggers of
/// foreign keys.
const DEPENDENCIES: &str = "\
WITH d AS (
  SELECT DISTINCT d.classid, d.objid, d.deptype,
         CASE WHEN d.classid = 'pg_class'::regclass THEN d.refobjsubid ELSE 0 END AS column_number
  FROM pg_depend d
  WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1
    AND NOT (d.classid = 'pg_class'::regclass AND d.objid = $1))
SELECT CASE
         WHEN v.relkind = 'v' THEN 'view'
         WHEN v.relkind = 'm' THEN 'materialized_view'
         WHEN r.oid IS NOT NULL THEN 'rule'
         WHEN con.contype = 'f' AND con.conrelid <> $1 THEN 'foreign_key'
         WHEN t.oid IS NOT NULL THEN 'trigger'
         WHEN pol.oid IS NOT NULL THEN 'policy'
         WHEN d.classid = 'pg_publication_rel'::regclass THEN 'publication'
         WHEN d.classid = 'pg_statistic_ext'::regclass THEN 'statistics'
         WHEN d.classid = 'pg_proc'::regclass THEN 'function'
         WHEN s.relkind = 'S' THEN 'owned_sequence'
         ELSE 'other' END,
       CASE
         WHEN v.oid IS NOT NULL THEN
           CASE v.relkind WHEN 'v' THEN 'view ' ELSE 'materialized view ' END
             || v.relnamespace::regnamespace::text || '.' || v.relname
         WHEN s.oid IS NOT NULL THEN 'sequence ' || s.relnamespace::regnamespace::text || '.' || s.relname
         ELSE pg_describe_object(d.classid, d.objid, 0) END,
       CASE
         WHEN v.relkind = 'v' THEN
           coalesce(' WITH (' || array_to_string(v.reloptions, ', ') || ')', '') || ' AS'
             || rtrim(pg_get_viewdef(v.oid), ';')
         WHEN con.contype = 'f' AND con.conrelid <> $1 THEN pg_get_constraintdef(con.oid)
         WHEN t.oid IS NOT NULL THEN pg_get_triggerdef(t.oid)
         WHEN pol.oid IS NOT NULL THEN
           ' AS ' || CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END
           || ' FOR ' || CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                         WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
           || ' TO ' || CASE WHEN pol.polroles = '{0}' THEN 'PUBLIC' ELSE
                (SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) FROM pg_roles
                 WHERE oid = ANY (pol.polroles)) END
           || coalesce(' USING (' || pg_get_expr(pol.polqual, pol.polrelid) || ')', '')
           || coalesce(' WITH CHECK (' || pg_get_expr(pol.polwithcheck, pol.polrelid) || ')', '')
         WHEN s.oid IS NOT NULL THEN s.oid::regclass::text END,
       coalesce(v.relnamespace, cr.relnamespace, s.relnamespace)::regnamespace::text,
       coalesce(v.relname, cr.relname, s.relname)::text,
       coalesce(con.conname, t.tgname, pol.polname, a.attname)::text,
       coalesce(con.convalidated, true),
       CASE t.tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'A' THEN 'ENABLE ALWAYS' END
FROM d
LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
LEFT JOIN pg_class v ON v.oid = r.ev_class AND v.oid <> $1 AND v.relkind IN ('v', 'm')
LEFT JOIN pg_constraint con ON d.classid = 'pg_constraint'::regclass AND con.oid = d.objid
LEFT JOIN pg_class cr ON cr.oid = con.conrelid AND con.contype = 'f' AND con.conrelid <> $1
LEFT JOIN pg_trigger t ON d.classid = 'pg_trigger'::regclass AND t.oid = d.objid AND NOT t.tgisinternal
  AND t.tgname NOT IN ('pgm_convert_capture', 'pgm_convert_truncate')
LEFT JOIN pg_policy pol ON d.classid = 'pg_policy'::regclass AND pol.oid = d.objid
LEFT JOIN pg_class s ON d.classid = 'pg_class'::regclass AND s.oid = d.objid
LEFT JOIN pg_attribute a ON s.relkind = 'S' AND a.attrelid = $1 AND a.attnum = d.column_number
WHERE NOT (d.classid = 'pg_attrdef'::regclass)
  AND NOT (d.classid = 'pg_constraint'::regclass AND con.conrelid = $1)
  AND NOT (d.classid = 'pg_class'::regclass AND s.relkind IN ('i', 't', 'I'))
  AND NOT (d.classid = 'pg_class'::regclass AND d.deptype = 'i')
  AND NOT (d.classid = 'pg_type'::regclass)
  AND NOT (d.classid = 'pg_trigger'::regclass AND t.oid IS NULL)";
