//! EventBridge event patterns: which events a webhook subscription gets.
//!
//! A pattern is a JSON object shaped like the events it matches. Each
//! member names a field of the event (`source`, `detail-type`, `detail`,
//! ...); an object descends into the field of that name, an array lists the
//! values the field may have (any one matches: OR). Every member must match
//! (AND). When the event's field is an array, the member matches if any of
//! its elements does. An array of the pattern holds plain values (a string,
//! number, boolean or null; matched exactly) and these filters, as
//! EventBridge has them:
//!
//! - `{"prefix": "s"}`, `{"suffix": "s"}`, `{"equals-ignore-case": "s"}`;
//! - `{"anything-but": v}` with `v` a value, an array of values, or
//!   `{"prefix": "s"}`: matches a present field that is none of them;
//! - `{"exists": true|false}`: whether the field is there at all;
//! - `{"numeric": [">", 0, "<=", 5]}`: one or two comparisons (`=`, `<`,
//!   `<=`, `>`, `>=`) that a number must all meet.
//!
//! [`Pattern::compile`] checks the whole pattern first and names the JSON
//! path of what is wrong (`pattern.detail.lastStatus[0].prefix`); matching
//! is pure and never fails.

use serde_json::{Map, Value};

/// A pattern that does not compile, at its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PatternError {
    pub path: String,
    pub message: String,
}

/// The longest pattern accepted, in bytes of JSON (EventBridge: 4 KiB
/// with its own counting; Berth allows more).
pub const MAX_PATTERN_LEN: usize = 16 * 1024;

/// A compiled event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    /// Every field must match.
    fields: Vec<(String, FieldRule)>,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldRule {
    /// Descend into an object.
    Nested(Node),
    /// Any of these matches (OR).
    AnyOf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Value>),
    AnythingButPrefix(String),
    Exists(bool),
    Numeric(Vec<(Cmp, f64)>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

fn err(path: &str, message: impl Into<String>) -> PatternError {
    PatternError {
        path: path.to_owned(),
        message: message.into(),
    }
}

impl Pattern {
    /// Parses and checks `json`; errors name paths under `root` (the
    /// request field the pattern came in, e.g. `pattern`).
    pub fn compile(json: &str, root: &str) -> Result<Self, PatternError> {
        if json.len() > MAX_PATTERN_LEN {
            return Err(err(
                root,
                format!(
                    "is {} bytes; at most {MAX_PATTERN_LEN} are allowed",
                    json.len()
                ),
            ));
        }
        let v: Value =
            serde_json::from_str(json).map_err(|e| err(root, format!("is not valid JSON: {e}")))?;
        let Value::Object(map) = v else {
            return Err(err(root, "must be a JSON object"));
        };
        if map.is_empty() {
            return Err(err(root, "must name at least one field"));
        }
        Ok(Self {
            root: node(&map, root)?,
        })
    }

    /// A pattern that matches every event (a subscription without one).
    pub fn everything() -> Self {
        Self {
            root: Node { fields: Vec::new() },
        }
    }

    /// Whether `event` (EventBridge's JSON of one event) matches.
    pub fn matches(&self, event: &Value) -> bool {
        node_matches(&self.root, Some(event))
    }
}

fn node(map: &Map<String, Value>, path: &str) -> Result<Node, PatternError> {
    let mut fields = Vec::with_capacity(map.len());
    for (k, v) in map {
        let p = format!("{path}.{k}");
        let rule = match v {
            Value::Object(inner) => {
                if inner.is_empty() {
                    return Err(err(&p, "an object must name at least one field"));
                }
                FieldRule::Nested(node(inner, &p)?)
            }
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(err(&p, "must list at least one value"));
                }
                let ms = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| matcher(item, &format!("{p}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                FieldRule::AnyOf(ms)
            }
            _ => {
                return Err(err(
                    &p,
                    "must be an array of values (EventBridge matches a list, e.g. [\"RUNNING\"]) or an object",
                ))
            }
        };
        fields.push((k.clone(), rule));
    }
    Ok(Node { fields })
}

fn string_arg(v: &Value, path: &str) -> Result<String, PatternError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(err(path, "must be a string")),
    }
}

fn matcher(item: &Value, path: &str) -> Result<Matcher, PatternError> {
    let Value::Object(m) = item else {
        return match item {
            Value::Array(_) => Err(err(path, "a value list cannot hold another list")),
            v => Ok(Matcher::Exact(v.clone())),
        };
    };
    let mut entries = m.iter();
    let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
        return Err(err(
            path,
            "a filter is an object with exactly one member (prefix, suffix, equals-ignore-case, anything-but, exists, numeric)",
        ));
    };
    let p = format!("{path}.{op}");
    Ok(match op.as_str() {
        "prefix" => Matcher::Prefix(string_arg(arg, &p)?),
        "suffix" => Matcher::Suffix(string_arg(arg, &p)?),
        "equals-ignore-case" => Matcher::EqualsIgnoreCase(string_arg(arg, &p)?),
        "exists" => match arg {
            Value::Bool(b) => Matcher::Exists(*b),
            _ => return Err(err(&p, "must be true or false")),
        },
        "anything-but" => match arg {
            Value::Array(vs) => {
                if vs.is_empty() {
                    return Err(err(&p, "must list at least one value"));
                }
                for (i, v) in vs.iter().enumerate() {
                    if v.is_object() || v.is_array() {
                        return Err(err(
                            &format!("{p}[{i}]"),
                            "must be a string, number, boolean or null",
                        ));
                    }
                }
                Matcher::AnythingBut(vs.clone())
            }
            Value::Object(inner) => match inner.get("prefix") {
                Some(s) if inner.len() == 1 => {
                    Matcher::AnythingButPrefix(string_arg(s, &format!("{p}.prefix"))?)
                }
                _ => return Err(err(&p, "the only filter allowed here is {\"prefix\": …}")),
            },
            v => Matcher::AnythingBut(vec![v.clone()]),
        },
        "numeric" => Matcher::Numeric(numeric(arg, &p)?),
        other => {
            return Err(err(
                &p,
                format!("unknown filter {other:?}; use prefix, suffix, equals-ignore-case, anything-but, exists or numeric"),
            ))
        }
    })
}

fn numeric(arg: &Value, path: &str) -> Result<Vec<(Cmp, f64)>, PatternError> {
    let Value::Array(items) = arg else {
        return Err(err(path, "must be an array like [\">\", 0, \"<=\", 5]"));
    };
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(err(
            path,
            "must hold one or two (operator, number) pairs, like [\">\", 0, \"<=\", 5]",
        ));
    }
    let mut out = Vec::new();
    for (i, pair) in items.chunks(2).enumerate() {
        let op_path = format!("{path}[{}]", i * 2);
        let cmp = match pair[0].as_str() {
            Some("=") => Cmp::Eq,
            Some("<") => Cmp::Lt,
            Some("<=") => Cmp::Le,
            Some(">") => Cmp::Gt,
            Some(">=") => Cmp::Ge,
            _ => return Err(err(&op_path, "must be one of =, <, <=, >, >=")),
        };
        let n = pair[1]
            .as_f64()
            .ok_or_else(|| err(&format!("{path}[{}]", i * 2 + 1), "must be a number"))?;
        out.push((cmp, n));
    }
    Ok(out)
}

fn node_matches(node: &Node, value: Option<&Value>) -> bool {
    node.fields.iter().all(|(name, rule)| {
        let field = match value {
            Some(Value::Object(m)) => m.get(name),
            _ => None,
        };
        match rule {
            FieldRule::Nested(inner) => match field {
                // An array of objects: any element may match.
                Some(Value::Array(items)) => items.iter().any(|i| node_matches(inner, Some(i))),
                f => node_matches(inner, f),
            },
            FieldRule::AnyOf(ms) => ms.iter().any(|m| matcher_matches(m, field)),
        }
    })
}

fn matcher_matches(m: &Matcher, field: Option<&Value>) -> bool {
    match (m, field) {
        (Matcher::Exists(want), f) => f.is_some() == *want,
        (_, None) => false,
        (m, Some(Value::Array(items))) => items.iter().any(|i| scalar_matches(m, i)),
        (m, Some(v)) => scalar_matches(m, v),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn scalar_matches(m: &Matcher, v: &Value) -> bool {
    match m {
        Matcher::Exact(want) => same(want, v),
        Matcher::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        Matcher::Suffix(p) => v.as_str().is_some_and(|s| s.ends_with(p.as_str())),
        Matcher::EqualsIgnoreCase(p) => v
            .as_str()
            .is_some_and(|s| s.to_lowercase() == p.to_lowercase()),
        Matcher::AnythingBut(not) => !not.iter().any(|n| same(n, v)),
        Matcher::AnythingButPrefix(p) => v.as_str().is_some_and(|s| !s.starts_with(p.as_str())),
        Matcher::Exists(_) => true,
        Matcher::Numeric(cmps) => v.as_f64().is_some_and(|x| {
            cmps.iter().all(|(c, n)| match c {
                Cmp::Eq => x == *n,
                Cmp::Lt => x < *n,
                Cmp::Le => x <= *n,
                Cmp::Gt => x > *n,
                Cmp::Ge => x >= *n,
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task_event(last: &str, group: &str, exit: Option<i64>) -> Value {
        let mut containers = vec![json!({"name": "web", "lastStatus": last})];
        if let Some(code) = exit {
            containers.push(json!({"name": "sidecar", "exitCode": code}));
        }
        json!({
            "version": "0",
            "source": "aws.ecs",
            "detail-type": "ECS Task State Change",
            "resources": ["arn:aws:ecs:local:000000000000:task/default/abc"],
            "detail": {
                "lastStatus": last,
                "desiredStatus": "RUNNING",
                "group": group,
                "cpu": "256",
                "containers": containers,
                "overrides": {"containerOverrides": []},
                "attachments": [],
            }
        })
    }

    fn compile(p: Value) -> Pattern {
        Pattern::compile(&p.to_string(), "pattern").unwrap()
    }

    fn compile_err(p: &str) -> PatternError {
        Pattern::compile(p, "pattern").unwrap_err()
    }

    #[test]
    fn source_and_detail_type_match_exactly_and_arrays_are_or() {
        let p = compile(json!({
            "source": ["aws.ecs"],
            "detail-type": ["ECS Task State Change", "ECS Deployment State Change"],
        }));
        assert!(p.matches(&task_event("RUNNING", "service:web", None)));
        let mut other = task_event("RUNNING", "service:web", None);
        other["detail-type"] = json!("ECS Container Instance State Change");
        assert!(!p.matches(&other));
        other["detail-type"] = json!("ECS Deployment State Change");
        assert!(p.matches(&other));
        other["source"] = json!("aws.ec2");
        assert!(!p.matches(&other));
    }

    #[test]
    fn nested_detail_fields_and_arrays_of_objects() {
        let p = compile(
            json!({"detail": {"lastStatus": ["STOPPED"], "containers": {"name": ["web"]}}}),
        );
        assert!(p.matches(&task_event("STOPPED", "family:x", None)));
        assert!(!p.matches(&task_event("RUNNING", "family:x", None)));
        let p = compile(json!({"detail": {"containers": {"exitCode": [{"numeric": [">", 0]}]}}}));
        assert!(p.matches(&task_event("STOPPED", "g", Some(137))));
        assert!(!p.matches(&task_event("STOPPED", "g", Some(0))));
        assert!(!p.matches(&task_event("STOPPED", "g", None)));
        // A member of the event's array: `resources` is a list.
        let p = compile(
            json!({"resources": [{"prefix": "arn:aws:ecs:local:000000000000:task/default/"}]}),
        );
        assert!(p.matches(&task_event("RUNNING", "g", None)));
    }

    #[test]
    fn prefix_suffix_ignore_case_anything_but() {
        let e = task_event("DEACTIVATING", "service:web", None);
        assert!(compile(json!({"detail": {"group": [{"prefix": "service:"}]}})).matches(&e));
        assert!(!compile(json!({"detail": {"group": [{"prefix": "family:"}]}})).matches(&e));
        assert!(compile(json!({"detail": {"group": [{"suffix": ":web"}]}})).matches(&e));
        assert!(compile(
            json!({"detail": {"lastStatus": [{"equals-ignore-case": "deactivating"}]}})
        )
        .matches(&e));
        assert!(compile(
            json!({"detail": {"lastStatus": [{"anything-but": ["RUNNING", "PENDING"]}]}})
        )
        .matches(&e));
        assert!(
            !compile(json!({"detail": {"lastStatus": [{"anything-but": "DEACTIVATING"}]}}))
                .matches(&e)
        );
        assert!(
            !compile(json!({"detail": {"group": [{"anything-but": {"prefix": "service:"}}]}}))
                .matches(&e)
        );
        // anything-but needs the field to be there.
        assert!(!compile(json!({"detail": {"nope": [{"anything-but": "x"}]}})).matches(&e));
    }

    #[test]
    fn exists_and_numeric() {
        let e = task_event("RUNNING", "g", None);
        assert!(compile(json!({"detail": {"group": [{"exists": true}]}})).matches(&e));
        assert!(compile(json!({"detail": {"stopCode": [{"exists": false}]}})).matches(&e));
        assert!(!compile(json!({"detail": {"stopCode": [{"exists": true}]}})).matches(&e));
        // Numbers compare as numbers; "256" is a string, not a number.
        assert!(!compile(json!({"detail": {"cpu": [{"numeric": [">=", 256]}]}})).matches(&e));
        let n = json!({"detail": {"n": 5}});
        assert!(compile(json!({"detail": {"n": [{"numeric": [">", 0, "<=", 5]}]}})).matches(&n));
        assert!(!compile(json!({"detail": {"n": [{"numeric": [">", 5]}]}})).matches(&n));
        assert!(compile(json!({"detail": {"n": [5.0]}})).matches(&n));
    }

    #[test]
    fn everything_matches_all() {
        assert!(Pattern::everything().matches(&task_event("RUNNING", "g", None)));
    }

    #[test]
    fn bad_patterns_name_their_json_path() {
        let cases = [
            ("[]", "pattern", "must be a JSON object"),
            ("{}", "pattern", "at least one field"),
            ("{", "pattern", "not valid JSON"),
            (
                r#"{"source": "aws.ecs"}"#,
                "pattern.source",
                "must be an array",
            ),
            (r#"{"source": []}"#, "pattern.source", "at least one value"),
            (r#"{"detail": {}}"#, "pattern.detail", "at least one field"),
            (
                r#"{"detail": {"lastStatus": [["x"]]}}"#,
                "pattern.detail.lastStatus[0]",
                "another list",
            ),
            (
                r#"{"detail": {"lastStatus": ["x", {"prefix": 1}]}}"#,
                "pattern.detail.lastStatus[1].prefix",
                "must be a string",
            ),
            (
                r#"{"detail": {"x": [{"wildcard": "a*"}]}}"#,
                "pattern.detail.x[0].wildcard",
                "unknown filter",
            ),
            (
                r#"{"detail": {"x": [{"prefix": "a", "suffix": "b"}]}}"#,
                "pattern.detail.x[0]",
                "exactly one member",
            ),
            (
                r#"{"detail": {"x": [{"numeric": [">", "0"]}]}}"#,
                "pattern.detail.x[0].numeric[1]",
                "must be a number",
            ),
            (
                r#"{"detail": {"x": [{"numeric": ["~", 0]}]}}"#,
                "pattern.detail.x[0].numeric[0]",
                "one of",
            ),
            (
                r#"{"detail": {"x": [{"numeric": [">"]}]}}"#,
                "pattern.detail.x[0].numeric",
                "pairs",
            ),
            (
                r#"{"detail": {"x": [{"exists": "yes"}]}}"#,
                "pattern.detail.x[0].exists",
                "true or false",
            ),
            (
                r#"{"detail": {"x": [{"anything-but": {"suffix": "a"}}]}}"#,
                "pattern.detail.x[0].anything-but",
                "prefix",
            ),
            (
                r#"{"detail": {"x": [{"anything-but": [{}]}]}}"#,
                "pattern.detail.x[0].anything-but[0]",
                "must be a string",
            ),
        ];
        for (p, path, msg) in cases {
            let e = compile_err(p);
            assert_eq!(e.path, path, "{p}: {e}");
            assert!(e.message.contains(msg), "{p}: {e}");
        }
        let big = format!(r#"{{"source": ["{}"]}}"#, "a".repeat(MAX_PATTERN_LEN));
        assert!(compile_err(&big).message.contains("at most"));
    }
}
