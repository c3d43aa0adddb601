//! `pgm init`: a commented policy file and an empty migrations directory,
//! never overwriting anything.

use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::exit::{Outcome, UsageError};

const REFERENCE: &str = include_str!("../../docs/partman.reference.toml");

/// The reference policy with its example table commented out, so that the
/// new file parses and plans nothing until a table is named.
pub fn starter_policy() -> String {
    let (defaults, example) = REFERENCE.split_at(
        REFERENCE
            .find("\n[[table]]")
            .map_or(REFERENCE.len(), |at| at + 1),
    );
    let mut text = String::from(
        "# Partition policy for pgm (`pgm partitions plan`, `pgm partitions maintain`).\n\
         # Uncomment and adapt the [[table]] examples below for each range-partitioned table:\n\
         # public.events is partitioned by time, public.orders by ID ranges.\n\n",
    );
    text.push_str(defaults[defaults.find("[defaults]").unwrap_or(0)..].trim_end());
    text.push_str("\n\n");
    for line in example.lines() {
        if line.is_empty() || line.starts_with('#') {
            text.push_str(line);
        } else {
            text.push_str("# ");
            text.push_str(line);
        }
        text.push('\n');
    }
    text
}

pub fn run(settings: &Config) -> Result<Outcome> {
    let config = &settings.policy;
    if config.exists() {
        bail!(UsageError(format!(
            "{} already exists: pgm init never overwrites a file",
            config.display()
        )));
    }
    let mut out = std::io::stdout().lock();
    std::fs::write(config, starter_policy())
        .with_context(|| format!("writing {}", config.display()))?;
    writeln!(out, "created {}", config.display())?;
    let migrations = &settings.migrations;
    if migrations.exists() {
        writeln!(out, "kept {} (it exists)", migrations.display())?;
    } else {
        std::fs::create_dir_all(migrations)
            .with_context(|| format!("creating {}", migrations.display()))?;
        writeln!(
            out,
            "created {}/ (name migrations V1__create_things.sql, V2__…)",
            migrations.display()
        )?;
    }
    out.flush()?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_starter_policy_parses_and_names_no_table() {
        let text = super::starter_policy();
        let policy =
            crate::partition::policy::parse(std::path::Path::new("partman.toml"), &text).unwrap();
        assert!(policy.tables.is_empty());
        assert!(
            text.contains("\n# [[table]]\n") && text.contains("\n# name = \"public.events\"\n"),
            "{text}"
        );
        assert!(text.contains("[defaults]\n"), "{text}");
        assert!(
            text.contains("\n# name = \"public.orders\"\n# interval = 1000000\n"),
            "an ID-keyed table is shown: {text}"
        );
    }
}
