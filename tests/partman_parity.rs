//! Differential tests against pg_partman 4.7.2 (Debian's
//! postgresql-15-partman): the same table, data and clock given to
//! pg_partman's `create_parent` / `run_maintenance` and to `pgm partitions
//! maintain`, then the partition bounds compared (names differ by design).
//! They run on the Debian PostgreSQL 15 binaries, where the extension is
//! installed, whatever version the rest of the suite uses.
//!
//! pg_partman reads the server's clock (`create_parent` premakes from
//! `CURRENT_TIMESTAMP`), so each server runs on a pinned clock: libfaketime,
//! preloaded into `postgres`, starts it at a fixed instant and lets it tick,
//! and pgm is given the same instant with `--at`. Nothing depends on the
//! day the tests run.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use pgm::db::{self, quote_ident};
use pgm::sandbox::{Sandbox, SandboxOptions};
use support::{Project, column, outcome};

const BINDIR: &str = "/usr/lib/postgresql/15/bin";
const CONTROL: &str = "/usr/share/postgresql/15/extension/pg_partman.control";
const MISSING: &str = "pg_partman 4.7 for PostgreSQL 15 is missing: the parity tests need it; \
                       install it with `apt-get install postgresql-15-partman`";

/// The clock of the ID cases, which pg_partman counts from the largest id,
/// not the clock: pinned all the same, so that none can come to depend on
/// the date.
const NOVEMBER: &str = "2026-11-23T12:00:00Z";
/// 22:30 in Berlin on Saturday 28 March 2026, the night before the clocks
/// go forward (01:00 UTC on the 29th). Half past, so that the minutes the
/// pinned clock ticks on while the tests run never reach another hour.
const SPRING: &str = "2026-03-28T21:30:00Z";
/// 21:30 in Berlin on Saturday 24 October 2026, the night before the
/// clocks go back (01:00 UTC on the 25th): hourly partitions premade from
/// then end before the repeated hour, which only maintenance reaches.
const AUTUMN: &str = "2026-10-24T19:30:00Z";

fn instant(clock: &str) -> DateTime<Utc> {
    clock.parse().unwrap()
}

fn server_now(client: &mut postgres::Client) -> DateTime<Utc> {
    let now: std::time::SystemTime = client.query_one("SELECT now()", &[]).unwrap().get(0);
    now.into()
}

/// The PostgreSQL 15 cluster of this test binary whose clock started at
/// `clock`, with pg_partman available: one per clock, shared by the tests
/// that run at it.
fn server(clock: &'static str) -> &'static Sandbox {
    static SERVERS: Mutex<Option<HashMap<&'static str, &'static Sandbox>>> = Mutex::new(None);
    let mut servers = SERVERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let servers = servers.get_or_insert_with(HashMap::new);
    if let Some(server) = servers.get(clock) {
        return server;
    }
    assert!(Path::new(BINDIR).join("postgres").is_file(), "{MISSING}");
    assert!(Path::new(CONTROL).is_file(), "{MISSING}");
    let start = instant(clock);
    let server = Sandbox::start_for_process(&SandboxOptions {
        bindir: Some(BINDIR.into()),
        server_env: support::pinned_clock(start),
        ..SandboxOptions::default()
    })
    .unwrap_or_else(|e| panic!("starting PostgreSQL 15 for the parity tests: {e}"));
    let mut client = db::connect(&server.settings("postgres")).unwrap();
    let now = server_now(&mut client);
    assert!(
        now >= start && now - start < chrono::Duration::minutes(10),
        "the server's clock reads {now}, not {start}: libfaketime did not take (LD_PRELOAD of {:?})",
        support::pinned_clock(start)[0].1
    );
    servers.insert(clock, server);
    server
}

/// A fresh database with pg_partman in schema `partman`, and the schemas
/// `theirs` (pg_partman's tables) and `ours` (pgm's), on the server whose
/// clock started at `clock`.
struct Database {
    name: String,
    clock: &'static str,
    server: &'static Sandbox,
}

impl Database {
    fn new(test: &str, clock: &'static str) -> Database {
        let name = format!("parity_{}_{test}", std::process::id());
        let server = server(clock);
        let mut admin = db::connect(&server.settings("postgres")).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .unwrap();
        let database = Database {
            name,
            clock,
            server,
        };
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
        db::connect(&self.server.settings(&self.name)).unwrap()
    }

    /// Runs `pgm` with this policy against the database.
    fn pgm(&self, policy: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let project = Project::new();
        std::fs::write(project.path().join("partman.toml"), policy).unwrap();
        let output = support::pgm()
            .env("DATABASE_URL", self.server.url(&self.name))
            .current_dir(project.path())
            .args(args)
            .output()
            .unwrap();
        outcome(&output)
    }

    /// `pgm partitions maintain` at the server's pinned instant.
    fn maintain(&self, policy: &str) {
        let (code, stdout, stderr) =
            self.pgm(policy, &["partitions", "maintain", "--at", self.clock]);
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
        support::drop_test_database(self.server, &self.name);
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
    let database = Database::new(&format!("{}_{step}", sql_type.replace(' ', "_")), NOVEMBER);
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
            NOVEMBER,
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
    let database = Database::new("retention", NOVEMBER);
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

/// Both set up their table at the pinned instant, as for a new table, and
/// must agree: pg_partman's create_parent starts at the partition holding
/// now and premakes from now, pgm maintains with `--at` that instant.
/// (Without a start, create_parent would also make premake partitions
/// before now, for rows already there; these tables start empty, and pgm
/// makes none for the past.)
fn set_up_both(database: &Database, interval: &str, premake: u32, policy: &str) {
    let mut client = database.connect();
    let now = server_now(&mut client);
    // The cases start half an hour or more before a period ends; a clock
    // that ticked on past that would compare a different start.
    assert!(
        now - instant(database.clock) < chrono::Duration::minutes(30),
        "the pinned clock, started at {}, already reads {now}",
        database.clock
    );
    client
        .batch_execute(&format!(
            "SELECT partman.create_parent('theirs.t', 'at', 'native', '{interval}', \
             p_premake := {premake}, p_start_partition := now()::text)"
        ))
        .unwrap();
    database.maintain(policy);
    let theirs = time_bounds(database, "theirs.t");
    assert_eq!(
        time_bounds(database, "ours.t"),
        theirs,
        "set up at {}: premake counted from now",
        database.clock
    );
    assert_eq!(theirs.len(), premake as usize + 1, "{theirs:#?}");
}

/// Walks the clock from the server's pinned instant by `step`, as cron
/// would: at each tick pgm maintains with `--at` that time (it counts from
/// the clock), then a row at that time goes into both tables and
/// pg_partman's run_maintenance runs (it counts from the newest row, so the
/// server's clock, still near the pinned instant, plays no part). Returns
/// the last tick.
fn walk(database: &Database, policy: &str, step: chrono::Duration, ticks: u32) -> String {
    let first = instant(database.clock);
    let mut at_text = String::new();
    for tick in 0..ticks {
        let at = first + step * tick as i32;
        at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
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
    at_text
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

/// Berlin's 23-hour day (29 March 2026): hourly partitions match
/// pg_partman's, the skipped 02:00 hour simply absent from both.
#[test]
fn hourly_across_a_spring_forward_night_matches_pg_partman() {
    let database = Database::new("hourly_spring", SPRING);
    time_tables(&database, "Europe/Berlin");
    let policy = hourly_policy("Europe/Berlin");
    set_up_both(&database, "hourly", 4, &policy);
    let last = walk(&database, &policy, chrono::Duration::hours(1), 10);
    let theirs = time_bounds(&database, "theirs.t");
    assert_eq!(time_bounds(&database, "ours.t"), theirs);
    assert!(
        theirs
            .iter()
            .any(|b| b.contains("FROM ('2026-03-29 01:00:00+01') TO ('2026-03-29 03:00:00+02')")),
        "the hour before the gap ends where the gap does: {theirs:#?}"
    );
    // Adoption: pgm finds nothing to change in pg_partman's table.
    let adopt = format!("{policy}\n{}", policy.replace("ours.t", "theirs.t"));
    let (code, stdout, stderr) = database.pgm(
        &adopt,
        &["partitions", "plan", "--at", &last, "--detailed-exitcode"],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

/// Berlin's 25-hour day (25 October 2026). pg_partman adds one absolute
/// hour at a time but names partitions by local time: the second 02:00
/// hour gets the name of the first, is taken for existing and skipped,
/// leaving a hole its default partition fills (without a default, inserts
/// in that hour would fail). pgm's periods follow the local clock, so its
/// 02:00 period runs from the first 02:00 to 03:00, two hours, one name,
/// no hole. This is the one deliberate difference, and pgm's is right.
#[test]
fn hourly_across_a_fall_back_night_differs_from_pg_partman_only_at_the_repeated_hour() {
    let database = Database::new("hourly_fall", AUTUMN);
    time_tables(&database, "Europe/Berlin");
    let policy = hourly_policy("Europe/Berlin");
    set_up_both(&database, "hourly", 4, &policy);
    walk(&database, &policy, chrono::Duration::hours(1), 10);
    let theirs = time_bounds(&database, "theirs.t");
    let ours = time_bounds(&database, "ours.t");
    let repeated = "FOR VALUES FROM ('2026-10-25 02:00:00+02') TO ('2026-10-25 02:00:00+01')";
    let pgm_period = "FOR VALUES FROM ('2026-10-25 02:00:00+02') TO ('2026-10-25 03:00:00+01')";
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
                "SELECT tableoid::regclass::text FROM {table} WHERE at = '2026-10-25T01:30:00Z'"
            ),
        )
    };
    assert_eq!(home("theirs.t"), ["theirs.t_default"]);
    assert_eq!(home("ours.t"), ["ours.t_p2026_10_25_0200"]);
}

/// Daily partitions in Berlin from the night before a DST change, a week
/// on: both start every day at local midnight, the 23- or 25-hour day
/// included, and `day` is its range.
fn daily_case(test: &str, clock: &'static str, day: &str) {
    let database = Database::new(test, clock);
    time_tables(&database, "Europe/Berlin");
    let policy = "[[table]]\nname = \"ours.t\"\ninterval = \"daily\"\npremake = 4\ntime_zone = \"Europe/Berlin\"\n";
    set_up_both(&database, "daily", 4, policy);
    walk(&database, policy, chrono::Duration::days(1), 8);
    let theirs = time_bounds(&database, "theirs.t");
    assert_eq!(time_bounds(&database, "ours.t"), theirs);
    assert!(theirs.iter().any(|b| b.contains(day)), "{theirs:#?}");
}

/// Daily partitions in Berlin across both DST changes of 2026 start at
/// local midnight in both.
#[test]
fn daily_across_dst_changes_matches_pg_partman() {
    daily_case(
        "daily_spring",
        SPRING,
        "FROM ('2026-03-29 00:00:00+01') TO ('2026-03-30 00:00:00+02')",
    );
    daily_case(
        "daily_fall",
        AUTUMN,
        "FROM ('2026-10-25 00:00:00+02') TO ('2026-10-26 00:00:00+01')",
    );
}
