//! Partition plans as a readable summary, a SQL script a DBA can review, or
//! JSON (the contract `maintain` executes).

use std::io::{self, Write};

use super::executor::TableReport;
use super::health::{ProblemKind, TableHealth};
use super::planner::{Action, Entry, Plan, Problem, Step, describe};
use super::policy::Policy;
use crate::units::human_bytes;

fn symbol(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::CreatePartition => ("+", "create"),
        Action::AttachPartition => ("+", "attach"),
        Action::MoveDefaultRows => ("+", "move rows + attach"),
        Action::DetachPartition => ("~", "detach"),
        Action::FinalizeDetach => ("~", "finish detach"),
        Action::ArchivePartition => ("~", "archive"),
        Action::KeepDetached => ("~", "keep detached"),
        Action::DropPartition => ("-", "drop"),
        Action::CreateIndex => ("i", "build index"),
        Action::AttachIndex => ("i", "attach index"),
        Action::DropInvalidIndex => ("i", "drop invalid index"),
        Action::ColumnarPrepare => ("~", "add bounds check"),
        Action::ColumnarPartition => ("~", "convert to columnar"),
        Action::CreateDefaultPartition => ("+", "create default"),
        Action::ConvertCreateTable => ("+", "create partitioned table"),
        Action::ConvertStartCapture => ("+", "start change capture"),
        Action::ConvertBackfill => ("~", "backfill batch"),
        Action::ConvertReplay => ("~", "replay batch"),
        Action::ConvertVerify => ("=", "verify"),
        Action::ConvertSwap => ("~", "swap"),
        Action::ConvertValidate => ("=", "validate foreign key"),
        Action::ConvertDropOld => ("-", "drop the old table"),
        Action::ConvertAbort => ("-", "abort the conversion"),
    }
}

/// The problem's kind as the JSON names it, and its message.
fn problem_line(problem: &Problem) -> (String, &str) {
    let kind = serde_json::to_value(problem.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    (kind, &problem.message)
}

pub fn write_text(out: &mut dyn Write, policy: &Policy, plan: &Plan) -> io::Result<()> {
    writeln!(
        out,
        "plan at {}",
        plan.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )?;
    for table in &policy.tables {
        let name = table.parent();
        let entries: Vec<&Entry> = plan.for_table(&name).collect();
        writeln!(out, "\n{name} ({})", describe(table))?;
        if let Some(distributed) = plan.distributed(&name) {
            writeln!(out, "  {}", distributed.note)?;
        }
        if let Some(counted) = plan.counted_from(&name) {
            writeln!(
                out,
                "  counted from {}: the range that {}",
                counted.value, counted.source
            )?;
        }
        if entries.is_empty() {
            writeln!(out, "  nothing to do")?;
            continue;
        }
        for entry in entries {
            let step = match entry {
                Entry::Step(step) => step,
                Entry::Problem(problem) => {
                    let (kind, message) = problem_line(problem);
                    writeln!(out, "  ! {kind}: {message}")?;
                    continue;
                }
            };
            let (mark, verb) = symbol(step.action);
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
            if let Some(retry) = &step.on_retry {
                writeln!(out, "      on a lock-timeout retry: {}", retry_words(retry))?;
            }
        }
    }
    let count = plan.steps().count();
    let errors = plan.failures().count();
    let warnings = plan.problems().count() - errors;
    writeln!(
        out,
        "\n{count} step(s), {errors} error(s), {warnings} warning(s)"
    )
}

fn retry_words(retry: &crate::db::retry::OnRetry) -> String {
    let how = if retry.instead { "instead" } else { "first" };
    format!("{}; runs {how}: {}", retry.why, retry.sql)
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
        let name = table.parent();
        let entries: Vec<&Entry> = plan.for_table(&name).collect();
        writeln!(out, "\n-- ===== {name} ({})", describe(table))?;
        if let Some(distributed) = plan.distributed(&name) {
            writeln!(out, "-- {}", distributed.note)?;
        }
        if let Some(counted) = plan.counted_from(&name) {
            writeln!(
                out,
                "-- counted from {}: the range that {}",
                counted.value, counted.source
            )?;
        }
        if entries.is_empty() {
            writeln!(out, "-- nothing to do")?;
        }
        for entry in entries {
            match entry {
                Entry::Step(step) => write_sql_step(out, step)?,
                Entry::Problem(problem) => {
                    let (kind, message) = problem_line(problem);
                    writeln!(out, "-- ERROR ({kind}): {message}")?;
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn write_sql_step(out: &mut dyn Write, step: &Step) -> io::Result<()> {
    let (_, verb) = symbol(step.action);
    writeln!(out, "\n-- {verb} {}: {}", step.target(), step.reason)?;
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
        writeln!(out, "BEGIN;")?;
        for setting in super::executor::transaction_settings(step) {
            writeln!(out, "{setting};")?;
        }
        for sql in &step.sql {
            writeln!(out, "{sql};")?;
        }
        return writeln!(out, "COMMIT;");
    }
    writeln!(out, "-- outside a transaction")?;
    writeln!(out, "SET lock_timeout = '{}';", step.lock_timeout)?;
    for (position, sql) in step.sql.iter().enumerate() {
        if let Some(retry) = step.on_retry.as_ref().filter(|r| r.statement == position) {
            writeln!(out, "{}", retry.as_comment())?;
        }
        writeln!(out, "{sql};")?;
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
                human_bytes(partition.estimated_bytes)
            )?;
        }
        for problem in &table.problems {
            writeln!(out, "  ! {}", problem.message)?;
        }
    }
    Ok(())
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
            "Partitions ready after the one holding now, or for ID ranges the largest key (-1: none holds it).",
            &|t| t.periods_ahead.map_or(-1, i64::from),
        ),
        (
            "pgm_partitions_premake",
            "Partitions the policy wants ready after now (for ID ranges, after the largest key).",
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

/// One line per table of what maintenance did, and a total.
pub fn write_summary(out: &mut dyn Write, reports: &[TableReport]) -> io::Result<()> {
    let mut totals = TableReport::default();
    for report in reports {
        writeln!(out, "{}: {}", report.table, summary_line(report))?;
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
        totals.moved_rows += report.moved_rows;
    }
    let failed = reports.iter().filter(|r| !r.failures.is_empty()).count();
    let skipped = reports.iter().filter(|r| r.skipped.is_some()).count();
    let deferred: usize = reports.iter().map(|r| r.deferred.len()).sum();
    let moved = match totals.moved_rows {
        0 => String::new(),
        rows => format!(", {rows} rows moved from default partitions"),
    };
    writeln!(
        out,
        "summary: {} created, {} detached, {} dropped, {} archived, {} indexes built, {} failed, {} skipped, {} deferred{moved}",
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

fn summary_line(report: &TableReport) -> String {
    if let Some(why) = &report.skipped {
        return format!("skipped: {why}");
    }
    let attached_before = report.attached.saturating_sub(report.created);
    let mut parts = Vec::new();
    for (count, word) in [
        (report.created, "created"),
        (attached_before, "attached (created by an interrupted run)"),
        (report.detached, "detached"),
        (report.dropped, "dropped"),
        (report.archived, "archived"),
        (report.indexes_built, "indexes built"),
        (report.indexes_attached, "indexes attached"),
        (report.columnar, "converted to columnar"),
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
    if parts.is_empty() && report.failures.is_empty() && report.deferred.is_empty() {
        return "nothing to do".to_owned();
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::partition::catalog::{Bound, CitusTable, Parent, Partition, PartitionKey, Snapshot};
    use crate::partition::planner;
    use crate::partition::policy;

    const POLICY: &str = r#"
[[table]]
name = "public.events"
interval = "monthly"
premake = 1
retention = "2 months"
lock_timeout = "1s"

[[table.index]]
name = "events_kind_idx"
columns = ["kind"]

[[table]]
name = "public.missing"
interval = "daily"
"#;

    fn partition(oid: u32, name: &str, from: &str, to: &str) -> Partition {
        Partition {
            oid,
            schema: "public".into(),
            name: name.into(),
            bound: Bound::Range {
                from: from.into(),
                to: to.into(),
            },
            detach_pending: false,
            estimated_rows: 1200,
            estimated_bytes: 1800,
            indexes: Vec::new(),
            access_method: None,
            checks: Vec::new(),
            subpartitioned: false,
        }
    }

    /// A month long expired, one misaligned, none for now: every kind of
    /// entry, a problem, and a cleanup declared for retries.
    fn plan() -> (policy::Policy, Plan) {
        plan_on(None)
    }

    /// The same, with `events` held by Citus as `citus` says.
    fn plan_on(citus: Option<CitusTable>) -> (policy::Policy, Plan) {
        let policy = policy::parse(Path::new("partman.toml"), POLICY).unwrap();
        let events = Parent {
            oid: 1,
            schema: "public".into(),
            name: "events".into(),
            relkind: 'p',
            strategy: Some('r'),
            key: Some(PartitionKey {
                column: "created_at".into(),
                sql_type: "timestamp with time zone".into(),
            }),
            key_columns: 1,
            owner: "app".into(),
            tablespace: None,
            unlogged: false,
            partitions: vec![
                partition(
                    10,
                    "events_old",
                    "'2026-01-01 00:00:00+00'",
                    "'2026-02-01 00:00:00+00'",
                ),
                partition(
                    11,
                    "events_odd",
                    "'2026-05-03 00:00:00+00'",
                    "'2026-05-09 00:00:00+00'",
                ),
            ],
            indexes: Vec::new(),
            max_key: None,
            max_key_failure: None,
            citus,
            grants: Vec::new(),
            default_rows: None,
        };
        let snapshot = Snapshot {
            server_version_num: 170000,
            citus_version: None,
            parents: vec![Some(events), None],
            ..Snapshot::default()
        };
        let now = Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap();
        let plan = planner::plan(&policy, &snapshot, now);
        (policy, plan)
    }

    fn rendered(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut buffer = Vec::new();
        write(&mut buffer).unwrap();
        String::from_utf8(buffer).unwrap()
    }

    #[test]
    fn text_shows_each_step_with_its_lock_reason_and_retry() {
        let (policy, plan) = plan();
        insta::assert_snapshot!(rendered(|out| write_text(out, &policy, &plan)));
    }

    #[test]
    fn sql_is_the_script_that_runs() {
        let (policy, plan) = plan();
        insta::assert_snapshot!(rendered(|out| write_sql(out, &policy, &plan)));
    }

    #[test]
    fn a_distributed_table_is_retired_by_a_plain_detach_whose_lock_timeout_reaches_the_workers() {
        let (policy, plan) = plan_on(Some(CitusTable::Distributed));
        let sql = rendered(|out| write_sql(out, &policy, &plan));
        assert!(
            sql.contains("-- distributed by Citus: new partitions are created like the parent")
        );
        assert!(
            sql.contains(
                "BEGIN;\nSET LOCAL citus.propagate_set_commands = 'local';\nSET LOCAL lock_timeout = '1s';\n\
                 COMMENT ON TABLE \"public\".\"events_old\" IS 'pgm: retiring partition of \"public\".\"events\"';\n\
                 ALTER TABLE \"public\".\"events\" DETACH PARTITION \"public\".\"events_old\";\nCOMMIT;"
            ),
            "{sql}"
        );
        assert!(!sql.contains("CONCURRENTLY;\n-- "), "{sql}");
        let detach = plan
            .steps()
            .find(|s| s.action == Action::DetachPartition)
            .unwrap();
        assert_eq!(
            (detach.lock, detach.transactional),
            (planner::Lock::AccessExclusive, true)
        );
        assert!(
            plan.steps()
                .filter(|s| s.transactional)
                .all(|s| s.lock_timeout_on_workers)
        );
    }

    #[test]
    fn citus_tables_pgm_does_not_manage_are_error_entries() {
        for (kind, words) in [
            (CitusTable::Reference, "Citus reference table"),
            (CitusTable::Local, "Citus local table"),
            (
                CitusTable::SingleShard {
                    in_distributed_schema: true,
                },
                "distributed schema",
            ),
        ] {
            let (_, plan) = plan_on(Some(kind));
            let problem = plan
                .problems()
                .find(|p| p.kind == planner::ProblemKind::CitusUnsupported)
                .unwrap_or_else(|| panic!("{kind:?}: {:?}", plan.entries));
            assert!(problem.message.contains(words), "{}", problem.message);
            assert!(plan.steps().all(|s| s.table.to_string() != "public.events"));
        }
    }

    #[test]
    fn summary_counts_what_happened_per_table() {
        let done = TableReport {
            created: 2,
            attached: 3,
            detached: 1,
            dropped: 1,
            indexes_built: 2,
            indexes_attached: 2,
            moved_rows: 7,
            deferred: vec!["the detach of public.b_old waits".into()],
            warnings: vec!["partition public.odd is not one period".into()],
            ..TableReport::new("public.a")
        };
        let skipped = TableReport {
            skipped: Some("another pgm partitions maintain is working on it".into()),
            ..TableReport::new("public.b")
        };
        let failed = TableReport {
            failures: vec!["public.c does not exist".into()],
            ..TableReport::new("public.c")
        };
        let idle = TableReport::new("public.d");
        assert_eq!(
            rendered(|out| write_summary(out, &[done, skipped, failed, idle])),
            "public.a: 2 created, 1 attached (created by an interrupted run), 1 detached, 1 dropped, \
             2 indexes built, 2 indexes attached, 7 rows moved from the default partition\n\
             \x20 deferred: the detach of public.b_old waits\n\
             \x20 warning: partition public.odd is not one period\n\
             public.b: skipped: another pgm partitions maintain is working on it\n\
             public.c: \n\
             \x20 FAILED: public.c does not exist\n\
             public.d: nothing to do\n\
             summary: 2 created, 1 detached, 1 dropped, 0 archived, 2 indexes built, 1 failed, 1 skipped, 1 deferred, \
             7 rows moved from default partitions\n"
        );
    }
}
