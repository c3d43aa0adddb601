//! Migration files on disk: refinery's naming (`V{n}__{name}.sql`,
//! `U{n}__{name}.sql`) and checksums, with every file that looks like a
//! migration but is not a valid one reported instead of skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::hash::{Hash, Hasher};

use refinery::Migration;
use siphasher::sip::SipHasher13;
use thiserror::Error;

use super::sql::{self, InvalidFiles, ParsedFile, SqlError};

/// A migration's version: 64 bits, so `YYYYMMDDHHMMSS` versions fit; a
/// history table of 32-bit versions (refinery's default) holds the smaller ones.
pub type Version = i64;

/// How the history table stores versions, which also decides the checksum:
/// refinery hashes the version at the width it was built with (32 bits by
/// default, 64 with its `int8-versions` feature).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionWidth {
    #[default]
    Int4,
    Int8,
}

impl VersionWidth {
    pub fn holds(self, version: Version) -> bool {
        self == VersionWidth::Int8 || i32::try_from(version).is_ok()
    }

    pub fn sql_type(self) -> &'static str {
        match self {
            VersionWidth::Int4 => "int4",
            VersionWidth::Int8 => "int8",
        }
    }
}

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("the migrations directory {} cannot be read: {source}", path.display())]
    UnreadableDirectory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: not a migration name; migrations are named V{{version}}__{{name}}.sql (or U… for \
         unversioned), with a whole-number version and a name of letters, digits and underscores, \
         e.g. V7__add_orders.sql",
        path.display()
    )]
    BadName { path: PathBuf },
    #[error("{}: the version does not fit a 64-bit integer", path.display())]
    VersionTooLarge { path: PathBuf },
    #[error("{} and {} both have version {version}: give one of them the next free version", first.display(), second.display())]
    DuplicateVersion {
        version: Version,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: cannot be read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: is not UTF-8 (first invalid byte at offset {offset}, line {line}); save it as UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        offset: usize,
        line: usize,
    },
    #[error(transparent)]
    Sql(#[from] SqlError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Applied in version order; a new one below the highest applied version is out of order.
    Versioned,
    /// May be applied whenever it is new, whatever the order.
    Unversioned,
}

/// One migration file, read and checksummed; parsed once it is known to be
/// pending (an applied file needs only its checksum, and parsing a thousand
/// applied files would cost more than the rest of a run with nothing to do).
#[derive(Debug, Clone)]
pub struct SourceMigration {
    pub version: Version,
    pub name: String,
    pub kind: Kind,
    pub path: PathBuf,
    checksums: Checksums,
    text: String,
    parsed: Option<ParsedFile>,
}

/// refinery's checksum of name, version and text, at each version width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checksums {
    /// None when the version does not fit 32 bits.
    int4: Option<u64>,
    int8: u64,
}

impl SourceMigration {
    /// The checksum a history table of this width holds for the file. A
    /// version wider than the table has no such checksum: the runs refuse
    /// it before comparing (see `history::check_width`), and the 64-bit one
    /// stands in.
    pub fn checksum(&self, width: VersionWidth) -> u64 {
        match width {
            VersionWidth::Int4 => self.checksums.int4.unwrap_or(self.checksums.int8),
            VersionWidth::Int8 => self.checksums.int8,
        }
    }

    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The statements and mode; only for migrations passed to `parse_pending`.
    pub fn parsed(&self) -> &ParsedFile {
        self.parsed
            .as_ref()
            .expect("a pending migration is parsed before it is planned")
    }

    pub fn is_parsed(&self) -> bool {
        self.parsed.is_some()
    }

    /// The migration a file at `path` holding `text` is, checked and
    /// checksummed as refinery does; not parsed yet.
    pub fn from_text(path: PathBuf, text: String) -> Result<SourceMigration, SourceError> {
        let stem = migration_stem(&path)?;
        let kind = match stem.starts_with('U') {
            true => Kind::Unversioned,
            false => Kind::Versioned,
        };
        let (digits, name) = stem[1..]
            .split_once("__")
            .expect("a valid stem has a version and a name");
        let version: Version = digits
            .parse()
            .map_err(|_| SourceError::VersionTooLarge { path: path.clone() })?;
        // refinery itself for the 32-bit width, the one its default build
        // uses; the 64-bit width hashes the same fields as its
        // `int8-versions` build.
        let int4 = Migration::unapplied(stem, &text)
            .ok()
            .map(|migration| migration.checksum());
        let checksums = Checksums {
            int4,
            int8: checksum_of(name, version, &text),
        };
        Ok(SourceMigration {
            version,
            name: name.to_owned(),
            kind,
            checksums,
            path,
            text,
            parsed: None,
        })
    }
}

/// refinery's checksum of a migration at a version width.
pub fn checksum(name: &str, version: Version, text: &str, width: VersionWidth) -> u64 {
    match (width, i32::try_from(version)) {
        (VersionWidth::Int4, Ok(version)) => checksum_of(name, version, text),
        _ => checksum_of(name, version, text),
    }
}

/// refinery's checksum: SipHash-1-3 of the name, the version at its width
/// and the text, each as `Hash` writes it.
fn checksum_of(name: &str, version: impl Hash, text: &str) -> u64 {
    let mut hasher = SipHasher13::new();
    name.to_owned().hash(&mut hasher);
    version.hash(&mut hasher);
    text.hash(&mut hasher);
    hasher.finish()
}

/// The file name of a migration without `.sql`, when it is named as one must be.
fn migration_stem(path: &Path) -> Result<&str, SourceError> {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_suffix(".sql"))
        .filter(|stem| is_valid_stem(stem))
        .ok_or_else(|| SourceError::BadName {
            path: path.to_path_buf(),
        })
}

/// Parses every migration whose version is not in `applied`; every file
/// that does not parse or mixes transaction modes is reported, all at once.
pub fn parse_pending(
    sources: &mut [SourceMigration],
    applied: &[Version],
) -> Result<(), InvalidFiles> {
    let mut problems = Vec::new();
    for source in sources
        .iter_mut()
        .filter(|s| !applied.contains(&s.version) && s.parsed.is_none())
    {
        let examined = sql::examine(&source.path, source.text.clone());
        if examined.problems.is_empty() {
            source.parsed = Some(examined.file);
        } else {
            problems.extend(examined.problems);
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(InvalidFiles(problems)),
    }
}

/// Reads every migration below `dir` (sorted by version). Files whose name
/// starts like a migration, or ends in `.sql`, must be valid migrations;
/// other files (a README, say) are left alone.
pub fn load(dir: &Path) -> Result<Vec<SourceMigration>, SourceError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let mut by_version: BTreeMap<Version, SourceMigration> = BTreeMap::new();
    for path in files {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !looks_like_migration(&file_name) {
            continue;
        }
        // Before reading, so that a misnamed file is reported as such even
        // when it cannot be read.
        migration_stem(&path)?;
        let bytes = std::fs::read(&path).map_err(|source| SourceError::Unreadable {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|error| {
            let offset = error.utf8_error().valid_up_to();
            let line = error.as_bytes()[..offset]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            SourceError::NotUtf8 {
                path: path.clone(),
                offset,
                line,
            }
        })?;
        let source = SourceMigration::from_text(path, text)?;
        if let Some(existing) = by_version.get(&source.version) {
            return Err(SourceError::DuplicateVersion {
                version: source.version,
                first: existing.path.clone(),
                second: source.path,
            });
        }
        by_version.insert(source.version, source);
    }
    Ok(by_version.into_values().collect())
}

/// Every file below `dir`. Hidden entries (a name starting with a dot) are
/// not read: a Kubernetes ConfigMap volume holds each file three times,
/// twice under `..data` and `..<timestamp>` directories, and `.git` is no
/// migration either.
fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let unreadable = |source| SourceError::UnreadableDirectory {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // The directory entry's type costs no system call; a symbolic link
        // is followed to see what it points at.
        let is_dir = match entry.file_type() {
            Ok(kind) if !kind.is_symlink() => kind.is_dir(),
            _ => path.is_dir(),
        };
        if is_dir {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// A `.sql` file, or a file named like `V3…`/`U3…`, is meant as a migration.
fn looks_like_migration(file_name: &str) -> bool {
    let mut chars = file_name.chars();
    let prefixed = matches!(chars.next(), Some('V' | 'U' | 'v' | 'u'))
        && chars.next().is_some_and(|c| c.is_ascii_digit());
    prefixed || file_name.to_ascii_lowercase().ends_with(".sql")
}

/// `V` or `U`, digits, `__`, then one or more word characters: refinery's
/// naming, matched whole (refinery matches a prefix and skips the rest).
fn is_valid_stem(stem: &str) -> bool {
    let Some(rest) = stem.strip_prefix('V').or_else(|| stem.strip_prefix('U')) else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let Some(name) = rest[digits..].strip_prefix("__") else {
        return false;
    };
    digits > 0 && is_valid_name(name)
}

/// The name part of a migration file (after `V{version}__`): one or more
/// letters, digits and underscores.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_whole() {
        assert!(is_valid_stem("V1__init"));
        assert!(is_valid_stem("U12__refresh_views"));
        assert!(!is_valid_stem("V1_init"));
        assert!(!is_valid_stem("V1__add-users"));
        assert!(!is_valid_stem("V1.5__x"));
        assert!(!is_valid_stem("V__x"));
        assert!(!is_valid_stem("v1__x"));
        assert!(!is_valid_stem("V1__"));
        assert!(is_valid_name("add_orders2"));
        assert!(!is_valid_name("add orders"));
        assert!(!is_valid_name(""));
    }

    fn checksums(stem: &str, text: &str) -> Checksums {
        SourceMigration::from_text(PathBuf::from(format!("{stem}.sql")), text.to_owned())
            .unwrap()
            .checksums
    }

    /// The 32-bit checksum is refinery's own; the hashing that gives the
    /// 64-bit one must give refinery's at 32 bits too.
    #[test]
    fn the_checksum_formula_is_refinerys_at_32_bits() {
        for (stem, name, version, text) in [
            ("V1__init", "init", 1, "CREATE TABLE a (id int);\n"),
            ("U7__refresh", "refresh", 7, "SELECT 1;"),
            ("V2147483647__last", "last", i32::MAX, ""),
            ("V0042__ünïcode", "ünïcode", 42, "-- é\r\nSELECT 'ß';"),
        ] {
            let checksums = checksums(stem, text);
            assert_eq!(checksums.int4, Some(checksum_of(name, version, text)));
            assert_ne!(checksums.int4, Some(checksums.int8));
        }
    }

    /// Values printed by refinery-core 0.10.1 built with `int8-versions`.
    #[test]
    fn the_64_bit_checksum_is_refinerys_int8_versions_checksum() {
        for (stem, text, expected) in [
            (
                "V1__init",
                "CREATE TABLE a (id int);\n",
                8578745575425343912,
            ),
            (
                "V20261123160000__add_orders",
                "CREATE TABLE orders (id bigint PRIMARY KEY);\n",
                11830511706417636397,
            ),
            ("U7__refresh", "SELECT 1;", 7465278086369672123),
        ] {
            assert_eq!(checksums(stem, text).int8, expected, "{stem}");
        }
        assert_eq!(checksums("V20261123160000__x", "").int4, None);
    }

    #[test]
    fn versions_up_to_64_bits_are_read() {
        let read = |stem: &str| {
            SourceMigration::from_text(PathBuf::from(format!("{stem}.sql")), String::new())
        };
        assert_eq!(read("V9223372036854775807__x").unwrap().version, i64::MAX);
        assert!(matches!(
            read("V9223372036854775808__x"),
            Err(SourceError::VersionTooLarge { .. })
        ));
        assert_eq!(read("V007__x").unwrap().version, 7);
    }

    /// The layout of a Kubernetes ConfigMap volume: each file a link into
    /// `..data`, itself a link to the current `..<timestamp>` directory.
    #[test]
    fn a_configmap_volume_is_read_once_and_linked_directories_are_followed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let snapshot = root.join("..2026_11_23_16_00_00.123456789");
        std::fs::create_dir(&snapshot).unwrap();
        std::fs::write(snapshot.join("V1__a.sql"), "SELECT 1;").unwrap();
        symlink("..2026_11_23_16_00_00.123456789", root.join("..data")).unwrap();
        symlink("..data/V1__a.sql", root.join("V1__a.sql")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("V2__b.sql"), "SELECT 2;").unwrap();
        symlink(elsewhere.path(), root.join("more")).unwrap();
        std::fs::create_dir(root.join(".git")).unwrap();
        std::fs::write(root.join(".git").join("V3__c.sql"), "SELECT 3;").unwrap();
        let loaded = load(root).unwrap();
        let versions: Vec<Version> = loaded.iter().map(|s| s.version).collect();
        assert_eq!(versions, [1, 2]);
        assert_eq!(loaded[0].text(), "SELECT 1;");
    }

    #[test]
    fn what_counts_as_meant_to_be_a_migration() {
        assert!(looks_like_migration("V1__x.sql"));
        assert!(looks_like_migration("create_users.sql"));
        assert!(looks_like_migration("V2__x.sq"));
        assert!(looks_like_migration("v2__x.sql"));
        assert!(!looks_like_migration("README.md"));
        assert!(!looks_like_migration(".gitkeep"));
    }
}
