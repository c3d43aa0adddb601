//! Connection settings, resolved in one place with libpq's precedence: a value
//! in the connection string wins over the PG* environment variable, which wins
//! over the default; a password comes from the string, then PGPASSWORD, then
//! the password file.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::conninfo::{self, ConninfoError, Parameters};
use super::passfile::{self, PassfileLookup};

pub const DEFAULT_APPLICATION_NAME: &str = "pgm";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_PORT: u16 = 5432;
const SOCKET_DIRECTORIES: &[&str] = &["/var/run/postgresql", "/tmp"];

/// The process environment, captured once so that resolution is a pure
/// function (and tests can hand in their own).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
    home: Option<PathBuf>,
}

impl Environment {
    pub fn from_process() -> Self {
        // As libpq: an empty HOME counts as unset.
        let home = std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(PathBuf::from)
            .or_else(|| crate::os::current_account().map(|account| account.home));
        Environment {
            vars: std::env::vars().collect(),
            home,
        }
    }

    #[cfg(test)]
    pub fn with_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
        home: Option<&Path>,
    ) -> Self {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            home: home.map(Path::to_path_buf),
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    Socket(PathBuf),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(name) if name.contains(':') => write!(f, "[{name}]"),
            Host::Tcp(name) => f.write_str(name),
            Host::Socket(dir) => write!(f, "{}", dir.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self, SettingsError> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => return Err(SettingsError::SslModeAllow),
            other => {
                return Err(SettingsError::InvalidValue {
                    name: "sslmode",
                    value: other.to_owned(),
                    expected: "one of disable, prefer, require, verify-ca, verify-full",
                });
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the root certificates for server verification come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCertificates {
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store.
    System,
}

/// A password that cannot be printed by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    ConnectionString,
    Environment,
    Passfile { path: PathBuf, line: usize },
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::ConnectionString => f.write_str("the connection string"),
            PasswordSource::Environment => f.write_str("PGPASSWORD"),
            PasswordSource::Passfile { path, line } => write!(f, "{} line {line}", path.display()),
        }
    }
}

/// Everything needed to open a session. Its `Display` is the redacted target,
/// safe for logs and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The server's name: where to connect, unless `hostaddr` is set; the
    /// name TLS verifies and the password file matches either way.
    pub host: Host,
    /// The numeric address to connect to, without a name lookup (libpq's
    /// `hostaddr`).
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<(Password, PasswordSource)>,
    pub sslmode: SslMode,
    pub root_certificates: Option<RootCertificates>,
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Duration,
    pub application_name: String,
    pub options: Option<String>,
    /// Things resolution noticed that the user should hear about when the
    /// connection fails (a password file ignored for its permissions, say).
    pub notes: Vec<String>,
}

impl fmt::Display for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host)?;
        if let Some(address) = self
            .hostaddr
            .filter(|a| self.host != Host::Tcp(a.to_string()))
        {
            write!(f, " (address {address})")?;
        }
        write!(f, ":{}/{}", self.port, self.dbname)
    }
}

impl ConnectionSettings {
    /// The same target with another database, for tools that create databases.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        ConnectionSettings {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error(transparent)]
    Conninfo(#[from] ConninfoError),
    #[error("invalid {name} \"{value}\": expected {expected}")]
    InvalidValue {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "sslmode=allow is not supported: use prefer (TLS when the server offers it) or disable"
    )]
    SslModeAllow,
    #[error(
        "no user name given and the current OS user cannot be found: set PGUSER or put a user in the URL"
    )]
    NoUser,
    #[error("sslcert and sslkey must be given together")]
    HalfClientCertificate,
    #[error(
        "sslmode={mode} verifies the server against root certificates, but none is named and there is \
         no home directory to look for ~/.postgresql/root.crt in (HOME is unset and the current OS user \
         has no account entry): give the file with sslrootcert=PATH (or PGSSLROOTCERT), use \
         sslrootcert=system for the system's trust store, or choose sslmode=require to encrypt without verifying"
    )]
    NoHomeForRootCertificate { mode: &'static str },
    #[error(
        "sslmode={mode} needs the root certificate file {}, which does not exist: \
         give its path with sslrootcert=PATH (or PGSSLROOTCERT), use sslrootcert=system \
         for the system's trust store, or choose sslmode=require to encrypt without verifying",
        path.display()
    )]
    MissingRootFile { mode: &'static str, path: PathBuf },
}

/// Resolves the settings from an optional connection string (flag or
/// DATABASE_URL) and the environment.
pub fn resolve(
    connection_string: Option<&str>,
    env: &Environment,
) -> Result<ConnectionSettings, SettingsError> {
    let params = match connection_string.filter(|text| !text.trim().is_empty()) {
        Some(text) => conninfo::parse(text)?,
        None => Parameters::new(),
    };
    let sources = Sources {
        params: &params,
        env,
    };
    let port = resolve_port(sources.pick("port", "PGPORT"))?;
    let (host, hostaddr) = resolve_host(&sources, port)?;
    let user = match sources.pick("user", "PGUSER") {
        Some(user) => user.to_owned(),
        None => crate::os::current_account()
            .map(|account| account.name)
            .ok_or(SettingsError::NoUser)?,
    };
    let dbname = sources
        .pick("dbname", "PGDATABASE")
        .unwrap_or(&user)
        .to_owned();
    let sslmode = SslMode::parse(sources.pick("sslmode", "PGSSLMODE").unwrap_or("prefer"))?;
    let connect_timeout = match sources.pick("connect_timeout", "PGCONNECT_TIMEOUT") {
        Some(text) => parse_connect_timeout(text)?,
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    let application_name = params
        .get("application_name")
        .map(String::as_str)
        .or_else(|| env.var("PGAPPNAME"))
        .or_else(|| params.get("fallback_application_name").map(String::as_str))
        .unwrap_or(DEFAULT_APPLICATION_NAME)
        .to_owned();
    // As libpq, TLS is never attempted over a Unix socket, so its files are
    // not demanded there.
    let tls_applies = matches!(host, Host::Tcp(_));
    let root_certificates = resolve_root_certificates(
        sources.pick("sslrootcert", "PGSSLROOTCERT"),
        sslmode,
        tls_applies,
        env,
    )?;
    let client_certificate = match (
        sources.pick("sslcert", "PGSSLCERT"),
        sources.pick("sslkey", "PGSSLKEY"),
    ) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => return Err(SettingsError::HalfClientCertificate),
    };
    let mut notes = Vec::new();
    let password = resolve_password(&sources, &host, port, &dbname, &user, &mut notes);
    Ok(ConnectionSettings {
        host,
        hostaddr,
        port,
        user,
        dbname,
        password,
        sslmode,
        root_certificates,
        client_certificate,
        connect_timeout,
        application_name,
        options: sources.pick("options", "PGOPTIONS").map(str::to_owned),
        notes,
    })
}

/// Where a setting comes from: the connection string, else its variable.
struct Sources<'a> {
    params: &'a Parameters,
    env: &'a Environment,
}

impl Sources<'_> {
    fn pick(&self, name: &str, var: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .or_else(|| self.env.var(var))
    }
}

fn resolve_port(text: Option<&str>) -> Result<u16, SettingsError> {
    let Some(text) = text else {
        return Ok(DEFAULT_PORT);
    };
    text.parse::<u16>()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| SettingsError::InvalidValue {
            name: "port",
            value: text.to_owned(),
            expected: "a number from 1 to 65535",
        })
}

/// The host (a name, an address or a socket directory) and the address to
/// connect to instead of looking the name up, if one is given.
fn resolve_host(sources: &Sources<'_>, port: u16) -> Result<(Host, Option<IpAddr>), SettingsError> {
    let hostaddr = match sources.pick("hostaddr", "PGHOSTADDR") {
        Some(text) => {
            Some(
                text.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| SettingsError::InvalidValue {
                        name: "hostaddr",
                        value: text.to_owned(),
                        expected: "a numeric IPv4 or IPv6 address (a name goes in host)",
                    })?,
            )
        }
        None => None,
    };
    // As libpq: an address given means TCP to it, whatever host says.
    let host = match (sources.pick("host", "PGHOST"), hostaddr) {
        (Some(text), None) if text.starts_with('/') => Host::Socket(PathBuf::from(text)),
        (Some(text), Some(address)) if text.starts_with('/') => Host::Tcp(address.to_string()),
        (Some(text), _) => Host::Tcp(text.to_owned()),
        (None, Some(address)) => Host::Tcp(address.to_string()),
        (None, None) => Host::Socket(default_socket_directory(port)),
    };
    Ok((host, hostaddr))
}

/// The password from the connection string, else PGPASSWORD, else the
/// password file; a password file ignored for its permissions is noted.
fn resolve_password(
    sources: &Sources<'_>,
    host: &Host,
    port: u16,
    dbname: &str,
    user: &str,
    notes: &mut Vec<String>,
) -> Option<(Password, PasswordSource)> {
    if let Some(password) = sources.params.get("password") {
        return Some((Password(password.clone()), PasswordSource::ConnectionString));
    }
    if let Some(password) = sources.env.var("PGPASSWORD") {
        return Some((Password(password.to_owned()), PasswordSource::Environment));
    }
    let path = sources
        .params
        .get("passfile")
        .map(PathBuf::from)
        .or_else(|| sources.env.var("PGPASSFILE").map(PathBuf::from))
        .or_else(|| sources.env.home().map(|home| home.join(".pgpass")))?;
    match passfile::lookup(&path, &passfile_hosts(host), port, dbname, user) {
        PassfileLookup::Found {
            password,
            path,
            line,
        } => Some((Password(password), PasswordSource::Passfile { path, line })),
        PassfileLookup::Ignored(reason) => {
            tracing::warn!("{reason}");
            notes.push(reason);
            None
        }
        PassfileLookup::Absent | PassfileLookup::NoMatch => None,
    }
}

/// libpq: a timeout of zero (or less) means "wait forever"; below 2 s it uses 2 s.
fn parse_connect_timeout(text: &str) -> Result<Duration, SettingsError> {
    let seconds: i64 = text
        .trim()
        .parse()
        .map_err(|_| SettingsError::InvalidValue {
            name: "connect_timeout",
            value: text.to_owned(),
            expected: "a whole number of seconds",
        })?;
    Ok(match seconds {
        ..=0 => Duration::MAX,
        1 => Duration::from_secs(2),
        n => Duration::from_secs(n.unsigned_abs()),
    })
}

fn resolve_root_certificates(
    explicit: Option<&str>,
    sslmode: SslMode,
    tls_applies: bool,
    env: &Environment,
) -> Result<Option<RootCertificates>, SettingsError> {
    let verifying = tls_applies && matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    let roots = match explicit {
        Some("system") => return Ok(Some(RootCertificates::System)),
        Some(path) => RootCertificates::File(PathBuf::from(path)),
        None => {
            let Some(home) = env.home() else {
                return if verifying {
                    Err(SettingsError::NoHomeForRootCertificate {
                        mode: sslmode.name(),
                    })
                } else {
                    Ok(None)
                };
            };
            let default = home.join(".postgresql").join("root.crt");
            // As libpq: the default file is used when it exists, and demanded
            // by the verify modes.
            if !verifying && !default.is_file() {
                return Ok(None);
            }
            RootCertificates::File(default)
        }
    };
    // Checked here rather than when connecting, so that a missing file is
    // reported as the configuration mistake it is (prefer never verifies,
    // so it does not need the file).
    if let RootCertificates::File(path) = &roots
        && tls_applies
        && !matches!(sslmode, SslMode::Disable | SslMode::Prefer)
        && !path.exists()
    {
        return Err(SettingsError::MissingRootFile {
            mode: sslmode.name(),
            path: path.clone(),
        });
    }
    Ok(Some(roots))
}

fn default_socket_directory(port: u16) -> PathBuf {
    let socket_name = format!(".s.PGSQL.{port}");
    SOCKET_DIRECTORIES
        .iter()
        .map(Path::new)
        .find(|dir| dir.join(&socket_name).exists())
        .or_else(|| {
            SOCKET_DIRECTORIES
                .iter()
                .map(Path::new)
                .find(|dir| dir.is_dir())
        })
        .unwrap_or(Path::new(SOCKET_DIRECTORIES[0]))
        .to_path_buf()
}

/// The host names a password-file line may use for this host: the host as
/// given, and `localhost` for a connection over the default socket directory.
fn passfile_hosts(host: &Host) -> Vec<String> {
    match host {
        Host::Tcp(name) => vec![name.clone()],
        Host::Socket(dir) => {
            let mut names = vec![dir.display().to_string()];
            if SOCKET_DIRECTORIES
                .iter()
                .any(|default| Path::new(default) == dir)
            {
                names.push("localhost".to_owned());
            }
            names
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::with_vars(vars.iter().copied(), None)
    }

    #[test]
    fn connection_string_wins_over_environment_which_wins_over_defaults() {
        let environment = env(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
        ]);
        let settings = resolve(Some("postgres://urluser@urlhost/urldb"), &environment).unwrap();
        assert_eq!(settings.host, Host::Tcp("urlhost".into()));
        assert_eq!(settings.port, 6000, "unset in the URL, so from PGPORT");
        assert_eq!(settings.user, "urluser");
        assert_eq!(settings.dbname, "urldb");

        let settings = resolve(None, &environment).unwrap();
        assert_eq!(settings.to_string(), "envuser@envhost:6000/envdb");
    }

    #[test]
    fn database_defaults_to_user_and_application_name_to_pgm() {
        let settings = resolve(Some("host=h user=alice"), &env(&[])).unwrap();
        assert_eq!(settings.dbname, "alice");
        assert_eq!(settings.application_name, "pgm");
        assert_eq!(settings.sslmode, SslMode::Prefer);
        assert_eq!(settings.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn password_precedence_string_then_pgpassword() {
        let environment = env(&[("PGPASSWORD", "from-env")]);
        let settings = resolve(Some("postgres://u:from-url@h/db"), &environment).unwrap();
        let (password, source) = settings.password.unwrap();
        assert_eq!(
            (password.expose(), source),
            ("from-url", PasswordSource::ConnectionString)
        );
        let settings = resolve(Some("postgres://u@h/db"), &environment).unwrap();
        let (password, source) = settings.password.unwrap();
        assert_eq!(
            (password.expose(), source),
            ("from-env", PasswordSource::Environment)
        );
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let settings = resolve(Some("postgres://u:sekrit-value@h/db"), &env(&[])).unwrap();
        assert!(!format!("{settings:?}").contains("sekrit-value"));
        assert!(!settings.to_string().contains("sekrit-value"));
    }

    #[test]
    fn bad_values_are_named() {
        let err = resolve(Some("postgres://h:99999/db"), &env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid port \"99999\": expected a number from 1 to 65535"
        );
        let err = resolve(None, &env(&[("PGSSLMODE", "verify")])).unwrap_err();
        assert!(err.to_string().starts_with("invalid sslmode \"verify\""));
        let err = resolve(Some("host=h connect_timeout=soon"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("connect_timeout"));
        assert!(resolve(Some("host=h sslcert=/c"), &env(&[])).is_err());
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        assert_eq!(parse_connect_timeout("0").unwrap(), Duration::MAX);
        assert_eq!(parse_connect_timeout("1").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_connect_timeout("30").unwrap(),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn verify_modes_demand_the_default_root_file() {
        let home = tempfile::tempdir().unwrap();
        let environment = Environment::with_vars([], Some(home.path()));
        let default = home.path().join(".postgresql/root.crt");
        let err = resolve(Some("host=h sslmode=verify-full"), &environment).unwrap_err();
        assert!(
            matches!(&err, SettingsError::MissingRootFile { mode: "verify-full", path } if *path == default),
            "{err}"
        );
        assert!(err.to_string().contains("sslrootcert=system"), "{err}");
        let settings = resolve(Some("host=h sslmode=require"), &environment).unwrap();
        assert_eq!(settings.root_certificates, None);

        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(&default, "").unwrap();
        let settings = resolve(Some("host=h sslmode=verify-ca"), &environment).unwrap();
        assert_eq!(
            settings.root_certificates,
            Some(RootCertificates::File(default))
        );
    }

    #[test]
    fn verify_modes_without_a_home_say_what_to_set() {
        let homeless = Environment::with_vars([], None);
        for mode in ["verify-ca", "verify-full"] {
            let err = resolve(
                Some(&format!("postgres://u:sekrit@h/db?sslmode={mode}")),
                &homeless,
            )
            .unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, SettingsError::NoHomeForRootCertificate { .. }),
                "{text}"
            );
            assert!(
                text.starts_with(&format!("sslmode={mode} verifies")),
                "{text}"
            );
            for advice in ["sslrootcert=PATH", "PGSSLROOTCERT", "sslrootcert=system"] {
                assert!(text.contains(advice), "{text}");
            }
            assert!(!text.contains("sekrit"));
        }
        let settings = resolve(
            Some("host=h sslmode=verify-full sslrootcert=system"),
            &homeless,
        );
        assert_eq!(
            settings.unwrap().root_certificates,
            Some(RootCertificates::System)
        );
        let settings = resolve(Some("host=h sslmode=require"), &homeless).unwrap();
        assert_eq!(settings.root_certificates, None);
        let socket = resolve(Some("host=/tmp sslmode=verify-full"), &homeless).unwrap();
        assert_eq!(
            socket.root_certificates, None,
            "TLS never runs over a Unix socket"
        );
    }
}
