//! A connection string parsed but not yet resolved, for the targets of a
//! fleet: its values can be checked (no password written in a file),
//! expanded from the environment and given another database before
//! libpq's rules fill in the rest, so that no connection text is ever
//! rebuilt by hand.

use super::conninfo::{self, Parameters};
use super::settings::{self, ConnectionSettings, Environment, SettingsError};

#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionTemplate {
    params: Parameters,
}

/// Its Debug names the parameters only: a password can be among the values.
impl std::fmt::Debug for ConnectionTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.params.keys()).finish()
    }
}

impl ConnectionTemplate {
    /// Parses a URL or `key=value` string; an empty text names nothing (the
    /// environment decides everything).
    pub fn parse(text: &str) -> Result<ConnectionTemplate, SettingsError> {
        let params = if text.trim().is_empty() {
            Parameters::new()
        } else {
            conninfo::parse(text)?
        };
        Ok(ConnectionTemplate { params })
    }

    /// The password written in the string, if any.
    pub fn password(&self) -> Option<&str> {
        self.params.get("password").map(String::as_str)
    }

    /// Every value passed through `edit` (given the parameter's name).
    pub fn try_map_values<E>(
        mut self,
        mut edit: impl FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<ConnectionTemplate, E> {
        for (name, value) in self.params.iter_mut() {
            *value = edit(name, value)?;
        }
        Ok(self)
    }

    /// The same string naming another database.
    pub fn with_dbname(mut self, dbname: &str) -> ConnectionTemplate {
        self.params.insert("dbname", dbname.to_owned());
        self
    }

    /// The settings, with libpq's rules for what the string leaves unset
    /// (service, PG* variables, the password file looked up for this
    /// database).
    pub fn resolve(self, env: &Environment) -> Result<ConnectionSettings, SettingsError> {
        settings::resolve_parameters(self.params, env)
    }
}
