//! Session advisory locks, held by a guard that owns the session: the lock
//! cannot be forgotten, and it goes away with the session if the process dies.

use std::borrow::BorrowMut;
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::types::Type;
use thiserror::Error;

/// Who holds a lock we are waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub application_name: String,
    pub connected_for: Duration,
    pub state: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.application_name.is_empty() {
            "no application_name"
        } else {
            &self.application_name
        };
        write!(
            f,
            "pid {} ({name}, connected {}s ago, {})",
            self.pid,
            self.connected_for.as_secs(),
            self.state
        )
    }
}

#[derive(Debug, Error)]
pub enum LockError {
    #[error("{what} is held by another session{}; gave up after waiting {}s (raise the wait with --lock-wait)",
        holder.as_ref().map(|h| format!(", {h}")).unwrap_or_default(), waited.as_secs())]
    Busy {
        what: String,
        holder: Option<Holder>,
        waited: Duration,
    },
    #[error(
        "{what} is no longer held by this session: its statements now run in server process {pid}, which does not hold it \
         (a pooler in transaction mode moves a session between server connections); connect directly to the server, \
         or through a pool in session mode"
    )]
    Lost { what: String, pid: i32 },
    #[error("taking {what}: {source}")]
    Query {
        what: String,
        source: postgres::Error,
    },
}

/// A held session advisory lock and the session that holds it: owned (a
/// run lock held for the whole run) or borrowed (a lock per table, taken in
/// turn on one session).
pub struct SessionLock<C: BorrowMut<Client> = Client> {
    client: C,
    key: i64,
}

/// The advisory lock key for a name: stable across versions and platforms,
/// so that two pgm releases running at once exclude each other.
pub fn key_for(name: &str) -> i64 {
    super::ident::fnv1a(name.as_bytes()) as i64
}

impl<C: BorrowMut<Client>> SessionLock<C> {
    /// Polls `pg_try_advisory_lock` until `wait` runs out, calling
    /// `on_wait` with the holder now and then. No transaction is open while
    /// waiting, so the waiter holds no snapshot that could stall another
    /// runner's CREATE INDEX CONCURRENTLY.
    pub fn acquire(
        mut client: C,
        key: i64,
        what: &str,
        wait: Duration,
        mut on_wait: impl FnMut(Option<&Holder>, Duration),
    ) -> Result<SessionLock<C>, LockError> {
        let started = Instant::now();
        let mut last_report: Option<Instant> = None;
        loop {
            if try_lock(client.borrow_mut(), key).map_err(|source| LockError::Query {
                what: what.to_owned(),
                source,
            })? {
                return Ok(SessionLock { client, key });
            }
            let holder = holder(client.borrow_mut(), key).ok().flatten();
            let waited = started.elapsed();
            if waited >= wait {
                return Err(LockError::Busy {
                    what: what.to_owned(),
                    holder,
                    waited,
                });
            }
            if last_report.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                on_wait(holder.as_ref(), waited);
                last_report = Some(Instant::now());
            }
            std::thread::sleep(
                Duration::from_millis(250 + fastrand::u64(0..250)).min(wait - waited),
            );
        }
    }

    /// Tries once; `None` when another session holds the lock.
    pub fn try_acquire(mut client: C, key: i64) -> Result<Option<SessionLock<C>>, postgres::Error> {
        Ok(try_lock(client.borrow_mut(), key)?.then_some(SessionLock { client, key }))
    }

    pub fn client(&mut self) -> &mut Client {
        self.client.borrow_mut()
    }

    /// See `confirm`.
    pub fn confirm(&mut self, what: &str) -> Result<(), LockError> {
        confirm(self.client.borrow_mut(), self.key, what)
    }
}

impl<C: BorrowMut<Client>> Drop for SessionLock<C> {
    fn drop(&mut self) {
        // Closing the session would release it too; unlocking first keeps
        // the release prompt even if the connection lingers, and is needed
        // when the session goes on to other work.
        let _ = self
            .client
            .borrow_mut()
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key]);
    }
}

fn try_lock(client: &mut Client, key: i64) -> Result<bool, postgres::Error> {
    Ok(client
        .query_typed_one("SELECT pg_try_advisory_lock($1)", &[(&key, Type::INT8)])?
        .get(0))
}

/// Confirms that the server process running this session's statements now
/// is the one holding advisory lock `key`. A tripwire for a session that a
/// pooler moved between server connections (the check in `pooler` should
/// have refused it before the lock was taken): it tells about this moment,
/// not about the next transaction. One round trip, on the simple protocol.
pub fn confirm(client: &mut Client, key: i64, what: &str) -> Result<(), LockError> {
    let (high, low) = key_halves(key);
    let sql = format!(
        "SELECT pg_backend_pid(), EXISTS (SELECT FROM pg_locks \
           WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid::bigint = {high} AND objid::bigint = {low})"
    );
    let query_error = |source| LockError::Query {
        what: format!("confirming {what}"),
        source,
    };
    let messages = client.simple_query(&sql).map_err(query_error)?;
    let row = messages.iter().find_map(|message| match message {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let pid = row
        .and_then(|row| row.get(0))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_default();
    if row.and_then(|row| row.get(1)) == Some("t") {
        Ok(())
    } else {
        Err(LockError::Lost {
            what: what.to_owned(),
            pid,
        })
    }
}

/// A bigint key shows in pg_locks as classid (high half), objid (low half),
/// objsubid 1.
fn key_halves(key: i64) -> (i64, i64) {
    (
        ((key as u64) >> 32) as i64,
        ((key as u64) & 0xffff_ffff) as i64,
    )
}

/// The session holding advisory lock `key` in this database, if any.
pub fn holder(client: &mut Client, key: i64) -> Result<Option<Holder>, postgres::Error> {
    let (high, low) = key_halves(key);
    let row = client.query_opt(
        "SELECT a.pid, coalesce(a.application_name, ''), \
                extract(epoch FROM now() - a.backend_start)::float8, coalesce(a.state, '') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
         LIMIT 1",
        &[&high, &low],
    )?;
    Ok(row.map(|row| Holder {
        pid: row.get(0),
        application_name: row.get(1),
        connected_for: Duration::from_secs_f64(row.get::<_, f64>(2).max(0.0)),
        state: row.get(3),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{PgBouncer, PgBouncerOptions, PoolMode, Sandbox};

    /// The hazard itself, through a real PgBouncer in transaction mode: the
    /// lock stays on the server connection that took it, another client's
    /// transaction gets that connection, and ours runs elsewhere.
    #[test]
    fn a_lock_left_behind_on_another_server_connection_is_noticed() {
        let cluster = Sandbox::start().unwrap_or_else(|e| panic!("{e}"));
        let pooler = PgBouncer::start(&cluster, &PgBouncerOptions::new(PoolMode::Transaction))
            .unwrap_or_else(|e| panic!("{e}"));
        let settings = pooler.settings("postgres");
        let mut ours = crate::db::connect(&settings).unwrap();
        let mut other = crate::db::connect(&settings).unwrap();
        let mut guard = SessionLock::try_acquire(&mut ours, 42)
            .unwrap()
            .expect("nobody else holds it");
        guard.confirm("the test lock").unwrap();
        // The most recently released server connection goes first: the one
        // holding our lock.
        other.simple_query("BEGIN; SELECT 1").unwrap();
        let error = guard.confirm("the test lock").unwrap_err();
        assert!(matches!(error, LockError::Lost { .. }), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("the test lock is no longer held by this session: its statements now run in server process "),
            "{error}"
        );
        other.simple_query("ROLLBACK").unwrap();
    }
}
