//! Which events a `Txn` causes: pure comparison of each written task,
//! instance and service record with the bytes it replaces.
//!
//! The old bytes come from the `Txn`'s own check of the key (`Equals`: the
//! old record; `Absent`: a new one); a `Put` without a check of its key
//! reads the old bytes through `read` (the log's mutex is held then).
//!
//! Tasks and instances are the hot path (every placement and report): only
//! their status fields are decoded, and the event keeps the new record's
//! bytes as they are ([`Derived`]), so the log splices them into the
//! stored event instead of decoding and encoding the record again.
//!
//! - task: lastStatus or desiredStatus differ (or the task is new);
//! - instance: status differs (or it is new). `agentConnected` lives in
//!   memory (heartbeats never write the store), so it is not an event;
//! - service: a deployment appears (IN_PROGRESS) or its rolloutState
//!   changes (COMPLETED, FAILED); a new service event in ECS's words that
//!   names an action (steady state, placement failure) is a service action.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::EventBody;
use crate::records::{DesiredStatus, InstanceStatus, RolloutState, ServiceRecord, TaskStatus};
use crate::store::{Check, Op, StoreError, Table, Txn};

/// One event a `Txn` causes.
#[derive(Debug, PartialEq)]
pub enum Derived<'a> {
    /// A task record's new bytes (a `TaskRecord`'s JSON).
    Task(&'a [u8]),
    /// An instance record's new bytes (an `InstanceRecord`'s JSON).
    Instance(&'a [u8]),
    Other(EventBody),
}

/// The fields of a task record whose change is an event.
#[derive(Deserialize, PartialEq)]
struct TaskStatuses {
    last_status: TaskStatus,
    desired_status: DesiredStatus,
}

/// The field of an instance record whose change is an event.
#[derive(Deserialize, PartialEq)]
struct InstanceStatuses {
    status: InstanceStatus,
}

fn decode<T: DeserializeOwned>(table: Table, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        table: table.name(),
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// Whether every task, instance and service record `txn` writes comes with
/// a check of its old bytes: then [`derive`] reads nothing from the store,
/// and its answer holds whenever the `Txn` commits.
pub fn all_checked(txn: &Txn) -> bool {
    txn.ops.iter().all(|op| match op {
        Op::Put(table @ (Table::Tasks | Table::Instances | Table::Services), key, _) => {
            txn.checks.iter().any(|c| match c {
                Check::Absent(t, k) | Check::Equals(t, k, _) => t == table && k == key,
            })
        }
        _ => true,
    })
}

/// The events `txn` causes, in the order of its ops.
pub fn derive<'a>(
    txn: &'a Txn,
    read: impl Fn(Table, &[u8]) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<Vec<Derived<'a>>, StoreError> {
    let mut out = Vec::new();
    for op in &txn.ops {
        let Op::Put(table, key, new) = op else {
            continue;
        };
        if !matches!(table, Table::Tasks | Table::Instances | Table::Services) {
            continue;
        }
        let checked = txn.checks.iter().find_map(|c| match c {
            Check::Absent(t, k) if t == table && k == key => Some(None),
            Check::Equals(t, k, v) if t == table && k == key => Some(Some(v.as_slice())),
            _ => None,
        });
        let read_old;
        let old = match checked {
            Some(old) => old,
            None => {
                read_old = read(*table, key)?;
                read_old.as_deref()
            }
        };
        let event = match table {
            Table::Tasks => {
                changed::<TaskStatuses>(*table, key, old, new)?.then_some(Derived::Task(new))
            }
            Table::Instances => changed::<InstanceStatuses>(*table, key, old, new)?
                .then_some(Derived::Instance(new)),
            Table::Services => {
                service(key, old, new, &mut out)?;
                None
            }
            _ => None,
        };
        out.extend(event);
    }
    Ok(out)
}

/// Whether the fields `T` reads differ between `old` and `new` (or the
/// record is new).
fn changed<T: DeserializeOwned + PartialEq>(
    table: Table,
    key: &[u8],
    old: Option<&[u8]>,
    new: &[u8],
) -> Result<bool, StoreError> {
    let new: T = decode(table, key, new)?;
    Ok(match old {
        None => true,
        Some(old) => decode::<T>(table, key, old)? != new,
    })
}

/// ECS's `eventName` and `eventType` of a service event's message, for the
/// messages that are actions.
fn action_of(message: &str) -> Option<(&'static str, &'static str)> {
    if message.contains("has reached a steady state") {
        Some(("INFO", "SERVICE_STEADY_STATE"))
    } else if message.contains("was unable to place a task") {
        Some(("WARN", "SERVICE_TASK_PLACEMENT_FAILURE"))
    } else {
        None
    }
}

fn service(
    key: &[u8],
    old: Option<&[u8]>,
    new: &[u8],
    out: &mut Vec<Derived<'_>>,
) -> Result<(), StoreError> {
    let new: ServiceRecord = decode(Table::Services, key, new)?;
    let old: Option<ServiceRecord> = old.map(|b| decode(Table::Services, key, b)).transpose()?;
    let old_deployments = old.as_ref().map_or(&[][..], |o| &o.deployments[..]);
    // Oldest first, so that IN_PROGRESS of a new deployment follows the
    // end of the one it replaces when both change at once.
    for d in new.deployments.iter().rev() {
        let before = old_deployments.iter().find(|o| o.id == d.id);
        if before.is_some_and(|b| b.rollout_state == d.rollout_state) {
            continue;
        }
        let (event_type, event_name) = match d.rollout_state {
            RolloutState::InProgress => ("INFO", "SERVICE_DEPLOYMENT_IN_PROGRESS"),
            RolloutState::Completed => ("INFO", "SERVICE_DEPLOYMENT_COMPLETED"),
            RolloutState::Failed => ("ERROR", "SERVICE_DEPLOYMENT_FAILED"),
        };
        out.push(Derived::Other(EventBody::Deployment {
            cluster: new.cluster.clone(),
            service: new.name.clone(),
            deployment_id: d.id.clone(),
            event_type: event_type.to_owned(),
            event_name: event_name.to_owned(),
            reason: d.rollout_state_reason.clone(),
            updated_at: d.updated_at,
        }));
    }
    let old_events = old.as_ref().map_or(&[][..], |o| &o.events[..]);
    for e in new.events.iter().rev() {
        if old_events.iter().any(|o| o.id == e.id) {
            continue;
        }
        if let Some((event_type, event_name)) = action_of(&e.message) {
            out.push(Derived::Other(EventBody::ServiceAction {
                cluster: new.cluster.clone(),
                service: new.name.clone(),
                event_type: event_type.to_owned(),
                event_name: event_name.to_owned(),
                message: e.message.clone(),
                created_at: e.created_at,
            }));
        }
    }
    Ok(())
}
