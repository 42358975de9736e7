//! Target groups (keyed by name) and the writes of traffic: ending a
//! task's drain, and raising the desired sets a changed health check
//! touches. A task's targets live in its own record (written at placement,
//! updated by its agent's reports); stopping a task with targets drains
//! them first ([`Db::stop_task_as`]).

use std::collections::BTreeSet;

use super::{encode, Db, DbError};
use crate::records::{
    now_millis, DesiredStatus, ServiceRecord, ServiceStatus, TargetGroupRecord, TaskRecord,
    TaskStatus,
};
use crate::store::{Table, Txn};

fn not_found(name: &str) -> DbError {
    DbError::NotFound {
        kind: "target group",
        name: name.to_owned(),
    }
}

/// Whether a service that is not INACTIVE registers targets in `arn`
/// (through its next deployment or a running one).
fn uses(rec: &ServiceRecord, name: &str) -> bool {
    let named = |a: &str| berth_proto::arn::target_group_name(a) == name;
    rec.status != ServiceStatus::Inactive
        && (rec
            .load_balancers
            .iter()
            .any(|l| named(&l.target_group_arn))
            || rec
                .deployments
                .iter()
                .flat_map(|d| d.load_balancers.iter())
                .any(|l| named(&l.target_group_arn)))
}

impl Db {
    /// ELBv2's CreateTargetGroup: idempotent for the same settings, a
    /// different group of the same name is refused.
    pub async fn create_target_group(
        &self,
        rec: TargetGroupRecord,
    ) -> Result<TargetGroupRecord, DbError> {
        let name = rec.name.clone();
        self.write("target group", || {
            match self.get::<TargetGroupRecord>(Table::TargetGroups, name.as_bytes())? {
                Some((old, _)) => {
                    let same = TargetGroupRecord {
                        id: old.id.clone(),
                        created_at: old.created_at,
                        ..rec.clone()
                    };
                    if same == old {
                        Ok((Txn::new(), old))
                    } else {
                        Err(DbError::AlreadyExists {
                            kind: "target group",
                            name: name.clone(),
                        })
                    }
                }
                None => Ok((
                    Txn::new()
                        .check_absent(Table::TargetGroups, name.as_bytes())
                        .put(
                            Table::TargetGroups,
                            name.as_bytes(),
                            encode(Table::TargetGroups, &rec)?,
                        ),
                    rec.clone(),
                )),
            }
        })
        .await
    }

    /// A target group by name or ARN.
    pub fn target_group(&self, name_or_arn: &str) -> Result<Option<TargetGroupRecord>, DbError> {
        let name = berth_proto::arn::target_group_name(name_or_arn);
        Ok(self
            .get::<TargetGroupRecord>(Table::TargetGroups, name.as_bytes())?
            .map(|(r, _)| r)
            // An ARN must name this group, not an older one of the name.
            .filter(|r| !name_or_arn.starts_with("arn:") || name_or_arn.ends_with(&r.id)))
    }

    /// Every target group, by name.
    pub fn target_groups(&self) -> Result<Vec<TargetGroupRecord>, DbError> {
        Ok(self.scan(Table::TargetGroups, b"")?)
    }

    /// Applies `change` to the group; the instances running tasks with
    /// targets in it get their desired sets again (their checks changed).
    pub async fn modify_target_group(
        &self,
        name_or_arn: &str,
        mut change: impl FnMut(&mut TargetGroupRecord),
    ) -> Result<TargetGroupRecord, DbError> {
        let current = self
            .target_group(name_or_arn)?
            .ok_or_else(|| not_found(name_or_arn))?;
        let name = current.name.clone();
        let rec = self
            .write("target group", || {
                let (mut rec, bytes) = self
                    .get::<TargetGroupRecord>(Table::TargetGroups, name.as_bytes())?
                    .filter(|(r, _)| r.id == current.id)
                    .ok_or_else(|| not_found(name_or_arn))?;
                let before = rec.clone();
                change(&mut rec);
                if rec == before {
                    return Ok((Txn::new(), rec));
                }
                Ok((
                    Txn::new()
                        .check_equals(Table::TargetGroups, name.as_bytes(), bytes)
                        .put(
                            Table::TargetGroups,
                            name.as_bytes(),
                            encode(Table::TargetGroups, &rec)?,
                        ),
                    rec,
                ))
            })
            .await?;
        let instances: BTreeSet<String> = self
            .all_tasks()?
            .into_iter()
            .filter(|t| t.in_desired_set())
            .filter(|t| {
                t.targets
                    .iter()
                    .any(|x| berth_proto::arn::target_group_name(&x.target_group_arn) == name)
            })
            .map(|t| t.instance_id)
            .collect();
        self.raise_generations(&instances).await?;
        Ok(rec)
    }

    /// ELBv2's DeleteTargetGroup: refused while a service that is not
    /// INACTIVE uses it (ELB's ResourceInUse).
    pub async fn delete_target_group(&self, name_or_arn: &str) -> Result<(), DbError> {
        let current = self
            .target_group(name_or_arn)?
            .ok_or_else(|| not_found(name_or_arn))?;
        let name = current.name.clone();
        self.write("target group", || {
            let Some((rec, bytes)) =
                self.get::<TargetGroupRecord>(Table::TargetGroups, name.as_bytes())?
            else {
                return Err(not_found(name_or_arn));
            };
            let mut txn = Txn::new().check_equals(Table::TargetGroups, name.as_bytes(), bytes);
            for (key, value) in self.store.scan_prefix(Table::Services, b"")? {
                let svc: ServiceRecord = super::decode(Table::Services, &key, &value)?;
                if uses(&svc, &rec.name) {
                    return Err(DbError::FailedPrecondition(format!(
                        "Target group '{}' is currently in use by service {} of cluster {}",
                        rec.name, svc.name, svc.cluster
                    )));
                }
                // A service created meanwhile would be seen by the retry.
                txn.add_check_equals(Table::Services, key, value);
            }
            txn.add_delete(Table::TargetGroups, name.as_bytes());
            Ok((txn, ()))
        })
        .await
    }

    /// Ends the drain of a DEACTIVATING task whose time has come: its agent
    /// now gets it desired STOPPED. `false`: nothing to end (already ended,
    /// or not yet due).
    pub async fn end_drain(&self, task_id: &str) -> Result<bool, DbError> {
        let now = now_millis();
        let generation = self.commit_retrying("task drain", || {
            let Some((mut task, bytes)) =
                self.get::<TaskRecord>(Table::Tasks, task_id.as_bytes())?
            else {
                return Ok((Txn::new(), None::<(String, u64)>));
            };
            if task.drain_until.is_none_or(|u| u > now) {
                return Ok((Txn::new(), None));
            }
            task.drain_until = None;
            task.version += 1;
            let (mut alloc, alloc_bytes) = self.allocation(&task.instance_id)?;
            alloc.generation += 1;
            let txn = Txn::new().check_equals(Table::Tasks, task_id.as_bytes(), bytes);
            let txn = match alloc_bytes {
                Some(b) => txn.check_equals(Table::Allocations, task.instance_id.as_str(), b),
                None => txn.check_absent(Table::Allocations, task.instance_id.as_str()),
            };
            let txn = txn
                .put(
                    Table::Tasks,
                    task_id.as_bytes(),
                    encode(Table::Tasks, &task)?,
                )
                .put(
                    Table::Allocations,
                    task.instance_id.as_str(),
                    encode(Table::Allocations, &alloc)?,
                );
            Ok((txn, Some((task.instance_id.clone(), alloc.generation))))
        })?;
        let Some((instance, g)) = generation else {
            return Ok(false);
        };
        self.commit.durable().await?;
        self.wrote();
        self.desired.notify(&instance, g);
        tracing::info!(task = %task_id, instance = %instance, "targets drained; stopping the task");
        Ok(true)
    }

    /// Raises the desired-set generation of each instance, so its agent
    /// gets its set again.
    pub(super) async fn raise_generations(
        &self,
        instances: &BTreeSet<String>,
    ) -> Result<(), DbError> {
        if instances.is_empty() {
            return Ok(());
        }
        let raised = self.commit_retrying("desired sets", || {
            let mut txn = Txn::new();
            let mut raised = Vec::with_capacity(instances.len());
            for i in instances {
                let (mut alloc, bytes) = self.allocation(i)?;
                alloc.generation += 1;
                match bytes {
                    Some(b) => txn.add_check_equals(Table::Allocations, i.as_str(), b),
                    None => txn.add_check_absent(Table::Allocations, i.as_str()),
                };
                txn.add_put(
                    Table::Allocations,
                    i.as_str(),
                    encode(Table::Allocations, &alloc)?,
                );
                raised.push((i.clone(), alloc.generation));
            }
            Ok((txn, raised))
        })?;
        self.commit.durable().await?;
        for (i, g) in raised {
            self.desired.notify(&i, g);
        }
        Ok(())
    }
}

/// The drain a stop starts for `task`: until when its targets drain
/// (`None`: stop at once). A task drains only while RUNNING with targets
/// and desired RUNNING; `delay_of` gives a target group's deregistration
/// delay in seconds (`None`: the group is gone, no drain for it).
pub fn drain_until(
    task: &TaskRecord,
    now: crate::records::UnixMillis,
    delay_of: impl Fn(&str) -> Option<u32>,
) -> Option<crate::records::UnixMillis> {
    if task.desired_status != DesiredStatus::Running
        || task.last_status != TaskStatus::Running
        || task.targets.is_empty()
    {
        return None;
    }
    let secs = task
        .targets
        .iter()
        .filter_map(|t| delay_of(&t.target_group_arn))
        .max()?;
    (secs > 0).then(|| now + i64::from(secs) * 1000)
}
