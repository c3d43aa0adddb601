//! Integer keys on a real PostgreSQL: an ID column listed with a time
//! interval is refused with the fix, ID ranges are planned from the largest
//! key and maintained, an integer key holding epoch milliseconds follows
//! the calendar, and writers crossing a range boundary never miss a
//! partition while maintenance runs.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use support::{Project, TestDb, column, outcome};

const AT: &str = "2026-11-22T10:00:00Z";

fn project(db: &TestDb, schema: &str, policy: &str) -> Project {
    db.connect().batch_execute(schema).unwrap();
    let project = Project::new();
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();
    project
}

fn pgm(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(&project.pgm(db).args(args).output().unwrap())
}

fn bounds(db: &TestDb, parent: &str) -> Vec<String> {
    column(
        &mut db.connect(),
        &format!(
            "SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{parent}'::regclass ORDER BY 1"
        ),
    )
}

const IKEY: &str = "CREATE TABLE ikey (id bigint NOT NULL, payload text) PARTITION BY RANGE (id);";

#[test]
fn an_integer_key_with_a_time_interval_and_no_epoch_is_refused_with_the_fix() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.ikey\"\ninterval = \"monthly\"\n";
    let project = project(&db, IKEY, policy);
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let text = format!("{stdout}{stderr}");
    assert!(
        text.contains(
            "partman.toml:3:12: public.ikey is partitioned on id of type bigint, and interval = \
             \"monthly\" does not say what it holds: for IDs write a step as a number, like interval = 1000000; \
             if id holds time since the epoch, keep the interval and add epoch = \"seconds\""
        ),
        "{text}"
    );
    assert_eq!(bounds(&db, "ikey"), Vec::<String>::new(), "nothing created");
}

#[test]
fn epoch_with_an_id_step_is_a_located_policy_error() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.ikey\"\ninterval = 1000\nepoch = \"seconds\"\n";
    let project = project(&db, IKEY, policy);
    let (code, _, stderr) = pgm(&project, &db, &["partitions", "plan", "--at", AT]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "partman.toml:3:12: interval = 1000 cuts the key into ID ranges, but epoch = \"seconds\" says it holds time"
        ),
        "{stderr}"
    );
}

#[test]
fn id_ranges_count_premake_from_the_largest_id_and_say_where_it_came_from() {
    let db = TestDb::new();
    let policy =
        "[[table]]\nname = \"public.ikey\"\ninterval = 1000\npremake = 2\nretention = 2000\n";
    let project = project(
        &db,
        &format!(
            "{IKEY} CREATE INDEX ON ikey (id); \
             CREATE TABLE ikey_old PARTITION OF ikey FOR VALUES FROM (0) TO (1000); \
             CREATE TABLE ikey_mid PARTITION OF ikey FOR VALUES FROM (1000) TO (2000); \
             CREATE TABLE ikey_new PARTITION OF ikey FOR VALUES FROM (2000) TO (3000); \
             CREATE TABLE ikey_ahead PARTITION OF ikey FOR VALUES FROM (3000) TO (4000); \
             INSERT INTO ikey SELECT g, 'x' FROM generate_series(1, 3042) g;"
        ),
        policy,
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "plan", "--at", AT]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("holds the largest id, 3042, read as max(id) of public.ikey_ahead"),
        "{stdout}"
    );
    // max 3042 − 2000 = 1042: [0,1000) expires, [1000,2000) stays.
    let detached: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("  ~ detach"))
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    assert_eq!(detached, ["public.ikey_old"], "{stdout}");
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        bounds(&db, "ikey"),
        [
            "ikey_ahead FOR VALUES FROM ('3000') TO ('4000')",
            "ikey_mid FOR VALUES FROM ('1000') TO ('2000')",
            "ikey_new FOR VALUES FROM ('2000') TO ('3000')",
            "ikey_p0000000000000004000 FOR VALUES FROM ('4000') TO ('5000')",
            "ikey_p0000000000000005000 FOR VALUES FROM ('5000') TO ('6000')",
        ]
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "check", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (_, stdout, _) = pgm(&project, &db, &["partitions", "status", "--at", AT]);
    assert!(
        stdout.contains("covered until 6000 (2 ahead, premake 2)"),
        "{stdout}"
    );
    let (_, stdout, _) = pgm(
        &project,
        &db,
        &["partitions", "check", "--at", AT, "--format", "prometheus"],
    );
    assert!(
        stdout.contains("pgm_partitions_ahead{table=\"public.ikey\"} 2"),
        "{stdout}"
    );
}

#[test]
fn an_empty_id_table_starts_at_the_range_holding_0() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.ikey\"\ninterval = 1000000\npremake = 1\n";
    let project = project(
        &db,
        "CREATE TABLE ikey (id integer NOT NULL) PARTITION BY RANGE (id);",
        policy,
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        bounds(&db, "ikey"),
        [
            "ikey_p0000000000 FOR VALUES FROM (0) TO (1000000)",
            "ikey_p0001000000 FOR VALUES FROM (1000000) TO (2000000)",
        ]
    );
}

#[test]
fn an_integer_key_holding_epoch_milliseconds_follows_the_calendar() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.ms\"\ninterval = \"daily\"\nepoch = \"milliseconds\"\n\
                  premake = 1\ntime_zone = \"Europe/Berlin\"\n";
    let project = project(
        &db,
        "CREATE TABLE ms (at_ms bigint NOT NULL) PARTITION BY RANGE (at_ms);",
        policy,
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let mut client = db.connect();
    // Berlin midnights of 22 and 23 November 2026, in milliseconds.
    let expected: Vec<String> = column(
        &mut client,
        "SELECT 'ms_p' || to_char(d, 'YYYY_MM_DD') || ' FOR VALUES FROM (''' \
           || (extract(epoch FROM (d::timestamp AT TIME ZONE 'Europe/Berlin')) * 1000)::bigint || ''') TO (''' \
           || (extract(epoch FROM ((d + 1)::timestamp AT TIME ZONE 'Europe/Berlin')) * 1000)::bigint || ''')' \
         FROM unnest(ARRAY[date '2026-11-22', date '2026-11-23']) d ORDER BY 1",
    );
    assert_eq!(bounds(&db, "ms"), expected);
}

/// The largest upper bound of the table's partitions.
fn horizon(db: &TestDb) -> i64 {
    column(
        &mut db.connect(),
        "SELECT max((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''?([0-9]+)'))[1]::bigint) \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ikey'::regclass",
    )[0]
    .parse()
    .unwrap()
}

/// Writers insert increasing IDs through many range boundaries while
/// `maintain` runs again and again, as cron would. The writers stay one
/// range short of the horizon the last run left (what a premake sized for
/// the insert rate guarantees), so every failure would be maintenance's:
/// a range not made, or made in a way that disturbs inserts.
#[test]
fn writers_crossing_range_boundaries_never_miss_a_partition() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.ikey\"\ninterval = 200\npremake = 3\nlock_timeout = \"200ms\"\n";
    let project = project(&db, &format!("{IKEY} CREATE INDEX ON ikey (id);"), policy);
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");

    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicI64::new(1));
    let allowed = Arc::new(AtomicI64::new(horizon(&db) - 200));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, next_id, allowed) = (stop.clone(), next_id.clone(), allowed.clone());
            let settings = db.settings();
            std::thread::spawn(move || {
                let mut client = pgm::db::connect(&settings).unwrap();
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let first = next_id.fetch_add(5, Ordering::SeqCst);
                    while first + 4 >= allowed.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    if let Err(e) = client.execute(
                        "INSERT INTO ikey SELECT g, 'w' FROM generate_series($1::bigint, $1::bigint + 4) g",
                        &[&first],
                    ) {
                        failures.push(e.to_string());
                    }
                }
                failures
            })
        })
        .collect();
    let mut runs = 0;
    while next_id.load(Ordering::SeqCst) < 2400 && runs < 500 {
        let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        allowed.store(horizon(&db) - 200, Ordering::SeqCst);
        runs += 1;
    }
    stop.store(true, Ordering::SeqCst);
    let failures: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "no insert missed a partition"
    );
    assert!(
        runs > 1,
        "maintain ran while the writers crossed boundaries"
    );
    assert!(
        horizon(&db) >= 2400,
        "the writers crossed a dozen ranges, each made by a run while they wrote"
    );
}

#[test]
fn a_numeric_key_is_cut_into_id_ranges() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.n\"\ninterval = 500\npremake = 1\n";
    let project = project(
        &db,
        "CREATE TABLE n (id numeric(20, 0) NOT NULL) PARTITION BY RANGE (id); \
         CREATE TABLE n_first PARTITION OF n FOR VALUES FROM (0) TO (500); \
         INSERT INTO n VALUES (42);",
        policy,
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let ranges = bounds(&db, "n");
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert!(
        ranges[1].starts_with("n_p0000000000000000500 FOR VALUES FROM ('500') TO ('1000')"),
        "{ranges:?}"
    );
    let (code, stdout, _) = pgm(
        &project,
        &db,
        &["partitions", "plan", "--at", AT, "--detailed-exitcode"],
    );
    assert_eq!(code, Some(0), "{stdout}");
}

/// A policy for `ikey` in ID ranges of 1000 that waits at most 200ms for a lock.
fn id_policy() -> pgm::partition::policy::Policy {
    let text = "[[table]]\nname = \"public.ikey\"\ninterval = 1000\nlock_timeout = \"200ms\"\n";
    pgm::partition::policy::parse(std::path::Path::new("partman.toml"), text).unwrap()
}

#[test]
fn a_max_read_behind_pending_ddl_is_that_tables_error_not_a_hang() {
    let db = TestDb::new();
    let mut setup = db.connect();
    setup
        .batch_execute(&format!(
            "{IKEY} CREATE TABLE ikey_a PARTITION OF ikey FOR VALUES FROM (0) TO (1000); \
             CREATE TABLE ikey_b PARTITION OF ikey FOR VALUES FROM (1000) TO (2000); \
             INSERT INTO ikey VALUES (1042, 'x');"
        ))
        .unwrap();
    // Pending DDL: a session holding ACCESS EXCLUSIVE on the newest partition.
    let mut ddl = db.connect();
    let mut holding = ddl.transaction().unwrap();
    holding
        .batch_execute("LOCK TABLE ikey_b IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut client = db.connect();
    // Without a bound of its own the read would wait out this session
    // setting and fail the whole snapshot.
    client
        .batch_execute("SET statement_timeout = '30s'")
        .unwrap();
    let policy = id_policy();
    let snapshot = pgm::partition::catalog::take_tables(&mut client, &policy.tables)
        .expect("one table's failed read does not fail the snapshot");
    let parent = snapshot.parents[0].as_ref().unwrap();
    assert_eq!(parent.max_key, None);
    let failure = parent.max_key_failure.as_deref().unwrap();
    assert!(
        failure.contains(
            "max(id) of public.ikey_b could not be read: another session holds a lock on it"
        ),
        "{failure}"
    );
    let at = chrono::DateTime::parse_from_rfc3339(AT).unwrap().to_utc();
    let plan = pgm::partition::planner::plan(&policy, &snapshot, at);
    assert_eq!(plan.steps().count(), 0, "nothing planned from a guess");
    let problem = plan.failures().next().unwrap();
    assert_eq!(
        problem.kind,
        pgm::partition::planner::ProblemKind::UnknownMaxKey
    );
    holding.rollback().unwrap();
    let snapshot = pgm::partition::catalog::take_tables(&mut client, &policy.tables).unwrap();
    let parent = snapshot.parents[0].as_ref().unwrap();
    assert_eq!(parent.max_key.as_ref().unwrap().value, "1042");
    assert_eq!(parent.max_key_failure, None);
}

#[test]
fn the_max_key_is_read_only_for_id_ranges_and_an_unindexed_read_says_so() {
    let db = TestDb::new();
    let project = project(
        &db,
        &format!(
            "{IKEY} CREATE TABLE ikey_a PARTITION OF ikey FOR VALUES FROM (0) TO (1000); \
             INSERT INTO ikey VALUES (42, 'x'); \
             CREATE TABLE ekey (t bigint NOT NULL) PARTITION BY RANGE (t); \
             CREATE TABLE ekey_a PARTITION OF ekey FOR VALUES FROM (0) TO (1795302000); \
             INSERT INTO ekey VALUES (7);"
        ),
        "[[table]]\nname = \"public.ikey\"\ninterval = 1000\n\n\
         [[table]]\nname = \"public.ekey\"\ninterval = \"monthly\"\nepoch = \"seconds\"\n",
    );
    let mut client = db.connect();
    let policy = pgm::partition::policy::load(&project.path().join("partman.toml")).unwrap();
    let snapshot = pgm::partition::catalog::take_tables(&mut client, &policy.tables).unwrap();
    let ids = snapshot.parents[0].as_ref().unwrap();
    let epoch = snapshot.parents[1].as_ref().unwrap();
    assert_eq!(ids.max_key.as_ref().map(|m| m.indexed), Some(false));
    assert_eq!(
        epoch.max_key, None,
        "an epoch key counts from the clock: not read"
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "plan", "--at", AT]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "read as max(id) of public.ikey_a (a scan of it: no index on that partition leads with the key)"
        ),
        "{stdout}"
    );
}

#[test]
fn the_largest_and_smallest_values_of_a_smallint_key_get_a_partition() {
    let db = TestDb::new();
    let policy = "[[table]]\nname = \"public.skey\"\ninterval = 1000\npremake = 2\n";
    let project = project(
        &db,
        "CREATE TABLE skey (id smallint NOT NULL) PARTITION BY RANGE (id); \
         CREATE TABLE skey_a PARTITION OF skey FOR VALUES FROM (31000) TO (32000); \
         INSERT INTO skey VALUES (31500);",
        policy,
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "plan", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("32000") && stdout.contains("MAXVALUE"),
        "{stdout}"
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        bounds(&db, "skey"),
        [
            "skey_a FOR VALUES FROM ('31000') TO ('32000')",
            "skey_p32000 FOR VALUES FROM ('32000') TO (MAXVALUE)",
        ]
    );
    let mut client = db.connect();
    client
        .batch_execute("INSERT INTO skey VALUES (32767)")
        .expect("the type's largest value has a partition");
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "check", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (code, stdout, stderr) = pgm(
        &project,
        &db,
        &["partitions", "plan", "--at", AT, "--detailed-exitcode"],
    );
    assert_eq!(code, Some(0), "nothing more to do: {stdout}\n{stderr}");

    // The range from MINVALUE to the first multiple is one range, adopted
    // (not drift), and counted from when it holds the largest key.
    let db = TestDb::new();
    let project = self::project(
        &db,
        "CREATE TABLE skey (id smallint NOT NULL) PARTITION BY RANGE (id); \
         CREATE TABLE skey_low PARTITION OF skey FOR VALUES FROM (MINVALUE) TO (-32000); \
         INSERT INTO skey VALUES (-32768);",
        "[[table]]\nname = \"public.skey\"\ninterval = 1000\npremake = 1\n",
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("drift") && !stderr.contains("which is not one"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(
        bounds(&db, "skey"),
        [
            "skey_low FOR VALUES FROM (MINVALUE) TO ('-32000')",
            "skey_p-68000 FOR VALUES FROM ('-32000') TO ('-31000')",
        ]
    );
}

#[test]
fn epoch_milliseconds_on_an_integer_column_is_an_error_naming_the_type() {
    let db = TestDb::new();
    let policy =
        "[[table]]\nname = \"public.ms\"\ninterval = \"monthly\"\nepoch = \"milliseconds\"\n";
    let project = project(
        &db,
        "CREATE TABLE ms (at_ms integer NOT NULL) PARTITION BY RANGE (at_ms);",
        policy,
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let text = format!("{stdout}{stderr}");
    assert!(
        text.contains(
            "public.ms: the monthly period starting 2026-11-01 needs the bound 1793491200000 (milliseconds \
             since the epoch), which at_ms of type integer cannot hold (at most 2147483647): change at_ms to \
             bigint in a migration"
        ),
        "{text}"
    );
    assert!(
        !text.contains("out of range for type integer"),
        "never sent: {text}"
    );
    assert_eq!(bounds(&db, "ms"), Vec::<String>::new());
}

#[test]
fn a_numeric_key_beyond_bigint_is_an_error_and_its_precision_bounds_the_ranges() {
    let db = TestDb::new();
    let project = project(
        &db,
        "CREATE TABLE n (id numeric(25, 0) NOT NULL) PARTITION BY RANGE (id); \
         CREATE TABLE n_big PARTITION OF n FOR VALUES FROM (0) TO (MAXVALUE); \
         INSERT INTO n VALUES (100000000000000000042);",
        "[[table]]\nname = \"public.n\"\ninterval = 1000\n",
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "plan", "--at", AT]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "public.n: the largest id, 100000000000000000042, is beyond bigint's range, which pgm plans ID \
             ranges in; nothing is planned for this table"
        ),
        "{stdout}"
    );

    // numeric(5, 0) holds at most 99999: the last range ends at MAXVALUE,
    // never at 100000, which PostgreSQL would refuse.
    let db = TestDb::new();
    let project = self::project(
        &db,
        "CREATE TABLE n (id numeric(5, 0) NOT NULL) PARTITION BY RANGE (id); \
         CREATE TABLE n_a PARTITION OF n FOR VALUES FROM (98000) TO (99000); \
         INSERT INTO n VALUES (98500);",
        "[[table]]\nname = \"public.n\"\ninterval = 1000\npremake = 3\n",
    );
    let (code, stdout, stderr) = pgm(&project, &db, &["partitions", "maintain", "--at", AT]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        bounds(&db, "n"),
        [
            "n_a FOR VALUES FROM ('98000') TO ('99000')",
            "n_p99000 FOR VALUES FROM ('99000') TO (MAXVALUE)",
        ]
    );
    db.connect()
        .batch_execute("INSERT INTO n VALUES (99999)")
        .unwrap();
}
