//! pgm against the tools it replaces, side by side in one run on one
//! throwaway cluster, so that results are ratios taken under the same noise.
//!
//!   cargo bench --bench compare -- [--smoke] [--out FILE]
//!
//! Scenario 5 (`convert`) fails the bench loudly when pgm's conversion
//! loses or fails a write: it is an acceptance run as much as a benchmark.
//!
//! Needs PostgreSQL 15 with pg_partman 4.7.2 (Debian: postgresql-15-partman),
//! the refinery CLI and dbmate on PATH; `bench/run` installs them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pgm::db::{self, ConnectionSettings, quote_ident};
use pgm::sandbox::Sandbox;

type Scenario = fn(&mut Bench);

struct Bench {
    sandbox: Sandbox,
    pgm: PathBuf,
    work: tempfile::TempDir,
    smoke: bool,
    report: String,
}

impl Bench {
    fn settings(&self, db: &str) -> ConnectionSettings {
        let mut settings = self.sandbox.settings(db);
        settings.application_name = "bench".into();
        settings
    }

    fn client(&self, db: &str) -> postgres::Client {
        db::connect(&self.settings(db)).expect("connect")
    }

    fn tcp_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:bench@127.0.0.1:{}/{db}?sslmode=disable",
            self.sandbox.port()
        )
    }

    fn recreate(&self, db: &str, template: Option<&str>) {
        let mut admin = self.client("postgres");
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(db)
            ))
            .unwrap();
        let template = template
            .map(|t| format!(" TEMPLATE {}", quote_ident(t)))
            .unwrap_or_default();
        admin
            .batch_execute(&format!("CREATE DATABASE {}{template}", quote_ident(db)))
            .unwrap();
    }

    fn pgm(&self, db: &str, args: &[&str]) -> (Duration, std::process::Output) {
        let started = Instant::now();
        let output = Command::new(&self.pgm)
            .env("DATABASE_URL", self.sandbox.url(db))
            .current_dir(self.work.path())
            .args(args)
            .output()
            .expect("run pgm");
        (started.elapsed(), output)
    }

    fn line(&mut self, text: impl AsRef<str>) {
        println!("{}", text.as_ref());
        self.report.push_str(text.as_ref());
        self.report.push('\n');
    }
}

/// Latencies of a writer inserting at a steady rate, with their start times.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, Duration, bool)>>,
}

impl Writer {
    fn start(settings: ConnectionSettings, table: &str, per_second: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let sql = format!("INSERT INTO {} (payload) VALUES ('w')", quote_ident(table));
        let thread = std::thread::spawn(move || {
            let mut client = db::connect(&settings).unwrap();
            let period = Duration::from_micros(1_000_000 / per_second);
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !thread_stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = client.batch_execute(&sql).is_ok();
                samples.push((started, started.elapsed(), ok));
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            samples
        });
        Writer { stop, thread }
    }

    fn finish(self) -> Vec<(Instant, Duration, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// (max ms, p99 ms, failed, count) of the samples that started in [from, to].
fn latency(
    samples: &[(Instant, Duration, bool)],
    from: Instant,
    to: Instant,
) -> (f64, f64, usize, usize) {
    let mut window: Vec<&(Instant, Duration, bool)> = samples
        .iter()
        .filter(|(at, _, _)| *at >= from && *at <= to)
        .collect();
    window.sort_by_key(|(_, latency, _)| *latency);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let max = window.last().map_or(0.0, |s| ms(s.1));
    let p99 = window
        .get(((window.len() as f64) * 0.99) as usize)
        .or(window.last())
        .map_or(0.0, |s| ms(s.1));
    (
        max,
        p99,
        window.iter().filter(|s| !s.2).count(),
        window.len(),
    )
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    // --only 1,3 runs those scenarios alone (for a quick look at one change).
    let only: Option<Vec<u32>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect());
    let wanted = |n: u32| only.as_ref().is_none_or(|list| list.contains(&n));
    // The release build, wherever cargo puts it (CARGO_TARGET_DIR).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let pgm = target.join("release/pgm");
    assert!(pgm.exists(), "build pgm first: cargo build --release");
    // pg_partman's run_maintenance() locks every partition of every parent
    // in one transaction: at 1,000 parents x 60 partitions the default
    // max_locks_per_transaction (64) ends in "out of shared memory".
    let options = pgm::sandbox::SandboxOptions {
        settings: vec![("max_locks_per_transaction".into(), "1024".into())],
        ..Default::default()
    };
    let sandbox = Sandbox::start_with(&options).expect("a throwaway cluster");
    let mut bench = Bench {
        sandbox,
        pgm,
        work: tempfile::tempdir().unwrap(),
        smoke,
        report: String::new(),
    };
    bench
        .client("postgres")
        .batch_execute("ALTER ROLE postgres PASSWORD 'bench'")
        .unwrap();
    header(&mut bench);
    let scenarios: [(u32, Scenario); 6] = [
        (1, write_stall),
        (2, scale),
        (3, migrations),
        (4, index_rollout),
        (5, convert),
        (6, fleet),
    ];
    for (number, scenario) in scenarios {
        if wanted(number) {
            scenario(&mut bench);
        }
    }
    if let Some(out) = out {
        std::fs::write(&out, &bench.report).unwrap();
        println!("\nwritten to {}", out.display());
    }
}

fn tool_version(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "not found".into())
}

fn header(bench: &mut Bench) {
    let mut client = bench.client("postgres");
    let server: String = client.query_one("SHOW server_version", &[]).unwrap().get(0);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
                    / 1024
            })
        })
        .unwrap_or(0);
    let pgm_version = tool_version(bench.pgm.to_str().unwrap(), &["--version"]);
    bench.line(format!(
        "# pgm benchmarks, {}",
        chrono::Utc::now().format("%Y-%m-%d")
    ));
    bench.line("");
    bench.line(format!(
        "Machine: {cpus} CPUs, {memory} GiB RAM, {}. Server: PostgreSQL {server} on a throwaway cluster \
         (fsync off, as in the tests). {}; pg_partman 4.7.2; refinery CLI `{}`; dbmate `{}`.{}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|k| format!("Linux {}", k.trim())).unwrap_or_default(),
        pgm_version,
        tool_version("refinery", &["--version"]),
        tool_version("dbmate", &["--version"]),
        if bench.smoke { " **Smoke mode: tiny sizes, numbers not meaningful.**" } else { "" }
    ));
    bench.line("");
}

/// Runs `pgm partitions maintain` on the stall database: wall time, exit
/// code, and its summary line.
fn maintain_summary(bench: &Bench, policy: &Path) -> (Duration, i32, String) {
    let config = policy.to_str().unwrap();
    let (wall, output) = bench.pgm(
        "stall",
        &["-q", "partitions", "maintain", "--config", config],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .last()
        .unwrap_or("")
        .trim_start_matches("summary: ")
        .to_owned();
    (wall, output.status.code().unwrap_or(-1), summary)
}

/// Scenario 1: the writer's latency while each tool creates and retires the
/// same partitions, with and without a long report open on the parent.
fn write_stall(bench: &mut Bench) {
    let rows_per_month = if bench.smoke { 200 } else { 20_000 };
    let hold = if bench.smoke {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(30)
    };
    bench.recreate("stall_template", None);
    let mut client = bench.client("stall_template");
    client
        .batch_execute("CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman;")
        .unwrap();
    for table in ["bench_pgm", "bench_partman"] {
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL DEFAULT now(), \
                 payload text) PARTITION BY RANGE (created_at); CREATE INDEX ON {table} (created_at);"
            ))
            .unwrap();
    }
    client
        .batch_execute(
            "SELECT partman.create_parent('public.bench_partman', 'created_at', 'native', 'monthly', p_premake := 4, \
               p_start_partition := to_char(date_trunc('month', now()) - interval '24 months', 'YYYY-MM-DD HH24:MI:SS'));",
        )
        .unwrap();
    // The same partitions for pgm, made by hand (pgm adopts them by their bounds).
    client
        .batch_execute(
            "DO $$ DECLARE m timestamptz; BEGIN \
               FOR m IN SELECT generate_series(date_trunc('month', now()) - interval '24 months', date_trunc('month', now()) + interval '4 months', '1 month') LOOP \
                 EXECUTE format('CREATE TABLE bench_pgm_p%s PARTITION OF bench_pgm FOR VALUES FROM (%L) TO (%L)', \
                   to_char(m, 'YYYY_MM'), m, m + interval '1 month'); \
               END LOOP; END $$;",
        )
        .unwrap();
    for table in ["bench_pgm", "bench_partman"] {
        client
            .batch_execute(&format!(
                "INSERT INTO {table} (created_at, payload) SELECT date_trunc('month', now()) - interval '24 months' \
                 + (g * interval '24 months' / {}), 'history' FROM generate_series(1, {}) g; ANALYZE {table};",
                rows_per_month * 24,
                rows_per_month * 24
            ))
            .unwrap();
    }
    client
        .batch_execute(
            "UPDATE partman.part_config SET retention = '12 months', retention_keep_table = false, premake = 6 \
             WHERE parent_table = 'public.bench_partman'",
        )
        .unwrap();
    drop(client);
    let policy = bench.work.path().join("stall.toml");
    std::fs::write(
        &policy,
        "[[table]]\nname = \"public.bench_pgm\"\ninterval = \"monthly\"\npremake = 6\nretention = \"12 months\"\n\
         max_drops_per_run = 20\nlock_timeout = \"500ms\"\nlock_retries = 3\n",
    )
    .unwrap();

    bench.line("## 1. Write stall during maintenance (the headline)");
    bench.line("");
    bench.line(format!(
        "Two identical monthly parents, 24 months of history ({} rows), retention 12 months, premake 4 → 6: each tool \
         retires 12 partitions and creates 2. A writer inserts 100 rows/s into the parent; \"long reader\" is a \
         transaction that read the parent and stays open {} s. pgm runs with lock_timeout 500 ms, 3 retries; \
         pg_partman's `run_maintenance()` with its defaults (it keeps a default partition, so detaches are plain).",
        rows_per_month * 24,
        hold.as_secs()
    ));
    bench.line("");
    bench.line("| long reader | tool | writer max | writer p99 | failed writes | maintenance wall time | outcome |");
    bench.line("|---|---|---|---|---|---|---|");
    let mut headline = Vec::new();
    for reader in [true, false] {
        for tool in ["pgm", "pg_partman"] {
            bench.recreate("stall", Some("stall_template"));
            let table = if tool == "pgm" {
                "bench_pgm"
            } else {
                "bench_partman"
            };
            let writer = Writer::start(bench.settings("stall"), table, 100);
            std::thread::sleep(Duration::from_secs(1));
            let reader_thread = reader.then(|| {
                let settings = bench.settings("stall");
                let sql = format!("BEGIN; SELECT count(*) FROM {table};");
                std::thread::spawn(move || {
                    let mut client = db::connect(&settings).unwrap();
                    client.batch_execute(&sql).unwrap();
                    std::thread::sleep(hold);
                    client.batch_execute("COMMIT").unwrap();
                })
            });
            std::thread::sleep(Duration::from_millis(300));
            let started = Instant::now();
            let outcome = if tool == "pgm" {
                let (_, code, summary) = maintain_summary(bench, &policy);
                format!("exit {code}: {summary}")
            } else {
                let mut client = bench.client("stall");
                match client.batch_execute("SELECT partman.run_maintenance('public.bench_partman')")
                {
                    Ok(()) => "completed".to_owned(),
                    Err(error) => format!("failed: {error}"),
                }
            };
            let wall = started.elapsed();
            let ended = Instant::now();
            std::thread::sleep(Duration::from_millis(500));
            let samples = writer.finish();
            let mut outcome = outcome;
            if let Some(thread) = reader_thread {
                thread.join().unwrap();
                if tool == "pgm" {
                    // What the reader held back is finished by the next run.
                    let (next, _, summary) = maintain_summary(bench, &policy);
                    outcome.push_str(&format!(
                        "; the next run, after the reader: {summary} in {}",
                        ms(next)
                    ));
                }
            }
            let (max, p99, failed, count) = latency(&samples, started, ended);
            let partitions: i64 = bench
                .client("stall")
                .query_one(
                    &format!(
                        "SELECT count(*) FROM pg_inherits WHERE inhparent = '{table}'::regclass"
                    ),
                    &[],
                )
                .unwrap()
                .get(0);
            bench.line(format!(
                "| {} | {tool} | {max:.0} ms | {p99:.0} ms | {failed} of {count} | {} | {outcome}; {partitions} partitions after |",
                if reader { "yes" } else { "no" },
                ms(wall)
            ));
            headline.push((reader, tool, max));
        }
    }
    bench.line("");
    for reader in [true, false] {
        let pgm_max = headline
            .iter()
            .find(|h| h.0 == reader && h.1 == "pgm")
            .map_or(0.0, |h| h.2);
        let partman_max = headline
            .iter()
            .find(|h| h.0 == reader && h.1 == "pg_partman")
            .map_or(0.0, |h| h.2);
        bench.line(format!(
            "Writer's worst insert {} a long reader: pg_partman {partman_max:.0} ms, pgm {pgm_max:.0} ms{}.",
            if reader { "with" } else { "without" },
            if pgm_max >= 1.0 { format!(" (**{:.0}×**)", partman_max / pgm_max) } else { String::new() }
        ));
    }
    bench.line("");
}

/// Scenario 2: planning and no-op maintenance over many parents.
fn scale(bench: &mut Bench) {
    let parents = if bench.smoke { 10 } else { 1000 };
    bench.recreate("scale", None);
    let mut client = bench.client("scale");
    client
        .batch_execute("CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman;")
        .unwrap();
    let setup = Instant::now();
    for i in 0..parents {
        client
            .batch_execute(&format!(
                "CREATE TABLE s_pgm_{i} (id bigint, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at); \
                 DO $$ DECLARE m timestamptz; BEGIN \
                   FOR m IN SELECT generate_series(date_trunc('month', now()) - interval '55 months', date_trunc('month', now()) + interval '4 months', '1 month') LOOP \
                     EXECUTE format('CREATE TABLE s_pgm_{i}_p%s PARTITION OF s_pgm_{i} FOR VALUES FROM (%L) TO (%L)', to_char(m, 'YYYY_MM'), m, m + interval '1 month'); \
                   END LOOP; END $$; \
                 CREATE TABLE s_partman_{i} (id bigint, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at); \
                 SELECT partman.create_parent('public.s_partman_{i}', 'created_at', 'native', 'monthly', p_premake := 4, \
                   p_start_partition := to_char(date_trunc('month', now()) - interval '55 months', 'YYYY-MM-DD HH24:MI:SS'));"
            ))
            .unwrap();
    }
    let setup = setup.elapsed();
    drop(client);
    let policy = bench.work.path().join("scale.toml");
    let mut text = String::new();
    for i in 0..parents {
        writeln!(
            text,
            "[[table]]\nname = \"public.s_pgm_{i}\"\ninterval = \"monthly\"\npremake = 4\n"
        )
        .unwrap();
    }
    std::fs::write(&policy, text).unwrap();
    let config = policy.to_str().unwrap();
    let runs = if bench.smoke { 1 } else { 5 };
    let plan = median(
        (0..runs)
            .map(|_| {
                bench
                    .pgm("scale", &["-q", "partitions", "plan", "--config", config])
                    .0
            })
            .collect(),
    );
    let (_, output) = bench.pgm("scale", &["-v", "partitions", "plan", "--config", config]);
    let queries = String::from_utf8_lossy(&output.stderr)
        .matches("catalog query done")
        .count();
    let maintain = median(
        (0..runs)
            .map(|_| {
                bench
                    .pgm(
                        "scale",
                        &["-q", "partitions", "maintain", "--config", config],
                    )
                    .0
            })
            .collect(),
    );
    let partman = median(
        (0..runs.min(3))
            .map(|_| {
                let mut client = bench.client("scale");
                let started = Instant::now();
                client
                    .batch_execute("SELECT partman.run_maintenance()")
                    .expect("pg_partman run_maintenance()");
                started.elapsed()
            })
            .collect(),
    );
    bench.line(format!(
        "## 2. Planning and no-op maintenance at scale: {parents} parents × 60 partitions"
    ));
    bench.line("");
    bench.line(format!(
        "Setup (both tools' parents and partitions): {}. pg_partman's `run_maintenance()` locks every partition \
         of every parent in one transaction; at this size it fails with \"out of shared memory\" under the default \
         `max_locks_per_transaction` (64), so the cluster runs with 1024. pgm locks no partition to plan.",
        ms(setup)
    ));
    bench.line("");
    bench.line("| what | median wall time |");
    bench.line("|---|---|");
    bench.line(format!(
        "| `pgm partitions plan` (whole process) | {} |",
        ms(plan)
    ));
    bench.line(format!(
        "| `pgm partitions maintain`, nothing to do (whole process) | {} |",
        ms(maintain)
    ));
    bench.line(format!(
        "| pg_partman `run_maintenance()`, nothing to do | {} |",
        ms(partman)
    ));
    bench.line("");
    bench.line(format!(
        "pgm read the catalog in **{queries} queries** for {parents} parents; no-op maintenance: pg_partman / pgm = **{:.1}×**.",
        partman.as_secs_f64() / maintain.as_secs_f64()
    ));
    bench.line("");
}

fn write_migrations(dir: &Path, count: usize, dbmate: bool) {
    std::fs::create_dir_all(dir).unwrap();
    for n in 1..=count {
        let sql = format!(
            "CREATE TABLE t_{n} (id int PRIMARY KEY, note text);\nINSERT INTO t_{n} VALUES (1, 'x');\n"
        );
        if dbmate {
            std::fs::write(
                dir.join(format!("{n:014}_t_{n}.sql")),
                format!("-- migrate:up\n{sql}\n-- migrate:down\nDROP TABLE t_{n};\n"),
            )
            .unwrap();
        } else {
            std::fs::write(dir.join(format!("V{n}__t_{n}.sql")), sql).unwrap();
        }
    }
}

/// Scenario 3: many small migrations from empty, and a run with nothing to
/// do. The tools take turns within each round, each on a database of its
/// own, so that a noisy neighbour on a shared machine slows them alike.
fn migrations(bench: &mut Bench) {
    let count = if bench.smoke { 20 } else { 1000 };
    let runs = if bench.smoke { 1 } else { 5 };
    let plain = bench.work.path().join("migrations");
    let dbmate_dir = bench.work.path().join("dbmate");
    write_migrations(&plain, count, false);
    write_migrations(&dbmate_dir, count, true);
    let tools: Vec<(&str, Vec<String>)> = vec![
        (
            "pgm",
            vec![
                bench.pgm.display().to_string(),
                "-q".into(),
                "migrate".into(),
                "--migrations".into(),
                plain.display().to_string(),
            ],
        ),
        (
            "refinery",
            vec![
                "refinery".into(),
                "migrate".into(),
                "-e".into(),
                "DATABASE_URL".into(),
                "-p".into(),
                plain.display().to_string(),
            ],
        ),
        (
            "dbmate",
            vec![
                "dbmate".into(),
                "--no-dump-schema".into(),
                "--migrations-dir".into(),
                dbmate_dir.display().to_string(),
                "up".into(),
            ],
        ),
    ];
    let database = |name: &str| format!("mig_{name}");
    // Whole-process wall time of one run of a tool, None when it failed.
    let run = |bench: &Bench, name: &str, command: &[String]| {
        let started = Instant::now();
        let output = Command::new(&command[0])
            .args(&command[1..])
            .env("DATABASE_URL", bench.tcp_url(&database(name)))
            .current_dir(bench.work.path())
            .output();
        match output {
            Ok(output) if output.status.success() => Some(started.elapsed()),
            Ok(output) => {
                eprintln!("{name} failed: {}", String::from_utf8_lossy(&output.stderr));
                None
            }
            Err(error) => {
                eprintln!("{name} did not start: {error}");
                None
            }
        }
    };
    let mut empty: Vec<Vec<Duration>> = vec![Vec::new(); tools.len()];
    let mut noop: Vec<Vec<Duration>> = vec![Vec::new(); tools.len()];
    for round in 0..runs {
        // Who goes first changes from round to round.
        for k in 0..tools.len() {
            let index = (round + k) % tools.len();
            let (name, command) = &tools[index];
            bench.recreate(&database(name), None);
            empty[index].extend(run(bench, name, command));
        }
    }
    for round in 0..runs {
        for k in 0..tools.len() {
            let index = (round + k) % tools.len();
            let (name, command) = &tools[index];
            noop[index].extend(run(bench, name, command));
        }
    }
    bench.line(format!("## 3. Migrations: {count} small migrations"));
    bench.line("");
    bench.line(format!(
        "Whole-process wall time, median of {runs} runs; each tool over TCP with a password, on a \
         database of its own; the tools take turns within each round, in a rotating order."
    ));
    bench.line("");
    bench.line("| tool | from empty | nothing to do |");
    bench.line("|---|---|---|");
    let mut results = Vec::new();
    for (index, (name, _)) in tools.iter().enumerate() {
        let (empty, noop) = (
            (!empty[index].is_empty()).then(|| median(empty[index].clone())),
            (!noop[index].is_empty()).then(|| median(noop[index].clone())),
        );
        let show = |d: Option<Duration>| d.map_or("failed".to_owned(), ms);
        bench.line(format!("| {name} | {} | {} |", show(empty), show(noop)));
        results.push((*name, empty, noop));
    }
    bench.line("");
    if let Some((_, Some(pgm_empty), Some(pgm_noop))) = results.first().cloned() {
        for (name, empty, noop) in &results[1..] {
            if let (Some(empty), Some(noop)) = (empty, noop) {
                bench.line(format!(
                    "{name} / pgm: from empty **{:.2}×**, nothing to do **{:.2}×**.",
                    empty.as_secs_f64() / pgm_empty.as_secs_f64(),
                    noop.as_secs_f64() / pgm_noop.as_secs_f64()
                ));
            }
        }
    }
    bench.line("");
}

/// Scenario 4: rolling an index out to 24 partitions holding millions of rows.
fn index_rollout(bench: &mut Bench) {
    let rows: i64 = if bench.smoke { 24_000 } else { 3_000_000 };
    bench.recreate("rollout", None);
    let mut client = bench.client("rollout");
    client
        .batch_execute(&format!(
            "CREATE TABLE big (id bigint GENERATED ALWAYS AS IDENTITY, created_at timestamptz NOT NULL DEFAULT now(), payload text) \
               PARTITION BY RANGE (created_at); \
             DO $$ DECLARE m timestamptz; BEGIN \
               FOR m IN SELECT generate_series(date_trunc('month', now()) - interval '20 months', date_trunc('month', now()) + interval '3 months', '1 month') LOOP \
                 EXECUTE format('CREATE TABLE big_p%s PARTITION OF big FOR VALUES FROM (%L) TO (%L)', to_char(m, 'YYYY_MM'), m, m + interval '1 month'); \
               END LOOP; END $$; \
             INSERT INTO big (created_at, payload) SELECT date_trunc('month', now()) - interval '20 months' \
               + (g * interval '20 months' / {rows}), md5(g::text) FROM generate_series(1, {rows}) g; \
             ANALYZE big;"
        ))
        .unwrap();
    drop(client);
    let policy = bench.work.path().join("rollout.toml");
    std::fs::write(
        &policy,
        "[[table]]\nname = \"public.big\"\ninterval = \"monthly\"\npremake = 3\n\n[[table.index]]\nname = \"big_payload_idx\"\ncolumns = [\"payload\"]\n",
    )
    .unwrap();
    let writer = Writer::start(bench.settings("rollout"), "big", 100);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (wall, output) = bench.pgm(
        "rollout",
        &[
            "-q",
            "partitions",
            "maintain",
            "--config",
            policy.to_str().unwrap(),
        ],
    );
    let ended = Instant::now();
    let samples = writer.finish();
    let (max, p99, failed, count) = latency(&samples, started, ended);
    let valid: bool = bench
        .client("rollout")
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_payload_idx'::regclass",
            &[],
        )
        .map(|row| row.get(0))
        .unwrap_or(false);
    bench.line(format!("## 4. Index rollout: 24 partitions, {rows} rows"));
    bench.line("");
    bench.line(format!(
        "`pgm partitions maintain` built `big_payload_idx` CONCURRENTLY on every partition and attached it in **{}** \
         (exit {}, parent index valid: {valid}). Writer at 100 rows/s meanwhile: max {max:.0} ms, p99 {p99:.0} ms, \
         {failed} of {count} failed.",
        ms(wall),
        output.status.code().unwrap_or(-1)
    ));
    bench.line("");
}

/// What the twin writer saw: each write's start and duration and whether it
/// committed, and the writes whose statement on the table touched another
/// number of rows than the same statement on the twin.
struct TwinSamples {
    samples: Vec<(Instant, Duration, bool)>,
    missed: usize,
    errors: Vec<String>,
}

/// A writer at a steady rate, each write one transaction applying the same
/// statement to `orders` and to `orders_twin`: inserts, updates of a
/// column, updates of the key and deletes of random rows. It leaves alone
/// the rows the refunds reference (ids up to `reserved`) and the probe
/// rows (ids that are multiples of `probe_step`).
struct TwinWriter {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<TwinSamples>,
}

impl TwinWriter {
    fn start(
        settings: ConnectionSettings,
        per_second: u64,
        reserved: i64,
        probe_step: i64,
        seed: u64,
    ) -> TwinWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut client = db::connect(&settings).unwrap();
            let mut top: i64 = client
                .query_one("SELECT max(id) FROM orders_twin", &[])
                .unwrap()
                .get(0);
            let period = Duration::from_micros(1_000_000 / per_second);
            let mut out = TwinSamples {
                samples: Vec::new(),
                missed: 0,
                errors: Vec::new(),
            };
            let mut next = Instant::now();
            while !thread_stop.load(Ordering::Relaxed) {
                let mut id = rng.i64(reserved + 1..=top);
                if id % probe_step == 0 {
                    id += 1;
                }
                // A key within the table's range: 1 hour to 728 days ago.
                let ago = rng.i64(3_600..=728 * 86_400);
                let kind = rng.u8(0..10);
                let started = Instant::now();
                let result = (|| -> Result<(u64, u64, Option<i64>), postgres::Error> {
                    let mut tx = client.transaction()?;
                    let (table, twin, new_id) = match kind {
                        0..=2 => {
                            let row = tx.query_one(
                                "INSERT INTO orders (created_at, customer, amount, note) \
                                 VALUES (now() - $1::float8 * interval '1 second', $2, 1, 'w') RETURNING id",
                                &[&(ago as f64), &((id % 97) as i32)],
                            )?;
                            let new_id: i64 = row.get(0);
                            let twin = tx.execute(
                                "INSERT INTO orders_twin (id, created_at, customer, amount, note) \
                                 VALUES ($3, now() - $1::float8 * interval '1 second', $2, 1, 'w')",
                                &[&(ago as f64), &((id % 97) as i32), &new_id],
                            )?;
                            (1, twin, Some(new_id))
                        }
                        3..=5 => {
                            let sql = "SET amount = amount + 1, note = note || 'u' WHERE id = $1";
                            (
                                tx.execute(format!("UPDATE orders {sql}").as_str(), &[&id])?,
                                tx.execute(format!("UPDATE orders_twin {sql}").as_str(), &[&id])?,
                                None,
                            )
                        }
                        6..=7 => {
                            let sql = "SET created_at = now() - $2::float8 * interval '1 second' WHERE id = $1";
                            (
                                tx.execute(
                                    format!("UPDATE orders {sql}").as_str(),
                                    &[&id, &(ago as f64)],
                                )?,
                                tx.execute(
                                    format!("UPDATE orders_twin {sql}").as_str(),
                                    &[&id, &(ago as f64)],
                                )?,
                                None,
                            )
                        }
                        _ => (
                            tx.execute("DELETE FROM orders WHERE id = $1", &[&id])?,
                            tx.execute("DELETE FROM orders_twin WHERE id = $1", &[&id])?,
                            None,
                        ),
                    };
                    tx.commit()?;
                    Ok((table, twin, new_id))
                })();
                let elapsed = started.elapsed();
                match result {
                    Ok((table, twin, new_id)) => {
                        if table != twin {
                            out.missed += 1;
                        }
                        if let Some(new_id) = new_id {
                            top = top.max(new_id);
                        }
                        out.samples.push((started, elapsed, true));
                    }
                    Err(error) => {
                        out.samples.push((started, elapsed, false));
                        if out.errors.len() < 5 {
                            out.errors.push(
                                error
                                    .as_db_error()
                                    .map_or_else(|| error.to_string(), |e| e.message().to_owned()),
                            );
                        }
                        // The session may be gone; a fresh one for the next write.
                        if client.is_closed() {
                            client = db::connect(&settings).unwrap();
                        }
                    }
                }
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            out
        });
        TwinWriter { stop, thread }
    }

    fn finish(self) -> TwinSamples {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Reads a fixed set of rows spread over the key range through `orders`
/// every 200 ms: the fewest it saw, and how many reads saw fewer than all.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(i64, usize, usize)>,
}

impl Prober {
    fn start(settings: ConnectionSettings, ids: Vec<i64>) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut client = db::connect(&settings).unwrap();
            let all = ids.len() as i64;
            let (mut fewest, mut short, mut reads) = (all, 0, 0);
            while !thread_stop.load(Ordering::Relaxed) {
                let seen = client
                    .query_one("SELECT count(*) FROM orders WHERE id = ANY($1)", &[&ids])
                    .map(|row| row.get::<_, i64>(0))
                    .unwrap_or(0);
                fewest = fewest.min(seen);
                reads += 1;
                if seen < all {
                    short += 1;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (fewest, short, reads)
        });
        Prober { stop, thread }
    }

    fn finish(self) -> (i64, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Rows in one table and not the other, both ways (`EXCEPT ALL`).
fn differing_rows(client: &mut postgres::Client, a: &str, b: &str) -> (i64, i64) {
    let count = |client: &mut postgres::Client, x: &str, y: &str| -> i64 {
        client
            .query_one(
                &format!("SELECT count(*) FROM (TABLE {x} EXCEPT ALL TABLE {y}) d"),
                &[],
            )
            .unwrap()
            .get(0)
    };
    (count(client, a, b), count(client, b, a))
}

/// One tool's conversion under the twin writer, as the report shows it.
struct ConvertRun {
    wall: Duration,
    phases: String,
    writer: (f64, f64, usize, usize),
    swap_window: Option<(f64, usize)>,
    missed: usize,
    errors: Vec<String>,
    probe: (i64, usize, usize),
    differing: (i64, i64),
    outcome: String,
}

/// Scenario 5: converting a plain 2 M-row table with a foreign key to it,
/// a view and an owned sequence into a monthly-partitioned one while a
/// writer inserts, updates (also the key) and deletes at 200/s: pgm's
/// online conversion, then pg_partman 4.7.2's documented offline method
/// on a fresh copy of the same data with the same writer.
fn convert(bench: &mut Bench) {
    let rows: i64 = if bench.smoke { 20_000 } else { 2_000_000 };
    let reserved = rows / 200;
    let probe_step = rows / 100;
    let probes: Vec<i64> = (1..=100).map(|k| k * probe_step).collect();
    let setup = Instant::now();
    bench.recreate("convert_template", None);
    let mut client = bench.client("convert_template");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman; \
             CREATE TABLE orders (id bigserial, created_at timestamptz NOT NULL, customer int NOT NULL, \
               amount numeric(10,2) NOT NULL DEFAULT 0, note text, PRIMARY KEY (id, created_at)); \
             CREATE INDEX orders_created_at_idx ON orders (created_at); \
             INSERT INTO orders (created_at, customer, amount, note) \
               SELECT now() - interval '730 days' + g * (interval '730 days' / {rows}), g % 97, g % 1000, 'note ' || g \
               FROM generate_series(1, {rows}) g; \
             CREATE TABLE refunds (id bigint PRIMARY KEY, order_id bigint NOT NULL, order_created_at timestamptz NOT NULL, \
               CONSTRAINT refunds_order_fkey FOREIGN KEY (order_id, order_created_at) REFERENCES orders); \
             CREATE INDEX ON refunds (order_id, order_created_at); \
             INSERT INTO refunds SELECT id, id, created_at FROM orders WHERE id <= {reserved}; \
             CREATE VIEW big_orders AS SELECT id, created_at, amount FROM orders WHERE amount > 500; \
             CREATE TABLE orders_twin AS TABLE orders; ALTER TABLE orders_twin ADD PRIMARY KEY (id, created_at);"
        ))
        .unwrap();
    client.batch_execute("VACUUM ANALYZE").unwrap();
    drop(client);
    let setup = setup.elapsed();
    let policy = bench.work.path().join("convert.toml");
    std::fs::write(
        &policy,
        "[defaults]\nlock_timeout = \"500ms\"\nlock_retries = 10\n\n[[table]]\nname = \"public.orders\"\n\
         key = \"created_at\"\ninterval = \"monthly\"\npremake = 4\n",
    )
    .unwrap();
    let seed = fastrand::u64(..);

    // pgm: one run through the swap, its output lines timed as they come.
    bench.recreate("convert_pgm", Some("convert_template"));
    let pgm = {
        let writer = TwinWriter::start(
            bench.settings("convert_pgm"),
            200,
            reserved,
            probe_step,
            seed,
        );
        let prober = Prober::start(bench.settings("convert_pgm"), probes.clone());
        std::thread::sleep(Duration::from_secs(1));
        let started = Instant::now();
        let mut child = Command::new(&bench.pgm)
            .env("DATABASE_URL", bench.sandbox.url("convert_pgm"))
            .current_dir(bench.work.path())
            .args(["partitions", "convert", "public.orders", "--config"])
            .arg(&policy)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run pgm");
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let stderr_thread = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr_pipe), &mut text)
                .ok();
            text
        });
        let mut lines: Vec<(Duration, String)> = Vec::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line.unwrap();
            lines.push((started.elapsed(), line));
        }
        let status = child.wait().unwrap();
        let wall = started.elapsed();
        let ended = Instant::now();
        let stderr = stderr_thread.join().unwrap();
        // The writer goes on against the partitioned table for a second.
        std::thread::sleep(Duration::from_secs(1));
        let probe = prober.finish();
        let written = writer.finish();
        if !status.success() {
            for (_, line) in &lines {
                eprintln!("{line}");
            }
            panic!("pgm partitions convert failed ({status}):\n{stderr}");
        }
        // Each phase ends with its line; a phase's time runs from the
        // previous phase's last line to its own last one.
        let markers: [(&str, &str); 8] = [
            ("check", "check:"),
            ("prepare", "prepare:"),
            ("backfill", "backfill:"),
            ("replay", "replay: "),
            ("verify (with ANALYZE)", "verify:"),
            ("replay before the swap", "replay: "),
            ("swap", "swap:"),
            ("validate the foreign key", "validate:"),
        ];
        let mut phases = Vec::new();
        let mut previous = Duration::ZERO;
        let mut from = 0;
        for (name, prefix) in markers {
            // The last line of the phase: consecutive lines with its prefix
            // (the two replays are told apart by order).
            let Some(first) = lines[from..]
                .iter()
                .position(|(_, l)| l.starts_with(prefix))
            else {
                continue;
            };
            let mut last = from + first;
            while last + 1 < lines.len()
                && lines[last + 1].1.starts_with(prefix)
                && prefix != "replay: "
            {
                last += 1;
            }
            let at = lines[last].0;
            phases.push(format!("{name} {}", ms(at - previous)));
            previous = at;
            from = last + 1;
        }
        let swap_started = lines
            .iter()
            .find(|(_, l)| l.contains("applied before the swap"))
            .map(|(at, _)| started + *at);
        let swap_ended = lines
            .iter()
            .find(|(_, l)| l.starts_with("swap:"))
            .map(|(at, _)| started + *at);
        let swap_window = swap_started.zip(swap_ended).map(|(from, to)| {
            let (max, _, failed, _) =
                latency(&written.samples, from, to + Duration::from_millis(600));
            (max, failed)
        });
        let mut client = bench.client("convert_pgm");
        let differing = differing_rows(&mut client, "orders", "orders_twin");
        let facts: String = client
            .query_one(
                "SELECT (SELECT relkind::text FROM pg_class WHERE oid = 'orders'::regclass) || ', view on ' || \
                   (SELECT string_agg(DISTINCT d.refobjid::regclass::text, ',') FROM pg_rewrite r JOIN pg_depend d \
                      ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass AND d.refobjid <> r.ev_class \
                    WHERE r.ev_class = 'big_orders'::regclass) || ', foreign key to ' || \
                   (SELECT confrelid::regclass::text || CASE WHEN convalidated THEN ' (valid)' ELSE ' (NOT VALID)' END \
                    FROM pg_constraint WHERE conname = 'refunds_order_fkey') || ', sequence of ' || \
                   (SELECT d.refobjid::regclass::text FROM pg_depend d WHERE d.objid = 'orders_id_seq'::regclass \
                      AND d.deptype = 'a' AND d.classid = 'pg_class'::regclass)",
                &[],
            )
            .unwrap()
            .get(0);
        ConvertRun {
            wall,
            phases: phases.join(", "),
            writer: latency(&written.samples, started, ended),
            swap_window,
            missed: written.missed,
            errors: written.errors,
            probe,
            differing,
            outcome: format!("exit 0; orders: {facts}"),
        }
    };

    // pg_partman 4.7.2's "Offline Partitioning" (doc/pg_partman_howto_native.md):
    // rename the table, create the partitioned parent like it, create_parent,
    // then partition_data_proc from the renamed table in batches.
    bench.recreate("convert_partman", Some("convert_template"));
    let partman = {
        let writer = TwinWriter::start(
            bench.settings("convert_partman"),
            200,
            reserved,
            probe_step,
            seed,
        );
        let prober = Prober::start(bench.settings("convert_partman"), probes.clone());
        std::thread::sleep(Duration::from_secs(1));
        let mut client = bench.client("convert_partman");
        let started = Instant::now();
        let mut phases = Vec::new();
        let mut step =
            |client: &mut postgres::Client, name: &str, sql: &str| -> Result<(), String> {
                let at = Instant::now();
                let result = client.batch_execute(sql).map_err(|e| {
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
                });
                phases.push(format!("{name} {}", ms(at.elapsed())));
                result
            };
        let result = step(
            &mut client,
            "rename, new parent, create_parent",
            "BEGIN; \
             ALTER TABLE orders RENAME TO orders_old; \
             ALTER TABLE refunds DROP CONSTRAINT refunds_order_fkey; \
             CREATE TABLE orders (LIKE orders_old INCLUDING ALL) PARTITION BY RANGE (created_at); \
             CREATE OR REPLACE VIEW big_orders AS SELECT id, created_at, amount FROM orders WHERE amount > 500; \
             SELECT partman.create_parent('public.orders', 'created_at', 'native', 'monthly', p_premake := 4, \
               p_start_partition := (SELECT to_char(date_trunc('month', min(created_at)), 'YYYY-MM-DD HH24:MI:SS') \
                                     FROM orders_old)); \
             COMMIT;",
        )
        .and_then(|()| {
            step(
                &mut client,
                "partition_data_proc",
                "CALL partman.partition_data_proc('public.orders', p_interval := '1 week', p_batch := 1000, \
                 p_wait := 0, p_source_table := 'public.orders_old')",
            )
        })
        .and_then(|()| step(&mut client, "VACUUM ANALYZE", "VACUUM ANALYZE orders"))
        .and_then(|()| {
            step(
                &mut client,
                "foreign key and sequence",
                "ALTER TABLE refunds ADD CONSTRAINT refunds_order_fkey FOREIGN KEY (order_id, order_created_at) \
                   REFERENCES orders NOT VALID; \
                 ALTER TABLE refunds VALIDATE CONSTRAINT refunds_order_fkey; \
                 ALTER SEQUENCE orders_id_seq OWNED BY orders.id;",
            )
        });
        let wall = started.elapsed();
        let ended = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let probe = prober.finish();
        let written = writer.finish();
        let _ = client.batch_execute("ROLLBACK");
        let differing = differing_rows(&mut client, "orders", "orders_twin");
        let left: i64 = client
            .query_one("SELECT count(*) FROM orders_old", &[])
            .map(|r| r.get(0))
            .unwrap_or(-1);
        ConvertRun {
            wall,
            phases: phases.join(", "),
            writer: latency(&written.samples, started, ended),
            swap_window: None,
            missed: written.missed,
            errors: written.errors,
            probe,
            differing,
            outcome: match result {
                Ok(()) => format!("completed; {left} row(s) left in orders_old"),
                Err(error) => format!("failed: {error}"),
            },
        }
    };

    bench.line(format!(
        "## 5. Converting a plain {rows}-row table to monthly partitions under writes"
    ));
    bench.line("");
    bench.line(format!(
        "`orders` (bigserial id, timestamptz key over 730 days, 3 payload columns, primary key (id, created_at), \
         an index on the key), `refunds` with a foreign key to it ({reserved} rows), a view `big_orders` on it, \
         the owned sequence `orders_id_seq`; setup {}. A writer at 200 writes/s (30 % inserts, 30 % updates, \
         20 % updates of the key, 20 % deletes of random rows; seed {seed}) applies each write to `orders` and, in \
         the same transaction, to a plain twin: the twin holds what `orders` must hold. It runs from 1 s before \
         each conversion to 1 s after; a prober reads 100 fixed rows spread over the key range through `orders` \
         every 200 ms. pgm: `pgm partitions convert public.orders` with its defaults (batches of 10,000 rows, no \
         pause), lock_timeout 500 ms, 10 retries. pg_partman 4.7.2: its \"Offline Partitioning\" on a fresh copy of \
         the same data: in one transaction the table renamed, the foreign key dropped, the new parent `LIKE` the old \
         table `INCLUDING ALL`, the view recreated, `create_parent(…, 'monthly')`; then `CALL \
         partition_data_proc(p_source_table := 'public.orders_old', p_interval := '1 week', p_wait := 0)`, `VACUUM \
         ANALYZE`, the foreign key added again and validated, the sequence's owner moved.",
        ms(setup)
    ));
    bench.line("");
    bench.line(
        "| tool | wall time | writer max | writer p99 | failed writes | writes that missed their row | fewest of 100 rows visible | rows differing from the twin (table / twin) | outcome |",
    );
    bench.line("|---|---|---|---|---|---|---|---|---|");
    for (tool, run) in [("pgm", &pgm), ("pg_partman", &partman)] {
        let (max, p99, failed, count) = run.writer;
        bench.line(format!(
            "| {tool} | {} | {max:.0} ms | {p99:.0} ms | {failed} of {count} | {} | {} ({} of {} reads short) | {} / {} | {} |",
            ms(run.wall),
            run.missed,
            run.probe.0,
            run.probe.1,
            run.probe.2,
            run.differing.0,
            run.differing.1,
            run.outcome
        ));
    }
    bench.line("");
    for (tool, run) in [("pgm", &pgm), ("pg_partman", &partman)] {
        bench.line(format!("{tool}'s steps: {}.", run.phases));
        if !run.errors.is_empty() {
            bench.line(format!(
                "{tool}'s failed writes said: {}.",
                run.errors.join("; ")
            ));
        }
        bench.line("");
    }
    if let Some((max, failed)) = pgm.swap_window {
        bench.line(format!(
            "pgm's swap (from the replay before it to 600 ms after it): writer's worst {max:.0} ms, {failed} failed; \
             the bound is lock_timeout + 100 ms = 600 ms."
        ));
        bench.line("");
    }
    let (_, _, failed, _) = pgm.writer;
    assert!(
        failed == 0 && pgm.missed == 0 && pgm.differing == (0, 0) && pgm.probe.0 == 100,
        "pgm's conversion lost or failed writes: {failed} failed ({:?}), {} missed their row, {:?} rows differ \
         from the twin, as few as {} of 100 rows visible",
        pgm.errors,
        pgm.missed,
        pgm.differing,
        pgm.probe.0
    );
}

/// The databases of scenario 6, recreated empty from `template`.
fn recreate_fleet(bench: &Bench, names: &[String], template: &str) {
    std::thread::scope(|scope| {
        for chunk in names.chunks(names.len().div_ceil(4).max(1)) {
            scope.spawn(move || {
                for name in chunk {
                    bench.recreate(name, Some(template));
                }
            });
        }
    });
}

/// Whole-process wall time of a command run from the work directory; None
/// when it failed.
fn timed(
    bench: &Bench,
    program: &str,
    args: &[String],
    env: &[(&str, String)],
) -> Option<Duration> {
    let started = Instant::now();
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(bench.work.path())
        .output()
        .expect("starting a command");
    if output.status.success() {
        Some(started.elapsed())
    } else {
        eprintln!(
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        None
    }
}

/// A shell loop running `command` once per database, DATABASE_URL set to
/// each in turn (`$url_prefix$db$url_suffix`), stopping at the first failure:
/// what teams run before a fleet runner.
fn shell_loop(command: &str, names: &[String], url: &str) -> Vec<String> {
    let (prefix, suffix) = url.split_once("{db}").unwrap();
    let script = format!(
        "for db in \"$@\"; do DATABASE_URL=\"{prefix}$db{suffix}\" {command} || exit 1; done"
    );
    let mut args = vec!["-c".to_owned(), script, "loop".to_owned()];
    args.extend(names.iter().cloned());
    args
}

/// A labelled command of scenario 6: program, arguments, environment.
type FleetRun<'a> = (&'a str, String, Vec<String>, &'a [(&'a str, String)]);

/// Scenario 6: one deploy over a fleet of databases, `pgm migrate --fleet
/// --jobs 8` against a sequential shell loop of pgm and of refinery doing
/// the same work, then no-op maintenance over the fleet.
fn fleet(bench: &mut Bench) {
    let (count, migrations) = if bench.smoke { (6, 5) } else { (200, 30) };
    let dir = bench.work.path().join("fleet_migrations");
    write_migrations(&dir, migrations - 1, false);
    std::fs::write(
        dir.join(format!("V{migrations}__events.sql")),
        "CREATE TABLE events (id bigint, created_at timestamptz NOT NULL) PARTITION BY RANGE (created_at);\n",
    )
    .unwrap();
    let names: Vec<String> = (0..count).map(|i| format!("fleet_{i:03}")).collect();
    bench.recreate("fleet_template", None);
    let policy = bench.work.path().join("fleet.toml");
    std::fs::write(
        &policy,
        "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\npremake = 3\n\n[fleet]\n\
         discover = \"SELECT datname FROM pg_database WHERE datname ~ '^fleet_[0-9]+$' ORDER BY 1\"\n",
    )
    .unwrap();
    let pgm = bench.pgm.display().to_string();
    let (dir_arg, policy_arg) = (dir.display().to_string(), policy.display().to_string());
    let url = bench.tcp_url("{db}");
    let ordinary = [("DATABASE_URL", bench.tcp_url("postgres"))];
    let fleet_args = |command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["-q", "--config", &policy_arg, "--migrations", &dir_arg]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.extend(command.iter().map(|a| (*a).to_owned()));
        args.extend(["--fleet", "--jobs", "8"].map(str::to_owned));
        args
    };
    let runs: Vec<FleetRun<'_>> = vec![
        (
            "pgm migrate --fleet --jobs 8",
            pgm.clone(),
            fleet_args(&["migrate"]),
            &ordinary,
        ),
        (
            "shell loop of pgm migrate",
            "bash".into(),
            shell_loop(
                &format!("{pgm} -q migrate --migrations {dir_arg}"),
                &names,
                &url,
            ),
            &[],
        ),
        (
            "shell loop of refinery migrate",
            "bash".into(),
            shell_loop(
                &format!("refinery migrate -e DATABASE_URL -p {dir_arg}"),
                &names,
                &url,
            ),
            &[],
        ),
    ];
    let mut walls = Vec::new();
    for (label, program, args, env) in &runs {
        recreate_fleet(bench, &names, "fleet_template");
        walls.push((*label, timed(bench, program, args, env)));
    }
    let at = ["partitions", "maintain", "--at", "2026-11-15T00:00:00Z"];
    let first = timed(bench, &pgm, &fleet_args(&at), &ordinary);
    let noop = timed(bench, &pgm, &fleet_args(&at), &ordinary);
    let noop_loop = timed(
        bench,
        "bash",
        &shell_loop(
            &format!("{pgm} -q --config {policy_arg} {}", at.join(" ")),
            &names,
            &url,
        ),
        &[],
    );
    let show = |d: Option<Duration>| d.map_or("failed".to_owned(), ms);
    bench.line(format!(
        "## 6. A fleet: {count} databases × {migrations} migrations"
    ));
    bench.line("");
    bench.line(format!(
        "One deploy over {count} databases on one server, each migrated from empty ({} small \
         migrations and a partitioned table), over TCP with a password; whole-process wall time, \
         one run each, every database recreated between runs. The loops stop at the first failure, \
         as a deploy script would.",
        migrations - 1
    ));
    bench.line("");
    bench.line("| run | wall time |");
    bench.line("|---|---|");
    for (label, wall) in &walls {
        bench.line(format!("| {label} | {} |", show(*wall)));
    }
    bench.line(format!(
        "| pgm partitions maintain --fleet --jobs 8, creating 4 partitions per database | {} |",
        show(first)
    ));
    bench.line(format!(
        "| the same again, nothing to do | {} |",
        show(noop)
    ));
    bench.line(format!(
        "| shell loop of pgm partitions maintain, nothing to do | {} |",
        show(noop_loop)
    ));
    bench.line("");
    if let Some(fleet) = walls[0].1 {
        for (label, wall) in &walls[1..] {
            if let Some(wall) = wall {
                bench.line(format!(
                    "{label} / pgm --fleet: **{:.2}×**.",
                    wall.as_secs_f64() / fleet.as_secs_f64()
                ));
            }
        }
    }
    bench.line("");
}
