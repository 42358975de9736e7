//! A task as the runtime supervises it: which containers, in which order,
//! which are essential, how to stop them, which host ports they publish.
//!
//! A plan is built from the scheduler's [`DesiredTask`] (with the full task
//! definition, needed to start the task) or, after an agent restart, from the
//! labels on the task's containerd containers (enough to supervise and stop
//! it without waiting for the scheduler). The labels are the agent's only
//! record of a task: containerd is the source of truth.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::taskdef::{self, NetworkMode, TaskDefinition};

use super::lifecycle::Lifecycle;
use crate::desired::{DesiredTask, PortAssignment, TaskSecrets};

/// Label keys on every container Berth creates.
pub mod labels {
    pub const TASK_ARN: &str = "berth.task-arn";
    pub const TASK_ID: &str = "berth.task-id";
    pub const CLUSTER: &str = "berth.cluster";
    pub const FAMILY: &str = "berth.family";
    pub const REVISION: &str = "berth.revision";
    pub const CONTAINER_NAME: &str = "berth.container-name";
    pub const CONTAINER_INDEX: &str = "berth.container-index";
    pub const CONTAINER_COUNT: &str = "berth.container-count";
    pub const ESSENTIAL: &str = "berth.essential";
    pub const STOP_TIMEOUT_SECS: &str = "berth.stop-timeout";
    pub const STOP_SIGNAL: &str = "berth.stop-signal";
    pub const IMAGE: &str = "berth.image";
    pub const NETWORK_MODE: &str = "berth.network-mode";
    /// JSON list of this task's [`super::PortAssignment`]s.
    pub const PORTS: &str = "berth.ports";
    /// JSON of the container's [`super::Lifecycle`] (dependsOn, health
    /// check, restart policy); absent when it has none.
    pub const LIFECYCLE: &str = "berth.lifecycle";
    /// The container's random id in its task metadata endpoint URI
    /// (`/v4/<id>`); unguessable, so a task cannot name another's.
    pub const METADATA_ID: &str = "berth.metadata-id";

    /// The prefix of every Berth label. A task definition's `dockerLabels`
    /// in this namespace are dropped: the agent reads these labels back to
    /// supervise the task.
    pub const PREFIX: &str = "berth.";

    /// The labels the ECS agent puts on every container (its
    /// `com.amazonaws.ecs.*` set), which tools such as cAdvisor and
    /// Datadog read. Like the ECS agent, Berth sets them over the user's.
    pub const ECS_TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
    pub const ECS_CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
    pub const ECS_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
    pub const ECS_REVISION: &str = "com.amazonaws.ecs.task-definition-version";
    pub const ECS_CLUSTER: &str = "com.amazonaws.ecs.cluster";

    /// containerd's limit on a label's key plus value, in bytes.
    pub const MAX_LABEL_BYTES: usize = 4096;
}

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("task {task}: the scheduler sent a task definition the agent cannot read: {cause}")]
    Definition { task: String, cause: String },
    #[error(
        "task {task}: container {container:?} has label {label} = {value:?}, which is not valid"
    )]
    Label {
        task: String,
        container: String,
        label: &'static str,
        value: String,
    },
    #[error("task {task}: container label {label} is missing")]
    MissingLabel { task: String, label: &'static str },
    #[error("task {task}: {count} of its {expected} containers are in containerd")]
    Incomplete {
        task: String,
        count: usize,
        expected: usize,
    },
}

/// One container of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub name: String,
    /// Position in `containerDefinitions`.
    pub index: usize,
    pub image: String,
    pub essential: bool,
    pub stop_timeout: Duration,
    /// From the image config once pulled; SIGTERM when absent.
    pub stop_signal: Option<String>,
    /// containerd's id: `<task id>-<index>-<name prefix>`, at most 76 chars.
    pub runtime_id: String,
    /// dependsOn, startTimeout, health check, restart policy.
    pub lifecycle: Lifecycle,
    /// Random (128 bits, hex): the container's path in the task metadata
    /// endpoint. Empty for containers started before Berth had one.
    pub metadata_id: String,
}

/// A task to supervise.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    pub arn: String,
    /// The ARN's last segment.
    pub id: String,
    pub cluster: String,
    pub family: String,
    pub revision: u32,
    pub network_mode: NetworkMode,
    pub containers: Vec<ContainerPlan>,
    pub ports: Vec<PortAssignment>,
    /// Present when built from the scheduler's message: needed to start.
    pub definition: Option<Arc<TaskDefinition>>,
    /// The secret values to start with (from the scheduler's message; empty
    /// for an adopted task, which is already running). Redacted in `Debug`.
    pub secrets: Arc<TaskSecrets>,
}

/// containerd ids: `[A-Za-z0-9_.-]`, at most 76 characters.
fn runtime_id(task_id: &str, index: usize, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    let mut id = format!("{task_id}-{index}-{clean}");
    id.truncate(76);
    id
}

/// 128 random bits from the OS's CSPRNG (a v4 UUID's randomness), as hex.
fn new_metadata_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn task_id_of(arn: &str) -> String {
    berth_proto::arn::short_id(arn).to_owned()
}

impl TaskPlan {
    /// From the scheduler's desired task. `default_stop_timeout` applies to
    /// containers without `stopTimeout` (ECS: 30 s).
    pub fn from_desired(
        d: &DesiredTask,
        default_stop_timeout: Duration,
    ) -> Result<Self, PlanError> {
        let reg = taskdef::parse_registration(&d.task_definition_json).map_err(|e| {
            PlanError::Definition {
                task: d.task_arn.clone(),
                cause: e.to_string(),
            }
        })?;
        let def = reg.definition;
        let id = task_id_of(&d.task_arn);
        let containers = def
            .container_definitions
            .iter()
            .enumerate()
            .map(|(index, c)| ContainerPlan {
                name: c.name.clone(),
                index,
                image: c.image.clone(),
                essential: c.is_essential(),
                stop_timeout: c
                    .stop_timeout
                    .map(|s| Duration::from_secs(u64::from(s)))
                    .unwrap_or(default_stop_timeout),
                stop_signal: None,
                runtime_id: runtime_id(&id, index, &c.name),
                lifecycle: Lifecycle::from_definition(c),
                metadata_id: new_metadata_id(),
            })
            .collect();
        Ok(Self {
            arn: d.task_arn.clone(),
            id,
            cluster: d.cluster.clone(),
            family: if d.family.is_empty() {
                def.family.clone()
            } else {
                d.family.clone()
            },
            revision: d.revision,
            network_mode: def.effective_network_mode(),
            containers,
            ports: d.ports.clone(),
            definition: Some(Arc::new(def)),
            secrets: Arc::new(d.secrets.clone()),
        })
    }

    /// The labels of container `index`'s containerd container (and the
    /// OCI annotations of its spec), as Docker makes a container's
    /// `dockerLabels` its labels: the definition's `dockerLabels`, then the
    /// ECS agent's `com.amazonaws.ecs.*` labels, then Berth's own
    /// ([`Self::labels`]). Later ones win, so a user label cannot replace
    /// what the agent and ECS-aware tools rely on; user labels in Berth's
    /// `berth.` namespace are dropped (not merely overridden: the agent
    /// reads optional ones such as `berth.lifecycle` back), and so are
    /// labels over containerd's 4096-byte limit, which would fail the
    /// container's creation.
    pub fn container_labels(&self, index: usize) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        if let (Some(def), Some(c)) = (&self.definition, self.containers.get(index)) {
            if let Some(cdef) = def.container(&c.name) {
                for (k, v) in &cdef.docker_labels {
                    if k.starts_with(labels::PREFIX) {
                        tracing::warn!(task = %self.arn, container = %c.name, label = %k,
                            "dockerLabels in Berth's namespace are ignored");
                        continue;
                    }
                    if k.len() + v.len() > labels::MAX_LABEL_BYTES {
                        tracing::warn!(task = %self.arn, container = %c.name, label = %k,
                            "a dockerLabel over containerd's 4096-byte limit is ignored");
                        continue;
                    }
                    l.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(c) = self.containers.get(index) {
            for (k, v) in [
                (labels::ECS_TASK_ARN, self.arn.clone()),
                (labels::ECS_CONTAINER_NAME, c.name.clone()),
                (labels::ECS_FAMILY, self.family.clone()),
                (labels::ECS_REVISION, self.revision.to_string()),
                (labels::ECS_CLUSTER, self.cluster.clone()),
            ] {
                l.insert(k.to_owned(), v);
            }
        }
        l.extend(self.labels(index));
        l
    }

    /// Berth's own labels for container `index`: what the agent reads back
    /// to supervise the task ([`Self::from_labels`]).
    pub fn labels(&self, index: usize) -> BTreeMap<String, String> {
        let c = &self.containers[index];
        let mut l = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            l.insert(k.to_owned(), v);
        };
        put(labels::TASK_ARN, self.arn.clone());
        put(labels::TASK_ID, self.id.clone());
        put(labels::CLUSTER, self.cluster.clone());
        put(labels::FAMILY, self.family.clone());
        put(labels::REVISION, self.revision.to_string());
        put(labels::CONTAINER_NAME, c.name.clone());
        put(labels::CONTAINER_INDEX, c.index.to_string());
        put(labels::CONTAINER_COUNT, self.containers.len().to_string());
        put(labels::ESSENTIAL, c.essential.to_string());
        put(
            labels::STOP_TIMEOUT_SECS,
            c.stop_timeout.as_secs().to_string(),
        );
        if let Some(s) = &c.stop_signal {
            put(labels::STOP_SIGNAL, s.clone());
        }
        if !c.metadata_id.is_empty() {
            put(labels::METADATA_ID, c.metadata_id.clone());
        }
        put(labels::IMAGE, c.image.clone());
        put(
            labels::NETWORK_MODE,
            network_mode_str(self.network_mode).to_owned(),
        );
        put(
            labels::PORTS,
            serde_json::to_string(&self.ports).unwrap_or_else(|_| "[]".to_owned()),
        );
        if c.lifecycle != Lifecycle::default() {
            if let Ok(json) = serde_json::to_string(&c.lifecycle) {
                put(labels::LIFECYCLE, json);
            }
        }
        l
    }

    /// Rebuilds a plan from the labels of a task's containers (any order).
    pub fn from_labels(
        containers: &[(String, BTreeMap<String, String>)],
    ) -> Result<Self, PlanError> {
        let first = containers
            .first()
            .map(|(_, l)| l)
            .ok_or(PlanError::MissingLabel {
                task: String::new(),
                label: labels::TASK_ARN,
            })?;
        let arn = first
            .get(labels::TASK_ARN)
            .cloned()
            .ok_or(PlanError::MissingLabel {
                task: String::new(),
                label: labels::TASK_ARN,
            })?;
        let get = |l: &BTreeMap<String, String>, key: &'static str| {
            l.get(key).cloned().ok_or_else(|| PlanError::MissingLabel {
                task: arn.clone(),
                label: key,
            })
        };
        let parse = |l: &BTreeMap<String, String>,
                     key: &'static str,
                     name: &str|
         -> Result<u64, PlanError> {
            let v = get(l, key)?;
            v.parse().map_err(|_| PlanError::Label {
                task: arn.clone(),
                container: name.to_owned(),
                label: key,
                value: v,
            })
        };
        let mut plans = Vec::new();
        for (runtime_id, l) in containers {
            let name = get(l, labels::CONTAINER_NAME)?;
            let lifecycle = match l.get(labels::LIFECYCLE) {
                None => Lifecycle::default(),
                Some(v) => serde_json::from_str(v).map_err(|_| PlanError::Label {
                    task: arn.clone(),
                    container: name.clone(),
                    label: labels::LIFECYCLE,
                    value: v.clone(),
                })?,
            };
            plans.push(ContainerPlan {
                lifecycle,
                index: parse(l, labels::CONTAINER_INDEX, &name)? as usize,
                image: get(l, labels::IMAGE)?,
                essential: get(l, labels::ESSENTIAL)? == "true",
                stop_timeout: Duration::from_secs(parse(l, labels::STOP_TIMEOUT_SECS, &name)?),
                stop_signal: l.get(labels::STOP_SIGNAL).cloned(),
                runtime_id: runtime_id.clone(),
                metadata_id: l.get(labels::METADATA_ID).cloned().unwrap_or_default(),
                name,
            });
        }
        plans.sort_by_key(|c| c.index);
        let expected = parse(first, labels::CONTAINER_COUNT, "")? as usize;
        if plans.len() != expected {
            return Err(PlanError::Incomplete {
                task: arn,
                count: plans.len(),
                expected,
            });
        }
        let mode = get(first, labels::NETWORK_MODE)?;
        let network_mode = parse_network_mode(&mode).ok_or_else(|| PlanError::Label {
            task: arn.clone(),
            container: String::new(),
            label: labels::NETWORK_MODE,
            value: mode.clone(),
        })?;
        let ports_json = get(first, labels::PORTS)?;
        let ports = serde_json::from_str(&ports_json).map_err(|_| PlanError::Label {
            task: arn.clone(),
            container: String::new(),
            label: labels::PORTS,
            value: ports_json.clone(),
        })?;
        Ok(Self {
            id: get(first, labels::TASK_ID)?,
            cluster: get(first, labels::CLUSTER)?,
            family: get(first, labels::FAMILY)?,
            revision: parse(first, labels::REVISION, "")? as u32,
            network_mode,
            containers: plans,
            ports,
            definition: None,
            secrets: Arc::default(),
            arn,
        })
    }

    /// The ports container `name` publishes.
    pub fn ports_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a PortAssignment> + 'a {
        self.ports.iter().filter(move |p| p.container_name == name)
    }
}

pub fn network_mode_str(m: NetworkMode) -> &'static str {
    match m {
        NetworkMode::Bridge => "bridge",
        NetworkMode::Host => "host",
        NetworkMode::Awsvpc => "awsvpc",
        NetworkMode::None => "none",
    }
}

fn parse_network_mode(s: &str) -> Option<NetworkMode> {
    match s {
        "bridge" => Some(NetworkMode::Bridge),
        "host" => Some(NetworkMode::Host),
        "awsvpc" => Some(NetworkMode::Awsvpc),
        "none" => Some(NetworkMode::None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::ecs::Protocol;

    pub(crate) fn desired(json: &str) -> DesiredTask {
        DesiredTask {
            task_arn: "arn:berth:ecs:local:0:task/default/0123456789abcdef0123456789abcdef".into(),
            task_definition_json: json.into(),
            cluster: "default".into(),
            family: "web".into(),
            revision: 3,
            ports: vec![PortAssignment {
                container_name: "web".into(),
                container_port: 80,
                protocol: Protocol::Tcp,
                host_port: 20123,
            }],
            ..Default::default()
        }
    }

    const TWO: &str = r#"{"family":"web","containerDefinitions":[
        {"name":"web","image":"busybox","memory":32,"stopTimeout":5,
         "portMappings":[{"containerPort":80}],
         "dependsOn":[{"containerName":"a-very-long-sidecar-name-to-truncate","condition":"HEALTHY"}]},
        {"name":"a-very-long-sidecar-name-to-truncate","image":"busybox","memory":32,"essential":false,
         "healthCheck":{"command":["CMD","true"]},"restartPolicy":{"enabled":true}}]}"#;

    #[test]
    fn plan_from_desired_task() {
        let p = TaskPlan::from_desired(&desired(TWO), Duration::from_secs(30)).unwrap();
        assert_eq!(p.id, "0123456789abcdef0123456789abcdef");
        assert_eq!(p.network_mode, NetworkMode::Bridge);
        assert_eq!(p.containers[0].stop_timeout, Duration::from_secs(5));
        assert_eq!(p.containers[1].stop_timeout, Duration::from_secs(30));
        assert!(p.containers[0].essential && !p.containers[1].essential);
        assert_eq!(
            p.containers[1].runtime_id,
            "0123456789abcdef0123456789abcdef-1-a-very-long-sidecar-name"
        );
        assert_eq!(p.ports_of("web").count(), 1);
        let ids: Vec<_> = p.containers.iter().map(|c| &c.metadata_id).collect();
        assert!(ids.iter().all(|i| i.len() == 32), "{ids:?}");
        assert_ne!(ids[0], ids[1], "each container has its own metadata id");
        let again = TaskPlan::from_desired(&desired(TWO), Duration::from_secs(30)).unwrap();
        assert_ne!(again.containers[0].metadata_id, p.containers[0].metadata_id);
    }

    #[test]
    fn labels_round_trip_into_an_equivalent_plan() {
        let p = TaskPlan::from_desired(&desired(TWO), Duration::from_secs(30)).unwrap();
        let observed: Vec<_> = (0..2)
            .rev()
            .map(|i| (p.containers[i].runtime_id.clone(), p.labels(i)))
            .collect();
        let q = TaskPlan::from_labels(&observed).unwrap();
        assert_eq!(q.arn, p.arn);
        assert_eq!(q.containers, p.containers);
        assert_eq!(q.ports, p.ports);
        assert_eq!(q.revision, 3);
        assert!(q.definition.is_none());
        // A missing container is noticed.
        assert!(matches!(
            TaskPlan::from_labels(&observed[..1]),
            Err(PlanError::Incomplete {
                count: 1,
                expected: 2,
                ..
            })
        ));
    }

    #[test]
    fn docker_labels_become_container_labels_under_berths_own() {
        let json = r#"{"family":"web","containerDefinitions":[
            {"name":"web","image":"busybox","memory":32,"dockerLabels":{
                "traefik.enable":"true",
                "traefik.http.routers.web.rule":"Host(`web.example`)",
                "berth.task-arn":"spoofed",
                "berth.lifecycle":"{}",
                "com.amazonaws.ecs.cluster":"spoofed",
                "big":"BIG"}},
            {"name":"side","image":"busybox","memory":32}]}"#;
        let json = json.replace("BIG", &"x".repeat(labels::MAX_LABEL_BYTES));
        let p = TaskPlan::from_desired(&desired(&json), Duration::from_secs(30)).unwrap();
        let l = p.container_labels(0);
        assert_eq!(l["traefik.enable"], "true");
        assert_eq!(l["traefik.http.routers.web.rule"], "Host(`web.example`)");
        // Berth's and the ECS agent's labels win; Berth's namespace is closed.
        assert_eq!(l[labels::TASK_ARN], p.arn);
        assert!(!l.contains_key(labels::LIFECYCLE));
        assert_eq!(l[labels::ECS_CLUSTER], "default");
        assert_eq!(l[labels::ECS_TASK_ARN], p.arn);
        assert_eq!(l[labels::ECS_CONTAINER_NAME], "web");
        assert_eq!(l[labels::ECS_FAMILY], "web");
        assert_eq!(l[labels::ECS_REVISION], "3");
        assert!(!l.contains_key("big"), "over containerd's limit");
        // Every Berth label is there, unchanged.
        for (k, v) in p.labels(0) {
            assert_eq!(l.get(&k), Some(&v), "{k}");
        }
        // The other container has only its own.
        let side = p.container_labels(1);
        assert!(!side.contains_key("traefik.enable"));
        assert_eq!(side[labels::ECS_CONTAINER_NAME], "side");
        // The labels still round-trip into the same plan.
        let observed: Vec<_> = (0..2)
            .map(|i| (p.containers[i].runtime_id.clone(), p.container_labels(i)))
            .collect();
        let q = TaskPlan::from_labels(&observed).unwrap();
        assert_eq!(q.containers, p.containers);
    }

    #[test]
    fn unreadable_definition_is_an_error() {
        assert!(matches!(
            TaskPlan::from_desired(&desired("{}"), Duration::from_secs(30)),
            Err(PlanError::Definition { .. })
        ));
    }
}
