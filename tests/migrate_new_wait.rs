//! `pgm migrate new` (numbering, headers, refusals, files `pgm migrate`
//! applies) and `pgm migrate wait` on a real PostgreSQL: at once, while
//! another process applies, across a dropped session, at the timeout.

mod support;

use std::time::{Duration, Instant};

use support::{Project, TestDb, column, outcome, pgm, wait_for};

/// `pgm migrate new …` run from the project root, without a database.
fn new(project: &Project, args: &[&str]) -> (Option<i32>, String, String) {
    let output = pgm()
        .current_dir(project.path())
        .args(["migrate", "new"])
        .args(args)
        .output()
        .unwrap();
    outcome(&output)
}

fn run(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(&project.pgm(db).args(args).output().unwrap())
}

fn files(project: &Project) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(project.path().join("migrations"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn new_numbers_after_the_highest_version() {
    let project = Project::new();
    let (code, stdout, stderr) = new(&project, &["create_users"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "migrations/V1__create_users.sql\n");

    // Gaps are kept: the next is after the highest.
    project.write("V5__orders.sql", "CREATE TABLE orders (id int);\n");
    let (code, stdout, stderr) = new(&project, &["add_orders_index", "--no-transaction"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "migrations/V6__add_orders_index.sql\n");
    assert_eq!(
        files(&project),
        [
            "V1__create_users.sql",
            "V5__orders.sql",
            "V6__add_orders_index.sql"
        ]
    );
    let written = std::fs::read_to_string(project.migration_path("V1__create_users.sql")).unwrap();
    assert!(
        written.starts_with("-- V1__create_users.sql: a migration, applied by `pgm migrate`"),
        "{written}"
    );
    assert!(written.contains("one transaction together with its history row"));
    let written =
        std::fs::read_to_string(project.migration_path("V6__add_orders_index.sql")).unwrap();
    assert!(written.starts_with("-- pgm:no-transaction\n"), "{written}");
    assert!(written.contains("CREATE INDEX CONCURRENTLY"), "{written}");
}

#[test]
fn new_creates_a_missing_directory_and_prints_the_path_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let output = pgm()
        .current_dir(dir.path())
        .args(["--migrations", "db/migrations", "migrate", "new", "init"])
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "db/migrations/V1__init.sql\n");
    assert!(dir.path().join("db/migrations/V1__init.sql").is_file());
}

#[test]
fn new_refuses_a_bad_name_and_writes_nothing() {
    let project = Project::new();
    let (code, stdout, stderr) = new(&project, &["add-orders table"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "error: \"add-orders table\" is not a migration name: use letters, digits and underscores \
         only (it becomes V{version}__{name}.sql), e.g. pgm migrate new add_orders_table\n"
    );
    assert!(files(&project).is_empty());
}

#[test]
fn new_refuses_a_directory_with_invalid_files() {
    let project = Project::new();
    project.write("V1_init.sql", "SELECT 1;\n");
    let (code, _, stderr) = new(&project, &["next"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.starts_with("error: invalid migration files\n  caused by: migrations/V1_init.sql: not a migration name"),
        "{stderr}"
    );
}

#[test]
fn new_never_overwrites() {
    let project = Project::new();
    // Something already holds the name the next file would get.
    std::fs::create_dir(project.migration_path("V1__init.sql")).unwrap();
    let (code, stdout, stderr) = new(&project, &["init"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "error: migrations/V1__init.sql already exists: pgm migrate new never overwrites a file\n"
    );
}

#[test]
fn new_files_are_applied_by_migrate_each_in_the_mode_asked() {
    let (db, project) = (TestDb::new(), Project::new());
    let append = |name: &str, sql: &str| {
        let path = project.migration_path(name);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, format!("{text}{sql}")).unwrap();
    };
    assert_eq!(new(&project, &["create_things"]).0, Some(0));
    append("V1__create_things.sql", "CREATE TABLE things (id int);\n");
    // Without the header this file would be refused for mixing modes; the
    // header makes it run statement by statement.
    assert_eq!(
        new(&project, &["things_index", "--no-transaction"]).0,
        Some(0)
    );
    append(
        "V2__things_index.sql",
        "CREATE TABLE others (id int);\nCREATE INDEX CONCURRENTLY things_id_idx ON things (id);\n",
    );
    // The header alone, as written.
    assert_eq!(new(&project, &["nothing_yet"]).0, Some(0));

    let (code, stdout, stderr) = run(&project, &db, &["migrate", "--dry-run", "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let modes: Vec<&str> = plan["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|migration| migration["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["transaction", "no_transaction", "transaction"]);

    let (code, stdout, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("V2__things_index.sql (no-transaction, "),
        "{stdout}"
    );
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT version || ' ' || name FROM refinery_schema_history ORDER BY version"
        ),
        ["1 create_things", "2 things_index", "3 nothing_yet"]
    );
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'things_id_idx'::regclass"
        ),
        ["true"]
    );
}

/// Two quick migrations and one that takes a while.
fn slow_project() -> Project {
    let project = Project::new();
    project.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    project.write("V2__b.sql", "CREATE TABLE b (id int);\n");
    project.write(
        "V3__slow.sql",
        "SELECT pg_sleep(2);\nCREATE TABLE c (id int);\n",
    );
    project
}

/// True once a `pgm migrate wait` session other than `not_pid` has polled
/// and sits idle between polls, outside any transaction.
fn waiter_polling(client: &mut postgres::Client, not_pid: i32) -> bool {
    let sql = format!(
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'pgm' AND pid <> {not_pid} AND state = 'idle' \
         AND xact_start IS NULL AND query LIKE 'SELECT %')"
    );
    wait_for(client, &sql, 20)
}

fn waiter_pid(client: &mut postgres::Client) -> i32 {
    client
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgm'",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn wait_returns_at_once_when_everything_is_applied() {
    let (db, project) = (TestDb::new(), Project::bundled());
    assert_eq!(run(&project, &db, &["migrate"]).0, Some(0));
    let started = Instant::now();
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "wait"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "ready: all 7 migrations are applied\n");
    assert!(!stderr.contains("waiting for"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn wait_times_out_naming_what_is_missing_and_honours_the_target() {
    let (db, project) = (TestDb::new(), Project::bundled());
    // No history table yet: nothing is applied.
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "wait", "--timeout", "0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(
            "error: looked once (--timeout 0): still not applied: 7 migrations: V1__extensions_and_helpers, \
             V2__users, V3__user_profiles, V4__events, V5__audit_log, V6__products, \
             V7__users_last_login_idx\n"
        ),
        "{stderr}"
    );

    assert_eq!(run(&project, &db, &["migrate", "--target", "5"]).0, Some(0));
    let started = Instant::now();
    let (code, _, stderr) = run(
        &project,
        &db,
        &["migrate", "wait", "--timeout", "1s", "--interval", "200ms"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(10));
    assert_eq!(
        stderr
            .matches("waiting for 2 migrations: V6__products, V7__users_last_login_idx")
            .count(),
        1,
        "said once, not at every poll: {stderr}"
    );
    assert!(
        stderr.contains(
            "error: timed out after 1s: still not applied: 2 migrations: V6__products, V7__users_last_login_idx\n"
        ),
        "{stderr}"
    );

    let (code, stdout, stderr) = run(&project, &db, &["migrate", "wait", "--target", "5"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "ready: all 5 migrations up to version 5 are applied\n"
    );
}

#[test]
fn wait_returns_soon_after_another_process_applies() {
    let (db, project) = (TestDb::new(), slow_project());
    let waiter = project.spawn(
        &db,
        &[
            "migrate",
            "wait",
            "--interval",
            "100ms",
            "--timeout",
            "1min",
        ],
    );
    // The waiter is polling before the migrations start.
    assert!(waiter_polling(&mut db.connect(), 0));
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    let applied = Instant::now();
    let output = waiter.wait_with_output().unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(applied.elapsed() < Duration::from_secs(5), "{stderr}");
    assert_eq!(stdout, "ready: all 3 migrations are applied\n");
    assert!(
        stderr.contains("waiting for 3 migrations: V1__a, V2__b, V3__slow"),
        "{stderr}"
    );
    // V1 and V2 commit at once, V3 two seconds later: the change is said.
    assert!(
        stderr.contains("waiting for 1 migration: V3__slow"),
        "{stderr}"
    );
}

#[test]
fn wait_connects_again_when_its_session_is_ended() {
    let (db, project) = (TestDb::new(), slow_project());
    let waiter = project.spawn(
        &db,
        &[
            "migrate",
            "wait",
            "--interval",
            "100ms",
            "--timeout",
            "1min",
        ],
    );
    let mut client = db.connect();
    assert!(waiter_polling(&mut client, 0));
    let first = waiter_pid(&mut client);
    client
        .execute("SELECT pg_terminate_backend($1)", &[&first])
        .unwrap();
    // Another session, polling in its turn.
    assert!(waiter_polling(&mut client, first));
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = outcome(&waiter.wait_with_output().unwrap());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "ready: all 3 migrations are applied\n");
    assert!(
        stderr.contains("lost the connection to the database"),
        "{stderr}"
    );
}

#[test]
fn wait_stops_at_once_on_a_changed_file() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    assert_eq!(run(&project, &db, &["migrate"]).0, Some(0));
    project.write("V1__a.sql", "CREATE TABLE a (id bigint);\n");
    project.write("V2__b.sql", "CREATE TABLE b (id int);\n");
    let started = Instant::now();
    let (code, _, stderr) = run(&project, &db, &["migrate", "wait"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        stderr.starts_with("error: V1__a.sql was applied with other contents (checksum "),
        "{stderr}"
    );
}

#[test]
fn wait_keeps_trying_a_server_that_is_not_there_until_the_timeout() {
    let project = Project::new();
    project.write("V1__a.sql", "SELECT 1;\n");
    let started = Instant::now();
    let output = pgm()
        .current_dir(project.path())
        .env("DATABASE_URL", "postgres://pgm@127.0.0.1:1/app")
        .args(["migrate", "wait", "--timeout", "2s"])
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{stderr}");
    assert!(
        stderr.contains("without reaching the database: cannot connect to"),
        "{stderr}"
    );
}

#[test]
fn wait_refuses_an_empty_directory_rather_than_open_the_gate() {
    let (db, project) = (TestDb::new(), Project::new());
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "wait", "--timeout", "0"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("migrations holds no migration: there is nothing to wait for"),
        "{stderr}"
    );
}
