//! The policy files shipped in the repository parse, and the reference
//! policy documents every key the parser accepts, each with the value it
//! parses to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use pgm::duration::Timeout;
use pgm::lint::config::LintConfig;
use pgm::location::Location;
use pgm::partition::calendar::Interval;
use pgm::partition::policy::{
    self, ColumnarAfter, IndexPolicy, PartitionProperties, Retention, RetentionAction,
    RetentionUnit, Spacing, TablePolicy,
};

fn reference_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/partman.reference.toml")
}

fn reference_text() -> String {
    std::fs::read_to_string(reference_path()).unwrap()
}

/// The reference with its commented-out keys (`# key = value`) written in.
fn reference_with_every_key() -> String {
    reference_text()
        .lines()
        .map(|line| match documented_key(line) {
            Some(_) => line.trim_start_matches("# "),
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The key a line of the reference sets or shows commented out.
fn documented_key(line: &str) -> Option<&str> {
    let (key, _) = line.trim_start_matches("# ").split_once(" = ")?;
    key.chars()
        .all(|c| c.is_ascii_lowercase() || c == '_')
        .then_some(key)
}

/// The keys the reference documents, by section (`""` for the top level,
/// whose keys are the sections themselves).
fn documented_keys() -> BTreeMap<String, BTreeSet<String>> {
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in reference_text().lines() {
        if let Some(header) = line.strip_prefix('[') {
            section = header.trim_matches(['[', ']']).to_owned();
            let top_level = section.split('.').next_back().unwrap().to_owned();
            let parent = section.rsplit_once('.').map_or("", |(parent, _)| parent);
            keys.entry(parent.to_owned()).or_default().insert(top_level);
        } else if let Some(key) = documented_key(line) {
            keys.entry(section.clone())
                .or_default()
                .insert(key.to_owned());
        }
    }
    keys
}

/// The keys the parser accepts in `section`, as its error for an unknown
/// key lists them.
fn accepted_keys(section: &str) -> BTreeSet<String> {
    let table = "[[table]]\nname = \"public.t\"\ninterval = \"monthly\"\n";
    let text = match section {
        "" => String::new(),
        "table" => table.to_owned(),
        "table.index" => format!("{table}[[table.index]]\nname = \"i\"\ncolumns = [\"a\"]\n"),
        "table.partition" => format!("{table}[table.partition]\n"),
        other => format!("[{other}]\n"),
    } + "xyzzy_plugh = 0\n";
    let path = Path::new("partman.toml");
    let error = if section == "lint" {
        pgm::lint::config::parse(path, &text).unwrap_err()
    } else {
        policy::parse(path, &text).unwrap_err()
    };
    let message = &error.problems[0].message;
    let (_, list) = message
        .split_once("the keys here are: ")
        .unwrap_or_else(|| panic!("{message}"));
    list.split(", ").map(str::to_owned).collect()
}

#[test]
fn the_reference_policy_documents_every_key_the_parser_accepts() {
    let documented = documented_keys();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        [
            "",
            "defaults",
            "fleet",
            "lint",
            "table",
            "table.index",
            "table.partition"
        ]
    );
    for (section, keys) in &documented {
        assert_eq!(*keys, accepted_keys(section), "[{section}]");
    }
}

#[test]
fn every_key_of_the_reference_policy_parses_to_the_value_written_there() {
    let path = reference_path();
    let text = reference_text();
    let parsed = policy::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let table_line = 1 + text
        .lines()
        .position(|line| line == "[[table]]")
        .expect("the reference has a [[table]]");
    let interval_line = |table: &str| {
        let name = text
            .lines()
            .position(|line| line == format!("name = \"{table}\""))
            .unwrap();
        1 + name
            + text
                .lines()
                .skip(name)
                .position(|line| line.starts_with("interval = "))
                .unwrap()
    };
    assert_eq!(
        parsed.tables[..1],
        [TablePolicy {
            schema: "public".to_owned(),
            name: "events".to_owned(),
            spacing: Spacing::Calendar(Interval::Monthly),
            epoch: None,
            key: None,
            interval_location: Location {
                path: path.clone(),
                line: interval_line("public.events"),
                column: 12,
            },
            premake: 3,
            retention: Some(Retention {
                amount: 12,
                unit: RetentionUnit::Months,
                action: RetentionAction::Drop,
                text: "12 months".to_owned(),
            }),
            default_partition: false,
            default_partition_written: true,
            move_default_rows: false,
            drain_default: false,
            partition: PartitionProperties {
                with: vec![("fillfactor".to_owned(), "90".to_owned())],
                inherit_privileges: false,
                tablespace: None,
            },
            naming: "{parent}_p{YYYY}_{MM}".to_owned(),
            time_zone: Tz::UTC,
            lock_timeout: Timeout::from_millis(2_000),
            snapshot_wait: Timeout::from_millis(1_800_000),
            lock_retries: 5,
            max_drops_per_run: 5,
            columnar_after: None,
            indexes: vec![IndexPolicy {
                name: "events_user_created_idx".to_owned(),
                columns: vec!["user_id".to_owned(), "created_at DESC".to_owned()],
                method: "btree".to_owned(),
                include: vec!["event_type".to_owned()],
                predicate: Some("user_id IS NOT NULL".to_owned()),
                unique: false,
            }],
            location: Location {
                path: path.clone(),
                line: table_line,
                column: 1,
            },
        }]
    );
    let orders = &parsed.tables[1];
    assert_eq!(
        (
            orders.spacing,
            orders.epoch,
            orders.premake,
            orders.naming.as_str()
        ),
        (Spacing::Ids(1_000_000), None, 3, "{parent}_p{START}")
    );
    assert_eq!(
        orders
            .retention
            .as_ref()
            .map(|r| (r.amount, r.unit, r.text.as_str())),
        Some((50_000_000, RetentionUnit::Ids, "50000000 IDs"))
    );
    assert_eq!(
        orders.interval_location.line,
        interval_line("public.orders")
    );
    // retention_schema, commented out, is refused unless the retention action archives.
    let archiving = reference_with_every_key().replace(
        "retention_action = \"drop\"",
        "retention_action = \"archive\"",
    );
    let parsed = policy::parse(&path, &archiving).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        parsed.tables[0].columnar_after,
        Some(ColumnarAfter {
            amount: 3,
            unit: RetentionUnit::Months,
            text: "3 months".to_owned(),
        }),
        "columnar_after, commented out, parses to the age written there"
    );
    assert_eq!(
        parsed.tables[0].retention.as_ref().unwrap().action,
        RetentionAction::Archive {
            schema: "archive".to_owned()
        }
    );
    let lint = pgm::lint::config::parse(&path, &reference_text()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lint, LintConfig::default());
}

/// `[defaults]` reaches a table through what the table leaves out.
#[test]
fn the_reference_defaults_parse_to_the_values_written_there() {
    let text = reference_with_every_key();
    let defaults_end = text.find("\n[[table]]").unwrap();
    let text = format!(
        "{}\n[[table]]\nname = \"public.t\"\ninterval = \"daily\"\nretention = \"30 days\"\n",
        &text[..defaults_end]
    );
    let parsed = policy::parse(Path::new("partman.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let table = &parsed.tables[0];
    assert_eq!(table.lock_timeout, Timeout::from_millis(2_000));
    assert_eq!(table.lock_retries, 5);
    assert_eq!(table.time_zone, Tz::UTC);
    assert_eq!(table.premake, 3);
    assert_eq!(table.max_drops_per_run, 5);
    assert_eq!(
        table.retention.as_ref().unwrap().action,
        RetentionAction::Drop
    );
    assert!(!table.default_partition);
    assert!(!table.move_default_rows);
    assert!(!table.drain_default);
    let archiving = text.replace(
        "retention_action = \"drop\"",
        "retention_action = \"archive\"",
    );
    let parsed =
        policy::parse(Path::new("partman.toml"), &archiving).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        parsed.tables[0].retention.as_ref().unwrap().action,
        RetentionAction::Archive {
            schema: "archive".to_owned()
        }
    );
}

#[test]
fn the_bundled_policy_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("partman.toml");
    let parsed = policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = parsed.tables.iter().map(|t| t.qualified_name()).collect();
    assert_eq!(
        names,
        ["public.events", "public.audit_log", "public.products"]
    );
}
