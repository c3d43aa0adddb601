//! Partition plans as a readable summary, a SQL script a DBA can review, or
//! JSON (the contract `maintain` executes).

use std::io::{self, Write};

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
            let target = step
                .index
                .as_deref()
                .or(step.partition.as_deref())
                .unwrap_or("");
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
            writeln!(
                out,
                "      lock on parent: {}{mode}; {}",
                step.lock, step.reason
            )?;
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
            let target = step
                .index
                .as_deref()
                .or(step.partition.as_deref())
                .unwrap_or("");
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
