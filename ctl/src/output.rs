//! Rendering for the terminal: aligned tables and key/value blocks for
//! people, pretty JSON for scripts. Pure functions over strings; the
//! command layer decides where the text goes.

use serde::Serialize;

/// The `-o/--output` choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// Pretty-printed JSON, shaped like the aws CLI's ECS output.
    Json,
}

/// Columns separated by two spaces, each as wide as its widest cell; no
/// trailing whitespace. Without a header it is a key/value block.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row of column names.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: Some(header.iter().map(|h| (*h).to_owned()).collect()),
            rows: Vec::new(),
        }
    }

    /// A table without a header, for `Key:  value` blocks.
    pub fn plain() -> Self {
        Self::default()
    }

    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The table as text, ending with a newline (empty for no header and no rows).
    pub fn render(&self) -> String {
        let lines: Vec<&Vec<String>> = self.header.iter().chain(&self.rows).collect();
        let columns = lines.iter().map(|l| l.len()).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = widths[i] - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Pretty JSON with a final newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serializing our own view types (strings, numbers, serde_json values)
    // cannot fail; fall back to `null` rather than panic all the same.
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    s.push('\n');
    s
}

/// `-` for an absent value, as tables show it.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// Blocks separated by one empty line.
pub fn blocks(parts: impl IntoIterator<Item = String>) -> String {
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn aligns_columns_without_trailing_spaces() {
        let mut t = Table::new(&["NAME", "STATUS", "NOTE"]);
        t.row(["default", "ACTIVE", ""]);
        t.row(["prod-eu-west", "INACTIVE", "x"]);
        t.row(["ünïcode", "A", "long note"]);
        expect![[r#"
            NAME          STATUS    NOTE
            default       ACTIVE
            prod-eu-west  INACTIVE  x
            ünïcode       A         long note
        "#]]
        .assert_eq(&t.render());
    }

    #[test]
    fn plain_tables_and_empty_tables() {
        let mut t = Table::plain();
        t.row(["Name:", "default"]).row(["Registered at:", "-"]);
        expect![[r#"
            Name:           default
            Registered at:  -
        "#]]
        .assert_eq(&t.render());
        expect![[r#"
            NAME  STATUS
        "#]]
        .assert_eq(&Table::new(&["NAME", "STATUS"]).render());
        assert_eq!(Table::plain().render(), "");
    }

    #[test]
    fn json_is_pretty_with_a_final_newline() {
        expect![[r#"
            {
              "a": [
                1
              ]
            }
        "#]]
        .assert_eq(&json(&serde_json::json!({"a": [1]})));
    }
}
