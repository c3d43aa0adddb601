//! `pgm migrate new`: the next migration file, numbered after the highest
//! version in the directory, with a header saying how pgm will run it.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use thiserror::Error;

use super::source::{self, SourceError, Version};
use super::sql::NO_TRANSACTION_HEADER;

/// The lowest version read as a timestamp (`YYYYMMDDHHMMSS`, 1900-01-01).
pub const FIRST_TIMESTAMP_VERSION: Version = 19_000_101_000_000;

#[derive(Debug, Error)]
pub enum NewError {
    #[error(
        "\"{name}\" is not a migration name: use letters, digits and underscores only (it becomes \
         V{{version}}__{{name}}.sql), e.g. pgm migrate new {example}"
    )]
    BadName { name: String, example: String },
    #[error("the highest version in the directory is {highest}: there is no next 64-bit version")]
    NoNextVersion { highest: Version },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("creating the migrations directory {}: {source}", path.display())]
    CreateDirectory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists: pgm migrate new never overwrites a file", path.display())]
    Exists { path: PathBuf },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl NewError {
    /// Errors of the input (the name, the flags, the files already there)
    /// rather than of the file system.
    pub fn is_input_error(&self) -> bool {
        !matches!(
            self,
            NewError::CreateDirectory { .. } | NewError::Write { .. }
        )
    }
}

/// What `pgm migrate new` was asked for.
#[derive(Debug, Clone)]
pub struct NewMigration<'a> {
    pub name: &'a str,
    /// Write the header that makes the file run statement by statement.
    pub no_transaction: bool,
    /// Number by the clock (`YYYYMMDDHHMMSS`, UTC) rather than in sequence.
    pub timestamp: bool,
    pub now: DateTime<Utc>,
}

/// Writes the next migration into `dir` (created when missing) and returns
/// its path, `dir` joined with the file name.
pub fn create(dir: &Path, new: &NewMigration<'_>) -> Result<PathBuf, NewError> {
    if !source::is_valid_name(new.name) {
        return Err(NewError::BadName {
            name: new.name.to_owned(),
            example: example_name(new.name),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| NewError::CreateDirectory {
        path: dir.to_path_buf(),
        source,
    })?;
    let existing = source::load(dir)?;
    let highest = existing.iter().map(|migration| migration.version).max();
    let version = next_version(highest, new.timestamp, new.now)?;
    let file_name = format!("V{version}__{}.sql", new.name);
    let path = dir.join(&file_name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => NewError::Exists { path: path.clone() },
            _ => NewError::Write {
                path: path.clone(),
                source,
            },
        })?;
    file.write_all(header(&file_name, new.no_transaction).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| NewError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// The version after `highest`: the next whole number, or with `timestamp`
/// (or once the directory holds timestamp versions) the time `now` as
/// `YYYYMMDDHHMMSS`, raised above `highest` when the clock is not past it.
pub fn next_version(
    highest: Option<Version>,
    timestamp: bool,
    now: DateTime<Utc>,
) -> Result<Version, NewError> {
    let after = match highest {
        Some(highest) => highest
            .checked_add(1)
            .ok_or(NewError::NoNextVersion { highest })?,
        None => 1,
    };
    if timestamp || highest.is_some_and(is_timestamp) {
        let clock: Version = now
            .format("%Y%m%d%H%M%S")
            .to_string()
            .parse()
            .expect("a formatted date is digits");
        Ok(clock.max(after))
    } else {
        Ok(after)
    }
}

fn is_timestamp(version: Version) -> bool {
    version >= FIRST_TIMESTAMP_VERSION
}

/// A name close to `name` that is valid, for the error's example.
fn example_name(name: &str) -> String {
    let mut example = String::new();
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            example.extend(c.to_lowercase());
        } else if !example.is_empty() && !example.ends_with('_') {
            example.push('_');
        }
    }
    let example = example.trim_end_matches('_');
    if example.is_empty() {
        "add_orders".to_owned()
    } else {
        example.to_owned()
    }
}

/// The comment a new migration starts with. For a no-transaction file its
/// first line is the header the classifier honours.
pub fn header(file_name: &str, no_transaction: bool) -> String {
    if no_transaction {
        format!(
            "{NO_TRANSACTION_HEADER}\n\
             -- {file_name}: a migration, applied by `pgm migrate` in version order.\n\
             --\n\
             -- The first line makes pgm run it statement by statement, outside any transaction:\n\
             -- for statements PostgreSQL refuses inside one, such as CREATE INDEX CONCURRENTLY,\n\
             -- DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY, ALTER TABLE … DETACH PARTITION …\n\
             -- CONCURRENTLY and VACUUM. Each statement commits on its own, under lock_timeout but\n\
             -- without statement_timeout, and is journaled: an interrupted run resumes after the\n\
             -- last completed statement (an INVALID index a concurrent build left is dropped and\n\
             -- built again). Nothing is atomic here, so keep other changes in migrations of their\n\
             -- own. The history row is written after the last statement; once it is, do not edit\n\
             -- this file (its checksum is recorded): write a new migration instead.\n\
             \n"
        )
    } else {
        format!(
            "-- {file_name}: a migration, applied by `pgm migrate` in version order.\n\
             --\n\
             -- It runs in one transaction together with its history row: every statement is\n\
             -- applied, or none is. pgm owns the transaction and sets lock_timeout and\n\
             -- statement_timeout, so write no BEGIN or COMMIT. Statements PostgreSQL refuses in a\n\
             -- transaction (CREATE INDEX CONCURRENTLY…) go in a migration of their own:\n\
             -- pgm migrate new NAME --no-transaction. Once applied, do not edit this file (its\n\
             -- checksum is recorded): write a new migration instead.\n\
             \n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::sql::{self, Mode};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    const NOON: &str = "2027-03-04T12:30:45Z";

    #[test]
    fn sequential_numbers_follow_the_highest_version() {
        assert_eq!(next_version(None, false, at(NOON)).unwrap(), 1);
        assert_eq!(next_version(Some(5), false, at(NOON)).unwrap(), 6);
        assert!(matches!(
            next_version(Some(Version::MAX), false, at(NOON)),
            Err(NewError::NoNextVersion { .. })
        ));
    }

    fn next(highest: Option<Version>, timestamp: bool, now: DateTime<Utc>) -> Version {
        next_version(highest, timestamp, now).unwrap()
    }

    #[test]
    fn timestamps_are_the_clock_and_always_higher_than_the_highest() {
        assert_eq!(next(None, true, at(NOON)), 20270304123045);
        assert_eq!(next(Some(7), true, at(NOON)), 20270304123045);
        // The clock at or behind the newest file (another branch, a skewed clock).
        assert_eq!(next(Some(20270304123045), true, at(NOON)), 20270304123046);
        assert_eq!(next(Some(20280101000000), true, at(NOON)), 20280101000001);
        // A directory numbered by timestamps stays so without the flag.
        assert_eq!(next(Some(20260101000000), false, at(NOON)), 20270304123045);
        assert_eq!(next(Some(18991231), false, at(NOON)), 18991232);
    }

    #[test]
    fn examples_of_valid_names() {
        assert_eq!(example_name("Add orders-table"), "add_orders_table");
        assert_eq!(example_name("--"), "add_orders");
        assert_eq!(example_name("a.b"), "a_b");
    }

    #[test]
    fn headers_are_classified_as_asked() {
        let path = Path::new("V1__x.sql");
        let body = "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n";
        let forced = format!("{}{body}", header("V1__x.sql", true));
        let examined = sql::examine(path, forced);
        assert!(examined.problems.is_empty());
        let file = examined.file;
        assert_eq!(file.mode, Mode::NoTransaction);
        assert!(file.mode_reason.contains("pgm:no-transaction"));

        let plain = format!("{}CREATE TABLE t (a int);\n", header("V1__x.sql", false));
        let examined = sql::examine(path, plain);
        assert!(examined.problems.is_empty());
        assert_eq!(examined.file.mode, Mode::Transaction);
        let header_only = sql::examine(path, header("V1__x.sql", false).to_string());
        assert!(header_only.problems.is_empty());
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file would go: nothing the loader counts as a migration.
        std::fs::create_dir(dir.path().join("V1__x.sql")).unwrap();
        let new = NewMigration {
            name: "x",
            no_transaction: false,
            timestamp: false,
            now: at(NOON),
        };
        let error = create(dir.path(), &new).unwrap_err();
        assert!(matches!(error, NewError::Exists { .. }), "{error}");
        assert!(error.is_input_error());
    }
}
