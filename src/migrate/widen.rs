//! `pgm migrate widen-history`: makes the history table and pgm's own
//! tables hold 64-bit versions, so that `YYYYMMDDHHMMSS` versions fit.
//! refinery hashes the version at its width into every checksum, so each
//! applied row gets the checksum refinery's 64-bit build (`int8-versions`)
//! computes for the same file: from the file when it is unchanged, else
//! from the text pgm recorded when it applied it. All in one transaction,
//! under `lock_timeout`: every row widened and re-checksummed, or none.

use thiserror::Error;

use crate::duration::Timeout;

use super::history::HistoryRead;
use super::plan::{Param, Role, Step};
use super::source::{self, SourceMigration, Version, VersionWidth};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WidenError {
    #[error(
        "version {version} was started outside a transaction and interrupted: finish it with \
         pgm migrate before widening (its journal holds the checksum it started with)"
    )]
    PartlyApplied { version: Version },
    #[error(
        "the 64-bit checksum of {} applied migration(s) cannot be computed, since neither its file \
         nor a text pgm recorded matches the checksum it was applied with: {}; restore the files as \
         they were applied (or record the edits with pgm migrate repair), then widen",
        unknown.len(),
        unknown.join(", ")
    )]
    UnknownTexts { unknown: Vec<String> },
}

/// The widening: its steps, one transaction, and what they change.
#[derive(Debug, Default)]
pub struct Widening {
    pub steps: Vec<Step>,
    pub tables: usize,
    pub checksums: usize,
}

/// The steps that widen the narrow tables, in one transaction; none when
/// every table already holds 64-bit versions.
pub fn plan(
    read: &HistoryRead<'_>,
    sources: &[SourceMigration],
    lock_timeout: Timeout,
) -> Result<Widening, WidenError> {
    let tables = read.tables;
    if tables.narrow.is_empty() {
        return Ok(Widening::default());
    }
    if let Some((version, _)) = read.progress.first() {
        return Err(WidenError::PartlyApplied { version: *version });
    }
    let rechecksummed = match tables.width {
        VersionWidth::Int4 => new_checksums(read, sources)?,
        VersionWidth::Int8 => Vec::new(),
    };
    let mut steps = vec![
        Step::new(Role::Begin, "BEGIN"),
        Step::new(
            Role::Setting,
            format!("SET LOCAL lock_timeout = '{}'", lock_timeout.setting()),
        ),
    ];
    for table in &tables.narrow {
        steps.push(Step::new(
            Role::Setup,
            format!(
                "ALTER TABLE {} ALTER COLUMN version TYPE int8",
                tables.qualified(table)
            ),
        ));
    }
    let mut rechecksummed_tables = vec![tables.history()];
    if read.texts_table {
        rechecksummed_tables.push(tables.texts());
    }
    let checksums = rechecksummed.len();
    for (version, old, new) in rechecksummed {
        for table in &rechecksummed_tables {
            steps.push(checksum_update(table, version, old, new));
        }
    }
    steps.push(Step::new(Role::Commit, "COMMIT"));
    Ok(Widening {
        steps,
        tables: tables.narrow.len(),
        checksums,
    })
}

/// (version, 32-bit checksum, 64-bit checksum) of every applied row.
fn new_checksums(
    read: &HistoryRead<'_>,
    sources: &[SourceMigration],
) -> Result<Vec<(Version, u64, u64)>, WidenError> {
    let mut found = Vec::new();
    let mut unknown = Vec::new();
    for row in read.applied {
        let from_file = sources
            .iter()
            .find(|s| {
                s.version == row.version
                    && s.name == row.name
                    && s.checksum(VersionWidth::Int4) == row.checksum
            })
            .map(|s| s.checksum(VersionWidth::Int8));
        let from_text = || {
            read.texts
                .iter()
                .find(|(version, checksum, _)| *version == row.version && *checksum == row.checksum)
                .map(|(_, _, text)| {
                    source::checksum(&row.name, row.version, text, VersionWidth::Int8)
                })
        };
        match from_file.or_else(from_text) {
            Some(new) => found.push((row.version, row.checksum, new)),
            None => unknown.push(format!("V{}__{}", row.version, row.name)),
        }
    }
    match unknown.is_empty() {
        true => Ok(found),
        false => Err(WidenError::UnknownTexts { unknown }),
    }
}

/// A row of the history (or of pgm's copy of the texts) takes the new
/// checksum; the old one in the condition, so a row is never changed twice.
fn checksum_update(table: &str, version: Version, old: u64, new: u64) -> Step {
    Step::with(
        Role::History,
        format!("UPDATE {table} SET checksum = $3 WHERE version = $1 AND checksum = $2"),
        vec![
            Param::Version(version),
            Param::Text(old.to_string()),
            Param::Text(new.to_string()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::fixtures::*;
    use crate::migrate::history::{Applied, HISTORY_TABLE, JOURNAL_TABLE, Tables};

    fn narrow_tables() -> Tables {
        Tables {
            schema: "public".to_owned(),
            width: VersionWidth::Int4,
            narrow: vec![HISTORY_TABLE, JOURNAL_TABLE],
        }
    }

    fn read<'a>(tables: &'a Tables, applied: &'a [Applied]) -> HistoryRead<'a> {
        HistoryRead {
            tables,
            applied,
            progress: &[],
            texts: &[],
            texts_table: true,
        }
    }

    #[test]
    fn every_row_gets_its_64_bit_checksum_in_one_transaction() {
        let one = migration("V1__a.sql", "CREATE TABLE a (id int);");
        let tables = narrow_tables();
        let applied = [history_row(&one)];
        let widening = plan(
            &read(&tables, &applied),
            std::slice::from_ref(&one),
            Timeout::from_millis(2000),
        )
        .unwrap();
        assert_eq!((widening.tables, widening.checksums), (2, 1));
        let steps = widening.steps;
        let sql: Vec<String> = steps.iter().map(Step::inlined).collect();
        let (old, new) = (
            one.checksum(VersionWidth::Int4),
            one.checksum(VersionWidth::Int8),
        );
        assert_eq!(
            sql,
            [
                "BEGIN".to_owned(),
                "SET LOCAL lock_timeout = '2s'".to_owned(),
                "ALTER TABLE \"public\".\"refinery_schema_history\" ALTER COLUMN version TYPE int8"
                    .to_owned(),
                "ALTER TABLE \"public\".\"pgm_migration_journal\" ALTER COLUMN version TYPE int8"
                    .to_owned(),
                format!(
                    "UPDATE \"public\".\"refinery_schema_history\" SET checksum = '{new}' WHERE version = 1 AND checksum = '{old}'"
                ),
                format!(
                    "UPDATE \"public\".\"pgm_migration_texts\" SET checksum = '{new}' WHERE version = 1 AND checksum = '{old}'"
                ),
                "COMMIT".to_owned(),
            ]
        );
    }

    #[test]
    fn an_edited_file_is_rechecksummed_from_the_applied_text() {
        let applied_text = "CREATE TABLE a (id int);";
        let original = migration("V1__a.sql", applied_text);
        let edited = migration("V1__a.sql", "CREATE TABLE a (id bigint);");
        let tables = narrow_tables();
        let applied = [history_row(&original)];
        let texts = [(
            1,
            original.checksum(VersionWidth::Int4),
            applied_text.to_owned(),
        )];
        let read = HistoryRead {
            texts: &texts,
            ..read(&tables, &applied)
        };
        let steps = plan(
            &read,
            std::slice::from_ref(&edited),
            Timeout::from_millis(2000),
        )
        .unwrap()
        .steps;
        let expected = original.checksum(VersionWidth::Int8).to_string();
        assert!(
            steps
                .iter()
                .any(|step| step.params.contains(&Param::Text(expected.clone())))
        );

        let error = plan(
            &HistoryRead { texts: &[], ..read },
            &[edited],
            Timeout::from_millis(2000),
        )
        .unwrap_err();
        assert_eq!(
            error,
            WidenError::UnknownTexts {
                unknown: vec!["V1__a".to_owned()]
            }
        );
    }

    #[test]
    fn wide_tables_need_nothing_and_an_interrupted_run_is_finished_first() {
        let wide = Tables {
            width: VersionWidth::Int8,
            narrow: Vec::new(),
            ..narrow_tables()
        };
        assert!(
            plan(&read(&wide, &[]), &[], Timeout::from_millis(1))
                .unwrap()
                .steps
                .is_empty()
        );
        let one = migration("V1__a.sql", TWO_CONCURRENT_INDEXES);
        let tables = narrow_tables();
        let progress = [journal(&one, 1)];
        let read = HistoryRead {
            progress: &progress,
            ..read(&tables, &[])
        };
        assert_eq!(
            plan(&read, &[one], Timeout::from_millis(1)).unwrap_err(),
            WidenError::PartlyApplied { version: 1 }
        );
    }
}
