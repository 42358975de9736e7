//! `AgentService`: hosts join with `Register` and then hold one `Connect`
//! stream each.
//!
//! Identity never comes from a message body: `Connect`, `RenewCertificate`
//! and `DescribeSelf` take the instance from the client certificate that
//! rustls verified against the cluster CA (subject CN and SAN URI), and
//! refuse revoked serials and deregistered instances. `Register` needs no
//! certificate: the activation code is its credential.

use std::pin::Pin;
use std::time::Duration;

use berth_proto::arn::short_id;
use berth_proto::ecs::{parse_optional, ContainerStatus, HealthStatus, StopCode};
use berth_proto::v1::{
    agent_message, agent_service_server::AgentService, scheduler_message, AgentMessage,
    DescribeSelfRequest, DescribeSelfResponse, DesiredState, DesiredTask, Hello, LogCancel,
    LogChunk, LogRequest, PortAssignment, RegisterRequest, RegisterResponse,
    RenewCertificateRequest, RenewCertificateResponse, RepositoryCredentials, SchedulerMessage,
    SecretValue, TaskStatusReport, Welcome,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::convert::validate_attribute;
use super::{millis, timestamp, ApiError, Shared};
use crate::agent_link::{LogLine, LogPart, Outbound};
use crate::db::{check_activation, ReportOutcome, TaskReport};
use crate::records::{
    now_millis, ContainerRecord, DesiredStatus, HostResources, InstanceRecord, InstanceStatus,
    NetworkBinding, Protocol, TaskDefinitionRecord, TaskRecord, TaskStatus,
};
use crate::sessions::SessionGuard;
use crate::tls::{peer_identity, PeerIdentity};
/// How long a new stream may take to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages the API may queue for one stream (log requests).
const OUTBOUND_BUFFER: usize = 64;
/// Agent messages read ahead of the loop that handles them.
const INBOUND_BUFFER: usize = 256;
/// Most reports made durable by one flush.
const MAX_BATCH: usize = 256;

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
    Ok(HelloFacts {
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
            activation_id: activation.id.clone(),
            custom_attributes: activation.attributes.clone(),
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
            })
            .await
            .map_err(ApiError::from)?;
        let (out_tx, out_rx) = mpsc::channel::<Outbound>(OUTBOUND_BUFFER);
        let guard = self.shared.sessions.attach(&id, out_tx);
        // The service controller re-evaluates: a returning agent's instance
        // takes tasks again (DAEMON, replacements).
        self.shared.db.changes().notify_one();
        tracing::info!(instance = %id, cpu = facts.resources.cpu_units, memory_mib = facts.resources.memory_mib, "agent connected");

        let (tx, rx) = mpsc::channel::<Result<SchedulerMessage, Status>>(16);
        let welcome = SchedulerMessage {
            msg: Some(scheduler_message::Msg::Welcome(Welcome {
                container_instance_arn: self.shared.arn.container_instance(&rec.cluster, &id),
                cluster_arn: self.shared.arn.cluster(&rec.cluster),
                heartbeat_interval_ms: self.shared.heartbeat_interval.as_millis() as u32,
                heartbeat_ttl_ms: self.shared.sessions.ttl().as_millis() as u32,
            })),
        };
        // Subscribe before reading the set, so no change slips between.
        let mut desired = self.shared.db.desired_notifier().subscribe(&id);
        desired.borrow_and_update();
        // The full desired set follows every (re)connect.
        let first = desired_message(&self.shared, &id)?;
        for m in [welcome, first] {
            tx.send(Ok(m))
                .await
                .map_err(|_| Status::cancelled("agent went away"))?;
        }
        // A reader task feeds the loop, which can then take every report
        // already received and make them durable with one flush.
        let (in_tx, in_rx) = mpsc::channel::<Result<AgentMessage, Status>>(INBOUND_BUFFER);
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(m)) => {
                        if in_tx.send(Ok(m)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = in_tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        });
        let stream = AgentStream {
            shared: self.shared.clone(),
            id,
            guard,
            tx,
            inbound: in_rx,
            outbound: out_rx,
            desired,
        };
        tokio::spawn(stream.run(self.shutdown.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The full desired set of `instance` as a `DesiredState` message.
fn desired_message(shared: &Shared, instance: &str) -> Result<SchedulerMessage, ApiError> {
    let (generation, tasks) = shared.db.desired_set(instance)?;
    let mut definitions: Vec<((String, u32), TaskDefinitionRecord, String)> = Vec::new();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let key = (t.family.clone(), t.revision);
        let (td, json) = match definitions.iter().find(|(k, _, _)| *k == key) {
            Some((_, td, j)) => (td.clone(), j.clone()),
            None => {
                let td = shared.db.task_definition(&t.family, Some(t.revision))?;
                let j = td.describe_json(&shared.arn);
                definitions.push((key, td.clone(), j.clone()));
                (td, j)
            }
        };
        // RunTask's overrides: the agent runs the definition as overridden.
        let (td, json) = match &t.overrides {
            Some(o) => {
                let mut td = td;
                td.definition = o.apply(&td.definition);
                let j = td.describe_json(&shared.arn);
                (td, j)
            }
            None => (td, json),
        };
        let (secrets, repository_credentials) = task_secrets(shared, &t, &td);
        out.push(DesiredTask {
            task_arn: shared.arn.task(&t.cluster, &t.id),
            desired_status: t.desired_status.as_str().to_owned(),
            task_definition_json: json,
            cluster: t.cluster.clone(),
            family: t.family.clone(),
            revision: t.revision,
            ports: t
                .reservation
                .ports
                .iter()
                .map(|p| PortAssignment {
                    container_name: p.container_name.clone(),
                    container_port: u32::from(p.container_port),
                    protocol: p.protocol.as_str().to_owned(),
                    host_port: u32::from(p.host_port),
                })
                .collect(),
            stop_code: t
                .stop_code
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            stopped_reason: t.stopped_reason.clone(),
            secrets,
            repository_credentials,
        });
    }
    Ok(SchedulerMessage {
        msg: Some(scheduler_message::Msg::DesiredState(DesiredState {
            generation,
            tasks: out,
        })),
    })
}

/// The secret values a task's agent needs, only while the task should run
/// and has not stopped. A reference that cannot be resolved now (a secret
/// deleted since StartTask) is logged by path and name and left out: the
/// agent then fails that container's start, naming it.
fn task_secrets(
    shared: &Shared,
    t: &TaskRecord,
    td: &TaskDefinitionRecord,
) -> (Vec<SecretValue>, Vec<RepositoryCredentials>) {
    if t.desired_status != DesiredStatus::Running || t.last_status == TaskStatus::Stopped {
        return (vec![], vec![]);
    }
    let resolved = match shared.secrets.resolve_task(&td.definition) {
        Ok((resolved, issues)) => {
            for i in issues {
                tracing::warn!(task = %t.id, path = %i.path, cause = %i.message, "a secret of the task cannot be resolved");
            }
            resolved
        }
        Err(e) => {
            tracing::error!(task = %t.id, cause = %e, "cannot read the task's secrets");
            return (vec![], vec![]);
        }
    };
    (
        resolved
            .env
            .into_iter()
            .map(|e| SecretValue {
                container_name: e.container,
                name: e.name,
                value: e.value,
            })
            .collect(),
        resolved
            .registry
            .into_iter()
            .map(|r| RepositoryCredentials {
                container_name: r.container,
                username: r.username,
                password: r.password,
            })
            .collect(),
    )
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

/// The message for `o`; `None` for [`Outbound::Close`], which ends the stream.
fn outbound_message(o: Outbound) -> Option<SchedulerMessage> {
    Some(SchedulerMessage {
        msg: Some(match o {
            Outbound::LogRequest { request_id, query } => {
                scheduler_message::Msg::LogRequest(LogRequest {
                    request_id,
                    task_arn: query.task_arn,
                    container: query.container,
                    follow: query.follow,
                    tail: query.tail,
                    since: query.since.map(timestamp),
                })
            }
            Outbound::LogCancel { request_id } => {
                scheduler_message::Msg::LogCancel(LogCancel { request_id })
            }
            Outbound::Close { .. } => return None,
        }),
    })
}

/// One agent's welcomed `Connect` stream: reports and log chunks in, the
/// desired set and log requests out, in one loop.
struct AgentStream {
    shared: Shared,
    /// The session's identity (from the credential, never a message body).
    id: String,
    guard: SessionGuard,
    tx: mpsc::Sender<Result<SchedulerMessage, Status>>,
    inbound: mpsc::Receiver<Result<AgentMessage, Status>>,
    outbound: mpsc::Receiver<Outbound>,
    desired: tokio::sync::watch::Receiver<u64>,
}

/// Why a stream's loop ended.
enum End {
    AgentClosed,
    /// The instance was deregistered while connected.
    Revoked(String),
    Failed(String),
    Shutdown,
}

impl AgentStream {
    async fn run(mut self, shutdown: CancellationToken) {
        let end = loop {
            tokio::select! {
                m = self.inbound.recv() => match m {
                    None => break End::AgentClosed,
                    Some(Err(e)) => break End::Failed(e.to_string()),
                    Some(Ok(first)) => {
                        if let Err(e) = self.handle_batch(first).await {
                            break e;
                        }
                    }
                },
                Some(o) = self.outbound.recv() => {
                    if let Outbound::Close { reason } = &o {
                        break End::Revoked(reason.clone());
                    }
                    if let Some(m) = outbound_message(o) {
                        if self.tx.send(Ok(m)).await.is_err() {
                            break End::AgentClosed;
                        }
                    }
                }
                changed = self.desired.changed() => {
                    if changed.is_err() {
                        break End::Failed("desired-state notifier gone".into());
                    }
                    self.desired.borrow_and_update();
                    match desired_message(&self.shared, &self.id) {
                        Ok(m) => if self.tx.send(Ok(m)).await.is_err() { break End::AgentClosed },
                        Err(e) => break End::Failed(format!("reading the desired set: {e}")),
                    }
                }
                _ = self.tx.closed() => break End::AgentClosed,
                _ = shutdown.cancelled() => break End::Shutdown,
            }
        };
        let id = &self.id;
        match end {
            End::AgentClosed => {}
            End::Failed(cause) => {
                tracing::info!(instance = %id, %cause, "agent stream failed");
                let _ = self.tx.try_send(Err(Status::unavailable(cause)));
            }
            End::Revoked(reason) => {
                tracing::info!(instance = %id, %reason, "closing the agent's stream");
                let _ = self.tx.send(Err(Status::permission_denied(reason))).await;
            }
            End::Shutdown => {
                let _ = self
                    .tx
                    .send(Err(Status::unavailable("scheduler shutting down")))
                    .await;
            }
        }
        self.shared
            .logs
            .fail_instance(id, "the agent disconnected while its logs were being read");
        drop(self.guard);
    }

    /// Handles `first` and every message already waiting, then makes their
    /// reports durable with one flush.
    async fn handle_batch(&mut self, first: AgentMessage) -> Result<(), End> {
        let mut reports = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            self.guard.heartbeat();
            match m.msg {
                Some(agent_message::Msg::Heartbeat(_)) | None => {}
                Some(agent_message::Msg::Hello(_)) => {
                    tracing::warn!(instance = %self.id, "second Hello on one stream ignored");
                }
                Some(agent_message::Msg::TaskStatus(r)) => match validate_report(r) {
                    Ok(r) => reports.push(r),
                    Err(e) => {
                        tracing::warn!(instance = %self.id, cause = %e, "invalid task report ignored")
                    }
                },
                Some(agent_message::Msg::LogChunk(c)) => {
                    let request_id = c.request_id;
                    let eof = c.eof;
                    let delivered = self
                        .shared
                        .logs
                        .deliver(&self.id, request_id, log_part(c))
                        .await;
                    if !delivered && !eof {
                        // Nobody reads this any more: tell the agent to stop.
                        let cancel = SchedulerMessage {
                            msg: Some(scheduler_message::Msg::LogCancel(LogCancel { request_id })),
                        };
                        if self.tx.send(Ok(cancel)).await.is_err() {
                            return Err(End::AgentClosed);
                        }
                    }
                }
            }
            if reports.len() < MAX_BATCH {
                match self.inbound.try_recv() {
                    Ok(Ok(m)) => next = Some(m),
                    Ok(Err(e)) => {
                        self.apply(&reports).await?;
                        return Err(End::Failed(e.to_string()));
                    }
                    Err(_) => {}
                }
            }
        }
        self.apply(&reports).await
    }

    async fn apply(&self, reports: &[TaskReport]) -> Result<(), End> {
        if reports.is_empty() {
            return Ok(());
        }
        let outcomes = self
            .shared
            .db
            .apply_reports(&self.id, reports)
            .await
            // Unrecorded reports would be lost: end the stream, so the agent
            // reconnects and reports every task again.
            .map_err(|e| End::Failed(format!("recording task reports: {e}")))?;
        for (r, o) in reports.iter().zip(outcomes) {
            match o {
                ReportOutcome::Applied => {
                    tracing::info!(instance = %self.id, task = %r.task_id, last_status = r.last_status.as_str(), "task status")
                }
                ReportOutcome::Unchanged => {}
                ReportOutcome::Regression => {
                    tracing::debug!(instance = %self.id, task = %r.task_id, last_status = r.last_status.as_str(), "task report ignored: regression")
                }
                ReportOutcome::UnknownTask => {
                    tracing::warn!(instance = %self.id, task = %r.task_id, "report for an unknown task ignored")
                }
                ReportOutcome::ForeignTask => {
                    tracing::warn!(instance = %self.id, task = %r.task_id, "report for another instance's task refused")
                }
            }
        }
        Ok(())
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
