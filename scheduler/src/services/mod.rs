//! The service controller: keeps every service's tasks at its desired
//! count and rolls deployments out, by ECS's rules.
//!
//! Level-triggered: it is woken by the store's change notifications
//! (task reports, placements, stops, instance and service writes) and by a
//! periodic resync, and then evaluates every service from what the store
//! holds and what the sessions say about the agents. One loop evaluates
//! the services one after another, so one evaluation per service is in
//! flight. All of its state is in the store (deployments, events,
//! throttle), so a restarted scheduler resumes where it stopped.
//!
//! The decisions are pure ([`plan`]); this module does the I/O: it writes
//! the new service record (checked against the bytes evaluated), stops
//! tasks with stop code `ServiceSchedulerInitiated`, places through the
//! placer (group `service:<name>`, startedBy the deployment id) and writes
//! the events in ECS's wording. [`history`] keeps ECS's service
//! deployments in the record, from its deployments.

pub mod history;
pub mod plan;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use berth_proto::ecs::StopCode;

use crate::agents::sessions::Sessions;
use crate::config::ServiceSettings;
use crate::db::{Db, DbError, RunFailure, RunSpec, ServiceSnapshot};
use crate::placement::spec::{self, Constraint, SpreadField, Strategy};
use crate::placer::Placer;
use crate::records::{
    now_millis, InstanceStatus, PlacementItem, SchedulingStrategy, ServiceRecord, ServiceStatus,
    TaskRecord, TaskStatus,
};
use plan::{InstanceFacts, Standing, TaskFacts};

/// Stops issued at once (they share fsyncs through the group commit).
const STOP_CONCURRENCY: usize = 256;

/// The availability-zone attribute (spread's default and scale-in's key).
pub const ZONE_ATTRIBUTE: &str = "ecs.availability-zone";

/// ECS's default placement strategy of a REPLICA service.
pub fn default_strategies() -> Vec<Strategy> {
    vec![
        Strategy::Spread(SpreadField::Attribute(ZONE_ATTRIBUTE.to_owned())),
        Strategy::Spread(SpreadField::Instance),
    ]
}

/// Parses a service's stored placement (checked by the API when stored)
/// with its definition's `memberOf` constraints ([`spec::constraints`],
/// [`spec::strategies`]); the first bad item is the error.
pub fn placement(
    rec: &ServiceRecord,
    def: &berth_proto::taskdef::TaskDefinition,
) -> Result<(Vec<Constraint>, Vec<Strategy>), spec::SpecError> {
    let first = |mut errors: Vec<spec::SpecError>| errors.swap_remove(0);
    let constraints = spec::constraints(
        def,
        rec.constraints
            .iter()
            .map(|c| (c.kind.as_str(), c.value.as_str())),
    )
    .map_err(first)?;
    let strategies = spec::strategies(
        rec.strategies
            .iter()
            .map(|s| (s.kind.as_str(), s.value.as_str())),
        || {
            if rec.scheduling == SchedulingStrategy::Replica {
                default_strategies()
            } else {
                Vec::new()
            }
        },
    )
    .map_err(first)?;
    Ok((constraints, strategies))
}

/// Stored placement items from (type, value) pairs.
pub fn items(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<PlacementItem> {
    pairs
        .into_iter()
        .map(|(kind, value)| PlacementItem { kind, value })
        .collect()
}

/// The controller's facts of a task.
pub fn task_facts(t: &TaskRecord) -> TaskFacts {
    TaskFacts {
        id: t.id.clone(),
        instance_id: t.instance_id.clone(),
        deployment: t.started_by.clone(),
        desired_running: t.desired_status == crate::records::DesiredStatus::Running,
        last_status: t.last_status,
        health: t.health_status,
        created_at: t.created_at,
        started_at: t.started_at,
        stopped_at: t.stopped_at,
        stop_code: t.stop_code,
        failed_health: plan::failed_health(&t.stopped_reason),
        targets: targets_health(t),
    }
}

/// How a task's targets stand together (the first unhealthy group wins).
fn targets_health(t: &TaskRecord) -> plan::TargetsHealth {
    use crate::records::ProbeState;
    if t.targets.is_empty() {
        return plan::TargetsHealth::None;
    }
    if let Some(x) = t.targets.iter().find(|x| x.state == ProbeState::Unhealthy) {
        return plan::TargetsHealth::Unhealthy(x.target_group_arn.clone());
    }
    if t.targets.iter().all(|x| x.state == ProbeState::Healthy) {
        plan::TargetsHealth::Healthy
    } else {
        plan::TargetsHealth::Initial
    }
}

/// ECS's sentence for a placement failure's closest instance.
pub fn unable_to_place(service: &str, f: &RunFailure) -> String {
    let head = format!(
        "(service {service}) was unable to place a task because no container instance met all \
         of its requirements."
    );
    let Some(id) = &f.instance_id else {
        return format!("{head} Reason: No Container Instances were found in your cluster.");
    };
    let why = match f.reason.as_str() {
        "RESOURCE:MEMORY" => "has insufficient memory available.".to_owned(),
        "RESOURCE:CPU" => "has insufficient CPU units available.".to_owned(),
        "RESOURCE:PORTS" => "is already using a port required by your task.".to_owned(),
        "DRAINING" => "is DRAINING.".to_owned(),
        "AGENT" => "has no connected agent.".to_owned(),
        other => format!("encountered error \"{}\".", other.trim_end_matches('.')),
    };
    format!("{head} The closest matching container-instance {id} {why}")
}

/// "(task a) (task b)"
fn task_list<'a>(ids: impl IntoIterator<Item = &'a String>) -> String {
    ids.into_iter()
        .map(|id| format!("(task {id})"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The controller: start it once per scheduler.
#[derive(Debug, Clone)]
pub struct Controller {
    db: Db,
    placer: Placer,
    sessions: Sessions,
    settings: ServiceSettings,
}

/// How often the controller looks for deleted task definitions nothing
/// uses any more (while there may be some).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl Controller {
    pub fn new(db: Db, placer: Placer, sessions: Sessions, settings: ServiceSettings) -> Self {
        Self {
            db,
            placer,
            sessions,
            settings,
        }
    }

    /// Runs until `shutdown` is cancelled.
    pub fn start(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    async fn run(self, shutdown: CancellationToken) {
        let mut last_error_log: Option<tokio::time::Instant> = None;
        let mut last_sweep: Option<tokio::time::Instant> = None;
        loop {
            let next_drain = match self.evaluate_all().await {
                Ok(next) => next,
                Err(e) => {
                    // Rate-limited: a store that keeps failing logs once a minute.
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(cause = %e, "service evaluation failed; retrying");
                        last_error_log = Some(tokio::time::Instant::now());
                    }
                    None
                }
            };
            // Deleted task definitions leave the store once unused; looked
            // for only while some may be left, and at most every SWEEP_EVERY.
            if self.db.deletions_pending() && last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY)
            {
                last_sweep = Some(tokio::time::Instant::now());
                if let Err(e) = self.db.sweep_deleted_task_definitions().await {
                    tracing::warn!(cause = %e, "sweeping deleted task definitions failed; retrying");
                }
            }
            let wait = next_drain.map_or(self.settings.resync, |at| {
                let ms = u64::try_from(at - now_millis()).unwrap_or(0);
                self.settings.resync.min(Duration::from_millis(ms))
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.db.changes().notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Ends every drain among `tasks` that is due ([`Db::end_drain`]);
    /// returns when the next one is.
    async fn end_drains(
        &self,
        tasks: &HashMap<(String, String), Vec<TaskRecord>>,
    ) -> Result<Option<crate::records::UnixMillis>, DbError> {
        let now = now_millis();
        let mut next: Option<crate::records::UnixMillis> = None;
        for t in tasks.values().flatten() {
            let Some(until) = t.drain_until else { continue };
            if until <= now {
                self.db.end_drain(&t.id).await?;
            } else {
                next = Some(next.map_or(until, |n| n.min(until)));
            }
        }
        Ok(next)
    }

    /// How an instance stands for service tasks now.
    fn standing(&self, status: InstanceStatus, id: &str) -> Standing {
        if status == InstanceStatus::Inactive {
            return Standing::Lost;
        }
        if self
            .sessions
            .disconnected_for(id)
            .is_some_and(|d| d > self.settings.lost_after)
        {
            return Standing::Lost;
        }
        if status == InstanceStatus::Draining {
            Standing::Draining
        } else {
            Standing::Ok
        }
    }

    /// One pass over every service that is not INACTIVE.
    /// Returns when the next drain of a service task ends (the loop wakes
    /// up for it).
    pub async fn evaluate_all(&self) -> Result<Option<crate::records::UnixMillis>, DbError> {
        let mut snaps: Vec<ServiceSnapshot> = self
            .db
            .service_snapshots()?
            .into_iter()
            .filter(|s| s.record.status != ServiceStatus::Inactive)
            .collect();
        if snaps.is_empty() {
            // A draining task always has a service that is not INACTIVE.
            return Ok(None);
        }
        // Daemons are placed first.
        snaps.sort_by_key(|s| s.record.scheduling != SchedulingStrategy::Daemon);
        let tasks = self.db.service_tasks()?;
        // Drains that are due end first: their tasks stop now (the plan
        // does not read `drain_until`, so this scan serves both).
        let next_drain = self.end_drains(&tasks).await.unwrap_or_else(|e| {
            tracing::warn!(cause = %e, "ending drains failed; retrying");
            None
        });
        let replica_groups: HashSet<(String, String)> = snaps
            .iter()
            .filter(|s| s.record.scheduling == SchedulingStrategy::Replica)
            .map(|s| (s.record.cluster.clone(), s.record.group()))
            .collect();
        // Instances still holding REPLICA service tasks (daemons stop last).
        let busy: HashSet<String> = tasks
            .iter()
            .filter(|(k, _)| replica_groups.contains(*k))
            .flat_map(|(_, ts)| ts.iter())
            .filter(|t| t.last_status != TaskStatus::Stopped)
            .map(|t| t.instance_id.clone())
            .collect();
        let records = self.db.instances()?;
        let mut instances: HashMap<String, HashMap<String, InstanceFacts>> = HashMap::new();
        for i in &records {
            let standing = self.standing(i.status, &i.id);
            let alloc = self.db.allocation_of(&i.id).unwrap_or_default();
            instances.entry(i.cluster.clone()).or_default().insert(
                i.id.clone(),
                InstanceFacts {
                    standing,
                    attributes: i.attributes.clone(),
                    remaining_cpu: i.resources.cpu_units - alloc.cpu_units,
                    remaining_memory: i.resources.memory_mib - alloc.memory_mib,
                },
            );
        }
        let empty_instances = HashMap::new();
        let no_eligible = HashSet::new();
        for snap in snaps {
            let eligible = if snap.record.scheduling == SchedulingStrategy::Daemon {
                self.daemon_instances(&snap.record, &records)
            } else {
                no_eligible.clone()
            };
            let key = (snap.record.cluster.clone(), snap.record.group());
            let facts: Vec<TaskFacts> = tasks
                .get(&key)
                .map(|ts| ts.iter().map(task_facts).collect())
                .unwrap_or_default();
            let inst = instances
                .get(&snap.record.cluster)
                .unwrap_or(&empty_instances);
            let name = snap.record.name.clone();
            if let Err(e) = self.evaluate(snap, &facts, inst, &eligible, &busy).await {
                tracing::warn!(service = %name, cause = %e, "service evaluation failed");
            }
        }
        Ok(next_drain)
    }

    /// Deployments whose task definition has container health checks
    /// (`["NONE"]` is none).
    fn health_checked(&self, rec: &ServiceRecord) -> HashSet<String> {
        rec.deployments
            .iter()
            .filter(|d| {
                self.db
                    .task_definition(&d.family, Some(d.revision))
                    .map(|td| {
                        td.definition
                            .container_definitions
                            .iter()
                            .filter_map(|c| c.health_check.as_ref())
                            .any(|h| h.command.first().map(String::as_str) != Some("NONE"))
                    })
                    .unwrap_or(false)
            })
            .map(|d| d.id.clone())
            .collect()
    }

    /// The instances a DAEMON service should run on: ACTIVE, not lost,
    /// meeting its (and its definition's) constraints.
    fn daemon_instances(
        &self,
        rec: &ServiceRecord,
        records: &[crate::records::InstanceRecord],
    ) -> HashSet<String> {
        let Some(p) = rec.primary() else {
            return HashSet::new();
        };
        let Ok(td) = self.db.task_definition(&p.family, Some(p.revision)) else {
            return HashSet::new();
        };
        let Ok((constraints, _)) = placement(rec, &td.definition) else {
            return HashSet::new();
        };
        records
            .iter()
            .filter(|i| i.cluster == rec.cluster && i.status == InstanceStatus::Active)
            // A briefly disconnected instance keeps its daemon; only a lost
            // one loses it (starts wait for the agent, see `evaluate`).
            .filter(|i| self.standing(i.status, &i.id) == Standing::Ok)
            .filter(|i| {
                let alloc = self.db.allocation_of(&i.id).unwrap_or_default();
                let node = crate::placement::engine::Node::from_records(i, alloc, true);
                constraints.iter().all(|c| match c {
                    Constraint::DistinctInstance => true,
                    Constraint::MemberOf(expr) => expr.eval(&node),
                })
            })
            .map(|i| i.id.clone())
            .collect()
    }

    async fn evaluate(
        &self,
        snap: ServiceSnapshot,
        tasks: &[TaskFacts],
        instances: &HashMap<String, InstanceFacts>,
        eligible: &HashSet<String>,
        busy: &HashSet<String>,
    ) -> Result<(), DbError> {
        let health_checked = self.health_checked(&snap.record);
        let now = now_millis();
        let inputs = plan::Inputs {
            service: &snap.record,
            tasks,
            instances,
            health_checked: &health_checked,
            now,
            throttle_base_ms: self.settings.throttle_base.as_millis() as i64,
            eligible,
            busy,
        };
        let plan = plan::plan(&inputs);
        let rec = &plan.record;
        let (cluster, name) = (rec.cluster.clone(), rec.name.clone());
        if plan.record != snap.record {
            if !self.db.replace_service(&snap, plan.record.clone()).await? {
                // Changed meanwhile (an UpdateService): evaluate again.
                self.db.changes().notify_one();
                return Ok(());
            }
            if rec.status == ServiceStatus::Inactive {
                tracing::info!(service = %name, cluster = %cluster, "service is INACTIVE");
            }
            for d in history::changed(&snap.record, rec) {
                tracing::info!(
                    service = %name,
                    cluster = %cluster,
                    service_deployment = %d.id,
                    status = d.status.as_str(),
                    reason = %d.status_reason,
                    "service deployment"
                );
            }
        }
        let mut events: Vec<String> = Vec::new();
        let mut stopped = Vec::new();
        // Concurrent stops share the group commit's fsyncs.
        for chunk in plan.stops.chunks(STOP_CONCURRENCY) {
            let results = futures::future::join_all(chunk.iter().map(|s| {
                self.db.stop_task_as(
                    &cluster,
                    &s.task_id,
                    StopCode::ServiceSchedulerInitiated,
                    &s.reason,
                )
            }))
            .await;
            for (s, r) in chunk.iter().zip(results) {
                match r {
                    Ok(_) => stopped.push(s.task_id.clone()),
                    Err(e) => {
                        tracing::warn!(service = %name, task = %s.task_id, cause = %e, "cannot stop a service task")
                    }
                }
            }
        }
        if !stopped.is_empty() {
            tracing::info!(service = %name, tasks = stopped.len(), "service stopped tasks");
            events.push(format!(
                "(service {name}) has stopped {} running tasks: {}.",
                stopped.len(),
                task_list(&stopped)
            ));
        }
        if plan.start > 0 {
            if let Some(p) = rec.primary() {
                // At most RunTask's limit per evaluation; the placement's
                // write wakes the next one.
                let count = plan.start.min(crate::db::MAX_RUN_COUNT);
                match self.place(rec, p.id.clone(), count).await {
                    Ok(out) => {
                        if !out.tasks.is_empty() {
                            let ids: Vec<String> = out.tasks.iter().map(|t| t.id.clone()).collect();
                            tracing::info!(service = %name, deployment = %p.id, tasks = ids.len(), "service started tasks");
                            events.push(format!(
                                "(service {name}) has started {} tasks: {}.",
                                ids.len(),
                                task_list(&ids)
                            ));
                        }
                        if let Some(f) = out.failures.first() {
                            let msg = unable_to_place(&name, f);
                            // Said once until something else happens.
                            if rec.events.first().map(|e| &e.message) != Some(&msg)
                                && !events.contains(&msg)
                            {
                                events.push(msg);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(service = %name, cause = %e, "cannot place service tasks");
                        let msg = format!("(service {name}) was unable to place a task: {e}");
                        if rec.events.first().map(|e| &e.message) != Some(&msg) {
                            events.push(msg);
                        }
                    }
                }
            }
        }
        let start_on: Vec<String> = plan
            .start_on
            .iter()
            .filter(|i| self.sessions.liveness(i).connected)
            .cloned()
            .collect();
        if !start_on.is_empty() {
            if let Some(p) = rec.primary() {
                let spec = crate::db::StartSpec {
                    cluster: cluster.clone(),
                    family: p.family.clone(),
                    revision: Some(p.revision),
                    instances: start_on,
                    count: 1,
                    started_by: p.id.clone(),
                    group: Some(rec.group()),
                    // ECS's propagateTags defaults to NONE.
                    tags: Vec::new(),
                    enable_execute_command: rec.enable_execute_command,
                };
                let sessions = self.sessions.clone();
                match self
                    .db
                    .start_tasks(&spec, |id| sessions.liveness(id).connected)
                    .await
                {
                    Ok(out) => {
                        if !out.tasks.is_empty() {
                            let ids: Vec<String> = out.tasks.iter().map(|t| t.id.clone()).collect();
                            tracing::info!(service = %name, deployment = %p.id, tasks = ids.len(), "daemon started tasks");
                            events.push(format!(
                                "(service {name}) has started {} tasks: {}.",
                                ids.len(),
                                task_list(&ids)
                            ));
                        }
                        if let Some(f) = out.failures.first() {
                            let msg = unable_to_place(
                                &name,
                                &RunFailure {
                                    instance_id: Some(f.instance_id.clone()),
                                    reason: f.reason.clone(),
                                    detail: f.detail.clone(),
                                },
                            );
                            if rec.events.first().map(|e| &e.message) != Some(&msg) {
                                events.push(msg);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(service = %name, cause = %e, "cannot start daemon tasks")
                    }
                }
            }
        }
        if !events.is_empty() {
            self.db
                .update_service(&cluster, &name, |r| {
                    let now = now_millis();
                    for m in &events {
                        r.push_event(plan::new_event_id(), now, m.clone());
                    }
                    r.steady = false;
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    async fn place(
        &self,
        rec: &ServiceRecord,
        deployment: String,
        count: u32,
    ) -> Result<crate::db::RunTasks, DbError> {
        let Some(p) = rec.deployments.iter().find(|d| d.id == deployment) else {
            return Ok(crate::db::RunTasks {
                tasks: vec![],
                failures: vec![],
            });
        };
        let td = self.db.task_definition(&p.family, Some(p.revision))?;
        let (constraints, strategies) =
            placement(rec, &td.definition).map_err(|e| DbError::InvalidArgument {
                field: "placement",
                message: e.to_string(),
            })?;
        self.placer
            .run(RunSpec {
                cluster: rec.cluster.clone(),
                family: p.family.clone(),
                revision: Some(p.revision),
                count,
                group: Some(rec.group()),
                started_by: deployment,
                constraints,
                strategies,
                overrides: None,
                client_token: None,
                fingerprint: String::new(),
                tags: Vec::new(),
                load_balancers: p.load_balancers.clone(),
                enable_execute_command: rec.enable_execute_command,
            })
            .await
    }
}
