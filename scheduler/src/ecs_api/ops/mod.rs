//! ECS's operations: the table that names each one's gRPC method (for the
//! role and the audit log), and the dispatch to the conversions, one module
//! per resource. Each conversion reads ECS's request JSON into the gRPC
//! request, calls the gRPC service in-process, and renders the answer in
//! ECS's shape ([`berth_proto::ecs_json`]).

mod cluster;
mod instance;
mod resource;
mod service;
mod task;
mod taskdef;

use prost::Message;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::EcsError;
use super::server::EcsApi;
use crate::api::Shared;
use crate::auth::Principal;

/// An ECS operation Berth serves, and the gRPC method whose role rule and
/// audit entry it shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub name: &'static str,
    pub grpc: &'static str,
}

const fn op(name: &'static str, grpc: &'static str) -> Operation {
    Operation { name, grpc }
}

/// Every ECS operation Berth serves.
pub const OPERATIONS: &[Operation] = &[
    op("CreateCluster", "/berth.v1.ClusterService/CreateCluster"),
    op("DeleteCluster", "/berth.v1.ClusterService/DeleteCluster"),
    op(
        "DescribeClusters",
        "/berth.v1.ClusterService/DescribeClusters",
    ),
    op("ListClusters", "/berth.v1.ClusterService/ListClusters"),
    op(
        "RegisterTaskDefinition",
        "/berth.v1.TaskDefinitionService/RegisterTaskDefinition",
    ),
    op(
        "DescribeTaskDefinition",
        "/berth.v1.TaskDefinitionService/DescribeTaskDefinition",
    ),
    op(
        "ListTaskDefinitions",
        "/berth.v1.TaskDefinitionService/ListTaskDefinitions",
    ),
    op(
        "ListTaskDefinitionFamilies",
        "/berth.v1.TaskDefinitionService/ListTaskDefinitionFamilies",
    ),
    op(
        "DeregisterTaskDefinition",
        "/berth.v1.TaskDefinitionService/DeregisterTaskDefinition",
    ),
    op("RunTask", "/berth.v1.TaskService/RunTask"),
    op("StartTask", "/berth.v1.TaskService/StartTask"),
    op("StopTask", "/berth.v1.TaskService/StopTask"),
    op("DescribeTasks", "/berth.v1.TaskService/DescribeTasks"),
    op("ListTasks", "/berth.v1.TaskService/ListTasks"),
    op("CreateService", "/berth.v1.ServiceService/CreateService"),
    op("UpdateService", "/berth.v1.ServiceService/UpdateService"),
    op("DeleteService", "/berth.v1.ServiceService/DeleteService"),
    op(
        "DescribeServices",
        "/berth.v1.ServiceService/DescribeServices",
    ),
    op("ListServices", "/berth.v1.ServiceService/ListServices"),
    op(
        "ListServiceDeployments",
        "/berth.v1.ServiceService/ListServiceDeployments",
    ),
    op(
        "DescribeServiceDeployments",
        "/berth.v1.ServiceService/DescribeServiceDeployments",
    ),
    op(
        "ListContainerInstances",
        "/berth.v1.ContainerInstanceService/ListContainerInstances",
    ),
    op(
        "DescribeContainerInstances",
        "/berth.v1.ContainerInstanceService/DescribeContainerInstances",
    ),
    op(
        "UpdateContainerInstancesState",
        "/berth.v1.ContainerInstanceService/UpdateContainerInstancesState",
    ),
    op(
        "DeregisterContainerInstance",
        "/berth.v1.ContainerInstanceService/DeregisterContainerInstance",
    ),
    op(
        "DeleteTaskDefinitions",
        "/berth.v1.TaskDefinitionService/DeleteTaskDefinitions",
    ),
    op("TagResource", "/berth.v1.TagService/TagResource"),
    op("UntagResource", "/berth.v1.TagService/UntagResource"),
    op(
        "ListTagsForResource",
        "/berth.v1.TagService/ListTagsForResource",
    ),
    op("PutAttributes", "/berth.v1.AttributeService/PutAttributes"),
    op(
        "DeleteAttributes",
        "/berth.v1.AttributeService/DeleteAttributes",
    ),
    op(
        "ListAttributes",
        "/berth.v1.AttributeService/ListAttributes",
    ),
];

/// ECS's other operations (API reference, 2026): answered with
/// `UnsupportedFeatureException` naming the operation, never a 500.
pub const NOT_SERVED: &[&str] = &[
    "CreateCapacityProvider",
    "CreateExpressGatewayService",
    "CreateTaskSet",
    "DeleteAccountSetting",
    "DeleteCapacityProvider",
    "DeleteExpressGatewayService",
    "DeleteTaskSet",
    "DescribeCapacityProviders",
    "DescribeExpressGatewayService",
    "DescribeServiceRevisions",
    "DescribeTaskSets",
    "DiscoverPollEndpoint",
    "ExecuteCommand",
    "GetTaskProtection",
    "ListAccountSettings",
    "ListServicesByNamespace",
    "PutAccountSetting",
    "PutAccountSettingDefault",
    "PutClusterCapacityProviders",
    "RegisterContainerInstance",
    "StopServiceDeployment",
    "SubmitAttachmentStateChanges",
    "SubmitContainerStateChange",
    "SubmitTaskStateChange",
    "UpdateCapacityProvider",
    "UpdateCluster",
    "UpdateClusterSettings",
    "UpdateContainerAgent",
    "UpdateExpressGatewayService",
    "UpdateServicePrimaryTaskSet",
    "UpdateTaskProtection",
    "UpdateTaskSet",
];

/// The operation a target names, or the error ECS tooling should see.
pub fn operation(name: &str) -> Result<&'static Operation, EcsError> {
    if let Some(op) = OPERATIONS.iter().find(|o| o.name == name) {
        return Ok(op);
    }
    if NOT_SERVED.contains(&name) {
        return Err(EcsError::new(
            "UnsupportedFeatureException",
            400,
            format!("Berth does not support the ECS operation {name}"),
        ));
    }
    Err(EcsError::new(
        "UnknownOperationException",
        400,
        format!("{name} is not an ECS operation"),
    ))
}

/// How a call ended, for the audit log.
#[derive(Debug)]
pub enum Outcome<'a> {
    Ok,
    Err(&'a EcsError),
}

/// One call: who makes it, which operation, and what it names (for the
/// audit log, taken from the gRPC request as the gRPC gate does).
#[derive(Debug)]
pub struct Ctx<'a> {
    api: &'a EcsApi,
    principal: &'a Principal,
    op: &'static Operation,
    resource: String,
}

impl<'a> Ctx<'a> {
    pub fn new(api: &'a EcsApi, principal: &'a Principal, op: &'static Operation) -> Self {
        Self {
            api,
            principal,
            op,
            resource: String::new(),
        }
    }

    fn shared(&self) -> Shared {
        self.api.shared.clone()
    }

    /// The gRPC request for `msg`, as the gRPC gate would hand it on: with
    /// the caller in its extensions. Names the resource for the audit log.
    fn grpc<T: Message>(&mut self, msg: T) -> tonic::Request<T> {
        if let Some(r) = crate::api::auth::resource(self.op.grpc, &msg.encode_to_vec()) {
            self.resource = r;
        }
        let mut req = tonic::Request::new(msg);
        req.extensions_mut().insert(self.principal.clone());
        req
    }

    /// Records the call in the audit log: the gRPC method it shares, and
    /// OK or ECS's exception name.
    pub async fn audit(&self, outcome: Outcome<'_>) {
        let outcome = match outcome {
            Outcome::Ok => "OK",
            Outcome::Err(e) => e.code,
        };
        crate::api::auth::audit(
            &self.api.shared.db,
            self.principal,
            self.op.grpc,
            self.resource.clone(),
            outcome,
        )
        .await;
    }
}

/// Runs the call's operation on its input.
pub async fn call(ctx: &mut Ctx<'_>, input: Map<String, Value>) -> Result<Value, EcsError> {
    let mut out = dispatch(ctx, Value::Object(input)).await?;
    // AWS leaves absent members out (a null `nextToken` ends no page).
    if let Value::Object(m) = &mut out {
        m.retain(|_, v| !v.is_null());
    }
    Ok(out)
}

async fn dispatch(ctx: &mut Ctx<'_>, input: Value) -> Result<Value, EcsError> {
    match ctx.op.name {
        "CreateCluster" => cluster::create(ctx, parse(input)?).await,
        "DeleteCluster" => cluster::delete(ctx, parse(input)?).await,
        "DescribeClusters" => cluster::describe(ctx, parse(input)?).await,
        "ListClusters" => cluster::list(ctx, parse(input)?).await,
        "RegisterTaskDefinition" => taskdef::register(ctx, input).await,
        "DescribeTaskDefinition" => taskdef::describe(ctx, parse(input)?).await,
        "ListTaskDefinitions" => taskdef::list(ctx, parse(input)?).await,
        "ListTaskDefinitionFamilies" => taskdef::families(ctx, parse(input)?).await,
        "DeregisterTaskDefinition" => taskdef::deregister(ctx, parse(input)?).await,
        "RunTask" => task::run(ctx, parse(input)?).await,
        "StartTask" => task::start(ctx, parse(input)?).await,
        "StopTask" => task::stop(ctx, parse(input)?).await,
        "DescribeTasks" => task::describe(ctx, parse(input)?).await,
        "ListTasks" => task::list(ctx, parse(input)?).await,
        "CreateService" => service::create(ctx, parse(input)?).await,
        "UpdateService" => service::update(ctx, parse(input)?).await,
        "DeleteService" => service::delete(ctx, parse(input)?).await,
        "DescribeServices" => service::describe(ctx, parse(input)?).await,
        "ListServices" => service::list(ctx, parse(input)?).await,
        "ListServiceDeployments" => service::list_deployments(ctx, parse(input)?).await,
        "DescribeServiceDeployments" => service::describe_deployments(ctx, parse(input)?).await,
        "ListContainerInstances" => instance::list(ctx, parse(input)?).await,
        "DescribeContainerInstances" => instance::describe(ctx, parse(input)?).await,
        "UpdateContainerInstancesState" => instance::update_state(ctx, parse(input)?).await,
        "DeregisterContainerInstance" => instance::deregister(ctx, parse(input)?).await,
        "DeleteTaskDefinitions" => taskdef::delete(ctx, parse(input)?).await,
        "TagResource" => resource::tag(ctx, parse(input)?).await,
        "UntagResource" => resource::untag(ctx, parse(input)?).await,
        "ListTagsForResource" => resource::list_tags(ctx, parse(input)?).await,
        "PutAttributes" => resource::put_attributes(ctx, parse(input)?).await,
        "DeleteAttributes" => resource::delete_attributes(ctx, parse(input)?).await,
        "ListAttributes" => resource::list_attributes(ctx, parse(input)?).await,
        other => Err(EcsError::server(format!("{other} has no conversion"))),
    }
}

/// ECS's request members, typed; a value of the wrong type is a
/// `SerializationException` naming its path. Members Berth does not know
/// are ignored, as AWS services ignore them.
fn parse<T: DeserializeOwned>(input: Value) -> Result<T, EcsError> {
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        EcsError::new(
            "SerializationException",
            400,
            format!("{path}: {}", e.into_inner()),
        )
    })
}

/// The gRPC service's error, as ECS names it.
fn status(s: tonic::Status) -> EcsError {
    EcsError::from_status(&s)
}

/// A gRPC `next_token` as ECS's `nextToken` member: absent after the last
/// page. Paging itself is the core's (`maxResults` 1–100, stable tokens).
fn next(token: String) -> Option<String> {
    Some(token).filter(|t| !t.is_empty())
}

/// A `Describe*` list's length against ECS's limit for it.
fn at_most(field: &str, n: usize, max: usize) -> Result<(), EcsError> {
    if n > max {
        return Err(EcsError::invalid(format!(
            "{field} can have at most {max} items (got {n})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_classified_and_none_is_listed_twice() {
        for op in OPERATIONS {
            assert!(
                crate::api::auth::rule(op.grpc).is_some(),
                "{} maps to unclassified {}",
                op.name,
                op.grpc
            );
            assert!(
                !NOT_SERVED.contains(&op.name),
                "{} is served and not served",
                op.name
            );
        }
        assert_eq!(
            operation("Nope").unwrap_err().code,
            "UnknownOperationException"
        );
        assert_eq!(
            operation("CreateTaskSet").unwrap_err().code,
            "UnsupportedFeatureException"
        );
    }
}
