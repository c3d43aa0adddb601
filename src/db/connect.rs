//! Opening a session: one attempt is built from the resolved settings; failures
//! that may pass (server starting, refused, timed out) are retried with
//! jittered backoff until the connect timeout; the rest fail at once with the
//! reason and what to do.

use std::time::{Duration, Instant};

use postgres::config::SslMode as ClientSslMode;
use postgres::error::SqlState;
use postgres::{Client, NoTls};
use thiserror::Error;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::retry::Backoff;
use super::settings::{ConnectionSettings, Host, PasswordSource, SslMode};
use super::tls::{self, TlsSetupError};

/// A server starting up is usually there within a second or two.
const CONNECT_BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    cap: Duration::from_secs(2),
};

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("cannot connect to {target}{}: {reason}{}", attempts_text(*.attempts, *.elapsed), hints_text(.hints))]
    Failed {
        target: String,
        reason: String,
        sqlstate: Option<String>,
        attempts: u32,
        elapsed: Duration,
        hints: Vec<String>,
    },
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

fn hints_text(hints: &[String]) -> String {
    hints
        .iter()
        .map(|hint| format!("\n  hint: {hint}"))
        .collect()
}

/// Connects, retrying what may pass until the settings' connect timeout.
pub fn connect(settings: &ConnectionSettings) -> Result<Client, ConnectError> {
    let tls = match settings.host {
        // As libpq, TLS is never attempted over a Unix socket: the server
        // refuses it there, and the socket is local anyway.
        Host::Socket(_) => None,
        Host::Tcp(_) => tls::client_config(settings)?.map(MakeRustlsConnect::new),
    };
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = settings.connect_timeout.saturating_sub(started.elapsed());
        let config = client_config(settings, remaining);
        let result = match &tls {
            Some(tls) => config.connect(tls.clone()),
            None => config.connect(NoTls),
        };
        let error = match result {
            Ok(client) => {
                tracing::debug!(target_db = %settings, attempts, "connected");
                return Ok(client);
            }
            Err(error) => error,
        };
        let failure = Failure::classify(&error, settings);
        let remaining = settings.connect_timeout.saturating_sub(started.elapsed());
        if !failure.transient || remaining.is_zero() {
            return Err(ConnectError::Failed {
                target: settings.to_string(),
                reason: failure.reason,
                sqlstate: error.code().map(|code| code.code().to_owned()),
                attempts,
                elapsed: started.elapsed(),
                hints: failure.hints,
            });
        }
        let pause = CONNECT_BACKOFF.pause(attempts).min(remaining);
        if attempts == 1 {
            tracing::info!(
                "waiting for {settings} ({}); retrying for up to {}",
                failure.reason,
                describe_timeout(settings.connect_timeout)
            );
        } else {
            tracing::debug!(
                attempts,
                "still cannot connect ({}); next try in {} ms",
                failure.reason,
                pause.as_millis()
            );
        }
        std::thread::sleep(pause);
    }
}

fn describe_timeout(timeout: Duration) -> String {
    if timeout == Duration::MAX {
        "ever (connect_timeout=0)".to_owned()
    } else {
        format!("{}s", timeout.as_secs())
    }
}

fn client_config(settings: &ConnectionSettings, attempt_timeout: Duration) -> postgres::Config {
    let mut config = postgres::Config::new();
    match &settings.host {
        Host::Tcp(name) => config.host(name),
        Host::Socket(dir) => config.host_path(dir),
    };
    if let Some(address) = settings.hostaddr {
        // Connects there; `host` stays the name TLS verifies.
        config.hostaddr(address);
    }
    config
        .port(settings.port)
        .user(&settings.user)
        .dbname(&settings.dbname)
        .application_name(&settings.application_name)
        .ssl_mode(client_ssl_mode(settings));
    if attempt_timeout < Duration::from_secs(u32::MAX.into()) {
        // Below a second the client would treat it as "no timeout".
        config.connect_timeout(attempt_timeout.max(Duration::from_secs(1)));
    }
    if let Some((password, _)) = &settings.password {
        config.password(password.expose());
    }
    // A backend whose client has gone (pgm killed mid-statement) notices it
    // within a second and rolls back, instead of holding its locks until the
    // statement ends on its own. A startup option, so RESET ALL keeps it.
    let check = "-c client_connection_check_interval=1000";
    let options = match &settings.options {
        Some(options) => format!("{options} {check}"),
        None => check.to_owned(),
    };
    config.options(&options);
    config
}

fn client_ssl_mode(settings: &ConnectionSettings) -> ClientSslMode {
    match (&settings.host, settings.sslmode) {
        (Host::Socket(_), _) | (_, SslMode::Disable) => ClientSslMode::Disable,
        (_, SslMode::Prefer) => ClientSslMode::Prefer,
        (_, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull) => ClientSslMode::Require,
    }
}

struct Failure {
    reason: String,
    transient: bool,
    hints: Vec<String>,
}

impl Failure {
    fn classify(error: &postgres::Error, settings: &ConnectionSettings) -> Failure {
        if let Some(db) = error.as_db_error() {
            let code = db.code();
            let mut reason = db.message().to_owned();
            if let Some(detail) = db.detail() {
                reason.push_str(&format!(" ({detail})"));
            }
            let mut hints: Vec<String> = db.hint().map(str::to_owned).into_iter().collect();
            // Starting up, shutting down or out of connection slots: over soon.
            let transient =
                [SqlState::CANNOT_CONNECT_NOW, SqlState::TOO_MANY_CONNECTIONS].contains(code);
            if [
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                SqlState::INVALID_PASSWORD,
            ]
            .contains(code)
            {
                hints.push(password_hint(settings));
                hints.extend(settings.notes.iter().cloned());
            }
            if *code == SqlState::INVALID_CATALOG_NAME {
                hints.push(
                    "create the database first, or name an existing one in the URL or PGDATABASE"
                        .into(),
                );
            }
            return Failure {
                reason,
                transient,
                hints,
            };
        }
        let reason = error_chain(error);
        let top = error.to_string();
        if top.starts_with("error performing TLS handshake") {
            return Failure {
                hints: tls_hints(error, &reason, settings),
                reason,
                transient: false,
            };
        }
        if top.starts_with("authentication error") || top.starts_with("invalid configuration") {
            let mut hints = vec![password_hint(settings)];
            hints.extend(settings.notes.iter().cloned());
            return Failure {
                reason,
                transient: false,
                hints,
            };
        }
        let mut hints = Vec::new();
        if let Host::Socket(dir) = &settings.host {
            hints.push(format!(
                "no server answered on the Unix socket {}/.s.PGSQL.{}; set PGHOST/PGPORT or a URL if the server is elsewhere",
                dir.display(),
                settings.port
            ));
        }
        Failure {
            reason,
            transient: true,
            hints,
        }
    }
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
    match &settings.password {
        Some((_, source @ PasswordSource::Passfile { .. })) => {
            format!("the password came from {source}")
        }
        Some((_, source)) => format!("the password came from {source}"),
        None => {
            "no password was given: put one in the URL, PGPASSWORD or a ~/.pgpass line (chmod 0600)"
                .into()
        }
    }
}

fn tls_hints(error: &postgres::Error, reason: &str, settings: &ConnectionSettings) -> Vec<String> {
    use rustls::CertificateError as Cert;
    if reason.contains("server does not support TLS") {
        return vec![format!(
            "the server does not offer TLS but sslmode={} requires it: enable ssl on the server, or use sslmode=prefer or disable",
            settings.sslmode.name()
        )];
    }
    let hint = match rustls_error(error) {
        Some(rustls::Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. })) => {
            format!(
                "the server's certificate does not name \"{}\": connect with the host name written in the certificate, or use sslmode=verify-ca",
                settings.host
            )
        }
        Some(rustls::Error::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature)) => {
            "the server's certificate is not signed by a trusted root: check sslrootcert (or PGSSLROOTCERT)".into()
        }
        Some(rustls::Error::InvalidCertificate(
            Cert::Expired | Cert::ExpiredContext { .. } | Cert::NotValidYet | Cert::NotValidYetContext { .. },
        )) => "the server's certificate is outside its validity period".into(),
        _ => return Vec::new(),
    };
    vec![hint]
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
