//! Service deployments, as `aws ecs list-service-deployments` and
//! `aws ecs describe-service-deployments` print them, and the tables of
//! `service deployments` and `service describe-deployments`.

use berth_proto::arn;
use berth_proto::v1 as pb;
use serde::Serialize;

use super::{rfc3339, table_time, FailureView};
use crate::output::{blocks, or_dash, Table};

/// ECS's ServiceDeploymentBrief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeploymentBriefView {
    pub service_deployment_arn: String,
    pub service_arn: String,
    pub cluster_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub target_service_revision_arn: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status_reason: String,
    /// For tables.
    #[serde(skip)]
    pub created: String,
    #[serde(skip)]
    pub finished: String,
}

impl ServiceDeploymentBriefView {
    pub fn new(b: pb::ServiceDeploymentBrief) -> Self {
        Self {
            created: table_time(b.created_at.as_ref()),
            finished: table_time(b.finished_at.as_ref()),
            started_at: rfc3339(b.started_at.as_ref()),
            created_at: rfc3339(b.created_at.as_ref()),
            finished_at: rfc3339(b.finished_at.as_ref()),
            service_deployment_arn: b.service_deployment_arn,
            service_arn: b.service_arn,
            cluster_arn: b.cluster_arn,
            target_service_revision_arn: b.target_service_revision_arn,
            status: b.status,
            status_reason: b.status_reason,
        }
    }
}

/// What ListServiceDeployments answered (every page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeploymentsView {
    pub service_deployments: Vec<ServiceDeploymentBriefView>,
}

/// The last segment of an ARN (a service deployment's id).
fn id_of(arn: &str) -> &str {
    arn::short_id(arn)
}

/// `service deployments`: newest first.
pub fn list_table(v: &ServiceDeploymentsView) -> String {
    let mut t = Table::new(&["ID", "STATUS", "CREATED", "FINISHED", "REASON"]);
    for d in &v.service_deployments {
        t.row([
            id_of(&d.service_deployment_arn).to_owned(),
            d.status.clone(),
            d.created.clone(),
            d.finished.clone(),
            or_dash(&d.status_reason),
        ]);
    }
    t.render()
}

/// ECS's ServiceRevisionSummary (with the task definition Berth adds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRevisionSummaryView {
    pub arn: String,
    pub requested_task_count: i32,
    pub running_task_count: i32,
    pub pending_task_count: i32,
    pub task_definition: String,
}

impl ServiceRevisionSummaryView {
    fn new(r: pb::ServiceRevisionSummary) -> Self {
        Self {
            arn: r.arn,
            requested_task_count: r.requested_task_count,
            running_task_count: r.running_task_count,
            pending_task_count: r.pending_task_count,
            task_definition: r.task_definition,
        }
    }

    fn taskdef(&self) -> &str {
        arn::resource_part(&self.task_definition)
            .strip_prefix("task-definition/")
            .unwrap_or(&self.task_definition)
    }
}

/// ECS's Rollback of a service deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackView {
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub service_revision_arn: String,
}

/// ECS's ServiceDeploymentCircuitBreaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCircuitBreakerView {
    pub status: String,
    pub failure_count: i32,
    pub threshold: i32,
}

/// ECS's DeploymentConfiguration, as a service deployment carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfigurationView {
    pub maximum_percent: i32,
    pub minimum_healthy_percent: i32,
}

/// ECS's ServiceDeployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeploymentView {
    pub service_deployment_arn: String,
    pub service_arn: String,
    pub cluster_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    pub source_service_revisions: Vec<ServiceRevisionSummaryView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_service_revision: Option<ServiceRevisionSummaryView>,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfigurationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreakerView>,
    /// For tables.
    #[serde(skip)]
    pub created: String,
    #[serde(skip)]
    pub finished: String,
}

impl ServiceDeploymentView {
    pub fn new(d: pb::ServiceDeployment) -> Self {
        Self {
            created: table_time(d.created_at.as_ref()),
            finished: table_time(d.finished_at.as_ref()),
            created_at: rfc3339(d.created_at.as_ref()),
            started_at: rfc3339(d.started_at.as_ref()),
            finished_at: rfc3339(d.finished_at.as_ref()),
            stopped_at: rfc3339(d.stopped_at.as_ref()),
            updated_at: rfc3339(d.updated_at.as_ref()),
            service_deployment_arn: d.service_deployment_arn,
            service_arn: d.service_arn,
            cluster_arn: d.cluster_arn,
            source_service_revisions: d
                .source_service_revisions
                .into_iter()
                .map(ServiceRevisionSummaryView::new)
                .collect(),
            target_service_revision: d
                .target_service_revision
                .map(ServiceRevisionSummaryView::new),
            status: d.status,
            status_reason: d.status_reason,
            deployment_configuration: d.deployment_configuration.map(|c| {
                DeploymentConfigurationView {
                    maximum_percent: c.maximum_percent.unwrap_or_default(),
                    minimum_healthy_percent: c.minimum_healthy_percent.unwrap_or_default(),
                }
            }),
            rollback: d.rollback.map(|r| RollbackView {
                started_at: rfc3339(r.started_at.as_ref()),
                reason: r.reason,
                service_revision_arn: r.service_revision_arn,
            }),
            deployment_circuit_breaker: d.deployment_circuit_breaker.map(|b| {
                DeploymentCircuitBreakerView {
                    status: b.status,
                    failure_count: b.failure_count,
                    threshold: b.threshold,
                }
            }),
        }
    }
}

/// What DescribeServiceDeployments answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeServiceDeploymentsView {
    pub service_deployments: Vec<ServiceDeploymentView>,
    pub failures: Vec<FailureView>,
}

/// `service describe-deployments`.
pub fn describe_table(v: &DescribeServiceDeploymentsView) -> String {
    blocks(v.service_deployments.iter().map(|d| {
        let mut summary = Table::plain();
        summary
            .row(["Deployment:", id_of(&d.service_deployment_arn)])
            .row(["ARN:", d.service_deployment_arn.as_str()])
            .row(["Status:", d.status.as_str()])
            .row(["Reason:".to_owned(), or_dash(&d.status_reason)])
            .row(["Created:", d.created.as_str()])
            .row(["Finished:", d.finished.as_str()]);
        if let Some(b) = &d.deployment_circuit_breaker {
            summary.row([
                "Circuit breaker:".to_owned(),
                format!(
                    "{} ({} of {} failed tasks)",
                    b.status, b.failure_count, b.threshold
                ),
            ]);
        }
        if let Some(r) = &d.rollback {
            summary.row([
                "Rollback:".to_owned(),
                format!("to {}: {}", id_of(&r.service_revision_arn), r.reason),
            ]);
        }
        let mut out = summary.render();
        out.push('\n');
        let mut t = Table::new(&[
            "REVISION",
            "ROLE",
            "TASKDEF",
            "REQUESTED",
            "RUNNING",
            "PENDING",
        ]);
        let revisions = d
            .target_service_revision
            .iter()
            .map(|r| ("target", r))
            .chain(d.source_service_revisions.iter().map(|r| ("source", r)));
        for (role, r) in revisions {
            t.row([
                id_of(&r.arn).to_owned(),
                role.to_owned(),
                r.taskdef().to_owned(),
                r.requested_task_count.to_string(),
                r.running_task_count.to_string(),
                r.pending_task_count.to_string(),
            ]);
        }
        out.push_str(&t.render());
        out
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    const P: &str = "arn:berth:ecs:local:000000000000";

    fn brief(id: &str, status: &str, reason: &str, finished: bool) -> pb::ServiceDeploymentBrief {
        pb::ServiceDeploymentBrief {
            service_deployment_arn: format!("{P}:service-deployment/default/web/{id}"),
            service_arn: format!("{P}:service/default/web"),
            cluster_arn: format!("{P}:cluster/default"),
            started_at: t0(),
            created_at: t0(),
            finished_at: if finished { t1() } else { None },
            target_service_revision_arn: format!("{P}:service-revision/default/web/42"),
            status: status.into(),
            status_reason: reason.into(),
        }
    }

    #[test]
    fn list_table_and_json() {
        let v = ServiceDeploymentsView {
            service_deployments: vec![
                ServiceDeploymentBriefView::new(brief("bbb", "IN_PROGRESS", "", false)),
                ServiceDeploymentBriefView::new(brief(
                    "aaa",
                    "SUCCESSFUL",
                    "ECS deployment ecs-svc/1 completed.",
                    true,
                )),
            ],
        };
        expect![[r#"
            ID   STATUS       CREATED               FINISHED              REASON
            bbb  IN_PROGRESS  2024-05-01T12:00:00Z  -                     -
            aaa  SUCCESSFUL   2024-05-01T12:00:00Z  2024-05-02T08:30:05Z  ECS deployment ecs-svc/1 completed.
        "#]]
        .assert_eq(&list_table(&v));
        expect![[r#"
            {
              "serviceDeployments": [
                {
                  "serviceDeploymentArn": "arn:berth:ecs:local:000000000000:service-deployment/default/web/bbb",
                  "serviceArn": "arn:berth:ecs:local:000000000000:service/default/web",
                  "clusterArn": "arn:berth:ecs:local:000000000000:cluster/default",
                  "startedAt": "2024-05-01T12:00:00.25Z",
                  "createdAt": "2024-05-01T12:00:00.25Z",
                  "targetServiceRevisionArn": "arn:berth:ecs:local:000000000000:service-revision/default/web/42",
                  "status": "IN_PROGRESS"
                },
                {
                  "serviceDeploymentArn": "arn:berth:ecs:local:000000000000:service-deployment/default/web/aaa",
                  "serviceArn": "arn:berth:ecs:local:000000000000:service/default/web",
                  "clusterArn": "arn:berth:ecs:local:000000000000:cluster/default",
                  "startedAt": "2024-05-01T12:00:00.25Z",
                  "createdAt": "2024-05-01T12:00:00.25Z",
                  "finishedAt": "2024-05-02T08:30:05Z",
                  "targetServiceRevisionArn": "arn:berth:ecs:local:000000000000:service-revision/default/web/42",
                  "status": "SUCCESSFUL",
                  "statusReason": "ECS deployment ecs-svc/1 completed."
                }
              ]
            }
        "#]]
        .assert_eq(&crate::output::json(&v));
    }

    fn revision(id: &str, td: &str, requested: i32, running: i32) -> pb::ServiceRevisionSummary {
        pb::ServiceRevisionSummary {
            arn: format!("{P}:service-revision/default/web/{id}"),
            requested_task_count: requested,
            running_task_count: running,
            pending_task_count: 0,
            task_definition: format!("{P}:task-definition/{td}"),
        }
    }

    #[test]
    fn describe_table_shows_revisions_breaker_and_rollback() {
        let v = DescribeServiceDeploymentsView {
            service_deployments: vec![ServiceDeploymentView::new(pb::ServiceDeployment {
                service_deployment_arn: format!("{P}:service-deployment/default/web/ccc"),
                service_arn: format!("{P}:service/default/web"),
                cluster_arn: format!("{P}:cluster/default"),
                created_at: t0(),
                started_at: t0(),
                finished_at: t1(),
                updated_at: t1(),
                source_service_revisions: vec![revision("2", "web:2", 2, 2)],
                target_service_revision: Some(revision("3", "bad:1", 0, 0)),
                status: "ROLLBACK_SUCCESSFUL".into(),
                status_reason: "Rolled back to ecs-svc/2".into(),
                deployment_configuration: Some(pb::DeploymentConfiguration {
                    minimum_healthy_percent: Some(100),
                    maximum_percent: Some(200),
                    deployment_circuit_breaker: None,
                }),
                rollback: Some(pb::ServiceDeploymentRollback {
                    reason: "tasks failed to start".into(),
                    started_at: t1(),
                    service_revision_arn: format!("{P}:service-revision/default/web/2"),
                }),
                deployment_circuit_breaker: Some(pb::ServiceDeploymentCircuitBreaker {
                    status: "TRIGGERED".into(),
                    failure_count: 10,
                    threshold: 10,
                }),
                ..Default::default()
            })],
            failures: vec![],
        };
        expect![[r#"
            Deployment:       ccc
            ARN:              arn:berth:ecs:local:000000000000:service-deployment/default/web/ccc
            Status:           ROLLBACK_SUCCESSFUL
            Reason:           Rolled back to ecs-svc/2
            Created:          2024-05-01T12:00:00Z
            Finished:         2024-05-02T08:30:05Z
            Circuit breaker:  TRIGGERED (10 of 10 failed tasks)
            Rollback:         to 2: tasks failed to start

            REVISION  ROLE    TASKDEF  REQUESTED  RUNNING  PENDING
            3         target  bad:1    0          0        0
            2         source  web:2    2          2        0
        "#]]
        .assert_eq(&describe_table(&v));
    }
}
