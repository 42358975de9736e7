//! Tasks: ECS's StartTask and StopTask, the agents' status reports, and the
//! queries behind ListTasks/DescribeTasks and the desired sets.
//!
//! Each placement is one transaction that writes the task, its
//! `InstanceTasks` index entry and the instance's `Allocations` record,
//! checked against the instance and allocation bytes it read: two
//! concurrent placements can never share a host port or over-commit, one of
//! them retries against the other's result. The report that records a task
//! STOPPED releases its reservation in the same transaction.
//!
//! Every change of an instance's desired set raises its stored generation;
//! the [`DesiredNotifier`](crate::agent_link::DesiredNotifier) is told only
//! after the write is durable.

use std::collections::HashMap;

use berth_proto::ecs::{ContainerStatus, HealthStatus, StopCode};
use berth_proto::taskdef::TaskDefinitionStatus;
use rand::Rng;

use super::{decode, encode, taskdef_key, Db, DbError};
use crate::records::{
    now_millis, AllocationRecord, ContainerRecord, DesiredStatus, InstanceRecord, InstanceStatus,
    ProbeState, TaskDefinitionRecord, TaskRecord, TaskStatus, UnixMillis,
};
use crate::reserve::{self, Shortfall};
use crate::store::{Table, Txn};

/// ECS's StopTask default reason.
pub const DEFAULT_STOP_REASON: &str = "Task stopped by user";
/// At most this many tasks per listed instance (a Berth extension of
/// StartTask, which starts one per instance).
pub const MAX_COUNT: u32 = 10;

/// A validated StartTask request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSpec {
    pub cluster: String,
    pub family: String,
    /// None: the latest ACTIVE revision.
    pub revision: Option<u32>,
    /// Instance ids (not ARNs).
    pub instances: Vec<String>,
    /// Tasks per instance, 1–[`MAX_COUNT`].
    pub count: u32,
    pub started_by: String,
    /// None: `family:<family>`.
    pub group: Option<String>,
    /// The tasks' tags (validated).
    pub tags: Vec<(String, String)>,
    /// ECS's enableExecuteCommand, kept on each task.
    pub enable_execute_command: bool,
}

/// An instance that could not take (all of) its tasks, with ECS's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    pub instance_id: String,
    pub reason: String,
    pub detail: String,
}

/// What StartTask did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartTasks {
    pub tasks: Vec<TaskRecord>,
    pub failures: Vec<StartFailure>,
}

/// Filters of ListTasks; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub cluster: String,
    pub instance_id: Option<String>,
    pub family: Option<String>,
    pub started_by: Option<String>,
    pub desired_status: Option<DesiredStatus>,
    /// The task group (`service:<name>` for a service's tasks).
    pub group: Option<String>,
}

impl TaskFilter {
    fn matches(&self, t: &TaskRecord) -> bool {
        t.cluster == self.cluster
            && self
                .instance_id
                .as_ref()
                .is_none_or(|i| *i == t.instance_id)
            && self.family.as_ref().is_none_or(|f| *f == t.family)
            && self.started_by.as_ref().is_none_or(|s| *s == t.started_by)
            && self.desired_status.is_none_or(|d| d == t.desired_status)
            && self.group.as_ref().is_none_or(|g| *g == t.group)
    }
}

/// A task's state as an agent reported it (validated at the edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    pub task_id: String,
    pub last_status: TaskStatus,
    pub stop_code: Option<StopCode>,
    pub stopped_reason: String,
    /// Matched to the task's containers by name; unknown names are ignored.
    pub containers: Vec<ContainerRecord>,
    pub pull_started_at: Option<UnixMillis>,
    pub pull_stopped_at: Option<UnixMillis>,
    pub started_at: Option<UnixMillis>,
    pub stopped_at: Option<UnixMillis>,
    pub health_status: Option<HealthStatus>,
    /// awsvpc tasks: the task's address, once the agent knows it.
    pub private_ipv4: Option<std::net::Ipv4Addr>,
    /// The latest result of each target check that reached a threshold.
    pub target_health: Vec<TargetReport>,
}

/// An agent's verdict on one of a task's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetReport {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
    pub healthy: bool,
    /// ELB's reason code (unhealthy only).
    pub reason: String,
    pub description: String,
}

/// What became of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    Applied,
    /// Nothing new (a repeat of what is stored).
    Unchanged,
    /// A lower lifecycle rank than stored, or anything after STOPPED.
    Regression,
    UnknownTask,
    /// The task belongs to another instance than the reporting session's.
    ForeignTask,
}

fn index_key(instance: &str, task: &str) -> Vec<u8> {
    crate::store::composite_key(&[instance.as_bytes(), task.as_bytes()], false)
}

fn failure(instance: &str, reason: &str, detail: impl Into<String>) -> StartFailure {
    StartFailure {
        instance_id: instance.to_owned(),
        reason: reason.to_owned(),
        detail: detail.into(),
    }
}

/// A 32-hex task id, like ECS's.
pub(super) fn new_task_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Who asked for a task and how: what RunTask and StartTask give every
/// task they place.
pub(super) struct TaskOrigin<'a> {
    pub cluster: &'a str,
    pub group: String,
    pub started_by: &'a str,
    pub overrides: Option<crate::records::TaskOverrides>,
}

/// The record of a task just placed on `instance`, PROVISIONING. `def` is
/// the definition as run (`td`'s with the origin's overrides applied).
pub(super) fn placed_task(
    id: String,
    instance: &str,
    td: &TaskDefinitionRecord,
    def: &berth_proto::taskdef::TaskDefinition,
    reservation: crate::records::Reservation,
    origin: TaskOrigin<'_>,
) -> TaskRecord {
    let TaskOrigin {
        cluster,
        group,
        started_by,
        overrides,
    } = origin;
    TaskRecord {
        id,
        cluster: cluster.to_owned(),
        instance_id: instance.to_owned(),
        family: td.family.clone(),
        revision: td.revision,
        desired_status: DesiredStatus::Running,
        last_status: TaskStatus::Provisioning,
        health_status: Some(HealthStatus::Unknown),
        started_by: started_by.to_owned(),
        group,
        created_at: now_millis(),
        pull_started_at: None,
        pull_stopped_at: None,
        started_at: None,
        stopping_at: None,
        stopped_at: None,
        stop_code: None,
        stopped_reason: String::new(),
        containers: def
            .container_definitions
            .iter()
            .map(|c| ContainerRecord {
                name: c.name.clone(),
                image: c.image.clone(),
                last_status: Some(ContainerStatus::Pending),
                cpu: c.cpu,
                memory: c.memory,
                memory_reservation: c.memory_reservation,
                ..Default::default()
            })
            .collect(),
        reservation,
        version: 1,
        overrides,
        tags: Vec::new(),
        network_mode: Some(def.effective_network_mode()),
        private_ipv4: None,
        targets: Vec::new(),
        drain_until: None,
        enable_execute_command: false,
    }
}

/// The `InstanceTasks` key of a task.
pub(super) fn instance_task_key(instance: &str, task: &str) -> Vec<u8> {
    index_key(instance, task)
}

impl Db {
    pub(super) fn allocation(
        &self,
        instance: &str,
    ) -> Result<(AllocationRecord, Option<Vec<u8>>), DbError> {
        Ok(
            match self.get::<AllocationRecord>(Table::Allocations, instance.as_bytes())? {
                Some((a, bytes)) => (a, Some(bytes)),
                None => (AllocationRecord::default(), None),
            },
        )
    }

    /// What `instance`'s tasks hold now.
    pub fn allocation_of(&self, instance: &str) -> Result<AllocationRecord, DbError> {
        Ok(self.allocation(instance)?.0)
    }

    pub fn task(&self, id: &str) -> Result<Option<TaskRecord>, DbError> {
        Ok(self
            .get::<TaskRecord>(Table::Tasks, id.as_bytes())?
            .map(|(t, _)| t))
    }

    /// Every task, in id order.
    pub fn all_tasks(&self) -> Result<Vec<TaskRecord>, DbError> {
        Ok(self.scan(Table::Tasks, b"")?)
    }

    /// The tasks of one instance (through the `InstanceTasks` index).
    pub fn tasks_of_instance(&self, instance: &str) -> Result<Vec<TaskRecord>, DbError> {
        let prefix = crate::store::composite_key(&[instance.as_bytes()], true);
        let mut out = Vec::new();
        for (k, _) in self.store.scan_prefix(Table::InstanceTasks, &prefix)? {
            let id = &k[prefix.len()..];
            if let Some(bytes) = self.store.get(Table::Tasks, id)? {
                out.push(decode::<TaskRecord>(Table::Tasks, id, &bytes)?);
            }
        }
        Ok(out)
    }

    /// ListTasks: matching tasks, oldest first.
    pub fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskRecord>, DbError> {
        let mut tasks = match &filter.instance_id {
            Some(i) => self.tasks_of_instance(i)?,
            None => self.all_tasks()?,
        };
        tasks.retain(|t| filter.matches(t));
        tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tasks)
    }

    /// The instance's desired set (tasks not yet STOPPED) and its generation,
    /// read together.
    pub fn desired_set(&self, instance: &str) -> Result<(u64, Vec<TaskRecord>), DbError> {
        // Read the generation first: a change racing this read raises it
        // again and the notifier makes the caller read once more.
        let generation = self.allocation(instance)?.0.generation;
        let mut tasks = self.tasks_of_instance(instance)?;
        tasks.retain(TaskRecord::in_desired_set);
        tasks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok((generation, tasks))
    }

    /// ECS's StartTask. `connected` tells whether an instance's agent holds
    /// a live session. Per-instance problems are failures (ECS's shape);
    /// problems of the request itself are errors. The answer comes once
    /// every placed task is durable.
    pub async fn start_tasks(
        &self,
        spec: &StartSpec,
        connected: impl Fn(&str) -> bool,
    ) -> Result<StartTasks, DbError> {
        self.active_cluster(&spec.cluster)?;
        if !(1..=MAX_COUNT).contains(&spec.count) {
            return Err(DbError::InvalidArgument {
                field: "count",
                message: format!("{} is not within 1–{MAX_COUNT}", spec.count),
            });
        }
        let td = self.task_definition(&spec.family, spec.revision)?;
        if td.status != TaskDefinitionStatus::Active {
            return Err(DbError::InvalidArgument {
                field: "taskDefinition",
                message: format!(
                    "TaskDefinition is inactive: {}:{} was deregistered and cannot be run",
                    td.family, td.revision
                ),
            });
        }
        let needs = reserve::needs(&td.definition);
        let mut out = StartTasks {
            tasks: vec![],
            failures: vec![],
        };
        let mut generations: HashMap<String, u64> = HashMap::new();
        for instance in &spec.instances {
            for _ in 0..spec.count {
                match self.place_one(spec, &td, &needs, instance, &connected)? {
                    Ok((task, generation)) => {
                        generations.insert(instance.clone(), generation);
                        out.tasks.push(task);
                    }
                    Err(f) => {
                        out.failures.push(f);
                        break;
                    }
                }
            }
        }
        if !out.tasks.is_empty() {
            self.commit.durable().await?;
            for (instance, generation) in generations {
                self.desired.notify(&instance, generation);
            }
        }
        Ok(out)
    }

    /// Places one task on `instance` in one transaction (not yet durable).
    fn place_one(
        &self,
        spec: &StartSpec,
        td: &TaskDefinitionRecord,
        needs: &reserve::TaskNeeds,
        instance: &str,
        connected: &impl Fn(&str) -> bool,
    ) -> Result<Result<(TaskRecord, u64), StartFailure>, DbError> {
        let td_key = taskdef_key(&td.family, td.revision);
        let id = new_task_id();
        self.commit_retrying("task placement", || {
            let Some((inst, inst_bytes)) =
                self.get::<InstanceRecord>(Table::Instances, instance.as_bytes())?
            else {
                return Ok((Txn::new(), Err(failure(instance, "MISSING", ""))));
            };
            if inst.cluster != spec.cluster {
                return Ok((
                    Txn::new(),
                    Err(failure(
                        instance,
                        "MISSING",
                        format!("the container instance is in cluster {:?}", inst.cluster),
                    )),
                ));
            }
            match inst.status {
                InstanceStatus::Active => {}
                InstanceStatus::Draining => {
                    return Ok((
                        Txn::new(),
                        Err(failure(
                            instance,
                            "DRAINING",
                            "the container instance is draining; it takes no new tasks",
                        )),
                    ))
                }
                InstanceStatus::Inactive => {
                    return Ok((
                        Txn::new(),
                        Err(failure(
                            instance,
                            "INACTIVE",
                            "the container instance was deregistered",
                        )),
                    ))
                }
            }
            if !connected(instance) {
                return Ok((
                    Txn::new(),
                    Err(failure(
                        instance,
                        "AGENT",
                        "the container instance's agent is not connected",
                    )),
                ));
            }
            // The definition must not be deregistered under us.
            let td_bytes = self
                .store
                .get(Table::TaskDefinitions, &td_key)?
                .unwrap_or_default();
            if decode::<TaskDefinitionRecord>(Table::TaskDefinitions, &td_key, &td_bytes)?.status
                != TaskDefinitionStatus::Active
            {
                return Err(DbError::InvalidArgument {
                    field: "taskDefinition",
                    message: format!(
                        "TaskDefinition is inactive: {}:{} was deregistered and cannot be run",
                        td.family, td.revision
                    ),
                });
            }
            let (mut alloc, alloc_bytes) = self.allocation(instance)?;
            let seed = rand::rng().random::<u64>();
            let reservation = match reserve::reserve(needs, &inst.resources, &alloc, seed) {
                Ok(r) => r,
                Err(s) => return Ok((Txn::new(), Err(shortfall(instance, &s)))),
            };
            let group = spec
                .group
                .clone()
                .unwrap_or_else(|| format!("family:{}", td.family));
            alloc.add_task(&reservation, &group);
            alloc.generation += 1;
            let mut task = placed_task(
                id.clone(),
                instance,
                td,
                &td.definition,
                reservation,
                TaskOrigin {
                    cluster: &spec.cluster,
                    group,
                    started_by: &spec.started_by,
                    overrides: None,
                },
            );
            task.tags = spec.tags.clone();
            task.enable_execute_command = spec.enable_execute_command;
            let txn = Txn::new()
                .check_equals(Table::Instances, instance, inst_bytes)
                .check_equals(Table::TaskDefinitions, td_key.clone(), td_bytes);
            let txn = match alloc_bytes {
                Some(b) => txn.check_equals(Table::Allocations, instance, b),
                None => txn.check_absent(Table::Allocations, instance),
            };
            let txn = txn
                .check_absent(Table::Tasks, id.as_str())
                .put(Table::Tasks, id.as_str(), encode(Table::Tasks, &task)?)
                .put(Table::InstanceTasks, index_key(instance, &id), Vec::new())
                .put(
                    Table::Allocations,
                    instance,
                    encode(Table::Allocations, &alloc)?,
                );
            Ok((txn, Ok((task, alloc.generation))))
        })
    }

    /// ECS's StopTask: desired STOPPED, stopCode UserInitiated. The task
    /// keeps its lastStatus and its reservation until its agent reports it
    /// STOPPED — while its agent is disconnected it stays as it is, because
    /// its containers may still run and hold their ports. Only a task whose
    /// instance is gone (deregistered or missing) is recorded STOPPED and
    /// released here, since no agent will ever report it.
    pub async fn stop_task(
        &self,
        cluster: &str,
        id: &str,
        reason: &str,
    ) -> Result<TaskRecord, DbError> {
        self.stop_task_as(cluster, id, StopCode::UserInitiated, reason)
            .await
    }

    /// StopTask with the given stop code: `UserInitiated` for StopTask,
    /// `ServiceSchedulerInitiated` for the service controller.
    pub async fn stop_task_as(
        &self,
        cluster: &str,
        id: &str,
        stop_code: StopCode,
        reason: &str,
    ) -> Result<TaskRecord, DbError> {
        let not_found = || DbError::NotFound {
            kind: "task",
            name: id.to_owned(),
        };
        let reason = if reason.trim().is_empty() {
            DEFAULT_STOP_REASON.to_owned()
        } else {
            reason.trim().to_owned()
        };
        let (task, generation) = self.commit_retrying("task", || {
            let (mut task, task_bytes) = self
                .get::<TaskRecord>(Table::Tasks, id.as_bytes())?
                .filter(|(t, _)| t.cluster == cluster)
                .ok_or_else(not_found)?;
            if task.desired_status == DesiredStatus::Stopped {
                return Ok((Txn::new(), (task, None)));
            }
            let now = now_millis();
            // Behind a load balancer, the targets drain first: the task is
            // DEACTIVATING and its agent keeps it running until then.
            task.drain_until = super::traffic::drain_until(&task, now, |arn| {
                self.target_group(arn)
                    .ok()
                    .flatten()
                    .map(|g| g.deregistration_delay_secs)
            });
            if task.drain_until.is_some() {
                task.last_status = TaskStatus::Deactivating;
            }
            task.desired_status = DesiredStatus::Stopped;
            task.stop_code = Some(stop_code);
            task.stopped_reason = reason.clone();
            task.stopping_at = Some(now);
            task.version += 1;
            let instance_gone = !matches!(
                self.instance(&task.instance_id)?,
                Some(i) if i.status != InstanceStatus::Inactive
            );
            let (mut alloc, alloc_bytes) = self.allocation(&task.instance_id)?;
            let mut txn = Txn::new();
            if instance_gone && task.holds_reservation() {
                alloc.release_task(&task.reservation, &task.group);
                task.last_status = TaskStatus::Stopped;
                task.stopped_at = Some(now);
                task.drain_until = None;
                txn.add_put(
                    Table::Retention,
                    super::retention::retention_key(
                        super::retention::KIND_TASK,
                        now,
                        id.as_bytes(),
                    ),
                    Vec::new(),
                );
            }
            alloc.generation += 1;
            let txn = txn.check_equals(Table::Tasks, id, task_bytes);
            let txn = match alloc_bytes {
                Some(b) => txn.check_equals(Table::Allocations, task.instance_id.as_str(), b),
                None => txn.check_absent(Table::Allocations, task.instance_id.as_str()),
            };
            let txn = txn.put(Table::Tasks, id, encode(Table::Tasks, &task)?).put(
                Table::Allocations,
                task.instance_id.as_str(),
                encode(Table::Allocations, &alloc)?,
            );
            Ok((txn, (task, Some(alloc.generation))))
        })?;
        if let Some(g) = generation {
            self.commit.durable().await?;
            self.wrote();
            self.desired.notify(&task.instance_id, g);
        }
        Ok(task)
    }

    /// Applies reports from `instance`'s session, each in its own
    /// transaction, all made durable by one flush. The instance is the
    /// session's identity, never a field of the report.
    pub async fn apply_reports(
        &self,
        instance: &str,
        reports: &[TaskReport],
    ) -> Result<Vec<ReportOutcome>, DbError> {
        let mut outcomes = Vec::with_capacity(reports.len());
        let mut generation = None;
        for r in reports {
            let (outcome, g) = self.apply_report(instance, r)?;
            if g.is_some() {
                generation = g;
            }
            outcomes.push(outcome);
        }
        if outcomes.contains(&ReportOutcome::Applied) {
            self.commit.durable().await?;
            self.wrote();
        }
        if let Some(g) = generation {
            self.desired.notify(instance, g);
        }
        Ok(outcomes)
    }

    fn apply_report(
        &self,
        instance: &str,
        r: &TaskReport,
    ) -> Result<(ReportOutcome, Option<u64>), DbError> {
        self.commit_retrying("task report", || {
            let Some((mut task, task_bytes)) =
                self.get::<TaskRecord>(Table::Tasks, r.task_id.as_bytes())?
            else {
                return Ok((Txn::new(), (ReportOutcome::UnknownTask, None)));
            };
            if task.instance_id != instance {
                return Ok((Txn::new(), (ReportOutcome::ForeignTask, None)));
            }
            if task.last_status == TaskStatus::Stopped || r.last_status < task.last_status {
                return Ok((Txn::new(), (ReportOutcome::Regression, None)));
            }
            let before = task.clone();
            merge_report(&mut task, r);
            if task == before {
                return Ok((Txn::new(), (ReportOutcome::Unchanged, None)));
            }
            task.version += 1;
            let txn = Txn::new().check_equals(Table::Tasks, r.task_id.as_str(), task_bytes);
            if task.last_status != TaskStatus::Stopped {
                let txn = txn.put(
                    Table::Tasks,
                    r.task_id.as_str(),
                    encode(Table::Tasks, &task)?,
                );
                return Ok((txn, (ReportOutcome::Applied, None)));
            }
            // STOPPED: leave the desired set, release the reservation.
            let (mut alloc, alloc_bytes) = self.allocation(instance)?;
            alloc.release_task(&task.reservation, &task.group);
            alloc.generation += 1;
            let txn = match alloc_bytes {
                Some(b) => txn.check_equals(Table::Allocations, instance, b),
                None => txn.check_absent(Table::Allocations, instance),
            };
            let txn = txn
                .put(
                    Table::Tasks,
                    r.task_id.as_str(),
                    encode(Table::Tasks, &task)?,
                )
                .put(
                    Table::Allocations,
                    instance,
                    encode(Table::Allocations, &alloc)?,
                )
                // Kept for the retention window from now (`db::retention`).
                .put(
                    Table::Retention,
                    super::retention::retention_key(
                        super::retention::KIND_TASK,
                        now_millis(),
                        r.task_id.as_bytes(),
                    ),
                    Vec::new(),
                );
            Ok((txn, (ReportOutcome::Applied, Some(alloc.generation))))
        })
    }
}

fn shortfall(instance: &str, s: &Shortfall) -> StartFailure {
    failure(instance, s.reason(), s.detail())
}

/// Folds a (non-regressing) report into the task.
fn merge_report(task: &mut TaskRecord, r: &TaskReport) {
    task.last_status = r.last_status;
    let keep = |field: &mut Option<UnixMillis>, v: Option<UnixMillis>| {
        if field.is_none() {
            *field = v;
        }
    };
    keep(&mut task.pull_started_at, r.pull_started_at);
    keep(&mut task.pull_stopped_at, r.pull_stopped_at);
    keep(&mut task.started_at, r.started_at);
    if r.health_status.is_some() {
        task.health_status = r.health_status;
    }
    if r.private_ipv4.is_some() {
        task.private_ipv4 = r.private_ipv4;
    }
    for h in &r.target_health {
        let Some(t) = task
            .targets
            .iter_mut()
            .find(|t| t.is(&h.target_group_arn, &h.container_name, h.container_port))
        else {
            continue;
        };
        let state = if h.healthy {
            ProbeState::Healthy
        } else {
            ProbeState::Unhealthy
        };
        if t.state != state || t.reason != h.reason || t.description != h.description {
            if t.state != state {
                t.since = now_millis();
            }
            t.state = state;
            t.reason = h.reason.clone();
            t.description = h.description.clone();
        }
    }
    for c in &r.containers {
        let Some(mine) = task.containers.iter_mut().find(|m| m.name == c.name) else {
            continue;
        };
        if !c.runtime_id.is_empty() {
            mine.runtime_id = c.runtime_id.clone();
        }
        if !c.image_digest.is_empty() {
            mine.image_digest = c.image_digest.clone();
        }
        if c.last_status.is_some() && mine.last_status != Some(ContainerStatus::Stopped) {
            mine.last_status = c.last_status;
        }
        if c.exit_code.is_some() {
            mine.exit_code = c.exit_code;
        }
        if !c.reason.is_empty() {
            mine.reason = c.reason.clone();
        }
        if !c.network_bindings.is_empty() {
            mine.network_bindings = c.network_bindings.clone();
        }
        if c.health_status.is_some() {
            mine.health_status = c.health_status;
            mine.health_check_output = c.health_check_output.clone();
        }
        mine.restart_count = mine.restart_count.max(c.restart_count);
    }
    if r.last_status == TaskStatus::Stopped {
        task.desired_status = DesiredStatus::Stopped;
        let now = now_millis();
        task.stopped_at = r.stopped_at.or(Some(now));
        if task.stopping_at.is_none() {
            task.stopping_at = task.stopped_at;
        }
        // A stop the scheduler asked for keeps its code and reason.
        if task.stop_code.is_none() {
            task.stop_code = r.stop_code;
            task.stopped_reason = r.stopped_reason.clone();
        }
        for c in &mut task.containers {
            c.last_status = Some(ContainerStatus::Stopped);
        }
    } else if r.last_status >= TaskStatus::Deactivating && task.stopping_at.is_none() {
        task.stopping_at = Some(now_millis());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use berth_proto::taskdef::NetworkMode;

    use super::*;
    use crate::records::{HostResources, Protocol};
    use crate::store::SledStore;

    async fn open(dir: &std::path::Path) -> Db {
        Db::open(Arc::new(SledStore::open_when_free(dir).unwrap()))
            .await
            .unwrap()
    }

    async fn instance(db: &Db, id: &str, memory_mib: i64, range: (u16, u16)) {
        db.create_instance(InstanceRecord {
            address: None,
            id: id.into(),
            cluster: "default".into(),
            hostname: id.into(),
            status: InstanceStatus::Active,
            registered_at: 0,
            agent_version: "0".into(),
            resources: HostResources {
                cpu_units: 4096,
                memory_mib,
                port_range: range,
                reserved_tcp_ports: vec![22],
                reserved_udp_ports: vec![],
            },
            attributes: vec![],
            cert_serials: vec![],
            activation_id: String::new(),
            custom_attributes: vec![],
            tags: vec![],
        })
        .await
        .unwrap();
    }

    async fn register(db: &Db, json: &str) -> u32 {
        let def = berth_proto::taskdef::parse_registration(json)
            .unwrap()
            .definition;
        db.register_task_definition(def).await.unwrap().revision
    }

    fn spec(family: &str, instance: &str, count: u32) -> StartSpec {
        StartSpec {
            cluster: "default".into(),
            family: family.into(),
            revision: None,
            instances: vec![instance.into()],
            count,
            started_by: String::new(),
            group: None,
            tags: Vec::new(),
            enable_execute_command: false,
        }
    }

    const WEB: &str = r#"{"family":"web","containerDefinitions":[{"name":"web","image":"nginx",
        "memory":100,"cpu":128,"portMappings":[{"containerPort":80},{"containerPort":53,"protocol":"udp"}]}]}"#;
    const STATIC: &str = r#"{"family":"static","containerDefinitions":[{"name":"s","image":"nginx",
        "memory":10,"portMappings":[{"containerPort":80,"hostPort":8080}]}]}"#;

    fn report(task: &TaskRecord, status: TaskStatus) -> TaskReport {
        TaskReport {
            target_health: Vec::new(),
            task_id: task.id.clone(),
            last_status: status,
            stop_code: None,
            stopped_reason: String::new(),
            containers: vec![],
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopped_at: None,
            health_status: None,
            private_ipv4: None,
        }
    }

    #[tokio::test]
    async fn placement_reserves_and_stopped_releases() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        instance(&db, "i1", 1000, (20000, 20099)).await;
        register(&db, WEB).await;
        let mut notified = db.desired_notifier().subscribe("i1");
        let out = db
            .start_tasks(&spec("web", "i1", 2), |_| true)
            .await
            .unwrap();
        assert_eq!((out.tasks.len(), out.failures.len()), (2, 0));
        let t = &out.tasks[0];
        assert_eq!(t.id.len(), 32);
        assert!(t.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(t.group, "family:web");
        assert_eq!(
            (t.last_status, t.desired_status),
            (TaskStatus::Provisioning, DesiredStatus::Running)
        );
        let a = db.allocation_of("i1").unwrap();
        assert_eq!((a.cpu_units, a.memory_mib), (256, 200));
        assert_eq!((a.tcp_ports.len(), a.udp_ports.len()), (2, 2));
        assert_ne!(
            out.tasks[0].reservation.ports[0].host_port,
            out.tasks[1].reservation.ports[0].host_port
        );
        assert!(notified.has_changed().unwrap());
        assert_eq!(*notified.borrow_and_update(), a.generation);
        let (g, set) = db.desired_set("i1").unwrap();
        assert_eq!((g, set.len()), (a.generation, 2));

        // STOPPED releases in the same write and leaves the desired set.
        let outcomes = db
            .apply_reports("i1", &[report(t, TaskStatus::Stopped)])
            .await
            .unwrap();
        assert_eq!(outcomes, vec![ReportOutcome::Applied]);
        let a = db.allocation_of("i1").unwrap();
        assert_eq!(
            (a.cpu_units, a.memory_mib, a.tcp_ports.len()),
            (128, 100, 1)
        );
        let stopped = db.task(&t.id).unwrap().unwrap();
        assert_eq!(stopped.desired_status, DesiredStatus::Stopped);
        assert!(stopped.stopped_at.is_some());
        assert_eq!(db.desired_set("i1").unwrap().1.len(), 1);
        assert!(notified.has_changed().unwrap());
    }

    #[tokio::test]
    async fn reports_keep_the_awsvpc_address_and_records_the_network_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        instance(&db, "i1", 1000, (20000, 20099)).await;
        register(&db, WEB).await;
        register(
            &db,
            r#"{"family":"vpc","networkMode":"awsvpc","containerDefinitions":[
                {"name":"web","image":"nginx","memory":10,"portMappings":[{"containerPort":80}]}]}"#,
        )
        .await;
        let web = db
            .start_tasks(&spec("web", "i1", 1), |_| true)
            .await
            .unwrap();
        let vpc = db
            .start_tasks(&spec("vpc", "i1", 1), |_| true)
            .await
            .unwrap();
        let (web, vpc) = (&web.tasks[0], &vpc.tasks[0]);
        assert_eq!(web.network_mode, Some(NetworkMode::Bridge), "ECS's default");
        assert_eq!(vpc.network_mode, Some(NetworkMode::Awsvpc));
        assert_eq!(vpc.private_ipv4, None, "unknown until the agent reports it");

        let ip = std::net::Ipv4Addr::new(10, 213, 0, 5);
        let mut running = report(vpc, TaskStatus::Running);
        running.private_ipv4 = Some(ip);
        let out = db.apply_reports("i1", &[running]).await.unwrap();
        assert_eq!(out, vec![ReportOutcome::Applied]);
        assert_eq!(db.task(&vpc.id).unwrap().unwrap().private_ipv4, Some(ip));

        // A later report without the address (none known yet after an agent
        // restart) keeps it, through STOPPED.
        let out = db
            .apply_reports("i1", &[report(vpc, TaskStatus::Stopped)])
            .await
            .unwrap();
        assert_eq!(out, vec![ReportOutcome::Applied]);
        let stopped = db.task(&vpc.id).unwrap().unwrap();
        assert_eq!(
            (stopped.last_status, stopped.private_ipv4),
            (TaskStatus::Stopped, Some(ip))
        );
    }

    #[tokio::test]
    async fn static_port_conflicts_and_resources_are_refused_with_ecs_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        instance(&db, "i1", 150, (20000, 20099)).await;
        register(&db, STATIC).await;
        register(&db, WEB).await;
        let ok = db
            .start_tasks(&spec("static", "i1", 1), |_| true)
            .await
            .unwrap();
        assert_eq!(ok.tasks[0].reservation.ports[0].host_port, 8080);
        let out = db
            .start_tasks(&spec("static", "i1", 1), |_| true)
            .await
            .unwrap();
        assert!(out.tasks.is_empty());
        assert_eq!(out.failures[0].reason, "RESOURCE:PORTS");
        assert!(
            out.failures[0].detail.contains("8080/tcp"),
            "{:?}",
            out.failures
        );
        // 140 MiB left: one web task (100) fits, the second does not.
        let out = db
            .start_tasks(&spec("web", "i1", 3), |_| true)
            .await
            .unwrap();
        assert_eq!(out.tasks.len(), 1);
        assert_eq!(out.failures.len(), 1, "one failure per instance");
        assert_eq!(out.failures[0].reason, "RESOURCE:MEMORY");
        // Instance problems.
        let out = db
            .start_tasks(&spec("web", "ghost", 1), |_| true)
            .await
            .unwrap();
        assert_eq!(out.failures[0].reason, "MISSING");
        let out = db
            .start_tasks(&spec("web", "i1", 1), |_| false)
            .await
            .unwrap();
        assert_eq!(out.failures[0].reason, "AGENT");
        db.update_instance("i1", |i| i.status = InstanceStatus::Draining)
            .await
            .unwrap();
        let out = db
            .start_tasks(&spec("static", "i1", 1), |_| true)
            .await
            .unwrap();
        assert_eq!(out.failures[0].reason, "DRAINING");
    }

    #[tokio::test]
    async fn inactive_revision_cannot_run() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        instance(&db, "i1", 1000, (20000, 20099)).await;
        register(&db, WEB).await;
        db.deregister_task_definition("web", 1).await.unwrap();
        let mut s = spec("web", "i1", 1);
        s.revision = Some(1);
        match db.start_tasks(&s, |_| true).await {
            Err(DbError::InvalidArgument { message, .. }) => {
                assert!(
                    message.starts_with("TaskDefinition is inactive"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(db.all_tasks().unwrap().is_empty());
    }

    #[tokio::test]
    async fn reports_regressions_and_foreign_tasks_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        instance(&db, "i1", 1000, (20000, 20099)).await;
        instance(&db, "i2", 1000, (20000, 20099)).await;
        register(&db, WEB).await;
        let t = db
            .start_tasks(&spec("web", "i1", 1), |_| true)
            .await
            .unwrap()
            .tasks[0]
            .clone();
        let mut running = report(&t, TaskStatus::Running);
        running.containers = vec![ContainerRecord {
            name: "web".into(),
            runtime_id: "ctr-1".into(),
            last_status: Some(ContainerStatus::Running),
            network_bindings: vec![crate::records::NetworkBinding {
                bind_ip: "0.0.0.0".into(),
                container_port: 80,
                host_port: t.reservation.ports[0].host_port,
                protocol: Protocol::Tcp,
            }],
            ..Default::default()
        }];
        let outcomes = db
            .apply_reports(
                "i1",
                &[
                    report(&t, TaskStatus::Pending),
                    running.clone(),
                    report(&t, TaskStatus::Pending),
                    running.clone(),
                ],
            )
            .await
            .unwrap();
        use ReportOutcome::*;
        assert_eq!(outcomes, vec![Applied, Applied, Regression, Unchanged]);
        assert_eq!(
            db.apply_reports("i2", &[report(&t, TaskStatus::Stopped)])
                .await
                .unwrap(),
            vec![ForeignTask]
        );
        let rec = db.task(&t.id).unwrap().unwrap();
        assert_eq!(rec.last_status, TaskStatus::Running);
        assert_eq!(rec.containers[0].runtime_id, "ctr-1");
        assert_eq!(rec.containers[0].network_bindings.len(), 1);
        assert_eq!(rec.version, 3);

        // StopTask: desired STOPPED, reservation kept until the agent reports.
        let stopped = db.stop_task("default", &t.id, "").await.unwrap();
        assert_eq!(stopped.desired_status, DesiredStatus::Stopped);
        assert_eq!(stopped.stop_code, Some(StopCode::UserInitiated));
        assert_eq!(stopped.stopped_reason, DEFAULT_STOP_REASON);
        assert!(stopped.stopping_at.is_some());
        assert_eq!(stopped.last_status, TaskStatus::Running);
        assert_eq!(db.allocation_of("i1").unwrap().memory_mib, 100);
        let (_, set) = db.desired_set("i1").unwrap();
        assert_eq!(set[0].desired_status, DesiredStatus::Stopped);
        let mut exited = report(&t, TaskStatus::Stopped);
        exited.stop_code = Some(StopCode::EssentialContainerExited);
        db.apply_reports("i1", &[exited]).await.unwrap();
        let rec = db.task(&t.id).unwrap().unwrap();
        assert_eq!(
            rec.stop_code,
            Some(StopCode::UserInitiated),
            "the user's stop code stays"
        );
        assert_eq!(
            rec.containers[0].last_status,
            Some(ContainerStatus::Stopped)
        );
        assert_eq!(
            db.allocation_of("i1").unwrap(),
            AllocationRecord {
                generation: db.allocation_of("i1").unwrap().generation,
                ..Default::default()
            }
        );
        // STOPPED is final.
        assert_eq!(
            db.apply_reports("i1", &[report(&t, TaskStatus::Running)])
                .await
                .unwrap(),
            vec![Regression]
        );
    }

    /// Property-style: 8 concurrent StartTask callers with random task
    /// shapes on one small instance never over-commit it nor share a port.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_placements_never_overcommit_nor_share_a_port() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        instance(&db, "i1", 2000, (20000, 20039)).await;
        // The task definitions are random; BERTH_TEST_SEED replays a run
        // (the seed is printed, and cargo test shows it when this fails).
        let seed = std::env::var("BERTH_TEST_SEED")
            .ok()
            .map(|s| s.parse::<u64>().expect("BERTH_TEST_SEED is a u64"))
            .unwrap_or_else(|| rand::rng().random());
        println!("BERTH_TEST_SEED={seed}");
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let mut families = Vec::new();
        let mut static_ports = Vec::new();
        for f in 0..6 {
            let memory = rng.random_range(16..300);
            let cpu = rng.random_range(0..700);
            let dynamic: usize = rng.random_range(0..3);
            let mut ports: Vec<String> = (0..dynamic)
                .map(|p| format!(r#"{{"containerPort":{}}}"#, 80 + p))
                .collect();
            if f % 3 == 0 {
                ports.push(format!(r#"{{"containerPort":90,"hostPort":{}}}"#, 9000 + f));
                static_ports.push(9000 + f as u16);
            }
            let json = format!(
                r#"{{"family":"f{f}","containerDefinitions":[{{"name":"c","image":"x","memory":{memory},"cpu":{cpu},"portMappings":[{}]}}]}}"#,
                ports.join(",")
            );
            register(&db, &json).await;
            families.push(format!("f{f}"));
        }
        let mut handles = Vec::new();
        for w in 0..8 {
            let db = db.clone();
            let families = families.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..6 {
                    let f = &families[(w + i) % families.len()];
                    db.start_tasks(&spec(f, "i1", 2), |_| true).await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let tasks = db.tasks_of_instance("i1").unwrap();
        assert!(!tasks.is_empty());
        let (cpu, memory) = tasks.iter().fold((0, 0), |(c, m), t| {
            (c + t.reservation.cpu_units, m + t.reservation.memory_mib)
        });
        assert!(
            memory <= 2000 && cpu <= 4096,
            "over-committed: {cpu} cpu, {memory} MiB"
        );
        let mut ports: Vec<u16> = tasks
            .iter()
            .flat_map(|t| t.reservation.host_ports(Protocol::Tcp).collect::<Vec<_>>())
            .collect();
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "a host port was handed out twice");
        // Dynamic ports come from the instance's range (which excludes the
        // reserved 22), static ones are the definitions' own.
        let stray: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| !(20000..=20039).contains(p) && !static_ports.contains(p))
            .collect();
        assert!(
            stray.is_empty(),
            "ports outside the range handed out: {stray:?}"
        );
        let a = db.allocation_of("i1").unwrap();
        assert_eq!((a.cpu_units, a.memory_mib), (cpu, memory));
        assert_eq!(
            a.tcp_ports, ports,
            "the allocation record is the sum of its tasks"
        );
    }

    #[tokio::test]
    async fn tasks_and_reservations_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let db = open(dir.path()).await;
            instance(&db, "i1", 1000, (20000, 20099)).await;
            register(&db, STATIC).await;
            let id = db
                .start_tasks(&spec("static", "i1", 1), |_| true)
                .await
                .unwrap()
                .tasks[0]
                .id
                .clone();
            db.close().await;
            id
        };
        let db = open(dir.path()).await;
        assert!(db.task(&id).unwrap().is_some());
        assert_eq!(db.allocation_of("i1").unwrap().tcp_ports, vec![8080]);
        let out = db
            .start_tasks(&spec("static", "i1", 1), |_| true)
            .await
            .unwrap();
        assert_eq!(out.failures[0].reason, "RESOURCE:PORTS");
    }
}
