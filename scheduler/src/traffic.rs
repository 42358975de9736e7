//! Where traffic goes: every target group's targets with ELB's states, and
//! every service's DNS endpoints, as one [`View`] of the store.
//!
//! A target is a task's host address and host port for a load balancer's
//! container port. Its state is derived here, in this order:
//! - `draining` (`Target.DeregistrationInProgress`): the task was stopped
//!   and its targets drain until `drain_until` (DEACTIVATING);
//! - `unavailable` (`Elb.InternalError`): its host's agent is disconnected,
//!   so nobody can vouch for it;
//! - `initial` (`Elb.RegistrationInProgress`): no health-check threshold
//!   reached yet;
//! - `healthy` / `unhealthy`: what the host's agent last reported.
//!
//! A task is a target from RUNNING until it stops (or its drain ends);
//! before RUNNING it has no port to send to. The [`Watcher`] rebuilds the
//! view after writes (coalesced) and every second (heartbeats expire
//! without a write), and publishes it only when it changed; WatchTargets,
//! the DNS server and load balancers read the latest one.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use berth_proto::arn::ArnPrefix;
use berth_proto::ecs::HealthStatus;

use crate::agents::sessions::Sessions;
use crate::db::{Db, DbError};
use crate::records::{
    DesiredStatus, InstanceRecord, ProbeState, ServiceRecord, ServiceStatus, TargetGroupRecord,
    TaskRecord, TaskStatus, UnixMillis,
};

/// ELB's target states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetState {
    Initial,
    Healthy,
    Unhealthy,
    Draining,
    Unavailable,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Initial => "initial",
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
            TargetState::Draining => "draining",
            TargetState::Unavailable => "unavailable",
        }
    }
}

/// One target of a target group, as a load balancer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub task_id: String,
    pub cluster: String,
    /// The service's name (the task's group without `service:`).
    pub service: String,
    pub instance_id: String,
    pub availability_zone: String,
    /// `None` until the instance's agent has said hello once.
    pub address: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_name: String,
    pub container_port: u16,
    pub state: TargetState,
    pub reason: &'static str,
    pub description: String,
    pub since: UnixMillis,
    /// The port the group's health check probes, as ELB prints it.
    pub health_check_port: String,
}

/// A target group with its targets (by task id, container, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTargets {
    pub group: TargetGroupRecord,
    pub arn: String,
    /// ARNs of the services that register in it.
    pub services: Vec<String>,
    pub targets: Vec<Target>,
}

/// One task a service's DNS name answers with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub task_id: String,
    pub address: Ipv4Addr,
    pub port: u16,
}

/// A service with a DNS name, and its healthy tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub cluster: String,
    pub service: String,
    pub namespace: String,
    pub name: String,
    pub endpoints: Vec<Endpoint>,
}

/// Everything traffic needs to know, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// By target-group name.
    pub groups: Vec<GroupTargets>,
    pub discovered: Vec<Discovered>,
}

impl View {
    pub fn group(&self, name: &str) -> Option<&GroupTargets> {
        self.groups.iter().find(|g| g.group.name == name)
    }
}

/// What the view needs of an instance.
#[derive(Debug, Clone)]
pub struct InstanceFacts {
    pub address: Option<Ipv4Addr>,
    pub zone: String,
    pub connected: bool,
}

impl InstanceFacts {
    pub fn of(rec: &InstanceRecord, connected: bool) -> Self {
        Self {
            address: rec.address,
            zone: rec
                .attributes
                .iter()
                .find(|(k, _)| k == crate::services::ZONE_ATTRIBUTE)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            connected,
        }
    }
}

/// A target's ELB state, reason code and description.
pub fn target_state(
    task: &TaskRecord,
    target: &crate::records::TaskTarget,
    connected: bool,
) -> (TargetState, &'static str, String) {
    if task.last_status == TaskStatus::Deactivating || task.drain_until.is_some() {
        return (
            TargetState::Draining,
            "Target.DeregistrationInProgress",
            "Target deregistration is in progress".to_owned(),
        );
    }
    if !connected {
        return (
            TargetState::Unavailable,
            "Elb.InternalError",
            "The target's host agent is disconnected; its health is unknown".to_owned(),
        );
    }
    match target.state {
        ProbeState::Initial => (
            TargetState::Initial,
            "Elb.RegistrationInProgress",
            "Target registration is in progress".to_owned(),
        ),
        ProbeState::Healthy => (TargetState::Healthy, "", String::new()),
        ProbeState::Unhealthy => (
            TargetState::Unhealthy,
            match target.reason.as_str() {
                "Target.Timeout" => "Target.Timeout",
                "Target.ResponseCodeMismatch" => "Target.ResponseCodeMismatch",
                _ => "Target.FailedHealthChecks",
            },
            target.description.clone(),
        ),
    }
}

/// Whether a task's targets register: from RUNNING until it stops, and
/// while it drains.
fn registered(task: &TaskRecord) -> bool {
    match task.last_status {
        TaskStatus::Running => true,
        TaskStatus::Deactivating => task.drain_until.is_some(),
        _ => false,
    }
}

/// Builds the view from records (pure).
pub fn build(
    arn: &ArnPrefix,
    groups: &[TargetGroupRecord],
    services: &[ServiceRecord],
    tasks: &[TaskRecord],
    instances: &HashMap<String, InstanceFacts>,
) -> View {
    let mut by_group: BTreeMap<String, GroupTargets> = groups
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                GroupTargets {
                    group: g.clone(),
                    arn: arn.target_group(&g.name, &g.id),
                    services: Vec::new(),
                    targets: Vec::new(),
                },
            )
        })
        .collect();
    let tg_name = |a: &str| berth_proto::arn::target_group_name(a).to_owned();
    for s in services
        .iter()
        .filter(|s| s.status != ServiceStatus::Inactive)
    {
        let mut names: Vec<String> = s
            .load_balancers
            .iter()
            .chain(s.deployments.iter().flat_map(|d| d.load_balancers.iter()))
            .map(|l| tg_name(&l.target_group_arn))
            .collect();
        names.sort();
        names.dedup();
        for n in names {
            if let Some(g) = by_group.get_mut(&n) {
                g.services.push(arn.service(&s.cluster, &s.name));
            }
        }
    }
    let no_instance = InstanceFacts {
        address: None,
        zone: String::new(),
        connected: false,
    };
    for t in tasks.iter().filter(|t| registered(t)) {
        let inst = instances.get(&t.instance_id).unwrap_or(&no_instance);
        for x in &t.targets {
            let Some(g) = by_group.get_mut(&tg_name(&x.target_group_arn)) else {
                continue;
            };
            // A group deleted and created again under the same name is
            // another group.
            if !x.target_group_arn.ends_with(&g.group.id) {
                continue;
            }
            let (state, reason, description) = target_state(t, x, inst.connected);
            g.targets.push(Target {
                task_id: t.id.clone(),
                cluster: t.cluster.clone(),
                service: t.group.strip_prefix("service:").unwrap_or("").to_owned(),
                instance_id: t.instance_id.clone(),
                availability_zone: inst.zone.clone(),
                address: match t.network_mode {
                    Some(berth_proto::taskdef::NetworkMode::Awsvpc) => t.private_ipv4,
                    _ => inst.address,
                },
                host_port: x.host_port,
                container_name: x.container_name.clone(),
                container_port: x.container_port,
                state,
                reason,
                description,
                since: x.since,
                health_check_port: match g.group.health_check.port {
                    crate::records::CheckPort::TrafficPort => x.host_port.to_string(),
                    crate::records::CheckPort::Fixed(p) => p.to_string(),
                },
            });
        }
    }
    for g in by_group.values_mut() {
        g.targets.sort_by(|a, b| {
            (&a.task_id, &a.container_name, a.container_port).cmp(&(
                &b.task_id,
                &b.container_name,
                b.container_port,
            ))
        });
    }
    let discovered = services
        .iter()
        .filter(|s| s.status != ServiceStatus::Inactive)
        .filter_map(|s| {
            let d = s.discovery.as_ref()?;
            let group = s.group();
            let mut endpoints: Vec<Endpoint> = tasks
                .iter()
                .filter(|t| t.cluster == s.cluster && t.group == group)
                .filter(|t| dns_healthy(t, instances))
                .filter_map(|t| {
                    let inst = instances.get(&t.instance_id)?;
                    let port = endpoint_port(t, d)?;
                    let address = match t.network_mode {
                        Some(berth_proto::taskdef::NetworkMode::Awsvpc) => t.private_ipv4?,
                        _ => inst.address?,
                    };
                    Some(Endpoint {
                        task_id: t.id.clone(),
                        address,
                        port,
                    })
                })
                .collect();
            endpoints.sort();
            Some(Discovered {
                cluster: s.cluster.clone(),
                service: s.name.clone(),
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                endpoints,
            })
        })
        .collect();
    View {
        groups: by_group.into_values().collect(),
        discovered,
    }
}

/// A task DNS answers with: RUNNING and wanted, its host's agent
/// connected, not UNHEALTHY by its container health checks, and every
/// target it has healthy.
fn dns_healthy(t: &TaskRecord, instances: &HashMap<String, InstanceFacts>) -> bool {
    t.last_status == TaskStatus::Running
        && t.desired_status == DesiredStatus::Running
        && t.drain_until.is_none()
        && instances.get(&t.instance_id).is_some_and(|i| i.connected)
        && t.health_status != Some(HealthStatus::Unhealthy)
        && t.targets.iter().all(|x| x.state == ProbeState::Healthy)
}

/// The port a task's SRV record carries: the named container port's, or
/// the first published port's (awsvpc: the container port itself).
fn endpoint_port(t: &TaskRecord, d: &crate::records::DiscoveryRecord) -> Option<u16> {
    let awsvpc = t.network_mode == Some(berth_proto::taskdef::NetworkMode::Awsvpc);
    let p = match &d.container {
        Some((c, port)) => t
            .reservation
            .ports
            .iter()
            .find(|p| &p.container_name == c && p.container_port == *port),
        None => t.reservation.ports.first(),
    };
    match (p, awsvpc, &d.container) {
        (Some(p), false, _) => Some(p.host_port),
        (Some(p), true, _) => Some(p.container_port),
        (None, true, Some((_, port))) => Some(*port),
        _ => None,
    }
}

/// How long writes are coalesced before the view is rebuilt.
const COALESCE: Duration = Duration::from_millis(50);
/// Rebuilt at least this often (heartbeats expire without a write).
const TICK: Duration = Duration::from_secs(1);

/// Keeps the latest [`View`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Watcher {
    rx: watch::Receiver<Arc<View>>,
    inner: Arc<Inner>,
    /// The keeper task, taken by [`Watcher::stopped`].
    task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

#[derive(Debug)]
struct Inner {
    tx: watch::Sender<Arc<View>>,
    /// One rebuild at a time, so an older read is never published after a
    /// newer one.
    rebuild: tokio::sync::Mutex<()>,
    db: Db,
    sessions: Sessions,
    arn: Arc<ArnPrefix>,
}

impl Inner {
    async fn refresh(&self) -> Result<(), DbError> {
        let _one = self.rebuild.lock().await;
        let v = read(&self.db, &self.sessions, &self.arn)?;
        self.tx.send_if_modified(|cur| {
            if **cur == v {
                false
            } else {
                *cur = Arc::new(v);
                true
            }
        });
        Ok(())
    }
}

impl Watcher {
    /// Builds the first view and keeps it fresh until `shutdown`.
    pub fn start(
        db: Db,
        sessions: Sessions,
        arn: Arc<ArnPrefix>,
        shutdown: CancellationToken,
    ) -> Result<Self, DbError> {
        let first = read(&db, &sessions, &arn)?;
        let (tx, rx) = watch::channel(Arc::new(first));
        let mut writes = db.writes();
        let inner = Arc::new(Inner {
            tx,
            rebuild: tokio::sync::Mutex::new(()),
            db,
            sessions,
            arn,
        });
        let keeper = inner.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = writes.changed() => {
                        if r.is_err() { return; }
                        tokio::time::sleep(COALESCE).await;
                        writes.borrow_and_update();
                    }
                    _ = tokio::time::sleep(TICK) => {}
                }
                if let Err(e) = keeper.refresh().await {
                    tracing::warn!(cause = %e, "reading targets failed; retrying");
                }
            }
        });
        Ok(Self {
            rx,
            inner,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        })
    }

    /// Waits until the keeper task has ended after the shutdown (it holds
    /// the store: a restart on the same data dir needs it gone).
    pub async fn stopped(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }

    /// Rebuilds the view now (a new watcher starts from the store as it is).
    pub async fn refresh(&self) -> Result<(), DbError> {
        self.inner.refresh().await
    }

    /// The latest view.
    pub fn current(&self) -> Arc<View> {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every new view.
    pub fn subscribe(&self) -> watch::Receiver<Arc<View>> {
        self.rx.clone()
    }
}

/// Reads the store and builds the view.
pub fn read(db: &Db, sessions: &Sessions, arn: &ArnPrefix) -> Result<View, DbError> {
    let groups = db.target_groups()?;
    let services: Vec<ServiceRecord> = db
        .service_snapshots()?
        .into_iter()
        .map(|s| s.record)
        .collect();
    let wanted = !groups.is_empty() || services.iter().any(|s| s.discovery.is_some());
    let tasks: Vec<TaskRecord> = if wanted {
        db.service_tasks()?.into_values().flatten().collect()
    } else {
        Vec::new()
    };
    let instances: HashMap<String, InstanceFacts> = db
        .instances()?
        .iter()
        .map(|i| {
            (
                i.id.clone(),
                InstanceFacts::of(i, sessions.liveness(&i.id).connected),
            )
        })
        .collect();
    Ok(build(arn, &groups, &services, &tasks, &instances))
}

#[cfg(test)]
mod tests;
