//! `pgm migrate` on a real PostgreSQL: applying, planning, status, baseline,
//! and every error a user can meet, with its exact text.

mod support;

use support::{Project, TestDb, column, outcome};

fn history(db: &TestDb) -> Vec<String> {
    column(
        &mut db.connect(),
        "SELECT version || ' ' || name FROM refinery_schema_history ORDER BY version",
    )
}

fn run(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let output = project.pgm(db).args(args).output().unwrap();
    outcome(&output)
}

#[test]
fn applies_the_bundled_migrations_once() {
    let (db, project) = (TestDb::new(), Project::bundled());
    let (code, stdout, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    let applied: Vec<&str> = stdout
        .lines()
        .map(|line| line.split(" (").next().unwrap())
        .collect();
    assert_eq!(
        applied,
        [
            "applied V1__extensions_and_helpers.sql",
            "applied V2__users.sql",
            "applied V3__user_profiles.sql",
            "applied V4__events.sql",
            "applied V5__audit_log.sql",
            "applied V6__products.sql",
            "applied V7__users_last_login_idx.sql",
        ]
    );
    assert!(
        stdout.contains("V7__users_last_login_idx.sql (no-transaction, "),
        "{stdout}"
    );
    let mut client = db.connect();
    assert_eq!(
        column(&mut client, "SELECT count(*) FROM refinery_schema_history"),
        ["7"]
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'users_last_login_idx'::regclass"
        ),
        ["true"]
    );
    assert_eq!(
        column(&mut client, "SELECT count(*) FROM pgm_migration_journal"),
        ["0"]
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT relkind::text FROM pg_class WHERE relname = 'events'"
        ),
        ["p"]
    );

    let (code, stdout, _) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "nothing to apply: 7 migrations already applied\n");
}

#[test]
fn dry_run_prints_the_exact_sql_and_changes_nothing() {
    let (db, project) = (TestDb::new(), Project::bundled());
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "--dry-run", "--format", "sql"]);
    assert_eq!(code, Some(0), "{stderr}");
    insta::assert_snapshot!("dry_run_sql_bundled", stdout);
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT to_regclass('refinery_schema_history')::text"
        ),
        ["NULL"]
    );

    let (_, stdout, _) = run(&project, &db, &["migrate", "--dry-run", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["migrations"].as_array().unwrap().len(), 7);
    assert_eq!(plan["migrations"][6]["mode"], "no_transaction");
    assert_eq!(plan["migrations"][0]["steps"][0]["sql"], "BEGIN");

    let (_, stdout, _) = run(&project, &db, &["migrate", "--dry-run"]);
    assert!(
        stdout.starts_with(
            "7 migrations to apply (lock_timeout 2s, 5 retries, statement_timeout 5min):\n"
        ),
        "{stdout}"
    );

    run(&project, &db, &["migrate", "--target", "3"]);
    let (_, stdout, _) = run(
        &project,
        &db,
        &["migrate", "--dry-run", "--format", "sql", "--target", "4"],
    );
    assert!(
        stdout.starts_with("-- V4__events.sql: in one transaction"),
        "{stdout}"
    );
    assert!(!stdout.contains("V5__"), "{stdout}");
}

#[test]
fn target_stops_at_the_version() {
    let (db, project) = (TestDb::new(), Project::bundled());
    let (code, _, stderr) = run(&project, &db, &["migrate", "--target", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(history(&db), ["1 extensions_and_helpers", "2 users"]);
}

#[test]
fn status_lists_applied_and_pending_and_exit_code_says_pending() {
    let (db, project) = (TestDb::new(), Project::bundled());
    run(&project, &db, &["migrate", "--target", "5"]);
    let (code, stdout, _) = run(&project, &db, &["migrate", "status", "--exit-code"]);
    assert_eq!(code, Some(2));
    let states: Vec<String> = stdout
        .lines()
        .skip(1)
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        states,
        [
            "1 extensions_and_helpers applied",
            "2 users applied",
            "3 user_profiles applied",
            "4 events applied",
            "5 audit_log applied",
            "6 products pending",
            "7 users_last_login_idx pending",
            "5 applied, 2",
        ]
    );
    assert!(
        stdout.lines().nth(1).unwrap().ends_with(" ms"),
        "applied rows show their duration: {stdout}"
    );
    let (code, _, _) = run(&project, &db, &["migrate", "status"]);
    assert_eq!(code, Some(0), "without --exit-code pending is not an error");

    let (_, stdout, _) = run(&project, &db, &["migrate", "status", "--format", "json"]);
    let entries: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(entries[0]["state"], "applied");
    assert!(entries[0]["duration_ms"].is_i64());
    assert_eq!(entries[6]["state"], "pending");

    run(&project, &db, &["migrate"]);
    let (code, _, _) = run(&project, &db, &["migrate", "status", "--exit-code"]);
    assert_eq!(code, Some(0));
}

#[test]
fn a_failing_statement_is_shown_at_its_line_and_nothing_of_the_migration_stays() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write("V1__orders.sql", "CREATE TABLE orders (id int);\n\nALTER TABLE orders\n  ADD COLUMN total numeric;\nSELECT no_such_column FROM orders;\n");
    let (code, _, stderr) = run(&project, &db, &["migrate", "-q"]);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("failing_statement", stderr);
    assert_eq!(
        column(&mut db.connect(), "SELECT to_regclass('orders')::text"),
        ["NULL"]
    );
    assert!(history(&db).is_empty());
}

#[test]
fn errors_carry_detail_and_hint() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__t.sql",
        "CREATE TABLE t (id int PRIMARY KEY);\nINSERT INTO t VALUES (1), (1);\n",
    );
    let (code, _, stderr) = run(&project, &db, &["migrate", "-q"]);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("error_with_detail", stderr);
}

#[test]
fn edited_missing_and_out_of_order_migrations_are_refused() {
    let (db, project) = (TestDb::new(), Project::new());
    project
        .write("V1__a.sql", "CREATE TABLE a (id int);")
        .write("V3__c.sql", "CREATE TABLE c (id int);");
    assert_eq!(run(&project, &db, &["migrate"]).0, Some(0));

    project.write("V2__b.sql", "CREATE TABLE b (id int);");
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(
        "error: the migrations do not match the history of this database:\n  - migrations/V2__b.sql: version 2 is new but below the highest applied version 3: give it a version \
         above that, or pass --allow-out-of-order if it is independent of the later ones"
    ), "{stderr}");
    let (code, stdout, _) = run(&project, &db, &["migrate", "status"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("out of order"), "{stdout}");
    let (code, _, stderr) = run(&project, &db, &["migrate", "--allow-out-of-order"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(history(&db), ["1 a", "2 b", "3 c"]);

    project.write("V1__a.sql", "CREATE TABLE a (id bigint);");
    project.remove("V3__c.sql");
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(1));
    let stderr = stderr
        .lines()
        .map(|line| {
            if line.contains("applied on 20") {
                redact_dates(line)
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("divergent_and_missing", stderr);
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "status"]);
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("DIVERGENT") && stdout.contains("MISSING"),
        "{stdout}"
    );
    assert!(
        stderr.contains("divergent or missing migrations: V1__a, V3__c"),
        "{stderr}"
    );
}

fn redact_dates(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("applied on 20") {
        out.push_str(&rest[..at + "applied on ".len()]);
        let after = &rest[at + "applied on ".len()..];
        let end = after.find([' ', ',', ')']).unwrap_or(after.len());
        out.push_str("[date]");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn unversioned_migrations_may_come_late() {
    let (db, project) = (TestDb::new(), Project::new());
    project
        .write("V1__a.sql", "CREATE TABLE a (id int);")
        .write("V5__b.sql", "CREATE TABLE b (id int);");
    run(&project, &db, &["migrate"]);
    project.write("U3__refresh.sql", "CREATE TABLE r (id int);");
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(history(&db), ["1 a", "3 refresh", "5 b"]);
}

/// Migration files (name, bytes) of one case.
type Files<'a> = &'a [(&'a str, &'a [u8])];

#[test]
fn bad_migration_files_are_named_and_nothing_runs() {
    let cases: &[(&str, Files)] = &[
        ("bad_name_dash", &[("V1__add-users.sql", b"SELECT 1;")]),
        (
            "bad_name_single_underscore",
            &[("V1_users.sql", b"SELECT 1;")],
        ),
        ("bad_name_extension", &[("V2__users.sq", b"SELECT 1;")]),
        ("plain_sql_file", &[("create_users.sql", b"SELECT 1;")]),
        (
            "duplicate_version",
            &[("V1__a.sql", b"SELECT 1;"), ("V1__b.sql", b"SELECT 2;")],
        ),
        (
            "not_utf8",
            &[("V1__a.sql", b"SELECT 1;\nSELECT '\xff\xfe';")],
        ),
        (
            "version_too_large",
            &[("V99999999999999999999__a.sql", b"SELECT 1;")],
        ),
        (
            "mixed_modes",
            &[(
                "V1__a.sql",
                b"CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY t_a ON t (a);\n",
            )],
        ),
        (
            "transaction_control",
            &[("V1__a.sql", b"BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;\n")],
        ),
        (
            "syntax_error",
            &[(
                "V1__a.sql",
                b"CREATE TABLE t (a int);\nCREATE TABEL u (b int);\n",
            )],
        ),
    ];
    let db = TestDb::new();
    for (name, files) in cases {
        let project = Project::new();
        for (file, bytes) in *files {
            std::fs::write(project.migration_path(file), bytes).unwrap();
        }
        let (code, stdout, stderr) = run(&project, &db, &["migrate"]);
        assert_eq!(code, Some(64), "{name}: {stderr}");
        assert!(stdout.is_empty());
        insta::assert_snapshot!(format!("bad_file_{name}"), stderr);
    }
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT to_regclass('refinery_schema_history')::text"
        ),
        ["NULL"]
    );

    let project = Project::new();
    std::fs::remove_dir(project.path().join("migrations")).unwrap();
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("the migrations directory migrations cannot be read"),
        "{stderr}"
    );
}

#[test]
fn other_files_in_the_directory_are_left_alone() {
    let (db, project) = (TestDb::new(), Project::new());
    project
        .write("V1__a.sql", "CREATE TABLE a (id int);")
        .write("README.md", "notes")
        .write(".gitkeep", "");
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_set_in_one_migration_does_not_leak_into_the_next() {
    let (db, project) = (TestDb::new(), Project::new());
    db.connect().batch_execute("CREATE SCHEMA other").unwrap();
    project
        .write(
            "V1__a.sql",
            "SET search_path TO other;\nCREATE TABLE in_other (id int);",
        )
        .write("V2__b.sql", "CREATE TABLE in_public (id int);");
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut client = db.connect();
    assert_eq!(
        column(&mut client, "SELECT to_regclass('other.in_other')::text"),
        ["other.in_other"]
    );
    assert_eq!(
        column(&mut client, "SELECT to_regclass('public.in_public')::text"),
        ["in_public"]
    );
}

#[test]
fn baseline_records_without_running() {
    let (db, project) = (TestDb::new(), Project::bundled());
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "baseline", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "baseline: recorded 3 migration(s) up to version 3 as applied, without running them\n"
    );
    assert_eq!(
        history(&db),
        ["1 extensions_and_helpers", "2 users", "3 user_profiles"]
    );
    assert_eq!(
        column(&mut db.connect(), "SELECT to_regclass('users')::text"),
        ["NULL"],
        "nothing ran"
    );

    let (code, _, stderr) = run(&project, &db, &["migrate", "baseline", "5"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("the history already holds 3 migration(s), up to version 3: baseline is for a database pgm has not migrated yet"), "{stderr}");
    let (code, _, stderr) = run(&project, &TestDb::new(), &["migrate", "baseline", "0"]);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("no migration has a version at or below 0"),
        "{stderr}"
    );
}

#[test]
fn format_sql_needs_dry_run() {
    let (db, project) = (TestDb::new(), Project::bundled());
    let (code, _, stderr) = run(&project, &db, &["migrate", "--format", "sql"]);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("--format sql prints a plan: use it with --dry-run"),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    let (db, project) = (TestDb::new(), Project::new());
    for n in 1..=1000 {
        project.write(
            &format!("V{n}__t_{n}.sql"),
            &format!("CREATE TABLE t_{n} (id int PRIMARY KEY, note text);\n"),
        );
    }
    // `pgm migrate --dry-run --format sql | head -1`: far more output than a pipe holds.
    let mut child = project.spawn(&db, &["migrate", "--dry-run", "--format", "sql"]);
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(first, "-- create the migration tables\n");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn the_history_keeps_the_file_text_exactly_when_sent_as_one_query() {
    let (db, project) = (TestDb::new(), Project::new());
    let text = "CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql\n\
                AS $$ SELECT $1 + $2 $$;\n\
                COMMENT ON FUNCTION add(int, int) IS 'it''s $3 -- and \\ a backslash';\n";
    project.write("V1__add.sql", text);
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT text FROM pgm_migration_texts WHERE version = 1"
        ),
        [text]
    );
    assert_eq!(history(&db), ["1 add"]);
}
