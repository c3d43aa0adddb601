//! Durations as operators write them ("2s", "500ms", "5min", "1h"), and as
//! PostgreSQL settings accept them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout(pub Duration);

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
        let number: u64 = number
            .parse()
            .map_err(|_| format!("\"{text}\" is not a duration: write a whole number and a unit, like 2s, 500ms, 5min or 1h"))?;
        let ms_per_unit = match unit.trim() {
            "ms" => 1,
            "" if number == 0 => 1,
            "s" | "sec" | "secs" | "seconds" => 1000,
            "m" | "min" | "mins" | "minutes" => 60_000,
            "h" | "hour" | "hours" => 3_600_000,
            other => {
                return Err(format!(
                    "\"{other}\" is not a duration unit: use ms, s, min or h"
                ));
            }
        };
        Ok(Timeout::from_millis(number.saturating_mul(ms_per_unit)))
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
}
