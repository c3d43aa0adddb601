//! `pgm demo` end to end, and what a person sees on a terminal.

mod support;

use support::{output_text, pgm};

/// The demo starts its own cluster: pass on where the server binaries are.
fn demo() -> assert_cmd::Command {
    let mut command = pgm();
    for name in ["PGM_PG_BINDIR", "PGM_SANDBOX_DIR"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
}

/// The story moves the clock fourteen months on; pinned, so that what
/// retention retires does not depend on today's date.
const DEMO_NOW: &str = "2026-11-23T12:00:00Z";

#[test]
fn the_demo_tells_the_whole_story_and_cleans_up() {
    let output = demo().args(["demo", "--at", DEMO_NOW]).output().unwrap();
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in [
        "pgm demo: a throwaway PostgreSQL, the bundled schema, and its partitions across a year.",
        "applied V7__users_last_login_idx.sql (no-transaction, ",
        "summary: 11 created, 0 detached, 0 dropped, 0 archived, 0 indexes built, 0 failed, 0 skipped, 0 deferred",
        "inserted 20000 rows into public.events",
        "public.events: covered until ",
        "pgm partitions maintain --at 2028-01-22T12:00:00Z: retention at work",
        "public.events: 4 created, 2 detached, 2 dropped",
        "== Done: the throwaway cluster is stopped and removed (pgm demo --keep leaves it running)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(
        stderr.is_empty(),
        "the demo's story is on stdout alone: {stderr}"
    );
}

/// On a terminal the log is coloured, unless NO_COLOR is set; off a
/// terminal it never is.
#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    let run_on_terminal = |no_color: bool| {
        let pgm = assert_cmd::cargo::cargo_bin("pgm");
        let mut command = std::process::Command::new("script");
        command.args([
            "-qec",
            &format!(
                "{} -v ping --database-url 'postgres://x@127.0.0.1:1/db?connect_timeout=1'",
                pgm.display()
            ),
            "/dev/null",
        ]);
        command.env_remove("NO_COLOR");
        if no_color {
            command.env("NO_COLOR", "1");
        }
        String::from_utf8_lossy(&command.output().unwrap().stdout).into_owned()
    };
    let coloured = run_on_terminal(false);
    assert!(
        coloured.contains("\u{1b}["),
        "expected colour on a terminal: {coloured:?}"
    );
    let plain = run_on_terminal(true);
    assert!(plain.contains("waiting for x@127.0.0.1:1/db"), "{plain:?}");
    assert!(!plain.contains("\u{1b}["), "NO_COLOR: {plain:?}");
    let output = pgm()
        .args([
            "-v",
            "ping",
            "--database-url",
            "postgres://x@127.0.0.1:1/db?connect_timeout=1",
        ])
        .output()
        .unwrap();
    let (_, stderr) = output_text(&output);
    assert!(
        stderr.contains("waiting for x@127.0.0.1:1/db") && !stderr.contains("\u{1b}["),
        "{stderr:?}"
    );
}

#[test]
fn json_logs_for_cron() {
    let output = pgm()
        .args([
            "--log-format",
            "json",
            "ping",
            "--database-url",
            "postgres://x@127.0.0.1:1/db?connect_timeout=1",
        ])
        .output()
        .unwrap();
    let (_, stderr) = output_text(&output);
    let first = stderr.lines().next().unwrap();
    let line: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(line["level"], "INFO");
    assert!(
        line["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("waiting for x@127.0.0.1:1/db"),
        "{line}"
    );
}
