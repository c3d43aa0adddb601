//! pgm on a throwaway Citus cluster (a coordinator and two workers): a
//! partitioned table distributed by user_id and partitioned by month, as
//! Citus's time-series recipe makes it, maintained lock-safely. Opt-in
//! (`--features citus`, run by scripts/citus-check): it needs a PostgreSQL
//! with Citus installed, and fails saying what to install when there is none.
#![cfg(feature = "citus")]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pgm::db::{self, quote_ident};
use pgm::sandbox::citus::CitusCluster;
use support::{column, outcome};

const AT: &str = "2026-11-22T10:00:00Z";

/// 17 monthly partitions (2025-07 through 2026-11, the month holding AT):
/// four of them expired under a 12-month retention, three to premake.
const POLICY: &str = r#"[defaults]
lock_timeout = "500ms"
lock_retries = 3

[[table]]
name = "public.events"
interval = "monthly"
premake = 3
retention = "12 months"

[[table.index]]
name = "events_user_created_idx"
columns = ["user_id", "created_at DESC"]
"#;

const EXPIRED: [&str; 4] = [
    "events_p2025_07",
    "events_p2025_08",
    "events_p2025_09",
    "events_p2025_10",
];
const FUTURE: [&str; 3] = ["events_p2026_12", "events_p2027_01", "events_p2027_02"];

fn cluster() -> &'static CitusCluster {
    static CLUSTER: OnceLock<Result<&'static CitusCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| CitusCluster::start_for_process().map_err(|e| e.to_string())) {
        Ok(cluster) => cluster,
        Err(message) => panic!("the Citus tests need a Citus cluster: {message}"),
    }
}

/// A database of its own on every node of the cluster, for one test.
struct CitusDb {
    name: String,
    cluster: &'static CitusCluster,
    project: support::Project,
}

impl CitusDb {
    fn new() -> CitusDb {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let cluster = cluster();
        let test: String = std::thread::current()
            .name()
            .unwrap_or("test")
            .rsplit("::")
            .next()
            .unwrap_or("test")
            .chars()
            .take(40)
            .collect();
        let name = format!(
            "citus_{test}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        cluster.drop_database(&name).unwrap();
        cluster.create_database(&name).unwrap();
        CitusDb {
            name,
            cluster,
            project: support::Project::new(),
        }
    }

    fn connect(&self) -> postgres::Client {
        connect_to(&self.cluster.coordinator, &self.name)
    }

    fn connect_worker(&self, worker: usize) -> postgres::Client {
        connect_to(&self.cluster.workers[worker], &self.name)
    }

    fn pgm(&self) -> assert_cmd::Command {
        let mut command = support::pgm();
        command
            .env("DATABASE_URL", self.cluster.coordinator.url(&self.name))
            .current_dir(self.project.path());
        command
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        outcome(&self.pgm().args(args).output().unwrap())
    }

    fn maintain(&self) -> (Option<i32>, String, String) {
        self.run(&["partitions", "maintain", "--at", AT])
    }

    fn spawn_maintain(&self) -> std::process::Child {
        let home = tempfile::tempdir().unwrap().keep();
        std::process::Command::new(assert_cmd::cargo::cargo_bin("pgm"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("DATABASE_URL", self.cluster.coordinator.url(&self.name))
            .current_dir(self.project.path())
            .args(["partitions", "maintain", "--at", AT])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting pgm")
    }

    /// The user's project: the table distributed and partitioned in
    /// migrations, a concurrent index on a distributed table in a
    /// no-transaction one, 145,000 rows over 17 months, analyzed.
    fn with_events(self) -> CitusDb {
        std::fs::write(self.project.path().join("partman.toml"), POLICY).unwrap();
        self.project
            .write(
                "V1__events.sql",
                "CREATE TABLE events (user_id bigint NOT NULL, created_at timestamptz NOT NULL, payload text) \
                   PARTITION BY RANGE (created_at);\n\
                 SELECT create_distributed_table('events', 'user_id', shard_count := 4);\n\
                 CREATE TABLE users (user_id bigint PRIMARY KEY, email text NOT NULL);\n\
                 SELECT create_distributed_table('users', 'user_id', colocate_with := 'events');\n",
            )
            .write(
                "V2__events_partitions.sql",
                "SET TimeZone = 'UTC';\n\
                 SELECT create_time_partitions(table_name := 'events', partition_interval := '1 month', \
                   start_from := '2025-07-01', end_at := '2026-12-01');\n",
            )
            .write(
                "V3__users_email.sql",
                "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n",
            );
        let (code, stdout, stderr) = self.run(&["migrate"]);
        assert_eq!(code, Some(0), "migrations on Citus: {stdout}\n{stderr}");
        self.connect()
            .batch_execute(
                "INSERT INTO events SELECT g % 1000, timestamptz '2025-07-01' + g * interval '5 minutes', 'x' \
                   FROM generate_series(0, 145000) g; \
                 INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(0, 999) g; \
                 ANALYZE events;",
            )
            .unwrap();
        self
    }
}

impl Drop for CitusDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the database {} of the failed test", self.name);
            return;
        }
        let _ = self.cluster.drop_database(&self.name);
    }
}

fn connect_to(node: &pgm::sandbox::Sandbox, dbname: &str) -> postgres::Client {
    let mut settings = node.settings(dbname);
    settings.application_name = "pgm-test".to_owned();
    db::connect(&settings).expect("connecting to a Citus node")
}

fn count(client: &mut postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).unwrap().get(0)
}

/// The partitions of events on the coordinator, by name.
fn partitions(client: &mut postgres::Client) -> Vec<String> {
    column(
        client,
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
}

/// What a converged run leaves: 16 partitions from 2025-11 through
/// 2027-02, each distributed with its shards on the workers, every index
/// valid on the coordinator and on the workers, no marker, nothing expired
/// left anywhere, and `check` clean.
fn assert_converged(db: &CitusDb) {
    let mut client = db.connect();
    let names = partitions(&mut client);
    assert_eq!(names.len(), 16, "{names:?}");
    assert_eq!(names.first().map(String::as_str), Some("events_p2025_11"));
    assert_eq!(names.last().map(String::as_str), Some("events_p2027_02"));
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_inherits i LEFT JOIN pg_dist_partition p ON p.logicalrelid = i.inhrelid \
             WHERE i.inhparent = 'events'::regclass AND (p.partmethod IS DISTINCT FROM 'h' \
               OR (SELECT count(*) FROM pg_dist_shard s WHERE s.logicalrelid = i.inhrelid) <> 4)"
        ),
        0,
        "every partition distributed, 4 shards each"
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'events_p2025_0%' \
               OR logicalrelid::text = 'events_p2025_10'"
        ),
        0,
        "the expired partitions are gone from Citus's metadata"
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
        ),
        0,
        "every index valid on the coordinator"
    );
    assert!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_index WHERE indexrelid = 'events_user_created_idx'::regclass AND indisvalid"
        ) == 1
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_description WHERE description LIKE 'pgm: %'"
        ),
        0,
        "no marker left"
    );
    for worker in 0..db.cluster.workers.len() {
        let mut worker_client = db.connect_worker(worker);
        assert_eq!(
            count(
                &mut worker_client,
                "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
            ),
            0,
            "every index valid on worker {worker}"
        );
        assert_eq!(
            count(
                &mut worker_client,
                "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname ~ '^events_p2025_(07|08|09|10)'"
            ),
            0,
            "no shard of an expired partition left on worker {worker}"
        );
    }
    let (code, stdout, stderr) = db.run(&["partitions", "check", "--at", AT]);
    assert_eq!(code, Some(0), "check is clean: {stdout}\n{stderr}");
}

#[test]
fn maintains_a_distributed_table_on_citus() {
    let db = CitusDb::new().with_events();
    let (code, plan, stderr) = db.run(&["partitions", "plan", "--at", AT, "--format", "sql"]);
    assert_eq!(code, Some(0), "{plan}\n{stderr}");
    assert!(
        plan.contains("distributed by Citus, which refuses DETACH … CONCURRENTLY"),
        "{plan}"
    );
    assert!(
        plan.contains("-- distributed by Citus: new partitions are created like the parent"),
        "the plan says the table is distributed and what that changes: {plan}"
    );
    assert!(
        plan.contains("SET LOCAL citus.propagate_set_commands = 'local';\nSET LOCAL lock_timeout = '500ms';\nCOMMENT ON TABLE \"public\".\"events_p2025_07\""),
        "the detach's lock_timeout reaches the workers: {plan}"
    );
    assert!(!plan.contains("DETACH PARTITION \"public\".\"events_p2025_07\" CONCURRENTLY"));

    let started = Instant::now();
    let (code, stdout, stderr) = db.maintain();
    eprintln!(
        "maintain on Citus took {} ms:\n{stdout}",
        started.elapsed().as_millis()
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let mut client = db.connect();
    for name in FUTURE {
        assert_eq!(
            count(
                &mut client,
                &format!(
                    "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = to_regclass('{name}') AND partmethod = 'h'"
                )
            ),
            1,
            "{name} created and distributed"
        );
    }
    for name in EXPIRED {
        assert_eq!(
            count(
                &mut client,
                &format!("SELECT count(*) FROM pg_class WHERE relname = '{name}'")
            ),
            0,
            "{name} retired"
        );
    }
    assert_converged(&db);

    // status: the rows and bytes of the shards, not the coordinator's shells.
    let (code, status, stderr) = db.run(&["partitions", "status", "--at", AT, "--format", "json"]);
    assert_eq!(code, Some(0), "{status}\n{stderr}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let october = status[0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["name"]
                .as_str()
                .unwrap_or("")
                .ends_with("events_p2026_10")
        })
        .unwrap_or_else(|| panic!("{status}"));
    let (size, rows): (i64, f64) = {
        let row = client
            .query_one(
                "SELECT citus_relation_size('events_p2026_10'), \
                   (SELECT count(*) FROM events_p2026_10)::float8",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(october["estimated_bytes"].as_i64(), Some(size), "{october}");
    let estimated = october["estimated_rows"].as_i64().unwrap() as f64;
    assert!(
        (estimated - rows).abs() <= rows * 0.1,
        "row estimate {estimated} from the shards' statistics, {rows} counted"
    );
    eprintln!("status of events_p2026_10: {october} (citus_relation_size {size}, {rows} rows)");
    let (_, text, _) = db.run(&["partitions", "status", "--at", AT]);
    eprintln!("{text}");

    let (code, stdout, stderr) = db.maintain();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (code, plan, _) = db.run(&["partitions", "plan", "--at", AT, "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "nothing left to do: {plan}");
}

/// Inserts a row every 10 ms through the coordinator until stopped;
/// returns the slowest insert and how many were made.
fn writer(db: &CitusDb, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Duration, usize)> {
    let mut client = db.connect();
    std::thread::spawn(move || {
        let mut worst = Duration::ZERO;
        let mut inserts = 0;
        let insert = client
            .prepare("INSERT INTO events VALUES ($1, timestamptz '2026-11-21 12:00+00', 'writer')")
            .unwrap();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            client.execute(&insert, &[&(inserts as i64)]).unwrap();
            worst = worst.max(started.elapsed());
            inserts += 1;
            std::thread::sleep(Duration::from_millis(10).saturating_sub(started.elapsed()));
        }
        (worst, inserts)
    })
}

/// A report holding the distributed table open for 12 s, from `client`.
fn report(mut client: postgres::Client) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        client
            .batch_execute("BEGIN; SELECT count(*) FROM events; SELECT pg_sleep(12); COMMIT;")
            .unwrap();
    })
}

/// A writer at 100 rows/s and a 12 s report during maintain: the
/// retirements that cannot get their lock are deferred (reported, not
/// failed), everything else is done, and the next run retires them. The
/// writer's worst insert is printed; it stays near lock_timeout because
/// every attempt of the detach gives up after it, on the coordinator and
/// on the workers.
fn retires_around_a_long_report(reader_on_worker: bool) {
    let db = CitusDb::new().with_events();
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(&db, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let reader = if reader_on_worker {
        db.connect_worker(0)
    } else {
        db.connect()
    };
    let reading = report(reader);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (code, stdout, stderr) = db.maintain();
    let took = started.elapsed();
    reading.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (worst, inserts) = writing.join().unwrap();
    eprintln!(
        "reader on {}: maintain took {} ms; writer made {inserts} inserts, the worst took {} ms \
         (lock_timeout 500 ms, 3 retries)\n{stdout}\n{stderr}",
        if reader_on_worker {
            "worker 0"
        } else {
            "the coordinator"
        },
        took.as_millis(),
        worst.as_millis()
    );
    assert_eq!(
        code,
        Some(0),
        "deferred retirements do not fail the run: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("the detach of public.events_p2025_07 did not get its lock"),
        "the retirement that could not get its lock is reported: {stdout}"
    );
    if reader_on_worker {
        assert!(
            stdout.contains("on a worker, while executing command on 127.0.0.1:"),
            "the lock wait that gave up was on a worker, under the propagated lock_timeout: {stdout}"
        );
    }
    let mut client = db.connect();
    assert_eq!(partitions(&mut client).len(), 20, "nothing retired yet");
    let (code, stdout, stderr) = db.maintain();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_converged(&db);
}

#[test]
fn a_long_report_on_the_coordinator_defers_retirement_without_stalling_writers() {
    retires_around_a_long_report(false);
}

#[test]
fn a_long_reader_on_a_worker_shard_does_not_stall_writers() {
    retires_around_a_long_report(true);
}

/// What the propagation is for, printed for comparison (not asserted: a
/// measurement): the same plain DETACH with lock_timeout set only on the
/// coordinator, while a reader on a worker holds a shard for 4 s.
#[test]
fn without_the_propagated_lock_timeout_a_worker_reader_holds_writers() {
    let db = CitusDb::new().with_events();
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(&db, stop.clone());
    let mut reader = db.connect_worker(0);
    let reading = std::thread::spawn(move || {
        reader
            .batch_execute("BEGIN; SELECT count(*) FROM events; SELECT pg_sleep(4); COMMIT;")
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut client = db.connect();
    let started = Instant::now();
    let result = (|| {
        let mut transaction = client.transaction()?;
        transaction.batch_execute("SET LOCAL lock_timeout = '500ms'")?;
        transaction.batch_execute("ALTER TABLE events DETACH PARTITION events_p2025_07")?;
        transaction.rollback()
    })();
    let took = started.elapsed();
    reading.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (worst, inserts) = writing.join().unwrap();
    eprintln!(
        "lock_timeout on the coordinator only: the detach took {} ms ({}); the writer's worst insert of \
         {inserts} took {} ms",
        took.as_millis(),
        match result {
            Ok(()) => "it waited for the reader on the worker, then succeeded".to_owned(),
            Err(error) => format!(
                "failed: {}",
                error
                    .as_db_error()
                    .map_or(error.to_string(), |db| db.message().to_owned())
            ),
        },
        worst.as_millis()
    );
}

/// Killed at instants spread over a run, each time run again until one
/// completes: the clean run converges (partitions, shards, indexes).
#[test]
fn killed_during_maintain_the_next_run_converges() {
    let mut rounds = Vec::new();
    for _ in 0..6 {
        let db = CitusDb::new().with_events();
        let delay = Duration::from_millis(fastrand::u64(100..3_400));
        let mut child = db.spawn_maintain();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        let mut client = db.connect();
        // A coordinator killed between PREPARE and COMMIT leaves prepared
        // transactions on the workers; Citus's maintenance daemon resolves
        // them within citus.recover_2pc_interval; the test does not wait.
        client
            .batch_execute("SELECT recover_prepared_transactions()")
            .unwrap();
        let left = column(
            &mut client,
            "SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass) || ' partitions, ' \
               || (SELECT count(*) FROM pg_description WHERE description LIKE 'pgm: %') || ' markers, ' \
               || (SELECT count(*) FROM pg_index WHERE NOT indisvalid) || ' invalid indexes'",
        );
        rounds.push(format!(
            "killed after {} ms: {}",
            delay.as_millis(),
            left[0]
        ));
        let (code, stdout, stderr) = db.maintain();
        assert_eq!(code, Some(0), "killed after {delay:?}: {stdout}\n{stderr}");
        assert_converged(&db);
    }
    eprintln!("{}; each converged with the next run", rounds.join("; "));
}

/// Reference, local and schema-sharded tables: each a clear error entry
/// of its own, and the distributed table next to them is maintained.
#[test]
fn citus_tables_pgm_does_not_manage_are_errors_of_their_own() {
    let db = CitusDb::new().with_events();
    db.connect()
        .batch_execute(
            "CREATE TABLE places (id int PRIMARY KEY, name text); \
             SELECT create_reference_table('places'); \
             CREATE TABLE local_log (at timestamptz NOT NULL) PARTITION BY RANGE (at); \
             SELECT citus_add_local_table_to_metadata('local_log'); \
             SET citus.enable_schema_based_sharding = on; \
             CREATE SCHEMA tenant_a; \
             CREATE TABLE tenant_a.visits (at timestamptz NOT NULL) PARTITION BY RANGE (at); \
             RESET citus.enable_schema_based_sharding;",
        )
        .unwrap();
    let mut policy = POLICY.to_owned();
    for name in ["public.places", "public.local_log", "tenant_a.visits"] {
        policy.push_str(&format!(
            "\n[[table]]\nname = \"{name}\"\ninterval = \"monthly\"\npremake = 3\n"
        ));
    }
    std::fs::write(db.project.path().join("partman.toml"), policy).unwrap();
    let (code, plan, stderr) = db.run(&["partitions", "plan", "--at", AT, "--format", "json"]);
    assert_eq!(code, Some(1), "{plan}\n{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let message = |table: &str| -> String {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["table"] == table && s["action"] == "error")
            .map(|s| {
                assert_eq!(s["reason"], "citus_unsupported", "{s}");
                s["message"].as_str().unwrap().to_owned()
            })
            .unwrap_or_else(|| panic!("no error entry for {table}: {plan}"))
    };
    assert!(message("public.places").contains("Citus reference table"));
    assert!(message("public.local_log").contains("Citus local table"));
    assert!(message("tenant_a.visits").contains("distributed schema"));
    let (code, stdout, stderr) = db.maintain();
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        partitions(&mut db.connect()).len(),
        16,
        "events maintained: {stdout}"
    );
}

/// Partition names leave room for the `_NNNNNN` Citus appends to its
/// shards' names.
#[test]
fn long_partition_names_of_a_distributed_table_are_refused_with_the_room_needed() {
    let db = CitusDb::new();
    let parent = "events_with_a_rather_long_name_for_citus_shard_tables";
    db.connect()
        .batch_execute(&format!(
            "CREATE TABLE {0} (user_id bigint NOT NULL, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at); \
             SELECT create_distributed_table('{0}', 'user_id', shard_count := 2);",
            quote_ident(parent)
        ))
        .unwrap();
    std::fs::write(
        db.project.path().join("partman.toml"),
        format!("[[table]]\nname = \"public.{parent}\"\ninterval = \"monthly\"\npremake = 1\n"),
    )
    .unwrap();
    let (code, plan, stderr) = db.run(&["partitions", "plan", "--at", AT]);
    assert_eq!(code, Some(1), "{plan}\n{stderr}");
    assert!(
        plan.contains("are 62 bytes")
            && plan.contains("so they must be at most 56")
            && plan.matches("name_too_long").count() == 1,
        "{plan}\n{stderr}"
    );
}

/// The partitions past `columnar_after = "3 months"` at AT and not expired:
/// 2025-11 through 2026-07.
const COLUMNAR: [&str; 9] = [
    "events_p2025_11",
    "events_p2025_12",
    "events_p2026_01",
    "events_p2026_02",
    "events_p2026_03",
    "events_p2026_04",
    "events_p2026_05",
    "events_p2026_06",
    "events_p2026_07",
];

impl CitusDb {
    /// The same project with columnar_after and Citus's columnar access
    /// method installed by a migration.
    fn with_columnar(self) -> CitusDb {
        let policy = POLICY.replace(
            "retention = \"12 months\"\n",
            "retention = \"12 months\"\ncolumnar_after = \"3 months\"\n",
        );
        std::fs::write(self.project.path().join("partman.toml"), policy).unwrap();
        self.project.write(
            "V4__columnar.sql",
            "CREATE EXTENSION IF NOT EXISTS citus_columnar;\n",
        );
        let (code, stdout, stderr) = self.run(&["migrate"]);
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        self
    }
}

/// Rows of events outside the expired partitions: what conversion keeps.
fn kept_rows(client: &mut postgres::Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM events WHERE created_at >= '2025-11-01'",
    )
}

fn assert_columnar(db: &CitusDb, rows: i64) {
    let mut client = db.connect();
    let methods = column(
        &mut client,
        "SELECT c.relname || ' ' || a.amname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_am a ON a.oid = c.relam WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    );
    for line in &methods {
        let (name, method) = line.split_once(' ').unwrap();
        let expected = if COLUMNAR.contains(&name) {
            "columnar"
        } else {
            "heap"
        };
        assert_eq!(method, expected, "{name}: {methods:?}");
    }
    assert_eq!(kept_rows(&mut client), rows, "no row lost or doubled");
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_constraint WHERE conname LIKE '%pgm_bounds'"
        ),
        0,
        "no bounds CHECK left"
    );
    assert_converged(db);
}

#[test]
fn old_partitions_become_columnar_one_per_transaction() {
    let db = CitusDb::new().with_events().with_columnar();
    let rows = kept_rows(&mut db.connect());
    let (code, plan, stderr) = db.run(&["partitions", "plan", "--at", AT, "--format", "sql"]);
    assert_eq!(code, Some(0), "{plan}\n{stderr}");
    assert_eq!(
        plan.matches("SELECT alter_table_set_access_method(")
            .count(),
        COLUMNAR.len(),
        "{plan}"
    );
    assert!(
        plan.contains(
            "SET LOCAL citus.propagate_set_commands = 'local';\nSET LOCAL lock_timeout = '500ms';\n\
             ALTER TABLE \"public\".\"events_p2026_07\" VALIDATE CONSTRAINT \"events_p2026_07_pgm_bounds\";\n\
             SELECT alter_table_set_access_method('\"public\".\"events_p2026_07\"', 'columnar');\n\
             ALTER TABLE \"public\".\"events_p2026_07\" DROP CONSTRAINT \"events_p2026_07_pgm_bounds\";\nCOMMIT;"
        ),
        "{plan}"
    );
    let started = Instant::now();
    let (code, stdout, stderr) = db.maintain();
    eprintln!(
        "maintain with columnar conversion took {} ms:\n{stdout}",
        started.elapsed().as_millis()
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("9 converted to columnar"), "{stdout}");
    assert_columnar(&db, rows);
    let (_, status, _) = db.run(&["partitions", "status", "--at", AT]);
    eprintln!("{status}");
    let (code, plan, _) = db.run(&["partitions", "plan", "--at", AT, "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "nothing left to do: {plan}");
}

#[test]
fn killed_during_columnar_conversion_the_next_run_converges() {
    let db = CitusDb::new().with_events();
    // Retention and indexes done first: the runs below only convert.
    let (code, stdout, stderr) = db.maintain();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let db = db.with_columnar();
    let rows = kept_rows(&mut db.connect());
    let mut watcher = db.connect();
    let mut killed_at = Vec::new();
    for _ in 0..8 {
        let mut child = db.spawn_maintain();
        // Killed a random moment after the first conversion starts: within
        // it, or within or between the next ones (each takes under 100 ms here).
        let converting = wait_for_conversion(&mut watcher, &mut child);
        let delay = Duration::from_millis(fastrand::u64(0..500));
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        let mut client = db.connect();
        client
            .batch_execute("SELECT recover_prepared_transactions()")
            .unwrap();
        let columnar = count(
            &mut client,
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_am a ON a.oid = c.relam WHERE i.inhparent = 'events'::regclass AND a.amname = 'columnar'",
        );
        killed_at.push(match converting {
            true => format!(
                "{} ms after a conversion started: {columnar} columnar",
                delay.as_millis()
            ),
            false => format!("after the run ended: {columnar} columnar"),
        });
        assert_eq!(kept_rows(&mut client), rows, "after the kill at {delay:?}");
        if !converting {
            break;
        }
    }
    eprintln!("kills: {}", killed_at.join("; "));
    let (code, stdout, stderr) = db.maintain();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_columnar(&db, rows);
}

/// Waits until `child` runs alter_table_set_access_method (true), or has
/// ended (false).
fn wait_for_conversion(watcher: &mut postgres::Client, child: &mut std::process::Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let converting = count(
            watcher,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'active' AND query LIKE 'SELECT alter_table_set_access_method(%'",
        );
        if converting > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no conversion started within 60 s");
}

/// A distributed table cut into ID ranges: its largest key is read through
/// Citus (a distributed `max`) and the ranges are counted from it.
#[test]
fn a_distributed_table_cut_into_id_ranges_is_counted_from_its_largest_id() {
    let db = CitusDb::new();
    db.connect()
        .batch_execute(
            "CREATE TABLE orders (id bigint NOT NULL, tenant_id bigint NOT NULL) PARTITION BY RANGE (id); \
             SELECT create_distributed_table('orders', 'tenant_id', shard_count := 2); \
             CREATE TABLE orders_p0000000000000000000 PARTITION OF orders FOR VALUES FROM (0) TO (1000); \
             CREATE TABLE orders_p0000000000000001000 PARTITION OF orders FOR VALUES FROM (1000) TO (2000); \
             INSERT INTO orders SELECT g, g % 10 FROM generate_series(1, 1500) g;",
        )
        .unwrap();
    std::fs::write(
        db.project.path().join("partman.toml"),
        "[[table]]\nname = \"public.orders\"\ninterval = 1000\npremake = 2\n",
    )
    .unwrap();
    let (code, plan, stderr) = db.run(&["partitions", "plan", "--at", AT]);
    assert_eq!(code, Some(0), "{plan}\n{stderr}");
    assert!(
        plan.contains("the range that holds the largest id, 1500, read as max(id) of public.orders_p0000000000000001000"),
        "{plan}"
    );
    let (code, stdout, stderr) = db.maintain();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 created"), "{stdout}");
}
