//! Properties of the planner on a simulated catalog, for random intervals,
//! zones, key types and clocks around month, quarter, year and DST edges.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use pgm::duration::Timeout;
use pgm::location::Location;
use pgm::partition::calendar::{self, EpochUnit, FixedInterval, IntegerType, Interval, KeyType};
use pgm::partition::catalog::{
    Bound, MaxKey, Parent, Partition, PartitionKey, PendingTable, Snapshot,
};
use pgm::partition::planner::{self, Action, Plan};
use pgm::partition::policy::{
    Policy, Retention, RetentionAction, RetentionUnit, Spacing, TablePolicy,
};

const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Australia/Lord_Howe",
    "Europe/Berlin",
    "Asia/Kolkata",
];
const INTERVALS: &[Interval] = &[
    Interval::Daily,
    Interval::Weekly,
    Interval::Monthly,
    Interval::Quarterly,
    Interval::Yearly,
];
const KEYS: &[(KeyType, &str)] = &[
    (KeyType::TimestampTz, "timestamp with time zone"),
    (KeyType::Timestamp, "timestamp without time zone"),
    (KeyType::Date, "date"),
    (
        KeyType::Epoch(EpochUnit::Seconds, IntegerType::Bigint),
        "bigint",
    ),
];
/// Month, quarter and year turns, and the DST changes of New York and Lord Howe.
const EDGES: &[(i32, u32, u32)] = &[
    (2026, 1, 1),
    (2026, 3, 8),
    (2026, 4, 1),
    (2026, 4, 5),
    (2026, 7, 1),
    (2026, 10, 1),
    (2026, 10, 4),
    (2026, 11, 1),
    (2026, 12, 31),
    (2027, 3, 1),
    (2028, 2, 29),
];

#[derive(Debug, Clone)]
struct Case {
    interval: Interval,
    zone: Tz,
    key: KeyType,
    key_sql: &'static str,
    premake: u32,
    default_partition: bool,
    retention: Option<(u32, RetentionUnit)>,
    max_drops: u32,
    now: DateTime<Utc>,
    /// Offsets (in periods, from the period holding now) of existing partitions.
    existing: Vec<i32>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..INTERVALS.len(),
        0..ZONES.len(),
        0..KEYS.len(),
        0u32..6,
        any::<bool>(),
        proptest::option::of((1u32..30, 0usize..5)),
        1u32..10,
        0..EDGES.len(),
        -36 * 60i64..36 * 60,
        proptest::collection::btree_set(-40i32..8, 0..30),
    )
        .prop_map(
            |(
                interval,
                zone,
                key,
                premake,
                default_partition,
                retention,
                max_drops,
                edge,
                minutes,
                existing,
            )| {
                let (y, m, d) = EDGES[edge];
                let zone: Tz = ZONES[zone].parse().unwrap();
                let local_midnight =
                    calendar::start_of_day(NaiveDate::from_ymd_opt(y, m, d).unwrap(), zone);
                let units = [
                    RetentionUnit::Days,
                    RetentionUnit::Weeks,
                    RetentionUnit::Months,
                    RetentionUnit::Quarters,
                    RetentionUnit::Years,
                ];
                let interval = INTERVALS[interval];
                Case {
                    interval,
                    zone,
                    key: KEYS[key].0,
                    key_sql: KEYS[key].1,
                    premake,
                    default_partition: default_partition || premake == 0,
                    // Keep retention at least one period, as the policy check demands.
                    retention: retention.map(|(n, unit)| {
                        let unit = units[unit];
                        let days = i64::from(n)
                            * [1, 7, 30, 91, 365][units.iter().position(|u| *u == unit).unwrap()];
                        if days < interval.approximate_days() {
                            (1, RetentionUnit::Years)
                        } else {
                            (n, unit)
                        }
                    }),
                    max_drops,
                    now: local_midnight.with_timezone(&Utc) + Duration::minutes(minutes),
                    existing: existing.into_iter().collect(),
                }
            },
        )
}

fn table_policy(case: &Case) -> TablePolicy {
    TablePolicy {
        schema: "public".into(),
        name: "t".into(),
        spacing: Spacing::Calendar(case.interval),
        key: None,
        epoch: match case.key {
            KeyType::Epoch(unit, _) => Some(unit),
            _ => None,
        },
        interval_location: Location {
            path: "p.toml".into(),
            line: 3,
            column: 12,
        },
        premake: case.premake,
        retention: case.retention.map(|(amount, unit)| Retention {
            amount: amount.into(),
            unit,
            action: RetentionAction::Drop,
            text: format!("{amount} {unit:?}"),
        }),
        default_partition: case.default_partition,
        default_partition_written: false,
        move_default_rows: true,
        drain_default: false,
        partition: Default::default(),
        naming: "{parent}_p{YYYY}_{MM}_{DD}".into(),
        time_zone: case.zone,
        lock_timeout: Timeout::from_millis(2000),
        snapshot_wait: Timeout::from_millis(1_800_000),
        lock_retries: 5,
        max_drops_per_run: case.max_drops,
        columnar_after: None,
        indexes: Vec::new(),
        location: Location {
            path: "p.toml".into(),
            line: 1,
            column: 1,
        },
    }
}

fn period_start(case: &Case, offset: i32) -> NaiveDate {
    let mut start = case
        .interval
        .floor(calendar::local_date(case.now, case.zone));
    for _ in 0..offset.unsigned_abs() {
        start = if offset > 0 {
            case.interval.next(start)
        } else {
            case.interval.previous(start)
        };
    }
    start
}

/// A bound as PostgreSQL would print it (in UTC for timestamptz).
fn printed(case: &Case, date: NaiveDate) -> String {
    match case.key {
        KeyType::TimestampTz => format!(
            "'{}'",
            calendar::start_of_day(date, case.zone)
                .with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S+00")
        ),
        _ => calendar::literal(case.key, date, case.zone).unwrap(),
    }
}

fn partition(case: &Case, oid: u32, start: NaiveDate) -> Partition {
    Partition {
        oid,
        schema: "public".into(),
        name: format!("t_p{}", start.format("%Y_%m_%d")),
        bound: Bound::Range {
            from: printed(case, start),
            to: printed(case, case.interval.next(start)),
        },
        detach_pending: false,
        estimated_rows: 10,
        estimated_bytes: 8192,
        indexes: Vec::new(),
        access_method: None,
        checks: Vec::new(),
        subpartitioned: false,
    }
}

fn snapshot(case: &Case) -> Snapshot {
    let mut partitions: Vec<Partition> = case
        .existing
        .iter()
        .enumerate()
        .map(|(i, offset)| partition(case, 100 + i as u32, period_start(case, *offset)))
        .collect();
    if case.default_partition {
        partitions.push(Partition {
            bound: Bound::Default,
            name: "t_default".into(),
            ..partition(case, 99, period_start(case, 0))
        });
    }
    Snapshot {
        server_version_num: 170000,
        citus_version: None,
        columnar_installed: false,
        parents: vec![Some(Parent {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            relkind: 'p',
            strategy: Some('r'),
            key: Some(PartitionKey {
                column: "created_at".into(),
                sql_type: case.key_sql.into(),
            }),
            key_columns: 1,
            owner: "app".into(),
            tablespace: None,
            unlogged: false,
            partitions,
            indexes: Vec::new(),
            max_key: None,
            max_key_failure: None,
            citus: None,
            grants: Vec::new(),
            default_rows: None,
        })],
        pending: Vec::new(),
        retiring: Vec::new(),
        conversions: Vec::new(),
        queries: 0,
    }
}

/// The catalog after the plan ran.
fn apply(case: &Case, snapshot: &Snapshot, plan: &Plan) -> Snapshot {
    let mut after = snapshot.clone();
    let parent = after.parents[0].as_mut().unwrap();
    let mut next_oid = 10_000;
    for step in plan.steps() {
        let name = step.partition.as_ref().map(|p| p.name.clone());
        match step.action {
            Action::CreatePartition => after.pending.push(PendingTable {
                schema: "public".into(),
                name: name.clone().unwrap(),
                parent: "\"public\".\"t\"".into(),
                period_start: String::new(),
            }),
            Action::AttachPartition | Action::MoveDefaultRows => {
                let start =
                    NaiveDate::parse_from_str(&name.clone().unwrap()[3..], "%Y_%m_%d").unwrap();
                next_oid += 1;
                parent.partitions.push(partition(case, next_oid, start));
                after.pending.retain(|p| Some(&p.name) != name.as_ref());
            }
            Action::DetachPartition | Action::FinalizeDetach => {
                parent.partitions.retain(|p| Some(&p.name) != name.as_ref())
            }
            _ => {}
        }
    }
    after
}

fn range(case: &Case, p: &Partition) -> Option<(i64, i64)> {
    match &p.bound {
        Bound::Range { from, to } => Some((
            calendar::parse_bound(case.key, from)?,
            calendar::parse_bound(case.key, to)?,
        )),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn planner_properties(case in case()) {
        let policy = Policy { path: "p.toml".into(), tables: vec![table_policy(&case)] };
        let before = snapshot(&case);
        let plan = planner::plan(&policy, &before, case.now);
        prop_assert!(plan.problems().next().is_none(), "{:?}", plan.entries);
        let after = apply(&case, &before, &plan);

        // Idempotent: replanning the resulting catalog only goes on retiring
        // what the drop cap held back, and then does nothing.
        let mut settled = after.clone();
        for round in 0.. {
            let again = planner::plan(&policy, &settled, case.now);
            if again.entries.is_empty() {
                break;
            }
            prop_assert!(round < 60, "no fixed point");
            prop_assert!(
                again.problems().next().is_none()
                    && again.steps().all(|s| matches!(s.action, Action::DetachPartition | Action::DropPartition)),
                "a later plan does more than the capped retention: {:#?}", again.entries
            );
            settled = apply(&case, &settled, &again);
        }

        // No overlaps among all partitions after the run.
        let mut ranges: Vec<(i64, i64)> = after.parents[0].as_ref().unwrap().partitions.iter().filter_map(|p| range(&case, p)).collect();
        ranges.sort();
        for pair in ranges.windows(2) {
            prop_assert!(pair[0].1 <= pair[1].0, "overlap: {:?}", pair);
        }

        // No gap from the period holding now to the premake horizon.
        for offset in 0..=case.premake as i32 {
            let start = period_start(&case, offset);
            let lo = calendar::key_value(case.key, start, case.zone).unwrap();
            let hi = calendar::key_value(case.key, case.interval.next(start), case.zone).unwrap();
            prop_assert!(ranges.iter().any(|(a, b)| *a <= lo && hi <= *b), "period {start} not covered");
        }
        let now_key = calendar::key_now(case.key, case.now, case.zone).unwrap();
        prop_assert!(ranges.iter().any(|(a, b)| *a <= now_key && now_key < *b), "now is not covered");

        // Retention never takes a partition whose range reaches past the cutoff.
        if let Some((amount, unit)) = case.retention {
            let retention = Retention { amount: amount.into(), unit, action: RetentionAction::Drop, text: String::new() };
            let cutoff = retention.cutoff(calendar::local_date(case.now, case.zone));
            let cutoff_key = calendar::key_value(case.key, cutoff, case.zone).unwrap();
            let detached: Vec<_> = plan.steps().filter(|s| s.action == Action::DetachPartition).collect();
            prop_assert!(detached.len() <= case.max_drops as usize);
            for step in detached {
                let name = step.partition.as_ref().unwrap().name.as_str();
                let p = before.parents[0].as_ref().unwrap().partitions.iter().find(|p| p.name == name).unwrap();
                let (_, hi) = range(&case, p).unwrap();
                prop_assert!(hi <= cutoff_key, "{name} ends after the cutoff {cutoff}");
                prop_assert!(p.bound != Bound::Default);
            }
        }
    }
}

#[test]
fn dst_zones_keep_midnight_bounds() {
    let ny: Tz = "America/New_York".parse().unwrap();
    let now = ny
        .with_ymd_and_hms(2026, 11, 1, 1, 30, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    let case = Case {
        interval: Interval::Daily,
        zone: ny,
        key: KeyType::TimestampTz,
        key_sql: "timestamp with time zone",
        premake: 2,
        default_partition: false,
        retention: None,
        max_drops: 1,
        now,
        existing: Vec::new(),
    };
    let policy = Policy {
        path: "p.toml".into(),
        tables: vec![table_policy(&case)],
    };
    let plan = planner::plan(&policy, &snapshot(&case), now);
    let bounds: Vec<(String, String)> = plan
        .steps()
        .filter(|s| s.action == Action::AttachPartition)
        .map(|s| (s.from.clone().unwrap(), s.to.clone().unwrap()))
        .collect();
    assert_eq!(
        bounds,
        [
            (
                "2026-11-01 00:00:00-04".to_owned(),
                "2026-11-02 00:00:00-05".to_owned()
            ),
            (
                "2026-11-02 00:00:00-05".to_owned(),
                "2026-11-03 00:00:00-05".to_owned()
            ),
            (
                "2026-11-03 00:00:00-05".to_owned(),
                "2026-11-04 00:00:00-05".to_owned()
            ),
        ]
    );
}

/// An ID-ranged table: its step, key type, the largest key (none: empty),
/// the ranges that exist (offsets from the range holding the largest key).
#[derive(Debug, Clone)]
struct IdCase {
    step: i64,
    integer: IntegerType,
    premake: u32,
    retention: Option<u64>,
    max_drops: u32,
    max_key: Option<i64>,
    existing: Vec<i64>,
}

const INTEGER_TYPES: &[IntegerType] = &[
    IntegerType::Smallint,
    IntegerType::Integer,
    IntegerType::Bigint,
    IntegerType::NUMERIC,
    IntegerType::Numeric { whole_digits: 6 },
];

fn sql_type(integer: IntegerType) -> &'static str {
    match integer {
        IntegerType::Smallint => "smallint",
        IntegerType::Integer => "integer",
        IntegerType::Bigint => "bigint",
        IntegerType::Numeric { whole_digits: 6 } => "numeric(8,2)",
        IntegerType::Numeric { .. } => "numeric",
    }
}

/// Where the largest key sits: anywhere in a middle band, or within a few
/// steps of either end of the type.
#[derive(Debug, Clone, Copy)]
enum Place {
    Middle(i64),
    NearTop(u32),
    NearBottom(u32),
}

fn id_case() -> impl Strategy<Value = IdCase> {
    let place = prop_oneof![
        (-1_000_000_000i64..2_000_000_000).prop_map(Place::Middle),
        (0u32..20_000).prop_map(Place::NearTop),
        (0u32..20_000).prop_map(Place::NearBottom),
    ];
    (
        prop_oneof![
            Just(1i64),
            Just(10),
            Just(1000),
            Just(1024),
            1i64..5_000_000
        ],
        proptest::sample::select(INTEGER_TYPES),
        1u32..6,
        proptest::option::of(1u64..30),
        1u32..10,
        proptest::option::of(place),
        proptest::collection::btree_set(-40i64..8, 0..30),
    )
        .prop_map(
            |(step, integer, premake, retention, max_drops, place, existing)| {
                // Within `steps_away` × step (in thousandths) of an end.
                let near = |thousandths: u32| i64::from(thousandths) * step / 1000;
                let max_key = place.map(|place| {
                    match place {
                        Place::Middle(value) => value,
                        Place::NearTop(t) => integer.max().saturating_sub(near(t)),
                        Place::NearBottom(t) => integer.min().saturating_add(near(t)),
                    }
                    .clamp(integer.min(), integer.max())
                });
                IdCase {
                    step,
                    integer,
                    premake,
                    retention: retention.map(|ranges| ranges * step.unsigned_abs()),
                    max_drops,
                    max_key,
                    existing: existing.into_iter().collect(),
                }
            },
        )
}

fn id_policy(case: &IdCase) -> TablePolicy {
    let mut table = table_policy(&Case {
        interval: Interval::Daily,
        zone: Tz::UTC,
        key: KeyType::Date,
        key_sql: "date",
        premake: case.premake,
        default_partition: false,
        retention: None,
        max_drops: case.max_drops,
        now: Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap(),
        existing: Vec::new(),
    });
    table.spacing = Spacing::Ids(case.step);
    table.epoch = None;
    table.naming = "{parent}_p{START}".into();
    table.retention = case.retention.map(|amount| Retention {
        amount,
        unit: RetentionUnit::Ids,
        action: RetentionAction::Drop,
        text: format!("{amount} IDs"),
    });
    table
}

/// A bound as PostgreSQL prints it, MINVALUE and MAXVALUE at the ends.
fn id_bound(value: i64) -> String {
    match value {
        i64::MIN => "MINVALUE".into(),
        i64::MAX => "MAXVALUE".into(),
        _ => value.to_string(),
    }
}

fn parse_id_bound(text: &str) -> i64 {
    match text {
        "MINVALUE" => i64::MIN,
        "MAXVALUE" => i64::MAX,
        _ => text.parse().unwrap(),
    }
}

fn id_partition(oid: u32, lo: i64, hi: i64) -> Partition {
    Partition {
        oid,
        schema: "public".into(),
        name: format!("t_r{oid}"),
        bound: Bound::Range {
            from: id_bound(lo),
            to: id_bound(hi),
        },
        detach_pending: false,
        estimated_rows: 10,
        estimated_bytes: 8192,
        indexes: Vec::new(),
        access_method: None,
        checks: Vec::new(),
        subpartitioned: false,
    }
}

fn id_snapshot(case: &IdCase) -> Snapshot {
    let holding = i128::from(case.max_key.unwrap_or(0)).div_euclid(i128::from(case.step))
        * i128::from(case.step);
    let (min, max) = (
        i128::from(case.integer.min()),
        i128::from(case.integer.max()),
    );
    // Existing ranges are ones PostgreSQL accepts: inside the type.
    let partitions = case
        .existing
        .iter()
        .enumerate()
        .filter_map(|(i, offset)| {
            let lo = holding + i128::from(*offset) * i128::from(case.step);
            let hi = lo + i128::from(case.step);
            (lo >= min && hi <= max).then(|| id_partition(100 + i as u32, lo as i64, hi as i64))
        })
        .collect();
    let mut snapshot = snapshot(&Case {
        interval: Interval::Daily,
        zone: Tz::UTC,
        key: KeyType::Date,
        key_sql: "date",
        premake: case.premake,
        default_partition: false,
        retention: None,
        max_drops: case.max_drops,
        now: Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap(),
        existing: Vec::new(),
    });
    let parent = snapshot.parents[0].as_mut().unwrap();
    parent.key.as_mut().unwrap().sql_type = sql_type(case.integer).into();
    parent.partitions = partitions;
    parent.max_key = case.max_key.map(|value| MaxKey {
        value: value.to_string(),
        partition: "public.t_r100".into(),
        indexed: true,
    });
    snapshot
}

fn range_of(p: &Partition) -> (i64, i64) {
    match &p.bound {
        Bound::Range { from, to } => (parse_id_bound(from), parse_id_bound(to)),
        _ => unreachable!("only ranges"),
    }
}

/// The catalog after an ID plan ran, from the bounds the steps carry.
fn apply_ids(snapshot: &Snapshot, plan: &Plan) -> Snapshot {
    let mut after = snapshot.clone();
    let parent = after.parents[0].as_mut().unwrap();
    for (oid, step) in (10_000..).zip(plan.steps()) {
        let name = step.partition.as_ref().map(|p| p.name.clone());
        match step.action {
            Action::AttachPartition | Action::MoveDefaultRows => {
                let lo = parse_id_bound(step.from.as_ref().unwrap());
                let hi = parse_id_bound(step.to.as_ref().unwrap());
                parent.partitions.push(id_partition(oid, lo, hi));
            }
            Action::DetachPartition => parent.partitions.retain(|p| Some(&p.name) != name.as_ref()),
            _ => {}
        }
    }
    after
}

/// Whether [lo, hi) holds `value` (a range to MAXVALUE holds the largest).
fn holds((lo, hi): (i64, i64), value: i64) -> bool {
    lo <= value && (value < hi || hi == i64::MAX)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 800, ..ProptestConfig::default() })]

    #[test]
    fn id_planner_properties(case in id_case()) {
        let policy = Policy { path: "p.toml".into(), tables: vec![id_policy(&case)] };
        let before = id_snapshot(&case);
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
        let plan = planner::plan(&policy, &before, now);
        let max = case.max_key.unwrap_or(0);
        prop_assert!(plan.problems().next().is_none(), "{:?}", plan.entries);
        let after = apply_ids(&before, &plan);
        let mut ranges: Vec<(i64, i64)> = after.parents[0].as_ref().unwrap().partitions.iter().map(range_of).collect();
        ranges.sort();
        for pair in ranges.windows(2) {
            prop_assert!(pair[0].1 <= pair[1].0, "overlap: {:?}", pair);
        }
        // Every bound written is inside the type, or MINVALUE / MAXVALUE.
        for step in plan.steps().filter(|s| s.action == Action::AttachPartition) {
            for bound in [step.from.as_ref().unwrap(), step.to.as_ref().unwrap()] {
                let value = parse_id_bound(bound);
                prop_assert!(
                    matches!(value, i64::MIN | i64::MAX)
                        || (case.integer.min()..=case.integer.max()).contains(&value),
                    "{bound} is outside {:?}", case.integer
                );
            }
        }
        // An empty table counts from its lowest range, or from 0 without one.
        let lowest = before.parents[0].as_ref().unwrap().partitions.iter().map(|p| range_of(p).0).min();
        let point = match (case.max_key, lowest) {
            (None, Some(lowest)) => lowest,
            _ => max,
        };
        // No gap from the range holding the point through premake more,
        // or to MAXVALUE: the type's largest value always gets a range.
        let mut at = point;
        for offset in 0..=case.premake {
            let range = ranges.iter().find(|r| holds(**r, at));
            prop_assert!(range.is_some(), "{at} (premake {offset}) not covered: {ranges:?}");
            let (_, hi) = *range.unwrap();
            if hi == i64::MAX {
                prop_assert!(holds((at, hi), case.integer.max()));
                break;
            }
            at = hi;
        }
        // Replanning the result only goes on retiring what the cap held back.
        let again = planner::plan(&policy, &after, now);
        prop_assert!(again.problems().next().is_none(), "{:?}", again.entries);
        prop_assert!(again.steps().all(|s| matches!(s.action, Action::DetachPartition | Action::DropPartition)));
        // Retention never takes a range reaching above max - retention, and
        // nothing expires while the table is empty.
        let detached: Vec<_> = plan.steps().filter(|s| s.action == Action::DetachPartition).collect();
        prop_assert!(detached.len() <= case.max_drops as usize);
        if case.max_key.is_none() {
            prop_assert!(detached.is_empty());
        }
        if let Some(retention) = case.retention {
            let cutoff = max.saturating_sub(retention as i64);
            for step in detached {
                let hi = parse_id_bound(step.to.as_ref().unwrap());
                prop_assert!(hi <= cutoff, "{hi} ends above the cutoff {cutoff}");
            }
        }
    }
}

#[test]
fn the_ends_of_each_integer_type_get_a_range() {
    let cases = [
        (IntegerType::Smallint, 32_767, "32000", "MAXVALUE"),
        (IntegerType::Smallint, -32_768, "MINVALUE", "-32000"),
        (
            IntegerType::Integer,
            2_147_483_647,
            "2147483000",
            "MAXVALUE",
        ),
        (
            IntegerType::Bigint,
            i64::MAX,
            "9223372036854775000",
            "MAXVALUE",
        ),
        (
            IntegerType::NUMERIC,
            i64::MIN,
            "MINVALUE",
            "-9223372036854775000",
        ),
    ];
    for (integer, max_key, from, to) in cases {
        let case = IdCase {
            step: 1000,
            integer,
            premake: 3,
            retention: None,
            max_drops: 1,
            max_key: Some(max_key),
            existing: Vec::new(),
        };
        let policy = Policy {
            path: "p.toml".into(),
            tables: vec![id_policy(&case)],
        };
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
        let plan = planner::plan(&policy, &id_snapshot(&case), now);
        let attach = plan
            .steps()
            .find(|s| s.action == Action::AttachPartition)
            .unwrap();
        assert_eq!(
            (attach.from.as_deref(), attach.to.as_deref()),
            (Some(from), Some(to)),
            "{integer:?}"
        );
        assert!(
            attach.sql[0].ends_with(&format!("FOR VALUES FROM ({from}) TO ({to})")),
            "{}",
            attach.sql[0]
        );
    }
}

/// A table with a fixed interval (sub-day, or whole days) around DST changes.
#[derive(Debug, Clone)]
struct FixedCase {
    interval: &'static str,
    zone: Tz,
    key: KeyType,
    key_sql: &'static str,
    premake: u32,
    retention_days: Option<u32>,
    max_drops: u32,
    now: DateTime<Utc>,
    /// Offsets (in periods, from the one holding now) of existing partitions.
    existing: Vec<i32>,
}

const FIXED_INTERVALS: &[&str] = &[
    "15 minutes",
    "30 minutes",
    "hourly",
    "2 hours",
    "3 hours",
    "6 hours",
    "1 day",
    "2 days",
    "1 week",
];
const FIXED_KEYS: &[(KeyType, &str)] = &[
    (KeyType::TimestampTz, "timestamp with time zone"),
    (KeyType::Timestamp, "timestamp without time zone"),
    (
        KeyType::Epoch(EpochUnit::Milliseconds, IntegerType::Bigint),
        "bigint",
    ),
];
/// The DST changes of New York, Berlin and Lord Howe (a half-hour shift).
const DST_DAYS: &[(i32, u32, u32)] = &[
    (2026, 3, 8),
    (2026, 3, 29),
    (2026, 4, 5),
    (2026, 10, 4),
    (2026, 10, 25),
    (2026, 11, 1),
];

fn fixed_case() -> impl Strategy<Value = FixedCase> {
    (
        0..FIXED_INTERVALS.len(),
        0..ZONES.len(),
        0..FIXED_KEYS.len(),
        1u32..6,
        proptest::option::of(7u32..30),
        1u32..10,
        0..DST_DAYS.len(),
        -36 * 60i64..36 * 60,
        proptest::collection::btree_set(-20i32..8, 0..20),
    )
        .prop_map(
            |(interval, zone, key, premake, retention_days, max_drops, day, minutes, existing)| {
                let (y, m, d) = DST_DAYS[day];
                let zone: Tz = ZONES[zone].parse().unwrap();
                let midnight =
                    calendar::start_of_day(NaiveDate::from_ymd_opt(y, m, d).unwrap(), zone);
                FixedCase {
                    interval: FIXED_INTERVALS[interval],
                    zone,
                    key: FIXED_KEYS[key].0,
                    key_sql: FIXED_KEYS[key].1,
                    premake,
                    retention_days,
                    max_drops,
                    now: midnight.with_timezone(&Utc) + Duration::minutes(minutes),
                    existing: existing.into_iter().collect(),
                }
            },
        )
}

fn fixed_periods(case: &FixedCase) -> planner::Periods {
    planner::Periods::Fixed {
        fixed: FixedInterval::parse(case.interval).unwrap(),
        key: case.key,
        zone: case.zone,
    }
}

/// The start of the period `offset` periods from the one holding now.
fn fixed_start(case: &FixedCase, offset: i32) -> i64 {
    let periods = fixed_periods(case);
    let now = calendar::key_now(case.key, case.now, case.zone).unwrap();
    let mut start = periods.holding(now).unwrap();
    for _ in 0..offset.max(0) {
        start = periods.next(start).unwrap();
    }
    for _ in 0..(-offset).max(0) {
        // The period before: the one holding the instant just before.
        start = periods.holding(start - 1).unwrap();
    }
    start
}

fn fixed_snapshot(case: &FixedCase) -> Snapshot {
    let periods = fixed_periods(case);
    let unquote = |text: String| text.trim_matches('\'').to_owned();
    let partitions = case
        .existing
        .iter()
        .enumerate()
        .map(|(i, offset)| {
            let lo = fixed_start(case, *offset);
            let hi = periods.next(lo).unwrap();
            Partition {
                bound: Bound::Range {
                    from: format!("'{}'", unquote(periods.literal(lo))),
                    to: format!("'{}'", unquote(periods.literal(hi))),
                },
                ..id_partition(100 + i as u32, 0, 0)
            }
        })
        .collect();
    let mut snapshot = id_snapshot(&IdCase {
        step: 1,
        integer: IntegerType::Bigint,
        premake: case.premake,
        retention: None,
        max_drops: case.max_drops,
        max_key: None,
        existing: Vec::new(),
    });
    let parent = snapshot.parents[0].as_mut().unwrap();
    parent.key.as_mut().unwrap().sql_type = case.key_sql.into();
    parent.partitions = partitions;
    snapshot
}

fn fixed_policy(case: &FixedCase) -> TablePolicy {
    let mut table = id_policy(&IdCase {
        step: 1,
        integer: IntegerType::Bigint,
        premake: case.premake,
        retention: None,
        max_drops: case.max_drops,
        max_key: None,
        existing: Vec::new(),
    });
    table.spacing = Spacing::Fixed(FixedInterval::parse(case.interval).unwrap());
    table.time_zone = case.zone;
    table.epoch = match case.key {
        KeyType::Epoch(unit, _) => Some(unit),
        _ => None,
    };
    table.naming = "{parent}_p{YYYY}_{MM}_{DD}_{HH}{MI}".into();
    table.retention = case.retention_days.map(|days| Retention {
        amount: u64::from(days),
        unit: RetentionUnit::Days,
        action: RetentionAction::Drop,
        text: format!("{days} days"),
    });
    table
}

fn bound_value(case: &FixedCase, text: &str) -> i64 {
    calendar::parse_bound(case.key, &format!("'{text}'"))
        .or_else(|| calendar::parse_bound(case.key, text))
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn fixed_interval_planner_properties(case in fixed_case()) {
        let policy = Policy { path: "p.toml".into(), tables: vec![fixed_policy(&case)] };
        let before = fixed_snapshot(&case);
        let plan = planner::plan(&policy, &before, case.now);
        prop_assert!(plan.failures().next().is_none(), "{:?}", plan.entries);
        // A warning with the count when the policy keeps too many partitions.
        let minutes = i64::from(FixedInterval::parse(case.interval).unwrap().minutes);
        let kept = i64::from(case.retention_days.unwrap_or(0)) * 24 * 60 / minutes;
        let count = i64::from(case.premake) + 1 + kept;
        let warned = plan.problems().find(|p| p.kind == planner::ProblemKind::ManyPartitions);
        prop_assert_eq!(warned.is_some(), count > planner::MANY_PARTITIONS);
        if let Some(warning) = warned {
            let about = format!("keeps about {count} partitions");
            prop_assert!(warning.message.contains(&about), "{}", warning.message);
        }
        let mut ranges: Vec<(i64, i64)> = before.parents[0].as_ref().unwrap().partitions.iter()
            .filter(|p| !plan.steps().any(|s| s.action == Action::DetachPartition && s.partition.as_ref().map(|n| &n.name) == Some(&p.name)))
            .map(|p| match &p.bound {
                Bound::Range { from, to } => (bound_value(&case, from), bound_value(&case, to)),
                _ => unreachable!(),
            })
            .collect();
        for step in plan.steps().filter(|s| s.action == Action::AttachPartition) {
            ranges.push((bound_value(&case, step.from.as_ref().unwrap()), bound_value(&case, step.to.as_ref().unwrap())));
        }
        ranges.sort();
        for pair in ranges.windows(2) {
            prop_assert!(pair[0].1 <= pair[1].0, "overlap: {:?}", pair);
        }
        for range in &ranges {
            prop_assert!(range.0 < range.1, "an empty period: {:?}", range);
        }
        // No gap from the period holding now to the premake horizon.
        let now_key = calendar::key_now(case.key, case.now, case.zone).unwrap();
        let horizon = fixed_start(&case, case.premake as i32 + 1);
        let mut at = now_key;
        while at < horizon {
            let Some(range) = ranges.iter().find(|(a, b)| *a <= at && at < *b) else {
                return Err(TestCaseError::fail(format!("{at} not covered up to {horizon}: {ranges:?}")));
            };
            at = range.1;
        }
        // Retention never takes a partition reaching past the cutoff.
        if let Some(days) = case.retention_days {
            let retention = Retention { amount: u64::from(days), unit: RetentionUnit::Days, action: RetentionAction::Drop, text: String::new() };
            let cutoff = retention.cutoff(calendar::local_date(case.now, case.zone));
            let cutoff_key = calendar::key_value(case.key, cutoff, case.zone).unwrap();
            let detached: Vec<_> = plan.steps().filter(|s| s.action == Action::DetachPartition).collect();
            prop_assert!(detached.len() <= case.max_drops as usize);
            for step in detached {
                prop_assert!(bound_value(&case, step.to.as_ref().unwrap()) <= cutoff_key, "{:?} ends after {cutoff}", step.to);
            }
        }
        // Replanning the result creates nothing more.
        let mut after = before.clone();
        let parent = after.parents[0].as_mut().unwrap();
        parent.partitions.clear();
        for (i, (lo, hi)) in ranges.iter().enumerate() {
            let periods = fixed_periods(&case);
            parent.partitions.push(Partition {
                bound: Bound::Range { from: periods.literal(*lo), to: periods.literal(*hi) },
                ..id_partition(5000 + i as u32, 0, 0)
            });
        }
        let again = planner::plan(&policy, &after, case.now);
        prop_assert!(again.steps().all(|s| matches!(s.action, Action::DetachPartition | Action::DropPartition)), "{:?}", again.entries);
    }
}

/// Instants around DST changes (both ways, including Lord Howe's 30-minute
/// one) and a Samoa day skip, where a repeated local time reads as its
/// first instant.
const DST_CHANGES: &[(&str, i64)] = &[
    ("Europe/Berlin", 1_792_890_000),       // 2026-10-25 01:00Z, back
    ("Europe/Berlin", 1_774_746_000),       // 2026-03-29 01:00Z, forward
    ("America/New_York", 1_793_512_800),    // 2026-11-01 06:00Z, back
    ("America/New_York", 1_772_953_200),    // 2026-03-08 07:00Z, forward
    ("Australia/Lord_Howe", 1_775_313_000), // 2026-04-04 15:00Z, back 30 min
    ("Pacific/Apia", 1_325_239_200),        // 2011-12-30 10:00Z, a skipped day
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Checked against `next`, not against the function that found the
    /// period: the period found for an instant holds it.
    #[test]
    fn every_instant_lies_inside_the_period_found_for_it(
        change in proptest::sample::select(DST_CHANGES),
        offset in -4 * 3600i64..4 * 3600,
        fixed in proptest::sample::select(FIXED_INTERVALS),
        calendar in proptest::sample::select(INTERVALS),
        epoch in any::<bool>(),
    ) {
        let zone: Tz = change.0.parse().unwrap();
        let seconds = change.1 + offset;
        let (key, value) = if epoch {
            (KeyType::Epoch(EpochUnit::Seconds, IntegerType::Bigint), seconds)
        } else {
            (KeyType::TimestampTz, seconds * 1_000_000)
        };
        let fixed = FixedInterval::parse(fixed).unwrap();
        for periods in [
            planner::Periods::Fixed { fixed, key, zone },
            planner::Periods::Calendar { interval: calendar, key, zone },
        ] {
            let start = periods.holding(value).unwrap();
            let end = periods.next(start).unwrap();
            prop_assert!(
                start <= value && value < end,
                "{periods:?}: {value} is not in [{}, {})",
                periods.literal(start),
                periods.literal(end)
            );
        }
    }
}

#[test]
fn thirty_minutes_at_the_berlin_fall_back_hold_the_second_pass() {
    let zone: Tz = "Europe/Berlin".parse().unwrap();
    let periods = planner::Periods::Fixed {
        fixed: FixedInterval::parse("30 minutes").unwrap(),
        key: KeyType::TimestampTz,
        zone,
    };
    // 2026-10-25T01:10:00Z is 02:10 CET, the second 02:10 of the night.
    let instant = Utc
        .with_ymd_and_hms(2026, 10, 25, 1, 10, 0)
        .unwrap()
        .timestamp_micros();
    let start = periods.holding(instant).unwrap();
    let end = periods.next(start).unwrap();
    assert_eq!(
        (periods.literal(start), periods.literal(end)),
        (
            "'2026-10-25 02:30:00+02'".to_owned(),
            "'2026-10-25 03:00:00+01'".to_owned()
        )
    );
}

#[test]
fn an_id_policy_keeping_too_many_partitions_is_warned_with_the_count() {
    let case = IdCase {
        step: 10,
        integer: IntegerType::Bigint,
        premake: 1000,
        retention: Some(1_000_000_000),
        max_drops: 1,
        max_key: Some(5),
        existing: Vec::new(),
    };
    let policy = Policy {
        path: "p.toml".into(),
        tables: vec![id_policy(&case)],
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let plan = planner::plan(&policy, &id_snapshot(&case), now);
    let warning = plan
        .problems()
        .find(|p| p.kind == planner::ProblemKind::ManyPartitions)
        .expect("a many_partitions warning");
    assert!(
        warning.message.contains(
            "public.t with interval 10 keeps about 100001001 partitions (premake = 1000 ahead, about \
             100000000 kept by retention 1000000000 IDs)"
        ),
        "{}",
        warning.message
    );
    assert!(
        warning
            .message
            .contains("a larger step or a smaller retention keeps fewer")
    );
}
