//! The whole standard error of the mistakes users meet most, compared in
//! full: the place (file:line:col), the message, the line with its caret,
//! and what to do about it, as they read together.

mod support;

use support::{Project, TestDb, outcome, pgm};

/// `pgm args` run from the root of `project`, without a database.
fn offline(project: &Project, args: &[&str]) -> (Option<i32>, String) {
    let output = pgm()
        .current_dir(project.path())
        .args(args)
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert!(stdout.is_empty(), "{stdout}");
    (code, stderr)
}

/// `pgm migrate` run from the root of `project` against `db`.
fn migrate(project: &Project, db: &TestDb) -> (Option<i32>, String) {
    let output = project.pgm(db).arg("migrate").output().unwrap();
    let (code, _, stderr) = outcome(&output);
    (code, stderr)
}

fn with_policy(policy: &str) -> Project {
    let project = Project::new();
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();
    project
}

#[test]
fn a_misspelled_policy_key() {
    let project = with_policy(
        "[defaults]\npremake = 3\n\n[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\nretension = \"12 months\"\n",
    );
    let (code, stderr) = offline(&project, &["partitions", "plan"]);
    assert_eq!(code, Some(64));
    insta::assert_snapshot!(stderr, @r#"
    error: invalid partition policy
      caused by: partman.toml:7:1: unknown key "retension" (did you mean "retention"?)
      |
    7 | retension = "12 months"
      | ^
    "#);
}

#[test]
fn a_bad_interval_after_wide_characters() {
    let project = with_policy(
        "table = [\n\
         \t{ name = \"public.événements\", interval = \"monthly\" },\n\
         \t{ name = \"public.日本語\", interval = \"fortnightly\" },\n\
         ]\n",
    );
    let (code, stderr) = offline(&project, &["partitions", "plan"]);
    assert_eq!(code, Some(64));
    insta::assert_snapshot!(stderr, @r#"
    error: invalid partition policy
      caused by: partman.toml:3:36: unknown interval "fortnightly": use one of daily, weekly, monthly, quarterly, yearly, hourly, "N minutes", "N hours", "N days" or "N weeks"
      |
    3 |     { name = "public.日本語", interval = "fortnightly" },
      |                                          ^
    "#);
}

#[test]
fn a_table_not_in_the_policy() {
    let project = with_policy("[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\n");
    let (code, stderr) = offline(
        &project,
        &["partitions", "maintain", "--table", "public.evnts"],
    );
    assert_eq!(code, Some(64));
    insta::assert_snapshot!(stderr, @"error: --table public.evnts is not in partman.toml (did you mean public.events?)");
}

#[test]
fn malformed_connection_strings_never_show_the_password() {
    let project = Project::new();
    let cases = [
        (
            "url_bad_escape",
            "postgres://alice:s3cr%zzet@db.example.com/app",
        ),
        (
            "url_unknown_parameter",
            "postgres://alice:s3cret@db.example.com/app?sslmod=require",
        ),
        (
            "url_bad_port",
            "postgres://alice:s3cret@db.example.com:99999/app",
        ),
        (
            "key_value_unterminated_quote",
            "host=db.example.com password='s3cret",
        ),
    ];
    for (name, url) in cases {
        let (code, stderr) = offline(&project, &["migrate", "--database-url", url]);
        assert_eq!(code, Some(64), "{name}");
        assert!(!stderr.contains("s3cr"), "{name}: {stderr}");
        insta::assert_snapshot!(name, stderr);
    }
}

#[test]
fn a_migration_file_name_pgm_cannot_order() {
    let (db, project) = (TestDb::new(), Project::new());
    project
        .write("V1__init.sql", "SELECT 1;")
        .write("V2-add-orders.sql", "SELECT 1;");
    let (code, stderr) = migrate(&project, &db);
    assert_eq!(code, Some(64));
    insta::assert_snapshot!(stderr, @r#"
    error: invalid migration files
      caused by: migrations/V2-add-orders.sql: not a migration name; migrations are named V{version}__{name}.sql (or U… for unversioned), with a whole-number version and a name of letters, digits and underscores, e.g. V7__add_orders.sql
    "#);
}

#[test]
fn a_migration_with_a_syntax_error_after_wide_characters() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__comments.sql",
        "CREATE TABLE notes (body text);\n\
         COMMENT ON TABLE notes IS '備考'; SELECT body FORM notes;\n",
    );
    let (code, stderr) = migrate(&project, &db);
    assert_eq!(code, Some(64));
    insta::assert_snapshot!(stderr, @r#"
    error: invalid migration files
      caused by: migrations/V1__comments.sql:2:49: cannot parse this SQL: missing comma
      |
    2 | COMMENT ON TABLE notes IS '備考'; SELECT body FORM notes;
      |                                                   ^
    "#);
}

#[test]
fn every_bad_pending_file_is_reported_in_one_run() {
    let (db, project) = (TestDb::new(), Project::new());
    project
        .write("V1__accounts.sql", "CREATE TABLE accounts (id bigint);\n")
        .write(
            "V2__orders.sql",
            "BEGIN;\nCREATE TABLE orders (id bigint);\nCOMMIT;\n",
        )
        .write("V3__notes.sql", "CREATE TABLE notes (body text;\n")
        .write(
            "V4__index.sql",
            "CREATE INDEX CONCURRENTLY accounts_id ON accounts (id);\nINSERT INTO accounts VALUES (1);\n",
        );
    let (code, stderr) = migrate(&project, &db);
    assert_eq!(code, Some(64));
    insta::assert_snapshot!(stderr);
    let applied: i64 = db
        .connect()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('accounts', 'orders', 'notes')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(applied, 0, "no migration ran, not even the valid first one");
}

#[test]
fn a_migration_referring_to_a_missing_table() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint);\n\
         INSERT INTO orders (id, customer_id)\n    SELECT id, id FROM customers;\n",
    );
    let (code, stderr) = migrate(&project, &db);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!(stderr, @r#"
     INFO applying V1__orders.sql (transaction, 2 statements)
    error: migrations/V1__orders.sql failed; it was rolled back: nothing of it is applied
      --> migrations/V1__orders.sql:3:24
      |
    3 |     SELECT id, id FROM customers;
      |                        ^
      = 42P01: relation "customers" does not exist
    "#);
}

#[test]
fn a_statement_outside_a_transaction_failing_after_others_committed() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__orders.sql",
        "CREATE TABLE orders (id bigint, placed_at date);\n",
    );
    project.write(
        "V2__orders_indexes.sql",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_id_idx ON orders (id);\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_day_idx ON orders (placed_on);\n",
    );
    let (code, stderr) = migrate(&project, &db);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!(stderr, @r#"
     INFO applying V1__orders.sql (transaction, 1 statement)
     INFO applying V2__orders_indexes.sql (no-transaction, 2 statements)
    error: migrations/V2__orders_indexes.sql failed; statements 1 to 1 of 2 are applied and journaled; the next run resumes at statement 2 (line 2)
      --> migrations/V2__orders_indexes.sql:2:1
      |
    2 | CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_day_idx ON orders (placed_on);
      | ^
      = 42703: column "placed_on" does not exist
    "#);
}

#[test]
fn an_error_in_the_middle_of_a_migration_sent_as_one_query() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric);\n\
         INSERT INTO orders VALUES (1, 10);\n\
         UPDATE orders\n   SET total = total * 2\n WHERE totl > 5;\n\
         CREATE INDEX orders_total_idx ON orders (total);\n",
    );
    let (code, stderr) = migrate(&project, &db);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!(stderr, @r#"
     INFO applying V1__orders.sql (transaction, 4 statements)
    error: migrations/V1__orders.sql failed; it was rolled back: nothing of it is applied
      --> migrations/V1__orders.sql:5:8
      |
    5 |  WHERE totl > 5;
      |        ^
      = 42703: column "totl" does not exist
      = hint: Perhaps you meant to reference the column "orders.total".
    "#);
}

#[test]
fn an_error_after_wide_characters_in_earlier_statements() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__notes.sql",
        "CREATE TABLE notes (body text, tag text);\n\
         INSERT INTO notes VALUES ('日本語のメモ 🐘🐘', '🏷️');\n\
         INSERT INTO notes VALUES ('備考'); SELECT tagg FROM notes;\n",
    );
    let (code, stderr) = migrate(&project, &db);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!(stderr, @r#"
     INFO applying V1__notes.sql (transaction, 4 statements)
    error: migrations/V1__notes.sql failed; it was rolled back: nothing of it is applied
      --> migrations/V1__notes.sql:3:41
      |
    3 | INSERT INTO notes VALUES ('備考'); SELECT tagg FROM notes;
      |                                           ^
      = 42703: column "tagg" does not exist
      = hint: Perhaps you meant to reference the column "notes.tag".
    "#);
}

#[test]
fn an_error_without_a_position_names_its_statement() {
    let (db, project) = (TestDb::new(), Project::new());
    project.write(
        "V1__halve.sql",
        "CREATE TABLE t (n int);\n\
         INSERT INTO t VALUES (1);\n\
         UPDATE t SET n = n / 0;\n\
         CREATE INDEX t_n_idx ON t (n);\n",
    );
    let (code, stderr) = migrate(&project, &db);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!(stderr, @r#"
     INFO applying V1__halve.sql (transaction, 4 statements)
    error: migrations/V1__halve.sql failed; it was rolled back: nothing of it is applied
      --> migrations/V1__halve.sql:3:1
      |
    3 | UPDATE t SET n = n / 0;
      | ^
      = 22012: division by zero
    "#);
    let mut client = db.connect();
    let left: Option<String> = client
        .query_one("SELECT to_regclass('t')::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        left, None,
        "the replay to find the statement is rolled back"
    );
}
