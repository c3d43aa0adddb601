//! A throwaway PgBouncer in front of a sandbox cluster: its configuration
//! and user list in a temporary directory, listening on a free loopback
//! port, connecting to the cluster over its Unix socket (which trusts local
//! connections, so no password is involved anywhere). Stopped and removed
//! when dropped; like the cluster, it is our child with a parent-death
//! signal, and a directory left by a killed process is swept by the next
//! start.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::{
    PORT_ATTEMPTS, Readiness, SUPERUSER, Sandbox, SandboxError, create_root, free_port, io_error,
    log_tail, server_account, spawn_kept, sweep_stale, temp_root,
};
use crate::db::settings::{ConnectionSettings, Endpoint, Host, SslMode};
use crate::os::{self, Account};

const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const LISTEN_ADDRESS: &str = "127.0.0.1";

pub(super) const PGBOUNCER_HINT: &str = "install PgBouncer (Debian/Ubuntu: apt-get install pgbouncer; \
    macOS: brew install pgbouncer), or set PGM_PGBOUNCER to the path of the pgbouncer binary";

/// When PgBouncer hands a client's server connection back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// When the client disconnects: the client has a session of its own.
    Session,
    /// When each transaction ends: session state stays behind on the
    /// server connection, for whichever client gets it next.
    Transaction,
    /// After each statement; transactions of several statements are refused.
    Statement,
}

impl PoolMode {
    pub fn name(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PgBouncerOptions {
    pub pool_mode: PoolMode,
    /// Server connections per database and user (`default_pool_size`).
    pub pool_size: u32,
    /// Hand out idle server connections in turn instead of the most recently
    /// released one first (`server_round_robin`).
    pub server_round_robin: bool,
}

impl PgBouncerOptions {
    pub fn new(pool_mode: PoolMode) -> Self {
        PgBouncerOptions {
            pool_mode,
            pool_size: 20,
            server_round_robin: false,
        }
    }
}

/// A running PgBouncer. Dropping it stops the process and removes its
/// directory.
#[derive(Debug)]
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    pid: u32,
    exit: Mutex<Option<Receiver<ExitStatus>>>,
    /// The cluster's superuser settings: everything but the address is the same.
    upstream: ConnectionSettings,
    options: PgBouncerOptions,
}

impl PgBouncer {
    /// Starts PgBouncer in front of `sandbox`, for every database of it.
    pub fn start(sandbox: &Sandbox, options: &PgBouncerOptions) -> Result<Self, SandboxError> {
        let binary = find_binary()?;
        // PgBouncer refuses to run as root, as PostgreSQL does; it runs as
        // the account that owns the cluster, which may use its socket.
        let run_as = server_account()?;
        let temp_root = temp_root();
        sweep_stale(&temp_root);
        let dir = create_root(&temp_root, run_as.as_ref())?;
        let cleanup = super::RemoveOnError(Some(dir.clone()));
        let users = dir.join("userlist.txt");
        write_owned(&users, &format!("\"{SUPERUSER}\" \"\"\n"), run_as.as_ref())?;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let config = dir.join("pgbouncer.ini");
            write_owned(
                &config,
                &config_text(sandbox, &dir, port, options),
                run_as.as_ref(),
            )?;
            match launch(&binary, &dir, &config, port, run_as.as_ref()) {
                Ok((pid, exit)) => {
                    std::mem::forget(cleanup);
                    tracing::debug!(port, mode = options.pool_mode.name(), "pgbouncer ready");
                    return Ok(PgBouncer {
                        dir,
                        port,
                        pid,
                        exit: Mutex::new(Some(exit)),
                        upstream: sandbox.settings("postgres"),
                        options: options.clone(),
                    });
                }
                Err(Launch::PortTaken) => continue,
                Err(Launch::Failed(error)) => return Err(error),
            }
        }
        Err(SandboxError::PgBouncerExited {
            status: format!("no free port after {PORT_ATTEMPTS} attempts"),
            log_tail: log_tail(&dir.join("pgbouncer.log")),
        })
    }

    /// Starts a PgBouncer that lives until the process exits, for a test
    /// binary sharing it between tests; stopped and removed at normal exit.
    pub fn start_for_process(
        sandbox: &Sandbox,
        options: &PgBouncerOptions,
    ) -> Result<&'static PgBouncer, SandboxError> {
        let pooler: &'static PgBouncer = Box::leak(Box::new(PgBouncer::start(sandbox, options)?));
        super::stop_at_exit(pooler);
        Ok(pooler)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &PgBouncerOptions {
        &self.options
    }

    /// Settings for the cluster's superuser through PgBouncer, over TCP.
    pub fn settings(&self, dbname: &str) -> ConnectionSettings {
        ConnectionSettings {
            endpoints: vec![Endpoint::new(
                Host::Tcp(LISTEN_ADDRESS.to_owned()),
                self.port,
            )],
            sslmode: SslMode::Disable,
            ..self.upstream.with_dbname(dbname)
        }
    }

    /// A connection string for the superuser through PgBouncer.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host={LISTEN_ADDRESS} port={} user={SUPERUSER} dbname={dbname} sslmode=disable",
            self.port
        )
    }

    /// Stops PgBouncer and removes its directory. Safe to call more than once.
    pub fn stop(&self) {
        let receiver = self
            .exit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(receiver) = receiver else {
            return;
        };
        // SIGTERM shuts PgBouncer down at once up to 1.22; later versions
        // wait for clients to leave, which the kill then cuts short.
        for signal in [libc::SIGTERM, libc::SIGKILL] {
            os::send_signal(self.pid, signal);
            match receiver.recv_timeout(STOP_TIMEOUT) {
                Ok(_) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => continue,
            }
        }
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(
                "could not remove the pgbouncer directory {}: {error}",
                self.dir.display()
            );
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `PGM_PGBOUNCER`, else `pgbouncer` on the PATH or in the directories
/// packages install it to (Debian's /usr/sbin is not on a user's PATH).
fn find_binary() -> Result<PathBuf, SandboxError> {
    if let Some(path) = std::env::var_os("PGM_PGBOUNCER").filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(SandboxError::BadPgBouncer(path))
        };
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    for dir in [
        "/usr/sbin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/opt/homebrew/bin",
    ] {
        if !dirs.iter().any(|known| known == Path::new(dir)) {
            dirs.push(PathBuf::from(dir));
        }
    }
    if let Some(found) = dirs
        .iter()
        .map(|dir| dir.join("pgbouncer"))
        .find(|path| is_executable(path))
    {
        return Ok(found);
    }
    Err(SandboxError::NoPgBouncer {
        searched: format!(
            "PGM_PGBOUNCER (unset), {}",
            dirs.iter()
                .map(|dir| dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn config_text(sandbox: &Sandbox, dir: &Path, port: u16, options: &PgBouncerOptions) -> String {
    format!(
        "\
[databases]
; Every database of the cluster, over its Unix socket (trusted locally).
* = host={socket_dir} port={cluster_port}

[pgbouncer]
listen_addr = {LISTEN_ADDRESS}
listen_port = {port}
; No Unix socket of its own: clients come over TCP.
unix_socket_dir =
logfile = {log}
; No passwords: the user only has to be listed.
auth_type = trust
auth_file = {users}
pool_mode = {mode}
default_pool_size = {pool_size}
server_round_robin = {round_robin}
max_client_conn = 200
; PgBouncer's usual setting: it refuses a client that sends `options`, as
; pgm does first (client_connection_check_interval); pgm then logs in
; without it and sets it in the session.
ignore_startup_parameters = extra_float_digits
",
        socket_dir = sandbox.socket_dir().display(),
        cluster_port = sandbox.port(),
        log = dir.join("pgbouncer.log").display(),
        users = dir.join("userlist.txt").display(),
        mode = options.pool_mode.name(),
        pool_size = options.pool_size,
        round_robin = u8::from(options.server_round_robin),
    )
}

fn write_owned(path: &Path, contents: &str, run_as: Option<&Account>) -> Result<(), SandboxError> {
    fs::write(path, contents).map_err(io_error(format!("writing {}", path.display())))?;
    if let Some(account) = run_as {
        os::chown(path, account).map_err(io_error(format!(
            "handing {} to {}",
            path.display(),
            account.name
        )))?;
    }
    Ok(())
}

enum Launch {
    PortTaken,
    Failed(SandboxError),
}

/// Starts PgBouncer and waits until a client gets through it to the cluster.
fn launch(
    binary: &Path,
    dir: &Path,
    config: &Path,
    port: u16,
    run_as: Option<&Account>,
) -> Result<(u32, Receiver<ExitStatus>), Launch> {
    let fail = Launch::Failed;
    // Its own log file gets everything after startup; stderr catches what
    // it says before it opens the file.
    let stderr_path = dir.join("stderr.log");
    let stderr = fs::File::create(&stderr_path)
        .map_err(io_error("creating stderr.log"))
        .map_err(fail)?;
    let mut command = Command::new(binary);
    command
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", "C")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    if let Some(account) = run_as {
        use std::os::unix::process::CommandExt;
        command.uid(account.uid).gid(account.gid).env("HOME", dir);
    }
    // PgBouncer has no use for a graceful end when its owner is gone, and
    // the meaning of SIGQUIT and SIGTERM changed across its versions.
    let (pid, exit) = spawn_kept(command, &format!("pgm-pgbouncer-{port}"), libc::SIGKILL)
        .map_err(io_error(format!("running {}", binary.display())))
        .map_err(fail)?;
    let logs = || {
        let mut text = log_tail(&stderr_path);
        let log = log_tail(&dir.join("pgbouncer.log"));
        if !log.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&log);
        }
        text
    };
    let mut probe = postgres::Config::new();
    probe
        .host(LISTEN_ADDRESS)
        .port(port)
        .user(SUPERUSER)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2));
    // Through to the cluster, not only PgBouncer's own login.
    let through = || {
        probe
            .connect(postgres::NoTls)
            .and_then(|mut client| client.simple_query("SELECT 1"))
            .is_ok()
    };
    match super::wait_until_ready(pid, &exit, through) {
        Readiness::Ready => Ok((pid, exit)),
        Readiness::Exited(status) => {
            let tail = logs();
            if tail.contains("Address already in use") {
                return Err(Launch::PortTaken);
            }
            Err(fail(SandboxError::PgBouncerExited {
                status,
                log_tail: tail,
            }))
        }
        Readiness::NotReady => Err(fail(SandboxError::PgBouncerNotReady { log_tail: logs() })),
    }
}

impl super::StopAtExit for PgBouncer {
    fn stop(&self) {
        PgBouncer::stop(self);
    }
}
