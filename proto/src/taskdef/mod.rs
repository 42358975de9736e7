//! ECS task definitions: serde model of ECS's JSON and its validation.
//!
//! A user migrating from ECS registers the JSON they already have, bare or as
//! printed by `aws ecs describe-task-definition` (the `{"taskDefinition": …}`
//! wrapper and its read-only fields included). [`parse_registration`] turns
//! that text into a [`TaskDefinition`] plus warnings, or rejects it with
//! every error at once, each naming its JSON path
//! (`containerDefinitions[1].portMappings[0].hostPort`; top-level fields bare).
//!
//! - [`model`]: the serde model, ECS's camelCase names, unknown fields denied.
//! - [`parse`]: JSON text → model, reporting structural errors field by field.
//! - [`validate`]: ECS's rules and Berth's decision for each field.
//! - [`units`]: task `cpu`/`memory` strings (`"1 vCPU"`, `"2 GB"`).
//! - [`describe`]: the model back as `describe-task-definition` output, with
//!   the defaults ECS fills in.
//!
//! # What Berth does with each field
//!
//! No field is silently ignored (full table with reasons in
//! `docs/task-definitions.md`):
//!
//! - **Honoured**: family, networkMode bridge/host/none, containerDefinitions
//!   and nearly every container field (ports, essential, restartPolicy,
//!   entryPoint/command, environment, secrets and repositoryCredentials from
//!   Berth's secret store, mountPoints/volumesFrom, linuxParameters, dependsOn,
//!   start/stopTimeout, versionConsistency, hostname, user, workingDirectory,
//!   disableNetworking, privileged, readonlyRootFilesystem, dns*, extraHosts,
//!   dockerSecurityOptions, interactive, pseudoTerminal, dockerLabels, ulimits,
//!   healthCheck, systemControls), logConfiguration json-file/none, volumes
//!   host/docker (driver `local`)/empty, placementConstraints memberOf,
//!   requiresCompatibilities EC2/EXTERNAL, cpu, memory, tags, pidMode, ipcMode,
//!   runtimePlatform (cpuArchitecture constrains placement; LINUX only).
//! - **AWS-only, accepted with a warning** (stored and returned, no effect):
//!   taskRoleArn, executionRoleArn, networkMode awsvpc (the task's own address
//!   on the Berth bridge, no host ports), the awslogs driver and its options (logs
//!   kept as json-file), proxyConfiguration, inferenceAccelerators,
//!   resourceRequirements InferenceAccelerator, ephemeralStorage,
//!   enableFaultInjection, firelensConfiguration, credentialSpecs,
//!   dockerSecurityOptions `credentialspec:`, environmentFiles (S3),
//!   efs/fsx/configuredAtLaunch volumes (empty task-scoped directory),
//!   requiresCompatibilities FARGATE/MANAGED_INSTANCES, portMappings appProtocol.
//! - **Rejected with a path error**: other log drivers, resourceRequirements
//!   GPU (not yet), docker volume drivers other than `local` and driverOpts,
//!   non-LINUX operatingSystemFamily, unknown fields.

pub mod describe;
mod issue;
pub mod model;
pub mod parse;
pub mod units;
pub mod validate;

#[cfg(test)]
mod tests;

pub use describe::{
    compatibilities, describe_json, describe_response_json, epoch_seconds, ReadOnlyFields,
};
pub use issue::{FieldIssue, InvalidTaskDefinition, ROOT_PATH};
pub use model::*;
pub use parse::{parse_registration, Registration, READ_ONLY_FIELDS};
pub use units::{parse_cpu_units, parse_memory_mib, UnitsError};
pub use validate::validate;
