//! A registered definition as `aws ecs describe-task-definition` prints it:
//! the registered fields, the defaults ECS fills in, and the read-only
//! fields ECS assigns.
//!
//! What ECS adds to a definition it stores (checked against real
//! `describe-task-definition` and `register-task-definition` outputs, see
//! `testdata/README.md`):
//!
//! - each container: `cpu` 0, `portMappings` [], `essential` true,
//!   `environment` [], `mountPoints` [], `volumesFrom` [] when not given;
//! - the definition: `volumes` [] and `placementConstraints` [];
//! - task `cpu`/`memory` as strings of units (`"1 vCPU"` → `"1024"`,
//!   `"2 GB"` → `"2048"`, `512` → `"512"`);
//! - `compatibilities`: see [`compatibilities`];
//! - `requiresAttributes`: left out. ECS lists the agent capabilities the
//!   definition needs (`com.amazonaws.ecs.capability.docker-remote-api.1.18`,
//!   `ecs.capability.task-eni`, …) in an order of its own; Berth's agents
//!   have every capability it honours, and ECS omits the field when the list
//!   is empty (docs/ecs-differences.md).
//!
//! Timestamps are epoch seconds (JSON numbers), the form of ECS's wire
//! protocol; berthctl turns them into the aws CLI's text with
//! [`crate::ecs_json::cli_timestamps`]. Keys follow the order of ECS's API
//! model, which is the order the aws CLI prints.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::model::{NetworkMode, TaskDefinition, TaskDefinitionStatus};

/// The fields a registry assigns to a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyFields {
    pub task_definition_arn: String,
    pub revision: u32,
    pub status: TaskDefinitionStatus,
    pub registered_at: OffsetDateTime,
    pub deregistered_at: Option<OffsetDateTime>,
    pub registered_by: Option<String>,
}

/// The members of ECS's `TaskDefinition`, in the order of its API model
/// (the order the aws CLI prints them in).
const TASK_DEFINITION_ORDER: &[&str] = &[
    "taskDefinitionArn",
    "containerDefinitions",
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "revision",
    "volumes",
    "status",
    "requiresAttributes",
    "placementConstraints",
    "compatibilities",
    "runtimePlatform",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "inferenceAccelerators",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "registeredAt",
    "deregisteredAt",
    "registeredBy",
    "ephemeralStorage",
    "enableFaultInjection",
];

/// The members of ECS's `ContainerDefinition`, in the order of its API model.
const CONTAINER_DEFINITION_ORDER: &[&str] = &[
    "name",
    "image",
    "repositoryCredentials",
    "cpu",
    "memory",
    "memoryReservation",
    "links",
    "portMappings",
    "essential",
    "restartPolicy",
    "entryPoint",
    "command",
    "environment",
    "environmentFiles",
    "mountPoints",
    "volumesFrom",
    "linuxParameters",
    "secrets",
    "dependsOn",
    "startTimeout",
    "stopTimeout",
    "versionConsistency",
    "hostname",
    "user",
    "workingDirectory",
    "disableNetworking",
    "privileged",
    "readonlyRootFilesystem",
    "dnsServers",
    "dnsSearchDomains",
    "extraHosts",
    "dockerSecurityOptions",
    "interactive",
    "pseudoTerminal",
    "dockerLabels",
    "ulimits",
    "logConfiguration",
    "healthCheck",
    "systemControls",
    "resourceRequirements",
    "firelensConfiguration",
    "credentialSpecs",
];

/// The launch types ECS reports a definition compatible with, as ECS
/// computes them: `["EXTERNAL", "EC2"]` for bridge, host and none (ECS
/// Anywhere runs them); for awsvpc `["EC2"]`, plus `"FARGATE"` when the
/// definition requires Fargate or could run there (task-level cpu and
/// memory, no host volumes, no privileged or linked containers).
pub fn compatibilities(def: &TaskDefinition) -> Vec<&'static str> {
    if def.effective_network_mode() != NetworkMode::Awsvpc {
        return vec!["EXTERNAL", "EC2"];
    }
    let requires_fargate = def
        .requires_compatibilities
        .iter()
        .any(|c| matches!(c, super::model::Compatibility::Fargate));
    let fargate_shaped = def.cpu.is_some()
        && def.memory.is_some()
        && def
            .volumes
            .iter()
            .all(|v| v.host.as_ref().is_none_or(|h| h.source_path.is_none()))
        && def
            .container_definitions
            .iter()
            .all(|c| c.privileged != Some(true) && c.links.is_empty());
    if requires_fargate || fargate_shaped {
        vec!["EC2", "FARGATE"]
    } else {
        vec!["EC2"]
    }
}

/// The definition as `aws ecs describe-task-definition` returns its
/// "taskDefinition" object on the wire: the registered fields with ECS's
/// defaults, plus the read-only ones (timestamps as epoch seconds).
///
/// Like ECS's, the object holds no `tags`: they go beside it, see
/// [`describe_response_json`].
pub fn describe_json(def: &TaskDefinition, ro: &ReadOnlyFields) -> Value {
    let mut registered = match serde_json::to_value(def) {
        Ok(Value::Object(m)) => m,
        // The model always serializes to an object.
        _ => Map::new(),
    };
    registered.remove("tags");
    ecs_defaults(&mut registered, def);

    registered.insert(
        "taskDefinitionArn".to_owned(),
        Value::String(ro.task_definition_arn.clone()),
    );
    registered.insert("revision".to_owned(), Value::from(ro.revision));
    registered.insert(
        "status".to_owned(),
        serde_json::to_value(ro.status).unwrap_or(Value::Null),
    );
    registered.insert(
        "compatibilities".to_owned(),
        Value::Array(compatibilities(def).into_iter().map(Value::from).collect()),
    );
    registered.insert("registeredAt".to_owned(), epoch_seconds(ro.registered_at));
    if let Some(at) = ro.deregistered_at {
        registered.insert("deregisteredAt".to_owned(), epoch_seconds(at));
    }
    if let Some(by) = &ro.registered_by {
        registered.insert("registeredBy".to_owned(), Value::String(by.clone()));
    }
    Value::Object(in_order(registered, TASK_DEFINITION_ORDER))
}

/// The whole `describe-task-definition --include TAGS` response:
/// `{"taskDefinition": describe_json(…), "tags": [...]}`. This is the form
/// `parse_registration` accepts back unchanged.
pub fn describe_response_json(def: &TaskDefinition, ro: &ReadOnlyFields) -> Value {
    let tags = serde_json::to_value(&def.tags).unwrap_or_else(|_| Value::Array(Vec::new()));
    let mut out = Map::new();
    out.insert("taskDefinition".to_owned(), describe_json(def, ro));
    out.insert("tags".to_owned(), tags);
    Value::Object(out)
}

/// ECS's defaults on the serialized definition `m`.
fn ecs_defaults(m: &mut Map<String, Value>, def: &TaskDefinition) {
    for key in ["volumes", "placementConstraints"] {
        m.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    }
    if let (Some(cpu), Some(units)) = (m.get_mut("cpu"), def.task_cpu_units()) {
        *cpu = Value::String(units.to_string());
    }
    if let (Some(memory), Some(mib)) = (m.get_mut("memory"), def.task_memory_mib()) {
        *memory = Value::String(mib.to_string());
    }
    if let Some(Value::Array(containers)) = m.get_mut("containerDefinitions") {
        for c in containers.iter_mut() {
            let Value::Object(cm) = c else { continue };
            cm.entry("cpu").or_insert(Value::from(0));
            cm.entry("portMappings")
                .or_insert_with(|| Value::Array(Vec::new()));
            cm.entry("essential").or_insert(Value::Bool(true));
            for key in ["environment", "mountPoints", "volumesFrom"] {
                cm.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            }
            *cm = in_order(std::mem::take(cm), CONTAINER_DEFINITION_ORDER);
        }
    }
}

/// `m` with the keys of `order` first, in that order, then the others as they were.
fn in_order(mut m: Map<String, Value>, order: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for key in order {
        if let Some(v) = m.remove(*key) {
            out.insert((*key).to_owned(), v);
        }
    }
    out.append(&mut m);
    out
}

/// Seconds since the epoch with millisecond precision, as ECS's wire
/// protocol writes timestamps (`1709242097.87`).
pub fn epoch_seconds(t: OffsetDateTime) -> Value {
    let millis = t.unix_timestamp_nanos() / 1_000_000;
    // Millisecond counts of real dates are far inside f64's exact range.
    #[allow(clippy::cast_precision_loss)]
    let seconds = millis as f64 / 1000.0;
    serde_json::Number::from_f64(seconds).map_or(Value::Null, Value::Number)
}
