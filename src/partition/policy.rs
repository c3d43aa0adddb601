//! The partition policy (`partman.toml`): defaults plus one entry per managed
//! table. Every problem is reported with file:line:col — unknown keys with a
//! did-you-mean, and semantic mistakes (a naming template that can collide, a
//! name over 63 bytes, a retention shorter than a partition…) with the fix.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use super::calendar::{self, EpochUnit, FixedInterval, Interval};
use crate::db::ident::QualifiedName;
use crate::duration::Timeout;
use crate::fleet::section::{self as fleet_section, FleetSection, RawFleet};
use crate::location::{LineIndex, Location};

pub use crate::db::ident::MAX_IDENTIFIER_BYTES;

#[derive(Debug, Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct PolicyError {
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub location: Location,
    pub message: String,
    pub snippet: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionUnit {
    Days,
    Weeks,
    Months,
    Quarters,
    Years,
    /// IDs below the largest one (an ID-ranged table).
    Ids,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionAction {
    /// Detach and keep the table.
    Detach,
    /// Detach and drop.
    Drop,
    /// Detach and move to this schema.
    Archive { schema: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub amount: u64,
    pub unit: RetentionUnit,
    pub action: RetentionAction,
    /// As written, for plans ("12 months").
    pub text: String,
}

impl Retention {
    /// The first day of data kept: `today` minus the retention. A cutoff
    /// before chrono's first day is held there, which expires nothing, as
    /// the real cutoff would.
    pub fn cutoff(&self, today: NaiveDate) -> NaiveDate {
        self.checked_cutoff(today).unwrap_or(NaiveDate::MIN)
    }

    /// `today` minus the retention, when chrono can represent it.
    pub fn checked_cutoff(&self, today: NaiveDate) -> Option<NaiveDate> {
        use chrono::{Days, Months};
        let n = u32::try_from(self.amount).ok()?;
        match self.unit {
            RetentionUnit::Days => today.checked_sub_days(Days::new(u64::from(n))),
            RetentionUnit::Weeks => today.checked_sub_days(Days::new(7 * u64::from(n))),
            RetentionUnit::Months => today.checked_sub_months(Months::new(n)),
            RetentionUnit::Quarters => today.checked_sub_months(Months::new(n.checked_mul(3)?)),
            RetentionUnit::Years => today.checked_sub_months(Months::new(n.checked_mul(12)?)),
            // Counted from the largest key, not from a day.
            RetentionUnit::Ids => None,
        }
    }

    /// The smallest upper bound a partition of an ID-ranged table keeps:
    /// `max_key` minus the retention (pg_partman's rule).
    pub fn id_cutoff(&self, max_key: i64) -> i64 {
        let amount = i64::try_from(self.amount).unwrap_or(i64::MAX);
        max_key.saturating_sub(amount)
    }

    /// Roughly how many days the retention keeps (0 for IDs).
    pub fn approximate_days(&self) -> i64 {
        i64::try_from(self.amount)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.unit.approximate_days())
    }
}

impl RetentionUnit {
    /// The most of this unit a retention may say: `MAX_RETENTION_YEARS`,
    /// counting a year as 365 days, 52 weeks, 12 months or 4 quarters.
    pub fn max_amount(self) -> u32 {
        MAX_RETENTION_YEARS
            * match self {
                RetentionUnit::Days => 365,
                RetentionUnit::Weeks => 52,
                RetentionUnit::Months => 12,
                RetentionUnit::Quarters => 4,
                RetentionUnit::Years => 1,
                RetentionUnit::Ids => return u32::MAX,
            }
    }

    fn approximate_days(self) -> i64 {
        match self {
            RetentionUnit::Days => 1,
            RetentionUnit::Weeks => 7,
            RetentionUnit::Months => 30,
            RetentionUnit::Quarters => 91,
            RetentionUnit::Years => 365,
            RetentionUnit::Ids => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPolicy {
    pub name: String,
    /// Column names or expressions, each with optional ASC/DESC/NULLS, as SQL.
    pub columns: Vec<String>,
    pub method: String,
    pub include: Vec<String>,
    pub predicate: Option<String>,
    pub unique: bool,
}

/// How a table's key is cut into partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// Calendar periods of the policy's zone (a time key, or an integer
    /// key with `epoch`).
    Calendar(Interval),
    /// Hourly, N minutes/hours aligned on local midnight, or N days/weeks
    /// from `calendar::FIXED_ANCHOR`.
    Fixed(FixedInterval),
    /// Ranges of this many IDs, `[k·step, (k+1)·step)` (an integer key).
    Ids(i64),
}

impl std::fmt::Display for Spacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spacing::Calendar(interval) => interval.fmt(f),
            Spacing::Fixed(fixed) => fixed.fmt(f),
            Spacing::Ids(step) => write!(f, "{step} IDs"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePolicy {
    pub schema: String,
    pub name: String,
    pub spacing: Spacing,
    /// What an integer key holds, when it holds time.
    pub epoch: Option<EpochUnit>,
    /// The partition key column, for `pgm partitions convert` of a plain
    /// table (a partitioned table's key is read from the catalog), with
    /// where it is written.
    pub key: Option<(String, Location)>,
    /// Where `interval` is written, for problems found against the catalog.
    pub interval_location: Location,
    pub premake: u32,
    pub retention: Option<Retention>,
    pub default_partition: bool,
    /// `default_partition` is written (in the entry or the defaults), so a
    /// default partition against `false` is worth reporting.
    pub default_partition_written: bool,
    pub move_default_rows: bool,
    /// Rows of the default partition in periods with no partition get
    /// their partition and are moved there, one period per transaction.
    pub drain_default: bool,
    /// What every new partition gets that `LIKE` cannot copy.
    pub partition: PartitionProperties,
    pub naming: String,
    pub time_zone: Tz,
    pub lock_timeout: Timeout,
    /// How long an index build may wait for older transactions.
    pub snapshot_wait: Timeout,
    pub lock_retries: u32,
    pub max_drops_per_run: u32,
    /// On Citus: partitions whose whole range is older than this become
    /// columnar, one per transaction, before the retention drops them.
    pub columnar_after: Option<ColumnarAfter>,
    pub indexes: Vec<IndexPolicy>,
    /// Where the entry starts in the file.
    pub location: Location,
}

/// `columnar_after`: an age, like a time retention, past which partitions
/// are converted to Citus's columnar access method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnarAfter {
    pub amount: u32,
    pub unit: RetentionUnit,
    /// As written, for plans ("3 months").
    pub text: String,
}

impl ColumnarAfter {
    /// The first day that stays row-based: `today` minus the age.
    pub fn cutoff(&self, today: NaiveDate) -> NaiveDate {
        Retention {
            amount: u64::from(self.amount),
            unit: self.unit,
            action: RetentionAction::Detach,
            text: self.text.clone(),
        }
        .cutoff(today)
    }

    fn approximate_days(&self) -> i64 {
        i64::from(self.amount).saturating_mul(self.unit.approximate_days())
    }
}

impl TablePolicy {
    pub fn qualified_name(&self) -> String {
        self.parent().to_string()
    }

    /// The managed parent table.
    pub fn parent(&self) -> QualifiedName {
        QualifiedName::new(self.schema.clone(), self.name.clone())
    }

    /// The name of the partition for the period starting on `start`.
    pub fn partition_name(&self, start: NaiveDate) -> String {
        self.partition_name_at(start.and_time(NaiveTime::MIN))
    }

    /// The name of the partition for the period starting at a local time.
    pub fn partition_name_at(&self, start: NaiveDateTime) -> String {
        expand(&self.naming, &self.name, start)
    }

    /// The name of the ID range starting at `start`, padded to `digits`.
    pub fn id_partition_name(&self, start: i64, digits: usize) -> String {
        expand_id(&self.naming, &self.name, start, digits)
    }

    /// Whether the partitions a plan at `now` creates (the period holding
    /// now and `premake` more) have bounds pgm can write, from
    /// `calendar::FIRST_BOUND_DAY` to `calendar::LAST_BOUND_DAY`. Checked
    /// before planning, so that no date arithmetic of the plan leaves
    /// chrono's calendar.
    pub fn check_plannable(&self, now: DateTime<Utc>) -> Result<(), String> {
        // ID ranges do not follow the clock: the planner checks them
        // against the key type's range.
        let periods = self.premake.checked_add(1);
        let today = calendar::checked_local_date(now, self.time_zone);
        let (first, end, interval) = match self.spacing {
            Spacing::Ids(_) => return Ok(()),
            Spacing::Calendar(interval) => {
                let first = today.and_then(|today| interval.checked_floor(today));
                let end = first.and_then(|first| interval.checked_advance(first, periods?));
                (first, end, interval.to_string())
            }
            Spacing::Fixed(fixed) => {
                let first = today
                    .and_then(|today| fixed.floor(today.and_time(NaiveTime::MIN)))
                    .map(|start| start.date());
                let minutes = u64::from(fixed.minutes) * u64::from(periods.unwrap_or(u32::MAX));
                let end = first.and_then(|first| {
                    first.checked_add_days(chrono::Days::new(minutes.div_ceil(24 * 60) + 1))
                });
                (first, end, fixed.to_string())
            }
        };
        let span = match (first, end) {
            (Some(first), Some(end))
                if first >= calendar::FIRST_BOUND_DAY && end <= calendar::LAST_BOUND_DAY =>
            {
                return Ok(());
            }
            (Some(first), Some(end)) => format!(" would run from {first} to {end}"),
            _ => " fall outside the calendar".to_owned(),
        };
        Err(format!(
            "{} cannot be planned at {now}: its partitions (the {} period holding that time in {} and \
             premake = {} more){span}, but pgm writes partition bounds only from {} to {}; plan for \
             another time",
            self.qualified_name(),
            interval,
            self.time_zone,
            self.premake,
            calendar::FIRST_BOUND_DAY,
            calendar::LAST_BOUND_DAY,
        ))
    }
}

/// `[table.partition]`: storage parameters, grants and a tablespace for
/// every partition pgm creates (pg_partman's template table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionProperties {
    /// Storage parameters, as `WITH (name = value)` writes them, in order.
    pub with: Vec<(String, String)>,
    /// The parent's grants are given to each new partition.
    pub inherit_privileges: bool,
    pub tablespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub path: PathBuf,
    pub tables: Vec<TablePolicy>,
}

/// A table's schema written as this is each tenant schema of a fleet run
/// (`[fleet] schemas`): `name = "{schema}.events"`.
pub const SCHEMA_PLACEHOLDER: &str = "{schema}";

impl Policy {
    /// Whether a table's schema is the `{schema}` placeholder.
    pub fn uses_schema_placeholder(&self) -> bool {
        self.tables.iter().any(|t| t.schema == SCHEMA_PLACEHOLDER)
    }

    /// The policy for one tenant schema: the placeholder, as a table's
    /// schema or an archive schema, becomes it.
    pub fn for_schema(mut self, schema: &str) -> Policy {
        for table in &mut self.tables {
            if table.schema == SCHEMA_PLACEHOLDER {
                schema.clone_into(&mut table.schema);
            }
            if let Some(Retention {
                action: RetentionAction::Archive { schema: archive },
                ..
            }) = &mut table.retention
                && archive == SCHEMA_PLACEHOLDER
            {
                schema.clone_into(archive);
            }
        }
        self
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default, rename = "table")]
    tables: Vec<Spanned<RawTable>>,
    /// `pgm lint`'s settings, checked by the lint configuration.
    #[serde(default, rename = "lint")]
    _lint: Option<serde::de::IgnoredAny>,
    /// Where `--fleet` runs.
    fleet: Option<Spanned<RawFleet>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    premake: Option<Spanned<u32>>,
    retention_action: Option<Spanned<String>>,
    retention_schema: Option<Spanned<String>>,
    default_partition: Option<bool>,
    move_default_rows: Option<bool>,
    drain_default: Option<bool>,
    time_zone: Option<Spanned<String>>,
    lock_timeout: Option<Spanned<String>>,
    snapshot_wait: Option<Spanned<String>>,
    lock_retries: Option<Spanned<u32>>,
    max_drops_per_run: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: Spanned<String>,
    interval: Spanned<RawNumberOrText>,
    epoch: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    premake: Option<Spanned<u32>>,
    retention: Option<Spanned<RawNumberOrText>>,
    retention_action: Option<Spanned<String>>,
    retention_schema: Option<Spanned<String>>,
    default_partition: Option<bool>,
    move_default_rows: Option<bool>,
    drain_default: Option<bool>,
    partition: Option<Spanned<RawPartition>>,
    naming: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    lock_timeout: Option<Spanned<String>>,
    snapshot_wait: Option<Spanned<String>>,
    lock_retries: Option<Spanned<u32>>,
    max_drops_per_run: Option<Spanned<u32>>,
    columnar_after: Option<Spanned<String>>,
    #[serde(default, rename = "index")]
    indexes: Vec<Spanned<RawIndex>>,
}

/// `interval` and `retention`: a TOML integer for ID ranges, a string for time.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawNumberOrText {
    Number(i64),
    Text(String),
    /// A float, a boolean, an array…: kept so the error is located and
    /// says what to write, not serde's "did not match any variant".
    Other(toml::Value),
}

impl RawNumberOrText {
    /// What to write instead of a value of another type, for `key`.
    fn wrong_type(value: &toml::Value, key: &str, id_example: &str, time_example: &str) -> String {
        format!(
            "{key} = {value} is a {}: write a whole number for ID ranges, like {key} = {id_example}, \
             or a string for time, like {key} = {time_example}",
            value.type_str()
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartition {
    #[serde(default)]
    with: Option<Spanned<toml::Table>>,
    #[serde(default)]
    inherit_privileges: bool,
    tablespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    name: Spanned<String>,
    columns: Spanned<Vec<String>>,
    method: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(rename = "where")]
    predicate: Option<String>,
    #[serde(default)]
    unique: bool,
}

pub const DEFAULT_PREMAKE: u32 = 3;
pub const DEFAULT_MAX_DROPS: u32 = 5;
pub const DEFAULT_LOCK_TIMEOUT: Timeout = Timeout(std::time::Duration::from_secs(2));
pub const DEFAULT_LOCK_RETRIES: u32 = 5;
pub const DEFAULT_SNAPSHOT_WAIT: Timeout = Timeout(std::time::Duration::from_secs(30 * 60));
/// An index build waiting longer than a day for older transactions is
/// waiting for something that will not end by itself.
pub const MAX_SNAPSHOT_WAIT: Timeout = Timeout(std::time::Duration::from_secs(24 * 3600));

// Upper bounds on the policy's numbers. Past them a value is a slip of the
// keyboard, not a wish, and plans would stop being small and finite.
/// Partitions created ahead of the one holding now.
pub const MAX_PREMAKE: u32 = 1000;
/// Longer retentions are refused: keep data for good by leaving retention out.
pub const MAX_RETENTION_YEARS: u32 = 1000;
/// Expired partitions retired per table and run.
pub const MAX_DROPS_PER_RUN: u32 = 1000;
pub use crate::db::retry::MAX_LOCK_RETRIES;
/// A statement waiting for a lock makes every later query on the table wait
/// behind it: beyond an hour that is an outage, not maintenance.
pub const MAX_LOCK_TIMEOUT: Timeout = Timeout(std::time::Duration::from_secs(3600));

pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    parse(path, &read_policy_file(path)?)
}

/// The policy and its `[fleet]` section, read from the file.
pub fn load_with_fleet(path: &Path) -> Result<(Policy, Option<FleetSection>), PolicyError> {
    parse_with_fleet(path, &read_policy_file(path)?)
}

fn read_policy_file(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|error| PolicyError {
        problems: vec![Problem {
            location: Location {
                path: path.to_path_buf(),
                line: 0,
                column: 0,
            },
            message: format!(
                "cannot read the policy file: {error} (give another with --config PATH)"
            ),
            snippet: String::new(),
        }],
    })
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    lines: LineIndex<'a>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        let location = self.lines.location(self.path, span.start);
        let message = message.into();
        // A value in [defaults] is checked for every table that uses it:
        // one report is enough.
        if self
            .problems
            .iter()
            .any(|known| known.location == location && known.message == message)
        {
            return;
        }
        // The line can hold a connection string of [fleet]: never its password.
        let snippet = location
            .snippet(self.text)
            .lines()
            .map(crate::db::redact)
            .collect::<Vec<_>>()
            .join("\n");
        self.problems.push(Problem {
            location,
            message,
            snippet,
        });
    }

    /// Reports a number over its bound, where it is written.
    fn at_most(&mut self, key: &str, value: Option<&Spanned<u32>>, limit: u32, why: &str) {
        if let Some(value) = value
            && *value.get_ref() > limit
        {
            self.problem(
                value.span(),
                format!(
                    "{key} = {} is over the limit of {limit}: {why}",
                    value.get_ref()
                ),
            );
        }
    }
}

pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    parse_with_fleet(path, text).map(|(policy, _)| policy)
}

pub fn parse_with_fleet(
    path: &Path,
    text: &str,
) -> Result<(Policy, Option<FleetSection>), PolicyError> {
    let mut checker = Checker {
        path,
        text,
        lines: LineIndex::new(text),
        problems: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            checker.problem(
                error.span().unwrap_or(0..0),
                describe_toml_error(error.message()),
            );
            return Err(PolicyError {
                problems: checker.problems,
            });
        }
    };
    let defaults = &raw.defaults;
    let mut seen = HashSet::new();
    let mut tables = Vec::new();
    for entry in &raw.tables {
        if let Some(table) = check_table(&mut checker, defaults, entry) {
            if !seen.insert(table.qualified_name()) {
                checker.problem(
                    entry.get_ref().name.span(),
                    format!("{} has two entries: keep one", table.qualified_name()),
                );
            }
            tables.push(table);
        }
    }
    let fleet = raw.fleet.as_ref().and_then(|raw| {
        let locate = |offset| checker.lines.location(path, offset);
        match fleet_section::check(raw, &locate) {
            Ok(section) => Some(section),
            Err(problems) => {
                for (span, message) in problems {
                    checker.problem(span, message);
                }
                None
            }
        }
    });
    if checker.problems.is_empty() {
        let policy = Policy {
            path: path.to_path_buf(),
            tables,
        };
        Ok((policy, fleet))
    } else {
        Err(PolicyError {
            problems: checker.problems,
        })
    }
}

/// toml's "unknown field `x`, expected one of `a`, `b`" with a did-you-mean.
pub(crate) fn describe_toml_error(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match crate::suggest::did_you_mean(field, &known) {
        Some(near) => format!("unknown key \"{field}\" (did you mean \"{near}\"?)"),
        None => format!(
            "unknown key \"{field}\"; the keys here are: {}",
            known.join(", ")
        ),
    }
}

fn check_table(
    checker: &mut Checker<'_>,
    defaults: &RawDefaults,
    entry: &Spanned<RawTable>,
) -> Option<TablePolicy> {
    let raw = entry.get_ref();
    let errors_before = checker.problems.len();
    let location = checker.lines.location(checker.path, entry.span().start);
    let (schema, name) = check_name(checker, &raw.name);
    let spacing = check_interval(checker, &raw.interval);
    let epoch = check_epoch(checker, raw.epoch.as_ref(), &raw.interval, spacing);
    let time_zone = check_time_zone(
        checker,
        raw.time_zone.as_ref().or(defaults.time_zone.as_ref()),
    );
    let lock_timeout = check_lock_timeout(
        checker,
        raw.lock_timeout.as_ref().or(defaults.lock_timeout.as_ref()),
    );
    let snapshot_wait = check_snapshot_wait(
        checker,
        raw.snapshot_wait
            .as_ref()
            .or(defaults.snapshot_wait.as_ref()),
    );
    let counts = check_counts(checker, defaults, entry);
    let retention = check_retention(checker, defaults, raw, spacing);
    let columnar_after = check_columnar_after(checker, raw, spacing, retention.as_ref());
    let naming = raw.naming.as_ref().map_or_else(
        || {
            spacing
                .map(default_naming)
                .unwrap_or("{parent}_p{YYYY}_{MM}")
                .to_owned()
        },
        |n| n.get_ref().clone(),
    );
    if let Some(spacing) = spacing
        && let Err(message) = check_naming(&naming, spacing, &name)
    {
        checker.problem(
            raw.naming.as_ref().map_or(entry.span(), Spanned::span),
            message,
        );
    }
    let indexes = check_indexes(checker, &raw.indexes);
    let partition = check_partition_properties(checker, raw.partition.as_ref());
    if checker.problems.len() > errors_before {
        return None;
    }
    Some(TablePolicy {
        schema,
        name,
        spacing: spacing?,
        epoch,
        key: raw.key.as_ref().map(|key| {
            (
                key.get_ref().clone(),
                checker.lines.location(checker.path, key.span().start),
            )
        }),
        interval_location: checker
            .lines
            .location(checker.path, raw.interval.span().start),
        premake: counts.premake,
        retention,
        default_partition: counts.default_partition,
        default_partition_written: raw
            .default_partition
            .or(defaults.default_partition)
            .is_some(),
        move_default_rows: raw
            .move_default_rows
            .or(defaults.move_default_rows)
            .unwrap_or(false),
        drain_default: raw
            .drain_default
            .or(defaults.drain_default)
            .unwrap_or(false),
        partition,
        naming,
        time_zone,
        lock_timeout,
        snapshot_wait,
        lock_retries: counts.lock_retries,
        max_drops_per_run: counts.max_drops_per_run,
        columnar_after,
        indexes,
        location,
    })
}

/// `columnar_after = "3 months"`: a time age, shorter than the retention
/// (a partition becomes columnar before it expires, not instead).
fn check_columnar_after(
    checker: &mut Checker<'_>,
    raw: &RawTable,
    spacing: Option<Spacing>,
    retention: Option<&Retention>,
) -> Option<ColumnarAfter> {
    let raw_after = raw.columnar_after.as_ref()?;
    let text = raw_after.get_ref();
    if matches!(spacing, Some(Spacing::Ids(_))) {
        checker.problem(
            raw_after.span(),
            "columnar_after is an age, for tables partitioned by time: ID ranges have none",
        );
        return None;
    }
    let (amount, unit) = match parse_retention(text) {
        Ok(parsed) => parsed,
        Err(message) => {
            checker.problem(
                raw_after.span(),
                message.replacen("retention", "columnar_after", 1),
            );
            return None;
        }
    };
    let after = ColumnarAfter {
        amount,
        unit,
        text: text.clone(),
    };
    if let Some(retention) = retention
        && retention.unit != RetentionUnit::Ids
        && after.approximate_days() >= retention.approximate_days()
    {
        checker.problem(
            raw_after.span(),
            format!(
                "columnar_after = \"{text}\" is not shorter than retention = \"{}\": partitions would expire \
                 before they become columnar; write a shorter age, like columnar_after = \"3 months\"",
                retention.text
            ),
        );
        return None;
    }
    Some(after)
}

/// `[table.partition]`: each storage parameter a plain name with a number,
/// a boolean or a word, so it can be written into `WITH (…)` as it is.
fn check_partition_properties(
    checker: &mut Checker<'_>,
    raw: Option<&Spanned<RawPartition>>,
) -> PartitionProperties {
    let Some(raw) = raw else {
        return PartitionProperties::default();
    };
    let section = raw.get_ref();
    let mut with = Vec::new();
    if let Some(table) = &section.with {
        for (name, value) in table.get_ref() {
            let plain_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
            let text = match value {
                toml::Value::Integer(n) => Some(n.to_string()),
                toml::Value::Float(f) if f.is_finite() => Some(f.to_string()),
                toml::Value::Boolean(b) => Some(b.to_string()),
                toml::Value::String(word)
                    if !word.is_empty()
                        && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    Some(word.clone())
                }
                _ => None,
            };
            match (plain_name, text) {
                (true, Some(text)) => with.push((name.clone(), text)),
                _ => checker.problem(
                    table.span(),
                    format!(
                        "storage parameter {name} = {value}: write a parameter name and a number, a boolean or a \
                         word, like with = {{ fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01 }}"
                    ),
                ),
            }
        }
    }
    PartitionProperties {
        with,
        inherit_privileges: section.inherit_privileges,
        tablespace: section.tablespace.clone(),
    }
}

/// (schema, table) of a schema-qualified name.
fn check_name(checker: &mut Checker<'_>, raw: &Spanned<String>) -> (String, String) {
    split_qualified(raw.get_ref()).unwrap_or_else(|| {
        checker.problem(
            raw.span(),
            format!(
                "table name \"{}\" must be schema-qualified, like \"public.{}\"",
                raw.get_ref(),
                raw.get_ref()
            ),
        );
        (String::new(), raw.get_ref().clone())
    })
}

fn check_interval(checker: &mut Checker<'_>, raw: &Spanned<RawNumberOrText>) -> Option<Spacing> {
    let text = match raw.get_ref() {
        RawNumberOrText::Number(step) if *step > 0 => return Some(Spacing::Ids(*step)),
        RawNumberOrText::Number(step) => {
            checker.problem(
                raw.span(),
                format!(
                    "interval = {step} is not an ID step: write a whole number above 0, like interval = 1000000"
                ),
            );
            return None;
        }
        RawNumberOrText::Text(text) => text,
        RawNumberOrText::Other(value) => {
            let message = RawNumberOrText::wrong_type(
                value,
                "interval",
                "1000000",
                "\"monthly\" (or \"daily\", \"hourly\", \"N minutes\", \"N hours\", \"N days\", \"N weeks\")",
            );
            checker.problem(raw.span(), message);
            return None;
        }
    };
    if let Some(interval) = Interval::parse(text) {
        return Some(Spacing::Calendar(interval));
    }
    let fixed_problem = match FixedInterval::parse(text) {
        Ok(fixed) => return Some(Spacing::Fixed(fixed)),
        Err(problem) => problem,
    };
    let message = if !fixed_problem.is_empty() {
        fixed_problem
    } else if text.trim().parse::<i64>().is_ok() {
        format!(
            "interval = \"{text}\" is a string: an ID step is a TOML integer, write interval = {}",
            text.trim()
        )
    } else {
        let suggestion = crate::suggest::did_you_mean(text, Interval::NAMES)
            .map(|near| format!(" (did you mean \"{near}\"?)"))
            .unwrap_or_default();
        format!(
            "unknown interval \"{text}\"{suggestion}: use one of {}, hourly, \"N minutes\", \"N hours\", \
             \"N days\" or \"N weeks\"",
            Interval::NAMES.join(", ")
        )
    };
    checker.problem(raw.span(), message);
    None
}

/// `epoch` names the unit of an integer key holding time; it makes no
/// sense with an ID step.
fn check_epoch(
    checker: &mut Checker<'_>,
    raw: Option<&Spanned<String>>,
    interval: &Spanned<RawNumberOrText>,
    spacing: Option<Spacing>,
) -> Option<EpochUnit> {
    let raw = raw?;
    let Some(unit) = EpochUnit::parse(raw.get_ref()) else {
        let near = crate::suggest::did_you_mean(raw.get_ref(), EpochUnit::NAMES)
            .map(|near| format!(" (did you mean \"{near}\"?)"))
            .unwrap_or_default();
        checker.problem(
            raw.span(),
            format!(
                "unknown epoch \"{}\"{near}: use one of {}",
                raw.get_ref(),
                EpochUnit::NAMES.join(", ")
            ),
        );
        return None;
    };
    if let Some(Spacing::Ids(step)) = spacing {
        checker.problem(
            interval.span(),
            format!(
                "interval = {step} cuts the key into ID ranges, but epoch = \"{unit}\" says it holds time: \
                 for IDs remove epoch; for time since the epoch write a time interval, like interval = \"daily\""
            ),
        );
    }
    Some(unit)
}

fn check_time_zone(checker: &mut Checker<'_>, raw: Option<&Spanned<String>>) -> Tz {
    let Some(zone) = raw else {
        return Tz::UTC;
    };
    zone.get_ref().parse::<Tz>().unwrap_or_else(|_| {
        let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        let suggestion = crate::suggest::did_you_mean(zone.get_ref(), &names)
            .map(|near| format!(" (did you mean \"{near}\"?)"))
            .unwrap_or_default();
        checker.problem(
            zone.span(),
            format!("unknown time zone \"{}\"{suggestion}: use an IANA name like \"UTC\" or \"Europe/Berlin\"", zone.get_ref()),
        );
        Tz::UTC
    })
}

fn check_lock_timeout(checker: &mut Checker<'_>, raw: Option<&Spanned<String>>) -> Timeout {
    let Some(text) = raw else {
        return DEFAULT_LOCK_TIMEOUT;
    };
    match text.get_ref().parse::<Timeout>() {
        Ok(timeout) if timeout.0.is_zero() => {
            checker.problem(text.span(), "lock_timeout = 0 would let DDL wait in the lock queue forever: use a short timeout like \"2s\"");
            DEFAULT_LOCK_TIMEOUT
        }
        Ok(timeout) if timeout > MAX_LOCK_TIMEOUT => {
            checker.problem(
                text.span(),
                format!(
                    "lock_timeout = \"{}\" is over {MAX_LOCK_TIMEOUT}: a statement waiting for a lock makes \
                     every later query on the table wait behind it; keep it short, like \"2s\"",
                    text.get_ref()
                ),
            );
            DEFAULT_LOCK_TIMEOUT
        }
        Ok(timeout) => timeout,
        Err(message) => {
            checker.problem(text.span(), format!("invalid lock_timeout: {message}"));
            DEFAULT_LOCK_TIMEOUT
        }
    }
}

fn check_snapshot_wait(checker: &mut Checker<'_>, raw: Option<&Spanned<String>>) -> Timeout {
    let Some(text) = raw else {
        return DEFAULT_SNAPSHOT_WAIT;
    };
    match text.get_ref().parse::<Timeout>() {
        Ok(wait) if wait.0.is_zero() || wait > MAX_SNAPSHOT_WAIT => {
            checker.problem(
                text.span(),
                format!(
                    "snapshot_wait = \"{}\" must be more than 0 and at most {MAX_SNAPSHOT_WAIT}: an index build \
                     waits this long for older transactions (blocking no reads or writes), like \"30min\"",
                    text.get_ref()
                ),
            );
            DEFAULT_SNAPSHOT_WAIT
        }
        Ok(wait) => wait,
        Err(message) => {
            checker.problem(text.span(), format!("invalid snapshot_wait: {message}"));
            DEFAULT_SNAPSHOT_WAIT
        }
    }
}

/// The table's counts, each within its bounds.
struct Counts {
    lock_retries: u32,
    premake: u32,
    default_partition: bool,
    max_drops_per_run: u32,
}

fn check_counts(
    checker: &mut Checker<'_>,
    defaults: &RawDefaults,
    entry: &Spanned<RawTable>,
) -> Counts {
    let raw = entry.get_ref();
    let lock_retries_raw = raw.lock_retries.as_ref().or(defaults.lock_retries.as_ref());
    checker.at_most(
        "lock_retries",
        lock_retries_raw,
        MAX_LOCK_RETRIES,
        "each retry waits for lock_timeout again, and the tables after this one wait with it",
    );
    let premake_raw = raw.premake.as_ref().or(defaults.premake.as_ref());
    checker.at_most(
        "premake",
        premake_raw,
        MAX_PREMAKE,
        "every run would check (and first create) that many partitions ahead",
    );
    let premake = premake_raw.map_or(DEFAULT_PREMAKE, |p| *p.get_ref());
    let default_partition = raw
        .default_partition
        .or(defaults.default_partition)
        .unwrap_or(false);
    if premake == 0 && !default_partition {
        checker.problem(
            premake_raw.map_or(entry.span(), Spanned::span),
            "premake = 0 leaves no partition ready for the next period: inserts at the turn of the period fail \
             until maintenance runs; set premake to 1 or more, or default_partition = true",
        );
    }
    let max_drops_raw = raw
        .max_drops_per_run
        .as_ref()
        .or(defaults.max_drops_per_run.as_ref());
    checker.at_most(
        "max_drops_per_run",
        max_drops_raw,
        MAX_DROPS_PER_RUN,
        "the cap is a guard against a retention set too short, and that many drops in one run is no guard",
    );
    let max_drops_per_run = max_drops_raw.map_or(DEFAULT_MAX_DROPS, |m| *m.get_ref());
    if max_drops_per_run == 0 {
        checker.problem(
            max_drops_raw.map_or(entry.span(), Spanned::span),
            "max_drops_per_run = 0 would select expired partitions and never retire them: remove `retention` to keep \
             everything, or allow at least 1",
        );
    }
    Counts {
        lock_retries: lock_retries_raw.map_or(DEFAULT_LOCK_RETRIES, |r| *r.get_ref()),
        premake,
        default_partition,
        max_drops_per_run,
    }
}

fn check_indexes(checker: &mut Checker<'_>, raw: &[Spanned<RawIndex>]) -> Vec<IndexPolicy> {
    let mut index_names = HashSet::new();
    let mut indexes = Vec::new();
    for index in raw {
        let raw_index = index.get_ref();
        if raw_index.columns.get_ref().is_empty() {
            checker.problem(
                raw_index.columns.span(),
                format!("index {} lists no columns", raw_index.name.get_ref()),
            );
        }
        if raw_index.name.get_ref().len() > MAX_IDENTIFIER_BYTES {
            checker.problem(
                raw_index.name.span(),
                format!(
                    "index name is {} bytes, over PostgreSQL's {MAX_IDENTIFIER_BYTES}: shorten it",
                    raw_index.name.get_ref().len()
                ),
            );
        }
        if !index_names.insert(raw_index.name.get_ref().clone()) {
            checker.problem(
                raw_index.name.span(),
                format!("index {} is declared twice", raw_index.name.get_ref()),
            );
        }
        indexes.push(IndexPolicy {
            name: raw_index.name.get_ref().clone(),
            columns: raw_index.columns.get_ref().clone(),
            method: raw_index
                .method
                .clone()
                .unwrap_or_else(|| "btree".to_owned()),
            include: raw_index.include.clone(),
            predicate: raw_index.predicate.clone(),
            unique: raw_index.unique,
        });
    }
    indexes
}

fn check_retention(
    checker: &mut Checker<'_>,
    defaults: &RawDefaults,
    raw: &RawTable,
    spacing: Option<Spacing>,
) -> Option<Retention> {
    let action_raw = raw
        .retention_action
        .as_ref()
        .or(defaults.retention_action.as_ref());
    let schema_raw = raw
        .retention_schema
        .as_ref()
        .or(defaults.retention_schema.as_ref());
    let Some(retention_raw) = &raw.retention else {
        if let Some(action) = &raw.retention_action {
            checker.problem(action.span(), "retention_action without retention: say how long to keep data, like retention = \"12 months\"");
        }
        return None;
    };
    let (amount, unit) = match retention_amount(retention_raw.get_ref(), spacing) {
        Ok(parsed) => parsed,
        Err(message) => {
            checker.problem(retention_raw.span(), message);
            return None;
        }
    };
    let action = match action_raw.map(|a| a.get_ref().as_str()) {
        None | Some("drop") => RetentionAction::Drop,
        Some("detach") => RetentionAction::Detach,
        Some("archive") => match schema_raw {
            Some(schema) => RetentionAction::Archive {
                schema: schema.get_ref().clone(),
            },
            None => {
                checker.problem(
                    action_raw.map_or(retention_raw.span(), Spanned::span),
                    "retention_action = \"archive\" needs retention_schema, the schema expired partitions move to",
                );
                return None;
            }
        },
        Some(other) => {
            let near = crate::suggest::did_you_mean(other, &["detach", "drop", "archive"])
                .map(|near| format!(" (did you mean \"{near}\"?)"))
                .unwrap_or_default();
            checker.problem(
                action_raw.map_or(retention_raw.span(), Spanned::span),
                format!(
                    "unknown retention_action \"{other}\"{near}: use detach, drop or archive{}",
                    if other == "columnar" {
                        "; to turn partitions columnar on Citus before they expire, write \
                         columnar_after = \"3 months\" (an age shorter than the retention)"
                    } else {
                        ""
                    }
                ),
            );
            return None;
        }
    };
    if let (Some(schema), false) = (
        &raw.retention_schema,
        matches!(action, RetentionAction::Archive { .. }),
    ) {
        checker.problem(
            schema.span(),
            "retention_schema is only used with retention_action = \"archive\"",
        );
    }
    let retention = Retention {
        amount,
        unit,
        action,
        text: match retention_raw.get_ref() {
            RawNumberOrText::Number(ids) => format!("{ids} IDs"),
            RawNumberOrText::Text(text) => text.clone(),
            RawNumberOrText::Other(value) => value.to_string(),
        },
    };
    if let Some(message) = spacing.and_then(|spacing| shorter_than_a_partition(&retention, spacing))
    {
        checker.problem(retention_raw.span(), message);
    }
    Some(retention)
}

/// Why a retention shorter than one partition is refused, with the least
/// to write instead: the partition being filled would expire before it
/// is complete.
fn shorter_than_a_partition(retention: &Retention, spacing: Spacing) -> Option<String> {
    let (short, one, at_least) = match spacing {
        Spacing::Ids(step) => {
            let amount = retention.amount;
            return (amount < step.unsigned_abs()).then(|| {
                format!(
                    "retention = {amount} is less than one ID range (interval = {step}): the partition being \
                     filled would expire; keep at least one range, like retention = {step}"
                )
            });
        }
        Spacing::Calendar(interval) => (
            retention.approximate_days() < interval.approximate_days(),
            interval.to_string(),
            match interval {
                Interval::Daily => "1 day",
                Interval::Weekly => "1 week",
                Interval::Monthly => "1 month",
                Interval::Quarterly => "1 quarter",
                Interval::Yearly => "1 year",
            }
            .to_owned(),
        ),
        Spacing::Fixed(fixed) => (
            retention.approximate_days() < fixed.approximate_days(),
            fixed.to_string(),
            // Whole days, as retention counts them.
            FixedInterval {
                minutes: fixed.days() * 24 * 60,
            }
            .to_string(),
        ),
    };
    short.then(|| {
        format!(
            "retention \"{}\" is shorter than one {one} partition: a partition would expire before it is \
             complete; keep at least one interval (e.g. \"{at_least}\")",
            retention.text
        )
    })
}

/// A retention as written: a number of IDs for an ID-ranged table, a
/// duration for the others.
fn retention_amount(
    raw: &RawNumberOrText,
    spacing: Option<Spacing>,
) -> Result<(u64, RetentionUnit), String> {
    match (raw, spacing) {
        (RawNumberOrText::Number(ids), Some(Spacing::Ids(_))) => match u64::try_from(*ids) {
            Ok(ids) if ids > 0 => Ok((ids, RetentionUnit::Ids)),
            _ => Err(format!(
                "retention = {ids} needs a whole number of IDs above 0, like retention = 50000000"
            )),
        },
        (RawNumberOrText::Number(ids), _) => Err(format!(
            "retention = {ids} is a number of IDs, but the interval is a time interval: write a duration, \
             like retention = \"12 months\" (a number of IDs goes with an ID step, like interval = 1000000)"
        )),
        (RawNumberOrText::Text(text), Some(Spacing::Ids(_))) => Err(format!(
            "retention = \"{text}\" is a duration, but the interval is an ID step: write how many IDs below \
             the largest to keep, as a TOML integer, like retention = 50000000"
        )),
        (RawNumberOrText::Text(text), _) => {
            parse_retention(text).map(|(amount, unit)| (u64::from(amount), unit))
        }
        (RawNumberOrText::Other(value), _) => Err(RawNumberOrText::wrong_type(
            value,
            "retention",
            "50000000",
            "\"12 months\"",
        )),
    }
}

/// "12 months", "90 days", "2 quarters", "1 year", "6 weeks"; at most
/// `MAX_RETENTION_YEARS` (see `RetentionUnit::max_amount`).
pub fn parse_retention(text: &str) -> Result<(u32, RetentionUnit), String> {
    let mut words = text.split_whitespace();
    let (Some(number), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "retention \"{text}\" is not a duration: write a number and a unit, like \"12 months\" or \"90 days\""
        ));
    };
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("retention \"{text}\" needs a whole number above 0"));
    }
    // Only digits: a number too long for u64 is simply too large.
    let amount = digits.parse::<u64>().unwrap_or(u64::MAX);
    if amount == 0 {
        return Err(format!("retention \"{text}\" needs a whole number above 0"));
    }
    let unit = match unit.trim_end_matches('s') {
        "day" => RetentionUnit::Days,
        "week" => RetentionUnit::Weeks,
        "month" => RetentionUnit::Months,
        "quarter" => RetentionUnit::Quarters,
        "year" => RetentionUnit::Years,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in retention \"{text}\": use days, weeks, months, quarters or years"
            ));
        }
    };
    match u32::try_from(amount) {
        Ok(amount) if amount <= unit.max_amount() => Ok((amount, unit)),
        _ => Err(format!(
            "retention \"{text}\" is over the limit of {MAX_RETENTION_YEARS} years ({} days, {} weeks, \
             {} months or {} quarters): to keep the data for good, leave retention out",
            RetentionUnit::Days.max_amount(),
            RetentionUnit::Weeks.max_amount(),
            RetentionUnit::Months.max_amount(),
            RetentionUnit::Quarters.max_amount(),
        )),
    }
}

fn default_naming(spacing: Spacing) -> &'static str {
    let interval = match spacing {
        Spacing::Ids(_) => return "{parent}_p{START}",
        Spacing::Fixed(fixed) if fixed.is_sub_day() => return "{parent}_p{YYYY}_{MM}_{DD}_{HH}{MI}",
        Spacing::Fixed(_) => return "{parent}_p{YYYY}_{MM}_{DD}",
        Spacing::Calendar(interval) => interval,
    };
    match interval {
        Interval::Daily => "{parent}_p{YYYY}_{MM}_{DD}",
        Interval::Weekly => "{parent}_p{IYYY}w{WW}",
        Interval::Monthly => "{parent}_p{YYYY}_{MM}",
        Interval::Quarterly => "{parent}_p{YYYY}q{Q}",
        Interval::Yearly => "{parent}_p{YYYY}",
    }
}

const PLACEHOLDERS: &[&str] = &[
    "parent", "YYYY", "MM", "DD", "HH", "MI", "Q", "IYYY", "WW", "START",
];

fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!(
                "naming template \"{template}\" has an unclosed '{{'"
            ));
        };
        let name = &rest[open + 1..open + close];
        if !PLACEHOLDERS.contains(&name) {
            let near = crate::suggest::did_you_mean(name, PLACEHOLDERS)
                .map(|near| format!(" (did you mean {{{near}}}?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown placeholder {{{name}}}{near} in naming template \"{template}\": use {{parent}}, {{YYYY}}, {{MM}}, {{DD}}, {{HH}}, {{MI}}, {{Q}}, {{IYYY}}, {{WW}}, {{START}} (ID ranges)"
            ));
        }
        found.push(name);
        rest = &rest[open + close + 1..];
    }
    Ok(found)
}

fn check_naming(template: &str, spacing: Spacing, parent: &str) -> Result<(), String> {
    let found = placeholders(template)?;
    let has = |name: &str| found.contains(&name);
    let interval = match spacing {
        Spacing::Ids(_) => return check_id_naming(template, &found, parent),
        Spacing::Fixed(fixed) => return check_fixed_naming(template, &found, fixed, parent),
        Spacing::Calendar(interval) if has("START") => {
            return Err(format!(
                "naming template \"{template}\" uses {{START}}, the first ID of a range, but the interval \
                 \"{interval}\" is a time interval: use {{YYYY}}, {{MM}}, {{DD}}…"
            ));
        }
        Spacing::Calendar(interval) => interval,
    };
    let distinct = match interval {
        Interval::Daily => has("YYYY") && has("MM") && has("DD"),
        Interval::Weekly => (has("IYYY") && has("WW")) || (has("YYYY") && has("MM") && has("DD")),
        Interval::Monthly => has("YYYY") && has("MM"),
        Interval::Quarterly => has("YYYY") && (has("Q") || has("MM")),
        Interval::Yearly => has("YYYY"),
    };
    if !distinct {
        let needed = match interval {
            Interval::Daily => "{YYYY}, {MM} and {DD}",
            Interval::Weekly => "{IYYY} and {WW} (ISO year and week)",
            Interval::Monthly => "{YYYY} and {MM}",
            Interval::Quarterly => "{YYYY} and {Q}",
            Interval::Yearly => "{YYYY}",
        };
        return Err(format!(
            "naming template \"{template}\" can give two {interval} partitions the same name: it needs {needed}"
        ));
    }
    let sample = expand(
        template,
        parent,
        NaiveDate::from_ymd_opt(2026, 12, 31)
            .expect("valid date")
            .and_time(NaiveTime::MIN),
    );
    check_name_length(&sample)
}

/// A fixed interval's name needs the day, and the hour and minute below a
/// day (the minute unless periods are whole hours).
fn check_fixed_naming(
    template: &str,
    found: &[&str],
    fixed: FixedInterval,
    parent: &str,
) -> Result<(), String> {
    let mut needed = vec!["YYYY", "MM", "DD"];
    if fixed.is_sub_day() {
        needed.push("HH");
        if !fixed.minutes.is_multiple_of(60) {
            needed.push("MI");
        }
    }
    if needed.iter().any(|p| !found.contains(p)) || found.contains(&"START") {
        let needed: Vec<String> = needed.iter().map(|p| format!("{{{p}}}")).collect();
        return Err(format!(
            "naming template \"{template}\" can give two {fixed} partitions the same name: it needs {}",
            needed.join(", ")
        ));
    }
    let sample = expand(
        template,
        parent,
        NaiveDate::from_ymd_opt(2026, 12, 31)
            .and_then(|d| d.and_hms_opt(23, 45, 0))
            .expect("valid date"),
    );
    check_name_length(&sample)
}

fn check_name_length(sample: &str) -> Result<(), String> {
    if sample.len() > MAX_IDENTIFIER_BYTES {
        return Err(format!(
            "partition names like \"{sample}\" are {} bytes, over PostgreSQL's {MAX_IDENTIFIER_BYTES}: set a shorter \
             naming template (e.g. without {{parent}}: \"ev_p{{YYYY}}_{{MM}}\"); a table Citus distributes needs \
             {} bytes more for its shards' suffix (_NNNNNN), so at most {} there",
            sample.len(),
            crate::db::ident::CITUS_SHARD_SUFFIX_BYTES,
            MAX_IDENTIFIER_BYTES - crate::db::ident::CITUS_SHARD_SUFFIX_BYTES
        ));
    }
    Ok(())
}

/// An ID range's name needs {START}, and only the ID placeholders; names
/// are checked with the widest padding (bigint's 19 digits), which any
/// integer key fits.
fn check_id_naming(template: &str, found: &[&str], parent: &str) -> Result<(), String> {
    if !found.contains(&"START") {
        return Err(format!(
            "naming template \"{template}\" can give two ID ranges the same name: it needs {{START}}, \
             the first ID of the range"
        ));
    }
    if let Some(time) = found.iter().find(|p| !matches!(**p, "START" | "parent")) {
        return Err(format!(
            "naming template \"{template}\" uses {{{time}}}, a date, but the interval is an ID step: \
             use {{parent}} and {{START}}"
        ));
    }
    // The longest name: a negative start, its sign and bigint's 19 digits.
    let sample = expand_id(
        template,
        parent,
        i64::MIN,
        calendar::IntegerType::Bigint.digits(),
    );
    if sample.len() > MAX_IDENTIFIER_BYTES {
        return Err(format!(
            "partition names like \"{sample}\" are {} bytes, over PostgreSQL's {MAX_IDENTIFIER_BYTES} \
             ({{START}} is padded to 19 digits so that names sort, plus a sign for negative starts): \
             set a shorter naming template, like \"ev_p{{START}}\"",
            sample.len()
        ));
    }
    Ok(())
}

/// {START} zero-padded to `digits` so that names sort (byte order) as the
/// ranges do. A negative start is "-" and 10^digits minus its magnitude:
/// "-" sorts before every digit, and the complement puts the lower range
/// first (-2000 → "-…998000" before -1000 → "-…999000").
fn expand_id(template: &str, parent: &str, start: i64, digits: usize) -> String {
    let number = if start < 0 {
        let power = u32::try_from(digits).map_or(u128::MAX, |d| 10u128.saturating_pow(d));
        let complement = power.saturating_sub(u128::from(start.unsigned_abs()));
        format!("-{complement:0digits$}")
    } else {
        format!("{start:0digits$}")
    };
    template
        .replace("{parent}", parent)
        .replace("{START}", &number)
}

fn expand(template: &str, parent: &str, start: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    let iso = start.iso_week();
    template
        .replace("{parent}", parent)
        .replace("{HH}", &format!("{:02}", start.hour()))
        .replace("{MI}", &format!("{:02}", start.minute()))
        .replace("{IYYY}", &format!("{:04}", iso.year()))
        .replace("{WW}", &format!("{:02}", iso.week()))
        .replace("{YYYY}", &format!("{:04}", start.year()))
        .replace("{MM}", &format!("{:02}", start.month()))
        .replace("{DD}", &format!("{:02}", start.day()))
        .replace("{Q}", &(start.month0() / 3 + 1).to_string())
}

/// "public.events" or "\"My Schema\".\"Events\"" into (schema, table), as
/// PostgreSQL resolves them: quoted parts verbatim, unquoted folded to lower case.
pub fn split_qualified(text: &str) -> Option<(String, String)> {
    match <[String; 2]>::try_from(split_name_path(text)?) {
        Ok([schema, table]) => Some((schema, table)),
        Err(_) => None,
    }
}

/// A dotted name into its parts, each as PostgreSQL stores it.
pub fn split_name_path(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' if chars.next_if_eq(&'"').is_some() => part.push('"'),
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != '.') {
                part.push(c.to_ascii_lowercase());
            }
            if part.is_empty() {
                return None;
            }
        }
        parts.push(part);
        match chars.next() {
            None => break,
            Some('.') => continue,
            Some(_) => return None,
        }
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_partition_names_sort_in_range_order_for_every_start() {
        for (integer, step) in [
            (calendar::IntegerType::Smallint, 1000),
            (calendar::IntegerType::Bigint, 1_000_000),
        ] {
            let starts: Vec<i64> = (-40..40).map(|k| k * step).chain([integer.min()]).collect();
            let mut by_range = starts.clone();
            by_range.sort();
            let mut by_name = starts;
            by_name.sort_by_key(|start| expand_id("t_p{START}", "t", *start, integer.digits()));
            assert_eq!(by_name, by_range, "{integer:?}");
        }
        assert_eq!(expand_id("t_p{START}", "t", -1000, 5), "t_p-99000");
        assert_eq!(expand_id("t_p{START}", "t", 4000, 5), "t_p04000");
    }

    #[test]
    fn a_float_or_boolean_interval_is_a_located_error_saying_what_to_write() {
        let message = problems("[[table]]\nname = \"public.t\"\ninterval = 1.5\n");
        assert!(
            message.contains(
                "partman.toml:3:12: interval = 1.5 is a float: write a whole number for ID ranges, like \
                 interval = 1000000, or a string for time, like interval = \"monthly\""
            ),
            "{message}"
        );
        let message = problems("[[table]]\nname = \"public.t\"\ninterval = true\n");
        assert!(
            message.contains("partman.toml:3:12: interval = true is a boolean"),
            "{message}"
        );
        assert!(!message.contains("untagged"), "{message}");
        let message =
            problems("[[table]]\nname = \"public.t\"\ninterval = 1000\nretention = 2.5\n");
        assert!(
            message.contains("partman.toml:4:13: retention = 2.5 is a float"),
            "{message}"
        );
    }

    #[test]
    fn a_retention_shorter_than_one_partition_says_what_to_keep() {
        let message = problems(
            "[[table]]\nname = \"public.t\"\ninterval = \"1 week\"\nretention = \"3 days\"\n",
        );
        assert!(
            message.contains(
                "partman.toml:4:13: retention \"3 days\" is shorter than one 1 week partition: a partition \
                 would expire before it is complete; keep at least one interval (e.g. \"1 week\")"
            ),
            "{message}"
        );
        let message = problems(
            "[[table]]\nname = \"public.t\"\ninterval = \"monthly\"\nretention = \"2 weeks\"\n",
        );
        assert!(message.contains("(e.g. \"1 month\")"), "{message}");
        let message = problems("[[table]]\nname = \"public.t\"\ninterval = 1000\nretention = 10\n");
        assert!(message.contains("like retention = 1000"), "{message}");
    }

    #[test]
    fn id_names_are_checked_at_their_longest_a_negative_start() {
        // 42 bytes of parent, "_p" and 19 digits make 63 bytes; a negative
        // start's sign makes 64.
        let parent = "a".repeat(42);
        let text = format!("[[table]]\nname = \"public.{parent}\"\ninterval = 1000\n");
        let message = problems(&text);
        assert!(
            message.contains("are 64 bytes, over PostgreSQL's 63"),
            "{message}"
        );
    }

    fn problems(text: &str) -> String {
        parse(Path::new("partman.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_minimal_entry_gets_the_defaults() {
        let policy = parse(
            Path::new("p.toml"),
            "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\n",
        )
        .unwrap();
        let table = &policy.tables[0];
        assert_eq!(
            (table.schema.as_str(), table.name.as_str()),
            ("public", "events")
        );
        assert_eq!(table.premake, DEFAULT_PREMAKE);
        assert_eq!(table.naming, "{parent}_p{YYYY}_{MM}");
        assert_eq!(
            table.partition_name(NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()),
            "events_p2026_03"
        );
        assert_eq!(table.time_zone, Tz::UTC);
        assert!(table.retention.is_none());
        assert_eq!(table.location.line, 1);
    }

    #[test]
    fn unknown_keys_point_at_the_key_with_a_suggestion() {
        let text =
            problems("[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\npremkae = 3\n");
        assert_eq!(
            text,
            "partman.toml:4:1: unknown key \"premkae\" (did you mean \"premake\"?)\n  |\n4 | premkae = 3\n  | ^"
        );
        let text = problems("[defaults]\ntimezone = \"UTC\"\n");
        assert!(
            text.starts_with(
                "partman.toml:2:1: unknown key \"timezone\" (did you mean \"time_zone\"?)"
            ),
            "{text}"
        );
    }

    #[test]
    fn semantic_problems_are_all_reported_with_their_place() {
        let text = problems(
            "[[table]]\nname = \"events\"\ninterval = \"montly\"\n\n\
             [[table]]\nname = \"public.audit\"\ninterval = \"quarterly\"\nretention = \"2 months\"\nnaming = \"{parent}_{YYYY}\"\n\n\
             [[table]]\nname = \"public.t\"\ninterval = \"daily\"\npremake = 0\ntime_zone = \"Europe/Berln\"\n",
        );
        let firsts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("partman.toml"))
            .collect();
        assert_eq!(
            firsts,
            [
                "partman.toml:2:8: table name \"events\" must be schema-qualified, like \"public.events\"",
                "partman.toml:3:12: unknown interval \"montly\" (did you mean \"monthly\"?): use one of daily, weekly, monthly, quarterly, yearly, hourly, \"N minutes\", \"N hours\", \"N days\" or \"N weeks\"",
                "partman.toml:8:13: retention \"2 months\" is shorter than one quarterly partition: a partition would expire before it is complete; keep at least one interval (e.g. \"1 quarter\")",
                "partman.toml:9:10: naming template \"{parent}_{YYYY}\" can give two quarterly partitions the same name: it needs {YYYY} and {Q}",
                "partman.toml:15:13: unknown time zone \"Europe/Berln\" (did you mean \"Europe/Berlin\"?): use an IANA name like \"UTC\" or \"Europe/Berlin\"",
                "partman.toml:14:11: premake = 0 leaves no partition ready for the next period: inserts at the turn of the period fail until maintenance runs; set premake to 1 or more, or default_partition = true",
            ]
        );
    }

    #[test]
    fn names_over_63_bytes_are_refused_with_the_example() {
        let long = "a".repeat(55);
        let text = problems(&format!(
            "[[table]]\nname = \"public.{long}\"\ninterval = \"monthly\"\n"
        ));
        assert!(
            text.contains(&format!(
                "partition names like \"{long}_p2026_12\" are 64 bytes, over PostgreSQL's 63"
            )),
            "{text}"
        );
    }

    #[test]
    fn names_over_63_bytes_say_what_a_distributed_table_needs() {
        let long = "a".repeat(55);
        let text = problems(&format!(
            "[[table]]\nname = \"public.{long}\"\ninterval = \"monthly\"\n"
        ));
        assert!(
            text.contains("a table Citus distributes needs 7 bytes more for its shards' suffix (_NNNNNN), so at most 56 there"),
            "{text}"
        );
    }

    #[test]
    fn columnar_after_is_an_age_shorter_than_the_retention() {
        let table =
            "[[table]]\nname = \"public.e\"\ninterval = \"monthly\"\nretention = \"12 months\"\n";
        let parsed = parse(
            Path::new("partman.toml"),
            &format!("{table}columnar_after = \"3 months\"\n"),
        )
        .unwrap();
        let after = parsed.tables[0].columnar_after.as_ref().unwrap();
        assert_eq!((after.amount, after.unit), (3, RetentionUnit::Months));
        assert_eq!(
            after.cutoff(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()),
            NaiveDate::from_ymd_opt(2026, 8, 22).unwrap()
        );
        let text = problems(&format!("{table}columnar_after = \"1 year\"\n"));
        assert!(
            text.contains("partman.toml:5:18: columnar_after = \"1 year\" is not shorter than retention = \"12 months\""),
            "{text}"
        );
        let text = problems(&format!("{table}columnar_after = \"3 moons\"\n"));
        assert!(
            text.contains("unknown unit \"moon\" in columnar_after"),
            "{text}"
        );
        let text = problems(
            "[[table]]\nname = \"public.o\"\ninterval = 1000\ncolumnar_after = \"3 months\"\n",
        );
        assert!(
            text.contains("columnar_after is an age, for tables partitioned by time"),
            "{text}"
        );
        let text = problems(&format!("{table}retention_action = \"columnar\"\n"));
        assert!(
            text.contains("write columnar_after = \"3 months\""),
            "{text}"
        );
    }

    #[test]
    fn retention_parses_and_cuts_off_by_calendar() {
        assert_eq!(
            parse_retention("12 months"),
            Ok((12, RetentionUnit::Months))
        );
        assert_eq!(parse_retention("1 year"), Ok((1, RetentionUnit::Years)));
        assert!(parse_retention("12").is_err());
        assert!(parse_retention("0 days").is_err());
        assert!(parse_retention("3 fortnights").is_err());
        let retention = Retention {
            amount: 1,
            unit: RetentionUnit::Months,
            action: RetentionAction::Drop,
            text: "1 month".into(),
        };
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(retention.cutoff(d(2026, 3, 31)), d(2026, 2, 28));
    }

    #[test]
    fn qualified_names_follow_postgresql_folding() {
        assert_eq!(
            split_qualified("public.Events"),
            Some(("public".into(), "events".into()))
        );
        assert_eq!(
            split_qualified("\"My Schema\".\"Ev\"\"ents\""),
            Some(("My Schema".into(), "Ev\"ents".into()))
        );
        assert_eq!(split_qualified("events"), None);
        assert_eq!(split_qualified("a.b.c"), None);
    }

    #[test]
    fn archive_needs_a_schema() {
        let text = problems(
            "[[table]]\nname = \"public.e\"\ninterval = \"monthly\"\nretention = \"3 months\"\nretention_action = \"archive\"\n",
        );
        assert!(
            text.contains("retention_action = \"archive\" needs retention_schema"),
            "{text}"
        );
    }

    #[test]
    fn numbers_over_their_bounds_are_refused_where_written() {
        let text = problems(
            "[[table]]\nname = \"public.e\"\ninterval = \"monthly\"\npremake = 1001\n\
             retention = \"1000000 years\"\nmax_drops_per_run = 1001\nlock_retries = 101\n\
             lock_timeout = \"2h\"\n",
        );
        let firsts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("partman.toml"))
            .collect();
        assert_eq!(
            firsts,
            [
                "partman.toml:8:16: lock_timeout = \"2h\" is over 1h: a statement waiting for a lock makes every later query on the table wait behind it; keep it short, like \"2s\"",
                "partman.toml:7:16: lock_retries = 101 is over the limit of 100: each retry waits for lock_timeout again, and the tables after this one wait with it",
                "partman.toml:4:11: premake = 1001 is over the limit of 1000: every run would check (and first create) that many partitions ahead",
                "partman.toml:6:21: max_drops_per_run = 1001 is over the limit of 1000: the cap is a guard against a retention set too short, and that many drops in one run is no guard",
                "partman.toml:5:13: retention \"1000000 years\" is over the limit of 1000 years (365000 days, 52000 weeks, 12000 months or 4000 quarters): to keep the data for good, leave retention out",
            ]
        );
        assert!(
            text.contains("5 | retention = \"1000000 years\"\n  |             ^"),
            "{text}"
        );
    }

    #[test]
    fn numbers_at_their_bounds_are_accepted() {
        let policy = parse(
            Path::new("p.toml"),
            "[[table]]\nname = \"public.e\"\ninterval = \"yearly\"\npremake = 1000\n\
             retention = \"1000 years\"\nmax_drops_per_run = 1000\nlock_retries = 100\n\
             lock_timeout = \"1h\"\n",
        )
        .unwrap();
        let table = &policy.tables[0];
        assert_eq!(
            (table.premake, table.max_drops_per_run, table.lock_retries),
            (1000, 1000, 100)
        );
        assert_eq!(table.lock_timeout, MAX_LOCK_TIMEOUT);
    }

    #[test]
    fn a_default_over_its_bound_is_reported_once() {
        let text = problems(
            "[defaults]\npremake = 4000000000\n\n[[table]]\nname = \"public.a\"\ninterval = \"daily\"\n\n\
             [[table]]\nname = \"public.b\"\ninterval = \"daily\"\n",
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("partman.toml"))
                .collect::<Vec<_>>(),
            [
                "partman.toml:2:11: premake = 4000000000 is over the limit of 1000: every run would check (and first create) that many partitions ahead"
            ]
        );
    }

    #[test]
    fn retention_amounts_are_bounded_per_unit() {
        for (text, expected) in [
            ("1000 years", Some((1000, RetentionUnit::Years))),
            ("4000 quarters", Some((4000, RetentionUnit::Quarters))),
            ("12000 months", Some((12000, RetentionUnit::Months))),
            ("52000 weeks", Some((52000, RetentionUnit::Weeks))),
            ("365000 days", Some((365000, RetentionUnit::Days))),
            ("+12 months", Some((12, RetentionUnit::Months))),
            ("1001 years", None),
            ("365001 days", None),
            ("4294967296 days", None),
            ("99999999999999999999999999 months", None),
        ] {
            assert_eq!(parse_retention(text).ok(), expected, "{text}");
        }
        assert!(
            parse_retention("99999999999999999999999999 months")
                .unwrap_err()
                .contains("over the limit of 1000 years")
        );
        for text in ["-1 years", "1.5 years", "twelve months", "+ months"] {
            assert!(
                parse_retention(text)
                    .unwrap_err()
                    .contains("needs a whole number above 0"),
                "{text}"
            );
        }
    }

    #[test]
    fn cutoffs_never_leave_the_calendar() {
        let retention = Retention {
            amount: u64::from(u32::MAX),
            unit: RetentionUnit::Years,
            action: RetentionAction::Drop,
            text: String::new(),
        };
        let today = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        assert_eq!(retention.checked_cutoff(today), None);
        assert_eq!(retention.cutoff(today), NaiveDate::MIN);
        let days = Retention {
            amount: u64::from(u32::MAX),
            unit: RetentionUnit::Days,
            ..retention
        };
        assert_eq!(days.cutoff(NaiveDate::MIN), NaiveDate::MIN);
    }

    #[test]
    fn plans_stay_within_the_years_of_partition_bounds() {
        let policy = parse(
            Path::new("p.toml"),
            "[[table]]\nname = \"public.e\"\ninterval = \"monthly\"\ntime_zone = \"Pacific/Kiritimati\"\n",
        )
        .unwrap();
        let table = &policy.tables[0];
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(table.check_plannable(at("2026-11-22T00:00:00Z")), Ok(()));
        assert_eq!(table.check_plannable(at("9999-08-31T00:00:00Z")), Ok(()));
        let message = table
            .check_plannable(at("9999-09-01T00:00:00Z"))
            .unwrap_err();
        assert_eq!(
            message,
            "public.e cannot be planned at 9999-09-01 00:00:00 UTC: its partitions (the monthly period \
             holding that time in Pacific/Kiritimati and premake = 3 more) would run from 9999-09-01 to \
             +10000-01-01, but pgm writes partition bounds only from 0001-01-01 to 9999-12-31; plan for \
             another time"
        );
        for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            assert!(table.check_plannable(now).is_err(), "{now}");
        }
        assert!(table.check_plannable(at("0000-12-31T23:59:59Z")).is_err());
    }

    #[test]
    fn integer_intervals_and_retentions_are_id_ranges() {
        let policy = parse(
            Path::new("p.toml"),
            "[[table]]\nname = \"public.orders\"\ninterval = 1000000\nretention = 50000000\n",
        )
        .unwrap();
        let table = &policy.tables[0];
        assert_eq!(table.spacing, Spacing::Ids(1_000_000));
        assert_eq!(table.naming, "{parent}_p{START}");
        assert_eq!(
            table.retention.as_ref().map(|r| (r.amount, r.unit)),
            Some((50_000_000, RetentionUnit::Ids))
        );
        assert_eq!(
            (table.interval_location.line, table.interval_location.column),
            (3, 12)
        );
        assert_eq!(table.id_partition_name(3_000_000, 10), "orders_p0003000000");
        assert_eq!(table.id_partition_name(-1000, 5), "orders_p-99000");
    }

    #[test]
    fn integer_and_time_settings_that_do_not_fit_say_what_to_write() {
        let text = problems(
            "[[table]]\nname = \"public.a\"\ninterval = 1000\nepoch = \"seconds\"\n\n\
             [[table]]\nname = \"public.b\"\ninterval = \"1000\"\n\n\
             [[table]]\nname = \"public.c\"\ninterval = -5\n\n\
             [[table]]\nname = \"public.d\"\ninterval = 1000\nretention = \"12 months\"\n\n\
             [[table]]\nname = \"public.e\"\ninterval = \"monthly\"\nretention = 5000\n\n\
             [[table]]\nname = \"public.f\"\ninterval = 1000\nretention = 999\n\n\
             [[table]]\nname = \"public.g\"\ninterval = 1000\nnaming = \"{parent}_{YYYY}\"\n\n\
             [[table]]\nname = \"public.h\"\ninterval = \"daily\"\nepoch = \"second\"\n",
        );
        let firsts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("partman.toml"))
            .collect();
        assert_eq!(
            firsts,
            [
                "partman.toml:3:12: interval = 1000 cuts the key into ID ranges, but epoch = \"seconds\" says it holds time: for IDs remove epoch; for time since the epoch write a time interval, like interval = \"daily\"",
                "partman.toml:8:12: interval = \"1000\" is a string: an ID step is a TOML integer, write interval = 1000",
                "partman.toml:12:12: interval = -5 is not an ID step: write a whole number above 0, like interval = 1000000",
                "partman.toml:17:13: retention = \"12 months\" is a duration, but the interval is an ID step: write how many IDs below the largest to keep, as a TOML integer, like retention = 50000000",
                "partman.toml:22:13: retention = 5000 is a number of IDs, but the interval is a time interval: write a duration, like retention = \"12 months\" (a number of IDs goes with an ID step, like interval = 1000000)",
                "partman.toml:27:13: retention = 999 is less than one ID range (interval = 1000): the partition being filled would expire; keep at least one range, like retention = 1000",
                "partman.toml:32:10: naming template \"{parent}_{YYYY}\" can give two ID ranges the same name: it needs {START}, the first ID of the range",
                "partman.toml:37:9: unknown epoch \"second\" (did you mean \"seconds\"?): use one of seconds, milliseconds, microseconds",
            ]
        );
    }

    #[test]
    fn fixed_intervals_parse_and_refuse_what_cannot_align() {
        let policy = parse(
            Path::new("p.toml"),
            "[[table]]\nname = \"public.a\"\ninterval = \"hourly\"\n\n\
             [[table]]\nname = \"public.b\"\ninterval = \"30 minutes\"\n\n\
             [[table]]\nname = \"public.c\"\ninterval = \"2 weeks\"\n",
        )
        .unwrap();
        let spacing: Vec<String> = policy
            .tables
            .iter()
            .map(|t| t.spacing.to_string())
            .collect();
        assert_eq!(spacing, ["hourly", "30 minutes", "2 weeks"]);
        let namings: Vec<&str> = policy.tables.iter().map(|t| t.naming.as_str()).collect();
        assert_eq!(
            namings,
            [
                "{parent}_p{YYYY}_{MM}_{DD}_{HH}{MI}",
                "{parent}_p{YYYY}_{MM}_{DD}_{HH}{MI}",
                "{parent}_p{YYYY}_{MM}_{DD}"
            ]
        );
        let start = NaiveDate::from_ymd_opt(2026, 3, 29)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .unwrap();
        assert_eq!(
            policy.tables[1].partition_name_at(start),
            "b_p2026_03_29_0230"
        );
        let text = problems(
            "[[table]]\nname = \"public.a\"\ninterval = \"10 minutes\"\n\n\
             [[table]]\nname = \"public.b\"\ninterval = \"7 hours\"\n\n\
             [[table]]\nname = \"public.c\"\ninterval = \"2 hours\"\nnaming = \"{parent}_{YYYY}_{MM}_{DD}\"\n",
        );
        let firsts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("partman.toml"))
            .collect();
        assert_eq!(
            firsts,
            [
                "partman.toml:3:12: interval \"10 minutes\" is shorter than 15 minutes: that many partitions slow every query planned on the table; use 15 minutes or more",
                "partman.toml:7:12: interval \"7 hours\" neither divides a day nor is whole days: periods start at local midnight, so use a divisor of 24 hours (like \"2 hours\" or \"30 minutes\") or whole days",
                "partman.toml:12:10: naming template \"{parent}_{YYYY}_{MM}_{DD}\" can give two 2 hours partitions the same name: it needs {YYYY}, {MM}, {DD}, {HH}",
            ]
        );
    }
}
