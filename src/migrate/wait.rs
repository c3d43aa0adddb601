//! `pgm migrate wait`: polls the history table until every migration of the
//! directory (or every one up to a version) is applied, for init containers
//! and readiness gates. One session, opened again when it drops; one short
//! query per poll, outside any transaction, taking no lock but the
//! AccessShareLock every read takes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::{Client, SimpleQueryMessage};
use thiserror::Error;

use crate::db::{self, ConnectError, ConnectionSettings, quote_ident, quote_literal};
use crate::duration::Timeout;

use super::history::{HISTORY_SCHEMA_SETTING, HISTORY_TABLE};
use super::source::{SourceMigration, Version, VersionWidth};

/// How many migrations a progress line or an error names before "and N more".
const LISTED: usize = 10;

#[derive(Debug, Clone, Copy)]
pub struct WaitOptions {
    /// Wait only for the migrations up to this version (inclusive).
    pub target: Option<Version>,
    pub timeout: Duration,
    pub interval: Duration,
}

/// Every awaited migration is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// How many migrations were awaited.
    pub count: usize,
}

#[derive(Debug, Error)]
pub enum WaitError {
    #[error(
        "{file} was applied with other contents (checksum {applied} in {HISTORY_TABLE}, {on_disk} \
         for the file): waiting cannot change that; deploy the files the database was migrated \
         with, or run pgm migrate status to see what differs"
    )]
    Divergent {
        file: String,
        applied: String,
        on_disk: u64,
    },
    #[error("{}: still not applied: {}", timed_out(*.timeout), describe(.missing))]
    TimedOut {
        timeout: Duration,
        missing: Vec<String>,
    },
    #[error("{} without reaching the database: {source}", timed_out(*.timeout))]
    Unreachable {
        timeout: Duration,
        source: ConnectError,
    },
    #[error(transparent)]
    Connect(ConnectError),
    #[error("reading {HISTORY_TABLE}: {0}")]
    Query(postgres::Error),
}

/// Waits until the database holds every migration of `sources` (up to the
/// target) with the checksum of its file. A migration applied with other
/// contents ends the wait at once; so does a server that refuses the login.
/// A server that cannot be reached, or drops the session, is tried again
/// until the timeout.
pub fn wait(
    settings: &ConnectionSettings,
    sources: &[SourceMigration],
    options: &WaitOptions,
) -> Result<Ready, WaitError> {
    let deadline = Instant::now() + options.timeout;
    let awaited: Vec<&SourceMigration> = sources
        .iter()
        .filter(|source| options.target.is_none_or(|target| source.version <= target))
        .collect();
    let mut poller = Poller::default();
    let mut announced: Option<Vec<String>> = None;
    loop {
        let missing = match poller.poll(settings, deadline) {
            Ok(applied) => Some(missing(&awaited, &applied)?),
            Err(PollError::Unreachable(error)) if Instant::now() >= deadline => {
                return Err(WaitError::Unreachable {
                    timeout: options.timeout,
                    source: error,
                });
            }
            // Gave up before the deadline: the server refused the login.
            Err(PollError::Unreachable(error)) => return Err(WaitError::Connect(error)),
            Err(PollError::Lost(error)) => {
                tracing::warn!("lost the connection to the database ({error}); connecting again");
                None
            }
            Err(PollError::Query(error)) => return Err(WaitError::Query(error)),
        };
        match missing {
            Some(missing) if missing.is_empty() => {
                return Ok(Ready {
                    count: awaited.len(),
                });
            }
            Some(missing) => {
                if announced.as_ref() != Some(&missing) {
                    tracing::info!("waiting for {}", describe(&missing));
                }
                announced = Some(missing);
            }
            None => {}
        }
        let now = Instant::now();
        if now >= deadline {
            let missing = announced.unwrap_or_else(|| awaited.iter().map(|s| label(s)).collect());
            return Err(WaitError::TimedOut {
                timeout: options.timeout,
                missing,
            });
        }
        std::thread::sleep(options.interval.min(deadline - now));
    }
}

/// The awaited migrations the history does not hold, in version order; an
/// error for one it holds with another checksum.
fn missing(awaited: &[&SourceMigration], applied: &Applied) -> Result<Vec<String>, WaitError> {
    let mut missing = Vec::new();
    for source in awaited {
        let on_disk = source.checksum(applied.width);
        match applied.checksums.get(&source.version) {
            None => missing.push(label(source)),
            Some(checksum) if checksum.trim().parse::<u64>() == Ok(on_disk) => {}
            Some(checksum) => {
                return Err(WaitError::Divergent {
                    file: source.file_name(),
                    applied: checksum.clone(),
                    on_disk,
                });
            }
        }
    }
    Ok(missing)
}

/// `V7__add_orders`: the file name without `.sql`.
fn label(source: &SourceMigration) -> String {
    let name = source.file_name();
    name.strip_suffix(".sql").unwrap_or(&name).to_owned()
}

fn timed_out(timeout: Duration) -> String {
    if timeout.is_zero() {
        "looked once (--timeout 0)".to_owned()
    } else {
        format!("timed out after {}", Timeout(timeout))
    }
}

/// "3 migrations: V7__a, V8__b, V9__c", the list cut after a few.
fn describe(missing: &[String]) -> String {
    let count = match missing.len() {
        1 => "1 migration".to_owned(),
        n => format!("{n} migrations"),
    };
    let mut list = missing
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if missing.len() > LISTED {
        list.push_str(&format!(" and {} more", missing.len() - LISTED));
    }
    format!("{count}: {list}")
}

enum PollError {
    /// No session could be opened (what connect retries was retried until the deadline).
    Unreachable(ConnectError),
    /// The session broke (a restart, a failover): open another at the next poll.
    Lost(postgres::Error),
    Query(postgres::Error),
}

/// The session, kept between polls, and the history table once seen (as
/// SQL text).
#[derive(Default)]
struct Poller {
    client: Option<Client>,
    history: Option<String>,
}

impl Poller {
    /// The applied versions and their checksums; empty while the history
    /// table does not exist.
    fn poll(
        &mut self,
        settings: &ConnectionSettings,
        deadline: Instant,
    ) -> Result<Applied, PollError> {
        if self.client.is_none() {
            let mut settings = settings.clone();
            // connect retries a server that is down or starting up until
            // its timeout: make that the deadline of the wait.
            settings.connect_timeout = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            self.client = Some(db::connect(&settings).map_err(PollError::Unreachable)?);
            self.history = None;
        }
        let client = self.client.as_mut().expect("connected above");
        let result = read(client, &mut self.history);
        if let Err(PollError::Lost(_)) = &result {
            self.client = None;
        }
        result
    }
}

/// The history table's rows: each version's checksum, and the width of
/// the versions, which decides the checksums.
#[derive(Debug, Default)]
struct Applied {
    checksums: HashMap<Version, String>,
    width: VersionWidth,
}

/// One query in the steady state: the history table's versions (until the
/// table exists, whether it does).
fn read(client: &mut Client, history: &mut Option<String>) -> Result<Applied, PollError> {
    if history.is_none() {
        // In the schema the session pins the history to (a fleet's tenant),
        // else where the search path finds it, as `pgm migrate` does.
        let table = quote_literal(&quote_ident(HISTORY_TABLE));
        let exists = format!(
            "SELECT to_regclass(coalesce(quote_ident(nullif(current_setting({}, true), '')) || '.', '') || {table})::text",
            quote_literal(HISTORY_SCHEMA_SETTING)
        );
        let rows = client.simple_query(&exists).map_err(classify)?;
        *history = first_values(&rows).next().flatten().map(str::to_owned);
    }
    let Some(table) = history.as_deref() else {
        return Ok(Applied::default());
    };
    let sql = format!(
        "SELECT version, coalesce(checksum, ''), pg_typeof(version) = 'bigint'::regtype FROM {table}"
    );
    match client.simple_query(&sql) {
        Ok(rows) => {
            let mut applied = Applied::default();
            for row in rows.iter().filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            }) {
                if row.get(2) == Some("t") {
                    applied.width = VersionWidth::Int8;
                }
                if let Some(version) = row.get(0).and_then(|v| v.parse().ok()) {
                    let checksum = row.get(1).unwrap_or_default().to_owned();
                    applied.checksums.insert(version, checksum);
                }
            }
            Ok(applied)
        }
        // Dropped since (or the search path changed): nothing applied.
        Err(error) if error.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {
            *history = None;
            Ok(Applied::default())
        }
        Err(error) => Err(classify(error)),
    }
}

fn first_values(rows: &[SimpleQueryMessage]) -> impl Iterator<Item = Option<&str>> {
    rows.iter().filter_map(|message| match message {
        SimpleQueryMessage::Row(row) => Some(row.get(0)),
        _ => None,
    })
}

/// A broken session (closed, or ended by a shutdown or a failover) is
/// opened again; any other error ends the wait.
fn classify(error: postgres::Error) -> PollError {
    let session_ended = match error.code() {
        None => true,
        Some(code) => {
            let code = code.code();
            // 08: connection exception; 57: operator intervention (shutdown, crash, cancel).
            code.starts_with("08") || code.starts_with("57")
        }
    };
    if error.is_closed() || session_ended {
        PollError::Lost(error)
    } else {
        PollError::Query(error)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn source(name: &str, text: &str) -> SourceMigration {
        SourceMigration::from_text(PathBuf::from(name), text.to_owned()).unwrap()
    }

    #[test]
    fn what_is_missing_and_what_diverged() {
        let (one, two) = (
            source("V1__a.sql", "SELECT 1;"),
            source("V2__b.sql", "SELECT 2;"),
        );
        let awaited = [&one, &two];
        let mut applied = Applied::default();
        assert_eq!(missing(&awaited, &applied).unwrap(), ["V1__a", "V2__b"]);
        let checksums = &mut applied.checksums;
        checksums.insert(1, one.checksum(VersionWidth::Int4).to_string());
        // Applied versions without a file (a newer deploy) are not waited for.
        checksums.insert(9, "1".to_owned());
        assert_eq!(missing(&awaited, &applied).unwrap(), ["V2__b"]);
        applied.checksums.insert(2, "12345".to_owned());
        let error = missing(&awaited, &applied).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("V2__b.sql was applied with other contents (checksum 12345"),
            "{error}"
        );
    }

    #[test]
    fn long_lists_are_cut() {
        assert_eq!(describe(&["V1__a".to_owned()]), "1 migration: V1__a");
        let many: Vec<String> = (1..=12).map(|n| format!("V{n}__m")).collect();
        assert_eq!(
            describe(&many),
            "12 migrations: V1__m, V2__m, V3__m, V4__m, V5__m, V6__m, V7__m, V8__m, V9__m, V10__m and 2 more"
        );
    }
}
