//! `pgm partitions plan`.

use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::cli::{CheckFormat, GlobalArgs, OutputFormat, StatusFormat};
use crate::db::{self, ConnectionSettings};
use crate::exit::{Outcome, UsageError};
use crate::partition::{calendar, catalog, executor, health, planner, policy, render};

/// "2027-01-01T00:00:00Z", "2027-01-01T00:00:00+02:00", or a date (midnight
/// UTC), within the years pgm writes partition bounds for.
pub fn parse_at(text: &str) -> Result<DateTime<Utc>> {
    let instant = if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        instant.with_timezone(&Utc)
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        date.and_time(NaiveTime::MIN).and_utc()
    } else {
        bail!(UsageError(format!(
            "--at \"{text}\" is not a time: use RFC 3339 (2027-01-01T00:00:00Z) or a date (2027-01-01)"
        )))
    };
    let (first, last) = (calendar::FIRST_BOUND_DAY, calendar::LAST_BOUND_DAY);
    if !(first..=last).contains(&instant.date_naive()) {
        bail!(UsageError(format!(
            "--at \"{text}\" is outside the years pgm plans for: give a time from {first} to {last} (UTC)"
        )));
    }
    Ok(instant)
}

fn now_or(at: Option<&str>) -> Result<DateTime<Utc>> {
    at.map_or_else(|| Ok(Utc::now()), parse_at)
}

fn load_policy(global: &GlobalArgs) -> Result<policy::Policy> {
    policy::load(&global.config).context(UsageError("invalid partition policy".into()))
}

/// The catalog of every table of the policy and the plan for all of them.
fn snapshot_and_plan(
    client: &mut postgres::Client,
    policy: &policy::Policy,
    now: DateTime<Utc>,
) -> Result<planner::Plan> {
    let names: Vec<(String, String)> = policy
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let snapshot = catalog::take(client, &names).context("reading the catalog")?;
    Ok(planner::plan(policy, &snapshot, now))
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
    let plan = snapshot_and_plan(&mut client, &policy, now)?;
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

/// The advisory lock of one managed table: an overlapping run skips the
/// table instead of doing its steps twice.
fn table_lock_key(qualified_parent: &str) -> i64 {
    let hash = format!("pgm partitions {qualified_parent}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    hash as i64
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
    let plan = snapshot_and_plan(&mut client, &policy, now)?;
    if dry_run {
        let mut out = std::io::stdout().lock();
        render::write_text(&mut out, &policy, &plan)?;
        out.flush()?;
        return Ok(Outcome::Success);
    }
    let in_recovery: bool = client.query_one("SELECT pg_is_in_recovery()", &[])?.get(0);
    if in_recovery {
        writeln!(
            std::io::stdout().lock(),
            "this server is a read-only replica (in recovery): nothing to maintain here; run maintenance against the primary"
        )?;
        return Ok(Outcome::Success);
    }
    let mut reports = Vec::new();
    for table in &policy.tables {
        let name = table.qualified_name();
        let mut report = executor::TableReport::new(&name);
        if !plan.steps.iter().any(|s| s.table == name) {
            reports.push(report);
            continue;
        }
        let key = table_lock_key(&name);
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])?
            .get(0);
        if !locked {
            report.skipped = Some("another pgm partitions maintain is working on it".into());
            tracing::warn!("{name}: skipped: another pgm partitions maintain holds its lock");
            reports.push(report);
            continue;
        }
        // Plan again under the lock: the first plan may predate another run's work.
        let result = catalog::take(&mut client, &[(table.schema.clone(), table.name.clone())]).map(
            |fresh| {
                let parent = fresh.parents.first().and_then(Option::as_ref);
                planner::plan_table(table, parent, &fresh, now)
            },
        );
        match result {
            Ok(steps) => executor::Executor {
                client: &mut client,
                settings: &settings,
            }
            .run(table, &steps, &mut report),
            Err(error) => report
                .failures
                .push(format!("reading the catalog: {error}")),
        }
        let _ = client.batch_execute("RESET lock_timeout");
        client.query_one("SELECT pg_advisory_unlock($1)", &[&key])?;
        reports.push(report);
    }
    let mut out = std::io::stdout().lock();
    write_summary(&mut out, &reports)?;
    out.flush()?;
    let failed = reports.iter().filter(|r| !r.failures.is_empty()).count();
    if failed > 0 {
        bail!("{failed} table(s) failed (see above); the others were maintained");
    }
    Ok(Outcome::Success)
}

fn write_summary(out: &mut dyn Write, reports: &[executor::TableReport]) -> std::io::Result<()> {
    let mut totals = executor::TableReport::default();
    for report in reports {
        let mut parts = Vec::new();
        for (count, word) in [
            (report.created, "created"),
            (report.detached, "detached"),
            (report.dropped, "dropped"),
            (report.archived, "archived"),
            (report.indexes_built, "indexes built"),
            (report.indexes_attached, "indexes attached"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {word}"));
            }
        }
        if report.moved_rows > 0 {
            parts.push(format!(
                "{} rows moved from the default partition",
                report.moved_rows
            ));
        }
        let line = match (&report.skipped, parts.is_empty()) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, true) if report.failures.is_empty() && report.deferred.is_empty() => {
                "nothing to do".to_owned()
            }
            (None, _) => parts.join(", "),
        };
        writeln!(out, "{}: {line}", report.table)?;
        for deferred in &report.deferred {
            writeln!(out, "  deferred: {deferred}")?;
        }
        for warning in &report.warnings {
            writeln!(out, "  warning: {warning}")?;
        }
        for failure in &report.failures {
            writeln!(out, "  FAILED: {failure}")?;
        }
        totals.created += report.created;
        totals.detached += report.detached;
        totals.dropped += report.dropped;
        totals.archived += report.archived;
        totals.indexes_built += report.indexes_built;
        totals.indexes_attached += report.indexes_attached;
    }
    let failed = reports.iter().filter(|r| !r.failures.is_empty()).count();
    let skipped = reports.iter().filter(|r| r.skipped.is_some()).count();
    let deferred: usize = reports.iter().map(|r| r.deferred.len()).sum();
    writeln!(
        out,
        "summary: {} created, {} detached, {} dropped, {} archived, {} indexes built, {} failed, {} skipped, {} deferred",
        totals.created,
        totals.detached,
        totals.dropped,
        totals.archived,
        totals.indexes_built,
        failed,
        skipped,
        deferred
    )
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
    let mut default_rows = Vec::new();
    for parent in snapshot.parents.iter().flatten() {
        if let Some(default) = parent
            .partitions
            .iter()
            .find(|p| p.bound == catalog::Bound::Default)
        {
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM {}.{})",
                db::quote_ident(&default.schema),
                db::quote_ident(&default.name)
            );
            let has_rows: bool = client
                .query_one(&sql, &[])
                .context("probing a default partition")?
                .get(0);
            default_rows.push((parent.oid, has_rows));
        }
    }
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
