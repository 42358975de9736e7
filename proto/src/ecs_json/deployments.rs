//! ECS's service deployments (ListServiceDeployments' briefs,
//! DescribeServiceDeployments' ServiceDeployment): serde shapes in ECS's
//! member order, built from the `berth.v1` messages.

use serde::Serialize;

use super::epoch;
use super::shapes::{CircuitBreaker, DeploymentConfiguration};
use crate::v1 as pb;

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// ECS's ServiceDeploymentBrief.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Brief {
    pub service_deployment_arn: String,
    pub service_arn: String,
    pub cluster_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_service_revision_arn: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

impl From<&pb::ServiceDeploymentBrief> for Brief {
    fn from(b: &pb::ServiceDeploymentBrief) -> Self {
        Self {
            service_deployment_arn: b.service_deployment_arn.clone(),
            service_arn: b.service_arn.clone(),
            cluster_arn: b.cluster_arn.clone(),
            started_at: epoch(b.started_at.as_ref()),
            created_at: epoch(b.created_at.as_ref()),
            finished_at: epoch(b.finished_at.as_ref()),
            target_service_revision_arn: non_empty(&b.target_service_revision_arn),
            status: b.status.clone(),
            status_reason: non_empty(&b.status_reason),
        }
    }
}

/// ECS's ServiceRevisionSummary.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSummary {
    pub arn: String,
    pub requested_task_count: i32,
    pub running_task_count: i32,
    pub pending_task_count: i32,
}

impl From<&pb::ServiceRevisionSummary> for RevisionSummary {
    fn from(r: &pb::ServiceRevisionSummary) -> Self {
        Self {
            arn: r.arn.clone(),
            requested_task_count: r.requested_task_count,
            running_task_count: r.running_task_count,
            pending_task_count: r.pending_task_count,
        }
    }
}

/// ECS's Rollback of a service deployment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollback {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_revision_arn: Option<String>,
}

/// ECS's ServiceDeploymentCircuitBreaker.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCircuitBreaker {
    pub status: String,
    pub failure_count: i32,
    pub threshold: i32,
}

/// ECS's ServiceDeployment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub service_deployment_arn: String,
    pub service_arn: String,
    pub cluster_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<f64>,
    pub source_service_revisions: Vec<RevisionSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_service_revision: Option<RevisionSummary>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_circuit_breaker: Option<DeploymentCircuitBreaker>,
}

impl From<&pb::ServiceDeployment> for Deployment {
    fn from(d: &pb::ServiceDeployment) -> Self {
        Self {
            service_deployment_arn: d.service_deployment_arn.clone(),
            service_arn: d.service_arn.clone(),
            cluster_arn: d.cluster_arn.clone(),
            created_at: epoch(d.created_at.as_ref()),
            started_at: epoch(d.started_at.as_ref()),
            finished_at: epoch(d.finished_at.as_ref()),
            stopped_at: epoch(d.stopped_at.as_ref()),
            updated_at: epoch(d.updated_at.as_ref()),
            source_service_revisions: d
                .source_service_revisions
                .iter()
                .map(RevisionSummary::from)
                .collect(),
            target_service_revision: d
                .target_service_revision
                .as_ref()
                .map(RevisionSummary::from),
            status: d.status.clone(),
            status_reason: non_empty(&d.status_reason),
            deployment_configuration: d.deployment_configuration.map(|cfg| {
                let cb = cfg.deployment_circuit_breaker.unwrap_or_default();
                DeploymentConfiguration {
                    deployment_circuit_breaker: CircuitBreaker {
                        enable: cb.enable,
                        rollback: cb.rollback,
                    },
                    maximum_percent: cfg.maximum_percent.unwrap_or(200),
                    minimum_healthy_percent: cfg.minimum_healthy_percent.unwrap_or(100),
                }
            }),
            rollback: d.rollback.as_ref().map(|r| Rollback {
                reason: non_empty(&r.reason),
                started_at: epoch(r.started_at.as_ref()),
                service_revision_arn: non_empty(&r.service_revision_arn),
            }),
            deployment_circuit_breaker: d.deployment_circuit_breaker.as_ref().map(|c| {
                DeploymentCircuitBreaker {
                    status: c.status.clone(),
                    failure_count: c.failure_count,
                    threshold: c.threshold,
                }
            }),
        }
    }
}
