//! Timestamp versions (`YYYYMMDDHHMMSS`) on a real PostgreSQL: a new
//! history table holds them from the start; a history of 32-bit versions
//! (refinery's default) refuses them until `pgm migrate widen-history`,
//! which gives every applied row refinery's 64-bit checksum. The expected
//! checksums were printed by refinery-core 0.10.1 built with
//! `int8-versions`, for these names and texts.

mod support;

use support::{Project, TestDb, column, outcome};

const INIT: (&str, &str, &str) = (
    "V1__init.sql",
    "CREATE TABLE a (id int);\n",
    "8578745575425343912",
);
const ADD_ORDERS: (&str, &str, &str) = (
    "V20261123160000__add_orders.sql",
    "CREATE TABLE orders (id bigint PRIMARY KEY);\n",
    "11830511706417636397",
);

fn run(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(&project.pgm(db).args(args).output().unwrap())
}

fn version_types(db: &TestDb) -> Vec<String> {
    column(
        &mut db.connect(),
        "SELECT c.relname || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid WHERE a.attname = 'version' AND c.relkind = 'r' \
         AND c.relnamespace = 'public'::regnamespace ORDER BY c.relname",
    )
}

fn history(db: &TestDb) -> Vec<String> {
    column(
        &mut db.connect(),
        "SELECT version || ' ' || checksum FROM refinery_schema_history ORDER BY version",
    )
}

#[test]
fn a_new_history_takes_64_bit_versions_when_a_file_needs_them() {
    let (db, project) = (TestDb::new(), Project::new());
    project
        .write(INIT.0, INIT.1)
        .write(ADD_ORDERS.0, ADD_ORDERS.1);
    let (code, stdout, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        version_types(&db),
        [
            "pgm_migration_journal bigint",
            "pgm_migration_runs bigint",
            "pgm_migration_texts bigint",
            "refinery_schema_history bigint",
        ]
    );
    assert_eq!(
        history(&db),
        [
            format!("1 {}", INIT.2),
            format!("20261123160000 {}", ADD_ORDERS.2)
        ]
    );
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "status", "--exit-code"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "wait", "--timeout", "0"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "ready: all 2 migrations are applied\n");
}

#[test]
fn a_32_bit_history_refuses_a_timestamp_version_until_widened() {
    let (db, project) = (TestDb::new(), Project::new());
    // Applied by refinery (its default build: 32-bit versions), then one by pgm.
    project.write(INIT.0, INIT.1);
    let migrations = refinery::load_sql_migrations(project.path().join("migrations")).unwrap();
    refinery::Runner::new(&migrations)
        .run(&mut db.connect())
        .unwrap();
    let applied_text = "CREATE TABLE b (id int); -- b\n";
    project.write("V2__b.sql", applied_text);
    let (code, stdout, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Edited since it was applied (a comment): pgm has the applied text.
    project.write("V2__b.sql", "CREATE TABLE b (id int); -- the b table\n");
    project.write(ADD_ORDERS.0, ADD_ORDERS.1);
    let narrow_history = history(&db);

    let (code, _, stderr) = run(&project, &db, &["migrate", "--allow-out-of-order"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "V20261123160000__add_orders.sql has a version above 2147483647, which \
             refinery_schema_history, pgm_migration_runs, pgm_migration_journal, pgm_migration_texts \
             cannot hold (32-bit versions, refinery's default)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("pgm migrate widen-history"), "{stderr}");
    assert_eq!(history(&db), narrow_history, "nothing changed");

    let (code, stdout, stderr) = run(&project, &db, &["migrate", "widen-history", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("\nBEGIN;\nSET LOCAL lock_timeout = '2s';\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "ALTER TABLE \"public\".\"refinery_schema_history\" ALTER COLUMN version TYPE int8;"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "UPDATE \"public\".\"refinery_schema_history\" SET checksum = '{}' WHERE version = 1 AND checksum = ",
            INIT.2
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("COMMIT;\n"), "{stdout}");
    assert_eq!(history(&db), narrow_history, "a dry run changes nothing");

    let (code, stdout, stderr) = run(&project, &db, &["migrate", "widen-history"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with(
            "widen-history: 4 table(s) now hold 64-bit versions; the checksums of 2 applied"
        ),
        "{stdout}"
    );
    assert!(
        version_types(&db)
            .iter()
            .all(|row| row.ends_with(" bigint"))
    );
    assert_eq!(history(&db)[0], format!("1 {}", INIT.2));

    // The edited file still differs from what was applied, and repair
    // still knows the applied text under its new checksum.
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("V2__b.sql: changed after it was applied"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "repair"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("(only comments or whitespace changed)"),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(history(&db)[2], format!("20261123160000 {}", ADD_ORDERS.2));
    let (code, stdout, _) = run(&project, &db, &["migrate", "widen-history"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        "widen-history: the versions are 64-bit already; nothing to do\n"
    );
}

#[test]
fn widening_refuses_an_applied_row_whose_text_is_unknown() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(INIT.0, INIT.1);
    let migrations = refinery::load_sql_migrations(project.path().join("migrations")).unwrap();
    refinery::Runner::new(&migrations)
        .run(&mut db.connect())
        .unwrap();
    // refinery kept no text, and the file changed.
    project.write(INIT.0, "CREATE TABLE a (id bigint);\n");
    let before = history(&db);
    let (code, _, stderr) = run(&project, &db, &["migrate", "widen-history"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("cannot be computed, since neither its file nor a text pgm recorded matches the checksum it was applied with: V1__init"),
        "{stderr}"
    );
    assert_eq!(history(&db), before);
    assert_eq!(version_types(&db), ["refinery_schema_history integer"]);
}

#[test]
fn new_numbers_by_the_clock_once_asked() {
    let project = Project::new();
    project.write(INIT.0, INIT.1);
    let new = |args: &[&str]| {
        let output = support::pgm()
            .current_dir(project.path())
            .args(["migrate", "new", "--at", "2027-03-04T12:30:45Z"])
            .args(args)
            .output()
            .unwrap();
        outcome(&output)
    };
    let (code, stdout, stderr) = new(&["add_orders", "--timestamp"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "migrations/V20270304123045__add_orders.sql\n");
    // The directory is numbered by the clock now; the same second is taken.
    let (code, stdout, stderr) = new(&["add_users"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "migrations/V20270304123046__add_users.sql\n");
}

#[test]
fn widening_waits_for_no_reader_longer_than_lock_timeout() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(INIT.0, INIT.1);
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut reader = db.connect();
    let mut open = reader.transaction().unwrap();
    open.batch_execute("SELECT count(*) FROM refinery_schema_history")
        .unwrap();
    let (code, _, stderr) = run(
        &project,
        &db,
        &[
            "migrate",
            "widen-history",
            "--lock-timeout",
            "50ms",
            "--lock-retries",
            "1",
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("widening the history table failed after 2 attempts; it was rolled back"),
        "{stderr}"
    );
    assert!(stderr.contains("lock timeout"), "{stderr}");
    open.rollback().unwrap();
    assert!(
        version_types(&db)
            .iter()
            .all(|row| row.ends_with(" integer"))
    );
    let (code, _, stderr) = run(&project, &db, &["migrate", "widen-history"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        version_types(&db)
            .iter()
            .all(|row| row.ends_with(" bigint"))
    );
}
