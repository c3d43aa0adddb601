//! Partition plans as a readable summary, a SQL script a DBA can review, or
//! JSON (the contract `maintain` executes).

use std::io::{self, Write};

use super::health::{ProblemKind, TableHealth};
use super::planner::{Action, Plan, Step, describe};
use super::policy::Policy;

fn symbol(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::CreatePartition => ("+", "create"),
        Action::AttachPartition => ("+", "attach"),
        Action::MoveDefaultRows => ("+", "move rows + attach"),
        Action::DetachPartition => ("~", "detach"),
        Action::FinalizeDetach => ("~", "finish detach"),
        Action::ArchivePartition => ("~", "archive"),
        Action::DropPartition => ("-", "drop"),
        Action::CreateIndex => ("i", "build index"),
        Action::AttachIndex => ("i", "attach index"),
        Action::DropInvalidIndex => ("i", "drop invalid index"),
        Action::Error => ("!", "error"),
    }
}

pub fn write_text(out: &mut dyn Write, policy: &Policy, plan: &Plan) -> io::Result<()> {
    writeln!(
        out,
        "plan at {}",
        plan.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )?;
    for table in &policy.tables {
        let name = table.qualified_name();
        let steps: Vec<&Step> = plan.steps.iter().filter(|s| s.table == name).collect();
        writeln!(out, "\n{name} ({})", describe(table))?;
        if steps.is_empty() {
            writeln!(out, "  nothing to do")?;
            continue;
        }
        for step in steps {
            let (mark, verb) = symbol(step.action);
            if step.action == Action::Error {
                writeln!(
                    out,
                    "  {mark} {}: {}",
                    step.reason,
                    step.message.as_deref().unwrap_or_default()
                )?;
                continue;
            }
            let target = step.target();
            let range = match (&step.from, &step.to) {
                (Some(from), Some(to)) => format!("  [{from}, {to})"),
                _ => String::new(),
            };
            let mode = if step.transactional {
                ""
            } else {
                ", outside a transaction"
            };
            writeln!(out, "  {mark} {verb:<18} {target}{range}")?;
            writeln!(out, "      {} on the parent{mode}", step.lock)?;
            writeln!(out, "      {}", step.reason)?;
        }
    }
    let count = plan
        .steps
        .iter()
        .filter(|s| s.action != Action::Error)
        .count();
    let errors = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Error)
        .count();
    writeln!(out, "\n{count} step(s), {errors} error(s)")
}

pub fn write_sql(out: &mut dyn Write, policy: &Policy, plan: &Plan) -> io::Result<()> {
    writeln!(
        out,
        "-- pgm partitions plan at {}",
        plan.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )?;
    writeln!(
        out,
        "-- Each transaction block is one step; steps marked \"outside a transaction\" run statement by statement."
    )?;
    for table in &policy.tables {
        let name = table.qualified_name();
        let steps: Vec<&Step> = plan.steps.iter().filter(|s| s.table == name).collect();
        writeln!(out, "\n-- ===== {name} ({})", describe(table))?;
        if steps.is_empty() {
            writeln!(out, "-- nothing to do")?;
        }
        for step in steps {
            let (_, verb) = symbol(step.action);
            if step.action == Action::Error {
                writeln!(
                    out,
                    "-- ERROR ({}): {}",
                    step.reason,
                    step.message.as_deref().unwrap_or_default()
                )?;
                continue;
            }
            let target = step.target();
            writeln!(out, "\n-- {verb} {target}: {}", step.reason)?;
            let mut locks = format!("-- lock on parent: {}", step.lock);
            if let Some(other) = &step.other_locks {
                locks.push_str(&format!("; {other}"));
            }
            writeln!(out, "{locks}")?;
            if let Some(guard) = &step.guard {
                writeln!(
                    out,
                    "-- runs only if this returns 0 (rows of the new range in the default partition):\n-- {guard};"
                )?;
            }
            if step.transactional {
                writeln!(
                    out,
                    "BEGIN;\nSET LOCAL lock_timeout = '{}';",
                    step.lock_timeout
                )?;
                for sql in &step.sql {
                    writeln!(out, "{sql};")?;
                }
                writeln!(out, "COMMIT;")?;
            } else {
                writeln!(out, "-- outside a transaction")?;
                writeln!(out, "SET lock_timeout = '{}';", step.lock_timeout)?;
                for sql in &step.sql {
                    writeln!(out, "{sql};")?;
                }
            }
        }
    }
    Ok(())
}

pub fn write_json(out: &mut dyn Write, plan: &Plan) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, plan)?;
    writeln!(out)
}

pub fn write_status(out: &mut dyn Write, tables: &[TableHealth]) -> io::Result<()> {
    for (position, table) in tables.iter().enumerate() {
        if position > 0 {
            writeln!(out)?;
        }
        let coverage = match (&table.covered_until, table.periods_ahead) {
            (Some(until), Some(ahead)) => format!(
                "covered until {until} ({ahead} ahead, premake {})",
                table.premake
            ),
            _ => "no partition holds now".to_owned(),
        };
        writeln!(out, "{}: {coverage}", table.table)?;
        if !table.partitions.is_empty() {
            writeln!(
                out,
                "  {:<32} {:<26} {:<26} {:>10} {:>10}  indexes",
                "partition", "from", "to", "rows", "size"
            )?;
        }
        for partition in &table.partitions {
            let rows = if partition.estimated_rows < 0 {
                "?".to_owned()
            } else {
                partition.estimated_rows.to_string()
            };
            let mut indexes = if partition.invalid_indexes.is_empty() {
                "valid".to_owned()
            } else {
                format!("INVALID: {}", partition.invalid_indexes.join(", "))
            };
            if partition.detach_pending {
                indexes.push_str(" (detach pending)");
            }
            writeln!(
                out,
                "  {:<32} {:<26} {:<26} {:>10} {:>10}  {indexes}",
                partition.name,
                partition.from,
                partition.to,
                rows,
                size(partition.estimated_bytes)
            )?;
        }
        for problem in &table.problems {
            writeln!(out, "  ! {}", problem.message)?;
        }
    }
    Ok(())
}

fn size(bytes: i64) -> String {
    match bytes.max(0) {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} kB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A gauge family: name, help, and its value for a table.
type Gauge<'a> = (&'a str, &'a str, &'a dyn Fn(&TableHealth) -> i64);

/// node_exporter's textfile collector format: one gauge family per fact,
/// one sample per table.
pub fn write_prometheus(out: &mut dyn Write, tables: &[TableHealth]) -> io::Result<()> {
    let label = |table: &str| {
        table
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let count = |table: &TableHealth, kind: ProblemKind| {
        table.problems.iter().filter(|p| p.kind == kind).count()
    };
    let families: [Gauge<'_>; 7] = [
        (
            "pgm_partitions_ahead",
            "Partitions ready after the one holding now (-1: none holds now).",
            &|t| t.periods_ahead.map_or(-1, i64::from),
        ),
        (
            "pgm_partitions_premake",
            "Partitions the policy wants ready after now.",
            &|t| i64::from(t.premake),
        ),
        (
            "pgm_default_partition_has_rows",
            "1 when the default partition holds rows.",
            &|t| i64::from(t.default_partition_has_rows == Some(true)),
        ),
        (
            "pgm_invalid_indexes",
            "INVALID indexes on the table and its partitions.",
            &|t| count(t, ProblemKind::InvalidIndex) as i64,
        ),
        (
            "pgm_pending_detaches",
            "Partitions with a detach pending.",
            &|t| count(t, ProblemKind::DetachPending) as i64,
        ),
        (
            "pgm_drift",
            "Partitions or periods that do not match the policy.",
            &|t| count(t, ProblemKind::Drift) as i64,
        ),
        (
            "pgm_check_problems",
            "Problems pgm partitions check reports for the table.",
            &|t| t.problems.len() as i64,
        ),
    ];
    for (name, help, value) in families {
        writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge")?;
        for table in tables {
            writeln!(
                out,
                "{name}{{table=\"{}\"}} {}",
                label(&table.table),
                value(table)
            )?;
        }
    }
    Ok(())
}
