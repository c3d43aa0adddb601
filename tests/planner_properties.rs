//! Properties of the planner on a simulated catalog, for random intervals,
//! zones, key types and clocks around month, quarter, year and DST edges.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use pgm::duration::Timeout;
use pgm::location::Location;
use pgm::partition::calendar::{self, EpochUnit, FixedInterval, Interval, KeyType};
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
    (KeyType::Epoch(EpochUnit::Seconds), "bigint"),
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
            KeyType::Epoch(unit) => Some(unit),
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
        move_default_rows: true,
        naming: "{parent}_p{YYYY}_{MM}_{DD}".into(),
        time_zone: case.zone,
        lock_timeout: Timeout::from_millis(2000),
        snapshot_wait: Timeout::from_millis(1_800_000),
        lock_retries: 5,
        max_drops_per_run: case.max_drops,
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
        _ => calendar::literal(case.key, date, case.zone),
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
        })],
        pending: Vec::new(),
        retiring: Vec::new(),
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
            let lo = calendar::key_value(case.key, start, case.zone);
            let hi = calendar::key_value(case.key, case.interval.next(start), case.zone);
            prop_assert!(ranges.iter().any(|(a, b)| *a <= lo && hi <= *b), "period {start} not covered");
        }
        let now_key = calendar::key_now(case.key, case.now, case.zone);
        prop_assert!(ranges.iter().any(|(a, b)| *a <= now_key && now_key < *b), "now is not covered");

        // Retention never takes a partition whose range reaches past the cutoff.
        if let Some((amount, unit)) = case.retention {
            let retention = Retention { amount: amount.into(), unit, action: RetentionAction::Drop, text: String::new() };
            let cutoff = retention.cutoff(calendar::local_date(case.now, case.zone));
            let cutoff_key = calendar::key_value(case.key, cutoff, case.zone);
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

/// An ID-ranged table: its step, the largest key (none: empty), the ranges
/// that exist (offsets from the range holding the largest key).
#[derive(Debug, Clone)]
struct IdCase {
    step: i64,
    integer: bool,
    premake: u32,
    retention: Option<u64>,
    max_drops: u32,
    max_key: Option<i64>,
    existing: Vec<i64>,
}

fn id_case() -> impl Strategy<Value = IdCase> {
    (
        prop_oneof![Just(1i64), Just(10), Just(1000), 1i64..5_000_000],
        any::<bool>(),
        1u32..6,
        proptest::option::of(1u64..30),
        1u32..10,
        proptest::option::of(-1_000_000_000i64..2_000_000_000),
        proptest::collection::btree_set(-40i64..8, 0..30),
    )
        .prop_map(
            |(step, integer, premake, retention, max_drops, max_key, existing)| IdCase {
                step,
                integer,
                premake,
                retention: retention.map(|ranges| ranges * step.unsigned_abs()),
                max_drops,
                max_key,
                existing: existing.into_iter().collect(),
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

fn id_partition(oid: u32, lo: i64, hi: i64) -> Partition {
    Partition {
        oid,
        schema: "public".into(),
        name: format!("t_r{oid}"),
        bound: Bound::Range {
            from: lo.to_string(),
            to: hi.to_string(),
        },
        detach_pending: false,
        estimated_rows: 10,
        estimated_bytes: 8192,
        indexes: Vec::new(),
    }
}

fn id_snapshot(case: &IdCase) -> Snapshot {
    let holding = case.max_key.unwrap_or(0).div_euclid(case.step) * case.step;
    let partitions = case
        .existing
        .iter()
        .enumerate()
        .map(|(i, offset)| {
            let lo = holding + offset * case.step;
            id_partition(100 + i as u32, lo, lo + case.step)
        })
        .filter(|p| !case.integer || range_of(p).1 <= i64::from(i32::MAX))
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
    parent.key.as_mut().unwrap().sql_type = if case.integer { "integer" } else { "bigint" }.into();
    parent.partitions = partitions;
    parent.max_key = case.max_key.map(|value| MaxKey {
        value: value.to_string(),
        partition: "public.t_r100".into(),
    });
    snapshot
}

fn range_of(p: &Partition) -> (i64, i64) {
    match &p.bound {
        Bound::Range { from, to } => (from.parse().unwrap(), to.parse().unwrap()),
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
                let lo = step.from.as_ref().unwrap().parse().unwrap();
                let hi = step.to.as_ref().unwrap().parse().unwrap();
                parent.partitions.push(id_partition(oid, lo, hi));
            }
            Action::DetachPartition => parent.partitions.retain(|p| Some(&p.name) != name.as_ref()),
            _ => {}
        }
    }
    after
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn id_planner_properties(case in id_case()) {
        let policy = Policy { path: "p.toml".into(), tables: vec![id_policy(&case)] };
        let before = id_snapshot(&case);
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
        let plan = planner::plan(&policy, &before, now);
        let top = if case.integer { i64::from(i32::MAX) } else { i64::MAX };
        let max = case.max_key.unwrap_or(0);
        // An empty table counts from its lowest range, or from 0 without one.
        let lowest = before.parents[0].as_ref().unwrap().partitions.iter().map(|p| range_of(p).0).min();
        let holding = match (case.max_key, lowest) {
            (None, Some(lowest)) => lowest,
            _ => max.div_euclid(case.step) * case.step,
        };
        let horizon = holding.checked_add((i64::from(case.premake) + 1) * case.step);
        if horizon.is_none_or(|h| h > top) || (case.integer && holding < i64::from(i32::MIN)) {
            // Past the type's range: an error entry, never a bound PostgreSQL refuses.
            prop_assert!(plan.problems().any(|p| p.kind == planner::ProblemKind::OutOfRange), "{:?}", plan.entries);
            return Ok(());
        }
        prop_assert!(plan.problems().next().is_none(), "{:?}", plan.entries);
        let after = apply_ids(&before, &plan);
        let mut ranges: Vec<(i64, i64)> = after.parents[0].as_ref().unwrap().partitions.iter().map(range_of).collect();
        ranges.sort();
        for pair in ranges.windows(2) {
            prop_assert!(pair[0].1 <= pair[1].0, "overlap: {:?}", pair);
        }
        // No gap from the range holding the largest key to the premake horizon.
        for offset in 0..=i64::from(case.premake) {
            let lo = holding + offset * case.step;
            prop_assert!(ranges.iter().any(|(a, b)| *a <= lo && lo + case.step <= *b), "range {lo} not covered");
        }
        // Replanning the result only goes on retiring what the cap held back.
        let again = planner::plan(&policy, &after, now);
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
                let hi: i64 = step.to.as_ref().unwrap().parse().unwrap();
                prop_assert!(hi <= cutoff, "{hi} ends above the cutoff {cutoff}");
            }
        }
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
    (KeyType::Epoch(EpochUnit::Milliseconds), "bigint"),
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
    let now = calendar::key_now(case.key, case.now, case.zone);
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
        integer: false,
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
        integer: false,
        premake: case.premake,
        retention: None,
        max_drops: case.max_drops,
        max_key: None,
        existing: Vec::new(),
    });
    table.spacing = Spacing::Fixed(FixedInterval::parse(case.interval).unwrap());
    table.time_zone = case.zone;
    table.epoch = match case.key {
        KeyType::Epoch(unit) => Some(unit),
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
        let now_key = calendar::key_now(case.key, case.now, case.zone);
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
            let cutoff_key = calendar::key_value(case.key, cutoff, case.zone);
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
