//! Differential conformance with libpq: every case below is one way a user
//! can name a database (a connection string, PG* variables, a password file,
//! a service file), run through both `psql` (libpq 15) and `pgm ping`
//! against throwaway servers. Both must end up in the same session (the JSON
//! of `pgm::db::server::SESSION_FACTS_SQL`, which both run), or both must
//! fail. This is the specification of pgm's connection-setting resolver.
//!
//! Reading a failure: the test runs every case, then fails once with a table
//! of the cases where the two disagree: the case's name, its input (the
//! string and the variables and files it sets), what psql did and what pgm
//! did. For two sessions only the fields that differ are shown. "FAIL exit N:
//! ..." is the program's exit code and error (psql's first line of standard
//! error; pgm's "error:" line and its causes). A leaked secret (a
//! password of the case seen in pgm's output, also with `-v --log-format
//! json`) is reported in the same table.
//!
//! A case may be marked `Deliberate`: pgm refuses on purpose what libpq
//! accepts. Then pgm must fail with exit code 64 and say the given fragment.
//!
//! How psql is made to behave like bare libpq:
//! - the psql binary itself runs (PGM_PSQL, else PostgreSQL 15's bin
//!   directory), not Debian's /usr/bin/psql wrapper, which sets PGHOST to its
//!   default cluster's socket when the command line names no host and so
//!   changes what a hostaddr-only string means.
//! - psql hands libpq its own `fallback_application_name=psql` after the
//!   string, overriding one in the string: a case that sets it declares what
//!   libpq would have used (`libpq_fallback`), and that stands in for "psql".
//!   Each program's own fallback ("psql", "pgm") counts as equal.
//! - psql hands libpq `client_encoding=auto` (the locale's encoding) unless
//!   PGCLIENTENCODING is set, overriding one in the string: both programs
//!   run with LC_ALL=C.UTF-8, so "auto" is UTF8, and a case naming a client
//!   encoding in its string sets PGCLIENTENCODING as well.
//! - psql takes an argument that is neither key=value nor a URL (a bare
//!   word, blanks, a misspelled scheme) as a database name, where libpq's
//!   PQconnectdb would call it malformed: no case depends on that but
//!   `bare_word_is_a_database_name`, which is psql's behaviour on purpose.
//!
//! libpq 16 and later differ from the libpq 15 checked here: they add
//! `load_balance_hosts` (16), `require_auth` (16), `sslcertmode` (16),
//! `sslrootcert=system` (16, here still a file named "system"), and
//! `sslnegotiation` (17); libpq 15 refuses the new key words as invalid
//! connection options.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pgm::db::server::SESSION_FACTS_SQL;
use pgm::sandbox::{Sandbox, SandboxOptions, ServerTls};
use serde_json::Value;
use support::tls::TestCa;

/// Where psql is looked for when PGM_PSQL is unset.
const PSQL_PLACES: [&str; 2] = ["/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql"];
const THREADS: usize = 4;
/// A program still running after this is killed and counted as failed.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Failure messages are cut to this many characters in the report.
const MESSAGE_LIMIT: usize = 220;

const APP_PW: &str = "Parity-App-Secret-5150";
/// A colon, an at sign, a space, a backslash and a quote.
const ODD_PW: &str = r"Odd:Secret@ 7\x'y";
/// What of ODD_PW shows however it is escaped.
const ODD_SECRET_FRAGMENT: &str = "Secret@ 7";
const WRONG_PW: &str = "Parity-Wrong-Secret-0451";
const MALFORMED_PW: &str = "Malformed-Scheme-Secret-9393";
const SSL_KEY_PW: &str = "Parity-Sslkey-Secret-7788";

// ---------------------------------------------------------------- servers

struct Servers {
    primary: &'static Sandbox,
    standby: &'static Sandbox,
    /// The primary's second Unix socket directory.
    primary_socket2: PathBuf,
    /// A loopback port nothing listens on.
    down_port: u16,
    /// The account the servers run as (what requirepeer checks).
    server_account: String,
    /// The account running the tests: libpq's default user.
    os_user: String,
    files: Fixtures,
    /// Scratch directories of the cases live here.
    scratch: tempfile::TempDir,
}

/// Certificates and keys, written once.
struct Fixtures {
    ca_pem: String,
    other_ca_pem: String,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    garbage_file: PathBuf,
    client_cert_pem: String,
    client_key_pem: String,
    client_cert_file: PathBuf,
    client_key_file: PathBuf,
    client_key_readable_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn setup_sql(os_user: &str) -> Vec<String> {
    let mut sql = vec![
        format!("CREATE ROLE app LOGIN PASSWORD '{APP_PW}'"),
        format!(
            "CREATE ROLE odd LOGIN PASSWORD '{}'",
            ODD_PW.replace('\'', "''")
        ),
        "CREATE ROLE nopw LOGIN".to_owned(),
        "CREATE DATABASE appdb OWNER app".to_owned(),
        "CREATE DATABASE \"db with space\" OWNER app".to_owned(),
    ];
    if os_user != "postgres" && os_user != "app" {
        sql.push(format!("CREATE ROLE \"{os_user}\" LOGIN"));
        sql.push(format!("CREATE DATABASE \"{os_user}\""));
    }
    sql
}

fn start_servers() -> Servers {
    let os_user = pgm::os::current_account()
        .map(|account| account.name)
        .expect("the account running the tests has a name");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let server = ca.issue(&["localhost", "127.0.0.1", "::1"]);
    let client = ca.issue(&["app"]);
    let write = |name: &str, contents: &str, mode: u32| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let files = Fixtures {
        ca_file: write("ca.crt", &ca.pem(), 0o644),
        other_ca_file: write("other-ca.crt", &other_ca.pem(), 0o644),
        garbage_file: write("garbage.crt", "not a certificate\n", 0o644),
        client_cert_file: write("client.crt", &client.certificate_pem, 0o644),
        client_key_file: write("client.key", &client.key_pem, 0o600),
        client_key_readable_file: write("client-readable.key", &client.key_pem, 0o644),
        ca_pem: ca.pem(),
        other_ca_pem: other_ca.pem(),
        client_cert_pem: client.certificate_pem.clone(),
        client_key_pem: client.key_pem.clone(),
        _dir: dir,
    };

    // A short path: socket paths are limited to about 100 bytes.
    let socket2 = tempfile::Builder::new()
        .prefix("pgm-parity-sock-")
        .tempdir_in(pgm::sandbox::temp_root())
        .unwrap()
        .keep();
    std::fs::set_permissions(&socket2, std::fs::Permissions::from_mode(0o777)).unwrap();

    let (primary, standby) = std::thread::scope(|scope| {
        let primary = scope.spawn(|| {
            Sandbox::start_for_process(&SandboxOptions {
                tls: Some(ServerTls {
                    certificate_pem: server.certificate_pem.clone(),
                    key_pem: server.key_pem.clone(),
                }),
                settings: vec![
                    ("cluster_name".into(), "primary".into()),
                    ("listen_addresses".into(), "127.0.0.1,::1".into()),
                ],
                extra_socket_dirs: vec![socket2.clone()],
                setup_sql: setup_sql(&os_user),
                ..Default::default()
            })
            .expect("starting the primary")
        });
        let standby = scope.spawn(|| {
            Sandbox::start_for_process(&SandboxOptions {
                settings: vec![("cluster_name".into(), "standby".into())],
                standby: true,
                setup_sql: setup_sql(&os_user),
                ..Default::default()
            })
            .expect("starting the standby")
        });
        (primary.join().unwrap(), standby.join().unwrap())
    });
    let server_uid = std::fs::metadata(primary.root().join("data"))
        .unwrap()
        .uid();
    let server_account = account_name(server_uid);
    let down_port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scratch = tempfile::Builder::new()
        .prefix("pgm-parity-")
        .tempdir_in(pgm::sandbox::temp_root())
        .unwrap();
    Servers {
        primary,
        standby,
        primary_socket2: socket2,
        down_port,
        server_account,
        os_user,
        files,
        scratch,
    }
}

fn account_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.get(2) == Some(&uid.to_string().as_str())).then(|| fields[0].to_owned())
        })
        .unwrap_or_else(|| uid.to_string())
}

// ---------------------------------------------------------------- cases

#[derive(Clone, Copy, Debug)]
enum Place {
    /// The case's HOME.
    Home,
    /// The case's PGSYSCONFDIR.
    Sysconf,
    /// A directory of the case's own, `{SCRATCH}` in strings.
    Scratch,
}

#[derive(Clone, Debug)]
struct FileSpec {
    place: Place,
    name: String,
    contents: String,
    mode: u32,
}

#[derive(Clone, Debug)]
#[allow(dead_code)]
enum Expect {
    /// pgm must do what libpq does.
    Libpq,
    /// pgm is stricter on purpose: it must fail with exit code 64 and say this.
    Deliberate {
        reason: &'static str,
        stderr_contains: &'static str,
    },
    /// libpq 15 fails where pgm, on purpose, connects: psql must fail and
    /// pgm must connect.
    PgmConnects { reason: &'static str },
    /// Both connect, and the sessions differ on purpose in this one field
    /// only.
    SessionDiffers {
        field: &'static str,
        reason: &'static str,
    },
}

/// One way of naming a database. `{HOME}`, `{SYSCONF}` and `{SCRATCH}` in
/// the string, the variables and the files stand for the case's directories.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    arg: Option<String>,
    env: Vec<(String, String)>,
    files: Vec<FileSpec>,
    secrets: Vec<String>,
    libpq_fallback: Option<String>,
    expect: Expect,
}

fn case(name: &str) -> Case {
    Case {
        name: name.to_owned(),
        arg: None,
        env: Vec::new(),
        files: Vec::new(),
        secrets: Vec::new(),
        libpq_fallback: None,
        expect: Expect::Libpq,
    }
}

impl Case {
    fn deliberate(mut self, reason: &'static str, stderr_contains: &'static str) -> Self {
        self.expect = Expect::Deliberate {
            reason,
            stderr_contains,
        };
        self
    }
    fn pgm_connects(mut self, reason: &'static str) -> Self {
        self.expect = Expect::PgmConnects { reason };
        self
    }
    fn session_differs(mut self, field: &'static str, reason: &'static str) -> Self {
        self.expect = Expect::SessionDiffers { field, reason };
        self
    }
    fn arg(mut self, arg: impl Into<String>) -> Self {
        self.arg = Some(arg.into());
        self
    }
    fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }
    fn file(mut self, place: Place, name: &str, contents: impl Into<String>, mode: u32) -> Self {
        self.files.push(FileSpec {
            place,
            name: name.to_owned(),
            contents: contents.into(),
            mode,
        });
        self
    }
    fn pgpass(self, contents: impl Into<String>) -> Self {
        self.file(Place::Home, ".pgpass", contents, 0o600)
    }
    fn secret(mut self, secret: &str) -> Self {
        self.secrets.push(secret.to_owned());
        self
    }
    fn libpq_fallback(mut self, name: &str) -> Self {
        self.libpq_fallback = Some(name.to_owned());
        self
    }

    /// The secrets named by the case, and every known password its inputs
    /// hold in plain text.
    fn all_secrets(&self) -> Vec<String> {
        let mut inputs = self.arg.clone().unwrap_or_default();
        for (_, value) in &self.env {
            inputs.push_str(value);
        }
        for file in &self.files {
            inputs.push_str(&file.contents);
        }
        let mut secrets = self.secrets.clone();
        for known in [APP_PW, ODD_PW, WRONG_PW, MALFORMED_PW, SSL_KEY_PW] {
            if inputs.contains(known) && !secrets.iter().any(|s| s == known) {
                secrets.push(known.to_owned());
            }
        }
        secrets
    }

    fn describe_input(&self) -> String {
        let mut out = match &self.arg {
            Some(arg) => format!("{arg:?}"),
            None => "(no string)".to_owned(),
        };
        for (name, value) in &self.env {
            let _ = write!(out, " {name}={value:?}");
        }
        for file in &self.files {
            let _ = write!(
                out,
                " [{:?}/{} {:o}: {:?}]",
                file.place, file.name, file.mode, file.contents
            );
        }
        out
    }
}

/// Percent-encodes everything but unreserved characters.
fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Quotes a key=value value: inside single quotes, a backslash escapes.
fn q(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

/// Escapes a password file field.
fn pgpass_escape(text: &str) -> String {
    text.replace('\\', r"\\").replace(':', r"\:")
}

fn corpus(s: &Servers) -> Vec<Case> {
    let p = s.primary.port();
    let sb = s.standby.port();
    let down = s.down_port;
    let ps = s.primary.socket_dir().display().to_string();
    let ps2 = s.primary_socket2.display().to_string();
    let ss = s.standby.socket_dir().display().to_string();
    let ca = s.files.ca_file.display().to_string();
    let other_ca = s.files.other_ca_file.display().to_string();
    let garbage = s.files.garbage_file.display().to_string();
    let ccert = s.files.client_cert_file.display().to_string();
    let ckey = s.files.client_key_file.display().to_string();
    let ckey_readable = s.files.client_key_readable_file.display().to_string();
    let osu = &s.os_user;

    let sock = format!("host={ps} port={p} user=app dbname=appdb");
    let tcp = format!("host=localhost port={p} user=app password={APP_PW} dbname=appdb");
    let tcp_nopw = format!("host=localhost port={p} user=app dbname=appdb");
    let url = format!("postgresql://app:{APP_PW}@localhost:{p}/appdb");
    let app_line = format!("localhost:{p}:appdb:app:{APP_PW}\n");

    let mut c = vec![
        // ------------------------------------------------ key=value syntax
        case("kv_socket").arg(&sock),
        case("kv_tcp_password").arg(&tcp),
        case("kv_spaces_around_equals").arg(format!(
            "host = {ps}   port =  {p} user= app dbname =appdb"
        )),
        case("kv_tabs_newlines_leading_trailing_blanks").arg(format!(
            "  host={ps}\tport={p}\n user=app\r\ndbname=appdb  "
        )),
        case("kv_single_quoted_values").arg(format!(
            "host='{ps}' port='{p}' user='app' dbname='appdb'"
        )),
        case("kv_quoted_value_with_spaces").arg(format!(
            "host={ps} port={p} user=app dbname='db with space'"
        )),
        case("kv_backslash_escaped_spaces_unquoted").arg(format!(
            r"host={ps} port={p} user=app dbname=db\ with\ space"
        )),
        case("kv_quoted_password_with_escapes").arg(format!(
            "host=localhost port={p} user=odd dbname=appdb password={}",
            q(ODD_PW)
        ))
        .secret(ODD_SECRET_FRAGMENT),
        case("kv_key_twice_later_wins").arg(format!(
            "host={ps} port={p} user=app dbname=postgres dbname=appdb"
        )),
        case("kv_host_twice_later_wins").arg(format!(
            "host=/nonexistent-parity host={ps} port={p} user=app dbname=appdb"
        )),
        case("kv_unterminated_quote").arg(format!("host={ps} port={p} dbname='appdb")),
        case("kv_missing_equals").arg(format!("host={ps} port={p} appdb")),
        case("kv_unknown_keyword").arg(format!("{sock} frobnicate=1")),
        case("kv_empty_string_uses_pg_variables")
            .arg("")
            .env("PGHOST", &ps)
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app")
            .env("PGDATABASE", "appdb"),
        case("bare_word_is_a_database_name")
            .arg("appdb")
            .env("PGHOST", &ps)
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app")
            .deliberate("a bare word is most often a URL with a mistyped scheme, which libpq would send (password included) as a database name", "neither a postgresql:// URL nor key=value pairs"),
        case("kv_port_trailing_space").arg(format!(
            "host={ps} port='{p} ' user=app dbname=appdb"
        )),
        case("kv_port_leading_space").arg(format!(
            "host={ps} port=' {p}' user=app dbname=appdb"
        )),
        case("kv_port_not_a_number").arg(format!("host={ps} port=abc user=app dbname=appdb")),
        case("kv_port_zero").arg(format!("host={ps} port=0 user=app dbname=appdb")),
        case("kv_port_too_large").arg(format!("host={ps} port=70000 user=app dbname=appdb")),
        case("kv_port_with_plus_sign").arg(format!("host={ps} port=+{p} user=app dbname=appdb")),
        case("kv_equals_then_blank_takes_the_next_word").arg(format!(
            "host= port={p} user=app dbname=appdb"
        )),
        case("kv_empty_host_is_the_default_socket_not_pghost")
            .arg(format!("host='' port={p} user=app dbname=appdb"))
            .env("PGHOST", &ps),
        case("kv_empty_user_is_the_os_user").arg(format!("host={ps} port={p} user='' dbname={osu}")),
        case("kv_no_user_no_dbname_default_to_the_os_user").arg(format!("host={ps} port={p}")),
        case("kv_empty_dbname_is_the_user_name").arg(format!(
            "host={ps} port={p} user=postgres dbname=''"
        )),
        case("kv_empty_password_still_reads_the_password_file")
            .arg(format!("{tcp_nopw} password=''"))
            .pgpass(&app_line),
        case("kv_empty_password_without_password_file").arg(format!("{tcp_nopw} password=''")),
        case("kv_empty_password_does_not_take_pgpassword")
            .arg(format!("{tcp_nopw} password=''"))
            .env("PGPASSWORD", APP_PW),
        case("kv_dbname_holding_a_connection_string_is_a_name").arg(format!(
            "host={ps} port={p} user=app dbname='host={ps} port={p} dbname=appdb'"
        )),
        case("kv_dbname_holding_a_url_is_a_name").arg(format!(
            "host={ps} port={p} user=app dbname=postgresql://localhost/appdb"
        )),
        case("kv_wrong_password").arg(format!("{tcp_nopw} password={WRONG_PW}")),
        case("kv_role_without_password_over_tcp").arg(format!(
            "host=localhost port={p} user=nopw dbname=appdb password={WRONG_PW}"
        )),
        case("kv_no_password_anywhere").arg(&tcp_nopw),
        case("kv_unknown_database").arg(format!("host={ps} port={p} user=app dbname=nosuchdb")),
        case("kv_unknown_role").arg(format!("host={ps} port={p} user=nosuchrole dbname=appdb")),
        // ------------------------------------------------ URLs
        case("url_tcp").arg(&url),
        case("url_postgres_scheme").arg(format!("postgres://app:{APP_PW}@localhost:{p}/appdb")),
        case("url_password_from_pgpassword")
            .arg(format!("postgresql://app@localhost:{p}/appdb"))
            .env("PGPASSWORD", APP_PW),
        case("url_percent_encoded_password").arg(format!(
            "postgresql://odd:{}@localhost:{p}/appdb",
            pct(ODD_PW)
        ))
        .secret(ODD_SECRET_FRAGMENT)
        .secret(&pct(ODD_PW)),
        case("url_percent_encoded_user").arg(format!(
            "postgresql://%61pp:{APP_PW}@localhost:{p}/appdb"
        )),
        case("url_percent_encoded_dbname").arg(format!(
            "postgresql://app:{APP_PW}@localhost:{p}/db%20with%20space"
        )),
        case("url_ipv4").arg(format!("postgresql://app:{APP_PW}@127.0.0.1:{p}/appdb")),
        case("url_ipv6_brackets").arg(format!("postgresql://app:{APP_PW}@[::1]:{p}/appdb")),
        case("url_socket_dir_percent_encoded_host").arg(format!(
            "postgresql://app@{}:{p}/appdb",
            pct(&ps)
        )),
        case("url_socket_dir_in_query_host").arg(format!(
            "postgresql:///appdb?host={ps}&port={p}&user=app"
        )),
        case("url_query_host_overrides_authority").arg(format!(
            "postgresql://app:{APP_PW}@nosuchhost.invalid:{p}/appdb?host=localhost"
        )),
        case("url_query_port_overrides_authority").arg(format!(
            "postgresql://app:{APP_PW}@localhost:{down}/appdb?port={p}"
        )),
        case("url_query_dbname_overrides_path").arg(format!(
            "postgresql://app:{APP_PW}@localhost:{p}/postgres?dbname=appdb"
        )),
        case("url_query_user_overrides_userinfo").arg(format!(
            "postgresql://nosuchrole:{APP_PW}@localhost:{p}/appdb?user=app"
        )),
        case("url_query_password").arg(format!(
            "postgresql://app@localhost:{p}/appdb?password={APP_PW}"
        )),
        case("url_empty_port_uses_pgport")
            .arg(format!("postgresql://app:{APP_PW}@localhost:/appdb"))
            .env("PGPORT", p.to_string()),
        case("url_empty_password_with_pgpassword")
            .arg(format!("postgresql://app:@localhost:{p}/appdb"))
            .env("PGPASSWORD", APP_PW),
        case("url_empty_password_with_password_file")
            .arg(format!("postgresql://app:@localhost:{p}/appdb"))
            .pgpass(&app_line),
        case("url_at_sign_in_password_unencoded").arg(format!(
            "postgresql://app:{APP_PW}@x@localhost:{p}/appdb"
        )),
        case("url_misspelled_scheme")
            .arg(format!("postgress://alice:{MALFORMED_PW}@localhost:{p}/appdb")),
        case("url_scheme_without_colon")
            .arg(format!("postgresql//alice:{MALFORMED_PW}@localhost:{p}/appdb")),
        case("url_scheme_uppercase").arg(format!("POSTGRESQL://app:{APP_PW}@localhost:{p}/appdb")),
        case("url_ssl_true_means_require").arg(format!("{url}?ssl=true")),
        case("url_ssl_false").arg(format!("{url}?ssl=false")),
        case("url_unknown_query_parameter").arg(format!("{url}?frobnicate=1")),
        case("url_bad_percent_escape").arg(format!("postgresql://app:{APP_PW}@localhost:{p}/app%zzdb")),
        case("url_percent_00").arg(format!("postgresql://app:{APP_PW}@localhost:{p}/app%00db")),
        case("url_no_authority_takes_pg_variables")
            .arg("postgresql://")
            .env("PGHOST", &ps)
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app")
            .env("PGDATABASE", "appdb"),
        case("url_trailing_slash_no_dbname")
            .arg(format!("postgresql://app:{APP_PW}@localhost:{p}/"))
            .env("PGDATABASE", "appdb"),
        case("url_query_empty_sslmode").arg(format!("{url}?sslmode=")),
        case("url_query_options_percent_encoded").arg(format!(
            "{url}?options=-c%20search_path%3Dparity_url"
        )),
        case("url_query_application_name").arg(format!("{url}?application_name=parity_url_app")),
        case("url_query_parameter_twice_later_wins").arg(format!(
            "{url}?application_name=first&application_name=second"
        )),
        case("url_plus_is_not_a_space").arg(format!("{url}?application_name=a+b")),
        case("url_fragment").arg(format!("{url}#fragment")),
        case("url_query_service").arg("postgresql:///?service=sock").file(
            Place::Home,
            ".pg_service.conf",
            format!("[sock]\nhost={ps}\nport={p}\nuser=app\ndbname=appdb\n"),
            0o600,
        ),
        // ------------------------------------------------ several hosts
        case("url_two_hosts_first_down").arg(format!(
            "postgresql://app:{APP_PW}@localhost:{down},localhost:{p}/appdb"
        )),
        case("url_two_hosts_one_default_port")
            .arg(format!("postgresql://app:{APP_PW}@localhost:{down},localhost/appdb"))
            .env("PGPORT", p.to_string()),
        case("kv_host_and_port_lists_first_down").arg(format!(
            "host=localhost,localhost port={down},{p} user=app password={APP_PW} dbname=appdb"
        )),
        case("kv_one_port_for_two_socket_dirs").arg(format!(
            "host=/nonexistent-parity,{ps2} port={p} user=app dbname=appdb"
        )),
        case("kv_second_socket_directory").arg(format!("host={ps2} port={p} user=app dbname=appdb")),
        case("kv_host_and_port_counts_differ").arg(format!(
            "host={ps},{ps2},{ss} port={p},{sb} user=app dbname=appdb"
        )),
        case("kv_empty_first_host_is_the_default_socket").arg(format!(
            "host=,{ps} port={p} user=app dbname=appdb"
        )),
        case("kv_empty_port_in_list_uses_default")
            .arg(format!("host={ps},{ps} port=,{p} user=app dbname=appdb")),
        case("kv_all_hosts_down").arg(format!(
            "host=localhost,127.0.0.1 port={down} user=app password={APP_PW} dbname=appdb"
        )),
        case("pghost_pgport_lists")
            .env("PGHOST", "localhost,localhost")
            .env("PGPORT", format!("{down},{p}"))
            .env("PGUSER", "app")
            .env("PGPASSWORD", APP_PW)
            .env("PGDATABASE", "appdb"),
        case("pghost_list_string_port_list")
            .arg(format!("port={down},{p} user=app dbname=appdb"))
            .env("PGHOST", format!("{ps},{ps}")),
        case("pghost_list_with_one_pgport")
            .env("PGHOST", format!("/nonexistent-parity,{ps}"))
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app")
            .env("PGDATABASE", "appdb"),
        case("wrong_password_on_first_host_stops")
            .arg(format!(
                "host=localhost,{ps} port={p} user=app password={WRONG_PW} dbname=appdb"
            )),
        case("unknown_database_on_first_host_stops").arg(format!(
            "host={ps},{ss} port={p},{sb} user=app dbname=nosuchdb"
        )),
        // ------------------------------------------------ hostaddr
        case("hostaddr_alone").arg(format!(
            "hostaddr=127.0.0.1 port={p} user=app password={APP_PW} dbname=appdb"
        )),
        case("hostaddr_with_unresolvable_host").arg(format!(
            "host=nosuchhost.invalid hostaddr=127.0.0.1 port={p} user=app password={APP_PW} dbname=appdb"
        )),
        case("hostaddr_with_socket_host").arg(format!(
            "host={ps} hostaddr=127.0.0.1 port={p} user=app password={APP_PW} dbname=appdb"
        )),
        case("hostaddr_ipv6").arg(format!(
            "hostaddr=::1 port={p} user=app password={APP_PW} dbname=appdb"
        )),
        case("hostaddr_not_an_address").arg(format!(
            "hostaddr=localhost port={p} user=app password={APP_PW} dbname=appdb"
        )),
        case("hostaddr_verify_full_checks_the_host_name").arg(format!(
            "host=localhost hostaddr=127.0.0.1 port={p} user=app password={APP_PW} dbname=appdb sslmode=verify-full sslrootcert={ca}"
        )),
        case("hostaddr_verify_full_without_host").arg(format!(
            "hostaddr=127.0.0.1 port={p} user=app password={APP_PW} dbname=appdb sslmode=verify-full sslrootcert={ca}"
        )),
        case("hostaddr_list_matches_host_list").arg(format!(
            "host=a.invalid,b.invalid hostaddr=127.0.0.1,127.0.0.1 port={down},{p} user=app password={APP_PW} dbname=appdb"
        )),
        case("hostaddr_count_differs_from_host_count").arg(format!(
            "host=a.invalid,b.invalid hostaddr=127.0.0.1 port={p} user=app password={APP_PW} dbname=appdb"
        )),
        case("pghostaddr")
            .env("PGHOSTADDR", "127.0.0.1")
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app")
            .env("PGPASSWORD", APP_PW)
            .env("PGDATABASE", "appdb"),
        case("pghostaddr_with_socket_pghost")
            .env("PGHOST", &ps)
            .env("PGHOSTADDR", "127.0.0.1")
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app")
            .env("PGPASSWORD", APP_PW)
            .env("PGDATABASE", "appdb"),
        case("hostaddr_password_file_matches_the_address")
            .arg(format!("hostaddr=127.0.0.1 port={p} user=app dbname=appdb"))
            .pgpass(format!("127.0.0.1:{p}:appdb:app:{APP_PW}\n")),
        case("hostaddr_alone_password_file_localhost_line")
            .arg(format!("hostaddr=127.0.0.1 port={p} user=app dbname=appdb"))
            .pgpass(format!("localhost:{p}:appdb:app:{APP_PW}\n")),
        case("hostaddr_password_file_matches_the_host_name")
            .arg(format!(
                "host=localhost hostaddr=127.0.0.1 port={p} user=app dbname=appdb"
            ))
            .pgpass(format!(
                "127.0.0.1:*:*:app:{WRONG_PW}\nlocalhost:*:*:app:{APP_PW}\n"
            )),
        // ------------------------------------------------ load balancing (libpq 16)
        case("load_balance_hosts_random").arg(format!("{sock} load_balance_hosts=random"))
            .pgm_connects("a libpq 16 parameter: pgm accepts the parameters of libpq 16 to 18"),
        case("load_balance_hosts_disable").arg(format!("{sock} load_balance_hosts=disable"))
            .pgm_connects("a libpq 16 parameter: pgm accepts the parameters of libpq 16 to 18"),
    ];

    // ------------------------------------------------ target_session_attrs
    for attrs in [
        "any",
        "read-write",
        "read-only",
        "primary",
        "standby",
        "prefer-standby",
    ] {
        c.push(case(&format!("tsa_{attrs}_primary_first")).arg(format!(
            "host={ps},{ss} port={p},{sb} user=app dbname=appdb target_session_attrs={attrs}"
        )));
        c.push(case(&format!("tsa_{attrs}_standby_first")).arg(format!(
            "host={ss},{ps} port={sb},{p} user=app dbname=appdb target_session_attrs={attrs}"
        )));
    }
    for attrs in ["read-write", "read-only", "standby", "prefer-standby"] {
        c.push(
            case(&format!("pgtargetsessionattrs_{attrs}"))
                .arg(format!(
                    "host={ss},{ps} port={sb},{p} user=app dbname=appdb"
                ))
                .env("PGTARGETSESSIONATTRS", attrs),
        );
    }
    c.extend([
        case("tsa_over_tcp_url").arg(format!(
            "postgresql://app:{APP_PW}@localhost:{sb},localhost:{p}/appdb?target_session_attrs=read-write"
        )),
        case("tsa_string_beats_pgtargetsessionattrs")
            .arg(format!(
                "host={ss},{ps} port={sb},{p} user=app dbname=appdb target_session_attrs=any"
            ))
            .env("PGTARGETSESSIONATTRS", "read-write"),
        case("tsa_standby_with_only_a_primary").arg(format!("{sock} target_session_attrs=standby")),
        case("tsa_prefer_standby_with_only_a_primary")
            .arg(format!("{sock} target_session_attrs=prefer-standby")),
        case("tsa_read_write_with_only_a_standby").arg(format!(
            "host={ss} port={sb} user=app dbname=appdb target_session_attrs=read-write"
        )),
        case("tsa_invalid_value").arg(format!("{sock} target_session_attrs=readwrite")),
        case("tsa_uppercase_value").arg(format!("{sock} target_session_attrs=READ-WRITE")),
        case("standby_alone").arg(format!("host={ss} port={sb} user=app dbname=appdb")),
        case("standby_over_tcp").arg(format!(
            "host=localhost port={sb} user=app password={APP_PW} dbname=appdb"
        )),
    ]);

    // ------------------------------------------------ sslmode
    for mode in [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ] {
        c.push(
            case(&format!("sslmode_{mode}_tcp_tls_server")).arg(format!("{tcp} sslmode={mode}")),
        );
        c.push(case(&format!("sslmode_{mode}_socket")).arg(format!("{sock} sslmode={mode}")));
        c.push(
            case(&format!("sslmode_{mode}_tcp_no_tls_server")).arg(format!(
                "host=localhost port={sb} user=app password={APP_PW} dbname=appdb sslmode={mode}"
            )),
        );
    }
    c.extend([
        case("sslmode_verify_ca_with_root").arg(format!("{tcp} sslmode=verify-ca sslrootcert={ca}")),
        case("sslmode_verify_full_with_root")
            .arg(format!("{tcp} sslmode=verify-full sslrootcert={ca}")),
        case("sslmode_verify_full_ip_san").arg(format!(
            "host=127.0.0.1 port={p} user=app password={APP_PW} dbname=appdb sslmode=verify-full sslrootcert={ca}"
        )),
        case("sslmode_verify_ca_wrong_root")
            .arg(format!("{tcp} sslmode=verify-ca sslrootcert={other_ca}")),
        case("sslmode_require_with_wrong_root_file_verifies")
            .arg(format!("{tcp} sslmode=require sslrootcert={other_ca}")),
        case("sslmode_require_with_home_root_crt_verifies")
            .arg(format!("{tcp} sslmode=require"))
            .file(Place::Home, ".postgresql/root.crt", &s.files.other_ca_pem, 0o644),
        case("sslmode_verify_full_home_root_crt")
            .arg(format!("{tcp} sslmode=verify-full"))
            .file(Place::Home, ".postgresql/root.crt", &s.files.ca_pem, 0o644),
        case("sslmode_invalid").arg(format!("{tcp} sslmode=verify")),
        case("sslmode_uppercase").arg(format!("{tcp} sslmode=REQUIRE")),
        case("pgsslmode_require").arg(&tcp).env("PGSSLMODE", "require"),
        case("pgsslmode_disable").arg(&tcp).env("PGSSLMODE", "disable"),
        case("pgsslmode_empty").arg(&tcp).env("PGSSLMODE", ""),
        case("sslmode_string_beats_pgsslmode")
            .arg(format!("{tcp} sslmode=disable"))
            .env("PGSSLMODE", "require"),
        case("pgsslmode_verify_full_pgsslrootcert")
            .arg(&tcp)
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &ca),
        // ------------------------------------------------ sslrootcert
        case("pgsslrootcert_verify_ca").arg(format!("{tcp} sslmode=verify-ca")).env("PGSSLROOTCERT", &ca),
        case("sslrootcert_string_beats_pgsslrootcert")
            .arg(format!("{tcp} sslmode=verify-ca sslrootcert={ca}"))
            .env("PGSSLROOTCERT", &other_ca),
        case("sslrootcert_system_verify_full").arg(format!("{tcp} sslmode=verify-full sslrootcert=system")),
        case("sslrootcert_system_require").arg(format!("{tcp} sslmode=require sslrootcert=system"))
            .deliberate("sslrootcert=system means the system trust store, as in libpq 16 and later, where only verify-full may use it", "only verify-full is allowed"),
        case("sslrootcert_missing_file_require")
            .arg(format!("{tcp} sslmode=require sslrootcert=/nonexistent-parity/root.crt")),
        case("sslrootcert_missing_file_verify_ca")
            .arg(format!("{tcp} sslmode=verify-ca sslrootcert=/nonexistent-parity/root.crt")),
        case("sslrootcert_not_a_certificate")
            .arg(format!("{tcp} sslmode=verify-ca sslrootcert={garbage}")),
        case("sslrootcert_right_root_with_prefer").arg(format!("{tcp} sslmode=prefer sslrootcert={ca}")),
        case("pgsslmode_allow").arg(&tcp).env("PGSSLMODE", "allow"),
        case("sslrootcert_with_prefer").arg(format!("{tcp} sslmode=prefer sslrootcert={other_ca}")),
        // ------------------------------------------------ client certificates
        case("sslcert_and_sslkey").arg(format!("{tcp} sslmode=require sslcert={ccert} sslkey={ckey}")),
        case("sslcert_missing_file").arg(format!(
            "{tcp} sslmode=require sslcert=/nonexistent-parity/client.crt"
        )),
        case("sslcert_without_key").arg(format!("{tcp} sslmode=require sslcert={ccert}")),
        case("sslkey_without_cert").arg(format!("{tcp} sslmode=require sslkey={ckey}")),
        case("sslkey_readable_by_others")
            .arg(format!("{tcp} sslmode=require sslcert={ccert} sslkey={ckey_readable}")),
        case("pgsslcert_pgsslkey")
            .arg(format!("{tcp} sslmode=require"))
            .env("PGSSLCERT", &ccert)
            .env("PGSSLKEY", &ckey),
        case("client_certificate_in_home")
            .arg(format!("{tcp} sslmode=require"))
            .file(Place::Home, ".postgresql/postgresql.crt", &s.files.client_cert_pem, 0o644)
            .file(Place::Home, ".postgresql/postgresql.key", &s.files.client_key_pem, 0o600),
        case("sslpassword_with_unencrypted_key").arg(format!(
            "{tcp} sslmode=require sslcert={ccert} sslkey={ckey} sslpassword={SSL_KEY_PW}"
        )),
        case("sslcert_on_socket").arg(format!("{sock} sslcert={ccert} sslkey={ckey_readable}")),
        case("sslcrl_missing_file")
            .arg(format!("{tcp} sslmode=verify-ca sslrootcert={ca} sslcrl=/nonexistent-parity/crl.pem")),
        case("sslcrl_not_a_crl").arg(format!("{tcp} sslmode=verify-ca sslrootcert={ca} sslcrl={garbage}")),
        case("sslcrldir_missing")
            .arg(format!("{tcp} sslmode=verify-ca sslrootcert={ca} sslcrldir=/nonexistent-parity")),
        case("pgsslcrl_not_a_crl")
            .arg(format!("{tcp} sslmode=verify-ca sslrootcert={ca}"))
            .env("PGSSLCRL", &garbage),
        // ------------------------------------------------ other TLS settings
        case("sslsni_0").arg(format!("{tcp} sslmode=require sslsni=0")),
        case("sslsni_1").arg(format!("{tcp} sslmode=require sslsni=1")),
        case("sslsni_not_a_number").arg(format!("{tcp} sslmode=require sslsni=yes")),
        case("sslcompression_1").arg(format!("{tcp} sslmode=require sslcompression=1")),
        case("pgsslcompression_0").arg(format!("{tcp} sslmode=require")).env("PGSSLCOMPRESSION", "0"),
        case("ssl_min_protocol_tls13").arg(format!("{tcp} sslmode=require ssl_min_protocol_version=TLSv1.3")),
        case("ssl_max_protocol_tls12").arg(format!("{tcp} sslmode=require ssl_max_protocol_version=TLSv1.2")),
        case("ssl_max_protocol_tls11").arg(format!("{tcp} sslmode=require ssl_max_protocol_version=TLSv1.1")),
        case("ssl_min_protocol_invalid").arg(format!("{tcp} sslmode=require ssl_min_protocol_version=TLSv9")),
        case("ssl_protocol_range_inverted").arg(format!(
            "{tcp} sslmode=require ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2"
        )),
        case("pgsslminprotocolversion")
            .arg(format!("{tcp} sslmode=require"))
            .env("PGSSLMINPROTOCOLVERSION", "TLSv1.3"),
        case("pgsslmaxprotocolversion_invalid")
            .arg(format!("{tcp} sslmode=require"))
            .env("PGSSLMAXPROTOCOLVERSION", "SSLv3"),
        // ------------------------------------------------ GSSAPI
        case("gssencmode_disable").arg(format!("{tcp} gssencmode=disable")),
        case("gssencmode_prefer").arg(format!("{tcp} gssencmode=prefer")),
        case("gssencmode_require").arg(format!("{tcp} gssencmode=require")),
        case("gssencmode_require_socket").arg(format!("{sock} gssencmode=require")),
        case("gssencmode_invalid").arg(format!("{tcp} gssencmode=always")),
        case("pggssencmode_require").arg(&tcp).env("PGGSSENCMODE", "require"),
        case("krbsrvname").arg(format!("{tcp} krbsrvname=postgres")),
        case("pgkrbsrvname").arg(&tcp).env("PGKRBSRVNAME", "otherservice"),
        case("gsslib_gssapi").arg(format!("{tcp} gsslib=gssapi")),
        case("gsslib_sspi").arg(format!("{tcp} gsslib=sspi")),
        case("pggsslib").arg(&tcp).env("PGGSSLIB", "gssapi"),
        // ------------------------------------------------ channel binding
        case("channel_binding_require_tls").arg(format!("{tcp} sslmode=require channel_binding=require")),
        case("channel_binding_require_default_sslmode").arg(format!("{tcp} channel_binding=require")),
        case("channel_binding_require_no_tls").arg(format!("{tcp} sslmode=disable channel_binding=require")),
        case("channel_binding_require_socket_trust").arg(format!("{sock} channel_binding=require")),
        case("channel_binding_require_standby_no_tls").arg(format!(
            "host=localhost port={sb} user=app password={APP_PW} dbname=appdb channel_binding=require"
        )),
        case("channel_binding_prefer").arg(format!("{tcp} channel_binding=prefer")),
        case("channel_binding_disable").arg(format!("{tcp} channel_binding=disable")),
        case("channel_binding_invalid").arg(format!("{tcp} channel_binding=always")),
        case("pgchannelbinding_require_no_tls")
            .arg(format!("{tcp} sslmode=disable"))
            .env("PGCHANNELBINDING", "require"),
        // ------------------------------------------------ requirepeer
        case("requirepeer_server_account").arg(format!("{sock} requirepeer={}", s.server_account)),
        case("requirepeer_other_account").arg(format!("{sock} requirepeer=parity_nobody")),
        case("requirepeer_over_tcp_is_ignored").arg(format!("{tcp} requirepeer=parity_nobody")),
        case("pgrequirepeer_other_account").arg(&sock).env("PGREQUIREPEER", "parity_nobody"),
        // ------------------------------------------------ replication
        case("replication_database").arg(format!("host={ps} port={p} user=postgres dbname=appdb replication=database"))
            .deliberate("pgm opens ordinary sessions, never replication connections", "never replication connections"),
        case("replication_true").arg(format!("host={ps} port={p} user=postgres dbname=appdb replication=true")),
        case("replication_false").arg(format!("host={ps} port={p} user=postgres dbname=appdb replication=false")),
        case("replication_invalid").arg(format!("host={ps} port={p} user=postgres dbname=appdb replication=maybe")),
        // ------------------------------------------------ client encoding
        case("client_encoding_string_beats_pgclientencoding")
            .arg(format!("{sock} client_encoding=LATIN1"))
            .env("PGCLIENTENCODING", "UTF8")
            .session_differs("client_encoding", "pgm always talks UTF8 to the server and warns that client_encoding is not applied"),
        case("pgclientencoding_latin1").arg(&sock).env("PGCLIENTENCODING", "LATIN1")
            .session_differs("client_encoding", "pgm always talks UTF8 to the server and warns that client_encoding is not applied"),
        case("pgclientencoding_auto").arg(&sock).env("PGCLIENTENCODING", "auto"),
        case("pgclientencoding_invalid").arg(&sock).env("PGCLIENTENCODING", "NOSUCHENCODING")
            .pgm_connects("pgm always talks UTF8 to the server and warns that client_encoding is not applied"),
        case("client_encoding_sql_ascii")
            .arg(format!("{sock} client_encoding=SQL_ASCII"))
            .env("PGCLIENTENCODING", "UTF8")
            .session_differs("client_encoding", "pgm always talks UTF8 to the server and warns that client_encoding is not applied"),
        // ------------------------------------------------ keepalives, timeouts
        case("keepalives_0").arg(format!("{tcp} keepalives=0")),
        case("keepalives_1_with_settings").arg(format!(
            "{tcp} keepalives=1 keepalives_idle=30 keepalives_interval=5 keepalives_count=3"
        )),
        case("keepalives_idle_not_a_number_tcp").arg(format!("{tcp} keepalives_idle=abc")),
        case("keepalives_idle_not_a_number_socket").arg(format!("{sock} keepalives_idle=abc")),
        case("keepalives_not_a_number").arg(format!("{tcp} keepalives=yes")),
        case("tcp_user_timeout").arg(format!("{tcp} tcp_user_timeout=10000")),
        case("tcp_user_timeout_not_a_number").arg(format!("{tcp} tcp_user_timeout=10s")),
        case("connect_timeout_10").arg(format!("{tcp} connect_timeout=10")),
        case("connect_timeout_0").arg(format!("{tcp} connect_timeout=0")),
        case("connect_timeout_1").arg(format!("{tcp} connect_timeout=1")),
        case("connect_timeout_negative").arg(format!("{tcp} connect_timeout=-5")),
        case("connect_timeout_with_unit").arg(format!("{tcp} connect_timeout=2s")),
        case("connect_timeout_not_a_number").arg(format!("{tcp} connect_timeout=abc")),
        case("connect_timeout_trailing_space").arg(format!("{tcp} connect_timeout='5 '")),
        case("pgconnect_timeout_not_a_number").arg(&tcp).env("PGCONNECT_TIMEOUT", "abc"),
        case("connect_timeout_down_host").arg(format!(
            "host=localhost port={down} user=app password={APP_PW} dbname=appdb connect_timeout=2"
        )),
        // ------------------------------------------------ application name
        case("application_name_string").arg(format!("{sock} application_name=parity_app")),
        case("pgappname").arg(&sock).env("PGAPPNAME", "parity_env_app"),
        case("application_name_string_beats_pgappname")
            .arg(format!("{sock} application_name=parity_app"))
            .env("PGAPPNAME", "parity_env_app"),
        case("fallback_application_name_string")
            .arg(format!("{sock} fallback_application_name=parity_fallback"))
            .libpq_fallback("parity_fallback"),
        case("pgappname_beats_fallback_application_name")
            .arg(format!("{sock} fallback_application_name=parity_fallback"))
            .env("PGAPPNAME", "parity_env_app")
            .libpq_fallback("parity_fallback"),
        case("application_name_empty_does_not_take_pgappname")
            .arg(format!("{sock} application_name=''"))
            .env("PGAPPNAME", "parity_env_app"),
        case("pgappname_empty").arg(&sock).env("PGAPPNAME", ""),
        case("application_name_non_ascii").arg(format!("{sock} application_name=p\u{e4}rity")),
        case("application_name_with_spaces").arg(format!("{sock} application_name='parity app'")),
        // ------------------------------------------------ options, session variables
        case("options_search_path").arg(format!("{sock} options='-c search_path=parity_x'")),
        case("options_without_space").arg(format!("{sock} options=-csearch_path=parity_x")),
        case("options_double_dash").arg(format!("{sock} options=--search_path=parity_x")),
        case("options_escaped_space").arg(format!(r"{sock} options='-c search_path=my\\ schema'")),
        case("options_several").arg(format!("{sock} options='-c geqo=off -c TimeZone=UTC'")),
        case("options_unknown_setting").arg(format!("{sock} options='-c nosuch_setting=1'")),
        case("pgoptions").arg(&sock).env("PGOPTIONS", "-c search_path=parity_env"),
        case("pgoptions_escaped_space").arg(&sock).env("PGOPTIONS", r"-c search_path=my\ schema"),
        case("options_string_beats_pgoptions")
            .arg(format!("{sock} options='-c search_path=parity_x'"))
            .env("PGOPTIONS", "-c search_path=parity_env"),
        case("pgtz").arg(&sock).env("PGTZ", "Asia/Tokyo"),
        case("pgtz_invalid").arg(&sock).env("PGTZ", "Nowhere/Parity"),
        case("pgdatestyle").arg(&sock).env("PGDATESTYLE", "SQL, DMY"),
        case("pggeqo_off").arg(&sock).env("PGGEQO", "off"),
        case("options_timezone_and_pgtz")
            .arg(format!("{sock} options='-c TimeZone=UTC'"))
            .env("PGTZ", "Asia/Tokyo"),
        // ------------------------------------------------ PG* variables and precedence
        case("pg_variables_only")
            .env("PGHOST", &ps)
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app")
            .env("PGDATABASE", "appdb"),
        case("nothing_at_all"),
        case("no_host_pgport_default_socket_directory")
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app")
            .env("PGDATABASE", "appdb"),
        case("pguser_only_database_defaults_to_user")
            .env("PGHOST", &ps)
            .env("PGPORT", p.to_string())
            .env("PGUSER", "postgres"),
        case("string_user_beats_pguser").arg(&sock).env("PGUSER", "nopw"),
        case("string_dbname_beats_pgdatabase").arg(&sock).env("PGDATABASE", "postgres"),
        case("string_port_beats_pgport").arg(&sock).env("PGPORT", down.to_string()),
        case("string_host_beats_pghost").arg(&tcp).env("PGHOST", &ps),
        case("string_partial_rest_from_pg_variables")
            .arg("dbname=appdb")
            .env("PGHOST", &ps)
            .env("PGPORT", p.to_string())
            .env("PGUSER", "app"),
        case("pgport_not_a_number").arg(format!("host={ps} user=app dbname=appdb")).env("PGPORT", "abc"),
        case("pguser_empty_is_the_os_user")
            .arg(format!("host={ps} port={p} dbname=appdb"))
            .env("PGUSER", ""),
        case("pghost_empty_is_the_default_socket")
            .arg(format!("port={p} user=app dbname=appdb"))
            .env("PGHOST", ""),
        case("pgdatabase_empty_is_the_user_name")
            .arg(format!("host={ps} port={p} user=postgres"))
            .env("PGDATABASE", ""),
        case("string_password_beats_pgpassword")
            .arg(&tcp)
            .env("PGPASSWORD", WRONG_PW),
        case("pgpassword_beats_password_file")
            .arg(&tcp_nopw)
            .env("PGPASSWORD", WRONG_PW)
            .pgpass(&app_line),
        case("pgpassword_empty_reads_the_password_file")
            .arg(&tcp_nopw)
            .env("PGPASSWORD", "")
            .pgpass(&app_line),
        // ------------------------------------------------ password file
        case("pgpass_exact_line").arg(&tcp_nopw).pgpass(&app_line),
        case("pgpass_readable_by_others_is_ignored").arg(&tcp_nopw).file(
            Place::Home,
            ".pgpass",
            &app_line,
            0o644,
        ),
        case("pgpass_wildcards").arg(&tcp_nopw).pgpass(format!("*:*:*:app:{APP_PW}\n")),
        case("pgpass_escaped_colon_and_backslash")
            .arg(format!("host=localhost port={p} user=odd dbname=appdb"))
            .pgpass(format!("*:*:*:odd:{}\n", pgpass_escape(ODD_PW)))
            .secret(ODD_SECRET_FRAGMENT),
        case("pgpass_unescaped_colon_ends_the_password")
            .arg(&tcp_nopw)
            .pgpass(format!("*:*:*:app:{APP_PW}:trailing\n")),
        case("pgpass_comments_and_blank_lines").arg(&tcp_nopw).pgpass(format!(
            "# a comment\n\n   \n#localhost:*:*:app:{WRONG_PW}\n{app_line}"
        )),
        case("pgpass_first_match_wins").arg(&tcp_nopw).pgpass(format!(
            "*:*:*:app:{WRONG_PW}\n{app_line}"
        )),
        case("pgpass_host_does_not_match")
            .arg(&tcp_nopw)
            .pgpass(format!("otherhost:*:*:app:{APP_PW}\n")),
        case("pgpass_port_does_not_match")
            .arg(&tcp_nopw)
            .pgpass(format!("localhost:{down}:*:app:{APP_PW}\n")),
        case("pgpass_database_does_not_match")
            .arg(&tcp_nopw)
            .pgpass(format!("localhost:*:postgres:app:{APP_PW}\n")),
        case("pgpass_crlf_line_endings")
            .arg(&tcp_nopw)
            .pgpass(format!("localhost:{p}:appdb:app:{APP_PW}\r\n")),
        case("pgpass_no_final_newline")
            .arg(&tcp_nopw)
            .pgpass(format!("localhost:{p}:appdb:app:{APP_PW}")),
        case("pgpass_too_few_fields")
            .arg(&tcp_nopw)
            .pgpass(format!("localhost:{p}:app:{APP_PW}\n")),
        case("pgpass_ipv4_host_for_127_0_0_1")
            .arg(format!("host=127.0.0.1 port={p} user=app dbname=appdb"))
            .pgpass(format!("127.0.0.1:{p}:appdb:app:{APP_PW}\n")),
        case("pgpass_localhost_line_for_127_0_0_1")
            .arg(format!("host=127.0.0.1 port={p} user=app dbname=appdb"))
            .pgpass(&app_line),
        case("pgpass_dbname_with_space")
            .arg(format!("host=localhost port={p} user=app dbname='db with space'"))
            .pgpass(format!("localhost:{p}:db with space:app:{APP_PW}\n")),
        case("passfile_keyword")
            .arg(format!("{tcp_nopw} passfile={{SCRATCH}}/custom.pgpass"))
            .file(Place::Scratch, "custom.pgpass", &app_line, 0o600),
        case("pgpassfile")
            .arg(&tcp_nopw)
            .env("PGPASSFILE", "{SCRATCH}/custom.pgpass")
            .file(Place::Scratch, "custom.pgpass", &app_line, 0o600),
        case("passfile_keyword_beats_pgpassfile")
            .arg(format!("{tcp_nopw} passfile={{SCRATCH}}/right.pgpass"))
            .env("PGPASSFILE", "{SCRATCH}/wrong.pgpass")
            .file(Place::Scratch, "right.pgpass", &app_line, 0o600)
            .file(Place::Scratch, "wrong.pgpass", format!("*:*:*:app:{WRONG_PW}\n"), 0o600),
        case("pgpassfile_replaces_home_pgpass")
            .arg(&tcp_nopw)
            .env("PGPASSFILE", "{SCRATCH}/missing.pgpass")
            .pgpass(&app_line),
        case("passfile_readable_by_others_is_ignored")
            .arg(format!("{tcp_nopw} passfile={{SCRATCH}}/custom.pgpass"))
            .file(Place::Scratch, "custom.pgpass", &app_line, 0o640),
        case("passfile_is_a_directory")
            .arg(format!("{tcp_nopw} passfile={{SCRATCH}}")),
        case("pgpass_used_for_the_second_host")
            .arg(format!(
                "host=localhost,localhost port={down},{p} user=app dbname=appdb"
            ))
            .pgpass(&app_line),
    ]);

    // ------------------------------------------------ service files
    let services = format!(
        "# services for the parity test\n\
         [tcp]\nhost=localhost\nport={p}\nuser=app\ndbname=appdb\nsslmode=require\n\n\
         [sock]\nhost={ps}\nport={p}\nuser=app\ndbname=appdb\n\n\
         [unknownkey]\nhost={ps}\nport={p}\nuser=app\nfrobnicate=1\n\n\
         [withpassword]\nhost=localhost\nport={p}\nuser=app\npassword={APP_PW}\ndbname=appdb\n\n\
         [nested]\nservice=sock\n\n\
         [spaced]\nhost = {ps}\nport = {p}\nuser = app\ndbname = appdb\n\n\
         [quoted]\nhost={ps}\nport={p}\nuser=app\ndbname='appdb'\n\n\
         [standby]\nhost={ss}\nport={sb}\nuser=app\ndbname=appdb\n"
    );
    let sock_service = format!("[sock]\nhost={ps}\nport={p}\nuser=app\ndbname=appdb\n");
    let home_sock = format!("[sock]\nhost={ps}\nport={p}\nuser=app\ndbname=postgres\n");
    let svc = |name: &str| {
        case(name)
            .env("PGSERVICEFILE", "{SCRATCH}/services.conf")
            .file(Place::Scratch, "services.conf", &services, 0o644)
    };
    c.extend([
        svc("service_tcp")
            .arg("service=tcp")
            .env("PGPASSWORD", APP_PW),
        svc("pgservice_sock").env("PGSERVICE", "sock"),
        svc("service_string_beats_service_file").arg("service=sock dbname=postgres"),
        svc("service_file_beats_pg_variables")
            .arg("service=sock")
            .env("PGDATABASE", "postgres")
            .env("PGPORT", down.to_string()),
        svc("service_string_sslmode_beats_service")
            .arg("service=tcp sslmode=disable")
            .env("PGPASSWORD", APP_PW),
        svc("service_unknown_keyword").arg("service=unknownkey"),
        svc("service_not_found").arg("service=nosuch"),
        svc("pgservice_not_found").env("PGSERVICE", "nosuch"),
        svc("service_with_password").arg("service=withpassword"),
        svc("service_nested").arg("service=nested"),
        svc("service_spaces_around_equals").arg("service=spaced"),
        svc("service_quoted_value").arg("service=quoted"),
        svc("service_name_is_case_sensitive").arg("service=SOCK"),
        svc("service_in_url_query").arg("postgresql:///?service=sock"),
        svc("service_in_url_query_with_dbname").arg("postgresql:///postgres?service=sock"),
        svc("service_string_beats_pgservice")
            .arg("service=standby")
            .env("PGSERVICE", "sock"),
        svc("service_with_target_session_attrs")
            .arg("service=standby target_session_attrs=read-write"),
        case("service_home_pg_service_conf")
            .arg("service=sock")
            .file(Place::Home, ".pg_service.conf", &sock_service, 0o644),
        case("service_sysconfdir_pg_service_conf")
            .arg("service=sock")
            .file(Place::Sysconf, "pg_service.conf", &sock_service, 0o644),
        case("service_home_beats_sysconfdir")
            .arg("service=sock")
            .file(Place::Home, ".pg_service.conf", &home_sock, 0o644)
            .file(Place::Sysconf, "pg_service.conf", &sock_service, 0o644),
        case("service_missing_from_home_found_in_sysconfdir")
            .arg("service=sock")
            .file(Place::Home, ".pg_service.conf", "[other]\nport=1\n", 0o644)
            .file(Place::Sysconf, "pg_service.conf", &sock_service, 0o644),
        case("pgservicefile_beats_home")
            .arg("service=sock")
            .env("PGSERVICEFILE", "{SCRATCH}/services.conf")
            .file(Place::Scratch, "services.conf", &sock_service, 0o644)
            .file(Place::Home, ".pg_service.conf", &home_sock, 0o644),
        case("pgservicefile_missing_is_an_error")
            .arg("service=sock")
            .env("PGSERVICEFILE", "{SCRATCH}/missing.conf")
            .file(Place::Sysconf, "pg_service.conf", &sock_service, 0o644),
        case("pgservicefile_missing_service_missing")
            .arg("service=sock")
            .env("PGSERVICEFILE", "{SCRATCH}/missing.conf"),
        case("service_file_with_key_outside_a_section")
            .arg("service=sock")
            .file(
                Place::Home,
                ".pg_service.conf",
                format!("port=1\n{sock_service}"),
                0o644,
            ),
        case("service_file_line_without_equals")
            .arg("service=sock")
            .file(
                Place::Home,
                ".pg_service.conf",
                format!("{sock_service}garbage\n"),
                0o644,
            ),
        case("pgsysconfdir_is_honoured_without_home_file")
            .env("PGSERVICE", "sock")
            .env("PGSYSCONFDIR", "{SCRATCH}/etc")
            .file(Place::Scratch, "etc/pg_service.conf", &sock_service, 0o644),
    ]);
    c
}

// ---------------------------------------------------------------- running

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// What the program said about its failure: pgm's "error:" line with its
    /// "caused by:" lines (its first lines may be retry notices), else the
    /// first line (psql's).
    fn failure_message(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().map(str::trim).collect();
        let message = match lines.iter().position(|line| line.starts_with("error:")) {
            Some(start) => lines[start..]
                .iter()
                .take_while(|line| *line == &lines[start] || line.starts_with("caused by:"))
                .copied()
                .collect::<Vec<_>>()
                .join(" / "),
            None => lines
                .iter()
                .find(|line| !line.is_empty())
                .copied()
                .unwrap_or("(no message)")
                .to_owned(),
        };
        let mut message: String = message.chars().take(MESSAGE_LIMIT).collect();
        if message.chars().count() == MESSAGE_LIMIT {
            message.push_str("...");
        }
        format!(
            "exit {}: {message}",
            self.code.map_or("-".to_owned(), |c| c.to_string())
        )
    }
}

enum Outcome {
    Session(Value),
    Failed(String),
}

impl Outcome {
    fn short(&self) -> String {
        match self {
            Outcome::Session(session) => format!("ok {}", session_summary(session)),
            Outcome::Failed(line) => format!("FAIL {line}"),
        }
    }
}

fn session_summary(session: &Value) -> String {
    let get = |key: &str| session.get(key).map(Value::to_string).unwrap_or_default();
    format!(
        "user={} db={} port={} addr={} cluster={} tls={}",
        get("user"),
        get("database"),
        get("server_port"),
        get("server_address"),
        get("cluster_name"),
        get("tls")
    )
}

fn run(program: &Path, args: &[String], env: &[(String, String)], dir: &Path, tag: &str) -> Run {
    let stdout_path = dir.join(format!("{tag}.stdout"));
    let stderr_path = dir.join(format!("{tag}.stderr"));
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            std::fs::write(
                &stderr_path,
                format!("(killed after {}s)\n", RUN_LIMIT.as_secs()),
            )
            .unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code,
        stdout: String::from_utf8_lossy(&std::fs::read(&stdout_path).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&stderr_path).unwrap()).into_owned(),
    }
}

struct Verdict {
    name: String,
    input: String,
    psql: String,
    pgm: String,
    problems: Vec<String>,
    agreed_failure: bool,
    elapsed: Duration,
}

fn substitute(text: &str, home: &Path, sysconf: &Path, scratch: &Path) -> String {
    text.replace("{HOME}", &home.display().to_string())
        .replace("{SYSCONF}", &sysconf.display().to_string())
        .replace("{SCRATCH}", &scratch.display().to_string())
}

fn run_case(servers: &Servers, index: usize, case: &Case) -> Verdict {
    let started = Instant::now();
    let scratch = servers.scratch.path().join(format!("{index:03}"));
    let home = scratch.join("home");
    let sysconf = scratch.join("sysconf");
    let work = scratch.join("work");
    for dir in [&home, &sysconf, &work] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let sub = |text: &str| substitute(text, &home, &sysconf, &scratch);
    for file in &case.files {
        let base = match file.place {
            Place::Home => &home,
            Place::Sysconf => &sysconf,
            Place::Scratch => &scratch,
        };
        let path = base.join(&file.name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, sub(&file.contents)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode)).unwrap();
    }

    let sets = |name: &str| case.env.iter().any(|(key, _)| key == name);
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
    // psql asks for client_encoding=auto, the locale's: UTF8 here, as pgm's.
    env.insert("LC_ALL".into(), "C.UTF-8".into());
    env.insert("HOME".into(), home.display().to_string());
    env.insert("PGSYSCONFDIR".into(), sysconf.display().to_string());
    let arg = case.arg.as_deref().map(sub);
    // pgm retries a refused connection until the connect timeout (libpq
    // tries each address once): a short one keeps the cases with a server
    // that is down fast. A case naming a timeout itself keeps its own.
    if !sets("PGCONNECT_TIMEOUT") && !arg.as_deref().unwrap_or("").contains("connect_timeout") {
        env.insert("PGCONNECT_TIMEOUT".into(), "3".into());
    }
    for (name, value) in &case.env {
        env.insert(name.clone(), sub(value));
    }
    let env: Vec<(String, String)> = env.into_iter().collect();
    assert!(
        !arg.as_deref().unwrap_or("").contains("client_encoding") || sets("PGCLIENTENCODING"),
        "{}: psql overrides a client_encoding in the string unless PGCLIENTENCODING is set",
        case.name
    );

    let mut psql_args: Vec<String> = ["-X", "-A", "-t", "-q", "-w", "-c", SESSION_FACTS_SQL]
        .iter()
        .map(|s| s.to_string())
        .collect();
    psql_args.extend(arg.clone());
    let psql = run(psql_program(), &psql_args, &env, &work, "psql");

    let pgm_bin = assert_cmd::cargo::cargo_bin("pgm");
    let mut pgm_args: Vec<String> = Vec::new();
    if let Some(arg) = &arg {
        pgm_args.extend(["--database-url".to_owned(), arg.clone()]);
    }
    pgm_args.extend(["ping", "--format", "json"].map(String::from));
    let pgm = run(&pgm_bin, &pgm_args, &env, &work, "pgm");

    let psql_outcome = match (psql.code, serde_json::from_str::<Value>(psql.stdout.trim())) {
        (Some(0), Ok(session)) if session.is_object() => Outcome::Session(session),
        _ => Outcome::Failed(psql.failure_message()),
    };
    let pgm_outcome = match (pgm.code, serde_json::from_str::<Value>(pgm.stdout.trim())) {
        (Some(0), Ok(report)) if report.get("session").is_some_and(Value::is_object) => {
            Outcome::Session(report["session"].clone())
        }
        _ => Outcome::Failed(pgm.failure_message()),
    };

    let mut problems = Vec::new();
    let mut agreed_failure = false;
    let mut pgm_short = pgm_outcome.short();
    let mut psql_short = psql_outcome.short();
    match &case.expect {
        Expect::Deliberate {
            reason,
            stderr_contains,
        } => {
            if pgm.code != Some(64) || !pgm.stderr.contains(stderr_contains) {
                problems.push(format!(
                    "deliberately refused ({reason}): expected exit 64 and {stderr_contains:?}"
                ));
            }
        }
        Expect::PgmConnects { reason } => {
            if !matches!(
                (&psql_outcome, &pgm_outcome),
                (Outcome::Failed(_), Outcome::Session(_))
            ) {
                problems.push(format!(
                    "deliberately connects ({reason}): expected psql to fail and pgm to connect"
                ));
            }
        }
        Expect::SessionDiffers { field, reason } => match (&psql_outcome, &pgm_outcome) {
            (Outcome::Session(a), Outcome::Session(b)) => {
                let differing: Vec<String> = session_diffs(a, b, case.libpq_fallback.as_deref())
                    .into_iter()
                    .map(|(left, _)| left)
                    .filter(|left| !left.starts_with(&format!("{field}=")))
                    .collect();
                if !differing.is_empty() || a.get(*field) == b.get(*field) {
                    problems.push(format!(
                        "deliberately differs in {field} only ({reason}): differs in {differing:?}"
                    ));
                }
            }
            _ => problems.push(format!(
                "deliberately differs in {field} ({reason}): expected both to connect"
            )),
        },
        Expect::Libpq => match (&psql_outcome, &pgm_outcome) {
            (Outcome::Session(a), Outcome::Session(b)) => {
                let diffs = session_diffs(a, b, case.libpq_fallback.as_deref());
                if !diffs.is_empty() {
                    psql_short = format!(
                        "ok {}",
                        diffs
                            .iter()
                            .map(|d| d.0.clone())
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                    pgm_short = format!(
                        "ok {}",
                        diffs
                            .iter()
                            .map(|d| d.1.clone())
                            .collect::<Vec<_>>()
                            .join(" ")
                    );
                    problems.push("different sessions".to_owned());
                }
            }
            (Outcome::Failed(_), Outcome::Failed(_)) => agreed_failure = true,
            _ => problems.push("one connected, the other did not".to_owned()),
        },
    }

    // No secret in pgm's output, also with debug logging in JSON.
    let secrets = case.all_secrets();
    if !secrets.is_empty() {
        let mut verbose_args = vec![
            "-v".to_owned(),
            "--log-format".to_owned(),
            "json".to_owned(),
        ];
        verbose_args.extend(pgm_args.iter().cloned());
        let verbose = run(&pgm_bin, &verbose_args, &env, &work, "pgm-verbose");
        for secret in &secrets {
            for (label, text) in [
                ("stdout", &pgm.stdout),
                ("stderr", &pgm.stderr),
                ("-v stdout", &verbose.stdout),
                ("-v stderr", &verbose.stderr),
            ] {
                if text.contains(secret.as_str()) {
                    problems.push(format!("LEAK: {secret:?} in pgm's {label}"));
                    pgm_short = format!("{pgm_short} [LEAK in {label}]");
                }
            }
        }
    }

    Verdict {
        name: case.name.clone(),
        input: case.describe_input(),
        psql: psql_short,
        pgm: pgm_short,
        problems,
        agreed_failure,
        elapsed: started.elapsed(),
    }
}

/// The fields where two sessions differ, as (psql's, pgm's) "key=value".
fn session_diffs(psql: &Value, pgm: &Value, libpq_fallback: Option<&str>) -> Vec<(String, String)> {
    let mut psql = psql.clone();
    if let Some(fallback) = libpq_fallback
        && psql["application_name"] == "psql"
    {
        psql["application_name"] = Value::from(fallback);
    }
    let mut keys: Vec<&String> = psql.as_object().unwrap().keys().collect();
    for key in pgm.as_object().unwrap().keys() {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut diffs = Vec::new();
    for key in keys {
        let (a, b) = (&psql[key.as_str()], &pgm[key.as_str()]);
        if a == b || (key == "application_name" && a == "psql" && b == "pgm") {
            continue;
        }
        diffs.push((format!("{key}={a}"), format!("{key}={b}")));
    }
    diffs
}

/// PGM_PSQL, else the first psql of PSQL_PLACES that exists.
fn psql_program() -> &'static Path {
    static PSQL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PSQL.get_or_init(|| match std::env::var_os("PGM_PSQL") {
        Some(path) => PathBuf::from(path),
        None => PSQL_PLACES
            .iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .unwrap_or_else(|| PathBuf::from(PSQL_PLACES[1])),
    })
}

#[test]
fn pgm_resolves_connection_settings_as_libpq_does() {
    let psql = psql_program();
    let version = Command::new(psql)
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        version.contains(" 15."),
        "the cases are written against libpq 15, the one CI has, but {} says {version:?}: \
         install postgresql-client-15 (apt-get install postgresql-client-15) or point PGM_PSQL at a psql 15",
        psql.display()
    );
    let started = Instant::now();
    let servers = start_servers();
    let cases = corpus(&servers);
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(
            names.insert(case.name.clone()),
            "two cases named {}",
            case.name
        );
    }
    let next = AtomicUsize::new(0);
    let verdicts = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(index) else { break };
                    let verdict = run_case(&servers, index, case);
                    verdicts.lock().unwrap().push((index, verdict));
                }
            });
        }
    });
    let mut verdicts = verdicts.into_inner().unwrap();
    verdicts.sort_by_key(|(index, _)| *index);
    let _ = std::fs::remove_dir_all(&servers.primary_socket2);

    let mut report = String::new();
    let slowest = verdicts
        .iter()
        .max_by_key(|(_, v)| v.elapsed)
        .map(|(_, v)| v);
    let _ = writeln!(
        report,
        "{} cases in {:.1}s (slowest: {} in {:.1}s)",
        verdicts.len(),
        started.elapsed().as_secs_f64(),
        slowest.map_or("", |v| v.name.as_str()),
        slowest.map_or(0.0, |v| v.elapsed.as_secs_f64()),
    );
    let _ = writeln!(report, "\nBoth failed (agreement):");
    for (_, v) in verdicts
        .iter()
        .filter(|(_, v)| v.agreed_failure && v.problems.is_empty())
    {
        let _ = writeln!(
            report,
            "  {}\n      psql: {}\n      pgm:  {}",
            v.name, v.psql, v.pgm
        );
    }
    let disagreements: Vec<&Verdict> = verdicts
        .iter()
        .map(|(_, v)| v)
        .filter(|v| !v.problems.is_empty())
        .collect();
    println!("{report}");
    if disagreements.is_empty() {
        return;
    }
    let mut table = format!(
        "\n{} of {} cases: pgm does not do what libpq does\n",
        disagreements.len(),
        verdicts.len()
    );
    for v in &disagreements {
        let _ = writeln!(
            table,
            "\n- {} ({})\n    input: {}\n    psql:  {}\n    pgm:   {}",
            v.name,
            v.problems.join("; "),
            v.input,
            v.psql,
            v.pgm
        );
    }
    panic!("{table}");
}
