//! Promise 3 on a real server: every statement `pgm partitions maintain`
//! sends that changes something is in the plan `pgm partitions plan` shows,
//! word for word, and everything else it sends only reads or frames a
//! transaction. The server's own statement log is the witness.

mod support;

use std::path::Path;

use support::{HAND_MADE_PARTITIONS, MAINTAIN_POLICY, Project, column, output_text, pgm};

const AT: &str = "2026-11-22T10:00:00Z";

fn run(project: &Path, url: &str, args: &[&str]) -> (String, String) {
    let mut command = pgm();
    command
        .current_dir(project)
        .env("DATABASE_URL", url)
        .args(["partitions"])
        .args(args)
        .args(["--at", AT]);
    let output = command.output().unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[test]
fn maintain_sends_nothing_that_changes_the_database_beyond_the_plan() {
    let sandbox = support::statement_logging_sandbox("%a|");
    let url = sandbox.url("app");
    let project = Project::bundled();
    // Rows in products' default partition are moved, not refused; those of
    // other quarters are drained; new partitions get storage parameters and
    // the parent's grants (products is the policy's last table).
    let policy = MAINTAIN_POLICY.replace(
        "interval = \"quarterly\"",
        "interval = \"quarterly\"\nmove_default_rows = true",
    ) + "drain_default = true\n\n[table.partition]\nwith = { fillfactor = 80 }\ninherit_privileges = true\n";
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();
    let output = pgm()
        .current_dir(project.path())
        .env("DATABASE_URL", &url)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
    let mut app = pgm::db::connect(&sandbox.settings("app")).unwrap();
    app.batch_execute(&format!(
        "{HAND_MADE_PARTITIONS} CREATE TABLE products_default PARTITION OF products DEFAULT; \
         INSERT INTO products (sku, name, price_cents, listed_on) VALUES ('a-1', 'a', 100, '2026-11-02'), \
           ('a-2', 'b', 100, '2025-05-10'), ('a-3', 'c', 100, '2028-02-01'); \
         GRANT SELECT ON products TO PUBLIC;"
    ))
    .unwrap();
    let (plan, _) = run(project.path(), &url, &["plan", "--format", "sql"]);
    let log_path = sandbox.root().join("server.log");
    let before = std::fs::read_to_string(&log_path).unwrap().len();

    run(project.path(), &url, &["maintain"]);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let sent = support::logged_statements(&log[before..]);
    let planned: Vec<&str> = plan
        .lines()
        .filter_map(|line| line.strip_suffix(';'))
        .filter(|line| !line.starts_with("--"))
        .collect();
    let changes: Vec<&String> = sent
        .iter()
        .filter(|s| !support::changes_nothing(s))
        .collect();
    for statement in &changes {
        assert!(
            planned.contains(&statement.as_str()),
            "sent but not in the plan: {statement}\n\nthe plan:\n{plan}"
        );
    }
    let not_sent: Vec<&&str> = planned
        .iter()
        .filter(|s| !support::changes_nothing(s) && !changes.iter().any(|c| c == *s))
        .collect();
    assert!(not_sent.is_empty(), "planned but not sent: {not_sent:#?}");
    assert_eq!(
        changes.len(),
        planned
            .iter()
            .filter(|s| !support::changes_nothing(s))
            .count(),
        "every planned change runs once: sent {changes:#?}"
    );
    assert!(changes.len() > 40, "a plan with real work: {changes:#?}");
    for drained in ["products_p2025q2", "products_p2028q1"] {
        assert!(
            changes
                .iter()
                .any(|c| c.starts_with("WITH moved AS (DELETE FROM") && c.contains(drained))
                || planned.iter().any(|p| p.contains(drained)),
            "{drained} drained: {plan}"
        );
    }
    assert_eq!(
        column(&mut app, "SELECT count(*) FROM products_default"),
        ["0"]
    );
    assert_eq!(
        column(
            &mut app,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'products_p%' \
             AND 'fillfactor=80' = ANY(reloptions) AND relacl::text LIKE '%=r/%'"
        ),
        ["4"],
        "the quarter of now, premake 1, and the two drained quarters"
    );
    assert_eq!(
        column(
            &mut app,
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
        ),
        ["0"]
    );
}

/// The statements one application's sessions logged, in order, whole:
/// a query string of many lines is one entry.
fn logged_queries(log: &str, application: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for line in log.lines() {
        if line.contains("|entry|") {
            entries.push(line.to_owned());
        } else if let Some(last) = entries.last_mut() {
            // The server indents the lines after the first with a tab.
            last.push('\n');
            last.push_str(line.strip_prefix('\t').unwrap_or(line));
        }
    }
    let prefix = format!("{application}|entry|LOG:  statement: ");
    entries
        .iter()
        .filter_map(|entry| entry.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn migrate_sends_each_transactional_migration_as_the_query_the_plan_shows() {
    let sandbox = support::statement_logging_sandbox("%a|entry|");
    let url = sandbox.url("app");
    let project = Project::bundled();
    let migrate = |args: &[&str]| {
        let output = pgm()
            .current_dir(project.path())
            .env("DATABASE_URL", &url)
            .arg("migrate")
            .args(args)
            .output()
            .unwrap();
        let (stdout, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
        stdout
    };
    let plan = migrate(&["--dry-run", "--format", "sql"]);
    let log_path = sandbox.root().join("server.log");
    let before = std::fs::read_to_string(&log_path).unwrap().len();

    migrate(&[]);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let sent = logged_queries(&log[before..], "pgm");
    // Each migration's block: from its header to the next one's (a
    // statement may hold blank lines).
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in plan.lines() {
        if line.starts_with("-- V") && line.contains(".sql: ") {
            blocks.push(vec![line]);
        } else if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    let one_query: Vec<String> = blocks
        .iter()
        .filter(|block| block[0].contains("sent as one query"))
        .map(|block| {
            // The comments above the first step only: a history row's
            // literal may hold a file's own comment lines.
            block
                .iter()
                .skip_while(|line| line.starts_with("--"))
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
                .trim_end()
                .to_owned()
        })
        .collect();
    assert_eq!(
        one_query.len(),
        6,
        "the bundled transactional migrations:\n{plan}"
    );
    for query in &one_query {
        assert_eq!(
            sent.iter().filter(|s| *s == query).count(),
            1,
            "sent once, as planned:\n{query}\n\nsent:\n{sent:#?}"
        );
    }
    // Nothing of the migrations is sent in pieces beside the one query:
    // no one-line statement of theirs goes alone.
    for query in &one_query {
        for line in query.lines().filter(|line| {
            line.ends_with(';') && !matches!(*line, "BEGIN;" | "COMMIT;" | "RESET ALL;")
        }) {
            let line = line.strip_suffix(';').unwrap_or(line);
            assert!(
                !sent
                    .iter()
                    .any(|s| s == line || s.strip_suffix(';') == Some(line)),
                "sent alone as well: {line}"
            );
        }
    }
}

#[test]
fn migrate_sends_a_partitioned_index_rollout_as_the_plan_shows_it() {
    let sandbox = support::statement_logging_sandbox("%a|");
    let url = sandbox.url("app");
    let project = Project::new();
    let migrate = |args: &[&str]| {
        let output = pgm()
            .current_dir(project.path())
            .env("DATABASE_URL", &url)
            .arg("migrate")
            .args(args)
            .output()
            .unwrap();
        let (stdout, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
        stdout
    };
    project.write(
        "V1__events.sql",
        "CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);\n\
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\n\
         CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');\n",
    );
    migrate(&[]);
    project.write(
        "V2__events_id.sql",
        "CREATE UNIQUE INDEX CONCURRENTLY events_id_idx ON events (id, at);\n",
    );
    let plan = migrate(&["--dry-run", "--format", "sql"]);
    let log_path = sandbox.root().join("server.log");
    let before = std::fs::read_to_string(&log_path).unwrap().len();

    migrate(&[]);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let index_statement = |s: &str| {
        ["CREATE ", "ALTER INDEX", "DROP INDEX"]
            .iter()
            .any(|prefix| s.starts_with(prefix))
    };
    let sent: Vec<String> = support::logged_statements(&log[before..])
        .into_iter()
        .filter(|s| index_statement(s))
        .collect();
    let planned: Vec<&str> = plan
        .lines()
        .filter_map(|line| line.strip_suffix(';'))
        .filter(|s| index_statement(s))
        .collect();
    assert_eq!(planned.len(), 5, "{plan}");
    assert_eq!(sent, planned, "the plan:\n{plan}");
    let mut app = pgm::db::connect(&sandbox.settings("app")).unwrap();
    assert_eq!(
        column(
            &mut app,
            "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'events_id_idx'::regclass"
        ),
        ["true"]
    );
}
