//! `pgm lint` over a corpus of good and bad migrations (tests/lint/corpus),
//! checked against what PostgreSQL really does with each file.

mod support;

use std::path::{Path, PathBuf};

use support::{Project, TestDb, outcome, output_text, pgm};

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repository().join("tests/lint/corpus"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus is missing");
    files
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// `pgm lint` from the repository root with the corpus's base migration and policy.
fn lint(args: &[&str]) -> (Option<i32>, String, String) {
    let output = pgm()
        .current_dir(repository())
        .args([
            "--migrations",
            "tests/lint/base",
            "--config",
            "tests/lint/partman.toml",
            "lint",
        ])
        .args(args)
        .output()
        .unwrap();
    outcome(&output)
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repository())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_corpus_file_gets_its_findings() {
    for path in corpus() {
        let name = stem(&path);
        let (code, stdout, stderr) = lint(&[&relative(&path)]);
        let expected = if name.starts_with("bad_") { 1 } else { 0 };
        assert_eq!(code, Some(expected), "{name}:\n{stdout}{stderr}");
        if name.starts_with("good_") {
            assert!(stdout.ends_with("no findings\n"), "{name}:\n{stdout}");
        }
        if name.starts_with("warn_") {
            assert!(stdout.contains(": warning["), "{name}:\n{stdout}");
        }
        insta::assert_snapshot!(format!("corpus_{name}"), format!("{stdout}{stderr}"));
    }
}

/// The rules that say PostgreSQL (or `pgm migrate`) refuses the file.
const REFUSING_RULES: [&str; 5] = [
    "syntax-error",
    "transaction-control",
    "mixed-transaction-modes",
    "unique-without-partition-key",
    "concurrent-index-on-partitioned-table",
];

#[test]
fn what_lint_says_postgresql_refuses_it_refuses_and_the_rest_applies() {
    let template = TestDb::new();
    for path in corpus() {
        let name = stem(&path);
        let (_, report, _) = lint(&["--format", "json", &relative(&path)]);
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        let predicted_refusal = report["files"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|finding| REFUSING_RULES.contains(&finding["rule"].as_str().unwrap()));

        let db = TestDb::from_template(&template);
        let project = Project::new();
        project.write(
            "V1__base.sql",
            &std::fs::read_to_string(repository().join("tests/lint/base/V1__base.sql")).unwrap(),
        );
        project.write("V2__case.sql", &std::fs::read_to_string(&path).unwrap());
        let output = project.pgm(&db).arg("migrate").output().unwrap();
        let (_, stderr) = output_text(&output);
        let applied = output.status.success();

        if predicted_refusal {
            assert!(!applied, "{name}: lint predicted a refusal, but it applied");
        } else if name == "bad_add_column_not_null_without_default" {
            // squawk's rule: the table holds a row, so PostgreSQL refuses the column.
            assert!(
                !applied && stderr.contains("contains null values"),
                "{stderr}"
            );
        } else {
            assert!(applied, "{name}: lint found no refusal, but:\n{stderr}");
        }
        if report.to_string().contains("unique-without-partition-key") {
            assert!(
                stderr.contains("must include all partitioning columns")
                    || stderr.contains(
                        "unsupported PRIMARY KEY constraint with partition key definition"
                    ),
                "{name}: {stderr}"
            );
        }
    }
}

#[test]
fn json_and_github_formats() {
    let file = "tests/lint/corpus/bad_primary_key_without_partition_key.sql";
    let (code, stdout, _) = lint(&["--format", "json", file]);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("format_json", stdout);
    let (code, stdout, _) = lint(&[
        "--format",
        "github",
        file,
        "tests/lint/corpus/warn_partitioned_table_not_in_policy.sql",
    ]);
    assert_eq!(code, Some(1));
    insta::assert_snapshot!("format_github", stdout);
    for line in stdout.lines() {
        assert!(
            line.starts_with("::error file=") || line.starts_with("::warning file="),
            "{line}"
        );
    }
}

#[test]
fn the_bundled_migrations_lint_clean_and_every_ignore_says_why() {
    let output = pgm()
        .current_dir(repository())
        .arg("lint")
        .output()
        .unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("files linted for PostgreSQL 14"),
        "{stdout}"
    );
    assert!(stdout.ends_with("no findings\n"), "{stdout}");
    for entry in std::fs::read_dir(repository().join("migrations")).unwrap() {
        let path = entry.unwrap().path();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some(rest) = line.trim().strip_prefix("-- squawk-ignore") {
                let reason = rest.split_once(" -- ").map(|(_, why)| why.trim());
                assert!(
                    reason.is_some_and(|why| why.len() > 20),
                    "{}: an ignore comment without its reason: {line}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_version_comes_from_the_server_then_the_flag_then_the_default() {
    let db = TestDb::new();
    let project = Project::new();
    project.write("V1__a.sql", "ALTER TABLE t ADD COLUMN c text;");
    let run = |command: &mut assert_cmd::Command| {
        let output = command.current_dir(project.path()).output().unwrap();
        outcome(&output)
    };
    let mut client = db.connect();
    let server: String = client
        .query_one("SELECT current_setting('server_version_num')", &[])
        .unwrap()
        .get(0);
    let server: u32 = server.parse().unwrap();
    let expected = format!(
        "PostgreSQL {}.{} (the server's)",
        server / 10_000,
        server % 10_000
    );

    let (code, stdout, stderr) = run(db.pgm().arg("lint"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&expected), "{stdout}");

    // An explicit flag needs no server, even with DATABASE_URL set.
    let (code, stdout, stderr) = run(pgm()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing")
        .args(["lint", "--pg-version", "16"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("PostgreSQL 16 (--pg-version)"), "{stdout}");

    let (code, stdout, _) = run(pgm().arg("lint"));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("PostgreSQL 14 (the default"), "{stdout}");

    // --pending reads the server anyway: a flag that disagrees is refused.
    let other = if server / 10_000 == 16 { "17" } else { "16" };
    let (code, _, stderr) = run(db.pgm().args(["lint", "--pending", "--pg-version", other]));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("drop the flag to lint for the server"),
        "{stderr}"
    );

    let (code, _, stderr) = run(pgm().args(["lint", "--pg-version", "9.6"]));
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("pgm supports PostgreSQL 14 and later"),
        "{stderr}"
    );

    let (code, _, stderr) = run(pgm()
        .env(
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/nothing?connect_timeout=1",
        )
        .arg("lint"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("give --pg-version N to lint without a server"),
        "{stderr}"
    );
}

#[test]
fn the_version_changes_what_the_rules_say() {
    let project = Project::new();
    project.write(
        "V1__not_null.sql",
        "ALTER TABLE users ADD CONSTRAINT users_name_not_null CHECK (name IS NOT NULL) NOT VALID;\n",
    );
    project.write(
        "V2__not_null.sql",
        "ALTER TABLE users VALIDATE CONSTRAINT users_name_not_null;\n\
         ALTER TABLE users ALTER COLUMN name SET NOT NULL;\n",
    );
    let rules_at = |version: &str| {
        let output = pgm()
            .current_dir(project.path())
            .args(["lint", "--format", "json", "--pg-version", version])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|file| file["findings"].as_array().unwrap().clone())
            .map(|finding| finding["rule"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(rules_at("11").contains(&"adding-not-nullable-field".to_owned()));
    assert!(!rules_at("16").contains(&"adding-not-nullable-field".to_owned()));
}

#[test]
fn pending_lints_what_migrate_would_run_knowing_the_applied_tables() {
    let db = TestDb::new();
    let project = Project::new();
    project.write(
        "V1__events.sql",
        "CREATE TABLE events (id bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at);\n\
         CREATE INDEX events_id_idx ON events (id);\n",
    );
    std::fs::write(
        project.path().join("partman.toml"),
        "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\n",
    )
    .unwrap();
    let output = project.pgm(&db).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{:?}", output_text(&output));
    project.write(
        "V2__key.sql",
        "ALTER TABLE events ADD CONSTRAINT events_id_key UNIQUE (id);\n",
    );
    let output = project
        .pgm(&db)
        .args(["lint", "--pending", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{report}");
    assert_eq!(files[0]["path"], "migrations/V2__key.sql");
    assert_eq!(files[0]["mode"], "transaction");
    let rules: Vec<&str> = files[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"unique-without-partition-key"), "{rules:?}");
    assert_eq!(report["pg_version"]["source"], "server");

    let output = project.pgm(&db).arg("migrate").output().unwrap();
    assert!(!output.status.success());
    let output = project
        .pgm(&db)
        .args(["lint", "--pending"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "V2 is still pending");
    project.remove("V2__key.sql");
    let output = project
        .pgm(&db)
        .args(["lint", "--pending"])
        .output()
        .unwrap();
    let (stdout, _) = output_text(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.starts_with("0 files linted"), "{stdout}");
}

/// A project holding one migration and this policy file.
fn project_with(sql: &str, policy: &str) -> Project {
    let project = Project::new();
    project.write("V1__case.sql", sql);
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();
    project
}

fn lint_in(project: &Project, args: &[&str]) -> (Option<i32>, String, String) {
    let output = pgm()
        .current_dir(project.path())
        .arg("lint")
        .args(args)
        .output()
        .unwrap();
    outcome(&output)
}

const PLAIN_INDEX: &str = "CREATE INDEX users_name_idx ON users (name);\n";

#[test]
fn the_lint_section_excludes_includes_and_demotes_rules() {
    let project = project_with(PLAIN_INDEX, "");
    assert_eq!(lint_in(&project, &[]).0, Some(1));

    let project = project_with(
        PLAIN_INDEX,
        "[lint]\nexclude = [\"require-concurrent-index-creation\"]\n",
    );
    let (code, stdout, _) = lint_in(&project, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.ends_with("no findings\n"));

    let project = project_with(
        PLAIN_INDEX,
        "[lint]\nwarn = [\"require-concurrent-index-creation\"]\n",
    );
    let (code, stdout, _) = lint_in(&project, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("warning[require-concurrent-index-creation]"));

    let drop = "DROP INDEX CONCURRENTLY IF EXISTS users_name_idx;\n";
    let project = project_with(drop, "");
    assert_eq!(lint_in(&project, &[]).0, Some(0));
    let project = project_with(drop, "[lint]\ninclude = [\"ban-drop-index\"]\n");
    let (code, stdout, _) = lint_in(&project, &[]);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("error[ban-drop-index]"), "{stdout}");
}

#[test]
fn configuration_mistakes_are_located_and_exit_64() {
    let project = project_with(
        PLAIN_INDEX,
        "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\n\n[lint]\n\
         exclude = [\"require-concurent-index-creation\", \"mixed-transaction-modes\"]\n\
         include = [\"require-timeout-settings\"]\n",
    );
    let (code, stdout, stderr) = lint_in(&project, &[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stdout.is_empty());
    insta::assert_snapshot!("bad_lint_section", stderr);

    let project = project_with(PLAIN_INDEX, "[lint]\nexlcude = []\n");
    let (code, _, stderr) = lint_in(&project, &[]);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains(
            "partman.toml:2:1: [lint]: unknown key \"exlcude\" (did you mean \"exclude\"?)"
        ),
        "{stderr}"
    );

    let project = Project::new();
    let output = pgm()
        .current_dir(project.path())
        .args(["--config", "missing.toml", "lint"])
        .output()
        .unwrap();
    let (code, stderr) = (output.status.code(), output_text(&output).1);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("cannot read the policy file missing.toml"),
        "{stderr}"
    );

    let (code, _, stderr) = lint_in(&project, &["no_such_file.sql"]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("cannot read no_such_file.sql"), "{stderr}");
}

#[test]
fn partitioned_tables_without_a_policy_are_warned_about_and_can_be_ignored() {
    let sql = "CREATE TABLE app.metrics (at timestamptz NOT NULL) PARTITION BY RANGE (at);\n";
    let project = Project::new();
    project.write("V1__metrics.sql", sql);
    let (code, stdout, _) = lint_in(&project, &[]);
    assert_eq!(code, Some(0), "a warning does not fail the run");
    assert!(
        stdout.contains("app.metrics is range-partitioned but no policy maintains its partitions: there is no policy file (partman.toml)"),
        "{stdout}"
    );

    let project = project_with(
        sql,
        "[[table]]\nname = \"app.metrics\"\ninterval = \"daily\"\n",
    );
    assert!(lint_in(&project, &[]).1.ends_with("no findings\n"));

    // Hash and list partitioning are not time ranges pgm could maintain.
    let project = Project::new();
    project.write(
        "V1__tenants.sql",
        "CREATE TABLE tenants (id bigint PRIMARY KEY) PARTITION BY HASH (id);\n",
    );
    assert!(lint_in(&project, &[]).1.ends_with("no findings\n"));

    let project = Project::new();
    project.write(
        "V1__metrics.sql",
        &format!(
            "-- squawk-ignore partitioned-table-not-in-policy -- created by the archive job\n{sql}"
        ),
    );
    let (_, stdout, _) = lint_in(&project, &[]);
    assert!(stdout.ends_with("no findings\n"), "{stdout}");

    let project = project_with(
        sql,
        "[lint]\nwarn = []\nexclude = [\"partitioned-table-not-in-policy\"]\n",
    );
    assert!(lint_in(&project, &[]).1.ends_with("no findings\n"));
}

#[test]
fn every_rule_is_listed() {
    let output = pgm().args(["lint", "--list-rules"]).output().unwrap();
    let (stdout, _) = output_text(&output);
    assert!(output.status.success());
    for expected in [
        "unique-without-partition-key",
        "partitioned-table-not-in-policy",
        "require-concurrent-index-creation",
        "ban-drop-index",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    let line = stdout
        .lines()
        .find(|line| line.starts_with("require-lock-timeout"))
        .unwrap();
    assert!(
        line.contains("off") && line.contains("pgm sets lock_timeout"),
        "{line}"
    );
}

/// (rule, line) of every finding `pgm lint --format json` reports, with its exit code.
fn findings_of(command: &mut assert_cmd::Command) -> (Option<i32>, Vec<(String, u64)>) {
    let output = command.args(["lint", "--format", "json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{:?}", output_text(&output)));
    let findings = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|file| file["findings"].as_array().unwrap().clone())
        .map(|finding| {
            (
                finding["rule"].as_str().unwrap().to_owned(),
                finding["line"].as_u64().unwrap(),
            )
        })
        .collect();
    (output.status.code(), findings)
}

fn offline_findings(sql: &str) -> Vec<(String, u64)> {
    let project = Project::new();
    project.write("V1__case.sql", sql);
    findings_of(
        pgm()
            .current_dir(project.path())
            .args(["--migrations", "migrations"])
            .env("PGM_PG_VERSION", "16"),
    )
    .1
}

#[test]
fn tables_created_as_select_or_select_into_in_the_file_are_new() {
    let sql = "\
CREATE TABLE order_totals AS SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id;
SELECT id, email INTO TABLE \"UserEmails\" FROM users;
CREATE INDEX order_totals_user_idx ON order_totals (user_id);
ALTER TABLE order_totals ADD CONSTRAINT order_totals_user_key UNIQUE (user_id);
ALTER TABLE order_totals ALTER COLUMN total TYPE numeric(20, 2);
ALTER TABLE \"UserEmails\" ADD COLUMN seen_at timestamptz DEFAULT clock_timestamp();
ALTER TABLE \"UserEmails\" ALTER COLUMN email SET NOT NULL;
CREATE TABLE archive.events AS SELECT 1 AS id;
CREATE INDEX events_id_idx ON events (id);
CREATE INDEX orders_total_idx ON orders (total);
ALTER TABLE useremails ADD COLUMN note text DEFAULT random()::text;
";
    let project = Project::new();
    project.write("V1__case.sql", sql);
    let (code, findings) = findings_of(
        pgm()
            .current_dir(project.path())
            .args(["--migrations", "migrations"]),
    );
    assert_eq!(code, Some(1));
    // Lines 3-7 act on the tables the file created; 9 on events, not
    // archive.events; 10 on a live table; 11 on useremails, not "UserEmails".
    assert_eq!(
        findings,
        [
            ("require-concurrent-index-creation".to_owned(), 9),
            ("require-concurrent-index-creation".to_owned(), 10),
            ("adding-field-with-default".to_owned(), 11),
        ],
        "{findings:?}"
    );

    // The file really runs in one transaction on a server with these tables.
    let db = TestDb::new();
    let mut client = db.connect();
    client
        .batch_execute(
            "CREATE SCHEMA archive;\
             CREATE TABLE users (id bigint, email text); INSERT INTO users VALUES (1, 'a@example.com');\
             CREATE TABLE orders (user_id bigint, total numeric); INSERT INTO orders VALUES (1, 2.5);\
             CREATE TABLE events (id int); CREATE TABLE useremails (id int);",
        )
        .unwrap();
    let output = project.pgm(&db).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{:?}", output_text(&output));

    // A plain CREATE TABLE in another schema, or IF NOT EXISTS (an older
    // table may be there), does not make the table an index goes on new.
    let findings = offline_findings(
        "CREATE TABLE archive.orders (id bigint);\n\
         CREATE INDEX orders_id_idx ON orders (id);\n\
         CREATE TABLE IF NOT EXISTS users (id bigint);\n\
         CREATE INDEX users_id_idx ON users (id);\n\
         CREATE TABLE coupons (id bigint);\n\
         CREATE INDEX coupons_id_idx ON coupons (id);\n",
    );
    assert_eq!(
        findings,
        [
            ("require-concurrent-index-creation".to_owned(), 2),
            ("require-concurrent-index-creation".to_owned(), 4),
        ],
        "{findings:?}"
    );

    // Statement by statement, each table is live once its statement commits.
    let no_transaction = format!("-- pgm:no-transaction\n{sql}");
    let findings = offline_findings(&no_transaction);
    assert!(
        findings.contains(&("require-concurrent-index-creation".to_owned(), 4)),
        "{findings:?}"
    );
}

#[test]
fn a_view_dropped_and_created_again_in_the_file_is_not_a_drop() {
    let findings = offline_findings(
        "DROP VIEW user_names;\n\
         DROP VIEW IF EXISTS app.order_sums;\n\
         DROP MATERIALIZED VIEW user_counts;\n\
         DROP VIEW legacy_names;\n\
         DROP VIEW shown CASCADE;\n\
         CREATE VIEW user_names AS SELECT name FROM users;\n\
         CREATE OR REPLACE VIEW app.order_sums AS SELECT sum(total) FROM orders;\n\
         CREATE MATERIALIZED VIEW user_counts AS SELECT count(*) FROM users;\n\
         CREATE VIEW shown AS SELECT 1 AS one;\n\
         CREATE VIEW order_sums AS SELECT 1 AS one;\n",
    );
    // legacy_names is gone for good; shown's dependents went with CASCADE.
    assert_eq!(
        findings,
        [
            ("ban-drop-view".to_owned(), 4),
            ("ban-drop-view".to_owned(), 5)
        ],
        "{findings:?}"
    );
}

/// A column's default rewrites the table exactly when lint says so: the
/// server's `relfilenode` changes with a rewrite.
#[test]
fn a_non_volatile_default_does_not_rewrite_and_is_not_reported() {
    let db = TestDb::new();
    let mut client = db.connect();
    client
        .batch_execute(
            "CREATE TABLE items (id bigint); INSERT INTO items SELECT generate_series(1, 1000);\
             CREATE FUNCTION app_tier() RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'basic' $$;\
             CREATE DOMAIN positive AS int CHECK (VALUE > 0);\
             CREATE SEQUENCE item_numbers;",
        )
        .unwrap();
    // (column, rewrites, what lint says without a server)
    let cases: &[(&str, bool, bool)] = &[
        ("text DEFAULT 'new'", false, false),
        ("int DEFAULT -1", false, false),
        ("jsonb DEFAULT '{}'::jsonb", false, false),
        ("timestamptz DEFAULT now()", false, false),
        ("date DEFAULT CURRENT_DATE", false, false),
        ("timestamptz DEFAULT date_trunc('day', now())", false, false),
        ("text DEFAULT lower('A') || 'b'", false, false),
        ("text DEFAULT app_tier()", false, true),
        ("float8 DEFAULT random()", true, true),
        ("timestamptz DEFAULT clock_timestamp()", true, true),
        ("uuid DEFAULT gen_random_uuid()", true, true),
        ("bigint DEFAULT nextval('item_numbers')", true, true),
        ("bigserial", true, true),
        ("positive DEFAULT 1", true, false),
    ];
    let project = Project::new();
    let relfilenode = |client: &mut postgres::Client| -> u32 {
        client
            .query_one(
                "SELECT relfilenode FROM pg_class WHERE oid = 'items'::regclass",
                &[],
            )
            .unwrap()
            .get::<_, postgres::types::Oid>(0)
    };
    for (i, (column, rewrites, offline)) in cases.iter().enumerate() {
        let sql = format!("ALTER TABLE items ADD COLUMN c{i} {column};\n");
        project.write("V1__column.sql", &sql);
        let reported = |findings: &[(String, u64)]| {
            findings
                .iter()
                .any(|(rule, _)| rule == "adding-field-with-default")
        };
        let sequence = |client: &mut postgres::Client| -> (i64, bool) {
            let row = client
                .query_one("SELECT last_value, is_called FROM item_numbers", &[])
                .unwrap();
            (row.get(0), row.get(1))
        };
        let sequence_before = sequence(&mut client);
        let (_, connected) = findings_of(&mut project.pgm(&db));
        // Asking the server evaluated no volatile default: no sequence advanced.
        assert_eq!(sequence(&mut client), sequence_before, "{column}");
        let (_, flag) = findings_of(
            pgm()
                .current_dir(project.path())
                .env("PGM_PG_VERSION", "16"),
        );
        let before = relfilenode(&mut client);
        client.batch_execute(&sql).unwrap();
        let rewritten = relfilenode(&mut client) != before;
        assert_eq!(
            rewritten, *rewrites,
            "{column}: the server disagrees with the case"
        );
        assert_eq!(
            reported(&connected),
            rewritten,
            "{column}: connected lint {connected:?}"
        );
        assert_eq!(
            reported(&flag),
            *offline,
            "{column}: lint without a server {flag:?}"
        );
    }
}

#[test]
fn before_postgresql_11_every_default_rewrites() {
    let project = Project::new();
    project.write(
        "V1__column.sql",
        "ALTER TABLE items ADD COLUMN tier text DEFAULT 'basic';\n",
    );
    let at = |version: &str| {
        findings_of(
            pgm()
                .current_dir(project.path())
                .env("PGM_PG_VERSION", version),
        )
        .1
    };
    assert_eq!(at("10"), [("adding-field-with-default".to_owned(), 1)]);
    assert!(at("11").is_empty(), "{:?}", at("11"));
}
