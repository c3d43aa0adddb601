//! Taking over from pg_partman 4.7.2 (Debian's postgresql-15-partman):
//! `pgm partitions import-pg-partman` reads its `part_config`, the policy
//! it writes plans nothing on pg_partman's tables, pg_partman is turned off,
//! and pgm's runs over a week and two months drain the default partitions
//! and give new partitions the template's storage parameters and the
//! parent's grants. pg_partman reads the server's clock, so the server runs
//! on a pinned clock (libfaketime, as in tests/partman_parity.rs) and pgm is
//! given the same instants with `--at`.
//!
//! The 5.x layout of `part_config` is tested on a table made by hand with
//! that layout (pg_partman 5 is not packaged for this system).

mod support;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use pgm::db::{self, quote_ident};
use pgm::sandbox::{Sandbox, SandboxOptions};
use support::{Project, TestDb, column, outcome};

const BINDIR: &str = "/usr/lib/postgresql/15/bin";
const CONTROL: &str = "/usr/share/postgresql/15/extension/pg_partman.control";
const MISSING: &str = "pg_partman 4.7 for PostgreSQL 15 is missing: install it with \
                       `apt-get install postgresql-15-partman`";
const CLOCK: &str = "2026-11-23T12:00:00Z";

fn server() -> &'static Sandbox {
    assert!(Path::new(BINDIR).join("postgres").is_file(), "{MISSING}");
    assert!(Path::new(CONTROL).is_file(), "{MISSING}");
    let start: DateTime<Utc> = CLOCK.parse().unwrap();
    Sandbox::start_for_process(&SandboxOptions {
        bindir: Some(BINDIR.into()),
        server_env: support::pinned_clock(start),
        ..SandboxOptions::default()
    })
    .unwrap_or_else(|e| panic!("starting PostgreSQL 15: {e}"))
}

/// Two pg_partman sets in a database whose sessions start in Berlin time:
/// `public.events`, monthly, whose template carries storage parameters and a
/// unique index on `id` alone, with `inherit_privileges` and a grant to
/// `app_reader`; `public.logs`, daily, retention 10 days to schema `archive`.
const PG_PARTMAN_SETS: &str = "
DO $$ BEGIN CREATE ROLE app_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE pgm_importer LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman; CREATE SCHEMA archive;
CREATE TABLE public.events (id bigint NOT NULL, created_at timestamptz NOT NULL, amount int NOT NULL)
  PARTITION BY RANGE (created_at);
CREATE INDEX ON public.events (created_at);
GRANT SELECT ON public.events TO app_reader;
SELECT partman.create_parent('public.events', 'created_at', 'native', '1 month', p_premake := 2,
                             p_start_partition := '2026-09-01');
ALTER TABLE partman.template_public_events SET (autovacuum_vacuum_scale_factor = 0.01, fillfactor = 90);
CREATE UNIQUE INDEX template_events_id ON partman.template_public_events (id);
UPDATE partman.part_config SET inherit_privileges = true WHERE parent_table = 'public.events';
CREATE TABLE public.logs (id bigint NOT NULL, at timestamptz NOT NULL, amount int NOT NULL)
  PARTITION BY RANGE (at);
CREATE INDEX ON public.logs (at);
SELECT partman.create_parent('public.logs', 'at', 'native', '1 day', p_premake := 4,
                             p_start_partition := '2026-11-15');
UPDATE partman.part_config SET retention = '10 days', retention_schema = 'archive', infinite_time_partitions = true
  WHERE parent_table = 'public.logs';
UPDATE partman.part_config SET infinite_time_partitions = true WHERE parent_table = 'public.events';
GRANT USAGE ON SCHEMA partman TO pgm_importer;
GRANT SELECT ON partman.part_config, partman.part_config_sub TO pgm_importer;
";

/// Rows pg_partman left in the default partitions: past periods (within
/// retention) and future ones beyond premake.
const DEFAULT_ROWS: &str = "
INSERT INTO public.events SELECT g, timestamptz '2026-05-03 00:00:00+02' + g * interval '7 minutes', g % 100
  FROM generate_series(1, 5000) g;
INSERT INTO public.events SELECT 10000 + g, timestamptz '2027-04-02 00:00:00+02' + g * interval '1 minute', 5
  FROM generate_series(1, 300) g;
INSERT INTO public.logs SELECT g, timestamptz '2026-11-14 00:30:00+01' + g * interval '1 second', 1
  FROM generate_series(1, 2000) g;
INSERT INTO public.logs SELECT 5000 + g, timestamptz '2026-12-20 08:00:00+01' + g * interval '1 second', 2
  FROM generate_series(1, 700) g;
";

struct Database {
    name: String,
    server: &'static Sandbox,
}

impl Database {
    fn new(test: &str) -> Database {
        let server = server();
        let name = format!("import_{}_{test}", std::process::id());
        let mut admin = db::connect(&server.settings("postgres")).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .unwrap();
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} SET TimeZone = 'Europe/Berlin'",
                quote_ident(&name)
            ))
            .unwrap();
        Database { name, server }
    }

    fn connect(&self) -> postgres::Client {
        db::connect(&self.server.settings(&self.name)).unwrap()
    }

    fn url_as(&self, user: &str) -> String {
        self.server
            .url(&self.name)
            .replace("user=postgres", &format!("user={user}"))
    }

    fn pgm(&self, project: &Project, user: &str, args: &[&str]) -> (Option<i32>, String, String) {
        outcome(
            &support::pgm()
                .env("DATABASE_URL", self.url_as(user))
                .current_dir(project.path())
                .args(args)
                .output()
                .unwrap(),
        )
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        support::drop_test_database(self.server, &self.name);
    }
}

fn at(days: i64) -> String {
    let start: DateTime<Utc> = CLOCK.parse().unwrap();
    (start + Duration::days(days)).to_rfc3339()
}

/// Rows of a table, those archived included: count, sum of ids, sum of amounts.
fn logs_totals(client: &mut postgres::Client) -> String {
    let archived: Vec<String> = column(
        client,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'archive' AND c.relkind = 'r'",
    );
    let union: String = std::iter::once("SELECT id, amount FROM public.logs".to_owned())
        .chain(
            archived
                .iter()
                .map(|t| format!("SELECT id, amount FROM {t}")),
        )
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    column(
        client,
        &format!("SELECT count(*) || ' ' || sum(id) || ' ' || sum(amount) FROM ({union}) r"),
    )
    .remove(0)
}

fn events_totals(client: &mut postgres::Client) -> String {
    column(
        client,
        "SELECT count(*) || ' ' || sum(id) || ' ' || sum(amount) FROM public.events",
    )
    .remove(0)
}

#[test]
fn a_policy_imported_from_pg_partman_takes_over_drains_the_defaults_and_keeps_the_template() {
    let database = Database::new("takeover");
    let mut client = database.connect();
    client.batch_execute(PG_PARTMAN_SETS).unwrap();
    let project = Project::new();

    // Imported by a role that can only read part_config.
    let (code, report, stderr) = database.pgm(
        &project,
        "pgm_importer",
        &[
            "partitions",
            "import-pg-partman",
            "--output",
            "partman.toml",
        ],
    );
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    let policy = std::fs::read_to_string(project.path().join("partman.toml")).unwrap();
    eprintln!("{policy}\n{report}");
    assert!(report.contains("4.x layout"), "{report}");
    assert!(
        report.contains("time_zone: Europe/Berlin, read from the database's TimeZone setting"),
        "{report}"
    );
    assert!(policy.contains("time_zone = \"Europe/Berlin\""), "{policy}");
    assert!(policy.contains("interval = \"monthly\""), "{policy}");
    assert!(policy.contains("interval = \"daily\""), "{policy}");
    assert!(policy.contains("retention = \"10 days\""), "{policy}");
    assert!(policy.contains("retention_action = \"archive\"\nretention_schema = \"archive\""));
    assert!(
        policy.contains("naming = \"{parent}_p{YYYY}_{MM}\""),
        "{policy}"
    );
    assert!(policy.contains("drain_default = true"), "{policy}");
    assert!(
        policy.contains("with = { autovacuum_vacuum_scale_factor = 0.01, fillfactor = 90 }"),
        "{policy}"
    );
    assert!(policy.contains("inherit_privileges = true"), "{policy}");
    assert!(
        report.contains("template_events_id")
            && report
                .contains("a unique index without the partition key cannot be made on the parent"),
        "the unique index on id alone is said to be lost: {report}"
    );
    assert!(report.contains("UPDATE \"partman\".part_config SET automatic_maintenance = 'off'"));

    // The policy plans nothing on pg_partman's tables.
    let (code, plan, stderr) = database.pgm(
        &project,
        "postgres",
        &["partitions", "plan", "--at", CLOCK, "--detailed-exitcode"],
    );
    assert_eq!(code, Some(0), "nothing to do:\n{plan}\n{stderr}");
    assert!(
        plan.contains("0 step(s), 0 error(s), 0 warning(s)"),
        "{plan}"
    );

    // pg_partman turned off with the statement the import printed.
    let (code, stdout, stderr) = database.pgm(
        &project,
        "postgres",
        &["partitions", "import-pg-partman", "--disable-pg-partman"],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("pg_partman's maintenance is off for 2 table(s)"),
        "{stdout}"
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT string_agg(DISTINCT automatic_maintenance, ',') FROM partman.part_config"
        ),
        ["off"]
    );

    client.batch_execute(DEFAULT_ROWS).unwrap();
    let events_before = events_totals(&mut client);
    let logs_before = logs_totals(&mut client);

    // A week of daily runs, then weekly runs to two months.
    let days: Vec<i64> = (0..7).chain((14..=63).step_by(7)).collect();
    let mut moved = 0u64;
    for day in &days {
        let (code, stdout, stderr) = database.pgm(
            &project,
            "postgres",
            &["partitions", "maintain", "--at", &at(*day)],
        );
        assert_eq!(code, Some(0), "day {day}:\n{stdout}\n{stderr}");
        moved += stdout
            .lines()
            .filter_map(|line| line.strip_prefix("summary: "))
            .flat_map(|line| line.split(", "))
            .find_map(|part| part.strip_suffix(" rows moved from default partitions"))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    eprintln!(
        "{} runs, {moved} rows moved from the default partitions",
        days.len()
    );
    assert_eq!(moved, 8000, "every default row moved once");
    assert_eq!(events_totals(&mut client), events_before);
    assert_eq!(logs_totals(&mut client), logs_before);
    assert_eq!(
        column(
            &mut client,
            "SELECT (SELECT count(*) FROM public.events_default) + (SELECT count(*) FROM public.logs_default)"
        ),
        ["0"]
    );

    // Partitions pgm made carry the template's storage parameters and the grants.
    let made_by_pgm = column(
        &mut client,
        "SELECT c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), '') || ' ' || coalesce(c.relacl::text, '') \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'public.events'::regclass \
           AND c.relname IN ('events_p2026_05', 'events_p2027_02', 'events_p2027_03', 'events_p2027_04') ORDER BY 1",
    );
    assert_eq!(made_by_pgm.len(), 4, "{made_by_pgm:?}");
    for partition in &made_by_pgm {
        assert!(
            partition.contains("fillfactor=90")
                && partition.contains("autovacuum_vacuum_scale_factor=0.01"),
            "{partition}"
        );
        assert!(partition.contains("app_reader=r/"), "{partition}");
    }

    let (code, stdout, stderr) = database.pgm(
        &project,
        "postgres",
        &["partitions", "check", "--at", &at(63)],
    );
    assert_eq!(code, Some(0), "check clean:\n{stdout}\n{stderr}");
}

/// pg_partman 5.x's `part_config`, made by hand with that layout's columns
/// (from pg_partman 5's sql/tables/part_config.sql): the extension is not
/// available here, the table is all the import reads.
const PART_CONFIG_5: &str = "
CREATE SCHEMA partman5;
CREATE TABLE partman5.part_config (
    parent_table text NOT NULL PRIMARY KEY, control text NOT NULL, partition_interval text NOT NULL,
    partition_type text NOT NULL, premake int NOT NULL DEFAULT 4, automatic_maintenance text NOT NULL DEFAULT 'on',
    template_table text, retention text, retention_schema text, retention_keep_index boolean NOT NULL DEFAULT true,
    retention_keep_table boolean NOT NULL DEFAULT true, epoch text NOT NULL DEFAULT 'none', constraint_cols text[],
    optimize_constraint int NOT NULL DEFAULT 30, infinite_time_partitions boolean NOT NULL DEFAULT false,
    datetime_string text, jobmon boolean NOT NULL DEFAULT true, sub_partition_set_full boolean NOT NULL DEFAULT false,
    undo_in_progress boolean NOT NULL DEFAULT false, inherit_privileges boolean DEFAULT false,
    constraint_valid boolean DEFAULT true NOT NULL, subscription_refresh text,
    ignore_default_data boolean NOT NULL DEFAULT true, default_table boolean DEFAULT true, date_trunc_interval text);
CREATE TABLE partman5.part_config_sub (sub_parent text PRIMARY KEY);
CREATE TABLE public.metrics (at timestamptz NOT NULL, value float8) PARTITION BY RANGE (at);
CREATE TABLE public.metrics_default PARTITION OF public.metrics DEFAULT;
CREATE TABLE public.metrics_p20261122 PARTITION OF public.metrics
  FOR VALUES FROM ('2026-11-22 00:00:00+00') TO ('2026-11-23 00:00:00+00');
CREATE TABLE public.metrics_p20261123 PARTITION OF public.metrics
  FOR VALUES FROM ('2026-11-23 00:00:00+00') TO ('2026-11-24 00:00:00+00');
CREATE TABLE public.metrics_p20261124 PARTITION OF public.metrics
  FOR VALUES FROM ('2026-11-24 00:00:00+00') TO ('2026-11-25 00:00:00+00');
CREATE TABLE public.orders (id bigint NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE public.nested (at timestamptz NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.nested_p20261123 PARTITION OF public.nested
  FOR VALUES FROM ('2026-11-23 00:00:00+00') TO ('2026-11-24 00:00:00+00') PARTITION BY RANGE (at);
INSERT INTO partman5.part_config (parent_table, control, partition_interval, partition_type, premake, datetime_string,
                                  retention, retention_keep_table, constraint_cols)
VALUES ('public.metrics', 'at', '1 day', 'range', 1, 'YYYYMMDD', '30 days', false, '{value}'),
       ('public.orders', 'id', '100000', 'range', 2, NULL, '1000000', true, NULL),
       ('public.nested', 'at', '1 day', 'range', 1, 'YYYYMMDD', NULL, true, NULL);
INSERT INTO partman5.part_config_sub VALUES ('public.nested');
";

#[test]
fn the_5x_layout_is_read_and_what_cannot_be_carried_is_listed() {
    let db = TestDb::new();
    db.connect().batch_execute(PART_CONFIG_5).unwrap();
    let project = Project::new();
    let (code, policy, stderr) = outcome(
        &project
            .pgm(&db)
            .args([
                "partitions",
                "import-pg-partman",
                "--schema",
                "partman5",
                "--time-zone",
                "UTC",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(code, Some(0), "{policy}\n{stderr}");
    assert!(policy.contains("(5.x layout)"), "{policy}");
    assert!(policy.contains("time_zone = \"UTC\""), "{policy}");
    assert!(
        policy.contains(
            "name = \"public.metrics\"\ninterval = \"daily\"\npremake = 1\nretention = \"30 days\"\n\
             retention_action = \"drop\"\nnaming = \"{parent}_p{YYYY}{MM}{DD}\"\ndefault_partition = true\n\
             drain_default = true\n"
        ),
        "{policy}"
    );
    assert!(policy.contains("# - constraint_cols = {value}"), "{policy}");
    assert!(
        policy.contains("name = \"public.orders\"\ninterval = 100000\npremake = 2\nretention = 1000000\nretention_action = \"detach\"\n"),
        "{policy}"
    );
    assert!(
        policy.contains("# public.nested is not imported: it is sub-partitioned"),
        "{policy}"
    );
    assert!(
        policy.contains("WHERE parent_table IN ('public.metrics', 'public.orders')"),
        "{policy}"
    );
    std::fs::write(project.path().join("partman.toml"), &policy).unwrap();
    let (code, plan, stderr) = outcome(
        &project
            .pgm(&db)
            .args(["partitions", "plan", "--at", "2026-11-23T12:00:00Z"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, Some(0), "{plan}\n{stderr}");
    assert!(
        plan.contains(
            "public.metrics (daily, premake 1, retention 30 days → drop, UTC)\n  nothing to do"
        ),
        "{plan}"
    );
}
