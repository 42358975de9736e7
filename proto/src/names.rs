//! ECS's name rules, each written once, for the agent's configuration and
//! the scheduler's API alike.
//!
//! - Cluster names (and the other names ECS gives the same rule: service
//!   names, token names): 1–255 letters, digits, hyphens and underscores.
//! - Attribute names: 1–128 letters, digits, `-`, `_`, `.` and `/`. ECS also
//!   allows `\`; Berth does not, so that a name is always a path-safe word.
//! - Attribute values, ECS's rule: absent (`""` on Berth's wire and in its
//!   config: a presence-only attribute such as `ecs.capability.*`), or 1–128
//!   letters, digits, spaces and `-_.@/\:`, not starting or ending with a
//!   space.
//! - Tags, ECS's rule for every taggable resource: at most 50 per resource;
//!   keys 1–128 and values 0–256 characters of letters (any script),
//!   digits, spaces and `+ - = . _ : / @`; keys starting with `aws:` (any
//!   case) are reserved. [`check_tags`] applies all of it to a list.
//! - Attribute names starting with `ecs.` are the agent's (built-in); the
//!   API neither sets nor deletes them ([`is_builtin_attribute`]).

/// A name that breaks one of ECS's rules. The message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty or too long (lengths are in bytes, which for the allowed ASCII
    /// characters are characters).
    #[error("{value:?} must be {min}–{max} characters")]
    Length {
        value: String,
        min: usize,
        max: usize,
    },
    /// A character outside the rule's set.
    #[error("{value:?} contains {found:?}; only {allowed} are allowed")]
    Character {
        value: String,
        found: char,
        allowed: &'static str,
    },
    /// An attribute value with a space at either end.
    #[error("{value:?} must not start or end with a space")]
    EdgeSpace { value: String },
    /// A tag key with the prefix ECS reserves.
    #[error("{value:?}: the `aws:` prefix is reserved")]
    Reserved { value: String },
    /// Two tags with the same key in one list.
    #[error("duplicate tag key {key:?} (also tags[{first}])")]
    DuplicateKey { key: String, first: usize },
    /// More tags than a resource may have.
    #[error("{count} tags; a resource has at most {max}")]
    TooMany { count: usize, max: usize },
}

/// The longest cluster name.
pub const MAX_CLUSTER_NAME: usize = 255;
/// The longest attribute name, and the longest attribute value.
pub const MAX_ATTRIBUTE: usize = 128;

/// Most tags a resource may have.
pub const MAX_TAGS: usize = 50;
/// The longest tag key.
pub const MAX_TAG_KEY: usize = 128;
/// The longest tag value.
pub const MAX_TAG_VALUE: usize = 256;
const TAG_CHARS: &str = "letters, digits, spaces and '+', '-', '=', '.', '_', ':', '/', '@'";

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, ' ' | '+' | '-' | '=' | '.' | '_' | ':' | '/' | '@')
}

fn check(
    value: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    if value.is_empty() || value.len() > max {
        return Err(NameError::Length {
            value: value.to_owned(),
            min: 1,
            max,
        });
    }
    match value.chars().find(|c| !ok(*c)) {
        Some(found) => Err(NameError::Character {
            value: value.to_owned(),
            found,
            allowed,
        }),
        None => Ok(()),
    }
}

/// ECS's cluster-name rule: 1–255 letters, digits, `-` and `_`.
pub fn check_cluster_name(name: &str) -> Result<(), NameError> {
    check(
        name,
        MAX_CLUSTER_NAME,
        "letters, digits, '-' and '_'",
        |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
    )
}

/// Attribute names: 1–128 letters, digits, `-`, `_`, `.` and `/`.
pub fn check_attribute_name(name: &str) -> Result<(), NameError> {
    check(
        name,
        MAX_ATTRIBUTE,
        "letters, digits, '-', '_', '.' and '/'",
        |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'),
    )
}

/// ECS's attribute-value rule: `""` (no value) or 1–128 letters, digits,
/// spaces and `-_.@/\:`, not starting or ending with a space.
pub fn check_attribute_value(value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Ok(());
    }
    check(
        value,
        MAX_ATTRIBUTE,
        "letters, digits, spaces and '-', '_', '.', '@', '/', '\\', ':'",
        |c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '/' | '\\' | ':' | ' ')
        },
    )?;
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(NameError::EdgeSpace {
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// ECS's tag-key rule: 1–128 of letters, digits, spaces and
/// `+ - = . _ : / @`, not starting with `aws:` in any case. Lengths count
/// characters, as ECS's do.
pub fn check_tag_key(key: &str) -> Result<(), NameError> {
    let len = key.chars().count();
    if len == 0 || len > MAX_TAG_KEY {
        return Err(NameError::Length {
            value: key.to_owned(),
            min: 1,
            max: MAX_TAG_KEY,
        });
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(NameError::Reserved {
            value: key.to_owned(),
        });
    }
    match key.chars().find(|c| !is_tag_char(*c)) {
        Some(found) => Err(NameError::Character {
            value: key.to_owned(),
            found,
            allowed: TAG_CHARS,
        }),
        None => Ok(()),
    }
}

/// ECS's tag-value rule: 0–256 of the key's characters.
pub fn check_tag_value(value: &str) -> Result<(), NameError> {
    let len = value.chars().count();
    if len > MAX_TAG_VALUE {
        return Err(NameError::Length {
            value: value.to_owned(),
            min: 0,
            max: MAX_TAG_VALUE,
        });
    }
    match value.chars().find(|c| !is_tag_char(*c)) {
        Some(found) => Err(NameError::Character {
            value: value.to_owned(),
            found,
            allowed: TAG_CHARS,
        }),
        None => Ok(()),
    }
}

/// Where in a tag list a [`NameError`] was found: the list itself (too
/// many), or the key or value of the tag at an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagField {
    List,
    Key(usize),
    Value(usize),
}

impl TagField {
    /// The field's path below `list` (`tags`, `tags[2].key`).
    pub fn path(self, list: &str) -> String {
        match self {
            TagField::List => list.to_owned(),
            TagField::Key(i) => format!("{list}[{i}].key"),
            TagField::Value(i) => format!("{list}[{i}].value"),
        }
    }
}

/// Every tag rule over one list of `(key, value)`: at most [`MAX_TAGS`],
/// each key and value by its rule, no key twice. Every finding, in order.
pub fn check_tags<'a>(
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(TagField, NameError)> {
    let mut out = Vec::new();
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut count = 0;
    for (i, (key, value)) in tags.into_iter().enumerate() {
        count = i + 1;
        if let Err(e) = check_tag_key(key) {
            out.push((TagField::Key(i), e));
        } else if let Some(first) = seen.get(key) {
            out.push((
                TagField::Key(i),
                NameError::DuplicateKey {
                    key: key.to_owned(),
                    first: *first,
                },
            ));
        } else {
            seen.insert(key, i);
        }
        if let Err(e) = check_tag_value(value) {
            out.push((TagField::Value(i), e));
        }
    }
    if count > MAX_TAGS {
        out.insert(
            0,
            (
                TagField::List,
                NameError::TooMany {
                    count,
                    max: MAX_TAGS,
                },
            ),
        );
    }
    out
}

/// Attribute names the agent reports and only the agent sets: `ecs.*` (any
/// case).
pub fn is_builtin_attribute(name: &str) -> bool {
    name.get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("ecs."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        assert_eq!(check_cluster_name("prod_eu-1"), Ok(()));
        assert!(check_cluster_name(&"a".repeat(255)).is_ok());
        assert!(matches!(
            check_cluster_name(&"a".repeat(256)),
            Err(NameError::Length { max: 255, .. })
        ));
        assert!(check_cluster_name("").is_err());
        assert_eq!(
            check_cluster_name("no spaces").unwrap_err().to_string(),
            "\"no spaces\" contains ' '; only letters, digits, '-' and '_' are allowed"
        );
    }

    #[test]
    fn attribute_names() {
        assert_eq!(check_attribute_name("ecs.os-type"), Ok(()));
        assert_eq!(check_attribute_name("team/owner_1"), Ok(()));
        assert!(check_attribute_name("").is_err());
        assert!(check_attribute_name(&"n".repeat(129)).is_err());
        assert!(check_attribute_name("bad name!").is_err());
        assert!(
            check_attribute_name("back\\slash").is_err(),
            "Berth's narrower rule"
        );
    }

    #[test]
    fn attribute_values_follow_ecs() {
        assert_eq!(check_attribute_value(""), Ok(()), "no value");
        assert_eq!(check_attribute_value("rack 1:a@b/c\\d"), Ok(()));
        assert!(check_attribute_value(&"v".repeat(128)).is_ok());
        assert!(check_attribute_value(&"v".repeat(129)).is_err());
        assert_eq!(
            check_attribute_value(" x").unwrap_err(),
            NameError::EdgeSpace { value: " x".into() }
        );
        assert!(check_attribute_value("x ").is_err());
        assert!(check_attribute_value(" ").is_err());
        assert!(check_attribute_value("a,b").is_err());
    }

    #[test]
    fn tags_follow_ecs() {
        assert_eq!(check_tag_key("team"), Ok(()));
        assert_eq!(check_tag_key("cost center:a/b@c+d=e_f.g-h"), Ok(()));
        assert_eq!(check_tag_key("Équipe"), Ok(()), "letters of any script");
        assert!(check_tag_key(&"k".repeat(128)).is_ok());
        assert!(matches!(
            check_tag_key(&"k".repeat(129)),
            Err(NameError::Length { max: 128, .. })
        ));
        assert!(check_tag_key("").is_err());
        assert!(matches!(
            check_tag_key("AWS:x"),
            Err(NameError::Reserved { .. })
        ));
        assert!(matches!(
            check_tag_key("aws:x"),
            Err(NameError::Reserved { .. })
        ));
        assert!(check_tag_key("awsx").is_ok());
        assert!(matches!(
            check_tag_key("a,b"),
            Err(NameError::Character { found: ',', .. })
        ));
        assert_eq!(check_tag_value(""), Ok(()));
        assert!(check_tag_value(&"v".repeat(256)).is_ok());
        assert!(check_tag_value(&"v".repeat(257)).is_err());
        assert!(check_tag_value("a*b").is_err());
        assert_eq!(check_tag_value("aws:ok in values"), Ok(()));
    }

    #[test]
    fn tag_lists_report_every_finding_with_its_field() {
        let ok = [("a", "1"), ("b", "")];
        assert!(check_tags(ok).is_empty());
        let bad = [("a", "1"), ("aws:x", "2"), ("a", "x*"), ("", "")];
        let found: Vec<String> = check_tags(bad)
            .into_iter()
            .map(|(f, e)| format!("{}: {e}", f.path("tags")))
            .collect();
        assert_eq!(
            found,
            [
                "tags[1].key: \"aws:x\": the `aws:` prefix is reserved",
                "tags[2].key: duplicate tag key \"a\" (also tags[0])",
                "tags[2].value: \"x*\" contains '*'; only letters, digits, spaces and '+', '-', '=', '.', '_', ':', '/', '@' are allowed",
                "tags[3].key: \"\" must be 1–128 characters",
            ]
        );
        let keys: Vec<String> = (0..51).map(|i| format!("k{i}")).collect();
        let many = check_tags(keys.iter().map(|k| (k.as_str(), "")));
        assert_eq!(many.len(), 1);
        assert_eq!(many[0].0, TagField::List);
    }

    #[test]
    fn builtin_attributes() {
        assert!(is_builtin_attribute("ecs.os-type"));
        assert!(is_builtin_attribute("ECS.x"));
        assert!(!is_builtin_attribute("ecsx"));
        assert!(!is_builtin_attribute("rack"));
    }
}
