//! `pgm partitions plan`.

use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::{GlobalArgs, OutputFormat};
use crate::db::{self, ConnectionSettings};
use crate::exit::{Outcome, UsageError};
use crate::partition::{catalog, planner, policy, render};

/// "2027-01-01T00:00:00Z", "2027-01-01T00:00:00+02:00", or a date (midnight UTC).
pub fn parse_at(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    bail!(UsageError(format!(
        "--at \"{text}\" is not a time: use RFC 3339 (2027-01-01T00:00:00Z) or a date (2027-01-01)"
    )))
}

pub fn plan(
    global: &GlobalArgs,
    settings: impl FnOnce() -> Result<ConnectionSettings>,
    at: Option<&str>,
    format: OutputFormat,
    detailed_exitcode: bool,
) -> Result<Outcome> {
    let now = match at {
        Some(text) => parse_at(text)?,
        None => Utc::now(),
    };
    let policy =
        policy::load(&global.config).context(UsageError("invalid partition policy".into()))?;
    let mut client = db::connect(&settings()?)?;
    let names: Vec<(String, String)> = policy
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let snapshot = catalog::take(&mut client, &names).context("reading the catalog")?;
    let plan = planner::plan(&policy, &snapshot, now);
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Text => render::write_text(&mut out, &policy, &plan)?,
        OutputFormat::Sql => render::write_sql(&mut out, &policy, &plan)?,
        OutputFormat::Json => render::write_json(&mut out, &plan)?,
    }
    out.flush()?;
    if plan.has_errors() {
        let errors = plan
            .steps
            .iter()
            .filter(|s| s.action == planner::Action::Error)
            .count();
        bail!(
            "the plan has {errors} error entr{} (see above); the other tables planned normally",
            if errors == 1 { "y" } else { "ies" }
        );
    }
    Ok(if detailed_exitcode && plan.has_work() {
        Outcome::Pending
    } else {
        Outcome::Success
    })
}
