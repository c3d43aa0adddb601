//! The command-line surface: help, version, exit codes of usage errors and of
//! commands that are not built yet.

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
    ] {
        let output = pgm().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        assert!(!output_text(&output).1.is_empty());
    }
}

#[test]
fn commands_not_built_yet_say_so_and_exit_64() {
    for args in [
        &["partitions", "status"][..],
        &["partitions", "check"][..],
        &["demo"][..],
        &["init"][..],
        &["lint"][..],
        &["completions", "bash"][..],
    ] {
        let output = pgm().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        let (stdout, stderr) = output_text(&output);
        assert!(stdout.is_empty(), "no fake output: {stdout}");
        assert!(
            stderr.contains("is not built yet; when it is, it will"),
            "{stderr}"
        );
    }
}
