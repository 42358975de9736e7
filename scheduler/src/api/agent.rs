//! `AgentService`: hosts join with `Register` and then hold one `Connect`
//! stream each.
//!
//! Identity never comes from a message body. Until mutual TLS supplies it
//! from the client certificate, it comes from the credential `Register`
//! returned, presented as request metadata ([`CREDENTIAL_HEADER`]) and
//! checked against the hash stored with the instance.

use std::pin::Pin;
use std::time::Duration;

use berth_proto::v1::{
    agent_message, agent_service_server::AgentService, scheduler_message, AgentMessage,
    DesiredState, Hello, RegisterRequest, RegisterResponse, SchedulerMessage, Welcome,
};
use futures::Stream;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::{cluster_arg, ApiError, Shared};
use crate::records::{now_millis, HostResources, InstanceRecord, InstanceStatus};

/// Metadata key carrying `<instance-id>.<secret>` on `Connect`.
pub const CREDENTIAL_HEADER: &str = berth_proto::AGENT_CREDENTIAL_HEADER;
/// How long a new stream may take to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct AgentApi {
    pub shared: Shared,
    /// Cancelled on scheduler shutdown, ending every stream.
    pub shutdown: CancellationToken,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Compares without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// ECS attribute names: 1–128 of letters, digits, `-_./`; values up to 128
/// of letters, digits, `-_.@/\:` and spaces.
fn validate_attribute(i: usize, name: &str, value: &str) -> Result<(), ApiError> {
    let ok_name = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !ok_name {
        return Err(ApiError::invalid(
            &format!("hello.attributes[{i}].name"),
            format!("{name:?} must be 1–128 letters, digits, '-', '_', '.', '/'"),
        ));
    }
    let ok_value = value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@/\\: ".contains(c));
    if !ok_value {
        return Err(ApiError::invalid(
            &format!("hello.attributes[{i}].value"),
            format!("{value:?} must be at most 128 letters, digits, spaces or '-_.@/\\:'"),
        ));
    }
    Ok(())
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
        validate_attribute(i, &a.name, &a.value)?;
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
    /// The instance the caller's credential belongs to.
    fn authenticate(&self, md: &MetadataMap) -> Result<InstanceRecord, ApiError> {
        let cred = md
            .get(CREDENTIAL_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::Unauthenticated(format!(
                    "missing {CREDENTIAL_HEADER}; register the host first"
                ))
            })?;
        let (id, _) = cred
            .split_once('.')
            .ok_or_else(|| ApiError::Unauthenticated("malformed agent credential".into()))?;
        let rec = self
            .shared
            .db
            .instance(id)?
            .filter(|r| {
                constant_time_eq(r.credential_sha256.as_bytes(), sha256_hex(cred).as_bytes())
            })
            .ok_or_else(|| ApiError::Unauthenticated("unknown agent credential".into()))?;
        if rec.status == InstanceStatus::Inactive {
            return Err(ApiError::PermissionDenied(format!(
                "container instance {} was deregistered",
                rec.id
            )));
        }
        Ok(rec)
    }
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<SchedulerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentApi {
    #[tracing::instrument(skip_all, fields(cluster = %req.get_ref().cluster, host = %req.get_ref().hostname))]
    async fn register(
        &self,
        req: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        if req.hostname.is_empty() || req.hostname.len() > 255 {
            return Err(ApiError::invalid("hostname", "must be 1–255 characters").into());
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let credential = format!("{id}.{}", hex::encode(secret));
        let rec = InstanceRecord {
            id: id.clone(),
            cluster: cluster.clone(),
            hostname: req.hostname,
            status: InstanceStatus::Active,
            registered_at: now_millis(),
            agent_version: String::new(),
            resources: HostResources::default(),
            attributes: vec![],
            credential_sha256: sha256_hex(&credential),
        };
        self.shared
            .db
            .create_instance(rec)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(instance = %id, "container instance registered");
        Ok(Response::new(RegisterResponse {
            container_instance_arn: self.shared.arn.container_instance(&cluster, &id),
            cluster_arn: self.shared.arn.cluster(&cluster),
            container_instance_id: id,
            credential,
        }))
    }

    type ConnectStream = MessageStream;

    async fn connect(
        &self,
        req: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let rec = self.authenticate(req.metadata())?;
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
                r.attributes = facts.attributes.clone();
                r.agent_version = facts.agent_version.clone();
                r.hostname = facts.hostname.clone();
            })
            .await
            .map_err(ApiError::from)?;
        let guard = self.shared.sessions.attach(&id);
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
        // The full desired set follows every (re)connect. No task can be
        // placed yet, so the set is empty at generation 0.
        let desired = SchedulerMessage {
            msg: Some(scheduler_message::Msg::DesiredState(DesiredState {
                generation: 0,
                tasks: vec![],
            })),
        };
        for m in [welcome, desired] {
            tx.send(Ok(m))
                .await
                .map_err(|_| Status::cancelled("agent went away"))?;
        }
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = inbound.message() => match m {
                        Ok(Some(AgentMessage { msg: Some(agent_message::Msg::Heartbeat(_)) })) => guard.heartbeat(),
                        Ok(Some(AgentMessage { msg: Some(agent_message::Msg::Hello(_)) })) => {
                            tracing::warn!(instance = %id, "second Hello on one stream ignored");
                        }
                        // Task reports and log chunks are handled by the
                        // task controller (runtime milestone); no task can be
                        // placed before it exists.
                        Ok(Some(AgentMessage { msg: Some(agent_message::Msg::TaskStatus(_) | agent_message::Msg::LogChunk(_)) }))
                        | Ok(Some(AgentMessage { msg: None })) => {}
                        Ok(None) => break,
                        Err(e) => {
                            tracing::info!(instance = %id, cause = %e, "agent stream failed");
                            break;
                        }
                    },
                    _ = tx.closed() => break,
                    _ = shutdown.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("scheduler shutting down"))).await;
                        break;
                    }
                }
            }
            drop(guard);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
