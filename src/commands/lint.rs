//! `pgm lint`: which files, for which server version, with which settings;
//! the linting itself is in `crate::lint`.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::config::{Config, Lint, LintFormat};
use crate::db::{self, ConnectionSettings};
use crate::exit::{Outcome, UsageError};
use crate::lint::config::{self, LintConfig};
use crate::lint::partitioned::PolicyCoverage;
use crate::lint::rewrite::ServerProbe;
use crate::lint::{Linter, Report, TargetVersion, VersionSource, render};
use crate::migrate::history;
use crate::migrate::source::{self, SourceMigration, Version};
use crate::partition::policy;

pub fn run(
    config: &Config,
    args: &Lint,
    database_configured: bool,
    settings: impl FnOnce() -> Result<ConnectionSettings>,
) -> Result<Outcome> {
    let mut out = std::io::stdout().lock();
    if args.list_rules {
        render::write_rules(&mut out)?;
        out.flush()?;
        return Ok(Outcome::Success);
    }
    let (lint_config, coverage) = load_config(&config.policy, config.policy_is_default)?;
    let flag_version = args
        .pg_version
        .map(|version| TargetVersion::new(version, VersionSource::Flag));
    let sources = if args.files.is_empty() || config.migrations.is_dir() {
        source::load(&config.migrations).context(UsageError("invalid migration files".into()))?
    } else {
        Vec::new()
    };
    let mut applied = None;
    let mut server_probe = None;
    let version = if args.pending || (flag_version.is_none() && database_configured) {
        let settings = settings()?;
        let (server, applied_versions, client) = read_server(&settings, args.pending)?;
        server_probe = Some(ServerProbe::new(client));
        if let Some(flag) = flag_version
            && flag.major != server.major
        {
            bail!(UsageError(format!(
                "the server runs PostgreSQL {} but --pg-version (or PGM_PG_VERSION) says {}: \
                 drop the flag to lint for the server",
                server.major, flag.major
            )));
        }
        applied = applied_versions;
        server
    } else {
        flag_version.unwrap_or_else(TargetVersion::default_version)
    };

    let mut linter = Linter::new(version, lint_config, coverage);
    if let Some(probe) = server_probe {
        linter = linter.with_server(probe);
    }
    let explicit = ExplicitFiles::new(&args.files)?;
    let mut files = Vec::new();
    for migration in &sources {
        let given = explicit.given_path(&migration.path);
        let selected = match (&applied, args.files.is_empty()) {
            (Some(applied), _) => !applied.contains(&migration.version),
            (None, true) => true,
            (None, false) => given.is_some(),
        };
        if selected {
            files.push(linter.lint(given.unwrap_or(&migration.path), migration.text()));
        } else {
            linter.learn(migration.text());
        }
    }
    for path in explicit.outside(&sources) {
        let text = std::fs::read_to_string(path)
            .with_context(|| UsageError(format!("cannot read {}", path.display())))?;
        files.push(linter.lint(path, &text));
    }

    let report = Report::new(version, files);
    match args.format {
        LintFormat::Text => render::write_text(&mut out, &report)?,
        LintFormat::Json => render::write_json(&mut out, &report)?,
        LintFormat::Github => render::write_github(&mut out, &report)?,
    }
    out.flush()?;
    if report.errors > 0 {
        bail!(
            "lint found {} error{} (each names its rule: fix the statement, or add \
             `-- squawk-ignore RULE -- why` above it)",
            report.errors,
            if report.errors == 1 { "" } else { "s" }
        );
    }
    Ok(Outcome::Success)
}

/// The `[lint]` settings and the tables the policy maintains. A missing
/// policy file is fine when none was asked for.
fn load_config(path: &Path, is_default: bool) -> Result<(LintConfig, PolicyCoverage)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && is_default => {
            let coverage = PolicyCoverage::NoFile {
                path: path.to_path_buf(),
            };
            return Ok((LintConfig::default(), coverage));
        }
        Err(error) => {
            return Err(anyhow!(error).context(UsageError(format!(
                "cannot read the policy file {} (give another with --config PATH)",
                path.display()
            ))));
        }
    };
    let policy =
        policy::parse(path, &text).context(UsageError("invalid partition policy".into()))?;
    let lint_config =
        config::parse(path, &text).context(UsageError("invalid [lint] section".into()))?;
    let coverage = PolicyCoverage::Tables {
        path: path.to_path_buf(),
        names: policy
            .tables
            .iter()
            .map(|table| (table.schema.clone(), table.name.clone()))
            .collect(),
    };
    Ok((lint_config, coverage))
}

/// The server's version and, for `--pending`, the versions already applied;
/// the session stays open for the rules that ask the server.
fn read_server(
    settings: &ConnectionSettings,
    pending: bool,
) -> Result<(TargetVersion, Option<Vec<Version>>, postgres::Client)> {
    let mut client = db::connect(settings).context(
        "connecting to read the server's version (give --pg-version N to lint without a server)",
    )?;
    let version_num =
        db::server::version_num(&mut client).context("reading the server's version")?;
    let server = TargetVersion::from_server(version_num);
    if !pending {
        return Ok((server, None, client));
    }
    let (tables, present) =
        history::Tables::locate(&mut client, &[]).context("locating the migration tables")?;
    let applied = history::read_applied(&mut client, &tables, present)?
        .iter()
        .map(|applied| applied.version)
        .collect();
    Ok((server, Some(applied), client))
}

/// The files named on the command line, matched to migrations by their real
/// path but shown as the user wrote them.
struct ExplicitFiles<'a> {
    given: Vec<(&'a PathBuf, PathBuf)>,
}

impl<'a> ExplicitFiles<'a> {
    fn new(paths: &'a [PathBuf]) -> Result<ExplicitFiles<'a>> {
        let mut seen = HashSet::new();
        let mut given = Vec::new();
        for path in paths {
            let real = path
                .canonicalize()
                .with_context(|| UsageError(format!("cannot read {}", path.display())))?;
            if seen.insert(real.clone()) {
                given.push((path, real));
            }
        }
        Ok(ExplicitFiles { given })
    }

    fn given_path(&self, migration: &Path) -> Option<&'a PathBuf> {
        if self.given.is_empty() {
            return None;
        }
        let real = migration.canonicalize().ok()?;
        self.given
            .iter()
            .find(|(_, given_real)| *given_real == real)
            .map(|(path, _)| *path)
    }

    /// The files that are not migrations of the directory, in the order given.
    fn outside(&self, sources: &[SourceMigration]) -> Vec<&'a PathBuf> {
        if self.given.is_empty() {
            return Vec::new();
        }
        let inside: HashSet<PathBuf> = sources
            .iter()
            .filter_map(|source| source.path.canonicalize().ok())
            .collect();
        self.given
            .iter()
            .filter(|(_, real)| !inside.contains(real))
            .map(|(path, _)| *path)
            .collect()
    }
}
