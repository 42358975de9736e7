//! The gRPC edge: one module per service converts prost messages into
//! validated domain values, calls the logic, and converts back. Besides this
//! tree, prost types appear only in `server.rs` (the generated servers) and
//! `snapshot/cli.rs` (a client of `SaveSnapshot`).

pub mod agent;
pub mod attribute;
pub mod audit;
pub mod auth;
pub mod autoscaling;
pub mod cluster;
pub mod convert;
pub mod error;
pub mod events;
pub mod exec;
pub mod instance;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod snapshot;
pub mod stats;
pub mod system;
pub mod tags;
pub mod task;
pub mod taskdef;
pub mod token;
pub mod traffic;
pub mod trust;
pub mod webhooks;

use std::sync::Arc;

use berth_proto::arn::ArnPrefix;
use prost_types::Timestamp;

use crate::agent_link::LogRouter;
use crate::agents::sessions::Sessions;
use crate::db::Db;
use crate::records::UnixMillis;
use crate::secrets::Secrets;
use crate::tls::ClusterCa;

pub use error::ApiError;

/// Everything the services share.
#[derive(Debug, Clone)]
pub struct Shared {
    pub db: Db,
    /// The single committer of RunTask placements.
    pub placer: crate::placer::Placer,
    pub sessions: Sessions,
    pub arn: Arc<ArnPrefix>,
    pub heartbeat_interval: std::time::Duration,
    pub logs: LogRouter,
    /// Exec sessions waiting for their agents' output.
    pub execs: crate::exec_link::ExecRouter,
    /// Task stats, in memory only ([`crate::usage`]).
    pub usage: crate::usage::UsageBook,
    /// The cluster CA: signs agents' certificates.
    pub ca: Arc<ClusterCa>,
    pub secrets: Secrets,
    /// Agents' rendered definitions and secrets, shared by every stream.
    pub rendered: crate::agents::desired::RenderCache,
}

pub fn timestamp(ms: UnixMillis) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Milliseconds since the epoch from a wire timestamp.
pub fn millis(ts: &Timestamp) -> UnixMillis {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

/// Cluster name from a request field: empty means `default`; ARNs accepted.
pub fn cluster_arg(s: &str) -> String {
    let name = berth_proto::arn::cluster_name(s.trim());
    if name.is_empty() {
        "default".to_owned()
    } else {
        name.to_owned()
    }
}

/// ECS's cluster-name rule ([`berth_proto::names::check_cluster_name`]),
/// also used for service and token names.
pub fn validate_name(field: &str, s: &str) -> Result<(), ApiError> {
    berth_proto::names::check_cluster_name(s).map_err(|e| ApiError::invalid(field, e.to_string()))
}
