//! A place in a migration file, shown as `file:line:col` with the line and a
//! caret under the column.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

impl Location {
    /// The line of `text` this location points into, with a caret:
    /// ```text
    ///    12 | CREATE TABEL users (
    ///       |        ^
    /// ```
    pub fn snippet(&self, text: &str) -> String {
        let Some(line) = text.lines().nth(self.line.saturating_sub(1)) else {
            return String::new();
        };
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len());
        let line = line.replace('\t', " ");
        let caret_pad = " ".repeat(self.column.saturating_sub(1));
        format!("  {gutter} |\n  {number} | {line}\n  {gutter} | {caret_pad}^")
    }
}
