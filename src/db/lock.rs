//! Session advisory locks, held by a guard that owns the session: the lock
//! cannot be forgotten, and it goes away with the session if the process dies.

use std::borrow::BorrowMut;
use std::time::{Duration, Instant};

use postgres::Client;
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
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])?
        .get(0))
}

/// The session holding advisory lock `key` in this database, if any.
pub fn holder(client: &mut Client, key: i64) -> Result<Option<Holder>, postgres::Error> {
    // A bigint key shows in pg_locks as classid (high half), objid (low half), objsubid 1.
    let high = ((key as u64) >> 32) as i64;
    let low = ((key as u64) & 0xffff_ffff) as i64;
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
