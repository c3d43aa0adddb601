//! The `[fleet]` section of the policy file: where `--fleet` runs. Read
//! with the rest of the file, with the same located problems; a password
//! written in the file is refused here, before anything connects.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::db::ConnectionTemplate;
use crate::location::Location;
use crate::partition::policy::SCHEMA_PLACEHOLDER;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    #[serde(default)]
    targets: Vec<Spanned<String>>,
    discover: Option<Spanned<String>>,
    schemas: Option<Spanned<String>>,
    search_path: Option<Spanned<String>>,
}

/// A value of the section with where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub text: String,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSection {
    /// Connection strings, `${VAR}` still unexpanded.
    pub targets: Vec<Located>,
    /// A query returning database names or connection strings.
    pub discover: Option<Located>,
    /// A query returning the tenant schemas of the ordinary database.
    pub schemas: Option<Located>,
    /// The search path of a tenant's sessions, schema by schema, with
    /// `{schema}` for the tenant's: `["{schema}"]` unless written, so that
    /// no unqualified name reaches past the tenant.
    pub search_path: Vec<String>,
    /// Where `[fleet]` starts.
    pub location: Location,
}

/// A problem of the section: where, and what to do.
pub(crate) type SectionProblem = (Range<usize>, String);

/// The section, or its problems; `locate` turns a byte offset of the file
/// into a place.
pub(crate) fn check(
    raw: &Spanned<RawFleet>,
    locate: &dyn Fn(usize) -> Location,
) -> Result<FleetSection, Vec<SectionProblem>> {
    let fleet = raw.get_ref();
    let mut problems = Vec::new();
    for (index, target) in fleet.targets.iter().enumerate() {
        if let Err(message) = check_target(target.get_ref()) {
            problems.push((target.span(), format!("targets[{index}]: {message}")));
        }
    }
    for (key, query) in [("discover", &fleet.discover), ("schemas", &fleet.schemas)] {
        if let Some(query) = query
            && query.get_ref().trim().is_empty()
        {
            problems.push((
                query.span(),
                format!(
                    "{key} is empty: write a SELECT returning one text column, or remove the key"
                ),
            ));
        }
    }
    let search_path = match &fleet.search_path {
        Some(raw) => check_search_path(raw.get_ref())
            .map_err(|message| problems.push((raw.span(), message)))
            .unwrap_or_default(),
        None => vec![SCHEMA_PLACEHOLDER.to_owned()],
    };
    if fleet.targets.is_empty() && fleet.discover.is_none() && fleet.schemas.is_none() {
        problems.push((
            raw.span(),
            "[fleet] names no target: add targets = [\"postgresql://…\"], discover = \"SELECT datname …\" \
             or schemas = \"SELECT nspname …\""
                .to_owned(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let located = |value: &Spanned<String>| Located {
        text: value.get_ref().clone(),
        location: locate(value.span().start),
    };
    Ok(FleetSection {
        targets: fleet.targets.iter().map(located).collect(),
        discover: fleet.discover.as_ref().map(located),
        schemas: fleet.schemas.as_ref().map(located),
        search_path,
        location: locate(raw.span().start),
    })
}

/// `search_path = "{schema}, public"`: schema names (as the server stores
/// them, no quotes), one of them the tenant's.
fn check_search_path(text: &str) -> Result<Vec<String>, String> {
    let schemas: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
    if schemas.iter().any(String::is_empty) {
        return Err(
            "search_path has an empty entry: write schema names separated by commas, \
                    like \"{schema}, public\""
                .to_owned(),
        );
    }
    if !schemas.iter().any(|s| s == SCHEMA_PLACEHOLDER) {
        return Err(
            "search_path must hold {schema}, the tenant's schema, like \"{schema}, public\" \
                    (public for extensions installed once per database)"
                .to_owned(),
        );
    }
    Ok(schemas)
}

/// A connection string of `targets`: one pgm can read, with no password
/// written in it. `password=${VAR}` is allowed, and so is a string that is
/// one `${VAR}`: the password then comes from the environment. The messages never quote the text.
fn check_target(text: &str) -> Result<(), String> {
    // The whole string from the environment: nothing of it is in the file.
    if super::expand::is_one_reference(text) {
        return Ok(());
    }
    let template = ConnectionTemplate::parse(text).map_err(|error| error.to_string())?;
    match template.password() {
        Some(password) if !super::expand::is_one_reference(password) => Err(
            "a password is written in the file: remove it, and give it through PGPASSWORD, the \
             password file (~/.pgpass or PGPASSFILE), a service (PGSERVICE), or as ${VAR} \
             from the environment"
                .to_owned(),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_target;

    #[test]
    fn passwords_only_from_the_environment() {
        assert!(check_target("postgresql://app@db1/tenant").is_ok());
        assert!(check_target("postgresql://app:${TENANT_PASSWORD}@db1/tenant").is_ok());
        assert!(check_target("host=db1 dbname=t password=${PW}").is_ok());
        for written in [
            "postgresql://app:hunter2@db1/tenant",
            "host=db1 password=hunter2",
            "postgresql://app@db1/tenant?password=hunter2",
            "postgresql://app:pre${PW}@db1/tenant",
        ] {
            let message = check_target(written).unwrap_err();
            assert!(message.contains("a password is written"), "{message}");
            assert!(!message.contains("hunter2"));
        }
    }
}
