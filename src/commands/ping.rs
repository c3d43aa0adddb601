//! `pgm ping`: connect and describe the server, for deploy scripts that wait
//! for a database and for checking which settings pgm really uses.

use std::io::Write;

use anyhow::{Context, Result};

use crate::db::{self, ConnectionSettings};
use crate::exit::Outcome;

pub fn run(settings: &ConnectionSettings) -> Result<Outcome> {
    let mut client = db::connect(settings)?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_user::text, current_database()::text, \
                    pg_is_in_recovery(), \
                    coalesce((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl), 'off'), \
                    current_setting('application_name')",
            &[],
        )
        .context("reading the server's description")?;
    let (version, user, database): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    let in_recovery: bool = row.get(3);
    let tls: String = row.get(4);
    let application_name: String = row.get(5);
    let role = if in_recovery {
        "read-only replica (in recovery)"
    } else {
        "primary"
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "connected: {settings}\nserver: PostgreSQL {version}\nuser: {user}\ndatabase: {database}\n\
         role: {role}\ntls: {tls}\napplication_name: {application_name}"
    )?;
    out.flush()?;
    Ok(Outcome::Success)
}
