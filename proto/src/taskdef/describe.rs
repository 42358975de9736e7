//! A registered definition as `aws ecs describe-task-definition` prints it:
//! the registered fields plus the read-only ones ECS assigns.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::model::{TaskDefinition, TaskDefinitionStatus};

/// The fields a registry assigns to a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyFields {
    pub task_definition_arn: String,
    pub revision: u32,
    pub status: TaskDefinitionStatus,
    pub registered_at: OffsetDateTime,
    pub deregistered_at: Option<OffsetDateTime>,
    pub registered_by: Option<String>,
}

/// What ECS reports as the instances a definition can run on: Berth runs
/// every definition on its own hosts, which ECS would call EC2 or EXTERNAL.
pub const COMPATIBILITIES: [&str; 2] = ["EC2", "EXTERNAL"];

/// The definition as `aws ecs describe-task-definition` prints its "taskDefinition" object:
/// the registered fields plus the read-only ones (timestamps as RFC 3339 strings;
/// compatibilities ["EC2","EXTERNAL"]; requiresAttributes may be []).
///
/// Like ECS's, the object holds no `tags`: they go beside it, see
/// [`describe_response_json`].
pub fn describe_json(def: &TaskDefinition, ro: &ReadOnlyFields) -> Value {
    let mut registered = match serde_json::to_value(def) {
        Ok(Value::Object(m)) => m,
        // The model always serializes to an object.
        _ => Map::new(),
    };
    registered.remove("tags");

    let mut out = Map::new();
    out.insert(
        "taskDefinitionArn".to_owned(),
        Value::String(ro.task_definition_arn.clone()),
    );
    out.append(&mut registered);
    out.insert("revision".to_owned(), Value::from(ro.revision));
    out.insert(
        "status".to_owned(),
        serde_json::to_value(ro.status).unwrap_or(Value::Null),
    );
    out.insert("requiresAttributes".to_owned(), Value::Array(Vec::new()));
    out.insert(
        "compatibilities".to_owned(),
        Value::Array(COMPATIBILITIES.iter().map(|c| Value::from(*c)).collect()),
    );
    out.insert(
        "registeredAt".to_owned(),
        Value::String(rfc3339(ro.registered_at)),
    );
    if let Some(at) = ro.deregistered_at {
        out.insert("deregisteredAt".to_owned(), Value::String(rfc3339(at)));
    }
    if let Some(by) = &ro.registered_by {
        out.insert("registeredBy".to_owned(), Value::String(by.clone()));
    }
    Value::Object(out)
}

/// The whole `describe-task-definition --include TAGS` response:
/// `{"taskDefinition": describe_json(…), "tags": [...]}`. This is the form
/// `parse_registration` accepts back unchanged.
pub fn describe_response_json(def: &TaskDefinition, ro: &ReadOnlyFields) -> Value {
    let tags = serde_json::to_value(&def.tags).unwrap_or_else(|_| Value::Array(Vec::new()));
    let mut out = Map::new();
    out.insert("taskDefinition".to_owned(), describe_json(def, ro));
    out.insert("tags".to_owned(), tags);
    Value::Object(out)
}

fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting fails only for years outside 0–9999; fall back to seconds.
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
