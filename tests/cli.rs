//! The command-line surface: help, version, exit codes of usage errors.

mod support;

use support::{Project, outcome, output_text, pgm};

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
        &["migrate", "new"][..],
        &["migrate", "wait", "--interval", "0"][..],
        &["migrate", "wait", "--timeout", "soon"][..],
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

#[test]
fn a_verify_mode_without_its_root_certificate_is_a_configuration_error() {
    let home = tempfile::tempdir().unwrap();
    let output = pgm()
        .env("HOME", home.path())
        .env(
            "DATABASE_URL",
            "postgres://app:sekrit-pw@127.0.0.1:1/db?sslmode=verify-full",
        )
        .arg("ping")
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, Some(64), "{stderr}");
    let expected = format!(
        "error: invalid connection settings\n  caused by: sslmode=verify-full needs the root certificate \
         file {}, which does not exist: give its path with sslrootcert=PATH (or PGSSLROOTCERT), use \
         sslrootcert=system for the system's trust store, or choose sslmode=require to encrypt without verifying\n",
        home.path().join(".postgresql/root.crt").display()
    );
    assert_eq!(stderr, expected);
    assert!(!stderr.contains("sekrit-pw"));
}

#[test]
fn policy_numbers_past_their_bounds_are_refused_before_connecting() {
    let project = Project::new();
    std::fs::write(
        project.path().join("partman.toml"),
        "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\nretention = \"1000000 years\"\n",
    )
    .unwrap();
    let output = pgm()
        .current_dir(project.path())
        .args(["partitions", "plan"])
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stdout.is_empty());
    assert_eq!(
        stderr,
        "error: invalid partition policy\n  caused by: partman.toml:4:13: retention \"1000000 years\" is over \
         the limit of 1000 years (365000 days, 52000 weeks, 12000 months or 4000 quarters): to keep the data \
         for good, leave retention out\n  |\n4 | retention = \"1000000 years\"\n  |             ^\n"
    );
}

#[test]
fn a_time_outside_the_years_of_partition_bounds_is_refused() {
    let project = Project::new();
    std::fs::write(
        project.path().join("partman.toml"),
        "[[table]]\nname = \"public.events\"\ninterval = \"monthly\"\n",
    )
    .unwrap();
    for at in [
        "+262142-12-31",
        "-0001-01-01",
        "0000-12-31T23:59:59Z",
        "0001-01-01T00:30:00+01:00",
    ] {
        let output = pgm()
            .current_dir(project.path())
            .args(["partitions", "plan", &format!("--at={at}")])
            .output()
            .unwrap();
        let (code, _, stderr) = outcome(&output);
        assert_eq!(code, Some(64), "{at}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "error: invalid value '{at}' for '--at <RFC3339>': \"{at}\" is outside the years pgm plans for: \
                 give a time from 0001-01-01 to 9999-12-31 (UTC)\n\nFor more information, try '--help'.\n"
            )
        );
    }
}

#[test]
fn an_absurd_pg_version_is_refused_with_the_range() {
    let project = Project::new();
    project.write("V1__index.sql", "CREATE INDEX i ON t (a);\n");
    let flag = pgm()
        .current_dir(project.path())
        .args(["lint", "--pg-version", "3000000000"])
        .output()
        .unwrap();
    let variable = pgm()
        .current_dir(project.path())
        .env("PGM_PG_VERSION", "15.3000000000")
        .arg("lint")
        .output()
        .unwrap();
    for (output, text) in [(flag, "3000000000"), (variable, "15.3000000000")] {
        let (code, _, stderr) = outcome(&output);
        assert_eq!(code, Some(64), "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: invalid value '{text}' for '--pg-version <VERSION>': PostgreSQL {text} does not exist: \
                 give a major version from 10 to 99 (pgm supports 14 and later), optionally with a minor up to \
                 9999, such as 15 or 15.4\n"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn oversized_durations_retries_and_ports_are_usage_errors() {
    for (args, url, expected) in [
        (
            &["migrate", "--lock-timeout", "99999999999999h"][..],
            None,
            "is longer than PostgreSQL takes for a timeout: at most 2147483647ms",
        ),
        (
            &["migrate", "--statement-timeout", "99999999999999999999999s"][..],
            None,
            "is longer than PostgreSQL takes for a timeout",
        ),
        (
            &["migrate", "--lock-retries", "4294967295"][..],
            None,
            "4294967295 is not in 0..=100",
        ),
        (
            &["ping"][..],
            Some("postgres://app@127.0.0.1:99999/db"),
            "invalid port \"99999\": expected a number from 1 to 65535",
        ),
        (
            &["ping"][..],
            Some("host=127.0.0.1 connect_timeout=99999999999999999999"),
            "invalid connect_timeout \"99999999999999999999\": expected a whole number of seconds",
        ),
    ] {
        let mut command = pgm();
        if let Some(url) = url {
            command.env("DATABASE_URL", url);
        }
        let output = command.args(args).output().unwrap();
        let (code, _, stderr) = outcome(&output);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// The files are read while the connection opens; an invalid file is the
/// error reported, whether or not the server answers.
#[test]
fn an_invalid_migration_is_reported_before_an_unreachable_server() {
    let project = Project::new();
    project.write("V1_a.sql", "CREATE TABLE a (id int);\n");
    for command in [
        &["migrate"][..],
        &["migrate", "--dry-run"],
        &["migrate", "status"],
    ] {
        let output = pgm()
            .current_dir(project.path())
            .args(command)
            .env(
                "DATABASE_URL",
                "postgres://x@127.0.0.1:1/db?connect_timeout=1",
            )
            .output()
            .unwrap();
        let (code, _, stderr) = outcome(&output);
        assert_eq!(code, Some(64), "{command:?}: {stderr}");
        assert!(
            stderr.contains(
                "error: invalid migration files\n  caused by: migrations/V1_a.sql: not a migration name"
            ),
            "{command:?}: {stderr}"
        );
    }
    project.remove("V1_a.sql");
    project.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    let output = pgm()
        .current_dir(project.path())
        .args(["migrate"])
        .env(
            "DATABASE_URL",
            "postgres://x@127.0.0.1:1/db?connect_timeout=1",
        )
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}
