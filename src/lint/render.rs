//! The lint report as text for people, JSON for tools, and GitHub Actions
//! workflow commands (annotations on the pull request's lines).

use std::io::{self, Write};

use super::rules::{self, RuleId};
use super::{FileReport, Finding, Level, Report};
use crate::location::{Footer, Span, snippet};
use crate::migrate::sql::Mode;

/// ```text
/// migrations/V3__idx.sql:4:1: error[require-concurrent-index-creation]: During normal index creation…
///   |
/// 4 | CREATE INDEX events_user_idx ON events (user_id);
///   | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
///   |
///   = help: Use `CONCURRENTLY` to avoid blocking writes.
/// ```
pub fn write_text(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    for file in &report.files {
        for finding in &file.findings {
            write_finding(out, file, finding)?;
        }
    }
    let files = report.files.len();
    write!(
        out,
        "{} linted for {}: ",
        plural(files, "file"),
        report.pg_version
    )?;
    if report.errors == 0 && report.warnings == 0 {
        writeln!(out, "no findings")
    } else {
        writeln!(
            out,
            "{}, {}",
            plural(report.errors, "error"),
            plural(report.warnings, "warning")
        )
    }
}

fn write_finding(out: &mut dyn Write, file: &FileReport, finding: &Finding) -> io::Result<()> {
    writeln!(
        out,
        "{}:{}:{}: {}[{}]: {}",
        file.path.display(),
        finding.line,
        finding.column,
        finding.level,
        finding.rule,
        finding.message
    )?;
    let transaction_note = (file.mode == Mode::NoTransaction).then(|| {
        format!(
            "pgm runs this file outside a transaction, statement by statement: {}",
            file.mode_reason
        )
    });
    let footers: Vec<Footer<'_>> = (finding.help.as_deref().map(Footer::Help).into_iter())
        .chain(transaction_note.as_deref().map(Footer::Note))
        .collect();
    let span = Span {
        line: finding.line,
        column: finding.column,
        end_line: finding.end_line,
        end_column: finding.end_column,
    };
    writeln!(out, "{}", snippet(&file.text, span, &footers))?;
    writeln!(out)
}

pub fn write_json(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// `::error file=…,line=…::message` lines, which GitHub Actions turns into
/// annotations on the changed lines.
pub fn write_github(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    for file in &report.files {
        for finding in &file.findings {
            let command = match finding.level {
                Level::Error => "error",
                Level::Warning => "warning",
            };
            let mut message = finding.message.clone();
            if let Some(help) = &finding.help {
                message.push_str("\nhelp: ");
                message.push_str(help);
            }
            writeln!(
                out,
                "::{command} file={},line={},col={},endLine={},endColumn={},title={}::{}",
                escape_property(&file.path.display().to_string()),
                finding.line,
                finding.column,
                finding.end_line,
                finding.end_column,
                escape_property(&format!("pgm lint: {}", finding.rule)),
                escape_data(&message)
            )?;
        }
    }
    Ok(())
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Every rule, whether it runs by default, and who checks it.
pub fn write_rules(out: &mut dyn Write) -> io::Result<()> {
    let all = rules::all_rules();
    let width = all
        .iter()
        .map(|rule| rule.to_string().len())
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "{:width$}  {:7}  {:7}  note",
        "rule", "from", "default"
    )?;
    for rule in all {
        let (from, default, note) = match rule {
            RuleId::Pgm(pgm) => (
                "pgm",
                if pgm == rules::PgmRule::PartitionedTableNotInPolicy {
                    "warning"
                } else {
                    "error"
                },
                if pgm.is_refusal() {
                    "`pgm migrate` refuses the file; cannot be excluded".to_owned()
                } else {
                    String::new()
                },
            ),
            RuleId::Squawk(_) => match rules::satisfied_by_pgm(rule) {
                Some(why) => ("squawk", "off", why.to_owned()),
                None if rules::is_opt_in(rule) => {
                    ("squawk", "off", "opt-in: [lint] include".to_owned())
                }
                None => ("squawk", "error", String::new()),
            },
        };
        let line = format!("{:width$}  {from:7}  {default:7}  {note}", rule.to_string());
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
