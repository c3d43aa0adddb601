//! Connection settings end to end: precedence, the password file, TLS modes,
//! retries, and a password that never shows in any output.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pgm::db::ConnectionSettings;
use pgm::db::settings::Host;
use pgm::sandbox::{Sandbox, SandboxOptions, ServerTls};
use support::tls::issue_certificate;
use support::{TestDb, output_text, pgm};

const APP_PASSWORD: &str = "Sup3r-Secret-Pw";

/// A server with password authentication over TCP and no TLS.
fn plain_server() -> &'static Sandbox {
    static SERVER: OnceLock<&'static Sandbox> = OnceLock::new();
    SERVER.get_or_init(|| with_app_role(Sandbox::start_for_process(&Default::default()).unwrap()))
}

struct TlsServer {
    sandbox: &'static Sandbox,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A server with TLS on, its certificate issued for "localhost" by a test CA.
fn tls_server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (ca_pem, certificate_pem, key_pem) = issue_certificate("localhost");
        let (other_ca_pem, _, _) = issue_certificate("localhost");
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("root.crt");
        let other_ca_file = dir.path().join("other-root.crt");
        std::fs::write(&ca_file, ca_pem).unwrap();
        std::fs::write(&other_ca_file, other_ca_pem).unwrap();
        let options = SandboxOptions {
            tls: Some(ServerTls {
                certificate_pem,
                key_pem,
            }),
            ..Default::default()
        };
        let sandbox = with_app_role(Sandbox::start_for_process(&options).unwrap());
        TlsServer {
            sandbox,
            ca_file,
            other_ca_file,
            _dir: dir,
        }
    })
}

fn with_app_role(sandbox: &'static Sandbox) -> &'static Sandbox {
    let mut client = pgm::db::connect(&sandbox.settings("postgres")).unwrap();
    // Two round trips: CREATE DATABASE refuses the implicit transaction of a
    // multi-statement query.
    client
        .batch_execute(&format!("CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'"))
        .unwrap();
    client
        .batch_execute("CREATE DATABASE appdb OWNER app")
        .unwrap();
    sandbox
}

fn tcp_url(sandbox: &Sandbox, password: Option<&str>, query: &str) -> String {
    let userinfo = match password {
        Some(password) => format!("app:{password}"),
        None => "app".to_owned(),
    };
    format!(
        "postgres://{userinfo}@127.0.0.1:{}/appdb?connect_timeout=5&{query}",
        sandbox.port()
    )
}

/// The PG* variables naming the same target as these settings.
fn pg_variables(settings: &ConnectionSettings) -> Vec<(&'static str, String)> {
    let endpoint = &settings.endpoints[0];
    let host = match &endpoint.host {
        Host::Tcp(name) => name.clone(),
        Host::Socket(dir) => dir.display().to_string(),
    };
    let mut vars = vec![
        ("PGHOST", host),
        ("PGPORT", endpoint.port.to_string()),
        ("PGUSER", settings.user.clone()),
        ("PGDATABASE", settings.dbname.clone()),
    ];
    if let Some((password, _)) = &endpoint.password {
        vars.push(("PGPASSWORD", password.expose().to_owned()));
    }
    vars
}

fn ping(configure: impl FnOnce(&mut assert_cmd::Command)) -> (bool, String, String) {
    let mut command = pgm();
    command.arg("ping");
    configure(&mut command);
    let output = command.output().unwrap();
    let (stdout, stderr) = output_text(&output);
    assert!(
        !stdout.contains(APP_PASSWORD) && !stderr.contains(APP_PASSWORD),
        "password leaked:\n{stdout}\n{stderr}"
    );
    (output.status.success(), stdout, stderr)
}

fn write_passfile(dir: &Path, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join("pgpass");
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn flag_beats_database_url_beats_pg_variables() {
    let (flag_db, url_db, vars_db) = (TestDb::new(), TestDb::new(), TestDb::new());
    let vars = pg_variables(&vars_db.settings());

    let (ok, stdout, stderr) = ping(|c| {
        c.envs(vars.clone());
    });
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("database: {}\n", vars_db.name)),
        "{stdout}"
    );
    assert!(stdout.contains("application_name: pgm\n"), "{stdout}");

    let (ok, stdout, stderr) = ping(|c| {
        c.envs(vars.clone()).env("DATABASE_URL", url_db.url());
    });
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("database: {}\n", url_db.name)),
        "{stdout}"
    );

    let (ok, stdout, stderr) = ping(|c| {
        c.envs(vars.clone())
            .env("DATABASE_URL", url_db.url())
            .arg("--database-url")
            .arg(flag_db.url());
    });
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("database: {}\n", flag_db.name)),
        "{stdout}"
    );
}

#[test]
fn a_partial_connection_string_takes_the_rest_from_pg_variables() {
    let (url_db, vars_db) = (TestDb::new(), TestDb::new());
    let (ok, stdout, stderr) = ping(|c| {
        c.envs(pg_variables(&vars_db.settings()))
            .env("DATABASE_URL", format!("dbname={}", url_db.name));
    });
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("database: {}\n", url_db.name)),
        "{stdout}"
    );
}

#[test]
fn the_database_defaults_to_the_user_name() {
    let server = plain_server();
    let (ok, stdout, stderr) = ping(|c| {
        c.env("PGHOST", server.socket_dir())
            .env("PGPORT", server.port().to_string())
            .env("PGUSER", "postgres");
    });
    assert!(ok, "{stderr}");
    assert!(stdout.contains("database: postgres\n"), "{stdout}");
}

#[test]
fn password_from_the_url_wins_over_pgpassword() {
    let server = plain_server();
    let (ok, stdout, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            tcp_url(server, Some(APP_PASSWORD), "sslmode=disable"),
        )
        .env("PGPASSWORD", "wrong");
    });
    assert!(ok, "{stderr}");
    assert!(stdout.contains("user: app\n"), "{stdout}");
}

#[test]
fn pgpassword_wins_over_the_password_file() {
    let server = plain_server();
    let dir = tempfile::tempdir().unwrap();
    let passfile = write_passfile(dir.path(), "*:*:*:app:wrong-from-file\n", 0o600);
    let (ok, _, stderr) = ping(|c| {
        c.env("DATABASE_URL", tcp_url(server, None, "sslmode=disable"))
            .env("PGPASSWORD", APP_PASSWORD)
            .env("PGPASSFILE", &passfile);
    });
    assert!(ok, "{stderr}");

    let (ok, _, stderr) = ping(|c| {
        c.env("DATABASE_URL", tcp_url(server, None, "sslmode=disable"))
            .env("PGPASSWORD", "wrong-from-env")
            .env("PGPASSFILE", &passfile);
    });
    assert!(!ok);
    assert!(
        stderr.contains("password authentication failed for user \"app\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the password came from PGPASSWORD"),
        "{stderr}"
    );
}

#[test]
fn the_password_file_matches_like_libpq() {
    let server = plain_server();
    let dir = tempfile::tempdir().unwrap();
    let port = server.port();
    let contents = format!(
        "# other targets first\n\
         127.0.0.1:{port}:otherdb:app:wrong\n\
         127.0.0.1:1:appdb:app:wrong\n\
         127.0.0.1:{port}:appdb:app:{APP_PASSWORD}\n\
         *:*:*:*:wrong\n"
    );
    let passfile = write_passfile(dir.path(), &contents, 0o600);
    let (ok, stdout, stderr) = ping(|c| {
        c.env("DATABASE_URL", tcp_url(server, None, "sslmode=disable"))
            .env("PGPASSFILE", &passfile);
    });
    assert!(ok, "{stderr}");
    assert!(stdout.contains("user: app\n"));

    // ~/.pgpass is used when PGPASSFILE is unset.
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(&passfile, home.path().join(".pgpass")).unwrap();
    let (ok, _, stderr) = ping(|c| {
        c.env("DATABASE_URL", tcp_url(server, None, "sslmode=disable"))
            .env("HOME", home.path());
    });
    assert!(ok, "{stderr}");
}

#[test]
fn a_password_file_others_can_read_is_refused_and_the_failure_says_why() {
    let server = plain_server();
    let dir = tempfile::tempdir().unwrap();
    let passfile = write_passfile(dir.path(), &format!("*:*:*:app:{APP_PASSWORD}\n"), 0o644);
    let (ok, _, stderr) = ping(|c| {
        c.env("DATABASE_URL", tcp_url(server, None, "sslmode=disable"))
            .env("PGPASSFILE", &passfile);
    });
    assert!(!ok);
    assert!(
        stderr.contains("has group or world access (mode 0644) and was ignored"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("run: chmod 0600 {}", passfile.display())),
        "{stderr}"
    );
    assert!(stderr.contains("hint: no password was given"), "{stderr}");
}

#[test]
fn sslmode_require_against_a_server_without_tls_fails_at_once_and_says_why() {
    let server = plain_server();
    let (ok, _, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            tcp_url(server, Some(APP_PASSWORD), "sslmode=require"),
        );
    });
    assert!(!ok);
    assert!(
        stderr.contains("cannot connect to app@127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("server does not support TLS"), "{stderr}");
    assert!(
        stderr.contains("hint: the server does not offer TLS but sslmode=require requires it"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("attempts"),
        "a TLS refusal is not retried: {stderr}"
    );
}

#[test]
fn sslmode_prefer_falls_back_to_plain_and_unix_sockets_never_use_tls() {
    let server = plain_server();
    let (ok, stdout, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            tcp_url(server, Some(APP_PASSWORD), "sslmode=prefer"),
        );
    });
    assert!(ok, "{stderr}");
    assert!(stdout.contains("tls: off\n"), "{stdout}");
    let (ok, _, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            format!("{} sslmode=verify-full", server.url("postgres")),
        );
    });
    assert!(
        ok,
        "as libpq, TLS settings do not apply to a Unix socket: {stderr}"
    );
}

#[test]
fn tls_modes_encrypt_and_verify() {
    let tls = tls_server();
    let port = tls.sandbox.port();
    let url = |host: &str, query: &str| {
        format!("postgres://app:{APP_PASSWORD}@{host}:{port}/appdb?connect_timeout=5&{query}")
    };
    let root = |path: &Path| format!("sslrootcert={}", path.display());

    for (host, query) in [
        ("127.0.0.1", "sslmode=prefer".to_owned()),
        ("127.0.0.1", "sslmode=require".to_owned()),
        (
            "127.0.0.1",
            format!("sslmode=verify-ca&{}", root(&tls.ca_file)),
        ),
        (
            "localhost",
            format!("sslmode=verify-full&{}", root(&tls.ca_file)),
        ),
    ] {
        let (ok, stdout, stderr) = ping(|c| {
            c.env("DATABASE_URL", url(host, &query));
        });
        assert!(ok, "{query}: {stderr}");
        assert!(stdout.contains("tls: TLSv1."), "{query}: {stdout}");
    }

    let (ok, _, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            url(
                "127.0.0.1",
                &format!("sslmode=verify-full&{}", root(&tls.ca_file)),
            ),
        );
    });
    assert!(!ok);
    assert!(
        stderr.contains("the server's certificate does not name \"127.0.0.1\""),
        "{stderr}"
    );

    let (ok, _, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            url(
                "localhost",
                &format!("sslmode=verify-ca&{}", root(&tls.other_ca_file)),
            ),
        );
    });
    assert!(!ok);
    assert!(stderr.contains("not signed by a trusted root"), "{stderr}");

    // require with a root certificate checks the chain, as libpq does.
    let (ok, _, stderr) = ping(|c| {
        c.env("DATABASE_URL", url("127.0.0.1", "sslmode=require"))
            .env("PGSSLROOTCERT", &tls.other_ca_file);
    });
    assert!(!ok);
    assert!(stderr.contains("not signed by a trusted root"), "{stderr}");

    let home = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = ping(|c| {
        c.env("DATABASE_URL", url("localhost", "sslmode=verify-full"))
            .env("HOME", home.path());
    });
    assert!(!ok);
    assert!(
        stderr.contains("sslmode=verify-full needs the root certificate file"),
        "{stderr}"
    );
    assert!(
        stderr.contains(".postgresql/root.crt, which does not exist"),
        "{stderr}"
    );
}

#[test]
fn unreachable_servers_are_retried_until_the_connect_timeout() {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ok, _, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            format!("postgres://app:{APP_PASSWORD}@127.0.0.1:{port}/appdb?sslmode=disable"),
        )
        .env("PGCONNECT_TIMEOUT", "2");
    });
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "cannot connect to app@127.0.0.1:{port}/appdb (gave up after "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

/// Every error path that can see a connection string, fed one that carries a
/// password; `ping` asserts the password appears in no output.
#[test]
fn the_password_never_appears_in_any_output() {
    let server = plain_server();
    let port = server.port();
    let pw = APP_PASSWORD;
    let free_port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases: Vec<(String, &str)> = vec![
        (
            format!("postgres://app:{pw}@127.0.0.1:notaport/appdb"),
            "invalid port",
        ),
        (
            format!("postgres://app:{pw}@127.0.0.1:{port}/appdb?sslmdoe=require"),
            "did you mean \"sslmode\"",
        ),
        (
            format!("postgres://app:{pw}@127.0.0.1:{port}/appdb?sslmode=sometimes"),
            "invalid sslmode",
        ),
        (
            format!("postgres://app:{pw}@127.0.0.1:{port}/appdb?sslmode"),
            "has no \"=\"",
        ),
        (
            format!("postgres://app:{pw}/x@127.0.0.1:{port}/appdb"),
            "percent-encode",
        ),
        (
            format!("postgres://app:{pw}%zz@127.0.0.1:{port}/appdb"),
            "invalid %-escape",
        ),
        (
            format!("host=127.0.0.1 port={port} user=app password='{pw}"),
            "has no closing quote",
        ),
        (
            format!("host=127.0.0.1 port={port} user=app password={pw} passwd={pw}"),
            "unknown connection parameter",
        ),
        (
            format!("postgres://app:{pw}@127.0.0.1:{free_port}/appdb?connect_timeout=2"),
            "Connection refused",
        ),
        (
            format!("postgres://app:{pw}x@127.0.0.1:{port}/appdb?sslmode=disable"),
            "password authentication failed",
        ),
        (
            format!("postgres://app:{pw}@127.0.0.1:{port}/nosuchdb?sslmode=disable"),
            "does not exist",
        ),
        (
            format!("postgres://app:{pw}@127.0.0.1:{port}/appdb?sslmode=require"),
            "does not support TLS",
        ),
        (
            format!("postgres://app:{pw}@127.0.0.1:{port}/appdb?sslmode=verify-full"),
            "needs the root certificate",
        ),
    ];
    for (url, expected) in &cases {
        for extra in [&[][..], &["-vv"][..], &["-v", "--log-format", "json"][..]] {
            let (ok, stdout, stderr) = ping(|c| {
                c.env("DATABASE_URL", url).args(extra);
            });
            assert!(!ok, "{url} should fail");
            assert!(
                stderr.contains(expected),
                "expected {expected:?} in:\n{stdout}\n{stderr}"
            );
        }
    }
    // The same through the flag, PGPASSWORD and --help.
    let (ok, _, stderr) = ping(|c| {
        c.arg("--database-url").arg(&cases[9].0).arg("-vv");
    });
    assert!(
        !ok && stderr.contains("password authentication failed"),
        "{stderr}"
    );
    let (ok, _, stderr) = ping(|c| {
        c.env("DATABASE_URL", tcp_url(server, None, "sslmode=disable"))
            .env("PGPASSWORD", format!("{pw}x"))
            .arg("-vv");
    });
    assert!(
        !ok && stderr.contains("password authentication failed"),
        "{stderr}"
    );
    let output = pgm()
        .env("DATABASE_URL", &cases[0].0)
        .arg("--help")
        .output()
        .unwrap();
    let (stdout, _) = output_text(&output);
    assert!(
        stdout.contains("DATABASE_URL") && !stdout.contains(pw),
        "{stdout}"
    );
}

#[test]
fn hostaddr_connects_to_the_address_and_keeps_the_name_for_tls_and_the_password_file() {
    let plain = plain_server();
    let port = plain.port().to_string();
    let (ok, stdout, stderr) = ping(|c| {
        c.env("PGHOSTADDR", "127.0.0.1")
            .env("PGPORT", &port)
            .env("PGUSER", "app")
            .env("PGPASSWORD", APP_PASSWORD)
            .env("PGDATABASE", "appdb");
    });
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("connected: app@127.0.0.1:{port}/appdb")),
        "{stdout}"
    );

    // The name is never looked up; the password file matches it.
    let home = tempfile::tempdir().unwrap();
    let passfile = write_passfile(
        home.path(),
        &format!("db.internal.invalid:{port}:appdb:app:{APP_PASSWORD}\n"),
        0o600,
    );
    let (ok, stdout, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            format!(
                "host=db.internal.invalid hostaddr=127.0.0.1 port={port} user=app dbname=appdb"
            ),
        )
        .env("PGPASSFILE", &passfile);
    });
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "connected: app@db.internal.invalid (address 127.0.0.1):{port}/appdb"
        )),
        "{stdout}"
    );

    // verify-full checks the certificate against the name, not the address.
    let tls = tls_server();
    let (ok, stdout, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            format!(
                "postgres://app:{APP_PASSWORD}@localhost:{}/appdb?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
                tls.sandbox.port(),
                tls.ca_file.display()
            ),
        );
    });
    assert!(ok, "{stderr}");
    assert!(stdout.contains("tls: TLSv1."), "{stdout}");

    let output = pgm()
        .arg("ping")
        .env("PGHOSTADDR", "db.internal")
        .output()
        .unwrap();
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "invalid hostaddr \"db.internal\": expected a numeric IPv4 or IPv6 address (a name goes in host)"
        ),
        "{stderr}"
    );
}

/// A primary and a standby of their own, for host lists (the standby has no
/// primary: it only needs to answer as one in recovery).
fn primary_and_standby() -> (&'static Sandbox, &'static Sandbox) {
    static SERVERS: OnceLock<(&'static Sandbox, &'static Sandbox)> = OnceLock::new();
    *SERVERS.get_or_init(|| {
        let primary = Sandbox::start_for_process(&Default::default()).unwrap();
        let standby = Sandbox::start_for_process(&SandboxOptions {
            standby: true,
            ..Default::default()
        })
        .unwrap();
        (primary, standby)
    })
}

fn socket_list(servers: &[&Sandbox], dbname: &str) -> String {
    let hosts: Vec<String> = servers
        .iter()
        .map(|s| s.socket_dir().display().to_string())
        .collect();
    let ports: Vec<String> = servers.iter().map(|s| s.port().to_string()).collect();
    format!(
        "host={} port={} user=postgres dbname={dbname}",
        hosts.join(","),
        ports.join(",")
    )
}

#[test]
fn ping_says_which_host_answered_and_why_the_others_were_passed_over() {
    let (primary, standby) = primary_and_standby();
    let list = format!(
        "{} target_session_attrs=read-write",
        socket_list(&[standby, primary], "postgres")
    );
    let (ok, stdout, stderr) = ping(|c| {
        c.env("DATABASE_URL", &list);
    });
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "connected: postgres@{}:{}/postgres",
            primary.socket_dir().display(),
            primary.port()
        )
    );
    assert_eq!(
        lines[1],
        format!(
            "passed over: {}:{}: session is read-only (a standby in recovery)",
            standby.socket_dir().display(),
            standby.port()
        )
    );
    let (ok, stdout, stderr) = ping(|c| {
        c.env(
            "DATABASE_URL",
            format!("{list} target_session_attrs=standby"),
        )
        .args(["--format", "json"]);
    });
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["endpoint"],
        format!("{}:{}", standby.socket_dir().display(), standby.port())
    );
    assert_eq!(report["session"]["in_recovery"], true);
}

#[test]
fn ping_names_the_service_and_its_file() {
    let db = TestDb::new();
    let home = tempfile::tempdir().unwrap();
    let settings = db.settings();
    let endpoint = &settings.endpoints[0];
    let Host::Socket(dir) = &endpoint.host else {
        panic!("the test server is reached over a socket");
    };
    let file = home.path().join(".pg_service.conf");
    std::fs::write(
        &file,
        format!(
            "[reports]\nhost={}\nport={}\nuser={}\ndbname={}\n",
            dir.display(),
            endpoint.port,
            settings.user,
            db.name
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = ping(|c| {
        c.env_remove("DATABASE_URL")
            .env("HOME", home.path())
            .env("PGSERVICE", "reports")
            .env("PGPORT", "1");
    });
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("service: reports ({})\n", file.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("database: {}\n", db.name)),
        "the service's port beats PGPORT: {stdout}"
    );
}

#[test]
fn migrate_goes_to_the_writable_server_of_a_list() {
    let (primary, standby) = primary_and_standby();
    let project = support::Project::new();
    project.write(
        "V1__accounts.sql",
        "CREATE TABLE IF NOT EXISTS list_accounts (id int);",
    );
    let list = socket_list(&[standby, primary], "postgres");
    let output = pgm()
        .current_dir(project.path())
        .env("DATABASE_URL", &list)
        .arg("migrate")
        .output()
        .unwrap();
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let mut client = pgm::db::connect(&primary.settings("postgres")).unwrap();
    let applied: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied, 1, "applied on the primary, the second host");

    // Only the standby: migrate refuses and says why (maintain reports it has
    // nothing to do there: tests/partitions_maintain.rs).
    let only_standby = socket_list(&[standby], "postgres");
    let output = pgm()
        .current_dir(project.path())
        .env("DATABASE_URL", &only_standby)
        .arg("migrate")
        .output()
        .unwrap();
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "this server is a read-only replica (in recovery): point DATABASE_URL at the primary"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("session is read-only (a standby in recovery)"),
        "{stderr}"
    );
}

#[test]
fn when_every_host_fails_the_error_lists_each_with_its_reason() {
    let (_, standby) = primary_and_standby();
    let list = format!(
        "host=/nonexistent-pgm-dir,{} port=5432,{} user=postgres dbname=postgres \
         target_session_attrs=primary password=Hidden-Secret-1",
        standby.socket_dir().display(),
        standby.port()
    );
    let (ok, _, stderr) = ping(|c| {
        c.env("DATABASE_URL", &list);
    });
    assert!(!ok);
    assert!(!stderr.contains("Hidden-Secret-1"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("error: cannot connect to postgres@/nonexistent-pgm-dir:5432,"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("  postgres@/nonexistent-pgm-dir:5432: error connecting to server:"),
        "{stderr}"
    );
    assert_eq!(
        lines[2],
        format!(
            "  postgres@{}:{}: server is in hot standby mode",
            standby.socket_dir().display(),
            standby.port()
        )
    );
    assert!(
        stderr.contains("hint: target_session_attrs=primary:"),
        "{stderr}"
    );
}

#[test]
fn load_balance_hosts_random_spreads_sessions_over_the_list() {
    let (primary, standby) = primary_and_standby();
    let list = format!(
        "{} load_balance_hosts=random",
        socket_list(&[primary, standby], "postgres")
    );
    let mut reached = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (ok, stdout, stderr) = ping(|c| {
            c.env("DATABASE_URL", &list).args(["--format", "json"]);
        });
        assert!(ok, "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        reached.insert(report["endpoint"].as_str().unwrap().to_owned());
        if reached.len() == 2 {
            break;
        }
    }
    assert_eq!(reached.len(), 2, "40 sessions all went to {reached:?}");
}
