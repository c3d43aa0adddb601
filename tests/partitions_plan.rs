//! `pgm partitions plan` on a real PostgreSQL: the bundled schema at several
//! times in all three formats, adoption of hand-made partitions, error
//! entries, exit codes, and a snapshot of constant size.

mod support;

use support::{Project, TestDb, outcome, output_text};

/// The bundled schema, with partitions made by hand under other names: events
/// from June 2025 to November 2026, and an audit_log partition that is not a
/// whole month.
fn bundled_with_history() -> (TestDb, Project) {
    let (db, project) = (TestDb::new(), Project::bundled());
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/partman.toml"),
        project.path().join("partman.toml"),
    )
    .unwrap();
    let output = project.pgm(&db).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
    db.connect()
        .batch_execute(
            "DO $$ DECLARE m date; BEGIN \
               FOR m IN SELECT generate_series('2025-06-01'::date, '2026-11-01', '1 month') LOOP \
                 EXECUTE format('CREATE TABLE events_y%sm%s PARTITION OF events FOR VALUES FROM (%L) TO (%L)', \
                   to_char(m, 'YYYY'), to_char(m, 'MM'), m::timestamptz, (m + interval '1 month')::timestamptz); \
               END LOOP; END $$; \
             CREATE TABLE audit_log_half PARTITION OF audit_log FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-11-15 00:00:00+00'); \
             CREATE SCHEMA archive;",
        )
        .unwrap();
    (db, project)
}

fn plan(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let output = project
        .pgm(db)
        .args(["partitions", "plan"])
        .args(args)
        .output()
        .unwrap();
    outcome(&output)
}

#[test]
fn the_bundled_schema_planned_at_several_times_in_every_format() {
    let (db, project) = bundled_with_history();
    for at in [
        "2026-11-22T10:00:00Z",
        "2027-01-01T00:00:00Z",
        "2027-06-30T23:30:00-04:00",
    ] {
        for format in ["text", "sql", "json"] {
            let (code, stdout, stderr) = plan(&project, &db, &["--at", at, "--format", format]);
            assert_eq!(code, Some(0), "drift is reported, not an error: {stderr}");
            insta::assert_snapshot!(format!("plan_{}_{format}", &at[..10]), stdout);
        }
    }
}

#[test]
fn json_is_the_step_contract() {
    let (db, project) = bundled_with_history();
    let (_, stdout, _) = plan(
        &project,
        &db,
        &["--at", "2026-11-22T10:00:00Z", "--format", "json"],
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    for step in steps {
        for key in ["table", "action", "sql", "transactional", "lock", "reason"] {
            assert!(step.get(key).is_some(), "{key} missing in {step}");
        }
    }
    let detaches: Vec<&str> = steps
        .iter()
        .filter(|s| s["action"] == "detach_partition")
        .map(|s| s["partition"].as_str().unwrap())
        .collect();
    assert_eq!(
        detaches,
        [
            "public.events_y2025m06",
            "public.events_y2025m07",
            "public.events_y2025m08"
        ],
        "oldest first, capped at 3"
    );
    let detach = steps
        .iter()
        .find(|s| s["action"] == "detach_partition")
        .unwrap();
    assert_eq!(detach["transactional"], false);
    assert_eq!(detach["lock"], "SHARE UPDATE EXCLUSIVE");
    let builds = steps
        .iter()
        .filter(|s| s["action"] == "create_index" && s["transactional"] == false)
        .count();
    assert_eq!(
        builds, 15,
        "one concurrent build per events partition that stays attached after the run (2025-09 … 2026-11, \
         the two expired ones the cap holds back included, so the parent index is valid after the run), \
         none for those retired now"
    );
    assert!(
        !steps.iter().any(
            |s| s["action"] == "create_partition" && s["partition"] == "public.events_p2026_11"
        ),
        "the hand-made November partition is adopted, not recreated"
    );
}

#[test]
fn a_missing_table_is_an_error_entry_and_the_others_still_plan() {
    let (db, project) = bundled_with_history();
    std::fs::write(
        project.path().join("partman.toml"),
        "[[table]]\nname = \"public.nope\"\ninterval = \"monthly\"\n\n\
         [[table]]\nname = \"public.users\"\ninterval = \"monthly\"\n\n\
         [[table]]\nname = \"public.products\"\ninterval = \"quarterly\"\npremake = 1\n",
    )
    .unwrap();
    let (code, stdout, stderr) = plan(&project, &db, &["--at", "2026-11-22T10:00:00Z"]);
    assert_eq!(code, Some(1), "{stderr}");
    insta::assert_snapshot!("plan_with_error_entries", stdout);
}

#[test]
fn detailed_exitcode_says_whether_there_is_work() {
    let (db, project) = bundled_with_history();
    std::fs::write(
        project.path().join("partman.toml"),
        "[[table]]\nname = \"public.products\"\ninterval = \"quarterly\"\npremake = 1\n",
    )
    .unwrap();
    let (code, _, _) = plan(
        &project,
        &db,
        &["--at", "2026-11-22T10:00:00Z", "--detailed-exitcode"],
    );
    assert_eq!(code, Some(2));
    let (code, _, _) = plan(&project, &db, &["--at", "2026-11-22T10:00:00Z"]);
    assert_eq!(code, Some(0));
    db.connect()
        .batch_execute(
            "CREATE TABLE products_q4 PARTITION OF products FOR VALUES FROM ('2026-10-01') TO ('2027-01-01'); \
             CREATE TABLE products_q1 PARTITION OF products FOR VALUES FROM ('2027-01-01') TO ('2027-04-01');",
        )
        .unwrap();
    let (code, stdout, _) = plan(
        &project,
        &db,
        &["--at", "2026-11-22T10:00:00Z", "--detailed-exitcode"],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("nothing to do"), "{stdout}");
}

#[test]
fn a_bad_policy_or_time_is_a_usage_error_with_its_place() {
    let (db, project) = (TestDb::new(), Project::new());
    std::fs::write(
        project.path().join("partman.toml"),
        "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\nretention = \"12 monts\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = plan(&project, &db, &[]);
    assert_eq!(code, Some(64));
    assert!(stdout.is_empty());
    insta::assert_snapshot!("plan_bad_policy", stderr);
    let (code, _, stderr) = plan(&project, &db, &["--at", "next tuesday"]);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains(
            "invalid value 'next tuesday' for '--at <RFC3339>': \"next tuesday\" is not a time: use RFC 3339"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = plan(&project, &db, &["--config", "missing.toml"]);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("missing.toml:0:0: cannot read the policy file"),
        "{stderr}"
    );
}

#[test]
fn the_snapshot_takes_the_same_number_of_queries_for_one_table_and_for_many() {
    let db = TestDb::new();
    let tables: usize = std::env::var("PGM_SCALE_TABLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let mut client = db.connect();
    for t in 0..tables {
        client
            .batch_execute(&format!(
                "CREATE TABLE t{t} (id bigint, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at); \
                 DO $$ DECLARE m date; BEGIN \
                   FOR m IN SELECT generate_series('2022-01-01'::date, '2026-12-01', '1 month') LOOP \
                     EXECUTE format('CREATE TABLE t{t}_%s PARTITION OF t{t} FOR VALUES FROM (%L) TO (%L)', \
                       to_char(m, 'YYYYMM'), m::timestamptz, (m + interval '1 month')::timestamptz); \
                   END LOOP; END $$;"
            ))
            .unwrap();
    }
    let names = |n: usize| {
        (0..n)
            .map(|t| ("public".to_owned(), format!("t{t}")))
            .collect::<Vec<_>>()
    };
    let one = pgm::partition::catalog::take(&mut client, &names(1)).unwrap();
    let started = std::time::Instant::now();
    let many = pgm::partition::catalog::take(&mut client, &names(tables)).unwrap();
    eprintln!(
        "snapshot of {tables} tables x 60 partitions: {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(one.queries, many.queries);
    assert_eq!(
        many.parents
            .iter()
            .flatten()
            .map(|p| p.partitions.len())
            .sum::<usize>(),
        tables * 60
    );
}

/// Runs a JSON plan's steps as they are written: transactional steps in one
/// transaction each, the others statement by statement.
fn run_plan_as_written(client: &mut postgres::Client, plan: &serde_json::Value) {
    for step in plan["steps"].as_array().unwrap() {
        if step["action"] == "error" {
            continue;
        }
        let statements: Vec<&str> = step["sql"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        if step["transactional"] == true {
            let mut transaction = client.transaction().unwrap();
            for sql in statements {
                transaction
                    .batch_execute(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            transaction.commit().unwrap();
        } else {
            for sql in statements {
                client
                    .batch_execute(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }
}

#[test]
fn the_planned_sql_runs_as_written_and_then_nothing_is_left_to_do() {
    let (db, project) = bundled_with_history();
    db.connect()
        .batch_execute("DROP TABLE audit_log_half")
        .unwrap();
    let mut client = db.connect();
    for round in 0..3 {
        let (code, stdout, stderr) = plan(
            &project,
            &db,
            &["--at", "2026-11-22T10:00:00Z", "--format", "json"],
        );
        assert_eq!(code, Some(0), "{stderr}");
        let planned: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        if round == 2 {
            assert_eq!(planned["steps"].as_array().unwrap().len(), 0, "{stdout}");
        } else {
            run_plan_as_written(&mut client, &planned);
        }
    }
    let invalid: i64 = client
        .query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[])
        .unwrap()
        .get(0);
    assert_eq!(invalid, 0);
    let partitions: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        partitions,
        18 - 5 + 3,
        "2025-06 … 2026-11 made by hand, five expired, three ahead made"
    );
}

#[test]
fn a_time_whose_partitions_pass_year_9999_is_an_error_entry_per_table() {
    let (db, project) = bundled_with_history();
    let (code, stdout, stderr) = plan(
        &project,
        &db,
        &["--at", "9999-11-15T00:00:00Z", "--format", "json"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the plan has 3 error entries"), "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let tables: Vec<&str> = steps.iter().map(|s| s["table"].as_str().unwrap()).collect();
    assert_eq!(
        tables,
        ["public.events", "public.audit_log", "public.products"]
    );
    for step in steps {
        assert_eq!(step["action"], "error");
        assert_eq!(step["reason"], "out_of_range");
        let message = step["message"].as_str().unwrap();
        assert!(
            message.contains("but pgm writes partition bounds only from 0001-01-01 to 9999-12-31"),
            "{message}"
        );
    }
    assert!(
        steps[0]["message"].as_str().unwrap().starts_with(
            "public.events cannot be planned at 9999-11-15 00:00:00 UTC: its partitions (the monthly period \
             holding that time in UTC and premake = 3 more) would run from 9999-11-01 to +10000-03-01"
        ),
        "{}",
        steps[0]["message"]
    );
}
