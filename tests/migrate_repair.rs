//! `pgm migrate repair`: an edited applied file is accepted when only its
//! comments or whitespace changed, refused with the first changed statement
//! otherwise, and recorded anyway with --force, each repair audited.

mod support;

use support::{Project, TestDb, column, outcome};

fn run(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let output = project.pgm(db).args(args).output().unwrap();
    outcome(&output)
}

const ORIGINAL: &str =
    "CREATE TABLE accounts (id bigint PRIMARY KEY);\nINSERT INTO accounts VALUES (1);\n";

fn applied_project(db: &TestDb) -> Project {
    let project = Project::new();
    project.write("V1__accounts.sql", ORIGINAL);
    let (code, _, stderr) = run(&project, db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    project
}

#[test]
fn a_comment_only_edit_is_repaired_and_audited() {
    let db = TestDb::new();
    let project = applied_project(&db);
    project.write(
        "V1__accounts.sql",
        "-- Accounts of the shop; ids come from the billing system.\nCREATE TABLE accounts (\n    id bigint PRIMARY KEY\n);\n\nINSERT INTO accounts VALUES (1); /* the first customer */\n",
    );
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("`pgm migrate repair` records the new checksum"),
        "{stderr}"
    );

    let (code, stdout, stderr) = run(&project, &db, &["migrate", "repair"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("repaired: migrations/V1__accounts.sql (version 1): checksum "),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("(only comments or whitespace changed)\n"),
        "{stdout}"
    );
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT format('%s %s %s %s', version, forced, os_user <> '', old_checksum <> new_checksum) FROM pgm_migration_repairs"
        ),
        ["1 f t t"]
    );
    let (code, _, stderr) = run(
        &project,
        &db,
        &["migrate", "repair", "migrations/V1__accounts.sql"],
    );
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("unchanged since it was applied: nothing to repair"),
        "{stderr}"
    );
}

#[test]
fn a_changed_statement_is_refused_with_the_statement_and_forced_with_an_audit_row() {
    let db = TestDb::new();
    let project = applied_project(&db);
    let edited =
        "CREATE TABLE accounts (id bigint PRIMARY KEY);\nINSERT INTO accounts VALUES (2);\n";
    project.write("V1__accounts.sql", edited);
    let (code, stdout, stderr) = run(&project, &db, &["migrate", "repair"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    insta::assert_snapshot!(stderr, @r"
    error: migrations/V1__accounts.sql:2:30: this statement changed after the file was applied, not only comments or whitespace
      |
    2 | INSERT INTO accounts VALUES (2);
      |                              ^
      applied: INSERT INTO accounts VALUES ( 1 ) ;
      now:     INSERT INTO accounts VALUES ( 2 ) ;
      Restore the applied text and put the change in a new migration; or, if the database already has this change (made by hand), record it with --force
    ");
    let checksum_before = column(
        &mut db.connect(),
        "SELECT checksum FROM refinery_schema_history",
    );

    let (code, stdout, stderr) = run(&project, &db, &["migrate", "repair", "--force"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("(forced: statements changed"), "{stdout}");
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT format('%s %s', forced, old_checksum) FROM pgm_migration_repairs"
        ),
        [format!("t {}", checksum_before[0])]
    );
    let (code, _, stderr) = run(&project, &db, &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        column(&mut db.connect(), "SELECT text FROM pgm_migration_texts"),
        [edited],
        "the forced text is the one compared next time"
    );
}

#[test]
fn a_file_applied_before_texts_were_kept_needs_force() {
    let db = TestDb::new();
    let project = applied_project(&db);
    db.connect()
        .batch_execute("DELETE FROM pgm_migration_texts")
        .unwrap();
    project.write("V1__accounts.sql", &format!("-- a comment\n{ORIGINAL}"));
    let (code, _, stderr) = run(&project, &db, &["migrate", "repair"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("applied before pgm kept the text of applied files"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&project, &db, &["migrate", "repair", "--force"]);
    assert_eq!(code, Some(0), "{stderr}");
}
