//! The task metadata endpoint v4's JSON, in ECS's field names (the
//! `/v4/<id>` container and `/v4/<id>/task` task responses of
//! amazon-ecs-agent's `v4/state`). Pure functions of a [`TaskEntry`], its
//! definition and the runtime's latest [`TaskReport`].
//!
//! Where Berth has no equivalent the field is left out (`ContainerARN` is
//! Berth's container ARN; `AvailabilityZone` is the agent's configured
//! zone, absent without one). `LaunchType` is always `EC2`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use berth_proto::ecs::Protocol;
use berth_proto::taskdef::{ContainerDefinition, LogDriver, NetworkMode, TaskDefinition};
use serde::Serialize;

use super::registry::TaskEntry;
use crate::runtime::report::{ContainerReport, ContainerStatus, TaskReport, TaskStatus};

/// `/v4/<id>/task`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskMetadata {
    #[serde(rename = "Cluster")]
    pub cluster: String,
    #[serde(rename = "TaskARN")]
    pub task_arn: String,
    #[serde(rename = "Family")]
    pub family: String,
    /// A string, as ECS prints it.
    #[serde(rename = "Revision")]
    pub revision: String,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: String,
    #[serde(rename = "KnownStatus")]
    pub known_status: String,
    #[serde(rename = "Limits", skip_serializing_if = "Option::is_none")]
    pub limits: Option<TaskLimits>,
    #[serde(rename = "PullStartedAt", skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<String>,
    #[serde(rename = "PullStoppedAt", skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<String>,
    #[serde(rename = "ExecutionStoppedAt", skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<String>,
    #[serde(rename = "AvailabilityZone", skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(rename = "LaunchType")]
    pub launch_type: &'static str,
    #[serde(rename = "Containers")]
    pub containers: Vec<ContainerMetadata>,
}

/// Task-level limits: CPU in vCPUs (units / 1024), memory in MiB.
#[derive(Debug, Clone, Serialize)]
pub struct TaskLimits {
    #[serde(rename = "CPU", skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(rename = "Memory", skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
}

/// Container-level limits: CPU units, memory MiB.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerLimits {
    #[serde(rename = "CPU")]
    pub cpu: u32,
    #[serde(rename = "Memory", skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Port {
    #[serde(rename = "ContainerPort")]
    pub container_port: u16,
    #[serde(rename = "Protocol")]
    pub protocol: Protocol,
    #[serde(rename = "HostPort", skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    #[serde(rename = "HostIp", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    #[serde(rename = "NetworkMode")]
    pub network_mode: String,
    #[serde(rename = "IPv4Addresses", skip_serializing_if = "Vec::is_empty")]
    pub ipv4_addresses: Vec<String>,
    #[serde(
        rename = "IPv4SubnetCIDRBlock",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_subnet_cidr_block: Option<String>,
    #[serde(
        rename = "SubnetGatewayIpv4Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub subnet_gateway_ipv4_address: Option<String>,
}

/// Docker's health object, as ECS shows it (lower-case keys).
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: String,
    #[serde(rename = "statusSince", skip_serializing_if = "Option::is_none")]
    pub status_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(rename = "exitCode", skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// `/v4/<id>` and each of `/task`'s `Containers`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerMetadata {
    #[serde(rename = "DockerId")]
    pub docker_id: String,
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "DockerName")]
    pub docker_name: String,
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    #[serde(rename = "Ports", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "DesiredStatus")]
    pub desired_status: String,
    #[serde(rename = "KnownStatus")]
    pub known_status: String,
    #[serde(rename = "ExitCode", skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(rename = "Limits")]
    pub limits: ContainerLimits,
    #[serde(rename = "CreatedAt", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(rename = "StartedAt", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(rename = "FinishedAt", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(rename = "Health", skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(rename = "LogDriver", skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<String>,
    #[serde(rename = "LogOptions", skip_serializing_if = "Option::is_none")]
    pub log_options: Option<BTreeMap<String, String>>,
    #[serde(rename = "ContainerARN")]
    pub container_arn: String,
    #[serde(rename = "Networks", skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Network>,
}

/// Everything a response is built from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub entry: &'a TaskEntry,
    pub definition: Option<&'a TaskDefinition>,
    pub report: Option<&'a TaskReport>,
    pub availability_zone: Option<&'a str>,
}

/// RFC 3339 with nanoseconds, UTC, as ECS prints times.
pub fn timestamp(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn stopping(report: Option<&TaskReport>) -> bool {
    report.is_some_and(|r| r.status >= TaskStatus::Stopping)
}

/// ECS's container ARN from the task's: `…:container/<cluster>/<task>/<name>`.
fn container_arn(task_arn: &str, name: &str) -> String {
    match task_arn.split_once(":task/") {
        Some((prefix, rest)) => format!("{prefix}:container/{rest}/{name}"),
        None => String::new(),
    }
}

/// The ports a container exposes: every mapping of its definition (a range
/// is one entry per port), with the host port the scheduler reserved.
fn ports(inp: &Inputs, name: &str, cdef: Option<&ContainerDefinition>) -> Vec<Port> {
    let reserved = inp.entry.ports.iter().filter(|p| p.container_name == name);
    let host_ip = || match inp.entry.network_mode {
        NetworkMode::Bridge | NetworkMode::Host => Some("0.0.0.0".to_owned()),
        _ => None,
    };
    let Some(cdef) = cdef else {
        return reserved
            .map(|p| Port {
                container_port: p.container_port,
                protocol: p.protocol,
                host_port: Some(p.host_port),
                host_ip: host_ip(),
            })
            .collect();
    };
    let reserved: Vec<_> = reserved.collect();
    let mut out = Vec::new();
    for m in &cdef.port_mappings {
        let protocol = m.effective_protocol();
        let container_ports: Vec<u16> = match (&m.container_port, &m.container_port_range) {
            (Some(p), _) => u16::try_from(*p).ok().into_iter().collect(),
            (None, Some(range)) => range
                .split_once('-')
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
                })
                .map(|(a, b)| (a..=b).collect())
                .unwrap_or_default(),
            (None, None) => vec![],
        };
        for cp in container_ports {
            let host_port = reserved
                .iter()
                .find(|p| p.container_port == cp && p.protocol == protocol)
                .map(|p| p.host_port);
            out.push(Port {
                container_port: cp,
                protocol,
                host_port,
                host_ip: host_port.and_then(|_| host_ip()),
            });
        }
    }
    out
}

fn networks(entry: &TaskEntry) -> Vec<Network> {
    let mode = entry.network_mode.as_str().to_owned();
    match entry.network_mode {
        NetworkMode::Bridge | NetworkMode::Awsvpc => {
            let subnet = match (entry.ip, entry.prefix_len) {
                (Some(std::net::IpAddr::V4(ip)), Some(len)) => {
                    crate::runtime::network::Ipv4Net::new(ip, len).map(|n| n.network().to_string())
                }
                _ => None,
            };
            let awsvpc = entry.network_mode == NetworkMode::Awsvpc;
            vec![Network {
                network_mode: mode,
                ipv4_addresses: entry.ip.map(|i| i.to_string()).into_iter().collect(),
                ipv4_subnet_cidr_block: subnet.filter(|_| awsvpc),
                subnet_gateway_ipv4_address: entry
                    .gateway
                    .filter(|_| awsvpc)
                    .map(|g| format!("{g}/{}", entry.prefix_len.unwrap_or(32))),
            }]
        }
        NetworkMode::Host | NetworkMode::None => vec![Network {
            network_mode: mode,
            ipv4_addresses: vec![],
            ipv4_subnet_cidr_block: None,
            subnet_gateway_ipv4_address: None,
        }],
    }
}

/// The container's `Health`: only for a container with a health check
/// (other than `NONE`); what its checks found, UNKNOWN until the first.
fn health(cdef: Option<&ContainerDefinition>, report: Option<&ContainerReport>) -> Option<Health> {
    let check = cdef?.health_check.as_ref()?;
    if check.command.first().map(String::as_str) == Some("NONE") {
        return None;
    }
    let Some(h) = report.and_then(|r| r.health.as_ref()) else {
        return Some(Health {
            status: "UNKNOWN".to_owned(),
            status_since: None,
            output: None,
            exit_code: None,
        });
    };
    Some(Health {
        status: h.status.as_str().to_owned(),
        status_since: h.since.map(timestamp),
        output: Some(h.output.clone()).filter(|o| !o.is_empty()),
        exit_code: h.exit_code,
    })
}

/// The metadata of the task's container `index`.
pub fn container(inp: &Inputs, index: usize) -> Option<ContainerMetadata> {
    let e = inp.entry;
    let c = e.containers.get(index)?;
    let cdef = inp
        .definition
        .and_then(|d| d.container_definitions.iter().find(|x| x.name == c.name));
    let rep = inp
        .report
        .and_then(|r| r.containers.iter().find(|x| x.name == c.name));
    let mut labels = BTreeMap::new();
    if let Some(cdef) = cdef {
        labels.extend(cdef.docker_labels.clone());
    }
    for (k, v) in [
        ("com.amazonaws.ecs.cluster", e.cluster.clone()),
        ("com.amazonaws.ecs.container-name", c.name.clone()),
        ("com.amazonaws.ecs.task-arn", e.arn.clone()),
        ("com.amazonaws.ecs.task-definition-family", e.family.clone()),
        (
            "com.amazonaws.ecs.task-definition-version",
            e.revision.to_string(),
        ),
    ] {
        labels.insert(k.to_owned(), v);
    }
    let known = rep.map_or(ContainerStatus::Pending, |r| r.status);
    let desired = if stopping(inp.report) || known == ContainerStatus::Stopped {
        "STOPPED"
    } else {
        "RUNNING"
    };
    let (log_driver, log_options) = match cdef.and_then(|d| d.log_configuration.as_ref()) {
        Some(lc) if lc.log_driver == LogDriver::None => (Some("none".to_owned()), None),
        Some(lc) if lc.log_driver == LogDriver::JsonFile && !lc.options.is_empty() => {
            (Some("json-file".to_owned()), Some(lc.options.clone()))
        }
        _ => (Some("json-file".to_owned()), None),
    };
    Some(ContainerMetadata {
        docker_id: c.runtime_id.clone(),
        name: c.name.clone(),
        docker_name: c.runtime_id.clone(),
        image: c.image.clone(),
        image_id: rep.map(|r| r.image_digest.clone()).unwrap_or_default(),
        ports: ports(inp, &c.name, cdef),
        labels,
        desired_status: desired.to_owned(),
        known_status: known.as_str().to_owned(),
        exit_code: rep.and_then(|r| r.exit_code),
        limits: ContainerLimits {
            cpu: cdef.and_then(|d| d.cpu).unwrap_or(0),
            memory: cdef.and_then(|d| d.memory.or(d.memory_reservation)),
        },
        created_at: c.created_at.map(timestamp),
        started_at: c.started_at.map(timestamp),
        finished_at: c.finished_at.map(timestamp),
        kind: "NORMAL",
        health: health(cdef, rep),
        log_driver,
        log_options,
        container_arn: container_arn(&e.arn, &c.name),
        networks: networks(e),
    })
}

/// The task's metadata, with every container.
pub fn task(inp: &Inputs) -> TaskMetadata {
    let e = inp.entry;
    let limits = inp.definition.and_then(|d| {
        let cpu = d.task_cpu_units().map(|u| f64::from(u) / 1024.0);
        let memory = d.task_memory_mib();
        (cpu.is_some() || memory.is_some()).then_some(TaskLimits { cpu, memory })
    });
    let r = inp.report;
    TaskMetadata {
        cluster: e.cluster.clone(),
        task_arn: e.arn.clone(),
        family: e.family.clone(),
        revision: e.revision.to_string(),
        desired_status: if stopping(r) { "STOPPED" } else { "RUNNING" }.to_owned(),
        known_status: r
            .map_or(TaskStatus::Provisioning, |r| r.status)
            .as_str()
            .to_owned(),
        limits,
        pull_started_at: r.and_then(|r| r.pull_started_at).map(timestamp),
        pull_stopped_at: r.and_then(|r| r.pull_stopped_at).map(timestamp),
        execution_stopped_at: r.and_then(|r| r.stopped_at).map(timestamp),
        availability_zone: inp.availability_zone.map(str::to_owned),
        launch_type: "EC2",
        containers: (0..e.containers.len())
            .filter_map(|i| container(inp, i))
            .collect(),
    }
}
