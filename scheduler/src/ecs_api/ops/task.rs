//! RunTask, StartTask, StopTask, DescribeTasks, ListTasks.

use berth_proto::v1 as pb;
use berth_proto::v1::task_service_server::TaskService;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{at_most, next, status, Ctx};
use crate::api::task::TaskApi;
use crate::ecs_api::error::EcsError;
use berth_proto::ecs_json as render;

fn api(ctx: &Ctx<'_>) -> TaskApi {
    TaskApi {
        shared: ctx.shared(),
    }
}

/// ECS's `launchType`: Berth's instances are what ECS calls EC2 (or
/// EXTERNAL, for ECS Anywhere); there is no Fargate.
pub(super) fn check_launch_type(field: &str, v: Option<&str>) -> Result<(), EcsError> {
    match v {
        None | Some("EC2") | Some("EXTERNAL") => Ok(()),
        Some(other) => Err(EcsError::invalid(format!(
            "{field}: Berth runs tasks on its own container instances (EC2 or EXTERNAL); {other:?} is not supported"
        ))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConstraintIn {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    expression: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StrategyIn {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    field: String,
}

pub(super) fn constraints(v: Vec<ConstraintIn>) -> Vec<pb::PlacementConstraint> {
    v.into_iter()
        .map(|c| pb::PlacementConstraint {
            r#type: c.kind,
            expression: c.expression,
        })
        .collect()
}

pub(super) fn strategies(v: Vec<StrategyIn>) -> Vec<pb::PlacementStrategy> {
    v.into_iter()
        .map(|s| pb::PlacementStrategy {
            r#type: s.kind,
            field: s.field,
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyValueIn {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerOverrideIn {
    #[serde(default)]
    name: String,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    environment: Vec<KeyValueIn>,
    cpu: Option<i32>,
    memory: Option<i32>,
    memory_reservation: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OverridesIn {
    #[serde(default)]
    container_overrides: Vec<ContainerOverrideIn>,
}

fn overrides(o: Option<OverridesIn>) -> Option<pb::TaskOverride> {
    o.map(|o| pb::TaskOverride {
        container_overrides: o
            .container_overrides
            .into_iter()
            .map(|c| pb::ContainerOverride {
                name: c.name,
                command: c.command,
                environment: c
                    .environment
                    .into_iter()
                    .map(|kv| pb::KeyValuePair {
                        name: kv.name,
                        value: kv.value,
                    })
                    .collect(),
                cpu: c.cpu,
                memory: c.memory,
                memory_reservation: c.memory_reservation,
            })
            .collect(),
    })
}

fn tasks_and_failures(tasks: &[pb::Task], failures: &[pb::Failure]) -> Value {
    json!({
        "tasks": tasks.iter().map(render::task).collect::<Vec<_>>(),
        "failures": failures.iter().map(render::failure).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunIn {
    #[serde(default)]
    cluster: String,
    task_definition: String,
    count: Option<i32>,
    #[serde(default)]
    group: String,
    #[serde(default)]
    started_by: String,
    #[serde(default)]
    placement_constraints: Vec<ConstraintIn>,
    #[serde(default)]
    placement_strategy: Vec<StrategyIn>,
    overrides: Option<OverridesIn>,
    #[serde(default)]
    client_token: String,
    launch_type: Option<String>,
    #[serde(default)]
    tags: Vec<super::resource::TagIn>,
    #[serde(default)]
    enable_execute_command: bool,
}

pub async fn run(ctx: &mut Ctx<'_>, i: RunIn) -> Result<Value, EcsError> {
    check_launch_type("launchType", i.launch_type.as_deref())?;
    let req = ctx.grpc(pb::RunTaskRequest {
        cluster: i.cluster,
        task_definition: i.task_definition,
        count: i.count.unwrap_or(1),
        group: i.group,
        started_by: i.started_by,
        placement_constraints: constraints(i.placement_constraints),
        placement_strategy: strategies(i.placement_strategy),
        overrides: overrides(i.overrides),
        client_token: i.client_token,
        tags: super::resource::tags_in(i.tags),
        enable_execute_command: i.enable_execute_command,
    });
    let out = api(ctx).run_task(req).await.map_err(status)?.into_inner();
    Ok(tasks_and_failures(&out.tasks, &out.failures))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartIn {
    #[serde(default)]
    cluster: String,
    task_definition: String,
    container_instances: Vec<String>,
    #[serde(default)]
    started_by: String,
    #[serde(default)]
    group: String,
    overrides: Option<OverridesIn>,
    #[serde(default)]
    tags: Vec<super::resource::TagIn>,
    #[serde(default)]
    enable_execute_command: bool,
}

pub async fn start(ctx: &mut Ctx<'_>, i: StartIn) -> Result<Value, EcsError> {
    if i.overrides
        .as_ref()
        .is_some_and(|o| !o.container_overrides.is_empty())
    {
        return Err(EcsError::new(
            "UnsupportedFeatureException",
            400,
            "overrides: Berth's StartTask does not take overrides yet; use RunTask with a memberOf constraint",
        ));
    }
    at_most("containerInstances", i.container_instances.len(), 10)?;
    let req = ctx.grpc(pb::StartTaskRequest {
        cluster: i.cluster,
        task_definition: i.task_definition,
        container_instances: i.container_instances,
        count: 1,
        started_by: i.started_by,
        group: i.group,
        tags: super::resource::tags_in(i.tags),
        enable_execute_command: i.enable_execute_command,
    });
    let out = api(ctx).start_task(req).await.map_err(status)?.into_inner();
    Ok(tasks_and_failures(&out.tasks, &out.failures))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopIn {
    #[serde(default)]
    cluster: String,
    task: String,
    #[serde(default)]
    reason: String,
}

pub async fn stop(ctx: &mut Ctx<'_>, i: StopIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::StopTaskRequest {
        cluster: i.cluster,
        task: i.task,
        reason: i.reason,
    });
    let out = api(ctx).stop_task(req).await.map_err(status)?.into_inner();
    Ok(json!({"task": out.task.as_ref().map(render::task)}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeIn {
    #[serde(default)]
    cluster: String,
    tasks: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
}

pub async fn describe(ctx: &mut Ctx<'_>, i: DescribeIn) -> Result<Value, EcsError> {
    at_most("tasks", i.tasks.len(), 100)?;
    if i.tasks.is_empty() {
        return Err(EcsError::invalid("Tasks cannot be empty."));
    }
    let req = ctx.grpc(pb::DescribeTasksRequest {
        cluster: i.cluster,
        tasks: i.tasks,
        include: i.include,
    });
    let out = api(ctx)
        .describe_tasks(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(tasks_and_failures(&out.tasks, &out.failures))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListIn {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    container_instance: String,
    #[serde(default)]
    family: String,
    #[serde(default)]
    started_by: String,
    #[serde(default)]
    desired_status: String,
    #[serde(default)]
    service_name: String,
    #[serde(default)]
    launch_type: String,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list(ctx: &mut Ctx<'_>, i: ListIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListTasksRequest {
        cluster: i.cluster,
        container_instance: i.container_instance,
        family: i.family,
        started_by: i.started_by,
        desired_status: i.desired_status,
        service_name: i.service_name,
        launch_type: i.launch_type,
        max_results: i.max_results.unwrap_or_default(),
        next_token: i.next_token.unwrap_or_default(),
    });
    let out = api(ctx).list_tasks(req).await.map_err(status)?.into_inner();
    Ok(json!({"taskArns": out.task_arns, "nextToken": next(out.next_token)}))
}
