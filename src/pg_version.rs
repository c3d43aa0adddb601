//! A PostgreSQL version as operators write it: a major ("15") or a major and
//! a minor ("15.4").

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Below 10 versions had three parts (9.6.24), which this form cannot say;
/// pgm itself supports 14 and later.
pub const OLDEST_MAJOR: u32 = 10;
/// PostgreSQL ships one major a year (18 in 2025): 99 leaves decades of room
/// while still catching a mistyped number.
pub const NEWEST_MAJOR: u32 = 99;
/// `server_version_num` keeps four digits for the minor.
pub const NEWEST_MINOR: u32 = 9999;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgVersion {
    pub major: u32,
    pub minor: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PgVersionError {
    #[error("invalid PostgreSQL version \"{0}\": give a major version such as 15, or 15.4")]
    Invalid(String),
    #[error("PostgreSQL {0} is too old to lint for: pgm supports PostgreSQL 14 and later")]
    TooOld(String),
    #[error(
        "PostgreSQL {0} does not exist: give a major version from {OLDEST_MAJOR} to {NEWEST_MAJOR} \
         (pgm supports 14 and later), optionally with a minor up to {NEWEST_MINOR}, such as 15 or 15.4"
    )]
    OutOfRange(String),
}

impl FromStr for PgVersion {
    type Err = PgVersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let invalid = || PgVersionError::Invalid(text.to_owned());
        let (major, minor) = match trimmed.split_once('.') {
            Some((major, minor)) => (major, Some(minor)),
            None => (trimmed, None),
        };
        let is_number = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !is_number(major) || minor.is_some_and(|minor| !is_number(minor)) {
            return Err(invalid());
        }
        // All digits, so a failed parse can only mean too many of them.
        let out_of_range = || PgVersionError::OutOfRange(trimmed.to_owned());
        let major: u32 = major.parse().map_err(|_| out_of_range())?;
        let minor = minor
            .map(|minor| minor.parse::<u32>().map_err(|_| out_of_range()))
            .transpose()?;
        if major < OLDEST_MAJOR {
            return Err(PgVersionError::TooOld(trimmed.to_owned()));
        }
        if major > NEWEST_MAJOR || minor.is_some_and(|minor| minor > NEWEST_MINOR) {
            return Err(out_of_range());
        }
        Ok(PgVersion { major, minor })
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.major)?;
        if let Some(minor) = self.minor {
            write!(f, ".{minor}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PgVersion, PgVersionError> {
        text.parse()
    }

    #[test]
    fn majors_and_minors_parse() {
        assert_eq!(
            parse("15"),
            Ok(PgVersion {
                major: 15,
                minor: None
            })
        );
        assert_eq!(
            parse(" 16.4 "),
            Ok(PgVersion {
                major: 16,
                minor: Some(4)
            })
        );
        assert_eq!(parse("10").map(|v| v.to_string()), Ok("10".to_owned()));
        assert_eq!(
            parse("99.9999").map(|v| v.to_string()),
            Ok("99.9999".to_owned())
        );
    }

    #[test]
    fn absurd_versions_name_the_range() {
        for text in [
            "3000000000",
            "100",
            "15.10000",
            "15.3000000000",
            "99999999999999999999999",
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err, PgVersionError::OutOfRange(text.to_owned()));
            assert!(err.to_string().contains("from 10 to 99"), "{err}");
        }
        assert_eq!(parse("9.6"), Err(PgVersionError::TooOld("9.6".to_owned())));
        for text in ["", "fifteen", "-1", "+15", "15.", ".4", "15.4.1", "16beta1"] {
            assert_eq!(parse(text), Err(PgVersionError::Invalid(text.to_owned())));
        }
    }
}
