//! Connection settings, resolved in one place with libpq's precedence: the
//! connection string, then the connection service, then the PG* variables,
//! then the defaults; a password from any of them, else the password file,
//! looked up for each host.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::conninfo::{self, ConninfoError, Parameters, find_keyword};
use super::passfile::{self, PassfileLookup};
use super::service::{self, ServiceError, ServiceUsed};

pub const DEFAULT_APPLICATION_NAME: &str = "pgm";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_PORT: u16 = 5432;
/// The socket directory used when no host is given: the one Debian's,
/// Ubuntu's and Red Hat's libpq are built with. libpq tries no other.
pub const DEFAULT_SOCKET_DIRECTORY: &str = "/var/run/postgresql";

/// The process environment, captured once so that resolution is a pure
/// function (and tests can hand in their own). Its Debug shows names only:
/// PGPASSWORD is among the values.
#[derive(Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
    home: Option<PathBuf>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Environment")
            .field("names", &names)
            .field("home", &self.home)
            .finish()
    }
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

    /// The variable's value when it is set to something.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.raw_var(name).filter(|value| !value.is_empty())
    }

    /// The variable's value when it is set at all, even to "": libpq counts
    /// an empty variable as set.
    pub fn raw_var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
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

/// One server of the host list, with what is particular to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The server's name: where to connect, unless `hostaddr` is set; the
    /// name TLS verifies and the password file matches either way.
    pub host: Host,
    /// The numeric address to connect to, without a name lookup.
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    pub password: Option<(Password, PasswordSource)>,
}

impl Endpoint {
    pub fn new(host: Host, port: u16) -> Self {
        Endpoint {
            host,
            hostaddr: None,
            port,
            password: None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host)?;
        if let Some(address) = self
            .hostaddr
            .filter(|a| self.host != Host::Tcp(a.to_string()))
        {
            write!(f, " (address {address})")?;
        }
        write!(f, ":{}", self.port)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Which servers of the host list are acceptable, checked after connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

impl TargetSessionAttrs {
    pub fn name(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    Disable,
    Prefer,
    Require,
}

/// Where the root certificates for server verification come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCertificates {
    File(PathBuf),
    /// `sslrootcert=system`: the operating system's trust store.
    System,
}

/// TCP keepalive and user-timeout settings; None leaves the system's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keepalives {
    pub enabled: bool,
    pub idle: Option<Duration>,
    pub interval: Option<Duration>,
    pub count: Option<u32>,
    pub tcp_user_timeout: Option<Duration>,
}

/// TLS settings beyond the mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsOptions {
    pub root_certificates: Option<RootCertificates>,
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    pub revocation_lists: Vec<PathBuf>,
    /// sslcrldir was named: a certificate without a revocation list for its
    /// issuer is refused.
    pub revocation_required: bool,
    pub sni: bool,
    /// TLS 1.3 only (`ssl_min_protocol_version=TLSv1.3`).
    pub only_tls13: bool,
    /// TLS 1.2 only (`ssl_max_protocol_version=TLSv1.2`).
    pub only_tls12: bool,
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
    Service(PathBuf),
    Environment,
    Passfile { path: PathBuf, line: usize },
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::ConnectionString => f.write_str("the connection string"),
            PasswordSource::Service(path) => write!(f, "the service file {}", path.display()),
            PasswordSource::Environment => f.write_str("PGPASSWORD"),
            PasswordSource::Passfile { path, line } => write!(f, "{} line {line}", path.display()),
        }
    }
}

/// Everything needed to open a session. Its `Display` is the redacted target,
/// safe for logs and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// The servers to try, in order.
    pub endpoints: Vec<Endpoint>,
    pub user: String,
    pub dbname: String,
    pub sslmode: SslMode,
    pub tls: TlsOptions,
    pub channel_binding: ChannelBinding,
    /// Per host, as libpq.
    pub connect_timeout: Duration,
    pub application_name: String,
    pub options: Option<String>,
    /// None: not given, so the command decides.
    pub target_session_attrs: Option<TargetSessionAttrs>,
    pub load_balance_hosts: bool,
    pub keepalives: Keepalives,
    /// The OS user the server process must run as, over a Unix socket.
    pub require_peer: Option<String>,
    pub service: Option<ServiceUsed>,
    /// Things resolution noticed that the user should hear about when the
    /// connection fails (a password file ignored for its permissions, say).
    pub notes: Vec<String>,
}

impl fmt::Display for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@", self.user)?;
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{endpoint}")?;
        }
        write!(f, "/{}", self.dbname)
    }
}

impl ConnectionSettings {
    /// Settings for one server with every other setting at its default.
    pub fn new(endpoint: Endpoint, user: &str, dbname: &str) -> Self {
        ConnectionSettings {
            endpoints: vec![endpoint],
            user: user.to_owned(),
            dbname: dbname.to_owned(),
            sslmode: SslMode::Prefer,
            tls: TlsOptions {
                sni: true,
                ..TlsOptions::default()
            },
            channel_binding: ChannelBinding::Prefer,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            application_name: DEFAULT_APPLICATION_NAME.to_owned(),
            options: None,
            target_session_attrs: None,
            load_balance_hosts: false,
            keepalives: Keepalives {
                enabled: true,
                ..Keepalives::default()
            },
            require_peer: None,
            service: None,
            notes: Vec::new(),
        }
    }

    /// The same target with another database, for tools that create databases.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        ConnectionSettings {
            dbname: dbname.to_owned(),
            ..self.clone()
        }
    }

    /// The servers acceptable for this purpose: the user's choice if made,
    /// else `default`.
    pub fn with_default_target(mut self, default: TargetSessionAttrs) -> Self {
        self.target_session_attrs.get_or_insert(default);
        self
    }

    pub fn target(&self) -> TargetSessionAttrs {
        self.target_session_attrs.unwrap_or(TargetSessionAttrs::Any)
    }

    /// The same settings reduced to the one server a session reached, so
    /// that every further session of a run goes there too.
    pub fn pinned_to(&self, endpoint: &Endpoint) -> Self {
        ConnectionSettings {
            endpoints: vec![endpoint.clone()],
            target_session_attrs: Some(TargetSessionAttrs::Any),
            load_balance_hosts: false,
            ..self.clone()
        }
    }
}

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error(transparent)]
    Conninfo(#[from] ConninfoError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("invalid {name} \"{value}\": expected {expected}")]
    InvalidValue {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{name}={} is not supported by pgm: {why}", conninfo::redact(.value))]
    Unsupported {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(
        "{0} host names do not match {1} hostaddr values: give as many of each, in the same order"
    )]
    HostaddrCount(usize, usize),
    #[error(
        "sslmode=verify-full checks the server's certificate against the host name, and only hostaddr was given: add host=NAME (the name in the certificate) next to hostaddr, as libpq requires"
    )]
    NoHostToVerify,
    #[error("{0} port numbers do not match {1} hosts: give one port for all, or one per host")]
    PortCount(usize, usize),
    #[error(
        "no user name given and the current OS user cannot be found: set PGUSER or put a user in the URL"
    )]
    NoUser,
    #[error(
        "the client certificate {} exists but its key {} does not: give the key with sslkey=PATH (or PGSSLKEY)",
        cert.display(), key.display()
    )]
    MissingClientKey { cert: PathBuf, key: PathBuf },
    #[error(
        "the private key {} has group or world access (mode {mode:04o}): run chmod 0600 {} (0640 is allowed when root owns it)",
        path.display(), path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
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

fn invalid(name: &'static str, value: &str, expected: &'static str) -> SettingsError {
    SettingsError::InvalidValue {
        name,
        value: conninfo::redact(value),
        expected,
    }
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
    resolve_parameters(params, env)
}

/// Resolves the settings from the parameters of a parsed connection string.
pub(super) fn resolve_parameters(
    mut params: Parameters,
    env: &Environment,
) -> Result<ConnectionSettings, SettingsError> {
    let service_name = params
        .get("service")
        .cloned()
        .or_else(|| env.raw_var("PGSERVICE").map(str::to_owned));
    let service = match service_name {
        Some(name) => Some(service::fill(&mut params, &name, env)?),
        None => None,
    };
    let sources = Sources {
        params: &params,
        env,
        service: service.as_ref(),
    };
    refuse_unsupported(&sources)?;
    let user = match sources.get("user").filter(|user| !user.is_empty()) {
        Some(user) => user.to_owned(),
        None => crate::os::current_account()
            .map(|account| account.name)
            .ok_or(SettingsError::NoUser)?,
    };
    let dbname = sources
        .get("dbname")
        .filter(|dbname| !dbname.is_empty())
        .unwrap_or(&user)
        .to_owned();
    let sslmode = resolve_sslmode(&sources)?;
    let mut slots = resolve_endpoints(&sources)?;
    if sslmode == SslMode::VerifyFull
        && slots
            .iter()
            .any(|(endpoint, key)| endpoint.hostaddr.is_some() && key.named_by_address)
    {
        return Err(SettingsError::NoHostToVerify);
    }
    let mut notes = Vec::new();
    resolve_passwords(&sources, &mut slots, &user, &dbname, &mut notes);
    let mut endpoints: Vec<Endpoint> = slots.into_iter().map(|(endpoint, _)| endpoint).collect();
    let tls_applies = endpoints
        .iter()
        .any(|endpoint| matches!(endpoint.host, Host::Tcp(_)));
    let tls = resolve_tls(&sources, sslmode, tls_applies)?;
    let mut settings = ConnectionSettings::new(endpoints.remove(0), &user, &dbname);
    settings.endpoints.extend(endpoints);
    settings.sslmode = sslmode;
    settings.tls = tls;
    settings.channel_binding = resolve_channel_binding(&sources)?;
    settings.connect_timeout = match sources.get("connect_timeout") {
        Some(text) if !text.is_empty() => parse_connect_timeout(text)?,
        _ => DEFAULT_CONNECT_TIMEOUT,
    };
    // As libpq: an application_name given, even empty, leaves the fallback unused.
    settings.application_name = sources
        .get("application_name")
        .or_else(|| sources.get("fallback_application_name"))
        .unwrap_or(DEFAULT_APPLICATION_NAME)
        .to_owned();
    settings.options = startup_options(&sources);
    settings.target_session_attrs = resolve_target(&sources)?;
    settings.load_balance_hosts = resolve_load_balance(&sources)?;
    // As libpq, read only for TCP connections.
    if tls_applies {
        settings.keepalives = resolve_keepalives(&sources)?;
    }
    settings.require_peer = sources
        .get("requirepeer")
        .filter(|peer| !peer.is_empty())
        .map(str::to_owned);
    check_client_encoding(&sources, &mut notes);
    settings.service = service;
    settings.notes = notes;
    Ok(settings)
}

/// Where a setting comes from: the connection string (with the service's
/// values filled in), else its variable.
struct Sources<'a> {
    params: &'a Parameters,
    env: &'a Environment,
    service: Option<&'a ServiceUsed>,
}

impl Sources<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        if let Some(value) = self.params.get(name) {
            return Some(value);
        }
        let variable = find_keyword(name)?.variable?;
        self.env.raw_var(variable)
    }
}

/// A parameter pgm cannot honour with some values: which values, and why.
struct Unhonoured {
    name: &'static str,
    refused: fn(&str) -> bool,
    why: &'static str,
}

const UNHONOURED: &[Unhonoured] = &[
    Unhonoured {
        name: "replication",
        refused: |value| !matches!(value, "0" | "off" | "false" | "no" | "f" | "n"),
        why: "pgm opens ordinary sessions, never replication connections",
    },
    Unhonoured {
        name: "gssencmode",
        refused: |value| value == "require",
        why: "pgm has no GSSAPI encryption; use TLS (sslmode=verify-full)",
    },
    Unhonoured {
        name: "sslnegotiation",
        refused: |value| value != "postgres",
        why: "pgm negotiates TLS the PostgreSQL way (sslnegotiation=postgres)",
    },
    Unhonoured {
        name: "sslcertmode",
        refused: |value| value == "require",
        why: "pgm cannot tell whether the server asked for the certificate; use allow",
    },
    Unhonoured {
        name: "min_protocol_version",
        refused: |value| value != "3.0",
        why: "pgm speaks protocol 3.0",
    },
    Unhonoured {
        name: "require_auth",
        refused: |_| true,
        why: "pgm cannot restrict the server's authentication methods; use channel_binding=require to insist on SCRAM with channel binding",
    },
    Unhonoured {
        name: "sslkeylogfile",
        refused: |_| true,
        why: "pgm does not write TLS key logs",
    },
    Unhonoured {
        name: "scram_client_key",
        refused: |_| true,
        why: "pgm authenticates with passwords, not SCRAM keys",
    },
    Unhonoured {
        name: "scram_server_key",
        refused: |_| true,
        why: "pgm authenticates with passwords, not SCRAM keys",
    },
    Unhonoured {
        name: "oauth_issuer",
        refused: |_| true,
        why: "pgm has no OAuth authentication",
    },
    Unhonoured {
        name: "oauth_client_id",
        refused: |_| true,
        why: "pgm has no OAuth authentication",
    },
    Unhonoured {
        name: "oauth_client_secret",
        refused: |_| true,
        why: "pgm has no OAuth authentication",
    },
    Unhonoured {
        name: "oauth_scope",
        refused: |_| true,
        why: "pgm has no OAuth authentication",
    },
];

/// Parameters pgm cannot honour are refused by name, never ignored.
fn refuse_unsupported(sources: &Sources<'_>) -> Result<(), SettingsError> {
    if let Some(value) = sources
        .get("gssencmode")
        .filter(|value| !matches!(*value, "disable" | "prefer" | "require"))
    {
        return Err(invalid(
            "gssencmode",
            value,
            "one of disable, prefer, require",
        ));
    }
    for unhonoured in UNHONOURED {
        let Some(value) = sources
            .get(unhonoured.name)
            .filter(|value| !value.is_empty())
        else {
            continue;
        };
        if (unhonoured.refused)(value) {
            let secret = unhonoured.name.contains("key") || unhonoured.name.contains("secret");
            return Err(SettingsError::Unsupported {
                name: unhonoured.name,
                value: if secret {
                    "…".to_owned()
                } else {
                    value.to_owned()
                },
                why: unhonoured.why,
            });
        }
    }
    Ok(())
}

/// The host list with libpq's rules: `hostaddr`, `host` and `port` are
/// comma-separated lists; hostaddr and host counts must match; one port
/// serves every host; an empty entry means the default.
fn resolve_endpoints(sources: &Sources<'_>) -> Result<Vec<(Endpoint, PassfileKey)>, SettingsError> {
    let split = |name: &str| -> Vec<String> {
        match sources.get(name).filter(|value| !value.is_empty()) {
            Some(value) => value.split(',').map(str::to_owned).collect(),
            None => Vec::new(),
        }
    };
    let (hosts, addresses) = (split("host"), split("hostaddr"));
    let count = match (hosts.len(), addresses.len()) {
        (0, 0) => 1,
        (hosts, 0) => hosts,
        (0, addresses) => addresses,
        (hosts, addresses) if hosts == addresses => hosts,
        (hosts, addresses) => return Err(SettingsError::HostaddrCount(hosts, addresses)),
    };
    let ports = split("port");
    let ports = match ports.len() {
        0 => vec![String::new(); count],
        1 => vec![ports[0].clone(); count],
        n if n == count => ports,
        n => return Err(SettingsError::PortCount(n, count)),
    };
    (0..count)
        .map(|index| {
            let host = hosts.get(index).map(String::as_str).unwrap_or("");
            let address = addresses.get(index).map(String::as_str).unwrap_or("");
            let key = PassfileKey::new(host, address, &ports[index]);
            Ok((endpoint(host, address, &ports[index])?, key))
        })
        .collect()
}

fn endpoint(host: &str, address: &str, port: &str) -> Result<Endpoint, SettingsError> {
    let port = parse_port(port)?;
    let hostaddr = match address {
        "" => None,
        text => Some(text.parse::<IpAddr>().map_err(|_| {
            invalid(
                "hostaddr",
                text,
                "a numeric IPv4 or IPv6 address (a name goes in host)",
            )
        })?),
    };
    let host = match (host, hostaddr) {
        ("", Some(address)) => Host::Tcp(address.to_string()),
        ("", None) => Host::Socket(PathBuf::from(DEFAULT_SOCKET_DIRECTORY)),
        // As libpq: an address given means TCP to it, whatever host says.
        (dir, None) if dir.starts_with('/') => Host::Socket(PathBuf::from(dir)),
        (abstract_socket, None) if abstract_socket.starts_with('@') => {
            return Err(SettingsError::Unsupported {
                name: "host",
                value: abstract_socket.to_owned(),
                why: "abstract Unix sockets are not supported; give the socket's directory",
            });
        }
        (name, _) => Host::Tcp(name.to_owned()),
    };
    Ok(Endpoint {
        host,
        hostaddr,
        port,
        password: None,
    })
}

/// As libpq: surrounding blanks are allowed, an empty port is the default.
fn parse_port(text: &str) -> Result<u16, SettingsError> {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() && text.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    trimmed
        .strip_prefix('+')
        .unwrap_or(trimmed)
        .parse::<u16>()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| {
            match text
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_whitespace() || c == '+' || c == '-')
            {
                true => invalid("port", text, "a number from 1 to 65535"),
                // In a URL, text after a ':' may be a password whose '/' was
                // not encoded: never shown.
                false => invalid(
                    "port",
                    "(not shown: not a number)",
                    "a number from 1 to 65535",
                ),
            }
        })
}

/// The password from the connection string, the service or PGPASSWORD; when
/// none (or an empty one) is given, each host's line of the password file,
/// matched on the host and port as written.
fn resolve_passwords(
    sources: &Sources<'_>,
    endpoints: &mut [(Endpoint, PassfileKey)],
    user: &str,
    dbname: &str,
    notes: &mut Vec<String>,
) {
    if let Some(password) = sources
        .get("password")
        .filter(|password| !password.is_empty())
    {
        let source = match (sources.params.contains_key("password"), sources.service) {
            (true, Some(service)) if service.filled.contains(&"password") => {
                PasswordSource::Service(service.file.clone())
            }
            (true, _) => PasswordSource::ConnectionString,
            (false, _) => PasswordSource::Environment,
        };
        for (endpoint, _) in endpoints.iter_mut() {
            endpoint.password = Some((Password(password.to_owned()), source.clone()));
        }
        return;
    }
    let path = sources
        .get("passfile")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .or_else(|| sources.env.home().map(|home| home.join(".pgpass")));
    let Some(path) = path else {
        return;
    };
    for (endpoint, key) in endpoints.iter_mut() {
        match passfile::lookup(&path, &key.host, &key.port, dbname, user) {
            PassfileLookup::Found {
                password,
                path,
                line,
            } => {
                endpoint.password =
                    Some((Password(password), PasswordSource::Passfile { path, line }))
            }
            PassfileLookup::Ignored(reason) => {
                if !notes.contains(&reason) {
                    tracing::warn!("{reason}");
                    notes.push(reason);
                }
            }
            PassfileLookup::Absent | PassfileLookup::NoMatch => {}
        }
    }
}

/// What a password-file line must name for a host: the host as written (or
/// the address when only that was written), `localhost` for the default
/// socket directory; the port as written, 5432 when none was.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PassfileKey {
    host: String,
    port: String,
    /// Only an address was given for this host.
    named_by_address: bool,
}

impl PassfileKey {
    fn new(host: &str, address: &str, port: &str) -> Self {
        let named_by_address = host.is_empty() && !address.is_empty();
        let host = match (host, address) {
            ("", "") | (DEFAULT_SOCKET_DIRECTORY, _) => "localhost",
            ("", address) => address,
            (host, _) => host,
        };
        PassfileKey {
            named_by_address,
            host: host.to_owned(),
            port: if port.is_empty() {
                DEFAULT_PORT.to_string()
            } else {
                port.to_owned()
            },
        }
    }
}

fn resolve_sslmode(sources: &Sources<'_>) -> Result<SslMode, SettingsError> {
    let given = sources.get("sslmode").or_else(|| {
        sources
            .env
            .raw_var("PGREQUIRESSL")
            .filter(|value| value.starts_with('1'))
            .map(|_| "require")
    });
    let mode = match given {
        Some("disable") => SslMode::Disable,
        Some("allow") => SslMode::Allow,
        Some("prefer") => SslMode::Prefer,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        // As libpq 16+: the system's trust store implies checking the name.
        None if sources.get("sslrootcert") == Some("system") => SslMode::VerifyFull,
        None => SslMode::Prefer,
        Some(other) => {
            return Err(invalid(
                "sslmode",
                other,
                "one of disable, allow, prefer, require, verify-ca, verify-full",
            ));
        }
    };
    // As libpq 16+: the system's store holds every public CA, so only a
    // check of the name means anything.
    if sources.get("sslrootcert") == Some("system") && mode != SslMode::VerifyFull {
        return Err(SettingsError::Unsupported {
            name: "sslmode",
            value: mode.name().to_owned(),
            why: "with sslrootcert=system only verify-full is allowed, as in libpq 16 and later",
        });
    }
    Ok(mode)
}

fn resolve_channel_binding(sources: &Sources<'_>) -> Result<ChannelBinding, SettingsError> {
    Ok(match sources.get("channel_binding") {
        None | Some("prefer") => ChannelBinding::Prefer,
        Some("disable") => ChannelBinding::Disable,
        Some("require") => ChannelBinding::Require,
        Some(other) => {
            return Err(invalid(
                "channel_binding",
                other,
                "one of disable, prefer, require",
            ));
        }
    })
}

fn resolve_target(sources: &Sources<'_>) -> Result<Option<TargetSessionAttrs>, SettingsError> {
    use TargetSessionAttrs::*;
    Ok(Some(match sources.get("target_session_attrs") {
        None => return Ok(None),
        Some("any") => Any,
        Some("read-write") => ReadWrite,
        Some("read-only") => ReadOnly,
        Some("primary") => Primary,
        Some("standby") => Standby,
        Some("prefer-standby") => PreferStandby,
        Some(other) => {
            return Err(invalid(
                "target_session_attrs",
                other,
                "one of any, read-write, read-only, primary, standby, prefer-standby",
            ));
        }
    }))
}

fn resolve_load_balance(sources: &Sources<'_>) -> Result<bool, SettingsError> {
    match sources.get("load_balance_hosts") {
        None | Some("disable") => Ok(false),
        Some("random") => Ok(true),
        Some(other) => Err(invalid("load_balance_hosts", other, "disable or random")),
    }
}

/// An integer the way libpq's parse_int_param reads it: blanks around it
/// are allowed, nothing else.
fn parse_int(name: &'static str, text: &str, expected: &'static str) -> Result<i64, SettingsError> {
    text.trim_matches(|c: char| c.is_ascii_whitespace())
        .parse::<i64>()
        .ok()
        .filter(|value| i32::try_from(*value).is_ok())
        .ok_or_else(|| invalid(name, text, expected))
}

fn resolve_keepalives(sources: &Sources<'_>) -> Result<Keepalives, SettingsError> {
    let seconds = |name: &'static str| -> Result<Option<Duration>, SettingsError> {
        match sources.get(name).filter(|value| !value.is_empty()) {
            Some(text) => Ok(Some(Duration::from_secs(
                parse_int(name, text, "a whole number of seconds")?
                    .max(0)
                    .unsigned_abs(),
            ))),
            None => Ok(None),
        }
    };
    let enabled = match sources.get("keepalives").filter(|value| !value.is_empty()) {
        Some(text) => parse_int("keepalives", text, "0 or 1")? != 0,
        None => true,
    };
    let count = match sources
        .get("keepalives_count")
        .filter(|value| !value.is_empty())
    {
        Some(text) => Some(
            u32::try_from(parse_int("keepalives_count", text, "a whole number")?.max(0))
                .unwrap_or(0),
        ),
        None => None,
    };
    let tcp_user_timeout = match sources
        .get("tcp_user_timeout")
        .filter(|value| !value.is_empty())
    {
        Some(text) => Some(Duration::from_millis(
            parse_int("tcp_user_timeout", text, "a whole number of milliseconds")?
                .max(0)
                .unsigned_abs(),
        )),
        None => None,
    };
    Ok(Keepalives {
        enabled,
        idle: seconds("keepalives_idle")?,
        interval: seconds("keepalives_interval")?,
        count,
        tcp_user_timeout,
    })
}

/// libpq: a timeout of zero (or less) means "wait forever"; below 2 s it uses 2 s.
fn parse_connect_timeout(text: &str) -> Result<Duration, SettingsError> {
    Ok(
        match parse_int("connect_timeout", text, "a whole number of seconds")? {
            ..=0 => Duration::MAX,
            1 => Duration::from_secs(2),
            n => Duration::from_secs(n.unsigned_abs()),
        },
    )
}

/// `options`, plus the session settings libpq sends from PGDATESTYLE, PGTZ
/// and PGGEQO.
fn startup_options(sources: &Sources<'_>) -> Option<String> {
    let mut options: Vec<String> = sources
        .get("options")
        .filter(|options| !options.trim().is_empty())
        .map(str::to_owned)
        .into_iter()
        .collect();
    for (variable, setting) in [
        ("PGDATESTYLE", "datestyle"),
        ("PGTZ", "timezone"),
        ("PGGEQO", "geqo"),
    ] {
        if let Some(value) = sources
            .env
            .raw_var(variable)
            .filter(|value| !value.eq_ignore_ascii_case("default"))
        {
            options.push(format!("-c {setting}={}", escape_option_value(value)));
        }
    }
    (!options.is_empty()).then(|| options.join(" "))
}

/// The server splits `options` at blanks; a backslash keeps one.
fn escape_option_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii_whitespace() || c == '\\' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// pgm always speaks UTF8 to the server; another client encoding is said,
/// never silently dropped.
fn check_client_encoding(sources: &Sources<'_>, notes: &mut Vec<String>) {
    let Some(encoding) = sources
        .get("client_encoding")
        .filter(|value| !value.is_empty())
    else {
        return;
    };
    let normalized = encoding.to_ascii_lowercase().replace(['-', '_'], "");
    if !matches!(normalized.as_str(), "utf8" | "unicode" | "auto") {
        let note = format!(
            "client_encoding={encoding} is not applied: pgm always talks to the server in UTF8"
        );
        tracing::warn!("{note}");
        notes.push(note);
    }
}

fn resolve_tls(
    sources: &Sources<'_>,
    sslmode: SslMode,
    tls_applies: bool,
) -> Result<TlsOptions, SettingsError> {
    let postgresql_dir = sources.env.home().map(|home| home.join(".postgresql"));
    let root_certificates = resolve_root_certificates(
        sources.get("sslrootcert").filter(|value| !value.is_empty()),
        sslmode,
        tls_applies,
        postgresql_dir.as_deref(),
    )?;
    // As libpq, the client's files are read only when TLS may be used.
    let client_certificate = match tls_applies {
        true => resolve_client_certificate(sources, postgresql_dir.as_deref())?,
        false => None,
    };
    // As libpq: a missing sslcrl file is skipped; a revocation directory,
    // once named, demands a list for the server's issuer.
    let mut revocation_lists: Vec<PathBuf> = sources
        .get("sslcrl")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .filter(|path| path.exists())
        .into_iter()
        .collect();
    let crl_dir = sources.get("sslcrldir").filter(|dir| !dir.is_empty());
    if let Some(dir) = crl_dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.path())
                    .filter(|path| path.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        revocation_lists.extend(files);
    }
    let version = |name: &'static str| -> Result<Option<&str>, SettingsError> {
        match sources.get(name).filter(|value| !value.is_empty()) {
            None => Ok(None),
            Some(value @ ("TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3")) => Ok(Some(value)),
            Some(other) => Err(invalid(
                name,
                other,
                "one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3",
            )),
        }
    };
    let (min, max) = (
        version("ssl_min_protocol_version")?,
        version("ssl_max_protocol_version")?,
    );
    if let Some(max @ ("TLSv1" | "TLSv1.1")) = max {
        return Err(SettingsError::Unsupported {
            name: "ssl_max_protocol_version",
            value: max.to_owned(),
            why: "pgm speaks TLS 1.2 and 1.3 only",
        });
    }
    Ok(TlsOptions {
        root_certificates,
        client_certificate,
        revocation_lists,
        revocation_required: crl_dir.is_some(),
        sni: sources
            .get("sslsni")
            .is_none_or(|value| value.starts_with('1')),
        only_tls13: min == Some("TLSv1.3"),
        only_tls12: max == Some("TLSv1.2"),
    })
}

/// As libpq: the certificate is `sslcert` or ~/.postgresql/postgresql.crt and
/// is sent only when the file exists; its key must exist then.
fn resolve_client_certificate(
    sources: &Sources<'_>,
    postgresql_dir: Option<&Path>,
) -> Result<Option<(PathBuf, PathBuf)>, SettingsError> {
    if sources.get("sslcertmode") == Some("disable") {
        return Ok(None);
    }
    let path = |name: &str, default: &str| {
        sources
            .get(name)
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
            .or_else(|| postgresql_dir.map(|dir| dir.join(default)))
    };
    let (Some(cert), Some(key)) = (
        path("sslcert", "postgresql.crt"),
        path("sslkey", "postgresql.key"),
    ) else {
        return Ok(None);
    };
    if !cert.is_file() {
        return Ok(None);
    }
    if !key.is_file() {
        return Err(SettingsError::MissingClientKey { cert, key });
    }
    check_key_permissions(&key)?;
    Ok(Some((cert, key)))
}

/// As libpq: a private key others may read is refused; root may own one
/// its group reads (u=rw,g=r).
fn check_key_permissions(key: &Path) -> Result<(), SettingsError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = std::fs::metadata(key) else {
        return Ok(());
    };
    let mode = metadata.mode() & 0o777;
    let allowed = if metadata.uid() == 0 { 0o640 } else { 0o600 };
    if mode & !allowed != 0 {
        return Err(SettingsError::KeyPermissions {
            path: key.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn resolve_root_certificates(
    explicit: Option<&str>,
    sslmode: SslMode,
    tls_applies: bool,
    postgresql_dir: Option<&Path>,
) -> Result<Option<RootCertificates>, SettingsError> {
    let verifying = tls_applies && sslmode.verifies();
    let roots = match explicit {
        Some("system") => return Ok(Some(RootCertificates::System)),
        Some(path) => RootCertificates::File(PathBuf::from(path)),
        None => {
            let Some(dir) = postgresql_dir else {
                return if verifying {
                    Err(SettingsError::NoHomeForRootCertificate {
                        mode: sslmode.name(),
                    })
                } else {
                    Ok(None)
                };
            };
            let default = dir.join("root.crt");
            // As libpq: the default file is used when it exists, and demanded
            // by the verify modes.
            if !verifying && !default.is_file() {
                return Ok(None);
            }
            RootCertificates::File(default)
        }
    };
    // Checked here rather than when connecting, so that a missing file is
    // reported as the configuration mistake it is. As libpq, the modes that
    // do not demand verification verify only when the file exists.
    match &roots {
        RootCertificates::File(path) if !path.exists() && verifying => {
            Err(SettingsError::MissingRootFile {
                mode: sslmode.name(),
                path: path.clone(),
            })
        }
        RootCertificates::File(path) if !path.exists() => Ok(None),
        _ => Ok(Some(roots)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::with_vars(vars.iter().copied(), None)
    }

    #[test]
    fn string_beats_service_beats_variables_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let services = dir.path().join("services");
        std::fs::write(&services, "[app]\nport=7000\ndbname=servicedb\n").unwrap();
        let environment = Environment::with_vars(
            [
                ("PGHOST", "envhost"),
                ("PGPORT", "6000"),
                ("PGUSER", "envuser"),
                ("PGDATABASE", "envdb"),
                ("PGSERVICEFILE", services.to_str().unwrap()),
            ],
            None,
        );
        let settings = resolve(Some("postgres://urluser@urlhost/urldb"), &environment).unwrap();
        assert_eq!(settings.to_string(), "urluser@urlhost:6000/urldb");
        let settings = resolve(Some("service=app user=u"), &environment).unwrap();
        assert_eq!(settings.to_string(), "u@envhost:7000/servicedb");
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
        assert_eq!(settings.target_session_attrs, None);
        let settings = resolve(Some("host=h user=alice application_name=''"), &env(&[])).unwrap();
        assert_eq!(
            settings.application_name, "",
            "an empty name keeps the fallback unused"
        );
    }

    #[test]
    fn several_hosts_with_their_ports() {
        let settings = resolve(Some("host=a,/sock,,b port=1,2,,4 user=u"), &env(&[])).unwrap();
        assert_eq!(
            settings.to_string(),
            "u@a:1,/sock:2,/var/run/postgresql:5432,b:4/u"
        );
        let settings = resolve(Some("postgresql://u@a:1,b/db"), &env(&[])).unwrap();
        assert_eq!(settings.to_string(), "u@a:1,b:5432/db");
        let err = resolve(Some("host=a,b port=1,2,3 user=u"), &env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "3 port numbers do not match 2 hosts: give one port for all, or one per host"
        );
        let err = resolve(Some("host=a,b hostaddr=127.0.0.1 user=u"), &env(&[])).unwrap_err();
        assert!(matches!(err, SettingsError::HostaddrCount(2, 1)), "{err}");
    }

    #[test]
    fn password_precedence_string_then_pgpassword_and_empty_falls_through() {
        let environment = env(&[("PGPASSWORD", "from-env")]);
        let password = |text: &str| {
            let settings = resolve(Some(text), &environment).unwrap();
            settings.endpoints[0]
                .password
                .as_ref()
                .map(|(password, source)| (password.expose().to_owned(), source.clone()))
        };
        assert_eq!(
            password("postgres://u:from-url@h/db"),
            Some(("from-url".into(), PasswordSource::ConnectionString))
        );
        assert_eq!(
            password("postgres://u@h/db"),
            Some(("from-env".into(), PasswordSource::Environment))
        );
        assert_eq!(
            password("postgres://u:@h/db"),
            Some(("from-env".into(), PasswordSource::Environment)),
            "an empty URL password is not set"
        );
        assert_eq!(
            password("host=h user=u password=''"),
            None,
            "an empty password= keeps PGPASSWORD out, and no password file matched"
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
        let err = resolve(Some("postgres://u@h:99999/db"), &env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid port \"99999\": expected a number from 1 to 65535"
        );
        assert_eq!(parse_port("5432 ").unwrap(), 5432);
        let err = resolve(Some("user=u"), &env(&[("PGSSLMODE", "verify")])).unwrap_err();
        assert!(err.to_string().starts_with("invalid sslmode \"verify\""));
        let err = resolve(Some("user=u"), &env(&[("PGSSLMODE", "")])).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid sslmode \"\""),
            "an empty variable is set"
        );
        let err = resolve(Some("host=h user=u connect_timeout=soon"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("connect_timeout"));
        let err = resolve(Some("host=h user=u target_session_attrs=Any"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("target_session_attrs"), "{err}");
    }

    #[test]
    fn what_pgm_cannot_honour_is_refused_by_name() {
        for (text, name) in [
            ("user=u replication=database", "replication"),
            ("user=u gssencmode=require", "gssencmode"),
            ("user=u require_auth=scram-sha-256", "require_auth"),
            ("user=u sslnegotiation=direct", "sslnegotiation"),
        ] {
            let err = resolve(Some(text), &env(&[])).unwrap_err();
            assert!(
                matches!(&err, SettingsError::Unsupported { name: found, .. } if *found == name),
                "{text}: {err}"
            );
        }
        assert!(
            resolve(
                Some("user=u replication=false gssencmode=prefer"),
                &env(&[])
            )
            .is_ok()
        );
    }

    #[test]
    fn session_settings_from_the_environment_become_startup_options() {
        let environment = env(&[
            ("PGTZ", "Europe/Paris"),
            ("PGDATESTYLE", "ISO, DMY"),
            ("PGGEQO", "default"),
        ]);
        let settings = resolve(Some("user=u options='-c search_path=x'"), &environment).unwrap();
        assert_eq!(
            settings.options.as_deref(),
            Some("-c search_path=x -c datestyle=ISO,\\ DMY -c timezone=Europe/Paris")
        );
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        assert_eq!(parse_connect_timeout("0").unwrap(), Duration::MAX);
        assert_eq!(parse_connect_timeout("1").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_connect_timeout(" 30 ").unwrap(),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn verify_modes_demand_the_default_root_file() {
        let home = tempfile::tempdir().unwrap();
        let environment = Environment::with_vars([], Some(home.path()));
        let default = home.path().join(".postgresql/root.crt");
        let err = resolve(Some("host=h user=u sslmode=verify-full"), &environment).unwrap_err();
        assert!(
            matches!(&err, SettingsError::MissingRootFile { mode: "verify-full", path } if *path == default),
            "{err}"
        );
        assert!(err.to_string().contains("sslrootcert=system"), "{err}");
        let settings = resolve(Some("host=h user=u sslmode=require"), &environment).unwrap();
        assert_eq!(settings.tls.root_certificates, None);

        std::fs::create_dir(home.path().join(".postgresql")).unwrap();
        std::fs::write(&default, "").unwrap();
        let settings = resolve(Some("host=h user=u sslmode=verify-ca"), &environment).unwrap();
        assert_eq!(
            settings.tls.root_certificates,
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
            for advice in ["sslrootcert=PATH", "PGSSLROOTCERT", "sslrootcert=system"] {
                assert!(text.contains(advice), "{text}");
            }
            assert!(!text.contains("sekrit"));
        }
        let settings = resolve(Some("host=h user=u sslrootcert=system"), &homeless).unwrap();
        assert_eq!(settings.sslmode, SslMode::VerifyFull, "as libpq 16+");
        assert_eq!(
            settings.tls.root_certificates,
            Some(RootCertificates::System)
        );
        assert!(
            resolve(
                Some("host=h user=u sslrootcert=system sslmode=require"),
                &homeless
            )
            .is_err()
        );
        let socket = resolve(Some("host=/tmp user=u sslmode=verify-full"), &homeless).unwrap();
        assert_eq!(
            socket.tls.root_certificates, None,
            "TLS never runs over a Unix socket"
        );
    }
}
