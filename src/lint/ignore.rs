//! squawk's ignore comments, applied to pgm's own rules too, so one comment
//! syntax covers every rule:
//!
//! ```sql
//! -- squawk-ignore unique-without-partition-key -- why it is fine here
//! -- squawk-ignore-file partitioned-table-not-in-policy
//! ```

use std::collections::{HashMap, HashSet};

use squawk_linter::ignore::{IgnoreKind, ignore_rule_info};
use squawk_syntax::{SyntaxKind, SyntaxNode};

use super::rules::RuleId;
use crate::location::LineIndex;

#[derive(Debug, Default)]
pub struct Ignores {
    whole_file: bool,
    file: HashSet<RuleId>,
    /// Line of the comment → the rules it names (empty: all of them).
    lines: HashMap<usize, Option<HashSet<RuleId>>>,
    /// Rules named by a comment that cannot be ignored, with the comment's offset.
    pub refusals: Vec<(RuleId, usize)>,
}

impl Ignores {
    pub fn collect(root: &SyntaxNode, lines: &LineIndex<'_>) -> Ignores {
        let mut ignores = Ignores::default();
        let comments = root
            .descendants_with_tokens()
            .filter_map(|element| element.into_token())
            .filter(|token| token.kind() == SyntaxKind::COMMENT);
        for token in comments {
            let Some((names, range, kind)) = ignore_rule_info(&token) else {
                continue;
            };
            // Unknown names are reported by squawk's own pass over the comments.
            let rules: HashSet<RuleId> = names
                .split(',')
                .filter_map(|name| name.trim().parse().ok())
                .collect();
            let all = names.trim().is_empty();
            let offset = usize::from(range.start());
            ignores.refusals.extend(
                rules
                    .iter()
                    .filter(|rule| matches!(rule, RuleId::Pgm(pgm) if pgm.is_refusal()))
                    .map(|rule| (*rule, offset)),
            );
            match kind {
                IgnoreKind::File if all => ignores.whole_file = true,
                IgnoreKind::File => ignores.file.extend(rules),
                IgnoreKind::Line => {
                    let (line, _) = lines.line_column(offset);
                    ignores.lines.insert(line, (!all).then_some(rules));
                }
            }
        }
        ignores
    }

    /// An ignore comment on the finding's line or the line before covers it,
    /// as squawk has it.
    pub fn covers(&self, rule: RuleId, line: usize) -> bool {
        if self.whole_file || self.file.contains(&rule) {
            return true;
        }
        [line, line.saturating_sub(1)]
            .iter()
            .filter_map(|line| self.lines.get(line))
            .any(|rules| rules.as_ref().is_none_or(|rules| rules.contains(&rule)))
    }
}
