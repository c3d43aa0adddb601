//! Whatever the policy file says, whatever the catalog holds and whatever
//! the clock reads, parsing, planning, assessing and rendering end in a plan
//! or an error, never in a panic.

use std::path::Path;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use pgm::partition::catalog::{Bound, MaxKey, Parent, Partition, PartitionKey, Snapshot};
use pgm::partition::planner::{Problem, ProblemKind};
use pgm::partition::{health, planner, policy, render};

/// Numbers as a policy may write them: ordinary, at and past the bounds,
/// negative, past every integer type.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => (1i64..12).prop_map(|n| n.to_string()),
        1 => Just("0".to_owned()),
        1 => Just("-1".to_owned()),
        1 => Just("100".to_owned()),
        1 => Just("101".to_owned()),
        1 => Just("1000".to_owned()),
        1 => Just("1001".to_owned()),
        1 => Just("52000".to_owned()),
        1 => Just("365000".to_owned()),
        1 => Just("4294967295".to_owned()),
        1 => Just("4294967296".to_owned()),
        1 => Just("9223372036854775807".to_owned()),
        1 => Just("99999999999999999999999".to_owned()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u32>().prop_map(|n| n.to_string()),
    ]
}

/// The first choice half the time (a valid value), else any of them.
fn word(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(choices[0].to_owned()),
        proptest::sample::select(choices).prop_map(str::to_owned),
    ]
}

fn retention() -> impl Strategy<Value = String> {
    (
        number(),
        word(&[
            "months",
            "day",
            "days",
            "weeks",
            "quarters",
            "years",
            "fortnights",
            "",
        ]),
    )
        .prop_map(|(n, unit)| format!("{n} {unit}"))
}

fn lock_timeout() -> impl Strategy<Value = String> {
    (number(), word(&["s", "ms", "min", "h", "", "d"])).prop_map(|(n, unit)| format!("{n}{unit}"))
}

/// `interval` as written: a time interval (quoted), or an ID step (a bare
/// number, any size or sign), with or without an `epoch`.
fn interval() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            proptest::sample::select(
                &[
                    "daily",
                    "weekly",
                    "monthly",
                    "quarterly",
                    "yearly",
                    "hourly",
                    "15 minutes",
                    "2 hours",
                    "7 hours",
                    "3 days",
                    "2 weeks",
                    "3660 days",
                    "10 minutes",
                ][..]
            )
            .prop_map(|i| format!("\"{i}\"")),
            number(),
            Just("\"1000\"".to_owned()),
        ],
        proptest::option::weighted(
            0.3,
            word(&["seconds", "milliseconds", "microseconds", "hours"]),
        ),
    )
        .prop_map(|(interval, epoch)| match epoch {
            Some(epoch) => format!("{interval}\nepoch = \"{epoch}\""),
            None => interval,
        })
}

/// One `[[table]]` entry; every key optional, numbers written bare so that
/// negative and oversized ones reach the parser as such.
fn table_entry(index: usize) -> impl Strategy<Value = String> {
    (
        interval(),
        proptest::option::of(number()),
        proptest::option::of((
            prop_oneof![retention().prop_map(|r| format!("\"{r}\"")), number()],
            proptest::option::of(word(&["drop", "detach", "archive", "shred"])),
        )),
        proptest::option::of(number()),
        proptest::option::of(number()),
        proptest::option::of(lock_timeout()),
        proptest::option::weighted(
            0.3,
            word(&[
                "UTC",
                "Pacific/Kiritimati",
                "Pacific/Pago_Pago",
                "America/New_York",
                "Australia/Lord_Howe",
                "Mars/Olympus",
            ]),
        ),
        proptest::option::weighted(
            0.2,
            word(&[
                "{parent}_p{YYYY}_{MM}_{DD}",
                "{parent}_p{IYYY}w{WW}",
                "{parent}_{YYYY}q{Q}",
                "{parent}_p{START}",
                "{parent}_p{YYYY}_{MM}_{DD}_{HH}{MI}",
                "{parent}_{START}_{YYYY}",
                "{parent}_{YYYY",
                "{parent}_{YYYYY}",
            ]),
        ),
        any::<bool>(),
    )
        .prop_map(
            move |(
                interval,
                premake,
                retention,
                max_drops,
                lock_retries,
                lock_timeout,
                zone,
                naming,
                default_partition,
            )| {
                let mut text = format!(
                    "[[table]]\nname = \"public.t{index}\"\ninterval = {interval}\n\
                     default_partition = {default_partition}\n"
                );
                let mut line = |key: &str, value: Option<String>| {
                    if let Some(value) = value {
                        text.push_str(&format!("{key} = {value}\n"));
                    }
                };
                line("premake", premake);
                if let Some((retention, action)) = retention {
                    line("retention", Some(retention));
                    line("retention_action", action.map(|a| format!("\"{a}\"")));
                }
                line("max_drops_per_run", max_drops);
                line("lock_retries", lock_retries);
                line("lock_timeout", lock_timeout.map(|t| format!("\"{t}\"")));
                line("time_zone", zone.map(|z| format!("\"{z}\"")));
                line("naming", naming.map(|n| format!("\"{n}\"")));
                if text.contains("\"archive\"") {
                    text.push_str("retention_schema = \"archive\"\n");
                }
                text
            },
        )
}

fn policy_text() -> impl Strategy<Value = String> {
    (
        proptest::option::of(number()),
        proptest::option::of(lock_timeout()),
        table_entry(0),
        proptest::option::of(table_entry(1)),
    )
        .prop_map(|(premake, timeout, first, second)| {
            let mut text = String::from("[defaults]\n");
            if let Some(premake) = premake {
                text.push_str(&format!("premake = {premake}\n"));
            }
            if let Some(timeout) = timeout {
                text.push_str(&format!("lock_timeout = \"{timeout}\"\n"));
            }
            text.push('\n');
            text.push_str(&first);
            if let Some(second) = second {
                text.push('\n');
                text.push_str(&second);
            }
            text
        })
}

/// Any instant chrono can hold, with its two ends and year 1 and 9999 likely.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (first, last) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    prop_oneof![
        1 => Just(DateTime::<Utc>::MIN_UTC),
        1 => Just(DateTime::<Utc>::MAX_UTC),
        2 => (first..=last).prop_map(|secs| DateTime::from_timestamp(secs, 0).expect("in range")),
        // Around the first and last years pgm writes bounds for, and today's.
        6 => prop_oneof![
            Just(-62_135_596_800i64),
            Just(253_402_300_799i64),
            Just(1_790_000_000i64)
        ]
        .prop_flat_map(|centre| centre - 400 * 86_400..centre + 400 * 86_400)
        .prop_map(|secs| DateTime::from_timestamp(secs, 0).expect("in range")),
    ]
}

/// A bound as PostgreSQL might print one, from anywhere in its range and
/// beyond chrono's.
fn bound_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("MINVALUE".to_owned()),
        Just("MAXVALUE".to_owned()),
        Just("'infinity'".to_owned()),
        Just("'294276-12-31 23:59:59+00'".to_owned()),
        Just("'262143-12-01 00:00:00+00'".to_owned()),
        Just("'262143-12-31'".to_owned()),
        Just("'-262143-01-01'".to_owned()),
        Just("'5874897-12-31'".to_owned()),
        Just("'4713-01-01 BC'".to_owned()),
        Just("'2026-11-01 00:00:00+00'".to_owned()),
        Just("'2026-12-01 00:00:00+14'".to_owned()),
        Just("'2026-11-01'".to_owned()),
        Just("'2026-11-01 00:00:00'".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        (-5i64..5).prop_map(|n| (n * 1000).to_string()),
        Just("'12.50'".to_owned()),
        Just("-9223372036854775808.5".to_owned()),
        instant().prop_map(|t| format!("'{}'", t.format("%Y-%m-%d %H:%M:%S+00"))),
        instant().prop_map(|t| format!("'{}'", t.format("%Y-%m-%d"))),
        instant().prop_map(|t| t.timestamp().to_string()),
        "[ -~]{0,12}",
    ]
}

fn parent(
    name: String,
    key_type: &'static str,
    bounds: Vec<(String, String)>,
    max_key: Option<String>,
) -> Parent {
    Parent {
        oid: 1,
        schema: "public".into(),
        name,
        relkind: 'p',
        strategy: Some('r'),
        key: Some(PartitionKey {
            column: "created_at".into(),
            sql_type: key_type.into(),
        }),
        key_columns: 1,
        owner: "app".into(),
        tablespace: None,
        unlogged: false,
        partitions: bounds
            .into_iter()
            .enumerate()
            .map(|(i, (from, to))| Partition {
                oid: 100 + i as u32,
                schema: "public".into(),
                name: format!("p{i}"),
                bound: Bound::Range { from, to },
                detach_pending: i % 5 == 4,
                estimated_rows: -1,
                estimated_bytes: i64::MAX,
                indexes: Vec::new(),
                access_method: None,
                checks: Vec::new(),
                subpartitioned: false,
            })
            .collect(),
        indexes: Vec::new(),
        max_key: max_key.map(|value| MaxKey {
            value,
            partition: "public.p0".into(),
            indexed: true,
        }),
        max_key_failure: None,
        citus: None,
        grants: Vec::new(),
        default_rows: None,
    }
}

fn key_type() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(
        &[
            "timestamp with time zone",
            "timestamp without time zone",
            "date",
            "bigint",
            "integer",
            "smallint",
            "numeric(30,2)",
        ][..],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn no_policy_catalog_or_clock_makes_pgm_panic(
        text in policy_text(),
        key_types in proptest::collection::vec(key_type(), 2),
        bounds in proptest::collection::vec(
            proptest::collection::vec((bound_text(), bound_text()), 0..6),
            2,
        ),
        now in instant(),
        max_keys in proptest::collection::vec(proptest::option::of(bound_text()), 2),
    ) {
        let Ok(policy) = policy::parse(Path::new("partman.toml"), &text) else {
            return Ok(());
        };
        let snapshot = Snapshot {
            server_version_num: 170000,
            citus_version: None,
            columnar_installed: false,
            parents: policy
                .tables
                .iter()
                .enumerate()
                .map(|(i, table)| {
                    let max_key = max_keys[i].clone();
                    Some(parent(table.name.clone(), key_types[i], bounds[i].clone(), max_key))
                })
                .collect(),
            ..Snapshot::default()
        };
        let plan = planner::plan(&policy, &snapshot, now);
        let mut out = Vec::new();
        render::write_text(&mut out, &policy, &plan).unwrap();
        render::write_sql(&mut out, &policy, &plan).unwrap();
        render::write_json(&mut out, &plan).unwrap();
        let tables = health::assess(&policy, &snapshot, now, &[]);
        render::write_status(&mut out, &tables).unwrap();
        render::write_prometheus(&mut out, &tables).unwrap();
    }
}

#[test]
fn a_clock_outside_the_years_of_partition_bounds_is_an_error_entry() {
    let text = "[[table]]\nname = \"public.t0\"\ninterval = \"yearly\"\npremake = 1000\n\
                retention = \"1000 years\"\ntime_zone = \"Pacific/Kiritimati\"\n";
    let policy = policy::parse(Path::new("partman.toml"), text).unwrap();
    let snapshot = Snapshot {
        parents: vec![Some(parent(
            "t0".into(),
            "date",
            vec![("'262143-01-01'".into(), "MAXVALUE".into())],
            None,
        ))],
        ..Snapshot::default()
    };
    for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        let plan = planner::plan(&policy, &snapshot, now);
        let problems: Vec<&Problem> = plan.problems().collect();
        assert_eq!(plan.entries.len(), 1, "{:#?}", plan.entries);
        assert_eq!(problems[0].kind, ProblemKind::OutOfRange);
        assert!(
            problems[0]
                .message
                .contains("pgm writes partition bounds only from 0001-01-01 to 9999-12-31"),
            "{:?}",
            problems[0].message
        );
    }
}
