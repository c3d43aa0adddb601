//! `pgm lint`: squawk's rules, run on each file the way pgm will really run
//! it (in one transaction or statement by statement) for the target server
//! version, plus what pgm knows and squawk does not: the files `pgm migrate`
//! refuses, and partitioned tables PostgreSQL or the policy will trip over.

pub mod config;
mod ignore;
pub mod partitioned;
pub mod render;
pub mod rewrite;
pub(crate) mod rules;
mod same_file;

use std::fmt;
use std::path::{Path, PathBuf};

use squawk_linter::{LinterSettings, Rule as SquawkRule, Violation};
use squawk_syntax::SourceFile;

use self::config::LintConfig;
use self::ignore::Ignores;
use self::partitioned::{PartitionedTables, PolicyCoverage};
use self::rewrite::ServerProbe;
use self::rules::{PgmRule, RuleId};
use self::same_file::SameFile;
use crate::location::LineIndex;
use crate::migrate::sql::{self, Examined, Mode, SqlError};
use crate::pg_version::PgVersion;

/// Without a server or `--pg-version`: the oldest PostgreSQL pgm supports,
/// so what lint passes holds on every supported server.
pub const DEFAULT_PG_MAJOR: u32 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    Server,
    Flag,
    Default,
}

/// The PostgreSQL version the rules judge by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TargetVersion {
    pub major: u32,
    pub minor: Option<u32>,
    pub source: VersionSource,
}

impl TargetVersion {
    pub fn default_version() -> TargetVersion {
        TargetVersion {
            major: DEFAULT_PG_MAJOR,
            minor: None,
            source: VersionSource::Default,
        }
    }

    pub fn new(version: PgVersion, source: VersionSource) -> TargetVersion {
        TargetVersion {
            major: version.major,
            minor: version.minor,
            source,
        }
    }

    /// From `server_version_num` (150004 → 15.4).
    pub fn from_server(version_num: i32) -> TargetVersion {
        let version_num = u32::try_from(version_num).unwrap_or(0);
        TargetVersion {
            major: version_num / 10_000,
            minor: Some(version_num % 10_000),
            source: VersionSource::Server,
        }
    }

    fn squawk(&self) -> squawk_linter::Version {
        // squawk counts in i32; parsed flags and server versions stay far
        // below, and a hand-built version past it lints as the newest.
        let clamp = |number: u32| i32::try_from(number).unwrap_or(i32::MAX);
        let text = match self.minor {
            Some(minor) => format!("{}.{}", clamp(self.major), clamp(minor)),
            None => clamp(self.major).to_string(),
        };
        text.parse()
            .expect("non-negative i32 numbers joined by a dot make a squawk version")
    }
}

impl fmt::Display for TargetVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL {}", self.major)?;
        if let Some(minor) = self.minor {
            write!(f, ".{minor}")?;
        }
        f.write_str(match self.source {
            VersionSource::Server => " (the server's)",
            VersionSource::Flag => " (--pg-version)",
            VersionSource::Default => {
                " (the default: the oldest pgm supports; give --pg-version or a connection)"
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    #[serde(serialize_with = "serialize_display")]
    pub rule: RuleId,
    pub level: Level,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: String,
    pub help: Option<String>,
}

fn serialize_display<S: serde::Serializer>(
    value: &impl fmt::Display,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    /// How `pgm migrate` runs the file, which the rules assumed.
    pub mode: Mode,
    pub mode_reason: String,
    pub findings: Vec<Finding>,
    /// The file's text, for the snippets of the text report.
    #[serde(skip)]
    pub text: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub pg_version: TargetVersion,
    pub files: Vec<FileReport>,
    pub errors: usize,
    pub warnings: usize,
}

impl Report {
    pub fn new(pg_version: TargetVersion, files: Vec<FileReport>) -> Report {
        let count = |level| {
            files
                .iter()
                .flat_map(|file| &file.findings)
                .filter(|finding| finding.level == level)
                .count()
        };
        Report {
            pg_version,
            errors: count(Level::Error),
            warnings: count(Level::Warning),
            files,
        }
    }
}

/// Lints files in version order, following the partitioned tables the
/// earlier ones create.
pub struct Linter {
    version: TargetVersion,
    config: LintConfig,
    coverage: PolicyCoverage,
    partitioned: PartitionedTables,
    /// The server, when lint connected: asked whether a column default rewrites.
    probe: Option<ServerProbe>,
}

impl Linter {
    pub fn new(version: TargetVersion, config: LintConfig, coverage: PolicyCoverage) -> Linter {
        Linter {
            version,
            config,
            coverage,
            partitioned: PartitionedTables::default(),
            probe: None,
        }
    }

    /// Asks this server (the one the target version is read from) whether
    /// an added column's default rewrites the table.
    pub fn with_server(mut self, probe: ServerProbe) -> Linter {
        self.probe = Some(probe);
        self
    }

    /// Reads a file that is not linted (an applied migration) only for the
    /// partitioned tables it creates.
    pub fn learn(&mut self, text: &str) {
        let parse = SourceFile::parse(text);
        if parse.errors().is_empty() {
            let _ = partitioned::check(&parse.syntax_node(), &mut self.partitioned, &self.coverage);
        }
    }

    pub fn lint(&mut self, path: &Path, text: &str) -> FileReport {
        let examined = sql::examine(path, text.to_owned());
        let lines = LineIndex::new(text);
        let mut findings: Vec<Finding> = examined.problems.iter().map(refusal).collect();
        let syntax_error = examined
            .problems
            .iter()
            .any(|problem| matches!(problem, SqlError::Syntax { .. }));
        if !syntax_error {
            let same_file =
                SameFile::read(&examined.syntax, examined.file.mode == Mode::Transaction);
            let columns = rewrite::added_columns(&examined.syntax.syntax_node());
            findings.extend(self.squawk(&examined, &lines, &same_file, &columns));
            findings.extend(self.pgm(&examined.syntax, &lines, &same_file, &columns));
        }
        for finding in &mut findings {
            if self.config.warn.contains(&finding.rule) {
                finding.level = Level::Warning;
            }
        }
        findings.sort_by_key(|f| (f.line, f.column, f.rule.to_string()));
        FileReport {
            path: path.to_path_buf(),
            mode: examined.file.mode,
            mode_reason: examined.file.mode_reason,
            findings,
            text: examined.file.text,
        }
    }

    fn squawk(
        &self,
        examined: &Examined,
        lines: &LineIndex<'_>,
        same_file: &SameFile,
        columns: &[rewrite::AddedColumn],
    ) -> Vec<Finding> {
        let squawk_rules = |list: &[RuleId]| -> Vec<SquawkRule> {
            list.iter().filter_map(|r| r.as_squawk()).collect()
        };
        let mut exclude = squawk_rules(&self.config.exclude);
        exclude.extend(
            rules::all_rules()
                .into_iter()
                .filter(|rule| rules::satisfied_by_pgm(*rule).is_some())
                .filter_map(RuleId::as_squawk),
        );
        let include = squawk_rules(&self.config.include);
        let in_transaction = examined.file.mode == Mode::Transaction;
        let mut linter = squawk_linter::Linter::with_rules(&include, &exclude);
        linter.settings = LinterSettings {
            pg_version: self.version.squawk(),
            assume_in_transaction: in_transaction,
        };
        let mut violations = linter.lint(&examined.syntax, examined.file.text.as_str());
        if in_transaction {
            // squawk excuses a few rules for any table created in the
            // transaction with the same last name, whatever its schema; pgm
            // excuses them itself, by the table PostgreSQL resolves (see
            // `same_file`). So those rules run again as if outside one, and
            // what squawk left out comes back for `same_file` to judge.
            let enabled: Vec<SquawkRule> = same_file::SQUAWK_EXCUSES_CREATED
                .into_iter()
                .filter(|rule| !exclude.contains(rule))
                .filter(|rule| !rule.is_opt_in() || include.contains(rule))
                .collect();
            let mut again = squawk_linter::Linter::from(enabled.clone());
            again.settings = LinterSettings {
                pg_version: self.version.squawk(),
                assume_in_transaction: false,
            };
            let missing: Vec<Violation> = again
                .lint(&examined.syntax, examined.file.text.as_str())
                .into_iter()
                .filter(|v| enabled.contains(&v.code))
                .filter(|v| {
                    !violations
                        .iter()
                        .any(|known| known.code == v.code && known.text_range == v.text_range)
                })
                .collect();
            violations.extend(missing);
        }
        violations
            .into_iter()
            .filter(|violation| {
                let start = usize::from(violation.text_range.start());
                // pgm judges added columns' defaults itself (see `pgm`); the
                // generated columns squawk reports are left to it.
                let judged_by_pgm = violation.code == SquawkRule::AddingFieldWithDefault
                    && columns.iter().any(|column| column.range.start == start);
                !judged_by_pgm && !same_file.excuses(violation.code, start)
            })
            .filter_map(|violation| self.squawk_finding(violation, examined, lines))
            .collect()
    }

    fn squawk_finding(
        &self,
        violation: Violation,
        examined: &Examined,
        lines: &LineIndex<'_>,
    ) -> Option<Finding> {
        let start = usize::from(violation.text_range.start());
        let end = usize::from(violation.text_range.end());
        let mut message = violation.message;
        let rule = match violation.code {
            SquawkRule::UnusedIgnore => {
                // squawk knows only its own names; pgm's are fine in an ignore comment.
                let name = message.strip_prefix("unknown name ").unwrap_or(&message);
                match name.parse::<RuleId>() {
                    Ok(_) => return None,
                    Err(unknown) => message = format!("ignore comment: {unknown}"),
                }
                RuleId::Squawk(SquawkRule::UnusedIgnore)
            }
            // pgm finishes an interrupted CREATE INDEX CONCURRENTLY itself: it
            // drops the INVALID leftover, or skips the build when the index is
            // valid, so the statement needs no IF NOT EXISTS to be rerun.
            SquawkRule::PreferRobustStmts
                if examined.file.statements.iter().any(|statement| {
                    statement.concurrent_index.is_some()
                        && (statement.start..statement.end).contains(&start)
                }) =>
            {
                return None;
            }
            rule => RuleId::Squawk(rule),
        };
        let (line, column) = lines.line_column(start);
        let (end_line, end_column) = lines.line_column(end);
        Some(Finding {
            rule,
            level: Level::Error,
            line,
            column,
            end_line,
            end_column,
            message,
            help: violation.help,
        })
    }

    fn pgm(
        &mut self,
        parse: &squawk_syntax::Parse<SourceFile>,
        lines: &LineIndex<'_>,
        same_file: &SameFile,
        columns: &[rewrite::AddedColumn],
    ) -> Vec<Finding> {
        let root = parse.syntax_node();
        let ignores = Ignores::collect(&root, lines);
        let futile_ignores = ignores.refusals.iter().map(|(rule, offset)| {
            let (line, column) = lines.line_column(*offset);
            Finding {
                rule: RuleId::Squawk(SquawkRule::UnusedIgnore),
                level: Level::Error,
                line,
                column,
                end_line: line,
                end_column: column,
                message: format!(
                    "ignore comment: {rule} cannot be ignored: `pgm migrate` refuses such a file \
                     whatever lint says"
                ),
                help: Some("fix the file, and remove the comment".to_owned()),
            }
        });
        let futile_ignores: Vec<Finding> = futile_ignores.collect();
        let rewrites = self.rewriting_columns(columns, same_file, &ignores, lines);
        partitioned::check(&root, &mut self.partitioned, &self.coverage)
            .into_iter()
            .filter_map(|raw| {
                let rule = RuleId::Pgm(raw.rule);
                let (line, column) = lines.line_column(raw.range.start);
                if self.config.exclude.contains(&rule) || ignores.covers(rule, line) {
                    return None;
                }
                let (end_line, end_column) = lines.line_column(raw.range.end);
                Some(Finding {
                    rule,
                    level: match raw.rule {
                        PgmRule::PartitionedTableNotInPolicy => Level::Warning,
                        _ => Level::Error,
                    },
                    line,
                    column,
                    end_line,
                    end_column,
                    message: raw.message,
                    help: Some(raw.help),
                })
            })
            .chain(futile_ignores)
            .chain(rewrites)
            .collect()
    }

    /// `adding-field-with-default` as PostgreSQL decides it: the added
    /// columns whose default (or serial type) rewrites an existing table.
    fn rewriting_columns(
        &mut self,
        columns: &[rewrite::AddedColumn],
        same_file: &SameFile,
        ignores: &Ignores,
        lines: &LineIndex<'_>,
    ) -> Vec<Finding> {
        let rule = RuleId::Squawk(SquawkRule::AddingFieldWithDefault);
        if self.config.exclude.contains(&rule) {
            return Vec::new();
        }
        let mut findings = Vec::new();
        for column in columns {
            let (line, column_number) = lines.line_column(column.range.start);
            if same_file.on_new_table(column.statement) || ignores.covers(rule, line) {
                continue;
            }
            if !column.rewrites(self.version.major, self.probe.as_mut()) {
                continue;
            }
            let (end_line, end_column) = lines.line_column(column.range.end);
            findings.push(Finding {
                rule,
                level: Level::Error,
                line,
                column: column_number,
                end_line,
                end_column,
                message: format!(
                    "Adding this column rewrites the table under an `ACCESS EXCLUSIVE` lock: {}.",
                    if column.is_serial() {
                        "a serial column's default, nextval(), is volatile"
                    } else if self.version.major < 11 {
                        "before PostgreSQL 11 any default but NULL does"
                    } else {
                        "its default is volatile (or its type is a domain with constraints)"
                    }
                ),
                help: Some(
                    "Add the column without the default (or with a non-volatile one), backfill \
                     existing rows in batches, then set the default."
                        .to_owned(),
                ),
            });
        }
        findings
    }
}

/// A reason `pgm migrate` refuses the file, as a finding.
fn refusal(problem: &SqlError) -> Finding {
    let (rule, message, help) = match problem {
        SqlError::Syntax { message, .. } => (
            PgmRule::SyntaxError,
            format!("cannot parse this SQL: {message}"),
            None,
        ),
        SqlError::TransactionControl { statement, .. } => (
            PgmRule::TransactionControl,
            format!(
                "{statement} is not allowed in a migration: pgm runs each migration in its own \
                 transaction, or statement by statement when it must run outside one"
            ),
            Some("remove it; a file that must run outside a transaction starts with `-- pgm:no-transaction`".to_owned()),
        ),
        SqlError::MixedModes {
            location,
            outside,
            inside,
            outside_lines,
        } => (
            PgmRule::MixedTransactionModes,
            format!(
                "`pgm migrate` refuses this file: {} (line {}) cannot run inside a transaction, \
                 {} (line {}) should run in one",
                outside, location.line, inside.0, inside.1
            ),
            Some(format!(
                "split the file: keep the transactional statements here and move the others \
                 ({outside_lines}) to a new migration with the next version, or put `{}` on the \
                 first line to run every statement on its own, without atomicity",
                sql::NO_TRANSACTION_HEADER
            )),
        ),
    };
    let location = problem.location();
    Finding {
        rule: RuleId::Pgm(rule),
        level: Level::Error,
        line: location.line,
        column: location.column,
        end_line: location.line,
        end_column: location.column,
        message,
        help,
    }
}
