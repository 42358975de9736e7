//! Domain records as the scheduler stores them. Prost types never reach
//! here; the API modules convert at the edge.

use berth_proto::arn::ArnPrefix;
use berth_proto::taskdef::{NetworkMode, ReadOnlyFields, TaskDefinition, TaskDefinitionStatus};
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
    /// ECS's tags, in the order first set; keys unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
}

/// A record that carries ECS tags (`TagService`). Keys are unique; the
/// order is the order they were first set.
pub trait Tagged {
    fn tags(&self) -> Vec<(String, String)>;
    fn set_tags(&mut self, tags: Vec<(String, String)>);
}

macro_rules! tagged_by_field {
    ($($record:ty),*) => {$(
        impl Tagged for $record {
            fn tags(&self) -> Vec<(String, String)> {
                self.tags.clone()
            }
            fn set_tags(&mut self, tags: Vec<(String, String)>) {
                self.tags = tags;
            }
        }
    )*};
}

tagged_by_field!(ClusterRecord, InstanceRecord, TaskRecord, ServiceRecord);

/// A revision's tags are its definition's `tags` (registered with it, and
/// changed by TagResource afterwards).
impl Tagged for TaskDefinitionRecord {
    fn tags(&self) -> Vec<(String, String)> {
        self.definition
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect()
    }
    fn set_tags(&mut self, tags: Vec<(String, String)>) {
        self.definition.tags = tags
            .into_iter()
            .map(|(key, value)| berth_proto::taskdef::Tag { key, value })
            .collect();
    }
}

/// `tags` with `new` merged in: a key present gets the new value, a new key
/// goes at the end (ECS's TagResource).
pub fn merge_tags(tags: &mut Vec<(String, String)>, new: &[(String, String)]) {
    for (k, v) in new {
        match tags.iter_mut().find(|(key, _)| key == k) {
            Some(t) => t.1 = v.clone(),
            None => tags.push((k.clone(), v.clone())),
        }
    }
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

impl TaskDefinitionRecord {
    /// The revision as `aws ecs describe-task-definition` prints its
    /// `taskDefinition` object: what `DescribeTaskDefinition` returns and
    /// what an agent receives in its desired set.
    pub fn describe_json(&self, arn: &ArnPrefix) -> String {
        let ro = ReadOnlyFields {
            task_definition_arn: arn.task_definition(&self.family, self.revision),
            revision: self.revision,
            status: self.status,
            registered_at: offset_datetime(self.registered_at),
            deregistered_at: self.deregistered_at.map(offset_datetime),
            registered_by: None,
        };
        berth_proto::taskdef::describe_json(&self.definition, &ro).to_string()
    }
}

fn offset_datetime(ms: UnixMillis) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
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
    /// Serials (hex) of every client certificate issued to it; all are
    /// revoked when it is deregistered.
    #[serde(default)]
    pub cert_serials: Vec<String>,
    /// The activation it joined with.
    #[serde(default)]
    pub activation_id: String,
    /// Custom attributes, sorted by name: the activation's, then those set
    /// by PutAttributes (which DeleteAttributes removes). They are merged
    /// into `attributes` and a Hello cannot override them.
    #[serde(default)]
    pub custom_attributes: Vec<(String, String)>,
    /// ECS's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The address its tasks' host ports are reached on: the agent's
    /// `advertise_address`, else the address its connection came from
    /// (set on every Hello; `None` before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::Ipv4Addr>,
}

impl InstanceRecord {
    /// The instance's attributes: what the agent reported, with the
    /// activation's custom attributes over them. Sorted by name.
    pub fn merged_attributes(
        reported: &[(String, String)],
        custom: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut out: std::collections::BTreeMap<String, String> =
            reported.iter().cloned().collect();
        out.extend(custom.iter().cloned());
        out.into_iter().collect()
    }
}

// ------------------------------------------------------------------ trust

/// An activation: lets up to `registration_limit` hosts join `cluster`
/// until `expires_at`. Only the SHA-256 of its code is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub id: String,
    /// SHA-256 (hex) of the activation code.
    pub code_sha256: String,
    pub cluster: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub registration_limit: u32,
    pub registrations: u32,
    /// Sorted by name.
    pub attributes: Vec<(String, String)>,
    pub revoked: bool,
}

/// Why an activation cannot register a host now (or `Active` if it can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationStatus {
    Active,
    Expired,
    Exhausted,
    Revoked,
}

impl ActivationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationStatus::Active => "ACTIVE",
            ActivationStatus::Expired => "EXPIRED",
            ActivationStatus::Exhausted => "EXHAUSTED",
            ActivationStatus::Revoked => "REVOKED",
        }
    }
}

impl ActivationRecord {
    pub fn status(&self, now: UnixMillis) -> ActivationStatus {
        if self.revoked {
            ActivationStatus::Revoked
        } else if now >= self.expires_at {
            ActivationStatus::Expired
        } else if self.registrations >= self.registration_limit {
            ActivationStatus::Exhausted
        } else {
            ActivationStatus::Active
        }
    }
}

/// A revoked client certificate (keyed by its serial).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCertRecord {
    pub instance_id: String,
    pub revoked_at: UnixMillis,
}

// ------------------------------------------------------------------ tasks

pub use berth_proto::ecs::{
    ContainerStatus, DesiredStatus, HealthStatus, Protocol, StopCode, TaskStatus,
};

/// One published port: which container port the scheduler mapped to which
/// host port (dynamic ones resolved at placement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortAssignment {
    pub container_name: String,
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_port: u16,
}

/// What a task holds on its instance from placement until it is STOPPED.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub cpu_units: i64,
    pub memory_mib: i64,
    /// One per published port, in task-definition order.
    pub ports: Vec<PortAssignment>,
}

impl Reservation {
    pub fn host_ports(&self, protocol: Protocol) -> impl Iterator<Item = u16> + '_ {
        self.ports
            .iter()
            .filter(move |p| p.protocol == protocol)
            .map(|p| p.host_port)
    }
}

/// A network binding as the agent really mapped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkBinding {
    pub bind_ip: String,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// A container of a task, as the agent last reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub image_digest: String,
    /// containerd's container id.
    #[serde(default)]
    pub runtime_id: String,
    /// ECS's container lastStatus, stored as its name; `None` (`""`) in a
    /// report that does not say.
    #[serde(with = "berth_proto::ecs::empty_is_none")]
    pub last_status: Option<ContainerStatus>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    /// `None` (stored as `""`) for a container without a health check.
    #[serde(default, with = "berth_proto::ecs::empty_is_none")]
    pub health_status: Option<HealthStatus>,
    /// The last health check's output (first 1024 bytes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health_check_output: String,
    /// Restarts by the container's restartPolicy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restart_count: u32,
    /// From the definition, for DescribeTasks.
    #[serde(default)]
    pub cpu: Option<u32>,
    #[serde(default)]
    pub memory: Option<u32>,
    #[serde(default)]
    pub memory_reservation: Option<u32>,
}

/// One task: where it runs, what the scheduler wants of it, what the agent
/// last reported, and what it holds on its instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// 32 lowercase hex digits, like ECS's task ids.
    pub id: String,
    pub cluster: String,
    pub instance_id: String,
    /// The definition is `family:revision` in `TaskDefinitions`; revisions
    /// are immutable and never deleted, so the key is the snapshot.
    pub family: String,
    pub revision: u32,
    pub desired_status: DesiredStatus,
    pub last_status: TaskStatus,
    /// Stored as its name, `""` for none.
    #[serde(default, with = "berth_proto::ecs::empty_is_none")]
    pub health_status: Option<HealthStatus>,
    pub started_by: String,
    pub group: String,
    pub created_at: UnixMillis,
    #[serde(default)]
    pub pull_started_at: Option<UnixMillis>,
    #[serde(default)]
    pub pull_stopped_at: Option<UnixMillis>,
    #[serde(default)]
    pub started_at: Option<UnixMillis>,
    #[serde(default)]
    pub stopping_at: Option<UnixMillis>,
    #[serde(default)]
    pub stopped_at: Option<UnixMillis>,
    /// Why it stopped; stored as ECS's name, `""` while there is none.
    #[serde(default, with = "berth_proto::ecs::empty_is_none")]
    pub stop_code: Option<StopCode>,
    #[serde(default)]
    pub stopped_reason: String,
    pub containers: Vec<ContainerRecord>,
    pub reservation: Reservation,
    /// Rises with every change of the record (ECS's `version`).
    pub version: i64,
    /// RunTask's `overrides`, applied to the definition the agent gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<TaskOverrides>,
    /// ECS's tags (RunTask's and StartTask's `tags`, then TagResource).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The definition's network mode as run (`bridge` when it gives none);
    /// `None` in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<NetworkMode>,
    /// awsvpc tasks: the task's own address on its host's Berth bridge, as
    /// the agent reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ipv4: Option<std::net::Ipv4Addr>,
    /// Service tasks behind load balancers: its targets, with their health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TaskTarget>,
    /// Stopped while its targets were registered: it is DEACTIVATING, its
    /// targets drain, and its agent keeps it running until this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_until: Option<UnixMillis>,
    /// ECS's enableExecuteCommand: ExecuteCommand may run processes in it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_execute_command: bool,
}

/// ECS's `TaskOverride` (the container fields Berth honours).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOverrides {
    pub container_overrides: Vec<ContainerOverride>,
}

/// ECS's `ContainerOverride`: replaces `command`, `cpu`, `memory` and
/// `memoryReservation`; `environment` entries are added, replacing those of
/// the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerOverride {
    pub name: String,
    pub command: Option<Vec<String>>,
    pub environment: Vec<(String, String)>,
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    pub memory_reservation: Option<u32>,
}

impl TaskOverrides {
    /// `def` with the overrides applied. Unknown container names are
    /// skipped (the API refuses them before a task is recorded).
    pub fn apply(&self, def: &TaskDefinition) -> TaskDefinition {
        let mut def = def.clone();
        for o in &self.container_overrides {
            let Some(c) = def
                .container_definitions
                .iter_mut()
                .find(|c| c.name == o.name)
            else {
                continue;
            };
            if let Some(command) = &o.command {
                c.command = Some(command.clone());
            }
            for (name, value) in &o.environment {
                match c.environment.iter_mut().find(|kv| kv.name == *name) {
                    Some(kv) => kv.value = Some(value.clone()),
                    None => c.environment.push(berth_proto::taskdef::KeyValuePair {
                        name: name.clone(),
                        value: Some(value.clone()),
                    }),
                }
            }
            if o.cpu.is_some() {
                c.cpu = o.cpu;
            }
            if o.memory.is_some() {
                c.memory = o.memory;
            }
            if o.memory_reservation.is_some() {
                c.memory_reservation = o.memory_reservation;
            }
        }
        def
    }
}

impl TaskRecord {
    /// Whether its agent should still run it: desired RUNNING, or stopped
    /// but its targets still draining.
    pub fn runs_for_agent(&self) -> bool {
        self.desired_status == DesiredStatus::Running || self.drain_until.is_some()
    }

    /// In the instance's desired set: wanted running, or wanted stopped
    /// but not yet reported STOPPED.
    pub fn in_desired_set(&self) -> bool {
        self.last_status != TaskStatus::Stopped
    }

    /// Holds its reservation (until it is STOPPED).
    pub fn holds_reservation(&self) -> bool {
        self.last_status != TaskStatus::Stopped
    }
}

/// What is allocated on one instance: the sum of the reservations of its
/// tasks that are not STOPPED. Every placement and release rewrites it in
/// the same transaction as the task, checked against the bytes read, so
/// two concurrent placements can never share a port or over-commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    pub cpu_units: i64,
    pub memory_mib: i64,
    /// Sorted, unique.
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    /// Rises with every change of the instance's desired set; sent as
    /// `DesiredState.generation`. Stored, so it keeps rising across
    /// scheduler restarts.
    pub generation: u64,
    /// How many tasks hold a reservation here (CQL's `runningTasksCount`).
    #[serde(default)]
    pub tasks: u32,
    /// Tasks per group among them (`distinctInstance`, `spread`,
    /// `task:group`). Groups with no task are absent.
    #[serde(default)]
    pub groups: std::collections::BTreeMap<String, u32>,
}

impl AllocationRecord {
    pub fn ports(&self, protocol: Protocol) -> &Vec<u16> {
        match protocol {
            Protocol::Tcp => &self.tcp_ports,
            Protocol::Udp => &self.udp_ports,
        }
    }

    fn ports_mut(&mut self, protocol: Protocol) -> &mut Vec<u16> {
        match protocol {
            Protocol::Tcp => &mut self.tcp_ports,
            Protocol::Udp => &mut self.udp_ports,
        }
    }

    pub fn is_allocated(&self, protocol: Protocol, port: u16) -> bool {
        self.ports(protocol).binary_search(&port).is_ok()
    }

    /// Records one more task of `group` holding `r`.
    pub fn add_task(&mut self, r: &Reservation, group: &str) {
        self.add(r);
        self.tasks += 1;
        *self.groups.entry(group.to_owned()).or_insert(0) += 1;
    }

    /// Forgets one task of `group` holding `r` (it stopped).
    pub fn release_task(&mut self, r: &Reservation, group: &str) {
        self.release(r);
        self.tasks = self.tasks.saturating_sub(1);
        if let Some(n) = self.groups.get_mut(group) {
            *n -= 1;
            if *n == 0 {
                self.groups.remove(group);
            }
        }
    }

    /// Tasks of `group` here.
    pub fn group_count(&self, group: &str) -> u32 {
        self.groups.get(group).copied().unwrap_or(0)
    }

    pub fn add(&mut self, r: &Reservation) {
        self.cpu_units += r.cpu_units;
        self.memory_mib += r.memory_mib;
        for p in &r.ports {
            let v = self.ports_mut(p.protocol);
            if let Err(i) = v.binary_search(&p.host_port) {
                v.insert(i, p.host_port);
            }
        }
    }

    pub fn release(&mut self, r: &Reservation) {
        self.cpu_units -= r.cpu_units;
        self.memory_mib -= r.memory_mib;
        for p in &r.ports {
            let v = self.ports_mut(p.protocol);
            if let Ok(i) = v.binary_search(&p.host_port) {
                v.remove(i);
            }
        }
    }
}

/// An operator token. Only the SHA-256 of its secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: crate::auth::Role,
    pub secret_sha256: String,
    pub created_at: UnixMillis,
    pub expires_at: Option<UnixMillis>,
    pub revoked_at: Option<UnixMillis>,
    /// Name of the token that created this one (`bootstrap` for the first).
    pub created_by: String,
    /// The secret itself, sealed with the scheduler's secrets key (base64
    /// of `nonce || ciphertext`, see `Secrets::seal_token_secret`): SigV4
    /// signs with the secret, so the ECS API needs it back. Absent on
    /// tokens stored before the ECS API existed: they work on the gRPC API
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
}

impl TokenRecord {
    /// Neither revoked nor expired at `now`.
    pub fn is_usable(&self, now: UnixMillis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// One mutating call: who, what, when, and how it ended. Never a request
/// body (which may hold secrets), only the resource the call named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Time-ordered: 16 hex digits of milliseconds, then 8 of a counter.
    pub id: String,
    pub time: UnixMillis,
    pub token_id: String,
    pub token_name: String,
    /// Full gRPC path, `/berth.v1.ClusterService/CreateCluster`.
    pub method: String,
    /// e.g. `cluster/prod`; empty when the call names nothing.
    pub resource: String,
    /// `OK` or the gRPC status code name.
    pub outcome: String,
}
/// A secret's current version, sealed by `crate::secrets` (nonce and
/// ciphertext, with the name and version as associated data). Older
/// versions are not kept. `Debug` leaves the sealed bytes out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub name: String,
    /// 1 on creation, +1 on every put. A deleted and re-created secret
    /// starts again at 1 (as an SSM parameter does).
    pub version: u32,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Base64 of `nonce || ciphertext`.
    pub sealed: String,
}

impl std::fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRecord")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

mod service;
pub use service::*;
mod traffic;
pub use traffic::*;
mod webhook;
pub use webhook::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// A task record exactly as the store holds it: the ECS names are the
    /// stored strings, and an absent stop code is `""`.
    const STORED_TASK: &str = r#"{"id":"0123456789abcdef0123456789abcdef","cluster":"default","instance_id":"i1","family":"web","revision":3,"desired_status":"STOPPED","last_status":"DEPROVISIONING","health_status":"UNKNOWN","started_by":"","group":"family:web","created_at":1,"pull_started_at":null,"pull_stopped_at":null,"started_at":2,"stopping_at":3,"stopped_at":null,"stop_code":"UserInitiated","stopped_reason":"Task stopped by user","containers":[{"name":"web","image":"nginx","image_digest":"","runtime_id":"c1","last_status":"RUNNING","exit_code":null,"reason":"","network_bindings":[],"health_status":"","cpu":null,"memory":128,"memory_reservation":null},{"name":"side","image":"busybox","image_digest":"","runtime_id":"","last_status":"PENDING","exit_code":null,"reason":"","network_bindings":[{"bind_ip":"0.0.0.0","container_port":53,"host_port":5353,"protocol":"udp"}],"health_status":"HEALTHY","health_check_output":"ok","restart_count":2,"cpu":null,"memory":null,"memory_reservation":null}],"reservation":{"cpu_units":0,"memory_mib":128,"ports":[{"container_name":"web","container_port":80,"protocol":"tcp","host_port":8080}]},"version":4}"#;

    #[test]
    fn stored_task_records_keep_their_form() {
        let t: TaskRecord = serde_json::from_str(STORED_TASK).unwrap();
        assert_eq!(t.desired_status, DesiredStatus::Stopped);
        assert_eq!(t.last_status, TaskStatus::Deprovisioning);
        assert_eq!(t.stop_code, Some(StopCode::UserInitiated));
        assert_eq!(t.health_status, Some(HealthStatus::Unknown));
        assert_eq!(t.containers[0].last_status, Some(ContainerStatus::Running));
        assert_eq!(t.containers[0].health_status, None);
        assert_eq!(t.containers[1].health_status, Some(HealthStatus::Healthy));
        assert_eq!(serde_json::to_string(&t).unwrap(), STORED_TASK);

        let running = STORED_TASK.replace(r#""stop_code":"UserInitiated""#, r#""stop_code":"""#);
        let t: TaskRecord = serde_json::from_str(&running).unwrap();
        assert_eq!(t.stop_code, None);
        assert_eq!(serde_json::to_string(&t).unwrap(), running);

        let older = STORED_TASK.replace(r#""stop_code":"UserInitiated","#, "");
        let t: TaskRecord = serde_json::from_str(&older).unwrap();
        assert_eq!(t.stop_code, None, "records from before stop codes decode");
    }
}
