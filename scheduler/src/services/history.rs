//! ECS's service deployments (ListServiceDeployments,
//! DescribeServiceDeployments), kept in the service record from its
//! deployments. Pure: [`record`] runs at the end of every plan and after
//! CreateService and UpdateService, so the history is written in the same
//! checked write as the decision it follows.
//!
//! The mapping from Berth's deployments (PRIMARY/ACTIVE/INACTIVE with a
//! rolloutState) to ECS's service deployments:
//! - a new PRIMARY (CreateService, a new task definition, a forced
//!   deployment) starts a service deployment: IN_PROGRESS, its target the
//!   PRIMARY, its sources the deployments still running. The one before,
//!   if not finished, is STOPPED (superseded);
//! - the target's rollout COMPLETED → SUCCESSFUL;
//! - the target's rollout FAILED (the circuit breaker): with rollback, the
//!   deployment it returns to becomes the rollback target and the service
//!   deployment ROLLBACK_IN_PROGRESS, then ROLLBACK_SUCCESSFUL or
//!   ROLLBACK_FAILED as that rollout ends; without rollback, STOPPED;
//! - a service being deleted stops its unfinished service deployment.
//!
//! PENDING, STOP_REQUESTED and ROLLBACK_REQUESTED are never used: Berth's
//! controller acts on a deployment in the same write that starts it.
//! The last [`MAX_SERVICE_DEPLOYMENTS`] are kept, newest first.

use crate::records::{
    DeploymentStatus, RevisionRef, RollbackRecord, RolloutState, ServiceDeploymentRecord,
    ServiceDeploymentStatus as Status, ServiceRecord, ServiceStatus, UnixMillis,
    MAX_SERVICE_DEPLOYMENTS,
};

/// The statusReason of a service deployment replaced by a newer one.
pub const SUPERSEDED: &str = "Stopped: a newer service deployment started.";
/// The statusReason of a service deployment stopped by the service's deletion.
pub const SERVICE_DELETED: &str = "Stopped: the service is being deleted.";

/// A new service-deployment id: 21 letters and digits (ECS's shape).
pub fn new_service_deployment_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 21)
}

/// Brings `rec.service_deployments` up to date with `rec.deployments`.
pub fn record(rec: &mut ServiceRecord, now: UnixMillis) {
    let Some(primary) = rec.primary().cloned() else {
        return;
    };
    // First what became of the newest one (a rollback names the PRIMARY
    // it returns to), then whether the PRIMARY starts a new one.
    advance(rec, &primary.id, now);
    let starts_new = match rec.service_deployments.first() {
        None => true,
        Some(e) => {
            e.target.deployment_id != primary.id
                && e.rollback
                    .as_ref()
                    .is_none_or(|r| r.target.deployment_id != primary.id)
        }
    };
    if starts_new {
        if let Some(e) = rec.service_deployments.first_mut() {
            stop(e, SUPERSEDED, now);
        }
        let sources = rec
            .deployments
            .iter()
            .filter(|d| d.status == DeploymentStatus::Active)
            .map(RevisionRef::of)
            .collect();
        rec.service_deployments.insert(
            0,
            ServiceDeploymentRecord {
                id: new_service_deployment_id(),
                status: Status::InProgress,
                status_reason: String::new(),
                created_at: primary.created_at,
                started_at: primary.created_at,
                updated_at: now,
                finished_at: None,
                stopped_at: None,
                target: RevisionRef::of(&primary),
                sources,
                deployment_config: rec.deployment_config,
                failed_tasks: 0,
                breaker_tripped: false,
                rollback: None,
            },
        );
        rec.service_deployments.truncate(MAX_SERVICE_DEPLOYMENTS);
    }
    // A rollout may end in the same evaluation as the one it replaced.
    for _ in 0..3 {
        if !advance(rec, &primary.id, now) {
            break;
        }
    }
    if rec.status != ServiceStatus::Active {
        if let Some(e) = rec.service_deployments.first_mut() {
            stop(e, SERVICE_DELETED, now);
        }
    }
}

/// The service deployments of `after` that are new or changed status
/// since `before` (for the controller's log).
pub fn changed<'a>(
    before: &ServiceRecord,
    after: &'a ServiceRecord,
) -> impl Iterator<Item = &'a ServiceDeploymentRecord> {
    let was: std::collections::HashMap<String, Status> = before
        .service_deployments
        .iter()
        .map(|e| (e.id.clone(), e.status))
        .collect();
    after
        .service_deployments
        .iter()
        .filter(move |e| was.get(&e.id) != Some(&e.status))
}

fn stop(e: &mut ServiceDeploymentRecord, reason: &str, now: UnixMillis) {
    if e.status.is_final() {
        return;
    }
    e.status = Status::Stopped;
    e.status_reason = reason.to_owned();
    e.stopped_at = Some(now);
    e.finished_at = Some(now);
    e.updated_at = now;
}

/// One step of the newest service deployment; true if it changed.
fn advance(rec: &mut ServiceRecord, primary_id: &str, now: UnixMillis) -> bool {
    let rollback_enabled = rec.deployment_config.circuit_breaker.rollback;
    let deployments = &rec.deployments;
    let Some(e) = rec.service_deployments.first_mut() else {
        return false;
    };
    let find = |id: &str| deployments.iter().find(|d| d.id == id);
    let before = e.clone();
    match e.status {
        Status::Pending | Status::InProgress => {
            let Some(target) = find(&e.target.deployment_id) else {
                return false;
            };
            e.failed_tasks = target.failed_tasks;
            match target.rollout_state {
                RolloutState::InProgress => {}
                RolloutState::Completed => {
                    e.status = Status::Successful;
                    e.status_reason = target.rollout_state_reason.clone();
                    e.finished_at = Some(now);
                }
                RolloutState::Failed => {
                    e.breaker_tripped = true;
                    match find(primary_id).filter(|p| rollback_enabled && p.id != target.id) {
                        Some(back) => {
                            e.status = Status::RollbackInProgress;
                            e.status_reason = target.rollout_state_reason.clone();
                            e.rollback = Some(RollbackRecord {
                                reason: target.rollout_state_reason.clone(),
                                started_at: now,
                                target: RevisionRef::of(back),
                            });
                        }
                        None => {
                            let reason = target.rollout_state_reason.clone();
                            stop(e, &reason, now);
                        }
                    }
                }
            }
        }
        Status::RollbackRequested | Status::RollbackInProgress => {
            let Some(back) = e
                .rollback
                .as_ref()
                .and_then(|r| find(&r.target.deployment_id))
            else {
                return false;
            };
            match back.rollout_state {
                RolloutState::InProgress => {}
                RolloutState::Completed => {
                    e.status = Status::RollbackSuccessful;
                    e.status_reason =
                        format!("Rolled back to {}: {}", back.id, back.rollout_state_reason);
                    e.finished_at = Some(now);
                }
                RolloutState::Failed => {
                    e.status = Status::RollbackFailed;
                    e.status_reason = back.rollout_state_reason.clone();
                    e.finished_at = Some(now);
                }
            }
        }
        _ => {}
    }
    let changed = *e != before;
    if changed {
        e.updated_at = now;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{
        CircuitBreaker, DeploymentConfig, DeploymentRecord, SchedulingStrategy, ServiceRecord,
    };
    use crate::services::plan::{new_deployment, promote};

    fn service(rollback: bool) -> ServiceRecord {
        ServiceRecord {
            load_balancers: Vec::new(),
            discovery: None,
            enable_execute_command: false,
            cluster: "default".into(),
            name: "web".into(),
            status: ServiceStatus::Active,
            scheduling: SchedulingStrategy::Replica,
            desired_count: 2,
            constraints: vec![],
            strategies: vec![],
            deployment_config: DeploymentConfig {
                minimum_healthy_percent: 100,
                maximum_percent: 200,
                circuit_breaker: CircuitBreaker {
                    enable: true,
                    rollback,
                },
            },
            health_check_grace_period_secs: 0,
            tags: vec![],
            created_at: 0,
            deployments: vec![],
            events: vec![],
            steady: false,
            throttled_until: None,
            throttle_failures: 0,
            last_completed: None,
            version: 0,
            service_deployments: vec![],
        }
    }

    fn primary(rec: &mut ServiceRecord) -> &mut DeploymentRecord {
        rec.deployments
            .iter_mut()
            .find(|d| d.status == DeploymentStatus::Primary)
            .unwrap()
    }

    #[test]
    fn rolling_update_supersedes_and_succeeds() {
        let mut rec = service(false);
        promote(&mut rec, new_deployment("web", 1, 10));
        record(&mut rec, 10);
        assert_eq!(rec.service_deployments.len(), 1);
        assert_eq!(rec.service_deployments[0].status, Status::InProgress);
        assert!(rec.service_deployments[0].sources.is_empty());
        // Nothing changes: nothing is recorded.
        let before = rec.clone();
        record(&mut rec, 11);
        assert_eq!(rec, before);
        primary(&mut rec).rollout_state = RolloutState::Completed;
        record(&mut rec, 20);
        assert_eq!(rec.service_deployments[0].status, Status::Successful);
        assert_eq!(rec.service_deployments[0].finished_at, Some(20));
        // A second update, superseded by a third before it completes.
        promote(&mut rec, new_deployment("web", 2, 30));
        record(&mut rec, 30);
        promote(&mut rec, new_deployment("web", 3, 40));
        record(&mut rec, 40);
        let h = &rec.service_deployments;
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].target.revision, 3);
        assert_eq!(h[0].status, Status::InProgress);
        assert_eq!(
            h[0].sources.iter().map(|s| s.revision).collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(h[1].status, Status::Stopped);
        assert_eq!(h[1].status_reason, SUPERSEDED);
        assert_eq!(h[2].status, Status::Successful);
    }

    #[test]
    fn circuit_breaker_rollback_then_success() {
        let mut rec = service(true);
        promote(&mut rec, new_deployment("web", 1, 10));
        primary(&mut rec).rollout_state = RolloutState::Completed;
        record(&mut rec, 10);
        promote(&mut rec, new_deployment("web", 2, 20));
        record(&mut rec, 20);
        // The breaker: the new one FAILED, the old one PRIMARY again.
        let failed_id = primary(&mut rec).id.clone();
        primary(&mut rec).rollout_state = RolloutState::Failed;
        primary(&mut rec).failed_tasks = 10;
        let back = rec
            .deployments
            .iter()
            .find(|d| d.id != failed_id)
            .cloned()
            .unwrap();
        let mut back2 = back.clone();
        back2.rollout_state = RolloutState::InProgress;
        back2.status = DeploymentStatus::Primary;
        promote(&mut rec, back2);
        record(&mut rec, 30);
        assert_eq!(rec.service_deployments.len(), 2, "no new one");
        let e = &rec.service_deployments[0];
        assert_eq!(e.status, Status::RollbackInProgress);
        assert!(e.breaker_tripped);
        assert_eq!(e.failed_tasks, 10);
        let rb = e.rollback.as_ref().unwrap();
        assert_eq!(rb.target.deployment_id, back.id);
        assert_eq!(rb.started_at, 30);
        primary(&mut rec).rollout_state = RolloutState::Completed;
        record(&mut rec, 40);
        assert_eq!(
            rec.service_deployments[0].status,
            Status::RollbackSuccessful
        );
        assert_eq!(rec.service_deployments[1].status, Status::Successful);
    }

    #[test]
    fn changed_lists_new_and_moved_ones() {
        let mut rec = service(false);
        promote(&mut rec, new_deployment("web", 1, 10));
        let before = rec.clone();
        record(&mut rec, 10);
        assert_eq!(changed(&before, &rec).count(), 1, "a new one");
        let before = rec.clone();
        record(&mut rec, 11);
        assert_eq!(changed(&before, &rec).count(), 0);
        primary(&mut rec).rollout_state = RolloutState::Completed;
        record(&mut rec, 12);
        let moved: Vec<_> = changed(&before, &rec).map(|e| e.status).collect();
        assert_eq!(moved, [Status::Successful]);
    }

    #[test]
    fn breaker_without_rollback_stops() {
        let mut rec = service(false);
        promote(&mut rec, new_deployment("web", 1, 10));
        record(&mut rec, 10);
        primary(&mut rec).rollout_state = RolloutState::Failed;
        primary(&mut rec).rollout_state_reason = "tasks failed to start".into();
        record(&mut rec, 20);
        let e = &rec.service_deployments[0];
        assert_eq!(e.status, Status::Stopped);
        assert_eq!(e.status_reason, "tasks failed to start");
        assert_eq!(e.stopped_at, Some(20));
    }

    #[test]
    fn deletion_stops_and_history_is_bounded() {
        let mut rec = service(false);
        for r in 1..=(MAX_SERVICE_DEPLOYMENTS as u32 + 5) {
            promote(&mut rec, new_deployment("web", r, i64::from(r)));
            record(&mut rec, i64::from(r));
        }
        assert_eq!(rec.service_deployments.len(), MAX_SERVICE_DEPLOYMENTS);
        rec.status = ServiceStatus::Draining;
        record(&mut rec, 100);
        assert_eq!(rec.service_deployments[0].status, Status::Stopped);
        assert_eq!(rec.service_deployments[0].status_reason, SERVICE_DELETED);
    }
}
