//! The command-line surface: help, version, exit codes of usage errors.

mod support;

use support::{output_text, pgm};

#[test]
fn help_lists_the_commands_and_global_options() {
    let output = pgm().arg("--help").output().unwrap();
    assert!(output.status.success());
    let (stdout, _) = output_text(&output);
    for word in [
        "migrate",
        "partitions",
        "ping",
        "demo",
        "init",
        "lint",
        "completions",
        "--database-url",
        "--config",
        "--migrations",
        "--log-format",
        "configuration error",
    ] {
        assert!(stdout.contains(word), "{word} missing from:\n{stdout}");
    }
    let output = pgm()
        .args(["partitions", "plan", "--help"])
        .output()
        .unwrap();
    let (stdout, _) = output_text(&output);
    for word in ["--at <RFC3339>", "--format", "--detailed-exitcode"] {
        assert!(stdout.contains(word), "{word} missing from:\n{stdout}");
    }
}

#[test]
fn version_is_printed_to_stdout() {
    let output = pgm().arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        output_text(&output).0,
        format!("pgm {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["bogus"][..],
        &["migrate", "--format", "yaml"][..],
        &[][..],
        &["-v", "-q", "ping"][..],
        &["lint", "--pending", "V1__a.sql"][..],
        &["lint", "--format", "sarif"][..],
    ] {
        let output = pgm().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        assert!(!output_text(&output).1.is_empty());
    }
}

#[test]
fn init_writes_a_commented_policy_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let output = pgm().current_dir(dir.path()).arg("init").output().unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "created partman.toml\ncreated migrations/ (name migrations V1__create_things.sql, V2__…)\n"
    );
    let written = std::fs::read_to_string(dir.path().join("partman.toml")).unwrap();
    pgm::partition::policy::parse(std::path::Path::new("partman.toml"), &written).unwrap();
    assert!(dir.path().join("migrations").is_dir());

    std::fs::write(dir.path().join("partman.toml"), "# mine\n").unwrap();
    let output = pgm().current_dir(dir.path()).arg("init").output().unwrap();
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(64));
    assert!(
        stderr.contains("partman.toml already exists: pgm init never overwrites a file"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("partman.toml")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = pgm().args(["completions", shell]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let (stdout, _) = output_text(&output);
        assert!(
            stdout.contains("partitions") && stdout.contains("database-url"),
            "{shell}: {stdout}"
        );
    }
    let output = pgm().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    let output = pgm().arg("man").output().unwrap();
    let (stdout, _) = output_text(&output);
    assert!(
        stdout.contains(".TH pgm 1") && stdout.contains("migrate"),
        "{stdout}"
    );
}
