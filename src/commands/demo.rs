//! `pgm demo`: the whole story on a throwaway cluster, with the bundled
//! migrations and policy (built into the binary, so it runs anywhere).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};

use super::Output;
use crate::config::{Command, Config, Migrate, MigrateLocks, PlanFormat, StatusFormat};
use crate::demo;
use crate::exit::Outcome;
use crate::sandbox::Sandbox;

/// The bundled migrations; a test checks the list matches migrations/.
pub const BUNDLED_MIGRATIONS: &[(&str, &str)] = &[
    (
        "V1__extensions_and_helpers.sql",
        include_str!("../../migrations/V1__extensions_and_helpers.sql"),
    ),
    (
        "V2__users.sql",
        include_str!("../../migrations/V2__users.sql"),
    ),
    (
        "V3__user_profiles.sql",
        include_str!("../../migrations/V3__user_profiles.sql"),
    ),
    (
        "V4__events.sql",
        include_str!("../../migrations/V4__events.sql"),
    ),
    (
        "V5__audit_log.sql",
        include_str!("../../migrations/V5__audit_log.sql"),
    ),
    (
        "V6__products.sql",
        include_str!("../../migrations/V6__products.sql"),
    ),
    (
        "V7__users_last_login_idx.sql",
        include_str!("../../migrations/V7__users_last_login_idx.sql"),
    ),
];
const BUNDLED_POLICY: &str = include_str!("../../partman.toml");
const DATABASE: &str = "demo";

fn section(title: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n== {title}\n")?;
    out.flush()?;
    Ok(())
}

pub fn run(keep: bool, at: Option<DateTime<Utc>>) -> Result<Outcome> {
    let now = at.unwrap_or_else(Utc::now);
    let work = tempfile::tempdir().context("creating a working directory")?;
    write_bundle(work.path())?;
    println!(
        "pgm demo: a throwaway PostgreSQL, the bundled schema, and its partitions across a year."
    );

    let started = Instant::now();
    let sandbox = Sandbox::start().context(
        "starting a throwaway PostgreSQL (pgm demo needs initdb and postgres: see README)",
    )?;
    println!(
        "A throwaway PostgreSQL {} is up in {:.1} s (socket {}, port {}).",
        sandbox.binaries().version,
        started.elapsed().as_secs_f64(),
        sandbox.socket_dir().display(),
        sandbox.port()
    );
    let mut demo_db = demo::create_database(&sandbox, DATABASE)?;
    let settings = sandbox.settings(DATABASE);
    let config = Config {
        database_url: None,
        policy: work.path().join("partman.toml"),
        policy_is_default: false,
        migrations: work.path().join("migrations"),
        command: Command::Demo { keep, at },
        fleet: None,
        schema: None,
    };
    let mut stdout = std::io::stdout();
    let out = &mut Output::new(&mut stdout);

    section("pgm migrate --maintain: the bundled migrations, then the partitions they need")?;
    let migrate = Migrate {
        dry_run: false,
        target: None,
        format: PlanFormat::Text,
        allow_out_of_order: false,
        maintain: false,
        locks: MigrateLocks {
            lock_wait: std::time::Duration::from_secs(60),
            ..MigrateLocks::default()
        },
    };
    super::migrate::apply(&config, &migrate, &settings, out)?;
    super::partitions::maintain(&config, &settings, &maintain_at(Some(now)), out)?;

    section("Some traffic: 20,000 events over the covered months")?;
    demo::insert_events(&mut demo_db, now, 20_000)?;
    println!("inserted 20000 rows into public.events");

    section("pgm partitions status")?;
    super::partitions::status(&config, &settings, StatusFormat::Text, Some(now), out)?;

    let later = now + Duration::days(425);
    let at = later.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    section(&format!(
        "Fourteen months later (--at {at}): what maintenance would do"
    ))?;
    super::partitions::plan(
        &config,
        &settings,
        Some(later),
        PlanFormat::Text,
        false,
        out,
    )?;
    section(&format!(
        "pgm partitions maintain --at {at}: retention at work"
    ))?;
    super::partitions::maintain(&config, &settings, &maintain_at(Some(later)), out)?;
    section(&format!("pgm partitions status --at {at}"))?;
    super::partitions::status(&config, &settings, StatusFormat::Text, Some(later), out)?;

    if keep {
        keep_running(&sandbox)?;
    }
    drop(demo_db);
    drop(sandbox);
    section(
        "Done: the throwaway cluster is stopped and removed (pgm demo --keep leaves it running)",
    )?;
    Ok(Outcome::Success)
}

/// Prints how to connect, then waits for Ctrl-C (the server stops with us).
fn keep_running(sandbox: &Sandbox) -> Result<()> {
    section("The cluster keeps running until you press Ctrl-C")?;
    println!("  psql \"{}\"", sandbox.url(DATABASE));
    println!(
        "  DATABASE_URL=\"{}\" pgm partitions status",
        sandbox.url(DATABASE)
    );
    std::io::stdout().flush()?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn write_bundle(dir: &Path) -> Result<()> {
    let migrations = dir.join("migrations");
    std::fs::create_dir(&migrations)?;
    for (name, sql) in BUNDLED_MIGRATIONS {
        std::fs::write(migrations.join(name), sql)?;
    }
    std::fs::write(dir.join("partman.toml"), BUNDLED_POLICY)?;
    Ok(())
}

/// Maintenance of every table at `at`, reported as text.
fn maintain_at(at: Option<DateTime<Utc>>) -> super::partitions::MaintainRequest<'static> {
    super::partitions::MaintainRequest {
        dry_run: false,
        at,
        only: &[],
        format: StatusFormat::Text,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_migrations_are_the_bundled_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = super::BUNDLED_MIGRATIONS
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        built_in.sort();
        assert_eq!(
            on_disk, built_in,
            "add new migrations to BUNDLED_MIGRATIONS"
        );
    }
}
