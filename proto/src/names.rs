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
}

/// The longest cluster name.
pub const MAX_CLUSTER_NAME: usize = 255;
/// The longest attribute name, and the longest attribute value.
pub const MAX_ATTRIBUTE: usize = 128;

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
}
