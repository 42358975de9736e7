//! Conversions from the scheduler's protobuf messages into the views
//! berthctl prints, and the tables people read.
//!
//! The JSON of ECS's resources (clusters, tasks, services, container
//! instances, task definitions, failures) is not built here: each view
//! wraps the protobuf message and serializes as
//! `berth_proto::ecs_json`'s rendering, the same the ECS API returns, with
//! [`cli_timestamps`](berth_proto::ecs_json::cli_timestamps) applied so
//! timestamps read as the aws CLI v2 prints them. Berth's own resources
//! (activations, tokens, secrets, audit events) keep their RFC 3339 views,
//! and target groups print in ELBv2's shapes (`target_group`).
//!
//! Everything here is a pure function of its input, so every view has
//! snapshot tests. Only this module and `commands` see prost types.

pub mod activation;
pub mod auth;
pub mod autoscaling;
pub mod cluster;
pub mod instance;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod service_deployment;
pub mod stats;
pub mod system;
pub mod tag;
pub mod target_group;
pub mod task;
pub mod taskdef;
pub mod webhook;

use std::ops::Deref;

use berth_proto::ecs_json;
use prost_types::Timestamp;
use serde::{Serialize, Serializer};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::MissingItem;

fn datetime(ts: &Timestamp) -> Option<OffsetDateTime> {
    let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// RFC 3339 in UTC with the timestamp's full precision, for JSON.
pub fn rfc3339(ts: Option<&Timestamp>) -> Option<String> {
    datetime(ts?)?.format(&Rfc3339).ok()
}

/// RFC 3339 in UTC to the second, or `-`, for tables.
pub fn table_time(ts: Option<&Timestamp>) -> String {
    ts.and_then(datetime)
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".to_owned())
}

/// The aws CLI's text of an ECS resource rendered for the wire.
pub fn cli(mut v: Value) -> Value {
    ecs_json::cli_timestamps(&mut v);
    v
}

/// Serializes `v`, an ECS resource in its wire form, as the aws CLI prints it.
fn serialize_cli<S: Serializer>(v: Value, s: S) -> Result<S::Ok, S::Error> {
    cli(v).serialize(s)
}

/// ECS's `Failure`: a requested resource a describe call did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureView(pub berth_proto::v1::Failure);

impl Serialize for FailureView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cli(ecs_json::failure(&self.0), s)
    }
}

impl Deref for FailureView {
    type Target = berth_proto::v1::Failure;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<berth_proto::v1::Failure> for FailureView {
    fn from(f: berth_proto::v1::Failure) -> Self {
        Self(f)
    }
}

impl From<&FailureView> for MissingItem {
    fn from(f: &FailureView) -> Self {
        Self {
            arn: f.arn.clone(),
            reason: f.reason.clone(),
            detail: f.detail.clone(),
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Timestamps shared by the views' snapshot tests.
    use prost_types::Timestamp;

    /// 2024-05-01T12:00:00.250Z
    pub fn t0() -> Option<Timestamp> {
        Some(Timestamp {
            seconds: 1_714_564_800,
            nanos: 250_000_000,
        })
    }

    /// 2024-05-02T08:30:05Z
    pub fn t1() -> Option<Timestamp> {
        Some(Timestamp {
            seconds: 1_714_638_605,
            nanos: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_as_rfc3339_utc() {
        assert_eq!(
            rfc3339(fixtures::t0().as_ref()).as_deref(),
            Some("2024-05-01T12:00:00.25Z")
        );
        assert_eq!(
            rfc3339(fixtures::t1().as_ref()).as_deref(),
            Some("2024-05-02T08:30:05Z")
        );
        assert_eq!(table_time(fixtures::t0().as_ref()), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(None), None);
        assert_eq!(table_time(None), "-");
    }
}
