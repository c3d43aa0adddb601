//! `${VAR}` in the connection strings of `[fleet] targets`, taken from the
//! environment. Only that form: a `$` not followed by `{` is itself, so
//! that passwords and paths holding `$` need no escaping.

use thiserror::Error;

use crate::db::Environment;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExpandError {
    #[error("${{{0}}} is not set in the environment: export it, or write the value instead")]
    Unset(String),
    #[error(
        "\"${{\" opens a variable that is not closed or not a name (letters, digits and _): \
         write ${{NAME}}"
    )]
    Malformed,
}

/// NAME of `${NAME}`: a letter or `_`, then letters, digits and `_`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether the text is exactly one `${NAME}`.
pub fn is_one_reference(text: &str) -> bool {
    text.strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(is_variable_name)
}

/// `text` with every `${NAME}` replaced by the variable's value; a variable
/// set to the empty string counts as set.
pub fn expand(text: &str, env: &Environment) -> Result<String, ExpandError> {
    let mut expanded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        expanded.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(ExpandError::Malformed)?;
        let name = &after[..end];
        if !is_variable_name(name) {
            return Err(ExpandError::Malformed);
        }
        let value = env
            .raw_var(name)
            .ok_or_else(|| ExpandError::Unset(name.to_owned()))?;
        expanded.push_str(value);
        rest = &after[end + 1..];
    }
    expanded.push_str(rest);
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_replaced_and_dollars_kept() {
        let env = Environment::with_vars([("HOST", "db1"), ("EMPTY", "")], None);
        assert_eq!(expand("h=${HOST}x${EMPTY}", &env).unwrap(), "h=db1x");
        assert_eq!(expand("pa$$word", &env).unwrap(), "pa$$word");
        assert_eq!(
            expand("${MISSING}", &env).unwrap_err(),
            ExpandError::Unset("MISSING".into())
        );
        assert_eq!(expand("${HOST", &env).unwrap_err(), ExpandError::Malformed);
        assert_eq!(expand("${1X}", &env).unwrap_err(), ExpandError::Malformed);
    }
}
