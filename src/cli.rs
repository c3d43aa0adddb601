//! The command line. Only this module knows clap.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::builder::PossibleValue;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    self, CheckFormat, Config, LintFormat, MigrateLocks, PlanFormat, StatusFormat,
};
use crate::db::retry::MAX_LOCK_RETRIES;
use crate::duration::Timeout;
use crate::partition::convert::Phase as ConvertPhase;
use crate::pg_version::PgVersion;

/// Where the policy file is looked for when no path is given.
pub const DEFAULT_CONFIG: &str = "partman.toml";

#[derive(Debug, Parser)]
#[command(
    name = "pgm",
    version,
    about = "Runs the life of a PostgreSQL schema: migrations at deploy time, partitions from cron",
    long_about = "Runs the life of a PostgreSQL schema: applies migrations at deploy time and keeps \
                  time-partitioned tables healthy from cron, without ever queueing DDL in front of live \
                  traffic.\n\nExit codes: 0 success · 1 failure · 2 changes pending (with \
                  --detailed-exitcode / --exit-code) · 64 usage or configuration error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Connection string, URL (postgres://user@host:port,host2:port/db?sslmode=…) or key=value
    /// form, read as libpq reads it; what it leaves unset comes from the service (PGSERVICE,
    /// ~/.pg_service.conf), the PG* variables and the password file (PGPASSFILE or ~/.pgpass).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// The partition policy file (with `pgm lint`'s settings in its [lint] section).
    #[arg(
        long,
        env = "PGM_CONFIG",
        default_value = DEFAULT_CONFIG,
        global = true,
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// The migrations directory.
    #[arg(
        long,
        env = "PGM_MIGRATIONS",
        default_value = "migrations",
        global = true,
        value_name = "DIR"
    )]
    pub migrations: PathBuf,

    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log output on stderr (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Fleet")]
pub struct FleetArgs {
    /// Run the command on every target of the policy file's [fleet] section (databases and
    /// tenant schemas), with one report: migrate, migrate status, migrate wait and partitions
    /// plan, maintain, status and check.
    #[arg(long, global = true)]
    pub fleet: bool,
    /// Targets at once with --fleet.
    #[arg(long, global = true, value_name = "N", default_value_t = config::DEFAULT_FLEET_JOBS,
          value_parser = parse_jobs, requires = "fleet")]
    pub jobs: usize,
    /// With --fleet: start no further target after the first failure.
    #[arg(long, global = true, requires = "fleet")]
    pub fail_fast: bool,
    /// With --fleet: run the first K targets, and stop there if any fails.
    #[arg(
        long,
        global = true,
        value_name = "K",
        default_value_t = 0,
        requires = "fleet"
    )]
    pub canary: usize,
}

/// `--jobs`: from 1 to 256 targets at once.
fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(jobs @ 1..=256) => Ok(jobs),
        _ => Err("give a whole number of targets at once from 1 to 256, such as 4".to_owned()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations (each in one transaction with its history row).
    Migrate(MigrateArgs),
    /// Plan and maintain time-partitioned tables from the policy file.
    #[command(subcommand)]
    Partitions(PartitionsCommand),
    /// Check the connection: connect with the resolved settings and describe the server.
    Ping {
        /// text for people; json for scripts: the target and the session as the server sees it.
        #[arg(long, value_enum, default_value = "text")]
        format: StatusFormat,
    },
    /// Run the whole story on a throwaway cluster: migrate, plan, maintain, retention.
    Demo {
        /// Leave the cluster running at the end and print how to connect (Ctrl-C stops it).
        #[arg(long)]
        keep: bool,
        /// Tell the story as if now were this instant (RFC 3339 or a date).
        #[arg(long, value_name = "RFC3339", value_parser = config::parse_instant)]
        at: Option<DateTime<Utc>>,
    },
    /// Write a commented policy file and an empty migrations directory.
    Init,
    /// Lint migrations for statements that lock or break production, each as pgm will run it.
    Lint(LintArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these definitions.
    Man,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Files to lint (default: every migration in --migrations).
    pub files: Vec<PathBuf>,
    /// Only the migrations `pgm migrate` would run now (connects to read the history).
    #[arg(long, conflicts_with = "files")]
    pub pending: bool,
    /// The PostgreSQL version to judge by, such as 15 or 15.4. Unset: the server's when a
    /// database is configured (--database-url, DATABASE_URL, PGHOST, PGHOSTADDR or PGDATABASE),
    /// else 14, the oldest PostgreSQL pgm supports.
    #[arg(long, env = "PGM_PG_VERSION", value_name = "VERSION")]
    pub pg_version: Option<PgVersion>,
    #[arg(long, value_enum, default_value_t = LintFormat::Text)]
    pub format: LintFormat,
    /// List every rule, whether it runs by default, and exit.
    #[arg(long, conflicts_with_all = ["files", "pending"])]
    pub list_rules: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub command: Option<MigrateCommand>,
    /// Print the exact SQL that would run (transactions and history rows included), and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Migrate up to this version (inclusive).
    #[arg(long, value_name = "N")]
    pub target: Option<i64>,
    /// Output format; `sql` goes with --dry-run.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Apply a new migration whose version is below the highest applied one.
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// After migrating, run `pgm partitions maintain` for the policy's tables, so a partitioned
    /// table a migration just created has its partitions before its first insert.
    #[arg(long, conflicts_with = "dry_run")]
    pub maintain: bool,
    #[command(flatten)]
    pub locks: MigrateLockArgs,
}

#[derive(Debug, Args)]
pub struct MigrateLockArgs {
    #[command(flatten)]
    pub lock: LockTimeoutArgs,
    /// How long a statement of a transactional migration may run (0: no limit).
    #[arg(
        long,
        env = "PGM_STATEMENT_TIMEOUT",
        default_value = "5min",
        value_name = "DURATION"
    )]
    pub statement_timeout: Timeout,
    /// How long a CONCURRENTLY statement (an index build) may wait for older transactions to end;
    /// it blocks no reads or writes meanwhile, and says every 5s whom it waits for.
    #[arg(
        long,
        env = "PGM_SNAPSHOT_WAIT",
        default_value = "30min",
        value_name = "DURATION"
    )]
    pub snapshot_wait: Timeout,
    #[command(flatten)]
    pub wait: LockWaitArg,
}

#[derive(Debug, Args)]
pub struct LockTimeoutArgs {
    /// How long any statement may wait for a lock before it is cancelled (and retried).
    #[arg(
        long,
        env = "PGM_LOCK_TIMEOUT",
        default_value = "2s",
        value_name = "DURATION"
    )]
    pub lock_timeout: Timeout,
    /// Retries of a migration (or of a statement outside a transaction) cancelled by lock_timeout.
    #[arg(
        long,
        env = "PGM_LOCK_RETRIES",
        default_value_t = 5,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(..=i64::from(MAX_LOCK_RETRIES))
    )]
    pub lock_retries: u32,
}

#[derive(Debug, Args)]
pub struct LockWaitArg {
    /// How long to wait for another pgm migrate to finish before giving up.
    #[arg(
        long,
        env = "PGM_LOCK_WAIT",
        default_value = "5min",
        value_name = "DURATION"
    )]
    pub lock_wait: Timeout,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Applied (with time and duration), pending, divergent and missing migrations.
    Status {
        /// Exit 2 when migrations are pending.
        #[arg(long)]
        exit_code: bool,
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// Record the migrations up to version N as applied without running them (for an existing database).
    Baseline {
        version: i64,
        #[command(flatten)]
        wait: LockWaitArg,
    },
    /// Accept applied files that were edited: only comments or whitespace, or anything with --force (audited).
    Repair {
        /// The edited files (default: every applied file whose checksum changed).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Record the new checksum even when statements changed, or when the applied text is unknown.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        wait: LockWaitArg,
    },
    /// Make the history table (and pgm's own tables) hold 64-bit versions, for YYYYMMDDHHMMSS versions.
    #[command(
        long_about = "Make the history table refinery_schema_history, and pgm's own tables, hold 64-bit \
                      versions, so that YYYYMMDDHHMMSS versions (pgm migrate new --timestamp) fit. refinery \
                      hashes the version at its width into every checksum, so each applied row gets the \
                      checksum of refinery's 64-bit build (its int8-versions feature): from the file when it \
                      is unchanged, else from the text pgm recorded when it applied it. One transaction \
                      under lock_timeout, retried; the tables are locked ACCESS EXCLUSIVE for as long as it \
                      takes to rewrite them (milliseconds for thousands of rows). Does nothing when the \
                      tables are 64-bit already."
    )]
    WidenHistory {
        /// Print the exact SQL, and run nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        lock: LockTimeoutArgs,
        #[command(flatten)]
        wait: LockWaitArg,
    },
    /// Write the next migration file, migrations/V{next}__NAME.sql, and print its path.
    #[command(
        long_about = "Write the next migration file, V{next}__NAME.sql in the --migrations directory, with a header \
                      comment saying how pgm will run it, and print its path (`$EDITOR \
                      \"$(pgm migrate new add_orders)\"`). The version is the highest one in the \
                      directory plus one (V1 in an empty or missing directory). Never overwrites."
    )]
    New {
        /// The migration's name: letters, digits and underscores, e.g. add_orders.
        name: String,
        /// Start the file with `-- pgm:no-transaction`: it runs statement by statement outside
        /// any transaction, for CREATE INDEX CONCURRENTLY and other statements PostgreSQL
        /// refuses in one.
        #[arg(long)]
        no_transaction: bool,
        /// Number by the clock (YYYYMMDDHHMMSS, UTC), the form for teams with many branches; the
        /// history table then needs 64-bit versions (see pgm migrate widen-history). Once the
        /// directory holds such versions, new files get them without the flag.
        #[arg(long)]
        timestamp: bool,
        /// The clock for --timestamp (RFC 3339), for tests.
        #[arg(long, hide = true, value_name = "RFC3339", value_parser = config::parse_instant)]
        at: Option<DateTime<Utc>>,
    },
    /// Wait until the database has every migration of the directory applied (for init
    /// containers and readiness gates); exit 1 at the timeout, naming what is missing.
    #[command(
        long_about = "Wait until the database has every migration of the directory (or every one up \
                      to --target) applied, then exit 0; for Kubernetes init containers and readiness \
                      gates. Polls the history table with one short query per --interval, outside any \
                      transaction, and connects again when the server restarts. Exits 1 at \
                      --timeout naming the migrations still missing, and at once when an applied \
                      migration's file has changed since (its checksum differs) or the server \
                      refuses the login."
    )]
    Wait {
        /// Wait only for the migrations up to this version (inclusive).
        #[arg(long, value_name = "N")]
        target: Option<i64>,
        /// How long to wait before giving up with exit 1 (0: look once).
        #[arg(
            long,
            env = "PGM_WAIT_TIMEOUT",
            default_value = "10min",
            value_name = "DURATION"
        )]
        timeout: Timeout,
        /// How long to sleep between two looks at the history table.
        #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_interval)]
        interval: Timeout,
    },
}

/// A poll interval: a duration above zero.
fn parse_interval(text: &str) -> Result<Timeout, String> {
    let interval: Timeout = text.parse()?;
    if interval.0.is_zero() {
        return Err("the interval must be longer than 0, such as 500ms or 2s".to_owned());
    }
    Ok(interval)
}

#[derive(Debug, Subcommand)]
pub enum PartitionsCommand {
    /// Show what maintenance would do, as exact SQL with locks.
    Plan {
        /// Plan as if now were this instant (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = config::parse_instant)]
        at: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Exit 2 when the plan has steps.
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Create, retire and index partitions as the policy says.
    Maintain {
        /// Print the plan and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Act as if now were this instant (RFC 3339); acts on the real database.
        #[arg(long, value_name = "RFC3339", value_parser = config::parse_instant)]
        at: Option<DateTime<Utc>>,
        /// Only these tables (schema-qualified).
        #[arg(long = "table", value_name = "NAME")]
        tables: Vec<String>,
        /// text for people; json: per table what was created, detached, dropped, archived.
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// Partitions per managed table, with bounds, sizes, index validity and coverage.
    Status {
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
        /// As if now were this instant (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = config::parse_instant)]
        at: Option<DateTime<Utc>>,
    },
    /// Turn a plain table named in the policy into a range-partitioned one, online and resumably.
    #[command(
        long_about = "Turn a plain table named in the policy (its [[table]] entry names the key column with \
                      key = \"column\") into a range-partitioned one while the application keeps writing \
                      to it: check (refuses, changing nothing, with exit 64), prepare (the partitioned table, \
                      its partitions and a change capture), backfill (key-ordered batches), replay (the \
                      captured changes), verify (counts and hashes per partition) and swap (one short \
                      transaction under lock_timeout; --unswap reverses it, --drop-old ends it). A journal \
                      table, pgm_convert, records where it is: run the same command again after any stop \
                      and it carries on."
    )]
    Convert {
        /// The table, schema-qualified, as the policy names it.
        #[arg(value_name = "TABLE")]
        table: String,
        /// Stop after this phase.
        #[arg(long, value_enum, value_name = "PHASE")]
        until: Option<ConvertPhase>,
        /// Print the exact SQL of each phase with its locks, and run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Plan as if now were this instant (RFC 3339): premake counts from it.
        #[arg(long, value_name = "RFC3339", value_parser = config::parse_instant)]
        at: Option<DateTime<Utc>>,
        /// Rows copied per backfill transaction.
        #[arg(long, default_value_t = 10_000, value_name = "ROWS",
              value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch_size: u32,
        /// A pause between two backfill batches, to leave the server room (e.g. 100ms).
        #[arg(long, default_value = "0s", value_name = "DURATION")]
        pause: Timeout,
        /// After the swap: give the name back to the old table (kept until --drop-old), with
        /// every write made since replayed into it.
        #[arg(long, conflicts_with_all = ["until", "drop_old"])]
        unswap: bool,
        /// After the swap (this run's or an earlier one's): print the row counts, end the
        /// change capture and drop the old table.
        #[arg(long)]
        drop_old: bool,
        /// The name the old table keeps after the swap, in the same schema (default:
        /// TABLE_unpartitioned).
        #[arg(long, value_name = "NAME", conflicts_with = "unswap")]
        keep_as: Option<String>,
        /// Before the swap: end the change capture and drop the partitioned copy, its partitions
        /// and the journal row, leaving the table as it was.
        #[arg(long, conflicts_with_all = ["until", "unswap", "drop_old", "keep_as"])]
        abort: bool,
    },
    /// Write the policy for the tables pg_partman manages, from its part_config.
    #[command(
        name = "import-pg-partman",
        long_about = "Read pg_partman's part_config (4.x or 5.x) and write a [[table]] entry for each table \
                      it manages: interval, premake, retention and its action, naming, the time zone, the \
                      default partition (drained), and the template table's storage parameters and \
                      inherit_privileges as [table.partition]. Every setting pgm cannot carry over is listed \
                      with what to do. Prints the statement that turns pg_partman's maintenance off for those \
                      tables, to run once `pgm partitions plan` shows nothing to do for them; \
                      --disable-pg-partman runs it. Reads only, otherwise; needs no superuser."
    )]
    ImportPgPartman {
        /// pg_partman's schema (default: the schema the extension is installed in, else partman).
        #[arg(long, value_name = "SCHEMA")]
        schema: Option<String>,
        /// The time zone pg_partman's maintenance ran in (default: the database's TimeZone setting).
        #[arg(long, value_name = "ZONE", value_parser = parse_time_zone)]
        time_zone: Option<chrono_tz::Tz>,
        /// Write the policy to this file (it must not exist) and a report to standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also turn pg_partman's maintenance off for the imported tables (automatic_maintenance = 'off').
        #[arg(long)]
        disable_pg_partman: bool,
    },
    /// For monitoring: exit 1 with one line per problem (coverage below premake, rows in a
    /// default partition, an INVALID index, a pending detach, drift).
    Check {
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
        /// As if now were this instant (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = config::parse_instant)]
        at: Option<DateTime<Utc>>,
    },
}

fn parse_time_zone(text: &str) -> Result<chrono_tz::Tz, String> {
    text.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("{text} is not an IANA time zone, such as Europe/Berlin or UTC"))
}

/// Gives a core enum its command-line spelling, so the core stays free of
/// the parser.
macro_rules! value_enum {
    ($type:ty { $($variant:ident => $name:literal $(: $help:literal)?),+ $(,)? }) => {
        impl ValueEnum for $type {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(<$type>::$variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $(<$type>::$variant => PossibleValue::new($name)$(.help($help))?),+
                })
            }
        }
    };
}

value_enum!(ConvertPhase {
    Check => "check": "read-only: can the table be converted, and what is carried over",
    Prepare => "prepare": "the partitioned table, its partitions, the change log and its trigger",
    Backfill => "backfill": "copy the rows in key-ordered batches",
    Replay => "replay": "apply the captured changes to the partitioned table",
    Verify => "verify": "compare both tables per partition: row counts and a content hash",
    Swap => "swap": "the partitioned table takes the name in one short transaction; the old one is kept",
});
value_enum!(PlanFormat { Text => "text", Json => "json", Sql => "sql" });
value_enum!(StatusFormat { Text => "text", Json => "json" });
value_enum!(CheckFormat {
    Text => "text",
    Json => "json",
    Prometheus => "prometheus": "node_exporter's textfile collector format: gauges per table",
});
value_enum!(LintFormat {
    Text => "text",
    Json => "json",
    Github => "github": "GitHub Actions workflow commands: annotations on the pull request's lines",
});

impl Cli {
    /// The configuration this command line asks for.
    pub fn into_config(self) -> Config {
        let global = self.global;
        Config {
            database_url: global.database_url,
            policy_is_default: global.config.as_os_str() == DEFAULT_CONFIG,
            policy: global.config,
            migrations: global.migrations,
            command: self.command.into_config(),
            fleet: global.fleet.fleet.then_some(config::FleetRun {
                jobs: global.fleet.jobs,
                fail_fast: global.fleet.fail_fast,
                canary: global.fleet.canary,
            }),
            schema: None,
        }
    }
}

impl Command {
    fn into_config(self) -> config::Command {
        use config::Command as C;
        match self {
            Command::Migrate(args) => args.into_config(),
            Command::Partitions(command) => command.into_config(),
            Command::Ping { format } => C::Ping { format },
            Command::Demo { keep, at } => C::Demo { keep, at },
            Command::Init => C::Init,
            Command::Lint(args) => C::Lint(config::Lint {
                files: args.files,
                pending: args.pending,
                pg_version: args.pg_version,
                format: args.format,
                list_rules: args.list_rules,
            }),
            Command::Completions { shell } => C::Print(completions(shell)),
            Command::Man => C::Print(man_page()),
        }
    }
}

impl MigrateArgs {
    fn into_config(self) -> config::Command {
        match self.command {
            Some(MigrateCommand::Status { exit_code, format }) => {
                config::Command::MigrateStatus { exit_code, format }
            }
            Some(MigrateCommand::Baseline { version, wait }) => config::Command::Baseline {
                version,
                lock_wait: wait.lock_wait.0,
            },
            Some(MigrateCommand::Repair { files, force, wait }) => config::Command::Repair {
                files,
                force,
                lock_wait: wait.lock_wait.0,
            },
            Some(MigrateCommand::WidenHistory {
                dry_run,
                lock,
                wait,
            }) => config::Command::WidenHistory {
                dry_run,
                lock_timeout: lock.lock_timeout,
                lock_retries: lock.lock_retries,
                lock_wait: wait.lock_wait.0,
            },
            Some(MigrateCommand::New {
                name,
                no_transaction,
                timestamp,
                at,
            }) => config::Command::MigrateNew(config::MigrateNew {
                name,
                no_transaction,
                timestamp,
                at,
            }),
            Some(MigrateCommand::Wait {
                target,
                timeout,
                interval,
            }) => config::Command::MigrateWait {
                target,
                timeout: timeout.0,
                interval: interval.0,
            },
            None => config::Command::Migrate(config::Migrate {
                dry_run: self.dry_run,
                target: self.target,
                format: self.format,
                allow_out_of_order: self.allow_out_of_order,
                maintain: self.maintain,
                locks: MigrateLocks {
                    lock_timeout: self.locks.lock.lock_timeout,
                    lock_retries: self.locks.lock.lock_retries,
                    statement_timeout: self.locks.statement_timeout,
                    snapshot_wait: self.locks.snapshot_wait,
                    lock_wait: self.locks.wait.lock_wait.0,
                },
            }),
        }
    }
}

impl PartitionsCommand {
    fn into_config(self) -> config::Command {
        use config::Command as C;
        match self {
            PartitionsCommand::Plan {
                at,
                format,
                detailed_exitcode,
            } => C::PartitionsPlan {
                at,
                format,
                detailed_exitcode,
            },
            PartitionsCommand::Maintain {
                dry_run,
                at,
                tables,
                format,
            } => C::PartitionsMaintain {
                dry_run,
                at,
                tables,
                format,
            },
            PartitionsCommand::Status { format, at } => C::PartitionsStatus { format, at },
            PartitionsCommand::Check { format, at } => C::PartitionsCheck { format, at },
            PartitionsCommand::ImportPgPartman {
                schema,
                time_zone,
                output,
                disable_pg_partman,
            } => C::PartitionsImport(config::Import {
                schema,
                time_zone,
                output,
                disable_pg_partman,
            }),
            PartitionsCommand::Convert {
                table,
                until,
                dry_run,
                at,
                batch_size,
                pause,
                unswap,
                drop_old,
                keep_as,
                abort,
            } => C::PartitionsConvert(config::Convert {
                table,
                until,
                dry_run,
                at,
                batch_size,
                pause: pause.0,
                unswap,
                drop_old,
                keep_as,
                abort,
            }),
        }
    }
}

/// Shell completions for `pgm`, from the definitions above.
/// Generated into memory: the generator panics on a write error (a closed
/// pipe), and a closed pipe is not an error for pgm.
fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    use clap::CommandFactory;
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pgm", &mut buffer);
    buffer
}

/// The man page, from the definitions above.
fn man_page() -> Vec<u8> {
    use clap::CommandFactory;
    let mut buffer = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buffer)
        .expect("writing to memory cannot fail");
    buffer
}
