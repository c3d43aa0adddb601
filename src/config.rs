//! The resolved configuration of one invocation: built once from the
//! command line and the environment (clap reads both), with every value
//! parsed and checked, so that commands and the demo call the core with
//! plain values and never see the command-line parser.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::duration::Timeout;
use crate::migrate::source::Version;
use crate::partition::calendar;
use crate::pg_version::PgVersion;

#[derive(Debug, Clone)]
pub struct Config {
    /// `--database-url` or `DATABASE_URL`; the rest of the connection
    /// settings are resolved with libpq's rules when a command connects.
    pub database_url: Option<String>,
    /// The policy file (`--config`, `PGM_CONFIG`).
    pub policy: PathBuf,
    /// Whether the policy path is the default one, rather than asked for.
    pub policy_is_default: bool,
    pub migrations: PathBuf,
    pub command: Command,
    /// `--fleet`: run on every target of the policy's `[fleet]` section.
    pub fleet: Option<FleetRun>,
    /// The tenant schema this command runs in, for a fleet's schema targets:
    /// the policy's `{schema}` placeholder becomes it.
    pub schema: Option<String>,
}

/// How a fleet run goes through its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetRun {
    /// Targets at once.
    pub jobs: usize,
    /// Stop starting targets after the first failure.
    pub fail_fast: bool,
    /// Run this many targets first, and stop if any fails.
    pub canary: usize,
}

/// Targets at once by default: what a 2-core runner and a shared database
/// server take without either being the bottleneck of the other's work
/// (each target is mostly waiting on its server).
pub const DEFAULT_FLEET_JOBS: usize = 4;

#[derive(Debug, Clone)]
pub enum Command {
    Ping {
        format: StatusFormat,
    },
    Migrate(Migrate),
    MigrateStatus {
        exit_code: bool,
        format: StatusFormat,
    },
    Baseline {
        version: Version,
        lock_wait: Duration,
    },
    Repair {
        files: Vec<PathBuf>,
        force: bool,
        lock_wait: Duration,
    },
    WidenHistory {
        dry_run: bool,
        lock_timeout: Timeout,
        lock_retries: u32,
        lock_wait: Duration,
    },
    MigrateNew(MigrateNew),
    MigrateWait {
        target: Option<Version>,
        timeout: Duration,
        interval: Duration,
    },
    PartitionsPlan {
        at: Option<DateTime<Utc>>,
        format: PlanFormat,
        detailed_exitcode: bool,
    },
    PartitionsMaintain {
        dry_run: bool,
        at: Option<DateTime<Utc>>,
        tables: Vec<String>,
        format: StatusFormat,
    },
    PartitionsStatus {
        format: StatusFormat,
        at: Option<DateTime<Utc>>,
    },
    PartitionsCheck {
        format: CheckFormat,
        at: Option<DateTime<Utc>>,
    },
    PartitionsConvert(Convert),
    PartitionsImport(Import),
    Demo {
        keep: bool,
        at: Option<DateTime<Utc>>,
    },
    Init,
    Lint(Lint),
    /// Output decided by the command line alone (completions, the man page).
    Print(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Migrate {
    pub dry_run: bool,
    pub target: Option<Version>,
    pub format: PlanFormat,
    pub allow_out_of_order: bool,
    pub maintain: bool,
    pub locks: MigrateLocks,
}

/// `pgm partitions import-pg-partman`.
#[derive(Debug, Clone)]
pub struct Import {
    /// pg_partman's schema; the extension's when unset.
    pub schema: Option<String>,
    /// The zone pg_partman's maintenance ran in; the database's when unset.
    pub time_zone: Option<chrono_tz::Tz>,
    /// Where the policy is written; standard output when unset.
    pub output: Option<std::path::PathBuf>,
    /// Run the statement that turns pg_partman's maintenance off.
    pub disable_pg_partman: bool,
}

/// `pgm partitions convert`.
#[derive(Debug, Clone)]
pub struct Convert {
    /// As written: resolved against the policy by the command.
    pub table: String,
    /// The last phase to run; every phase built so far when unset.
    pub until: Option<crate::partition::convert::Phase>,
    pub dry_run: bool,
    pub at: Option<DateTime<Utc>>,
    pub batch_size: u32,
    pub pause: Duration,
    pub unswap: bool,
    pub drop_old: bool,
    /// The old table's name after the swap.
    pub keep_as: Option<String>,
    pub abort: bool,
}

/// `pgm migrate new`.
#[derive(Debug, Clone)]
pub struct MigrateNew {
    pub name: String,
    pub no_transaction: bool,
    pub timestamp: bool,
    /// The clock for timestamp versions; now when unset.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy)]
pub struct MigrateLocks {
    pub lock_timeout: Timeout,
    pub lock_retries: u32,
    pub statement_timeout: Timeout,
    pub snapshot_wait: Timeout,
    pub lock_wait: Duration,
}

impl Default for MigrateLocks {
    fn default() -> Self {
        MigrateLocks {
            lock_timeout: Timeout(Duration::from_secs(2)),
            lock_retries: 5,
            statement_timeout: Timeout(Duration::from_secs(300)),
            snapshot_wait: Timeout(Duration::from_secs(30 * 60)),
            lock_wait: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Lint {
    pub files: Vec<PathBuf>,
    pub pending: bool,
    pub pg_version: Option<PgVersion>,
    pub format: LintFormat,
    pub list_rules: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    Sql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckFormat {
    Text,
    Json,
    Prometheus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LintFormat {
    Text,
    Json,
    Github,
}

/// An instant for `--at`: RFC 3339 ("2027-01-01T00:00:00Z",
/// "2027-01-01T00:00:00+02:00"), or a date, meaning midnight UTC, within
/// the years pgm writes partition bounds for.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    let instant = if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        instant.with_timezone(&Utc)
    } else if let Some(midnight) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
    {
        midnight.and_utc()
    } else {
        return Err(format!(
            "\"{text}\" is not a time: use RFC 3339 (2027-01-01T00:00:00Z) or a date (2027-01-01)"
        ));
    };
    let (first, last) = (calendar::FIRST_BOUND_DAY, calendar::LAST_BOUND_DAY);
    if !(first..=last).contains(&instant.date_naive()) {
        return Err(format!(
            "\"{text}\" is outside the years pgm plans for: give a time from {first} to {last} (UTC)"
        ));
    }
    Ok(instant)
}

#[cfg(test)]
mod tests {
    use super::parse_instant;

    #[test]
    fn instants_and_dates() {
        assert_eq!(
            parse_instant("2027-01-01T02:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2027-01-01").unwrap().to_rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
        assert!(parse_instant("tomorrow").unwrap_err().contains("RFC 3339"));
        assert!(
            parse_instant("0000-06-01T00:00:00Z")
                .unwrap_err()
                .contains("outside the years pgm plans for")
        );
    }
}
