//! The one lock-retry engine: every statement that takes a lock runs under
//! `lock_timeout`; when the wait times out the attempt is retried after a
//! jittered backoff, a watcher session names the blocker for the final
//! report, and the step's declared cleanup runs before each retry. A
//! deadlock or serialization failure is retried the same way: the server
//! rolled the attempt back, as it does after a lock timeout.

use std::time::Duration;

use postgres::Client;
use postgres::error::SqlState;
use serde::Serialize;

use super::ConnectionSettings;
use super::blocking::{Blocker, BlockingWatcher};

/// The most retries after a lock timeout that pgm accepts (flag or policy):
/// each waits for lock_timeout again plus a backoff of up to 10 s, and
/// everything after the statement waits with it.
pub const MAX_LOCK_RETRIES: u32 = 100;

pub fn is_lock_timeout(error: &postgres::Error) -> bool {
    error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

/// A deadlock or a serialization failure: the server chose this attempt to
/// roll back so that another could go on; the same attempt can succeed.
pub fn is_conflict(error: &postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        [
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ]
        .contains(code)
    })
}

/// Exponential backoff with jitter: `first` doubling up to `cap`, each
/// pause scaled by a random factor in [0.5, 1.5) so that several runners
/// do not retry in step.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// After a lock timeout: 200 ms up to 10 s.
    pub const LOCK: Backoff = Backoff {
        first: Duration::from_millis(200),
        cap: Duration::from_secs(10),
    };

    /// The pause before retry number `attempt` (1-based).
    pub fn pause(self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.first
            .saturating_mul(1 << doublings)
            .min(self.cap)
            .mul_f64(0.5 + fastrand::f64())
    }
}

/// What a retry after a lock timeout does first, written into the plan so
/// that it shows every statement that can run. A cancelled statement can
/// leave something behind (an INVALID index, a detach pending); `when` asks
/// the catalog whether it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnRetry {
    /// The statement of the step this applies to (0-based).
    pub statement: usize,
    /// A query returning one boolean: true when `sql` is needed.
    pub when: String,
    pub sql: String,
    /// `sql` takes the place of the statement from then on, rather than
    /// running before it.
    pub instead: bool,
    /// Why, in words.
    pub why: String,
}

impl OnRetry {
    /// A concurrent build cancelled by lock_timeout leaves an INVALID index
    /// under its name, which must go before the build runs again.
    /// `index` is the name as SQL writes it (quoted, qualified or not).
    pub fn drop_invalid_index(index: &str) -> OnRetry {
        OnRetry {
            statement: 0,
            when: format!(
                "SELECT EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass({}) AND NOT indisvalid)",
                super::quote_literal(index)
            ),
            sql: format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"),
            instead: false,
            why: "the cancelled build left an INVALID index: dropped before building again".into(),
        }
    }

    /// As SQL comments above the statement, for a plan a person reviews.
    pub fn as_comment(&self) -> String {
        let how = if self.instead {
            "runs instead of the statement below"
        } else {
            "runs before the statement below, again"
        };
        format!(
            "-- on a lock-timeout retry, when {}:\n--   {}\n-- {how}: {};",
            self.when, self.why, self.sql
        )
    }
}

/// Anything an attempt can fail with; a lock timeout and a conflict are
/// retried, nothing else.
pub trait AttemptError {
    fn is_lock_timeout(&self) -> bool;
    /// Rolled back by the server in favour of another transaction (see
    /// [`is_conflict`]).
    fn is_conflict(&self) -> bool;
}

impl AttemptError for postgres::Error {
    fn is_lock_timeout(&self) -> bool {
        is_lock_timeout(self)
    }

    fn is_conflict(&self) -> bool {
        is_conflict(self)
    }
}

/// An attempt that failed for good: its error, how many attempts were made,
/// and the session that held the lock, when the watcher saw one.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub error: E,
    pub attempts: u32,
    pub blocker: Option<Blocker>,
}

/// Marks our statements as running so the watcher looks only then.
#[derive(Clone, Copy)]
pub struct Watch<'w> {
    watcher: Option<&'w BlockingWatcher>,
    what: &'w str,
}

impl Watch<'_> {
    pub fn around<T>(self, run: impl FnOnce() -> T) -> T {
        if let Some(watcher) = self.watcher {
            watcher.set_in_flight(Some(self.what));
        }
        let result = run();
        if let Some(watcher) = self.watcher {
            watcher.set_in_flight(None);
        }
        result
    }
}

pub struct LockRetry<'s> {
    settings: &'s ConnectionSettings,
    retries: u32,
    /// Started at the first lock timeout, kept for the rest of the run.
    watcher: Option<BlockingWatcher>,
}

impl<'s> LockRetry<'s> {
    pub fn new(settings: &'s ConnectionSettings, retries: u32) -> LockRetry<'s> {
        LockRetry {
            settings,
            retries,
            watcher: None,
        }
    }

    /// Runs `attempt` until it succeeds, fails for another reason than a
    /// lock timeout or a conflict, or has been retried `retries` times. Before each retry
    /// the `cleanup` the step declared runs when its condition holds; once
    /// an `instead` cleanup applied, `attempt` is handed its statement to
    /// run in place of its own.
    /// Returns the value and the number of attempts made.
    pub fn run<T, E: AttemptError + From<postgres::Error>>(
        &mut self,
        client: &mut Client,
        what: &str,
        cleanup: Option<&OnRetry>,
        mut attempt: impl FnMut(&mut Client, Watch<'_>, Option<&str>) -> Result<T, E>,
    ) -> Result<(T, u32), GaveUp<E>> {
        let mut number = 1;
        let mut replaced = false;
        loop {
            // The cleanup waits for locks too: its own lock timeout is one
            // more failed attempt, not the end.
            let result = match cleanup.filter(|_| number > 1 && !replaced) {
                Some(cleanup) => run_cleanup(client, cleanup).map(|applied| {
                    replaced = applied && cleanup.instead;
                }),
                None => Ok(()),
            }
            .map_err(E::from)
            .and_then(|()| {
                let replacement = cleanup.filter(|_| replaced).map(|c| c.sql.as_str());
                let watch = Watch {
                    watcher: self.watcher.as_ref(),
                    what,
                };
                attempt(client, watch, replacement)
            });
            let error = match result {
                Ok(value) => return Ok((value, number)),
                Err(error) => error,
            };
            let reason = if error.is_lock_timeout() {
                "lock timeout"
            } else if error.is_conflict() {
                "rolled back after a conflict with another transaction (a deadlock, a serialization failure, a race lost)"
            } else {
                return Err(self.gave_up(error, number));
            };
            if number > self.retries {
                return Err(self.gave_up(error, number));
            }
            if self.watcher.is_none() && error.is_lock_timeout() {
                self.watcher = start_watcher(client, self.settings);
            }
            let pause = Backoff::LOCK.pause(number);
            tracing::warn!(
                "{what}: {reason} (attempt {number} of {}); retrying in {} ms",
                self.retries.saturating_add(1),
                pause.as_millis()
            );
            std::thread::sleep(pause);
            number += 1;
        }
    }

    /// One attempt of a statement expected to wait long (a concurrent index
    /// build waiting for older transactions, under a lock timeout sized for
    /// that): the watcher reports its waits as they happen, from the start,
    /// and a lock timeout is final (it already waited the whole budget).
    pub fn run_patient<T, E: AttemptError + From<postgres::Error>>(
        &mut self,
        client: &mut Client,
        what: &str,
        attempt: impl FnMut(&mut Client, Watch<'_>, Option<&str>) -> Result<T, E>,
    ) -> Result<(T, u32), GaveUp<E>> {
        if self.watcher.is_none() {
            self.watcher = start_watcher(client, self.settings);
        }
        let retries = std::mem::replace(&mut self.retries, 0);
        let result = self.run(client, what, None, attempt);
        self.retries = retries;
        result
    }

    fn gave_up<E>(&self, error: E, attempts: u32) -> GaveUp<E> {
        GaveUp {
            error,
            attempts,
            blocker: self
                .watcher
                .as_ref()
                .and_then(BlockingWatcher::last_blocker),
        }
    }
}

/// Runs the cleanup when its condition holds; true when it did.
fn run_cleanup(client: &mut Client, cleanup: &OnRetry) -> Result<bool, postgres::Error> {
    let needed: bool = client.query_one(cleanup.when.as_str(), &[])?.get(0);
    if needed && !cleanup.instead {
        tracing::info!("{}: {}", cleanup.why, cleanup.sql);
        client.batch_execute(&cleanup.sql)?;
    }
    Ok(needed)
}

fn start_watcher(client: &mut Client, settings: &ConnectionSettings) -> Option<BlockingWatcher> {
    BlockingWatcher::start(settings, backend_pid(client)?)
}

/// This session's server process; one round trip on the simple protocol.
pub fn backend_pid(client: &mut Client) -> Option<i32> {
    client
        .simple_query("SELECT pg_backend_pid()")
        .ok()?
        .iter()
        .find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn grows_and_is_capped() {
        for _ in 0..100 {
            let first = Backoff::LOCK.pause(1);
            assert!(first >= Duration::from_millis(100) && first < Duration::from_millis(300));
            let third = Backoff::LOCK.pause(3);
            assert!(third >= Duration::from_millis(400) && third < Duration::from_millis(1200));
            assert!(Backoff::LOCK.pause(u32::MAX) < Duration::from_secs(15));
        }
    }
}
