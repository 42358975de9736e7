//! `AgentService`: hosts join with `Register` and then hold one `Connect`
//! stream each.
//!
//! Identity never comes from a message body: `Connect`, `RenewCertificate`
//! and `DescribeSelf` take the instance from the client certificate that
//! rustls verified against the cluster CA (subject CN and SAN URI), and
//! refuse revoked serials and deregistered instances. `Register` needs no
//! certificate: the activation code is its credential.
//!
//! This is the edge of the agent link: after the Hello, every
//! `AgentMessage` becomes an [`AgentEvent`] and every [`ToAgent`] a
//! `SchedulerMessage`; the session loop and the desired set are in
//! [`crate::agents`].

use std::pin::Pin;
use std::time::Duration;

use berth_proto::arn::short_id;
use berth_proto::delta::{DeltaSender, Update};
use berth_proto::ecs::{parse_optional, ContainerStatus, HealthStatus, StopCode};
use berth_proto::v1::{
    agent_message, agent_service_server::AgentService, exec_output, scheduler_message,
    AgentMessage, DescribeSelfRequest, DescribeSelfResponse, DesiredState, DesiredTask, Hello,
    LogCancel, LogChunk, LogRequest, PortAssignment, RegisterRequest, RegisterResponse,
    RenewCertificateRequest, RenewCertificateResponse, RepositoryCredentials, SchedulerMessage,
    SecretValue, TargetCheck, TaskStatusReport, TerminalSize, Welcome,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::convert::validate_attribute;
use super::{millis, timestamp, ApiError, Shared};
use crate::agent_link::{LogLine, LogPart, Outbound};
use crate::agents::{self, AgentEvent, AgentSession, DesiredUpdate, StreamError, ToAgent};
use crate::db::{check_activation, TargetReport, TaskReport};
use crate::exec_link::{ExecFrame, ExecInput, TermSize};
use crate::records::{
    now_millis, ContainerRecord, HostResources, InstanceRecord, InstanceStatus, NetworkBinding,
    Protocol, TaskStatus,
};
use crate::tls::{peer_identity, PeerIdentity};

/// How long a new stream may take to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages the API may queue for one stream (log requests).
const OUTBOUND_BUFFER: usize = 64;
/// Agent messages read ahead of the loop that handles them.
const INBOUND_BUFFER: usize = 256;

#[derive(Debug)]
pub struct AgentApi {
    pub shared: Shared,
    /// Cancelled on scheduler shutdown, ending every stream.
    pub shutdown: CancellationToken,
}

/// The validated content of a Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloFacts {
    pub resources: HostResources,
    pub attributes: Vec<(String, String)>,
    pub agent_version: String,
    pub hostname: String,
    /// The agent's `advertise_address`, if it set one.
    pub address: Option<std::net::Ipv4Addr>,
    /// Whether the agent takes desired-state deltas (and acknowledges).
    pub desired_deltas: bool,
}

fn port(field: &str, p: u32) -> Result<u16, ApiError> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::invalid(field, format!("{p} is not a port (1–65535)")))
}

/// Turns a wire Hello into validated facts.
pub fn validate_hello(h: Hello) -> Result<HelloFacts, ApiError> {
    let r = h
        .resources
        .ok_or_else(|| ApiError::invalid("hello.resources", "required"))?;
    if r.cpu_units <= 0 {
        return Err(ApiError::invalid(
            "hello.resources.cpuUnits",
            "must be positive",
        ));
    }
    if r.memory_mib <= 0 {
        return Err(ApiError::invalid(
            "hello.resources.memoryMib",
            "must be positive",
        ));
    }
    let start = port("hello.resources.portRangeStart", r.port_range_start)?;
    let end = port("hello.resources.portRangeEnd", r.port_range_end)?;
    if start > end {
        return Err(ApiError::invalid(
            "hello.resources.portRangeStart",
            format!("{start} is above the range's end {end}"),
        ));
    }
    let ports = |field: &str, v: &[u32]| -> Result<Vec<u16>, ApiError> {
        let mut out = v
            .iter()
            .enumerate()
            .map(|(i, p)| port(&format!("{field}[{i}]"), *p))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    };
    let mut attributes: Vec<(String, String)> = Vec::with_capacity(h.attributes.len());
    for (i, a) in h.attributes.into_iter().enumerate() {
        validate_attribute("hello.attributes", i, &a.name, &a.value)?;
        attributes.push((a.name, a.value));
    }
    attributes.sort();
    if let Some(w) = attributes.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ApiError::invalid(
            "hello.attributes",
            format!("attribute {:?} is given twice", w[0].0),
        ));
    }
    if h.hostname.is_empty() || h.hostname.len() > 255 {
        return Err(ApiError::invalid(
            "hello.hostname",
            "must be 1–255 characters",
        ));
    }
    let address = match h.address.trim() {
        "" => None,
        a => Some(a.parse::<std::net::Ipv4Addr>().map_err(|_| {
            ApiError::invalid("hello.address", format!("{a:?} is not an IPv4 address"))
        })?),
    };
    Ok(HelloFacts {
        address,
        desired_deltas: h.desired_deltas,
        resources: HostResources {
            cpu_units: r.cpu_units,
            memory_mib: r.memory_mib,
            port_range: (start, end),
            reserved_tcp_ports: ports("hello.resources.reservedTcpPorts", &r.reserved_tcp_ports)?,
            reserved_udp_ports: ports("hello.resources.reservedUdpPorts", &r.reserved_udp_ports)?,
        },
        attributes,
        agent_version: h.agent_version,
        hostname: h.hostname,
    })
}

impl AgentApi {
    /// The instance named by the caller's verified client certificate, if
    /// that certificate is not revoked and the instance not deregistered.
    fn authenticate<T>(
        &self,
        req: &Request<T>,
    ) -> Result<(InstanceRecord, PeerIdentity), ApiError> {
        let certs = req.peer_certs().ok_or_else(|| {
            ApiError::Unauthenticated(
                "no client certificate: register this host with `berth-agent register` first"
                    .into(),
            )
        })?;
        let leaf = certs.first().ok_or_else(|| {
            ApiError::Unauthenticated("no client certificate in the TLS handshake".into())
        })?;
        let peer = peer_identity(leaf).map_err(|e| ApiError::Unauthenticated(e.to_string()))?;
        if self.shared.db.is_revoked(&peer.serial)? {
            return Err(ApiError::PermissionDenied(format!(
                "the certificate of container instance {} (serial {}) was revoked",
                peer.instance_id, peer.serial
            )));
        }
        let rec = self
            .shared
            .db
            .instance(&peer.instance_id)?
            .filter(|r| r.cluster == peer.cluster)
            .ok_or_else(|| {
                ApiError::Unauthenticated(format!(
                    "no container instance {} in cluster {}",
                    peer.instance_id, peer.cluster
                ))
            })?;
        if rec.status == InstanceStatus::Inactive {
            return Err(ApiError::PermissionDenied(format!(
                "container instance {} was deregistered",
                rec.id
            )));
        }
        Ok((rec, peer))
    }
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<SchedulerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentApi {
    #[tracing::instrument(skip_all, fields(activation = %req.get_ref().activation_id, host = %req.get_ref().hostname))]
    async fn register(
        &self,
        req: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let req = req.into_inner();
        if req.hostname.is_empty() || req.hostname.len() > 255 {
            return Err(ApiError::invalid("hostname", "must be 1–255 characters").into());
        }
        for (field, v) in [
            ("activationId", &req.activation_id),
            ("activationCode", &req.activation_code),
            ("csrPem", &req.csr_pem),
        ] {
            if v.trim().is_empty() {
                return Err(ApiError::invalid(field, "required").into());
            }
        }
        let code = crate::auth::sha256_hex(req.activation_code.trim());
        let now = now_millis();
        // Checked here before anything is signed, and again in the write.
        let activation = self
            .shared
            .db
            .activation(&req.activation_id)
            .map_err(ApiError::from)?;
        check_activation(activation.as_ref(), &req.activation_id, &code, now)
            .map_err(ApiError::from)?;
        let Some(activation) = activation else {
            return Err(Status::internal("activation vanished"));
        };
        let expected = req.cluster.trim();
        if !expected.is_empty() && expected != activation.cluster {
            return Err(ApiError::Db(crate::db::DbError::FailedPrecondition(format!(
                "activation {} is for cluster {}, not {expected}; the code was not used",
                activation.id, activation.cluster
            )))
            .into());
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let issued = self
            .shared
            .ca
            .sign_client(&req.csr_pem, &activation.cluster, &id)
            .map_err(|e| ApiError::invalid("csrPem", e.to_string()))?;
        let rec = InstanceRecord {
            id: id.clone(),
            cluster: activation.cluster.clone(),
            hostname: req.hostname,
            status: InstanceStatus::Active,
            registered_at: now,
            agent_version: String::new(),
            resources: HostResources::default(),
            attributes: activation.attributes.clone(),
            cert_serials: vec![issued.serial.clone()],
            address: None,
            activation_id: activation.id.clone(),
            custom_attributes: activation.attributes.clone(),
            tags: vec![],
        };
        let cluster = activation.cluster.clone();
        self.shared
            .db
            .register_instance(&req.activation_id, &code, now, rec)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(instance = %id, %cluster, serial = %issued.serial, "container instance registered");
        Ok(Response::new(RegisterResponse {
            container_instance_arn: self.shared.arn.container_instance(&cluster, &id),
            cluster_arn: self.shared.arn.cluster(&cluster),
            container_instance_id: id,
            cert_pem: issued.pem,
            ca_pem: self.shared.ca.ca_pem().to_owned(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn renew_certificate(
        &self,
        req: Request<RenewCertificateRequest>,
    ) -> Result<Response<RenewCertificateResponse>, Status> {
        let (rec, peer) = self.authenticate(&req)?;
        let issued = self
            .shared
            .ca
            .sign_client(&req.get_ref().csr_pem, &rec.cluster, &rec.id)
            .map_err(|e| ApiError::invalid("csrPem", e.to_string()))?;
        let serial = issued.serial.clone();
        self.shared
            .db
            .update_instance(&rec.id, |r| {
                if !r.cert_serials.contains(&serial) {
                    r.cert_serials.push(serial.clone());
                }
            })
            .await
            .map_err(ApiError::from)?;
        tracing::info!(instance = %rec.id, old = %peer.serial, new = %issued.serial, "client certificate renewed");
        Ok(Response::new(RenewCertificateResponse {
            cert_pem: issued.pem,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn describe_self(
        &self,
        req: Request<DescribeSelfRequest>,
    ) -> Result<Response<DescribeSelfResponse>, Status> {
        let (rec, _) = self.authenticate(&req)?;
        let live = self.shared.sessions.liveness(&rec.id);
        tracing::debug!(instance = %rec.id, connected = live.connected, "described itself");
        Ok(Response::new(DescribeSelfResponse {
            container_instance_arn: self.shared.arn.container_instance(&rec.cluster, &rec.id),
            cluster_arn: self.shared.arn.cluster(&rec.cluster),
            status: rec.status.as_str().to_owned(),
            agent_connected: live.connected,
            container_instance_id: rec.id,
        }))
    }

    type ConnectStream = MessageStream;

    async fn connect(
        &self,
        req: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let (rec, _) = self.authenticate(&req)?;
        let id = rec.id.clone();
        // Where the agent connects from: its tasks' address unless it
        // advertises one (IPv4 only; a v4-mapped v6 peer counts).
        let peer = req.remote_addr().and_then(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        });
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10s of connecting"))??;
        let hello = match first.and_then(|m| m.msg) {
            Some(agent_message::Msg::Hello(h)) => h,
            _ => return Err(ApiError::invalid("msg", "the first message must be Hello").into()),
        };
        let facts = validate_hello(hello)?;
        self.shared
            .db
            .update_instance(&id, |r| {
                r.resources = facts.resources.clone();
                // The activation's attributes win over what the host reports.
                r.attributes =
                    InstanceRecord::merged_attributes(&facts.attributes, &r.custom_attributes);
                r.agent_version = facts.agent_version.clone();
                r.hostname = facts.hostname.clone();
                r.address = facts.address.or(peer);
            })
            .await
            .map_err(ApiError::from)?;
        let (out_tx, out_rx) = mpsc::channel::<Outbound>(OUTBOUND_BUFFER);
        let guard = self.shared.sessions.attach(&id, out_tx);
        // The service controller re-evaluates: a returning agent's instance
        // takes tasks again (DAEMON, replacements).
        self.shared.db.changes().notify_one();
        tracing::info!(instance = %id, cpu = facts.resources.cpu_units, memory_mib = facts.resources.memory_mib, "agent connected");

        let welcome = SchedulerMessage {
            msg: Some(scheduler_message::Msg::Welcome(Welcome {
                container_instance_arn: self.shared.arn.container_instance(&rec.cluster, &id),
                cluster_arn: self.shared.arn.cluster(&rec.cluster),
                heartbeat_interval_ms: self.shared.heartbeat_interval.as_millis() as u32,
                heartbeat_ttl_ms: self.shared.sessions.ttl().as_millis() as u32,
            })),
        };
        let ctx = agents::Context {
            db: self.shared.db.clone(),
            arn: self.shared.arn.clone(),
            secrets: self.shared.secrets.clone(),
            logs: self.shared.logs.clone(),
            execs: self.shared.execs.clone(),
            usage: self.shared.usage.clone(),
            rendered: self.shared.rendered.clone(),
        };
        // Subscribe before reading the set, so no change slips between.
        let mut desired = self.shared.db.desired_notifier().subscribe(&id);
        desired.borrow_and_update();
        // The full desired set follows every (re)connect.
        let set = agents::desired::desired_set(&ctx, &id).map_err(ApiError::from)?;
        let mut sender = DeltaSender::new(facts.desired_deltas);
        let (tx, rx) = mpsc::channel::<Result<ToAgent, StreamError>>(16);
        if let Some(first) = sender.update(set.generation, set.tasks) {
            tx.send(Ok(ToAgent::Desired(first)))
                .await
                .map_err(|_| Status::cancelled("agent went away"))?;
        }
        // A reader task feeds the loop, which can then take every report
        // already received and make them durable with one flush.
        let (in_tx, in_rx) = mpsc::channel::<Result<AgentEvent, String>>(INBOUND_BUFFER);
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(m)) => {
                        if in_tx.send(Ok(agent_event(m))).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = in_tx.send(Err(e.to_string())).await;
                        break;
                    }
                }
            }
        });
        let session = AgentSession {
            ctx,
            id,
            guard,
            tx,
            inbound: in_rx,
            outbound: out_rx,
            desired,
            sender,
        };
        tokio::spawn(session.run(self.shutdown.clone()));
        // The Welcome first, then whatever the session sends.
        let out = tokio_stream::once(Ok(welcome)).chain(
            ReceiverStream::new(rx).map(|m| m.map(scheduler_message).map_err(stream_status)),
        );
        Ok(Response::new(Box::pin(out)))
    }
}

fn small_port(field: &str, p: u32) -> Result<u16, ApiError> {
    u16::try_from(p).map_err(|_| ApiError::invalid(field, format!("{p} is not a port")))
}

/// Turns a wire report into a domain report.
pub fn validate_report(r: TaskStatusReport) -> Result<TaskReport, ApiError> {
    let task_id = short_id(r.task_arn.trim()).to_owned();
    if task_id.is_empty() {
        return Err(ApiError::invalid("taskStatus.taskArn", "required"));
    }
    let last_status = r.last_status.parse::<TaskStatus>().map_err(|_| {
        ApiError::invalid(
            "taskStatus.lastStatus",
            format!("{:?} is not an ECS task status", r.last_status),
        )
    })?;
    let stop_code = parse_optional::<StopCode>(&r.stop_code)
        .map_err(|e| ApiError::invalid("taskStatus.stopCode", e.to_string()))?;
    let mut containers = Vec::with_capacity(r.containers.len());
    for (i, c) in r.containers.into_iter().enumerate() {
        let mut bindings = Vec::with_capacity(c.network_bindings.len());
        for (j, b) in c.network_bindings.into_iter().enumerate() {
            let field = format!("taskStatus.containers[{i}].networkBindings[{j}]");
            bindings.push(NetworkBinding {
                // An empty protocol is ECS's default, tcp.
                protocol: parse_optional::<Protocol>(&b.protocol)
                    .map(Option::unwrap_or_default)
                    .map_err(|_| {
                        ApiError::invalid(
                            &format!("{field}.protocol"),
                            format!("{:?} is not tcp or udp", b.protocol),
                        )
                    })?,
                container_port: small_port(&format!("{field}.containerPort"), b.container_port)?,
                host_port: small_port(&format!("{field}.hostPort"), b.host_port)?,
                bind_ip: b.bind_ip,
            });
        }
        let field = format!("taskStatus.containers[{i}]");
        let last_status = parse_optional::<ContainerStatus>(&c.last_status)
            .map_err(|e| ApiError::invalid(&format!("{field}.lastStatus"), e.to_string()))?;
        let health_status = parse_optional::<HealthStatus>(&c.health_status)
            .map_err(|e| ApiError::invalid(&format!("{field}.healthStatus"), e.to_string()))?;
        containers.push(ContainerRecord {
            name: c.name,
            image: String::new(),
            image_digest: c.image_digest,
            runtime_id: c.runtime_id,
            last_status,
            exit_code: c.exit_code,
            reason: c.reason,
            network_bindings: bindings,
            health_status,
            health_check_output: c.health_check_output,
            restart_count: c.restart_count,
            cpu: None,
            memory: None,
            memory_reservation: None,
        });
    }
    let mut target_health = Vec::with_capacity(r.target_health.len());
    for (i, h) in r.target_health.into_iter().enumerate() {
        let field = format!("taskStatus.targetHealth[{i}]");
        let healthy = match h.state.as_str() {
            "healthy" => true,
            "unhealthy" => false,
            other => {
                return Err(ApiError::invalid(
                    &format!("{field}.state"),
                    format!("{other:?} is not healthy or unhealthy"),
                ))
            }
        };
        target_health.push(TargetReport {
            target_group_arn: h.target_group_arn,
            container_name: h.container_name,
            container_port: small_port(&format!("{field}.containerPort"), h.container_port)?,
            healthy,
            reason: h.reason,
            description: h.description,
        });
    }
    Ok(TaskReport {
        task_id,
        last_status,
        stop_code,
        stopped_reason: r.stopped_reason,
        containers,
        pull_started_at: r.pull_started_at.as_ref().map(millis),
        pull_stopped_at: r.pull_stopped_at.as_ref().map(millis),
        started_at: r.started_at.as_ref().map(millis),
        stopped_at: r.stopped_at.as_ref().map(millis),
        health_status: parse_optional::<HealthStatus>(&r.health_status)
            .map_err(|e| ApiError::invalid("taskStatus.healthStatus", e.to_string()))?,
        private_ipv4: parse_optional::<std::net::Ipv4Addr>(&r.private_ipv4_address).map_err(
            |_| {
                ApiError::invalid(
                    "taskStatus.privateIpv4Address",
                    format!("{:?} is not an IPv4 address", r.private_ipv4_address),
                )
            },
        )?,
        target_health,
    })
}

fn log_part(c: LogChunk) -> LogPart {
    LogPart {
        lines: c
            .entries
            .into_iter()
            .map(|e| LogLine {
                time: e.time.as_ref().map(millis),
                container: e.container,
                stream: e.stream,
                log: e.log,
            })
            .collect(),
        eof: c.eof,
        error: Some(c.error).filter(|e| !e.is_empty()),
    }
}

/// A wire message from an agent as a domain event; a report that fails
/// validation becomes [`AgentEvent::InvalidReport`].
fn agent_event(m: AgentMessage) -> AgentEvent {
    match m.msg {
        Some(agent_message::Msg::Heartbeat(_)) | None => AgentEvent::Heartbeat,
        Some(agent_message::Msg::Hello(_)) => AgentEvent::Hello,
        Some(agent_message::Msg::TaskStatus(r)) => match validate_report(r) {
            Ok(r) => AgentEvent::Report(r),
            Err(e) => AgentEvent::InvalidReport(e.to_string()),
        },
        Some(agent_message::Msg::LogChunk(c)) => AgentEvent::LogChunk {
            request_id: c.request_id,
            part: log_part(c),
        },
        Some(agent_message::Msg::ExecOutput(o)) => AgentEvent::ExecOutput {
            stream_id: o.stream_id,
            frame: exec_frame(o.output),
        },
        Some(agent_message::Msg::DesiredAck(a)) => AgentEvent::DesiredAck {
            generation: a.generation,
            resync: a.resync,
        },
        Some(agent_message::Msg::Usage(u)) => AgentEvent::Usage(super::stats::usage_batch(u)),
    }
}

fn exec_frame(o: Option<exec_output::Output>) -> ExecFrame {
    match o {
        Some(exec_output::Output::Stdout(b)) => ExecFrame::Stdout(b),
        Some(exec_output::Output::Stderr(b)) => ExecFrame::Stderr(b),
        Some(exec_output::Output::ExitCode(c)) => ExecFrame::Exit(c),
        Some(exec_output::Output::Error(e)) => ExecFrame::Error(e),
        // A newer agent's kind of output: nothing to pass on.
        None => ExecFrame::Stdout(Vec::new()),
    }
}

fn term_size(s: TermSize) -> TerminalSize {
    TerminalSize {
        width: u32::from(s.width),
        height: u32::from(s.height),
    }
}

fn exec_input(stream_id: u64, input: ExecInput) -> berth_proto::v1::ExecInput {
    use berth_proto::v1::exec_input::Input;
    berth_proto::v1::ExecInput {
        stream_id,
        input: Some(match input {
            ExecInput::Stdin(b) => Input::Stdin(b),
            ExecInput::Resize(s) => Input::Resize(term_size(s)),
            ExecInput::Signal(s) => Input::Signal(s),
            ExecInput::CloseStdin => Input::CloseStdin(true),
        }),
    }
}

/// The wire message for a domain message to an agent.
fn scheduler_message(m: ToAgent) -> SchedulerMessage {
    SchedulerMessage {
        msg: Some(match m {
            ToAgent::Desired(update) => scheduler_message::Msg::DesiredState(desired_state(update)),
            ToAgent::LogRequest { request_id, query } => {
                scheduler_message::Msg::LogRequest(LogRequest {
                    request_id,
                    task_arn: query.task_arn,
                    container: query.container,
                    follow: query.follow,
                    tail: query.tail,
                    since: query.since.map(timestamp),
                })
            }
            ToAgent::LogCancel { request_id } => {
                scheduler_message::Msg::LogCancel(LogCancel { request_id })
            }
            ToAgent::ExecStart { stream_id, spec } => {
                scheduler_message::Msg::ExecStart(berth_proto::v1::ExecStart {
                    stream_id,
                    task_arn: spec.task_arn,
                    container: spec.container,
                    command: spec.command,
                    interactive: spec.interactive,
                    tty: spec.tty,
                    size: spec.size.map(term_size),
                })
            }
            ToAgent::ExecInput { stream_id, input } => {
                scheduler_message::Msg::ExecInput(exec_input(stream_id, input))
            }
            ToAgent::ExecCancel { stream_id } => {
                scheduler_message::Msg::ExecCancel(berth_proto::v1::ExecCancel { stream_id })
            }
            ToAgent::StatsSampling { interval_ms } => {
                scheduler_message::Msg::StatsSampling(berth_proto::v1::StatsSampling {
                    interval_ms,
                })
            }
        }),
    }
}

fn desired_state(update: DesiredUpdate) -> DesiredState {
    match update {
        Update::Full { generation, items } => DesiredState {
            generation,
            tasks: items.into_iter().map(desired_task).collect(),
            ..Default::default()
        },
        Update::Delta {
            base,
            generation,
            upserts,
            removed,
        } => DesiredState {
            generation,
            tasks: upserts.into_iter().map(desired_task).collect(),
            delta: true,
            base_generation: base,
            removed_task_arns: removed,
        },
    }
}

fn desired_task(t: agents::DesiredTask) -> DesiredTask {
    DesiredTask {
        task_arn: t.task_arn,
        desired_status: t.desired_status.as_str().to_owned(),
        task_definition_json: t.task_definition_json,
        cluster: t.cluster,
        family: t.family,
        revision: t.revision,
        ports: t
            .ports
            .into_iter()
            .map(|p| PortAssignment {
                container_name: p.container_name,
                container_port: u32::from(p.container_port),
                protocol: p.protocol.as_str().to_owned(),
                host_port: u32::from(p.host_port),
            })
            .collect(),
        stop_code: t
            .stop_code
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        stopped_reason: t.stopped_reason,
        group: t.group,
        target_checks: t
            .target_checks
            .into_iter()
            .map(|c| TargetCheck {
                target_group_arn: c.target_group_arn,
                container_name: c.container_name,
                container_port: u32::from(c.container_port),
                host_port: u32::from(c.host_port),
                health_check: Some(berth_proto::v1::HealthCheck {
                    protocol: c.check.protocol.as_str().to_owned(),
                    path: c.check.path,
                    port: c.check.port.render(),
                    interval_seconds: c.check.interval_secs,
                    timeout_seconds: c.check.timeout_secs,
                    healthy_threshold: c.check.healthy_threshold,
                    unhealthy_threshold: c.check.unhealthy_threshold,
                    matcher: c.check.matcher,
                }),
            })
            .collect(),
        secrets: t
            .secrets
            .env
            .into_iter()
            .map(|e| SecretValue {
                container_name: e.container,
                name: e.name,
                value: e.value,
            })
            .collect(),
        repository_credentials: t
            .secrets
            .registry
            .into_iter()
            .map(|r| RepositoryCredentials {
                container_name: r.container,
                username: r.username,
                password: r.password,
            })
            .collect(),
    }
}

fn stream_status(e: StreamError) -> Status {
    match e {
        StreamError::Unavailable(cause) => Status::unavailable(cause),
        StreamError::PermissionDenied(reason) => Status::permission_denied(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::{Attribute, HostResources as WireResources};

    fn hello() -> Hello {
        Hello {
            resources: Some(WireResources {
                cpu_units: 2048,
                memory_mib: 4000,
                port_range_start: 20000,
                port_range_end: 32767,
                reserved_tcp_ports: vec![22, 22, 51679],
                reserved_udp_ports: vec![],
            }),
            attributes: vec![
                Attribute {
                    name: "ecs.os-type".into(),
                    value: "linux".into(),
                },
                Attribute {
                    name: "ecs.availability-zone".into(),
                    value: "rack-1".into(),
                },
            ],
            agent_version: "0.1.0".into(),
            hostname: "h1".into(),
            address: String::new(),
            desired_deltas: true,
        }
    }

    #[test]
    fn reports_carry_ecs_stop_codes() {
        let report = |status: &str, code: &str| TaskStatusReport {
            task_arn: "arn:aws:ecs:local:0:task/default/0123".into(),
            last_status: status.into(),
            stop_code: code.into(),
            ..Default::default()
        };
        let r = validate_report(report("STOPPED", "EssentialContainerExited")).unwrap();
        assert_eq!(r.stop_code, Some(StopCode::EssentialContainerExited));
        assert_eq!(
            validate_report(report("RUNNING", "")).unwrap().stop_code,
            None
        );
        match validate_report(report("STOPPED", "Bored")).unwrap_err() {
            ApiError::Invalid { field, .. } => assert_eq!(field, "taskStatus.stopCode"),
            e => panic!("{e}"),
        }
        let mut bad = report("RUNNING", "");
        bad.containers = vec![berth_proto::v1::ContainerStatus {
            name: "web".into(),
            last_status: "RUNNING".into(),
            health_status: "SICK".into(),
            ..Default::default()
        }];
        match validate_report(bad).unwrap_err() {
            ApiError::Invalid { field, .. } => {
                assert_eq!(field, "taskStatus.containers[0].healthStatus")
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn reports_carry_the_awsvpc_address() {
        let report = |ip: &str| TaskStatusReport {
            task_arn: "arn:aws:ecs:local:0:task/default/0123".into(),
            last_status: "RUNNING".into(),
            private_ipv4_address: ip.into(),
            ..Default::default()
        };
        assert_eq!(
            validate_report(report("10.213.0.5")).unwrap().private_ipv4,
            Some(std::net::Ipv4Addr::new(10, 213, 0, 5))
        );
        assert_eq!(validate_report(report("")).unwrap().private_ipv4, None);
        for bad in ["fe80::1", "10.0.0", "host"] {
            match validate_report(report(bad)).unwrap_err() {
                ApiError::Invalid { field, .. } => {
                    assert_eq!(field, "taskStatus.privateIpv4Address")
                }
                e => panic!("{e}"),
            }
        }
    }

    #[test]
    fn agent_messages_become_domain_events() {
        let event = |msg| agent_event(AgentMessage { msg });
        assert_eq!(event(None), AgentEvent::Heartbeat);
        assert_eq!(
            event(Some(agent_message::Msg::Hello(hello()))),
            AgentEvent::Hello
        );
        let report = TaskStatusReport {
            task_arn: "arn:aws:ecs:local:0:task/default/0123".into(),
            last_status: "RUNNING".into(),
            ..Default::default()
        };
        match event(Some(agent_message::Msg::TaskStatus(report.clone()))) {
            AgentEvent::Report(r) => assert_eq!(r.task_id, "0123"),
            e => panic!("{e:?}"),
        }
        let bad = TaskStatusReport {
            last_status: "BORED".into(),
            ..report
        };
        assert!(matches!(
            event(Some(agent_message::Msg::TaskStatus(bad))),
            AgentEvent::InvalidReport(_)
        ));
        let chunk = LogChunk {
            request_id: 7,
            eof: true,
            error: "gone".into(),
            ..Default::default()
        };
        match event(Some(agent_message::Msg::LogChunk(chunk))) {
            AgentEvent::LogChunk { request_id, part } => {
                assert_eq!(request_id, 7);
                assert!(part.eof);
                assert_eq!(part.error.as_deref(), Some("gone"));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn valid_hello_is_normalised() {
        let f = validate_hello(hello()).unwrap();
        assert_eq!(f.resources.reserved_tcp_ports, vec![22, 51679]);
        assert_eq!(f.attributes[0].0, "ecs.availability-zone", "sorted by name");
    }

    #[test]
    fn invalid_hellos_name_the_field() {
        let field = |h: Hello| match validate_hello(h).unwrap_err() {
            ApiError::Invalid { field, .. } => field,
            e => panic!("{e}"),
        };
        let mut h = hello();
        h.resources = None;
        assert_eq!(field(h), "hello.resources");
        let mut h = hello();
        h.resources.as_mut().unwrap().cpu_units = 0;
        assert_eq!(field(h), "hello.resources.cpuUnits");
        let mut h = hello();
        h.resources.as_mut().unwrap().port_range_start = 40000;
        assert_eq!(field(h), "hello.resources.portRangeStart");
        let mut h = hello();
        h.resources.as_mut().unwrap().reserved_udp_ports = vec![70000];
        assert_eq!(field(h), "hello.resources.reservedUdpPorts[0]");
        let mut h = hello();
        h.attributes[1].name = "bad name!".into();
        assert_eq!(field(h), "hello.attributes[1].name");
        let mut h = hello();
        h.attributes[1].name = "ecs.os-type".into();
        assert_eq!(field(h), "hello.attributes");
        // ECS's value rule, as the agent's configuration applies it.
        let mut h = hello();
        h.attributes[1].value = "rack-1 ".into();
        assert_eq!(field(h), "hello.attributes[1].value");
        let mut h = hello();
        h.attributes[1].value = String::new();
        assert!(validate_hello(h).is_ok(), "a presence-only attribute");
    }

    #[test]
    fn activation_attributes_win_over_the_hello() {
        let reported = vec![
            ("ecs.os-type".to_owned(), "linux".to_owned()),
            ("rack".to_owned(), "spoofed".to_owned()),
        ];
        let custom = vec![("rack".to_owned(), "r1".to_owned())];
        assert_eq!(
            InstanceRecord::merged_attributes(&reported, &custom),
            vec![
                ("ecs.os-type".to_owned(), "linux".to_owned()),
                ("rack".to_owned(), "r1".to_owned()),
            ]
        );
    }
}
