//! Plans, reports and status as text, SQL and JSON, over `io::Write`.

use std::io::{self, Write};

use serde::Serialize;

use super::plan::{Delivery, Entry, Plan, PlannedMigration, Role, State, Step, terminated};
use super::runner::AppliedReport;
use super::source::Version;
use super::sql::Mode;
use super::widen::Widening;

/// A step's SQL with its parameters written in as literals: what a DBA
/// would paste into psql.
pub fn inline_params(step: &Step) -> String {
    step.inlined()
}

fn mode_words(migration: &PlannedMigration<'_>) -> String {
    let file = migration.source.parsed();
    match file.mode {
        Mode::Transaction if migration.delivery == Delivery::OneQuery => format!(
            "in one transaction, sent as one query ({})",
            file.mode_reason
        ),
        Mode::Transaction => format!(
            "in one transaction, step by step: the file sets how literals are read ({})",
            file.mode_reason
        ),
        Mode::NoTransaction => format!(
            "outside a transaction, statement by statement ({})",
            file.mode_reason
        ),
    }
}

/// The widening of the history to 64-bit versions, as the script it runs.
pub fn write_widening(out: &mut dyn Write, widening: &Widening) -> io::Result<()> {
    writeln!(
        out,
        "-- one transaction, retried after a lock timeout: {} table(s) rewritten with 64-bit versions\n\
         -- (ACCESS EXCLUSIVE on each until COMMIT), then the checksums of {} applied migration(s)\n\
         -- as refinery's 64-bit build computes them",
        widening.tables, widening.checksums
    )?;
    for step in &widening.steps {
        writeln!(out, "{}", terminated(&inline_params(step)))?;
    }
    Ok(())
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
        if migration.delivery == Delivery::OneQuery {
            writeln!(
                out,
                "-- on an error with no position, the steps before COMMIT run again one by one in a\n\
                 -- transaction that is rolled back, to name the failing statement"
            )?;
        }
        if migration.steps.iter().any(|step| step.role == Role::Guard) {
            writeln!(
                out,
                "-- the DO block stops it unless this session alone holds the migration lock (then held to COMMIT)"
            )?;
        }
        if migration.resume_at > 0 {
            writeln!(
                out,
                "-- resuming an interrupted run: statements 1 to {} are done",
                migration.resume_at
            )?;
        }
        let mut explained = Vec::new();
        for step in &migration.steps {
            if let Role::Statement(index) | Role::DropLeftover(index) = step.role
                && !explained.contains(&index)
                && let Some((_, why)) = migration.expanded.iter().find(|(e, _)| *e == index)
            {
                explained.push(index);
                writeln!(out, "-- statement {}: {why}", index + 1)?;
            }
            if let Role::DropLeftover(index) = step.role
                && migration.expanded.iter().any(|(e, _)| *e == index)
            {
                writeln!(
                    out,
                    "-- an interrupted build left this partition's index INVALID:"
                )?;
            } else if let Role::DropLeftover(index) = step.role {
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
    version: Version,
    name: &'a str,
    file: String,
    mode: Mode,
    mode_reason: &'a str,
    delivery: Delivery,
    resume_at: usize,
    /// Statements planned as other statements, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    expanded: Vec<JsonExpanded<'a>>,
    steps: &'a [Step],
}

#[derive(Serialize)]
struct JsonExpanded<'a> {
    /// 0-based, as the steps' roles count.
    statement: usize,
    why: &'a str,
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
                delivery: m.delivery,
                resume_at: m.resume_at,
                expanded: m
                    .expanded
                    .iter()
                    .map(|(statement, why)| JsonExpanded {
                        statement: *statement,
                        why,
                    })
                    .collect(),
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
    version: Version,
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
            (None, Some(progress)) => format!(
                "{} statement{} done",
                progress.completed,
                if progress.completed == 1 { "" } else { "s" }
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::fixtures::*;
    use crate::migrate::plan::{self, Param, Plan, reconcile};
    use crate::migrate::source::SourceMigration;
    use crate::migrate::source::VersionWidth;

    fn rendered(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every output in one plan: the tables to create, a transactional
    /// migration, and a resumed one that drops a leftover and skips a built index.
    fn sources() -> [SourceMigration; 2] {
        [
            migration("V1__a.sql", "CREATE TABLE a (x int, y int, z int)"),
            migration(
                "V2__i.sql",
                &format!(
                    "{TWO_CONCURRENT_INDEXES}CREATE INDEX CONCURRENTLY IF NOT EXISTS a_z_idx ON a (z);\n"
                ),
            ),
        ]
    }

    fn full_plan(sources: &[SourceMigration]) -> Plan<'_> {
        let mut state = fresh_database();
        state.setup = vec!["CREATE TABLE IF NOT EXISTS h (version int4)".to_owned()];
        state.progress = vec![journal(&sources[1], 1)];
        state.indexes = vec![index("a_y_idx", true), index("a_z_idx", false)];
        plan::plan(sources, &state, &options()).unwrap()
    }

    fn with_checksums(text: &str, sources: &[SourceMigration]) -> String {
        sources.iter().fold(text.to_owned(), |text, source| {
            text.replace(
                &source.checksum(VersionWidth::Int4).to_string(),
                &format!("CHECKSUM{}", source.version),
            )
        })
    }

    #[test]
    fn inline_params_writes_literals_and_tells_1_from_10() {
        let step = Step {
            role: Role::History,
            sql: "SELECT $1, $2, $10".to_owned(),
            params: [Param::Int(7), Param::Text("O'Brien".to_owned())]
                .into_iter()
                .chain((3..=10).map(Param::Int))
                .collect(),
            on_retry: None,
            patient: false,
        };
        assert_eq!(inline_params(&step), "SELECT 7, 'O''Brien', 10");
    }

    #[test]
    fn sql_of_a_plan_is_what_a_dba_would_paste_into_psql() {
        let sources = sources();
        let sql = with_checksums(
            &rendered(|out| write_sql(out, &full_plan(&sources))),
            &sources,
        );
        let journal = "\"public\".\"pgm_migration_journal\"";
        let history = "\"public\".\"refinery_schema_history\"";
        let runs = "\"public\".\"pgm_migration_runs\"";
        let clock =
            "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
        let upsert = "ON CONFLICT (version) DO UPDATE SET started_at = EXCLUDED.started_at, \
                      finished_at = EXCLUDED.finished_at, mode = EXCLUDED.mode";
        let texts = "\"public\".\"pgm_migration_texts\"";
        let text_upsert = "ON CONFLICT (version) DO UPDATE SET checksum = excluded.checksum, text = excluded.text";
        let (text1, text2) = (
            crate::db::quote_literal(sources[0].text()),
            crate::db::quote_literal(sources[1].text()),
        );
        let guard = crate::migrate::plan::run_lock_guard(crate::migrate::apply::MIGRATE_LOCK_KEY);
        assert_eq!(
            sql,
            format!(
                "-- create the migration tables\n\
                 CREATE TABLE IF NOT EXISTS h (version int4);\n\
                 \n\
                 -- V1__a.sql: in one transaction, sent as one query (every statement can run in one transaction)\n\
                 -- on an error with no position, the steps before COMMIT run again one by one in a\n\
                 -- transaction that is rolled back, to name the failing statement\n\
                 -- the DO block stops it unless this session alone holds the migration lock (then held to COMMIT)\n\
                 BEGIN;\n\
                 SET LOCAL lock_timeout = '2s';\n\
                 SET LOCAL statement_timeout = '5min';\n\
                 {guard};\n\
                 CREATE TABLE a (x int, y int, z int);\n\
                 INSERT INTO {history} (version, name, applied_on, checksum) VALUES (1, 'a', {clock}, 'CHECKSUM1');\n\
                 INSERT INTO {runs} (version, started_at, finished_at, mode) VALUES (1, transaction_timestamp(), clock_timestamp(), 'transaction') {upsert};\n\
                 INSERT INTO {texts} (version, checksum, text) VALUES (1, 'CHECKSUM1', {text1}) {text_upsert};\n\
                 COMMIT;\n\
                 RESET ALL;\n\
                 \n\
                 -- V2__i.sql: outside a transaction, statement by statement (CREATE INDEX CONCURRENTLY (line 1) cannot run inside a transaction)\n\
                 -- resuming an interrupted run: statements 1 to 1 are done\n\
                 SET lock_timeout = '2s';\n\
                 SET statement_timeout = 0;\n\
                 -- statement already done: index public.a_y_idx already exists and is valid (an interrupted run built it)\n\
                 INSERT INTO {journal} (version, checksum, statement) VALUES (2, 'CHECKSUM2', 2);\n\
                 SET lock_timeout = '30min';\n\
                 -- statement 3 was interrupted and left an INVALID index:\n\
                 DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"a_z_idx\";\n\
                 CREATE INDEX CONCURRENTLY IF NOT EXISTS a_z_idx ON a (z);\n\
                 SET lock_timeout = '2s';\n\
                 INSERT INTO {journal} (version, checksum, statement) VALUES (2, 'CHECKSUM2', 3);\n\
                 BEGIN;\n\
                 INSERT INTO {history} (version, name, applied_on, checksum) VALUES (2, 'i', {clock}, 'CHECKSUM2');\n\
                 INSERT INTO {runs} (version, started_at, finished_at, mode) VALUES (2, coalesce((SELECT completed_at FROM {journal} WHERE version = 2 AND statement = 0), transaction_timestamp()), clock_timestamp(), 'no-transaction') {upsert};\n\
                 INSERT INTO {texts} (version, checksum, text) VALUES (2, 'CHECKSUM2', {text2}) {text_upsert};\n\
                 DELETE FROM {journal} WHERE version = 2;\n\
                 COMMIT;\n\
                 RESET ALL;\n\
                 \n"
            )
        );
    }

    #[test]
    fn a_migration_sent_as_one_query_shows_that_query_line_for_line() {
        let sources = sources();
        let plan = full_plan(&sources);
        let sql = rendered(|out| write_sql(out, &plan));
        let block: Vec<&str> = sql
            .split("\n\n")
            .find(|block| block.starts_with("-- V1__a.sql"))
            .unwrap()
            .lines()
            .skip_while(|line| line.starts_with("--"))
            .collect();
        assert_eq!(
            block.join("\n"),
            plan.migrations[0].one_query().unwrap().text
        );
    }

    #[test]
    fn text_of_a_plan_lists_the_migrations_then_their_sql() {
        let sources = sources();
        let plan = full_plan(&sources);
        let text = rendered(|out| write_text(out, &plan, "lock_timeout 2s"));
        let sql = rendered(|out| write_sql(out, &plan));
        assert_eq!(
            text,
            format!(
                "2 migrations to apply (lock_timeout 2s):\n  \
                 V1__a.sql                                transaction     1 statement\n  \
                 V2__i.sql                                no-transaction  3 statements, resumes at statement 2\n\
                 \n{sql}"
            )
        );
    }

    #[test]
    fn an_empty_plan_says_there_is_nothing_to_apply() {
        let plan = Plan::default();
        assert_eq!(
            rendered(|out| write_text(out, &plan, "")),
            "nothing to apply: the database is up to date\n"
        );
        assert_eq!(
            rendered(|out| write_sql(out, &plan)),
            "-- nothing to apply\n"
        );
        assert_eq!(
            rendered(|out| write_json(out, &plan)),
            "{\n  \"setup\": [],\n  \"migrations\": []\n}\n"
        );
    }

    #[test]
    fn json_of_a_plan_has_each_migration_with_its_steps_and_parameters() {
        let sources = sources();
        let json = rendered(|out| write_json(out, &full_plan(&sources)));
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            json["setup"],
            serde_json::json!([{"role": "setup", "sql": "CREATE TABLE IF NOT EXISTS h (version int4)"}])
        );
        let second = &json["migrations"][1];
        assert_eq!(second["version"], 2);
        assert_eq!(second["name"], "i");
        assert_eq!(second["file"], "migrations/V2__i.sql");
        assert_eq!(second["mode"], "no_transaction");
        assert_eq!(
            second["mode_reason"],
            "CREATE INDEX CONCURRENTLY (line 1) cannot run inside a transaction"
        );
        assert_eq!(second["resume_at"], 1);
        assert_eq!(
            second["steps"][2],
            serde_json::json!({
                "role": "journal",
                "index": 1,
                "sql": "INSERT INTO \"public\".\"pgm_migration_journal\" (version, checksum, statement) VALUES ($1, $2, $3)",
                "params": [2, sources[1].checksum(VersionWidth::Int4).to_string(), 2],
            })
        );
        assert_eq!(
            second["steps"][3],
            serde_json::json!({"role": "setting", "sql": "SET lock_timeout = '30min'"})
        );
        assert_eq!(
            second["steps"][4],
            serde_json::json!({
                "role": "drop_leftover",
                "index": 2,
                "sql": "DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"a_z_idx\"",
                "patient": true,
            })
        );
        assert_eq!(
            json["migrations"][0]["steps"][0],
            serde_json::json!({"role": "begin", "sql": "BEGIN"})
        );
    }

    fn applied_reports() -> [AppliedReport; 2] {
        [
            AppliedReport {
                version: 1,
                name: "a".to_owned(),
                file: "migrations/V1__a.sql".to_owned(),
                mode: Mode::Transaction,
                statements: 1,
                resumed_at: 0,
                attempts: 1,
                duration_ms: 4,
            },
            AppliedReport {
                version: 2,
                name: "i".to_owned(),
                file: "migrations/V2__i.sql".to_owned(),
                mode: Mode::NoTransaction,
                statements: 3,
                resumed_at: 1,
                attempts: 2,
                duration_ms: 1500,
            },
        ]
    }

    #[test]
    fn report_text_says_what_was_applied_and_how() {
        assert_eq!(
            rendered(|out| write_report_text(out, &applied_reports(), 0)),
            "applied migrations/V1__a.sql (transaction, 4 ms)\n\
             applied migrations/V2__i.sql (no-transaction, 1500 ms, resumed at statement 2, 2 attempts)\n"
        );
        assert_eq!(
            rendered(|out| write_report_text(out, &[], 1)),
            "nothing to apply: 1 migration already applied\n"
        );
        assert_eq!(
            rendered(|out| write_report_text(out, &[], 3)),
            "nothing to apply: 3 migrations already applied\n"
        );
    }

    #[test]
    fn report_json_has_every_field() {
        let json = rendered(|out| write_report_json(out, &applied_reports()[1..]));
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"applied": [{
                "version": 2,
                "name": "i",
                "file": "migrations/V2__i.sql",
                "mode": "no_transaction",
                "statements": 3,
                "resumed_at": 1,
                "attempts": 2,
                "duration_ms": 1500,
            }]})
        );
    }

    /// One migration in each state.
    fn status_state(sources: &[SourceMigration]) -> crate::migrate::plan::DatabaseState {
        let mut state = fresh_database();
        let gone = migration("V6__gone.sql", "SELECT 1;");
        state.applied = vec![history_row(&sources[0]), history_row(&gone)];
        state.applied[1].duration_ms = None;
        state
            .applied
            .push(history_row(&migration("V2__b.sql", "SELECT 2;")));
        state.progress = vec![journal(&sources[2], 1)];
        state
    }

    fn status_sources() -> [SourceMigration; 5] {
        [
            migration("V1__a.sql", "SELECT 1;"),
            migration("V2__b.sql", "SELECT 'changed';"),
            migration("V3__i.sql", TWO_CONCURRENT_INDEXES),
            migration("V4__out_of_order.sql", "SELECT 4;"),
            migration("V7__new.sql", "SELECT 7;"),
        ]
    }

    #[test]
    fn status_text_has_a_row_a_migration_and_a_summary() {
        let sources = status_sources();
        let state = status_state(&sources);
        let entries = reconcile(&sources, &state);
        let at = "2026-01-05T10:00:00.000000Z";
        assert_eq!(
            rendered(|out| write_status_text(out, &entries)),
            format!(
                "version  name          state           applied on                   duration\n      \
                 1  a             applied         {at}  12 ms\n      \
                 2  b             DIVERGENT       {at}  12 ms\n      \
                 3  i             partly applied                               1 statement done\n      \
                 4  out_of_order  out of order                                 \n      \
                 6  gone          MISSING         {at}  \n      \
                 7  new           pending                                      \n\
                 1 applied, 1 pending, 1 partly applied, 1 out of order, 1 divergent, 1 missing\n"
            )
        );
        assert_eq!(
            rendered(|out| write_status_text(out, &[])),
            "no migrations found and none applied\n"
        );
    }

    #[test]
    fn status_json_has_a_record_a_migration() {
        let sources = status_sources();
        let state = status_state(&sources);
        let entries = reconcile(&sources, &state);
        let json = rendered(|out| write_status_json(out, &entries));
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            json[2],
            serde_json::json!({
                "version": 3,
                "name": "i",
                "state": "partly_applied",
                "file": "migrations/V3__i.sql",
                "applied_on": null,
                "duration_ms": null,
                "completed_statements": 1,
            })
        );
        assert_eq!(
            json[4],
            serde_json::json!({
                "version": 6,
                "name": "gone",
                "state": "missing",
                "file": null,
                "applied_on": "2026-01-05T10:00:00.000000Z",
                "duration_ms": null,
                "completed_statements": null,
            })
        );
        let states: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            [
                "applied",
                "divergent",
                "partly_applied",
                "out_of_order",
                "missing",
                "pending"
            ]
        );
    }
}
