//! `pgm partitions import-pg-partman`: pg_partman's `part_config` (the 4.x
//! and 5.x layouts, read as JSON so either fits) turned into `[[table]]`
//! entries, with every setting pgm cannot carry over said so, and the SQL
//! that turns pg_partman's maintenance off for those tables. Reads only,
//! unless asked to run that SQL; needs no superuser, only SELECT on
//! `part_config`.

use chrono_tz::Tz;
use postgres::Client;
use serde_json::Value;
use thiserror::Error;

use crate::db::ident::QualifiedName;
use crate::db::retry::{GaveUp, LockRetry};
use crate::db::{ConnectionSettings, quote_ident, quote_literal};

#[derive(Debug, Error)]
pub enum ImportError {
    #[error(
        "{schema}.part_config does not exist: pg_partman is not installed in schema {schema}; pass --schema with \
         the schema `SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_partman'` names"
    )]
    NoPartConfig { schema: String },
    #[error(
        "the database's TimeZone setting, {zone}, is not a zone pgm knows: pass --time-zone with the zone \
         pg_partman's maintenance ran in (an IANA name such as Europe/Berlin)"
    )]
    UnknownTimeZone { zone: String },
    #[error("reading pg_partman's configuration: {0}")]
    Sql(#[from] postgres::Error),
    #[error("turning pg_partman's maintenance off gave up after {} attempt(s): {}", .0.attempts, .0.error)]
    Disable(GaveUp<postgres::Error>),
}

/// What to import, and how.
pub struct ImportOptions {
    /// pg_partman's schema; `None`: the schema the extension is installed in.
    pub schema: Option<String>,
    /// The zone pg_partman's maintenance ran in; `None`: the database's default.
    pub time_zone: Option<Tz>,
}

/// One `part_config` row as pgm carries it over.
#[derive(Debug, Clone)]
pub struct ImportedTable {
    pub parent_table: String,
    /// The `[[table]]` entry; commented out when pgm cannot manage the table.
    pub entry: String,
    /// Settings pgm cannot carry over, each with what to do.
    pub not_carried: Vec<String>,
    /// Why the entry is commented out, when it is.
    pub refused: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Imported {
    pub schema: String,
    /// "4.x" or "5.x", from the columns `part_config` has.
    pub layout: &'static str,
    pub time_zone: Tz,
    /// Where the time zone came from, in words.
    pub time_zone_source: String,
    pub tables: Vec<ImportedTable>,
}

impl Imported {
    /// The policy file: defaults, then one entry per table.
    pub fn policy_text(&self) -> String {
        let mut text = format!(
            "# Imported from pg_partman's {}.part_config ({} layout) by `pgm partitions import-pg-partman`.\n\
             # time_zone: {}.\n\n[defaults]\ntime_zone = {}\n",
            self.schema,
            self.layout,
            self.time_zone_source,
            toml_string(self.time_zone.name())
        );
        for table in &self.tables {
            text.push('\n');
            text.push_str(&table.entry);
        }
        text
    }

    /// The tables pgm takes over (not those refused).
    pub fn taken_over(&self) -> impl Iterator<Item = &ImportedTable> {
        self.tables.iter().filter(|t| t.refused.is_none())
    }

    /// The statement that turns pg_partman's maintenance off for the
    /// tables pgm takes over, or `None` when there is none.
    pub fn turn_off_sql(&self) -> Option<String> {
        let names: Vec<String> = self
            .taken_over()
            .map(|t| quote_literal(&t.parent_table))
            .collect();
        (!names.is_empty()).then(|| {
            format!(
                "UPDATE {}.part_config SET automatic_maintenance = 'off' WHERE parent_table IN ({})",
                quote_ident(&self.schema),
                names.join(", ")
            )
        })
    }
}

/// Reads `part_config` and the tables it names.
pub fn read(client: &mut Client, options: &ImportOptions) -> Result<Imported, ImportError> {
    let schema = match &options.schema {
        Some(schema) => schema.clone(),
        None => extension_schema(client)?.unwrap_or_else(|| "partman".to_owned()),
    };
    let config = format!("{}.part_config", quote_ident(&schema));
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&config])?
        .get(0);
    if !exists {
        return Err(ImportError::NoPartConfig { schema });
    }
    let (time_zone, time_zone_source) = match options.time_zone {
        Some(zone) => (zone, format!("{zone}, as --time-zone says")),
        None => database_time_zone(client)?,
    };
    let rows: Vec<Value> = client
        .query(
            &format!("SELECT to_jsonb(c)::text FROM {config} c ORDER BY parent_table"),
            &[],
        )?
        .iter()
        .filter_map(|row| serde_json::from_str(&row.get::<_, String>(0)).ok())
        .collect();
    let layout = if rows
        .first()
        .is_some_and(|r| r.get("default_table").is_some())
        || rows.is_empty() && has_column(client, &config, "default_table")?
    {
        "5.x"
    } else {
        "4.x"
    };
    let sub_parents = sub_partitioned_parents(client, &schema)?;
    let mut tables = Vec::new();
    for row in &rows {
        let config = Row(row);
        tables.push(import_table(client, &config, &sub_parents)?);
    }
    Ok(Imported {
        schema,
        layout,
        time_zone,
        time_zone_source,
        tables,
    })
}

/// Runs the turn-off statement under the lock_timeout, through the lock
/// retry engine; returns the rows changed.
pub fn disable(
    client: &mut Client,
    settings: &ConnectionSettings,
    sql: &str,
) -> Result<u64, ImportError> {
    let mut retry = LockRetry::new(settings, crate::partition::policy::DEFAULT_LOCK_RETRIES);
    let timeout = crate::partition::policy::DEFAULT_LOCK_TIMEOUT;
    retry
        .run(
            client,
            "turning pg_partman's maintenance off",
            None,
            |client, watch, _| {
                let mut transaction = client.transaction()?;
                transaction
                    .batch_execute(&format!("SET LOCAL lock_timeout = '{}'", timeout.setting()))?;
                let changed = watch.around(|| transaction.execute(sql, &[]))?;
                transaction.commit()?;
                Ok::<u64, postgres::Error>(changed)
            },
        )
        .map(|(changed, _)| changed)
        .map_err(ImportError::Disable)
}

fn extension_schema(client: &mut Client) -> Result<Option<String>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_partman'",
            &[],
        )?
        .map(|row| row.get::<_, String>(0).trim_matches('"').to_owned()))
}

/// The zone a session of this database starts in (postgresql.conf, then
/// `ALTER DATABASE`/`ALTER ROLE … SET TimeZone`): the zone pg_partman's
/// maintenance computed its bounds in, unless its job set another.
fn database_time_zone(client: &mut Client) -> Result<(Tz, String), ImportError> {
    let zone: String = client
        .query_one(
            "SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'",
            &[],
        )?
        .get(0);
    let parsed = match zone.as_str() {
        "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Etc/Universal" | "Universal" | "Zulu" => {
            Some(Tz::UTC)
        }
        other => other.parse::<Tz>().ok(),
    };
    let tz = parsed.ok_or(ImportError::UnknownTimeZone { zone: zone.clone() })?;
    Ok((
        tz,
        format!(
            "{zone}, read from the database's TimeZone setting, the zone pg_partman's maintenance computed bounds \
             in unless its job set another; rerun with --time-zone to choose"
        ),
    ))
}

fn has_column(client: &mut Client, table: &str, column: &str) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 \
             AND NOT attisdropped)",
            &[&table, &column],
        )?
        .get(0))
}

/// The parents pg_partman sub-partitions (`part_config_sub.sub_parent`).
fn sub_partitioned_parents(
    client: &mut Client,
    schema: &str,
) -> Result<Vec<String>, postgres::Error> {
    let table = format!("{}.part_config_sub", quote_ident(schema));
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(client
        .query(&format!("SELECT sub_parent FROM {table}"), &[])?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// A `part_config` row, read by column name whatever the layout.
struct Row<'a>(&'a Value);

impl Row<'_> {
    fn text(&self, column: &str) -> Option<&str> {
        self.0.get(column)?.as_str()
    }

    fn flag(&self, column: &str) -> Option<bool> {
        self.0.get(column)?.as_bool()
    }

    fn number(&self, column: &str) -> Option<i64> {
        self.0.get(column)?.as_i64()
    }

    fn list(&self, column: &str) -> Vec<String> {
        self.0
            .get(column)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the catalog says about a parent pg_partman manages.
struct TableFacts {
    exists: bool,
    control_type: Option<String>,
    has_default: bool,
    subpartitioned: bool,
}

fn table_facts(
    client: &mut Client,
    parent: &QualifiedName,
    control: &str,
) -> Result<TableFacts, postgres::Error> {
    let row = client.query_one(
        "SELECT c.oid IS NOT NULL, \
                (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = c.oid AND a.attname = $2 AND NOT a.attisdropped), \
                EXISTS (SELECT FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid \
                        WHERE i.inhparent = c.oid AND pg_get_expr(p.relpartbound, p.oid) = 'DEFAULT'), \
                EXISTS (SELECT FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid \
                        WHERE i.inhparent = c.oid AND p.relkind = 'p') \
         FROM (SELECT to_regclass($1) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid",
        &[&parent.quoted(), &control],
    )?;
    Ok(TableFacts {
        exists: row.get(0),
        control_type: row.get(1),
        has_default: row.get(2),
        subpartitioned: row.get(3),
    })
}

/// An interval as (months, days, seconds), as PostgreSQL reads its text.
fn interval_parts(client: &mut Client, text: &str) -> Result<(i32, i32, i64), postgres::Error> {
    let row = client.query_one(
        "SELECT (extract(year FROM i) * 12 + extract(month FROM i))::int4, extract(day FROM i)::int4, \
                (extract(hour FROM i) * 3600 + extract(minute FROM i) * 60 + extract(second FROM i))::int8 \
         FROM (SELECT $1::text::interval AS i) s",
        &[&text],
    )?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// pgm's name for a pg_partman time interval, and a note when its bounds
/// may differ from pg_partman's.
fn interval_name(parts: (i32, i32, i64)) -> Option<(String, Option<String>)> {
    Some(match parts {
        (1, 0, 0) => ("monthly".to_owned(), None),
        (3, 0, 0) => ("quarterly".to_owned(), None),
        (12, 0, 0) => ("yearly".to_owned(), None),
        (0, 1, 0) => ("daily".to_owned(), None),
        (0, 7, 0) => ("weekly".to_owned(), None),
        (0, 0, 3600) => ("hourly".to_owned(), None),
        (0, 0, seconds) if seconds >= 900 && seconds % 60 == 0 && 86_400 % seconds == 0 => {
            (format!("{} minutes", seconds / 60), None)
        }
        (0, days, 0) if days > 1 => (
            format!("{days} days"),
            Some(format!(
                "interval: pgm counts {days}-day periods from Monday 2000-01-03, pg_partman from its first \
                 partition: if `pgm partitions plan` reports drift, their bounds differ; keep the table under \
                 pg_partman or choose daily/weekly"
            )),
        ),
        _ => return None,
    })
}

/// pgm's retention text for a pg_partman time retention.
fn retention_text(parts: (i32, i32, i64)) -> Option<String> {
    Some(match parts {
        (months, 0, 0) if months > 0 && months % 12 == 0 => format!("{} years", months / 12),
        (months, 0, 0) if months > 0 => format!("{months} months"),
        (0, days, 0) if days > 0 && days % 7 == 0 => format!("{} weeks", days / 7),
        (0, days, 0) if days > 0 => format!("{days} days"),
        _ => return None,
    })
}

/// pgm's naming template for pg_partman's `datetime_string`.
fn naming_template(datetime_string: &str) -> Option<String> {
    let mut template = String::from("{parent}_p");
    let mut rest = datetime_string;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"')?;
            template.push_str(&quoted[..end]);
            rest = &quoted[end + 1..];
            continue;
        }
        let (token, placeholder) = [
            ("IYYY", "{IYYY}"),
            ("YYYY", "{YYYY}"),
            ("HH24", "{HH}"),
            ("MM", "{MM}"),
            ("DD", "{DD}"),
            ("MI", "{MI}"),
            ("SS", "00"),
            ("IW", "{WW}"),
            ("Q", "{Q}"),
            ("_", "_"),
        ]
        .into_iter()
        .find(|(token, _)| rest.starts_with(token))?;
        template.push_str(placeholder);
        rest = &rest[token.len()..];
    }
    Some(template)
}

/// What pg_partman's template table gives new partitions.
struct Template {
    /// Storage parameters, each value as TOML writes it.
    parameters: Vec<(String, String)>,
    /// Index definitions, and whether each is unique.
    indexes: Vec<(String, bool)>,
    unlogged: bool,
}

/// The template table's storage parameters, indexes and persistence.
fn template_storage(
    client: &mut Client,
    template: &str,
) -> Result<Option<Template>, postgres::Error> {
    let Some(row) = client.query_opt(
        "SELECT coalesce(c.reloptions, '{}'), \
                ARRAY(SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x WHERE x.indrelid = c.oid ORDER BY 1), \
                ARRAY(SELECT x.indisunique FROM pg_index x WHERE x.indrelid = c.oid \
                      ORDER BY pg_get_indexdef(x.indexrelid)), \
                c.relpersistence = 'u' \
         FROM pg_class c WHERE c.oid = to_regclass($1)",
        &[&template],
    )?
    else {
        return Ok(None);
    };
    let options: Vec<String> = row.get(0);
    let parameters = options
        .iter()
        .filter_map(|option| {
            let (name, value) = option.split_once('=')?;
            Some((name.to_owned(), toml_value(value)))
        })
        .collect();
    let definitions: Vec<String> = row.get(1);
    let unique: Vec<bool> = row.get(2);
    Ok(Some(Template {
        parameters,
        indexes: definitions.into_iter().zip(unique).collect(),
        unlogged: row.get(3),
    }))
}

/// A storage parameter's value as TOML: a number or a boolean as such,
/// anything else as a string.
fn toml_value(value: &str) -> String {
    if value.parse::<i64>().is_ok() || value.parse::<f64>().is_ok_and(f64::is_finite) {
        return value.to_owned();
    }
    match value {
        "true" | "on" => "true".to_owned(),
        "false" | "off" => "false".to_owned(),
        _ => toml_string(value),
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The table's name in the policy: plain when PostgreSQL would read it
/// back unchanged, else double-quoted.
fn policy_name(parent: &QualifiedName) -> String {
    let plain = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !part.starts_with(|c: char| c.is_ascii_digit())
    };
    let part = |part: &str| match plain(part) {
        true => part.to_owned(),
        false => quote_ident(part),
    };
    format!("{}.{}", part(&parent.schema), part(&parent.name))
}

fn import_table(
    client: &mut Client,
    config: &Row<'_>,
    sub_parents: &[String],
) -> Result<ImportedTable, postgres::Error> {
    let parent_table = config.text("parent_table").unwrap_or_default().to_owned();
    let (schema, name) = parent_table
        .split_once('.')
        .unwrap_or(("public", &parent_table));
    let parent = QualifiedName::new(schema, name);
    let control = config.text("control").unwrap_or_default().to_owned();
    let facts = table_facts(client, &parent, &control)?;
    let mut lines = vec![
        "[[table]]".to_owned(),
        format!("name = {}", toml_string(&policy_name(&parent))),
    ];
    let mut notes = Vec::new();
    let mut refused = refusal(config, &facts, sub_parents, &parent_table);
    let is_integer = facts.control_type.as_deref().is_some_and(|t| {
        ["smallint", "integer", "bigint"].contains(&t) || t.starts_with("numeric")
    });
    let epoch = config.text("epoch").unwrap_or("none");
    let interval_text = config.text("partition_interval").unwrap_or_default();
    let is_ids = is_integer && epoch == "none";
    let mut interval_name_used = None;
    if refused.is_none() {
        if is_ids {
            match interval_text.trim().parse::<i64>() {
                Ok(step) if step > 0 => lines.push(format!("interval = {step}")),
                _ => {
                    refused = Some(format!(
                        "partition_interval {interval_text:?} is not an ID step pgm can read"
                    ))
                }
            }
        } else {
            match interval_name(interval_parts(client, interval_text)?) {
                Some((name, note)) => {
                    lines.push(format!("interval = {}", toml_string(&name)));
                    notes.extend(note);
                    interval_name_used = Some(name);
                }
                None => {
                    refused = Some(format!(
                        "partition_interval {interval_text:?} has no pgm interval (pgm: hourly, N minutes dividing \
                         a day, daily, N days, weekly, monthly, quarterly, yearly)"
                    ))
                }
            }
            match epoch {
                "none" => {}
                "seconds" | "milliseconds" | "microseconds" => {
                    lines.push(format!("epoch = {}", toml_string(epoch)))
                }
                other => {
                    refused = Some(format!(
                        "epoch = '{other}': pgm reads seconds, milliseconds and microseconds since the epoch"
                    ))
                }
            }
        }
    }
    if let Some(premake) = config.number("premake") {
        lines.push(format!("premake = {premake}"));
    }
    retention_lines(client, config, is_ids, &mut lines, &mut notes)?;
    naming_line(
        config,
        is_ids,
        interval_name_used.as_deref(),
        &mut lines,
        &mut notes,
    );
    if facts.has_default {
        lines.push("default_partition = true".to_owned());
        lines.push("drain_default = true".to_owned());
    } else if config.flag("default_table") == Some(false) {
        lines.push("default_partition = false".to_owned());
    }
    other_settings(config, &mut notes);
    let section = partition_section(client, config, &mut notes)?;
    let mut entry = String::new();
    let prefix = if refused.is_some() { "# " } else { "" };
    if let Some(why) = &refused {
        entry.push_str(&format!(
            "# {parent_table} is not imported: {why}; keep it under pg_partman\n"
        ));
    }
    for line in lines.iter().chain(section.iter()) {
        if line.starts_with("[table.partition]") {
            notes_block(&mut entry, &notes);
        }
        entry.push_str(prefix);
        entry.push_str(line);
        entry.push('\n');
    }
    if section.is_empty() {
        notes_block(&mut entry, &notes);
    }
    Ok(ImportedTable {
        parent_table,
        entry,
        not_carried: notes,
        refused,
    })
}

fn notes_block(entry: &mut String, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    entry.push_str("# not carried over:\n");
    for note in notes {
        entry.push_str(&format!("# - {note}\n"));
    }
}

/// Why pgm cannot take the table over, if it cannot.
fn refusal(
    config: &Row<'_>,
    facts: &TableFacts,
    sub_parents: &[String],
    parent_table: &str,
) -> Option<String> {
    let partition_type = config.text("partition_type").unwrap_or("native");
    if !facts.exists {
        return Some("the table does not exist".to_owned());
    }
    if !["native", "range"].contains(&partition_type) {
        return Some(format!(
            "partition_type = '{partition_type}': pgm manages declarative RANGE partitioning (for a \
             trigger-based set, `pgm partitions convert` makes a partitioned table online)"
        ));
    }
    if facts.subpartitioned || sub_parents.iter().any(|p| p == parent_table) {
        return Some(
            "it is sub-partitioned: pgm does not manage sub-partitioned tables yet".to_owned(),
        );
    }
    if config.flag("undo_in_progress") == Some(true) {
        return Some("pg_partman is undoing its partitioning (undo_in_progress)".to_owned());
    }
    if facts.control_type.is_none() {
        return Some(format!(
            "its control column {} does not exist",
            config.text("control").unwrap_or_default()
        ));
    }
    None
}

fn retention_lines(
    client: &mut Client,
    config: &Row<'_>,
    is_ids: bool,
    lines: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<(), postgres::Error> {
    let Some(retention) = config.text("retention").filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    let text = if is_ids {
        retention.trim().parse::<i64>().ok().map(|n| n.to_string())
    } else {
        retention_text(interval_parts(client, retention)?).map(|t| toml_string(&t))
    };
    let Some(text) = text else {
        notes.push(format!(
            "retention = '{retention}': pgm keeps retention in days, weeks, months, quarters or years (IDs for \
             ID ranges); no retention is written: add one"
        ));
        return Ok(());
    };
    lines.push(format!("retention = {text}"));
    let schema = config.text("retention_schema").filter(|s| !s.is_empty());
    match (schema, config.flag("retention_keep_table").unwrap_or(true)) {
        (Some(schema), _) => {
            lines.push("retention_action = \"archive\"".to_owned());
            lines.push(format!("retention_schema = {}", toml_string(schema)));
        }
        (None, true) => lines.push("retention_action = \"detach\"".to_owned()),
        (None, false) => lines.push("retention_action = \"drop\"".to_owned()),
    }
    if config.flag("retention_keep_index") == Some(false) {
        notes.push(
            "retention_keep_index = false: pg_partman dropped the indexes of the partitions it detached; pgm \
             keeps them (drop them yourself if the space matters)"
                .to_owned(),
        );
    }
    Ok(())
}

fn naming_line(
    config: &Row<'_>,
    is_ids: bool,
    interval: Option<&str>,
    lines: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    if is_ids {
        notes.push(
            "naming: pg_partman names ID ranges {parent}_p<first id>; pgm zero-pads the first id so names sort \
             as ranges do (orders_p0000000000001000000): existing partitions are kept and recognised by their \
             bounds, new ones get pgm's names"
                .to_owned(),
        );
        return;
    }
    let Some(datetime_string) = config.text("datetime_string") else {
        return;
    };
    match naming_template(datetime_string) {
        Some(template) if interval.is_some() => {
            lines.push(format!("naming = {}", toml_string(&template)))
        }
        Some(_) => {}
        None => notes.push(format!(
            "datetime_string = '{datetime_string}': no pgm naming template matches it; new partitions get pgm's \
             default names (existing ones are recognised by their bounds)"
        )),
    }
}

/// Settings of pg_partman that have no pgm counterpart.
fn other_settings(config: &Row<'_>, notes: &mut Vec<String>) {
    let constraint_cols = config.list("constraint_cols");
    if !constraint_cols.is_empty() {
        notes.push(format!(
            "constraint_cols = {{{}}}: pgm adds no constraints on the columns of old partitions",
            constraint_cols.join(",")
        ));
    }
    if config.flag("infinite_time_partitions") == Some(false) {
        notes.push(
            "infinite_time_partitions = false: pg_partman made partitions only while new rows arrived; pgm makes \
             them from the clock, premake ahead, always"
                .to_owned(),
        );
    }
    let publications = config.list("publications");
    if !publications.is_empty() {
        notes.push(format!(
            "publications = {{{}}}: pgm adds no new partition to a publication; publish the parent with \
             publish_via_partition_root = true instead",
            publications.join(",")
        ));
    }
    if config.text("subscription_refresh").is_some() {
        notes.push(
            "subscription_refresh: pgm refreshes no subscription after creating partitions"
                .to_owned(),
        );
    }
    if let Some(interval) = config.text("date_trunc_interval") {
        notes.push(format!(
            "date_trunc_interval = '{interval}': pgm aligns periods on the calendar of time_zone; check that \
             `pgm partitions plan` reports no drift"
        ));
    }
    if config.text("automatic_maintenance") == Some("off") {
        notes.push(
            "automatic_maintenance is already 'off': pg_partman no longer maintains it".to_owned(),
        );
    }
}

/// `[table.partition]`: the template table's storage parameters and
/// pg_partman's `inherit_privileges`; its indexes are said so.
fn partition_section(
    client: &mut Client,
    config: &Row<'_>,
    notes: &mut Vec<String>,
) -> Result<Vec<String>, postgres::Error> {
    let mut section = Vec::new();
    if let Some(template) = config.text("template_table")
        && let Some(Template {
            parameters,
            indexes,
            unlogged,
        }) = template_storage(client, template)?
    {
        if !parameters.is_empty() {
            let with: Vec<String> = parameters
                .iter()
                .map(|(name, value)| format!("{name} = {value}"))
                .collect();
            section.push(format!("with = {{ {} }}", with.join(", ")));
        }
        for (definition, unique) in indexes {
            notes.push(match unique {
                true => format!(
                    "template index `{definition}`: a unique index without the partition key cannot be made on \
                     the parent, and pgm does not create it per partition: new partitions will not enforce it \
                     (create it on each new partition yourself, or add the key to it and declare it)"
                ),
                false => format!(
                    "template index `{definition}`: declare it as [[table.index]] so pgm builds it on every \
                     partition"
                ),
            });
        }
        if unlogged {
            notes.push(format!(
                "template table {template} is UNLOGGED: pgm makes partitions with the parent's persistence"
            ));
        }
    }
    if config.flag("inherit_privileges") == Some(true) {
        section.push("inherit_privileges = true".to_owned());
    }
    if !section.is_empty() {
        section.insert(0, "[table.partition]".to_owned());
    }
    Ok(section)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_strings_of_both_layouts_become_naming_templates() {
        assert_eq!(naming_template("YYYY_MM").unwrap(), "{parent}_p{YYYY}_{MM}");
        assert_eq!(
            naming_template("YYYYMMDD").unwrap(),
            "{parent}_p{YYYY}{MM}{DD}"
        );
        assert_eq!(
            naming_template("IYYY\"w\"IW").unwrap(),
            "{parent}_p{IYYY}w{WW}"
        );
        assert_eq!(
            naming_template("YYYY\"q\"Q").unwrap(),
            "{parent}_p{YYYY}q{Q}"
        );
        assert_eq!(
            naming_template("YYYY_MM_DD_HH24MI").unwrap(),
            "{parent}_p{YYYY}_{MM}_{DD}_{HH}{MI}"
        );
        assert_eq!(
            naming_template("YYYYMMDD_HH24MISS").unwrap(),
            "{parent}_p{YYYY}{MM}{DD}_{HH}{MI}00"
        );
        assert!(naming_template("YYYY-Mon").is_none());
    }

    #[test]
    fn intervals_and_retentions_map_to_pgm_names() {
        assert_eq!(interval_name((1, 0, 0)).unwrap().0, "monthly");
        assert_eq!(interval_name((0, 7, 0)).unwrap().0, "weekly");
        assert_eq!(interval_name((0, 0, 1800)).unwrap().0, "30 minutes");
        assert!(interval_name((0, 3, 0)).unwrap().1.is_some());
        assert!(interval_name((2, 0, 0)).is_none());
        assert_eq!(retention_text((24, 0, 0)).unwrap(), "2 years");
        assert_eq!(retention_text((0, 30, 0)).unwrap(), "30 days");
        assert_eq!(retention_text((0, 14, 0)).unwrap(), "2 weeks");
        assert!(retention_text((0, 0, 3600)).is_none());
    }

    #[test]
    fn storage_parameter_values_keep_their_type() {
        assert_eq!(toml_value("0.01"), "0.01");
        assert_eq!(toml_value("90"), "90");
        assert_eq!(toml_value("off"), "false");
        assert_eq!(toml_value("auto"), "\"auto\"");
    }
}
