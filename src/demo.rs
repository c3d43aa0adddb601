//! The database side of `pgm demo`: a database on a throwaway cluster, and
//! some traffic for the story to show.

use chrono::{DateTime, Utc};
use postgres::Client;

use crate::db::{self, ConnectError, quote_ident};
use crate::sandbox::Sandbox;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{what}: {source}")]
    Query {
        what: &'static str,
        source: postgres::Error,
    },
}

fn query(what: &'static str) -> impl FnOnce(postgres::Error) -> DemoError {
    move |source| DemoError::Query { what, source }
}

/// Creates `name` with the archive schema the bundled policy moves old
/// partitions to, and connects to it.
pub fn create_database(sandbox: &Sandbox, name: &str) -> Result<Client, DemoError> {
    let mut admin = db::connect(&sandbox.settings("postgres"))?;
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
        .map_err(query("creating the demo database"))?;
    let mut client = db::connect(&sandbox.settings(name))?;
    client
        .batch_execute("CREATE SCHEMA archive")
        .map_err(query("creating the archive schema"))?;
    Ok(client)
}

/// `count` events spread over the hundred days from the start of `now`'s
/// month (UTC), then ANALYZE so that status shows row estimates.
pub fn insert_events(client: &mut Client, now: DateTime<Utc>, count: i32) -> Result<(), DemoError> {
    client
        .execute(
            "INSERT INTO events (event_type, created_at) \
             SELECT (ARRAY['signup','login','purchase'])[1 + g % 3], \
                    date_trunc('month', $1::text::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' \
                      + (g % 100) * interval '1 day' \
             FROM generate_series(1, $2) g",
            &[&now.to_rfc3339(), &count],
        )
        .map_err(query("inserting events"))?;
    client
        .batch_execute("ANALYZE events")
        .map_err(query("analyzing events"))
}
