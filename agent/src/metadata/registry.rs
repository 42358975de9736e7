//! The metadata endpoint's view of this host's tasks: which container each
//! metadata id names, and the task facts the runtime learns while it
//! prepares and starts a task (address, ports, container times). The
//! runtime ([`crate::runtime::host_ops`]) writes it; the endpoint only
//! reads. Statuses, exit codes, image digests and (with health checks)
//! health come from the runtime's [`crate::runtime::report::Reporter`],
//! which stays the one record of how a task is doing.
//!
//! A task is registered once its network is set up (or re-adopted after an
//! agent restart) and forgotten at teardown, before its address can be
//! handed to another task.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use berth_proto::taskdef::{NetworkMode, TaskDefinition};

use crate::desired::PortAssignment;
use crate::runtime::plan::TaskPlan;

/// One task as the endpoint knows it.
#[derive(Debug, Clone)]
pub struct TaskEntry {
    pub arn: String,
    pub task_id: String,
    pub cluster: String,
    pub family: String,
    pub revision: u32,
    pub network_mode: NetworkMode,
    /// The task's own address (bridge and awsvpc modes).
    pub ip: Option<IpAddr>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<IpAddr>,
    /// The host end of the task's veth (network stats).
    pub host_veth: Option<String>,
    /// Host ports the scheduler reserved (and the agent mapped).
    pub ports: Vec<PortAssignment>,
    /// Absent for a task re-adopted after an agent restart until the
    /// endpoint reads it from the desired state.
    pub definition: Option<Arc<TaskDefinition>>,
    pub containers: Vec<ContainerEntry>,
}

/// One container of a [`TaskEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEntry {
    pub name: String,
    pub metadata_id: String,
    pub runtime_id: String,
    pub image: String,
    pub created_at: Option<SystemTime>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
}

/// What the network setup told the runtime about a task.
#[derive(Debug, Clone, Default)]
pub struct NetworkFacts {
    pub ip: Option<IpAddr>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<IpAddr>,
    pub host_veth: Option<String>,
}

impl TaskEntry {
    pub fn new(plan: &TaskPlan, net: NetworkFacts) -> Self {
        Self {
            arn: plan.arn.clone(),
            task_id: plan.id.clone(),
            cluster: plan.cluster.clone(),
            family: plan.family.clone(),
            revision: plan.revision,
            network_mode: plan.network_mode,
            ip: net.ip,
            prefix_len: net.prefix_len,
            gateway: net.gateway,
            host_veth: net.host_veth,
            ports: plan.ports.clone(),
            definition: plan.definition.clone(),
            containers: plan
                .containers
                .iter()
                .map(|c| ContainerEntry {
                    name: c.name.clone(),
                    metadata_id: c.metadata_id.clone(),
                    runtime_id: c.runtime_id.clone(),
                    image: c.image.clone(),
                    created_at: None,
                    started_at: None,
                    finished_at: None,
                })
                .collect(),
        }
    }
}

/// A moment in a container's life the endpoint shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEvent {
    Created,
    Started,
    Finished,
}

#[derive(Debug, Default)]
struct Inner {
    tasks: HashMap<String, TaskEntry>,
    /// metadata id → task ARN.
    ids: HashMap<String, String>,
}

/// Shared by the runtime (writer) and the endpoint (reader). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<Inner>>,
}

impl Registry {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces a task; container times already recorded are kept.
    pub fn register(&self, mut entry: TaskEntry) {
        let mut inner = self.write();
        if let Some(old) = inner.tasks.get(&entry.arn) {
            for c in &mut entry.containers {
                if let Some(o) = old.containers.iter().find(|o| o.name == c.name) {
                    c.created_at = c.created_at.or(o.created_at);
                    c.started_at = c.started_at.or(o.started_at);
                    c.finished_at = c.finished_at.or(o.finished_at);
                }
            }
            if entry.definition.is_none() {
                entry.definition = old.definition.clone();
            }
        }
        for c in &entry.containers {
            if !c.metadata_id.is_empty() {
                inner.ids.insert(c.metadata_id.clone(), entry.arn.clone());
            }
        }
        tracing::debug!(task = %entry.arn, ip = ?entry.ip, "task metadata registered");
        inner.tasks.insert(entry.arn.clone(), entry);
    }

    /// Drops a task and its ids (at teardown).
    pub fn forget(&self, arn: &str) {
        let mut inner = self.write();
        if let Some(t) = inner.tasks.remove(arn) {
            for c in t.containers {
                inner.ids.remove(&c.metadata_id);
            }
        }
    }

    /// Records when container `name` of task `arn` was created, started or
    /// finished. Unknown tasks are ignored.
    pub fn container_event(&self, arn: &str, name: &str, event: ContainerEvent, at: SystemTime) {
        let mut inner = self.write();
        let Some(c) = inner
            .tasks
            .get_mut(arn)
            .and_then(|t| t.containers.iter_mut().find(|c| c.name == name))
        else {
            return;
        };
        match event {
            ContainerEvent::Created => c.created_at = Some(at),
            ContainerEvent::Started => {
                c.started_at = Some(at);
                c.finished_at = None;
            }
            ContainerEvent::Finished => c.finished_at = Some(at),
        }
    }

    /// Keeps a definition the endpoint read from the desired state.
    pub fn set_definition(&self, arn: &str, def: Arc<TaskDefinition>) {
        if let Some(t) = self.write().tasks.get_mut(arn) {
            t.definition.get_or_insert(def);
        }
    }

    /// The task holding metadata id `id`, and the container's index in it.
    pub fn lookup(&self, id: &str) -> Option<(TaskEntry, usize)> {
        let inner = self.read();
        let arn = inner.ids.get(id)?;
        let task = inner.tasks.get(arn)?;
        let index = task.containers.iter().position(|c| c.metadata_id == id)?;
        Some((task.clone(), index))
    }

    /// Whether `ip` is the own address of a registered bridge or awsvpc task.
    pub fn is_task_address(&self, ip: IpAddr) -> bool {
        self.read().tasks.values().any(|t| t.ip == Some(ip))
    }

    /// Every registered task (the metrics' scrape).
    pub fn tasks(&self) -> Vec<TaskEntry> {
        self.read().tasks.values().cloned().collect()
    }

    /// How many tasks are registered.
    pub fn len(&self) -> usize {
        self.read().tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
