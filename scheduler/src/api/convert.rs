//! Conversions from request fields to domain values that more than one
//! service needs, so that the service modules never import each other.

use berth_proto::arn::TaskDefRef;
use berth_proto::names::{check_attribute_name, check_attribute_value, check_tags};
use berth_proto::taskdef::FieldIssue;
use berth_proto::v1::Tag;

use super::ApiError;
use crate::records::{TaskRecord, TaskStatus};

/// A task-definition reference (`family`, `family:revision` or an ARN) from
/// the request field `field`.
pub fn parse_ref(field: &str, s: &str) -> Result<TaskDefRef, ApiError> {
    TaskDefRef::parse(s).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// An attribute by [`berth_proto::names`]' rules, which the agent's
/// configuration applies too: names 1–128 of letters, digits, `-_./`; values
/// absent or ECS's 1–128 of letters, digits, `-_.@/\:` and inner spaces.
pub fn validate_attribute(prefix: &str, i: usize, name: &str, value: &str) -> Result<(), ApiError> {
    check_attribute_name(name)
        .map_err(|e| ApiError::invalid(&format!("{prefix}[{i}].name"), e.to_string()))?;
    check_attribute_value(value)
        .map_err(|e| ApiError::invalid(&format!("{prefix}[{i}].value"), e.to_string()))
}

/// ECS's runningTasksCount and pendingTasksCount: tasks whose lastStatus is
/// RUNNING, and tasks placed but not yet RUNNING.
pub fn task_counts<'a>(tasks: impl Iterator<Item = &'a TaskRecord>) -> (i32, i32) {
    tasks.fold((0, 0), |(r, p), t| {
        if t.last_status == TaskStatus::Running {
            (r + 1, p)
        } else if t.last_status.is_pending() {
            (r, p + 1)
        } else {
            (r, p)
        }
    })
}

/// Tags from the request list `field` by ECS's rules
/// ([`berth_proto::names::check_tags`]); every finding names its path
/// (`tags[2].key`).
pub fn validate_tags(field: &str, tags: &[Tag]) -> Result<Vec<(String, String)>, ApiError> {
    let issues: Vec<FieldIssue> =
        check_tags(tags.iter().map(|t| (t.key.as_str(), t.value.as_str())))
            .into_iter()
            .map(|(f, e)| FieldIssue {
                path: f.path(field),
                message: e.to_string(),
            })
            .collect();
    if !issues.is_empty() {
        return Err(ApiError::InvalidFields(issues));
    }
    Ok(tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect())
}

/// Stored tags on the wire.
pub fn tags_to_proto(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(key, value)| Tag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// ECS's `include` of a Describe call: whether it asks for `TAGS`. The
/// other values the operation knows (`accepted`) are allowed and add
/// nothing; anything else is InvalidArgument at `include[i]`.
pub fn includes_tags(include: &[String], accepted: &[&str]) -> Result<bool, ApiError> {
    let mut tags = false;
    for (i, v) in include.iter().enumerate() {
        if v == "TAGS" {
            tags = true;
        } else if !accepted.contains(&v.as_str()) {
            let mut known = vec!["TAGS"];
            known.extend_from_slice(accepted);
            return Err(ApiError::invalid(
                &format!("include[{i}]"),
                format!("{v:?} is not one of {}", known.join(", ")),
            ));
        }
    }
    Ok(tags)
}

/// ECS's launchType filter of ListTasks and ListServices: whether Berth's
/// tasks and services match it. Every one of them runs on a registered
/// host, so `EC2` and `EXTERNAL` (and no filter) match everything and
/// `FARGATE` nothing; anything else is InvalidArgument.
pub fn launch_type_matches(field: &str, s: &str) -> Result<bool, ApiError> {
    match s.trim().to_ascii_uppercase().as_str() {
        "" | "EC2" | "EXTERNAL" => Ok(true),
        "FARGATE" => Ok(false),
        other => Err(ApiError::invalid(
            field,
            format!("{other:?} is not one of EC2, FARGATE, EXTERNAL"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_findings_name_their_paths() {
        let tags = vec![
            Tag {
                key: "ok".into(),
                value: "1".into(),
            },
            Tag {
                key: "aws:owner".into(),
                value: "x".into(),
            },
        ];
        let Err(ApiError::InvalidFields(issues)) = validate_tags("tags", &tags) else {
            panic!("expected field issues");
        };
        assert_eq!(issues[0].path, "tags[1].key");
        assert_eq!(
            validate_tags("tags", &tags[..1]).unwrap(),
            vec![("ok".to_owned(), "1".to_owned())]
        );
    }

    #[test]
    fn include_takes_tags_and_the_operations_other_words() {
        assert!(!includes_tags(&[], &[]).unwrap());
        assert!(includes_tags(&["TAGS".into()], &[]).unwrap());
        assert!(!includes_tags(&["STATISTICS".into()], &["STATISTICS"]).unwrap());
        let e = includes_tags(&["TAGS".into(), "tags".into()], &[]).unwrap_err();
        assert_eq!(e.to_string(), "include[1]: \"tags\" is not one of TAGS");
    }
}
