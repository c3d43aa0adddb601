//! `pgm partitions plan`.

use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use super::{Done, Output};
use crate::config::{self, CheckFormat, Config, PlanFormat, StatusFormat};
use crate::db::pooler::PoolerError;
use crate::db::{self, ConnectionSettings, TargetSessionAttrs};
use crate::exit::{Outcome, UsageError};
use crate::partition::convert::{self, ConvertError};
use crate::partition::executor::TableReport;
use crate::partition::maintain::{self, MaintainError, Maintenance};
use crate::partition::{catalog, health, planner, policy, render};

fn now_or(at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    at.unwrap_or_else(Utc::now)
}

/// The policy, for the tenant schema of a fleet's schema target when the
/// command runs in one.
fn load_policy(config: &Config) -> Result<policy::Policy> {
    let policy =
        policy::load(&config.policy).context(UsageError("invalid partition policy".into()))?;
    match &config.schema {
        Some(schema) => Ok(policy.for_schema(schema)),
        None if policy.uses_schema_placeholder() => bail!(UsageError(format!(
            "{} names tables in {}, which only a fleet run over tenant schemas fills in:              run with --fleet and [fleet] schemas = \"SELECT …\", or write the schema",
            config.policy.display(),
            policy::SCHEMA_PLACEHOLDER
        ))),
        None => Ok(policy),
    }
}

fn plan_now(
    client: &mut postgres::Client,
    policy: &policy::Policy,
    now: DateTime<Utc>,
) -> Result<planner::Plan> {
    maintain::plan_now(client, policy, now).context("reading the catalog")
}

pub(crate) fn plan(
    config: &Config,
    settings: &ConnectionSettings,
    at: Option<DateTime<Utc>>,
    format: PlanFormat,
    detailed_exitcode: bool,
    output: &mut Output<'_>,
) -> Result<Outcome> {
    let now = now_or(at);
    let policy = load_policy(config)?;
    let mut client = db::connect(settings)?;
    let plan = plan_now(&mut client, &policy, now)?;
    let out = &mut *output.out;
    match format {
        PlanFormat::Text => render::write_text(out, &policy, &plan)?,
        PlanFormat::Sql => render::write_sql(out, &policy, &plan)?,
        PlanFormat::Json => render::write_json(out, &plan)?,
    }
    out.flush()?;
    let steps = plan.steps().count();
    output.done.summary = match steps {
        0 => "nothing to do".to_owned(),
        n => format!("{n} step(s) planned"),
    };
    output.done.detail.insert("steps".into(), steps.into());
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

/// `pgm partitions maintain`, as asked.
pub(crate) struct MaintainRequest<'a> {
    pub dry_run: bool,
    pub at: Option<DateTime<Utc>>,
    /// Only these tables (all when empty).
    pub only: &'a [String],
    pub format: StatusFormat,
}

pub(crate) fn maintain(
    config: &Config,
    settings: &ConnectionSettings,
    request: &MaintainRequest<'_>,
    output: &mut Output<'_>,
) -> Result<Outcome> {
    let (dry_run, only) = (request.dry_run, request.only);
    let now = now_or(request.at);
    let mut policy = load_policy(config)?;
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
                    config.policy.display()
                )));
            }
        }
        policy.tables.retain(|t| only.contains(&t.qualified_name()));
    }
    let target = if dry_run {
        TargetSessionAttrs::Any
    } else {
        TargetSessionAttrs::ReadWrite
    };
    let (mut client, settings) = match db::open_for(settings, target) {
        Ok(session) => session,
        // Cron runs maintain on every node; the replicas have nothing to do.
        Err(error) if error.only_standbys() => return report_replica(output),
        Err(error) => return Err(error.into()),
    };
    let settings = &settings;
    let plan = plan_now(&mut client, &policy, now)?;
    if dry_run {
        render::write_text(output.out, &policy, &plan)?;
        output.out.flush()?;
        output.done.summary = format!("{} step(s) planned", plan.steps().count());
        return Ok(Outcome::Success);
    }
    let maintenance = maintain::run(&mut client, settings, &policy, &plan).map_err(|error| {
        match error {
            // Where the connection leads: a configuration problem.
            MaintainError::Pooled(PoolerError::TransactionPooling(_)) => {
                UsageError(error.to_string()).into()
            }
            other => anyhow::Error::new(other),
        }
    })?;
    match &maintenance {
        Maintenance::Replica => return report_replica(output),
        Maintenance::Tables(reports) => {
            output.done = maintained_done(reports);
            match request.format {
                StatusFormat::Text => render::write_summary(output.out, reports)?,
                StatusFormat::Json => write_maintained_json(output.out, reports)?,
            }
        }
    }
    output.out.flush()?;
    let failed = maintenance.failed_tables();
    if failed > 0 {
        bail!("{failed} table(s) failed (see above); the others were maintained");
    }
    Ok(Outcome::Success)
}

/// Per table what maintenance did, for scripts.
fn write_maintained_json(out: &mut dyn Write, reports: &[TableReport]) -> Result<()> {
    let tables: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "table": r.table,
                "created": r.created,
                "attached": r.attached,
                "moved_rows": r.moved_rows,
                "detached": r.detached,
                "dropped": r.dropped,
                "archived": r.archived,
                "indexes_built": r.indexes_built,
                "indexes_attached": r.indexes_attached,
                "deferred": r.deferred,
                "warnings": r.warnings,
                "failures": r.failures,
                "skipped": r.skipped,
            })
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "tables": tables }))?;
    writeln!(out)?;
    Ok(())
}

/// What maintenance did, for a fleet's report.
fn maintained_done(reports: &[TableReport]) -> Done {
    let total = |count: fn(&TableReport) -> usize| reports.iter().map(count).sum::<usize>();
    let (created, detached, dropped) = (
        total(|r| r.created),
        total(|r| r.detached),
        total(|r| r.dropped),
    );
    let (archived, indexes) = (total(|r| r.archived), total(|r| r.indexes_built));
    let mut detail = serde_json::Map::new();
    for (key, count) in [
        ("created", created),
        ("detached", detached),
        ("dropped", dropped),
        ("archived", archived),
        ("indexes_built", indexes),
    ] {
        detail.insert(key.into(), count.into());
    }
    Done {
        summary: format!(
            "{} table(s): {created} created, {detached} detached, {dropped} dropped, \
             {archived} archived, {indexes} indexes built",
            reports.len()
        ),
        detail,
    }
}

fn report_replica(output: &mut Output<'_>) -> Result<Outcome> {
    writeln!(
        output.out,
        "this server is a read-only replica (in recovery): nothing to maintain here; run maintenance against the primary"
    )?;
    output.out.flush()?;
    output.done.summary = "a read-only replica: nothing to maintain".to_owned();
    Ok(Outcome::Success)
}

/// The health of every table: one catalog snapshot, and one EXISTS query per
/// default partition (an exact answer; the estimate can be stale).
fn assess(
    config: &Config,
    settings: &ConnectionSettings,
    at: Option<DateTime<Utc>>,
) -> Result<Vec<health::TableHealth>> {
    let now = now_or(at);
    let policy = load_policy(config)?;
    let mut client = db::connect(settings)?;
    let mut snapshot =
        catalog::take_tables(&mut client, &policy.tables).context("reading the catalog")?;
    let default_rows = catalog::default_partitions_with_rows(&mut client, &mut snapshot)
        .context("probing the default partitions")?;
    Ok(health::assess(&policy, &snapshot, now, &default_rows))
}

pub(crate) fn status(
    config: &Config,
    settings: &ConnectionSettings,
    format: StatusFormat,
    at: Option<DateTime<Utc>>,
    output: &mut Output<'_>,
) -> Result<Outcome> {
    let tables = assess(config, settings, at)?;
    let out = &mut *output.out;
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &tables)?;
            writeln!(out)?;
        }
        StatusFormat::Text => render::write_status(out, &tables)?,
    }
    out.flush()?;
    output.done.summary = format!("{} table(s)", tables.len());
    output
        .done
        .detail
        .insert("tables".into(), serde_json::to_value(&tables)?);
    Ok(Outcome::Success)
}

pub(crate) fn check(
    config: &Config,
    settings: &ConnectionSettings,
    format: CheckFormat,
    at: Option<DateTime<Utc>>,
    output: &mut Output<'_>,
) -> Result<Outcome> {
    let tables = assess(config, settings, at)?;
    let out = &mut *output.out;
    match format {
        CheckFormat::Text => {
            for table in &tables {
                for problem in &table.problems {
                    writeln!(out, "{}: {}", table.table, problem.message)?;
                }
            }
        }
        CheckFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &tables)?;
            writeln!(out)?;
        }
        CheckFormat::Prometheus => render::write_prometheus(out, &tables)?,
    }
    out.flush()?;
    let problems: usize = tables.iter().map(|t| t.problems.len()).sum();
    output.done.summary = format!("{} table(s), {problems} problem(s)", tables.len());
    output
        .done
        .detail
        .insert("problems".into(), problems.into());
    if problems > 0 {
        bail!("{problems} problem(s) found");
    }
    Ok(Outcome::Success)
}

/// The policy entry named on the command line, or a usage error saying
/// which names the policy has.
fn policy_table<'p>(
    config: &Config,
    policy: &'p policy::Policy,
    name: &str,
) -> Result<&'p policy::TablePolicy> {
    // Read as the policy reads names: quoted parts verbatim, others folded.
    let wanted = policy::split_qualified(name);
    let found = policy.tables.iter().find(|t| {
        wanted
            .as_ref()
            .is_some_and(|(schema, table)| &t.schema == schema && &t.name == table)
    });
    if let Some(table) = found {
        return Ok(table);
    }
    let known: Vec<String> = policy.tables.iter().map(|t| t.qualified_name()).collect();
    let names: Vec<&str> = known.iter().map(String::as_str).collect();
    let near = crate::suggest::did_you_mean(name, &names)
        .map(|n| format!(" (did you mean {n}?)"))
        .unwrap_or_default();
    bail!(UsageError(format!(
        "{name} is not in {}{near}: convert needs its [[table]] entry (key, interval, premake)",
        config.policy.display()
    )))
}

pub fn convert(
    config: &Config,
    settings: &ConnectionSettings,
    convert: &config::Convert,
) -> Result<Outcome> {
    let now = now_or(convert.at);
    let policy = load_policy(config)?;
    let table = policy_table(config, &policy, &convert.table)?;
    if convert.drop_old
        && convert
            .until
            .is_some_and(|until| until < convert::Phase::Swap)
    {
        bail!(UsageError(
            "--drop-old comes after the swap: leave out --until, or write --until swap".into()
        ));
    }
    let options = convert::Options {
        until: convert.until.unwrap_or(convert::Phase::LAST),
        dry_run: convert.dry_run,
        batch_size: convert.batch_size,
        pause: convert.pause,
        unswap: convert.unswap,
        drop_old: convert.drop_old,
        abort: convert.abort,
    };
    let mut client = db::connect(settings)?;
    let mut out = std::io::stdout().lock();
    let request = convert::Request {
        options,
        keep_as: convert.keep_as.as_deref(),
        now,
    };
    let result = convert::run(&mut client, settings, table, &request, &mut out);
    out.flush()?;
    match result {
        Ok(()) => Ok(Outcome::Success),
        // Refused before anything changed: the table or the policy must change first.
        Err(
            error @ (ConvertError::Check(_)
            | ConvertError::Plan(_)
            | ConvertError::NotSwapped(_)
            | ConvertError::AbortAfterSwap(_)),
        ) => Err(UsageError(error.to_string()).into()),
        Err(ConvertError::Pooled(PoolerError::TransactionPooling(message))) => {
            Err(UsageError(PoolerError::TransactionPooling(message).to_string()).into())
        }
        Err(error) => Err(error.into()),
    }
}

/// `pgm partitions import-pg-partman`: the policy to the file or standard
/// output; with a file, a report of what was not carried over and the
/// statement that turns pg_partman off on standard output.
pub fn import_pg_partman(
    settings: &ConnectionSettings,
    import: &config::Import,
) -> Result<Outcome> {
    use crate::partition::import::{self, ImportOptions};
    if let Some(path) = &import.output
        && path.exists()
    {
        bail!(UsageError(format!(
            "{} exists: pgm does not overwrite a policy; choose another --output or remove it",
            path.display()
        )));
    }
    let mut client = db::connect(settings)?;
    let options = ImportOptions {
        schema: import.schema.clone(),
        time_zone: import.time_zone,
    };
    let imported = import::read(&mut client, &options)?;
    let turn_off = imported.turn_off_sql();
    let mut policy = imported.policy_text();
    let advice = match &turn_off {
        Some(sql) => format!(
            "\n# Once `pgm partitions plan` shows nothing to do for these tables, turn pg_partman's maintenance off\n\
             # for them (or rerun with --disable-pg-partman):\n# {sql};\n"
        ),
        None => "\n# No table can be taken over from pg_partman.\n".to_owned(),
    };
    policy.push_str(&advice);
    let mut out = std::io::stdout().lock();
    match &import.output {
        Some(path) => {
            std::fs::write(path, &policy)
                .with_context(|| format!("writing the policy to {}", path.display()))?;
            write_import_report(&mut out, &imported, path)?;
            if let Some(sql) = turn_off.as_ref().filter(|_| !import.disable_pg_partman) {
                writeln!(
                    out,
                    "\nonce `pgm partitions plan` shows nothing to do for these tables, turn pg_partman's \
                     maintenance off for them:\n  {sql};"
                )?;
            }
        }
        None => out.write_all(policy.as_bytes())?,
    }
    if let Some(sql) = turn_off.filter(|_| import.disable_pg_partman) {
        let changed = import::disable(&mut client, settings, &sql)?;
        writeln!(
            out,
            "pg_partman's maintenance is off for {changed} table(s): {sql}"
        )?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

fn write_import_report(
    out: &mut impl Write,
    imported: &crate::partition::import::Imported,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let taken = imported.taken_over().count();
    writeln!(
        out,
        "wrote {taken} table(s) from {}.part_config ({} layout) to {}; time_zone: {}",
        imported.schema,
        imported.layout,
        path.display(),
        imported.time_zone_source
    )?;
    for table in &imported.tables {
        match &table.refused {
            Some(why) => writeln!(out, "{}: not imported: {why}", table.parent_table)?,
            None => writeln!(out, "{}: imported", table.parent_table)?,
        }
        for note in &table.not_carried {
            writeln!(out, "  not carried over: {note}")?;
        }
    }
    Ok(())
}
