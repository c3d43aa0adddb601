//! Migrations and database states built in memory, for the planner's and
//! the renderers' unit tests.

use std::path::Path;

use crate::duration::Timeout;

use super::history::{Applied, Progress, Tables};
use super::plan::{DatabaseState, ExistingIndex, Options};
use super::source::{self, SourceMigration, Version, VersionWidth};

/// `migrations/{file}` holding `text`, parsed as for a run.
pub fn migration(file: &str, text: &str) -> SourceMigration {
    let mut sources =
        [
            SourceMigration::from_text(Path::new("migrations").join(file), text.to_owned())
                .unwrap(),
        ];
    source::parse_pending(&mut sources, &[]).unwrap();
    let [source] = sources;
    source
}

/// A database where nothing was ever applied and pgm's tables exist.
pub fn fresh_database() -> DatabaseState {
    DatabaseState {
        tables: Tables {
            schema: "public".to_owned(),
            width: VersionWidth::Int4,
            narrow: Vec::new(),
        },
        setup: Vec::new(),
        applied: Vec::new(),
        progress: Vec::new(),
        indexes: Vec::new(),
        partitioned: Vec::new(),
    }
}

/// The history row `source` got when it was applied, as it is now.
pub fn history_row(source: &SourceMigration) -> Applied {
    Applied {
        version: source.version,
        name: source.name.clone(),
        applied_on: "2026-01-05T10:00:00.000000Z".to_owned(),
        checksum: source.checksum(VersionWidth::Int4),
        duration_ms: Some(12),
    }
}

/// The journal of an interrupted run of `source` that finished `completed` statements.
pub fn journal(source: &SourceMigration, completed: usize) -> (Version, Progress) {
    (
        source.version,
        Progress {
            checksum: source.checksum(VersionWidth::Int4),
            completed,
        },
    )
}

pub fn index(name: &str, valid: bool) -> ExistingIndex {
    ExistingIndex {
        schema: "public".to_owned(),
        name: name.to_owned(),
        valid,
    }
}

pub fn options() -> Options {
    Options {
        lock_timeout: Timeout::from_millis(2_000),
        statement_timeout: Timeout::from_millis(300_000),
        snapshot_wait: Timeout::from_millis(1_800_000),
        target: None,
        allow_out_of_order: false,
    }
}

/// A file that must run outside a transaction: a table's index built concurrently, then another.
pub const TWO_CONCURRENT_INDEXES: &str = "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_x_idx ON a (x);\n\
     CREATE INDEX CONCURRENTLY IF NOT EXISTS a_y_idx ON a (y);\n";
