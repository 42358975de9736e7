//! The operator API's one gate: a tower layer around every service of the
//! server. It classifies each call by its gRPC path with [`METHODS`] (the
//! role table, as data), authenticates the bearer token, checks the role,
//! puts the [`Principal`] into the request's extensions, and records every
//! mutating call in the audit log once the handler has answered.
//!
//! - `AgentService` is not under this gate: agents authenticate with their
//!   client certificate (mutual TLS), `Register` with an activation code.
//! - Open methods ([`Access::Open`]) need no token.
//! - [`SELF_AUDITED`] streams (ECS Exec) are role-checked here and audited
//!   by their handler, since their body lasts as long as the session.
//! - A path that is not in the table is denied: a new RPC cannot be served
//!   before it is classified. `every_operator_method_is_classified` proves
//!   the table matches the services of the `.proto` files.
//! - Missing, malformed, unknown, revoked or expired token: Unauthenticated.
//!   Too small a role: PermissionDenied naming the role needed.
//!
//! Every call is also counted by method and answer code
//! ([`crate::metrics::Metrics::grpc_request`]); paths outside `berth.v1`
//! count as `other`, so clients cannot grow the label set.
//!
//! The layer only reads the `authorization` header, so it does not care
//! whether the transport is plain HTTP/2 or TLS.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use berth_proto::v1 as pb;
use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use tonic::body::Body;
use tonic::Status;

use crate::auth::{bearer, Principal, Role, Token};
use crate::db::Db;
use crate::records::{now_millis, AuditRecord};

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (`SystemService.Version`, the cluster CA).
    Open,
    /// A token of at least this role.
    Token(Role),
}

/// One operator method: its full gRPC path, who may call it, and whether it
/// changes anything or exports the store (then it is audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodRule {
    pub path: &'static str,
    pub access: Access,
    pub mutates: bool,
}

const fn open(path: &'static str) -> MethodRule {
    MethodRule {
        path,
        access: Access::Open,
        mutates: false,
    }
}

const fn read(path: &'static str, role: Role) -> MethodRule {
    MethodRule {
        path,
        access: Access::Token(role),
        mutates: false,
    }
}

const fn write(path: &'static str, role: Role) -> MethodRule {
    MethodRule {
        path,
        access: Access::Token(role),
        mutates: true,
    }
}

/// Changes nothing but hands out the store: audited like a write.
const fn export(path: &'static str, role: Role) -> MethodRule {
    write(path, role)
}

use Role::{Admin, Operator, ReadOnly};

/// Every operator method. Adding an RPC to `operator.proto` without a line
/// here fails `every_operator_method_is_classified` (and the call is
/// denied at run time).
pub const METHODS: &[MethodRule] = &[
    write("/berth.v1.ClusterService/CreateCluster", Operator),
    write("/berth.v1.ClusterService/DeleteCluster", Operator),
    read("/berth.v1.ClusterService/ListClusters", ReadOnly),
    read("/berth.v1.ClusterService/DescribeClusters", ReadOnly),
    write(
        "/berth.v1.TaskDefinitionService/RegisterTaskDefinition",
        Operator,
    ),
    read(
        "/berth.v1.TaskDefinitionService/DescribeTaskDefinition",
        ReadOnly,
    ),
    read(
        "/berth.v1.TaskDefinitionService/ListTaskDefinitions",
        ReadOnly,
    ),
    read(
        "/berth.v1.TaskDefinitionService/ListTaskDefinitionFamilies",
        ReadOnly,
    ),
    write(
        "/berth.v1.TaskDefinitionService/DeregisterTaskDefinition",
        Operator,
    ),
    write(
        "/berth.v1.TaskDefinitionService/DeleteTaskDefinitions",
        Operator,
    ),
    read(
        "/berth.v1.ContainerInstanceService/ListContainerInstances",
        ReadOnly,
    ),
    read(
        "/berth.v1.ContainerInstanceService/DescribeContainerInstances",
        ReadOnly,
    ),
    write(
        "/berth.v1.ContainerInstanceService/DeregisterContainerInstance",
        Operator,
    ),
    write(
        "/berth.v1.ContainerInstanceService/UpdateContainerInstancesState",
        Operator,
    ),
    open("/berth.v1.SystemService/Version"),
    write("/berth.v1.TaskService/StartTask", Operator),
    write("/berth.v1.TaskService/RunTask", Operator),
    write("/berth.v1.TaskService/StopTask", Operator),
    read("/berth.v1.TaskService/ListTasks", ReadOnly),
    read("/berth.v1.TaskService/DescribeTasks", ReadOnly),
    read("/berth.v1.TaskService/GetTaskLogs", ReadOnly),
    // ECS Exec: a stream, so the gate does not read its body; the handler
    // audits each session itself (who, task, container, command).
    write("/berth.v1.ExecService/ExecuteCommand", Operator),
    // Task stats (berth/v1/stats.proto): readings only.
    read("/berth.v1.TaskStatsService/GetTaskStats", ReadOnly),
    read("/berth.v1.TaskStatsService/WatchTaskStats", ReadOnly),
    read("/berth.v1.TaskStatsService/ListTaskStats", ReadOnly),
    write("/berth.v1.ServiceService/CreateService", Operator),
    write("/berth.v1.ServiceService/UpdateService", Operator),
    write("/berth.v1.ServiceService/DeleteService", Operator),
    read("/berth.v1.ServiceService/DescribeServices", ReadOnly),
    read("/berth.v1.ServiceService/ListServices", ReadOnly),
    read("/berth.v1.ServiceService/ListServiceDeployments", ReadOnly),
    read(
        "/berth.v1.ServiceService/DescribeServiceDeployments",
        ReadOnly,
    ),
    write("/berth.v1.TokenService/CreateToken", Admin),
    read("/berth.v1.TokenService/ListTokens", Admin),
    write("/berth.v1.TokenService/RevokeToken", Admin),
    read("/berth.v1.AuditService/ListAuditEvents", ReadOnly),
    read("/berth.v1.EventService/ListEvents", ReadOnly),
    read("/berth.v1.EventService/WatchEvents", ReadOnly),
    // Webhooks send every matching event to a URL: creating and deleting
    // them is admin business; the secret never reaches the audit.
    write("/berth.v1.WebhookService/CreateWebhook", Admin),
    read("/berth.v1.WebhookService/ListWebhooks", ReadOnly),
    read("/berth.v1.WebhookService/DescribeWebhook", ReadOnly),
    write("/berth.v1.WebhookService/DeleteWebhook", Admin),
    read("/berth.v1.WebhookService/ListDeadLetters", ReadOnly),
    write("/berth.v1.WebhookService/RedriveDeadLetters", Operator),
    // Trust: fetching the CA to pin it precedes having a token; activations
    // are admin business like tokens (listing them too).
    open("/berth.v1.ClusterCaService/GetClusterCa"),
    write("/berth.v1.ActivationService/CreateActivation", Admin),
    read("/berth.v1.ActivationService/ListActivations", Admin),
    write("/berth.v1.ActivationService/RevokeActivation", Admin),
    // Secrets: values go in, never come out; the audit names only the secret.
    write("/berth.v1.SecretService/PutSecret", Operator),
    read("/berth.v1.SecretService/ListSecrets", ReadOnly),
    write("/berth.v1.SecretService/DeleteSecret", Operator),
    // Backups: the whole store and the CA's key leave the scheduler, so
    // taking one is audited like a write.
    export("/berth.v1.SnapshotService/SaveSnapshot", Admin),
    // Tags and custom attributes: operator business, like the resources.
    write("/berth.v1.TagService/TagResource", Operator),
    write("/berth.v1.TagService/UntagResource", Operator),
    read("/berth.v1.TagService/ListTagsForResource", ReadOnly),
    write("/berth.v1.AttributeService/PutAttributes", Operator),
    write("/berth.v1.AttributeService/DeleteAttributes", Operator),
    read("/berth.v1.AttributeService/ListAttributes", ReadOnly),
    // Target groups: operator business like services; load balancers and
    // discovery only watch (a read-only token is enough for `berth-lb`).
    write("/berth.v1.TargetGroupService/CreateTargetGroup", Operator),
    read(
        "/berth.v1.TargetGroupService/DescribeTargetGroups",
        ReadOnly,
    ),
    write("/berth.v1.TargetGroupService/ModifyTargetGroup", Operator),
    write("/berth.v1.TargetGroupService/DeleteTargetGroup", Operator),
    read(
        "/berth.v1.TargetGroupService/DescribeTargetHealth",
        ReadOnly,
    ),
    read("/berth.v1.TargetGroupService/WatchTargets", ReadOnly),
    // Scheduled tasks run tasks: operator business, like RunTask.
    write("/berth.v1.ScheduleService/CreateSchedule", Operator),
    write("/berth.v1.ScheduleService/UpdateScheduleState", Operator),
    write("/berth.v1.ScheduleService/DeleteSchedule", Operator),
    read("/berth.v1.ScheduleService/ListSchedules", ReadOnly),
    read("/berth.v1.ScheduleService/GetSchedule", ReadOnly),
    // Service auto scaling changes desired counts: operator business.
    write(
        "/berth.v1.AutoScalingService/RegisterScalableTarget",
        Operator,
    ),
    write(
        "/berth.v1.AutoScalingService/DeregisterScalableTarget",
        Operator,
    ),
    read(
        "/berth.v1.AutoScalingService/DescribeScalableTargets",
        ReadOnly,
    ),
    write("/berth.v1.AutoScalingService/PutScalingPolicy", Operator),
    write("/berth.v1.AutoScalingService/DeleteScalingPolicy", Operator),
    read(
        "/berth.v1.AutoScalingService/DescribeScalingPolicies",
        ReadOnly,
    ),
    write("/berth.v1.AutoScalingService/PutScheduledAction", Operator),
    write(
        "/berth.v1.AutoScalingService/DeleteScheduledAction",
        Operator,
    ),
    read(
        "/berth.v1.AutoScalingService/DescribeScheduledActions",
        ReadOnly,
    ),
    read(
        "/berth.v1.AutoScalingService/DescribeScalingActivities",
        ReadOnly,
    ),
];

/// Mutating methods that are long-lived streams: the gate checks the role
/// but does not read their body (it lasts as long as the session), and the
/// handler writes the audit record itself (`api::exec`).
pub const SELF_AUDITED: &[&str] = &["/berth.v1.ExecService/ExecuteCommand"];

/// Services outside this gate (their own authentication).
pub const UNGATED_SERVICES: &[&str] = &[pb::agent_service_server::SERVICE_NAME];

/// The rule of a full gRPC path, if it is classified.
pub fn rule(path: &str) -> Option<&'static MethodRule> {
    METHODS.iter().find(|m| m.path == path)
}

fn ungated(path: &str) -> bool {
    UNGATED_SERVICES.iter().any(|s| {
        path.strip_prefix('/')
            .and_then(|p| p.strip_prefix(s))
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// What a mutating call names, for the audit log: never the request as a
/// whole (a task definition may carry secrets), only the names in it.
/// `None` for paths without an extractor (every mutating method has one; a
/// test checks).
pub fn resource(path: &str, msg: &[u8]) -> Option<String> {
    fn de<M: Message + Default>(msg: &[u8]) -> M {
        M::decode(msg).unwrap_or_default()
    }
    /// `cluster/NAME`, then ` REST` unless `rest` is empty.
    fn in_cluster(cluster: &str, rest: &str) -> String {
        let cluster = super::cluster_arg(cluster);
        if rest.is_empty() {
            format!("cluster/{cluster}")
        } else {
            format!("cluster/{cluster} {rest}")
        }
    }
    /// The resource part of a tagged resource's ARN (`cluster/prod`).
    fn tagged(arn: &str) -> String {
        berth_proto::arn::resource_part(arn).to_owned()
    }
    /// `container-instance/ID attribute/NAME` for each attribute.
    fn attributes(attrs: &[pb::TargetedAttribute]) -> String {
        attrs
            .iter()
            .map(|a| {
                format!(
                    "container-instance/{} attribute/{}",
                    berth_proto::arn::short_id(&a.target_id),
                    a.name
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    let method = path.rsplit('/').next().unwrap_or_default();
    Some(match method {
        "CreateCluster" => format!(
            "cluster/{}",
            de::<pb::CreateClusterRequest>(msg).cluster_name
        ),
        "DeleteCluster" => in_cluster(&de::<pb::DeleteClusterRequest>(msg).cluster, ""),
        "RegisterTaskDefinition" => {
            let r = de::<pb::RegisterTaskDefinitionRequest>(msg);
            let v: serde_json::Value =
                serde_json::from_str(&r.task_definition_json).unwrap_or_default();
            let family = v
                .pointer("/family")
                .or_else(|| v.pointer("/taskDefinition/family"))
                .and_then(|f| f.as_str())
                .unwrap_or_default();
            format!("task-definition/{family}")
        }
        "DeregisterTaskDefinition" => format!(
            "task-definition/{}",
            de::<pb::DeregisterTaskDefinitionRequest>(msg).task_definition
        ),
        "StartTask" => {
            let r = de::<pb::StartTaskRequest>(msg);
            in_cluster(
                &r.cluster,
                &format!("task-definition/{}", r.task_definition),
            )
        }
        "RunTask" => {
            let r = de::<pb::RunTaskRequest>(msg);
            in_cluster(
                &r.cluster,
                &format!("task-definition/{}", r.task_definition),
            )
        }
        "StopTask" => {
            let r = de::<pb::StopTaskRequest>(msg);
            in_cluster(&r.cluster, &format!("task/{}", r.task))
        }
        "CreateService" => {
            let r = de::<pb::CreateServiceRequest>(msg);
            in_cluster(
                &r.cluster,
                &format!(
                    "service/{} task-definition/{}",
                    r.service_name, r.task_definition
                ),
            )
        }
        "UpdateService" => {
            let r = de::<pb::UpdateServiceRequest>(msg);
            let mut s = in_cluster(&r.cluster, &format!("service/{}", r.service));
            if !r.task_definition.is_empty() {
                s.push_str(&format!(" task-definition/{}", r.task_definition));
            }
            s
        }
        "DeleteService" => {
            let r = de::<pb::DeleteServiceRequest>(msg);
            in_cluster(&r.cluster, &format!("service/{}", r.service))
        }
        "CreateToken" => {
            let r = de::<pb::CreateTokenRequest>(msg);
            format!("token/{} role/{}", r.name, r.role)
        }
        "RevokeToken" => format!("token/{}", de::<pb::RevokeTokenRequest>(msg).id),
        "DeregisterContainerInstance" => {
            let r = de::<pb::DeregisterContainerInstanceRequest>(msg);
            in_cluster(
                &r.cluster,
                &format!("container-instance/{}", r.container_instance),
            )
        }
        "UpdateContainerInstancesState" => {
            let r = de::<pb::UpdateContainerInstancesStateRequest>(msg);
            in_cluster(
                &r.cluster,
                &format!(
                    "container-instance/{} status/{}",
                    r.container_instances.join(","),
                    r.status
                ),
            )
        }
        "CreateActivation" => in_cluster(&de::<pb::CreateActivationRequest>(msg).cluster, ""),
        "RevokeActivation" => format!(
            "activation/{}",
            de::<pb::RevokeActivationRequest>(msg).activation_id
        ),
        // The name only: the request's value never reaches the audit log.
        "PutSecret" => format!("secret/{}", de::<pb::PutSecretRequest>(msg).name),
        "DeleteSecret" => format!("secret/{}", de::<pb::DeleteSecretRequest>(msg).name),
        "SaveSnapshot" => "snapshot".to_owned(),
        // Name and URL only: the secret stays out of the audit.
        "CreateWebhook" => {
            let r = de::<pb::CreateWebhookRequest>(msg);
            format!("webhook/{} url/{}", r.name, r.url)
        }
        "DeleteWebhook" => format!("webhook/{}", de::<pb::DeleteWebhookRequest>(msg).name),
        "RedriveDeadLetters" => {
            format!("webhook/{}", de::<pb::RedriveDeadLettersRequest>(msg).name)
        }
        // Audited by its handler, which reads the stream's first message.
        "ExecuteCommand" => String::new(),
        "CreateTargetGroup" => format!(
            "targetgroup/{}",
            de::<pb::CreateTargetGroupRequest>(msg).name
        ),
        "ModifyTargetGroup" => format!(
            "targetgroup/{}",
            berth_proto::arn::target_group_name(
                &de::<pb::ModifyTargetGroupRequest>(msg).target_group
            )
        ),
        "DeleteTargetGroup" => format!(
            "targetgroup/{}",
            berth_proto::arn::target_group_name(
                &de::<pb::DeleteTargetGroupRequest>(msg).target_group
            )
        ),
        "DeleteTaskDefinitions" => format!(
            "task-definition/{}",
            de::<pb::DeleteTaskDefinitionsRequest>(msg)
                .task_definitions
                .join(",")
        ),
        // Keys only: tag values are data, not names.
        "TagResource" => {
            let r = de::<pb::TagResourceRequest>(msg);
            let keys: Vec<&str> = r.tags.iter().map(|t| t.key.as_str()).collect();
            format!("{} tag/{}", tagged(&r.resource_arn), keys.join(","))
        }
        "UntagResource" => {
            let r = de::<pb::UntagResourceRequest>(msg);
            format!("{} tag/{}", tagged(&r.resource_arn), r.tag_keys.join(","))
        }
        "PutAttributes" => {
            let r = de::<pb::PutAttributesRequest>(msg);
            in_cluster(&r.cluster, &attributes(&r.attributes))
        }
        "DeleteAttributes" => {
            let r = de::<pb::DeleteAttributesRequest>(msg);
            in_cluster(&r.cluster, &attributes(&r.attributes))
        }
        "CreateSchedule" => format!("schedule/{}", de::<pb::CreateScheduleRequest>(msg).name),
        "UpdateScheduleState" => {
            let r = de::<pb::UpdateScheduleStateRequest>(msg);
            format!("schedule/{} state/{}", r.name, r.state)
        }
        "DeleteSchedule" => format!("schedule/{}", de::<pb::DeleteScheduleRequest>(msg).name),
        "RegisterScalableTarget" => scalable(de::<pb::RegisterScalableTargetRequest>(msg).target),
        "DeregisterScalableTarget" => scalable(Some(de::<pb::ScalableTargetRef>(msg))),
        "PutScalingPolicy" => {
            let r = de::<pb::PutScalingPolicyRequest>(msg);
            format!("{} policy/{}", scalable(r.target), r.policy_name)
        }
        "DeleteScalingPolicy" => {
            let r = de::<pb::DeleteScalingPolicyRequest>(msg);
            format!("{} policy/{}", scalable(r.target), r.policy_name)
        }
        "PutScheduledAction" => {
            let r = de::<pb::PutScheduledActionRequest>(msg);
            format!(
                "{} scheduled-action/{}",
                scalable(r.target),
                r.scheduled_action_name
            )
        }
        "DeleteScheduledAction" => {
            let r = de::<pb::DeleteScheduledActionRequest>(msg);
            format!(
                "{} scheduled-action/{}",
                scalable(r.target),
                r.scheduled_action_name
            )
        }
        _ => return None,
    })
}

/// `cluster/C service/S` of a scalable target.
fn scalable(r: Option<pb::ScalableTargetRef>) -> String {
    let r = r.unwrap_or_default();
    format!(
        "cluster/{} service/{}",
        super::cluster_arg(&r.cluster),
        berth_proto::arn::resource_part(&r.service)
    )
}

/// The message of a unary gRPC body: the first length-prefixed frame, if
/// it is not compressed.
fn first_message(body: &[u8]) -> &[u8] {
    match body {
        [0, a, b, c, d, rest @ ..] => {
            let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
            rest.get(..len).unwrap_or_default()
        }
        _ => &[],
    }
}

/// The principal a request's `authorization` header names, or why not.
pub fn authenticate(db: &Db, headers: &http::HeaderMap) -> Result<Principal, Status> {
    let header = headers
        .get(berth_proto::auth::AUTHORIZATION)
        .ok_or_else(|| {
            Status::unauthenticated(
                "no operator token: send `authorization: Bearer berth_<id>_<secret>`",
            )
        })?;
    let presented = header.to_str().ok().and_then(bearer).ok_or_else(|| {
        Status::unauthenticated("the authorization header is not `Bearer <token>`")
    })?;
    let token = Token::parse(presented)
        .map_err(|e| Status::unauthenticated(format!("malformed operator token: {e}")))?;
    let rec = db
        .token(&token.id)
        .map_err(|e| {
            tracing::error!(cause = %e, "reading tokens");
            Status::unavailable(format!("cannot check the token: {e}"))
        })?
        .filter(|r| token.matches(&r.secret_sha256))
        .ok_or_else(|| Status::unauthenticated("unknown operator token"))?;
    if rec.revoked_at.is_some() {
        return Err(Status::unauthenticated(format!(
            "operator token {} ({}) was revoked",
            rec.id, rec.name
        )));
    }
    if !rec.is_usable(now_millis()) {
        return Err(Status::unauthenticated(format!(
            "operator token {} ({}) has expired",
            rec.id, rec.name
        )));
    }
    Ok(Principal {
        token_id: rec.id,
        token_name: rec.name,
        role: rec.role,
    })
}

/// The tower layer: `Server::builder().layer(AuthLayer::new(db))`.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    db: Db,
}

impl AuthLayer {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            db: self.db.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    db: Db,
}

type Req = http::Request<Body>;
type Resp = http::Response<Body>;

impl<S> tower_service::Service<Req> for Auth<S>
where
    S: tower_service::Service<Req, Response = Resp, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Resp;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The clone is the one that is not ready: keep the ready one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let db = self.db.clone();
        let path = req.uri().path().to_owned();
        Box::pin(async move {
            let metrics = db.metrics().clone();
            let resp = gate(db, inner, req).await?;
            metrics.grpc_request(&path, is_known(&path), response_code(&resp));
            Ok(resp)
        })
    }
}

async fn gate<S>(db: Db, mut inner: S, mut req: Req) -> Result<Resp, Infallible>
where
    S: tower_service::Service<Req, Response = Resp, Error = Infallible>,
{
    let path = req.uri().path().to_owned();
    let rule = rule(&path);
    if ungated(&path) || rule.is_some_and(|r| r.access == Access::Open) {
        return inner.call(req).await;
    }
    let principal = match authenticate(&db, req.headers()) {
        Ok(p) => p,
        Err(status) => {
            tracing::info!(method = %path, cause = %status.message(), "unauthenticated call refused");
            return Ok(status.into_http());
        }
    };
    let Some(rule) = rule else {
        let status = Status::permission_denied(format!(
            "{path} is not a classified operator method; it is denied"
        ));
        audit(
            &db,
            &principal,
            &path,
            String::new(),
            &status_outcome(&status),
        )
        .await;
        return Ok(status.into_http());
    };
    if let Access::Token(needed) = rule.access {
        if principal.role < needed {
            let status = Status::permission_denied(format!(
                "{path} needs the {needed} role; token {} ({}) has the {} role",
                principal.token_id, principal.token_name, principal.role
            ));
            tracing::info!(method = %path, token = %principal.token_id, "call refused: role too small");
            if rule.mutates {
                audit(
                    &db,
                    &principal,
                    &path,
                    String::new(),
                    &status_outcome(&status),
                )
                .await;
            }
            return Ok(status.into_http());
        }
    }
    req.extensions_mut().insert(principal.clone());
    if !rule.mutates || SELF_AUDITED.contains(&path.as_str()) {
        return inner.call(req).await;
    }
    // Mutating calls are unary and small: read the body to name the
    // resource, then hand the same bytes on.
    let (parts, body) = req.into_parts();
    let bytes: Bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(status) => return Ok(status.into_http()),
    };
    let resource = resource(&path, first_message(&bytes)).unwrap_or_default();
    let req = http::Request::from_parts(parts, Body::new(http_body_util::Full::new(bytes)));
    let resp = inner.call(req).await?;
    // A handler's error comes as a trailers-only answer: grpc-status in the
    // headers. Headers without it start a successful answer.
    let outcome = Status::from_header_map(resp.headers())
        .map_or_else(|| "OK".to_owned(), |s| status_outcome(&s));
    audit(&db, &principal, &path, resource, &outcome).await;
    Ok(resp)
}

/// Whether `path` names a method of `berth.v1` (the label's values stay
/// the methods of the API, whatever paths clients send).
fn is_known(path: &str) -> bool {
    const AGENT_METHODS: &[&str] = &["Register", "Connect", "RenewCertificate", "DescribeSelf"];
    rule(path).is_some()
        || path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(pb::agent_service_server::SERVICE_NAME))
            .and_then(|p| p.strip_prefix('/'))
            .is_some_and(|m| AGENT_METHODS.contains(&m))
}

/// The code of an answer as it leaves the layer: a handler's error comes as
/// a trailers-only answer (grpc-status in the headers); headers without it
/// start a successful answer (a stream that fails later counts as `Ok`).
fn response_code(resp: &Resp) -> tonic::Code {
    Status::from_header_map(resp.headers()).map_or(tonic::Code::Ok, |s| s.code())
}

fn status_outcome(s: &Status) -> String {
    match s.code() {
        tonic::Code::Ok => "OK".to_owned(),
        code => format!("{code:?}"),
    }
}

/// Records one call in the audit log (both operator edges use it).
pub(crate) async fn audit(db: &Db, who: &Principal, method: &str, resource: String, outcome: &str) {
    let rec = AuditRecord {
        id: String::new(),
        time: 0,
        token_id: who.token_id.clone(),
        token_name: who.token_name.clone(),
        method: method.to_owned(),
        resource,
        outcome: outcome.to_owned(),
    };
    if let Err(e) = db.record_audit(rec).await {
        tracing::error!(cause = %e, method, token = %who.token_id, "cannot record an audit event");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every method of every `berth.v1` service, from the descriptor set
    /// the proto crate was built with.
    fn declared_methods() -> BTreeSet<String> {
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut out = BTreeSet::new();
        for file in set.file {
            let package = file.package().to_owned();
            for service in &file.service {
                for m in &service.method {
                    out.insert(format!("/{package}.{}/{}", service.name(), m.name()));
                }
            }
        }
        out
    }

    #[test]
    fn every_operator_method_is_classified() {
        let declared = declared_methods();
        assert!(declared.len() > 20, "{declared:?}");
        let operator: BTreeSet<String> = declared.into_iter().filter(|p| !ungated(p)).collect();
        let table: BTreeSet<String> = METHODS.iter().map(|m| m.path.to_owned()).collect();
        assert_eq!(table.len(), METHODS.len(), "a path is in the table twice");
        let unclassified: Vec<_> = operator.difference(&table).collect();
        assert!(
            unclassified.is_empty(),
            "operator methods missing from api::auth::METHODS: {unclassified:?}"
        );
        let stale: Vec<_> = table.difference(&operator).collect();
        assert!(
            stale.is_empty(),
            "METHODS names methods no service has: {stale:?}"
        );
    }

    #[test]
    fn the_agent_service_is_the_only_ungated_one() {
        assert!(ungated("/berth.v1.AgentService/Connect"));
        assert!(!ungated("/berth.v1.AgentServiceX/Connect"));
        assert!(!ungated("/berth.v1.ClusterService/CreateCluster"));
        assert!(METHODS.iter().all(|m| !ungated(m.path)));
    }

    #[test]
    fn the_table_follows_the_role_rules() {
        for m in METHODS {
            let name = m.path.rsplit('/').next().unwrap();
            let reads = ["List", "Describe", "Get", "Version", "Watch"]
                .iter()
                .any(|p| name.starts_with(p));
            assert_eq!(
                !reads, m.mutates,
                "{}: reads are exactly List*/Describe*/Get*/Watch*",
                m.path
            );
            if m.path.starts_with("/berth.v1.TokenService/")
                || m.path.starts_with("/berth.v1.ActivationService/")
                || m.path.starts_with("/berth.v1.SnapshotService/")
                || m.path == "/berth.v1.WebhookService/CreateWebhook"
                || m.path == "/berth.v1.WebhookService/DeleteWebhook"
            {
                assert_eq!(m.access, Access::Token(Role::Admin), "{}", m.path);
            } else if m.mutates {
                assert_eq!(m.access, Access::Token(Role::Operator), "{}", m.path);
            }
            if m.access == Access::Open {
                assert!(!m.mutates, "{} is open but mutates", m.path);
            }
        }
        let open: Vec<_> = METHODS
            .iter()
            .filter(|m| m.access == Access::Open)
            .map(|m| m.path)
            .collect();
        assert_eq!(
            open,
            [
                "/berth.v1.SystemService/Version",
                "/berth.v1.ClusterCaService/GetClusterCa"
            ]
        );
    }

    #[test]
    fn every_mutating_method_names_its_resource() {
        for m in METHODS.iter().filter(|m| m.mutates) {
            assert!(
                resource(m.path, &[]).is_some(),
                "{} has no resource extractor",
                m.path
            );
        }
        let msg = pb::StopTaskRequest {
            cluster: "prod".into(),
            task: "abc".into(),
            reason: "a secret reason".into(),
        }
        .encode_to_vec();
        assert_eq!(
            resource("/berth.v1.TaskService/StopTask", &msg).unwrap(),
            "cluster/prod task/abc"
        );
        let msg = pb::UpdateServiceRequest {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: "web:2".into(),
            desired_count: Some(3),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(
            resource("/berth.v1.ServiceService/UpdateService", &msg).unwrap(),
            "cluster/prod service/web task-definition/web:2"
        );
        let msg = pb::RegisterTaskDefinitionRequest {
            task_definition_json: r#"{"taskDefinition":{"family":"web","containerDefinitions":[{"environment":[{"name":"PW","value":"hunter2"}]}]}}"#.into(),
        }
        .encode_to_vec();
        let r = resource(
            "/berth.v1.TaskDefinitionService/RegisterTaskDefinition",
            &msg,
        )
        .unwrap();
        assert_eq!(r, "task-definition/web");
        let msg = pb::PutSecretRequest {
            name: "db/password".into(),
            value: b"hunter2".to_vec(),
        }
        .encode_to_vec();
        let r = resource("/berth.v1.SecretService/PutSecret", &msg).unwrap();
        assert_eq!(r, "secret/db/password");
        assert!(!r.contains("hunter2"));
        let msg = pb::TagResourceRequest {
            resource_arn: "arn:berth:ecs:local:0:cluster/prod".into(),
            tags: vec![pb::Tag {
                key: "owner".into(),
                value: "a value, not a name".into(),
            }],
        }
        .encode_to_vec();
        let r = resource("/berth.v1.TagService/TagResource", &msg).unwrap();
        assert_eq!(r, "cluster/prod tag/owner");
        let msg = pb::PutAttributesRequest {
            cluster: "prod".into(),
            attributes: vec![pb::TargetedAttribute {
                name: "rack".into(),
                value: "r1".into(),
                target_type: String::new(),
                target_id: "arn:berth:ecs:local:0:container-instance/prod/abc".into(),
            }],
        }
        .encode_to_vec();
        let r = resource("/berth.v1.AttributeService/PutAttributes", &msg).unwrap();
        assert_eq!(r, "cluster/prod container-instance/abc attribute/rack");
    }

    #[test]
    fn first_message_reads_one_uncompressed_frame() {
        assert_eq!(first_message(&[0, 0, 0, 0, 2, 7, 8, 9]), &[7, 8]);
        assert_eq!(first_message(&[1, 0, 0, 0, 2, 7, 8]), &[] as &[u8]);
        assert_eq!(first_message(&[0, 0, 0, 0, 9, 7]), &[] as &[u8]);
        assert_eq!(first_message(&[]), &[] as &[u8]);
    }
}
