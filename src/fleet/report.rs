//! The one report of a fleet run: a line per target then each failure with
//! its whole error (text), one object per target (JSON), or the targets'
//! metrics merged under a `target` label (Prometheus).

use std::io::{self, Write};

use serde_json::{Map, Value, json};

use super::schedule::NotRun;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Succeeded, with changes pending (migrate status --exit-code, plan
    /// --detailed-exitcode).
    Pending,
    Failed,
    NotRun(NotRun),
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Pending => "pending",
            Outcome::Failed => "FAILED",
            Outcome::NotRun(_) => "not run",
        }
    }

    fn json_word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Pending => "pending",
            Outcome::Failed => "failed",
            Outcome::NotRun(_) => "not_run",
        }
    }
}

/// What happened on one target.
#[derive(Debug, Clone)]
pub struct TargetReport {
    pub name: String,
    pub outcome: Outcome,
    /// One line of what the command did.
    pub summary: String,
    /// The same as data (applied, created, dropped…).
    pub detail: Map<String, Value>,
    /// What the command wrote, as it writes it on one database.
    pub output: Vec<u8>,
    /// The error with its whole cause chain.
    pub error: Option<String>,
    pub seconds: f64,
}

/// Counts by outcome, for the last line and the exit code.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub ok: usize,
    pub pending: usize,
    pub failed: usize,
    pub not_run: usize,
}

pub fn totals(reports: &[TargetReport]) -> Totals {
    let mut totals = Totals::default();
    for report in reports {
        match report.outcome {
            Outcome::Ok => totals.ok += 1,
            Outcome::Pending => totals.pending += 1,
            Outcome::Failed => totals.failed += 1,
            Outcome::NotRun(_) => totals.not_run += 1,
        }
    }
    totals
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} target(s): {} ok, {} pending, {} failed, {} not run",
            self.ok + self.pending + self.failed + self.not_run,
            self.ok,
            self.pending,
            self.failed,
            self.not_run
        )
    }
}

/// With `show_output`, each target's own output first, under its name
/// (for plans and status, where the output is the point).
pub fn write_text(
    out: &mut dyn Write,
    reports: &[TargetReport],
    show_output: bool,
) -> io::Result<()> {
    if show_output {
        for report in reports.iter().filter(|r| !r.output.is_empty()) {
            writeln!(out, "== {} ==", report.name)?;
            out.write_all(&report.output)?;
            if !report.output.ends_with(b"\n") {
                writeln!(out)?;
            }
        }
    }
    let width = reports
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0);
    for report in reports {
        let what = match report.outcome {
            Outcome::NotRun(why) => why.to_string(),
            Outcome::Failed => first_line(report.error.as_deref().unwrap_or_default()),
            _ => report.summary.clone(),
        };
        writeln!(
            out,
            "{:width$}  {:7}  {:>6.1}s  {what}",
            report.name,
            report.outcome.word(),
            report.seconds
        )?;
    }
    let failed: Vec<&TargetReport> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .collect();
    if !failed.is_empty() {
        writeln!(out, "\nfailures:")?;
        for report in failed {
            writeln!(out, "\n== {} ==", report.name)?;
            out.write_all(&report.output)?;
            writeln!(out, "{}", report.error.as_deref().unwrap_or_default())?;
        }
    }
    writeln!(out, "\n{}", totals(reports))
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

/// With `output_is_json`, each target's output (the command's own JSON) is
/// embedded as `result`.
pub fn write_json(
    out: &mut dyn Write,
    reports: &[TargetReport],
    output_is_json: bool,
) -> io::Result<()> {
    let targets: Vec<Value> = reports
        .iter()
        .map(|report| {
            let mut target = json!({
                "name": report.name,
                "outcome": report.outcome.json_word(),
                "summary": report.summary,
                "seconds": (report.seconds * 1000.0).round() / 1000.0,
                "error": report.error,
            });
            if let Outcome::NotRun(why) = report.outcome {
                target["summary"] = why.to_string().into();
            }
            target["detail"] = Value::Object(report.detail.clone());
            if output_is_json && let Ok(result) = serde_json::from_slice::<Value>(&report.output) {
                target["result"] = result;
            }
            target
        })
        .collect();
    let totals = totals(reports);
    let document = json!({
        "targets": targets,
        "totals": {
            "ok": totals.ok,
            "pending": totals.pending,
            "failed": totals.failed,
            "not_run": totals.not_run,
        },
    });
    serde_json::to_writer_pretty(&mut *out, &document)?;
    writeln!(out)
}

/// Every target's metrics, each sample labelled with its target, each
/// family once; and `pgm_fleet_target_up`, 0 for a target that failed.
pub fn write_prometheus(out: &mut dyn Write, reports: &[TargetReport]) -> io::Result<()> {
    let mut families: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for report in reports {
        let text = String::from_utf8_lossy(&report.output);
        let target = label_value(&report.name);
        for line in text.lines() {
            let family = family_of(line);
            let at = match families.iter().position(|(name, _, _)| *name == family) {
                Some(at) => at,
                None => {
                    families.push((family.clone(), Vec::new(), Vec::new()));
                    families.len() - 1
                }
            };
            let (_, headers, samples) = &mut families[at];
            if line.starts_with('#') {
                if !headers.iter().any(|known| known == line) {
                    headers.push(line.to_owned());
                }
            } else if let Some((name, rest)) = line.split_once('{') {
                samples.push(format!("{name}{{target=\"{target}\",{rest}"));
            } else if let Some((name, value)) = line.split_once(' ') {
                samples.push(format!("{name}{{target=\"{target}\"}} {value}"));
            }
        }
    }
    for (_, headers, samples) in &families {
        for line in headers.iter().chain(samples) {
            writeln!(out, "{line}")?;
        }
    }
    writeln!(
        out,
        "# HELP pgm_fleet_target_up 1 when pgm partitions check could read the target, 0 when it failed \
         to (its error is on stderr).\n# TYPE pgm_fleet_target_up gauge"
    )?;
    for report in reports {
        let up = !matches!(report.outcome, Outcome::Failed | Outcome::NotRun(_))
            || !report.output.is_empty();
        writeln!(
            out,
            "pgm_fleet_target_up{{target=\"{}\"}} {}",
            label_value(&report.name),
            u8::from(up)
        )?;
    }
    Ok(())
}

/// The metric family a line of the exposition format belongs to.
fn family_of(line: &str) -> String {
    let name = match line.strip_prefix("# ") {
        Some(header) => header.split_whitespace().nth(1).unwrap_or_default(),
        None => line.split(['{', ' ']).next().unwrap_or_default(),
    };
    name.to_owned()
}

fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(name: &str, outcome: Outcome, output: &str) -> TargetReport {
        TargetReport {
            name: name.to_owned(),
            outcome,
            summary: String::new(),
            detail: Map::new(),
            output: output.as_bytes().to_vec(),
            error: None,
            seconds: 0.0,
        }
    }

    #[test]
    fn metrics_of_every_target_come_once_per_family_with_a_target_label() {
        let metrics = "# HELP a A.\n# TYPE a gauge\na{table=\"public.t\"} 3\n# HELP b B.\n# TYPE b gauge\nb{table=\"public.t\"} 0\n";
        let reports = [
            checked("one", Outcome::Ok, metrics),
            checked("two", Outcome::Ok, metrics),
            checked("three", Outcome::Failed, ""),
        ];
        let mut out = Vec::new();
        write_prometheus(&mut out, &reports).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().take(8).collect::<Vec<_>>(),
            [
                "# HELP a A.",
                "# TYPE a gauge",
                "a{target=\"one\",table=\"public.t\"} 3",
                "a{target=\"two\",table=\"public.t\"} 3",
                "# HELP b B.",
                "# TYPE b gauge",
                "b{target=\"one\",table=\"public.t\"} 0",
                "b{target=\"two\",table=\"public.t\"} 0",
            ]
        );
        assert!(text.contains("pgm_fleet_target_up{target=\"three\"} 0"));
        assert!(text.contains("pgm_fleet_target_up{target=\"one\"} 1"));
    }
}
