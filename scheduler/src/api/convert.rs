//! Conversions from request fields to domain values that more than one
//! service needs, so that the service modules never import each other.

use berth_proto::arn::TaskDefRef;
use berth_proto::names::{check_attribute_name, check_attribute_value};

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
