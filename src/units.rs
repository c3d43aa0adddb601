//! Sizes for people, written the way PostgreSQL's `pg_size_pretty` writes
//! them, so that pgm's numbers read like the ones a DBA sees in psql.

/// `bytes` as `pg_size_pretty(bigint)` prints it: bytes below 10 kB, then
/// the first unit whose value stays below 20,480 half-units, rounded half
/// away from zero.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes.unsigned_abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    // Kept in half-units so the last step can round: pg_size_pretty
    // shifts by 9 bits into kB, then by 10 for each further unit.
    let mut halves = bytes / 512;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && halves.unsigned_abs() >= 20 * 1024 - 1 {
        halves /= 1024;
        unit += 1;
    }
    let rounded = if halves < 0 {
        (halves - 1) / 2
    } else {
        (halves + 1) / 2
    };
    format!("{rounded} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn small_sizes_stay_in_bytes() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1800), "1800 bytes");
        assert_eq!(human_bytes(10239), "10239 bytes");
        assert_eq!(human_bytes(10240), "10 kB");
    }
}
