//! `pgm migrate` under the conditions of a real deploy: a lock held by live
//! traffic, a process killed mid-migration, eight pods at once, and a
//! database refinery migrated before.

mod support;

use std::io::Read;
use std::time::Duration;

use support::{Project, TestDb, column, outcome, output_text, wait_for};

fn history(db: &TestDb) -> Vec<String> {
    column(
        &mut db.connect(),
        "SELECT version || ' ' || name FROM refinery_schema_history ORDER BY version",
    )
}

/// `pgm migrate` to completion, which must succeed.
fn migrate_ok(project: &Project, db: &TestDb) {
    let output = project.pgm(db).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
}

/// Waits until the server has ended every pgm session of this database (a
/// killed pgm's backend notices within a second).
fn wait_until_pgm_is_gone(watcher: &mut postgres::Client) {
    assert!(wait_for(
        watcher,
        "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgm')",
        30
    ));
}

fn finish(child: std::process::Child) -> (Option<i32>, String, String) {
    let output = child.wait_with_output().unwrap();
    outcome(&output)
}

fn kill(mut child: std::process::Child) -> String {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

#[test]
fn a_lock_held_by_traffic_makes_the_migration_retry_then_fail_cleanly_then_succeed() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__orders.sql",
        "CREATE TABLE orders (id int);\nINSERT INTO orders VALUES (1);",
    );
    migrate_ok(&project, &db);
    project.write(
        "V2__orders_total.sql",
        "CREATE TABLE order_totals (id int);\nALTER TABLE orders ADD COLUMN total numeric;\n",
    );

    // A report transaction that read orders and stays open.
    let mut reader = db.connect();
    reader
        .batch_execute("BEGIN; SELECT * FROM orders;")
        .unwrap();
    let output = project
        .pgm(&db)
        .args(["migrate", "--lock-timeout", "600ms", "--lock-retries", "2"])
        .output()
        .unwrap();
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "V2__orders_total.sql (rolled back): lock timeout (attempt 1 of 3); retrying in"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("error: migrations/V2__orders_total.sql failed after 3 attempts; it was rolled back: nothing of it is applied"), "{stderr}");
    assert!(
        stderr.contains("  --> migrations/V2__orders_total.sql:2:1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("= 55P03: canceling statement due to lock timeout"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("= lock: it waited for AccessExclusiveLock on relation orders, held by pid "),
        "the error names the lock and its holder: {stderr}"
    );
    assert!(stderr.contains("idle in transaction"), "{stderr}");
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT to_regclass('order_totals')::text"
        ),
        ["NULL"],
        "nothing half-applied"
    );
    assert_eq!(history(&db), ["1 orders"]);

    reader.batch_execute("COMMIT").unwrap();
    let output = project
        .pgm(&db)
        .args(["migrate", "--lock-timeout", "200ms"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
    assert_eq!(history(&db), ["1 orders", "2 orders_total"]);
}

#[test]
fn killed_inside_a_transactional_migration_the_next_run_applies_it_once() {
    let (db, project) = (TestDb::new(), Project::new());
    // Sleeps until the test creates go_fast, so the rerun does not wait.
    project.write(
        "V1__slow.sql",
        "CREATE TABLE marker (id int);\nINSERT INTO marker VALUES (1);\n\
         SELECT pg_sleep(CASE WHEN to_regclass('go_fast') IS NULL THEN 60 ELSE 0 END);\n",
    );
    let child = project.spawn(&db, &["migrate"]);
    let mut watcher = db.connect();
    assert!(wait_for(
        &mut watcher,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgm' AND wait_event = 'PgSleep')",
        30
    ));
    kill(child);
    // The server notices the vanished client within a second and rolls back,
    // releasing the run lock with the session.
    wait_until_pgm_is_gone(&mut watcher);
    assert_eq!(
        column(&mut watcher, "SELECT to_regclass('marker')::text"),
        ["NULL"],
        "rolled back whole"
    );
    assert_eq!(
        column(&mut watcher, "SELECT count(*) FROM refinery_schema_history"),
        ["0"]
    );

    watcher.batch_execute("CREATE TABLE go_fast ()").unwrap();
    let output = project.pgm(&db).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
    assert_eq!(history(&db), ["1 slow"]);
    assert_eq!(
        column(&mut watcher, "SELECT count(*) FROM marker"),
        ["1"],
        "applied exactly once"
    );
}

#[test]
fn killed_between_statements_outside_a_transaction_the_next_run_resumes() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__t.sql",
        "CREATE TABLE t (a int, b int);\nCREATE TABLE go_on (id int);\n",
    );
    migrate_ok(&project, &db);
    // Sleeps until the test creates go_fast, so the rerun does not wait.
    project.write(
        "V2__t_indexes.sql",
        "CREATE INDEX CONCURRENTLY t_a ON t (a);\n\
         SELECT pg_sleep(CASE WHEN to_regclass('go_fast') IS NULL THEN 60 ELSE 0 END);\n\
         CREATE INDEX CONCURRENTLY t_b ON t (b);\n",
    );
    let child = project.spawn(&db, &["migrate"]);
    let mut watcher = db.connect();
    assert!(wait_for(
        &mut watcher,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgm' AND query LIKE 'SELECT pg_sleep%')",
        30
    ));
    kill(child);
    wait_until_pgm_is_gone(&mut watcher);
    assert_eq!(
        column(
            &mut watcher,
            "SELECT count(*) FROM pgm_migration_journal WHERE version = 2 AND statement > 0"
        ),
        ["1"]
    );

    watcher.batch_execute("CREATE TABLE go_fast ()").unwrap();
    let (code, stdout, _) = {
        let output = project
            .pgm(&db)
            .args(["migrate", "--dry-run", "--format", "sql"])
            .output()
            .unwrap();
        let (stdout, stderr) = output_text(&output);
        (output.status.code(), stdout, stderr)
    };
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("-- resuming an interrupted run: statements 1 to 1 are done"),
        "{stdout}"
    );
    // (The file's text, kept with its history row, still holds it.)
    assert!(
        !stdout
            .lines()
            .any(|line| line.starts_with("CREATE INDEX CONCURRENTLY t_a")),
        "the done statement is not planned again: {stdout}"
    );

    let output = project.pgm(&db).arg("migrate").output().unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("applied V2__t_indexes.sql (no-transaction, ")
            && stdout.contains("resumed at statement 2"),
        "{stdout}"
    );
    assert_eq!(history(&db), ["1 t", "2 t_indexes"]);
    assert_eq!(
        column(
            &mut watcher,
            "SELECT c.relname || ' ' || i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 't'::regclass ORDER BY 1"
        ),
        ["t_a true", "t_b true"]
    );
    assert_eq!(
        column(&mut watcher, "SELECT count(*) FROM pgm_migration_journal"),
        ["0"]
    );
}

#[test]
fn killed_during_a_concurrent_index_build_the_next_run_drops_the_invalid_index_and_rebuilds() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__t.sql",
        "CREATE TABLE t (a int);\nINSERT INTO t SELECT generate_series(1, 1000);\n",
    );
    migrate_ok(&project, &db);
    project.write(
        "V2__t_a.sql",
        "CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n",
    );

    // A writer with an open transaction makes the build wait after it has
    // created the (still INVALID) index.
    let mut writer = db.connect();
    writer
        .batch_execute("BEGIN; INSERT INTO t VALUES (0);")
        .unwrap();
    let child = project.spawn(&db, &["migrate", "--lock-timeout", "60s"]);
    let mut watcher = db.connect();
    assert!(wait_for(
        &mut watcher,
        "SELECT EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass('t_a_idx') AND NOT indisvalid) \
         AND EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgm' AND wait_event_type = 'Lock')",
        30
    ));
    kill(child);
    wait_until_pgm_is_gone(&mut watcher);
    writer.batch_execute("COMMIT").unwrap();
    assert_eq!(
        column(
            &mut watcher,
            "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 't_a_idx'::regclass"
        ),
        ["false"]
    );

    let output = project
        .pgm(&db)
        .args(["migrate", "--dry-run", "--format", "sql"])
        .output()
        .unwrap();
    let (stdout, _) = output_text(&output);
    assert!(stdout.contains("-- statement 1 was interrupted and left an INVALID index:\nDROP INDEX CONCURRENTLY IF EXISTS \"public\".\"t_a_idx\";"), "{stdout}");

    let output = project.pgm(&db).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
    assert_eq!(
        column(
            &mut watcher,
            "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 't_a_idx'::regclass"
        ),
        ["true"]
    );
    assert_eq!(
        column(
            &mut watcher,
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
        ),
        ["0"]
    );
    assert_eq!(history(&db), ["1 t", "2 t_a"]);
}

#[test]
fn a_concurrent_build_past_its_snapshot_budget_fails_once_and_the_next_run_rebuilds_it() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write("V1__t.sql", "CREATE TABLE t (a int);\n");
    migrate_ok(&project, &db);
    project.write(
        "V2__t_a.sql",
        "CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n",
    );
    let mut writer = db.connect();
    writer
        .batch_execute("BEGIN; INSERT INTO t VALUES (0);")
        .unwrap();
    let output = project
        .pgm(&db)
        .args(["migrate", "--snapshot-wait", "1s", "--lock-retries", "20"])
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("V2__t_a.sql") && !stderr.contains("retrying"),
        "one attempt, not retried: {stderr}"
    );
    let mut watcher = db.connect();
    assert_eq!(
        column(
            &mut watcher,
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
        ),
        ["1"],
        "the cancelled build left its INVALID index"
    );
    writer.batch_execute("COMMIT").unwrap();

    let plan = project
        .pgm(&db)
        .args(["migrate", "--dry-run"])
        .output()
        .unwrap();
    let (_, stdout, _) = outcome(&plan);
    assert!(
        stdout.contains("DROP INDEX CONCURRENTLY IF EXISTS \"public\".\"t_a_idx\";"),
        "the next plan drops the leftover first: {stdout}"
    );
    migrate_ok(&project, &db);
    assert_eq!(
        column(
            &mut watcher,
            "SELECT count(*) FILTER (WHERE NOT indisvalid) || ' ' || count(*) FROM pg_index WHERE indrelid = 't'::regclass"
        ),
        ["0 1"]
    );
}

#[test]
fn eight_runners_at_once_apply_each_migration_exactly_once() {
    let (db, project) = (TestDb::new(), Project::bundled());
    for n in 8..=20 {
        project.write(
            &format!("V{n}__table_{n}.sql"),
            &format!("CREATE TABLE table_{n} (id int PRIMARY KEY, note text);\nINSERT INTO table_{n} VALUES (1, 'once');\n"),
        );
    }
    let children: Vec<_> = (0..8).map(|_| project.spawn(&db, &["migrate"])).collect();
    let results: Vec<_> = children.into_iter().map(finish).collect();
    for (code, _, stderr) in &results {
        assert_eq!(*code, Some(0), "{stderr}");
        assert!(!stderr.contains("deadlock"), "{stderr}");
    }
    let applied_lines: usize = results
        .iter()
        .map(|(_, stdout, _)| stdout.lines().filter(|l| l.starts_with("applied ")).count())
        .sum();
    assert_eq!(
        applied_lines, 20,
        "each migration applied by exactly one runner"
    );
    let mut client = db.connect();
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) || ' ' || count(DISTINCT version) FROM refinery_schema_history"
        ),
        ["20 20"]
    );
    for n in 8..=20 {
        assert_eq!(
            column(&mut client, &format!("SELECT count(*) FROM table_{n}")),
            ["1"]
        );
    }
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
        ),
        ["0"]
    );
}

#[test]
fn a_runner_waits_for_the_lock_and_says_who_holds_it() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    let mut holder = db.connect();
    holder
        .batch_execute("SET application_name = 'other-deploy'")
        .unwrap();
    let key: i64 = 0x0070_676d_206d_6967;
    holder
        .query_one("SELECT pg_advisory_lock($1)", &[&key])
        .unwrap();
    let output = project
        .pgm(&db)
        .args(["migrate", "--lock-wait", "1s"])
        .output()
        .unwrap();
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("waiting for the migration lock (0s so far): held by pid "),
        "{stderr}"
    );
    assert!(stderr.contains("(other-deploy, connected "), "{stderr}");
    assert!(
        stderr.contains("error: the migration lock is held by another session, pid "),
        "{stderr}"
    );
    assert!(
        stderr.contains("raise the wait with --lock-wait"),
        "{stderr}"
    );
    assert_eq!(
        column(&mut db.connect(), "SELECT to_regclass('a')::text"),
        ["NULL"]
    );

    let child = project.spawn(&db, &["migrate", "--lock-wait", "30s"]);
    std::thread::sleep(Duration::from_millis(700));
    holder
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .unwrap();
    let (code, _, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(history(&db), ["1 a"]);
}

#[test]
fn refinery_and_pgm_read_each_others_history() {
    let (db, project) = (TestDb::new(), Project::bundled());
    // refinery runs every file in a transaction, so it gets the six that allow one.
    project.remove("V7__users_last_login_idx.sql");
    let migrations = refinery::load_sql_migrations(project.path().join("migrations")).unwrap();
    let mut client = db.connect();
    refinery::Runner::new(&migrations).run(&mut client).unwrap();

    let output = project
        .pgm(&db)
        .args(["migrate", "status", "--exit-code"])
        .output()
        .unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "nothing pending after refinery: {stdout}{stderr}"
    );
    assert!(stdout.ends_with("6 applied\n"), "{stdout}");

    let bundled = Project::bundled();
    let output = bundled.pgm(&db).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
    let all = refinery::load_sql_migrations(bundled.path().join("migrations")).unwrap();
    let applied = refinery::Runner::new(&all)
        .get_applied_migrations(&mut client)
        .unwrap();
    assert_eq!(applied.len(), 7);
    for (applied, file) in applied.iter().zip(&all) {
        assert_eq!(
            (applied.version(), applied.name(), applied.checksum()),
            (file.version(), file.name(), file.checksum())
        );
        assert!(applied.applied_on().is_some());
    }
    // refinery's own verification accepts pgm's rows: nothing to run, no divergence.
    let report = refinery::Runner::new(&all).run(&mut client).unwrap();
    assert!(report.applied_migrations().is_empty());
}

#[test]
fn a_run_with_nothing_to_do_does_not_wait_for_another_runs_lock() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    migrate_ok(&project, &db);
    let mut holder = db.connect();
    let key: i64 = 0x0070_676d_206d_6967;
    holder
        .query_one("SELECT pg_advisory_lock($1)", &[&key])
        .unwrap();
    let output = project
        .pgm(&db)
        .args(["migrate", "--lock-wait", "1s"])
        .output()
        .unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "nothing to apply: 1 migration already applied\n");
    assert!(
        !stderr.contains("waiting for the migration lock"),
        "{stderr}"
    );

    // A new file is work again: it waits for the lock.
    project.write("V2__b.sql", "CREATE TABLE b (id int);\n");
    let output = project
        .pgm(&db)
        .args(["migrate", "--lock-wait", "1s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output_text(&output)
            .1
            .contains("the migration lock is held by another session"),
        "{}",
        output_text(&output).1
    );
}

/// A concurrent index build waits for every older transaction. Behind a
/// long report it waits under its own budget (`--snapshot-wait`), says whom
/// it waits for, and succeeds at the first attempt, while a writer's inserts
/// go through: a short lock_timeout would have failed it into the same wall
/// again and again.
#[test]
fn a_concurrent_index_build_waits_out_an_old_transaction_without_failing_or_blocking_writes() {
    let db = TestDb::new();
    let mut setup = db.connect();
    setup
        .batch_execute("CREATE TABLE readings (id bigint, value int); INSERT INTO readings SELECT g, g FROM generate_series(1, 1000) g")
        .unwrap();
    let project = Project::new();
    project.write(
        "V1__readings_value.sql",
        "CREATE INDEX CONCURRENTLY readings_value_idx ON readings (value);\n",
    );

    let mut reader = db.connect();
    reader
        .batch_execute(
            "SET application_name = 'nightly-report'; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM readings",
        )
        .unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut client = db.connect();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = std::time::Instant::now();
                client
                    .batch_execute("INSERT INTO readings VALUES (0, 0)")
                    .unwrap();
                worst = worst.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            worst
        })
    };

    // Without its own budget, 3 attempts of 1 s each and their backoff end
    // before the report does.
    let child = project.spawn(
        &db,
        &[
            "migrate",
            "--lock-timeout",
            "1s",
            "--lock-retries",
            "2",
            "--snapshot-wait",
            "5min",
        ],
    );
    // Hold the report until the build waits for it, then past one report.
    let mut watcher = db.connect();
    assert!(wait_for(
        &mut watcher,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'pgm' \
                        AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock')",
        30
    ));
    std::thread::sleep(Duration::from_secs(7));
    reader.batch_execute("COMMIT").unwrap();
    let (code, _, stderr) = finish(child);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst_insert = writer.join().unwrap();

    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains("lock timeout"),
        "no attempt failed: {stderr}"
    );
    assert!(
        stderr.contains("V1__readings_value.sql statement 1: still waiting after"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nightly-report"),
        "names whom it waits for: {stderr}"
    );
    assert_eq!(
        column(
            &mut setup,
            "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'readings_value_idx'::regclass"
        ),
        ["true"]
    );
    // Not a speed goal: an insert stuck behind the build would wait until
    // the report ended, 7 s and more.
    assert!(
        worst_insert < Duration::from_secs(5),
        "the writer waited {worst_insert:?}"
    );
}

/// A table partitioned by month into twelve partitions, with rows in each.
const EVENTS: &str = "CREATE TABLE events (id bigint, at date NOT NULL, kind text) PARTITION BY RANGE (at);\n\
    DO $$ BEGIN FOR m IN 1..12 LOOP \
      EXECUTE format('CREATE TABLE events_%s PARTITION OF events FOR VALUES FROM (%L) TO (%L)', m, \
        make_date(2026, m, 1), make_date(2026, m, 1) + interval '1 month'); \
    END LOOP; END $$;\n\
    INSERT INTO events SELECT g, date '2026-01-01' + (g % 365), 'k' || (g % 7) FROM generate_series(1, 3000) g;\n";

/// The index on events and, per partition, its index attached to it.
fn partitioned_index(watcher: &mut postgres::Client, index: &str) -> Vec<String> {
    column(
        watcher,
        &format!(
            "SELECT (SELECT indisvalid::text FROM pg_index WHERE indexrelid = '{index}'::regclass) || ' ' || \
             (SELECT count(*) FROM pg_inherits h JOIN pg_index i ON i.indexrelid = h.inhrelid \
              WHERE h.inhparent = '{index}'::regclass AND i.indisvalid) || ' ' || \
             (SELECT count(*) FROM pg_index WHERE NOT indisvalid)"
        ),
    )
}

#[test]
fn a_concurrent_index_on_a_partitioned_table_is_built_per_partition_and_attached() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write("V1__events.sql", EVENTS);
    migrate_ok(&project, &db);
    project.write(
        "V2__events_kind.sql",
        "CREATE INDEX CONCURRENTLY events_kind_idx ON events (kind) WHERE kind <> 'k0';\n",
    );
    let output = project
        .pgm(&db)
        .args(["migrate", "--dry-run", "--format", "sql"])
        .output()
        .unwrap();
    let (_, plan, _) = outcome(&output);
    assert!(
        plan.contains(
            "-- statement 1: public.events is partitioned, where PostgreSQL refuses CREATE INDEX CONCURRENTLY"
        ) && plan.contains(
            "\nCREATE INDEX IF NOT EXISTS \"events_kind_idx\" ON ONLY \"public\".\"events\" (kind) WHERE kind <> 'k0';\n"
        ) && plan.contains(
            "\nCREATE INDEX CONCURRENTLY IF NOT EXISTS \"events_7_events_kind_idx\" ON \"public\".\"events_7\" (kind) WHERE kind <> 'k0';\n"
        ) && plan.contains(
            "\nALTER INDEX \"public\".\"events_kind_idx\" ATTACH PARTITION \"public\".\"events_7_events_kind_idx\";\n"
        ),
        "{plan}"
    );
    assert_eq!(plan.matches("ATTACH PARTITION").count(), 12, "{plan}");
    let output = project
        .pgm(&db)
        .args(["migrate", "--dry-run", "--format", "json"])
        .output()
        .unwrap();
    let (_, json, _) = outcome(&output);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let expanded = &json["migrations"][0]["expanded"][0];
    assert_eq!(expanded["statement"], 0, "{json}");
    assert!(
        expanded["why"]
            .as_str()
            .unwrap()
            .starts_with("public.events is partitioned"),
        "{json}"
    );

    let output = project.pgm(&db).arg("migrate").output().unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, Some(0), "{stderr}");
    let mut watcher = db.connect();
    assert_eq!(
        partitioned_index(&mut watcher, "events_kind_idx"),
        ["true 12 0"]
    );
    assert_eq!(history(&db), ["1 events", "2 events_kind"]);
    assert_eq!(
        column(&mut watcher, "SELECT count(*) FROM pgm_migration_journal"),
        ["0"]
    );
}

#[test]
fn killed_anywhere_in_a_partitioned_index_rollout_the_next_run_finishes_it() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write("V1__events.sql", EVENTS);
    migrate_ok(&project, &db);
    let mut watcher = db.connect();

    // Killed while a partition's build waits for an older transaction: its
    // INVALID index is dropped and rebuilt by the next run.
    project.write(
        "V2__events_id.sql",
        "CREATE UNIQUE INDEX CONCURRENTLY events_id_idx ON events (id, at);\n",
    );
    // (A snapshot, no lock on events: the ON ONLY index goes through.)
    let mut reader = db.connect();
    reader
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current(), count(*) FROM pg_class;",
        )
        .unwrap();
    let child = project.spawn(&db, &["migrate"]);
    assert!(wait_for(
        &mut watcher,
        "SELECT EXISTS (SELECT FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
           WHERE c.relname LIKE 'events%events_id_idx' AND NOT i.indisvalid) \
         AND EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() \
           AND application_name = 'pgm' AND wait_event_type = 'Lock')",
        30
    ));
    kill(child);
    wait_until_pgm_is_gone(&mut watcher);
    reader.batch_execute("COMMIT").unwrap();
    let output = project
        .pgm(&db)
        .args(["migrate", "--dry-run", "--format", "sql"])
        .output()
        .unwrap();
    let (_, plan, _) = outcome(&output);
    assert!(
        plan.contains("-- an interrupted build left this partition's index INVALID:\nDROP INDEX CONCURRENTLY IF EXISTS \"public\".\"events_1_events_id_idx\";"),
        "{plan}"
    );
    migrate_ok(&project, &db);
    assert_eq!(
        partitioned_index(&mut watcher, "events_id_idx"),
        ["true 12 0"]
    );

    // Killed at points that vary from round to round: as soon as the
    // parent index exists, then after some partitions have theirs, plus a
    // fixed jitter of a few milliseconds; whatever it interrupted, a clean
    // run ends with the index valid and attached everywhere.
    const JITTER_MS: [u64; 5] = [0, 3, 7, 1, 5];
    for (round, built) in [0_u64, 2, 5, 8, 11].into_iter().enumerate() {
        let version = 3 + round;
        let index = format!("events_r{round}_idx");
        project.write(
            &format!("V{version}__events_r{round}.sql"),
            &format!("CREATE INDEX CONCURRENTLY {index} ON events (kind, id);\n"),
        );
        let jitter = JITTER_MS[round];
        let child = project.spawn(&db, &["migrate"]);
        let progress = format!(
            "SELECT to_regclass('{index}') IS NOT NULL AND \
             (SELECT count(*) FROM pg_class WHERE relname LIKE 'events\\_%\\_{index}') >= {built}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !watcher.query_one(&progress, &[]).unwrap().get::<_, bool>(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round} never got there"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(jitter));
        kill(child);
        wait_until_pgm_is_gone(&mut watcher);
        let output = project.pgm(&db).arg("migrate").output().unwrap();
        let (code, _, stderr) = outcome(&output);
        assert_eq!(code, Some(0), "killed after {built} builds: {stderr}");
        assert_eq!(
            partitioned_index(&mut watcher, &index),
            ["true 12 0"],
            "killed after {built} builds"
        );
    }
    assert_eq!(
        column(&mut watcher, "SELECT count(*) FROM pgm_migration_journal"),
        ["0"]
    );
    assert_eq!(
        column(&mut watcher, "SELECT count(*) FROM refinery_schema_history"),
        ["7"]
    );
}

#[test]
fn a_sub_partitioned_partition_gets_its_own_index_attached_in_turn() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__m.sql",
        "CREATE SCHEMA \"Odd Schema\";\n\
         CREATE TABLE m (id int, region text, at date) PARTITION BY LIST (region);\n\
         CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu') PARTITION BY RANGE (at);\n\
         CREATE TABLE m_eu_2026 PARTITION OF m_eu FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\n\
         CREATE TABLE \"Odd Schema\".\"M Us\" PARTITION OF m FOR VALUES IN ('us');\n\
         INSERT INTO m VALUES (1, 'eu', '2026-03-01'), (2, 'us', '2026-03-01');\n",
    );
    migrate_ok(&project, &db);
    project.write(
        "V2__m_id.sql",
        "CREATE INDEX CONCURRENTLY m_id_idx ON m (id);\n",
    );
    migrate_ok(&project, &db);
    let mut watcher = db.connect();
    assert_eq!(
        column(
            &mut watcher,
            "SELECT n.nspname || '.' || c.relname || ' ' || i.indisvalid || ' ' || coalesce(h.inhparent::regclass::text, '-') \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_inherits h ON h.inhrelid = i.indexrelid WHERE c.relname LIKE '%m_id_idx' ORDER BY 1"
        ),
        [
            "Odd Schema.M Us_m_id_idx true m_id_idx",
            "public.m_eu_2026_m_id_idx true m_eu_m_id_idx",
            "public.m_eu_m_id_idx true m_id_idx",
            "public.m_id_idx true -",
        ]
    );
}

/// The step of every transactional migration that confirms the run lock
/// inside its transaction: it passes in the session holding the lock and in
/// one when nobody holds it (and then holds it to COMMIT), and stops the
/// transaction in a session without it while another holds it.
#[test]
fn the_guard_in_each_migration_stops_it_when_another_session_holds_the_lock() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    let output = project
        .pgm(&db)
        .args(["migrate", "--dry-run", "--format", "sql"])
        .output()
        .unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let guard = stdout
        .lines()
        .find(|line| line.starts_with("DO $$BEGIN IF NOT pg_try_advisory_xact_lock("))
        .expect("the plan shows the guard")
        .to_owned();
    let key: i64 = 0x0070_676d_206d_6967;
    let (mut holder, mut other) = (db.connect(), db.connect());
    let in_transaction = |client: &mut postgres::Client| {
        let result = client.batch_execute(&format!("BEGIN; {guard} COMMIT;"));
        let _ = client.batch_execute("ROLLBACK");
        result
    };
    in_transaction(&mut other).expect("nobody holds the lock: the guard takes it");
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .unwrap();
    in_transaction(&mut holder).expect("the holder passes");
    let error = in_transaction(&mut other).unwrap_err();
    let db_error = error.as_db_error().unwrap();
    assert_eq!(
        db_error.message(),
        "another session holds the migration lock"
    );
    assert!(
        db_error.hint().unwrap().contains("a pooler moved it"),
        "{db_error:?}"
    );
}

/// A migration the server rolls back to break a deadlock with live traffic
/// is run again, like one that timed out waiting for its lock.
#[test]
fn a_migration_chosen_as_a_deadlock_victim_is_run_again() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__tables.sql",
        "CREATE TABLE a (id int);\nCREATE TABLE b (id int);",
    );
    migrate_ok(&project, &db);
    project.write(
        "V2__both.sql",
        "LOCK TABLE a IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(2);\nLOCK TABLE b IN ACCESS EXCLUSIVE MODE;\n",
    );
    // Traffic holding b that then wants a; it waits longer than the
    // migration before looking for a deadlock, so the migration is rolled
    // back, not the traffic.
    let mut traffic = db.connect();
    traffic
        .batch_execute(
            "BEGIN; SET LOCAL deadlock_timeout = '60s'; LOCK TABLE b IN ACCESS SHARE MODE;",
        )
        .unwrap();
    let child = project.spawn(
        &db,
        &["migrate", "--lock-timeout", "20s", "--lock-retries", "2"],
    );
    assert!(wait_for(
        &mut db.connect(),
        "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = 'a'::regclass AND granted \
         AND pid <> pg_backend_pid())",
        30
    ));
    traffic
        .batch_execute("LOCK TABLE a IN ACCESS SHARE MODE; COMMIT;")
        .unwrap();
    let (code, stdout, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "V2__both.sql (rolled back): rolled back after a conflict with another transaction (a deadlock, a \
             serialization failure, a race lost) (attempt 1 of 3); retrying in"
        ),
        "{stderr}"
    );
    assert_eq!(history(&db), ["1 tables", "2 both"]);
}
