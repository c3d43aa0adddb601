//! Any text as `partman.toml`: the policy and `[lint]` parsers either accept
//! it or say where it is wrong, and an accepted policy plans (for tables with
//! no partitions yet) at any time without panicking.
#![no_main]

use std::path::Path;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use pgm::partition::catalog::{Parent, PartitionKey, Snapshot};
use pgm::partition::{planner, policy, render};

const KEY_TYPES: &[&str] = &[
    "timestamp with time zone",
    "timestamp without time zone",
    "date",
    "bigint",
    "integer",
    "smallint",
    "numeric",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("partman.toml");
    let _ = pgm::lint::config::parse(path, text).map_err(|error| error.to_string());
    let policy = match policy::parse(path, text) {
        Ok(policy) => policy,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let parents = policy
        .tables
        .iter()
        .enumerate()
        .map(|(position, table)| {
            Some(Parent {
                oid: 1,
                schema: table.schema.clone(),
                name: table.name.clone(),
                relkind: 'p',
                strategy: Some('r'),
                key: Some(PartitionKey {
                    column: "created_at".into(),
                    sql_type: KEY_TYPES[(position + data.len()) % KEY_TYPES.len()].into(),
                }),
                key_columns: 1,
                owner: "app".into(),
                tablespace: None,
                unlogged: false,
                partitions: Vec::new(),
                indexes: Vec::new(),
                // A largest key from the input, for ID-ranged tables.
                max_key: Some(pgm::partition::catalog::MaxKey {
                    value: (data.len() as i64 * 7_919 - 50_000).to_string(),
                    partition: "public.p".into(),
                }),
            })
        })
        .collect();
    let snapshot = Snapshot {
        parents,
        ..Snapshot::default()
    };
    // One more instant anywhere in chrono's range, picked by the input.
    let (first, last) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    let picked = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    }) % (last - first) as u64;
    let instants = [
        DateTime::from_timestamp(first + picked as i64, 0).expect("within chrono's range"),
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::from_timestamp(-62_135_596_800, 0).expect("0001-01-01"),
        DateTime::from_timestamp(1_795_000_000, 0).expect("2026"),
        DateTime::from_timestamp(253_400_000_000, 0).expect("9999"),
    ];
    for now in instants {
        let plan = planner::plan(&policy, &snapshot, now);
        let mut out = Vec::new();
        render::write_text(&mut out, &policy, &plan).expect("writing to memory");
        render::write_sql(&mut out, &policy, &plan).expect("writing to memory");
    }
});
