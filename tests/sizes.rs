//! Sizes read like psql's: pgm's formatter against pg_size_pretty itself.

mod support;

use pgm::units::human_bytes;
use support::TestDb;

#[test]
fn sizes_are_written_as_pg_size_pretty_writes_them() {
    let db = TestDb::new();
    let mut client = db.connect();
    let mut sizes: Vec<i64> = vec![0, 1, 1800, 10_239, 10_240, 10_751, 10_752, 20_479 * 512];
    // Every unit boundary and its neighbours, up to what every supported
    // version can name (PostgreSQL 14 stops at TB).
    for bits in 10..50 {
        let base = 1_i64 << bits;
        for factor in [1, 10, 20] {
            let edge = base * factor;
            sizes.extend([
                edge - 513,
                edge - 512,
                edge - 1,
                edge,
                edge + 1,
                edge + 511,
                edge + 512,
            ]);
        }
    }
    for size in sizes.into_iter().filter(|s| *s < 10_i64 << 40) {
        let expected: String = client
            .query_one("SELECT pg_size_pretty($1::int8)", &[&size])
            .unwrap()
            .get(0);
        assert_eq!(human_bytes(size), expected, "{size} bytes");
    }
}
