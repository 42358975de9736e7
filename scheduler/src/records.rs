//! Domain records as the scheduler stores them. Prost types never reach
//! here; the API modules convert at the edge.

use berth_proto::taskdef::{TaskDefinition, TaskDefinitionStatus};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
pub type UnixMillis = i64;

/// Current wall-clock time in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ClusterStatus {
    Active,
    Inactive,
}

impl ClusterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterStatus::Active => "ACTIVE",
            ClusterStatus::Inactive => "INACTIVE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub name: String,
    pub status: ClusterStatus,
    pub created_at: UnixMillis,
}

/// Per-family bookkeeping: revisions are never reused, even after
/// deregistration, so the last one issued is kept here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyRecord {
    pub last_revision: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDefinitionRecord {
    pub family: String,
    pub revision: u32,
    pub status: TaskDefinitionStatus,
    pub registered_at: UnixMillis,
    pub deregistered_at: Option<UnixMillis>,
    pub definition: TaskDefinition,
}

/// ECS container-instance status names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceStatus {
    Active,
    Draining,
    Inactive,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Active => "ACTIVE",
            InstanceStatus::Draining => "DRAINING",
            InstanceStatus::Inactive => "INACTIVE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "ACTIVE" => Some(Self::Active),
            "DRAINING" => Some(Self::Draining),
            "INACTIVE" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// What a host reported it has, in the Hello of its latest session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResources {
    pub cpu_units: i64,
    pub memory_mib: i64,
    pub port_range: (u16, u16),
    pub reserved_tcp_ports: Vec<u16>,
    pub reserved_udp_ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: String,
    pub cluster: String,
    pub hostname: String,
    pub status: InstanceStatus,
    pub registered_at: UnixMillis,
    pub agent_version: String,
    pub resources: HostResources,
    /// Sorted by name; names unique.
    pub attributes: Vec<(String, String)>,
    /// SHA-256 (hex) of the agent's credential secret.
    pub credential_sha256: String,
}
