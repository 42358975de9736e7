//! ECS's JSON for Berth's resources: the one renderer behind the ECS HTTP
//! API (AWS JSON 1.1) and `berthctl -o json`.
//!
//! Each function maps a `berth.v1` message to the JSON object ECS returns
//! for that resource (`DescribeClusters`' Cluster, `DescribeTasks`' Task,
//! `DescribeServices`' Service, …), with ECS's member names, the lists ECS
//! always prints (empty or not), and the defaults ECS fills in. Everything
//! here is pure; `tests.rs` holds snapshots and real ECS outputs.
//!
//! # Timestamps
//!
//! The wire form, which these functions return, writes every timestamp as
//! epoch seconds in a JSON number (`1709242525.051`), as AWS JSON 1.1 does.
//! [`cli_timestamps`] rewrites exactly the members named in
//! [`TIMESTAMP_MEMBERS`] into the text the aws CLI v2 prints by default
//! (botocore's `parse_timestamp(...).isoformat()`), in UTC:
//! `2024-05-01T12:00:00.250000+00:00`, or `2024-05-02T08:30:05+00:00` on a
//! whole second. berthctl prints that form.
//!
//! # Where Berth differs from ECS
//!
//! `docs/ecs-differences.md` lists every member ECS prints that Berth
//! leaves out or fills differently, and why. In short: no AWS networking
//! (load balancers, service registries, capacity providers), no
//! `availabilityZone`, `platformVersion`, `requiresAttributes`; `launchType`
//! is `EXTERNAL` (ECS Anywhere's: the hosts are the user's). Containers
//! carry two members of Berth's own, `healthCheckOutput` and
//! `restartCount`, which SDKs ignore.

mod deployments;
mod shapes;
#[cfg(test)]
mod tests;

use prost_types::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::v1 as pb;

/// Why a resource could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum EcsJsonError {
    /// The JSON a `TaskDefinition` message carries does not parse.
    #[error("the JSON of task definition {arn} is unreadable: {source}")]
    TaskDefinitionJson {
        arn: String,
        #[source]
        source: serde_json::Error,
    },
    /// The JSON a `TaskDefinition` message carries is not an object.
    #[error("the JSON of task definition {arn} is not an object")]
    TaskDefinitionNotAnObject { arn: String },
}

/// The members of ECS's shapes that are timestamps, in every resource the
/// renderer emits (Task, Service, Deployment, ServiceEvent,
/// ContainerInstance, TaskDefinition) and in the ones it may emit later
/// (TaskSet, ManagedAgent). [`cli_timestamps`] converts exactly these.
pub const TIMESTAMP_MEMBERS: &[&str] = &[
    "connectivityAt",
    "createdAt",
    "deregisteredAt",
    "deleteRequestedAt",
    "executionStoppedAt",
    "finishedAt",
    "lastStartedAt",
    "pullStartedAt",
    "pullStoppedAt",
    "registeredAt",
    "stabilityStatusAt",
    "startedAt",
    "stoppedAt",
    "stoppingAt",
    "updatedAt",
];

/// ECS's Cluster.
pub fn cluster(c: &pb::Cluster) -> Value {
    to_value(&shapes::Cluster::from(c))
}

/// ECS's Task, as DescribeTasks, RunTask, StartTask and StopTask return it.
pub fn task(t: &pb::Task) -> Value {
    to_value(&shapes::Task::from(t))
}

/// ECS's Container of a task.
pub fn container(c: &pb::Container) -> Value {
    to_value(&shapes::Container::new(c, None))
}

/// ECS's Service, as DescribeServices, CreateService, UpdateService and
/// DeleteService return it.
pub fn service(s: &pb::Service) -> Value {
    to_value(&shapes::Service::from(s))
}

/// ECS's ServiceEvent (`{id, createdAt, message}`), one of a Service's `events`.
pub fn service_event(e: &pb::ServiceEvent) -> Value {
    to_value(&shapes::ServiceEvent::from(e))
}

/// ECS's ContainerInstance.
pub fn container_instance(ci: &pb::ContainerInstance) -> Value {
    to_value(&shapes::ContainerInstance::from(ci))
}

/// ECS's ServiceDeploymentBrief, one of ListServiceDeployments' answers.
pub fn service_deployment_brief(b: &pb::ServiceDeploymentBrief) -> Value {
    to_value(&deployments::Brief::from(b))
}

/// ECS's ServiceDeployment, as DescribeServiceDeployments returns it.
pub fn service_deployment(d: &pb::ServiceDeployment) -> Value {
    to_value(&deployments::Deployment::from(d))
}

/// ECS's Failure (`{arn, reason, detail}`; `detail` only when there is one).
pub fn failure(f: &pb::Failure) -> Value {
    to_value(&shapes::Failure::from(f))
}

/// The "taskDefinition" object of DescribeTaskDefinition (and of
/// Register/DeregisterTaskDefinition): the JSON the scheduler wrote
/// (`taskdef::describe_json`), with its timestamps in the wire form. A
/// scheduler before this renderer wrote them as RFC 3339 strings; those are
/// converted too.
pub fn task_definition(td: &pb::TaskDefinition) -> Result<Value, EcsJsonError> {
    let arn = || td.task_definition_arn.clone();
    let value: Value = serde_json::from_str(&td.json)
        .map_err(|source| EcsJsonError::TaskDefinitionJson { arn: arn(), source })?;
    let Value::Object(mut m) = value else {
        return Err(EcsJsonError::TaskDefinitionNotAnObject { arn: arn() });
    };
    for key in ["registeredAt", "deregisteredAt"] {
        if let Some(v) = m.get_mut(key) {
            if let Some(t) = v
                .as_str()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
            {
                *v = crate::taskdef::epoch_seconds(t);
            }
        }
    }
    Ok(Value::Object(m))
}

/// Rewrites, anywhere in `v`, the members named in [`TIMESTAMP_MEMBERS`]
/// that hold epoch seconds into the text the aws CLI v2 prints:
/// `2024-05-01T12:00:00.250000+00:00` (Python's `isoformat()` of the UTC
/// time, microseconds only when not zero). Other members, and timestamp
/// members that are not numbers, are left alone.
pub fn cli_timestamps(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (key, member) in m.iter_mut() {
                if TIMESTAMP_MEMBERS.contains(&key.as_str()) {
                    if let Some(text) = member.as_f64().and_then(iso8601) {
                        *member = Value::String(text);
                        continue;
                    }
                }
                cli_timestamps(member);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(cli_timestamps),
        _ => {}
    }
}

/// Python's `datetime.fromtimestamp(seconds, tz).isoformat()` in UTC.
fn iso8601(seconds: f64) -> Option<String> {
    if !seconds.is_finite() {
        return None;
    }
    let whole = seconds.floor();
    // Python rounds the fraction to microseconds.
    let mut micros = ((seconds - whole) * 1e6).round() as i64;
    // `whole` is finite and integral; out-of-range years fail below.
    let mut secs = whole as i64;
    if micros >= 1_000_000 {
        secs += 1;
        micros -= 1_000_000;
    }
    let t = OffsetDateTime::from_unix_timestamp(secs).ok()?;
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out.push_str("+00:00");
    Some(out)
}

/// A protobuf timestamp as epoch seconds (microsecond precision).
fn epoch(ts: Option<&Timestamp>) -> Option<f64> {
    let ts = ts?;
    let micros = i128::from(ts.seconds) * 1_000_000 + i128::from(ts.nanos) / 1_000;
    // Microsecond counts of real dates are inside f64's exact range.
    #[allow(clippy::cast_precision_loss)]
    Some(micros as f64 / 1e6)
}

fn to_value<T: Serialize>(shape: &T) -> Value {
    // The shapes hold strings, numbers, bools and lists: serializing them
    // cannot fail.
    serde_json::to_value(shape).unwrap_or_else(|_| Value::Object(Map::new()))
}
