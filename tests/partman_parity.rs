//! Differential tests against pg_partman 4.7.2 (Debian's
//! postgresql-15-partman): the same table, data and clock given to
//! pg_partman's `create_parent` / `run_maintenance` and to `pgm partitions
//! maintain`, then the partition bounds compared (names differ by design).
//! They run on the Debian PostgreSQL 15 binaries, where the extension is
//! installed, whatever version the rest of the suite uses.

mod support;

use std::path::Path;
use std::sync::OnceLock;

use pgm::db::{self, quote_ident};
use pgm::sandbox::{Sandbox, SandboxOptions};
use support::{Project, column, outcome};

const BINDIR: &str = "/usr/lib/postgresql/15/bin";
const CONTROL: &str = "/usr/share/postgresql/15/extension/pg_partman.control";
const MISSING: &str = "pg_partman 4.7 for PostgreSQL 15 is missing: the parity tests need it; \
                       install it with `apt-get install postgresql-15-partman`";

/// The PostgreSQL 15 cluster of this test binary, with pg_partman available.
fn server() -> &'static Sandbox {
    static SERVER: OnceLock<&'static Sandbox> = OnceLock::new();
    SERVER.get_or_init(|| {
        assert!(Path::new(BINDIR).join("postgres").is_file(), "{MISSING}");
        assert!(Path::new(CONTROL).is_file(), "{MISSING}");
        Sandbox::start_for_process(&SandboxOptions {
            bindir: Some(BINDIR.into()),
            ..SandboxOptions::default()
        })
        .unwrap_or_else(|e| panic!("starting PostgreSQL 15 for the parity tests: {e}"))
    })
}

/// A fresh database with pg_partman in schema `partman`, and the schemas
/// `theirs` (pg_partman's tables) and `ours` (pgm's).
struct Database {
    name: String,
}

impl Database {
    fn new(test: &str) -> Database {
        let name = format!("parity_{}_{test}", std::process::id());
        let mut admin = db::connect(&server().settings("postgres")).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .unwrap();
        let database = Database { name };
        database
            .connect()
            .batch_execute(
                "CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman; \
                 CREATE SCHEMA theirs; CREATE SCHEMA ours;",
            )
            .unwrap_or_else(|e| panic!("{MISSING} ({e})"));
        let version = column(
            &mut database.connect(),
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_partman'",
        );
        assert_eq!(version, ["4.7.2"], "the parity tests are written for 4.7.2");
        database
    }

    fn connect(&self) -> postgres::Client {
        db::connect(&server().settings(&self.name)).unwrap()
    }

    /// Runs `pgm` with this policy against the database.
    fn pgm(&self, policy: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let project = Project::new();
        std::fs::write(project.path().join("partman.toml"), policy).unwrap();
        let output = support::pgm()
            .env("DATABASE_URL", server().url(&self.name))
            .current_dir(project.path())
            .args(args)
            .output()
            .unwrap();
        outcome(&output)
    }

    fn maintain(&self, policy: &str) {
        let (code, stdout, stderr) = self.pgm(
            policy,
            &["partitions", "maintain", "--at", "2026-11-22T10:00:00Z"],
        );
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    }

    /// The range bounds of a parent's partitions, lowest first (the default
    /// partition left out: pg_partman always makes one, pgm when asked).
    fn bounds(&self, parent: &str) -> Vec<String> {
        column(
            &mut self.connect(),
            &format!(
                "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
                 JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = {}::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT' \
                 ORDER BY (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''?(-?[0-9]+)'))[1]::numeric",
                db::quote_literal(parent)
            ),
        )
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the database {} of the failed test", self.name);
            return;
        }
        if let Ok(mut admin) = db::connect(&server().settings("postgres")) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.name)
            ));
        }
    }
}

/// The same ID-keyed table in both schemas.
fn id_tables(database: &Database, sql_type: &str) {
    database
        .connect()
        .batch_execute(&format!(
            "CREATE TABLE theirs.t (id {sql_type} NOT NULL, payload text) PARTITION BY RANGE (id); \
             CREATE INDEX ON theirs.t (id); \
             CREATE TABLE ours.t (id {sql_type} NOT NULL, payload text) PARTITION BY RANGE (id); \
             CREATE INDEX ON ours.t (id);"
        ))
        .unwrap();
}

fn id_policy(step: i64, premake: u32, retention: Option<i64>) -> String {
    let retention = retention.map_or(String::new(), |r| format!("retention = {r}\n"));
    format!(
        "[[table]]\nname = \"ours.t\"\ninterval = {step}\npremake = {premake}\n{retention}\
         \n[[table]]\nname = \"theirs.t\"\ninterval = {step}\npremake = {premake}\n"
    )
}

/// pgm's policy for its own table only.
fn ours_only(policy: &str) -> String {
    policy
        .split("\n[[table]]\nname = \"theirs.t\"")
        .next()
        .unwrap()
        .to_owned()
}

/// Inserts ids 1..=max into both tables.
fn insert_ids(database: &Database, max: i64) {
    database
        .connect()
        .batch_execute(&format!(
            "INSERT INTO theirs.t SELECT g, 'x' FROM generate_series(1, {max}) g; \
             INSERT INTO ours.t SELECT g, 'x' FROM generate_series(1, {max}) g; \
             ANALYZE theirs.t, ours.t;"
        ))
        .unwrap();
}

/// One id-based case: an empty table set up by both, then rows up to
/// `max` and a maintenance run of each; the bounds must match at both points.
fn id_case(sql_type: &str, step: i64, max: i64) {
    let database = Database::new(&format!("{}_{step}", sql_type.replace(' ', "_")));
    id_tables(&database, sql_type);
    let premake = 4;
    let policy = id_policy(step, premake, None);
    database
        .connect()
        .batch_execute(&format!(
            "SELECT partman.create_parent('theirs.t', 'id', 'native', '{step}', p_premake := {premake})"
        ))
        .unwrap();
    database.maintain(&ours_only(&policy));
    let empty = database.bounds("theirs.t");
    assert_eq!(
        database.bounds("ours.t"),
        empty,
        "empty {sql_type} table, step {step}: both start at the range holding 0"
    );
    assert_eq!(empty.len(), premake as usize + 1);

    insert_ids(&database, max);
    database
        .connect()
        .batch_execute("SELECT partman.run_maintenance('theirs.t')")
        .unwrap();
    database.maintain(&ours_only(&policy));
    let theirs = database.bounds("theirs.t");
    assert_eq!(
        database.bounds("ours.t"),
        theirs,
        "{sql_type}, step {step}, ids up to {max}: premake counted from the largest id"
    );
    let top = max - max % step + i64::from(premake) * step;
    assert_eq!(
        theirs.last().map(|b| b.replace('\'', "")),
        Some(format!("FOR VALUES FROM ({top}) TO ({})", top + step)),
        "the last range is premake ranges after the one holding the largest id"
    );

    // Adoption: pgm, given pg_partman's table, finds nothing to do and no drift.
    let (code, stdout, stderr) = database.pgm(
        &policy,
        &[
            "partitions",
            "plan",
            "--at",
            "2026-11-22T10:00:00Z",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(
        code,
        Some(0),
        "pg_partman's partitions are adopted as they are:\n{stdout}\n{stderr}"
    );
}

#[test]
fn id_ranges_of_10_on_integer_match_pg_partman() {
    id_case("integer", 10, 37);
}

#[test]
fn id_ranges_of_1000_on_bigint_match_pg_partman() {
    id_case("bigint", 1000, 3500);
}

#[test]
fn id_ranges_of_a_million_on_bigint_match_pg_partman() {
    id_case("bigint", 1_000_000, 4_200_000);
}

#[test]
fn id_ranges_of_a_million_on_integer_match_pg_partman() {
    id_case("integer", 1_000_000, 2_000_001);
}

/// Retention by IDs: pg_partman drops a partition when
/// `retention <= max - (start + step)`; pgm keeps the partitions whose upper
/// bound is above max - retention, the same rule.
#[test]
fn id_retention_matches_pg_partman() {
    let database = Database::new("retention");
    id_tables(&database, "bigint");
    let (step, premake, retention) = (1000, 4, 2500);
    database
        .connect()
        .batch_execute(&format!(
            "SELECT partman.create_parent('theirs.t', 'id', 'native', '{step}', p_premake := {premake}); \
             UPDATE partman.part_config SET retention = '{retention}', retention_keep_table = false \
             WHERE parent_table = 'theirs.t';"
        ))
        .unwrap();
    let policy = ours_only(&id_policy(step, premake, Some(retention)));
    database.maintain(&policy);
    insert_ids(&database, 4700);
    for _ in 0..2 {
        database
            .connect()
            .batch_execute("SELECT partman.run_maintenance('theirs.t')")
            .unwrap();
        database.maintain(&policy);
    }
    let theirs = database.bounds("theirs.t");
    assert_eq!(database.bounds("ours.t"), theirs);
    // max 4700 - 2500 = 2200: [0,1000) and [1000,2000) are gone, [2000,3000) stays.
    assert_eq!(
        theirs[0].replace('\'', ""),
        "FOR VALUES FROM (2000) TO (3000)",
        "{theirs:?}"
    );
}

/// The same timestamptz table in both schemas, and the database's sessions
/// in `zone` (pg_partman computes and names its periods in the session's
/// zone; bounds print in it too, for both tables alike).
fn time_tables(database: &Database, zone: &str) {
    let mut client = database.connect();
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET timezone TO {}; \
             CREATE TABLE theirs.t (at timestamptz NOT NULL, payload text) PARTITION BY RANGE (at); \
             CREATE TABLE ours.t (at timestamptz NOT NULL, payload text) PARTITION BY RANGE (at);",
            quote_ident(&database.name),
            db::quote_literal(zone)
        ))
        .unwrap();
}

/// The time cases give create_parent a start in 2040: it counts premake
/// from the real clock, so with a start after today's date it makes that
/// one partition only, and everything after comes from run_maintenance,
/// which counts from the newest row, a time the test sets.
///
/// Walks the clock from `first` by `step`, as cron would: at each tick a
/// row at that time goes into both tables, pg_partman's run_maintenance
/// runs (it counts from the newest row), after pgm maintained with `--at`
/// the same time (it counts from the clock).
fn walk(database: &Database, policy: &str, first: &str, step: chrono::Duration, ticks: u32) {
    let first: chrono::DateTime<chrono::Utc> = first.parse().unwrap();
    for tick in 0..ticks {
        let at = first + step * tick as i32;
        let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (code, stdout, stderr) =
            database.pgm(policy, &["partitions", "maintain", "--at", &at_text]);
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        database
            .connect()
            .batch_execute(&format!(
                "INSERT INTO theirs.t VALUES ('{at_text}', 'x'); INSERT INTO ours.t VALUES ('{at_text}', 'x'); \
                 SELECT partman.run_maintenance('theirs.t');"
            ))
            .unwrap();
    }
}

/// The range bounds of a time-keyed parent in time order, printed in the
/// database's zone.
fn time_bounds(database: &Database, parent: &str) -> Vec<String> {
    column(
        &mut database.connect(),
        &format!(
            "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = {}::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT' \
             ORDER BY (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)'))[1]::timestamptz",
            db::quote_literal(parent)
        ),
    )
}

fn hourly_policy(zone: &str) -> String {
    format!(
        "[[table]]\nname = \"ours.t\"\ninterval = \"hourly\"\npremake = 4\ntime_zone = \"{zone}\"\n"
    )
}

/// Berlin's 23-hour day (25 March 2040): hourly partitions match
/// pg_partman's, the skipped 02:00 hour simply absent from both.
#[test]
fn hourly_across_a_spring_forward_night_matches_pg_partman() {
    let database = Database::new("hourly_spring");
    time_tables(&database, "Europe/Berlin");
    database
        .connect()
        .batch_execute(
            "SELECT partman.create_parent('theirs.t', 'at', 'native', 'hourly', p_premake := 4, \
             p_start_partition := '2040-03-24 22:00:00+01')",
        )
        .unwrap();
    let policy = hourly_policy("Europe/Berlin");
    walk(
        &database,
        &policy,
        "2040-03-24T21:30:00Z",
        chrono::Duration::hours(1),
        10,
    );
    let theirs = time_bounds(&database, "theirs.t");
    assert_eq!(time_bounds(&database, "ours.t"), theirs);
    assert!(
        theirs
            .iter()
            .any(|b| b.contains("FROM ('2040-03-25 01:00:00+01') TO ('2040-03-25 03:00:00+02')")),
        "the hour before the gap ends where the gap does: {theirs:#?}"
    );
    // Adoption: pgm finds nothing to change in pg_partman's table.
    let adopt = format!("{policy}\n{}", policy.replace("ours.t", "theirs.t"));
    let (code, stdout, stderr) = database.pgm(
        &adopt,
        &[
            "partitions",
            "plan",
            "--at",
            "2040-03-25T06:30:00Z",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

/// Berlin's 25-hour day (28 October 2040). pg_partman adds one absolute
/// hour at a time but names partitions by local time: the second 02:00
/// hour gets the name of the first, is taken for existing and skipped,
/// leaving a hole its default partition fills (without a default, inserts
/// in that hour would fail). pgm's periods follow the local clock, so its
/// 02:00 period runs from the first 02:00 to 03:00, two hours, one name,
/// no hole. This is the one deliberate difference, and pgm's is right.
#[test]
fn hourly_across_a_fall_back_night_differs_from_pg_partman_only_at_the_repeated_hour() {
    let database = Database::new("hourly_fall");
    time_tables(&database, "Europe/Berlin");
    database
        .connect()
        .batch_execute(
            "SELECT partman.create_parent('theirs.t', 'at', 'native', 'hourly', p_premake := 4, \
             p_start_partition := '2040-10-27 22:00:00+02')",
        )
        .unwrap();
    let policy = hourly_policy("Europe/Berlin");
    walk(
        &database,
        &policy,
        "2040-10-27T20:30:00Z",
        chrono::Duration::hours(1),
        10,
    );
    let theirs = time_bounds(&database, "theirs.t");
    let ours = time_bounds(&database, "ours.t");
    let repeated = "FOR VALUES FROM ('2040-10-28 02:00:00+02') TO ('2040-10-28 02:00:00+01')";
    let pgm_period = "FOR VALUES FROM ('2040-10-28 02:00:00+02') TO ('2040-10-28 03:00:00+01')";
    let without = |bounds: &[String], left_out: &str| -> Vec<String> {
        bounds.iter().filter(|b| *b != left_out).cloned().collect()
    };
    assert_eq!(
        without(&ours, pgm_period),
        without(&theirs, repeated),
        "every other hour matches"
    );
    assert!(ours.iter().any(|b| b == pgm_period), "{ours:#?}");
    assert!(theirs.iter().any(|b| b == repeated), "{theirs:#?}");
    // The second 02:00 hour (01:00-02:00 UTC): pg_partman's row fell into
    // its default partition, pgm's into the 02:00 period.
    let home = |table: &str| {
        column(
            &mut database.connect(),
            &format!(
                "SELECT tableoid::regclass::text FROM {table} WHERE at = '2040-10-28T01:30:00Z'"
            ),
        )
    };
    assert_eq!(home("theirs.t"), ["theirs.t_default"]);
    assert_eq!(home("ours.t"), ["ours.t_p2040_10_28_0200"]);
}

/// Daily partitions in Berlin across both DST changes of 2040 start at
/// local midnight in both.
#[test]
fn daily_across_dst_changes_matches_pg_partman() {
    let database = Database::new("daily_dst");
    time_tables(&database, "Europe/Berlin");
    database
        .connect()
        .batch_execute(
            "SELECT partman.create_parent('theirs.t', 'at', 'native', 'daily', p_premake := 4, \
             p_start_partition := '2040-03-22 00:00:00+01')",
        )
        .unwrap();
    let policy = "[[table]]\nname = \"ours.t\"\ninterval = \"daily\"\npremake = 4\ntime_zone = \"Europe/Berlin\"\n";
    walk(
        &database,
        policy,
        "2040-03-22T11:00:00Z",
        chrono::Duration::days(1),
        8,
    );
    let theirs = time_bounds(&database, "theirs.t");
    assert_eq!(time_bounds(&database, "ours.t"), theirs);
    assert!(
        theirs
            .iter()
            .any(|b| b.contains("FROM ('2040-03-25 00:00:00+01') TO ('2040-03-26 00:00:00+02')")),
        "{theirs:#?}"
    );
}
