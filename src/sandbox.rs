//! A throwaway PostgreSQL cluster: initdb into a temporary directory, a server
//! on a Unix socket there and on a free loopback port, everything stopped and
//! removed when the `Sandbox` is dropped. Used by the test suite and by
//! `pgm demo`. `pgbouncer` puts a throwaway PgBouncer in front of one.
//!
//! The server is our own child process (not daemonized by pg_ctl), started
//! with a parent-death signal, so it cannot outlive us even when we are
//! killed; directories left by a killed process are swept by the next start.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::db::settings::{ConnectionSettings, Endpoint, Host, SslMode};
use crate::os::{self, Account};

pub mod citus;
pub mod pgbouncer;

pub use pgbouncer::{PgBouncer, PgBouncerOptions, PoolMode};

pub const SUPERUSER: &str = "postgres";
const DIR_PREFIX: &str = "pgm-sandbox-";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 5;

const INSTALL_HINT: &str = "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; \
    macOS: brew install postgresql), or set PGM_PG_BINDIR to a directory holding initdb and postgres \
    (scripts/pg-versions fetches them for any version)";

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("no PostgreSQL server binaries found (looked in {searched}): {INSTALL_HINT}")]
    NoBinaries { searched: String },
    #[error("PGM_PG_BINDIR={} holds no initdb and postgres: {INSTALL_HINT}", .0.display())]
    BadBinDir(PathBuf),
    #[error(
        "running as root needs a non-root account to run PostgreSQL, and neither \"postgres\" nor \"nobody\" exists: create one (useradd --system postgres)"
    )]
    NoServerAccount,
    #[error("{action} failed: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}); its output ends with:\n{log_tail}")]
    CommandFailed {
        program: String,
        status: String,
        log_tail: String,
    },
    #[error("the sandbox server did not become ready within {}s; its log ends with:\n{log_tail}", READY_TIMEOUT.as_secs())]
    NotReady { log_tail: String },
    #[error("the sandbox server exited at startup ({status}); its log ends with:\n{log_tail}")]
    ServerExited { status: String, log_tail: String },
    #[error(
        "no pgbouncer binary found (looked in {searched}): {}",
        pgbouncer::PGBOUNCER_HINT
    )]
    NoPgBouncer { searched: String },
    #[error("PGM_PGBOUNCER={} is not an executable file: {}", .0.display(), pgbouncer::PGBOUNCER_HINT)]
    BadPgBouncer(PathBuf),
    #[error("pgbouncer did not let a client through to the cluster within {}s; its log ends with:\n{log_tail}", READY_TIMEOUT.as_secs())]
    PgBouncerNotReady { log_tail: String },
    #[error("pgbouncer exited at startup ({status}); its log ends with:\n{log_tail}")]
    PgBouncerExited { status: String, log_tail: String },
}

fn io_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let action = action.into();
    move |source| SandboxError::Io { action, source }
}

/// Debian's `/usr/lib/postgresql/<major>/bin` directories, newest first.
pub(crate) fn debian_bindirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    dirs.sort();
    dirs.into_iter().rev().map(|(_, dir)| dir).collect()
}

/// Where initdb and postgres live, and which version they are.
#[derive(Debug, Clone)]
pub struct ServerBinaries {
    pub bindir: PathBuf,
    /// As `postgres --version` prints it, e.g. "15.18".
    pub version: String,
    pub major: u32,
}

impl ServerBinaries {
    /// `PGM_PG_BINDIR`, then `pg_config --bindir`, then the newest
    /// `/usr/lib/postgresql/*/bin`.
    pub fn find() -> Result<Self, SandboxError> {
        if let Some(dir) = std::env::var_os("PGM_PG_BINDIR").filter(|dir| !dir.is_empty()) {
            let dir = PathBuf::from(dir);
            return Self::at(&dir).ok_or(SandboxError::BadBinDir(dir));
        }
        let from_pg_config = Command::new("pg_config")
            .arg("--bindir")
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
        if let Some(found) = from_pg_config.as_deref().and_then(Self::at) {
            return Ok(found);
        }
        if let Some(found) = debian_bindirs().iter().find_map(|dir| Self::at(dir)) {
            return Ok(found);
        }
        let mut searched = vec!["PGM_PG_BINDIR (unset)".to_owned()];
        searched.push(match from_pg_config {
            Some(dir) => format!("pg_config --bindir ({})", dir.display()),
            None => "pg_config (not found)".to_owned(),
        });
        searched.push("/usr/lib/postgresql/*/bin".to_owned());
        Err(SandboxError::NoBinaries {
            searched: searched.join(", "),
        })
    }

    pub(crate) fn at(dir: &Path) -> Option<Self> {
        if !dir.join("initdb").is_file() || !dir.join("postgres").is_file() {
            return None;
        }
        let output = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let version = text.split_whitespace().nth(2)?.to_owned();
        let major = version.split(['.', 'b', 'r']).next()?.parse().ok()?;
        Some(ServerBinaries {
            bindir: dir.to_path_buf(),
            version,
            major,
        })
    }
}

/// Server certificate and key (PEM) to turn TLS on.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub certificate_pem: String,
    pub key_pem: String,
}

#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    pub tls: Option<ServerTls>,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// Start as a hot standby (in recovery, read-only) with no primary: the
    /// server a replica connection string leads to.
    pub standby: bool,
    /// More directories for the server's Unix socket, besides the sandbox
    /// root (which stays first). They must exist and be writable by the
    /// server's account.
    pub extra_socket_dirs: Vec<PathBuf>,
    /// SQL statements, one per line, run in single-user mode after initdb
    /// and before the server starts: how a standby, which refuses writes
    /// once up, gets its roles and databases.
    pub setup_sql: Vec<String>,
    /// Binaries to run instead of those `ServerBinaries::find` picks: for a
    /// test that needs one version's extension, say.
    pub bindir: Option<PathBuf>,
    /// Environment for `postgres` (the server, and the single-user run of
    /// `setup_sql`), added to the little it otherwise gets: the server's
    /// environment is cleared so that nothing of ours leaks into it, and
    /// this is how something deliberate goes in, such as a preloaded
    /// library that fakes the clock. initdb does not get it.
    pub server_env: Vec<(OsString, OsString)>,
    /// Trust connections over the loopback address too (not only over the
    /// Unix socket): how the nodes of a Citus cluster reach one another.
    pub trust_loopback: bool,
}

/// A process a test binary leaves running until it exits.
pub(crate) trait StopAtExit: Sync {
    fn stop(&self);
}

/// Stops `item` at normal exit (and at exit after failed tests), the last
/// registered first: a pooler before the cluster behind it.
pub(crate) fn stop_at_exit(item: &'static dyn StopAtExit) {
    static AT_EXIT: OnceLock<Mutex<Vec<&'static dyn StopAtExit>>> = OnceLock::new();
    extern "C" fn stop_all() {
        let _ = std::panic::catch_unwind(|| {
            if let Some(list) = AT_EXIT.get() {
                let list = list.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                list.iter().rev().for_each(|item| item.stop());
            }
        });
    }
    let list = AT_EXIT.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function that never unwinds.
        unsafe { libc::atexit(stop_all) };
        Mutex::new(Vec::new())
    });
    list.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(item);
}

impl StopAtExit for Sandbox {
    fn stop(&self) {
        Sandbox::stop(self);
    }
}

/// A running throwaway cluster. Dropping it stops the server and removes its
/// directory.
#[derive(Debug)]
pub struct Sandbox {
    root: PathBuf,
    binaries: ServerBinaries,
    port: u16,
    server_pid: u32,
    server_exit: Mutex<Option<Receiver<ExitStatus>>>,
    startup: Duration,
}

impl Sandbox {
    pub fn start() -> Result<Self, SandboxError> {
        Self::start_with(&SandboxOptions::default())
    }

    pub fn start_with(options: &SandboxOptions) -> Result<Self, SandboxError> {
        let started = Instant::now();
        let binaries = match &options.bindir {
            Some(dir) => {
                ServerBinaries::at(dir).ok_or_else(|| SandboxError::BadBinDir(dir.clone()))?
            }
            None => ServerBinaries::find()?,
        };
        let run_as = server_account()?;
        let temp_root = temp_root();
        sweep_stale(&temp_root);
        let root = create_root(&temp_root, run_as.as_ref())?;
        // From here on, a failure must not leave the directory behind.
        let cleanup = RemoveOnError(Some(root.clone()));
        initdb(&binaries, &root, options.trust_loopback, run_as.as_ref())?;
        if !options.setup_sql.is_empty() {
            run_setup_sql(&binaries, &root, options, run_as.as_ref())?;
        }
        if let Some(tls) = &options.tls {
            write_server_tls(&root, tls, run_as.as_ref())?;
        }
        if options.standby {
            let signal = root.join("data").join("standby.signal");
            fs::write(&signal, "").map_err(io_error(format!("writing {}", signal.display())))?;
            if let Some(account) = run_as.as_ref() {
                os::chown(&signal, account).map_err(io_error(format!(
                    "handing {} to {}",
                    signal.display(),
                    account.name
                )))?;
            }
        }
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match launch(&binaries, &root, port, options, run_as.as_ref()) {
                Ok((server_pid, server_exit)) => {
                    std::mem::forget(cleanup);
                    let sandbox = Sandbox {
                        root,
                        binaries,
                        port,
                        server_pid,
                        server_exit: Mutex::new(Some(server_exit)),
                        startup: started.elapsed(),
                    };
                    tracing::debug!(
                        port,
                        startup_ms = sandbox.startup.as_millis(),
                        "sandbox ready"
                    );
                    return Ok(sandbox);
                }
                Err(LaunchError::PortTaken) => continue,
                Err(LaunchError::Failed(error)) => return Err(error),
            }
        }
        Err(SandboxError::ServerExited {
            status: format!("no free port after {PORT_ATTEMPTS} attempts"),
            log_tail: log_tail(&root.join("server.log")),
        })
    }

    /// Starts a cluster that lives until the process exits, for a test binary
    /// sharing one server between its tests. It is stopped and removed at
    /// normal exit (and at exit after failed tests); if the process is killed
    /// the server dies with it and the next start sweeps its directory.
    pub fn start_for_process(options: &SandboxOptions) -> Result<&'static Sandbox, SandboxError> {
        let sandbox: &'static Sandbox = Box::leak(Box::new(Sandbox::start_with(options)?));
        stop_at_exit(sandbox);
        Ok(sandbox)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn server_pid(&self) -> u32 {
        self.server_pid
    }

    pub fn binaries(&self) -> &ServerBinaries {
        &self.binaries
    }

    /// How long `start` took, initdb included.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Settings for the superuser over the Unix socket.
    pub fn settings(&self, dbname: &str) -> ConnectionSettings {
        let endpoint = Endpoint::new(Host::Socket(self.root.clone()), self.port);
        let mut settings = ConnectionSettings::new(endpoint, SUPERUSER, dbname);
        settings.sslmode = SslMode::Disable;
        settings.connect_timeout = Duration::from_secs(10);
        settings
    }

    /// A connection string for the superuser over the Unix socket, in the
    /// key=value form (no escaping needed for the socket path).
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname={dbname}",
            self.root.display(),
            self.port
        )
    }

    /// Stops the server (fast shutdown, then harder) and removes the
    /// directory. Safe to call more than once.
    pub fn stop(&self) {
        let receiver = self
            .server_exit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(receiver) = receiver else {
            return;
        };
        for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGKILL] {
            os::send_signal(self.server_pid, signal);
            match receiver.recv_timeout(STOP_TIMEOUT) {
                Ok(_) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => continue,
            }
        }
        if let Err(error) = fs::remove_dir_all(&self.root) {
            tracing::warn!(
                "could not remove the sandbox directory {}: {error}",
                self.root.display()
            );
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

struct RemoveOnError(Option<PathBuf>);

impl Drop for RemoveOnError {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// PostgreSQL refuses to run as root: when we are root, it runs as
/// `postgres` (or `nobody`).
fn server_account() -> Result<Option<Account>, SandboxError> {
    if !os::is_root() {
        return Ok(None);
    }
    os::account_named("postgres")
        .or_else(|| os::account_named("nobody"))
        .map(Some)
        .ok_or(SandboxError::NoServerAccount)
}

/// Where sandbox directories go: PGM_SANDBOX_DIR when set; else /dev/shm
/// when it is a roomy memory file system (initdb there takes a third of the
/// time it takes on disk); else the temporary directory. Root's TMPDIR may be
/// private to root and socket paths are limited to about 100 bytes, so those
/// cases use /tmp.
pub fn temp_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGM_SANDBOX_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && os::free_bytes(shm).is_some_and(|free| free > 2 << 30) {
        return shm.to_path_buf();
    }
    let candidate = std::env::temp_dir();
    if os::is_root() || candidate.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        candidate
    }
}

fn create_root(temp_root: &Path, run_as: Option<&Account>) -> Result<PathBuf, SandboxError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(temp_root)
        .map_err(io_error(format!(
            "creating a directory in {}",
            temp_root.display()
        )))?
        .keep();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io_error(format!(
        "setting permissions of {}",
        dir.display()
    )))?;
    if let Some(account) = run_as {
        os::chown(&dir, account).map_err(io_error(format!(
            "handing {} to {}",
            dir.display(),
            account.name
        )))?;
    }
    Ok(dir)
}

/// Removes directories of sandboxes whose creating process is gone and whose
/// server no longer runs.
pub fn sweep_stale(temp_root: &Path) {
    let Ok(entries) = fs::read_dir(temp_root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner_pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner_pid == std::process::id() || os::process_alive(owner_pid) {
            continue;
        }
        let postmaster_pid = fs::read_to_string(entry.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .next()
                    .and_then(|line| line.trim().parse::<u32>().ok())
            });
        if postmaster_pid.is_some_and(os::process_alive) {
            continue;
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

fn server_command(
    binaries: &ServerBinaries,
    program: &str,
    root: &Path,
    run_as: Option<&Account>,
) -> Command {
    let mut command = Command::new(binaries.bindir.join(program));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", "C")
        .current_dir(root);
    if let Some(account) = run_as {
        command.uid(account.uid).gid(account.gid).env("HOME", root);
    }
    command
}

fn initdb(
    binaries: &ServerBinaries,
    root: &Path,
    trust_loopback: bool,
    run_as: Option<&Account>,
) -> Result<(), SandboxError> {
    let host_auth = if trust_loopback {
        "--auth-host=trust"
    } else {
        "--auth-host=scram-sha-256"
    };
    let log_path = root.join("initdb.log");
    let log = fs::File::create(&log_path).map_err(io_error("creating initdb.log"))?;
    let status = server_command(binaries, "initdb", root, run_as)
        .args([
            "-D",
            "data",
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            host_auth,
        ])
        .args(["--encoding=UTF8", "--locale=C", "--no-sync"])
        .stdout(log.try_clone().map_err(io_error("opening initdb.log"))?)
        .stderr(log)
        .status()
        .map_err(io_error(format!(
            "running {}",
            binaries.bindir.join("initdb").display()
        )))?;
    if !status.success() {
        return Err(SandboxError::CommandFailed {
            program: "initdb".into(),
            status: status.to_string(),
            log_tail: log_tail(&log_path),
        });
    }
    Ok(())
}

fn run_setup_sql(
    binaries: &ServerBinaries,
    root: &Path,
    options: &SandboxOptions,
    run_as: Option<&Account>,
) -> Result<(), SandboxError> {
    use std::io::Write;
    let statements = &options.setup_sql;
    let log_path = root.join("setup.log");
    let log = fs::File::create(&log_path).map_err(io_error("creating setup.log"))?;
    let mut child = server_command(binaries, "postgres", root, run_as)
        .envs(options.server_env.iter().map(|(name, value)| (name, value)))
        .args(["--single", "-D", "data", "-c", "fsync=off", "postgres"])
        .stdin(Stdio::piped())
        .stdout(log.try_clone().map_err(io_error("opening setup.log"))?)
        .stderr(log)
        .spawn()
        .map_err(io_error(format!(
            "running {} --single",
            binaries.bindir.join("postgres").display()
        )))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let written = stdin.write_all(statements.join("\n").as_bytes());
    drop(stdin);
    let status = child
        .wait()
        .map_err(io_error("waiting for postgres --single"))?;
    written.map_err(io_error("writing the setup SQL"))?;
    let log_text = fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() || log_text.contains("ERROR:") {
        return Err(SandboxError::CommandFailed {
            program: "postgres --single".into(),
            status: status.to_string(),
            log_tail: log_tail(&log_path),
        });
    }
    Ok(())
}

fn write_server_tls(
    root: &Path,
    tls: &ServerTls,
    run_as: Option<&Account>,
) -> Result<(), SandboxError> {
    for (name, contents) in [
        ("server.crt", &tls.certificate_pem),
        ("server.key", &tls.key_pem),
    ] {
        let path = root.join("data").join(name);
        fs::write(&path, contents).map_err(io_error(format!("writing {}", path.display())))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(io_error(
            format!("setting permissions of {}", path.display()),
        ))?;
        if let Some(account) = run_as {
            os::chown(&path, account).map_err(io_error(format!(
                "handing {} to {}",
                path.display(),
                account.name
            )))?;
        }
    }
    Ok(())
}

fn free_port() -> Result<u16, SandboxError> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io_error("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io_error("finding a free port"))?
        .port())
}

enum LaunchError {
    PortTaken,
    Failed(SandboxError),
}

/// Starts the server (see `spawn_kept`) and waits until it accepts
/// connections.
fn launch(
    binaries: &ServerBinaries,
    root: &Path,
    port: u16,
    options: &SandboxOptions,
    run_as: Option<&Account>,
) -> Result<(u32, Receiver<ExitStatus>), LaunchError> {
    let log_path = root.join("server.log");
    let fail = |error| LaunchError::Failed(error);
    let log = fs::File::create(&log_path)
        .map_err(io_error("creating server.log"))
        .map_err(fail)?;
    let stderr = log
        .try_clone()
        .map_err(io_error("opening server.log"))
        .map_err(fail)?;
    let mut command = server_command(binaries, "postgres", root, run_as);
    command.envs(options.server_env.iter().map(|(name, value)| (name, value)));
    command.args(["-D", "data", "-p", &port.to_string()]);
    let mut socket_dirs = root.as_os_str().to_owned();
    for dir in &options.extra_socket_dirs {
        socket_dirs.push(",");
        socket_dirs.push(dir);
    }
    command.arg("-k").arg(socket_dirs);
    let mut settings: Vec<(String, String)> = [
        ("listen_addresses", "127.0.0.1"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("max_connections", "200"),
        ("shared_buffers", "64MB"),
        ("log_min_messages", "warning"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    if options.tls.is_some() {
        settings.push(("ssl".into(), "on".into()));
    }
    settings.extend(options.settings.iter().cloned());
    for (name, value) in &settings {
        command.arg("-c").arg(format!("{name}={value}"));
    }
    command.stdin(Stdio::null()).stdout(log).stderr(stderr);
    let (pid, exit_receiver) = spawn_kept(command, &format!("pgm-sandbox-{port}"), libc::SIGQUIT)
        .map_err(io_error(format!(
            "running {}",
            binaries.bindir.join("postgres").display()
        )))
        .map_err(fail)?;

    let mut probe = postgres::Config::new();
    probe
        .host_path(root)
        .port(port)
        .user(SUPERUSER)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2));
    match wait_until_ready(pid, &exit_receiver, || {
        probe.connect(postgres::NoTls).is_ok()
    }) {
        Readiness::Ready => Ok((pid, exit_receiver)),
        Readiness::Exited(status) => {
            let tail = log_tail(&log_path);
            if tail.contains("could not bind") || tail.contains("Address already in use") {
                return Err(LaunchError::PortTaken);
            }
            Err(fail(SandboxError::ServerExited {
                status,
                log_tail: tail,
            }))
        }
        Readiness::NotReady => Err(fail(SandboxError::NotReady {
            log_tail: log_tail(&log_path),
        })),
    }
}

/// How a started process turned out.
pub(crate) enum Readiness {
    Ready,
    /// It exited, with this status.
    Exited(String),
    /// Not ready within READY_TIMEOUT: it was killed.
    NotReady,
}

/// Polls `ready` until it answers, the process `pid` exits, or
/// READY_TIMEOUT passes (the process is then killed).
pub(crate) fn wait_until_ready(
    pid: u32,
    exit: &Receiver<ExitStatus>,
    mut ready: impl FnMut() -> bool,
) -> Readiness {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match exit.try_recv() {
            Ok(status) => return Readiness::Exited(status.to_string()),
            Err(mpsc::TryRecvError::Disconnected) => return Readiness::Exited("unknown".into()),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if ready() {
            return Readiness::Ready;
        }
        if Instant::now() > deadline {
            os::send_signal(pid, libc::SIGKILL);
            return Readiness::NotReady;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns `command` in a process group of its own, from a thread that
/// lives exactly as long as the child: the parent-death signal
/// (`death_signal`) fires when the thread that forked the child ends, so a short-lived
/// caller (a test thread) must not be that thread. Returns the child's pid
/// and a receiver that gets its exit status.
fn spawn_kept(
    mut command: Command,
    thread_name: &str,
    death_signal: libc::c_int,
) -> std::io::Result<(u32, Receiver<ExitStatus>)> {
    command.process_group(0);
    let parent_pid = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
    unsafe {
        command.pre_exec(move || {
            // Runs after the uid switch, which would otherwise clear it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (pid_sender, pid_receiver) = mpsc::channel();
    let (exit_sender, exit_receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = pid_sender.send(Ok(child.id()));
                if let Ok(status) = child.wait() {
                    let _ = exit_sender.send(status);
                }
            }
            Err(error) => {
                let _ = pid_sender.send(Err(error));
            }
        })?;
    let pid = pid_receiver
        .recv()
        .map_err(|_| std::io::Error::other("the keeper thread died"))??;
    Ok((pid, exit_receiver))
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
