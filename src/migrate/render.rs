//! Plans, reports and status as text, SQL and JSON, over `io::Write`.

use std::io::{self, Write};

use serde::Serialize;

use super::plan::{Entry, Param, Plan, PlannedMigration, Role, State, Step};
use super::runner::AppliedReport;
use super::sql::Mode;

/// A step's SQL with its parameters written in as literals: what a DBA
/// would paste into psql.
pub fn inline_params(step: &Step) -> String {
    let mut sql = step.sql.clone();
    for (index, param) in step.params.iter().enumerate().rev() {
        let literal = match param {
            Param::Int(value) => value.to_string(),
            Param::Text(value) => crate::db::quote_literal(value),
        };
        sql = sql.replace(&format!("${}", index + 1), &literal);
    }
    sql
}

fn terminated(sql: &str) -> String {
    let trimmed = sql.trim_end();
    if trimmed.ends_with(';') {
        trimmed.to_owned()
    } else {
        format!("{trimmed};")
    }
}

fn mode_words(migration: &PlannedMigration<'_>) -> String {
    let file = migration.source.parsed();
    match file.mode {
        Mode::Transaction => format!("in one transaction ({})", file.mode_reason),
        Mode::NoTransaction => format!(
            "outside a transaction, statement by statement ({})",
            file.mode_reason
        ),
    }
}

pub fn write_sql(out: &mut dyn Write, plan: &Plan<'_>) -> io::Result<()> {
    if plan.setup.is_empty() && plan.migrations.is_empty() {
        return writeln!(out, "-- nothing to apply");
    }
    if !plan.setup.is_empty() {
        writeln!(out, "-- create the migration tables")?;
        for step in &plan.setup {
            writeln!(out, "{}", terminated(&inline_params(step)))?;
        }
        writeln!(out)?;
    }
    for migration in &plan.migrations {
        writeln!(
            out,
            "-- {}: {}",
            migration.source.file_name(),
            mode_words(migration)
        )?;
        if migration.resume_at > 0 {
            writeln!(
                out,
                "-- resuming an interrupted run: statements 1 to {} are done",
                migration.resume_at
            )?;
        }
        for step in &migration.steps {
            if let Role::DropLeftover(index) = step.role {
                writeln!(
                    out,
                    "-- statement {} was interrupted and left an INVALID index:",
                    index + 1
                )?;
            }
            if let Some((_, why)) = match step.role {
                Role::Journal(index) => migration
                    .skipped
                    .iter()
                    .find(|(skipped, _)| *skipped == index),
                _ => None,
            } {
                writeln!(out, "-- statement already done: {why}")?;
            }
            if let Some(retry) = &step.on_retry {
                writeln!(out, "{}", retry.as_comment())?;
            }
            writeln!(out, "{}", terminated(&inline_params(step)))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

pub fn write_text(out: &mut dyn Write, plan: &Plan<'_>, settings_line: &str) -> io::Result<()> {
    match plan.migrations.len() {
        0 => writeln!(out, "nothing to apply: the database is up to date")?,
        n => {
            writeln!(
                out,
                "{n} migration{} to apply ({settings_line}):",
                if n == 1 { "" } else { "s" }
            )?;
            for migration in &plan.migrations {
                let file = migration.source.parsed();
                let resume = if migration.resume_at > 0 {
                    format!(", resumes at statement {}", migration.resume_at + 1)
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "  {:<40} {:<15} {} statement{}{resume}",
                    migration.source.file_name(),
                    file.mode.to_string(),
                    file.statements.len(),
                    if file.statements.len() == 1 { "" } else { "s" }
                )?;
            }
        }
    }
    if plan.setup.is_empty() && plan.migrations.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    write_sql(out, plan)
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    setup: &'a [Step],
    migrations: Vec<JsonMigration<'a>>,
}

#[derive(Serialize)]
struct JsonMigration<'a> {
    version: i32,
    name: &'a str,
    file: String,
    mode: Mode,
    mode_reason: &'a str,
    resume_at: usize,
    steps: &'a [Step],
}

pub fn write_json(out: &mut dyn Write, plan: &Plan<'_>) -> io::Result<()> {
    let json = JsonPlan {
        setup: &plan.setup,
        migrations: plan
            .migrations
            .iter()
            .map(|m| JsonMigration {
                version: m.source.version,
                name: &m.source.name,
                file: m.source.path.display().to_string(),
                mode: m.source.parsed().mode,
                mode_reason: &m.source.parsed().mode_reason,
                resume_at: m.resume_at,
                steps: &m.steps,
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out)
}

pub fn write_report_text(
    out: &mut dyn Write,
    applied: &[AppliedReport],
    already: usize,
) -> io::Result<()> {
    if applied.is_empty() {
        return writeln!(
            out,
            "nothing to apply: {already} migration{} already applied",
            if already == 1 { "" } else { "s" }
        );
    }
    for report in applied {
        let mut extra = String::new();
        if report.resumed_at > 0 {
            extra.push_str(&format!(", resumed at statement {}", report.resumed_at + 1));
        }
        if report.attempts > 1 {
            extra.push_str(&format!(", {} attempts", report.attempts));
        }
        writeln!(
            out,
            "applied {} ({}, {} ms{extra})",
            report.file, report.mode, report.duration_ms
        )?;
    }
    Ok(())
}

pub fn write_report_json(out: &mut dyn Write, applied: &[AppliedReport]) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "applied": applied }))?;
    writeln!(out)
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    version: i32,
    name: &'a str,
    state: State,
    file: Option<String>,
    applied_on: Option<&'a str>,
    duration_ms: Option<i64>,
    completed_statements: Option<usize>,
}

pub fn write_status_json(out: &mut dyn Write, entries: &[Entry<'_>]) -> io::Result<()> {
    let json: Vec<JsonEntry<'_>> = entries
        .iter()
        .map(|entry| JsonEntry {
            version: entry.version,
            name: &entry.name,
            state: entry.state,
            file: entry.source.map(|s| s.path.display().to_string()),
            applied_on: entry.applied.as_ref().map(|a| a.applied_on.as_str()),
            duration_ms: entry.applied.as_ref().and_then(|a| a.duration_ms),
            completed_statements: entry.progress.as_ref().map(|p| p.completed),
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out)
}

pub fn write_status_text(out: &mut dyn Write, entries: &[Entry<'_>]) -> io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "no migrations found and none applied");
    }
    let name_width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:>7}  {:<name_width$}  {:<14}  {:<27}  duration",
        "version", "name", "state", "applied on"
    )?;
    for entry in entries {
        let state = match entry.state {
            State::Applied => "applied",
            State::Pending => "pending",
            State::PartlyApplied => "partly applied",
            State::Divergent => "DIVERGENT",
            State::Missing => "MISSING",
            State::OutOfOrder => "out of order",
        };
        let applied_on = entry.applied.as_ref().map_or("", |a| a.applied_on.as_str());
        let duration = match (&entry.applied, &entry.progress) {
            (Some(applied), _) => applied
                .duration_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_default(),
            (None, Some(progress)) => format!("{} statements done", progress.completed),
            _ => String::new(),
        };
        writeln!(
            out,
            "{:>7}  {:<name_width$}  {:<14}  {:<27}  {duration}",
            entry.version, entry.name, state, applied_on
        )?;
    }
    let count = |state: State| entries.iter().filter(|e| e.state == state).count();
    let mut summary = vec![format!("{} applied", count(State::Applied))];
    for (state, word) in [
        (State::Pending, "pending"),
        (State::PartlyApplied, "partly applied"),
        (State::OutOfOrder, "out of order"),
        (State::Divergent, "divergent"),
        (State::Missing, "missing"),
    ] {
        if count(state) > 0 {
            summary.push(format!("{} {word}", count(state)));
        }
    }
    writeln!(out, "{}", summary.join(", "))
}
