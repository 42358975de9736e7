//! What the scheduler wants on this host: the full set of tasks with their
//! desired status, as the last `DesiredState` message said. The session keeps
//! the latest one in a `tokio::sync::watch`; the task runtime reconciles
//! containerd to it (level-triggered: it always gets the whole set).

/// The scheduler's full desired set for this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    /// Rises with every change the scheduler makes to this instance's set.
    pub generation: u64,
    pub tasks: Vec<DesiredTask>,
}

/// One task the scheduler placed on this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredTask {
    pub task_arn: String,
    pub desired_status: DesiredStatus,
    /// The task definition as ECS JSON, as the scheduler validated it.
    pub task_definition_json: String,
    pub cluster: String,
    pub family: String,
    pub revision: u32,
    /// Host ports the scheduler reserved, one per published port mapping.
    pub ports: Vec<PortAssignment>,
    /// With `desired_status` STOPPED: why (ECS stopCode and stoppedReason).
    pub stop_code: String,
    pub stopped_reason: String,
}

/// A host port the scheduler reserved for one container port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortAssignment {
    pub container_name: String,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub host_port: u16,
}

/// ECS's desiredStatus of a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DesiredStatus {
    #[default]
    Running,
    Stopped,
}

impl DesiredStatus {
    /// ECS's name: `RUNNING` or `STOPPED`.
    pub fn as_str(self) -> &'static str {
        match self {
            DesiredStatus::Running => "RUNNING",
            DesiredStatus::Stopped => "STOPPED",
        }
    }

    /// Reads ECS's name; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RUNNING" => Some(DesiredStatus::Running),
            "STOPPED" => Some(DesiredStatus::Stopped),
            _ => None,
        }
    }
}
