//! Acceptance runs of `pgm partitions convert`, too long for CI (minutes
//! each): `scripts/acceptance-check` runs them (`cargo test --release
//! --features acceptance --test convert_acceptance`).
//!
//! * For each phase (prepare, backfill, replay, verify, swap), 30 SIGKILLs
//!   at random instants inside that phase while a writer inserts, updates
//!   (also the key) and deletes, each run started again after the kill;
//!   then the conversion is run to the end and `--drop-old`: the table
//!   equals its twin (a plain table receiving the same writes in the same
//!   transactions), no write failed or missed its row, and nothing is left
//!   over (see `assert_no_leftovers`).
//! * A 2,000,000-row table with a foreign key from another table, a view and
//!   an owned sequence, converted under the same writer: the same checks;
//!   the writer's latency is printed, not asserted.
//!
//! Random instants and the writer's choices come from a seed printed first
//! (`PGM_ACCEPTANCE_SEED=<seed>` runs the same draws again).
#![cfg(feature = "acceptance")]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use support::{Project, TestDb, column};

const AT: &str = "2026-11-22T10:00:00Z";

const POLICY: &str = r#"
[defaults]
lock_timeout = "200ms"
lock_retries = 20

[[table]]
name = "public.orders"
key = "created_at"
interval = "monthly"
premake = 2
"#;

/// Rows the refunds reference: the writer leaves them alone.
const RESERVED: i64 = 1000;

/// Keys span 400 days from 2025-09-01: partitions 2025-09 through 2026-11
/// (AT) and premake 2.
const PARTITIONS: usize = 17;

/// Kills landed inside each phase.
const KILLS: usize = 30;

/// `orders` with `rows` rows, an owned sequence, `refunds` with a foreign
/// key to it, a view on it, and its twin.
fn schema(rows: i64) -> String {
    format!(
        "CREATE TABLE orders (id bigserial, created_at timestamptz NOT NULL, customer int NOT NULL, \
           amount numeric(10,2) NOT NULL DEFAULT 0, note text, PRIMARY KEY (id, created_at)); \
         CREATE INDEX orders_customer_idx ON orders (customer); \
         INSERT INTO orders (created_at, customer, amount, note) \
           SELECT timestamptz '2025-09-01' + g * (interval '400 days' / {rows}), g % 97, g % 1000, 'n' || g \
           FROM generate_series(1, {rows}) g; \
         CREATE TABLE refunds (id bigint PRIMARY KEY, order_id bigint NOT NULL, order_created_at timestamptz NOT NULL, \
           CONSTRAINT refunds_order_fkey FOREIGN KEY (order_id, order_created_at) REFERENCES orders); \
         CREATE INDEX ON refunds (order_id, order_created_at); \
         INSERT INTO refunds SELECT id, id, created_at FROM orders WHERE id <= {RESERVED}; \
         CREATE VIEW big_orders AS SELECT id, created_at, amount FROM orders WHERE amount > 500; \
         CREATE TABLE orders_twin AS TABLE orders; ALTER TABLE orders_twin ADD PRIMARY KEY (id, created_at); \
         ANALYZE;"
    )
}

/// The seed of the draws: PGM_ACCEPTANCE_SEED, else a fresh one; printed.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("PGM_ACCEPTANCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!(
        "{test}: seed {seed} (PGM_ACCEPTANCE_SEED={seed} draws the same instants and writes again)"
    );
    seed
}

fn setup(rows: i64) -> (TestDb, Project) {
    let db = TestDb::new();
    db.connect().batch_execute(&schema(rows)).unwrap();
    let project = Project::new();
    std::fs::write(project.path().join("partman.toml"), POLICY).unwrap();
    (db, project)
}

/// What the writer saw.
#[derive(Default)]
struct Written {
    /// Start and duration of each write.
    samples: Vec<(Instant, Duration)>,
    failed: Vec<String>,
    /// Writes whose statement touched another number of rows in `orders`
    /// than in the twin.
    missed: Vec<String>,
}

impl Written {
    /// (max, p99) in ms of the writes started in [from, to].
    fn latency(&self, from: Instant, to: Instant) -> (f64, f64, usize) {
        let mut window: Vec<Duration> = self
            .samples
            .iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, d)| *d)
            .collect();
        window.sort();
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let max = window.last().map_or(0.0, ms);
        let p99 = window
            .get(window.len() * 99 / 100)
            .or(window.last())
            .map_or(0.0, ms);
        (max, p99, window.len())
    }
}

/// A writer at `per_second` writes/s, each one transaction applying the same
/// insert, update, key update or delete of a random row to `orders` and to
/// `orders_twin`; keys stay within the prepared partitions.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Written>,
}

impl Writer {
    fn start(db: &TestDb, seed: u64, per_second: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let settings = db.settings();
        let thread = std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut client = pgm::db::connect(&settings).unwrap();
            let mut top: i64 = client
                .query_one("SELECT max(id) FROM orders_twin", &[])
                .unwrap()
                .get(0);
            let period = Duration::from_micros(1_000_000 / per_second);
            let mut written = Written::default();
            let mut next = Instant::now();
            while !thread_stop.load(Ordering::Relaxed) {
                let id = rng.i64(RESERVED + 1..=top);
                let at = rng.f64() * 399.0 * 86_400.0;
                let kind = rng.u8(0..10);
                let started = Instant::now();
                let result = write(&mut client, kind, id, at);
                written.samples.push((started, started.elapsed()));
                match result {
                    Ok((what, table, twin, new_id)) => {
                        if table != twin {
                            written
                                .missed
                                .push(format!("{what} of id {id}: {table} row(s), twin {twin}"));
                        }
                        top = top.max(new_id.unwrap_or(0));
                    }
                    Err(error) => {
                        written.failed.push(error.to_string());
                        if client.is_closed() {
                            client = pgm::db::connect(&settings).unwrap();
                        }
                    }
                }
                next += period;
                match next.checked_duration_since(Instant::now()) {
                    Some(wait) => std::thread::sleep(wait),
                    None => next = Instant::now(),
                }
            }
            written
        });
        Writer { stop, thread }
    }

    fn finish(self) -> Written {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

type WriteOutcome = (&'static str, u64, u64, Option<i64>);

fn write(
    client: &mut postgres::Client,
    kind: u8,
    id: i64,
    at: f64,
) -> Result<WriteOutcome, postgres::Error> {
    let mut tx = client.transaction()?;
    let key = "timestamptz '2025-09-01' + $2::float8 * interval '1 second'";
    let outcome = match kind {
        0..=2 => {
            let row = tx.query_one(
                format!(
                    "INSERT INTO orders (created_at, customer, amount, note) VALUES ({key}, $1, 1, 'w') RETURNING id"
                )
                .as_str(),
                &[&((id % 97) as i32), &at],
            )?;
            let new_id: i64 = row.get(0);
            let twin = tx.execute(
                format!(
                    "INSERT INTO orders_twin (id, created_at, customer, amount, note) VALUES ($3, {key}, $1, 1, 'w')"
                )
                .as_str(),
                &[&((id % 97) as i32), &at, &new_id],
            )?;
            ("insert", 1, twin, Some(new_id))
        }
        3..=5 => {
            let sql = "SET amount = amount + 1, note = note || 'u' WHERE id = $1";
            (
                "update",
                tx.execute(format!("UPDATE orders {sql}").as_str(), &[&id])?,
                tx.execute(format!("UPDATE orders_twin {sql}").as_str(), &[&id])?,
                None,
            )
        }
        6..=7 => {
            let sql = format!("SET created_at = {key} WHERE id = $1");
            (
                "key update",
                tx.execute(format!("UPDATE orders {sql}").as_str(), &[&id, &at])?,
                tx.execute(format!("UPDATE orders_twin {sql}").as_str(), &[&id, &at])?,
                None,
            )
        }
        _ => (
            "delete",
            tx.execute("DELETE FROM orders WHERE id = $1", &[&id])?,
            tx.execute("DELETE FROM orders_twin WHERE id = $1", &[&id])?,
            None,
        ),
    };
    tx.commit()?;
    Ok(outcome)
}

/// A `pgm partitions convert` running in the background, its output lines
/// read as they come.
struct Run {
    child: Child,
    lines: mpsc::Receiver<(Duration, String)>,
    seen: Vec<(Duration, String)>,
    stderr: Arc<Mutex<String>>,
}

impl Run {
    fn spawn(project: &Project, db: &TestDb, args: &[&str]) -> Run {
        let mut all = vec!["partitions", "convert", "public.orders", "--at", AT];
        all.extend_from_slice(args);
        let mut child = project.spawn(db, &all);
        let started = Instant::now();
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send((started.elapsed(), line)).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Run {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Reads lines until one satisfies `hit`: false when the output ended
    /// (or `timeout` passed) first.
    fn wait_for(&mut self, hit: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = hit(&line.1);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Waits for the end: the exit code, stdout and stderr.
    fn finish(mut self) -> (Option<i32>, String, String) {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(line);
        }
        let stdout = self
            .seen
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        // The reader of stderr ends with the process.
        std::thread::sleep(Duration::from_millis(20));
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code(), stdout, stderr)
    }
}

/// Runs the conversion with `args` to its end, again while another run's
/// session (a killed one's, not gone yet) still holds the table's lock.
fn run_to_end(project: &Project, db: &TestDb, args: &[&str]) -> (String, Vec<(Duration, String)>) {
    for _ in 0..50 {
        let mut run = Run::spawn(project, db, args);
        run.drain();
        let status = run.child.wait().unwrap();
        let _ = status;
        let lines = {
            let mut seen = std::mem::take(&mut run.seen);
            while let Ok(line) = run.lines.recv_timeout(Duration::from_secs(10)) {
                seen.push(line);
            }
            seen
        };
        std::thread::sleep(Duration::from_millis(20));
        let stderr = run.stderr.lock().unwrap().clone();
        let stdout: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        match status.code() {
            Some(0) => return (stdout, lines),
            _ if stderr.contains("holds its lock") => {
                std::thread::sleep(Duration::from_millis(200));
            }
            code => panic!("pgm partitions convert {args:?} exited {code:?}:\n{stdout}\n{stderr}"),
        }
    }
    panic!("the table's lock stayed taken for 50 runs");
}

fn one(db: &TestDb, sql: &str) -> String {
    column(&mut db.connect(), sql).join(",")
}

/// The journal's phase for `orders`, `none` without a journal row.
fn journal_phase(db: &TestDb) -> String {
    let mut client = db.connect();
    if column(&mut client, "SELECT to_regclass('pgm_convert') IS NULL") == ["t"] {
        return "none".into();
    }
    column(
        &mut client,
        "SELECT coalesce((SELECT phase FROM pgm_convert WHERE source = '\"public\".\"orders\"'), 'none')",
    )
    .join("")
}

/// The table equals its twin, row for row.
fn assert_equals_twin(db: &TestDb, context: &str) {
    let differing = one(
        db,
        "SELECT (SELECT count(*) FROM (TABLE orders EXCEPT ALL TABLE orders_twin) d) || ' / ' || \
         (SELECT count(*) FROM (TABLE orders_twin EXCEPT ALL TABLE orders) d) || ' of ' || \
         (SELECT count(*) FROM orders_twin)",
    );
    assert!(
        differing.starts_with("0 / 0 of "),
        "{context}: rows in orders and not in its twin / in the twin and not in orders: {differing}"
    );
}

fn assert_writes_ok(written: &Written, context: &str) {
    assert!(
        written.failed.is_empty() && written.missed.is_empty(),
        "{context}: {} failed write(s) {:?}; {} write(s) missed their row {:?}",
        written.failed.len(),
        written.failed.iter().take(5).collect::<Vec<_>>(),
        written.missed.len(),
        written.missed.iter().take(5).collect::<Vec<_>>()
    );
}

/// After `--drop-old`, what a finished conversion leaves is the
/// partitioned table with its partitions, and nothing of the conversion:
/// no `_partitioned`, `_unpartitioned` or log table, no stray table or
/// partition, no capture trigger or function, no journal row, no invalid
/// index or constraint, no advisory lock, no pgm session, no prepared
/// transaction; the view reads the partitioned table, the foreign key
/// points at it and the sequence belongs to it.
fn assert_no_leftovers(db: &TestDb, context: &str) {
    let mut client = db.connect();
    let gone = support::wait_for(
        &mut client,
        "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() \
           AND application_name = 'pgm') \
         AND NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory')",
        20,
    );
    let checks = [
        (
            "pgm sessions or advisory locks",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgm'",
            "0",
        ),
        (
            "relations besides the table, its partitions, the twin, refunds, the view, the sequence and the journal",
            "SELECT coalesce(string_agg(relname, ', ' ORDER BY relname), '') FROM pg_class \
             WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
               AND relname NOT IN ('orders', 'orders_twin', 'refunds', 'big_orders', 'orders_id_seq', 'pgm_convert') \
               AND oid NOT IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'orders'::regclass)",
            "",
        ),
        (
            "objects named by the conversion",
            "SELECT coalesce(string_agg(relname, ', '), '') FROM pg_class \
             WHERE relnamespace = 'public'::regnamespace AND relname ~ '_(un)?partitioned|_pgm_'",
            "",
        ),
        (
            "the partitions",
            "SELECT count(*) || ' ' || bool_and(c.relname ~ '^orders_p\\d{4}_\\d{2}$' AND c.relkind = 'r') \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'orders'::regclass",
            &format!("{PARTITIONS} true"),
        ),
        (
            "the kind of orders",
            "SELECT relkind::text FROM pg_class WHERE oid = 'orders'::regclass",
            "p",
        ),
        (
            "triggers",
            "SELECT coalesce(string_agg(tgname, ', '), '') FROM pg_trigger WHERE NOT tgisinternal",
            "",
        ),
        (
            "functions",
            "SELECT coalesce(string_agg(proname, ', '), '') FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
            "",
        ),
        ("journal rows", "SELECT count(*) FROM pgm_convert", "0"),
        (
            "invalid indexes",
            "SELECT coalesce(string_agg(indexrelid::regclass::text, ', '), '') FROM pg_index \
             WHERE NOT indisvalid OR NOT indisready",
            "",
        ),
        (
            // PostgreSQL 15 leaves the per-partition clones of a foreign key to
            // a partitioned table NOT VALID when the key is validated (they
            // are not enforced apart from it): only the keys themselves count.
            "constraints not validated",
            "SELECT coalesce(string_agg(conname, ', '), '') FROM pg_constraint \
             WHERE NOT convalidated AND conparentid = 0",
            "",
        ),
        (
            "advisory locks",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
            "0",
        ),
        (
            "prepared transactions",
            "SELECT count(*) FROM pg_prepared_xacts",
            "0",
        ),
        (
            "the view's table",
            "SELECT string_agg(DISTINCT d.refobjid::regclass::text || ' ' || c.relkind::text, ', ') \
             FROM pg_rewrite r JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass \
             JOIN pg_class c ON c.oid = d.refobjid \
             WHERE r.ev_class = 'big_orders'::regclass AND d.refobjid <> r.ev_class",
            "orders p",
        ),
        (
            "the foreign key",
            "SELECT confrelid::regclass::text || ' ' || convalidated FROM pg_constraint WHERE conname = 'refunds_order_fkey'",
            "orders true",
        ),
        (
            "the sequence's owner",
            "SELECT pg_get_serial_sequence('orders', 'id')",
            "public.orders_id_seq",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, sql, expected) in checks {
        let found = column(&mut client, sql).join(",");
        if found != expected {
            wrong.push(format!("{what}: {found:?}, expected {expected:?}"));
        }
    }
    assert!(
        gone && wrong.is_empty(),
        "{context}: left over:\n  {}",
        wrong.join("\n  ")
    );
    // The sequence goes on past every id.
    assert_eq!(
        one(
            db,
            "SELECT (SELECT last_value FROM orders_id_seq) >= (SELECT max(id) FROM orders)"
        ),
        "t",
        "{context}"
    );
}

/// How to land kills inside one phase.
struct PhaseKills {
    phase: &'static str,
    /// `--until` of the run making the state each round starts from
    /// (the phase before; none for prepare).
    from: Option<&'static str>,
    /// The killed runs' arguments.
    args: &'static [&'static str],
    /// The output line after which the run is in the phase.
    starts: fn(&str) -> bool,
    /// An output line saying the phase is over (a kill after it missed).
    ends: fn(&str) -> bool,
    /// The kill window is the phase's length (measured by a first run
    /// without a kill) divided by this: small for the backfill, so 30
    /// kills fit in one copy.
    share: u32,
    /// Whether a run can go through the phase again once it is done (replay
    /// and verify run again on every run; prepare, backfill and swap do not,
    /// so a round ends when the journal is past them).
    again: bool,
    /// A pause before each run, for the writer to fill the log (replay).
    refill: Option<(u64, u64)>,
    /// A journal phase to kill at as soon as it shows (every other run):
    /// the prepare's two transactions leave only an instant between them,
    /// which random instants seldom hit.
    watch: Option<&'static str>,
}

/// Polls the journal until it shows `phase`: false if the run ended or
/// `timeout` passed first.
fn watch_journal(
    watcher: &mut postgres::Client,
    run: &mut Run,
    phase: &str,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let sql = "SELECT phase FROM pgm_convert WHERE source = '\"public\".\"orders\"'";
    while Instant::now() < deadline {
        if run.child.try_wait().unwrap().is_some() {
            return false;
        }
        // The journal table does not exist before the first prepare.
        let now = column_or_none(watcher, sql);
        if now.as_deref() == Some(phase) {
            return true;
        }
    }
    false
}

fn column_or_none(client: &mut postgres::Client, sql: &str) -> Option<String> {
    client
        .simple_query(sql)
        .ok()?
        .into_iter()
        .find_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
}

fn past(phase: &str, journal: &str) -> bool {
    match phase {
        "prepare" => ["capturing", "backfilled", "swapped"].contains(&journal),
        "backfill" => ["backfilled", "swapped"].contains(&journal),
        "swap" => journal == "swapped",
        _ => false,
    }
}

fn kills_in(spec: &PhaseKills) {
    let seed = seed(spec.phase);
    let mut rng = fastrand::Rng::with_seed(seed);
    let (base, project) = setup(150_000);
    base.connect().batch_execute("VACUUM ANALYZE").unwrap();
    // The state each round starts from: the phases before this one done.
    let template = TestDb::from_template(&base);
    if let Some(until) = spec.from {
        run_to_end(&project, &template, &["--until", until]);
    }
    // The phase's length, from a run without a kill, with the writer.
    let window = {
        let db = TestDb::from_template(&template);
        let writer = Writer::start(&db, rng.u64(..), 200);
        std::thread::sleep(Duration::from_millis(
            spec.refill.map_or(500, |(_, most)| most),
        ));
        let mut run = Run::spawn(&project, &db, spec.args);
        assert!(
            run.wait_for(spec.starts, Duration::from_secs(120)),
            "{}: seed {seed}: the phase never started: {:?}",
            spec.phase,
            run.seen
        );
        let started = Instant::now();
        let (code, stdout, stderr) = run.finish();
        assert_eq!(
            code,
            Some(0),
            "{}: seed {seed}:\n{stdout}\n{stderr}",
            spec.phase
        );
        let length = started.elapsed();
        assert_writes_ok(&writer.finish(), spec.phase);
        (length / spec.share).max(Duration::from_millis(5))
    };
    println!(
        "{}: kill window {} ms after the phase starts",
        spec.phase,
        window.as_millis()
    );
    let (mut kills, mut rounds, mut missed, mut attempts, mut busy) = (0, 0, 0, 0, 0);
    // Each kill's instant and the journal's phase it left, and a tally.
    let mut landed: Vec<String> = Vec::new();
    let mut left_at = std::collections::BTreeMap::<String, usize>::new();
    while kills < KILLS {
        rounds += 1;
        let context = format!(
            "{}: seed {seed}, round {rounds}, after {kills} kill(s)",
            spec.phase
        );
        let db = TestDb::from_template(&template);
        let writer = Writer::start(&db, rng.u64(..), 200);
        std::thread::sleep(Duration::from_millis(300));
        loop {
            attempts += 1;
            assert!(
                attempts < 40 * KILLS,
                "{context}: too many attempts ({attempts})"
            );
            if let Some((least, most)) = spec.refill {
                std::thread::sleep(Duration::from_millis(rng.u64(least..=most)));
            }
            let delay = Duration::from_micros(rng.u64(0..=window.as_micros() as u64));
            // Every other run of a phase with a watched journal phase is
            // killed as soon as the journal shows it, not at a random instant.
            let mut watching = spec
                .watch
                .filter(|_| attempts % 2 == 0)
                .map(|_| db.connect());
            let mut run = Run::spawn(&project, &db, spec.args);
            if !run.wait_for(spec.starts, Duration::from_secs(120)) {
                // Ended before the phase: a killed run's session still held
                // the table's lock.
                let (code, stdout, stderr) = run.finish();
                assert!(
                    code == Some(0) || stderr.contains("holds its lock"),
                    "{context}: exit {code:?}:\n{stdout}\n{stderr}"
                );
                busy += 1;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let since = Instant::now();
            let (delay, watched) = match (watching.as_mut(), spec.watch) {
                (Some(watcher), Some(phase)) => {
                    let seen = watch_journal(watcher, &mut run, phase, window * 3);
                    (since.elapsed(), seen)
                }
                _ => {
                    std::thread::sleep(delay.saturating_sub(since.elapsed()));
                    (delay, true)
                }
            };
            run.drain();
            let over = !watched || run.seen.iter().any(|(_, l)| (spec.ends)(l));
            if over || run.child.try_wait().unwrap().is_some() {
                missed += 1;
                let (code, stdout, stderr) = run.finish();
                assert_eq!(code, Some(0), "{context}:\n{stdout}\n{stderr}");
            } else {
                run.child.kill().unwrap(); // SIGKILL
                run.child.wait().unwrap();
                kills += 1;
                let journal = journal_phase(&db);
                landed.push(format!("{} ms: {journal}", delay.as_millis()));
                *left_at.entry(journal).or_insert(0) += 1;
            }
            if kills >= KILLS || (!spec.again && past(spec.phase, &journal_phase(&db))) {
                break;
            }
        }
        let context = format!(
            "{}: seed {seed}, round {rounds}, after {kills} kill(s)",
            spec.phase
        );
        // Then to the end, while the writer goes on; then the old table dropped.
        let journal = journal_phase(&db);
        run_to_end(&project, &db, &[]);
        std::thread::sleep(Duration::from_millis(300));
        assert_equals_twin(&db, &format!("{context} (journal {journal})"));
        run_to_end(&project, &db, &["--drop-old"]);
        std::thread::sleep(Duration::from_millis(300));
        let written = writer.finish();
        assert_writes_ok(&written, &context);
        assert_equals_twin(&db, &context);
        assert_no_leftovers(&db, &context);
        println!(
            "{}: round {rounds} converged ({} writes); {kills} kill(s) so far",
            spec.phase,
            written.samples.len()
        );
    }
    println!(
        "{}: {kills} kills in {rounds} round(s), {attempts} runs ({busy} found the table's lock still held by \
         a killed run's session, {missed} ended before their kill); each round converged with its twin and \
         left nothing; the journal after the kills: {left_at:?}; each kill's instant in the phase and the \
         journal it left: {}",
        spec.phase,
        landed.join(", ")
    );
}

#[test]
fn thirty_kills_in_the_prepare() {
    kills_in(&PhaseKills {
        phase: "prepare",
        from: None,
        args: &["--until", "prepare"],
        starts: |l| l.starts_with("check:"),
        ends: |_| false,
        share: 1,
        again: false,
        refill: None,
        watch: Some("prepared"),
    });
}

#[test]
fn thirty_kills_in_the_backfill() {
    kills_in(&PhaseKills {
        phase: "backfill",
        from: Some("prepare"),
        args: &["--until", "backfill", "--batch-size", "100"],
        starts: |l| l.starts_with("journal:"),
        ends: |l| l.starts_with("backfill:"),
        share: 40,
        again: false,
        refill: None,
        watch: None,
    });
}

#[test]
fn thirty_kills_in_the_replay() {
    kills_in(&PhaseKills {
        phase: "replay",
        from: Some("backfill"),
        args: &["--until", "replay", "--batch-size", "20"],
        starts: |l| l.starts_with("journal:"),
        ends: |l| l.starts_with("replay:"),
        share: 1,
        again: true,
        refill: Some((300, 1500)),
        watch: None,
    });
}

#[test]
fn thirty_kills_in_the_verify() {
    kills_in(&PhaseKills {
        phase: "verify",
        from: Some("backfill"),
        args: &["--until", "verify"],
        starts: |l| l.starts_with("replay:"),
        ends: |l| l.starts_with("verify:"),
        share: 1,
        again: true,
        refill: None,
        watch: None,
    });
}

#[test]
fn thirty_kills_in_the_swap() {
    kills_in(&PhaseKills {
        phase: "swap",
        from: Some("verify"),
        args: &[],
        starts: |l| l.contains("applied before the swap"),
        ends: |_| false,
        share: 1,
        again: false,
        refill: None,
        watch: None,
    });
}

/// 2,000,000 rows, a foreign key from `refunds`, a view and an owned
/// sequence, converted with the defaults under the writer at 200/s.
#[test]
fn two_million_rows_with_a_foreign_key_a_view_and_a_sequence_under_writes() {
    let seed = seed("2M");
    let (db, project) = setup(2_000_000);
    db.connect().batch_execute("VACUUM ANALYZE").unwrap();
    let writer = Writer::start(&db, seed, 200);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (stdout, lines) = run_to_end(&project, &db, &[]);
    let ended = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let written = writer.finish();
    let context = format!("2M: seed {seed}");
    assert!(
        stdout.contains("swap: public.orders is partitioned"),
        "{stdout}"
    );
    assert_writes_ok(&written, &context);
    assert_equals_twin(&db, &context);
    let (max, p99, count) = written.latency(started, ended);
    let swap = lines
        .iter()
        .find(|(_, l)| l.contains("applied before the swap"))
        .zip(lines.iter().find(|(_, l)| l.starts_with("swap:")))
        .map(|((from, _), (to, _))| {
            written.latency(started + *from, started + *to + Duration::from_millis(300))
        });
    println!(
        "2M: converted in {:.1} s; the writer: {count} writes, worst {max:.0} ms, p99 {p99:.0} ms, 0 failed, \
         0 missed their row; around the swap: worst {:.0} ms (lock_timeout 200 ms)",
        (ended - started).as_secs_f64(),
        swap.map_or(0.0, |s| s.0)
    );
    for (at, line) in &lines {
        println!("  {:>8.1} s  {line}", at.as_secs_f64());
    }
    run_to_end(&project, &db, &["--drop-old"]);
    assert_no_leftovers(&db, &context);
}

/// `--unswap` under writes gives the table back as it was before the
/// swap, foreign keys to it validated as they were; converting again and
/// `--drop-old` then leave nothing.
#[test]
fn unswap_under_writes_gives_the_table_back_with_its_foreign_keys_valid() {
    let seed = seed("unswap");
    let (db, project) = setup(20_000);
    let writer = Writer::start(&db, seed, 200);
    std::thread::sleep(Duration::from_millis(300));
    run_to_end(&project, &db, &[]);
    std::thread::sleep(Duration::from_millis(300));
    run_to_end(&project, &db, &["--unswap"]);
    std::thread::sleep(Duration::from_millis(300));
    let context = format!("unswap: seed {seed}");
    assert_eq!(
        one(
            &db,
            "SELECT relkind::text || ' ' || (SELECT confrelid::regclass::text || ' ' || convalidated \
             FROM pg_constraint WHERE conname = 'refunds_order_fkey') FROM pg_class WHERE oid = 'orders'::regclass"
        ),
        "r orders true",
        "{context}: the foreign key to the table given back"
    );
    assert_equals_twin(&db, &context);
    run_to_end(&project, &db, &[]);
    run_to_end(&project, &db, &["--drop-old"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_writes_ok(&writer.finish(), &context);
    assert_equals_twin(&db, &context);
    assert_no_leftovers(&db, &context);
}

/// Kills at random instants in `--unswap` and in `--drop-old` under the
/// writer: each is run again until it is done, then the table equals its
/// twin and nothing is left.
#[test]
fn kills_in_unswap_and_drop_old_under_writes() {
    let seed = seed("unswap and drop-old");
    let mut rng = fastrand::Rng::with_seed(seed);
    let (db, project) = setup(20_000);
    let writer = Writer::start(&db, rng.u64(..), 200);
    std::thread::sleep(Duration::from_millis(300));
    run_to_end(&project, &db, &[]);
    let mut kills = Vec::new();
    for (args, done) in [
        (&["--unswap"][..], "backfilled"),
        (&[][..], "swapped"),
        (&["--drop-old"][..], "none"),
    ] {
        for _ in 0..10 {
            if journal_phase(&db) == done {
                break;
            }
            let mut run = Run::spawn(&project, &db, args);
            std::thread::sleep(Duration::from_millis(rng.u64(0..60)));
            if run.child.try_wait().unwrap().is_none() {
                run.child.kill().unwrap(); // SIGKILL
                run.child.wait().unwrap();
                kills.push(format!("{args:?} → {}", journal_phase(&db)));
            } else {
                run.finish();
            }
            std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
        }
        // Finished: the unswap and the drop-old say so when run again
        // after they are done, the swap has nothing left to do.
        if journal_phase(&db) != done {
            run_to_end(&project, &db, args);
        }
        if done == "backfilled" {
            let context = format!("unswap and drop-old: seed {seed}, after the unswap");
            assert_equals_twin(&db, &context);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let context = format!("unswap and drop-old: seed {seed}, kills {kills:?}");
    println!("{context}");
    assert_writes_ok(&writer.finish(), &context);
    assert_equals_twin(&db, &context);
    assert_no_leftovers(&db, &context);
}
