//! Test harness: one PostgreSQL server per test binary (a throwaway sandbox,
//! or the server named by PGM_TEST_DATABASE_URL), a fresh database per test
//! so tests run in parallel, and a builder for the `pgm` binary.
#![allow(dead_code)]

pub mod tls;

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgm::db::{self, ConnectionSettings, Environment, quote_ident};
use pgm::sandbox::Sandbox;
use postgres::error::SqlState;

const TEMPLATE: &str = "pgm_test_template";

pub struct Server {
    /// Settings for a role that may create databases, on its maintenance database.
    admin: ConnectionSettings,
    /// Connection string of that role, with `{db}` where the database name goes.
    url_pattern: UrlPattern,
    pub sandbox: Option<&'static Sandbox>,
}

enum UrlPattern {
    Sandbox(&'static Sandbox),
    External(String),
}

/// The server of this test binary, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let server = match std::env::var("PGM_TEST_DATABASE_URL").ok().filter(|url| !url.is_empty()) {
            Some(url) => {
                let admin = db::resolve(Some(&url), &Environment::from_process())
                    .map_err(|e| format!("PGM_TEST_DATABASE_URL is not usable: {e}"))?;
                Server { admin, url_pattern: UrlPattern::External(url), sandbox: None }
            }
            None => {
                let sandbox = Sandbox::start_for_process(&Default::default()).map_err(|e| {
                    format!(
                        "the tests need a PostgreSQL server and none could be started: {e}\n\
                         (or point PGM_TEST_DATABASE_URL at a server where this role may create databases)"
                    )
                })?;
                Server {
                    admin: sandbox.settings("postgres"),
                    url_pattern: UrlPattern::Sandbox(sandbox),
                    sandbox: Some(sandbox),
                }
            }
        };
        create_template(&server.admin)?;
        Ok(server)
    });
    match server {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

fn create_template(admin: &ConnectionSettings) -> Result<(), String> {
    let mut client = db::connect(admin).map_err(|e| e.to_string())?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&TEMPLATE])
        .map_err(|e| e.to_string())?
        .is_some();
    if !exists {
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(TEMPLATE)
        );
        match client.batch_execute(&sql) {
            Ok(()) => {}
            // Another test binary on the same server made it first.
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(format!("creating the template database: {e}")),
        }
    }
    Ok(())
}

impl Server {
    pub fn url(&self, dbname: &str) -> String {
        match &self.url_pattern {
            UrlPattern::Sandbox(sandbox) => sandbox.url(dbname),
            UrlPattern::External(url) => with_dbname(url, dbname),
        }
    }

    /// Settings of the test's own sessions, named so that tests watching
    /// pg_stat_activity for pgm's sessions do not see their own.
    pub fn settings(&self, dbname: &str) -> ConnectionSettings {
        let mut settings = self.admin.with_dbname(dbname);
        settings.application_name = "pgm-test".to_owned();
        settings
    }

    pub fn admin(&self) -> postgres::Client {
        db::connect(&self.admin).expect("connecting to the test server")
    }
}

/// Replaces (or adds) the database of a connection string in either form.
fn with_dbname(url: &str, dbname: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url
            .split_once('?')
            .map_or((url, None), |(b, q)| (b, Some(q)));
        let scheme_end = base.find("://").unwrap() + 3;
        let authority_end = base[scheme_end..]
            .find('/')
            .map_or(base.len(), |i| scheme_end + i);
        let mut out = format!("{}/{dbname}", &base[..authority_end]);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    } else {
        format!("{url} dbname={dbname}")
    }
}

/// A fresh database for one test, dropped at the end of a passing test
/// (kept after a failure, for a look).
pub struct TestDb {
    pub name: String,
    pub server: &'static Server,
}

impl TestDb {
    pub fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let server = server();
        let test_name: String = std::thread::current()
            .name()
            .unwrap_or("test")
            .rsplit("::")
            .next()
            .unwrap_or("test")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = format!(
            "t{}_{}_{test_name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        name.truncate(63);
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_ident(&name),
            quote_ident(TEMPLATE)
        );
        server
            .admin()
            .batch_execute(&sql)
            .expect("creating a test database");
        TestDb { name, server }
    }

    /// A fresh database that starts as a copy of `template` (which must
    /// have no open session).
    pub fn from_template(template: &TestDb) -> Self {
        let db = TestDb::new();
        let mut admin = db.server.admin();
        admin
            .batch_execute(&format!("DROP DATABASE {}", quote_ident(&db.name)))
            .unwrap();
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&db.name),
                quote_ident(&template.name)
            ))
            .expect("copying the template database");
        db
    }

    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    pub fn settings(&self) -> ConnectionSettings {
        self.server.settings(&self.name)
    }

    pub fn connect(&self) -> postgres::Client {
        db::connect(&self.settings()).expect("connecting to the test database")
    }

    /// `pgm` with DATABASE_URL pointing at this database.
    pub fn pgm(&self) -> assert_cmd::Command {
        let mut command = pgm();
        command.env("DATABASE_URL", self.url());
        command
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the database {} of the failed test", self.name);
            return;
        }
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        );
        let _ = self.server.admin().batch_execute(&sql);
    }
}

/// The `pgm` binary with an environment of its own: no PG* variables, no
/// DATABASE_URL, and a HOME without a password file.
pub fn pgm() -> assert_cmd::Command {
    static EMPTY_HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = EMPTY_HOME.get_or_init(|| tempfile::tempdir().expect("creating an empty HOME"));
    let mut command = assert_cmd::Command::cargo_bin("pgm").expect("the pgm binary is built");
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path());
    command
}

/// Standard output and error of a finished command, as text.
pub fn output_text(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Exit code, standard output and error of a finished command.
pub fn outcome(output: &std::process::Output) -> (Option<i32>, String, String) {
    let (stdout, stderr) = output_text(output);
    (output.status.code(), stdout, stderr)
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// A project directory with a `migrations/` folder, for running `pgm` the
/// way a user does: from the project root, with relative paths in messages.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("creating a project directory");
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        Project { dir }
    }

    /// A project holding the migrations bundled with pgm.
    pub fn bundled() -> Self {
        let project = Project::new();
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for entry in std::fs::read_dir(bundled).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                project.migration_path(&entry.file_name().to_string_lossy()),
            )
            .unwrap();
        }
        project
    }

    pub fn migration_path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join("migrations").join(name)
    }

    pub fn write(&self, name: &str, sql: &str) -> &Self {
        std::fs::write(self.migration_path(name), sql).unwrap();
        self
    }

    pub fn remove(&self, name: &str) -> &Self {
        std::fs::remove_file(self.migration_path(name)).unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `pgm` run from the project root against `db`.
    pub fn pgm(&self, db: &TestDb) -> assert_cmd::Command {
        let mut command = db.pgm();
        command.current_dir(self.dir.path());
        command
    }
}

/// Runs a query and returns the first column of every row as text.
pub fn column(client: &mut postgres::Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .expect("query")
        .into_iter()
        .filter_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("NULL").to_owned()),
            _ => None,
        })
        .collect()
}

impl Project {
    /// `pgm` started in the background, for tests that kill it or race it.
    pub fn spawn(&self, db: &TestDb, args: &[&str]) -> std::process::Child {
        let home = tempfile::tempdir().unwrap().keep();
        std::process::Command::new(assert_cmd::cargo::cargo_bin("pgm"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("DATABASE_URL", db.url())
            .current_dir(self.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting pgm")
    }
}

/// Polls `sql` (a query returning one boolean) until it is true; false if it
/// never was within `seconds`.
pub fn wait_for(client: &mut postgres::Client, sql: &str, seconds: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if client
            .query_one(sql, &[])
            .map(|row| row.get::<_, bool>(0))
            .unwrap_or(false)
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// The policy the maintenance tests run: three tables of the bundled schema,
/// retention by drop and by archive, a declared index, short lock waits.
pub const MAINTAIN_POLICY: &str = r#"
[defaults]
lock_timeout = "200ms"
lock_retries = 3
max_drops_per_run = 50

[[table]]
name = "public.events"
interval = "monthly"
premake = 3
retention = "12 months"

[[table.index]]
name = "events_type_created_idx"
columns = ["event_type", "created_at DESC"]

[[table]]
name = "public.audit_log"
interval = "monthly"
premake = 2
retention = "6 months"
retention_action = "archive"
retention_schema = "archive"

[[table]]
name = "public.products"
interval = "quarterly"
premake = 1
"#;

/// Eighteen months of events and audit_log partitions made by hand (other
/// names than pgm's), an archive schema, and 3,201 events across them.
pub const HAND_MADE_PARTITIONS: &str = "CREATE SCHEMA archive; \
     DO $$ DECLARE m date; BEGIN \
       FOR m IN SELECT generate_series('2025-06-01'::date, '2026-11-01', '1 month') LOOP \
         EXECUTE format('CREATE TABLE events_y%sm%s PARTITION OF events FOR VALUES FROM (%L) TO (%L)', \
           to_char(m, 'YYYY'), to_char(m, 'MM'), m::timestamptz, (m + interval '1 month')::timestamptz); \
         EXECUTE format('CREATE TABLE audit_y%sm%s PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)', \
           to_char(m, 'YYYY'), to_char(m, 'MM'), m::timestamptz, (m + interval '1 month')::timestamptz); \
       END LOOP; END $$; \
     INSERT INTO events (event_type, created_at) \
       SELECT 'e' || (g % 5), timestamptz '2025-06-01' + g * interval '4 hours' FROM generate_series(0, 3200) g;";

/// A throwaway server of its own that logs every statement, each line
/// prefixed by `line_prefix` (`%a|`: the session's application name), with
/// an empty database `app`; for tests comparing what pgm sends with what
/// it plans.
pub fn statement_logging_sandbox(line_prefix: &str) -> Sandbox {
    let sandbox = Sandbox::start_with(&pgm::sandbox::SandboxOptions {
        settings: vec![
            ("log_statement".into(), "all".into()),
            ("log_line_prefix".into(), line_prefix.into()),
        ],
        ..Default::default()
    })
    .unwrap();
    let mut admin = db::connect(&sandbox.settings("postgres")).unwrap();
    admin.batch_execute("CREATE DATABASE app").unwrap();
    sandbox
}

/// The statements pgm's sessions logged on a `statement_logging_sandbox("%a|")`,
/// in order, first lines only: the simple protocol logs "statement: …", a
/// prepared statement "execute <name>: …".
pub fn logged_statements(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.strip_prefix("pgm|"))
        .filter_map(|line| {
            line.split_once("LOG:  statement: ")
                .map(|(_, statement)| statement)
                .or_else(|| Some(line.split_once("LOG:  execute ")?.1.split_once(": ")?.1))
                .map(|statement| statement.trim().to_owned())
        })
        .collect()
}

/// The environment of a throwaway server whose clock starts at `start` and
/// ticks on from it (libfaketime, Debian's path on every architecture).
/// Postgres forks its backends without exec, so they share the
/// postmaster's clock.
pub fn pinned_clock(
    start: chrono::DateTime<chrono::Utc>,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let libfaketime = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.is_file())
        .expect(
            "libfaketime is missing: these tests pin the clock of a server with it; install it with \
             `apt-get install libfaketime`",
        );
    vec![
        ("LD_PRELOAD".into(), libfaketime.into()),
        // '@': start at this instant and tick on from it.
        (
            "FAKETIME".into(),
            start.format("@%Y-%m-%d %H:%M:%S").to_string().into(),
        ),
        // libfaketime reads that instant in the process's local zone.
        ("TZ".into(), "UTC".into()),
        // Timeouts and waits run on the monotonic clock: left real.
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// Drops a test's database on `server`, unless the test failed: then it is
/// kept, and said so, for a look at what the test left.
pub fn drop_test_database(server: &Sandbox, name: &str) {
    if std::thread::panicking() {
        eprintln!("kept the database {name} of the failed test");
        return;
    }
    if let Ok(mut admin) = db::connect(&server.settings("postgres")) {
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ));
    }
}

/// A statement that changes nothing: a read (the catalog read of a
/// conversion's dependents starts with its CTE; `setval` is a SELECT that
/// changes a sequence), a transaction frame or a session setting.
pub fn changes_nothing(statement: &str) -> bool {
    [
        "SELECT",
        "WITH d AS (",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "START TRANSACTION",
        "SET ",
        "RESET ",
    ]
    .iter()
    .any(|prefix| statement.starts_with(prefix))
        && !statement.contains("setval(")
}
