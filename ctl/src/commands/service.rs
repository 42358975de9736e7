//! `berthctl service create|update|scale|delete|ls|describe|events|
//! deployments|describe-deployments`: ECS's CreateService, UpdateService,
//! DeleteService, ListServices, DescribeServices, ListServiceDeployments
//! and DescribeServiceDeployments (lists follow every `nextToken`). `--wait` follows the deployment (running/desired per
//! deployment) until the service is at steady state, and fails when the
//! deployment does.

use std::io::IsTerminal;
use std::time::Duration;

use berth_proto::arn::TaskDefRef;
use berth_proto::v1 as pb;
use berth_proto::v1::service_service_client::ServiceServiceClient;
use clap::Subcommand;

use super::task::{parse_constraint, parse_ref, parse_strategy};
use super::{ClusterArg, Ctx};
use crate::client::Conn;
use crate::error::{CtlError, MissingItem};
use crate::views::service::{self as view, ServiceView, ServicesView};
use crate::views::service_deployment::{
    self as deployment_view, DescribeServiceDeploymentsView, ServiceDeploymentBriefView,
    ServiceDeploymentView, ServiceDeploymentsView,
};

#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct DeploymentArgs {
    /// Tasks that must stay healthy during a deployment, in percent of the
    /// desired count [default: 100]
    #[arg(long = "min-healthy-percent", value_name = "PERCENT")]
    pub min_healthy: Option<i32>,
    /// Tasks that may run during a deployment, in percent of the desired
    /// count [default: 200]
    #[arg(long = "max-percent", value_name = "PERCENT")]
    pub max_percent: Option<i32>,
    /// The deployment circuit breaker: fail a deployment whose tasks keep
    /// failing to start
    #[arg(long = "circuit-breaker")]
    pub circuit_breaker: bool,
    /// With --circuit-breaker: roll back to the last completed deployment
    #[arg(long, requires = "circuit_breaker")]
    pub rollback: bool,
}

impl DeploymentArgs {
    fn to_proto(&self) -> Option<pb::DeploymentConfiguration> {
        if *self == Self::default() {
            return None;
        }
        Some(pb::DeploymentConfiguration {
            minimum_healthy_percent: self.min_healthy,
            maximum_percent: self.max_percent,
            deployment_circuit_breaker: self.circuit_breaker.then_some(
                pb::DeploymentCircuitBreaker {
                    enable: true,
                    rollback: self.rollback,
                },
            ),
        })
    }
}

/// `--load-balancer`: `TARGETGROUP:CONTAINER:PORT` (the target group by
/// name or ARN; an ARN's own colons are fine, the last two fields are
/// split off), or ECS's `targetGroupArn=…,containerName=…,containerPort=…`.
pub fn parse_load_balancer(s: &str) -> Result<pb::LoadBalancer, String> {
    let port = |p: &str| -> Result<u32, String> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(u32::from)
            .ok_or_else(|| format!("{p:?} is not a container port (1–65535)"))
    };
    let form = "give TARGETGROUP:CONTAINER:PORT or \
                targetGroupArn=…,containerName=…,containerPort=…";
    if s.contains('=') {
        let mut lb = pb::LoadBalancer::default();
        for part in s.split(',') {
            match part.split_once('=') {
                Some(("targetGroupArn", v)) => lb.target_group_arn = v.to_owned(),
                Some(("containerName", v)) => lb.container_name = v.to_owned(),
                Some(("containerPort", v)) => lb.container_port = port(v)?,
                Some(("loadBalancerName", _)) => {
                    return Err(
                        "loadBalancerName (a classic load balancer) is not supported: \
                                Berth's services attach to target groups"
                            .to_owned(),
                    )
                }
                _ => return Err(format!("{part:?}: {form}")),
            }
        }
        if lb.target_group_arn.is_empty() || lb.container_name.is_empty() || lb.container_port == 0
        {
            return Err(format!("{s:?}: {form}"));
        }
        return Ok(lb);
    }
    let mut parts = s.rsplitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(c), Some(tg)) if !c.is_empty() && !tg.is_empty() => Ok(pb::LoadBalancer {
            target_group_arn: tg.to_owned(),
            container_name: c.to_owned(),
            container_port: port(p)?,
        }),
        _ => Err(format!("{s:?}: {form}")),
    }
}

/// `CONTAINER:PORT`.
fn parse_container_port(s: &str) -> Result<(String, u32), String> {
    match s.rsplit_once(':') {
        Some((c, p)) if !c.is_empty() => match p.parse::<u16>() {
            Ok(p) if p > 0 => Ok((c.to_owned(), u32::from(p))),
            _ => Err(format!("{p:?} is not a container port (1–65535)")),
        },
        _ => Err(format!("{s:?}: give CONTAINER:PORT")),
    }
}

/// A service's DNS name: A records `NAME.NAMESPACE` for its healthy
/// tasks' hosts and SRV records `_NAME._tcp.NAMESPACE` with their ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct DnsArgs {
    /// The DNS namespace of the service's name, e.g. prod.berth.internal
    #[arg(long = "dns-namespace", value_name = "NAMESPACE")]
    pub dns_namespace: Option<String>,
    /// The name in the namespace [default: the service's name]
    #[arg(long = "dns-name", value_name = "NAME", requires = "dns_namespace")]
    pub dns_name: Option<String>,
    /// The container port the SRV records carry [default: the first
    /// port mapping with a host port]
    #[arg(long = "dns-container", value_name = "CONTAINER:PORT", value_parser = parse_container_port, requires = "dns_namespace")]
    pub dns_container: Option<(String, u32)>,
}

impl DnsArgs {
    fn to_proto(&self) -> Option<pb::ServiceDiscovery> {
        let namespace = self.dns_namespace.clone()?;
        let (container_name, container_port) = self.dns_container.clone().unwrap_or_default();
        Some(pb::ServiceDiscovery {
            namespace,
            name: self.dns_name.clone().unwrap_or_default(),
            container_name,
            container_port,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct WaitArgs {
    /// Follow the deployment until steady state (exit 0) or failure (exit 1)
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Application Auto Scaling: min/max, target-tracking and step policies, scheduled
    /// actions, activities
    #[command(subcommand)]
    Autoscaling(super::service_autoscaling::AutoscalingCommand),
    /// Create a service: keep DESIRED copies of a task definition running
    Create {
        /// Service name
        name: String,
        /// FAMILY (latest ACTIVE revision), FAMILY:REVISION or an ARN
        #[arg(long = "taskdef", value_name = "FAMILY[:REVISION]", value_parser = parse_ref)]
        task_definition: TaskDefRef,
        /// How many tasks to keep running (REPLICA; a DAEMON runs one per instance)
        #[arg(
            long = "desired-count",
            value_name = "N",
            required_unless_present = "daemon"
        )]
        desired_count: Option<u32>,
        /// The DAEMON scheduling strategy: one task on every ACTIVE instance
        /// that meets the constraints
        #[arg(long, conflicts_with_all = ["desired_count", "strategies"])]
        daemon: bool,
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// Placement strategy, in order (repeat up to 5) [default:
        /// spread:attribute:ecs.availability-zone, spread:instanceId]
        #[arg(long = "strategy", value_name = "TYPE[:FIELD]", value_parser = parse_strategy)]
        strategies: Vec<pb::PlacementStrategy>,
        /// Placement constraint (repeat): distinctInstance, or memberOf:EXPRESSION
        #[arg(long = "constraint", value_name = "CONSTRAINT", value_parser = parse_constraint)]
        constraints: Vec<pb::PlacementConstraint>,
        /// Seconds after a task starts before it must be healthy
        #[arg(
            long = "health-check-grace-period",
            value_name = "SECONDS",
            default_value_t = 0
        )]
        grace: u32,
        /// Tag KEY=VALUE (repeat)
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = super::tag::parse_tag)]
        tags: Vec<pb::Tag>,
        /// Register the tasks in a target group (repeat, up to 5):
        /// TARGETGROUP:CONTAINER:PORT, or ECS's
        /// targetGroupArn=…,containerName=…,containerPort=…
        #[arg(long = "load-balancer", value_name = "TARGETGROUP:CONTAINER:PORT", value_parser = parse_load_balancer)]
        load_balancers: Vec<pb::LoadBalancer>,
        #[command(flatten)]
        dns: DnsArgs,
        /// Allow `berthctl task exec` into its tasks (ECS's enableExecuteCommand)
        #[arg(long = "enable-execute-command")]
        enable_execute_command: bool,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Change a service: a new task definition (or --force-new-deployment)
    /// starts a rolling deployment
    Update {
        name: String,
        #[arg(long = "taskdef", value_name = "FAMILY[:REVISION]", value_parser = parse_ref)]
        task_definition: Option<TaskDefRef>,
        #[arg(long = "desired-count", value_name = "N")]
        desired_count: Option<u32>,
        #[command(flatten)]
        deployment: DeploymentArgs,
        /// Replace every task, even with the same task definition
        #[arg(long = "force-new-deployment")]
        force_new_deployment: bool,
        /// Allow (true) or forbid (false) `berthctl task exec` into tasks
        /// started from now on (ECS's enableExecuteCommand)
        #[arg(long = "enable-execute-command", value_name = "BOOL")]
        enable_execute_command: Option<bool>,
        /// Seconds after a task starts before it must be healthy
        #[arg(long = "health-check-grace-period", value_name = "SECONDS")]
        grace: Option<u32>,
        /// Replace the service's target groups (repeat; starts a new
        /// deployment): TARGETGROUP:CONTAINER:PORT, or ECS's
        /// targetGroupArn=…,containerName=…,containerPort=…
        #[arg(long = "load-balancer", value_name = "TARGETGROUP:CONTAINER:PORT", value_parser = parse_load_balancer)]
        load_balancers: Vec<pb::LoadBalancer>,
        /// Detach the service from every target group
        #[arg(long = "no-load-balancers", conflicts_with = "load_balancers")]
        no_load_balancers: bool,
        #[command(flatten)]
        dns: DnsArgs,
        /// Remove the service's DNS name
        #[arg(long = "no-dns", conflicts_with = "dns_namespace")]
        no_dns: bool,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Set a service's desired count
    Scale {
        name: String,
        #[arg(value_name = "DESIRED")]
        desired_count: u32,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Delete a service (it must be scaled to 0 first, or use --force)
    Delete {
        name: String,
        /// Scale to 0 and delete
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// List services
    Ls {
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Describe services: counts, deployments and recent events
    Describe {
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// A service's events (newest last), optionally following new ones
    Events {
        name: String,
        /// Keep printing new events until interrupted
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// A service's deployments (ECS's service deployments), newest first
    Deployments {
        name: String,
        /// Only these statuses (repeat): IN_PROGRESS, SUCCESSFUL, STOPPED,
        /// ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED, ...
        #[arg(long = "status", value_name = "STATUS")]
        statuses: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Describe a service's deployments: revisions, circuit breaker, rollback
    DescribeDeployments {
        /// The service
        name: String,
        /// Deployment ids (as `service deployments` lists them) or ARNs;
        /// none: the newest
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
}

/// Every page of ListServiceDeployments of `name`.
async fn list_deployments(
    client: &mut ServiceServiceClient<Conn>,
    ctx: &Ctx<'_>,
    cluster: &str,
    name: &str,
    statuses: Vec<String>,
) -> Result<Vec<pb::ServiceDeploymentBrief>, CtlError> {
    let rpc = ctx.rpc_error();
    let mut out = Vec::new();
    let mut next_token = String::new();
    for _ in 0..super::MAX_PAGES {
        let page = client
            .list_service_deployments(pb::ListServiceDeploymentsRequest {
                service: name.to_owned(),
                cluster: cluster.to_owned(),
                status: statuses.clone(),
                created_at: None,
                max_results: 100,
                next_token: next_token.clone(),
            })
            .await
            .map_err(&rpc)?
            .into_inner();
        out.extend(page.service_deployments);
        if page.next_token.is_empty() || page.next_token == next_token {
            break;
        }
        next_token = page.next_token;
    }
    Ok(out)
}

/// How often `--wait` and `events --follow` look.
const POLL: Duration = Duration::from_millis(500);

async fn describe_one(
    client: &mut ServiceServiceClient<Conn>,
    ctx: &Ctx<'_>,
    cluster: &str,
    name: &str,
) -> Result<ServiceView, CtlError> {
    let r = client
        .describe_services(pb::DescribeServicesRequest {
            cluster: cluster.to_owned(),
            services: vec![name.to_owned()],
            include: vec!["TAGS".to_owned()],
        })
        .await
        .map_err(ctx.rpc_error())?
        .into_inner();
    match r.services.into_iter().next() {
        Some(s) => Ok(ServiceView::new(s)),
        None => Err(CtlError::Missing {
            items: r
                .failures
                .into_iter()
                .map(|f| MissingItem {
                    arn: f.arn,
                    reason: f.reason,
                    detail: f.detail,
                })
                .collect(),
        }),
    }
}

/// Follows deployment `deployment` of the service until steady state,
/// printing progress on stderr whenever it changes.
async fn wait_steady(
    client: &mut ServiceServiceClient<Conn>,
    ctx: &mut Ctx<'_>,
    cluster: &str,
    name: &str,
    deployment: &str,
    timeout: Duration,
) -> Result<ServiceView, CtlError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let bar = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        let s = describe_one(client, ctx, cluster, name).await?;
        let progress = view::progress_line(&s, bar);
        if progress != last {
            ctx.note(&progress)?;
            last = progress;
        }
        let ours = s.deployments.iter().find(|d| d.id == deployment);
        match ours {
            Some(d) if d.rollout_state == "FAILED" => {
                let why: Vec<String> = s
                    .events
                    .iter()
                    .take(5)
                    .map(|e| format!("\n  {}", e.message))
                    .collect();
                return Err(CtlError::TaskFailed {
                    message: format!(
                        "deployment {deployment} FAILED: {}{}",
                        d.rollout_state_reason,
                        why.concat()
                    ),
                });
            }
            Some(d)
                if d.status == "PRIMARY"
                    && d.rollout_state == "COMPLETED"
                    && d.running_count == s.desired_count
                    && s.deployments
                        .iter()
                        .all(|o| o.id == d.id || o.status == "INACTIVE") =>
            {
                ctx.note(&format!("(service {name}) has reached a steady state."))?;
                return Ok(s);
            }
            Some(_) => {}
            None => {
                return Err(CtlError::TaskFailed {
                    message: format!("deployment {deployment} is gone from service {name}"),
                })
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CtlError::TaskFailed {
                message: format!(
                    "gave up after {}: {last}",
                    humantime::format_duration(timeout)
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn finish(
    client: &mut ServiceServiceClient<Conn>,
    ctx: &mut Ctx<'_>,
    cluster: &str,
    s: Option<pb::Service>,
    wait: &WaitArgs,
) -> Result<(), CtlError> {
    let s = ServiceView::new(s.ok_or_else(|| CtlError::BadResponse {
        what: "no service in the answer".to_owned(),
    })?);
    let s = if wait.wait {
        let deployment = s
            .deployments
            .first()
            .map(|d| d.id.clone())
            .unwrap_or_default();
        wait_steady(
            client,
            ctx,
            cluster,
            &s.service_name,
            &deployment,
            wait.timeout,
        )
        .await?
    } else {
        s
    };
    let v = ServicesView {
        services: vec![s],
        failures: vec![],
    };
    ctx.emit(&v, view::describe_table)
}

/// UpdateService, then [`finish`] with the answer.
async fn update(
    client: &mut ServiceServiceClient<Conn>,
    ctx: &mut Ctx<'_>,
    request: pb::UpdateServiceRequest,
    wait: &WaitArgs,
) -> Result<(), CtlError> {
    let cluster = request.cluster.clone();
    let r = client
        .update_service(request)
        .await
        .map_err(ctx.rpc_error())?
        .into_inner();
    finish(client, ctx, &cluster, r.service, wait).await
}

pub async fn run(cmd: ServiceCommand, ctx: &mut Ctx<'_>) -> Result<(), CtlError> {
    let mut client = ServiceServiceClient::new(ctx.channel().await?);
    let rpc = ctx.rpc_error();
    match cmd {
        ServiceCommand::Autoscaling(c) => super::service_autoscaling::run(c, ctx).await,
        ServiceCommand::Create {
            name,
            task_definition,
            desired_count,
            daemon,
            deployment,
            strategies,
            constraints,
            grace,
            tags,
            load_balancers,
            dns,
            enable_execute_command,
            wait,
            cluster,
        } => {
            let cluster = ctx.cluster(&cluster);
            let r = client
                .create_service(pb::CreateServiceRequest {
                    enable_execute_command,
                    cluster: cluster.clone(),
                    service_name: name,
                    task_definition: task_definition.to_string(),
                    desired_count: desired_count.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
                    scheduling_strategy: if daemon { "DAEMON" } else { "REPLICA" }.to_owned(),
                    placement_constraints: constraints,
                    placement_strategy: strategies,
                    deployment_configuration: deployment.to_proto(),
                    health_check_grace_period_seconds: i32::try_from(grace).unwrap_or(i32::MAX),
                    tags,
                    load_balancers,
                    service_discovery: dns.to_proto(),
                })
                .await
                .map_err(&rpc)?
                .into_inner();
            finish(&mut client, ctx, &cluster, r.service, &wait).await
        }
        ServiceCommand::Update {
            name,
            task_definition,
            desired_count,
            deployment,
            force_new_deployment,
            enable_execute_command,
            grace,
            load_balancers,
            no_load_balancers,
            dns,
            no_dns,
            wait,
            cluster,
        } => {
            let request = pb::UpdateServiceRequest {
                cluster: ctx.cluster(&cluster),
                service: name,
                task_definition: task_definition.map(|t| t.to_string()).unwrap_or_default(),
                desired_count: desired_count.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
                deployment_configuration: deployment.to_proto(),
                placement: None,
                force_new_deployment,
                enable_execute_command,
                health_check_grace_period_seconds: grace
                    .map(|g| i32::try_from(g).unwrap_or(i32::MAX)),
                load_balancers: (no_load_balancers || !load_balancers.is_empty())
                    .then_some(pb::LoadBalancerUpdate { load_balancers }),
                // An empty namespace removes the name.
                service_discovery: if no_dns {
                    Some(pb::ServiceDiscovery::default())
                } else {
                    dns.to_proto()
                },
            };
            update(&mut client, ctx, request, &wait).await
        }
        ServiceCommand::Scale {
            name,
            desired_count,
            wait,
            cluster,
        } => {
            let request = pb::UpdateServiceRequest {
                cluster: ctx.cluster(&cluster),
                service: name,
                desired_count: Some(i32::try_from(desired_count).unwrap_or(i32::MAX)),
                ..Default::default()
            };
            update(&mut client, ctx, request, &wait).await
        }
        ServiceCommand::Delete {
            name,
            force,
            cluster,
        } => {
            let cluster = ctx.cluster(&cluster);
            let r = client
                .delete_service(pb::DeleteServiceRequest {
                    cluster,
                    service: name,
                    force,
                })
                .await
                .map_err(&rpc)?
                .into_inner();
            let s = ServiceView::new(r.service.unwrap_or_default());
            ctx.emit(&s, |s| {
                format!(
                    "{}: {} (its tasks are being stopped)\n",
                    s.service_name, s.status
                )
            })
        }
        ServiceCommand::Ls { cluster } => {
            let cluster = ctx.cluster(&cluster);
            let mut arns = Vec::new();
            let mut next_token = String::new();
            for _ in 0..super::MAX_PAGES {
                let page = client
                    .list_services(pb::ListServicesRequest {
                        cluster: cluster.clone(),
                        scheduling_strategy: String::new(),
                        launch_type: String::new(),
                        // ECS's largest page (its default is 10).
                        max_results: 100,
                        next_token: next_token.clone(),
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                arns.extend(page.service_arns);
                if page.next_token.is_empty() || page.next_token == next_token {
                    break;
                }
                next_token = page.next_token;
            }
            let mut v = ServicesView {
                services: vec![],
                failures: vec![],
            };
            for chunk in arns.chunks(10) {
                let r = client
                    .describe_services(pb::DescribeServicesRequest {
                        cluster: cluster.clone(),
                        services: chunk.to_vec(),
                        include: vec!["TAGS".to_owned()],
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                v.services
                    .extend(r.services.into_iter().map(ServiceView::new));
            }
            ctx.emit(&v, view::list_table)
        }
        ServiceCommand::Describe { names, cluster } => {
            let cluster = ctx.cluster(&cluster);
            let r = client
                .describe_services(pb::DescribeServicesRequest {
                    cluster,
                    services: names,
                    include: vec!["TAGS".to_owned()],
                })
                .await
                .map_err(&rpc)?
                .into_inner();
            let v = ServicesView {
                services: r.services.into_iter().map(ServiceView::new).collect(),
                failures: r.failures.into_iter().map(Into::into).collect(),
            };
            let missing: Vec<MissingItem> = v.failures.iter().map(Into::into).collect();
            ctx.emit(&v, view::describe_table)?;
            if missing.is_empty() {
                Ok(())
            } else {
                Err(CtlError::Missing { items: missing })
            }
        }
        ServiceCommand::Events {
            name,
            follow,
            cluster,
        } => {
            let cluster = ctx.cluster(&cluster);
            let mut seen: std::collections::HashSet<String> = Default::default();
            loop {
                let s = describe_one(&mut client, ctx, &cluster, &name).await?;
                let new: Vec<_> = s
                    .events
                    .iter()
                    .rev()
                    .filter(|e| seen.insert(e.id.clone()))
                    .cloned()
                    .collect();
                if ctx.output == crate::output::OutputFormat::Json {
                    let events: Vec<serde_json::Value> = new
                        .iter()
                        .map(|e| crate::views::cli(berth_proto::ecs_json::service_event(e)))
                        .collect();
                    ctx.emit(&events, |_| String::new())?;
                } else {
                    let text: String = new
                        .iter()
                        .map(|e| {
                            format!(
                                "{}  {}\n",
                                crate::views::table_time(e.created_at.as_ref()),
                                e.message
                            )
                        })
                        .collect();
                    ctx.write(&text)?;
                }
                if !follow {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
        }
        ServiceCommand::Deployments {
            name,
            statuses,
            cluster,
        } => {
            let cluster = ctx.cluster(&cluster);
            let all = list_deployments(&mut client, ctx, &cluster, &name, statuses).await?;
            let v = ServiceDeploymentsView {
                service_deployments: all
                    .into_iter()
                    .map(ServiceDeploymentBriefView::new)
                    .collect(),
            };
            ctx.emit(&v, deployment_view::list_table)
        }
        ServiceCommand::DescribeDeployments { name, ids, cluster } => {
            let cluster = ctx.cluster(&cluster);
            // Ids are the ARNs' last segments: find the ARNs by listing.
            let listed = list_deployments(&mut client, ctx, &cluster, &name, vec![]).await?;
            let mut v = DescribeServiceDeploymentsView {
                service_deployments: vec![],
                failures: vec![],
            };
            let mut arns = Vec::new();
            if ids.is_empty() {
                arns.extend(listed.first().map(|d| d.service_deployment_arn.clone()));
            }
            for id in &ids {
                let found = listed.iter().find(|d| {
                    d.service_deployment_arn == *id
                        || berth_proto::arn::short_id(&d.service_deployment_arn) == id
                });
                match found {
                    Some(d) => arns.push(d.service_deployment_arn.clone()),
                    // Not among the service's deployments: as ECS answers it.
                    None => v.failures.push(crate::views::FailureView(pb::Failure {
                        arn: id.clone(),
                        reason: "MISSING".to_owned(),
                        detail: String::new(),
                    })),
                }
            }
            // ECS describes at most 20 per call.
            for chunk in arns.chunks(20) {
                let r = client
                    .describe_service_deployments(pb::DescribeServiceDeploymentsRequest {
                        service_deployment_arns: chunk.to_vec(),
                    })
                    .await
                    .map_err(&rpc)?
                    .into_inner();
                v.service_deployments.extend(
                    r.service_deployments
                        .into_iter()
                        .map(ServiceDeploymentView::new),
                );
                v.failures.extend(r.failures.into_iter().map(Into::into));
            }
            let missing: Vec<MissingItem> = v.failures.iter().map(Into::into).collect();
            ctx.emit(&v, deployment_view::describe_table)?;
            if missing.is_empty() {
                Ok(())
            } else {
                Err(CtlError::Missing { items: missing })
            }
        }
    }
}
