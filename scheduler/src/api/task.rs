//! `TaskService`: ECS's StartTask, StopTask, ListTasks and DescribeTasks,
//! and container logs streamed from the task's agent through the scheduler.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use berth_proto::arn::{short_id, ArnPrefix};
use berth_proto::ecs::name_or_empty;
use berth_proto::taskdef::{FieldIssue, NetworkMode};
use berth_proto::v1::{
    task_service_server::TaskService, Container, DescribeTasksRequest, DescribeTasksResponse,
    Failure, GetTaskLogsRequest, ListTasksRequest, ListTasksResponse, LogEntry, NetworkBinding,
    RunTaskRequest, RunTaskResponse, StartTaskRequest, StartTaskResponse, StopTaskRequest,
    StopTaskResponse, Task,
};
use futures::Stream;
use prost::Message as _;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::convert::{includes_tags, launch_type_matches, parse_ref, tags_to_proto, validate_tags};
use super::{cluster_arg, millis, timestamp, ApiError, Shared};
use crate::agent_link::{LogLine, LogPart, LogQuery, LogRouter, Outbound};
use crate::db::{RunSpec, StartSpec, TaskFilter, MAX_COUNT, MAX_RUN_COUNT};
use crate::paging::{paginate, time_key, Order, PageRequest, DEFAULT_PAGE};
use crate::placement::spec::{self, Constraint, Strategy, MAX_CONSTRAINTS, MAX_STRATEGIES};
use crate::records::{
    ContainerOverride, DesiredStatus, TaskDefinitionRecord, TaskOverrides, TaskRecord,
};

/// ECS's limit on tasks named in one DescribeTasks call.
const MAX_DESCRIBE: usize = 100;
/// How long a log request may wait to be handed to its agent's stream.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct TaskApi {
    pub shared: Shared,
}

/// ECS's Task from a record.
pub fn task_to_proto(arn: &ArnPrefix, t: &TaskRecord) -> Task {
    let task_arn = arn.task(&t.cluster, &t.id);
    let opt_string = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    Task {
        task_arn: task_arn.clone(),
        cluster_arn: arn.cluster(&t.cluster),
        task_definition_arn: arn.task_definition(&t.family, t.revision),
        container_instance_arn: arn.container_instance(&t.cluster, &t.instance_id),
        last_status: t.last_status.as_str().to_owned(),
        desired_status: t.desired_status.as_str().to_owned(),
        health_status: name_or_empty(t.health_status),
        cpu: t.reservation.cpu_units.to_string(),
        memory: t.reservation.memory_mib.to_string(),
        containers: t
            .containers
            .iter()
            .map(|c| Container {
                container_arn: arn.container(&t.cluster, &t.id, &c.name),
                task_arn: task_arn.clone(),
                name: c.name.clone(),
                image: c.image.clone(),
                image_digest: c.image_digest.clone(),
                runtime_id: c.runtime_id.clone(),
                last_status: name_or_empty(c.last_status),
                exit_code: c.exit_code,
                reason: c.reason.clone(),
                network_bindings: c
                    .network_bindings
                    .iter()
                    .map(|b| NetworkBinding {
                        bind_ip: b.bind_ip.clone(),
                        container_port: u32::from(b.container_port),
                        host_port: u32::from(b.host_port),
                        protocol: b.protocol.as_str().to_owned(),
                    })
                    .collect(),
                health_status: name_or_empty(c.health_status),
                health_check_output: c.health_check_output.clone(),
                restart_count: c.restart_count,
                cpu: opt_string(c.cpu),
                memory: opt_string(c.memory),
                memory_reservation: opt_string(c.memory_reservation),
            })
            .collect(),
        started_by: t.started_by.clone(),
        group: t.group.clone(),
        // ECS Anywhere's launch type: tasks on hosts the user runs.
        launch_type: "EXTERNAL".to_owned(),
        version: t.version,
        created_at: Some(timestamp(t.created_at)),
        pull_started_at: t.pull_started_at.map(timestamp),
        pull_stopped_at: t.pull_stopped_at.map(timestamp),
        started_at: t.started_at.map(timestamp),
        stopping_at: t.stopping_at.map(timestamp),
        stopped_at: t.stopped_at.map(timestamp),
        connectivity_at: None,
        tags: tags_to_proto(&t.tags),
        stop_code: t
            .stop_code
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        stopped_reason: t.stopped_reason.clone(),
        overrides: t.overrides.as_ref().map(overrides_to_proto),
        network_mode: network_mode(t).to_owned(),
        private_ipv4_address: t.private_ipv4.map(|ip| ip.to_string()).unwrap_or_default(),
        enable_execute_command: t.enable_execute_command,
    }
}

/// The task's network mode. Records written before the mode was kept have
/// none: an address can only be an awsvpc task's (agents report no other),
/// and without one the mode is left empty.
fn network_mode(t: &TaskRecord) -> &'static str {
    match (t.network_mode, t.private_ipv4) {
        (Some(m), _) => m.as_str(),
        (None, Some(_)) => NetworkMode::Awsvpc.as_str(),
        (None, None) => "",
    }
}

/// ECS's TaskOverride from a record.
pub(super) fn overrides_to_proto(o: &TaskOverrides) -> berth_proto::v1::TaskOverride {
    let int = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
    berth_proto::v1::TaskOverride {
        container_overrides: o
            .container_overrides
            .iter()
            .map(|c| berth_proto::v1::ContainerOverride {
                name: c.name.clone(),
                command: c.command.clone().unwrap_or_default(),
                environment: c
                    .environment
                    .iter()
                    .map(|(name, value)| berth_proto::v1::KeyValuePair {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                cpu: int(c.cpu),
                memory: int(c.memory),
                memory_reservation: int(c.memory_reservation),
            })
            .collect(),
    }
}

/// ECS's startedBy/group rule: up to `max` letters, digits, `-_:./`.
/// ECS's limit on a RunTask `clientToken`.
const MAX_CLIENT_TOKEN: usize = 64;

/// The definition's own `memberOf` constraints, then the request's, parsed
/// ([`spec::constraints`]) and held to ECS's limit.
fn run_constraints(
    td: &TaskDefinitionRecord,
    req: &[berth_proto::v1::PlacementConstraint],
) -> Result<Vec<Constraint>, ApiError> {
    let out = spec::constraints(
        &td.definition,
        req.iter()
            .map(|c| (c.r#type.as_str(), c.expression.as_str())),
    )
    .map_err(spec_issues)?;
    if out.len() > MAX_CONSTRAINTS {
        return Err(ApiError::invalid(
            "placementConstraints",
            format!(
                "{} constraints with the task definition's; at most {MAX_CONSTRAINTS}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// The request's strategies ([`spec::strategies`]); ECS's default for
/// RunTask is `random`.
fn run_strategies(req: &[berth_proto::v1::PlacementStrategy]) -> Result<Vec<Strategy>, ApiError> {
    if req.len() > MAX_STRATEGIES {
        return Err(ApiError::invalid(
            "placementStrategy",
            format!("{} strategies; at most {MAX_STRATEGIES}", req.len()),
        ));
    }
    spec::strategies(
        req.iter().map(|s| (s.r#type.as_str(), s.field.as_str())),
        || vec![Strategy::Random],
    )
    .map_err(spec_issues)
}

fn spec_issues(errors: Vec<spec::SpecError>) -> ApiError {
    ApiError::InvalidFields(
        errors
            .into_iter()
            .map(|e| FieldIssue {
                path: e.path,
                message: e.message,
            })
            .collect(),
    )
}

/// RunTask's overrides, checked against the definition they apply to.
pub(super) fn run_overrides(
    td: &TaskDefinitionRecord,
    req: Option<&berth_proto::v1::TaskOverride>,
) -> Result<Option<TaskOverrides>, ApiError> {
    let Some(req) = req.filter(|o| !o.container_overrides.is_empty()) else {
        return Ok(None);
    };
    let mut issues = Vec::new();
    let mut out = TaskOverrides::default();
    let non_negative =
        |issues: &mut Vec<FieldIssue>, path: String, v: Option<i32>| -> Option<u32> {
            match v {
                Some(n) if n < 0 => {
                    issues.push(FieldIssue {
                        path,
                        message: format!("{n} is negative"),
                    });
                    None
                }
                other => other.map(|n| n as u32),
            }
        };
    for (i, o) in req.container_overrides.iter().enumerate() {
        let path = format!("overrides.containerOverrides[{i}]");
        if !td
            .definition
            .container_definitions
            .iter()
            .any(|c| c.name == o.name)
        {
            issues.push(FieldIssue {
                path: format!("{path}.name"),
                message: format!("no container {:?} in {}:{}", o.name, td.family, td.revision),
            });
        }
        for (j, kv) in o.environment.iter().enumerate() {
            if kv.name.is_empty() {
                issues.push(FieldIssue {
                    path: format!("{path}.environment[{j}].name"),
                    message: "required".into(),
                });
            }
        }
        out.container_overrides.push(ContainerOverride {
            name: o.name.clone(),
            command: Some(o.command.clone()).filter(|c| !c.is_empty()),
            environment: o
                .environment
                .iter()
                .map(|kv| (kv.name.clone(), kv.value.clone()))
                .collect(),
            cpu: non_negative(&mut issues, format!("{path}.cpu"), o.cpu),
            memory: non_negative(&mut issues, format!("{path}.memory"), o.memory),
            memory_reservation: non_negative(
                &mut issues,
                format!("{path}.memoryReservation"),
                o.memory_reservation,
            ),
        });
    }
    if issues.is_empty() {
        // The definition as it will run must be valid as a whole.
        if let Err(e) = berth_proto::taskdef::validate::validate(&out.apply(&td.definition)) {
            issues.extend(e.errors.into_iter().map(|f| FieldIssue {
                path: f.path,
                message: format!("{} (with overrides applied)", f.message),
            }));
        }
    }
    if issues.is_empty() {
        Ok(Some(out))
    } else {
        Err(ApiError::InvalidFields(issues))
    }
}

fn validate_tag(field: &str, s: &str, max: usize) -> Result<(), ApiError> {
    if s.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_:./".contains(*c)))
    {
        return Err(ApiError::invalid(
            field,
            format!("{s:?} contains {c:?}; only letters, digits and '-_:./' are allowed"),
        ));
    }
    Ok(())
}

/// The caller's view of a log read: ends the read at the agent when the
/// caller goes away before the end.
struct LogFeed {
    rx: mpsc::Receiver<LogPart>,
    request_id: u64,
    router: LogRouter,
    outbound: mpsc::Sender<Outbound>,
    pending: VecDeque<LogEntry>,
    done: bool,
}

impl Drop for LogFeed {
    fn drop(&mut self) {
        if !self.done {
            self.router.close(self.request_id);
            let _ = self.outbound.try_send(Outbound::LogCancel {
                request_id: self.request_id,
            });
        }
    }
}

fn log_entry(l: LogLine) -> LogEntry {
    LogEntry {
        time: l.time.map(timestamp),
        container: l.container,
        stream: l.stream,
        log: l.log,
    }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<LogEntry, Status>> + Send>>;

fn feed_stream(feed: LogFeed) -> LogStream {
    Box::pin(futures::stream::unfold(feed, |mut f| async move {
        loop {
            if let Some(e) = f.pending.pop_front() {
                return Some((Ok(e), f));
            }
            if f.done {
                return None;
            }
            match f.rx.recv().await {
                Some(part) => {
                    f.pending.extend(part.lines.into_iter().map(log_entry));
                    if part.eof {
                        f.done = true;
                        if let Some(err) = part.error {
                            // Lines before the error still go out first.
                            if f.pending.is_empty() {
                                return Some((Err(Status::failed_precondition(err)), f));
                            }
                            tracing::info!(cause = %err, "log read ended with an error after some lines");
                        }
                    }
                }
                None => {
                    f.done = true;
                    return Some((
                        Err(Status::aborted(
                            "the log read was abandoned (the caller read too slowly)",
                        )),
                        f,
                    ));
                }
            }
        }
    }))
}

#[tonic::async_trait]
impl TaskService for TaskApi {
    #[tracing::instrument(skip_all, fields(task_definition = %req.get_ref().task_definition))]
    async fn start_task(
        &self,
        req: Request<StartTaskRequest>,
    ) -> Result<Response<StartTaskResponse>, Status> {
        let req = req.into_inner();
        self.shared
            .db
            .metrics()
            .task_call(crate::metrics::TaskCall::Start);
        let cluster = cluster_arg(&req.cluster);
        let r = parse_ref("taskDefinition", &req.task_definition)?;
        if req.container_instances.is_empty() {
            return Err(ApiError::invalid("containerInstances", "name at least one").into());
        }
        if req.container_instances.len() > 10 {
            return Err(
                ApiError::invalid("containerInstances", "at most 10 (an ECS limit)").into(),
            );
        }
        let count = match req.count {
            0 => 1,
            n @ 1.. if n as u32 <= MAX_COUNT => n as u32,
            n => {
                return Err(
                    ApiError::invalid("count", format!("{n} is not within 1–{MAX_COUNT}")).into(),
                )
            }
        };
        validate_tag("startedBy", &req.started_by, 128)?;
        validate_tag("group", &req.group, 255)?;
        // Every secret the definition refers to must exist and be usable
        // now; the placement then uses the revision that was checked. (An
        // unknown definition is left to `start_tasks`, which reports it.)
        let mut revision = r.revision;
        if let Ok(td) = self.shared.db.task_definition(&r.family, r.revision) {
            let (_, issues) = self
                .shared
                .secrets
                .resolve_task(&td.definition)
                .map_err(ApiError::from)?;
            if !issues.is_empty() {
                return Err(ApiError::InvalidFields(issues).into());
            }
            revision = Some(td.revision);
        }
        let tags = validate_tags("tags", &req.tags)?;
        let spec = StartSpec {
            cluster: cluster.clone(),
            family: r.family,
            revision,
            instances: req
                .container_instances
                .iter()
                .map(|i| short_id(i.trim()).to_owned())
                .collect(),
            count,
            started_by: req.started_by,
            group: Some(req.group).filter(|g| !g.is_empty()),
            tags,
            enable_execute_command: req.enable_execute_command,
        };
        let sessions = &self.shared.sessions;
        let out = self
            .shared
            .db
            .start_tasks(&spec, |i| sessions.liveness(i).connected)
            .await
            .map_err(ApiError::from)?;
        for t in &out.tasks {
            tracing::info!(task = %t.id, instance = %t.instance_id, cpu = t.reservation.cpu_units, memory_mib = t.reservation.memory_mib, ports = t.reservation.ports.len(), "task placed");
        }
        for f in &out.failures {
            self.shared.db.metrics().placement_failure(&f.reason);
            tracing::info!(instance = %f.instance_id, reason = %f.reason, detail = %f.detail, "task not placed");
        }
        let arn = &self.shared.arn;
        Ok(Response::new(StartTaskResponse {
            tasks: out.tasks.iter().map(|t| task_to_proto(arn, t)).collect(),
            failures: out
                .failures
                .into_iter()
                .map(|f| Failure {
                    arn: arn.container_instance(&cluster, &f.instance_id),
                    reason: f.reason,
                    detail: f.detail,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(task_definition = %req.get_ref().task_definition, count = req.get_ref().count))]
    async fn run_task(
        &self,
        req: Request<RunTaskRequest>,
    ) -> Result<Response<RunTaskResponse>, Status> {
        let req = req.into_inner();
        self.shared
            .db
            .metrics()
            .task_call(crate::metrics::TaskCall::Run);
        let cluster = cluster_arg(&req.cluster);
        let r = parse_ref("taskDefinition", &req.task_definition)?;
        let count = match req.count {
            0 => 1,
            n @ 1.. if n as u32 <= MAX_RUN_COUNT => n as u32,
            n => {
                return Err(ApiError::invalid(
                    "count",
                    format!("{n} is not within 1–{MAX_RUN_COUNT}"),
                )
                .into())
            }
        };
        validate_tag("startedBy", &req.started_by, 128)?;
        validate_tag("group", &req.group, 255)?;
        if req.client_token.len() > MAX_CLIENT_TOKEN {
            return Err(ApiError::invalid(
                "clientToken",
                format!("must be at most {MAX_CLIENT_TOKEN} characters"),
            )
            .into());
        }
        let strategies = run_strategies(&req.placement_strategy)?;
        let td = self
            .shared
            .db
            .task_definition(&r.family, r.revision)
            .map_err(ApiError::from)?;
        let (_, issues) = self
            .shared
            .secrets
            .resolve_task(&td.definition)
            .map_err(ApiError::from)?;
        if !issues.is_empty() {
            return Err(ApiError::InvalidFields(issues).into());
        }
        let constraints = run_constraints(&td, &req.placement_constraints)?;
        let overrides = run_overrides(&td, req.overrides.as_ref())?;
        let tags = validate_tags("tags", &req.tags)?;
        let fingerprint = {
            let mut unkeyed = req.clone();
            unkeyed.client_token.clear();
            unkeyed.cluster = cluster.clone();
            hex::encode(Sha256::digest(unkeyed.encode_to_vec()))
        };
        let spec = RunSpec {
            cluster: cluster.clone(),
            family: td.family.clone(),
            revision: Some(td.revision),
            count,
            group: Some(req.group).filter(|g| !g.is_empty()),
            started_by: req.started_by,
            constraints,
            strategies,
            overrides,
            client_token: Some(req.client_token).filter(|t| !t.is_empty()),
            fingerprint,
            tags,
            load_balancers: Vec::new(),
            enable_execute_command: req.enable_execute_command,
        };
        let out = self.shared.placer.run(spec).await.map_err(ApiError::from)?;
        for t in &out.tasks {
            tracing::info!(task = %t.id, instance = %t.instance_id, cpu = t.reservation.cpu_units, memory_mib = t.reservation.memory_mib, ports = t.reservation.ports.len(), "task placed");
        }
        for f in &out.failures {
            tracing::info!(closest = ?f.instance_id, reason = %f.reason, detail = %f.detail, "tasks not placed");
        }
        let arn = &self.shared.arn;
        Ok(Response::new(RunTaskResponse {
            tasks: out.tasks.iter().map(|t| task_to_proto(arn, t)).collect(),
            failures: out
                .failures
                .into_iter()
                .map(|f| Failure {
                    arn: f
                        .instance_id
                        .map(|i| arn.container_instance(&cluster, &i))
                        .unwrap_or_default(),
                    reason: f.reason,
                    detail: f.detail,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(task = %req.get_ref().task))]
    async fn stop_task(
        &self,
        req: Request<StopTaskRequest>,
    ) -> Result<Response<StopTaskResponse>, Status> {
        let req = req.into_inner();
        self.shared
            .db
            .metrics()
            .task_call(crate::metrics::TaskCall::Stop);
        let cluster = cluster_arg(&req.cluster);
        let id = short_id(req.task.trim());
        if id.is_empty() {
            return Err(ApiError::invalid("task", "required").into());
        }
        if req.reason.len() > 1024 {
            return Err(ApiError::invalid("reason", "must be at most 1024 characters").into());
        }
        let t = self
            .shared
            .db
            .stop_task(&cluster, id, &req.reason)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(last_status = t.last_status.as_str(), "task stop requested");
        Ok(Response::new(StopTaskResponse {
            task: Some(task_to_proto(&self.shared.arn, &t)),
        }))
    }

    async fn list_tasks(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        self.shared
            .db
            .active_cluster(&cluster)
            .map_err(ApiError::from)?;
        let desired = match req.desired_status.as_str() {
            "" => DesiredStatus::Running,
            // Case-insensitive, as ListTasks has always read it.
            s => s
                .to_ascii_uppercase()
                .parse::<DesiredStatus>()
                .map_err(|_| {
                    ApiError::invalid("desiredStatus", format!("{s:?} is not RUNNING or STOPPED"))
                })?,
        };
        let page = PageRequest::parse("tasks", req.max_results, &req.next_token, DEFAULT_PAGE)
            .map_err(ApiError::from)?;
        let launch_type_matches = launch_type_matches("launchType", &req.launch_type)?;
        let non_empty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let group = match non_empty(short_id(req.service_name.trim())) {
            None => None,
            Some(name) => {
                // ECS's ServiceNotFoundException for a service that never
                // existed; a deleted one still lists its stopped tasks.
                if self
                    .shared
                    .db
                    .service(&cluster, &name)
                    .map_err(ApiError::from)?
                    .is_none()
                {
                    return Err(ApiError::from(crate::db::DbError::NotFound {
                        kind: "service",
                        name: format!("{cluster}/{name}"),
                    })
                    .into());
                }
                Some(format!("service:{name}"))
            }
        };
        let filter = TaskFilter {
            cluster,
            instance_id: non_empty(short_id(&req.container_instance)),
            family: non_empty(&req.family),
            started_by: non_empty(&req.started_by),
            desired_status: Some(desired),
            group,
        };
        let tasks = if launch_type_matches {
            self.shared.db.list_tasks(&filter).map_err(ApiError::from)?
        } else {
            Vec::new()
        };
        // Oldest first, as the store lists them; ties by id.
        let page = paginate(
            tasks,
            |t| time_key(t.created_at, &t.id),
            Order::Ascending,
            &page,
        );
        Ok(Response::new(ListTasksResponse {
            task_arns: page
                .items
                .iter()
                .map(|t| self.shared.arn.task(&t.cluster, &t.id))
                .collect(),
            next_token: page.next_token,
        }))
    }

    async fn describe_tasks(
        &self,
        req: Request<DescribeTasksRequest>,
    ) -> Result<Response<DescribeTasksResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let with_tags = includes_tags(&req.include, &[])?;
        if req.tasks.is_empty() {
            return Err(ApiError::invalid("tasks", "name at least one task").into());
        }
        if req.tasks.len() > MAX_DESCRIBE {
            return Err(ApiError::invalid("tasks", format!("at most {MAX_DESCRIBE}")).into());
        }
        self.shared
            .db
            .active_cluster(&cluster)
            .map_err(ApiError::from)?;
        let mut out = DescribeTasksResponse::default();
        for wanted in &req.tasks {
            let id = short_id(wanted.trim());
            match self.shared.db.task(id).map_err(ApiError::from)? {
                Some(t) if t.cluster == cluster => {
                    let mut task = task_to_proto(&self.shared.arn, &t);
                    if !with_tags {
                        task.tags.clear();
                    }
                    out.tasks.push(task)
                }
                _ => out.failures.push(Failure {
                    arn: self.shared.arn.task(&cluster, id),
                    reason: "MISSING".to_owned(),
                    detail: String::new(),
                }),
            }
        }
        Ok(Response::new(out))
    }

    type GetTaskLogsStream = LogStream;

    #[tracing::instrument(skip_all, fields(task = %req.get_ref().task))]
    async fn get_task_logs(
        &self,
        req: Request<GetTaskLogsRequest>,
    ) -> Result<Response<Self::GetTaskLogsStream>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let id = short_id(req.task.trim());
        let task = self
            .shared
            .db
            .task(id)
            .map_err(ApiError::from)?
            .filter(|t| t.cluster == cluster)
            .ok_or_else(|| Status::not_found(format!("task {id:?} not found")))?;
        if !req.container.is_empty() && !task.containers.iter().any(|c| c.name == req.container) {
            return Err(ApiError::invalid(
                "container",
                format!(
                    "task {id} has no container {:?} (it has {})",
                    req.container,
                    task.containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into());
        }
        let outbound = self
            .shared
            .sessions
            .outbound(&task.instance_id)
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "the agent of container instance {} is not connected, so the logs of task {id} \
                     cannot be read now",
                    task.instance_id
                ))
            })?;
        let router = self.shared.logs.clone();
        let (request_id, rx) = router.open(&task.instance_id);
        let query = LogQuery {
            task_arn: self.shared.arn.task(&task.cluster, &task.id),
            container: req.container,
            follow: req.follow,
            tail: req.tail.max(0),
            since: req.since.as_ref().map(millis),
        };
        if outbound
            .send_timeout(Outbound::LogRequest { request_id, query }, SEND_TIMEOUT)
            .await
            .is_err()
        {
            router.close(request_id);
            return Err(Status::unavailable(format!(
                "the agent of container instance {} did not take the log request",
                task.instance_id
            )));
        }
        Ok(Response::new(feed_stream(LogFeed {
            rx,
            request_id,
            router,
            outbound,
            pending: VecDeque::new(),
            done: false,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored task record as written before `network_mode` and
    /// `private_ipv4` were kept.
    const OLD_RECORD: &str = r#"{"id":"0123456789abcdef0123456789abcdef","cluster":"default",
        "instance_id":"i1","family":"web","revision":1,"desired_status":"RUNNING",
        "last_status":"RUNNING","health_status":"UNKNOWN","started_by":"","group":"family:web",
        "created_at":1700000000000,"containers":[],
        "reservation":{"cpu_units":0,"memory_mib":0,"ports":[]},"version":2}"#;

    #[test]
    fn tasks_carry_their_network_mode_and_awsvpc_address() {
        let arn = ArnPrefix::default();
        let old: TaskRecord = serde_json::from_str(OLD_RECORD).expect("an old record reads");
        assert_eq!((old.network_mode, old.private_ipv4), (None, None));
        let t = task_to_proto(&arn, &old);
        assert_eq!(
            (t.network_mode.as_str(), t.private_ipv4_address.as_str()),
            ("", "")
        );

        let bridge = TaskRecord {
            network_mode: Some(NetworkMode::Bridge),
            ..old.clone()
        };
        let t = task_to_proto(&arn, &bridge);
        assert_eq!(
            (t.network_mode.as_str(), t.private_ipv4_address.as_str()),
            ("bridge", "")
        );

        let awsvpc = TaskRecord {
            network_mode: Some(NetworkMode::Awsvpc),
            private_ipv4: Some(std::net::Ipv4Addr::new(10, 213, 0, 5)),
            ..old.clone()
        };
        let t = task_to_proto(&arn, &awsvpc);
        assert_eq!(
            (t.network_mode.as_str(), t.private_ipv4_address.as_str()),
            ("awsvpc", "10.213.0.5")
        );
        // What Traefik and Prometheus read.
        let json = berth_proto::ecs_json::task(&t);
        assert_eq!(json["attachments"][0]["type"], "ElasticNetworkInterface");
        assert_eq!(json["attachments"][0]["details"][0]["value"], "10.213.0.5");

        // A record from before the mode was kept, with an address an
        // upgraded agent reported: only awsvpc tasks have one.
        let upgraded = TaskRecord {
            private_ipv4: awsvpc.private_ipv4,
            ..old
        };
        assert_eq!(task_to_proto(&arn, &upgraded).network_mode, "awsvpc");

        // New fields are written only when set: old records keep their bytes.
        let back = serde_json::to_value(&bridge).unwrap();
        assert_eq!(back["network_mode"], "bridge");
        assert!(back.get("private_ipv4").is_none());
    }
}
