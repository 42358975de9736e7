//! RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions.

use berth_proto::v1 as pb;
use berth_proto::v1::task_definition_service_server::TaskDefinitionService;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{next, status, Ctx};
use crate::api::taskdef::TaskDefinitionApi;
use crate::ecs_api::error::EcsError;
use berth_proto::ecs_json as render;

fn api(ctx: &Ctx<'_>) -> TaskDefinitionApi {
    TaskDefinitionApi {
        shared: ctx.shared(),
    }
}

fn rendered(td: Option<&pb::TaskDefinition>) -> Result<Value, EcsError> {
    match td {
        Some(td) => render::task_definition(td)
            .map_err(|e| EcsError::server(format!("rendering the task definition: {e}"))),
        None => Ok(Value::Null),
    }
}

/// The request is ECS's task definition itself: the core parses and
/// validates it (errors name their JSON paths).
pub async fn register(ctx: &mut Ctx<'_>, input: Value) -> Result<Value, EcsError> {
    let tags = input.get("tags").cloned().unwrap_or_else(|| json!([]));
    let req = ctx.grpc(pb::RegisterTaskDefinitionRequest {
        task_definition_json: input.to_string(),
    });
    let out = api(ctx)
        .register_task_definition(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "taskDefinition": rendered(out.task_definition.as_ref())?,
        "tags": tags,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeIn {
    task_definition: String,
    #[serde(default)]
    include: Vec<String>,
}

pub async fn describe(ctx: &mut Ctx<'_>, i: DescribeIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::DescribeTaskDefinitionRequest {
        task_definition: i.task_definition,
        include: i.include.clone(),
    });
    let out = api(ctx)
        .describe_task_definition(req)
        .await
        .map_err(status)?
        .into_inner();
    let mut v = json!({"taskDefinition": rendered(out.task_definition.as_ref())?});
    if i.include.iter().any(|x| x == "TAGS") {
        v["tags"] = super::resource::tags_json(&out.tags);
    }
    Ok(v)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListIn {
    #[serde(default)]
    family_prefix: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    sort: String,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list(ctx: &mut Ctx<'_>, i: ListIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListTaskDefinitionsRequest {
        family_prefix: i.family_prefix,
        status: i.status,
        sort: i.sort,
        max_results: i.max_results.unwrap_or_default(),
        next_token: i.next_token.unwrap_or_default(),
    });
    let out = api(ctx)
        .list_task_definitions(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "taskDefinitionArns": out.task_definition_arns,
        "nextToken": next(out.next_token),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FamiliesIn {
    #[serde(default)]
    family_prefix: String,
    #[serde(default)]
    status: String,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn families(ctx: &mut Ctx<'_>, i: FamiliesIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListTaskDefinitionFamiliesRequest {
        family_prefix: i.family_prefix,
        status: i.status,
        max_results: i.max_results.unwrap_or_default(),
        next_token: i.next_token.unwrap_or_default(),
    });
    let out = api(ctx)
        .list_task_definition_families(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"families": out.families, "nextToken": next(out.next_token)}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterIn {
    task_definition: String,
}

pub async fn deregister(ctx: &mut Ctx<'_>, i: DeregisterIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::DeregisterTaskDefinitionRequest {
        task_definition: i.task_definition,
    });
    let out = api(ctx)
        .deregister_task_definition(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"taskDefinition": rendered(out.task_definition.as_ref())?}))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteIn {
    #[serde(default)]
    task_definitions: Vec<String>,
}

pub async fn delete(ctx: &mut Ctx<'_>, i: DeleteIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::DeleteTaskDefinitionsRequest {
        task_definitions: i.task_definitions,
    });
    let out = api(ctx)
        .delete_task_definitions(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "taskDefinitions": out
            .task_definitions
            .iter()
            .map(|t| rendered(Some(t)))
            .collect::<Result<Vec<_>, _>>()?,
        "failures": out.failures.iter().map(render::failure).collect::<Vec<_>>(),
    }))
}
