//! From the JSON text given to `RegisterTaskDefinition` to a validated
//! [`Registration`].
//!
//! 1. The text must be JSON; it is a bare definition or the
//!    `{"taskDefinition": {…}, "tags": […]}` wrapper that
//!    `aws ecs describe-task-definition` prints. The wrapper's `tags` move into
//!    the definition; the read-only fields of describe output
//!    ([`READ_ONLY_FIELDS`]) are dropped in both forms.
//! 2. Structure: the definition is deserialized into the [`TaskDefinition`]
//!    model. When that fails, each top-level field, each container, each
//!    container field and each element of a list is deserialized on its own,
//!    so that every unknown field and wrong type is reported with its path,
//!    not just the first. Structural errors stop here: semantic checks on a
//!    partly understood definition would report errors that are not there.
//! 3. Semantics: [`validate`](super::validate::validate).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use super::issue::{join, join_index, join_key, FieldIssue, InvalidTaskDefinition, ROOT_PATH};
use super::model::{ContainerDefinition, TaskDefinition};
use super::validate::validate;

/// Fields of `describe-task-definition` output that ECS assigns and that are
/// therefore dropped from a definition being registered.
pub const READ_ONLY_FIELDS: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

/// A definition accepted for registration, with the warnings about its
/// AWS-only fields (each naming its JSON path).
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub definition: TaskDefinition,
    pub warnings: Vec<FieldIssue>,
}

/// Parse and validate the JSON given to RegisterTaskDefinition: a bare definition, or the
/// `{"taskDefinition": {...}}` wrapper `aws ecs describe-task-definition` prints (its
/// read-only fields taskDefinitionArn, revision, status, requiresAttributes, compatibilities,
/// registeredAt, registeredBy, deregisteredAt are dropped; the wrapper's sibling "tags" array
/// is accepted too). The same read-only fields are dropped from a bare definition, as written
/// by `describe-task-definition --query taskDefinition`, and so is `deleteRequestedAt`.
///
/// Errors carry every problem found, each with its JSON path relative to the
/// definition object (`containerDefinitions[0].memory`, also for the wrapper
/// form). Never panics, whatever the input.
pub fn parse_registration(json: &str) -> Result<Registration, InvalidTaskDefinition> {
    let root: Value = serde_json::from_str(json)
        .map_err(|e| InvalidTaskDefinition::single(ROOT_PATH, format!("not valid JSON: {e}")))?;
    let object = extract_definition(root)?;
    let definition = deserialize_definition(object)?;
    let warnings = validate(&definition)?;
    Ok(Registration {
        definition,
        warnings,
    })
}

/// The definition object, unwrapped, with the wrapper's tags merged in and
/// the read-only fields removed.
fn extract_definition(root: Value) -> Result<Map<String, Value>, InvalidTaskDefinition> {
    let Value::Object(mut root) = root else {
        return Err(InvalidTaskDefinition::single(
            ROOT_PATH,
            format!(
                "expected a task definition object (or {{\"taskDefinition\": {{…}}}}), found {}",
                kind(&root)
            ),
        ));
    };
    let mut definition = match root.remove("taskDefinition") {
        None => root,
        Some(inner) => {
            let mut errors = Vec::new();
            let wrapper_tags = root.remove("tags");
            for key in root.keys() {
                errors.push(FieldIssue::new(
                    join_key("", key),
                    "unknown field beside taskDefinition, expected `taskDefinition` or `tags`",
                ));
            }
            let mut inner = match inner {
                Value::Object(m) => m,
                other => {
                    errors.push(FieldIssue::new(
                        "taskDefinition",
                        format!("expected an object, found {}", kind(&other)),
                    ));
                    Map::new()
                }
            };
            if let Some(tags) = wrapper_tags.filter(|t| !is_empty_or_null(t)) {
                match inner.get("tags") {
                    Some(own) if !is_empty_or_null(own) && *own != tags => {
                        errors.push(FieldIssue::new(
                            "tags",
                            "tags are given both inside taskDefinition and beside it, \
                             with different values",
                        ));
                    }
                    _ => {
                        inner.insert("tags".to_owned(), tags);
                    }
                }
            }
            if !errors.is_empty() {
                return Err(InvalidTaskDefinition { errors });
            }
            inner
        }
    };
    for field in READ_ONLY_FIELDS {
        definition.remove(*field);
    }
    Ok(definition)
}

fn is_empty_or_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn deserialize_definition(
    object: Map<String, Value>,
) -> Result<TaskDefinition, InvalidTaskDefinition> {
    let value = Value::Object(object);
    let first = match serde_path_to_error::deserialize::<_, TaskDefinition>(&value) {
        Ok(def) => return Ok(def),
        Err(e) => issue("", &e, None),
    };
    let Value::Object(object) = &value else {
        return Err(InvalidTaskDefinition {
            errors: vec![first],
        });
    };
    let mut errors = definition_errors(object);
    if errors.is_empty() {
        // Only the whole failed (should not happen): report what it said.
        errors.push(first);
    }
    Err(InvalidTaskDefinition { errors })
}

/// Every structural error of the definition, found field by field.
fn definition_errors(object: &Map<String, Value>) -> Vec<FieldIssue> {
    let mut errors = Vec::new();
    let skeleton = skeleton(&[
        ("family", Value::String("x".to_owned())),
        ("containerDefinitions", Value::Array(Vec::new())),
    ]);
    for required in ["family", "containerDefinitions"] {
        if !object.contains_key(required) {
            errors.push(FieldIssue::new(required, "required field is missing"));
        }
    }
    for (key, value) in object {
        match (key.as_str(), value) {
            ("containerDefinitions", Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    container_errors(&join_index("", key, i), item, &mut errors);
                }
            }
            _ => probe_field::<TaskDefinition>(&skeleton, "", key, value, &mut errors),
        }
    }
    errors
}

fn container_errors(prefix: &str, item: &Value, errors: &mut Vec<FieldIssue>) {
    let Value::Object(object) = item else {
        if let Err(e) = serde_path_to_error::deserialize::<_, ContainerDefinition>(item) {
            errors.push(issue(prefix, &e, None));
        }
        return;
    };
    for required in ["name", "image"] {
        if !object.contains_key(required) {
            errors.push(FieldIssue::new(
                join(prefix, required),
                "required field is missing",
            ));
        }
    }
    let skeleton = skeleton(&[
        ("name", Value::String("x".to_owned())),
        ("image", Value::String("x".to_owned())),
    ]);
    for (key, value) in object {
        probe_field::<ContainerDefinition>(&skeleton, prefix, key, value, errors);
    }
}

fn skeleton(fields: &[(&str, Value)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Deserializes `T` from `skeleton` (its required fields) plus `key: value`,
/// one list element at a time, recording each error at its path.
fn probe_field<T: DeserializeOwned>(
    skeleton: &Map<String, Value>,
    prefix: &str,
    key: &str,
    value: &Value,
    errors: &mut Vec<FieldIssue>,
) {
    let attempt = |v: Value| {
        let mut object = skeleton.clone();
        object.insert(key.to_owned(), v);
        serde_path_to_error::deserialize::<_, T>(Value::Object(object)).err()
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if let Some(e) = attempt(Value::Array(vec![item.clone()])) {
                    errors.push(issue(prefix, &e, Some(i)));
                }
            }
        }
        _ => {
            if let Some(e) = attempt(value.clone()) {
                errors.push(issue(prefix, &e, None));
            }
        }
    }
}

/// Turns a serde error into an issue at `prefix` + the error's path. With
/// `element`, the error came from a one-element copy of a list and its
/// second path segment (index 0) is replaced by the element's real index.
fn issue(
    prefix: &str,
    err: &serde_path_to_error::Error<serde_json::Error>,
    element: Option<usize>,
) -> FieldIssue {
    let mut path = prefix.to_owned();
    for (n, segment) in err.path().iter().enumerate() {
        match segment {
            Segment::Seq { index } => {
                let index = match element {
                    Some(real) if n == 1 => real,
                    _ => *index,
                };
                path.push_str(&format!("[{index}]"));
            }
            Segment::Map { key } => path = join_key(&path, key),
            Segment::Enum { variant } => path = join(&path, variant),
            Segment::Unknown => path = join(&path, "?"),
        }
    }
    refine(path, err.inner().to_string())
}

/// Makes serde's messages about unknown and missing fields point at the
/// field itself, with a suggestion for likely typos.
fn refine(path: String, message: String) -> FieldIssue {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, expected)) = rest.split_once('`') {
            let path = if last_segment_is(&path, name) {
                path
            } else {
                join_key(&path, name)
            };
            let expected = expected.trim_start_matches(',').trim();
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let hint = suggest(name, &candidates)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return FieldIssue::new(path, format!("unknown field{hint}, {expected}"));
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((name, _)) = rest.split_once('`') {
            return FieldIssue::new(join_key(&path, name), "required field is missing");
        }
    }
    FieldIssue::new(path, message)
}

fn last_segment_is(path: &str, name: &str) -> bool {
    let segment = join_key("", name);
    if segment.starts_with('[') {
        path.ends_with(&segment)
    } else {
        path == name || path.ends_with(&format!(".{name}"))
    }
}

/// The candidate closest to `name`: case-insensitive edit distance at most 2
/// and at most a third of the candidate's length.
fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2 && *d * 3 <= c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(256).collect();
    let b: Vec<char> = b.chars().take(256).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
