//! Any text as a migration file: pgm classifies it (one transaction or
//! statement by statement) or says why it refuses it, and lints it, without
//! panicking.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use pgm::lint::config::LintConfig;
use pgm::lint::partitioned::PolicyCoverage;
use pgm::lint::{Linter, TargetVersion};
use pgm::migrate::sql;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("migrations/V1__fuzz.sql");
    let examined = sql::examine(path, text.to_owned());
    for statement in &examined.file.statements {
        let _ = examined.file.statement_text(statement);
    }
    for problem in &examined.problems {
        let _ = problem.to_string();
    }
    let _ = sql::parse_file(path, text.to_owned());

    let coverage = PolicyCoverage::Tables {
        path: PathBuf::from("partman.toml"),
        names: vec![("public".into(), "events".into())],
    };
    let mut linter = Linter::new(
        TargetVersion::default_version(),
        LintConfig::default(),
        coverage,
    );
    linter.learn(text);
    let report = linter.lint(path, text);
    let mut out = Vec::new();
    let report = pgm::lint::Report::new(TargetVersion::default_version(), vec![report]);
    pgm::lint::render::write_text(&mut out, &report).expect("writing to memory");
    pgm::lint::render::write_github(&mut out, &report).expect("writing to memory");
});
