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
