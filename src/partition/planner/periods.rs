//! A table's partitions as ranges of its key space, each known by the key
//! value it starts at: calendar periods of the policy's zone, or ranges of
//! a fixed number of IDs.

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;

use crate::partition::calendar::{self, IntegerType, Interval, KeyType, KeyValue};
use crate::partition::policy::TablePolicy;

#[derive(Debug, Clone, Copy)]
pub enum Periods {
    Calendar {
        interval: Interval,
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
        match *self {
            Periods::Calendar {
                interval,
                key,
                zone,
            } => {
                let date = interval.checked_floor(key_to_date(key, value, zone)?)?;
                Some(calendar::key_value(key, date, zone))
            }
            Periods::Ids { step, integer } => {
                let start = value.div_euclid(step).checked_mul(step)?;
                (start >= integer.min()).then_some(start)
            }
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
                Some(calendar::key_value(key, next, zone))
            }
            Periods::Ids { step, integer } => {
                let next = start.checked_add(step)?;
                (next <= integer.max()).then_some(next)
            }
        }
    }

    /// The start of [lo, hi) when it is exactly one period.
    pub fn aligned(&self, lo: KeyValue, hi: KeyValue) -> Option<KeyValue> {
        if lo == KeyValue::MIN || hi == KeyValue::MAX {
            return None;
        }
        (self.holding(lo) == Some(lo) && self.next(lo) == Some(hi)).then_some(lo)
    }

    /// A bound as SQL writes it in `FOR VALUES FROM (…) TO (…)`.
    pub fn literal(&self, value: KeyValue) -> String {
        match *self {
            Periods::Calendar { key, zone, .. } => match key_to_date(key, value, zone) {
                Some(date) => calendar::literal(key, date, zone),
                None => value.to_string(),
            },
            Periods::Ids { .. } => value.to_string(),
        }
    }

    /// The period's start as plans, reasons and markers show it: the first
    /// day ("2026-11-01") or the first ID.
    pub fn label(&self, start: KeyValue) -> String {
        match *self {
            Periods::Calendar { key, zone, .. } => key_to_date(key, start, zone)
                .map_or_else(|| start.to_string(), |d| d.format("%Y-%m-%d").to_string()),
            Periods::Ids { .. } => start.to_string(),
        }
    }

    /// The name of the partition of the period starting at `start`.
    pub fn name(&self, table: &TablePolicy, start: KeyValue) -> String {
        match *self {
            Periods::Calendar { key, zone, .. } => {
                table.partition_name(key_to_date(key, start, zone).unwrap_or(NaiveDate::MIN))
            }
            Periods::Ids { integer, .. } => table.id_partition_name(start, integer.digits()),
        }
    }

    /// What one period is, for messages: "monthly period".
    pub fn kind(&self) -> String {
        match self {
            Periods::Calendar { interval, .. } => format!("{interval} period"),
            Periods::Ids { step, .. } => format!("range of {step} IDs"),
        }
    }

    /// What one period is, with its zone: "monthly period in UTC".
    pub fn describe(&self) -> String {
        match self {
            Periods::Calendar { zone, .. } => format!("{} in {zone}", self.kind()),
            Periods::Ids { .. } => self.kind(),
        }
    }
}

/// The local date a bound in key space falls on.
pub fn key_to_date(key: KeyType, value: KeyValue, zone: Tz) -> Option<NaiveDate> {
    Some(match key {
        KeyType::TimestampTz => {
            calendar::checked_local_date(DateTime::from_timestamp_micros(value)?, zone)?
        }
        KeyType::Timestamp => DateTime::from_timestamp_micros(value)?.naive_utc().date(),
        KeyType::Date => NaiveDate::from_num_days_from_ce_opt(i32::try_from(value).ok()?)?,
        KeyType::Epoch(unit) => calendar::checked_local_date(
            DateTime::from_timestamp_micros(unit.checked_to_micros(value)?)?,
            zone,
        )?,
        KeyType::Id(_) => return None,
    })
}

/// The largest key value as the catalog read it (a numeric key may hold
/// fractions: the whole number at or below it).
pub fn parse_max_key(text: &str) -> Option<KeyValue> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole: KeyValue = whole.parse().ok()?;
    let has_fraction = fraction.bytes().any(|b| b != b'0');
    if has_fraction && text.starts_with('-') {
        whole.checked_sub(1)
    } else {
        Some(whole)
    }
}
