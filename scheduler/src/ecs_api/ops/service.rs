//! CreateService, UpdateService, DeleteService, DescribeServices,
//! ListServices.

use berth_proto::v1 as pb;
use berth_proto::v1::service_service_server::ServiceService;
use serde::Deserialize;
use serde_json::{json, Value};

use super::task::{check_launch_type, constraints, strategies, ConstraintIn, StrategyIn};
use super::{at_most, next, status, Ctx};
use crate::api::service::ServiceApi;
use crate::ecs_api::error::EcsError;
use berth_proto::ecs_json as render;

fn api(ctx: &Ctx<'_>) -> ServiceApi {
    ServiceApi {
        shared: ctx.shared(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CircuitBreakerIn {
    #[serde(default)]
    enable: bool,
    #[serde(default)]
    rollback: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentConfigurationIn {
    minimum_healthy_percent: Option<i32>,
    maximum_percent: Option<i32>,
    deployment_circuit_breaker: Option<CircuitBreakerIn>,
}

fn deployment_configuration(
    d: Option<DeploymentConfigurationIn>,
) -> Option<pb::DeploymentConfiguration> {
    d.map(|d| pb::DeploymentConfiguration {
        minimum_healthy_percent: d.minimum_healthy_percent,
        maximum_percent: d.maximum_percent,
        deployment_circuit_breaker: d.deployment_circuit_breaker.map(|c| {
            pb::DeploymentCircuitBreaker {
                enable: c.enable,
                rollback: c.rollback,
            }
        }),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagIn {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

/// A service as ECS shows it: the renderer leaves out the replaced
/// (INACTIVE) deployments Berth keeps, as ECS does; the `services-stable`
/// waiter of the aws CLI and boto3 (`length(deployments) == 1 &&
/// runningCount == desiredCount`) depends on it.
fn ecs_service(s: pb::Service) -> Value {
    render::service(&s)
}

/// ECS's LoadBalancer as a request gives it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIn {
    target_group_arn: Option<String>,
    load_balancer_name: Option<String>,
    container_name: Option<String>,
    container_port: Option<i64>,
}

/// `loadBalancers` as the gRPC request carries them. Target groups only:
/// a classic load balancer (`loadBalancerName`) is refused by name. The
/// rest (the group exists, the container port is mapped) is checked by
/// CreateService/UpdateService, whose errors name `loadBalancers[i].…`.
fn load_balancers(v: Vec<LoadBalancerIn>) -> Result<Vec<pb::LoadBalancer>, EcsError> {
    v.into_iter()
        .enumerate()
        .map(|(i, lb)| {
            if let Some(name) = lb.load_balancer_name.filter(|n| !n.is_empty()) {
                return Err(EcsError::invalid(format!(
                    "loadBalancers[{i}].loadBalancerName: {name:?} names a Classic Load \
                     Balancer, which Berth does not have; give targetGroupArn (a Berth \
                     target group's name or ARN)"
                )));
            }
            let container_port = match lb.container_port {
                None => 0,
                Some(p) => u32::try_from(p)
                    .ok()
                    .filter(|p| *p <= 65535)
                    .ok_or_else(|| {
                        EcsError::invalid(format!(
                            "loadBalancers[{i}].containerPort: {p} is not a port (1-65535)"
                        ))
                    })?,
            };
            Ok(pb::LoadBalancer {
                target_group_arn: lb.target_group_arn.unwrap_or_default(),
                container_name: lb.container_name.unwrap_or_default(),
                container_port,
            })
        })
        .collect()
}

/// Cloud Map's `serviceRegistries` are refused, not ignored: Berth's DNS
/// names for services are set through berthctl or the gRPC API.
fn no_service_registries(v: Option<&[Value]>) -> Result<(), EcsError> {
    match v {
        Some(v) if !v.is_empty() => Err(EcsError::new(
            "UnsupportedFeatureException",
            400,
            "serviceRegistries: Berth has no Cloud Map; give a service a DNS name with \
             `berthctl service create|update --dns-namespace` or the gRPC API's \
             serviceDiscovery",
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateIn {
    #[serde(default)]
    enable_execute_command: bool,
    #[serde(default)]
    cluster: String,
    service_name: String,
    #[serde(default)]
    task_definition: String,
    desired_count: Option<i32>,
    #[serde(default)]
    scheduling_strategy: String,
    #[serde(default)]
    placement_constraints: Vec<ConstraintIn>,
    #[serde(default)]
    placement_strategy: Vec<StrategyIn>,
    deployment_configuration: Option<DeploymentConfigurationIn>,
    health_check_grace_period_seconds: Option<i32>,
    #[serde(default)]
    tags: Vec<TagIn>,
    launch_type: Option<String>,
    #[serde(default)]
    load_balancers: Vec<LoadBalancerIn>,
    service_registries: Option<Vec<Value>>,
}

pub async fn create(ctx: &mut Ctx<'_>, i: CreateIn) -> Result<Value, EcsError> {
    check_launch_type("launchType", i.launch_type.as_deref())?;
    no_service_registries(i.service_registries.as_deref())?;
    let load_balancers = load_balancers(i.load_balancers)?;
    let req = ctx.grpc(pb::CreateServiceRequest {
        cluster: i.cluster,
        service_name: i.service_name,
        task_definition: i.task_definition,
        desired_count: i.desired_count,
        scheduling_strategy: i.scheduling_strategy,
        placement_constraints: constraints(i.placement_constraints),
        placement_strategy: strategies(i.placement_strategy),
        deployment_configuration: deployment_configuration(i.deployment_configuration),
        health_check_grace_period_seconds: i.health_check_grace_period_seconds.unwrap_or(0),
        load_balancers,
        service_discovery: None,
        enable_execute_command: i.enable_execute_command,
        tags: i
            .tags
            .into_iter()
            .map(|t| pb::Tag {
                key: t.key,
                value: t.value,
            })
            .collect(),
    });
    let out = api(ctx)
        .create_service(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"service": out.service.map(ecs_service)}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateIn {
    enable_execute_command: Option<bool>,
    #[serde(default)]
    cluster: String,
    service: String,
    #[serde(default)]
    task_definition: String,
    desired_count: Option<i32>,
    deployment_configuration: Option<DeploymentConfigurationIn>,
    placement_constraints: Option<Vec<ConstraintIn>>,
    placement_strategy: Option<Vec<StrategyIn>>,
    #[serde(default)]
    force_new_deployment: bool,
    health_check_grace_period_seconds: Option<i32>,
    load_balancers: Option<Vec<LoadBalancerIn>>,
    service_registries: Option<Vec<Value>>,
}

pub async fn update(ctx: &mut Ctx<'_>, i: UpdateIn) -> Result<Value, EcsError> {
    no_service_registries(i.service_registries.as_deref())?;
    // Present (even empty) replaces the service's, as in ECS.
    let lbs = i
        .load_balancers
        .map(load_balancers)
        .transpose()?
        .map(|load_balancers| pb::LoadBalancerUpdate { load_balancers });
    let placement = if i.placement_constraints.is_some() || i.placement_strategy.is_some() {
        Some(pb::PlacementUpdate {
            placement_constraints: constraints(i.placement_constraints.unwrap_or_default()),
            placement_strategy: strategies(i.placement_strategy.unwrap_or_default()),
        })
    } else {
        None
    };
    let req = ctx.grpc(pb::UpdateServiceRequest {
        cluster: i.cluster,
        service: i.service,
        task_definition: i.task_definition,
        desired_count: i.desired_count,
        deployment_configuration: deployment_configuration(i.deployment_configuration),
        placement,
        force_new_deployment: i.force_new_deployment,
        health_check_grace_period_seconds: i.health_check_grace_period_seconds,
        load_balancers: lbs,
        service_discovery: None,
        enable_execute_command: i.enable_execute_command,
    });
    let out = api(ctx)
        .update_service(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"service": out.service.map(ecs_service)}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteIn {
    #[serde(default)]
    cluster: String,
    service: String,
    #[serde(default)]
    force: bool,
}

pub async fn delete(ctx: &mut Ctx<'_>, i: DeleteIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::DeleteServiceRequest {
        cluster: i.cluster,
        service: i.service,
        force: i.force,
    });
    let out = api(ctx)
        .delete_service(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"service": out.service.map(ecs_service)}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeIn {
    #[serde(default)]
    cluster: String,
    services: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
}

pub async fn describe(ctx: &mut Ctx<'_>, i: DescribeIn) -> Result<Value, EcsError> {
    at_most("services", i.services.len(), 10)?;
    if i.services.is_empty() {
        return Err(EcsError::invalid("Services cannot be empty."));
    }
    let req = ctx.grpc(pb::DescribeServicesRequest {
        cluster: i.cluster,
        services: i.services,
        include: i.include,
    });
    let out = api(ctx)
        .describe_services(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "services": out.services.into_iter().map(ecs_service).collect::<Vec<_>>(),
        "failures": out.failures.iter().map(render::failure).collect::<Vec<_>>(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListIn {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    scheduling_strategy: String,
    #[serde(default)]
    launch_type: String,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list(ctx: &mut Ctx<'_>, i: ListIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListServicesRequest {
        cluster: i.cluster,
        scheduling_strategy: i.scheduling_strategy,
        launch_type: i.launch_type,
        max_results: i.max_results.unwrap_or_default(),
        next_token: i.next_token.unwrap_or_default(),
    });
    let out = api(ctx)
        .list_services(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({"serviceArns": out.service_arns, "nextToken": next(out.next_token)}))
}

/// ECS's timestamp members arrive as epoch seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedAtIn {
    before: Option<f64>,
    after: Option<f64>,
}

fn timestamp(seconds: f64) -> prost_types::Timestamp {
    let whole = seconds.floor();
    prost_types::Timestamp {
        seconds: whole as i64,
        nanos: ((seconds - whole) * 1e9) as i32,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListDeploymentsIn {
    #[serde(default)]
    cluster: String,
    service: String,
    #[serde(default)]
    status: Vec<String>,
    created_at: Option<CreatedAtIn>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

pub async fn list_deployments(ctx: &mut Ctx<'_>, i: ListDeploymentsIn) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::ListServiceDeploymentsRequest {
        service: i.service,
        cluster: i.cluster,
        status: i.status,
        created_at: i.created_at.map(|c| pb::CreatedAtFilter {
            before: c.before.map(timestamp),
            after: c.after.map(timestamp),
        }),
        max_results: i.max_results.unwrap_or_default(),
        next_token: i.next_token.unwrap_or_default(),
    });
    let out = api(ctx)
        .list_service_deployments(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "serviceDeployments": out
            .service_deployments
            .iter()
            .map(render::service_deployment_brief)
            .collect::<Vec<_>>(),
        "nextToken": next(out.next_token),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeDeploymentsIn {
    service_deployment_arns: Vec<String>,
}

pub async fn describe_deployments(
    ctx: &mut Ctx<'_>,
    i: DescribeDeploymentsIn,
) -> Result<Value, EcsError> {
    let req = ctx.grpc(pb::DescribeServiceDeploymentsRequest {
        service_deployment_arns: i.service_deployment_arns,
    });
    let out = api(ctx)
        .describe_service_deployments(req)
        .await
        .map_err(status)?
        .into_inner();
    Ok(json!({
        "serviceDeployments": out
            .service_deployments
            .iter()
            .map(render::service_deployment)
            .collect::<Vec<_>>(),
        "failures": out.failures.iter().map(render::failure).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_deployments_are_left_out_as_ecs_does() {
        let d = |id: &str, status: &str| pb::Deployment {
            id: id.to_owned(),
            status: status.to_owned(),
            ..Default::default()
        };
        let s = pb::Service {
            service_name: "web".to_owned(),
            deployments: vec![
                d("new", "PRIMARY"),
                d("old", "ACTIVE"),
                d("gone", "INACTIVE"),
            ],
            ..Default::default()
        };
        let v = ecs_service(s);
        let ids: Vec<&str> = v["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["new", "old"]);
    }
}
