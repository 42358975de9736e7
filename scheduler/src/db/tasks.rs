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

use berth_proto::taskdef::TaskDefinitionStatus;
use rand::Rng;

use super::{decode, encode, taskdef_key, Db, DbError};
use crate::records::{
    now_millis, AllocationRecord, ContainerRecord, DesiredStatus, InstanceRecord, InstanceStatus,
    TaskDefinitionRecord, TaskRecord, TaskStatus, UnixMillis,
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
    }
}

/// A task's state as an agent reported it (validated at the edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    pub task_id: String,
    pub last_status: TaskStatus,
    pub stop_code: String,
    pub stopped_reason: String,
    /// Matched to the task's containers by name; unknown names are ignored.
    pub containers: Vec<ContainerRecord>,
    pub pull_started_at: Option<UnixMillis>,
    pub pull_stopped_at: Option<UnixMillis>,
    pub started_at: Option<UnixMillis>,
    pub stopped_at: Option<UnixMillis>,
    pub health_status: String,
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
    let mut k = instance.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(task.as_bytes());
    k
}

fn failure(instance: &str, reason: &str, detail: impl Into<String>) -> StartFailure {
    StartFailure {
        instance_id: instance.to_owned(),
        reason: reason.to_owned(),
        detail: detail.into(),
    }
}

/// A 32-hex task id, like ECS's.
fn new_task_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Db {
    fn allocation(&self, instance: &str) -> Result<(AllocationRecord, Option<Vec<u8>>), DbError> {
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
        let mut prefix = instance.as_bytes().to_vec();
        prefix.push(0);
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
        if td.status == TaskDefinitionStatus::Inactive {
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
                == TaskDefinitionStatus::Inactive
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
            alloc.add(&reservation);
            alloc.generation += 1;
            let now = now_millis();
            let task = TaskRecord {
                id: id.clone(),
                cluster: spec.cluster.clone(),
                instance_id: instance.to_owned(),
                family: td.family.clone(),
                revision: td.revision,
                desired_status: DesiredStatus::Running,
                last_status: TaskStatus::Provisioning,
                health_status: "UNKNOWN".to_owned(),
                started_by: spec.started_by.clone(),
                group: spec
                    .group
                    .clone()
                    .unwrap_or_else(|| format!("family:{}", td.family)),
                created_at: now,
                pull_started_at: None,
                pull_stopped_at: None,
                started_at: None,
                stopping_at: None,
                stopped_at: None,
                stop_code: String::new(),
                stopped_reason: String::new(),
                containers: td
                    .definition
                    .container_definitions
                    .iter()
                    .map(|c| ContainerRecord {
                        name: c.name.clone(),
                        image: c.image.clone(),
                        last_status: "PENDING".to_owned(),
                        cpu: c.cpu,
                        memory: c.memory,
                        memory_reservation: c.memory_reservation,
                        ..Default::default()
                    })
                    .collect(),
                reservation,
                version: 1,
            };
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
            task.desired_status = DesiredStatus::Stopped;
            task.stop_code = "UserInitiated".to_owned();
            task.stopped_reason = reason.clone();
            task.stopping_at = Some(now);
            task.version += 1;
            let instance_gone = !matches!(
                self.instance(&task.instance_id)?,
                Some(i) if i.status != InstanceStatus::Inactive
            );
            let (mut alloc, alloc_bytes) = self.allocation(&task.instance_id)?;
            if instance_gone && task.holds_reservation() {
                alloc.release(&task.reservation);
                task.last_status = TaskStatus::Stopped;
                task.stopped_at = Some(now);
            }
            alloc.generation += 1;
            let txn = Txn::new().check_equals(Table::Tasks, id, task_bytes);
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
            alloc.release(&task.reservation);
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
    if !r.health_status.is_empty() {
        task.health_status = r.health_status.clone();
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
        if !c.last_status.is_empty() && mine.last_status != "STOPPED" {
            mine.last_status = c.last_status.clone();
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
        if !c.health_status.is_empty() {
            mine.health_status = c.health_status.clone();
        }
    }
    if r.last_status == TaskStatus::Stopped {
        task.desired_status = DesiredStatus::Stopped;
        let now = now_millis();
        task.stopped_at = r.stopped_at.or(Some(now));
        if task.stopping_at.is_none() {
            task.stopping_at = task.stopped_at;
        }
        // A stop the scheduler asked for keeps its code and reason.
        if task.stop_code.is_empty() {
            task.stop_code = r.stop_code.clone();
            task.stopped_reason = r.stopped_reason.clone();
        }
        for c in &mut task.containers {
            c.last_status = "STOPPED".to_owned();
        }
    } else if r.last_status >= TaskStatus::Deactivating && task.stopping_at.is_none() {
        task.stopping_at = Some(now_millis());
    }
}
