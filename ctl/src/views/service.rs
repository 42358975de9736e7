//! Services, as `aws ecs describe-services` prints them, their events and
//! the deployment progress `service create|update --wait` shows.

use std::ops::Deref;

use berth_proto::arn;
use berth_proto::ecs_json;
use berth_proto::v1 as pb;
use serde::{Serialize, Serializer};

use super::{serialize_cli, table_time, FailureView};
use crate::output::{blocks, Table};

/// ECS's Service: the message, printed as `berth_proto::ecs_json::service`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView(pub pb::Service);

impl Serialize for ServiceView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cli(ecs_json::service(&self.0), s)
    }
}

impl Deref for ServiceView {
    type Target = pb::Service;
    fn deref(&self) -> &pb::Service {
        &self.0
    }
}

impl ServiceView {
    pub fn new(s: pb::Service) -> Self {
        Self(s)
    }

    /// `family:revision` of the service's task definition.
    pub fn taskdef(&self) -> &str {
        taskdef_of(&self.task_definition)
    }

    /// `(minimum healthy %, maximum %, circuit breaker on, rollback)`, with
    /// ECS's defaults.
    fn deployment_settings(&self) -> (i32, i32, bool, bool) {
        let cfg = self.deployment_configuration.unwrap_or_default();
        let cb = cfg.deployment_circuit_breaker.unwrap_or_default();
        (
            cfg.minimum_healthy_percent.unwrap_or(100),
            cfg.maximum_percent.unwrap_or(200),
            cb.enable,
            cb.rollback,
        )
    }
}

fn taskdef_of(arn_or_ref: &str) -> &str {
    arn::resource_part(arn_or_ref)
        .strip_prefix("task-definition/")
        .unwrap_or(arn_or_ref)
}

/// What DescribeServices answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
pub fn events_table(events: &[pb::ServiceEvent], limit: usize) -> String {
    let mut t = Table::new(&["TIME", "MESSAGE"]);
    for e in events.iter().take(limit) {
        t.row([table_time(e.created_at.as_ref()), e.message.clone()]);
    }
    t.render()
}

/// `name.namespace (SRV _name._tcp.namespace[, container:port])`.
fn dns_name(d: &pb::ServiceDiscovery) -> String {
    let mut s = format!(
        "{name}.{ns} (SRV _{name}._tcp.{ns}",
        name = d.name,
        ns = d.namespace
    );
    if !d.container_name.is_empty() {
        s.push_str(&format!(" -> {}:{}", d.container_name, d.container_port));
    }
    s.push(')');
    s
}

/// `service describe`.
pub fn describe_table(v: &ServicesView) -> String {
    blocks(v.services.iter().map(|s| {
        let mut summary = Table::plain();
        let (minimum_healthy, maximum, breaker, rollback) = s.deployment_settings();
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
                    minimum_healthy,
                    maximum,
                    if breaker { "on" } else { "off" },
                    if rollback { " (rollback)" } else { "" }
                ),
            ]);
        for (i, lb) in s.load_balancers.iter().enumerate() {
            summary.row([
                if i == 0 { "Load balancers:" } else { "" }.to_owned(),
                format!(
                    "{} -> {}:{}",
                    arn::target_group_name(&lb.target_group_arn),
                    lb.container_name,
                    lb.container_port
                ),
            ]);
        }
        if let Some(d) = s
            .service_discovery
            .as_ref()
            .filter(|d| !d.namespace.is_empty())
        {
            summary.row(["DNS name:".to_owned(), dns_name(d)]);
        }
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
    fn describe_shows_load_balancers_and_the_dns_name() {
        let mut s = sample();
        s.0.deployments.truncate(1);
        s.0.events.clear();
        s.0.load_balancers = vec![
            pb::LoadBalancer {
                target_group_arn: "arn:berth:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef".into(),
                container_name: "app".into(),
                container_port: 80,
            },
            pb::LoadBalancer {
                target_group_arn: "admin".into(),
                container_name: "app".into(),
                container_port: 9090,
            },
        ];
        s.0.service_discovery = Some(pb::ServiceDiscovery {
            namespace: "prod.berth.internal".into(),
            name: "web".into(),
            container_name: "app".into(),
            container_port: 80,
        });
        let v = ServicesView {
            services: vec![s],
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
            Load balancers:   web -> app:80
                              admin -> app:9090
            DNS name:         web.prod.berth.internal (SRV _web._tcp.prod.berth.internal -> app:80)

            DEPLOYMENT  STATUS   TASKDEF  DESIRED  RUNNING  PENDING  FAILED  ROLLOUT
            ecs-svc/2   PRIMARY  web:2    4        1        1        0       IN_PROGRESS
        "#]]
        .assert_eq(&describe_table(&v));
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
