//! ECS's response shapes as serde structs, members in the order of ECS's
//! API model (the order the aws CLI prints), built from `berth.v1`
//! messages. Absent members are `None` and not serialized; the lists ECS
//! always prints are plain `Vec`s.

use serde::Serialize;

use super::epoch;
use crate::v1 as pb;

/// ECS's launch type for tasks on hosts the user runs (ECS Anywhere).
const LAUNCH_TYPE: &str = "EXTERNAL";

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `s`, or `default` when empty.
fn or(s: &str, default: &str) -> String {
    if s.is_empty() { default } else { s }.to_owned()
}

#[derive(Debug, Serialize)]
pub struct KeyValuePair {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Tags as ECS prints them.
fn tags(tags: &[pb::Tag]) -> Vec<Tag> {
    tags.iter()
        .map(|t| Tag {
            key: t.key.clone(),
            value: t.value.clone(),
        })
        .collect()
}

/// `Some` when there are tags: the field ECS prints only when asked.
fn asked_tags(ts: &[pb::Tag]) -> Option<Vec<Tag>> {
    Some(tags(ts)).filter(|t| !t.is_empty())
}

/// ECS's Failure.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub arn: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<&pb::Failure> for Failure {
    fn from(f: &pb::Failure) -> Self {
        Self {
            arn: f.arn.clone(),
            reason: f.reason.clone(),
            detail: non_empty(&f.detail),
        }
    }
}

/// ECS's ClusterSetting.
#[derive(Debug, Serialize)]
pub struct ClusterSetting {
    pub name: &'static str,
    pub value: &'static str,
}

/// ECS's Cluster.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub cluster_arn: String,
    pub cluster_name: String,
    pub status: String,
    pub registered_container_instances_count: i32,
    pub running_tasks_count: i32,
    pub pending_tasks_count: i32,
    pub active_services_count: i32,
    pub statistics: Vec<KeyValuePair>,
    pub tags: Vec<Tag>,
    pub settings: Vec<ClusterSetting>,
    pub capacity_providers: Vec<String>,
    pub default_capacity_provider_strategy: Vec<()>,
}

impl From<&pb::Cluster> for Cluster {
    fn from(c: &pb::Cluster) -> Self {
        Self {
            cluster_arn: c.cluster_arn.clone(),
            cluster_name: c.cluster_name.clone(),
            status: c.status.clone(),
            registered_container_instances_count: c.registered_container_instances_count,
            running_tasks_count: c.running_tasks_count,
            pending_tasks_count: c.pending_tasks_count,
            active_services_count: c.active_services_count,
            statistics: Vec::new(),
            // Present with `include: ["TAGS"]` (the core leaves them out otherwise).
            tags: tags(&c.tags),
            // ECS's account default; Berth has no Container Insights.
            settings: vec![ClusterSetting {
                name: "containerInsights",
                value: "disabled",
            }],
            capacity_providers: Vec::new(),
            default_capacity_provider_strategy: Vec::new(),
        }
    }
}

/// ECS's Attachment (an `ElasticNetworkInterface` for awsvpc tasks).
#[derive(Debug, Serialize)]
pub struct Attachment {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: &'static str,
    pub details: Vec<KeyValuePair>,
}

/// ECS's NetworkInterface of a container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    pub attachment_id: String,
    pub private_ipv4_address: String,
}

/// ECS's NetworkBinding (`bindIP`, as ECS spells it).
#[derive(Debug, Serialize)]
pub struct NetworkBinding {
    #[serde(rename = "bindIP")]
    pub bind_ip: String,
    #[serde(rename = "containerPort")]
    pub container_port: u32,
    #[serde(rename = "hostPort")]
    pub host_port: u32,
    pub protocol: String,
}

/// ECS's Container of a task.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub container_arn: String,
    pub task_arn: String,
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    pub last_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub network_bindings: Vec<NetworkBinding>,
    pub network_interfaces: Vec<NetworkInterface>,
    pub health_status: String,
    pub cpu: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<String>,
    /// Berth's own: the last health check's output (first 1024 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_output: Option<String>,
    /// Berth's own: restarts by the container's restartPolicy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
}

impl Container {
    /// The container; `eni` is the task's attachment id and address when
    /// the task has its own (awsvpc).
    pub fn new(c: &pb::Container, eni: Option<(&str, &str)>) -> Self {
        Self {
            container_arn: c.container_arn.clone(),
            task_arn: c.task_arn.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            image_digest: non_empty(&c.image_digest),
            runtime_id: non_empty(&c.runtime_id),
            last_status: or(&c.last_status, "PENDING"),
            exit_code: c.exit_code,
            reason: non_empty(&c.reason),
            network_bindings: c
                .network_bindings
                .iter()
                .map(|b| NetworkBinding {
                    bind_ip: b.bind_ip.clone(),
                    container_port: b.container_port,
                    host_port: b.host_port,
                    protocol: b.protocol.clone(),
                })
                .collect(),
            network_interfaces: eni
                .map(|(id, ip)| NetworkInterface {
                    attachment_id: id.to_owned(),
                    private_ipv4_address: ip.to_owned(),
                })
                .into_iter()
                .collect(),
            health_status: or(&c.health_status, "UNKNOWN"),
            cpu: or(&c.cpu, "0"),
            memory: non_empty(&c.memory),
            memory_reservation: non_empty(&c.memory_reservation),
            health_check_output: non_empty(&c.health_check_output),
            restart_count: (c.restart_count > 0).then_some(c.restart_count),
        }
    }
}

/// ECS's ContainerOverride.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverride {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<KeyValuePair>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
}

/// ECS's TaskOverride.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOverride {
    pub container_overrides: Vec<ContainerOverride>,
    pub inference_accelerator_overrides: Vec<()>,
}

impl TaskOverride {
    /// ECS lists one override per container, `{"name": …}` alone for a
    /// container without one.
    fn new(t: &pb::Task) -> Self {
        let given = t.overrides.as_ref().map(|o| &o.container_overrides);
        let find = |name: &str| given.and_then(|g| g.iter().find(|o| o.name == name));
        let mut container_overrides: Vec<ContainerOverride> = t
            .containers
            .iter()
            .map(|c| match find(&c.name) {
                Some(o) => ContainerOverride::from(o),
                None => ContainerOverride::from(&pb::ContainerOverride {
                    name: c.name.clone(),
                    ..Default::default()
                }),
            })
            .collect();
        // Overrides of containers the task does not list (none, normally).
        for o in given.into_iter().flatten() {
            if !t.containers.iter().any(|c| c.name == o.name) {
                container_overrides.push(ContainerOverride::from(o));
            }
        }
        Self {
            container_overrides,
            inference_accelerator_overrides: Vec::new(),
        }
    }
}

impl From<&pb::ContainerOverride> for ContainerOverride {
    fn from(o: &pb::ContainerOverride) -> Self {
        Self {
            name: o.name.clone(),
            command: o.command.clone(),
            environment: o
                .environment
                .iter()
                .map(|e| KeyValuePair {
                    name: e.name.clone(),
                    value: e.value.clone(),
                })
                .collect(),
            cpu: o.cpu,
            memory: o.memory,
            memory_reservation: o.memory_reservation,
        }
    }
}

/// ECS's Task.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub attachments: Vec<Attachment>,
    pub attributes: Vec<KeyValuePair>,
    pub cluster_arn: String,
    pub connectivity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectivity_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    pub containers: Vec<Container>,
    pub cpu: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    pub desired_status: String,
    pub enable_execute_command: bool,
    pub group: String,
    pub health_status: String,
    pub last_status: String,
    pub launch_type: &'static str,
    pub memory: String,
    pub overrides: TaskOverride,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopping_at: Option<f64>,
    /// ECS prints `tags` with `include: ["TAGS"]` (the core leaves them out
    /// otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    pub task_arn: String,
    pub task_definition_arn: String,
    pub version: i64,
}

impl From<&pb::Task> for Task {
    fn from(t: &pb::Task) -> Self {
        let ip = t.private_ipv4_address.as_str();
        // awsvpc: the task's own address, shaped as ECS's ENI attachment
        // (what Traefik and Prometheus read). The id is the task's: one
        // attachment per task.
        let eni_id = format!("eni-attachment-{}", crate::arn::short_id(&t.task_arn));
        let eni = (t.network_mode == "awsvpc" && !ip.is_empty()).then_some((eni_id.as_str(), ip));
        let attachments = eni
            .map(|(id, ip)| Attachment {
                id: id.to_owned(),
                kind: "ElasticNetworkInterface",
                status: "ATTACHED",
                details: vec![KeyValuePair {
                    name: "privateIPv4Address".to_owned(),
                    value: ip.to_owned(),
                }],
            })
            .into_iter()
            .collect();
        Self {
            attachments,
            attributes: Vec::new(),
            cluster_arn: t.cluster_arn.clone(),
            connectivity: "CONNECTED",
            connectivity_at: epoch(t.connectivity_at.as_ref()),
            container_instance_arn: non_empty(&t.container_instance_arn),
            containers: t
                .containers
                .iter()
                .map(|c| Container::new(c, eni))
                .collect(),
            cpu: t.cpu.clone(),
            created_at: epoch(t.created_at.as_ref()),
            desired_status: t.desired_status.clone(),
            enable_execute_command: t.enable_execute_command,
            group: t.group.clone(),
            health_status: or(&t.health_status, "UNKNOWN"),
            last_status: t.last_status.clone(),
            launch_type: LAUNCH_TYPE,
            memory: t.memory.clone(),
            overrides: TaskOverride::new(t),
            pull_started_at: epoch(t.pull_started_at.as_ref()),
            pull_stopped_at: epoch(t.pull_stopped_at.as_ref()),
            started_at: epoch(t.started_at.as_ref()),
            started_by: non_empty(&t.started_by),
            stop_code: non_empty(&t.stop_code),
            stopped_at: epoch(t.stopped_at.as_ref()),
            stopped_reason: non_empty(&t.stopped_reason),
            stopping_at: epoch(t.stopping_at.as_ref()),
            tags: asked_tags(&t.tags),
            task_arn: t.task_arn.clone(),
            task_definition_arn: t.task_definition_arn.clone(),
            version: t.version,
        }
    }
}

/// ECS's DeploymentCircuitBreaker.
#[derive(Debug, Serialize)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

/// ECS's DeploymentConfiguration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentConfiguration {
    pub deployment_circuit_breaker: CircuitBreaker,
    pub maximum_percent: i32,
    pub minimum_healthy_percent: i32,
}

/// ECS's Deployment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub status: String,
    pub task_definition: String,
    pub desired_count: i32,
    pub pending_count: i32,
    pub running_count: i32,
    pub failed_tasks: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<f64>,
    pub launch_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state_reason: Option<String>,
}

/// ECS's ServiceEvent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    pub message: String,
}

impl From<&pb::ServiceEvent> for ServiceEvent {
    fn from(e: &pb::ServiceEvent) -> Self {
        Self {
            id: e.id.clone(),
            created_at: epoch(e.created_at.as_ref()),
            message: e.message.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PlacementConstraint {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PlacementStrategy {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DeploymentController {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// ECS's LoadBalancer of a service.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u32,
}

impl From<&pb::LoadBalancer> for LoadBalancer {
    fn from(l: &pb::LoadBalancer) -> Self {
        Self {
            target_group_arn: l.target_group_arn.clone(),
            container_name: l.container_name.clone(),
            container_port: l.container_port,
        }
    }
}

/// ECS's Service.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub service_arn: String,
    pub service_name: String,
    pub cluster_arn: String,
    pub load_balancers: Vec<LoadBalancer>,
    pub service_registries: Vec<()>,
    pub status: String,
    pub desired_count: i32,
    pub running_count: i32,
    pub pending_count: i32,
    pub launch_type: &'static str,
    pub task_definition: String,
    pub deployment_configuration: DeploymentConfiguration,
    pub deployments: Vec<Deployment>,
    pub events: Vec<ServiceEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    pub placement_constraints: Vec<PlacementConstraint>,
    pub placement_strategy: Vec<PlacementStrategy>,
    pub health_check_grace_period_seconds: i32,
    pub scheduling_strategy: String,
    pub deployment_controller: DeploymentController,
    pub tags: Vec<Tag>,
    #[serde(rename = "enableECSManagedTags")]
    pub enable_ecs_managed_tags: bool,
    pub propagate_tags: &'static str,
    pub enable_execute_command: bool,
}

impl From<&pb::Service> for Service {
    fn from(s: &pb::Service) -> Self {
        let cfg = s.deployment_configuration.unwrap_or_default();
        let cb = cfg.deployment_circuit_breaker.unwrap_or_default();
        Self {
            service_arn: s.service_arn.clone(),
            service_name: s.service_name.clone(),
            cluster_arn: s.cluster_arn.clone(),
            load_balancers: s.load_balancers.iter().map(LoadBalancer::from).collect(),
            service_registries: Vec::new(),
            status: s.status.clone(),
            desired_count: s.desired_count,
            running_count: s.running_count,
            pending_count: s.pending_count,
            launch_type: LAUNCH_TYPE,
            task_definition: s.task_definition.clone(),
            deployment_configuration: DeploymentConfiguration {
                deployment_circuit_breaker: CircuitBreaker {
                    enable: cb.enable,
                    rollback: cb.rollback,
                },
                // ECS's defaults for a REPLICA service.
                maximum_percent: cfg.maximum_percent.unwrap_or(200),
                minimum_healthy_percent: cfg.minimum_healthy_percent.unwrap_or(100),
            },
            deployments: s
                .deployments
                .iter()
                // ECS drops a deployment once it is replaced; Berth keeps the
                // last few INACTIVE ones (berthctl's tables show them). The
                // services-stable waiter counts `deployments`.
                .filter(|d| d.status != "INACTIVE")
                .map(|d| Deployment {
                    id: d.id.clone(),
                    status: d.status.clone(),
                    task_definition: d.task_definition.clone(),
                    desired_count: d.desired_count,
                    pending_count: d.pending_count,
                    running_count: d.running_count,
                    failed_tasks: d.failed_tasks,
                    created_at: epoch(d.created_at.as_ref()),
                    updated_at: epoch(d.updated_at.as_ref()),
                    launch_type: LAUNCH_TYPE,
                    rollout_state: non_empty(&d.rollout_state),
                    rollout_state_reason: non_empty(&d.rollout_state_reason),
                })
                .collect(),
            events: s.events.iter().map(ServiceEvent::from).collect(),
            created_at: epoch(s.created_at.as_ref()),
            placement_constraints: s
                .placement_constraints
                .iter()
                .map(|c| PlacementConstraint {
                    kind: c.r#type.clone(),
                    expression: non_empty(&c.expression),
                })
                .collect(),
            placement_strategy: s
                .placement_strategy
                .iter()
                .map(|p| PlacementStrategy {
                    kind: p.r#type.clone(),
                    field: non_empty(&p.field),
                })
                .collect(),
            health_check_grace_period_seconds: s.health_check_grace_period_seconds,
            scheduling_strategy: or(&s.scheduling_strategy, "REPLICA"),
            deployment_controller: DeploymentController { kind: "ECS" },
            tags: tags(&s.tags),
            enable_ecs_managed_tags: false,
            propagate_tags: "NONE",
            enable_execute_command: false,
        }
    }
}

/// ECS's Resource: every value member present, as ECS prints them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub double_value: f64,
    pub long_value: i64,
    pub integer_value: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_set_value: Option<Vec<String>>,
}

impl From<&pb::Resource> for Resource {
    fn from(r: &pb::Resource) -> Self {
        let set = r.r#type == "STRINGSET";
        Self {
            name: r.name.clone(),
            kind: r.r#type.clone(),
            double_value: 0.0,
            long_value: 0,
            integer_value: if set { 0 } else { r.integer_value },
            string_set_value: set.then(|| r.string_set_value.clone()),
        }
    }
}

/// ECS's Attribute; `value` left out for presence-only attributes.
#[derive(Debug, Serialize)]
pub struct Attribute {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub agent_version: String,
}

/// ECS's ContainerInstance.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstance {
    pub container_instance_arn: String,
    pub ec2_instance_id: String,
    pub version_info: VersionInfo,
    pub remaining_resources: Vec<Resource>,
    pub registered_resources: Vec<Resource>,
    pub status: String,
    pub agent_connected: bool,
    pub running_tasks_count: i32,
    pub pending_tasks_count: i32,
    pub attributes: Vec<Attribute>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<f64>,
    pub attachments: Vec<()>,
    /// ECS prints `tags` with `include: ["TAGS"]` (the core leaves them out
    /// otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

impl From<&pb::ContainerInstance> for ContainerInstance {
    fn from(ci: &pb::ContainerInstance) -> Self {
        Self {
            container_instance_arn: ci.container_instance_arn.clone(),
            ec2_instance_id: ci.ec2_instance_id.clone(),
            version_info: VersionInfo {
                agent_version: ci.agent_version.clone(),
            },
            remaining_resources: ci.remaining_resources.iter().map(Into::into).collect(),
            registered_resources: ci.registered_resources.iter().map(Into::into).collect(),
            status: ci.status.clone(),
            agent_connected: ci.agent_connected,
            running_tasks_count: ci.running_tasks_count,
            pending_tasks_count: ci.pending_tasks_count,
            attributes: ci
                .attributes
                .iter()
                .map(|a| Attribute {
                    name: a.name.clone(),
                    value: non_empty(&a.value),
                })
                .collect(),
            registered_at: epoch(ci.registered_at.as_ref()),
            attachments: Vec::new(),
            tags: asked_tags(&ci.tags),
        }
    }
}
