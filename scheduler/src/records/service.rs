//! Service records: a service with its deployments, its last events and
//! its last ECS service deployments, stored as one record so that every
//! controller decision is one checked write (the deployments survive a
//! restart with the service).

use serde::{Deserialize, Serialize};

use super::UnixMillis;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many events a service keeps (ECS's DescribeServices shows 100).
pub const MAX_SERVICE_EVENTS: usize = 100;
/// How many service deployments (ECS's ListServiceDeployments) a service
/// keeps, newest first.
pub const MAX_SERVICE_DEPLOYMENTS: usize = 20;

/// ECS's service status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ServiceStatus {
    Active,
    Draining,
    Inactive,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Active => "ACTIVE",
            ServiceStatus::Draining => "DRAINING",
            ServiceStatus::Inactive => "INACTIVE",
        }
    }
}

/// ECS's schedulingStrategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchedulingStrategy {
    Replica,
    Daemon,
}

impl SchedulingStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulingStrategy::Replica => "REPLICA",
            SchedulingStrategy::Daemon => "DAEMON",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "REPLICA" => Some(Self::Replica),
            "DAEMON" => Some(Self::Daemon),
            _ => None,
        }
    }
}

/// ECS's deployment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeploymentStatus {
    Primary,
    Active,
    Inactive,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Primary => "PRIMARY",
            DeploymentStatus::Active => "ACTIVE",
            DeploymentStatus::Inactive => "INACTIVE",
        }
    }
}

/// ECS's deployment rolloutState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::InProgress => "IN_PROGRESS",
            RolloutState::Completed => "COMPLETED",
            RolloutState::Failed => "FAILED",
        }
    }
}

/// ECS's deploymentCircuitBreaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

/// ECS's deploymentConfiguration, with the defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentConfig {
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    pub circuit_breaker: CircuitBreaker,
}

/// A placement constraint or strategy as the user gave it (type and
/// expression or field); parsed again by the controller, checked by the
/// API before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementItem {
    pub kind: String,
    pub value: String,
}

/// One deployment of a service: a task definition rolling out (PRIMARY)
/// or being replaced (ACTIVE). Its tasks carry `startedBy = id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// `ecs-svc/` and 19 digits, as ECS.
    pub id: String,
    pub status: DeploymentStatus,
    pub family: String,
    pub revision: u32,
    pub rollout_state: RolloutState,
    pub rollout_state_reason: String,
    /// Failed task launches counted so far (for the circuit breaker).
    pub failed_tasks: u32,
    /// Failed launches whose task records retention has removed
    /// (`crate::retention`); counted in `failed_tasks` still.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pruned_failures: u32,
    /// When the latest of those stopped (for the start throttle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pruned_failure_at: Option<UnixMillis>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// The service's `loadBalancers` when it started: its tasks register
    /// in these (a change of them is a new deployment, as in ECS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<super::LoadBalancerRecord>,
}

/// ECS's ServiceDeployment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceDeploymentStatus {
    Pending,
    Successful,
    Stopped,
    StopRequested,
    InProgress,
    RollbackRequested,
    RollbackInProgress,
    RollbackSuccessful,
    RollbackFailed,
}

impl ServiceDeploymentStatus {
    pub const ALL: [ServiceDeploymentStatus; 9] = [
        Self::Pending,
        Self::Successful,
        Self::Stopped,
        Self::StopRequested,
        Self::InProgress,
        Self::RollbackRequested,
        Self::RollbackInProgress,
        Self::RollbackSuccessful,
        Self::RollbackFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Successful => "SUCCESSFUL",
            Self::Stopped => "STOPPED",
            Self::StopRequested => "STOP_REQUESTED",
            Self::InProgress => "IN_PROGRESS",
            Self::RollbackRequested => "ROLLBACK_REQUESTED",
            Self::RollbackInProgress => "ROLLBACK_IN_PROGRESS",
            Self::RollbackSuccessful => "ROLLBACK_SUCCESSFUL",
            Self::RollbackFailed => "ROLLBACK_FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether nothing more happens to a deployment in this status.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Successful | Self::Stopped | Self::RollbackSuccessful | Self::RollbackFailed
        )
    }
}

/// What a service deployment rolls out or replaces: one of the service's
/// deployments (its `ecs-svc/` id) and its task definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRef {
    pub deployment_id: String,
    pub family: String,
    pub revision: u32,
}

impl RevisionRef {
    pub fn of(d: &DeploymentRecord) -> Self {
        Self {
            deployment_id: d.id.clone(),
            family: d.family.clone(),
            revision: d.revision,
        }
    }

    /// The service revision's id: the deployment id's digits.
    pub fn revision_id(&self) -> &str {
        self.deployment_id
            .strip_prefix("ecs-svc/")
            .unwrap_or(&self.deployment_id)
    }
}

/// A circuit breaker's rollback of a service deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRecord {
    pub reason: String,
    pub started_at: UnixMillis,
    pub target: RevisionRef,
}

/// One ECS service deployment: a change of the service's task definition
/// (or a forced redeployment) from its `sources` to its `target`, and how
/// it ended (`crate::services::history` keeps these from the deployments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDeploymentRecord {
    /// Random letters and digits: the ARN's last segment.
    pub id: String,
    pub status: ServiceDeploymentStatus,
    pub status_reason: String,
    pub created_at: UnixMillis,
    pub started_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
    pub stopped_at: Option<UnixMillis>,
    pub target: RevisionRef,
    /// The deployments still running when this one started.
    pub sources: Vec<RevisionRef>,
    pub deployment_config: DeploymentConfig,
    /// Failed launches of the target counted by the circuit breaker.
    pub failed_tasks: u32,
    /// Whether the circuit breaker failed the target.
    pub breaker_tripped: bool,
    pub rollback: Option<RollbackRecord>,
}

/// One line of a service's event log, in ECS's wording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEventRecord {
    pub id: String,
    pub created_at: UnixMillis,
    pub message: String,
}

/// A service, its deployments (PRIMARY first) and its last events
/// (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub cluster: String,
    pub name: String,
    pub status: ServiceStatus,
    pub scheduling: SchedulingStrategy,
    /// REPLICA: as set; DAEMON: the controller keeps it at the number of
    /// instances that should run the daemon.
    pub desired_count: u32,
    pub constraints: Vec<PlacementItem>,
    pub strategies: Vec<PlacementItem>,
    pub deployment_config: DeploymentConfig,
    pub health_check_grace_period_secs: u32,
    pub tags: Vec<(String, String)>,
    pub created_at: UnixMillis,
    pub deployments: Vec<DeploymentRecord>,
    pub events: Vec<ServiceEventRecord>,
    /// Whether the last evaluation found the service at steady state (so
    /// the steady-state event is written once per arrival).
    pub steady: bool,
    /// No task is started before this time (the start-failure throttle).
    pub throttled_until: Option<UnixMillis>,
    /// Consecutive failed launches behind the throttle.
    pub throttle_failures: u32,
    /// The task definition of the last COMPLETED deployment (the circuit
    /// breaker's rollback target).
    pub last_completed: Option<(String, u32)>,
    /// +1 on every write.
    pub version: u64,
    /// ECS's service deployments, newest first, the last
    /// [`MAX_SERVICE_DEPLOYMENTS`] (absent in records written before).
    #[serde(default)]
    pub service_deployments: Vec<ServiceDeploymentRecord>,
    /// ECS's `loadBalancers`, for the next deployment (each deployment
    /// keeps its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancers: Vec<super::LoadBalancerRecord>,
    /// Its DNS name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<super::DiscoveryRecord>,
    /// ECS's enableExecuteCommand: tasks started from now on get it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_execute_command: bool,
}

impl ServiceRecord {
    /// The task group of the service's tasks (ECS: `service:<name>`).
    pub fn group(&self) -> String {
        format!("service:{}", self.name)
    }

    pub fn primary(&self) -> Option<&DeploymentRecord> {
        self.deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Primary)
    }

    /// Adds an event (newest first), keeping the last [`MAX_SERVICE_EVENTS`].
    pub fn push_event(&mut self, id: String, at: UnixMillis, message: String) {
        self.events.insert(
            0,
            ServiceEventRecord {
                id,
                created_at: at,
                message,
            },
        );
        self.events.truncate(MAX_SERVICE_EVENTS);
    }
}
