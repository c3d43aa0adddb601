//! `pgm partitions maintain`: refuse a session that a pooler does not keep
//! to itself; then per table, take the table's advisory lock (an overlapping
//! run skips the table instead of doing its steps twice), confirm it, plan
//! again under the lock from a fresh snapshot, execute, report.

use chrono::{DateTime, Utc};
use postgres::Client;
use thiserror::Error;

use super::catalog;
use super::executor::{Executor, TableReport};
use super::planner::{self, Plan};
use super::policy::{Policy, TablePolicy};
use crate::db::lock::{self, LockError, SessionLock};
use crate::db::pooler::{self, PoolerError};
use crate::db::{ConnectionSettings, server};

#[derive(Debug, Error)]
pub enum MaintainError {
    #[error(transparent)]
    Pooled(#[from] PoolerError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Query(#[from] postgres::Error),
}

/// What a maintenance run did.
#[derive(Debug)]
pub enum Maintenance {
    /// The server is a read-only replica: nothing was done.
    Replica,
    Tables(Vec<TableReport>),
}

impl Maintenance {
    pub fn failed_tables(&self) -> usize {
        match self {
            Maintenance::Replica => 0,
            Maintenance::Tables(reports) => {
                reports.iter().filter(|r| !r.failures.is_empty()).count()
            }
        }
    }
}

/// The catalog of every table of the policy, and the plan for all of them.
pub fn plan_now(
    client: &mut Client,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Plan, postgres::Error> {
    let snapshot = catalog::take_tables(client, &policy.tables)?;
    Ok(planner::plan(policy, &snapshot, now))
}

/// Maintains every table of `plan` that has entries. `plan` is the plan
/// made before (and shown, with --dry-run); each table is planned again
/// under its lock, for the same instant.
pub fn run(
    client: &mut Client,
    settings: &ConnectionSettings,
    policy: &Policy,
    plan: &Plan,
) -> Result<Maintenance, MaintainError> {
    if server::in_recovery(client)? {
        return Ok(Maintenance::Replica);
    }
    // Even with nothing to do: a cron job through a transaction pool should
    // fail from its first run, not on the day partitions are due.
    pooler::require_own_session(client, settings)?;
    let mut reports = Vec::new();
    for table in &policy.tables {
        let mut report = TableReport::new(&table.qualified_name());
        if plan.for_table(&table.parent()).next().is_some() {
            maintain_table(client, settings, table, plan.now, &mut report)?;
        }
        reports.push(report);
    }
    Ok(Maintenance::Tables(reports))
}

fn maintain_table(
    client: &mut Client,
    settings: &ConnectionSettings,
    table: &TablePolicy,
    now: DateTime<Utc>,
    report: &mut TableReport,
) -> Result<(), MaintainError> {
    let what = format!("the maintenance lock of {}", report.table);
    let key = lock::key_for(&format!("pgm partitions {}", table.parent()));
    let Some(mut guard) = SessionLock::try_acquire(&mut *client, key)? else {
        report.skipped = Some("another pgm partitions maintain is working on it".into());
        tracing::warn!(
            "{}: skipped: another pgm partitions maintain holds its lock",
            report.table
        );
        return Ok(());
    };
    guard.confirm(&what)?;
    // Planned again under the lock: the first plan may predate another run's work.
    let client = guard.client();
    match catalog::take_tables(client, [table]) {
        Ok(fresh) => {
            let parent = fresh.parents.first().and_then(Option::as_ref);
            let entries = planner::plan_table(table, parent, &fresh, now);
            Executor { client, settings }.run(table, &entries, report);
        }
        Err(error) => report
            .failures
            .push(format!("reading the catalog: {error}")),
    }
    Ok(())
}
