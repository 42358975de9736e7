//! Routing and serving the metadata endpoint: `/v4/<id>`, `/v4/<id>/task`,
//! `/v4/<id>/stats`, `/v4/<id>/task/stats` (and the same under `/v3/`, which
//! `ECS_CONTAINER_METADATA_URI` names; v4's responses carry every v3 field).
//!
//! Each request is rate limited by source address first (429), then the id
//! is looked up (404) and the source checked against the task (403). Errors
//! are JSON strings, as the ECS agent writes them. [`Endpoint::respond`] is
//! the whole decision, without HTTP, so it is unit-tested directly.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use berth_proto::taskdef::{self, NetworkMode};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ratelimit::RateLimiter;
use super::registry::{Registry, TaskEntry};
use super::stats::{self, Sample};
use super::v4;
use crate::desired::DesiredState;
use crate::runtime::cgroups::CgroupManager;
use crate::runtime::report::Reporter;

/// An answer: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Reply {
    fn json(value: &impl serde::Serialize) -> Self {
        match serde_json::to_string_pretty(value) {
            Ok(body) => Self {
                status: StatusCode::OK,
                body,
            },
            Err(e) => Self::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }

    fn error(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            body: serde_json::Value::String(message.to_owned()).to_string(),
        }
    }
}

/// What a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Container(&'a str),
    Task(&'a str),
    ContainerStats(&'a str),
    TaskStats(&'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    let path = path.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v4" | "v3", id] => Some(Route::Container(id)),
        ["v4" | "v3", id, "task"] => Some(Route::Task(id)),
        ["v4" | "v3", id, "stats"] => Some(Route::ContainerStats(id)),
        ["v4" | "v3", id, "task", "stats"] => Some(Route::TaskStats(id)),
        _ => None,
    }
}

/// The endpoint's state, shared by every connection.
#[derive(Debug)]
pub struct Endpoint {
    registry: Registry,
    reporter: Reporter,
    desired: watch::Receiver<Option<DesiredState>>,
    cgroups: Option<CgroupManager>,
    limiter: RateLimiter,
    availability_zone: Option<String>,
    samples: Mutex<HashMap<String, Sample>>,
    sys_class_net: PathBuf,
}

impl Endpoint {
    pub fn new(
        registry: Registry,
        reporter: Reporter,
        desired: watch::Receiver<Option<DesiredState>>,
        cgroups: Option<CgroupManager>,
        availability_zone: Option<String>,
    ) -> Self {
        Self {
            registry,
            reporter,
            desired,
            cgroups,
            limiter: RateLimiter::default(),
            availability_zone,
            samples: Mutex::new(HashMap::new()),
            sys_class_net: PathBuf::from("/sys/class/net"),
        }
    }

    /// Whether `peer` may read task `t`'s metadata.
    fn may_read(&self, t: &TaskEntry, peer: IpAddr) -> bool {
        match t.network_mode {
            NetworkMode::Bridge | NetworkMode::Awsvpc => t.ip == Some(peer),
            NetworkMode::Host | NetworkMode::None => !self.registry.is_task_address(peer),
        }
    }

    /// The task's definition: the one the runtime started it with, or (for
    /// a task re-adopted after an agent restart) the desired state's.
    fn definition(&self, t: &mut TaskEntry) {
        if t.definition.is_some() {
            return;
        }
        let json = self.desired.borrow().as_ref().and_then(|d| {
            d.tasks
                .iter()
                .find(|x| x.task_arn == t.arn)
                .map(|x| x.task_definition_json.clone())
        });
        if let Some(reg) = json.and_then(|j| taskdef::parse_registration(&j).ok()) {
            let def = Arc::new(reg.definition);
            self.registry.set_definition(&t.arn, def.clone());
            t.definition = Some(def);
        }
    }

    /// Answers one request from `peer`.
    pub fn respond(&self, peer: IpAddr, method: &Method, path: &str, now: Instant) -> Reply {
        if !self.limiter.allow(peer, now) {
            tracing::debug!(%peer, "metadata request over the rate limit");
            return Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests: the task metadata endpoint allows 40 requests a second (bursts of 60)",
            );
        }
        if method != Method::GET && method != Method::HEAD {
            return Reply::error(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported");
        }
        let Some(route) = route(path) else {
            return Reply::error(StatusCode::NOT_FOUND, &format!("no such path: {path}"));
        };
        let id = match route {
            Route::Container(id)
            | Route::Task(id)
            | Route::ContainerStats(id)
            | Route::TaskStats(id) => id,
        };
        let Some((mut task, index)) = self.registry.lookup(id) else {
            return Reply::error(
                StatusCode::NOT_FOUND,
                "unable to find a container for this metadata id on this host",
            );
        };
        if !self.may_read(&task, peer) {
            tracing::warn!(%peer, task = %task.arn, "metadata request from outside the task refused");
            return Reply::error(
                StatusCode::FORBIDDEN,
                "this metadata id belongs to another task: a task may read only its own metadata",
            );
        }
        self.definition(&mut task);
        let report = self.reporter.get(&task.arn);
        let inputs = v4::Inputs {
            entry: &task,
            definition: task.definition.as_deref(),
            report: report.as_ref(),
            availability_zone: self.availability_zone.as_deref(),
        };
        match route {
            Route::Container(_) => match v4::container(&inputs, index) {
                Some(c) => Reply::json(&c),
                None => Reply::error(StatusCode::NOT_FOUND, "no such container"),
            },
            Route::Task(_) => Reply::json(&v4::task(&inputs)),
            Route::ContainerStats(_) => Reply::json(&self.stats(&task, index)),
            Route::TaskStats(_) => {
                let all: serde_json::Map<String, serde_json::Value> = (0..task.containers.len())
                    .map(|i| {
                        (
                            task.containers[i].runtime_id.clone(),
                            serde_json::to_value(self.stats(&task, i))
                                .unwrap_or(serde_json::Value::Null),
                        )
                    })
                    .collect();
                Reply::json(&all)
            }
        }
    }

    /// Stats of container `index`; `None` (JSON null) when its cgroup is
    /// gone (it is not running).
    fn stats(&self, task: &TaskEntry, index: usize) -> Option<stats::Stats> {
        let c = task.containers.get(index)?;
        let usage = self
            .cgroups
            .as_ref()?
            .container_usage(&task.task_id, &c.name)
            .ok()?;
        let now = SystemTime::now();
        let network = task
            .host_veth
            .as_deref()
            .and_then(|v| stats::veth_stats(&self.sys_class_net, v));
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let s = stats::build(
            &c.runtime_id,
            &c.runtime_id,
            &usage,
            stats::host_cpu(),
            now,
            samples.get(&c.runtime_id),
            network,
        );
        if samples.len() > 4096 {
            samples.clear();
        }
        samples.insert(
            c.runtime_id.clone(),
            Sample {
                at: now,
                cpu: s.cpu_stats.clone(),
            },
        );
        Some(s)
    }
}

/// A listening socket on `addr` with `IP_FREEBIND` (the address may not
/// exist yet: the bridge gets it with the first task).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv4() {
        s.set_freebind_v4(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    TcpListener::from_std(s.into())
}

/// Serves `listener` until `cancel` fires; then stops accepting and ends
/// the connections in flight.
pub async fn serve(listener: TcpListener, endpoint: Arc<Endpoint>, cancel: CancellationToken) {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "task metadata endpoint listening");
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(cause = %e, "metadata endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let endpoint = endpoint.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let peer_ip = canonical(peer.ip());
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let reply =
                    endpoint.respond(peer_ip, req.method(), req.uri().path(), Instant::now());
                tracing::debug!(peer = %peer_ip, path = %req.uri().path(), status = %reply.status, "metadata request");
                let response = Response::builder()
                    .status(reply.status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(reply.body)));
                async move {
                    Ok::<_, Infallible>(response.unwrap_or_else(|_| {
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                        r
                    }))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = cancel.cancelled() => {}
                res = conn => if let Err(e) = res {
                    tracing::debug!(peer = %peer_ip, cause = %e, "metadata connection ended");
                },
            }
        });
    }
    tracing::info!(?addr, "task metadata endpoint stopped");
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests;
