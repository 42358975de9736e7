//! Traffic records: target groups (ELBv2's shapes), a service's
//! `loadBalancers` and DNS name, and the targets a service task carries.
//!
//! A task's targets are fixed when it is placed: each of its deployment's
//! load balancers names a container port, whose host port the placement
//! reserved. Their health is what the task's agent last reported for them
//! (the agents probe; see `docs/traffic.md`); whether a target is
//! `draining` or `unavailable` is derived when it is read
//! ([`crate::traffic`]), from the task and its instance.

use serde::{Deserialize, Serialize};

use super::UnixMillis;

/// ELBv2's default `deregistration_delay.timeout_seconds`.
pub const DEFAULT_DEREGISTRATION_DELAY_SECS: u32 = 300;

/// A target group's (and its health check's) protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TargetProtocol {
    Http,
    Tcp,
}

impl TargetProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetProtocol::Http => "HTTP",
            TargetProtocol::Tcp => "TCP",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HTTP" => Some(Self::Http),
            "TCP" => Some(Self::Tcp),
            _ => None,
        }
    }
}

/// Which port a health check probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckPort {
    /// The target's own port (ELB's `traffic-port`).
    TrafficPort,
    Fixed(u16),
}

impl CheckPort {
    /// As ELB prints it: `traffic-port` or the number.
    pub fn render(self) -> String {
        match self {
            CheckPort::TrafficPort => "traffic-port".to_owned(),
            CheckPort::Fixed(p) => p.to_string(),
        }
    }
}

/// A target group's health check, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckRecord {
    pub protocol: TargetProtocol,
    /// HTTP only ("/" by default).
    pub path: String,
    pub port: CheckPort,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// HTTP codes, as ELB's matcher ("200", "200,202", "200-299").
    pub matcher: String,
}

/// An ELBv2 target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroupRecord {
    pub name: String,
    /// 16 hex digits: the ARN's last segment.
    pub id: String,
    pub protocol: TargetProtocol,
    pub port: u16,
    pub health_check: HealthCheckRecord,
    pub deregistration_delay_secs: u32,
    /// 0: off.
    pub slow_start_secs: u32,
    pub created_at: UnixMillis,
}

/// ECS's `loadBalancers` entry of a service, the target group resolved to
/// its ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoadBalancerRecord {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
}

/// A service's DNS name (`docs/traffic.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryRecord {
    /// Lowercase, without the trailing dot.
    pub namespace: String,
    /// Lowercase DNS label: the service's name by default.
    pub name: String,
    /// The container port SRV records carry: `None` for the first
    /// container port mapping with a host port.
    pub container: Option<(String, u16)>,
}

impl DiscoveryRecord {
    /// `<name>.<namespace>`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// What the task's agent last reported of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeState {
    /// No threshold reached yet (ELB's `initial`).
    Initial,
    Healthy,
    Unhealthy,
}

/// One target of a task: a load balancer's container port and the host
/// port reserved for it, with its last reported health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTarget {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
    pub state: ProbeState,
    /// ELB's reason code of an unhealthy target.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// When `state` last changed (registration first).
    pub since: UnixMillis,
}

impl TaskTarget {
    /// Whether it is (target group, container, container port).
    pub fn is(&self, group_arn: &str, container: &str, port: u16) -> bool {
        self.target_group_arn == group_arn
            && self.container_name == container
            && self.container_port == port
    }
}

/// The targets of a task placed with `reservation`'s ports for a
/// deployment with `lbs`: one per load balancer whose container port got a
/// TCP host port (the service's validation makes that every one).
pub fn targets_for(
    lbs: &[LoadBalancerRecord],
    reservation: &super::Reservation,
    now: UnixMillis,
) -> Vec<TaskTarget> {
    lbs.iter()
        .filter_map(|lb| {
            let p = reservation.ports.iter().find(|p| {
                p.container_name == lb.container_name
                    && p.container_port == lb.container_port
                    && p.protocol == super::Protocol::Tcp
            })?;
            Some(TaskTarget {
                target_group_arn: lb.target_group_arn.clone(),
                container_name: lb.container_name.clone(),
                container_port: lb.container_port,
                host_port: p.host_port,
                state: ProbeState::Initial,
                reason: String::new(),
                description: String::new(),
                since: now,
            })
        })
        .collect()
}
