//! Durations as operators write them ("2s", "500ms", "5min", "1h"), and as
//! PostgreSQL settings accept them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout(pub Duration);

/// PostgreSQL keeps timeout settings as a 32-bit count of milliseconds
/// (about 24.8 days); a longer one would only fail once sent.
pub const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

impl Timeout {
    pub fn from_millis(ms: u64) -> Self {
        Timeout(Duration::from_millis(ms))
    }

    /// The value for `SET lock_timeout = '…'`: PostgreSQL takes the same
    /// units; zero means no timeout.
    pub fn setting(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => f.write_str("0"),
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}min", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let too_long = || {
            format!(
                "\"{text}\" is longer than PostgreSQL takes for a timeout: at most {MAX_TIMEOUT_MS}ms (about 24 days)"
            )
        };
        if number.is_empty() {
            return Err(format!(
                "\"{text}\" is not a duration: write a whole number and a unit, like 2s, 500ms, 5min or 1h"
            ));
        }
        let ms_per_unit = match unit.trim() {
            "ms" => 1,
            "" if number.bytes().all(|b| b == b'0') => 1,
            "s" | "sec" | "secs" | "seconds" => 1000,
            "m" | "min" | "mins" | "minutes" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            other => {
                return Err(format!(
                    "\"{other}\" is not a duration unit: use ms, s, min or h"
                ));
            }
        };
        // Only digits: a number too long for u64 is simply too long.
        let number: u64 = number.parse().map_err(|_| too_long())?;
        match number.checked_mul(ms_per_unit) {
            Some(ms) if ms <= MAX_TIMEOUT_MS => Ok(Timeout::from_millis(ms)),
            _ => Err(too_long()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for (text, shown) in [
            ("2s", "2s"),
            ("500ms", "500ms"),
            ("5min", "5min"),
            ("90s", "90s"),
            ("120s", "2min"),
            ("1h", "1h"),
            ("0", "0"),
        ] {
            assert_eq!(text.parse::<Timeout>().unwrap().to_string(), shown);
        }
        assert!("2 weeks".parse::<Timeout>().is_err());
        assert!("s".parse::<Timeout>().is_err());
        assert!("5".parse::<Timeout>().is_err());
    }

    #[test]
    fn longer_than_postgresql_takes_is_refused() {
        assert_eq!(
            "2147483647ms".parse::<Timeout>().unwrap().to_string(),
            "2147483647ms"
        );
        for text in [
            "2147483648ms",
            "596524h",
            "99999999999999h",
            "99999999999999999999999s",
        ] {
            let err = text.parse::<Timeout>().unwrap_err();
            assert!(err.contains("at most 2147483647ms"), "{text}: {err}");
        }
    }
}
