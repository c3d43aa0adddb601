//! The targets of a fleet run, from the `[fleet]` section: connection
//! strings (with `${VAR}` from the environment), the databases or
//! connection strings a discovery query returns, and the tenant schemas of
//! the ordinary database. Each gets a stable name that holds no password.

use std::collections::HashMap;

use thiserror::Error;

use super::expand::{self, ExpandError};
use super::section::{FleetSection, Located};
use crate::db::settings::SettingsError;
use crate::db::{self, ConnectionSettings, ConnectionTemplate, Environment, quote_ident};
use crate::location::Location;
use crate::migrate::history::HISTORY_SCHEMA_SETTING;
use crate::partition::policy::SCHEMA_PLACEHOLDER;

/// One database, or one tenant schema of a database, to run a command on.
#[derive(Debug, Clone)]
pub struct Target {
    /// The database or schema: printable, never a password.
    pub name: String,
    pub settings: ConnectionSettings,
    /// The tenant schema, for a target of `schemas`.
    pub schema: Option<String>,
}

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("{location}: targets[{index}]: {source}")]
    Expand {
        location: Location,
        index: usize,
        source: ExpandError,
    },
    #[error("{location}: targets[{index}]: {source}")]
    Settings {
        location: Location,
        index: usize,
        source: SettingsError,
    },
    #[error("the ordinary connection, which {key} runs on: {source}")]
    Ordinary {
        key: &'static str,
        source: SettingsError,
    },
    #[error("{location}: {key}: connecting to {target}: {source}")]
    Connect {
        location: Location,
        key: &'static str,
        target: String,
        source: Box<db::ConnectError>,
    },
    #[error("{location}: {key}: the query failed on {target}: {source}")]
    Query {
        location: Location,
        key: &'static str,
        target: String,
        source: postgres::Error,
    },
    #[error(
        "{location}: {key} must return one text column (cast it: SELECT datname::text …); \
         row {row} has {what}"
    )]
    NotText {
        location: Location,
        key: &'static str,
        row: usize,
        what: String,
    },
    #[error("{location}: discover: row {row} is not a connection string pgm can read: {source}")]
    Discovered {
        location: Location,
        row: usize,
        source: SettingsError,
    },
    #[error("two targets lead to {name}: each database or schema must be named once in [fleet]")]
    Duplicate { name: String },
    #[error("{location}: [fleet] found no target: the queries returned no rows")]
    Empty { location: Location },
}

/// Every target of the section, in order: `targets`, then what `discover`
/// returns, then what `schemas` returns. `ordinary` is the connection
/// string of `--database-url` / `DATABASE_URL` (the PG* variables fill in
/// the rest).
pub fn resolve(
    section: &FleetSection,
    ordinary: Option<&str>,
    env: &Environment,
) -> Result<Vec<Target>, TargetError> {
    let mut targets = Vec::new();
    for (index, located) in section.targets.iter().enumerate() {
        targets.push(listed(located, index, env)?);
    }
    if let Some(query) = &section.discover {
        targets.extend(discovered(query, ordinary, env)?);
    }
    if let Some(query) = &section.schemas {
        targets.extend(tenant_schemas(query, &section.search_path, ordinary, env)?);
    }
    if targets.is_empty() {
        return Err(TargetError::Empty {
            location: section.location.clone(),
        });
    }
    name_uniquely(&mut targets)?;
    Ok(targets)
}

/// A connection string of `targets`: parsed first, then each value
/// expanded, so that a value from the environment is taken as it is
/// (no %-escapes to mind).
fn listed(located: &Located, index: usize, env: &Environment) -> Result<Target, TargetError> {
    let settings_error = |source| TargetError::Settings {
        location: located.location.clone(),
        index,
        source,
    };
    let expand_error = |source| TargetError::Expand {
        location: located.location.clone(),
        index,
        source,
    };
    // A string that is one ${VAR} is the variable's connection string.
    let template = if expand::is_one_reference(&located.text) {
        ConnectionTemplate::parse(&expand::expand(&located.text, env).map_err(expand_error)?)
            .map_err(settings_error)?
    } else {
        ConnectionTemplate::parse(&located.text)
            .map_err(settings_error)?
            .try_map_values(|_, value| expand::expand(value, env))
            .map_err(expand_error)?
    };
    let settings = template.resolve(env).map_err(settings_error)?;
    Ok(database_target(settings))
}

fn database_target(settings: ConnectionSettings) -> Target {
    Target {
        name: settings.dbname.clone(),
        settings,
        schema: None,
    }
}

fn ordinary_template(
    key: &'static str,
    ordinary: Option<&str>,
) -> Result<ConnectionTemplate, TargetError> {
    ConnectionTemplate::parse(ordinary.unwrap_or_default())
        .map_err(|source| TargetError::Ordinary { key, source })
}

/// The one text column of every row `query` returns on the ordinary database.
fn query_names(
    key: &'static str,
    query: &Located,
    settings: &ConnectionSettings,
) -> Result<Vec<String>, TargetError> {
    let location = || query.location.clone();
    let mut client = db::connect(settings).map_err(|source| TargetError::Connect {
        location: location(),
        key,
        target: settings.to_string(),
        source: Box::new(source),
    })?;
    let rows = client
        .simple_query(&query.text)
        .map_err(|source| TargetError::Query {
            location: location(),
            key,
            target: settings.to_string(),
            source,
        })?;
    let mut names = Vec::new();
    for row in rows {
        let postgres::SimpleQueryMessage::Row(row) = row else {
            continue;
        };
        let what = match (row.len(), row.get(0)) {
            (1, Some(name)) if !name.is_empty() => {
                names.push(name.to_owned());
                continue;
            }
            (1, _) => "an empty value or NULL".to_owned(),
            (n, _) => format!("{n} columns"),
        };
        return Err(TargetError::NotText {
            location: location(),
            key,
            row: names.len() + 1,
            what,
        });
    }
    Ok(names)
}

/// The databases `discover` names, each reached with the ordinary
/// connection's other settings (its password looked up for that database),
/// or the connection strings it returns.
fn discovered(
    query: &Located,
    ordinary: Option<&str>,
    env: &Environment,
) -> Result<Vec<Target>, TargetError> {
    let template = ordinary_template("discover", ordinary)?;
    let settings = template
        .clone()
        .resolve(env)
        .map_err(|source| TargetError::Ordinary {
            key: "discover",
            source,
        })?;
    let names = query_names("discover", query, &settings)?;
    names
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let row_template = if looks_like_connection_string(value) {
                ConnectionTemplate::parse(value)
            } else {
                Ok(template.clone().with_dbname(value))
            };
            row_template
                .and_then(|t| t.resolve(env))
                .map(database_target)
                .map_err(|source| TargetError::Discovered {
                    location: query.location.clone(),
                    row: index + 1,
                    source,
                })
        })
        .collect()
}

/// A URL, or `key=value` pairs; anything else is a database name.
fn looks_like_connection_string(value: &str) -> bool {
    value.starts_with("postgresql://") || value.starts_with("postgres://") || value.contains('=')
}

/// The tenant schemas `schemas` names, in the ordinary database: each
/// session's search path is the schema alone, so that unqualified names of
/// the migrations and the history table land in it.
fn tenant_schemas(
    query: &Located,
    search_path: &[String],
    ordinary: Option<&str>,
    env: &Environment,
) -> Result<Vec<Target>, TargetError> {
    let settings = ordinary_template("schemas", ordinary)?
        .resolve(env)
        .map_err(|source| TargetError::Ordinary {
            key: "schemas",
            source,
        })?;
    let names = query_names("schemas", query, &settings)?;
    Ok(names
        .into_iter()
        .map(|schema| Target {
            name: schema.clone(),
            settings: in_schema(&settings, &schema, search_path),
            schema: Some(schema),
        })
        .collect())
}

/// The settings with, at connection start and after the user's own
/// options, the search path of the tenant `schema` and its history pinned
/// to that schema.
fn in_schema(
    settings: &ConnectionSettings,
    schema: &str,
    search_path: &[String],
) -> ConnectionSettings {
    let path: Vec<String> = search_path
        .iter()
        .map(|entry| match entry.as_str() {
            SCHEMA_PLACEHOLDER => quote_ident(schema),
            shared => quote_ident(shared),
        })
        .collect();
    let added = format!(
        "-c search_path={} -c {HISTORY_SCHEMA_SETTING}={}",
        startup_value(&path.join(",")),
        startup_value(schema)
    );
    let mut settings = settings.clone();
    settings.options = Some(match settings.options.take() {
        Some(options) if !options.trim().is_empty() => format!("{options} {added}"),
        _ => added,
    });
    settings
}

/// Startup options are split on spaces; a backslash keeps one in a value.
fn startup_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace(' ', "\\ ")
}

/// Names repeated across hosts get the host; a database or schema named
/// twice for the same place is refused (it would run twice at once).
fn name_uniquely(targets: &mut [Target]) -> Result<(), TargetError> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for target in targets.iter() {
        *counts.entry(target.name.clone()).or_default() += 1;
    }
    for target in targets.iter_mut() {
        if counts[&target.name] > 1 {
            target.name = match &target.schema {
                Some(schema) => format!("{}/{schema}", target.settings),
                None => target.settings.to_string(),
            };
        }
    }
    let mut seen = std::collections::HashSet::new();
    for target in targets.iter() {
        if !seen.insert(target.name.as_str()) {
            return Err(TargetError::Duplicate {
                name: target.name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_with_a_space_survives_the_startup_options() {
        let settings =
            db::resolve(Some("host=/tmp dbname=app user=u"), &Environment::default()).unwrap();
        let path = ["{schema}".to_owned(), "public".to_owned()];
        let tenant = in_schema(&settings, "Tenant A", &path);
        assert_eq!(
            tenant.options.as_deref(),
            Some("-c search_path=\"Tenant\\ A\",\"public\" -c pgm.history_schema=Tenant\\ A")
        );
    }
}
