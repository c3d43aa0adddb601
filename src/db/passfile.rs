//! The password file (`~/.pgpass` or PGPASSFILE), with libpq's rules:
//! `host:port:database:user:password` lines, `*` matches anything, `\`
//! escapes `:` and `\`, the first matching line wins, and a file that group or
//! others may access is ignored.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, Eq)]
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

pub fn lookup(
    path: &Path,
    hosts: &[String],
    port: u16,
    dbname: &str,
    user: &str,
) -> PassfileLookup {
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
    let port = port.to_string();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line);
        let [host_field, port_field, db_field, user_field, password] = fields.as_slice() else {
            continue;
        };
        let matches = |field: &str, value: &str| field == "*" || field == value;
        if hosts.iter().any(|host| matches(host_field, host))
            && matches(port_field, &port)
            && matches(db_field, dbname)
            && matches(user_field, user)
        {
            return PassfileLookup::Found {
                password: password.clone(),
                path: path.to_path_buf(),
                line: index + 1,
            };
        }
    }
    PassfileLookup::NoMatch
}

/// Splits at unescaped colons into at most five fields; the last keeps any
/// further colons. Returns fewer than five for a malformed line.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("never empty").extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
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
        port: u16,
        db: &str,
        user: &str,
    ) -> PassfileLookup {
        lookup(file.path(), &[host.to_owned()], port, db, user)
    }

    fn password(lookup: PassfileLookup) -> Option<(String, usize)> {
        match lookup {
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
            password(find(&file, "db1", 5432, "app", "alice")),
            Some(("first".into(), 2))
        );
        assert_eq!(
            password(find(&file, "db2", 5432, "other", "alice")),
            Some(("second".into(), 3))
        );
        assert_eq!(
            password(find(&file, "db2", 6432, "app", "bob")),
            Some(("fallback".into(), 4))
        );
    }

    #[test]
    fn escapes_and_colons_in_password() {
        let file = write("h\\:x:5432:db:u:pa\\:ss:w\\\\rd\n", 0o600);
        assert_eq!(
            password(find(&file, "h:x", 5432, "db", "u")),
            Some(("pa:ss:w\\rd".into(), 1))
        );
    }

    #[test]
    fn no_match_and_malformed_lines() {
        let file = write("only:three:fields\nh:5432:db:u:pw\n", 0o600);
        assert_eq!(
            find(&file, "other", 5432, "db", "u"),
            PassfileLookup::NoMatch
        );
        assert_eq!(
            password(find(&file, "h", 5432, "db", "u")),
            Some(("pw".into(), 2))
        );
    }

    #[test]
    fn group_or_world_access_is_refused_with_the_fix() {
        let file = write("*:*:*:*:pw\n", 0o644);
        let PassfileLookup::Ignored(reason) = find(&file, "h", 5432, "db", "u") else {
            panic!("expected the file to be ignored");
        };
        assert!(
            reason.contains("group or world access (mode 0644)"),
            "{reason}"
        );
        assert!(reason.contains("chmod 0600"), "{reason}");
        assert!(!reason.contains("pw\n"));
    }

    #[test]
    fn missing_file_is_absent() {
        let missing = Path::new("/nonexistent/pgpass");
        assert_eq!(
            lookup(missing, &["h".into()], 5432, "d", "u"),
            PassfileLookup::Absent
        );
    }
}
