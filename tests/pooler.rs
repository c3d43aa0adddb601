//! Through a real PgBouncer: in transaction mode a session advisory lock
//! protects nothing, so `pgm migrate` and `pgm partitions maintain` refuse
//! (and the commands that take no lock work); in session mode both run. The
//! check itself is tried against every way PgBouncer hands out connections.

mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgm::db::pooler::{self, Evidence, Finding, Waits};
use pgm::db::quote_ident;
use pgm::sandbox::{PgBouncer, PgBouncerOptions, PoolMode, Sandbox};
use support::{HAND_MADE_PARTITIONS, MAINTAIN_POLICY, Project, column, outcome, pgm};

const AT: &str = "2026-11-22T10:00:00Z";

const REFUSAL: &str = "error: the connection goes through a pooler in transaction mode \
    (such as PgBouncer with pool_mode = transaction): session advisory locks taken here would not \
    protect the run; connect directly to the server, or through a pool in session mode, for migrate \
    and maintain\n";

/// A cluster of this test binary's own (the pooler needs its Unix socket,
/// so PGM_TEST_DATABASE_URL does not apply) and a PgBouncer in each mode in
/// front of it.
struct Setup {
    cluster: &'static Sandbox,
    transaction: &'static PgBouncer,
    session: &'static PgBouncer,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let cluster =
            Sandbox::start_for_process(&Default::default()).unwrap_or_else(|e| panic!("{e}"));
        let pooler = |mode| {
            PgBouncer::start_for_process(cluster, &PgBouncerOptions::new(mode))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        Setup {
            cluster,
            transaction: pooler(PoolMode::Transaction),
            session: pooler(PoolMode::Session),
        }
    })
}

/// A fresh database named after the test, reached through `via`.
struct Db {
    name: String,
}

impl Db {
    fn new(name: &str) -> Db {
        let name = format!("pooler_{name}");
        pgm::db::connect(&setup().cluster.settings("postgres"))
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .unwrap();
        Db { name }
    }

    /// A session straight to the cluster, for setting up and looking.
    fn direct(&self) -> postgres::Client {
        pgm::db::connect(&setup().cluster.settings(&self.name)).unwrap()
    }

    /// `pgm` in `project`, connected to this database through `url_of`.
    fn pgm(&self, project: &Project, url: String) -> assert_cmd::Command {
        let mut command = pgm();
        command.current_dir(project.path()).env("DATABASE_URL", url);
        command
    }

    fn direct_url(&self) -> String {
        setup().cluster.url(&self.name)
    }

    fn through(&self, pooler: &PgBouncer) -> String {
        pooler.url(&self.name)
    }
}

fn run(command: &mut assert_cmd::Command, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(&command.args(args).output().unwrap())
}

/// The bundled schema migrated directly, partitions made by hand, a policy.
fn migrated(db: &Db) -> Project {
    let project = Project::bundled();
    std::fs::write(project.path().join("partman.toml"), MAINTAIN_POLICY).unwrap();
    let (code, _, stderr) = run(&mut db.pgm(&project, db.direct_url()), &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    db.direct().batch_execute(HAND_MADE_PARTITIONS).unwrap();
    project
}

fn partitions(db: &Db) -> Vec<String> {
    column(
        &mut db.direct(),
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid ORDER BY 1",
    )
}

#[test]
fn migrate_through_a_transaction_pool_is_refused_before_anything_runs() {
    let db = Db::new("migrate_refused");
    let project = Project::bundled();
    let url = db.through(setup().transaction);
    for args in [&["migrate"][..], &["migrate", "baseline", "3"]] {
        let (code, stdout, stderr) = run(&mut db.pgm(&project, url.clone()), args);
        assert_eq!(
            (code, stdout.as_str()),
            (Some(64), ""),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr, REFUSAL, "{args:?}");
    }
    assert_eq!(
        column(
            &mut db.direct(),
            "SELECT count(*) FROM pg_class WHERE relname IN ('refinery_schema_history', 'users')"
        ),
        ["0"],
        "nothing was created"
    );
}

#[test]
fn maintain_through_a_transaction_pool_is_refused_before_any_table_is_touched() {
    let db = Db::new("maintain_refused");
    let project = migrated(&db);
    let before = partitions(&db);
    let mut command = db.pgm(&project, db.through(setup().transaction));
    let (code, stdout, stderr) = run(&mut command, &["partitions", "maintain", "--at", AT]);
    assert_eq!((code, stdout.as_str()), (Some(64), ""), "{stderr}");
    assert_eq!(stderr, REFUSAL);
    assert_eq!(partitions(&db), before, "no partition made or dropped");
}

/// Plans, dry runs and status take no lock: they work through any pool.
#[test]
fn commands_that_take_no_lock_work_through_a_transaction_pool() {
    let db = Db::new("read_only");
    let project = migrated(&db);
    let url = db.through(setup().transaction);
    for args in [
        &["migrate", "--dry-run"][..],
        &["migrate", "status"],
        &["partitions", "plan", "--at", AT],
        &["partitions", "maintain", "--dry-run", "--at", AT],
        &["partitions", "status", "--at", AT],
    ] {
        let (code, stdout, stderr) = run(&mut db.pgm(&project, url.clone()), args);
        assert_eq!(code, Some(0), "{args:?}: {stdout}\n{stderr}");
        assert!(!stderr.contains("pooler"), "{args:?}: {stderr}");
    }
}

#[test]
fn migrate_and_maintain_work_through_a_session_pool() {
    let db = Db::new("session_pool");
    let project = Project::bundled();
    std::fs::write(project.path().join("partman.toml"), MAINTAIN_POLICY).unwrap();
    let url = db.through(setup().session);
    let (code, stdout, stderr) = run(&mut db.pgm(&project, url.clone()), &["migrate"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        column(
            &mut db.direct(),
            "SELECT count(*) FROM refinery_schema_history"
        ),
        ["7"],
        "every bundled migration applied"
    );
    db.direct().batch_execute(HAND_MADE_PARTITIONS).unwrap();

    let maintain = ["partitions", "maintain", "--at", AT];
    let (code, stdout, stderr) = run(&mut db.pgm(&project, url.clone()), &maintain);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout
            .lines()
            .any(|line| line == "public.products: 2 created"),
        "{stdout}"
    );
    let made = partitions(&db);
    for name in ["events_p2027_02", "audit_log_p2027_01", "products_p2027q1"] {
        assert!(made.iter().any(|m| m == name), "{name} in {made:?}");
    }
    let (code, stdout, _) = run(&mut db.pgm(&project, url), &maintain);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("summary: 0 created"), "{stdout}");
}

/// Every way PgBouncer hands out server connections, and a direct
/// connection: pooling is found in transaction and statement mode, never
/// in session mode or without a pooler.
#[test]
fn the_check_finds_pooling_whatever_order_the_pool_hands_out_connections_in() {
    let setup = setup();
    let cases = [
        (PoolMode::Transaction, 20, false),
        (PoolMode::Transaction, 20, true),
        (PoolMode::Transaction, 2, true),
        (PoolMode::Transaction, 1, false),
        (PoolMode::Statement, 20, false),
        (PoolMode::Session, 20, false),
        (PoolMode::Session, 20, true),
    ];
    for (pool_mode, pool_size, server_round_robin) in cases {
        let options = PgBouncerOptions {
            pool_mode,
            pool_size,
            server_round_robin,
        };
        let pooler = PgBouncer::start(setup.cluster, &options).unwrap();
        let settings = pooler.settings("postgres");
        let mut client = pgm::db::connect(&settings).unwrap();
        // Again and again on one session: each check must leave the pool as
        // it found it.
        for round in 0..5 {
            let finding = pooler::check(&mut client, &settings, &Waits::default()).unwrap();
            match pool_mode {
                PoolMode::Session => assert_eq!(finding, Finding::Pinned, "{options:?}"),
                PoolMode::Transaction => assert!(
                    matches!(
                        finding,
                        Finding::Pooled(Evidence::Shared { .. } | Evidence::Moved { .. })
                    ),
                    "{options:?} round {round}: {finding:?}"
                ),
                PoolMode::Statement => assert_eq!(
                    finding,
                    Finding::Pooled(Evidence::NoTransactions),
                    "{options:?}"
                ),
            }
        }
    }
    let settings = setup.cluster.settings("postgres");
    let mut client = pgm::db::connect(&settings).unwrap();
    for _ in 0..5 {
        let finding = pooler::check(&mut client, &settings, &Waits::default()).unwrap();
        assert_eq!(finding, Finding::Pinned, "a direct connection");
    }
}

/// A session pool with no server connection to spare: the probe session
/// waits for one that never comes. The check gives up in its time, and
/// `pgm migrate` goes on with a warning (a session pool is fine).
#[test]
fn a_probe_that_gets_no_server_connection_ends_the_check_in_time() {
    let setup = setup();
    let options = PgBouncerOptions {
        pool_size: 1,
        ..PgBouncerOptions::new(PoolMode::Session)
    };
    let pooler = PgBouncer::start(setup.cluster, &options).unwrap();
    let settings = pooler.settings("postgres");
    let mut client = pgm::db::connect(&settings).unwrap();
    let waits = Waits {
        answer: Duration::from_millis(500),
        ..Waits::default()
    };
    let started = Instant::now();
    let finding = pooler::check(&mut client, &settings, &waits).unwrap();
    assert!(
        matches!(finding, Finding::Undetermined { .. }),
        "{finding:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(client);

    let db = Db::new("undetermined");
    let project = Project::bundled();
    let (code, stdout, stderr) = run(&mut db.pgm(&project, pooler.url(&db.name)), &["migrate"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("could not tell whether the connection goes through a pooler in transaction mode (a second session did not answer within 3s); going on"),
        "{stderr}"
    );
}
