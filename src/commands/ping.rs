//! `pgm ping`: connect and describe the server, for deploy scripts that wait
//! for a database and for checking which settings pgm really uses.

use std::io::Write;

use anyhow::{Context, Result};

use crate::config::StatusFormat;
use crate::db::{self, ConnectionSettings};
use crate::exit::Outcome;

pub fn run(settings: &ConnectionSettings, format: StatusFormat) -> Result<Outcome> {
    let mut client = db::connect(settings)?;
    let mut out = std::io::stdout().lock();
    match format {
        StatusFormat::Text => {
            let server =
                db::server::describe(&mut client).context("reading the server's description")?;
            let role = if server.in_recovery {
                "read-only replica (in recovery)"
            } else {
                "primary"
            };
            writeln!(
                out,
                "connected: {settings}\nserver: PostgreSQL {}\nuser: {}\ndatabase: {}\n\
                 role: {role}\ntls: {}\napplication_name: {}",
                server.version,
                server.user,
                server.database,
                server.tls,
                server.application_name
            )?;
        }
        StatusFormat::Json => {
            let session =
                db::server::session_facts(&mut client).context("reading the session's facts")?;
            let report = serde_json::json!({
                "connected": settings.to_string(),
                "session": session,
            });
            writeln!(out, "{report}")?;
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}
