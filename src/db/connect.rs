//! Opening a session the way libpq does: the hosts are tried in order (or
//! shuffled with load_balance_hosts=random), each with its own port, password
//! and connect timeout; a host that cannot be reached, is starting up, or is
//! not the kind target_session_attrs asks for, gives way to the next; a
//! server that refuses the login stops the search. When every host failed
//! for reasons that pass (a server starting, refused connections), the whole
//! list is tried again with jittered backoff until the connect timeout.

use std::time::{Duration, Instant};

use postgres::config::{ChannelBinding as ClientChannelBinding, SslMode as ClientSslMode};
use postgres::error::SqlState;
use postgres::{Client, NoTls};
use thiserror::Error;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::retry::Backoff;
use super::settings::{
    ChannelBinding, ConnectionSettings, Endpoint, Host, SslMode, TargetSessionAttrs,
};
use super::tls::{self, TlsSetupError};

/// A server starting up is usually there within a second or two.
const CONNECT_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    cap: Duration::from_secs(2),
};

/// Keeps a backend whose client has gone (pgm killed mid-statement) from
/// holding its locks until the statement ends: it notices within a second.
const CONNECTION_CHECK: &str = "-c client_connection_check_interval=1000";

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("cannot connect to {target}{}: {}{}", attempts_text(*.attempts, *.elapsed), failures_text(.failures), hints_text(.hints))]
    Failed {
        target: String,
        failures: Vec<HostFailure>,
        attempts: u32,
        elapsed: Duration,
        hints: Vec<String>,
    },
}

impl ConnectError {
    /// True when every host was reached and turned away only for being a
    /// standby (in recovery).
    pub fn only_standbys(&self) -> bool {
        match self {
            ConnectError::Failed { failures, .. } => {
                !failures.is_empty()
                    && failures
                        .iter()
                        .all(|failure| failure.kind == FailureKind::Standby)
            }
            ConnectError::Tls(_) => false,
        }
    }

    /// The SQLSTATE of the server's refusal, when one refused.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ConnectError::Failed { failures, .. } => failures
                .iter()
                .rev()
                .find_map(|failure| failure.sqlstate.as_deref()),
            ConnectError::Tls(_) => None,
        }
    }
}

/// Why one host of the list was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    /// `host:port` (`user@host:port` in errors), never a password.
    pub endpoint: String,
    pub reason: String,
    pub kind: FailureKind,
    pub sqlstate: Option<String>,
    /// What to do about it, when pgm knows.
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Not reachable, or starting up: the next host is tried, and the list
    /// again later.
    Unreachable,
    /// Reached, but a standby where a primary or writable server was wanted.
    Standby,
    /// Reached, but not the kind of server wanted for another reason.
    NotWanted,
    /// The server refused the login, or the setup is wrong: no other host is
    /// tried, as libpq.
    Refused,
}

fn attempts_text(attempts: u32, elapsed: Duration) -> String {
    match attempts {
        0 | 1 => String::new(),
        n => format!(
            " (gave up after {n} attempts in {:.1}s)",
            elapsed.as_secs_f64()
        ),
    }
}

fn failures_text(failures: &[HostFailure]) -> String {
    match failures {
        [only] => only.reason.clone(),
        several => several
            .iter()
            .map(|failure| format!("\n  {}: {}", failure.endpoint, failure.reason))
            .collect(),
    }
}

fn hints_text(hints: &[String]) -> String {
    hints
        .iter()
        .map(|hint| format!("\n  hint: {hint}"))
        .collect()
}

/// A session, and which server of the list it reached.
pub struct Connected {
    pub client: Client,
    pub endpoint: Endpoint,
    /// Why the hosts before it were passed over.
    pub passed_over: Vec<HostFailure>,
}

/// Connects, retrying what may pass until the settings' connect timeout.
pub fn connect(settings: &ConnectionSettings) -> Result<Client, ConnectError> {
    open(settings).map(|connected| connected.client)
}

/// Connects for a purpose: `default_target` applies unless the user chose
/// target_session_attrs. Returns the session and the settings pinned to the
/// server it reached, for the run's further sessions.
pub fn open_for(
    settings: &ConnectionSettings,
    default_target: TargetSessionAttrs,
) -> Result<(Client, ConnectionSettings), ConnectError> {
    let settings = settings.clone().with_default_target(default_target);
    let connected = open(&settings)?;
    let pinned = settings.pinned_to(&connected.endpoint);
    Ok((connected.client, pinned))
}

/// Connects and says which server it reached.
pub fn open(settings: &ConnectionSettings) -> Result<Connected, ConnectError> {
    let tls = tls::client_config(settings)?.map(MakeRustlsConnect::new);
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let failures = match try_hosts(settings, tls.as_ref()) {
            Ok(connected) => {
                tracing::debug!(target_db = %settings, endpoint = %connected.endpoint, attempts, "connected");
                return Ok(connected);
            }
            Err(failures) => failures,
        };
        let transient = failures
            .iter()
            .all(|failure| failure.kind == FailureKind::Unreachable);
        let remaining = settings.connect_timeout.saturating_sub(started.elapsed());
        if !transient || remaining.is_zero() {
            let failures = failures
                .into_iter()
                .map(|failure| HostFailure {
                    endpoint: format!("{}@{}", settings.user, failure.endpoint),
                    ..failure
                })
                .collect::<Vec<_>>();
            return Err(ConnectError::Failed {
                target: settings.to_string(),
                hints: hints(settings, &failures),
                failures,
                attempts,
                elapsed: started.elapsed(),
            });
        }
        let pause = CONNECT_BACKOFF.pause(attempts).min(remaining);
        let reasons = failures_text(&failures);
        if attempts == 1 {
            tracing::info!(
                "waiting for {settings} ({reasons}); retrying for up to {}",
                describe_timeout(settings.connect_timeout)
            );
        } else {
            tracing::debug!(
                attempts,
                "still cannot connect ({reasons}); next try in {} ms",
                pause.as_millis()
            );
        }
        std::thread::sleep(pause);
    }
}

/// One pass over the host list (two for prefer-standby: standbys first,
/// then any server).
fn try_hosts(
    settings: &ConnectionSettings,
    tls: Option<&MakeRustlsConnect>,
) -> Result<Connected, Vec<HostFailure>> {
    let mut order: Vec<&Endpoint> = settings.endpoints.iter().collect();
    if settings.load_balance_hosts {
        fastrand::shuffle(&mut order);
    }
    let passes = match settings.target() {
        TargetSessionAttrs::PreferStandby => {
            vec![TargetSessionAttrs::Standby, TargetSessionAttrs::Any]
        }
        other => vec![other],
    };
    let mut failures = Vec::new();
    for target in &passes {
        for endpoint in &order {
            match connect_endpoint(settings, endpoint, tls) {
                Ok(mut client) => match check_target(&mut client, *target) {
                    Ok(()) => {
                        return Ok(Connected {
                            client,
                            endpoint: (*endpoint).clone(),
                            passed_over: failures,
                        });
                    }
                    Err((reason, kind)) => failures.push(failure(endpoint, reason, kind, None)),
                },
                Err(refused) if refused.kind == FailureKind::Refused => {
                    failures.push(refused);
                    return Err(failures);
                }
                Err(other) => failures.push(other),
            }
        }
    }
    Err(failures)
}

fn failure(
    endpoint: &Endpoint,
    reason: String,
    kind: FailureKind,
    sqlstate: Option<String>,
) -> HostFailure {
    HostFailure {
        endpoint: endpoint.to_string(),
        reason,
        kind,
        sqlstate,
        hint: None,
    }
}

/// After connecting, as libpq: is this the kind of server asked for?
fn check_target(
    client: &mut Client,
    target: TargetSessionAttrs,
) -> Result<(), (String, FailureKind)> {
    use TargetSessionAttrs::*;
    if target == Any {
        return Ok(());
    }
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_is_in_recovery(), \
                    pg_catalog.current_setting('default_transaction_read_only')::bool",
            &[],
        )
        .map_err(|error| {
            (
                format!("checking target_session_attrs failed: {error}"),
                FailureKind::NotWanted,
            )
        })?;
    let (standby, read_only_default): (bool, bool) = (row.get(0), row.get(1));
    let read_only = standby || read_only_default;
    let standby_kind = if standby {
        FailureKind::Standby
    } else {
        FailureKind::NotWanted
    };
    match target {
        ReadWrite if read_only => Err((
            format!("session is read-only{}", standby_note(standby)),
            standby_kind,
        )),
        ReadOnly if !read_only => Err(("session is not read-only".into(), FailureKind::NotWanted)),
        Primary if standby => Err(("server is in hot standby mode".into(), FailureKind::Standby)),
        Standby | PreferStandby if !standby => Err((
            "server is not in hot standby mode".into(),
            FailureKind::NotWanted,
        )),
        _ => Ok(()),
    }
}

fn standby_note(standby: bool) -> &'static str {
    if standby {
        " (a standby in recovery)"
    } else {
        " (default_transaction_read_only is on)"
    }
}

/// One host: the socket peer check, then the login with the TLS fallbacks
/// of sslmode allow and prefer.
fn connect_endpoint(
    settings: &ConnectionSettings,
    endpoint: &Endpoint,
    tls: Option<&MakeRustlsConnect>,
) -> Result<Client, HostFailure> {
    if let (Host::Socket(dir), Some(required)) = (&endpoint.host, &settings.require_peer) {
        check_peer(dir, endpoint, required)?;
    }
    let tls = match endpoint.host {
        // As libpq, TLS is never attempted over a Unix socket.
        Host::Socket(_) => None,
        Host::Tcp(_) => tls,
    };
    let first = match (settings.sslmode, tls) {
        (SslMode::Allow, _) | (_, None) => Encryption::Plain,
        (SslMode::Prefer, Some(tls)) => Encryption::Preferred(tls),
        (_, Some(tls)) => Encryption::Required(tls),
    };
    let result = login(settings, endpoint, &first, true);
    let fallback = match (&first, &result, tls) {
        // allow: TLS only when the server refused the plain login.
        (Encryption::Plain, Err(error), Some(tls))
            if settings.sslmode == SslMode::Allow && is_server_refusal(error) =>
        {
            Some(Encryption::Required(tls))
        }
        // prefer: plain when the TLS handshake or a TLS login failed.
        (Encryption::Preferred(_), Err(error), _)
            if is_tls_failure(error) || is_server_refusal(error) =>
        {
            Some(Encryption::Plain)
        }
        _ => None,
    };
    let result = match fallback {
        Some(encryption) => login(settings, endpoint, &encryption, true),
        None => result,
    };
    result.map_err(|error| classify(&error, settings, endpoint))
}

enum Encryption<'a> {
    Plain,
    Preferred(&'a MakeRustlsConnect),
    Required(&'a MakeRustlsConnect),
}

fn login(
    settings: &ConnectionSettings,
    endpoint: &Endpoint,
    encryption: &Encryption<'_>,
    with_check_option: bool,
) -> Result<Client, postgres::Error> {
    let mut config = client_config(settings, endpoint, with_check_option);
    let result = match encryption {
        Encryption::Plain => config.ssl_mode(ClientSslMode::Disable).connect(NoTls),
        Encryption::Preferred(tls) => config
            .ssl_mode(ClientSslMode::Prefer)
            .connect((*tls).clone()),
        Encryption::Required(tls) => config
            .ssl_mode(ClientSslMode::Require)
            .connect((*tls).clone()),
    };
    match result {
        // A pooler that passes no startup options (PgBouncer without
        // ignore_startup_parameters) refuses ours. Without it: the server
        // would be checking the pooler's connection, which outlives pgm anyway.
        Err(error)
            if with_check_option && settings.options.is_none() && refuses_options(&error) =>
        {
            tracing::debug!(
                "the server end refused startup options (a pooler); logging in without them"
            );
            login(settings, endpoint, encryption, false)
        }
        other => other,
    }
}

fn refuses_options(error: &postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        db.message()
            .starts_with("unsupported startup parameter: options")
    })
}

fn is_server_refusal(error: &postgres::Error) -> bool {
    error
        .as_db_error()
        .is_some_and(|db| *db.code() != SqlState::CANNOT_CONNECT_NOW)
}

fn is_tls_failure(error: &postgres::Error) -> bool {
    error
        .to_string()
        .starts_with("error performing TLS handshake")
}

fn client_config(
    settings: &ConnectionSettings,
    endpoint: &Endpoint,
    with_check_option: bool,
) -> postgres::Config {
    let mut config = postgres::Config::new();
    match (&endpoint.host, endpoint.hostaddr) {
        // A socket path as the name of an address: libpq connects to the
        // address; the client would take the path for a socket.
        (Host::Tcp(name), Some(address)) if name.starts_with('/') => {
            config.host(&address.to_string())
        }
        (Host::Tcp(name), _) => config.host(name),
        (Host::Socket(dir), _) => config.host_path(dir),
    };
    if let Some(address) = endpoint.hostaddr {
        // Connects there; `host` stays the name TLS verifies.
        config.hostaddr(address);
    }
    config
        .port(endpoint.port)
        .user(&settings.user)
        .dbname(&settings.dbname)
        .application_name(&settings.application_name)
        .channel_binding(match settings.channel_binding {
            ChannelBinding::Disable => ClientChannelBinding::Disable,
            ChannelBinding::Prefer => ClientChannelBinding::Prefer,
            ChannelBinding::Require => ClientChannelBinding::Require,
        });
    if settings.connect_timeout < Duration::from_secs(u32::MAX.into()) {
        config.connect_timeout(settings.connect_timeout);
    }
    let keepalives = &settings.keepalives;
    config.keepalives(keepalives.enabled);
    if let Some(idle) = keepalives.idle {
        config.keepalives_idle(idle);
    }
    if let Some(interval) = keepalives.interval {
        config.keepalives_interval(interval);
    }
    if let Some(count) = keepalives.count {
        config.keepalives_retries(count);
    }
    if let Some(timeout) = keepalives.tcp_user_timeout {
        config.tcp_user_timeout(timeout);
    }
    // An empty password is never sent, as libpq: the server's request for
    // one then fails as "no password supplied".
    if let Some((password, _)) = endpoint
        .password
        .as_ref()
        .filter(|(p, _)| !p.expose().is_empty())
    {
        config.password(password.expose());
    }
    let options = match (&settings.options, with_check_option) {
        (Some(options), true) => Some(format!("{options} {CONNECTION_CHECK}")),
        (Some(options), false) => Some(options.clone()),
        (None, true) => Some(CONNECTION_CHECK.to_owned()),
        (None, false) => None,
    };
    if let Some(options) = options {
        config.options(&options);
    }
    config
}

/// requirepeer: the server process behind the socket must run as this OS user.
fn check_peer(
    dir: &std::path::Path,
    endpoint: &Endpoint,
    required: &str,
) -> Result<(), HostFailure> {
    let socket = dir.join(format!(".s.PGSQL.{}", endpoint.port));
    let refused = |reason: String| failure(endpoint, reason, FailureKind::Refused, None);
    match crate::os::socket_peer_user(&socket) {
        Ok(actual) if actual == required => Ok(()),
        Ok(actual) => Err(refused(format!(
            "requirepeer specifies \"{required}\", but the server runs as \"{actual}\""
        ))),
        Err(error)
            if error.kind() == std::io::ErrorKind::NotFound
                || error.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            Err(failure(
                endpoint,
                format!("no server on the socket {}: {error}", socket.display()),
                FailureKind::Unreachable,
                None,
            ))
        }
        Err(error) => Err(refused(format!(
            "cannot tell which user runs the server on {}: {error}",
            socket.display()
        ))),
    }
}

fn describe_timeout(timeout: Duration) -> String {
    if timeout == Duration::MAX {
        "ever (connect_timeout=0)".to_owned()
    } else {
        format!("{}s", timeout.as_secs())
    }
}

/// Why a login failed, and whether the next host may be tried.
fn classify(
    error: &postgres::Error,
    settings: &ConnectionSettings,
    endpoint: &Endpoint,
) -> HostFailure {
    let sqlstate = error.code().map(|code| code.code().to_owned());
    if let Some(db) = error.as_db_error() {
        let mut reason = db.message().to_owned();
        if let Some(detail) = db.detail() {
            reason.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            reason.push_str(&format!("\n  hint: {hint}"));
        }
        // Starting up or shutting down: the next host, and this one later.
        // Out of connection slots: over soon too.
        let kind =
            if [SqlState::CANNOT_CONNECT_NOW, SqlState::TOO_MANY_CONNECTIONS].contains(db.code()) {
                FailureKind::Unreachable
            } else {
                FailureKind::Refused
            };
        return failure(endpoint, reason, kind, sqlstate);
    }
    let reason = error_chain(error);
    let top = error.to_string();
    if top.starts_with("error performing TLS handshake")
        || reason.contains("server does not support TLS")
    {
        let mut refused = failure(endpoint, reason, FailureKind::Refused, sqlstate);
        refused.hint = tls_hint(error, &refused.reason, settings, endpoint);
        return refused;
    }
    let kind =
        if top.starts_with("authentication error") || top.starts_with("invalid configuration") {
            FailureKind::Refused
        } else {
            FailureKind::Unreachable
        };
    failure(endpoint, reason, kind, sqlstate)
}

/// What to do about the failures, once.
fn hints(settings: &ConnectionSettings, failures: &[HostFailure]) -> Vec<String> {
    let mut hints = Vec::new();
    let auth_failed = failures.iter().any(|failure| {
        matches!(failure.sqlstate.as_deref(), Some("28000" | "28P01"))
            || failure.reason.starts_with("authentication error")
            || failure.reason.starts_with("invalid configuration")
    });
    if auth_failed {
        hints.push(password_hint(settings));
        hints.extend(settings.notes.iter().cloned());
    }
    if failures
        .iter()
        .any(|failure| failure.sqlstate.as_deref() == Some("3D000"))
    {
        hints.push(
            "create the database first, or name an existing one in the URL or PGDATABASE".into(),
        );
    }
    hints.extend(failures.iter().filter_map(|failure| failure.hint.clone()));
    let socket_missing = failures
        .iter()
        .any(|failure| failure.kind == FailureKind::Unreachable);
    for endpoint in &settings.endpoints {
        if let Host::Socket(dir) = &endpoint.host
            && socket_missing
            && settings.endpoints.len() == 1
        {
            hints.push(format!(
                "no server answered on the Unix socket {}/.s.PGSQL.{}; set PGHOST/PGPORT or a URL if the server is elsewhere",
                dir.display(),
                endpoint.port
            ));
        }
    }
    if failures
        .iter()
        .any(|failure| matches!(failure.kind, FailureKind::Standby | FailureKind::NotWanted))
    {
        hints.push(format!(
            "target_session_attrs={}: {}",
            settings.target().name(),
            "list the server you want among the hosts, or choose another target_session_attrs"
        ));
    }
    hints.dedup();
    hints
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn password_hint(settings: &ConnectionSettings) -> String {
    let sources: Vec<String> = settings
        .endpoints
        .iter()
        .filter_map(|endpoint| endpoint.password.as_ref())
        .map(|(_, source)| source.to_string())
        .collect();
    match sources.first() {
        Some(source) => format!("the password came from {source}"),
        None => {
            "no password was given: put one in the URL, PGPASSWORD or a ~/.pgpass line (chmod 0600)"
                .into()
        }
    }
}

fn tls_hint(
    error: &postgres::Error,
    reason: &str,
    settings: &ConnectionSettings,
    endpoint: &Endpoint,
) -> Option<String> {
    use rustls::CertificateError as Cert;
    if reason.contains("server does not support TLS") {
        return Some(format!(
            "the server does not offer TLS but sslmode={} requires it: enable ssl on the server, or use sslmode=prefer or disable",
            settings.sslmode.name()
        ));
    }
    Some(match rustls_error(error)? {
        rustls::Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            format!(
                "the server's certificate does not name \"{}\": connect with the host name written in the certificate, or use sslmode=verify-ca",
                endpoint.host
            )
        }
        rustls::Error::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature) => {
            "the server's certificate is not signed by a trusted root: check sslrootcert (or PGSSLROOTCERT)".into()
        }
        rustls::Error::InvalidCertificate(
            Cert::Expired | Cert::ExpiredContext { .. } | Cert::NotValidYet | Cert::NotValidYetContext { .. },
        ) => "the server's certificate is outside its validity period".into(),
        rustls::Error::InvalidCertificate(Cert::Revoked) => {
            "the server's certificate is revoked by the list in sslcrl (or sslcrldir)".into()
        }
        _ => return None,
    })
}

/// The rustls error behind a failed handshake; tokio-rustls wraps it in an
/// io::Error, whose own `source` skips it.
fn rustls_error(error: &postgres::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        let inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(found) = inner.and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return Some(found);
        }
        cause = current.source();
    }
    None
}
