//! `pgm ping`: connect and describe the server, for deploy scripts that wait
//! for a database and for checking which settings pgm really uses.

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
    println!("connected: {settings}");
    println!("server: PostgreSQL {version}");
    println!("user: {user}");
    println!("database: {database}");
    println!(
        "role: {}",
        if in_recovery {
            "read-only replica (in recovery)"
        } else {
            "primary"
        }
    );
    println!("tls: {tls}");
    println!("application_name: {application_name}");
    Ok(Outcome::Success)
}
