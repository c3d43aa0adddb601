//! A table's partitions as ranges of its key space, each known by the key
//! value it starts at: calendar periods of the policy's zone, or ranges of
//! a fixed number of IDs.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime};
use chrono_tz::Tz;

use crate::partition::calendar::{self, FixedInterval, IntegerType, Interval, KeyType, KeyValue};
use crate::partition::policy::TablePolicy;

/// How many periods a repeated local stretch can cover: two hours of
/// 15-minute periods (no zone repeats more than two hours).
const MAX_REPEATED_PERIODS: usize = 10;

#[derive(Debug, Clone, Copy)]
pub enum Periods {
    Calendar {
        interval: Interval,
        key: KeyType,
        zone: Tz,
    },
    /// Periods of a fixed length on the local clock of `zone`.
    Fixed {
        fixed: FixedInterval,
        key: KeyType,
        zone: Tz,
    },
    Ids {
        step: i64,
        integer: IntegerType,
    },
}

impl Periods {
    /// The start of the period holding `value`.
    pub fn holding(&self, value: KeyValue) -> Option<KeyValue> {
        let mut start = self.local_holding(value)?;
        if let Periods::Ids { .. } = self {
            return Some(start);
        }
        // A repeated local time (clocks going back) reads as its first
        // instant: an instant in the second pass of 02:10 floors to the
        // first 02:00, whose period may end before it. The periods after
        // hold it; the repeated stretch spans a few of them at most.
        for _ in 0..MAX_REPEATED_PERIODS {
            match self.next(start) {
                Some(next) if next <= value => start = next,
                _ => return Some(start),
            }
        }
        None
    }

    /// The start of the period whose local reading holds `value`'s.
    fn local_holding(&self, value: KeyValue) -> Option<KeyValue> {
        match *self {
            Periods::Calendar {
                interval,
                key,
                zone,
            } => {
                let date = interval.checked_floor(key_to_date(key, value, zone)?)?;
                calendar::key_value(key, date, zone)
            }
            Periods::Fixed { fixed, key, zone } => {
                from_local(key, fixed.floor(to_local(key, value, zone)?)?, zone)
            }
            Periods::Ids { step, integer } => Some(id_holding(step, integer, value)),
        }
    }

    /// The start of the period after the one starting at `start`, when it
    /// is within chrono's calendar, or the integer type's range.
    pub fn next(&self, start: KeyValue) -> Option<KeyValue> {
        match *self {
            Periods::Calendar {
                interval,
                key,
                zone,
            } => {
                let next = interval.checked_next(key_to_date(key, start, zone)?)?;
                calendar::key_value(key, next, zone)
            }
            // From the period's local start, not the instant it resolved to:
            // on a spring-forward night the 02:00 period starts at 03:00,
            // and the next one is still 04:00.
            Periods::Fixed { fixed, key, zone } => {
                let slot = fixed.floor(to_local(key, start, zone)?)?;
                from_local(key, fixed.next(slot)?, zone)
            }
            Periods::Ids { step, integer } => id_next(step, integer, start),
        }
    }

    /// The start of [lo, hi) when it is exactly one period. MINVALUE and
    /// MAXVALUE are periods only as the ends of an integer type's ranges.
    pub fn aligned(&self, lo: KeyValue, hi: KeyValue) -> Option<KeyValue> {
        let open_ended = lo == KeyValue::MIN || hi == KeyValue::MAX;
        if open_ended && !matches!(self, Periods::Ids { .. }) {
            return None;
        }
        (self.holding(lo) == Some(lo) && self.next(lo) == Some(hi)).then_some(lo)
    }

    /// A bound of an epoch key its integer type cannot hold (milliseconds
    /// in an `integer` column), with that type; `None` when it fits.
    pub fn epoch_overflow(&self, value: KeyValue) -> Option<IntegerType> {
        let (Periods::Calendar { key, .. } | Periods::Fixed { key, .. }) = *self else {
            return None;
        };
        match key {
            KeyType::Epoch(_, integer) if !(integer.min()..=integer.max()).contains(&value) => {
                Some(integer)
            }
            _ => None,
        }
    }

    /// A bound as SQL writes it in `FOR VALUES FROM (…) TO (…)`.
    pub fn literal(&self, value: KeyValue) -> String {
        match *self {
            Periods::Calendar { key, zone, .. } => key_to_date(key, value, zone)
                .and_then(|date| calendar::literal(key, date, zone))
                .unwrap_or_else(|| value.to_string()),
            Periods::Fixed { key, zone, .. } => fixed_literal(key, value, zone),
            Periods::Ids { .. } => match value {
                KeyValue::MIN => "MINVALUE".to_owned(),
                KeyValue::MAX => "MAXVALUE".to_owned(),
                _ => value.to_string(),
            },
        }
    }

    /// The period's start as plans, reasons and markers show it: the first
    /// day ("2026-11-01") or the first ID.
    pub fn label(&self, start: KeyValue) -> String {
        match *self {
            Periods::Calendar { key, zone, .. } => key_to_date(key, start, zone)
                .map_or_else(|| start.to_string(), |d| d.format("%Y-%m-%d").to_string()),
            Periods::Fixed { fixed, key, zone } => {
                match to_local(key, start, zone).and_then(|local| fixed.floor(local)) {
                    Some(slot) if fixed.is_sub_day() => slot.format("%Y-%m-%d %H:%M").to_string(),
                    Some(slot) => slot.format("%Y-%m-%d").to_string(),
                    None => start.to_string(),
                }
            }
            Periods::Ids { .. } => start.to_string(),
        }
    }

    /// The name of the partition of the period starting at `start`.
    /// `None` when its start has no local date (never named after a guess).
    pub fn name(&self, table: &TablePolicy, start: KeyValue) -> Option<String> {
        Some(match *self {
            Periods::Calendar { key, zone, .. } => {
                table.partition_name(key_to_date(key, start, zone)?)
            }
            Periods::Fixed { fixed, key, zone } => {
                table.partition_name_at(fixed.floor(to_local(key, start, zone)?)?)
            }
            // The range from MINVALUE is named after the type's smallest value.
            Periods::Ids { integer, .. } => {
                table.id_partition_name(start.max(integer.min()), integer.digits())
            }
        })
    }

    /// What one period is, for messages: "monthly period".
    pub fn kind(&self) -> String {
        match self {
            Periods::Calendar { interval, .. } => format!("{interval} period"),
            Periods::Fixed { fixed, .. } => format!("{fixed} period"),
            Periods::Ids { step, .. } => format!("range of {step} IDs"),
        }
    }

    /// What one period is, with its zone: "monthly period in UTC".
    pub fn describe(&self) -> String {
        match self {
            Periods::Calendar { zone, .. } | Periods::Fixed { zone, .. } => {
                format!("{} in {zone}", self.kind())
            }
            Periods::Ids { .. } => self.kind(),
        }
    }
}

/// The start of the ID range holding `value`: a multiple of `step`, or
/// MINVALUE (`KeyValue::MIN`) below the type's first multiple, so the
/// type's smallest values have a range too.
fn id_holding(step: i64, integer: IntegerType, value: KeyValue) -> KeyValue {
    let value = value.clamp(integer.min(), integer.max());
    match value.div_euclid(step).checked_mul(step) {
        // bigint's largest value is a multiple of the step: `KeyValue::MAX`
        // stands for MAXVALUE, so it is held by the range before, to MAXVALUE.
        Some(KeyValue::MAX) => KeyValue::MAX - step,
        Some(start) if start >= integer.min() => start,
        _ => KeyValue::MIN,
    }
}

/// The start of the ID range after the one starting at `start`: the next
/// multiple of `step`, or MAXVALUE (`KeyValue::MAX`) when that is past the
/// type's largest value, so the largest values have a range too; `None`
/// after the range that ends at MAXVALUE.
fn id_next(step: i64, integer: IntegerType, start: KeyValue) -> Option<KeyValue> {
    if start == KeyValue::MAX {
        return None;
    }
    // From MINVALUE, the first multiple above the type's smallest value.
    let from = if start == KeyValue::MIN {
        i128::from(integer.min()).div_euclid(i128::from(step)) * i128::from(step)
    } else {
        i128::from(start)
    };
    let next = from + i128::from(step);
    Some(match i64::try_from(next) {
        Ok(next) if next <= integer.max() => next,
        _ => KeyValue::MAX,
    })
}

/// The local date a bound in key space falls on.
pub fn key_to_date(key: KeyType, value: KeyValue, zone: Tz) -> Option<NaiveDate> {
    to_local(key, value, zone).map(|local| local.date())
}

/// The local reading of a bound in key space.
fn to_local(key: KeyType, value: KeyValue, zone: Tz) -> Option<NaiveDateTime> {
    match key {
        KeyType::TimestampTz => {
            calendar::checked_local_time(DateTime::from_timestamp_micros(value)?, zone)
        }
        KeyType::Timestamp => Some(DateTime::from_timestamp_micros(value)?.naive_utc()),
        KeyType::Date => Some(
            NaiveDate::from_num_days_from_ce_opt(i32::try_from(value).ok()?)?
                .and_time(NaiveTime::MIN),
        ),
        KeyType::Epoch(unit, _) => calendar::checked_local_time(
            DateTime::from_timestamp_micros(unit.checked_to_micros(value)?)?,
            zone,
        ),
        KeyType::Id(_) => None,
    }
}

/// A local reading in key space (a skipped time read forward, a repeated
/// one as its first instant: see `calendar::local_instant`).
fn from_local(key: KeyType, local: NaiveDateTime, zone: Tz) -> Option<KeyValue> {
    match key {
        KeyType::TimestampTz => Some(calendar::local_instant(local, zone)?.timestamp_micros()),
        KeyType::Timestamp => Some(local.and_utc().timestamp_micros()),
        KeyType::Date => Some(i64::from(local.date().num_days_from_ce())),
        KeyType::Epoch(unit, _) => {
            unit.checked_from_micros(calendar::local_instant(local, zone)?.timestamp_micros())
        }
        KeyType::Id(_) => None,
    }
}

/// A fixed period's bound as SQL writes it.
fn fixed_literal(key: KeyType, value: KeyValue, zone: Tz) -> String {
    let local = to_local(key, value, zone);
    match (key, local) {
        (KeyType::TimestampTz, Some(_)) => DateTime::from_timestamp_micros(value)
            .map(|t| calendar::timestamptz_literal(t.with_timezone(&zone)))
            .unwrap_or_else(|| value.to_string()),
        (KeyType::Timestamp, Some(local)) => format!("'{}'", local.format("%Y-%m-%d %H:%M:%S")),
        (KeyType::Date, Some(local)) => format!("'{}'", local.format("%Y-%m-%d")),
        _ => value.to_string(),
    }
}

/// The largest key value as the catalog read it (a numeric key may hold
/// fractions: the whole number at or below it); `None` beyond bigint.
pub fn parse_max_key(text: &str) -> Option<KeyValue> {
    KeyValue::try_from(calendar::floor_integer(text)?.0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounds of the periods from local midnight of `day` to the next.
    fn day_of_periods(text: &str, day: (i32, u32, u32)) -> Vec<String> {
        let zone: Tz = "Europe/Berlin".parse().unwrap();
        let fixed = FixedInterval::parse(text).unwrap();
        let periods = Periods::Fixed {
            fixed,
            key: KeyType::TimestampTz,
            zone,
        };
        let date = NaiveDate::from_ymd_opt(day.0, day.1, day.2).unwrap();
        let mut start = calendar::key_value(KeyType::TimestampTz, date, zone).unwrap();
        let end =
            calendar::key_value(KeyType::TimestampTz, date.succ_opt().unwrap(), zone).unwrap();
        let mut bounds = vec![periods.literal(start)];
        while start < end {
            assert_eq!(periods.holding(start), Some(start), "a start holds itself");
            start = periods.next(start).unwrap();
            bounds.push(periods.literal(start));
        }
        bounds
    }

    #[test]
    fn two_hour_periods_on_a_23_hour_day_make_one_period_of_one_hour() {
        // Berlin skips 02:00-03:00 on 29 March 2026: the 02:00 period starts
        // at 03:00 and lasts an hour; every other period lasts two.
        let bounds = day_of_periods("2 hours", (2026, 3, 29));
        assert_eq!(
            bounds,
            [
                "'2026-03-29 00:00:00+01'",
                "'2026-03-29 03:00:00+02'",
                "'2026-03-29 04:00:00+02'",
                "'2026-03-29 06:00:00+02'",
                "'2026-03-29 08:00:00+02'",
                "'2026-03-29 10:00:00+02'",
                "'2026-03-29 12:00:00+02'",
                "'2026-03-29 14:00:00+02'",
                "'2026-03-29 16:00:00+02'",
                "'2026-03-29 18:00:00+02'",
                "'2026-03-29 20:00:00+02'",
                "'2026-03-29 22:00:00+02'",
                "'2026-03-30 00:00:00+02'",
            ]
        );
    }

    #[test]
    fn two_hour_periods_on_a_25_hour_day_make_one_period_of_three_hours() {
        // Berlin repeats 02:00-03:00 on 25 October 2026: the 02:00 period
        // starts at the first 02:00 and runs to 04:00, three hours.
        let bounds = day_of_periods("2 hours", (2026, 10, 25));
        assert_eq!(
            &bounds[..4],
            [
                "'2026-10-25 00:00:00+02'",
                "'2026-10-25 02:00:00+02'",
                "'2026-10-25 04:00:00+01'",
                "'2026-10-25 06:00:00+01'",
            ]
        );
        assert_eq!(
            bounds.len(),
            13,
            "twelve periods, named 00 to 22: {bounds:?}"
        );
        let hourly = day_of_periods("hourly", (2026, 10, 25));
        assert_eq!(hourly.len(), 25, "24 periods, the 02:00 one two hours long");
        assert_eq!(
            hourly[2..4],
            ["'2026-10-25 02:00:00+02'", "'2026-10-25 03:00:00+01'"]
        );
    }

    #[test]
    fn what_has_no_date_gets_no_value_name_or_guess() {
        use crate::partition::calendar::IntegerType;
        let id = KeyType::Id(IntegerType::Bigint);
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        assert_eq!(calendar::key_now(id, now, Tz::UTC), None);
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(calendar::key_value(id, day, Tz::UTC), None);
        assert_eq!(calendar::literal(id, day, Tz::UTC), None);
        let policy = crate::partition::policy::parse(
            std::path::Path::new("p.toml"),
            "[[table]]\nname = \"public.t\"\ninterval = \"hourly\"\n",
        )
        .unwrap();
        let table = &policy.tables[0];
        // Past chrono's last day: no local date, so no name (not one after
        // chrono's first day).
        for periods in [
            Periods::Fixed {
                fixed: FixedInterval::parse("hourly").unwrap(),
                key: KeyType::TimestampTz,
                zone: Tz::UTC,
            },
            Periods::Calendar {
                interval: calendar::Interval::Monthly,
                key: KeyType::TimestampTz,
                zone: Tz::UTC,
            },
        ] {
            assert_eq!(periods.name(table, KeyValue::MAX), None, "{periods:?}");
        }
    }

    #[test]
    fn multi_day_periods_count_from_a_monday() {
        let periods = Periods::Fixed {
            fixed: FixedInterval::parse("2 weeks").unwrap(),
            key: KeyType::Date,
            zone: Tz::UTC,
        };
        let day = |y, m, d| {
            calendar::key_value(
                KeyType::Date,
                NaiveDate::from_ymd_opt(y, m, d).unwrap(),
                Tz::UTC,
            )
            .unwrap()
        };
        let start = periods.holding(day(2026, 11, 22)).unwrap();
        assert_eq!(periods.literal(start), "'2026-11-16'");
        assert_eq!(periods.next(start), Some(day(2026, 11, 30)));
        assert_eq!(
            NaiveDate::from_ymd_opt(2026, 11, 16).unwrap().weekday(),
            chrono::Weekday::Mon
        );
    }
}
