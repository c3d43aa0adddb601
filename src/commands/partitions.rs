//! `pgm partitions plan`.

use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::{CheckFormat, GlobalArgs, OutputFormat, StatusFormat};
use crate::db::{self, ConnectionSettings};
use crate::exit::{Outcome, UsageError};
use crate::partition::maintain::{self, Maintenance};
use crate::partition::{catalog, health, planner, policy, render};

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

fn now_or(at: Option<&str>) -> Result<DateTime<Utc>> {
    at.map_or_else(|| Ok(Utc::now()), parse_at)
}

fn load_policy(global: &GlobalArgs) -> Result<policy::Policy> {
    policy::load(&global.config).context(UsageError("invalid partition policy".into()))
}

fn plan_now(
    client: &mut postgres::Client,
    policy: &policy::Policy,
    now: DateTime<Utc>,
) -> Result<planner::Plan> {
    maintain::plan_now(client, policy, now).context("reading the catalog")
}

pub fn plan(
    global: &GlobalArgs,
    settings: impl FnOnce() -> Result<ConnectionSettings>,
    at: Option<&str>,
    format: OutputFormat,
    detailed_exitcode: bool,
) -> Result<Outcome> {
    let now = now_or(at)?;
    let policy = load_policy(global)?;
    let mut client = db::connect(&settings()?)?;
    let plan = plan_now(&mut client, &policy, now)?;
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Text => render::write_text(&mut out, &policy, &plan)?,
        OutputFormat::Sql => render::write_sql(&mut out, &policy, &plan)?,
        OutputFormat::Json => render::write_json(&mut out, &plan)?,
    }
    out.flush()?;
    let errors = plan.failures().count();
    if errors > 0 {
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

pub fn maintain(
    global: &GlobalArgs,
    settings: impl FnOnce() -> Result<ConnectionSettings>,
    dry_run: bool,
    at: Option<&str>,
    only: &[String],
) -> Result<Outcome> {
    let now = now_or(at)?;
    let mut policy = load_policy(global)?;
    if !only.is_empty() {
        let known: Vec<String> = policy.tables.iter().map(|t| t.qualified_name()).collect();
        for name in only {
            if !known.contains(name) {
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                let near = crate::suggest::did_you_mean(name, &names)
                    .map(|n| format!(" (did you mean {n}?)"))
                    .unwrap_or_default();
                bail!(UsageError(format!(
                    "--table {name} is not in {}{near}",
                    global.config.display()
                )));
            }
        }
        policy.tables.retain(|t| only.contains(&t.qualified_name()));
    }
    let settings = settings()?;
    let mut client = db::connect(&settings)?;
    let plan = plan_now(&mut client, &policy, now)?;
    let mut out = std::io::stdout().lock();
    if dry_run {
        render::write_text(&mut out, &policy, &plan)?;
        out.flush()?;
        return Ok(Outcome::Success);
    }
    let maintenance = maintain::run(&mut client, &settings, &policy, &plan)?;
    match &maintenance {
        Maintenance::Replica => writeln!(
            out,
            "this server is a read-only replica (in recovery): nothing to maintain here; run maintenance against the primary"
        )?,
        Maintenance::Tables(reports) => render::write_summary(&mut out, reports)?,
    }
    out.flush()?;
    let failed = maintenance.failed_tables();
    if failed > 0 {
        bail!("{failed} table(s) failed (see above); the others were maintained");
    }
    Ok(Outcome::Success)
}

/// The health of every table: one catalog snapshot, and one EXISTS query per
/// default partition (an exact answer; the estimate can be stale).
fn assess(
    global: &GlobalArgs,
    settings: impl FnOnce() -> Result<ConnectionSettings>,
    at: Option<&str>,
) -> Result<Vec<health::TableHealth>> {
    let now = now_or(at)?;
    let policy = load_policy(global)?;
    let mut client = db::connect(&settings()?)?;
    let names: Vec<(String, String)> = policy
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let snapshot = catalog::take(&mut client, &names).context("reading the catalog")?;
    let default_rows = catalog::default_partitions_with_rows(&mut client, &snapshot)
        .context("probing the default partitions")?;
    Ok(health::assess(&policy, &snapshot, now, &default_rows))
}

pub fn status(
    global: &GlobalArgs,
    settings: impl FnOnce() -> Result<ConnectionSettings>,
    format: StatusFormat,
    at: Option<&str>,
) -> Result<Outcome> {
    let tables = assess(global, settings, at)?;
    let mut out = std::io::stdout().lock();
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &tables)?;
            writeln!(out)?;
        }
        StatusFormat::Text => render::write_status(&mut out, &tables)?,
    }
    out.flush()?;
    Ok(Outcome::Success)
}

pub fn check(
    global: &GlobalArgs,
    settings: impl FnOnce() -> Result<ConnectionSettings>,
    format: CheckFormat,
    at: Option<&str>,
) -> Result<Outcome> {
    let tables = assess(global, settings, at)?;
    let mut out = std::io::stdout().lock();
    match format {
        CheckFormat::Text => {
            for table in &tables {
                for problem in &table.problems {
                    writeln!(out, "{}: {}", table.table, problem.message)?;
                }
            }
        }
        CheckFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &tables)?;
            writeln!(out)?;
        }
        CheckFormat::Prometheus => render::write_prometheus(&mut out, &tables)?,
    }
    out.flush()?;
    let problems: usize = tables.iter().map(|t| t.problems.len()).sum();
    if problems > 0 {
        bail!("{problems} problem(s) found");
    }
    Ok(Outcome::Success)
}
