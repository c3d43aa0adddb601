//! The one place identifiers become SQL text.

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

#[cfg(test)]
mod tests {
    use super::{quote_ident, quote_literal};

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
}
