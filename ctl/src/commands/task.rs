//! `berthctl task run|start|ls|describe|stop|logs|exec`: ECS's RunTask (the
//! scheduler places), StartTask (on named container instances), ListTasks,
//! DescribeTasks, StopTask, container logs streamed from the agent through
//! the scheduler, ECS Exec (in `task_exec.rs`) and stats (in `stats.rs`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_proto::arn::TaskDefRef;
use berth_proto::ecs::DesiredStatus;
use berth_proto::v1 as pb;
use berth_proto::v1::task_service_client::TaskServiceClient;
use clap::Subcommand;

use super::{ClusterArg, Ctx};
use crate::error::{CtlError, MissingItem};
use crate::output::OutputFormat;
use crate::views::task::{self as view, TasksView};

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run tasks where the scheduler places them (ECS's RunTask); prints the task ids
    Run {
        /// FAMILY (latest ACTIVE revision), FAMILY:REVISION or an ARN
        #[arg(long = "taskdef", value_name = "FAMILY[:REVISION]", value_parser = parse_ref)]
        task_definition: TaskDefRef,
        /// How many tasks (ECS allows 10; Berth up to 1000)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
        count: u16,
        /// Task group [default: family:FAMILY]
        #[arg(long)]
        group: Option<String>,
        /// Free-form tag naming who started the tasks
        #[arg(long = "started-by", value_name = "TAG")]
        started_by: Option<String>,
        /// Placement strategy, in order of precedence (repeat up to 5): binpack:cpu,
        /// binpack:memory, spread:instanceId, spread:attribute:NAME, random
        #[arg(long = "strategy", value_name = "TYPE[:FIELD]", value_parser = parse_strategy)]
        strategies: Vec<pb::PlacementStrategy>,
        /// Placement constraint (repeat): distinctInstance, or memberOf:EXPRESSION in the
        /// Cluster Query Language
        #[arg(long = "constraint", value_name = "CONSTRAINT", value_parser = parse_constraint)]
        constraints: Vec<pb::PlacementConstraint>,
        /// ECS's overrides as JSON: {"containerOverrides":[{"name":..,"command":[..],
        /// "environment":[{"name":..,"value":..}],"cpu":..,"memory":..,"memoryReservation":..}]}
        #[arg(long, value_name = "JSON", value_parser = parse_overrides)]
        overrides: Option<pb::TaskOverride>,
        /// Idempotency token: a retry with the same token returns the same tasks
        #[arg(long = "client-token", value_name = "TOKEN")]
        client_token: Option<String>,
        /// Wait until every task is RUNNING (exit 0) or one STOPPED (exit 1)
        #[arg(long)]
        wait: bool,
        /// How long --wait waits
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Allow `berthctl task exec` into the tasks (ECS's enableExecuteCommand)
        #[arg(long = "enable-execute-command")]
        enable_execute_command: bool,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Start tasks on named container instances (ECS's StartTask); prints the task ids
    Start {
        /// FAMILY (latest ACTIVE revision), FAMILY:REVISION or an ARN
        #[arg(long = "taskdef", value_name = "FAMILY[:REVISION]", value_parser = parse_ref)]
        task_definition: TaskDefRef,
        /// Container instance id or ARN (repeat for several)
        #[arg(long = "instance", value_name = "ID", required = true)]
        instances: Vec<String>,
        /// Tasks per instance (1–10)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=10))]
        count: u8,
        /// Task group [default: family:FAMILY]
        #[arg(long)]
        group: Option<String>,
        /// Free-form tag naming who started the tasks
        #[arg(long = "started-by", value_name = "TAG")]
        started_by: Option<String>,
        /// Allow `berthctl task exec` into the tasks (ECS's enableExecuteCommand)
        #[arg(long = "enable-execute-command")]
        enable_execute_command: bool,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Run a command in a task's running container (ECS Exec); exits with its exit code
    Exec(super::task_exec::ExecArgs),
    /// A running task's CPU, memory, network and block I/O per container, as `docker stats`
    Stats(super::stats::StatsArgs),
    /// List tasks (JSON: as `aws ecs describe-tasks`)
    Ls {
        /// Only tasks on this container instance
        #[arg(long, value_name = "ID")]
        instance: Option<String>,
        /// Only tasks of this task definition family
        #[arg(long)]
        family: Option<String>,
        /// Desired status [default: RUNNING]
        #[arg(long = "desired-status", value_parser = desired_status_parser(), ignore_case = true)]
        desired_status: Option<DesiredStatus>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Describe tasks: status, containers, bindings, exit codes
    Describe {
        /// Task ids or ARNs
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Stop a task (its desired status becomes STOPPED)
    Stop {
        /// Task id or ARN
        #[arg(value_name = "ID")]
        id: String,
        /// Why [default: Task stopped by user]
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Print a task's container logs, read from its agent
    Logs {
        /// Task id or ARN
        #[arg(value_name = "ID")]
        id: String,
        /// Only this container
        #[arg(long, short = 'c')]
        container: Option<String>,
        /// Keep printing new lines until interrupted
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last N lines of each container
        #[arg(long, value_name = "N")]
        tail: Option<u32>,
        /// Only lines newer than this (e.g. 10m, 2h)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
}

/// Reads `--desired-status`: ECS's names, any case; `--help` lists them.
fn desired_status_parser() -> impl clap::builder::TypedValueParser<Value = DesiredStatus> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(DesiredStatus::ALL.iter().map(|s| s.as_str()))
        .try_map(|s| s.to_ascii_uppercase().parse::<DesiredStatus>())
}

pub(crate) fn parse_ref(s: &str) -> Result<TaskDefRef, String> {
    TaskDefRef::parse(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_strategy(s: &str) -> Result<pb::PlacementStrategy, String> {
    let (kind, field) = s.split_once(':').unwrap_or((s, ""));
    match kind {
        "binpack" | "spread" | "random" => Ok(pb::PlacementStrategy {
            r#type: kind.to_owned(),
            field: field.to_owned(),
        }),
        _ => Err(format!(
            "{kind:?} is not a strategy; one of binpack:cpu, binpack:memory, spread:instanceId, \
             spread:attribute:NAME, random"
        )),
    }
}

pub(crate) fn parse_constraint(s: &str) -> Result<pb::PlacementConstraint, String> {
    let (kind, expression) = s.split_once(':').unwrap_or((s, ""));
    match kind {
        "distinctInstance" | "memberOf" => Ok(pb::PlacementConstraint {
            r#type: kind.to_owned(),
            expression: expression.to_owned(),
        }),
        _ => Err(format!(
            "{kind:?} is not a constraint; distinctInstance or memberOf:EXPRESSION"
        )),
    }
}

/// ECS's `TaskOverride` JSON (camelCase), the fields Berth honours.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OverridesJson {
    #[serde(default)]
    container_overrides: Vec<ContainerOverrideJson>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContainerOverrideJson {
    name: String,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    environment: Vec<KeyValueJson>,
    cpu: Option<i32>,
    memory: Option<i32>,
    memory_reservation: Option<i32>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyValueJson {
    name: String,
    #[serde(default)]
    value: String,
}

pub(crate) fn parse_overrides(s: &str) -> Result<pb::TaskOverride, String> {
    let o: OverridesJson = serde_json::from_str(s).map_err(|e| e.to_string())?;
    Ok(pb::TaskOverride {
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

/// How often `--wait` looks.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// Polls until every task in `ids` is RUNNING (Ok) or one is STOPPED (Err),
/// printing progress on stderr when it changes. Returns the final view.
async fn wait_running(
    client: &mut TaskServiceClient<crate::client::Conn>,
    ctx: &mut Ctx<'_>,
    cluster: &str,
    ids: Vec<String>,
    timeout: Duration,
) -> Result<TasksView, CtlError> {
    let rpc = ctx.rpc_error();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let mut v = TasksView::new(vec![], vec![]);
        for chunk in ids.chunks(100) {
            let r = client
                .describe_tasks(pb::DescribeTasksRequest {
                    cluster: cluster.to_owned(),
                    tasks: chunk.to_vec(),
                    ..Default::default()
                })
                .await
                .map_err(&rpc)?
                .into_inner();
            v.tasks.extend(TasksView::new(r.tasks, vec![]).tasks);
        }
        let running = v
            .tasks
            .iter()
            .filter(|t| t.last_status == "RUNNING")
            .count();
        let stopped: Vec<&view::TaskView> = v
            .tasks
            .iter()
            .filter(|t| t.last_status == "STOPPED")
            .collect();
        let progress = format!("{running}/{} tasks RUNNING", ids.len());
        if progress != last {
            ctx.note(&progress)?;
            last = progress;
        }
        if let Some(t) = stopped.first() {
            return Err(CtlError::TaskFailed {
                message: format!(
                    "task {} STOPPED ({}): {}",
                    t.id(),
                    if t.stop_code.is_empty() {
                        "-"
                    } else {
                        &t.stop_code
                    },
                    if t.stopped_reason.is_empty() {
                        "-"
                    } else {
                        &t.stopped_reason
                    }
                ),
            });
        }
        if running == ids.len() {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CtlError::TaskFailed {
                message: format!(
                    "gave up after {}: {last}",
                    humantime::format_duration(timeout)
                ),
            });
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// StartTask/RunTask placed nothing: the failures (JSON output also
/// prints the answer) as the error.
fn nothing_placed(ctx: &mut Ctx<'_>, v: &TasksView) -> Result<(), CtlError> {
    if !v.tasks.is_empty() {
        return Ok(());
    }
    if ctx.output == OutputFormat::Json {
        ctx.emit(v, view::started_table)?;
    }
    Err(CtlError::NotStarted { items: missing(v) })
}

fn missing(v: &TasksView) -> Vec<MissingItem> {
    v.failures.iter().map(Into::into).collect()
}

pub async fn run(cmd: TaskCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = TaskServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        TaskCommand::Run {
            task_definition,
            count,
            group,
            started_by,
            strategies,
            constraints,
            overrides,
            client_token,
            wait,
            timeout,
            enable_execute_command,
            cluster,
        } => {
            let cluster = ctx.cluster(&cluster);
            let r = client
                .run_task(pb::RunTaskRequest {
                    cluster: cluster.clone(),
                    task_definition: task_definition.to_string(),
                    count: i32::from(count),
                    group: group.unwrap_or_default(),
                    started_by: started_by.unwrap_or_default(),
                    placement_constraints: constraints,
                    placement_strategy: strategies,
                    overrides,
                    client_token: client_token.unwrap_or_default(),
                    enable_execute_command,
                    ..Default::default()
                })
                .await
                .map_err(&rpc)?
                .into_inner();
            let v = TasksView::new(r.tasks, r.failures);
            nothing_placed(ctx, &v)?;
            let failures = missing(&v);
            if !wait {
                ctx.emit(&v, view::started_table)?;
                for f in &failures {
                    ctx.note(&format!(
                        "warning: not placed: {}",
                        crate::error::failure_line(f)
                    ))?;
                }
                return Ok(());
            }
            let ids: Vec<String> = v.tasks.iter().map(|t| t.id().to_owned()).collect();
            let done = wait_running(&mut client, ctx, &cluster, ids, timeout).await;
            let done = done?;
            let done = TasksView {
                tasks: done.tasks,
                failures: v.failures,
            };
            ctx.emit(&done, view::list_table)?;
            if failures.is_empty() {
                Ok(())
            } else {
                Err(CtlError::TaskFailed {
                    message: format!(
                        "{} of {count} tasks RUNNING; not placed:{}",
                        done.tasks.len(),
                        failures
                            .iter()
                            .map(|f| format!("\n  {}", crate::error::failure_line(f)))
                            .collect::<String>()
                    ),
                })
            }
        }
        TaskCommand::Start {
            task_definition,
            instances,
            count,
            group,
            started_by,
            enable_execute_command,
            cluster,
        } => {
            let r = client
                .start_task(pb::StartTaskRequest {
                    enable_execute_command,
                    cluster: ctx.cluster(&cluster),
                    task_definition: task_definition.to_string(),
                    container_instances: instances,
                    count: i32::from(count),
                    started_by: started_by.unwrap_or_default(),
                    group: group.unwrap_or_default(),
                    ..Default::default()
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = TasksView::new(r.tasks, r.failures);
            nothing_placed(ctx, &v)?;
            ctx.emit(&v, view::started_table)?;
            for f in missing(&v) {
                ctx.note(&format!(
                    "warning: not started on {}",
                    crate::error::failure_line(&f)
                ))?;
            }
            Ok(())
        }
        TaskCommand::Ls {
            instance,
            family,
            desired_status,
            cluster,
        } => {
            let cluster = ctx.cluster(&cluster);
            let mut arns = Vec::new();
            let mut next_token = String::new();
            for _ in 0..super::MAX_PAGES {
                let page = client
                    .list_tasks(pb::ListTasksRequest {
                        cluster: cluster.clone(),
                        container_instance: instance.clone().unwrap_or_default(),
                        family: family.clone().unwrap_or_default(),
                        started_by: String::new(),
                        desired_status: desired_status
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                        service_name: String::new(),
                        launch_type: String::new(),
                        max_results: 0,
                        next_token: next_token.clone(),
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                arns.extend(page.task_arns);
                if page.next_token.is_empty() || page.next_token == next_token {
                    break;
                }
                next_token = page.next_token;
            }
            let mut v = TasksView::new(vec![], vec![]);
            // DescribeTasks takes at most 100 tasks per call.
            for chunk in arns.chunks(100) {
                let r = client
                    .describe_tasks(pb::DescribeTasksRequest {
                        cluster: cluster.clone(),
                        tasks: chunk.to_vec(),
                        ..Default::default()
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                // A task gone between the two calls is simply not listed.
                v.tasks.extend(TasksView::new(r.tasks, vec![]).tasks);
            }
            ctx.emit(&v, view::list_table)
        }
        TaskCommand::Exec(args) => super::task_exec::run(args, ctx).await,
        TaskCommand::Stats(args) => super::stats::task_stats(args, ctx).await,
        TaskCommand::Describe { ids, cluster } => {
            let r = client
                .describe_tasks(pb::DescribeTasksRequest {
                    cluster: ctx.cluster(&cluster),
                    tasks: ids,
                    ..Default::default()
                })
                .await
                .map_err(rpc)?
                .into_inner();
            let v = TasksView::new(r.tasks, r.failures);
            ctx.emit(&v, view::describe_table)?;
            if v.failures.is_empty() {
                Ok(())
            } else {
                Err(CtlError::Missing { items: missing(&v) })
            }
        }
        TaskCommand::Stop {
            id,
            reason,
            cluster,
        } => {
            let t = client
                .stop_task(pb::StopTaskRequest {
                    cluster: ctx.cluster(&cluster),
                    task: id,
                    reason: reason.unwrap_or_default(),
                })
                .await
                .map_err(rpc)?
                .into_inner()
                .task
                .ok_or_else(|| CtlError::BadResponse {
                    what: "the answer holds no task".to_owned(),
                })?;
            ctx.emit(&view::TaskView::from(t), view::stop_sentence)
        }
        TaskCommand::Logs {
            id,
            container,
            follow,
            tail,
            since,
            cluster,
        } => {
            let cluster = ctx.cluster(&cluster);
            // The task's containers decide whether lines carry their name.
            let d = client
                .describe_tasks(pb::DescribeTasksRequest {
                    cluster: cluster.clone(),
                    tasks: vec![id.clone()],
                    ..Default::default()
                })
                .await
                .map_err(&rpc)?
                .into_inner();
            let v = TasksView::new(d.tasks, d.failures);
            let Some(task) = v.tasks.first() else {
                return Err(CtlError::Missing { items: missing(&v) });
            };
            let prefix = container.is_none() && task.containers.len() > 1;
            let since = since
                .and_then(|d| SystemTime::now().checked_sub(d))
                .map(|t| {
                    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                    prost_types::Timestamp {
                        seconds: d.as_secs() as i64,
                        nanos: d.subsec_nanos() as i32,
                    }
                });
            // An absent agent is the task's state, not an unreachable scheduler.
            let logs_error = |s: tonic::Status| {
                if s.code() == tonic::Code::Unavailable && s.message().contains("agent") {
                    CtlError::FailedPrecondition {
                        message: s.message().to_owned(),
                    }
                } else {
                    rpc(s)
                }
            };
            let mut stream = client
                .get_task_logs(pb::GetTaskLogsRequest {
                    cluster,
                    task: id,
                    container: container.unwrap_or_default(),
                    follow,
                    tail: tail.map(i64::from).unwrap_or(0),
                    since,
                })
                .await
                .map_err(&logs_error)?
                .into_inner();
            while let Some(e) = stream.message().await.map_err(&logs_error)? {
                let line = match ctx.output {
                    OutputFormat::Table => view::log_line(&e, prefix),
                    OutputFormat::Json => {
                        let mut s = serde_json::json!({
                            "time": crate::views::rfc3339(e.time.as_ref()),
                            "container": e.container,
                            "stream": e.stream,
                            "log": e.log,
                        })
                        .to_string();
                        s.push('\n');
                        s
                    }
                };
                ctx.write(&line)?;
            }
            Ok(())
        }
    }
}
