//! Findings about a task definition: [`FieldIssue`] (one error or warning at
//! one JSON path) and [`InvalidTaskDefinition`] (every error found at once).
//!
//! Paths name the field in the task definition object, in the form
//! `containerDefinitions[1].portMappings[0].hostPort`; top-level fields are
//! bare (`family`). Map keys that are not plain identifiers are quoted:
//! `dockerLabels["com.example.team"]`. An issue about the document as a whole
//! (not JSON, not an object) has the path `$`.

use std::fmt;

/// Path of issues about the document as a whole.
pub const ROOT_PATH: &str = "$";

/// One error or warning, naming the JSON path of the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    pub path: String,
    pub message: String,
}

impl FieldIssue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The task definition was rejected; `errors` holds every problem found, in
/// document order where there is one. Displayed as one line per issue.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", join_lines(.errors))]
pub struct InvalidTaskDefinition {
    pub errors: Vec<FieldIssue>,
}

impl InvalidTaskDefinition {
    pub(crate) fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldIssue::new(path, message)],
        }
    }
}

fn join_lines(issues: &[FieldIssue]) -> String {
    let lines: Vec<String> = issues.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Appends `.field` to `prefix` (or returns `field` when `prefix` is empty).
pub(crate) fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// `prefix.field[index]`.
pub(crate) fn join_index(prefix: &str, field: &str, index: usize) -> String {
    format!("{}[{index}]", join(prefix, field))
}

/// Appends a map key to `prefix`: `.key` for plain keys, `["key"]` otherwise.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        join(prefix, key)
    } else {
        // A JSON string literal is unambiguous for any key.
        let quoted = serde_json::Value::String(key.to_owned()).to_string();
        format!("{prefix}[{quoted}]")
    }
}
