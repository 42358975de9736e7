//! Services, as `aws ecs describe-services` prints them, their events and
//! the deployment progress `service create|update --wait` shows.

use berth_proto::arn;
use berth_proto::v1 as pb;
use serde::Serialize;

use super::tag::{tag_views, TagView};
use super::{rfc3339, table_time, FailureView};
use crate::output::{blocks, Table};

/// ECS's DeploymentCircuitBreaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerView {
    pub enable: bool,
    pub rollback: bool,
}

/// ECS's DeploymentConfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfigurationView {
    pub deployment_circuit_breaker: CircuitBreakerView,
    pub maximum_percent: i32,
    pub minimum_healthy_percent: i32,
}

/// ECS's Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    pub id: String,
    pub status: String,
    pub task_definition: String,
    pub desired_count: i32,
    pub pending_count: i32,
    pub running_count: i32,
    pub failed_tasks: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    pub rollout_state: String,
    pub rollout_state_reason: String,
}

/// ECS's ServiceEvent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    pub message: String,
    /// For tables.
    #[serde(skip)]
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementConstraintView {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub expression: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStrategyView {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// ECS's Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub service_arn: String,
    pub service_name: String,
    pub cluster_arn: String,
    pub status: String,
    pub desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
    pub launch_type: String,
    pub task_definition: String,
    pub deployment_configuration: DeploymentConfigurationView,
    pub deployments: Vec<DeploymentView>,
    pub events: Vec<EventView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    pub placement_constraints: Vec<PlacementConstraintView>,
    pub placement_strategy: Vec<PlacementStrategyView>,
    pub health_check_grace_period_seconds: i32,
    pub scheduling_strategy: String,
    pub tags: Vec<TagView>,
}

impl ServiceView {
    pub fn new(s: pb::Service) -> Self {
        let cfg = s.deployment_configuration.unwrap_or_default();
        let cb = cfg.deployment_circuit_breaker.unwrap_or_default();
        Self {
            service_arn: s.service_arn,
            service_name: s.service_name,
            cluster_arn: s.cluster_arn,
            status: s.status,
            desired_count: s.desired_count,
            running_count: s.running_count,
            pending_count: s.pending_count,
            launch_type: "EC2".to_owned(),
            task_definition: s.task_definition,
            deployment_configuration: DeploymentConfigurationView {
                deployment_circuit_breaker: CircuitBreakerView {
                    enable: cb.enable,
                    rollback: cb.rollback,
                },
                maximum_percent: cfg.maximum_percent.unwrap_or_default(),
                minimum_healthy_percent: cfg.minimum_healthy_percent.unwrap_or_default(),
            },
            deployments: s
                .deployments
                .into_iter()
                .map(|d| DeploymentView {
                    id: d.id,
                    status: d.status,
                    task_definition: d.task_definition,
                    desired_count: d.desired_count,
                    pending_count: d.pending_count,
                    running_count: d.running_count,
                    failed_tasks: d.failed_tasks,
                    created_at: rfc3339(d.created_at.as_ref()),
                    updated_at: rfc3339(d.updated_at.as_ref()),
                    rollout_state: d.rollout_state,
                    rollout_state_reason: d.rollout_state_reason,
                })
                .collect(),
            events: s
                .events
                .into_iter()
                .map(|e| EventView {
                    id: e.id,
                    at: table_time(e.created_at.as_ref()),
                    created_at: rfc3339(e.created_at.as_ref()),
                    message: e.message,
                })
                .collect(),
            created_at: rfc3339(s.created_at.as_ref()),
            placement_constraints: s
                .placement_constraints
                .into_iter()
                .map(|c| PlacementConstraintView {
                    kind: c.r#type,
                    expression: c.expression,
                })
                .collect(),
            placement_strategy: s
                .placement_strategy
                .into_iter()
                .map(|p| PlacementStrategyView {
                    kind: p.r#type,
                    field: p.field,
                })
                .collect(),
            health_check_grace_period_seconds: s.health_check_grace_period_seconds,
            scheduling_strategy: s.scheduling_strategy,
            tags: tag_views(s.tags),
        }
    }

    /// `family:revision` of the service's task definition.
    pub fn taskdef(&self) -> &str {
        taskdef_of(&self.task_definition)
    }
}

fn taskdef_of(arn_or_ref: &str) -> &str {
    arn::resource_part(arn_or_ref)
        .strip_prefix("task-definition/")
        .unwrap_or(arn_or_ref)
}

/// What DescribeServices answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicesView {
    pub services: Vec<ServiceView>,
    pub failures: Vec<FailureView>,
}

/// `service ls`.
pub fn list_table(v: &ServicesView) -> String {
    let mut t = Table::new(&[
        "SERVICE", "STATUS", "TASKDEF", "DESIRED", "RUNNING", "PENDING", "STRATEGY", "ROLLOUT",
    ]);
    for s in &v.services {
        let rollout = s
            .deployments
            .first()
            .map(|d| d.rollout_state.clone())
            .unwrap_or_else(|| "-".to_owned());
        t.row([
            s.service_name.clone(),
            s.status.clone(),
            s.taskdef().to_owned(),
            s.desired_count.to_string(),
            s.running_count.to_string(),
            s.pending_count.to_string(),
            s.scheduling_strategy.clone(),
            rollout,
        ]);
    }
    t.render()
}

/// Deployments as a table (describe, and each step of `--wait`).
pub fn deployments_table(s: &ServiceView) -> String {
    let mut t = Table::new(&[
        "DEPLOYMENT",
        "STATUS",
        "TASKDEF",
        "DESIRED",
        "RUNNING",
        "PENDING",
        "FAILED",
        "ROLLOUT",
    ]);
    for d in &s.deployments {
        t.row([
            d.id.clone(),
            d.status.clone(),
            taskdef_of(&d.task_definition).to_owned(),
            d.desired_count.to_string(),
            d.running_count.to_string(),
            d.pending_count.to_string(),
            d.failed_tasks.to_string(),
            d.rollout_state.clone(),
        ]);
    }
    t.render()
}

/// Events, newest first, at most `limit`.
pub fn events_table(events: &[EventView], limit: usize) -> String {
    let mut t = Table::new(&["TIME", "MESSAGE"]);
    for e in events.iter().take(limit) {
        t.row([e.at.clone(), e.message.clone()]);
    }
    t.render()
}

/// `service describe`.
pub fn describe_table(v: &ServicesView) -> String {
    blocks(v.services.iter().map(|s| {
        let mut summary = Table::plain();
        let cfg = &s.deployment_configuration;
        summary
            .row(["Service:", s.service_name.as_str()])
            .row(["ARN:", s.service_arn.as_str()])
            .row(["Status:", s.status.as_str()])
            .row(["Task definition:", s.taskdef()])
            .row(["Scheduling:", s.scheduling_strategy.as_str()])
            .row([
                "Tasks:".to_owned(),
                format!(
                    "{} desired, {} running, {} pending",
                    s.desired_count, s.running_count, s.pending_count
                ),
            ])
            .row([
                "Deployment:".to_owned(),
                format!(
                    "minimum healthy {}%, maximum {}%, circuit breaker {}{}",
                    cfg.minimum_healthy_percent,
                    cfg.maximum_percent,
                    if cfg.deployment_circuit_breaker.enable {
                        "on"
                    } else {
                        "off"
                    },
                    if cfg.deployment_circuit_breaker.rollback {
                        " (rollback)"
                    } else {
                        ""
                    }
                ),
            ]);
        let mut out = summary.render();
        out.push('\n');
        out.push_str(&deployments_table(s));
        if let Some(reason) = s
            .deployments
            .iter()
            .find(|d| !d.rollout_state_reason.is_empty())
            .map(|d| format!("{}: {}", d.id, d.rollout_state_reason))
        {
            out.push_str(&format!("\n{reason}\n"));
        }
        if !s.events.is_empty() {
            out.push('\n');
            out.push_str(&events_table(&s.events, 10));
        }
        out
    }))
}

/// One line of `--wait` progress: each deployment's running/desired, with
/// a bar when `bar` (a terminal).
pub fn progress_line(s: &ServiceView, bar: bool) -> String {
    s.deployments
        .iter()
        .filter(|d| d.status != "INACTIVE")
        .map(|d| {
            let mut part = format!(
                "{} {} {}/{} running",
                d.status, d.id, d.running_count, d.desired_count
            );
            if d.pending_count > 0 {
                part.push_str(&format!(" ({} pending)", d.pending_count));
            }
            if bar && d.status == "PRIMARY" && d.desired_count > 0 {
                const WIDTH: i32 = 20;
                let filled = (d.running_count.min(d.desired_count) * WIDTH) / d.desired_count;
                part.push_str(&format!(
                    " [{}{}]",
                    "#".repeat(filled as usize),
                    "-".repeat((WIDTH - filled) as usize)
                ));
            }
            part.push_str(&format!(" {}", d.rollout_state));
            part
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn sample() -> ServiceView {
        ServiceView::new(pb::Service {
            service_arn: "arn:aws:ecs:local:000000000000:service/default/web".into(),
            service_name: "web".into(),
            cluster_arn: "arn:aws:ecs:local:000000000000:cluster/default".into(),
            status: "ACTIVE".into(),
            task_definition: "arn:aws:ecs:local:000000000000:task-definition/web:2".into(),
            desired_count: 4,
            running_count: 5,
            pending_count: 1,
            scheduling_strategy: "REPLICA".into(),
            deployment_configuration: Some(pb::DeploymentConfiguration {
                minimum_healthy_percent: Some(100),
                maximum_percent: Some(150),
                deployment_circuit_breaker: Some(pb::DeploymentCircuitBreaker {
                    enable: true,
                    rollback: true,
                }),
            }),
            deployments: vec![
                pb::Deployment {
                    id: "ecs-svc/2".into(),
                    status: "PRIMARY".into(),
                    task_definition: "arn:aws:ecs:local:000000000000:task-definition/web:2".into(),
                    desired_count: 4,
                    running_count: 1,
                    pending_count: 1,
                    rollout_state: "IN_PROGRESS".into(),
                    ..Default::default()
                },
                pb::Deployment {
                    id: "ecs-svc/1".into(),
                    status: "ACTIVE".into(),
                    task_definition: "arn:aws:ecs:local:000000000000:task-definition/web:1".into(),
                    running_count: 4,
                    rollout_state: "COMPLETED".into(),
                    ..Default::default()
                },
            ],
            events: vec![pb::ServiceEvent {
                id: "e1".into(),
                created_at: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                message: "(service web) has started 2 tasks: (task a) (task b).".into(),
            }],
            ..Default::default()
        })
    }

    #[test]
    fn progress_shows_each_deployment() {
        expect![[r#"PRIMARY ecs-svc/2 1/4 running (1 pending) [#####---------------] IN_PROGRESS; ACTIVE ecs-svc/1 4/0 running COMPLETED"#]]
            .assert_eq(&progress_line(&sample(), true));
    }

    #[test]
    fn describe_table_shows_deployments_and_events() {
        let v = ServicesView {
            services: vec![sample()],
            failures: vec![],
        };
        expect![[r#"
            Service:          web
            ARN:              arn:aws:ecs:local:000000000000:service/default/web
            Status:           ACTIVE
            Task definition:  web:2
            Scheduling:       REPLICA
            Tasks:            4 desired, 5 running, 1 pending
            Deployment:       minimum healthy 100%, maximum 150%, circuit breaker on (rollback)

            DEPLOYMENT  STATUS   TASKDEF  DESIRED  RUNNING  PENDING  FAILED  ROLLOUT
            ecs-svc/2   PRIMARY  web:2    4        1        1        0       IN_PROGRESS
            ecs-svc/1   ACTIVE   web:1    0        4        0        0       COMPLETED

            TIME                  MESSAGE
            2023-11-14T22:13:20Z  (service web) has started 2 tasks: (task a) (task b).
        "#]]
        .assert_eq(&describe_table(&v));
    }
}
