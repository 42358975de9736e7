//! Target groups and their targets' health, in ELBv2's JSON shapes: what
//! `aws elbv2 describe-target-groups` and `describe-target-health` print
//! (`TargetGroups[]`, `TargetHealthDescriptions[]`, PascalCase members).
//!
//! Berth's own fields are additive and kept apart, under a `Berth` member
//! of each target group and each target health description, so that a
//! script written for ELB's output reads Berth's unchanged. ELB's members
//! Berth has no value for (`VpcId`, `LoadBalancerArns` of a load balancer
//! resource) are left out, not invented; `LoadBalancerArns` is `[]`
//! because Berth's load balancers follow the targets rather than owning
//! the group.

use berth_proto::arn;
use berth_proto::v1 as pb;
use serde::Serialize;

use super::{rfc3339, table_time};
use crate::output::{or_dash, Table};

/// ELB's `Matcher`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatcherView {
    #[serde(rename = "HttpCode")]
    pub http_code: String,
}

/// Berth's fields of a target group, beyond ELB's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroupExtra {
    /// ELB's attribute `deregistration_delay.timeout_seconds`.
    pub deregistration_delay_seconds: u32,
    /// ELB's attribute `slow_start.duration_seconds` (0: off).
    pub slow_start_seconds: u32,
    /// The services that register targets in the group.
    pub service_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_time: Option<String>,
}

/// ELB's TargetGroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroupView {
    pub target_group_arn: String,
    pub target_group_name: String,
    pub protocol: String,
    pub port: u32,
    pub health_check_protocol: String,
    pub health_check_port: String,
    pub health_check_enabled: bool,
    pub health_check_interval_seconds: u32,
    pub health_check_timeout_seconds: u32,
    pub healthy_threshold_count: u32,
    pub unhealthy_threshold_count: u32,
    /// HTTP checks only, as ELB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
    /// HTTP checks only, as ELB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<MatcherView>,
    pub load_balancer_arns: Vec<String>,
    pub target_type: String,
    pub ip_address_type: &'static str,
    pub berth: TargetGroupExtra,
}

fn some_if(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl From<pb::TargetGroup> for TargetGroupView {
    fn from(g: pb::TargetGroup) -> Self {
        let hc = g.health_check.unwrap_or_default();
        Self {
            target_group_arn: g.target_group_arn,
            target_group_name: g.target_group_name,
            protocol: g.protocol,
            port: g.port,
            health_check_protocol: hc.protocol,
            health_check_port: hc.port,
            health_check_enabled: true,
            health_check_interval_seconds: hc.interval_seconds,
            health_check_timeout_seconds: hc.timeout_seconds,
            healthy_threshold_count: hc.healthy_threshold,
            unhealthy_threshold_count: hc.unhealthy_threshold,
            health_check_path: some_if(&hc.path),
            matcher: some_if(&hc.matcher).map(|http_code| MatcherView { http_code }),
            load_balancer_arns: Vec::new(),
            target_type: if g.target_type.is_empty() {
                "instance".to_owned()
            } else {
                g.target_type
            },
            ip_address_type: "ipv4",
            berth: TargetGroupExtra {
                deregistration_delay_seconds: g.deregistration_delay_seconds,
                slow_start_seconds: g.slow_start_seconds,
                service_arns: g.service_arns,
                created_time: rfc3339(g.created_at.as_ref()),
            },
        }
    }
}

impl TargetGroupView {
    /// `HTTP /health on traffic-port every 30s` and the like.
    fn health_check(&self) -> String {
        let mut s = self.health_check_protocol.clone();
        if let Some(p) = &self.health_check_path {
            s.push(' ');
            s.push_str(p);
        }
        s.push_str(&format!(
            " on {} every {}s",
            self.health_check_port, self.health_check_interval_seconds
        ));
        s
    }
}

/// `{"TargetGroups": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroupsView {
    pub target_groups: Vec<TargetGroupView>,
}

impl From<Vec<pb::TargetGroup>> for TargetGroupsView {
    fn from(groups: Vec<pb::TargetGroup>) -> Self {
        Self {
            target_groups: groups.into_iter().map(Into::into).collect(),
        }
    }
}

/// `targetgroup ls`.
pub fn list_table(v: &TargetGroupsView) -> String {
    let mut t = Table::new(&["NAME", "PROTOCOL", "PORT", "HEALTH CHECK", "SERVICES"]);
    for g in &v.target_groups {
        t.row([
            g.target_group_name.clone(),
            g.protocol.clone(),
            g.port.to_string(),
            g.health_check(),
            g.berth.service_arns.len().to_string(),
        ]);
    }
    t.render()
}

/// `targetgroup create|describe|modify`: a key/value block per group.
pub fn describe_table(v: &TargetGroupsView) -> String {
    crate::output::blocks(v.target_groups.iter().map(|g| {
        let mut t = Table::plain();
        let services: Vec<&str> = g
            .berth
            .service_arns
            .iter()
            .map(|a| service_name(a))
            .collect();
        t.row(["Target group:", g.target_group_name.as_str()])
            .row(["ARN:", g.target_group_arn.as_str()])
            .row(["Protocol:".to_owned(), format!("{} {}", g.protocol, g.port)])
            .row(["Target type:", g.target_type.as_str()])
            .row(["Health check:".to_owned(), g.health_check()])
            .row([
                "Timeout:".to_owned(),
                format!("{}s", g.health_check_timeout_seconds),
            ])
            .row([
                "Thresholds:".to_owned(),
                format!(
                    "{} healthy, {} unhealthy",
                    g.healthy_threshold_count, g.unhealthy_threshold_count
                ),
            ])
            .row([
                "Matcher:".to_owned(),
                g.matcher
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |m| m.http_code.clone()),
            ])
            .row([
                "Deregistration delay:".to_owned(),
                format!("{}s", g.berth.deregistration_delay_seconds),
            ])
            .row([
                "Slow start:".to_owned(),
                match g.berth.slow_start_seconds {
                    0 => "off".to_owned(),
                    s => format!("{s}s"),
                },
            ])
            .row(["Services:".to_owned(), or_dash(&services.join(", "))]);
        t.render()
    }))
}

/// The service name of a service ARN (`…:service/<cluster>/<name>`).
fn service_name(service_arn: &str) -> &str {
    arn::short_id(service_arn)
}

/// ELB's Target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetView {
    pub id: String,
    pub port: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub availability_zone: String,
}

/// ELB's TargetHealth: `Reason` and `Description` are left out when
/// empty, as ELB leaves them out of a healthy target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetHealthView {
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Where a target comes from: Berth's fields beyond ELB's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetExtra {
    /// The address traffic goes to (the host's, for bridge and host tasks).
    pub address: String,
    pub task_arn: String,
    pub container_name: String,
    pub container_port: u32,
    pub service_arn: String,
    pub container_instance_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip)]
    pub since_table: String,
}

/// ELB's TargetHealthDescription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetHealthDescriptionView {
    pub target: TargetView,
    pub health_check_port: String,
    pub target_health: TargetHealthView,
    pub berth: TargetExtra,
}

impl From<pb::TargetHealthDescription> for TargetHealthDescriptionView {
    fn from(d: pb::TargetHealthDescription) -> Self {
        let t = d.target.unwrap_or_default();
        let h = d.target_health.unwrap_or_default();
        Self {
            target: TargetView {
                id: t.id,
                port: t.port,
                availability_zone: t.availability_zone,
            },
            health_check_port: d.health_check_port,
            target_health: TargetHealthView {
                state: h.state,
                reason: h.reason,
                description: h.description,
            },
            berth: TargetExtra {
                address: t.address,
                task_arn: d.task_arn,
                container_name: d.container_name,
                container_port: d.container_port,
                service_arn: d.service_arn,
                container_instance_arn: d.container_instance_arn,
                since: rfc3339(d.since.as_ref()),
                since_table: table_time(d.since.as_ref()),
            },
        }
    }
}

impl TargetHealthDescriptionView {
    /// `address:port`, or the instance id when the address is unknown.
    pub fn target(&self) -> String {
        let host = if self.berth.address.is_empty() {
            self.target.id.as_str()
        } else {
            self.berth.address.as_str()
        };
        format!("{host}:{}", self.target.port)
    }

    pub fn task_id(&self) -> &str {
        arn::short_id(&self.berth.task_arn)
    }

    pub fn container_port(&self) -> String {
        format!(
            "{}:{}",
            self.berth.container_name, self.berth.container_port
        )
    }
}

/// `{"TargetHealthDescriptions": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetHealthDescriptionsView {
    pub target_health_descriptions: Vec<TargetHealthDescriptionView>,
}

impl From<pb::DescribeTargetHealthResponse> for TargetHealthDescriptionsView {
    fn from(r: pb::DescribeTargetHealthResponse) -> Self {
        Self {
            target_health_descriptions: r
                .target_health_descriptions
                .into_iter()
                .map(Into::into)
                .collect(),
        }
    }
}

/// `targetgroup health`: one row per target.
pub fn health_table(v: &TargetHealthDescriptionsView) -> String {
    let mut t = Table::new(&[
        "TARGET",
        "INSTANCE",
        "TASK",
        "CONTAINER:PORT",
        "STATE",
        "REASON",
        "DESCRIPTION",
    ]);
    for d in &v.target_health_descriptions {
        t.row([
            d.target(),
            d.target.id.clone(),
            d.task_id().to_owned(),
            d.container_port(),
            d.target_health.state.clone(),
            or_dash(&d.target_health.reason),
            or_dash(&d.target_health.description),
        ]);
    }
    t.render()
}

/// `targetgroup rm`.
pub fn rm_sentence(name: &str) -> String {
    format!("target group {name} deleted\n")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::views::fixtures::{t0, t1};
    use expect_test::expect;

    const TG: &str =
        "arn:berth:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef";

    pub(crate) fn group() -> pb::TargetGroup {
        pb::TargetGroup {
            target_group_arn: TG.into(),
            target_group_name: "web".into(),
            protocol: "HTTP".into(),
            port: 80,
            health_check: Some(pb::HealthCheck {
                protocol: "HTTP".into(),
                path: "/health".into(),
                port: "traffic-port".into(),
                interval_seconds: 30,
                timeout_seconds: 5,
                healthy_threshold: 5,
                unhealthy_threshold: 2,
                matcher: "200-299".into(),
            }),
            deregistration_delay_seconds: 300,
            slow_start_seconds: 0,
            service_arns: vec!["arn:berth:ecs:local:000000000000:service/default/web".into()],
            created_at: t0(),
            target_type: "instance".into(),
        }
    }

    pub(crate) fn health() -> pb::DescribeTargetHealthResponse {
        let target = |task: &str, port: u32, state: &str, reason: &str, description: &str| {
            pb::TargetHealthDescription {
                target: Some(pb::Target {
                    id: "4f1c9a7e".into(),
                    port,
                    availability_zone: "zone-a".into(),
                    address: "10.0.0.7".into(),
                }),
                health_check_port: port.to_string(),
                target_health: Some(pb::TargetHealth {
                    state: state.into(),
                    reason: reason.into(),
                    description: description.into(),
                }),
                task_arn: format!("arn:berth:ecs:local:000000000000:task/default/{task}"),
                container_name: "app".into(),
                container_port: 80,
                service_arn: "arn:berth:ecs:local:000000000000:service/default/web".into(),
                container_instance_arn:
                    "arn:berth:ecs:local:000000000000:container-instance/default/4f1c9a7e".into(),
                since: t1(),
            }
        };
        pb::DescribeTargetHealthResponse {
            target_health_descriptions: vec![
                target("0a1b", 32768, "healthy", "", ""),
                target(
                    "9c8d",
                    32769,
                    "unhealthy",
                    "Target.ResponseCodeMismatch",
                    "Health checks failed with these codes: [503]",
                ),
            ],
        }
    }

    #[test]
    fn target_groups_print_as_elb_with_berth_apart() {
        let v = TargetGroupsView::from(vec![group()]);
        expect![[r#"
            {
              "TargetGroups": [
                {
                  "TargetGroupArn": "arn:berth:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef",
                  "TargetGroupName": "web",
                  "Protocol": "HTTP",
                  "Port": 80,
                  "HealthCheckProtocol": "HTTP",
                  "HealthCheckPort": "traffic-port",
                  "HealthCheckEnabled": true,
                  "HealthCheckIntervalSeconds": 30,
                  "HealthCheckTimeoutSeconds": 5,
                  "HealthyThresholdCount": 5,
                  "UnhealthyThresholdCount": 2,
                  "HealthCheckPath": "/health",
                  "Matcher": {
                    "HttpCode": "200-299"
                  },
                  "LoadBalancerArns": [],
                  "TargetType": "instance",
                  "IpAddressType": "ipv4",
                  "Berth": {
                    "DeregistrationDelaySeconds": 300,
                    "SlowStartSeconds": 0,
                    "ServiceArns": [
                      "arn:berth:ecs:local:000000000000:service/default/web"
                    ],
                    "CreatedTime": "2024-05-01T12:00:00.25Z"
                  }
                }
              ]
            }
        "#]]
        .assert_eq(&crate::output::json(&v));
        expect![[r#"
            NAME  PROTOCOL  PORT  HEALTH CHECK                            SERVICES
            web   HTTP      80    HTTP /health on traffic-port every 30s  1
        "#]]
        .assert_eq(&list_table(&v));
        expect![[r#"
            Target group:          web
            ARN:                   arn:berth:elasticloadbalancing:local:000000000000:targetgroup/web/0123456789abcdef
            Protocol:              HTTP 80
            Target type:           instance
            Health check:          HTTP /health on traffic-port every 30s
            Timeout:               5s
            Thresholds:            5 healthy, 2 unhealthy
            Matcher:               200-299
            Deregistration delay:  300s
            Slow start:            off
            Services:              web
        "#]]
        .assert_eq(&describe_table(&v));
    }

    #[test]
    fn tcp_groups_have_no_path_or_matcher() {
        let mut g = group();
        g.protocol = "TCP".into();
        g.health_check = Some(pb::HealthCheck {
            protocol: "TCP".into(),
            port: "8081".into(),
            interval_seconds: 10,
            timeout_seconds: 10,
            healthy_threshold: 3,
            unhealthy_threshold: 3,
            ..Default::default()
        });
        let v = TargetGroupView::from(g);
        let json = serde_json::to_value(&v).unwrap();
        assert!(json.get("HealthCheckPath").is_none(), "{json}");
        assert!(json.get("Matcher").is_none(), "{json}");
        assert_eq!(v.health_check(), "TCP on 8081 every 10s");
    }

    #[test]
    fn target_health_prints_as_elb_with_berth_apart() {
        let v = TargetHealthDescriptionsView::from(health());
        expect![[r#"
            {
              "TargetHealthDescriptions": [
                {
                  "Target": {
                    "Id": "4f1c9a7e",
                    "Port": 32768,
                    "AvailabilityZone": "zone-a"
                  },
                  "HealthCheckPort": "32768",
                  "TargetHealth": {
                    "State": "healthy"
                  },
                  "Berth": {
                    "Address": "10.0.0.7",
                    "TaskArn": "arn:berth:ecs:local:000000000000:task/default/0a1b",
                    "ContainerName": "app",
                    "ContainerPort": 80,
                    "ServiceArn": "arn:berth:ecs:local:000000000000:service/default/web",
                    "ContainerInstanceArn": "arn:berth:ecs:local:000000000000:container-instance/default/4f1c9a7e",
                    "Since": "2024-05-02T08:30:05Z"
                  }
                },
                {
                  "Target": {
                    "Id": "4f1c9a7e",
                    "Port": 32769,
                    "AvailabilityZone": "zone-a"
                  },
                  "HealthCheckPort": "32769",
                  "TargetHealth": {
                    "State": "unhealthy",
                    "Reason": "Target.ResponseCodeMismatch",
                    "Description": "Health checks failed with these codes: [503]"
                  },
                  "Berth": {
                    "Address": "10.0.0.7",
                    "TaskArn": "arn:berth:ecs:local:000000000000:task/default/9c8d",
                    "ContainerName": "app",
                    "ContainerPort": 80,
                    "ServiceArn": "arn:berth:ecs:local:000000000000:service/default/web",
                    "ContainerInstanceArn": "arn:berth:ecs:local:000000000000:container-instance/default/4f1c9a7e",
                    "Since": "2024-05-02T08:30:05Z"
                  }
                }
              ]
            }
        "#]]
        .assert_eq(&crate::output::json(&v));
        expect![[r#"
            TARGET          INSTANCE  TASK  CONTAINER:PORT  STATE      REASON                       DESCRIPTION
            10.0.0.7:32768  4f1c9a7e  0a1b  app:80          healthy    -                            -
            10.0.0.7:32769  4f1c9a7e  9c8d  app:80          unhealthy  Target.ResponseCodeMismatch  Health checks failed with these codes: [503]
        "#]]
        .assert_eq(&health_table(&v));
    }
}
