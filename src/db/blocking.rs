//! Who blocks whom: a watcher on a second session that records which lock a
//! statement of ours waits for and who holds it, so that a lock timeout can be
//! reported with its cause (the cancelled statement itself cannot say).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::Client;

use super::ConnectionSettings;

/// How often the watcher looks, and how long a statement must have run
/// before it does: often enough to see the blocker of a wait as short as
/// a lock_timeout of 200 ms more than once on a busy machine.
const POLL: Duration = Duration::from_millis(40);
/// A statement blocked this long is reported, and again as often while it
/// stays blocked.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// What our session was last seen waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub lock: String,
    pub holder_pid: i32,
    pub holder: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "it waited for {}, held by pid {} ({})",
            self.lock, self.holder_pid, self.holder
        )
    }
}

#[derive(Default)]
struct Shared {
    /// What runs, and since when.
    in_flight: Option<(String, Instant)>,
    last_seen: Option<Blocker>,
    last_report: Option<Instant>,
    stop: bool,
}

pub struct BlockingWatcher {
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

impl BlockingWatcher {
    /// Watches backend `pid` from a new session; `None` if that session
    /// cannot be opened (the report then lacks the cause, nothing else).
    pub fn start(settings: &ConnectionSettings, pid: i32) -> Option<BlockingWatcher> {
        let mut client = super::connect(settings).ok()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pgm-blocking-watcher".into())
            .spawn(move || watch(&mut client, pid, &thread_shared))
            .ok()?;
        Some(BlockingWatcher {
            shared,
            thread: Some(thread),
        })
    }

    /// Marks a statement of ours as running (with what it is, for the
    /// reports of a long wait), or done.
    pub fn set_in_flight(&self, what: Option<&str>) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.in_flight = what.map(|what| (what.to_owned(), Instant::now()));
        shared.last_report = None;
    }

    pub fn last_blocker(&self) -> Option<Blocker> {
        self.shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_seen
            .clone()
    }
}

impl Drop for BlockingWatcher {
    fn drop(&mut self) {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(client: &mut Client, pid: i32, shared: &Mutex<Shared>) {
    loop {
        std::thread::sleep(POLL);
        let running = {
            let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
            if shared.stop {
                return;
            }
            shared
                .in_flight
                .as_ref()
                .is_some_and(|(_, since)| since.elapsed() >= POLL)
        };
        if !running {
            continue;
        }
        if let Ok(Some(blocker)) = blocker_of(client, pid) {
            let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
            report_long_wait(&mut shared, &blocker);
            shared.last_seen = Some(blocker);
        }
    }
}

/// Says, every REPORT_EVERY, what a statement blocked that long waits for.
fn report_long_wait(shared: &mut Shared, blocker: &Blocker) {
    let Some((what, since)) = &shared.in_flight else {
        return;
    };
    let due = match shared.last_report {
        Some(last) => last.elapsed() >= REPORT_EVERY,
        None => since.elapsed() >= REPORT_EVERY,
    };
    if due {
        tracing::info!(
            "{what}: still waiting after {}s: {blocker}",
            since.elapsed().as_secs()
        );
        shared.last_report = Some(Instant::now());
    }
}

/// The lock `pid` waits for and the first session blocking it.
pub fn blocker_of(client: &mut Client, pid: i32) -> Result<Option<Blocker>, postgres::Error> {
    let row = client.query_opt(
        "SELECT l.mode || ' on ' || CASE WHEN l.relation IS NOT NULL THEN 'relation ' || l.relation::regclass::text \
                                         ELSE l.locktype END, \
                b.pid, \
                coalesce(nullif(b.application_name, ''), 'no application_name') || ', ' || coalesce(b.state, '?') \
                  || coalesce(' for ' || extract(epoch FROM now() - coalesce(b.xact_start, b.query_start))::int || 's', '') \
                  || coalesce(': ' || left(regexp_replace(b.query, '\\s+', ' ', 'g'), 120), '') \
         FROM pg_locks l \
         CROSS JOIN LATERAL unnest(pg_blocking_pids(l.pid)) AS blocking(pid) \
         JOIN pg_stat_activity b ON b.pid = blocking.pid \
         WHERE l.pid = $1 AND NOT l.granted \
         LIMIT 1",
        &[&pid],
    )?;
    Ok(row.map(|row| Blocker {
        lock: row.get(0),
        holder_pid: row.get(1),
        holder: row.get(2),
    }))
}
