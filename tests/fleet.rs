//! `--fleet`: one command over many databases and tenant schemas, on a real
//! server. Fifty databases and fifty tenant schemas with the bundled
//! migrations and policy; a broken tenant fails alone; canaries; discovery,
//! `${VAR}` expansion and the refusal of a password written in the file.

mod support;

use std::path::Path;

use pgm::db::quote_ident;
use support::{Project, Server, column, outcome, server};

const AT: &str = "2026-11-15T00:00:00Z";

/// Databases named `{prefix}NN`, copies of the empty test template,
/// dropped at the end of a passing test.
struct Databases {
    names: Vec<String>,
    server: &'static Server,
}

impl Databases {
    fn create(prefix: &str, count: usize) -> Databases {
        let server = server();
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i:02}")).collect();
        // Copies are made side by side: the server copies files, not rows.
        std::thread::scope(|scope| {
            for chunk in names.chunks(count.div_ceil(4).max(1)) {
                scope.spawn(move || {
                    let mut admin = server.admin();
                    for name in chunk {
                        admin
                            .batch_execute(&format!(
                                "CREATE DATABASE {} TEMPLATE pgm_test_template",
                                quote_ident(name)
                            ))
                            .expect("creating a fleet database");
                    }
                });
            }
        });
        Databases { names, server }
    }

    fn connect(&self, index: usize) -> postgres::Client {
        pgm::db::connect(&self.server.settings(&self.names[index])).unwrap()
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let mut admin = self.server.admin();
        for name in &self.names {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(name)
            ));
        }
    }
}

/// The bundled policy with a `[fleet]` section.
fn bundled_policy_with(fleet: &str) -> String {
    let bundled =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("partman.toml"))
            .unwrap();
    format!("{bundled}\n[fleet]\n{fleet}\n")
}

/// `pgm` from the project root, its ordinary connection on `dbname`.
fn pgm_on(project: &Project, dbname: &str) -> assert_cmd::Command {
    let mut command = support::pgm();
    command
        .current_dir(project.path())
        .env("DATABASE_URL", server().url(dbname));
    command
}

fn run(command: &mut assert_cmd::Command, args: &[&str]) -> (Option<i32>, String, String) {
    outcome(&command.args(args).output().unwrap())
}

/// The report line of a target.
fn line_of<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{report}"))
}

fn has_history(client: &mut postgres::Client) -> bool {
    column(
        client,
        "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
    ) == ["t"]
}

#[test]
fn fifty_databases_one_broken_tenant_fails_alone_and_a_canary_stops_the_rest() {
    let prefix = format!("fl{}_", std::process::id());
    let fleet = Databases::create(&prefix, 50);
    let broken = fleet.names[1].clone();
    fleet
        .connect(1)
        .batch_execute("CREATE TABLE events (id int)")
        .unwrap();
    let project = Project::bundled();
    let discover = format!(
        "discover = \"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY datname\""
    );
    std::fs::write(
        project.path().join("partman.toml"),
        bundled_policy_with(&discover),
    )
    .unwrap();

    // Three canaries, the second broken: nothing else is touched.
    let (code, report, stderr) = run(
        &mut pgm_on(&project, "postgres"),
        &["migrate", "--fleet", "--canary", "3"],
    );
    assert_eq!(code, Some(1), "{report}\n{stderr}");
    assert!(line_of(&report, &broken).contains("FAILED"), "{report}");
    assert!(line_of(&report, &fleet.names[0]).contains("applied 7 migration(s)"));
    assert!(line_of(&report, &fleet.names[3]).contains("not run: a canary failed"));
    assert!(stderr.contains("a canary failed"), "{stderr}");
    assert!(!has_history(&mut fleet.connect(3)));
    assert!(!has_history(&mut fleet.connect(49)));

    // The whole fleet: the broken tenant fails with its name and error, the
    // other 49 finish.
    let (code, report, stderr) = run(
        &mut pgm_on(&project, "postgres"),
        &["migrate", "--fleet", "--jobs", "8"],
    );
    assert_eq!(code, Some(1), "{report}\n{stderr}");
    assert!(
        report.contains("48 ok") || report.contains("49 ok"),
        "{report}"
    );
    assert!(report.contains("1 failed"), "{report}");
    let failures = report
        .split("failures:")
        .nth(1)
        .expect("a failures section");
    assert!(failures.contains(&format!("== {broken} ==")), "{failures}");
    assert!(
        failures.contains("relation \"events\" already exists"),
        "{failures}"
    );
    assert!(
        stderr.contains(&format!("1 of 50 target(s) failed: {broken}")),
        "{stderr}"
    );
    for index in [0, 2, 25, 49] {
        assert_eq!(
            column(
                &mut fleet.connect(index),
                "SELECT count(*) FROM refinery_schema_history"
            ),
            ["7"]
        );
    }

    let (code, report, _) = run(
        &mut pgm_on(&project, "postgres"),
        &["partitions", "maintain", "--fleet", "--at", AT],
    );
    assert_eq!(code, Some(1), "{report}");
    assert!(line_of(&report, &fleet.names[7]).contains("ok"), "{report}");
    assert!(line_of(&report, &broken).contains("FAILED"), "{report}");
    assert_eq!(report.matches("  ok  ").count(), 49, "{report}");

    // Fixed, the rerun applies that tenant only.
    fleet.connect(1).batch_execute("DROP TABLE events").unwrap();
    let (code, report, stderr) = run(
        &mut pgm_on(&project, "postgres"),
        &["migrate", "--fleet", "--jobs", "8"],
    );
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report.matches(" migration(s): ").count(), 1, "{report}");
    assert!(
        line_of(&report, &broken).contains("applied 4 migration(s)"),
        "{report}"
    );
    assert_eq!(
        report.matches("up to date (7 applied)").count(),
        49,
        "{report}"
    );
    let (code, json, _) = run(
        &mut pgm_on(&project, "postgres"),
        &[
            "partitions",
            "maintain",
            "--fleet",
            "--at",
            AT,
            "--format",
            "json",
        ],
    );
    assert_eq!(code, Some(0), "{json}");
    let document: serde_json::Value = serde_json::from_str(&json).unwrap();
    let fixed = &document["targets"][1];
    assert_eq!(fixed["name"], broken.as_str());
    assert!(fixed["detail"]["created"].as_u64().unwrap() > 0, "{fixed}");
    assert_eq!(document["targets"][2]["detail"]["created"], 0);
    assert_eq!(fixed["result"]["tables"][0]["table"], "public.events");

    // One report across the fleet: JSON per target, metrics with a target label.
    let (code, json, _) = run(
        &mut pgm_on(&project, "postgres"),
        &["migrate", "status", "--fleet", "--format", "json"],
    );
    assert_eq!(code, Some(0), "{json}");
    let document: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(document["targets"].as_array().unwrap().len(), 50);
    assert_eq!(document["targets"][1]["name"], broken.as_str());
    assert_eq!(document["targets"][1]["outcome"], "ok");
    assert_eq!(document["totals"]["ok"], 50);
    let (code, metrics, _) = run(
        &mut pgm_on(&project, "postgres"),
        &[
            "partitions",
            "check",
            "--fleet",
            "--format",
            "prometheus",
            "--at",
            AT,
        ],
    );
    assert_eq!(code, Some(0), "{metrics}");
    assert_eq!(
        metrics.matches("# TYPE pgm_partitions_ahead gauge").count(),
        1
    );
    assert!(
        metrics.contains(&format!(
            "pgm_partitions_ahead{{target=\"{broken}\",table=\"public.events\"}} 3"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("pgm_fleet_target_up{{target=\"{broken}\"}} 1")));
}

#[test]
fn fifty_tenant_schemas_migrate_side_by_side_with_their_own_history() {
    let prefix = format!("fs{}_", std::process::id());
    let fleet = Databases::create(&prefix, 1);
    let mut client = fleet.connect(0);
    // The extension the bundled migrations use, installed once for every tenant.
    client
        .batch_execute(
            "CREATE EXTENSION pg_trgm SCHEMA public; \
             DO $$BEGIN FOR i IN 0..49 LOOP \
               EXECUTE format('CREATE SCHEMA %I', 'tenant_' || lpad(i::text, 2, '0')); \
             END LOOP; END$$; \
             CREATE TABLE tenant_07.events (id int)",
        )
        .unwrap();
    let project = Project::bundled();
    let policy = "[[table]]\nname = \"{schema}.events\"\ninterval = \"monthly\"\npremake = 2\n\n\
                  [fleet]\nschemas = \"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\\\_%' ORDER BY 1\"\n\
                  search_path = \"{schema}, public\"\n";
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();

    let (code, report, stderr) = run(
        &mut pgm_on(&project, &fleet.names[0]),
        &["migrate", "--fleet", "--jobs", "8"],
    );
    assert_eq!(code, Some(1), "{report}\n{stderr}");
    assert!(line_of(&report, "tenant_07").contains("FAILED"), "{report}");
    assert_eq!(
        report.matches("applied 7 migration(s)").count(),
        49,
        "{report}"
    );
    // Each tenant's history in its own schema; nothing in public.
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_class WHERE relname = 'refinery_schema_history'"
        ),
        ["50"]
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM tenant_31.refinery_schema_history"
        ),
        ["7"]
    );
    assert_eq!(
        column(&mut client, "SELECT to_regclass('public.users') IS NULL"),
        ["t"]
    );

    client.batch_execute("DROP TABLE tenant_07.events").unwrap();
    let (code, report, stderr) = run(
        &mut pgm_on(&project, &fleet.names[0]),
        &["migrate", "--fleet", "--jobs", "8"],
    );
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report.matches(" migration(s): ").count(), 1, "{report}");
    let (code, report, stderr) = run(
        &mut pgm_on(&project, &fleet.names[0]),
        &["partitions", "maintain", "--fleet", "--at", AT],
    );
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert!(
        line_of(&report, "tenant_07").contains("3 created"),
        "{report}"
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tenant_49.events'::regclass"
        ),
        ["3"]
    );
    // A new tenant, and a history in public (on every tenant's search path):
    // the new tenant waits for its own history, never public's.
    client
        .batch_execute(
            "CREATE SCHEMA tenant_50; \
             CREATE TABLE public.refinery_schema_history AS TABLE tenant_00.refinery_schema_history",
        )
        .unwrap();
    let (code, report, stderr) = run(
        &mut pgm_on(&project, &fleet.names[0]),
        &["migrate", "wait", "--fleet", "--timeout", "0"],
    );
    assert_eq!(code, Some(1), "{report}\n{stderr}");
    assert!(line_of(&report, "tenant_50").contains("FAILED"), "{report}");
    assert!(line_of(&report, "tenant_00").contains("ready"), "{report}");
    assert!(report.contains("50 ok"), "{report}");

    // A policy with {schema} means nothing without the fleet's schemas.
    let (code, _, stderr) = run(
        &mut pgm_on(&project, &fleet.names[0]),
        &["partitions", "plan", "--at", AT],
    );
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("{schema}"), "{stderr}");
}

#[test]
fn targets_take_variables_from_the_environment_and_never_a_written_password() {
    let prefix = format!("fe{}_", std::process::id());
    let fleet = Databases::create(&prefix, 2);
    let settings = server().settings(&fleet.names[0]);
    let endpoint = &settings.endpoints[0];
    let project = Project::bundled();
    let fleet_section = format!(
        "targets = [\n  \"host=${{FLEET_HOST}} port=${{FLEET_PORT}} user={} dbname={}\",\n  \"${{SECOND_TENANT}}\",\n]",
        settings.user, fleet.names[0]
    );
    std::fs::write(
        project.path().join("partman.toml"),
        bundled_policy_with(&fleet_section),
    )
    .unwrap();
    let mut command = pgm_on(&project, "postgres");
    command
        .env("FLEET_HOST", endpoint.host.to_string())
        .env("FLEET_PORT", endpoint.port.to_string())
        .env("SECOND_TENANT", server().url(&fleet.names[1]));
    let (code, report, stderr) = run(&mut command, &["migrate", "--fleet"]);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert!(
        line_of(&report, &fleet.names[0]).contains("applied 7"),
        "{report}"
    );
    assert!(
        line_of(&report, &fleet.names[1]).contains("applied 7"),
        "{report}"
    );

    // An unset variable: where it is written, and which.
    let (code, _, stderr) = run(&mut pgm_on(&project, "postgres"), &["migrate", "--fleet"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("${FLEET_HOST} is not set"), "{stderr}");
    let line = bundled_policy_with("").lines().count() + 1;
    assert!(
        stderr.contains(&format!("partman.toml:{line}:3: targets[0]")),
        "{stderr}"
    );

    // --fleet asks for a command a fleet runs, and a [fleet] section.
    let (code, _, stderr) = run(&mut pgm_on(&project, "postgres"), &["ping", "--fleet"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("run this command on one database at a time"),
        "{stderr}"
    );
    std::fs::write(
        project.path().join("partman.toml"),
        bundled_policy_with("").replace("[fleet]\n", ""),
    )
    .unwrap();
    let (code, _, stderr) = run(&mut pgm_on(&project, "postgres"), &["migrate", "--fleet"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("has none: add one"), "{stderr}");

    // A password written in the file is refused before anything connects,
    // with its place and without the password.
    let written = "targets = [\"postgresql://app:hunter2@db.internal/tenant\"]";
    std::fs::write(
        project.path().join("partman.toml"),
        bundled_policy_with(written),
    )
    .unwrap();
    for args in [
        &["migrate", "--fleet"][..],
        &["partitions", "plan", "--at", AT][..],
    ] {
        let (code, stdout, stderr) = run(&mut pgm_on(&project, "postgres"), args);
        assert_eq!(code, Some(64), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "partman.toml:{}:12: targets[0]: a password is written",
                line - 1
            )),
            "{stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{stderr}"
        );
    }
}

#[test]
fn discovery_can_return_connection_strings() {
    let prefix = format!("fd{}_", std::process::id());
    let fleet = Databases::create(&prefix, 3);
    let settings = server().settings(&fleet.names[0]);
    let endpoint = &settings.endpoints[0];
    let project = Project::bundled();
    let discover = format!(
        "discover = \"SELECT format('host={} port={} user={} dbname=%s', datname) FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY 1\"",
        endpoint.host, endpoint.port, settings.user
    );
    std::fs::write(
        project.path().join("partman.toml"),
        bundled_policy_with(&discover),
    )
    .unwrap();
    // Pending everywhere: exit 2, each target's status under its name.
    let (code, report, _) = run(
        &mut pgm_on(&project, "postgres"),
        &["migrate", "status", "--fleet", "--exit-code"],
    );
    assert_eq!(code, Some(2), "{report}");
    assert!(
        report.contains(&format!("== {} ==", fleet.names[2])),
        "{report}"
    );
    assert!(report.contains("3 target(s): 0 ok, 3 pending"), "{report}");
    let (code, report, stderr) = run(
        &mut pgm_on(&project, "postgres"),
        &["migrate", "--fleet", "--fail-fast"],
    );
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    for name in &fleet.names {
        assert!(line_of(&report, name).contains("applied 7"), "{report}");
    }
    let (code, report, _) = run(
        &mut pgm_on(&project, "postgres"),
        &["migrate", "status", "--fleet", "--exit-code"],
    );
    assert_eq!(code, Some(0), "{report}");
}

/// What a converged database holds: its relations, each index's validity
/// and the history, in a stable order.
fn converged_state(client: &mut postgres::Client) -> Vec<String> {
    let mut state = column(
        client,
        "SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text \
           || coalesce(':' || i.indisvalid::text, '') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_index i ON i.indexrelid = c.oid \
         WHERE n.nspname IN ('public', 'archive') AND c.relkind IN ('r', 'p', 'i', 'I') \
         ORDER BY 1",
    );
    state.extend(column(
        client,
        "SELECT version || ' ' || name || ' ' || checksum FROM refinery_schema_history ORDER BY version",
    ));
    state
}

/// Every file under `dir`, for checking that a run leaves none behind.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_fleet_killed_at_random_instants_converges_like_its_uninterrupted_twin() {
    let pid = std::process::id();
    let (killed_prefix, twin_prefix) = (format!("fk{pid}_"), format!("ft{pid}_"));
    let killed = Databases::create(&killed_prefix, 6);
    let twin = Databases::create(&twin_prefix, 6);
    let project = Project::bundled();
    for (file, prefix) in [("killed.toml", &killed_prefix), ("twin.toml", &twin_prefix)] {
        let discover = format!(
            "discover = \"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY datname\""
        );
        std::fs::write(project.path().join(file), bundled_policy_with(&discover)).unwrap();
    }
    let files_before = files_under(project.path());
    let commands: [&[&str]; 2] = [
        &["migrate", "--fleet", "--jobs", "3"],
        &[
            "partitions",
            "maintain",
            "--fleet",
            "--jobs",
            "3",
            "--at",
            AT,
        ],
    ];
    let mut kills = 0;
    for round in 0..8 {
        let args = commands[usize::from(round >= 4)];
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("pgm"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", project.path())
            .env("DATABASE_URL", server().url("postgres"))
            .current_dir(project.path())
            .args(["--config", "killed.toml"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(fastrand::u64(20..700)));
        if child.try_wait().unwrap().is_none() {
            // SIGKILL: no handler runs, nothing is cleaned up.
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills > 0,
        "no run was killed: the instants were all too late"
    );
    assert_eq!(
        files_under(project.path()),
        files_before,
        "the fleet left a file behind"
    );
    for config in ["killed.toml", "twin.toml"] {
        for args in commands {
            let (code, report, stderr) = run(
                &mut pgm_on(&project, "postgres"),
                &[&["--config", config][..], args].concat(),
            );
            assert_eq!(code, Some(0), "{config} {args:?}\n{report}\n{stderr}");
        }
    }
    for index in 0..6 {
        assert_eq!(
            converged_state(&mut killed.connect(index)),
            converged_state(&mut twin.connect(index)),
            "{} and its twin differ",
            killed.names[index]
        );
    }
}
