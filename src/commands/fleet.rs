//! `--fleet`: the command of the command line on every target of the
//! policy's `[fleet]` section. Each target runs the same command function
//! a single-database run calls, writing into its own buffer; the report is
//! printed once every target has ended, so that no two targets' output
//! interleave.

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};

use super::{Output, migrate, partitions};
use crate::config::{CheckFormat, Command, Config, PlanFormat, StatusFormat};
use crate::db::Environment;
use crate::exit::{Outcome, UsageError};
use crate::fleet::report::{self, Outcome as TargetOutcome, TargetReport};
use crate::fleet::schedule::{self, Schedule};
use crate::fleet::targets::{self, Target};
use crate::partition::policy;

/// How the report is written, from the command's own `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportFormat {
    /// With each target's output shown, for plans and status.
    Text {
        show_output: bool,
    },
    Json,
    Prometheus,
}

pub fn run(config: &Config) -> Result<Outcome> {
    let Some(fleet) = config.fleet else {
        bail!("a fleet run needs --fleet");
    };
    let format = report_format(&config.command)?;
    let targets = load_targets(config)?;
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let schedule = Schedule {
        jobs: fleet.jobs,
        fail_fast: fleet.fail_fast,
        canary: fleet.canary,
    };
    let work = |index: usize| run_target(config, &targets[index]);
    let failed = |report: &TargetReport| report.outcome == TargetOutcome::Failed;
    let reports: Vec<TargetReport> = schedule::run(&names, schedule, &work, &failed)
        .into_iter()
        .zip(&names)
        .map(|(result, name)| result.unwrap_or_else(|why| not_run(name, why)))
        .collect();
    write_report(&reports, format)?;
    conclude(&reports)
}

/// The commands a fleet runs, and the report each asks for.
fn report_format(command: &Command) -> Result<ReportFormat> {
    let text = |show_output| Ok(ReportFormat::Text { show_output });
    match command {
        Command::Migrate(migrate) => match (migrate.format, migrate.dry_run) {
            (PlanFormat::Json, _) => Ok(ReportFormat::Json),
            (_, dry_run) => text(dry_run),
        },
        Command::MigrateStatus { format, .. } | Command::PartitionsStatus { format, .. } => {
            match format {
                StatusFormat::Json => Ok(ReportFormat::Json),
                StatusFormat::Text => text(true),
            }
        }
        Command::MigrateWait { .. } => text(false),
        Command::PartitionsPlan { format, .. } => match format {
            PlanFormat::Json => Ok(ReportFormat::Json),
            _ => text(true),
        },
        Command::PartitionsMaintain {
            format: StatusFormat::Json,
            ..
        } => Ok(ReportFormat::Json),
        Command::PartitionsMaintain { dry_run, .. } => text(*dry_run),
        Command::PartitionsCheck { format, .. } => match format {
            CheckFormat::Json => Ok(ReportFormat::Json),
            CheckFormat::Prometheus => Ok(ReportFormat::Prometheus),
            CheckFormat::Text => text(true),
        },
        _ => bail!(UsageError(
            "--fleet runs migrate, migrate status, migrate wait and partitions plan, maintain, \
             status and check; run this command on one database at a time (without --fleet)"
                .into()
        )),
    }
}

/// The targets of the policy file's `[fleet]` section.
fn load_targets(config: &Config) -> Result<Vec<Target>> {
    let (_, section) = policy::load_with_fleet(&config.policy)
        .context(UsageError("invalid partition policy".into()))?;
    let Some(section) = section else {
        bail!(UsageError(format!(
            "--fleet runs on the targets of the [fleet] section, and {} has none: add one, such as\n\n\
             [fleet]\ndiscover = \"SELECT datname FROM pg_database WHERE datname LIKE 'tenant\\\\_%'\"",
            config.policy.display()
        )));
    };
    let env = Environment::from_process();
    let targets = targets::resolve(&section, config.database_url.as_deref(), &env)
        .context(UsageError("cannot list the fleet's targets".into()))?;
    tracing::info!("fleet: {} target(s)", targets.len());
    Ok(targets)
}

/// The command on one target, isolated: its own connections, its output
/// in its own buffer, a panic caught as that target's failure.
fn run_target(config: &Config, target: &Target) -> TargetReport {
    let _span = tracing::info_span!("target", name = %target.name).entered();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let mut output = Output::new(&mut buffer);
    let config = Config {
        schema: target.schema.clone(),
        fleet: None,
        ..config.clone()
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        run_command(&config, target, &mut output)
    }))
    .unwrap_or_else(|panic| {
        Err(anyhow!(
            "pgm stopped on an internal error: {}",
            panic_text(&panic)
        ))
    });
    let done = std::mem::take(&mut output.done);
    let (outcome, error) = match result {
        Ok(Outcome::Success) => (TargetOutcome::Ok, None),
        Ok(Outcome::Pending) => (TargetOutcome::Pending, None),
        Err(error) => (TargetOutcome::Failed, Some(describe(&error))),
    };
    TargetReport {
        name: target.name.clone(),
        outcome,
        summary: done.summary,
        detail: done.detail,
        output: buffer,
        error,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn run_command(config: &Config, target: &Target, output: &mut Output<'_>) -> Result<Outcome> {
    let settings = &target.settings;
    match &config.command {
        Command::Migrate(args) => migrate::apply(config, args, settings, output),
        Command::MigrateStatus { exit_code, format } => {
            migrate::status(config, settings, *exit_code, *format, output)
        }
        Command::MigrateWait {
            target,
            timeout,
            interval,
        } => migrate::wait(config, settings, *target, *timeout, *interval, output),
        Command::PartitionsPlan {
            at,
            format,
            detailed_exitcode,
        } => partitions::plan(config, settings, *at, *format, *detailed_exitcode, output),
        Command::PartitionsMaintain {
            dry_run,
            at,
            tables,
            format,
        } => {
            let request = partitions::MaintainRequest {
                dry_run: *dry_run,
                at: *at,
                only: tables,
                format: *format,
            };
            partitions::maintain(config, settings, &request, output)
        }
        Command::PartitionsStatus { format, at } => {
            partitions::status(config, settings, *format, *at, output)
        }
        Command::PartitionsCheck { format, at } => {
            partitions::check(config, settings, *format, *at, output)
        }
        _ => bail!("--fleet does not run this command"),
    }
}

/// An error as a single run prints it: the error, then every cause.
fn describe(error: &anyhow::Error) -> String {
    let mut text = format!("error: {error}");
    for cause in error.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    text
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

fn not_run(name: &str, why: schedule::NotRun) -> TargetReport {
    TargetReport {
        name: name.to_owned(),
        outcome: TargetOutcome::NotRun(why),
        summary: String::new(),
        detail: serde_json::Map::new(),
        output: Vec::new(),
        error: None,
        seconds: 0.0,
    }
}

fn write_report(reports: &[TargetReport], format: ReportFormat) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        ReportFormat::Text { show_output } => report::write_text(&mut out, reports, show_output)?,
        ReportFormat::Json => report::write_json(&mut out, reports, true)?,
        ReportFormat::Prometheus => report::write_prometheus(&mut out, reports)?,
    }
    out.flush()?;
    Ok(())
}

/// Exit 1 when a target failed or did not run, 2 when one has changes
/// pending (with --exit-code / --detailed-exitcode), else 0.
fn conclude(reports: &[TargetReport]) -> Result<Outcome> {
    let totals = report::totals(reports);
    if totals.failed > 0 || totals.not_run > 0 {
        let failed: Vec<&str> = reports
            .iter()
            .filter(|r| r.outcome == TargetOutcome::Failed)
            .map(|r| r.name.as_str())
            .collect();
        let canary_failed = reports
            .iter()
            .any(|r| r.outcome == TargetOutcome::NotRun(schedule::NotRun::CanaryFailed));
        let stopped = if canary_failed {
            " (a canary failed: the other targets were not touched)"
        } else {
            ""
        };
        bail!(
            "{} of {} target(s) failed{stopped}: {}",
            totals.failed,
            reports.len(),
            failed.join(", ")
        );
    }
    Ok(if totals.pending > 0 {
        Outcome::Pending
    } else {
        Outcome::Success
    })
}
