//! Partition boundaries: periods aligned to the calendar of a time zone
//! (months on the 1st, quarters in Jan/Apr/Jul/Oct, ISO weeks on Monday),
//! and their values in the partition key's type.
//!
//! Bounds are compared as integers in a per-type key space: microseconds
//! since the epoch for `timestamptz` (an instant) and `timestamp` (a wall
//! clock reading), days for `date`, and the value itself for an integer key
//! (an ID, or a time since the epoch in the unit the policy names).

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl Interval {
    pub const NAMES: &[&str] = &["daily", "weekly", "monthly", "quarterly", "yearly"];

    pub fn parse(text: &str) -> Option<Interval> {
        Some(match text {
            "daily" => Interval::Daily,
            "weekly" => Interval::Weekly,
            "monthly" => Interval::Monthly,
            "quarterly" => Interval::Quarterly,
            "yearly" => Interval::Yearly,
            _ => return None,
        })
    }

    /// The first day of the period holding `date`; chrono's first day when
    /// that period starts before it.
    pub fn floor(self, date: NaiveDate) -> NaiveDate {
        self.checked_floor(date).unwrap_or(NaiveDate::MIN)
    }

    /// The first day of the period holding `date`, when chrono can represent it.
    pub fn checked_floor(self, date: NaiveDate) -> Option<NaiveDate> {
        match self {
            Interval::Daily => Some(date),
            Interval::Weekly => {
                date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
            }
            Interval::Monthly => date.with_day(1),
            Interval::Quarterly => {
                NaiveDate::from_ymd_opt(date.year(), (date.month0() / 3) * 3 + 1, 1)
            }
            Interval::Yearly => NaiveDate::from_ymd_opt(date.year(), 1, 1),
        }
    }

    /// The first day of the next period, given the first day of one;
    /// chrono's last day when the next period starts after it. Plans never
    /// get that far (see `TablePolicy::check_plannable`); code that must tell
    /// uses `checked_next`.
    pub fn next(self, start: NaiveDate) -> NaiveDate {
        self.checked_next(start).unwrap_or(NaiveDate::MAX)
    }

    pub fn checked_next(self, start: NaiveDate) -> Option<NaiveDate> {
        self.checked_advance(start, 1)
    }

    /// The first day of the previous period; chrono's first day when that
    /// period starts before it.
    pub fn previous(self, start: NaiveDate) -> NaiveDate {
        self.checked_previous(start).unwrap_or(NaiveDate::MIN)
    }

    pub fn checked_previous(self, start: NaiveDate) -> Option<NaiveDate> {
        match self {
            Interval::Daily | Interval::Weekly => {
                start.checked_sub_days(Days::new(self.days_per_period()?))
            }
            _ => start.checked_sub_months(Months::new(self.months_per_period()?)),
        }
    }

    /// The first day of the period `periods` after the one starting on
    /// `start`, in one step (a loop over a huge count would never end).
    pub fn checked_advance(self, start: NaiveDate, periods: u32) -> Option<NaiveDate> {
        match self {
            Interval::Daily | Interval::Weekly => start.checked_add_days(Days::new(
                self.days_per_period()?.checked_mul(u64::from(periods))?,
            )),
            _ => start
                .checked_add_months(Months::new(self.months_per_period()?.checked_mul(periods)?)),
        }
    }

    fn days_per_period(self) -> Option<u64> {
        match self {
            Interval::Daily => Some(1),
            Interval::Weekly => Some(7),
            _ => None,
        }
    }

    fn months_per_period(self) -> Option<u32> {
        match self {
            Interval::Monthly => Some(1),
            Interval::Quarterly => Some(3),
            Interval::Yearly => Some(12),
            _ => None,
        }
    }

    /// Roughly how many days a period has, to compare with a retention.
    pub fn approximate_days(self) -> i64 {
        match self {
            Interval::Daily => 1,
            Interval::Weekly => 7,
            Interval::Monthly => 28,
            Interval::Quarterly => 90,
            Interval::Yearly => 365,
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Interval::NAMES[*self as usize])
    }
}

/// A fixed interval: a whole divisor of a day (at least 15 minutes) whose
/// periods start at local midnight and every `minutes` after, or a whole
/// number of days counted from `FIXED_ANCHOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FixedInterval {
    pub minutes: u32,
}

/// The first period of multi-day intervals: a Monday, so that "N weeks"
/// periods start on Mondays like ISO weeks.
pub const FIXED_ANCHOR: NaiveDate = NaiveDate::from_ymd_opt(2000, 1, 3).expect("a valid date");
/// Shorter periods make more partitions than PostgreSQL plans well.
pub const MIN_FIXED_MINUTES: u32 = 15;
const MINUTES_PER_DAY: u32 = 24 * 60;
/// The longest fixed interval: about ten years of days.
pub const MAX_FIXED_DAYS: u32 = 3660;

impl FixedInterval {
    /// "hourly", or "N minutes|hours|days|weeks" (singular or plural).
    pub fn parse(text: &str) -> Result<FixedInterval, String> {
        if text == "hourly" {
            return Ok(FixedInterval { minutes: 60 });
        }
        let mut words = text.split_whitespace();
        let (Some(number), Some(unit), None) = (words.next(), words.next(), words.next()) else {
            return Err(String::new());
        };
        let per_unit: u64 = match unit.trim_end_matches('s') {
            "minute" => 1,
            "hour" => 60,
            "day" => u64::from(MINUTES_PER_DAY),
            "week" => 7 * u64::from(MINUTES_PER_DAY),
            _ => return Err(String::new()),
        };
        let count: u64 = number
            .parse()
            .map_err(|_| format!("interval \"{text}\" needs a whole number above 0"))?;
        let minutes = count.saturating_mul(per_unit);
        Self::check(text, minutes).map(|minutes| FixedInterval { minutes })
    }

    fn check(text: &str, minutes: u64) -> Result<u32, String> {
        let day = u64::from(MINUTES_PER_DAY);
        if minutes < u64::from(MIN_FIXED_MINUTES) {
            return Err(format!(
                "interval \"{text}\" is shorter than {MIN_FIXED_MINUTES} minutes: that many partitions \
                 slow every query planned on the table; use 15 minutes or more"
            ));
        }
        if minutes > u64::from(MAX_FIXED_DAYS) * day {
            return Err(format!(
                "interval \"{text}\" is over {MAX_FIXED_DAYS} days: use \"yearly\""
            ));
        }
        if minutes < day && !day.is_multiple_of(minutes)
            || minutes > day && !minutes.is_multiple_of(day)
        {
            return Err(format!(
                "interval \"{text}\" neither divides a day nor is whole days: periods start at local \
                 midnight, so use a divisor of 24 hours (like \"2 hours\" or \"30 minutes\") or whole days"
            ));
        }
        Ok(u32::try_from(minutes).expect("at most MAX_FIXED_DAYS days"))
    }

    /// Whether periods are shorter than a day.
    pub fn is_sub_day(self) -> bool {
        self.minutes < MINUTES_PER_DAY
    }

    /// Whole days of a period (0 below a day).
    pub fn days(self) -> u32 {
        self.minutes / MINUTES_PER_DAY
    }

    /// The local start of the period holding a local reading.
    pub fn floor(self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        if self.is_sub_day() {
            let minute = local.time().num_seconds_from_midnight() / 60;
            let start = minute - minute % self.minutes;
            let time = NaiveTime::from_num_seconds_from_midnight_opt(start * 60, 0)?;
            return Some(local.date().and_time(time));
        }
        let days = i64::from(self.days());
        let offset = local.date().signed_duration_since(FIXED_ANCHOR).num_days();
        let start = FIXED_ANCHOR
            .checked_add_signed(chrono::Duration::days(offset.div_euclid(days) * days))?;
        Some(start.and_time(NaiveTime::MIN))
    }

    /// The local start of the period after the one starting at `start`.
    pub fn next(self, start: NaiveDateTime) -> Option<NaiveDateTime> {
        start.checked_add_signed(chrono::Duration::minutes(i64::from(self.minutes)))
    }

    /// Roughly how many days a period has, to compare with a retention.
    pub fn approximate_days(self) -> i64 {
        i64::from(self.days())
    }
}

impl fmt::Display for FixedInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.minutes;
        let (count, unit) = match m {
            60 => return f.write_str("hourly"),
            _ if m.is_multiple_of(7 * MINUTES_PER_DAY) => (m / (7 * MINUTES_PER_DAY), "week"),
            _ if m.is_multiple_of(MINUTES_PER_DAY) => (m / MINUTES_PER_DAY, "day"),
            _ if m.is_multiple_of(60) => (m / 60, "hour"),
            _ => (m, "minute"),
        };
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "{count} {unit}{plural}")
    }
}

/// The instant a local reading names in `zone`: the first of two where
/// clocks went back, the first instant after the gap where they jumped
/// forward (as PostgreSQL reads a skipped time: 02:30 on a spring-forward
/// night is 03:30).
pub fn local_instant(local: NaiveDateTime, zone: Tz) -> Option<DateTime<Tz>> {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(instant) => Some(instant),
        chrono::LocalResult::Ambiguous(first, _) => Some(first),
        chrono::LocalResult::None => {
            // In a gap: the offset before it, read forward (02:30 +01 = 03:30 +02).
            let before = zone
                .offset_from_utc_datetime(&local.checked_sub_signed(chrono::Duration::hours(25))?);
            let utc = local.checked_sub_offset(before.fix())?;
            Some(zone.from_utc_datetime(&utc))
        }
    }
}

/// The unit of an integer key holding a time since the epoch
/// (pg_partman's `p_epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochUnit {
    Seconds,
    Milliseconds,
    Microseconds,
}

impl EpochUnit {
    pub const NAMES: &[&str] = &["seconds", "milliseconds", "microseconds"];

    pub fn parse(text: &str) -> Option<EpochUnit> {
        Some(match text {
            "seconds" => EpochUnit::Seconds,
            "milliseconds" => EpochUnit::Milliseconds,
            "microseconds" => EpochUnit::Microseconds,
            _ => return None,
        })
    }

    /// Units of this kind in one second.
    pub fn per_second(self) -> i64 {
        match self {
            EpochUnit::Seconds => 1,
            EpochUnit::Milliseconds => 1_000,
            EpochUnit::Microseconds => 1_000_000,
        }
    }

    /// An instant as a count of this unit, when it fits.
    pub fn checked_from_micros(self, micros: i64) -> Option<i64> {
        Some(micros.div_euclid(1_000_000 / self.per_second()))
    }

    /// A count of this unit as microseconds since the epoch.
    pub fn checked_to_micros(self, value: i64) -> Option<i64> {
        value.checked_mul(1_000_000 / self.per_second())
    }
}

impl fmt::Display for EpochUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EpochUnit::NAMES[*self as usize])
    }
}

/// The integer types a key can have, by the width of their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegerType {
    Smallint,
    Integer,
    Bigint,
    /// `numeric(p, s)` holds `p - s` digits before the point (`numeric`
    /// without a precision: as many as bigint); values beyond bigint's
    /// range are outside what pgm plans.
    Numeric {
        whole_digits: u8,
    },
}

/// Digits of bigint's largest value.
const BIGINT_DIGITS: u8 = 19;

impl IntegerType {
    /// `numeric` without a precision.
    pub const NUMERIC: IntegerType = IntegerType::Numeric {
        whole_digits: BIGINT_DIGITS,
    };

    /// The largest value a bound may have.
    pub fn max(self) -> i64 {
        match self {
            IntegerType::Smallint => i64::from(i16::MAX),
            IntegerType::Integer => i64::from(i32::MAX),
            IntegerType::Numeric { whole_digits } if whole_digits < BIGINT_DIGITS => {
                10i64.pow(u32::from(whole_digits)) - 1
            }
            IntegerType::Bigint | IntegerType::Numeric { .. } => i64::MAX,
        }
    }

    /// The smallest value a bound may have.
    pub fn min(self) -> i64 {
        match self {
            IntegerType::Smallint => i64::from(i16::MIN),
            IntegerType::Integer => i64::from(i32::MIN),
            IntegerType::Numeric { whole_digits } if whole_digits < BIGINT_DIGITS => -self.max(),
            IntegerType::Bigint | IntegerType::Numeric { .. } => i64::MIN,
        }
    }

    /// `numeric`, `numeric(p)` or `numeric(p,s)` as `format_type` prints it.
    fn parse_numeric(name: &str) -> Option<IntegerType> {
        if name == "numeric" {
            return Some(IntegerType::NUMERIC);
        }
        let inside = name.strip_prefix("numeric(")?.strip_suffix(')')?;
        let (precision, scale) = inside.split_once(',').unwrap_or((inside, "0"));
        let precision: i32 = precision.trim().parse().ok()?;
        let scale: i32 = scale.trim().parse().ok()?;
        let whole = precision
            .saturating_sub(scale)
            .clamp(0, i32::from(BIGINT_DIGITS));
        Some(IntegerType::Numeric {
            whole_digits: u8::try_from(whole).ok()?,
        })
    }

    /// Digits of the largest value: partition names pad to this, so that
    /// they sort as their ranges do.
    pub fn digits(self) -> usize {
        self.max().to_string().len()
    }
}

/// The type of the key column as PostgreSQL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlKey {
    TimestampTz,
    Timestamp,
    Date,
    Integer(IntegerType),
}

impl SqlKey {
    /// From `format_type` of the key column.
    pub fn from_sql_type(name: &str) -> Option<SqlKey> {
        Some(match name {
            "timestamp with time zone" => SqlKey::TimestampTz,
            "timestamp without time zone" => SqlKey::Timestamp,
            "date" => SqlKey::Date,
            "smallint" => SqlKey::Integer(IntegerType::Smallint),
            "integer" => SqlKey::Integer(IntegerType::Integer),
            "bigint" => SqlKey::Integer(IntegerType::Bigint),
            _ if name.starts_with("numeric") => SqlKey::Integer(IntegerType::parse_numeric(name)?),
            _ => return None,
        })
    }
}

/// The partition key as pgm reads it: the column's type and, for an
/// integer, what the policy says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    TimestampTz,
    Timestamp,
    Date,
    /// An integer holding a time since the epoch in this unit.
    /// The integer type bounds must fit (milliseconds overflow an `integer`).
    Epoch(EpochUnit, IntegerType),
    /// An integer identifier, cut into fixed steps.
    Id(IntegerType),
}

/// A bound in key space; `MIN`/`MAX` stand for MINVALUE/MAXVALUE.
pub type KeyValue = i64;

/// The first day of a partition bound pgm writes: PostgreSQL reads the
/// literals pgm writes (ISO dates without an era) as meant only from year 1,
/// and `{YYYY}` in partition names keeps its four digits only up to 9999.
pub const FIRST_BOUND_DAY: NaiveDate = NaiveDate::from_ymd_opt(1, 1, 1).expect("a valid date");
/// The last day of a partition bound pgm writes (see `FIRST_BOUND_DAY`).
pub const LAST_BOUND_DAY: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date");

/// The instant a local calendar day starts in `zone`. Where midnight does not
/// exist (a DST jump at midnight) the day starts at the first instant that
/// does; where it happens twice, at the first.
pub fn start_of_day(date: NaiveDate, zone: Tz) -> DateTime<Tz> {
    let midnight = date.and_time(NaiveTime::MIN);
    let mut local = midnight;
    for _ in 0..48 {
        if let Some(instant) = zone.from_local_datetime(&local).earliest() {
            return instant;
        }
        match local.checked_add_signed(chrono::Duration::minutes(30)) {
            Some(later) => local = later,
            // Only at the very end of chrono's calendar.
            None => break,
        }
    }
    // No zone skips a whole day at midnight for longer than the loop covers,
    // save Samoa's skipped 2011-12-30: then the day starts with the next one.
    zone.from_utc_datetime(&local)
}

/// The bound of a period starting on `date`, in key space; `None` for an
/// ID key, whose ranges are not days (answering would be a guess).
pub fn key_value(key: KeyType, date: NaiveDate, zone: Tz) -> Option<KeyValue> {
    Some(match key {
        KeyType::TimestampTz => start_of_day(date, zone).timestamp_micros(),
        KeyType::Timestamp => date.and_time(NaiveTime::MIN).and_utc().timestamp_micros(),
        KeyType::Date => i64::from(date.num_days_from_ce()),
        KeyType::Epoch(unit, _) => epoch_value(unit, start_of_day(date, zone).timestamp_micros()),
        KeyType::Id(_) => return None,
    })
}

/// An instant as an epoch count, held at the ends of i64.
fn epoch_value(unit: EpochUnit, micros: i64) -> KeyValue {
    unit.checked_from_micros(micros).unwrap_or(if micros < 0 {
        KeyValue::MIN
    } else {
        KeyValue::MAX
    })
}

/// The SQL literal of a bound, as written in `FOR VALUES FROM (…) TO (…)`:
/// with an explicit offset for `timestamptz` (written the way PostgreSQL
/// prints it, so plans and status read alike), naive for `timestamp`, a plain
/// date, or a number.
/// `None` for an ID key (see `key_value`).
pub fn literal(key: KeyType, date: NaiveDate, zone: Tz) -> Option<String> {
    Some(match key {
        KeyType::TimestampTz => timestamptz_literal(start_of_day(date, zone)),
        KeyType::Timestamp => format!("'{}'", date.format("%Y-%m-%d 00:00:00")),
        KeyType::Date => format!("'{}'", date.format("%Y-%m-%d")),
        KeyType::Epoch(..) | KeyType::Id(_) => key_value(key, date, zone)?.to_string(),
    })
}

/// A `timestamptz` literal with the zone's offset, as PostgreSQL prints
/// offsets: "+00", "-05", "+05:30".
pub fn timestamptz_literal(instant: DateTime<Tz>) -> String {
    let offset = instant.format("%:z").to_string();
    let offset = offset.strip_suffix(":00").unwrap_or(&offset);
    format!("'{}{offset}'", instant.format("%Y-%m-%d %H:%M:%S"))
}

/// A bound as PostgreSQL prints it in `pg_get_expr(relpartbound)` (with the
/// session in UTC and ISO dates), in key space.
pub fn parse_bound(key: KeyType, text: &str) -> Option<KeyValue> {
    let text = text.trim();
    match text {
        "MINVALUE" => return Some(KeyValue::MIN),
        "MAXVALUE" => return Some(KeyValue::MAX),
        _ => {}
    }
    let unquoted = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(text);
    match key {
        KeyType::TimestampTz => {
            // "2026-01-01 00:00:00+00", possibly with fractions or "+05:30".
            let with_minutes = match unquoted.rfind(['+', '-']) {
                Some(at) if unquoted[at..].len() == 3 => format!("{unquoted}:00"),
                _ => unquoted.to_owned(),
            };
            DateTime::parse_from_str(&with_minutes, "%Y-%m-%d %H:%M:%S%.f%:z")
                .ok()
                .map(|t| t.timestamp_micros())
        }
        KeyType::Timestamp => NaiveDateTime::parse_from_str(unquoted, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc().timestamp_micros()),
        KeyType::Date => NaiveDate::parse_from_str(unquoted, "%Y-%m-%d")
            .ok()
            .map(|d| i64::from(d.num_days_from_ce())),
        KeyType::Epoch(..) | KeyType::Id(_) => parse_integer(unquoted),
    }
}

/// An integer bound; a numeric key may print it with a zero fraction.
fn parse_integer(text: &str) -> Option<KeyValue> {
    match floor_integer(text)? {
        (value, true) => KeyValue::try_from(value).ok(),
        (_, false) => None,
    }
}

/// An integer as PostgreSQL prints it, a numeric possibly with a fraction:
/// the whole number at or below it (wider than bigint, for numeric), and
/// whether it was whole. The one reading of integer text bounds, the
/// largest key and the catalog's ordering of partitions share.
pub fn floor_integer(text: &str) -> Option<(i128, bool)> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i128 = whole.parse().ok()?;
    let exact = fraction.bytes().all(|b| b == b'0');
    // Truncation went toward zero: a negative fraction floors one lower.
    let floor = if !exact && text.starts_with('-') {
        whole.checked_sub(1)?
    } else {
        whole
    };
    Some((floor, exact))
}

/// The local wall-clock reading of an instant in `zone`, when chrono can
/// represent it (within a day of the ends of its calendar it may not).
pub fn checked_local_time(now: DateTime<Utc>, zone: Tz) -> Option<NaiveDateTime> {
    let offset = zone.offset_from_utc_datetime(&now.naive_utc()).fix();
    now.naive_utc().checked_add_offset(offset)
}

/// The local wall-clock reading of an instant in `zone`, held at chrono's
/// first or last instant where it cannot be represented.
fn local_time(now: DateTime<Utc>, zone: Tz) -> NaiveDateTime {
    checked_local_time(now, zone).unwrap_or(if now.year() < 0 {
        NaiveDateTime::MIN
    } else {
        NaiveDateTime::MAX
    })
}

/// The local calendar date of an instant in `zone`, when chrono can represent it.
pub fn checked_local_date(now: DateTime<Utc>, zone: Tz) -> Option<NaiveDate> {
    checked_local_time(now, zone).map(|local| local.date())
}

/// The local calendar date of an instant in `zone` (chrono's first or last
/// day where it cannot be represented).
pub fn local_date(now: DateTime<Utc>, zone: Tz) -> NaiveDate {
    local_time(now, zone).date()
}

/// "now" in key space, to compare with bounds; `None` for an ID key, which
/// counts from its largest value, not the clock (see
/// `planner::reference_point`).
pub fn key_now(key: KeyType, now: DateTime<Utc>, zone: Tz) -> Option<KeyValue> {
    Some(match key {
        KeyType::TimestampTz => now.timestamp_micros(),
        KeyType::Timestamp => local_time(now, zone).and_utc().timestamp_micros(),
        KeyType::Date => i64::from(local_date(now, zone).num_days_from_ce()),
        KeyType::Epoch(unit, _) => epoch_value(unit, now.timestamp_micros()),
        KeyType::Id(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn periods_are_aligned() {
        assert_eq!(
            Interval::Monthly.floor(date(2026, 11, 22)),
            date(2026, 11, 1)
        );
        assert_eq!(
            Interval::Quarterly.floor(date(2026, 11, 22)),
            date(2026, 10, 1)
        );
        assert_eq!(
            Interval::Quarterly.floor(date(2026, 3, 31)),
            date(2026, 1, 1)
        );
        assert_eq!(
            Interval::Weekly.floor(date(2026, 11, 22)),
            date(2026, 11, 16),
            "a Sunday belongs to the week of the Monday before"
        );
        assert_eq!(Interval::Yearly.floor(date(2026, 11, 22)), date(2026, 1, 1));
        assert_eq!(Interval::Monthly.next(date(2026, 12, 1)), date(2027, 1, 1));
        assert_eq!(
            Interval::Quarterly.next(date(2026, 10, 1)),
            date(2027, 1, 1)
        );
        assert_eq!(
            Interval::Quarterly.previous(date(2026, 1, 1)),
            date(2025, 10, 1)
        );
    }

    #[test]
    fn integer_text_is_read_one_way_flooring_fractions() {
        assert_eq!(floor_integer("42"), Some((42, true)));
        assert_eq!(floor_integer("1000.000"), Some((1000, true)));
        assert_eq!(floor_integer("10.5"), Some((10, false)));
        assert_eq!(floor_integer("-10.5"), Some((-11, false)));
        assert_eq!(floor_integer("-0.5"), Some((-1, false)));
        assert_eq!(
            floor_integer("100000000000000000042"),
            Some((100_000_000_000_000_000_042, true))
        );
        assert_eq!(floor_integer("1e5"), None);
        assert_eq!(parse_integer("10.5"), None, "a bound is whole");
        assert_eq!(
            parse_integer("100000000000000000042"),
            None,
            "beyond bigint"
        );
    }

    #[test]
    fn fixed_intervals_display_as_written_singular_for_one() {
        for (text, shown) in [
            ("1 day", "1 day"),
            ("1 week", "1 week"),
            ("2 weeks", "2 weeks"),
            ("14 days", "2 weeks"),
            ("3 days", "3 days"),
            ("2 hours", "2 hours"),
            ("60 minutes", "hourly"),
            ("15 minutes", "15 minutes"),
        ] {
            assert_eq!(FixedInterval::parse(text).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn timestamptz_literals_carry_the_zone_offset_across_dst() {
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            literal(KeyType::TimestampTz, date(2026, 11, 1), ny).unwrap(),
            "'2026-11-01 00:00:00-04'"
        );
        assert_eq!(
            literal(KeyType::TimestampTz, date(2026, 12, 1), ny).unwrap(),
            "'2026-12-01 00:00:00-05'"
        );
        let lord_howe: Tz = "Australia/Lord_Howe".parse().unwrap();
        assert_eq!(
            literal(KeyType::TimestampTz, date(2026, 10, 1), lord_howe).unwrap(),
            "'2026-10-01 00:00:00+10:30'"
        );
        assert_eq!(
            literal(KeyType::TimestampTz, date(2026, 11, 1), lord_howe).unwrap(),
            "'2026-11-01 00:00:00+11'"
        );
        assert_eq!(
            literal(KeyType::Timestamp, date(2026, 11, 1), ny).unwrap(),
            "'2026-11-01 00:00:00'"
        );
        assert_eq!(
            literal(KeyType::Date, date(2026, 11, 1), ny).unwrap(),
            "'2026-11-01'"
        );
        assert_eq!(
            literal(
                KeyType::Epoch(EpochUnit::Seconds, IntegerType::Bigint),
                date(2026, 11, 1),
                Tz::UTC
            )
            .unwrap(),
            "1793491200"
        );
    }

    #[test]
    fn a_missing_midnight_starts_the_day_at_the_first_real_instant() {
        // Santiago skips from 00:00 to 01:00 on the first Sunday of September 2026.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let start = start_of_day(date(2026, 9, 6), santiago);
        assert_eq!(start.format("%H:%M %:z").to_string(), "01:00 -03:00");
    }

    #[test]
    fn bounds_printed_by_postgresql_parse_back() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let value = key_value(KeyType::TimestampTz, date(2026, 11, 1), ny).unwrap();
        assert_eq!(
            parse_bound(KeyType::TimestampTz, "'2026-11-01 04:00:00+00'"),
            Some(value)
        );
        assert_eq!(
            parse_bound(KeyType::TimestampTz, "'2026-11-01 09:30:00+05:30'"),
            Some(value)
        );
        assert_eq!(
            parse_bound(KeyType::Timestamp, "'2026-11-01 00:00:00'"),
            Some(key_value(KeyType::Timestamp, date(2026, 11, 1), ny).unwrap())
        );
        assert_eq!(
            parse_bound(KeyType::Date, "'2026-11-01'"),
            Some(key_value(KeyType::Date, date(2026, 11, 1), ny).unwrap())
        );
        assert_eq!(
            parse_bound(
                KeyType::Epoch(EpochUnit::Seconds, IntegerType::Bigint),
                "1793491200"
            ),
            Some(1_793_491_200)
        );
        assert_eq!(parse_bound(KeyType::Date, "MINVALUE"), Some(i64::MIN));
        assert_eq!(parse_bound(KeyType::Date, "'yesterday'"), None);
    }

    #[test]
    fn arithmetic_at_the_ends_of_the_calendar_is_checked() {
        for interval in [
            Interval::Daily,
            Interval::Weekly,
            Interval::Monthly,
            Interval::Quarterly,
            Interval::Yearly,
        ] {
            let last = interval.floor(NaiveDate::MAX);
            assert_eq!(interval.checked_next(last), None, "{interval}");
            assert_eq!(interval.next(last), NaiveDate::MAX, "{interval}");
            assert_eq!(
                interval.checked_previous(NaiveDate::MIN),
                None,
                "{interval}"
            );
            assert_eq!(
                interval.previous(NaiveDate::MIN),
                NaiveDate::MIN,
                "{interval}"
            );
            assert_eq!(interval.checked_advance(date(2026, 1, 1), u32::MAX), None);
        }
        assert_eq!(
            Interval::Monthly.checked_advance(date(2026, 11, 1), 14),
            Some(date(2028, 1, 1))
        );
        assert_eq!(Interval::Weekly.floor(NaiveDate::MIN), NaiveDate::MIN);
    }

    #[test]
    fn instants_at_the_ends_of_the_calendar_do_not_crash() {
        let ahead: Tz = "Pacific/Kiritimati".parse().unwrap();
        // Before standard time, zones keep their local mean time: New York's is behind UTC.
        let behind: Tz = "America/New_York".parse().unwrap();
        for zone in [ahead, behind, Tz::UTC] {
            for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                let _ = local_date(now, zone);
                for key in [
                    KeyType::TimestampTz,
                    KeyType::Timestamp,
                    KeyType::Date,
                    KeyType::Epoch(EpochUnit::Seconds, IntegerType::Bigint),
                    KeyType::Epoch(EpochUnit::Microseconds, IntegerType::Bigint),
                ] {
                    let _ = key_now(key, now, zone);
                }
            }
            for day in [NaiveDate::MIN, NaiveDate::MAX] {
                let _ = literal(KeyType::TimestampTz, day, zone);
                let _ = key_value(
                    KeyType::Epoch(EpochUnit::Seconds, IntegerType::Bigint),
                    day,
                    zone,
                );
            }
        }
        assert_eq!(checked_local_date(DateTime::<Utc>::MAX_UTC, ahead), None);
        assert_eq!(local_date(DateTime::<Utc>::MAX_UTC, ahead), NaiveDate::MAX);
        assert_eq!(checked_local_date(DateTime::<Utc>::MIN_UTC, behind), None);
        assert_eq!(local_date(DateTime::<Utc>::MIN_UTC, behind), NaiveDate::MIN);
    }
}
