//! `berth-proto`: the wire API and the shared data model.
//!
//! - [`v1`]: the generated tonic/prost code of package `berth.v1`. Only the
//!   conversion modules at the edge of each service touch these types.
//! - [`taskdef`]: ECS's task-definition JSON as a serde model, with its
//!   validation (every error at once, each naming its JSON path).
//! - [`arn`]: ECS-shaped ARNs.
//! - [`trust`]: the clients' side of TLS: CA fingerprints, fetching and pinning the cluster CA.

pub mod arn;
pub mod taskdef;
pub mod trust;

/// Generated code of the `berth.v1` protobuf package.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("berth.v1");
}

/// Environment variable holding the daemons' log filter (tracing's
/// `EnvFilter` syntax, e.g. `info,berth_scheduler=debug`).
pub const LOG_FILTER_ENV: &str = "BERTH_LOG";

/// Version of the Berth binaries, reported by agents and `berthctl version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
