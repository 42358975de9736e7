//! ECS's ListServiceDeployments and DescribeServiceDeployments, from the
//! service deployments the controller keeps in each service record
//! (`crate::services::history`, the last 20 per service).
//!
//! Listing is newest first (by createdAt, then id), paged like every List
//! call (`crate::paging`, default 20). A service deployment's ARN is
//! `…:service-deployment/<cluster>/<service>/<id>`; its service revisions
//! are named after the deployments they run
//! (`…:service-revision/<cluster>/<service>/<digits of ecs-svc/…>`).

use std::collections::HashMap;

use berth_proto::arn::service_deployment_parts;
use berth_proto::v1::{
    DescribeServiceDeploymentsRequest, DescribeServiceDeploymentsResponse, Failure,
    ListServiceDeploymentsRequest, ListServiceDeploymentsResponse, ServiceDeployment,
    ServiceDeploymentBrief, ServiceDeploymentCircuitBreaker, ServiceDeploymentRollback,
    ServiceRevisionSummary,
};

use super::{cluster_arg, config_to_proto, counts_by_deployment, service_name, timestamp};
use crate::api::{millis, ApiError, Shared};
use crate::db::DbError;
use crate::paging::{paginate, time_key, Order, PageRequest};
use crate::records::{
    RevisionRef, ServiceDeploymentRecord, ServiceDeploymentStatus, ServiceRecord,
};
use crate::services::plan::failure_threshold;

/// ECS's default page of ListServiceDeployments.
pub const DEFAULT_PAGE: usize = 20;
/// ECS's limit on ARNs in one DescribeServiceDeployments call.
pub const MAX_DESCRIBE: usize = 20;

fn brief(
    shared: &Shared,
    rec: &ServiceRecord,
    e: &ServiceDeploymentRecord,
) -> ServiceDeploymentBrief {
    let arn = &shared.arn;
    ServiceDeploymentBrief {
        service_deployment_arn: arn.service_deployment(&rec.cluster, &rec.name, &e.id),
        service_arn: arn.service(&rec.cluster, &rec.name),
        cluster_arn: arn.cluster(&rec.cluster),
        started_at: Some(timestamp(e.started_at)),
        created_at: Some(timestamp(e.created_at)),
        finished_at: e.finished_at.map(timestamp),
        target_service_revision_arn: arn.service_revision(
            &rec.cluster,
            &rec.name,
            e.target.revision_id(),
        ),
        status: e.status.as_str().to_owned(),
        status_reason: e.status_reason.clone(),
    }
}

fn revision(
    shared: &Shared,
    rec: &ServiceRecord,
    r: &RevisionRef,
    requested: u32,
    counts: &HashMap<String, (u32, u32)>,
) -> ServiceRevisionSummary {
    let (running, pending) = counts.get(&r.deployment_id).copied().unwrap_or_default();
    ServiceRevisionSummary {
        arn: shared
            .arn
            .service_revision(&rec.cluster, &rec.name, r.revision_id()),
        requested_task_count: requested as i32,
        running_task_count: running as i32,
        pending_task_count: pending as i32,
        task_definition: shared.arn.task_definition(&r.family, r.revision),
    }
}

fn full(
    shared: &Shared,
    rec: &ServiceRecord,
    e: &ServiceDeploymentRecord,
    newest: bool,
    counts: &HashMap<String, (u32, u32)>,
) -> ServiceDeployment {
    let b = brief(shared, rec, e);
    // The service's desired count is asked of the newest deployment's
    // target while it is the one running; of nothing else.
    let requested = |r: &RevisionRef| {
        let running_target = match &e.rollback {
            Some(rb) => &rb.target,
            None => &e.target,
        };
        if newest && e.status != ServiceDeploymentStatus::Stopped && r == running_target {
            rec.desired_count
        } else {
            0
        }
    };
    let breaker = e.deployment_config.circuit_breaker;
    ServiceDeployment {
        service_deployment_arn: b.service_deployment_arn,
        service_arn: b.service_arn,
        cluster_arn: b.cluster_arn,
        created_at: b.created_at,
        started_at: b.started_at,
        finished_at: b.finished_at,
        stopped_at: e.stopped_at.map(timestamp),
        updated_at: Some(timestamp(e.updated_at)),
        source_service_revisions: e
            .sources
            .iter()
            .map(|r| revision(shared, rec, r, requested(r), counts))
            .collect(),
        target_service_revision: Some(revision(
            shared,
            rec,
            &e.target,
            requested(&e.target),
            counts,
        )),
        status: b.status,
        status_reason: b.status_reason,
        deployment_configuration: Some(config_to_proto(&e.deployment_config)),
        rollback: e.rollback.as_ref().map(|rb| ServiceDeploymentRollback {
            reason: rb.reason.clone(),
            started_at: Some(timestamp(rb.started_at)),
            service_revision_arn: shared.arn.service_revision(
                &rec.cluster,
                &rec.name,
                rb.target.revision_id(),
            ),
        }),
        deployment_circuit_breaker: Some(ServiceDeploymentCircuitBreaker {
            status: if !breaker.enable {
                "DISABLED"
            } else if e.breaker_tripped {
                "TRIGGERED"
            } else if e.status.is_final() {
                "MONITORING_COMPLETE"
            } else {
                "MONITORING"
            }
            .to_owned(),
            failure_count: e.failed_tasks as i32,
            threshold: failure_threshold(rec.desired_count) as i32,
        }),
    }
}

/// ListServiceDeployments.
pub fn list(
    shared: &Shared,
    req: ListServiceDeploymentsRequest,
) -> Result<ListServiceDeploymentsResponse, ApiError> {
    let page = PageRequest::parse(
        "service-deployments",
        req.max_results,
        &req.next_token,
        DEFAULT_PAGE,
    )?;
    let cluster = cluster_arg(&req.cluster);
    let name = service_name(&req.service);
    if name.is_empty() {
        return Err(ApiError::invalid("service", "name a service"));
    }
    let statuses = req
        .status
        .iter()
        .enumerate()
        .map(|(i, s)| {
            ServiceDeploymentStatus::parse(s.trim()).ok_or_else(|| {
                ApiError::invalid(
                    &format!("status[{i}]"),
                    format!(
                        "{s:?} is not one of {}",
                        ServiceDeploymentStatus::ALL.map(|v| v.as_str()).join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (after, before) = match &req.created_at {
        Some(c) => (c.after.as_ref().map(millis), c.before.as_ref().map(millis)),
        None => (None, None),
    };
    shared.db.active_cluster(&cluster)?;
    let rec = shared
        .db
        .service(&cluster, name)?
        .ok_or_else(|| DbError::NotFound {
            kind: "service",
            name: format!("{cluster}/{name}"),
        })?;
    let matching: Vec<&ServiceDeploymentRecord> = rec
        .service_deployments
        .iter()
        .filter(|e| statuses.is_empty() || statuses.contains(&e.status))
        .filter(|e| after.is_none_or(|a| e.created_at > a))
        .filter(|e| before.is_none_or(|b| e.created_at < b))
        .collect();
    let page = paginate(
        matching,
        |e| time_key(e.created_at, &e.id),
        Order::Descending,
        &page,
    );
    Ok(ListServiceDeploymentsResponse {
        service_deployments: page
            .items
            .into_iter()
            .map(|e| brief(shared, &rec, e))
            .collect(),
        next_token: page.next_token,
    })
}

/// DescribeServiceDeployments.
pub fn describe(
    shared: &Shared,
    req: DescribeServiceDeploymentsRequest,
) -> Result<DescribeServiceDeploymentsResponse, ApiError> {
    let field = "serviceDeploymentArns";
    if req.service_deployment_arns.is_empty() {
        return Err(ApiError::invalid(
            field,
            "name at least one service deployment",
        ));
    }
    if req.service_deployment_arns.len() > MAX_DESCRIBE {
        return Err(ApiError::invalid(field, format!("at most {MAX_DESCRIBE}")));
    }
    let mut out = DescribeServiceDeploymentsResponse::default();
    // One read (and one count of tasks) per service named.
    let mut services: HashMap<(String, String), Option<(ServiceRecord, HashMap<_, _>)>> =
        HashMap::new();
    for (i, arn) in req.service_deployment_arns.iter().enumerate() {
        let arn = arn.trim();
        let (cluster, service, id) = service_deployment_parts(arn).ok_or_else(|| {
            ApiError::invalid(
                &format!("{field}[{i}]"),
                format!("{arn:?} is not a service-deployment ARN"),
            )
        })?;
        let key = (cluster.to_owned(), service.to_owned());
        if !services.contains_key(&key) {
            let loaded = match shared.db.service(cluster, service)? {
                Some(rec) => {
                    let counts = counts_by_deployment(shared, &rec)?;
                    Some((rec, counts))
                }
                None => None,
            };
            services.insert(key.clone(), loaded);
        }
        let found = services
            .get(&key)
            .and_then(|s| s.as_ref())
            .and_then(|(rec, counts)| {
                rec.service_deployments
                    .iter()
                    .position(|e| e.id == id)
                    .map(|pos| full(shared, rec, &rec.service_deployments[pos], pos == 0, counts))
            });
        match found {
            Some(d) => out.service_deployments.push(d),
            None => out.failures.push(Failure {
                arn: arn.to_owned(),
                reason: "MISSING".to_owned(),
                detail: String::new(),
            }),
        }
    }
    Ok(out)
}
