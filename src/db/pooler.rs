//! Whether this client's session state stays with it: a session advisory
//! lock protects a run only if every later statement of the run executes in
//! the server process that took it. Through a pooler in transaction mode
//! (PgBouncer's `pool_mode = transaction`, and likewise Odyssey, pgcat,
//! Supavisor) each transaction may run on another server connection, and the
//! one holding the lock goes to another client.
//!
//! Nothing in the protocol says so: through PgBouncer, `SHOW pool_mode`
//! reaches the server, which knows no such setting (PgBouncer's own `SHOW`
//! commands answer only on its admin console, the `pgbouncer` database); no
//! parameter names the pooler, and its maintainers decline to advertise the
//! pool mode. So we watch what the pooler does. Under a direct connection or
//! a session pool, a client session is one server process for its whole
//! life: `pg_backend_pid()` never changes within a session, and two live
//! sessions never share a pid. We read the pid of our session; open a
//! second, probe session and read its pid in a transaction left open (which
//! keeps its server connection until it ends); read ours again meanwhile;
//! then, for a few rounds, let the probe end its transaction and start
//! another, and read ours right after the probe let go. A pid seen by both
//! sessions, or a session whose pid changed, proves transaction (or
//! statement) pooling: a verdict of pooling is never wrong. Its absence is
//! evidence, not proof (see `Finding::Pinned`).
//!
//! The order of the reads catches PgBouncer on a quiet pool whichever way it
//! hands out idle server connections. By default the most recently released
//! goes first: the probe gets the connection our session just released, or
//! we get the probe's. With `server_round_robin` they go in turn: our read
//! while the probe holds one lands on another connection (three or more
//! idle), or the probe's next transaction lands on ours (two). On a busy
//! pool, other clients take and return connections in between; each round
//! is another chance that they do not hide it (with eight clients hammering
//! a pool of three, none was missed in hundreds of checks).
//!
//! No wait is unbounded. The probe connects with a short timeout, and each
//! of its answers must come within `Waits::answer`, or the check ends
//! undetermined (a session pool with no free server connection: the probe
//! waits for ours). Our read while the probe holds its transaction open
//! would wait forever on a transaction pool with nothing else to give us
//! (`pool_size = 1`, or other clients hold the rest), since the probe waits
//! for us: after `Waits::hold` the probe ends its transaction, and our read
//! goes on, on what was the probe's connection (proof again). A probe left
//! behind ends, closing its session, once its statement returns.
//!
//! All reads use the simple query protocol: no prepared statement that a
//! pooler could separate from its execution.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use postgres::{Client, SimpleQueryMessage};
use thiserror::Error;

use super::connect;
use super::settings::ConnectionSettings;

#[derive(Debug, Error)]
pub enum PoolerError {
    #[error(
        "the connection goes through a pooler in transaction mode (such as PgBouncer with pool_mode = transaction): \
         session advisory locks taken here would not protect the run; connect directly to the server, \
         or through a pool in session mode, for migrate and maintain"
    )]
    TransactionPooling(Evidence),
    #[error("checking whether the connection goes through a pooler: {0}")]
    Query(#[from] postgres::Error),
}

/// What proved that session state does not stay with the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Two live client sessions ran statements in one server process.
    Shared { pid: i32 },
    /// One client session ran statements in two server processes.
    Moved { from: i32, to: i32 },
    /// The pooler closes a session that opens a transaction (statement
    /// pooling).
    NoTransactions,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::Shared { pid } => write!(
                f,
                "two sessions of this run were served by one server process, pid {pid}"
            ),
            Evidence::Moved { from, to } => write!(
                f,
                "a session of this run moved from server process {from} to {to} between transactions"
            ),
            Evidence::NoTransactions => f.write_str(
                "the connection closes when a session opens a transaction (statement pooling)",
            ),
        }
    }
}

/// The outcome of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Everything seen fits a session of our own: a direct connection or a
    /// session pool. Not proof: on a busy transaction pool, other clients
    /// can take and return server connections in just the order that hides
    /// it, and a pooler that pins a session once it sees session state
    /// would look like this too (and then protect the lock).
    Pinned,
    /// Session state does not stay with this client.
    Pooled(Evidence),
    /// The probe session could not be opened, or did not answer in time.
    Undetermined { reason: String },
}

/// How long the check waits.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// For the probe session to connect (at most the settings' timeout).
    pub connect: Duration,
    /// For each answer of the probe session.
    pub answer: Duration,
    /// For our own read while the probe holds its transaction open, before
    /// the probe lets go of its server connection.
    pub hold: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            connect: Duration::from_secs(5),
            answer: Duration::from_secs(3),
            hold: Duration::from_secs(2),
        }
    }
}

/// Refuses a session whose state would not stay with it. An undetermined
/// check is logged and let through: the locks are confirmed again where
/// they are used (`lock::confirm`).
pub fn require_own_session(
    client: &mut Client,
    settings: &ConnectionSettings,
) -> Result<(), PoolerError> {
    match check(client, settings, &Waits::default())? {
        Finding::Pinned => Ok(()),
        Finding::Pooled(evidence) => {
            tracing::debug!("transaction pooling: {evidence}");
            Err(PoolerError::TransactionPooling(evidence))
        }
        Finding::Undetermined { reason } => {
            tracing::warn!(
                "could not tell whether the connection goes through a pooler in transaction mode ({reason}); going on"
            );
            Ok(())
        }
    }
}

/// Looks for proof that `client`'s session state does not stay with it.
/// `settings` open the probe session. `client` must be outside a
/// transaction; it is left outside one.
pub fn check(
    client: &mut Client,
    settings: &ConnectionSettings,
    waits: &Waits,
) -> Result<Finding, postgres::Error> {
    match observe(client, settings, waits) {
        Ok(()) => Ok(Finding::Pinned),
        Err(Stop::Found(finding)) => Ok(finding),
        Err(Stop::Query(error)) => Err(error),
    }
}

/// Why the observation ended before its last step.
enum Stop {
    Found(Finding),
    Query(postgres::Error),
}

impl From<Finding> for Stop {
    fn from(finding: Finding) -> Self {
        Stop::Found(finding)
    }
}

impl From<postgres::Error> for Stop {
    fn from(error: postgres::Error) -> Self {
        Stop::Query(error)
    }
}

fn observe(client: &mut Client, settings: &ConnectionSettings, waits: &Waits) -> Result<(), Stop> {
    let mut seen = Seen::default();
    // Ours; then the probe's, in a transaction that pins its connection.
    seen.ours(backend_pid(client)?)?;
    let mut probe = Probe::start(settings, waits);
    seen.probes(probe.begin()?)?;
    // Ours again while the probe holds its server connection. With no other
    // connection to give us, the pooler makes us wait for the probe: past
    // `hold`, the probe lets go, and we get its connection.
    let reader = &mut *client;
    let (pid, waited) = std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel();
        scope.spawn(move || {
            let _ = sender.send(backend_pid(reader));
        });
        match receiver.recv_timeout(waits.hold) {
            Ok(result) => Ok((result, false)),
            Err(_) => {
                let ended = probe.end();
                let result = receiver
                    .recv()
                    .expect("the reading thread sends before it ends");
                ended.map(|()| (result, true))
            }
        }
    })?;
    seen.ours(pid?)?;
    if waited {
        return Err(Stop::Found(Finding::Undetermined {
            reason: format!(
                "reading this session's server process took over {}s while a second session held a transaction open",
                waits.hold.as_secs_f64()
            ),
        }));
    }
    for _ in 0..ROUNDS {
        // The probe takes a connection right after releasing its own: a
        // pool that hands them out in turn gives it ours.
        probe.end()?;
        seen.probes(probe.begin()?)?;
        // We take one right after the probe released its own: a pool that
        // hands out the most recently released first gives us the probe's.
        probe.end()?;
        seen.ours(backend_pid(client)?)?;
        seen.probes(probe.begin()?)?;
    }
    probe.end()?;
    Ok(())
}

/// Rounds after the first reads: each is five short statements, and gives
/// other clients of a busy pool another chance not to hide the pooling.
const ROUNDS: usize = 2;

/// Every pid each session has seen; the first that gives pooling away ends
/// the check (as an `Err` of the finding, for `?`).
#[derive(Default)]
struct Seen {
    ours: Option<i32>,
    probe: Option<i32>,
}

impl Seen {
    fn ours(&mut self, pid: i32) -> Result<(), Finding> {
        Self::record(&mut self.ours, self.probe, pid)
    }

    fn probes(&mut self, pid: i32) -> Result<(), Finding> {
        Self::record(&mut self.probe, self.ours, pid)
    }

    fn record(mine: &mut Option<i32>, other: Option<i32>, pid: i32) -> Result<(), Finding> {
        if pid <= 0 {
            return Err(Finding::Undetermined {
                reason: "pg_backend_pid() gave no process id".into(),
            });
        }
        if other == Some(pid) {
            return Err(Finding::Pooled(Evidence::Shared { pid }));
        }
        match *mine {
            Some(from) if from != pid => Err(Finding::Pooled(Evidence::Moved { from, to: pid })),
            _ => {
                *mine = Some(pid);
                Ok(())
            }
        }
    }
}

/// The server process running this session's statements now, read in a
/// transaction of its own.
pub fn backend_pid(client: &mut Client) -> Result<i32, postgres::Error> {
    let messages = client.simple_query("SELECT pg_backend_pid()")?;
    Ok(pid_of(&messages))
}

fn pid_of(messages: &[SimpleQueryMessage]) -> i32 {
    messages
        .iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0),
            _ => None,
        })
        .and_then(|text| text.parse().ok())
        .unwrap_or_default()
}

/// What the main thread asks of the probe.
enum Step {
    /// Open a transaction and read the pid in it.
    Begin,
    /// End the transaction.
    End,
}

/// What the probe answers.
enum Answer {
    Connected,
    Pid(i32),
    Ended,
    Failed(Finding),
}

/// The second session, on a thread of its own so that no wait on it is
/// unbounded: a probe that does not answer in time is left behind, and its
/// thread ends (closing the session) once its statement returns.
struct Probe {
    answers: Receiver<Answer>,
    steps: Sender<Step>,
    waits: Waits,
    connected: bool,
    in_transaction: bool,
}

impl Probe {
    fn start(settings: &ConnectionSettings, waits: &Waits) -> Probe {
        let mut settings = settings.clone();
        settings.connect_timeout = settings.connect_timeout.min(waits.connect);
        let (answer_sender, answers) = mpsc::channel();
        let (steps, step_receiver) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("pgm-pooler-probe".into())
            .spawn(move || probe_session(&settings, &answer_sender, &step_receiver));
        if let Err(error) = spawned {
            tracing::debug!("could not start the probe thread: {error}");
        }
        Probe {
            answers,
            steps,
            waits: *waits,
            connected: false,
            in_transaction: false,
        }
    }

    /// Opens a transaction on the probe; its pid.
    fn begin(&mut self) -> Result<i32, Finding> {
        let _ = self.steps.send(Step::Begin);
        if !self.connected {
            // Connecting has a timeout of its own; a little more for the thread.
            match self.receive(self.waits.connect + Duration::from_secs(1))? {
                Answer::Connected => self.connected = true,
                _ => return Err(out_of_step()),
            }
        }
        match self.receive(self.waits.answer)? {
            Answer::Pid(pid) => {
                self.in_transaction = true;
                Ok(pid)
            }
            _ => Err(out_of_step()),
        }
    }

    /// Ends the probe's transaction; returns once its server connection is
    /// back in the pool.
    fn end(&mut self) -> Result<(), Finding> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        let _ = self.steps.send(Step::End);
        match self.receive(self.waits.answer)? {
            Answer::Ended => Ok(()),
            _ => Err(out_of_step()),
        }
    }

    fn receive(&self, wait: Duration) -> Result<Answer, Finding> {
        match self.answers.recv_timeout(wait) {
            Ok(Answer::Failed(finding)) => Err(finding),
            Ok(answer) => Ok(answer),
            Err(RecvTimeoutError::Timeout) => Err(Finding::Undetermined {
                reason: format!(
                    "a second session did not answer within {}s",
                    wait.as_secs_f64()
                ),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(out_of_step()),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // Closing the session in a transaction would make a pooler discard
        // the server connection; the thread ends the transaction first.
        if self.in_transaction {
            let _ = self.steps.send(Step::End);
        }
    }
}

fn out_of_step() -> Finding {
    Finding::Undetermined {
        reason: "the second session ended without an answer".into(),
    }
}

/// Runs the steps it is sent until the channel closes; then closes the
/// session (which ends a transaction still open).
fn probe_session(settings: &ConnectionSettings, answers: &Sender<Answer>, steps: &Receiver<Step>) {
    let failed = |reason: String| Answer::Failed(Finding::Undetermined { reason });
    let mut client = match connect(settings) {
        Ok(client) => client,
        Err(error) => {
            let _ = answers.send(failed(format!("a second session failed: {error}")));
            return;
        }
    };
    let _ = answers.send(Answer::Connected);
    let mut first = true;
    while let Ok(step) = steps.recv() {
        let answer = match step {
            // One round trip; the transaction stays open after it, holding
            // the server connection.
            Step::Begin => match client.simple_query("BEGIN; SELECT pg_backend_pid()") {
                Ok(messages) => Answer::Pid(pid_of(&messages)),
                Err(error) if says_statement_pooling(&error) => {
                    Answer::Failed(Finding::Pooled(Evidence::NoTransactions))
                }
                Err(error) if first && error.is_closed() => refuses_transactions(settings),
                Err(error) => failed(format!("a second session failed: {error}")),
            },
            Step::End => match client.simple_query("ROLLBACK") {
                Ok(_) => Answer::Ended,
                Err(error) => failed(format!("a second session failed: {error}")),
            },
        };
        first = false;
        let done = matches!(answer, Answer::Failed(_));
        if answers.send(answer).is_err() || done {
            return;
        }
    }
}

/// PgBouncer's error to a client that opens a transaction in statement
/// mode, when it reaches us before the connection closes.
fn says_statement_pooling(error: &postgres::Error) -> bool {
    error
        .as_db_error()
        .is_some_and(|db| db.message().contains("statement pooling mode"))
}

/// The probe's connection closed when it opened a transaction: statement
/// pooling (PgBouncer closes a client that opens a transaction block, and
/// the error it sends first does not always reach us), or a coincidence. A fresh
/// session that answers a query and then closes at `BEGIN` again tells.
fn refuses_transactions(settings: &ConnectionSettings) -> Answer {
    let closes_at_begin = connect(settings).is_ok_and(|mut client| {
        client.simple_query("SELECT 1").is_ok()
            && client
                .simple_query("BEGIN")
                .is_err_and(|error| error.is_closed() || says_statement_pooling(&error))
    });
    Answer::Failed(if closes_at_begin {
        Finding::Pooled(Evidence::NoTransactions)
    } else {
        Finding::Undetermined {
            reason: "a second session's connection closed when it opened a transaction".into(),
        }
    })
}
