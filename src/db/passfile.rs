//! The password file (`~/.pgpass` or PGPASSFILE), with libpq's rules:
//! `host:port:database:user:password` lines, `*` matches any value, `\`
//! escapes the next character, the first matching line wins, the password
//! ends at the next unescaped `:`, and a file that group or others may
//! access is ignored.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(PartialEq, Eq)]
pub enum PassfileLookup {
    Absent,
    NoMatch,
    /// The file exists but was not used; the text says why and how to fix it.
    Ignored(String),
    Found {
        password: String,
        path: PathBuf,
        line: usize,
    },
}

impl std::fmt::Debug for PassfileLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassfileLookup::Absent => f.write_str("Absent"),
            PassfileLookup::NoMatch => f.write_str("NoMatch"),
            PassfileLookup::Ignored(reason) => f.debug_tuple("Ignored").field(reason).finish(),
            PassfileLookup::Found { path, line, .. } => f
                .debug_struct("Found")
                .field("password", &"<redacted>")
                .field("path", path)
                .field("line", line)
                .finish(),
        }
    }
}

/// The password of the first line matching these values, compared as
/// written (the port too: `05432` is not `5432`).
pub fn lookup(path: &Path, host: &str, port: &str, dbname: &str, user: &str) -> PassfileLookup {
    let Ok(metadata) = std::fs::metadata(path) else {
        return PassfileLookup::Absent;
    };
    if !metadata.is_file() {
        return PassfileLookup::Ignored(format!(
            "password file \"{}\" is not a plain file; it was ignored",
            path.display()
        ));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return PassfileLookup::Ignored(format!(
            "password file \"{}\" has group or world access (mode {:04o}) and was ignored; \
             run: chmod 0600 {}",
            path.display(),
            mode & 0o7777,
            path.display()
        ));
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => {
            return PassfileLookup::Ignored(format!(
                "password file \"{}\" cannot be read ({err}); it was ignored",
                path.display()
            ));
        }
    };
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let password = [host, port, dbname, user]
            .iter()
            .try_fold(line, |rest, value| match_field(rest, value));
        if let Some(password) = password {
            return PassfileLookup::Found {
                password: unescape_password(password),
                path: path.to_path_buf(),
                line: index + 1,
            };
        }
    }
    PassfileLookup::NoMatch
}

/// When the line's next field matches `value`, the rest of the line after
/// that field's `:`. A field of `*` matches anything; `\x` stands for x.
fn match_field<'a>(line: &'a str, value: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut expected = value.chars();
    let mut chars = line.char_indices();
    while let Some((index, c)) = chars.next() {
        let literal = match c {
            // As libpq: an unescaped ':' ends the field once the value is
            // used up, and otherwise is compared like any other character.
            ':' if expected.as_str().is_empty() => return Some(&line[index + 1..]),
            '\\' => chars.next()?.1,
            c => c,
        };
        if expected.next() != Some(literal) {
            return None;
        }
    }
    None
}

/// The password field: `\x` stands for x, an unescaped `:` ends it.
fn unescape_password(field: &str) -> String {
    let mut password = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => password.push(chars.next().unwrap_or('\\')),
            c => password.push(c),
        }
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(contents: &str, mode: u32) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), contents).unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    fn find(
        file: &tempfile::NamedTempFile,
        host: &str,
        port: &str,
        db: &str,
        user: &str,
    ) -> Option<(String, usize)> {
        match lookup(file.path(), host, port, db, user) {
            PassfileLookup::Found { password, line, .. } => Some((password, line)),
            _ => None,
        }
    }

    #[test]
    fn first_matching_line_wins_and_wildcards_match() {
        let file = write(
            "# comment\n\
             db1:5432:app:alice:first\n\
             *:5432:*:alice:second\n\
             *:*:*:*:fallback\n",
            0o600,
        );
        assert_eq!(
            find(&file, "db1", "5432", "app", "alice"),
            Some(("first".into(), 2))
        );
        assert_eq!(
            find(&file, "db2", "5432", "other", "alice"),
            Some(("second".into(), 3))
        );
        assert_eq!(
            find(&file, "db2", "6432", "app", "bob"),
            Some(("fallback".into(), 4))
        );
    }

    #[test]
    fn escapes_and_the_colon_that_ends_the_password() {
        let file = write("h\\:x:5432:db:u:pa\\:ss:w\\\\rd\n", 0o600);
        assert_eq!(
            find(&file, "h:x", "5432", "db", "u"),
            Some(("pa:ss".into(), 1))
        );
        let file = write("::1:5432:db:u:pw\n", 0o600);
        assert_eq!(
            find(&file, "::1", "5432", "db", "u"),
            Some(("pw".into(), 1))
        );
        let file = write("h:5432:db:u:trail\\", 0o600);
        assert_eq!(
            find(&file, "h", "5432", "db", "u"),
            Some(("trail\\".into(), 1))
        );
    }

    #[test]
    fn the_port_is_compared_as_written() {
        let file = write("h:05432:db:u:pw\n", 0o600);
        assert_eq!(find(&file, "h", "5432", "db", "u"), None);
        assert_eq!(find(&file, "h", "05432", "db", "u"), Some(("pw".into(), 1)));
    }

    #[test]
    fn no_match_and_malformed_lines() {
        let file = write("only:three:fields\nh:5432:db:u\nh:5432:db:u:pw\n", 0o600);
        assert_eq!(
            lookup(file.path(), "other", "5432", "db", "u"),
            PassfileLookup::NoMatch
        );
        assert_eq!(find(&file, "h", "5432", "db", "u"), Some(("pw".into(), 3)));
    }

    #[test]
    fn group_or_world_access_is_refused_with_the_fix() {
        let file = write("*:*:*:*:pw\n", 0o644);
        let PassfileLookup::Ignored(reason) = lookup(file.path(), "h", "5432", "db", "u") else {
            panic!("expected the file to be ignored");
        };
        assert!(
            reason.contains("group or world access (mode 0644)"),
            "{reason}"
        );
        assert!(reason.contains("chmod 0600"), "{reason}");
    }

    #[test]
    fn missing_file_is_absent() {
        let missing = Path::new("/nonexistent/pgpass");
        assert_eq!(
            lookup(missing, "h", "5432", "d", "u"),
            PassfileLookup::Absent
        );
    }
}
