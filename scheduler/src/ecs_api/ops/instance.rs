//! ListContainerInstances, DescribeContainerInstances,
//! UpdateContainerInstancesState, DeregisterContainerInstance.

use berth_proto::v1 as pb;
use berth_proto::v1::container_instance_service_server::ContainerInstanceService;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{at_most, next, status, Ctx};
use crate::api::instance::ContainerInstanceApi;
use crate::ecs_api::error::EcsError;
use berth_proto::ecs_json as render;

fn api(ctx: &Ctx<'_>) -> ContainerInstanceApi {
    ContainerInstanceApi {
        shared: ctx.shared(),
    }
}

fn instances_and_failures(cis: &[pb::ContainerInstance], failures: &[pb::Failure]) -> Value {
    json!({
        "containerInstances": cis.iter().map(render::container_instance).collect::<Vec<_>>(),
        "failures": failures.iter().map(render::failure).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListIn {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    status: String,
    /// A Cluster Query Language expression.
    #[serde(default)]
    filter: String,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list(ctx: &mut Ctx<'_>, i: ListIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListContainerInstancesRequest {
        cluster: i.cluster,
        status: i.status,
        filter: i.filter,
        max_results: i.max_results.unwrap_or_default(),
        next_token: i.next_token.unwrap_or_default(),
    });
    let out = api(ctx)
        .list_container_instances(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "containerInstanceArns": out.container_instance_arns,
        "nextToken": next(out.next_token),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeIn {
    #[serde(default)]
    cluster: String,
    container_instances: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
}

pub async fn describe(ctx: &mut Ctx<'_>, i: DescribeIn) -> Result<Value, EcsError> {
    at_most("containerInstances", i.container_instances.len(), 100)?;
    if i.container_instances.is_empty() {
        return Err(EcsError::invalid("ContainerInstances cannot be empty."));
    }
    let req = ctx.grpc(pb::DescribeContainerInstancesRequest {
        cluster: i.cluster,
        container_instances: i.container_instances,
        include: i.include,
    });
    let out = api(ctx)
        .describe_container_instances(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(instances_and_failures(
        &out.container_instances,
        &out.failures,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStateIn {
    #[serde(default)]
    cluster: String,
    container_instances: Vec<String>,
    status: String,
}

pub async fn update_state(ctx: &mut Ctx<'_>, i: UpdateStateIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::UpdateContainerInstancesStateRequest {
        cluster: i.cluster,
        container_instances: i.container_instances,
        status: i.status,
    });
    let out = api(ctx)
        .update_container_instances_state(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(instances_and_failures(
        &out.container_instances,
        &out.failures,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterIn {
    #[serde(default)]
    cluster: String,
    container_instance: String,
    #[serde(default)]
    force: bool,
}

pub async fn deregister(ctx: &mut Ctx<'_>, i: DeregisterIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::DeregisterContainerInstanceRequest {
        cluster: i.cluster,
        container_instance: i.container_instance,
        force: i.force,
    });
    let out = api(ctx)
        .deregister_container_instance(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(
        json!({"containerInstance": out.container_instance.as_ref().map(render::container_instance)}),
    )
}
