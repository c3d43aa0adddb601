//! A place in a migration file, shown as `file:line:col` with the line and a
//! caret under the column.

use std::fmt;
use std::path::{Path, PathBuf};

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

/// Byte offsets to 1-based lines and columns (columns count characters).
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|start| *start <= offset);
        let line_start = self.starts[line - 1];
        let column = self.text[line_start..offset.min(self.text.len())]
            .chars()
            .count()
            + 1;
        (line, column)
    }

    pub fn location(&self, path: &Path, offset: usize) -> Location {
        let (line, column) = self.line_column(offset);
        Location {
            path: path.to_path_buf(),
            line,
            column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    #[test]
    fn line_index_counts_characters() {
        let index = LineIndex::new("ab\nçd\n");
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(3), (2, 1));
        assert_eq!(index.line_column(5), (2, 2));
    }
}
