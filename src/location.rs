//! A place in a source file, shown as `file:line:col`, and the one renderer
//! of the file's line under it with a caret or an underline.
//!
//! Columns count characters (Unicode scalar values, a tab is one), 1-based:
//! what editors take in a `file:line:col` jump. Where the caret lands on
//! screen is a separate matter, the display width of what precedes it (wide
//! CJK and emoji take two cells, combining accents none, a tab four), which
//! annotate-snippets works out.

use std::fmt;
use std::path::{Path, PathBuf};

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

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
    ///    |
    /// 12 | CREATE TABEL users (
    ///    |        ^
    /// ```
    pub fn snippet(&self, text: &str) -> String {
        snippet(text, Span::point(self.line, self.column), &[])
    }
}

/// From one place to another of a text, the end excluded; lines and columns
/// 1-based, columns in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

impl Span {
    pub fn point(line: usize, column: usize) -> Span {
        Span {
            line,
            column,
            end_line: line,
            end_column: column,
        }
    }
}

/// A line shown under the snippet, `= help: …` or `= note: …`.
#[derive(Debug, Clone, Copy)]
pub enum Footer<'a> {
    Help(&'a str),
    Note(&'a str),
}

/// The first line of `span` with a caret under its start (a point) or `^`
/// under its characters up to its end or the end of that line, then the
/// footers. Plain text, no colour: it ends up in error messages and reports
/// that are piped and compared. A place past the end of `text` is shown at
/// the end of `text`.
pub fn snippet(text: &str, span: Span, footers: &[Footer<'_>]) -> String {
    let (line_number, line) = nth_line(text, span.line);
    let (start, end) = if line_number < span.line {
        (line.len(), line.len())
    } else if span.end_line == span.line {
        let start = byte_offset(line, span.column);
        (start, byte_offset(line, span.end_column).max(start))
    } else {
        (byte_offset(line, span.column), line.len())
    };
    let source = Snippet::source(line)
        .line_start(line_number)
        .annotation(AnnotationKind::Primary.span(start..end));
    let messages = footers.iter().map(|footer| match footer {
        Footer::Help(text) => Level::HELP.message(*text),
        Footer::Note(text) => Level::NOTE.message(*text),
    });
    let report = [Group::with_level(Level::ERROR)
        .element(source)
        .elements(messages)];
    Renderer::plain().render(&report)
}

/// The 1-based `number`th line of `text` without its line ending, or the last
/// line when `text` has fewer; the line after a final newline counts, empty,
/// as it does for [`LineIndex`] and in editors.
fn nth_line(text: &str, number: usize) -> (usize, &str) {
    let count = text.split('\n').count();
    let number = number.clamp(1, count);
    let line = text.split('\n').nth(number - 1).unwrap_or_default();
    (number, line.strip_suffix('\r').unwrap_or(line))
}

/// Where the 1-based character `column` of `line` starts, or the end of the
/// line when it has fewer characters.
fn byte_offset(line: &str, column: usize) -> usize {
    line.char_indices()
        .nth(column.saturating_sub(1))
        .map_or(line.len(), |(offset, _)| offset)
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
    use std::path::Path;

    use super::{Footer, LineIndex, Span, snippet};

    /// The snippet of the place `offset` bytes into `text`, as a parser reports it.
    fn caret_at(text: &str, offset: usize) -> String {
        LineIndex::new(text)
            .location(Path::new("f.sql"), offset)
            .snippet(text)
    }

    #[test]
    fn line_index_counts_characters() {
        let index = LineIndex::new("ab\nçd\n");
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(3), (2, 1));
        assert_eq!(index.line_column(5), (2, 2));
    }

    #[test]
    fn ascii() {
        let text = "SELECT 1;\nCREATE TABEL u (b int);\n";
        assert_eq!(
            caret_at(text, text.find("TABEL").unwrap()),
            "  |\n2 | CREATE TABEL u (b int);\n  |        ^"
        );
    }

    #[test]
    fn the_gutter_widens_with_the_line_number() {
        let text = format!("{}x y\n", "\n".repeat(99));
        assert_eq!(
            caret_at(&text, text.find('y').unwrap()),
            "    |\n100 | x y\n    |   ^"
        );
    }

    #[test]
    fn tabs_show_as_four_spaces_and_the_caret_follows() {
        let text = "\tSELECT\tx;";
        assert_eq!(
            caret_at(text, text.find('x').unwrap()),
            "  |\n1 |     SELECT    x;\n  |               ^"
        );
    }

    #[test]
    fn wide_characters_before_the_column_take_two_cells() {
        let text = "SELECT '日本語' AS x;";
        assert_eq!(
            LineIndex::new(text).line_column(text.find('x').unwrap()).1,
            17
        );
        assert_eq!(
            caret_at(text, text.find('x').unwrap()),
            "  |\n1 | SELECT '日本語' AS x;\n  |                    ^"
        );
    }

    #[test]
    fn combining_accents_take_no_cell() {
        let text = "SELECT 'e\u{301}te\u{301}' x;";
        assert_eq!(
            caret_at(text, text.find('x').unwrap()),
            "  |\n1 | SELECT 'e\u{301}te\u{301}' x;\n  |              ^"
        );
    }

    #[test]
    fn emoji_take_two_cells() {
        let text = "SELECT '🐘🐘' x;";
        assert_eq!(
            caret_at(text, text.find('x').unwrap()),
            "  |\n1 | SELECT '🐘🐘' x;\n  |               ^"
        );
    }

    #[test]
    fn a_range_over_wide_characters_underlines_every_cell() {
        let text = "INSERT INTO t VALUES ('日本');";
        let span = Span {
            line: 1,
            column: 24,
            end_line: 1,
            end_column: 26,
        };
        assert_eq!(
            snippet(text, span, &[]),
            "  |\n1 | INSERT INTO t VALUES ('日本');\n  |                        ^^^^"
        );
    }

    #[test]
    fn a_range_over_several_lines_underlines_the_first_to_its_end() {
        let text = "CREATE TABLE t (\n  a int\n);\n";
        let span = Span {
            line: 1,
            column: 1,
            end_line: 3,
            end_column: 3,
        };
        assert_eq!(
            snippet(text, span, &[]),
            "  |\n1 | CREATE TABLE t (\n  | ^^^^^^^^^^^^^^^^"
        );
    }

    #[test]
    fn footers_follow_the_snippet() {
        let text = "CREATE INDEX i ON t (a);";
        let span = Span {
            line: 1,
            column: 1,
            end_line: 1,
            end_column: 25,
        };
        let footers = [
            Footer::Help("use CONCURRENTLY\nin its own migration"),
            Footer::Note("a note"),
        ];
        assert_eq!(
            snippet(text, span, &footers),
            "  |\n\
             1 | CREATE INDEX i ON t (a);\n  \
             | ^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             |\n  \
             = help: use CONCURRENTLY\n          \
             in its own migration\n  \
             = note: a note"
        );
    }

    #[test]
    fn a_position_at_the_end_of_a_line_points_past_its_last_character() {
        let text = "SELECT x\nFROM t;\n";
        assert_eq!(
            caret_at(text, text.find('\n').unwrap()),
            "  |\n1 | SELECT x\n  |         ^"
        );
    }

    #[test]
    fn a_position_after_the_final_newline_is_on_the_empty_last_line() {
        let text = "a = \n";
        assert_eq!(caret_at(text, text.len()), "  |\n2 |\n  | ^");
    }

    #[test]
    fn a_position_past_the_end_of_the_text_is_shown_at_its_end() {
        let text = "SELECT x";
        assert_eq!(
            snippet(text, Span::point(7, 3), &[]),
            "  |\n1 | SELECT x\n  |         ^"
        );
        assert_eq!(
            snippet(text, Span::point(1, 40), &[]),
            "  |\n1 | SELECT x\n  |         ^"
        );
    }

    #[test]
    fn an_empty_file_shows_an_empty_first_line() {
        assert_eq!(caret_at("", 0), "  |\n1 |\n  | ^");
    }

    #[test]
    fn crlf_line_endings_are_not_shown() {
        let text = "SELECT 1;\r\nCREATE TABEL u;\r\n";
        assert_eq!(
            caret_at(text, text.find("TABEL").unwrap()),
            "  |\n2 | CREATE TABEL u;\n  |        ^"
        );
        assert_eq!(
            caret_at(text, text.find('\r').unwrap()),
            "  |\n1 | SELECT 1;\n  |          ^"
        );
    }

    #[test]
    fn a_long_line_is_cut_around_the_caret() {
        let text = format!("INSERT INTO t VALUES {}oops;", "(1), ".repeat(60));
        let shown = caret_at(&text, text.find("oops").unwrap());
        let lines: Vec<&str> = shown.lines().collect();
        assert!(
            lines[1].starts_with("1 | ...") && lines[1].ends_with(" oops;"),
            "{shown}"
        );
        assert_eq!(lines[2].find('^'), lines[1].find("oops"));
    }

    #[test]
    fn control_characters_cannot_rewrite_the_terminal() {
        let text = "SELECT '\u{1b}[2J' x;";
        let shown = caret_at(text, text.find('x').unwrap());
        assert!(!shown.contains('\u{1b}'), "{shown:?}");
    }
}
