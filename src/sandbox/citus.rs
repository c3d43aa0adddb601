//! A throwaway Citus cluster: a coordinator and two workers, each a sandbox
//! server with `shared_preload_libraries = 'citus'`, reaching one another
//! over the loopback address (trusted, as the Unix socket is). A database
//! made with `create_database` exists on the three nodes, with the
//! extension, the coordinator registered and both workers added: the
//! cluster as Citus's own documentation sets it up.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use super::{Sandbox, SandboxError, SandboxOptions, ServerBinaries};
use crate::db::{self, quote_ident};

const LOOPBACK: &str = "127.0.0.1";
const WORKERS: usize = 2;

pub const CITUS_HINT: &str = "install Citus for this PostgreSQL (packages from \
    https://packagecloud.io/citusdata/community, e.g. postgresql-15-citus-12.1), or set PGM_PG_BINDIR to the bin directory of a PostgreSQL \
    whose pkglibdir holds citus.so";

#[derive(Debug, Error)]
pub enum CitusError {
    #[error("no Citus-enabled PostgreSQL found (looked for citus.so in {searched}): {CITUS_HINT}")]
    NoCitus { searched: String },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("setting up the Citus node on port {port}: {message}")]
    Setup { port: u16, message: String },
}

/// A running coordinator and its workers; dropping it stops them all.
#[derive(Debug)]
pub struct CitusCluster {
    pub coordinator: Sandbox,
    pub workers: Vec<Sandbox>,
}

impl CitusCluster {
    pub fn start() -> Result<CitusCluster, CitusError> {
        let binaries = citus_binaries()?;
        let options = SandboxOptions {
            settings: vec![
                ("shared_preload_libraries".into(), "citus".into()),
                // Citus keeps connections between nodes open; the tests
                // run several sessions per node at once.
                ("max_connections".into(), "300".into()),
            ],
            bindir: Some(binaries.bindir.clone()),
            trust_loopback: true,
            ..SandboxOptions::default()
        };
        let workers = (0..WORKERS)
            .map(|_| Sandbox::start_with(&options))
            .collect::<Result<Vec<_>, _>>()?;
        let coordinator = Sandbox::start_with(&options)?;
        Ok(CitusCluster {
            coordinator,
            workers,
        })
    }

    /// A cluster that lives until the process exits, shared by the tests of
    /// one test binary (see `Sandbox::start_for_process`).
    pub fn start_for_process() -> Result<&'static CitusCluster, CitusError> {
        let cluster: &'static CitusCluster = Box::leak(Box::new(CitusCluster::start()?));
        // Stopped last registered first: the coordinator before its workers.
        for worker in &cluster.workers {
            super::stop_at_exit(worker);
        }
        super::stop_at_exit(&cluster.coordinator);
        Ok(cluster)
    }

    /// The nodes, coordinator first.
    pub fn nodes(&self) -> impl Iterator<Item = &Sandbox> {
        std::iter::once(&self.coordinator).chain(&self.workers)
    }

    /// Creates `name` on every node with the extension, and makes it one
    /// Citus cluster: the coordinator registered, the workers added.
    pub fn create_database(&self, name: &str) -> Result<(), CitusError> {
        for node in self.nodes() {
            run(
                node,
                "postgres",
                &format!("CREATE DATABASE {}", quote_ident(name)),
            )?;
            run(node, name, "CREATE EXTENSION citus")?;
        }
        let coordinator = &self.coordinator;
        let mut register = format!(
            "SELECT citus_set_coordinator_host('{LOOPBACK}', {});",
            coordinator.port()
        );
        for worker in &self.workers {
            register.push_str(&format!(
                "SELECT citus_add_node('{LOOPBACK}', {});",
                worker.port()
            ));
        }
        run(coordinator, name, &register)
    }

    /// Drops `name` on every node, sessions and all.
    pub fn drop_database(&self, name: &str) -> Result<(), CitusError> {
        for node in self.nodes() {
            run(
                node,
                "postgres",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
            )?;
        }
        Ok(())
    }
}

fn run(node: &Sandbox, dbname: &str, sql: &str) -> Result<(), CitusError> {
    let setup = |message: String| CitusError::Setup {
        port: node.port(),
        message,
    };
    let mut client = db::connect(&node.settings(dbname)).map_err(|e| setup(e.to_string()))?;
    client
        .batch_execute(sql)
        .map_err(|e| setup(format!("{sql}: {e}")))
}

/// The server binaries of a PostgreSQL with Citus: `PGM_PG_BINDIR` when set
/// (it must have Citus), else the one `ServerBinaries::find` picks, else
/// the newest `/usr/lib/postgresql/*/bin` that has it.
pub fn citus_binaries() -> Result<ServerBinaries, CitusError> {
    let mut searched = Vec::new();
    let explicit = std::env::var_os("PGM_PG_BINDIR").filter(|dir| !dir.is_empty());
    let mut candidates: Vec<PathBuf> = Vec::new();
    match explicit {
        Some(dir) => candidates.push(PathBuf::from(dir)),
        None => {
            if let Ok(found) = ServerBinaries::find() {
                candidates.push(found.bindir);
            }
            candidates.extend(super::debian_bindirs());
        }
    }
    for bindir in candidates {
        let libdir = pkglibdir(&bindir);
        searched.push(libdir.display().to_string());
        if libdir.join("citus.so").is_file()
            && let Some(binaries) = ServerBinaries::at(&bindir)
        {
            return Ok(binaries);
        }
    }
    if searched.is_empty() {
        searched.push("no PostgreSQL server found".to_owned());
    }
    searched.dedup();
    Err(CitusError::NoCitus {
        searched: searched.join(", "),
    })
}

/// Where a server's extension libraries live: `pg_config --pkglibdir` next
/// to it, else the `lib` directory beside `bin`.
fn pkglibdir(bindir: &Path) -> PathBuf {
    Command::new(bindir.join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .unwrap_or_else(|| bindir.with_file_name("lib"))
}
