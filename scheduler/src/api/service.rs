//! `ServiceService`: ECS's CreateService, UpdateService, DeleteService,
//! DescribeServices and ListServices. Requests are validated here (errors
//! name the request's JSON path); the service controller
//! (`crate::services`) does the rest from the stored record.

use berth_proto::arn::{resource_part, ArnPrefix};
use berth_proto::taskdef::{FieldIssue, TaskDefinitionStatus};
use berth_proto::v1::{
    service_service_server::ServiceService, CreateServiceRequest, CreateServiceResponse,
    DeleteServiceRequest, DeleteServiceResponse, Deployment, DeploymentCircuitBreaker,
    DeploymentConfiguration, DescribeServiceDeploymentsRequest, DescribeServiceDeploymentsResponse,
    DescribeServicesRequest, DescribeServicesResponse, Failure, ListServiceDeploymentsRequest,
    ListServiceDeploymentsResponse, ListServicesRequest, ListServicesResponse, PlacementConstraint,
    PlacementStrategy, Service, ServiceEvent, UpdateServiceRequest, UpdateServiceResponse,
};
use tonic::{Request, Response, Status};

use super::convert::{includes_tags, launch_type_matches, parse_ref, tags_to_proto, validate_tags};
use super::{cluster_arg, timestamp, validate_name, ApiError, Shared};
use crate::db::DbError;
use crate::paging::{self, paginate, Order, PageRequest};
use crate::placement::spec::{Constraint, Strategy, MAX_CONSTRAINTS, MAX_STRATEGIES};
use crate::records::{
    now_millis, CircuitBreaker, DeploymentConfig, PlacementItem, SchedulingStrategy, ServiceRecord,
    ServiceStatus, TaskDefinitionRecord,
};
use crate::services::plan::{deployment_counts, new_deployment, promote};
use crate::services::{history, items, task_facts};

/// ECS's limit on services named in one DescribeServices call.
const MAX_DESCRIBE: usize = 10;

mod deployments;

#[derive(Debug)]
pub struct ServiceApi {
    pub shared: Shared,
}

/// The service name from a name or an ARN (`.../service/<cluster>/<name>`).
fn service_name(s: &str) -> &str {
    let s = s.trim();
    if s.starts_with("arn:") {
        resource_part(s).rsplit('/').next().unwrap_or_default()
    } else {
        s
    }
}

fn placement_items(
    constraints: &[PlacementConstraint],
    strategies: &[PlacementStrategy],
    prefix: &str,
) -> Result<(Vec<PlacementItem>, Vec<PlacementItem>), ApiError> {
    let mut issues = Vec::new();
    for (i, c) in constraints.iter().enumerate() {
        if let Err(e) = Constraint::parse(
            &format!("{prefix}placementConstraints[{i}]"),
            &c.r#type,
            &c.expression,
        ) {
            issues.push(FieldIssue {
                path: e.path,
                message: e.message,
            });
        }
    }
    for (i, s) in strategies.iter().enumerate() {
        if let Err(e) = Strategy::parse(
            &format!("{prefix}placementStrategy[{i}]"),
            &s.r#type,
            &s.field,
        ) {
            issues.push(FieldIssue {
                path: e.path,
                message: e.message,
            });
        }
    }
    if !issues.is_empty() {
        return Err(ApiError::InvalidFields(issues));
    }
    if constraints.len() > MAX_CONSTRAINTS {
        return Err(ApiError::invalid(
            &format!("{prefix}placementConstraints"),
            format!(
                "{} constraints; at most {MAX_CONSTRAINTS}",
                constraints.len()
            ),
        ));
    }
    if strategies.len() > MAX_STRATEGIES {
        return Err(ApiError::invalid(
            &format!("{prefix}placementStrategy"),
            format!("{} strategies; at most {MAX_STRATEGIES}", strategies.len()),
        ));
    }
    Ok((
        items(
            constraints
                .iter()
                .map(|c| (c.r#type.clone(), c.expression.clone())),
        ),
        items(
            strategies
                .iter()
                .map(|s| (s.r#type.clone(), s.field.clone())),
        ),
    ))
}

/// The deployment configuration with ECS's defaults (REPLICA 100/200,
/// DAEMON 0/100) for what `req` leaves out.
fn deployment_config(
    req: Option<&DeploymentConfiguration>,
    base: DeploymentConfig,
) -> Result<DeploymentConfig, ApiError> {
    let Some(req) = req else {
        return Ok(base);
    };
    let mut out = base;
    if let Some(min) = req.minimum_healthy_percent {
        if !(0..=100).contains(&min) {
            return Err(ApiError::invalid(
                "deploymentConfiguration.minimumHealthyPercent",
                format!("{min} is not within 0–100"),
            ));
        }
        out.minimum_healthy_percent = min as u32;
    }
    if let Some(max) = req.maximum_percent {
        if !(100..=1000).contains(&max) {
            return Err(ApiError::invalid(
                "deploymentConfiguration.maximumPercent",
                format!("{max} is not within 100–1000"),
            ));
        }
        out.maximum_percent = max as u32;
    }
    if let Some(cb) = &req.deployment_circuit_breaker {
        out.circuit_breaker = CircuitBreaker {
            enable: cb.enable,
            rollback: cb.rollback,
        };
    }
    Ok(out)
}

/// The ACTIVE definition a request names.
fn active_definition(
    shared: &Shared,
    field: &str,
    s: &str,
) -> Result<TaskDefinitionRecord, ApiError> {
    let r = parse_ref(field, s)?;
    let td = shared.db.task_definition(&r.family, r.revision)?;
    if td.status != TaskDefinitionStatus::Active {
        return Err(ApiError::invalid(
            field,
            format!(
                "TaskDefinition is inactive: {}:{} was deregistered",
                td.family, td.revision
            ),
        ));
    }
    let (_, issues) = shared.secrets.resolve_task(&td.definition)?;
    if !issues.is_empty() {
        return Err(ApiError::InvalidFields(issues));
    }
    Ok(td)
}

/// ECS's defaults: REPLICA 100/200, DAEMON 0/100.
fn defaults(scheduling: SchedulingStrategy) -> DeploymentConfig {
    match scheduling {
        SchedulingStrategy::Replica => DeploymentConfig {
            minimum_healthy_percent: 100,
            maximum_percent: 200,
            circuit_breaker: CircuitBreaker::default(),
        },
        SchedulingStrategy::Daemon => DeploymentConfig {
            minimum_healthy_percent: 0,
            maximum_percent: 100,
            circuit_breaker: CircuitBreaker::default(),
        },
    }
}

fn grace(v: i32) -> Result<u32, ApiError> {
    u32::try_from(v).map_err(|_| {
        ApiError::invalid(
            "healthCheckGracePeriodSeconds",
            format!("{v} must not be negative"),
        )
    })
}

/// (running, pending) tasks of each of the service's deployments.
fn counts_by_deployment(
    shared: &Shared,
    rec: &ServiceRecord,
) -> Result<std::collections::HashMap<String, (u32, u32)>, ApiError> {
    let facts: Vec<_> = shared
        .db
        .list_tasks(&crate::db::TaskFilter {
            cluster: rec.cluster.clone(),
            group: Some(rec.group()),
            ..Default::default()
        })?
        .iter()
        .map(task_facts)
        .collect();
    Ok(deployment_counts(&facts))
}

fn config_to_proto(cfg: &DeploymentConfig) -> DeploymentConfiguration {
    DeploymentConfiguration {
        minimum_healthy_percent: Some(cfg.minimum_healthy_percent as i32),
        maximum_percent: Some(cfg.maximum_percent as i32),
        deployment_circuit_breaker: Some(DeploymentCircuitBreaker {
            enable: cfg.circuit_breaker.enable,
            rollback: cfg.circuit_breaker.rollback,
        }),
    }
}

/// The service as ECS describes it, with counts from its tasks.
pub fn service_to_proto(shared: &Shared, rec: &ServiceRecord) -> Result<Service, ApiError> {
    let arn: &ArnPrefix = &shared.arn;
    let counts = counts_by_deployment(shared, rec)?;
    let (running, pending) = counts
        .values()
        .fold((0, 0), |(r, p), (r2, p2)| (r + r2, p + p2));
    let cfg = rec.deployment_config;
    Ok(Service {
        service_arn: arn.service(&rec.cluster, &rec.name),
        service_name: rec.name.clone(),
        cluster_arn: arn.cluster(&rec.cluster),
        status: rec.status.as_str().to_owned(),
        task_definition: rec
            .primary()
            .map(|p| arn.task_definition(&p.family, p.revision))
            .unwrap_or_default(),
        desired_count: rec.desired_count as i32,
        running_count: running as i32,
        pending_count: pending as i32,
        scheduling_strategy: rec.scheduling.as_str().to_owned(),
        placement_constraints: rec
            .constraints
            .iter()
            .map(|c| PlacementConstraint {
                r#type: c.kind.clone(),
                expression: c.value.clone(),
            })
            .collect(),
        placement_strategy: rec
            .strategies
            .iter()
            .map(|s| PlacementStrategy {
                r#type: s.kind.clone(),
                field: s.value.clone(),
            })
            .collect(),
        deployment_configuration: Some(config_to_proto(&cfg)),
        health_check_grace_period_seconds: rec.health_check_grace_period_secs as i32,
        tags: tags_to_proto(&rec.tags),
        load_balancers: rec
            .primary()
            .map(|p| &p.load_balancers)
            .unwrap_or(&rec.load_balancers)
            .iter()
            .map(super::traffic::load_balancer_to_proto)
            .collect(),
        service_discovery: rec
            .discovery
            .as_ref()
            .map(super::traffic::discovery_to_proto),
        created_at: Some(timestamp(rec.created_at)),
        deployments: rec
            .deployments
            .iter()
            .map(|d| {
                let (r, p) = counts.get(&d.id).copied().unwrap_or_default();
                Deployment {
                    id: d.id.clone(),
                    status: d.status.as_str().to_owned(),
                    task_definition: arn.task_definition(&d.family, d.revision),
                    desired_count: if d.status == crate::records::DeploymentStatus::Primary {
                        rec.desired_count as i32
                    } else {
                        0
                    },
                    pending_count: p as i32,
                    running_count: r as i32,
                    failed_tasks: d.failed_tasks as i32,
                    rollout_state: d.rollout_state.as_str().to_owned(),
                    rollout_state_reason: d.rollout_state_reason.clone(),
                    created_at: Some(timestamp(d.created_at)),
                    updated_at: Some(timestamp(d.updated_at)),
                }
            })
            .collect(),
        events: rec
            .events
            .iter()
            .map(|e| ServiceEvent {
                id: e.id.clone(),
                created_at: Some(timestamp(e.created_at)),
                message: e.message.clone(),
            })
            .collect(),
    })
}

#[tonic::async_trait]
impl ServiceService for ServiceApi {
    #[tracing::instrument(skip_all, fields(service = %req.get_ref().service_name))]
    async fn create_service(
        &self,
        req: Request<CreateServiceRequest>,
    ) -> Result<Response<CreateServiceResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        validate_name("serviceName", &req.service_name)?;
        let scheduling = match req.scheduling_strategy.as_str() {
            "" => SchedulingStrategy::Replica,
            s => SchedulingStrategy::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "schedulingStrategy",
                    format!("{s:?} is not one of REPLICA, DAEMON"),
                )
            })?,
        };
        let daemon = scheduling == SchedulingStrategy::Daemon;
        let desired = match (req.desired_count, daemon) {
            (Some(_), true) => {
                return Err(ApiError::invalid(
                    "desiredCount",
                    "must not be set for the DAEMON scheduling strategy (one task per instance)",
                )
                .into())
            }
            (None, true) => 0,
            (None, false) => {
                return Err(ApiError::invalid(
                    "desiredCount",
                    "required for the REPLICA scheduling strategy",
                )
                .into())
            }
            (Some(n), false) if n < 0 => {
                return Err(
                    ApiError::invalid("desiredCount", format!("{n} must not be negative")).into(),
                )
            }
            (Some(n), false) => n as u32,
        };
        if daemon && !req.placement_strategy.is_empty() {
            return Err(ApiError::invalid(
                "placementStrategy",
                "placement strategies are not supported for the DAEMON scheduling strategy",
            )
            .into());
        }
        let td = active_definition(&self.shared, "taskDefinition", &req.task_definition)?;
        let (constraints, strategies) =
            placement_items(&req.placement_constraints, &req.placement_strategy, "")?;
        let deployment_config =
            deployment_config(req.deployment_configuration.as_ref(), defaults(scheduling))?;
        if daemon && deployment_config.maximum_percent != 100 {
            return Err(ApiError::invalid(
                "deploymentConfiguration.maximumPercent",
                "must be 100 for the DAEMON scheduling strategy",
            )
            .into());
        }
        let tags = validate_tags("tags", &req.tags)?;
        let load_balancers =
            super::traffic::load_balancers(&self.shared, &td, &req.load_balancers, "")?;
        let discovery = req
            .service_discovery
            .as_ref()
            .map(|d| super::traffic::discovery(&td, d, &req.service_name, ""))
            .transpose()?
            .flatten();
        let now = now_millis();
        let mut rec = ServiceRecord {
            cluster: cluster.clone(),
            name: req.service_name.clone(),
            status: ServiceStatus::Active,
            scheduling,
            desired_count: desired,
            constraints,
            strategies,
            deployment_config,
            health_check_grace_period_secs: grace(req.health_check_grace_period_seconds)?,
            tags,
            created_at: now,
            deployments: Vec::new(),
            events: Vec::new(),
            steady: false,
            throttled_until: None,
            throttle_failures: 0,
            last_completed: None,
            version: 1,
            service_deployments: Vec::new(),
            load_balancers,
            discovery,
            enable_execute_command: req.enable_execute_command,
        };
        promote(&mut rec, new_deployment(&td.family, td.revision, now));
        history::record(&mut rec, now);
        let rec = self
            .shared
            .db
            .create_service(rec)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(cluster = %cluster, desired = rec.desired_count, task_definition = %format!("{}:{}", td.family, td.revision), "service created");
        Ok(Response::new(CreateServiceResponse {
            service: Some(service_to_proto(&self.shared, &rec)?),
        }))
    }

    #[tracing::instrument(skip_all, fields(service = %req.get_ref().service))]
    async fn update_service(
        &self,
        req: Request<UpdateServiceRequest>,
    ) -> Result<Response<UpdateServiceResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let name = service_name(&req.service).to_owned();
        if name.is_empty() {
            return Err(ApiError::invalid("service", "required").into());
        }
        // A deleted (INACTIVE) service is kept for describe; updating it is
        // ECS's ServiceNotActive, not a missing service.
        if let Some(rec) = self
            .shared
            .db
            .service(&cluster, &name)
            .map_err(ApiError::from)?
            .filter(|r| r.status == ServiceStatus::Inactive)
        {
            return Err(ApiError::from(DbError::Refused {
                refusal: crate::db::Refusal::ServiceNotActive,
                message: format!(
                    "Service was not ACTIVE: service {name} is {}; create it again with CreateService",
                    rec.status.as_str()
                ),
            })
            .into());
        }
        let td = match req.task_definition.trim() {
            "" => None,
            s => Some(active_definition(&self.shared, "taskDefinition", s)?),
        };
        // loadBalancers and the DNS name are checked against the definition
        // the service will run: the new one, or the PRIMARY's.
        let current = self
            .shared
            .db
            .service(&cluster, &name)
            .map_err(ApiError::from)?;
        let runs = match (&td, current.as_ref().and_then(|c| c.primary())) {
            (Some(td), _) => Some(td.clone()),
            (None, Some(p)) => Some(
                self.shared
                    .db
                    .task_definition(&p.family, Some(p.revision))
                    .map_err(ApiError::from)?,
            ),
            (None, None) => None,
        };
        let load_balancers = match (&runs, &req.load_balancers, &current) {
            (Some(runs), Some(u), _) => Some(super::traffic::load_balancers(
                &self.shared,
                runs,
                &u.load_balancers,
                "",
            )?),
            // A new definition must still have the ports the service's
            // load balancers name.
            (Some(runs), None, Some(cur)) if td.is_some() && !cur.load_balancers.is_empty() => {
                let as_proto: Vec<_> = cur
                    .load_balancers
                    .iter()
                    .map(super::traffic::load_balancer_to_proto)
                    .collect();
                super::traffic::load_balancers(&self.shared, runs, &as_proto, "")?;
                None
            }
            _ => None,
        };
        let discovery = match (&runs, &req.service_discovery) {
            (Some(runs), Some(d)) => Some(super::traffic::discovery(runs, d, &name, "")?),
            _ => None,
        };
        if let Some(n) = req.desired_count.filter(|n| *n < 0) {
            return Err(
                ApiError::invalid("desiredCount", format!("{n} must not be negative")).into(),
            );
        }
        let placement = req
            .placement
            .as_ref()
            .map(|p| {
                placement_items(
                    &p.placement_constraints,
                    &p.placement_strategy,
                    "placement.",
                )
            })
            .transpose()?;
        let grace_secs = req
            .health_check_grace_period_seconds
            .map(grace)
            .transpose()?;
        // Validated once against the defaults; applied to the stored one.
        deployment_config(
            req.deployment_configuration.as_ref(),
            DeploymentConfig {
                minimum_healthy_percent: 100,
                maximum_percent: 200,
                circuit_breaker: CircuitBreaker::default(),
            },
        )?;
        let rec = self
            .shared
            .db
            .update_service(&cluster, &name, |rec| {
                if rec.status != ServiceStatus::Active {
                    return Err(DbError::Refused {
                        refusal: crate::db::Refusal::ServiceNotActive,
                        message: format!(
                            "Service was not ACTIVE: service {name} is {}; only an ACTIVE service can be updated",
                            rec.status.as_str()
                        ),
                    });
                }
                let daemon = rec.scheduling == SchedulingStrategy::Daemon;
                if let Some(on) = req.enable_execute_command {
                    rec.enable_execute_command = on;
                }
                if let Some(n) = req.desired_count {
                    if daemon {
                        return Err(DbError::InvalidArgument {
                            field: "desiredCount",
                            message: "a DAEMON service runs one task per instance".to_owned(),
                        });
                    }
                    rec.desired_count = n as u32;
                    rec.steady = false;
                }
                if let Ok(cfg) =
                    deployment_config(req.deployment_configuration.as_ref(), rec.deployment_config)
                {
                    if daemon && cfg.maximum_percent != 100 {
                        return Err(DbError::InvalidArgument {
                            field: "deploymentConfiguration.maximumPercent",
                            message: "must be 100 for the DAEMON scheduling strategy".to_owned(),
                        });
                    }
                    rec.deployment_config = cfg;
                }
                if let Some((c, s)) = &placement {
                    if daemon && !s.is_empty() {
                        return Err(DbError::InvalidArgument {
                            field: "placement.placementStrategy",
                            message: "placement strategies are not supported for the DAEMON \
                                      scheduling strategy"
                                .to_owned(),
                        });
                    }
                    rec.constraints = c.clone();
                    rec.strategies = s.clone();
                }
                if let Some(g) = grace_secs {
                    rec.health_check_grace_period_secs = g;
                }
                if let Some(d) = &discovery {
                    rec.discovery = d.clone();
                }
                // New load balancers are a new deployment, as in ECS: the
                // running tasks keep theirs until they are replaced.
                let changes_lbs = load_balancers
                    .as_ref()
                    .is_some_and(|l| *l != rec.load_balancers);
                if let Some(l) = &load_balancers {
                    rec.load_balancers = l.clone();
                }
                let changes_definition = td.as_ref().is_some_and(|td| {
                    rec.primary().is_none_or(|p| {
                        (p.family.as_str(), p.revision) != (td.family.as_str(), td.revision)
                    })
                });
                if changes_definition || changes_lbs || req.force_new_deployment {
                    let (family, revision) = match (&td, rec.primary()) {
                        (Some(td), _) => (td.family.clone(), td.revision),
                        (None, Some(p)) => (p.family.clone(), p.revision),
                        (None, None) => {
                            return Err(DbError::FailedPrecondition(format!(
                                "service {name} has no deployment"
                            )))
                        }
                    };
                    let now = now_millis();
                    promote(rec, new_deployment(&family, revision, now));
                    history::record(rec, now);
                }
                Ok(())
            })
            .await
            .map_err(ApiError::from)?;
        tracing::info!(
            desired = rec.desired_count,
            deployments = rec.deployments.len(),
            "service updated"
        );
        Ok(Response::new(UpdateServiceResponse {
            service: Some(service_to_proto(&self.shared, &rec)?),
        }))
    }

    #[tracing::instrument(skip_all, fields(service = %req.get_ref().service))]
    async fn delete_service(
        &self,
        req: Request<DeleteServiceRequest>,
    ) -> Result<Response<DeleteServiceResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let name = service_name(&req.service).to_owned();
        if name.is_empty() {
            return Err(ApiError::invalid("service", "required").into());
        }
        let rec = self
            .shared
            .db
            .update_service(&cluster, &name, |rec| {
                if rec.status == ServiceStatus::Draining {
                    return Ok(());
                }
                if rec.scheduling == SchedulingStrategy::Replica
                    && rec.desired_count > 0
                    && !req.force
                {
                    return Err(DbError::Refused {
                        refusal: crate::db::Refusal::ServiceScaledAboveZero,
                        message:
                            "The service cannot be stopped while it is scaled above 0. Scale it \
                                  to 0 first, or delete it with force."
                                .to_owned(),
                    });
                }
                rec.desired_count = 0;
                rec.status = ServiceStatus::Draining;
                rec.steady = false;
                Ok(())
            })
            .await
            .map_err(ApiError::from)?;
        tracing::info!("service draining");
        Ok(Response::new(DeleteServiceResponse {
            service: Some(service_to_proto(&self.shared, &rec)?),
        }))
    }

    async fn describe_services(
        &self,
        req: Request<DescribeServicesRequest>,
    ) -> Result<Response<DescribeServicesResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let with_tags = includes_tags(&req.include, &[])?;
        if req.services.is_empty() {
            return Err(ApiError::invalid("services", "name at least one service").into());
        }
        if req.services.len() > MAX_DESCRIBE {
            return Err(ApiError::invalid(
                "services",
                format!("{} services; at most {MAX_DESCRIBE}", req.services.len()),
            )
            .into());
        }
        let mut services = Vec::new();
        let mut failures = Vec::new();
        for s in &req.services {
            let name = service_name(s);
            match self
                .shared
                .db
                .service(&cluster, name)
                .map_err(ApiError::from)?
            {
                Some(rec) => {
                    let mut service = service_to_proto(&self.shared, &rec)?;
                    // ECS returns tags only when asked (`include: ["TAGS"]`).
                    if !with_tags {
                        service.tags.clear();
                    }
                    services.push(service)
                }
                None => failures.push(Failure {
                    arn: self.shared.arn.service(&cluster, name),
                    reason: "MISSING".to_owned(),
                    detail: String::new(),
                }),
            }
        }
        Ok(Response::new(DescribeServicesResponse {
            services,
            failures,
        }))
    }

    async fn list_services(
        &self,
        req: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let filter = match req.scheduling_strategy.as_str() {
            "" => None,
            s => Some(SchedulingStrategy::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "schedulingStrategy",
                    format!("{s:?} is not one of REPLICA, DAEMON"),
                )
            })?),
        };
        let page = PageRequest::parse(
            "services",
            req.max_results,
            &req.next_token,
            paging::DEFAULT_SERVICES_PAGE,
        )
        .map_err(ApiError::from)?;
        let launch_type_matches = launch_type_matches("launchType", &req.launch_type)?;
        let services: Vec<ServiceRecord> = self
            .shared
            .db
            .services_of(&cluster)
            .map_err(ApiError::from)?
            .into_iter()
            .filter(|s| launch_type_matches && s.status != ServiceStatus::Inactive)
            .filter(|s| filter.is_none_or(|f| s.scheduling == f))
            .collect();
        let page = paginate(services, |s| s.name.clone(), Order::Ascending, &page);
        Ok(Response::new(ListServicesResponse {
            service_arns: page
                .items
                .iter()
                .map(|s| self.shared.arn.service(&cluster, &s.name))
                .collect(),
            next_token: page.next_token,
        }))
    }

    async fn list_service_deployments(
        &self,
        req: Request<ListServiceDeploymentsRequest>,
    ) -> Result<Response<ListServiceDeploymentsResponse>, Status> {
        Ok(Response::new(deployments::list(
            &self.shared,
            req.into_inner(),
        )?))
    }

    async fn describe_service_deployments(
        &self,
        req: Request<DescribeServiceDeploymentsRequest>,
    ) -> Result<Response<DescribeServiceDeploymentsResponse>, Status> {
        Ok(Response::new(deployments::describe(
            &self.shared,
            req.into_inner(),
        )?))
    }
}
