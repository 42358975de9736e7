//! A fake agent: the real `AgentService` protocol (an activation, Register
//! with a CSR, Connect over mutual TLS with Hello, heartbeats) driven by the
//! test instead of containerd. It takes desired-state deltas as the real
//! agent does (and acknowledges them), keeps the whole desired set, records
//! every `LogRequest` and `StatsSampling` it receives and sends whatever
//! reports and log chunks the test tells it to; [`FakeAgent::autopilot`]
//! plays a well-behaved agent (PENDING → RUNNING with the assigned ports as
//! bindings, STOPPED when told, canned log lines).
//!
//! It stands in for the agent's containerd runtime where a test is about
//! the scheduler: the scheduler cannot tell the difference. The end-to-end
//! tests of the real runtime use the real agent (`Agent`, `cluster`).

use std::time::Duration;

use berth_proto::delta::{DeltaReceiver, Update};
use berth_proto::v1::activation_service_client::ActivationServiceClient;
use berth_proto::v1::agent_service_client::AgentServiceClient;
use berth_proto::v1::{
    agent_message, scheduler_message, AgentMessage, ContainerStatus, CreateActivationRequest,
    DesiredAck, DesiredState, DesiredTask, Heartbeat, Hello, HostResources, LogChunk, LogEntry,
    LogRequest, NetworkBinding, RegisterRequest, RegisterResponse, TaskStatusReport,
};
use tokio::sync::{mpsc, watch, Mutex};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Where a fake agent connects: the scheduler's TLS endpoint and CA, and an
/// operator channel for making activations.
#[derive(Debug, Clone)]
pub struct AgentTarget {
    pub endpoint: String,
    pub ca_pem: String,
    /// Carries the admin token.
    pub operator: crate::AuthedChannel,
}

/// A host's certificate and key, as Register gave them.
#[derive(Debug, Clone)]
pub struct AgentCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl AgentTarget {
    /// A TLS channel to the scheduler, with `cert` as client certificate.
    pub async fn channel(&self, cert: Option<&AgentCert>) -> Result<Channel, String> {
        berth_proto::trust::install_crypto_provider();
        berth_proto::trust::endpoint(
            &self.endpoint,
            &self.ca_pem,
            cert.map(|c| (c.cert_pem.as_str(), c.key_pem.as_str())),
        )
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| berth_proto::errors::error_chain(&e))
    }

    /// A new activation: (id, code).
    pub async fn activation(&self, cluster: &str, limit: u32, ttl_secs: u64) -> (String, String) {
        let r = ActivationServiceClient::new(self.operator.clone())
            .create_activation(CreateActivationRequest {
                cluster: cluster.to_owned(),
                expires_in_seconds: ttl_secs,
                registration_limit: limit,
                attributes: vec![],
            })
            .await
            .expect("create activation")
            .into_inner();
        (
            r.activation.expect("activation").activation_id,
            r.activation_code,
        )
    }

    /// Register with an activation and a new key: the answer and the key.
    pub async fn register(
        &self,
        activation_id: &str,
        code: &str,
    ) -> Result<(RegisterResponse, AgentCert), tonic::Status> {
        let key = rcgen::KeyPair::generate().expect("key");
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem");
        let channel = self
            .channel(None)
            .await
            .map_err(tonic::Status::unavailable)?;
        let r = AgentServiceClient::new(channel)
            .register(RegisterRequest {
                activation_id: activation_id.to_owned(),
                activation_code: code.to_owned(),
                csr_pem: csr,
                hostname: "fake-host".to_owned(),
                cluster: String::new(),
            })
            .await?
            .into_inner();
        let cert = AgentCert {
            cert_pem: r.cert_pem.clone(),
            key_pem: key.serialize_pem(),
        };
        Ok((r, cert))
    }
}

/// What the fake host offers.
#[derive(Debug, Clone)]
pub struct FakeHost {
    pub cpu_units: i64,
    pub memory_mib: i64,
    pub port_range: (u32, u32),
    pub reserved_tcp_ports: Vec<u32>,
    /// Reported in Hello (e.g. a zone).
    pub attributes: Vec<(String, String)>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self {
            cpu_units: 2048,
            memory_mib: 1024,
            port_range: (20000, 32767),
            reserved_tcp_ports: vec![22],
            attributes: vec![],
        }
    }
}

/// What a fake agent reports for a task's target check: "healthy",
/// "unhealthy", or empty for no verdict yet.
pub type TargetVerdicts = std::sync::Arc<
    dyn Fn(&berth_proto::v1::DesiredTask, &berth_proto::v1::TargetCheck) -> String + Send + Sync,
>;

/// How [`FakeAgent::autopilot_with`] plays its tasks.
#[derive(Clone)]
pub struct Autopilot {
    /// Between PENDING and RUNNING.
    pub start_delay: Duration,
    /// Tasks for which this holds fail to start (STOPPED with
    /// TaskFailedToStart instead of RUNNING).
    pub fail: std::sync::Arc<dyn Fn(&berth_proto::v1::DesiredTask) -> bool + Send + Sync>,
    /// The task healthStatus reported with RUNNING (empty: none).
    pub health: std::sync::Arc<dyn Fn(&berth_proto::v1::DesiredTask) -> String + Send + Sync>,
    /// The state reported with RUNNING for each of the task's target
    /// checks: "healthy", "unhealthy", or empty for no verdict yet.
    pub targets: TargetVerdicts,
}

impl Default for Autopilot {
    fn default() -> Self {
        Self {
            start_delay: Duration::ZERO,
            fail: std::sync::Arc::new(|_| false),
            health: std::sync::Arc::new(|_| String::new()),
            targets: std::sync::Arc::new(|_, _| "healthy".to_owned()),
        }
    }
}

/// A connected fake agent. Dropping it closes its stream.
pub struct FakeAgent {
    pub id: String,
    pub arn: String,
    /// What Register returned; [`FakeAgent::reconnect`] presents it again.
    pub cert: AgentCert,
    tx: mpsc::Sender<AgentMessage>,
    desired: watch::Receiver<Option<DesiredState>>,
    /// Every `DesiredState` message as it came on the wire, in order.
    received: std::sync::Arc<std::sync::Mutex<Vec<WireDesired>>>,
    log_requests: Mutex<mpsc::Receiver<LogRequest>>,
    /// The latest `StatsSampling.interval_ms` received (`None`: none yet).
    sampling: watch::Receiver<Option<u32>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One `DesiredState` message as the scheduler sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireDesired {
    pub delta: bool,
    pub base_generation: u64,
    pub generation: u64,
    /// The ARNs of the tasks it carried (all, or the changed ones).
    pub tasks: Vec<String>,
    pub removed: Vec<String>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeAgent {
    /// Registers with a new activation for `cluster`, connects over mutual
    /// TLS and says Hello; heartbeats every 200 ms.
    pub async fn join(target: &AgentTarget, cluster: &str, host: FakeHost) -> Self {
        let (id, code) = target.activation(cluster, 1, 0).await;
        let (reg, cert) = target.register(&id, &code).await.expect("register");
        Self::reconnect(
            target,
            reg.container_instance_id,
            reg.container_instance_arn,
            cert,
            host,
        )
        .await
    }

    /// Connects as an instance that registered before (a restarted agent).
    pub async fn reconnect(
        target: &AgentTarget,
        id: String,
        arn: String,
        cert: AgentCert,
        host: FakeHost,
    ) -> Self {
        let channel = target.channel(Some(&cert)).await.expect("mTLS channel");
        let mut client = AgentServiceClient::new(channel);
        let (tx, rx) = mpsc::channel::<AgentMessage>(256);
        tx.send(AgentMessage {
            msg: Some(agent_message::Msg::Hello(Hello {
                resources: Some(HostResources {
                    cpu_units: host.cpu_units,
                    memory_mib: host.memory_mib,
                    port_range_start: host.port_range.0,
                    port_range_end: host.port_range.1,
                    reserved_tcp_ports: host.reserved_tcp_ports.clone(),
                    reserved_udp_ports: vec![],
                }),
                attributes: host
                    .attributes
                    .iter()
                    .map(|(name, value)| berth_proto::v1::Attribute {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                agent_version: "fake".to_owned(),
                hostname: "fake-host".to_owned(),
                address: String::new(),
                desired_deltas: true,
            })),
        })
        .await
        .expect("queue hello");
        let req = tonic::Request::new(ReceiverStream::new(rx));
        let mut down = client.connect(req).await.expect("connect").into_inner();
        let (desired_tx, desired) = watch::channel(None);
        let (log_tx, log_rx) = mpsc::channel(64);
        let acks = tx.clone();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = received.clone();
        let (sampling_tx, sampling) = watch::channel(None);
        let reader = tokio::spawn(async move {
            // Deltas applied as the real agent does: the watch holds the whole set.
            let mut held = DeltaReceiver::<DesiredTask>::default();
            while let Ok(Some(m)) = down.message().await {
                match m.msg {
                    Some(scheduler_message::Msg::DesiredState(d)) => {
                        if let Ok(mut log) = log.lock() {
                            log.push(WireDesired {
                                delta: d.delta,
                                base_generation: d.base_generation,
                                generation: d.generation,
                                tasks: d.tasks.iter().map(|t| t.task_arn.clone()).collect(),
                                removed: d.removed_task_arns.clone(),
                            });
                        }
                        let update = if d.delta {
                            Update::Delta {
                                base: d.base_generation,
                                generation: d.generation,
                                upserts: d.tasks,
                                removed: d.removed_task_arns,
                            }
                        } else {
                            Update::Full {
                                generation: d.generation,
                                items: d.tasks,
                            }
                        };
                        let ack = match held.apply(update) {
                            Ok(generation) => {
                                desired_tx.send_replace(Some(DesiredState {
                                    generation,
                                    tasks: held.items().cloned().collect(),
                                    ..Default::default()
                                }));
                                DesiredAck {
                                    generation,
                                    resync: false,
                                }
                            }
                            Err(_) => DesiredAck {
                                generation: 0,
                                resync: true,
                            },
                        };
                        let ack = AgentMessage {
                            msg: Some(agent_message::Msg::DesiredAck(ack)),
                        };
                        if acks.send(ack).await.is_err() {
                            return;
                        }
                    }
                    Some(scheduler_message::Msg::LogRequest(r)) => {
                        let _ = log_tx.send(r).await;
                    }
                    Some(scheduler_message::Msg::StatsSampling(s)) => {
                        sampling_tx.send_replace(Some(s.interval_ms));
                    }
                    _ => {}
                }
            }
        });
        let beat = tokio::spawn({
            let tx = tx.clone();
            async move {
                for seq in 0.. {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let hb = AgentMessage {
                        msg: Some(agent_message::Msg::Heartbeat(Heartbeat {
                            seq,
                            sent_at: None,
                        })),
                    };
                    if tx.send(hb).await.is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            id,
            arn,
            cert,
            tx,
            desired,
            received,
            log_requests: Mutex::new(log_rx),
            sampling,
            tasks: vec![reader, beat],
        }
    }

    /// Every `DesiredState` message received so far, as sent.
    pub fn desired_messages(&self) -> Vec<WireDesired> {
        self.received.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits (up to 10 s) for a desired state for which `want` holds.
    pub async fn desired_where(&self, want: impl Fn(&DesiredState) -> bool) -> DesiredState {
        let mut rx = self.desired.clone();
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(d) = rx.borrow_and_update().as_ref().filter(|d| want(d)) {
                    return d.clone();
                }
                rx.changed().await.expect("agent stream open");
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "no matching desired state within 10s; last: {:?}",
                self.desired.borrow()
            )
        })
    }

    /// Waits (up to 10 s) until the latest `StatsSampling` asked for
    /// `interval_ms`.
    pub async fn sampling_becomes(&self, interval_ms: u32) {
        let mut rx = self.sampling.clone();
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while *rx.borrow_and_update() != Some(interval_ms) {
                rx.changed().await.expect("agent stream open");
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "no StatsSampling of {interval_ms} ms within 10s; last: {:?}",
            self.sampling.borrow()
        );
    }

    pub async fn send(&self, msg: agent_message::Msg) {
        self.tx
            .send(AgentMessage { msg: Some(msg) })
            .await
            .expect("agent stream open");
    }

    pub async fn report(&self, r: TaskStatusReport) {
        self.send(agent_message::Msg::TaskStatus(r)).await;
    }

    /// The next log request the scheduler forwarded (up to 10 s).
    pub async fn next_log_request(&self) -> LogRequest {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.log_requests.lock().await.recv(),
        )
        .await
        .expect("a log request within 10s")
        .expect("agent stream open")
    }

    /// Plays a well-behaved agent in the background: every desired RUNNING
    /// task is reported PENDING then RUNNING with its assigned ports as
    /// bindings and a runtime id per container; every desired STOPPED one
    /// STOPPED (exit code 0). Each log request gets two lines per container
    /// and eof.
    pub fn autopilot(self) -> Self {
        self.autopilot_with(Autopilot::default())
    }

    /// [`autopilot`](Self::autopilot) with a start delay and tasks that
    /// fail to start.
    pub fn autopilot_with(mut self, pilot: Autopilot) -> Self {
        let desired = self.desired.clone();
        let tx = self.tx.clone();
        let driver = tokio::spawn(async move {
            let mut desired = desired;
            let mut reported: Vec<(String, &'static str)> = Vec::new();
            loop {
                let state = desired.borrow_and_update().clone();
                if let Some(d) = state {
                    for t in &d.tasks {
                        let steps: &[&'static str] = if t.desired_status == "RUNNING" {
                            &["PENDING", "RUNNING"]
                        } else {
                            &["STOPPED"]
                        };
                        for step in steps {
                            if reported.contains(&(t.task_arn.clone(), *step)) {
                                continue;
                            }
                            reported.push((t.task_arn.clone(), *step));
                            let r = if *step == "RUNNING" && (pilot.fail)(t) {
                                let mut r = report_for(t, "STOPPED");
                                r.stop_code = "TaskFailedToStart".to_owned();
                                r.stopped_reason =
                                    "CannotPullContainerError: the fake agent fails this image"
                                        .to_owned();
                                r
                            } else {
                                let mut r = report_for(t, step);
                                if *step == "RUNNING" {
                                    r.health_status = (pilot.health)(t);
                                    r.target_health = t
                                        .target_checks
                                        .iter()
                                        .filter_map(|c| {
                                            let state = (pilot.targets)(t, c);
                                            (!state.is_empty()).then(|| {
                                                berth_proto::v1::TargetHealthReport {
                                                    target_group_arn: c.target_group_arn.clone(),
                                                    container_name: c.container_name.clone(),
                                                    container_port: c.container_port,
                                                    reason: if state == "unhealthy" {
                                                        "Target.ResponseCodeMismatch".to_owned()
                                                    } else {
                                                        String::new()
                                                    },
                                                    description: String::new(),
                                                    state,
                                                }
                                            })
                                        })
                                        .collect();
                                }
                                r
                            };
                            let msg = AgentMessage {
                                msg: Some(agent_message::Msg::TaskStatus(r)),
                            };
                            if *step == "RUNNING" && !pilot.start_delay.is_zero() {
                                let tx = tx.clone();
                                let delay = pilot.start_delay;
                                tokio::spawn(async move {
                                    tokio::time::sleep(delay).await;
                                    let _ = tx.send(msg).await;
                                });
                            } else if tx.send(msg).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                if desired.changed().await.is_err() {
                    return;
                }
            }
        });
        let logs = tokio::spawn({
            let tx = self.tx.clone();
            let desired = self.desired.clone();
            let mut requests =
                std::mem::replace(&mut self.log_requests, Mutex::new(mpsc::channel(1).1))
                    .into_inner();
            async move {
                while let Some(r) = requests.recv().await {
                    let containers: Vec<String> = desired
                        .borrow()
                        .as_ref()
                        .and_then(|d| d.tasks.iter().find(|t| t.task_arn == r.task_arn))
                        .map(|t| container_names(&t.task_definition_json))
                        .unwrap_or_default();
                    let entries = containers
                        .iter()
                        .filter(|c| r.container.is_empty() || **c == r.container)
                        .flat_map(|c| {
                            (1..=2).map(move |i| LogEntry {
                                time: None,
                                container: c.clone(),
                                stream: "stdout".to_owned(),
                                log: format!("{c} line {i}"),
                            })
                        })
                        .collect();
                    let chunk = LogChunk {
                        request_id: r.request_id,
                        entries,
                        eof: true,
                        error: String::new(),
                    };
                    if tx
                        .send(AgentMessage {
                            msg: Some(agent_message::Msg::LogChunk(chunk)),
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        self.tasks.push(driver);
        self.tasks.push(logs);
        self
    }
}

fn container_names(definition_json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(definition_json).unwrap_or_default();
    v["containerDefinitions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A report of `t` at `status`, with bindings from its port assignments.
pub fn report_for(t: &berth_proto::v1::DesiredTask, status: &str) -> TaskStatusReport {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ts = Some(prost_types::Timestamp {
        seconds: now.as_secs() as i64,
        nanos: 0,
    });
    let id = t.task_arn.rsplit('/').next().unwrap_or_default();
    let containers = container_names(&t.task_definition_json)
        .into_iter()
        .map(|name| ContainerStatus {
            runtime_id: format!("{id}-{name}"),
            last_status: status.to_owned(),
            exit_code: (status == "STOPPED").then_some(0),
            network_bindings: t
                .ports
                .iter()
                .filter(|p| p.container_name == name)
                .map(|p| NetworkBinding {
                    bind_ip: "0.0.0.0".to_owned(),
                    container_port: p.container_port,
                    host_port: p.host_port,
                    protocol: p.protocol.clone(),
                })
                .collect(),
            name,
            ..Default::default()
        })
        .collect();
    TaskStatusReport {
        task_arn: t.task_arn.clone(),
        last_status: status.to_owned(),
        containers,
        pull_started_at: ts,
        pull_stopped_at: ts,
        started_at: (status != "PENDING").then_some(ts).flatten(),
        stopped_at: (status == "STOPPED").then_some(ts).flatten(),
        stop_code: if status == "STOPPED" && t.stop_code.is_empty() {
            "EssentialContainerExited".to_owned()
        } else {
            String::new()
        },
        ..Default::default()
    }
}
