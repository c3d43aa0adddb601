//! `pgm partitions status` and `pgm partitions check` on a real PostgreSQL:
//! every problem kind with its message and exit code, and a Prometheus
//! textfile that parses.

mod support;

use postgres::error::SqlState;
use support::{Project, TestDb, outcome, output_text};

const AT: &str = "2026-11-22T10:00:00Z";

/// events covered from 2026-09 to 2027-03 (3 ahead of November), by hand.
fn setup(policy: &str) -> (TestDb, Project) {
    let (db, project) = (TestDb::new(), Project::bundled());
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();
    let output = project.pgm(&db).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
    db.connect()
        .batch_execute(
            "DO $$ DECLARE m date; BEGIN \
               FOR m IN SELECT generate_series('2026-09-01'::date, '2027-02-01', '1 month') LOOP \
                 EXECUTE format('CREATE TABLE events_%s PARTITION OF events FOR VALUES FROM (%L) TO (%L)', \
                   to_char(m, 'YYYYMM'), m::timestamptz, (m + interval '1 month')::timestamptz); \
               END LOOP; END $$; \
             INSERT INTO events (event_type, created_at) SELECT 'e', timestamptz '2026-11-01' + g * interval '1 hour' FROM generate_series(1, 50) g; \
             ANALYZE events;",
        )
        .unwrap();
    (db, project)
}

const EVENTS: &str = "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\npremake = 3\n";

fn run(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let output = project
        .pgm(db)
        .args(["partitions"])
        .args(args)
        .args(["--at", AT])
        .output()
        .unwrap();
    outcome(&output)
}

#[test]
fn status_lists_partitions_in_time_order_with_coverage() {
    let (db, project) = setup(EVENTS);
    let (code, stdout, stderr) = run(&project, &db, &["status"]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "public.events: covered until 2027-03-01 00:00:00+00 (3 ahead, premake 3)"
    );
    assert!(lines[2].starts_with("  events_202609 "), "{stdout}");
    assert!(
        lines[4].contains(" 50 ") && lines[4].ends_with("valid"),
        "{stdout}"
    );
    let (_, stdout, _) = run(&project, &db, &["status", "--format", "json"]);
    let tables: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(tables[0]["periods_ahead"], 3);
    assert_eq!(tables[0]["partitions"].as_array().unwrap().len(), 6);
    let (code, stdout, _) = run(&project, &db, &["check"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), ""),
        "a healthy table reports nothing"
    );
}

#[test]
fn each_problem_kind_is_one_line_and_exit_1() {
    let cases: [(&str, &str, &str); 6] = [
        (
            "coverage",
            "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\npremake = 5\n",
            "",
        ),
        (
            "missing table",
            "[[table]]\nname = \"public.nope\"\ninterval = \"monthly\"\n",
            "",
        ),
        (
            "default rows",
            EVENTS,
            "CREATE TABLE events_default PARTITION OF events DEFAULT; INSERT INTO events (event_type, created_at) VALUES ('late', '2030-01-01');",
        ),
        (
            "invalid index",
            EVENTS,
            "INSERT INTO events_202611 (id, event_type, created_at) OVERRIDING SYSTEM VALUE VALUES (1, 'dup', '2026-11-05'), (2, 'dup', '2026-11-06');",
        ),
        ("detach pending", EVENTS, ""),
        (
            "drift",
            EVENTS,
            "CREATE TABLE events_odd PARTITION OF events FOR VALUES FROM ('2027-03-01 00:00:00+00') TO ('2027-03-10 00:00:00+00');",
        ),
    ];
    let expected = [
        "public.events: public.events is covered until 2027-03-01 00:00:00+00 (3 partition(s) after now, premake wants 5): run pgm partitions maintain",
        "public.nope: public.nope does not exist: create it (PARTITION BY RANGE on its time column) in a migration, or remove its entry",
        "public.events: the default partition public.events_default holds 1 row(s): they belong to periods with no partition; with drain_default = true maintain gives each period its partition and moves them there (rows older than the retention are only reported)",
        "public.events: index public.events_202611_dup_idx on events_202611 is INVALID (an interrupted build): maintain drops and rebuilds it",
        "public.events: the detach of public.events_202609 is pending (interrupted, or waiting for old transactions): maintain finishes it",
        "public.events: partition public.events_odd covers ['2027-03-01 00:00:00+00', '2027-03-10 00:00:00+00'), which is not one monthly period in UTC: pgm leaves it as it is",
    ];
    for ((kind, policy, sql), expected) in cases.iter().zip(expected) {
        let (db, project) = setup(policy);
        let mut client = db.connect();
        if !sql.is_empty() {
            client.batch_execute(sql).unwrap();
        }
        if *kind == "invalid index" {
            // A unique build that fails on duplicates leaves an INVALID index.
            assert!(client.batch_execute("CREATE UNIQUE INDEX CONCURRENTLY events_202611_dup_idx ON events_202611 (event_type)").is_err());
        }
        if *kind == "detach pending" {
            // A reader keeps the concurrent detach from finishing; its
            // lock_timeout leaves it pending.
            let mut reader = db.connect();
            reader
                .batch_execute("BEGIN; SELECT count(*) FROM events;")
                .unwrap();
            client.batch_execute("SET lock_timeout = '200ms'").unwrap();
            let result = client
                .batch_execute("ALTER TABLE events DETACH PARTITION events_202609 CONCURRENTLY");
            assert!(result.is_err_and(|e| e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)));
            reader.batch_execute("COMMIT").unwrap();
        }
        let (code, stdout, stderr) = run(&project, &db, &["check"]);
        assert_eq!(code, Some(1), "{kind}: {stdout}{stderr}");
        assert!(
            stdout.lines().any(|line| line == expected),
            "{kind}:\n{stdout}"
        );
        assert!(stderr.contains("problem(s) found"), "{kind}: {stderr}");
    }
}

#[test]
fn the_prometheus_textfile_parses() {
    let (db, project) = setup(&format!(
        "{EVENTS}\n[[table]]\nname = \"public.audit_log\"\ninterval = \"monthly\"\n"
    ));
    let (code, stdout, _) = run(&project, &db, &["check", "--format", "prometheus"]);
    assert_eq!(code, Some(1), "audit_log has no partition: {stdout}");
    let mut samples = 0;
    for line in stdout.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP pgm_") || comment.starts_with("TYPE pgm_"),
                "{line}"
            );
            continue;
        }
        // name{table="…"} value
        let (name, rest) = line.split_once('{').unwrap_or_else(|| panic!("{line}"));
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let (labels, value) = rest.rsplit_once("} ").unwrap_or_else(|| panic!("{line}"));
        assert!(
            labels.starts_with("table=\"") && labels.ends_with('"'),
            "{line}"
        );
        value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
        samples += 1;
    }
    assert_eq!(samples, 7 * 2);
    assert!(
        stdout.contains("pgm_partitions_ahead{table=\"public.events\"} 3\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pgm_partitions_ahead{table=\"public.audit_log\"} -1\n"),
        "{stdout}"
    );
}
