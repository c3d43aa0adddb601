//! The one place identifiers become SQL text.

use std::fmt;

use serde::{Serialize, Serializer};

/// PostgreSQL truncates identifiers longer than this many bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// What Citus appends to a table's name for each of its shards: `_` and
/// the shard id (`_102008`), within the same 63 bytes.
pub const CITUS_SHARD_SUFFIX_BYTES: usize = 7;

/// Quotes an identifier for SQL: always double-quoted, inner quotes doubled,
/// so any name (mixed case, keywords, spaces) round-trips exactly.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a text value for the few places SQL cannot take a parameter (DDL
/// such as COMMENT ON and partition bounds).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A relation or index in a schema. Kept as two parts so that no name is
/// ever split again on a dot (schemas may contain dots).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> QualifiedName {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `"schema"."name"`, for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The same name in another schema.
    pub fn in_schema(&self, schema: &str) -> QualifiedName {
        QualifiedName::new(schema, self.name.clone())
    }
}

/// `schema.name`, unquoted, for people (plans, logs, reports).
impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Serialized as people read it, as plans have always been.
impl Serialize for QualifiedName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike std's hasher,
/// so names and lock keys derived from it never change between versions.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `name` itself when it fits in 63 bytes; else its start and a hash of the
/// whole, so that two long names cannot be truncated into one.
pub fn shorten_identifier(name: &str) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name.to_owned();
    }
    let mut cut = MAX_IDENTIFIER_BYTES - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &name[..cut], fnv1a(name.as_bytes()) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_doubles_inner_quotes() {
        assert_eq!(quote_ident("events"), "\"events\"");
        assert_eq!(quote_ident("Mixed Case"), "\"Mixed Case\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn literals_double_inner_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn a_schema_with_a_dot_stays_one_part() {
        let name = QualifiedName::new("app.v2", "events");
        assert_eq!(name.quoted(), "\"app.v2\".\"events\"");
        assert_eq!(name.to_string(), "app.v2.events");
        assert_eq!(name.in_schema("archive").quoted(), "\"archive\".\"events\"");
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn long_names_are_shortened_without_colliding() {
        let a = format!("{}_a", "x".repeat(70));
        let b = format!("{}_b", "x".repeat(70));
        assert_eq!(shorten_identifier("short"), "short");
        assert_eq!(shorten_identifier(&a).len(), MAX_IDENTIFIER_BYTES);
        assert_ne!(shorten_identifier(&a), shorten_identifier(&b));
        let wide = "é".repeat(40);
        assert!(shorten_identifier(&wide).len() <= MAX_IDENTIFIER_BYTES);
    }
}
