//! A conversion as people read it: the check's findings, and with
//! `--dry-run` the exact SQL of every phase still to run, with its locks.

use std::io::{self, Write};

use super::Phase;
use super::check::{Carry, Checked};
use super::journal::State;
use super::plan::{ConvertPlan, Names};
use super::run::Options;
use super::source::SourceTable;
use super::swap::{self, Direction};
use crate::db::ident::QualifiedName;
use crate::partition::policy::TablePolicy;
use crate::partition::render::write_sql_step;

pub fn write_check(out: &mut dyn Write, checked: &Checked, state: &State) -> io::Result<()> {
    writeln!(
        out,
        "check: {} can be converted: key {} ({:?}), primary key ({})",
        checked.table,
        checked.key,
        checked.key_type,
        checked.primary_key.join(", ")
    )?;
    for dependent in &checked.dependents {
        let (when, how) = match &dependent.carry {
            Carry::AtPrepare(how) => ("prepare", how),
            Carry::AtSwap(how) => ("swap", how),
        };
        writeln!(out, "  {} — at the {when}: {how}", dependent.name)?;
    }
    if let Some(journal) = &state.journal {
        writeln!(
            out,
            "journal: {:?}, {} row(s) copied, {} change(s) replayed, {} waiting in the log",
            journal.phase, journal.copied, journal.replayed, state.logged
        )?;
    }
    Ok(())
}

pub fn write_plan(out: &mut dyn Write, plan: &ConvertPlan, options: Options) -> io::Result<()> {
    writeln!(
        out,
        "-- pgm partitions convert {} at {}: the session runs SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD';",
        plan.names.source,
        plan.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )?;
    writeln!(out, "\n-- ===== prepare")?;
    if plan.prepare.is_empty() {
        writeln!(out, "-- done (journaled in {})", plan.names.journal)?;
    }
    for step in &plan.prepare {
        write_sql_step(out, step)?;
    }
    if options.until == Phase::Prepare {
        return Ok(());
    }
    if plan.backfilled {
        writeln!(
            out,
            "\n-- ===== backfill\n-- done (journaled in {})",
            plan.names.journal
        )?;
    } else {
        write_backfill(out, plan, options)?;
    }
    if options.until == Phase::Backfill {
        return Ok(());
    }
    writeln!(
        out,
        "\n-- ===== replay: batches of $1 = {} log entries; the statements after the count run with $1 = the \
         largest seq read (then the count, for the journal), and only when it read an entry",
        options.batch_size
    )?;
    write_sql_step(out, &plan.replay)?;
    if options.until == Phase::Replay {
        return Ok(());
    }
    writeln!(out, "\n-- ===== verify")?;
    write_sql_step(out, &plan.analyze)?;
    write_sql_step(out, &plan.verify)?;
    if options.until == Phase::Verify {
        return Ok(());
    }
    writeln!(
        out,
        "\n-- ===== swap: a replay first (as above, until a batch is not full); after a lock timeout, each \
         retry first applies the whole log with the replay step ($1 = NULL: every entry) in its own \
         transaction, without the swap's lock"
    )?;
    write_sql_step(out, &plan.swap)?;
    for step in &plan.validate {
        write_sql_step(out, step)?;
    }
    Ok(())
}

fn write_backfill(out: &mut dyn Write, plan: &ConvertPlan, options: Options) -> io::Result<()> {
    writeln!(
        out,
        "\n-- ===== backfill: batches of $1 = {} rows, {} ms apart; the first batch, then each batch after \
         the last copied primary key ($2), up to the bound journaled by the capture ($2 in the first, $3 after), \
         keys as text; the journal records $1 = the last key copied, $2 = the rows read",
        options.batch_size,
        options.pause.as_millis()
    )?;
    write_sql_step(out, &plan.backfill.first)?;
    write_sql_step(out, &plan.backfill.next)
}

/// After the swap, with `--dry-run`: what a run would do now.
pub fn write_after_swap(
    out: &mut dyn Write,
    table: &TablePolicy,
    names: &Names,
    live: &SourceTable,
    kept: &QualifiedName,
    options: Options,
) -> io::Result<()> {
    if options.unswap {
        let step = swap::swap_step(
            table,
            names,
            live,
            kept,
            &names.target.name,
            Direction::Unswap,
        );
        write_sql_step(out, &step)?;
        for step in swap::foreign_key_validations(table, live, true) {
            write_sql_step(out, &step)?;
        }
        return Ok(());
    }
    for step in swap::validate_steps(table, live) {
        write_sql_step(out, &step)?;
    }
    if options.drop_old {
        write_sql_step(out, &swap::drop_old_step(table, names, kept))?;
    }
    Ok(())
}
