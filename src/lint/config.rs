//! The `[lint]` section of the policy file: which rules to leave out, which
//! of squawk's opt-in rules to turn on, and which to report as warnings only.
//! Every rule name is checked, with its place and a did-you-mean.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::rules::{self, RuleId};
use crate::location::LineIndex;
use crate::partition::policy::{PolicyError, Problem, describe_toml_error};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintConfig {
    pub exclude: Vec<RuleId>,
    pub include: Vec<RuleId>,
    pub warn: Vec<RuleId>,
}

/// The whole file, reading only `[lint]`: the policy parser checks the rest.
#[derive(Deserialize)]
struct RawFile {
    lint: Option<RawLint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLint {
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    warn: Vec<Spanned<String>>,
}

pub fn parse(path: &Path, text: &str) -> Result<LintConfig, PolicyError> {
    let lines = LineIndex::new(text);
    let mut problems = Vec::new();
    let mut problem = |span: Range<usize>, message: String| {
        let location = lines.location(path, span.start);
        problems.push(Problem {
            snippet: location.snippet(text),
            location,
            message,
        });
    };
    let raw = match toml::from_str::<RawFile>(text) {
        Ok(RawFile { lint: Some(raw) }) => raw,
        Ok(RawFile { lint: None }) => return Ok(LintConfig::default()),
        Err(error) => {
            problem(
                error.span().unwrap_or(0..0),
                format!(
                    "[lint]: {}",
                    describe_toml_error(error.message().trim_end())
                ),
            );
            return Err(PolicyError { problems });
        }
    };
    // Each rule with where it is written, so later problems can point at it.
    let mut names = |list: &[Spanned<String>], key: &str| -> Vec<(RuleId, Range<usize>)> {
        let mut found = Vec::new();
        for name in list {
            match name.get_ref().parse::<RuleId>() {
                Ok(rule) => found.push((rule, name.span())),
                Err(unknown) => problem(name.span(), format!("[lint] {key}: {unknown}")),
            }
        }
        found
    };
    let exclude = names(&raw.exclude, "exclude");
    let include = names(&raw.include, "include");
    let warn = names(&raw.warn, "warn");
    for (span, message) in contradictions(&exclude, &include, &warn) {
        problem(span, message);
    }
    let rules_of =
        |list: Vec<(RuleId, Range<usize>)>| list.into_iter().map(|(rule, _)| rule).collect();
    let config = LintConfig {
        exclude: rules_of(exclude),
        include: rules_of(include),
        warn: rules_of(warn),
    };
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(PolicyError { problems })
    }
}

/// Rules listed where they cannot be, or in two lists at once.
fn contradictions(
    exclude: &[(RuleId, Range<usize>)],
    include: &[(RuleId, Range<usize>)],
    warn: &[(RuleId, Range<usize>)],
) -> Vec<(Range<usize>, String)> {
    let mut found = Vec::new();
    let refusals = [
        (
            exclude,
            "exclude",
            "cannot be excluded: `pgm migrate` refuses such a file whatever lint says, so fix \
             the file instead",
        ),
        (
            warn,
            "warn",
            "cannot be a warning: `pgm migrate` refuses such a file",
        ),
    ];
    for (list, key, why) in refusals {
        for (rule, span) in list {
            if matches!(rule, RuleId::Pgm(pgm) if pgm.is_refusal()) {
                found.push((span.clone(), format!("[lint] {key}: {rule} {why}")));
            }
        }
    }
    for (rule, span) in warn {
        if exclude.iter().any(|(excluded, _)| excluded == rule) {
            found.push((
                span.clone(),
                format!("[lint] warn: {rule} is also excluded; keep it in one list"),
            ));
        }
    }
    for (rule, span) in include {
        if let Some(why) = rules::satisfied_by_pgm(*rule) {
            found.push((
                span.clone(),
                format!("[lint] include: {rule} is not needed with pgm: {why}"),
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::PgmRule;

    fn problems(text: &str) -> String {
        parse(Path::new("partman.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn names_both_kinds_of_rules() {
        let config = parse(
            Path::new("partman.toml"),
            "[[table]]\nname = \"public.t\"\ninterval = \"monthly\"\n\n[lint]\n\
             exclude = [\"prefer-robust-stmts\"]\ninclude = [\"ban-drop-index\"]\n\
             warn = [\"partitioned-table-not-in-policy\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.exclude,
            [RuleId::Squawk(squawk_linter::Rule::PreferRobustStmts)]
        );
        assert_eq!(
            config.include,
            [RuleId::Squawk(squawk_linter::Rule::BanDropIndex)]
        );
        assert_eq!(
            config.warn,
            [RuleId::Pgm(PgmRule::PartitionedTableNotInPolicy)]
        );
        assert_eq!(
            parse(Path::new("p.toml"), "[defaults]\npremake = 2\n").unwrap(),
            LintConfig::default()
        );
    }

    #[test]
    fn mistakes_are_located_with_a_suggestion() {
        let text = problems("[lint]\nexclude = [\"prefer-robust-stmt\", \"syntax-error\"]\n");
        assert!(
            text.contains("partman.toml:2:12: [lint] exclude: unknown rule \"prefer-robust-stmt\" (did you mean \"prefer-robust-stmts\"?)"),
            "{text}"
        );
        assert!(
            text.contains("partman.toml:2:34: [lint] exclude: syntax-error cannot be excluded"),
            "{text}"
        );
        let text = problems("[lint]\nexcludes = []\n");
        assert!(text.contains("partman.toml:2:1:"), "{text}");
        assert!(
            text.contains("unknown key \"excludes\" (did you mean \"exclude\"?)"),
            "{text}"
        );
        let text = problems("[lint]\ninclude = [\"require-timeout-settings\"]\n");
        assert!(
            text.contains("pgm sets lock_timeout for every statement"),
            "{text}"
        );
    }
}
