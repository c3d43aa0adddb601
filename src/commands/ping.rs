//! `pgm ping`: connect and describe the server, for deploy scripts that wait
//! for a database and for checking which settings pgm really uses: which
//! host of a list answered, which service file was read.

use std::io::Write;

use anyhow::{Context, Result};

use crate::config::StatusFormat;
use crate::db::{self, ConnectionSettings, TargetSessionAttrs};
use crate::exit::Outcome;

pub fn run(settings: &ConnectionSettings, format: StatusFormat) -> Result<Outcome> {
    let settings = settings
        .clone()
        .with_default_target(TargetSessionAttrs::Any);
    let mut connected = db::open(&settings)?;
    let reached = settings.pinned_to(&connected.endpoint);
    let mut out = std::io::stdout().lock();
    match format {
        StatusFormat::Text => {
            let server = db::server::describe(&mut connected.client)
                .context("reading the server's description")?;
            let role = if server.in_recovery {
                "read-only replica (in recovery)"
            } else {
                "primary"
            };
            writeln!(out, "connected: {reached}")?;
            if let Some(service) = &settings.service {
                writeln!(
                    out,
                    "service: {} ({})",
                    service.name,
                    service.file.display()
                )?;
            }
            for failure in &connected.passed_over {
                writeln!(out, "passed over: {}: {}", failure.endpoint, failure.reason)?;
            }
            writeln!(
                out,
                "server: PostgreSQL {}\nuser: {}\ndatabase: {}\n\
                 role: {role}\ntls: {}\napplication_name: {}",
                server.version, server.user, server.database, server.tls, server.application_name
            )?;
        }
        StatusFormat::Json => {
            let session = db::server::session_facts(&mut connected.client)
                .context("reading the session's facts")?;
            let passed_over: Vec<_> = connected
                .passed_over
                .iter()
                .map(|failure| serde_json::json!({"endpoint": failure.endpoint, "reason": failure.reason}))
                .collect();
            let report = serde_json::json!({
                "connected": reached.to_string(),
                "endpoint": connected.endpoint.to_string(),
                "service": settings.service.as_ref().map(|service| serde_json::json!({
                    "name": service.name,
                    "file": service.file.display().to_string(),
                })),
                "passed_over": passed_over,
                "session": session,
            });
            writeln!(out, "{report}")?;
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}
