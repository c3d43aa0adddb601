//! The connection service file (`pg_service.conf`), with libpq's rules: the
//! service comes from `service=` or PGSERVICE; its file is PGSERVICEFILE,
//! else `~/.pg_service.conf`, else `pg_service.conf` in PGSYSCONFDIR; a
//! service's values fill only what the connection string left unset, and win
//! over the PG* variables. Errors name the file and line, never a value.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::conninfo::{Parameters, find_keyword};
use super::settings::Environment;

/// Where the system-wide service file lives when PGSYSCONFDIR is unset: the
/// directory Debian's and Ubuntu's libpq are built with.
pub const SYSTEM_CONFIG_DIRECTORY: &str = "/etc/postgresql-common";

/// libpq reads lines into a 1024-byte buffer and refuses longer ones.
const MAX_LINE_BYTES: usize = 1022;

/// The service a connection used, for `pgm ping` and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUsed {
    pub name: String,
    pub file: PathBuf,
    /// The parameters the service gave (the string had not set them).
    pub filled: Vec<&'static str>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ServiceError {
    #[error(
        "the connection service \"{name}\" is not defined in {}: add a [{name}] section, or set PGSERVICEFILE to the file that has it",
        searched.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join(" or ")
    )]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("service file {} (PGSERVICEFILE) cannot be read: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}:{line}: {problem}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// Fills the unset parameters from the service's section and says which
/// file it came from.
pub fn fill(
    params: &mut Parameters,
    name: &str,
    env: &Environment,
) -> Result<ServiceUsed, ServiceError> {
    let mut searched = Vec::new();
    let user_file = match env.raw_var("PGSERVICEFILE") {
        Some(path) => Some(PathBuf::from(path)),
        None => env
            .home()
            .map(|home| home.join(".pg_service.conf"))
            .filter(|path| path.exists()),
    };
    if let Some(path) = user_file {
        searched.push(path.clone());
        if let Some(section) = read_section(&path, name)? {
            return Ok(apply(params, section, name, path));
        }
    }
    let system_dir = env
        .raw_var("PGSYSCONFDIR")
        .unwrap_or(SYSTEM_CONFIG_DIRECTORY);
    let system_file = Path::new(system_dir).join("pg_service.conf");
    if system_file.exists() {
        searched.push(system_file.clone());
        if let Some(section) = read_section(&system_file, name)? {
            return Ok(apply(params, section, name, system_file));
        }
    }
    if searched.is_empty() {
        searched.push(Path::new(system_dir).join("pg_service.conf"));
    }
    Err(ServiceError::NotFound {
        name: name.to_owned(),
        searched,
    })
}

fn apply(
    params: &mut Parameters,
    section: Vec<(&'static str, String)>,
    name: &str,
    file: PathBuf,
) -> ServiceUsed {
    let mut filled = Vec::new();
    for (keyword, value) in section {
        if !params.contains_key(keyword) {
            params.insert(keyword, value);
            filled.push(keyword);
        }
    }
    ServiceUsed {
        name: name.to_owned(),
        file,
        filled,
    }
}

/// The `key=value` lines of the `[name]` section, or None when the file has
/// no such section.
fn read_section(
    path: &Path,
    name: &str,
) -> Result<Option<Vec<(&'static str, String)>>, ServiceError> {
    let bytes = std::fs::read(path).map_err(|error| ServiceError::Unreadable {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let syntax = |line: usize, problem: &str| ServiceError::Syntax {
        path: path.to_path_buf(),
        line,
        problem: problem.to_owned(),
    };
    let mut section: Option<Vec<(&'static str, String)>> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        if raw.len() >= MAX_LINE_BYTES {
            return Err(syntax(
                number,
                "line too long (libpq reads at most 1022 bytes a line)",
            ));
        }
        let line = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            if section.is_some() {
                break;
            }
            // As libpq, only the start of the line is compared.
            if header
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(']'))
            {
                section = Some(Vec::new());
            }
            continue;
        }
        let Some(entries) = section.as_mut() else {
            continue;
        };
        let Some((key, value)) = line.split_once('=') else {
            return Err(syntax(number, "expected key=value"));
        };
        if key == "service" {
            return Err(syntax(number, "a service cannot name another service"));
        }
        let Some(keyword) = find_keyword(key) else {
            return Err(syntax(
                number,
                "unknown connection parameter (write key=value with a libpq parameter name and no space before \"=\")",
            ));
        };
        entries.push((keyword.name, value.to_owned()));
    }
    Ok(section.map(|mut entries| {
        // The first line for a keyword wins, as in libpq.
        let mut seen = std::collections::HashSet::new();
        entries.retain(|(keyword, _)| seen.insert(*keyword));
        entries
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(file: &Path) -> Environment {
        Environment::with_vars(
            [
                ("PGSERVICEFILE", file.to_str().unwrap()),
                ("PGSYSCONFDIR", "/nonexistent"),
            ],
            None,
        )
    }

    #[test]
    fn a_service_fills_what_the_string_left_unset() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services");
        std::fs::write(
            &file,
            "# comment\n[other]\nhost=elsewhere\n\n[app]\n  host=db.internal  \nport=6432\ndbname=shop\nport=1\n[next]\nuser=x\n",
        )
        .unwrap();
        let mut params = Parameters::new();
        params.insert("dbname", "mine".to_owned());
        let used = fill(&mut params, "app", &env_with(&file)).unwrap();
        assert_eq!(used.file, file);
        assert_eq!(params["host"], "db.internal");
        assert_eq!(params["port"], "6432");
        assert_eq!(params["dbname"], "mine");
        assert!(!params.contains_key("user"));
    }

    #[test]
    fn errors_name_the_file_and_line_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services");
        std::fs::write(&file, "[app]\nhost=h\npasword=s3cret-value\n").unwrap();
        let err = fill(&mut Parameters::new(), "app", &env_with(&file)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:3: unknown", file.display())),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        let err = fill(&mut Parameters::new(), "nosuch", &env_with(&file)).unwrap_err();
        assert!(matches!(err, ServiceError::NotFound { .. }), "{err}");
    }
}
