//! `pgm partitions maintain` on a real PostgreSQL: it executes the plan, is
//! idempotent, never queues in front of writers, survives being killed at
//! any point, handles default-partition rows, and lets overlapping runs do
//! each step once.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{
    HAND_MADE_PARTITIONS, MAINTAIN_POLICY as POLICY, Project, TestDb, column, outcome, output_text,
    wait_for,
};

const AT: &str = "2026-11-22T10:00:00Z";

/// The bundled schema with 18 months of events partitions made by hand
/// (other names), 100 rows in each, and a policy.
fn setup(db: &TestDb, policy: &str) -> Project {
    let project = Project::bundled();
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();
    let output = project.pgm(db).arg("migrate").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", output_text(&output).1);
    db.connect()
        .batch_execute(&format!(
            "{HAND_MADE_PARTITIONS} \
             INSERT INTO audit_log (action, target_table, occurred_at) \
               SELECT 'update', 'users', timestamptz '2025-06-01' + g * interval '1 day' FROM generate_series(0, 530) g; \
             ANALYZE events, audit_log;"
        ))
        .unwrap();
    project
}

fn maintain(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let output = project
        .pgm(db)
        .args(["partitions", "maintain", "--at", AT])
        .args(args)
        .output()
        .unwrap();
    outcome(&output)
}

/// Everything a run leaves in the catalog, as comparable text.
fn fingerprint(db: &TestDb) -> Vec<String> {
    column(
        &mut db.connect(),
        "SELECT p.relname || ' ' || c.relname || ' ' || pg_get_expr(c.relpartbound, 0) \
           || ' rows=' || (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', c.oid::regclass), false, true, '')))[1]::text \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
         WHERE p.relname IN ('events', 'audit_log', 'products') AND NOT i.inhdetachpending \
         UNION ALL \
         SELECT 'index ' || c.relname || ' valid=' || x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid \
         WHERE c.relname LIKE '%type_created%' \
         UNION ALL \
         SELECT 'table ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND NOT c.relispartition AND n.nspname IN ('public', 'archive') \
           AND c.relname NOT LIKE 'pgm_%' AND c.relname <> 'refinery_schema_history' \
         UNION ALL \
         SELECT 'marker ' || d.description FROM pg_description d WHERE d.description LIKE 'pgm: %' \
         UNION ALL \
         SELECT 'rows events=' || (SELECT count(*) FROM events) || ' audit=' || (SELECT count(*) FROM audit_log) \
           || ' archived=' || (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'archive') \
         ORDER BY 1",
    )
}

fn no_leftovers(db: &TestDb) {
    let mut client = db.connect();
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
        ),
        ["0"],
        "no INVALID index"
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_inherits WHERE inhdetachpending"
        ),
        ["0"],
        "no pending detach"
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_description WHERE description LIKE 'pgm: %'"
        ),
        ["0"],
        "no marker"
    );
}

#[test]
fn maintains_the_schema_and_a_second_run_does_nothing() {
    let db = TestDb::new();
    let project = setup(&db, POLICY);
    let (code, stdout, stderr) = maintain(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    insta::assert_snapshot!("maintain_first_run", stdout);
    no_leftovers(&db);
    let mut client = db.connect();
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_class WHERE relname IN ('events_p2026_11', 'audit_log_p2026_11')"
        ),
        ["0"],
        "hand-made partitions with other names are adopted, not recreated"
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'archive'"
        ),
        ["11"]
    );
    let (code, stdout, _) = maintain(&project, &db, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        "public.events: nothing to do\npublic.audit_log: nothing to do\npublic.products: nothing to do\n\
         summary: 0 created, 0 detached, 0 dropped, 0 archived, 0 indexes built, 0 failed, 0 skipped, 0 deferred\n"
    );
    let (code, stdout, _) = project
        .pgm(&db)
        .args(["partitions", "plan", "--at", AT, "--detailed-exitcode"])
        .output()
        .map(|o| (o.status.code(), output_text(&o).0, ()))
        .unwrap();
    assert_eq!(code, Some(0), "{stdout}");
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let db = TestDb::new();
    let project = setup(&db, POLICY);
    let before = fingerprint(&db);
    let (code, stdout, _) = maintain(&project, &db, &["--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("plan at 2026-11-22T10:00:00Z\n"),
        "{stdout}"
    );
    assert_eq!(fingerprint(&db), before);
    let (code, _, stderr) = maintain(&project, &db, &["--table", "public.event"]);
    assert_eq!(code, Some(64));
    assert!(
        stderr
            .contains("--table public.event is not in partman.toml (did you mean public.events?)"),
        "{stderr}"
    );
}

#[test]
fn only_the_named_tables_are_maintained() {
    let db = TestDb::new();
    let project = setup(&db, POLICY);
    let (code, stdout, stderr) = maintain(&project, &db, &["--table", "public.products"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().next(), Some("public.products: 2 created"));
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
}

#[test]
fn default_partition_rows_are_moved_when_allowed_and_stop_the_table_when_not() {
    for allowed in [true, false] {
        let db = TestDb::new();
        let policy = format!(
            "[[table]]\nname = \"public.products\"\ninterval = \"quarterly\"\npremake = 1\ndefault_partition = true\n\
             move_default_rows = {allowed}\n\n[[table]]\nname = \"public.audit_log\"\ninterval = \"monthly\"\npremake = 1\n"
        );
        let project = setup(&db, &policy);
        db.connect()
            .batch_execute(
                "CREATE TABLE products_default PARTITION OF products DEFAULT; \
                 INSERT INTO products (sku, name, price_cents, listed_on) \
                   SELECT 'sku' || g, 'p' || g, 100, date '2026-10-01' + (g % 150) FROM generate_series(1, 300) g;",
            )
            .unwrap();
        let (code, stdout, stderr) = maintain(&project, &db, &[]);
        let mut client = db.connect();
        assert_eq!(
            column(&mut client, "SELECT count(*) FROM products"),
            ["300"],
            "nothing lost"
        );
        assert_eq!(
            column(
                &mut client,
                "SELECT count(*) FROM (SELECT sku, listed_on FROM products GROUP BY 1, 2 HAVING count(*) > 1) d"
            ),
            ["0"],
            "nothing twice"
        );
        assert!(
            stdout.contains("public.audit_log: 1 created"),
            "the other table is maintained: {stdout}"
        );
        if allowed {
            assert_eq!(code, Some(0), "{stdout}\n{stderr}");
            assert!(
                stdout.contains(
                    "public.products: 2 created, 300 rows moved from the default partition"
                ),
                "{stdout}"
            );
            assert_eq!(
                column(&mut client, "SELECT count(*) FROM products_default"),
                ["0"]
            );
            assert_eq!(
                column(&mut client, "SELECT count(*) FROM products_p2026q4"),
                ["184"]
            );
        } else {
            assert_eq!(code, Some(1), "{stdout}");
            assert!(stdout.contains(
                "FAILED: cannot attach public.products_p2026q4: 184 row(s) of its range [2026-10-01, 2027-01-01) sit in the default partition"
            ), "{stdout}");
            assert!(stdout.contains("set move_default_rows = true"), "{stdout}");
            assert!(
                stderr.contains("error: 1 table(s) failed (see above); the others were maintained"),
                "{stderr}"
            );
            assert_eq!(
                column(&mut client, "SELECT count(*) FROM products_default"),
                ["300"]
            );
        }
    }
}

#[test]
fn overlapping_runs_do_each_step_once() {
    let db = TestDb::new();
    let project = setup(&db, POLICY);
    let children: Vec<_> = (0..2)
        .map(|_| project.spawn(&db, &["partitions", "maintain", "--at", AT]))
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let mut created = 0;
    for output in &outputs {
        let (stdout, stderr) = output_text(output);
        assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
        let summary = stdout.lines().last().unwrap().to_owned();
        created += summary.split(' ').nth(1).unwrap().parse::<usize>().unwrap();
    }
    assert_eq!(
        created,
        3 + 2 + 2,
        "every partition created once across both runs"
    );
    no_leftovers(&db);
}

#[test]
fn a_long_reader_never_makes_writers_wait_and_what_it_blocks_is_left_for_the_next_run() {
    let db = TestDb::new();
    let project = setup(&db, POLICY);
    // A report that read events and stays open for the whole run.
    let mut reader = db.connect();
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM events;")
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer_stop = Arc::clone(&stop);
    let settings = db.settings();
    let writer = std::thread::spawn(move || {
        let mut client = pgm::db::connect(&settings).unwrap();
        let insert = client
            .prepare(
                "INSERT INTO events (event_type, created_at) VALUES ('w', $1::text::timestamptz)",
            )
            .unwrap();
        let at = "2026-11-22T09:00:00Z";
        let (mut worst, mut count, mut failed) = (Duration::ZERO, 0, 0);
        while !writer_stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if client.execute(&insert, &[&at]).is_err() {
                failed += 1;
            }
            worst = worst.max(started.elapsed());
            count += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        (worst, count, failed)
    });
    std::thread::sleep(Duration::from_millis(200));
    let (code, stdout, stderr) = maintain(&project, &db, &[]);
    stop.store(true, Ordering::Relaxed);
    let (worst, inserts, failed) = writer.join().unwrap();
    eprintln!(
        "writer during maintain: {inserts} inserts, worst {} ms, {failed} failed",
        worst.as_millis()
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(failed, 0);
    assert!(
        worst < Duration::from_millis(1000),
        "an insert waited {} ms",
        worst.as_millis()
    );
    assert!(
        stdout.contains("public.events: 3 created"),
        "future partitions are created despite the reader: {stdout}"
    );
    assert!(stdout.contains("deferred: the detach of public.events_y2025m06 waits for transactions that started before it"), "{stdout}");
    let pending = column(
        &mut db.connect(),
        "SELECT count(*) FROM pg_inherits WHERE inhdetachpending",
    );
    assert_eq!(
        pending,
        ["1"],
        "the detach waiting for the reader stays pending"
    );

    reader.batch_execute("COMMIT").unwrap();
    let (code, stdout, stderr) = maintain(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("public.events: 5 detached, 5 dropped"),
        "the next run finishes: {stdout}"
    );
    no_leftovers(&db);
}

#[test]
fn killed_at_random_points_the_next_run_converges_to_the_same_catalog() {
    let reference = TestDb::new();
    let project = setup(&reference, POLICY);
    let started = Instant::now();
    let (code, stdout, stderr) = maintain(&project, &reference, &[]);
    let full_run = started.elapsed();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let expected = fingerprint(&reference);
    // A template with the same starting state, cloned for every round.
    let template = TestDb::new();
    setup(&template, POLICY);
    let rounds = 30;
    let workers = 3;
    let project = &project;
    let expected = &expected;
    let template = &template;
    std::thread::scope(|scope| {
        for worker in 0..workers {
            scope.spawn(move || {
                for round in (worker..rounds).step_by(workers) {
                    let db = TestDb::from_template(template);
                    let delay =
                        Duration::from_millis(fastrand::u64(0..full_run.as_millis() as u64 + 1));
                    let mut child = project.spawn(&db, &["partitions", "maintain", "--at", AT]);
                    std::thread::sleep(delay);
                    child.kill().unwrap();
                    child.wait().unwrap();
                    let mut watcher = db.connect();
                    let gone = "SELECT NOT EXISTS (SELECT FROM pg_stat_activity \
                                WHERE datname = current_database() AND application_name = 'pgm')";
                    assert!(wait_for(&mut watcher, gone, 30));
                    let (code, stdout, stderr) = maintain(project, &db, &[]);
                    assert_eq!(
                        code,
                        Some(0),
                        "round {round} (killed after {delay:?}): {stdout}\n{stderr}"
                    );
                    assert_eq!(
                        &fingerprint(&db),
                        expected,
                        "round {round} (killed after {delay:?})"
                    );
                    no_leftovers(&db);
                }
            });
        }
    });
    eprintln!(
        "{rounds} kills within a {} ms run, each followed by a clean run: all converged",
        full_run.as_millis()
    );
}

#[test]
fn on_a_read_only_replica_nothing_is_done_and_it_says_why() {
    let standby = pgm::sandbox::Sandbox::start_with(&pgm::sandbox::SandboxOptions {
        standby: true,
        ..Default::default()
    })
    .unwrap();
    let project = Project::bundled();
    std::fs::write(project.path().join("partman.toml"), POLICY).unwrap();
    let output = support::pgm()
        .current_dir(project.path())
        .env("DATABASE_URL", standby.url("postgres"))
        .args(["partitions", "maintain"])
        .output()
        .unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "this server is a read-only replica (in recovery): nothing to maintain here; run maintenance against the primary\n"
    );
    let output = support::pgm()
        .current_dir(project.path())
        .env("DATABASE_URL", standby.url("postgres"))
        .arg("migrate")
        .output()
        .unwrap();
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains(
            "this server is a read-only replica (in recovery): point DATABASE_URL at the primary"
        ),
        "{stderr}"
    );
}

/// With `max_drops_per_run` holding retirements back, the expired
/// partitions that stay get the declared index too: the parent index is
/// valid right after the run, and `check` is clean, not only once the last
/// of them is gone.
#[test]
fn a_parent_index_is_valid_after_a_run_that_holds_retirements_back() {
    let db = TestDb::new();
    let project = Project::new();
    std::fs::write(
        project.path().join("partman.toml"),
        "[[table]]\nname = \"public.readings\"\ninterval = \"monthly\"\npremake = 3\n\
         retention = \"12 months\"\nmax_drops_per_run = 1\n\n\
         [[table.index]]\nname = \"readings_device_taken_idx\"\ncolumns = [\"device_id\", \"taken_at DESC\"]\n",
    )
    .unwrap();
    db.connect()
        .batch_execute(
            "CREATE TABLE readings (device_id bigint NOT NULL, taken_at timestamptz NOT NULL) PARTITION BY RANGE (taken_at); \
             DO $$ DECLARE m date; BEGIN \
               FOR m IN SELECT generate_series('2025-08-01'::date, '2026-11-01', '1 month') LOOP \
                 EXECUTE format('CREATE TABLE readings_p%s PARTITION OF readings FOR VALUES FROM (%L) TO (%L)', \
                   to_char(m, 'YYYY_MM'), m::timestamptz, (m + interval '1 month')::timestamptz); \
               END LOOP; END $$; \
             INSERT INTO readings SELECT g, timestamptz '2025-08-01' + g * interval '1 hour' FROM generate_series(1, 11000) g;",
        )
        .unwrap();
    let (code, stdout, stderr) = maintain(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let mut client = db.connect();
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid \
             WHERE i.inhparent = 'readings'::regclass AND c.relname < 'readings_p2025_11'"
        ),
        ["2"],
        "one of the three expired partitions retired, two held back: {stdout}"
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT indisvalid::text FROM pg_index WHERE indexrelid = 'readings_device_taken_idx'::regclass"
        ),
        ["true"],
        "the parent index is valid although expired partitions wait for later runs"
    );
    let check = project
        .pgm(&db)
        .args(["partitions", "check", "--at", AT])
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&check);
    assert_eq!(
        code,
        Some(0),
        "check is clean right after maintain: {stdout}\n{stderr}"
    );
    for _ in 0..2 {
        let (code, stdout, stderr) = maintain(&project, &db, &[]);
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    }
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass"
        ),
        ["16"],
        "the held-back partitions are retired by the next runs: 12 kept, the current month and 3 ahead"
    );
    no_leftovers(&db);
}
