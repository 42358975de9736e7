//! `berth-proto`: the wire API and the shared data model.
//!
//! - [`v1`]: the generated tonic/prost code of package `berth.v1`. Only the
//!   edges touch these types (ARCHITECTURE.md lists them).
//! - [`taskdef`]: ECS's task-definition JSON as a serde model, with its
//!   validation (every error at once, each naming its JSON path).
//! - [`ecs_json`]: ECS's JSON for clusters, tasks, services, instances and
//!   definitions: the renderer of the ECS API and `berthctl -o json`.
//! - [`ecs`]: ECS's vocabulary (task, desired, container and health status,
//!   stop codes, the transport protocol), each defined once.
//! - [`names`]: ECS's name rules (cluster names, attribute names and values).
//! - [`arn`]: ECS-shaped ARNs.
//! - [`auth`]: the operator token's wire form (`authorization: Bearer ...`).
//! - [`trust`]: the clients' side of TLS: CA fingerprints, fetching and pinning the cluster CA.
//! - [`secret_ref`]: secret names and the references to them in definitions.
//! - [`systemd`]: the daemons' side of systemd's notify protocol (ready, stopping, watchdog).
//! - [`snapshot`]: the clients' side of `SaveSnapshot`: the streamed snapshot to a file, atomically.
//! - [`delta`]: the desired-state delta protocol of the agent link (both ends, pure).
//! - [`errors`]: an error and its sources on one line.
//! - [`metrics_http`]: the daemons' `GET /metrics` listener (hyper 1); the text comes from each daemon.
//! - [`fsutil`]: replacing a file atomically (temp file, fsync, rename, directory fsync).
//! - `redact`: the `Debug` of the messages that carry secret values.

pub mod arn;
pub mod auth;
pub mod delta;
pub mod ecs;
pub mod ecs_json;
pub mod errors;
pub mod fsutil;
pub mod metrics_http;
pub mod names;
mod redact;
pub mod secret_ref;
pub mod snapshot;
pub mod systemd;
pub mod taskdef;
pub mod trust;

pub use redact::REDACTED;

/// Generated code of the `berth.v1` protobuf package.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("berth.v1");

    /// The encoded `FileDescriptorSet` of every `berth.v1` file: the
    /// services and methods as the `.proto` files declare them.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/berth_descriptor.bin"));
}

/// Environment variable holding the daemons' log filter (tracing's
/// `EnvFilter` syntax, e.g. `info,berth_scheduler=debug`).
pub const LOG_FILTER_ENV: &str = "BERTH_LOG";

/// Version of the Berth binaries, reported by agents and `berthctl version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
