//! Rule names: squawk's, and the few pgm adds where squawk has none. One
//! namespace, so configuration and ignore comments name either kind alike.

use std::fmt;

use squawk_linter::Rule as SquawkRule;

/// Checks pgm makes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, enum_iterator::Sequence)]
pub enum PgmRule {
    /// The file does not parse.
    SyntaxError,
    /// BEGIN/COMMIT/ROLLBACK in a file: pgm manages the transaction.
    TransactionControl,
    /// Statements that cannot run in a transaction next to ones that should.
    MixedTransactionModes,
    /// PRIMARY KEY / UNIQUE on a partitioned table without every partition key column.
    UniqueWithoutPartitionKey,
    /// A range-partitioned table the policy does not maintain.
    PartitionedTableNotInPolicy,
    /// CREATE INDEX CONCURRENTLY on a partitioned table, which PostgreSQL refuses.
    ConcurrentIndexOnPartitionedTable,
}

impl PgmRule {
    pub fn name(self) -> &'static str {
        match self {
            PgmRule::SyntaxError => "syntax-error",
            PgmRule::TransactionControl => "transaction-control",
            PgmRule::MixedTransactionModes => "mixed-transaction-modes",
            PgmRule::UniqueWithoutPartitionKey => "unique-without-partition-key",
            PgmRule::PartitionedTableNotInPolicy => "partitioned-table-not-in-policy",
            PgmRule::ConcurrentIndexOnPartitionedTable => "concurrent-index-on-partitioned-table",
        }
    }

    /// The file would be refused by `pgm migrate` itself: lint reports what
    /// migrate does, so these cannot be excluded or ignored.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            PgmRule::SyntaxError | PgmRule::TransactionControl | PgmRule::MixedTransactionModes
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleId {
    Squawk(SquawkRule),
    Pgm(PgmRule),
}

impl RuleId {
    pub fn as_squawk(self) -> Option<SquawkRule> {
        match self {
            RuleId::Squawk(rule) => Some(rule),
            RuleId::Pgm(_) => None,
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleId::Squawk(rule) => write!(f, "{rule}"),
            RuleId::Pgm(rule) => f.write_str(rule.name()),
        }
    }
}

/// A rule name that is not one, with the nearest known name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRule {
    pub name: String,
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown rule \"{}\"", self.name)?;
        match &self.suggestion {
            Some(near) => write!(f, " (did you mean \"{near}\"?)"),
            None => f.write_str(" (`pgm lint --list-rules` names them all)"),
        }
    }
}

impl std::str::FromStr for RuleId {
    type Err = UnknownRule;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let name = name.trim();
        if let Some(rule) = enum_iterator::all::<PgmRule>().find(|rule| rule.name() == name) {
            return Ok(RuleId::Pgm(rule));
        }
        // squawk's "unused-ignore" is how it reports a bad ignore comment, not a rule to name.
        match SquawkRule::try_from(name) {
            Ok(rule) if rule != SquawkRule::UnusedIgnore => Ok(RuleId::Squawk(rule)),
            _ => Err(UnknownRule {
                name: name.to_owned(),
                suggestion: {
                    let names = all_names();
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    crate::suggest::did_you_mean(name, &names).map(str::to_owned)
                },
            }),
        }
    }
}

/// Every rule name, pgm's first.
pub fn all_names() -> Vec<String> {
    all_rules().iter().map(ToString::to_string).collect()
}

pub fn all_rules() -> Vec<RuleId> {
    enum_iterator::all::<PgmRule>()
        .map(RuleId::Pgm)
        .chain(
            enum_iterator::all::<SquawkRule>()
                .filter(|rule| *rule != SquawkRule::UnusedIgnore)
                .map(RuleId::Squawk),
        )
        .collect()
}

/// squawk rules that pgm satisfies by how it runs migrations: every
/// statement runs under pgm's lock_timeout, every transactional migration
/// under its statement_timeout, so these would flag every file.
pub fn satisfied_by_pgm(rule: RuleId) -> Option<&'static str> {
    match rule {
        RuleId::Squawk(
            SquawkRule::RequireTimeoutSettings
            | SquawkRule::RequireLockTimeout
            | SquawkRule::RequireStatementTimeout,
        ) => Some(
            "pgm sets lock_timeout for every statement and statement_timeout for every \
             transactional migration itself (--lock-timeout, --statement-timeout)",
        ),
        RuleId::Squawk(SquawkRule::TransactionNesting | SquawkRule::BanUncommittedTransaction) => {
            Some("pgm refuses any transaction control in a migration (transaction-control)")
        }
        RuleId::Squawk(SquawkRule::BanConcurrentIndexCreationInTransaction) => Some(
            "pgm runs a file with CREATE INDEX CONCURRENTLY outside a transaction, and refuses \
             one that mixes it with transactional statements (mixed-transaction-modes)",
        ),
        _ => None,
    }
}

pub fn is_opt_in(rule: RuleId) -> bool {
    matches!(rule, RuleId::Squawk(rule) if rule.is_opt_in())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_typos_get_a_suggestion() {
        for rule in all_rules() {
            assert_eq!(rule.to_string().parse::<RuleId>(), Ok(rule));
        }
        let unknown = "require-concurent-index-creation"
            .parse::<RuleId>()
            .unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown rule \"require-concurent-index-creation\" (did you mean \"require-concurrent-index-creation\"?)"
        );
        assert!("unused-ignore".parse::<RuleId>().is_err());
    }
}
