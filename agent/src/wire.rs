//! The edge between the agent and the `berth.v1` `AgentService` messages:
//! builds the agent's messages from domain types and turns the scheduler's
//! into validated domain types. Besides this module, prost types appear only
//! in the session (which moves them between this module and tonic) and in
//! `register.rs` and `join.rs` (unary calls made before a session exists).

use std::time::{Duration, SystemTime};

use berth_proto::delta::Update;
use berth_proto::v1;

use crate::desired::{
    CheckPort, CheckProtocol, DesiredStatus, DesiredTask, DesiredUpdate, PortAssignment, Protocol,
    SecretEnv, StopCode, TargetCheck, TargetHealthCheck, TaskSecrets,
};
use crate::exec::{ExecCommand, ExecFrame, ExecInput, ExecOutput, ExecStart, TermSize};
use crate::host::HostFacts;
use crate::identity::Identity;
use crate::logs::server::{LogChunk, LogCommand, LogRequest};
use crate::metadata::stats::NetworkStats;
use crate::runtime::image::Credentials;
use crate::runtime::report::TaskReport;
use crate::usage::UsageSample;

/// A scheduler message the agent does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{message}.{field} is missing or empty")]
    Missing {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}.{field} is invalid: {reason}")]
    Invalid {
        message: &'static str,
        field: String,
        reason: String,
    },
}

/// What `Welcome` tells the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub container_instance_arn: String,
    pub cluster_arn: String,
    pub heartbeat_interval: Duration,
    pub heartbeat_ttl: Duration,
}

/// A message from the scheduler, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Welcome(Welcome),
    /// The desired set, whole or as a delta from the generation held.
    DesiredState(DesiredUpdate),
    Logs(LogCommand),
    /// ECS Exec: start, feed or stop a process in a container.
    Exec(ExecCommand),
    /// How often to send usage samples; `None`: the configured interval.
    StatsSampling(Option<Duration>),
    /// A message kind this agent does not know (a newer scheduler): ignored.
    Unknown,
}

pub fn register_request(
    activation_id: &str,
    activation_code: &str,
    csr_pem: &str,
    hostname: &str,
    cluster: Option<&str>,
) -> v1::RegisterRequest {
    v1::RegisterRequest {
        activation_id: activation_id.to_owned(),
        activation_code: activation_code.to_owned(),
        csr_pem: csr_pem.to_owned(),
        hostname: hostname.to_owned(),
        cluster: cluster.unwrap_or_default().to_owned(),
    }
}

/// This instance as the scheduler sees it (`DescribeSelf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfView {
    pub container_instance_id: String,
    pub container_instance_arn: String,
    pub status: String,
    pub agent_connected: bool,
}

pub fn self_view(r: v1::DescribeSelfResponse) -> Result<SelfView, WireError> {
    const M: &str = "DescribeSelfResponse";
    if r.container_instance_id.is_empty() {
        return Err(WireError::Missing {
            message: M,
            field: "container_instance_id",
        });
    }
    Ok(SelfView {
        container_instance_id: r.container_instance_id,
        container_instance_arn: r.container_instance_arn,
        status: r.status,
        agent_connected: r.agent_connected,
    })
}

/// The identity to persist from Register's answer, with the certificate
/// and the CA it returned.
pub fn identity(r: v1::RegisterResponse) -> Result<(Identity, String, String), WireError> {
    const M: &str = "RegisterResponse";
    let required = |v: &str, field| {
        if v.is_empty() {
            Err(WireError::Missing { message: M, field })
        } else {
            Ok(())
        }
    };
    required(&r.container_instance_id, "container_instance_id")?;
    required(&r.container_instance_arn, "container_instance_arn")?;
    required(&r.cluster_arn, "cluster_arn")?;
    required(&r.cert_pem, "cert_pem")?;
    required(&r.ca_pem, "ca_pem")?;
    let cluster = berth_proto::arn::cluster_name(&r.cluster_arn).to_owned();
    Ok((
        Identity {
            cluster,
            container_instance_id: r.container_instance_id,
            container_instance_arn: r.container_instance_arn,
            cluster_arn: r.cluster_arn,
        },
        r.cert_pem,
        r.ca_pem,
    ))
}

pub fn hello(facts: &HostFacts) -> v1::AgentMessage {
    let r = &facts.resources;
    let ports = |p: &[u16]| p.iter().map(|&p| u32::from(p)).collect();
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::Hello(v1::Hello {
            resources: Some(v1::HostResources {
                cpu_units: i64::try_from(r.cpu_units).unwrap_or(i64::MAX),
                memory_mib: i64::try_from(r.memory_mib).unwrap_or(i64::MAX),
                port_range_start: u32::from(r.port_range.start),
                port_range_end: u32::from(r.port_range.end),
                reserved_tcp_ports: ports(&r.reserved_tcp_ports),
                reserved_udp_ports: ports(&r.reserved_udp_ports),
            }),
            attributes: facts
                .attributes
                .iter()
                .map(|a| v1::Attribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                })
                .collect(),
            agent_version: berth_proto::VERSION.to_owned(),
            hostname: facts.hostname.clone(),
            address: facts.address.map(|a| a.to_string()).unwrap_or_default(),
            desired_deltas: true,
        })),
    }
}

pub fn heartbeat(seq: u64, sent_at: SystemTime) -> v1::AgentMessage {
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::Heartbeat(v1::Heartbeat {
            seq,
            sent_at: Some(sent_at.into()),
        })),
    }
}

fn log_request(r: v1::LogRequest) -> LogRequest {
    LogRequest {
        id: r.request_id,
        task_arn: r.task_arn,
        container: Some(r.container).filter(|c| !c.is_empty()),
        follow: r.follow,
        tail: usize::try_from(r.tail).ok().filter(|t| *t > 0),
        since: r.since.and_then(|t| {
            time::OffsetDateTime::from_unix_timestamp(t.seconds)
                .ok()
                .map(|d| d + time::Duration::nanoseconds(i64::from(t.nanos)))
        }),
    }
}

fn ts(t: Option<SystemTime>) -> Option<prost_types::Timestamp> {
    t.map(Into::into)
}

/// A task report for the scheduler.
pub fn task_status(r: &TaskReport) -> v1::AgentMessage {
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::TaskStatus(v1::TaskStatusReport {
            task_arn: r.arn.clone(),
            last_status: r.status.as_str().to_owned(),
            stop_code: r
                .stop_code
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            stopped_reason: r.stopped_reason.clone(),
            containers: r
                .containers
                .iter()
                .map(|c| v1::ContainerStatus {
                    name: c.name.clone(),
                    runtime_id: c.runtime_id.clone(),
                    last_status: c.status.as_str().to_owned(),
                    exit_code: c.exit_code,
                    reason: c.reason.clone(),
                    network_bindings: c
                        .bindings
                        .iter()
                        .map(|b| v1::NetworkBinding {
                            bind_ip: b.bind_ip.clone(),
                            container_port: u32::from(b.container_port),
                            host_port: u32::from(b.host_port),
                            protocol: b.protocol.as_str().to_owned(),
                        })
                        .collect(),
                    image_digest: c.image_digest.clone(),
                    health_status: c
                        .health
                        .as_ref()
                        .map(|h| h.status.as_str().to_owned())
                        .unwrap_or_default(),
                    health_check_output: c
                        .health
                        .as_ref()
                        .map(|h| h.output.clone())
                        .unwrap_or_default(),
                    restart_count: c.restart_count,
                })
                .collect(),
            pull_started_at: ts(r.pull_started_at),
            pull_stopped_at: ts(r.pull_stopped_at),
            started_at: ts(r.started_at),
            stopped_at: ts(r.stopped_at),
            health_status: r.health_status.as_str().to_owned(),
            private_ipv4_address: r.private_ipv4.map(|ip| ip.to_string()).unwrap_or_default(),
            target_health: r
                .target_health
                .iter()
                .map(|t| v1::TargetHealthReport {
                    target_group_arn: t.target_group_arn.clone(),
                    container_name: t.container_name.clone(),
                    container_port: u32::from(t.container_port),
                    state: t.state.as_str().to_owned(),
                    reason: t.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                    description: t.description.clone(),
                })
                .collect(),
        })),
    }
}

/// A part of a log answer for the scheduler.
pub fn log_chunk(c: &LogChunk) -> v1::AgentMessage {
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::LogChunk(v1::LogChunk {
            request_id: c.request_id,
            entries: c
                .entries
                .iter()
                .map(|(container, l)| v1::LogEntry {
                    time: Some(prost_types::Timestamp {
                        seconds: l.time.unix_timestamp(),
                        nanos: l.time.nanosecond() as i32,
                    }),
                    container: container.clone(),
                    stream: l.stream.as_str().to_owned(),
                    log: l.log.clone(),
                })
                .collect(),
            eof: c.eof,
            error: c.error.clone(),
        })),
    }
}

/// A terminal size; out-of-range dimensions are clamped (the scheduler
/// checked them).
fn term_size(s: &v1::TerminalSize) -> TermSize {
    let dim = |v: u32| u16::try_from(v).unwrap_or(u16::MAX).max(1);
    TermSize {
        width: dim(s.width),
        height: dim(s.height),
    }
}

/// An exec start as is: what is wrong with it (no such container, no
/// command) comes back as the exec's error, not as a broken stream.
fn exec_start(s: v1::ExecStart) -> ExecStart {
    ExecStart {
        stream_id: s.stream_id,
        task_arn: s.task_arn,
        container: s.container,
        command: s.command,
        interactive: s.interactive,
        tty: s.tty,
        size: s.size.as_ref().map(term_size),
    }
}

fn exec_input(i: Option<v1::exec_input::Input>) -> Option<ExecInput> {
    use v1::exec_input::Input;
    Some(match i? {
        Input::Stdin(b) => ExecInput::Stdin(b),
        Input::Resize(s) => ExecInput::Resize(term_size(&s)),
        Input::Signal(s) => ExecInput::Signal(s),
        Input::CloseStdin(_) => ExecInput::CloseStdin,
    })
}

/// A usage sample of every running task (`berth/v1/stats.proto`).
pub fn usage(s: &UsageSample) -> v1::AgentMessage {
    let network = |n: &NetworkStats| v1::NetworkUsage {
        rx_bytes: n.rx_bytes,
        rx_packets: n.rx_packets,
        tx_bytes: n.tx_bytes,
        tx_packets: n.tx_packets,
    };
    let tasks = s
        .tasks
        .iter()
        .map(|t| v1::TaskUsage {
            task_arn: t.arn.clone(),
            cpu_total_ns: t.usage.map(|u| u.cpu_usage_ns),
            memory_limit_bytes: t.usage.and_then(|u| u.memory_limit_bytes),
            network: t.network.as_ref().map(network),
            containers: t
                .containers
                .iter()
                .map(|(name, u)| v1::ContainerUsage {
                    name: name.clone(),
                    cpu_total_ns: u.cpu_total_ns,
                    cpu_user_ns: u.cpu_user_ns,
                    cpu_system_ns: u.cpu_system_ns,
                    memory_usage_bytes: u.memory_usage,
                    // v2 names it inactive_file, v1 total_inactive_file
                    // (hierarchical) beside inactive_file.
                    memory_inactive_file_bytes: u
                        .memory_stat
                        .get("total_inactive_file")
                        .or_else(|| u.memory_stat.get("inactive_file"))
                        .copied()
                        .unwrap_or(0),
                    memory_limit_bytes: u.memory_limit,
                    memory_max_usage_bytes: u.memory_max_usage,
                    oom_kills: u.oom_kills,
                    block_read_bytes: u.io_read_bytes,
                    block_write_bytes: u.io_write_bytes,
                    pids: u.pids,
                })
                .collect(),
        })
        .collect();
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::Usage(v1::UsageSample {
            sampled_at: Some(s.sampled_at.into()),
            host_memory_bytes: s.host_memory_bytes,
            tasks,
        })),
    }
}

pub fn exec_output(f: ExecFrame) -> v1::AgentMessage {
    use v1::exec_output::Output;
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::ExecOutput(v1::ExecOutput {
            stream_id: f.stream_id,
            output: Some(match f.output {
                ExecOutput::Stdout(b) => Output::Stdout(b),
                ExecOutput::Stderr(b) => Output::Stderr(b),
                ExecOutput::Exit(c) => Output::ExitCode(c),
                ExecOutput::Error(e) => Output::Error(e),
            }),
        })),
    }
}

pub fn inbound(m: v1::SchedulerMessage) -> Result<Inbound, WireError> {
    use v1::scheduler_message::Msg;
    match m.msg {
        Some(Msg::Welcome(w)) => welcome(w).map(Inbound::Welcome),
        Some(Msg::DesiredState(d)) => desired_state(d).map(Inbound::DesiredState),
        Some(Msg::LogRequest(r)) => Ok(Inbound::Logs(LogCommand::Read(log_request(r)))),
        Some(Msg::LogCancel(c)) => Ok(Inbound::Logs(LogCommand::Cancel(c.request_id))),
        Some(Msg::ExecStart(s)) => Ok(Inbound::Exec(ExecCommand::Start(exec_start(s)))),
        Some(Msg::ExecInput(i)) => Ok(match exec_input(i.input) {
            Some(input) => Inbound::Exec(ExecCommand::Input {
                stream_id: i.stream_id,
                input,
            }),
            None => Inbound::Unknown,
        }),
        Some(Msg::ExecCancel(c)) => Ok(Inbound::Exec(ExecCommand::Cancel(c.stream_id))),
        Some(Msg::StatsSampling(s)) => Ok(Inbound::StatsSampling(
            (s.interval_ms > 0).then(|| Duration::from_millis(u64::from(s.interval_ms))),
        )),
        None => Ok(Inbound::Unknown),
    }
}

fn welcome(w: v1::Welcome) -> Result<Welcome, WireError> {
    const M: &str = "Welcome";
    if w.heartbeat_interval_ms == 0 {
        return Err(WireError::Missing {
            message: M,
            field: "heartbeat_interval_ms",
        });
    }
    if w.heartbeat_ttl_ms == 0 {
        return Err(WireError::Missing {
            message: M,
            field: "heartbeat_ttl_ms",
        });
    }
    Ok(Welcome {
        container_instance_arn: w.container_instance_arn,
        cluster_arn: w.cluster_arn,
        heartbeat_interval: Duration::from_millis(u64::from(w.heartbeat_interval_ms)),
        heartbeat_ttl: Duration::from_millis(u64::from(w.heartbeat_ttl_ms)),
    })
}

fn desired_state(d: v1::DesiredState) -> Result<DesiredUpdate, WireError> {
    const M: &str = "DesiredState";
    let tasks = d
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            if t.task_arn.is_empty() {
                return Err(WireError::Invalid {
                    message: M,
                    field: format!("tasks[{i}].task_arn"),
                    reason: "empty".to_owned(),
                });
            }
            let desired_status =
                t.desired_status
                    .parse::<DesiredStatus>()
                    .map_err(|_| WireError::Invalid {
                        message: M,
                        field: format!("tasks[{i}].desired_status"),
                        reason: format!("{:?} is neither RUNNING nor STOPPED", t.desired_status),
                    })?;
            let stop_code =
                berth_proto::ecs::parse_optional::<StopCode>(&t.stop_code).map_err(|e| {
                    WireError::Invalid {
                        message: M,
                        field: format!("tasks[{i}].stop_code"),
                        reason: e.to_string(),
                    }
                })?;
            let ports =
                t.ports
                    .into_iter()
                    .enumerate()
                    .map(|(j, p)| {
                        let port = |v: u32, name: &str| {
                            u16::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| {
                                WireError::Invalid {
                                    message: M,
                                    field: format!("tasks[{i}].ports[{j}].{name}"),
                                    reason: format!("{v} is not a port"),
                                }
                            })
                        };
                        // An empty protocol is ECS's default, tcp.
                        let protocol = berth_proto::ecs::parse_optional::<Protocol>(&p.protocol)
                            .map(Option::unwrap_or_default)
                            .map_err(|e| WireError::Invalid {
                                message: M,
                                field: format!("tasks[{i}].ports[{j}].protocol"),
                                reason: e.to_string(),
                            })?;
                        Ok(PortAssignment {
                            container_port: port(p.container_port, "container_port")?,
                            host_port: port(p.host_port, "host_port")?,
                            container_name: p.container_name,
                            protocol,
                        })
                    })
                    .collect::<Result<Vec<_>, WireError>>()?;
            let secrets = TaskSecrets {
                env: t
                    .secrets
                    .into_iter()
                    .map(|s| SecretEnv {
                        container: s.container_name,
                        name: s.name,
                        value: s.value,
                    })
                    .collect(),
                registry: t
                    .repository_credentials
                    .into_iter()
                    .map(|r| {
                        (
                            r.container_name,
                            Credentials {
                                username: r.username,
                                password: r.password,
                            },
                        )
                    })
                    .collect(),
            };
            let target_checks = t
                .target_checks
                .into_iter()
                .enumerate()
                .filter_map(|(j, c)| match target_check(c, &format!("tasks[{i}].target_checks[{j}]")) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        // One bad check must not cost the task (or the
                        // other checks): the scheduler sees no report for it.
                        tracing::warn!(task = %t.task_arn, cause = %e, "dropping a target check the agent cannot run");
                        None
                    }
                })
                .collect();
            Ok(DesiredTask {
                secrets,
                target_checks,
                task_arn: t.task_arn,
                desired_status,
                task_definition_json: t.task_definition_json,
                cluster: t.cluster,
                family: t.family,
                revision: t.revision,
                ports,
                stop_code,
                stopped_reason: t.stopped_reason,
                group: t.group,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(if d.delta {
        Update::Delta {
            base: d.base_generation,
            generation: d.generation,
            upserts: tasks,
            removed: d.removed_task_arns,
        }
    } else {
        Update::Full {
            generation: d.generation,
            items: tasks,
        }
    })
}

/// The agent applied the desired state at `generation` (`resync`: it could
/// not apply a delta and needs the whole set).
pub fn desired_ack(generation: u64, resync: bool) -> v1::AgentMessage {
    v1::AgentMessage {
        msg: Some(v1::agent_message::Msg::DesiredAck(v1::DesiredAck {
            generation,
            resync,
        })),
    }
}

/// One `TargetCheck`, validated; `at` is its path in the message.
fn target_check(c: v1::TargetCheck, at: &str) -> Result<TargetCheck, WireError> {
    const M: &str = "DesiredState";
    let invalid = |field: &str, reason: String| WireError::Invalid {
        message: M,
        field: format!("{at}.{field}"),
        reason,
    };
    let port = |v: u32, field: &str| {
        u16::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| invalid(field, format!("{v} is not a port")))
    };
    let container_port = port(c.container_port, "container_port")?;
    let host_port = port(c.host_port, "host_port")?;
    if c.target_group_arn.is_empty() {
        return Err(invalid("target_group_arn", "empty".to_owned()));
    }
    let h = c
        .health_check
        .ok_or_else(|| invalid("health_check", "missing".to_owned()))?;
    let protocol = match h.protocol.as_str() {
        "HTTP" => CheckProtocol::Http,
        "TCP" => CheckProtocol::Tcp,
        other => {
            return Err(invalid(
                "health_check.protocol",
                format!("{other:?} is neither HTTP nor TCP"),
            ))
        }
    };
    let check_port = match h.port.as_str() {
        "traffic-port" => CheckPort::TrafficPort,
        other => CheckPort::Port(other.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(
            || {
                invalid(
                    "health_check.port",
                    format!("{other:?} is neither \"traffic-port\" nor a port (1-65535)"),
                )
            },
        )?),
    };
    if protocol == CheckProtocol::Http
        && (!h.path.starts_with('/') || h.path.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        // It goes into the request line as it is.
        return Err(invalid(
            "health_check.path",
            format!(
                "{:?} is not a path starting with \"/\" without spaces",
                h.path
            ),
        ));
    }
    let nonzero = |v: u32, field: &str| {
        if v == 0 {
            Err(invalid(field, "must not be 0".to_owned()))
        } else {
            Ok(v)
        }
    };
    let interval = nonzero(h.interval_seconds, "health_check.interval_seconds")?;
    let timeout = nonzero(h.timeout_seconds, "health_check.timeout_seconds")?;
    let healthy_threshold = nonzero(h.healthy_threshold, "health_check.healthy_threshold")?;
    let unhealthy_threshold = nonzero(h.unhealthy_threshold, "health_check.unhealthy_threshold")?;
    // TCP checks have no matcher; an empty one is ELB's default there.
    let matcher = match (protocol, h.matcher.as_str()) {
        (CheckProtocol::Tcp, "") => "200".parse(),
        (_, m) => m.parse(),
    }
    .map_err(|e: crate::desired::MatcherError| invalid("health_check.matcher", e.to_string()))?;
    Ok(TargetCheck {
        target_group_arn: c.target_group_arn,
        container_name: c.container_name,
        container_port,
        host_port,
        health: TargetHealthCheck {
            protocol,
            path: h.path,
            port: check_port,
            interval: Duration::from_secs(u64::from(interval)),
            timeout: Duration::from_secs(u64::from(timeout)),
            healthy_threshold,
            unhealthy_threshold,
            matcher,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PortRange;
    use crate::host::{Attribute, HostResources};

    #[test]
    fn usage_samples_carry_the_working_set_and_the_sampling_request_reads_back() {
        use crate::metrics::TaskSample;
        use crate::runtime::cgroups::{ContainerUsage, Stats};
        let sample = UsageSample {
            sampled_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            host_memory_bytes: 8 << 30,
            tasks: vec![TaskSample {
                arn: "arn:aws:ecs:local:0:task/default/abc".into(),
                labels: None,
                usage: Some(Stats {
                    cpu_usage_ns: 7,
                    ..Stats::default()
                }),
                network: Some(NetworkStats {
                    rx_bytes: 1,
                    tx_packets: 2,
                    ..NetworkStats::default()
                }),
                containers: vec![(
                    "app".into(),
                    ContainerUsage {
                        cpu_total_ns: 5,
                        memory_usage: 4096,
                        memory_stat: [("inactive_file".to_owned(), 1024)].into(),
                        io_read_bytes: Some(3),
                        pids: 2,
                        ..ContainerUsage::default()
                    },
                )],
            }],
        };
        let Some(v1::agent_message::Msg::Usage(u)) = usage(&sample).msg else {
            panic!("not a usage sample");
        };
        assert_eq!(u.host_memory_bytes, 8 << 30);
        let t = &u.tasks[0];
        assert_eq!(t.cpu_total_ns, Some(7));
        assert_eq!(
            t.network.as_ref().map(|n| (n.rx_bytes, n.tx_packets)),
            Some((1, 2))
        );
        let c = &t.containers[0];
        assert_eq!(
            (c.memory_usage_bytes, c.memory_inactive_file_bytes),
            (4096, 1024)
        );
        assert_eq!(
            (c.block_read_bytes, c.block_write_bytes, c.pids),
            (Some(3), None, 2)
        );
        // What docs/stats.md says a sample costs on the stream (about 70
        // bytes per container, 130 per task), with realistic magnitudes.
        let busy = v1::ContainerUsage {
            name: "app".into(),
            cpu_total_ns: 12_345_678_901_234,
            cpu_user_ns: 10_000_000_000_000,
            cpu_system_ns: 2_000_000_000_000,
            memory_usage_bytes: 512 << 20,
            memory_inactive_file_bytes: 64 << 20,
            memory_limit_bytes: Some(1 << 30),
            memory_max_usage_bytes: Some(600 << 20),
            oom_kills: Some(0),
            block_read_bytes: Some(10 << 30),
            block_write_bytes: Some(10 << 30),
            pids: 40,
        };
        let len = prost::Message::encoded_len(&busy);
        assert!((60..=80).contains(&len), "{len} bytes per container");
        let task = v1::TaskUsage {
            task_arn: "arn:aws:ecs:eu-west-1:123456789012:task/production/0123456789abcdef0123456789abcdef".into(),
            cpu_total_ns: Some(24_000_000_000_000),
            memory_limit_bytes: Some(2 << 30),
            network: Some(v1::NetworkUsage {
                rx_bytes: 50 << 30,
                rx_packets: 40_000_000,
                tx_bytes: 50 << 30,
                tx_packets: 40_000_000,
            }),
            containers: vec![],
        };
        let len = prost::Message::encoded_len(&task);
        assert!((110..=140).contains(&len), "{len} bytes per task");

        let ask = |ms| {
            inbound(v1::SchedulerMessage {
                msg: Some(v1::scheduler_message::Msg::StatsSampling(
                    v1::StatsSampling { interval_ms: ms },
                )),
            })
            .unwrap()
        };
        assert!(
            matches!(ask(1000), Inbound::StatsSampling(Some(d)) if d == Duration::from_secs(1))
        );
        assert!(matches!(ask(0), Inbound::StatsSampling(None)));
    }

    #[test]
    fn hello_carries_the_measured_facts() {
        let mut facts = HostFacts {
            hostname: "h1".into(),
            address: None,
            resources: HostResources {
                cpu_units: 2048,
                memory_mib: 3840,
                port_range: PortRange {
                    start: 20000,
                    end: 32767,
                },
                reserved_tcp_ports: vec![22, 51679],
                reserved_udp_ports: vec![53],
            },
            attributes: vec![Attribute {
                name: "ecs.os-type".into(),
                value: "linux".into(),
            }],
        };
        let Some(v1::agent_message::Msg::Hello(h)) = hello(&facts).msg else {
            panic!("not a Hello");
        };
        assert_eq!(h.agent_version, berth_proto::VERSION);
        assert_eq!(h.hostname, "h1");
        assert_eq!(
            h.resources,
            Some(v1::HostResources {
                cpu_units: 2048,
                memory_mib: 3840,
                port_range_start: 20000,
                port_range_end: 32767,
                reserved_tcp_ports: vec![22, 51679],
                reserved_udp_ports: vec![53],
            })
        );
        assert_eq!(h.attributes.len(), 1);
        assert_eq!(h.address, "", "unset: the scheduler uses the peer address");

        facts.address = Some(std::net::Ipv4Addr::new(192, 0, 2, 10));
        let Some(v1::agent_message::Msg::Hello(h)) = hello(&facts).msg else {
            panic!("not a Hello");
        };
        assert_eq!(h.address, "192.0.2.10");
    }

    #[test]
    fn task_reports_carry_the_awsvpc_address() {
        let mut r = TaskReport::new("arn:t", [("web".into(), "id".into())]);
        let Some(v1::agent_message::Msg::TaskStatus(s)) = task_status(&r).msg else {
            panic!("not a TaskStatus");
        };
        assert_eq!(s.private_ipv4_address, "", "no address: empty");
        r.private_ipv4 = Some(std::net::Ipv4Addr::new(10, 213, 0, 5));
        let Some(v1::agent_message::Msg::TaskStatus(s)) = task_status(&r).msg else {
            panic!("not a TaskStatus");
        };
        assert_eq!(s.private_ipv4_address, "10.213.0.5");
    }

    #[test]
    fn register_response_is_validated() {
        let ok = v1::RegisterResponse {
            container_instance_id: "i1".into(),
            container_instance_arn: "arn:x".into(),
            cluster_arn: "arn:berth:ecs:local:000000000000:cluster/prod".into(),
            cert_pem: "CERT".into(),
            ca_pem: "CA".into(),
        };
        let (id, cert, ca) = identity(ok.clone()).expect("valid");
        assert_eq!(
            (id.cluster.as_str(), cert.as_str(), ca.as_str()),
            ("prod", "CERT", "CA")
        );

        let mut missing = ok;
        missing.cert_pem.clear();
        assert_eq!(
            identity(missing),
            Err(WireError::Missing {
                message: "RegisterResponse",
                field: "cert_pem"
            })
        );
    }

    #[test]
    fn scheduler_messages_are_validated() {
        use v1::scheduler_message::Msg;
        let w = v1::SchedulerMessage {
            msg: Some(Msg::Welcome(v1::Welcome {
                container_instance_arn: "arn:i".into(),
                cluster_arn: "arn:c".into(),
                heartbeat_interval_ms: 5000,
                heartbeat_ttl_ms: 20000,
            })),
        };
        let Ok(Inbound::Welcome(w)) = inbound(w) else {
            panic!("welcome");
        };
        assert_eq!(w.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(w.heartbeat_ttl, Duration::from_secs(20));

        let zero = v1::SchedulerMessage {
            msg: Some(Msg::Welcome(v1::Welcome::default())),
        };
        assert!(inbound(zero).is_err());
        assert_eq!(
            inbound(v1::SchedulerMessage { msg: None }),
            Ok(Inbound::Unknown)
        );

        let d = |status: &str| v1::SchedulerMessage {
            msg: Some(Msg::DesiredState(v1::DesiredState {
                generation: 3,
                tasks: vec![v1::DesiredTask {
                    task_arn: "arn:t".into(),
                    desired_status: status.into(),
                    task_definition_json: "{}".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
        };
        let Ok(Inbound::DesiredState(state)) = inbound(d("RUNNING")) else {
            panic!("desired state");
        };
        assert_eq!(state.generation(), 3);
        assert_eq!(state.items()[0].desired_status, DesiredStatus::Running);
        let err = inbound(d("PAUSED")).expect_err("bad status");
        assert!(err.to_string().contains("tasks[0].desired_status"), "{err}");

        let stop = |code: &str| v1::SchedulerMessage {
            msg: Some(Msg::DesiredState(v1::DesiredState {
                generation: 4,
                tasks: vec![v1::DesiredTask {
                    task_arn: "arn:t".into(),
                    desired_status: "STOPPED".into(),
                    stop_code: code.into(),
                    ..Default::default()
                }],
                ..Default::default()
            })),
        };
        let Ok(Inbound::DesiredState(state)) = inbound(stop("ServiceSchedulerInitiated")) else {
            panic!("desired state");
        };
        assert_eq!(
            state.items()[0].stop_code,
            Some(StopCode::ServiceSchedulerInitiated)
        );
        let Ok(Inbound::DesiredState(state)) = inbound(stop("")) else {
            panic!("desired state");
        };
        assert_eq!(state.items()[0].stop_code, None);
        let err = inbound(stop("Bored")).expect_err("bad stop code");
        assert!(err.to_string().contains("tasks[0].stop_code"), "{err}");
    }

    fn check(f: impl FnOnce(&mut v1::HealthCheck)) -> v1::TargetCheck {
        let mut h = v1::HealthCheck {
            protocol: "HTTP".into(),
            path: "/health".into(),
            port: "traffic-port".into(),
            interval_seconds: 30,
            timeout_seconds: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: "200-299".into(),
        };
        f(&mut h);
        v1::TargetCheck {
            target_group_arn: "arn:tg".into(),
            container_name: "web".into(),
            container_port: 80,
            host_port: 20001,
            health_check: Some(h),
        }
    }

    fn checks_of(checks: Vec<v1::TargetCheck>) -> Vec<TargetCheck> {
        let m = v1::SchedulerMessage {
            msg: Some(v1::scheduler_message::Msg::DesiredState(v1::DesiredState {
                generation: 1,
                tasks: vec![v1::DesiredTask {
                    task_arn: "arn:t".into(),
                    desired_status: "RUNNING".into(),
                    target_checks: checks,
                    ..Default::default()
                }],
                ..Default::default()
            })),
        };
        let Ok(Inbound::DesiredState(state)) = inbound(m) else {
            panic!("a bad check must not cost the task");
        };
        state.items()[0].target_checks.clone()
    }

    #[test]
    fn target_checks_are_converted_and_bad_ones_dropped() {
        let got = checks_of(vec![check(|_| {})]);
        assert_eq!(got.len(), 1);
        let c = &got[0];
        assert_eq!(
            (c.target_group_arn.as_str(), c.container_name.as_str()),
            ("arn:tg", "web")
        );
        assert_eq!((c.container_port, c.host_port), (80, 20001));
        let h = &c.health;
        assert_eq!(h.protocol, CheckProtocol::Http);
        assert_eq!(h.path, "/health");
        assert_eq!(h.port, CheckPort::TrafficPort);
        assert_eq!(h.interval, Duration::from_secs(30));
        assert_eq!(h.timeout, Duration::from_secs(5));
        assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (5, 2));
        assert!(h.matcher.accepts(204) && !h.matcher.accepts(302));

        let tcp = checks_of(vec![check(|h| {
            h.protocol = "TCP".into();
            h.port = "8080".into();
            h.path.clear();
            h.matcher.clear();
        })]);
        assert_eq!(tcp[0].health.protocol, CheckProtocol::Tcp);
        assert_eq!(tcp[0].health.port, CheckPort::Port(8080));

        let bad: Vec<v1::TargetCheck> = vec![
            check(|h| h.protocol = "HTTPS".into()),
            check(|h| h.port = "0".into()),
            check(|h| h.port = "70000".into()),
            check(|h| h.port = "traffic".into()),
            check(|h| h.interval_seconds = 0),
            check(|h| h.timeout_seconds = 0),
            check(|h| h.healthy_threshold = 0),
            check(|h| h.unhealthy_threshold = 0),
            check(|h| h.matcher = "2xx".into()),
            check(|h| h.matcher.clear()),
            check(|h| h.path = "health".into()),
            check(|h| h.path = "/a HTTP/1.1\r\nX-Evil: 1".into()),
            v1::TargetCheck {
                health_check: None,
                ..check(|_| {})
            },
            v1::TargetCheck {
                container_port: 0,
                ..check(|_| {})
            },
            v1::TargetCheck {
                host_port: 65536,
                ..check(|_| {})
            },
            v1::TargetCheck {
                target_group_arn: String::new(),
                ..check(|_| {})
            },
        ];
        for b in bad {
            let shown = format!("{b:?}");
            assert_eq!(checks_of(vec![b, check(|_| {})]).len(), 1, "{shown}");
        }
    }

    #[test]
    fn task_reports_carry_target_health() {
        use crate::runtime::report::{TargetHealth, TargetReason, TargetState};
        let mut r = TaskReport::new("arn:t", []);
        r.target_health = vec![
            TargetHealth {
                target_group_arn: "arn:tg".into(),
                container_name: "web".into(),
                container_port: 80,
                state: TargetState::Unhealthy,
                reason: Some(TargetReason::ResponseCodeMismatch),
                description: "Health checks failed with these codes: [503]".into(),
            },
            TargetHealth {
                target_group_arn: "arn:tg2".into(),
                container_name: "web".into(),
                container_port: 81,
                state: TargetState::Healthy,
                reason: None,
                description: String::new(),
            },
        ];
        let Some(v1::agent_message::Msg::TaskStatus(s)) = task_status(&r).msg else {
            panic!("not a TaskStatus");
        };
        assert_eq!(
            s.target_health,
            vec![
                v1::TargetHealthReport {
                    target_group_arn: "arn:tg".into(),
                    container_name: "web".into(),
                    container_port: 80,
                    state: "unhealthy".into(),
                    reason: "Target.ResponseCodeMismatch".into(),
                    description: "Health checks failed with these codes: [503]".into(),
                },
                v1::TargetHealthReport {
                    target_group_arn: "arn:tg2".into(),
                    container_name: "web".into(),
                    container_port: 81,
                    state: "healthy".into(),
                    reason: String::new(),
                    description: String::new(),
                },
            ]
        );
    }
}
