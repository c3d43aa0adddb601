//! Hourly and fixed intervals on a real PostgreSQL: maintain across a
//! 25-hour day, then status, check and Prometheus on the result, and the
//! plan's warning when a policy keeps too many partitions.

mod support;

use support::{Project, TestDb, column, outcome};

fn project(db: &TestDb, policy: &str) -> Project {
    db.connect()
        .batch_execute(
            "CREATE TABLE readings (at timestamptz NOT NULL, value float8) PARTITION BY RANGE (at);",
        )
        .unwrap();
    let project = Project::new();
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();
    project
}

fn pgm(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(&project.pgm(db).args(args).output().unwrap())
}

/// Berlin's 25-hour day, 25 October 2026, with two-hour partitions: the
/// 02:00 partition runs from the first 02:00 (+02) to 04:00 (+01).
#[test]
fn two_hour_partitions_across_a_25_hour_day_are_maintained_and_healthy() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.readings\"\ninterval = \"2 hours\"\npremake = 3\n\
                  time_zone = \"Europe/Berlin\"\n";
    let project = project(&db, policy);
    let at = "2026-10-24T22:30:00Z"; // 00:30 in Berlin, summer time
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", at]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let bounds = column(
        &mut db.connect(),
        "SET TimeZone = 'Europe/Berlin'; \
         SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass ORDER BY 1",
    );
    assert_eq!(
        bounds,
        [
            "readings_p2026_10_25_0000 FOR VALUES FROM ('2026-10-25 00:00:00+02') TO ('2026-10-25 02:00:00+02')",
            "readings_p2026_10_25_0200 FOR VALUES FROM ('2026-10-25 02:00:00+02') TO ('2026-10-25 04:00:00+01')",
            "readings_p2026_10_25_0400 FOR VALUES FROM ('2026-10-25 04:00:00+01') TO ('2026-10-25 06:00:00+01')",
            "readings_p2026_10_25_0600 FOR VALUES FROM ('2026-10-25 06:00:00+01') TO ('2026-10-25 08:00:00+01')",
        ]
    );
    // Both 02:30s of the night land in the 02:00 partition.
    db.connect()
        .batch_execute(
            "INSERT INTO readings VALUES ('2026-10-25 02:30:00+02', 1), ('2026-10-25 02:30:00+01', 2)",
        )
        .unwrap();
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "check", "--at", at]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (_, stdout, _) = pgm(&project, &db, &["partitions", "status", "--at", at]);
    assert!(stdout.contains("(3 ahead, premake 3)"), "{stdout}");
    let (_, stdout, _) = pgm(
        &project,
        &db,
        &["partitions", "check", "--at", at, "--format", "prometheus"],
    );
    assert!(
        stdout.contains("pgm_partitions_ahead{table=\"public.readings\"} 3"),
        "{stdout}"
    );
    let (code, stdout, stderr) = pgm(
        &project,
        &db,
        &["partitions", "plan", "--at", at, "--detailed-exitcode"],
    );
    assert_eq!(code, Some(0), "nothing left to do: {stdout}\n{stderr}");
}

#[test]
fn a_policy_keeping_too_many_partitions_is_warned_with_the_count() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.readings\"\ninterval = \"15 minutes\"\npremake = 4\n\
                  retention = \"30 days\"\n";
    let project = project(&db, policy);
    let (code, stdout, stderr) = pgm(
        &project,
        &db,
        &["partitions", "plan", "--at", "2026-11-22T10:00:00Z"],
    );
    assert_eq!(code, Some(0), "a warning does not fail the plan: {stderr}");
    assert!(
        stdout.contains(
            "partman.toml:3:12: public.readings with interval \"15 minutes\" keeps about 2885 partitions \
             (premake = 4 ahead, about 2880 kept by retention 30 days)"
        ),
        "{stdout}"
    );
}
