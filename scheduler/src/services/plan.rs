//! The service controller's decisions, as pure functions of one service's
//! record, its tasks, its cluster's instances and the time. No I/O: the
//! controller (`super`) reads the store, calls [`plan`], writes the new
//! record and then places and stops what the plan says.
//!
//! The rules are ECS's:
//! - at every moment at least ceil(desired × minimumHealthyPercent / 100)
//!   tasks are healthy and at most floor(desired × maximumPercent / 100)
//!   are running or pending (tasks still stopping count as running);
//! - a task is healthy when RUNNING, past the grace period, and HEALTHY
//!   where its definition has container health checks;
//! - the circuit breaker fails a deployment after
//!   min(200, max(10, ceil(0.5 × desired))) failed launches and, with
//!   rollback, returns to the last COMPLETED deployment;
//! - tasks that keep failing to start are retried with a back-off that
//!   grows to 15 minutes (the service throttle);
//! - scale-in follows the strategy chain: `spread` keeps the balance
//!   (by default the zone with most tasks, then the instance with most),
//!   `binpack` stops tasks where the most resources are left.

use std::collections::{HashMap, HashSet};

use crate::placement::spec::{BinpackField, SpreadField, Strategy};
use crate::records::{
    DeploymentRecord, DeploymentStatus, RolloutState, SchedulingStrategy, ServiceRecord,
    ServiceStatus, TaskStatus, UnixMillis,
};
use berth_proto::ecs::{HealthStatus, StopCode};

/// The longest start back-off (ECS's service throttle: 15 minutes).
pub const MAX_THROTTLE_MS: i64 = 15 * 60 * 1000;
/// The stoppedReason of a task replaced because its health checks failed.
pub const HEALTH_CHECK_FAILED: &str = "Task failed container health checks";
/// The start of the stoppedReason of a task replaced because a target
/// group's health checks failed (ECS's words; the group's ARN follows in
/// parentheses).
pub const ELB_HEALTH_CHECK_FAILED: &str = "Task failed ELB health checks in";

/// Whether a stoppedReason says the controller replaced the task for its
/// health (a failure, for the circuit breaker).
pub fn failed_health(stopped_reason: &str) -> bool {
    stopped_reason == HEALTH_CHECK_FAILED || stopped_reason.starts_with(ELB_HEALTH_CHECK_FAILED)
}
/// Replaced deployments kept (INACTIVE) for DescribeServices.
pub const MAX_INACTIVE_DEPLOYMENTS: usize = 3;
/// Consecutive failed launches before the throttle starts.
pub const THROTTLE_AFTER: u32 = 5;

/// Where an instance stands for the service's tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Standing {
    /// ACTIVE with a connected (or recently connected) agent.
    #[default]
    Ok,
    /// DRAINING: its service tasks are replaced elsewhere.
    Draining,
    /// Disconnected for longer than `lostAfter`, deregistered or gone: its
    /// tasks are replaced and given desired STOPPED.
    Lost,
}

/// What the plan needs of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFacts {
    pub standing: Standing,
    /// Its attributes (the agent's and the activation's), sorted by name.
    pub attributes: Vec<(String, String)>,
    /// CPU units and memory MiB not reserved (binpack's scale-in).
    pub remaining_cpu: i64,
    pub remaining_memory: i64,
}

impl InstanceFacts {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a task's load-balancer targets stand, all of them together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TargetsHealth {
    /// It has no targets (its service has no load balancers).
    #[default]
    None,
    /// Some target has not reached a health-check threshold yet.
    Initial,
    /// Every target is healthy.
    Healthy,
    /// This target group's health checks failed.
    Unhealthy(String),
}

/// What the plan needs of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFacts {
    pub id: String,
    pub instance_id: String,
    /// `startedBy`: the deployment id.
    pub deployment: String,
    pub desired_running: bool,
    pub last_status: TaskStatus,
    /// ECS's healthStatus; `None` when nothing reported one.
    pub health: Option<HealthStatus>,
    pub created_at: UnixMillis,
    pub started_at: Option<UnixMillis>,
    pub stopped_at: Option<UnixMillis>,
    /// Why it stopped (once STOPPED): `ServiceSchedulerInitiated` and
    /// `UserInitiated` were asked for; anything else is a failure.
    pub stop_code: Option<StopCode>,
    /// Stopped by the controller because its health checks failed (a
    /// failure too, as in ECS's circuit breaker).
    pub failed_health: bool,
    /// Its targets' health, as its agent reported it.
    pub targets: TargetsHealth,
}

impl TaskFacts {
    /// Stopped without anyone asking: a failed launch or an essential
    /// container's exit.
    pub fn failed(&self) -> bool {
        self.last_status == TaskStatus::Stopped
            && (self.failed_health
                || !matches!(
                    self.stop_code,
                    Some(StopCode::ServiceSchedulerInitiated | StopCode::UserInitiated)
                ))
    }
}

/// The inputs of one evaluation.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub service: &'a ServiceRecord,
    pub tasks: &'a [TaskFacts],
    pub instances: &'a HashMap<String, InstanceFacts>,
    /// Deployments whose task definition has container health checks.
    pub health_checked: &'a HashSet<String>,
    pub now: UnixMillis,
    /// The first throttle delay; it doubles per further failure.
    pub throttle_base_ms: i64,
    /// DAEMON: the instances that should run the daemon (ACTIVE, agent
    /// connected, meeting the constraints).
    pub eligible: &'a HashSet<String>,
    /// DAEMON: instances that still hold REPLICA service tasks; a DRAINING
    /// one keeps its daemon until they are gone (daemons stop last).
    pub busy: &'a HashSet<String>,
}

/// A task to stop and why (its stoppedReason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub task_id: String,
    pub reason: String,
}

/// What one evaluation decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The service as it should be stored (deployments, flags, events of
    /// state changes).
    pub record: ServiceRecord,
    /// Tasks of the PRIMARY deployment to place.
    pub start: u32,
    pub stops: Vec<Stop>,
    /// DAEMON: instances to start one task of the PRIMARY on.
    pub start_on: Vec<String>,
}

/// Counts for DescribeServices and progress: per deployment id,
/// (running, pending).
pub fn deployment_counts(tasks: &[TaskFacts]) -> HashMap<String, (u32, u32)> {
    let mut out: HashMap<String, (u32, u32)> = HashMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.desired_running && t.last_status != TaskStatus::Stopped)
    {
        let e = out.entry(t.deployment.clone()).or_default();
        if t.last_status == TaskStatus::Running {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    out
}

/// ceil(desired × min% / 100).
pub fn min_healthy(desired: u32, percent: u32) -> u32 {
    ((u64::from(desired) * u64::from(percent)).div_ceil(100)) as u32
}

/// floor(desired × max% / 100).
pub fn max_running(desired: u32, percent: u32) -> u32 {
    ((u64::from(desired) * u64::from(percent)) / 100) as u32
}

/// The circuit breaker's failure threshold: min(200, max(10, ceil(0.5 × desired))).
pub fn failure_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(10, 200)
}

/// The throttle delay after `consecutive` failed launches (0 below
/// [`THROTTLE_AFTER`]).
pub fn throttle_delay(consecutive: u32, base_ms: i64) -> i64 {
    if consecutive < THROTTLE_AFTER {
        return 0;
    }
    let doublings = (consecutive - THROTTLE_AFTER).min(40);
    base_ms
        .saturating_mul(1i64 << doublings)
        .min(MAX_THROTTLE_MS)
}

/// A new deployment id: `ecs-svc/` and 19 digits, as ECS.
pub fn new_deployment_id() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random_range(1_000_000_000_000_000_000..10_000_000_000_000_000_000);
    format!("ecs-svc/{n}")
}

/// A new event id.
pub fn new_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn event(rec: &mut ServiceRecord, now: UnixMillis, message: String) {
    rec.push_event(new_event_id(), now, message);
}

/// A PRIMARY, IN_PROGRESS deployment of `family:revision`.
pub fn new_deployment(family: &str, revision: u32, now: UnixMillis) -> DeploymentRecord {
    DeploymentRecord {
        id: new_deployment_id(),
        status: DeploymentStatus::Primary,
        family: family.to_owned(),
        revision,
        rollout_state: RolloutState::InProgress,
        rollout_state_reason: "ECS deployment in progress.".to_owned(),
        failed_tasks: 0,
        pruned_failures: 0,
        last_pruned_failure_at: None,
        created_at: now,
        updated_at: now,
        load_balancers: Vec::new(),
    }
}

/// Makes `dep` the PRIMARY deployment of `rec`; the PRIMARY before becomes
/// ACTIVE (its tasks are replaced). A new deployment registers its tasks
/// in the service's `loadBalancers` as they are now; one rolled back to
/// keeps its own.
pub fn promote(rec: &mut ServiceRecord, mut dep: DeploymentRecord) {
    if !rec.deployments.iter().any(|d| d.id == dep.id) {
        dep.load_balancers = rec.load_balancers.clone();
    }
    for d in &mut rec.deployments {
        if d.status == DeploymentStatus::Primary {
            d.status = DeploymentStatus::Active;
        }
    }
    rec.deployments.retain(|d| d.id != dep.id);
    // A deployment whose tasks are all gone is INACTIVE from the next
    // evaluation on; PRIMARY first, then ACTIVE, then INACTIVE.
    rec.deployments.insert(0, dep);
    rec.steady = false;
    rec.throttled_until = None;
    rec.throttle_failures = 0;
}

/// Orders `candidates` for scale-in by ECS's rules, following the
/// service's strategy chain (none, or only `random`: ECS's default
/// spread over `ecs.availability-zone`, then over instances):
/// `spread` stops a task in the bucket (zone, attribute value, instance)
/// with the most of the service's tasks, keeping the balance; `binpack`
/// stops a task on the instance with the most of the resource left;
/// ties go to the newest task. `others` are the service's other tasks that
/// still run (they count towards the buckets). Only the first `limit` are
/// ordered; when every candidate goes, none needs ordering.
pub fn scale_in_order<'a>(
    candidates: &[&'a TaskFacts],
    others: &[&TaskFacts],
    instances: &HashMap<String, InstanceFacts>,
    strategies: &[Strategy],
    limit: usize,
) -> Vec<&'a TaskFacts> {
    if limit >= candidates.len() {
        return candidates.to_vec();
    }
    let chain: Vec<Strategy> = if strategies.iter().all(|s| *s == Strategy::Random) {
        super::default_strategies()
    } else {
        strategies.to_vec()
    };
    let facts = |t: &TaskFacts| instances.get(&t.instance_id);
    let bucket = |s: &Strategy, t: &TaskFacts| -> Option<String> {
        match s {
            Strategy::Spread(SpreadField::Instance) => Some(t.instance_id.clone()),
            Strategy::Spread(SpreadField::Attribute(a)) => Some(
                facts(t)
                    .and_then(|i| i.attribute(a))
                    .unwrap_or_default()
                    .to_owned(),
            ),
            _ => None,
        }
    };
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); chain.len()];
    for t in candidates.iter().copied().chain(others.iter().copied()) {
        for (i, s) in chain.iter().enumerate() {
            if let Some(b) = bucket(s, t) {
                *counts[i].entry(b).or_default() += 1;
            }
        }
    }
    let key = |counts: &[HashMap<String, i64>], t: &TaskFacts| -> Vec<i64> {
        chain
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Strategy::Spread(_) => bucket(s, t)
                    .and_then(|b| counts[i].get(&b).copied())
                    .unwrap_or(0),
                Strategy::Binpack(BinpackField::Cpu) => {
                    facts(t).map(|f| f.remaining_cpu).unwrap_or(0)
                }
                Strategy::Binpack(BinpackField::Memory) => {
                    facts(t).map(|f| f.remaining_memory).unwrap_or(0)
                }
                Strategy::Random => 0,
            })
            .chain([t.created_at])
            .collect()
    };
    let mut left: Vec<&'a TaskFacts> = candidates.to_vec();
    let mut out = Vec::with_capacity(limit);
    while !left.is_empty() && out.len() < limit {
        let best = left
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| {
                key(&counts, a)
                    .cmp(&key(&counts, b))
                    .then_with(|| b.id.cmp(&a.id))
            })
            .map(|(i, _)| i)
            .unwrap_or(0);
        let t = left.swap_remove(best);
        for (i, s) in chain.iter().enumerate() {
            if let Some(n) = bucket(s, t).and_then(|b| counts[i].get_mut(&b)) {
                *n -= 1;
            }
        }
        out.push(t);
    }
    out
}

/// The service's placement strategies (checked when stored; one that
/// does not parse any more is left out).
fn service_strategies(rec: &ServiceRecord) -> Vec<Strategy> {
    rec.strategies
        .iter()
        .filter_map(|s| Strategy::parse("placementStrategy", &s.kind, &s.value).ok())
        .collect()
}

struct Classified<'a> {
    /// Not STOPPED and not on a lost instance: holds a slot against
    /// maximumPercent.
    occupying: Vec<&'a TaskFacts>,
    healthy: HashSet<&'a str>,
}

fn standing(inputs: &Inputs<'_>, t: &TaskFacts) -> Standing {
    inputs
        .instances
        .get(&t.instance_id)
        .map(|i| i.standing)
        .unwrap_or(Standing::Lost)
}

/// Healthy: RUNNING and wanted, on an instance that is not lost, HEALTHY
/// where its definition has container health checks, and, behind load
/// balancers, every target healthy. Without targets the grace period must
/// also have passed; a healthy target is proof enough (ECS counts a task
/// behind a load balancer as soon as its targets pass).
fn is_healthy(inputs: &Inputs<'_>, t: &TaskFacts) -> bool {
    let grace_ms = i64::from(inputs.service.health_check_grace_period_secs) * 1000;
    let containers_ok =
        !inputs.health_checked.contains(&t.deployment) || t.health == Some(HealthStatus::Healthy);
    let base = t.desired_running
        && t.last_status == TaskStatus::Running
        && standing(inputs, t) != Standing::Lost
        && containers_ok;
    match &t.targets {
        TargetsHealth::None => base && t.started_at.is_some_and(|s| s + grace_ms <= inputs.now),
        TargetsHealth::Healthy => base,
        TargetsHealth::Initial | TargetsHealth::Unhealthy(_) => false,
    }
}

/// Why a RUNNING task past its grace period must be replaced: its
/// container health checks say UNHEALTHY, or a target group's checks
/// failed (ECS ignores both during the grace period).
fn unhealthy_reason(inputs: &Inputs<'_>, t: &TaskFacts) -> Option<String> {
    let grace_ms = i64::from(inputs.service.health_check_grace_period_secs) * 1000;
    if !(t.desired_running
        && t.last_status == TaskStatus::Running
        && t.started_at.is_some_and(|s| s + grace_ms <= inputs.now))
    {
        return None;
    }
    if inputs.health_checked.contains(&t.deployment) && t.health == Some(HealthStatus::Unhealthy) {
        return Some(HEALTH_CHECK_FAILED.to_owned());
    }
    match &t.targets {
        TargetsHealth::Unhealthy(group) => {
            Some(format!("{ELB_HEALTH_CHECK_FAILED} (target-group {group})"))
        }
        _ => None,
    }
}

fn classify<'a>(inputs: &Inputs<'a>) -> Classified<'a> {
    let mut c = Classified {
        occupying: Vec::new(),
        healthy: HashSet::new(),
    };
    for t in inputs.tasks {
        if t.last_status == TaskStatus::Stopped {
            continue;
        }
        if standing(inputs, t) != Standing::Lost {
            c.occupying.push(t);
        }
        if is_healthy(inputs, t) {
            c.healthy.insert(t.id.as_str());
        }
    }
    c
}

/// Failed launches of `deployment`: tasks that stopped without the
/// scheduler or a user asking.
fn failures<'a>(tasks: &'a [TaskFacts], deployment: &str) -> Vec<&'a TaskFacts> {
    tasks
        .iter()
        .filter(|t| t.deployment == deployment && t.failed())
        .collect()
}

/// Counts each deployment's failed launches and trips the circuit breaker
/// of an IN_PROGRESS PRIMARY: FAILED and, with rollback, the last
/// COMPLETED deployment becomes PRIMARY again.
fn breaker(rec: &mut ServiceRecord, inputs: &Inputs<'_>, desired: u32) {
    let now = inputs.now;
    let name = rec.name.clone();
    let cfg = rec.deployment_config;
    // Failed launches per deployment, and the circuit breaker.
    for d in &mut rec.deployments {
        // Failures retention removed still count (`db::retention`).
        let n = failures(inputs.tasks, &d.id).len() as u32 + d.pruned_failures;
        if n != d.failed_tasks {
            d.failed_tasks = n;
            d.updated_at = now;
        }
    }
    if let Some(pi) = rec
        .deployments
        .iter()
        .position(|d| d.status == DeploymentStatus::Primary)
    {
        let p = &rec.deployments[pi];
        if p.rollout_state == RolloutState::InProgress
            && cfg.circuit_breaker.enable
            && p.failed_tasks >= failure_threshold(desired)
        {
            let failed_id = p.id.clone();
            {
                let p = &mut rec.deployments[pi];
                p.rollout_state = RolloutState::Failed;
                p.rollout_state_reason = format!(
                    "ECS deployment circuit breaker: tasks failed to start. ({} failed tasks)",
                    p.failed_tasks
                );
                p.updated_at = now;
            }
            event(
                rec,
                now,
                format!(
                    "(service {name}) (deployment {failed_id}) deployment failed: tasks failed to start."
                ),
            );
            if cfg.circuit_breaker.rollback {
                let back = rec
                    .deployments
                    .iter()
                    .find(|d| {
                        d.status != DeploymentStatus::Primary
                            && d.rollout_state == RolloutState::Completed
                    })
                    .cloned()
                    .or_else(|| {
                        rec.last_completed
                            .as_ref()
                            .map(|(f, r)| new_deployment(f, *r, now))
                    });
                if let Some(mut back) = back {
                    back.status = DeploymentStatus::Primary;
                    back.rollout_state = RolloutState::InProgress;
                    back.rollout_state_reason = format!(
                        "ECS deployment circuit breaker: rolling back to deploymentId {}.",
                        back.id
                    );
                    back.updated_at = now;
                    let back_id = back.id.clone();
                    promote(rec, back);
                    event(
                        rec,
                        now,
                        format!("(service {name}) rolling back to deployment {back_id}."),
                    );
                }
            }
        }
    }
}

/// The start-failure throttle: true while starts must wait.
fn throttle(
    rec: &mut ServiceRecord,
    inputs: &Inputs<'_>,
    primary: Option<&DeploymentRecord>,
) -> bool {
    let now = inputs.now;
    let name = rec.name.clone();
    // The start-failure throttle.
    let mut throttled = false;
    if let Some(p) = primary {
        let failed = failures(inputs.tasks, &p.id);
        let last_success = inputs
            .tasks
            .iter()
            .filter(|t| t.deployment == p.id && t.last_status == TaskStatus::Running)
            .filter_map(|t| t.started_at)
            .max()
            .unwrap_or(i64::MIN);
        let mut recent: Vec<UnixMillis> = failed
            .iter()
            .filter_map(|t| t.stopped_at)
            .filter(|s| *s > last_success)
            .collect();
        let mut consecutive = recent.len() as u32;
        // Failures retention removed count while the latest of them is
        // after the last success (all of them: their times are gone).
        if let Some(at) = p.last_pruned_failure_at.filter(|at| *at > last_success) {
            consecutive += p.pruned_failures;
            recent.push(at);
        }
        let delay = throttle_delay(consecutive, inputs.throttle_base_ms);
        let until = recent.iter().max().map(|m| m + delay);
        match until {
            Some(until) if delay > 0 && now < until => {
                throttled = true;
                if rec.throttled_until.is_none() {
                    event(
                        rec,
                        now,
                        format!(
                            "(service {name}) is unable to consistently start tasks successfully."
                        ),
                    );
                }
                rec.throttled_until = Some(until);
                rec.throttle_failures = consecutive;
            }
            _ if consecutive < THROTTLE_AFTER => {
                rec.throttled_until = None;
                rec.throttle_failures = consecutive;
            }
            _ => {}
        }
    }

    throttled
}

/// Marks replaced deployments without tasks INACTIVE, keeping the last few.
fn retire(rec: &mut ServiceRecord, inputs: &Inputs<'_>) {
    let now = inputs.now;
    // Old deployments with nothing left are done (INACTIVE: dropped).
    let alive_of = |id: &str| {
        inputs.tasks.iter().any(|t| {
            t.deployment == id
                && t.last_status != TaskStatus::Stopped
                && (t.desired_running || standing(inputs, t) != Standing::Lost)
        })
    };
    for d in &mut rec.deployments {
        if d.status == DeploymentStatus::Active && !alive_of(&d.id) {
            d.status = DeploymentStatus::Inactive;
            d.updated_at = now;
        }
    }
    // INACTIVE ones stay visible (a FAILED rollout, say), the last few only.
    let mut inactive = 0;
    rec.deployments.retain(|d| {
        if d.status != DeploymentStatus::Inactive {
            return true;
        }
        inactive += 1;
        inactive <= MAX_INACTIVE_DEPLOYMENTS
    });
}

/// A settled service: the PRIMARY's rollout COMPLETED and, on arrival,
/// the steady-state event.
fn settle(rec: &mut ServiceRecord, settled: bool, now: UnixMillis) {
    let name = rec.name.clone();
    if settled {
        if let Some(p) = rec.deployments.first_mut() {
            if p.rollout_state == RolloutState::InProgress {
                p.rollout_state = RolloutState::Completed;
                p.rollout_state_reason = format!("ECS deployment {} completed.", p.id);
                p.updated_at = now;
                let id = p.id.clone();
                rec.last_completed = Some((p.family.clone(), p.revision));
                event(
                    rec,
                    now,
                    format!("(service {name}) (deployment {id}) deployment completed."),
                );
            }
        }
        if !rec.steady && rec.status == ServiceStatus::Active {
            event(
                rec,
                now,
                format!("(service {name}) has reached a steady state."),
            );
        }
    }
}

/// Decides one evaluation of a service.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let mut plan = match inputs.service.scheduling {
        SchedulingStrategy::Replica => plan_replica(inputs),
        SchedulingStrategy::Daemon => plan_daemon(inputs),
    };
    super::history::record(&mut plan.record, inputs.now);
    plan
}

/// Decides one evaluation of a REPLICA service.
fn plan_replica(inputs: &Inputs<'_>) -> Plan {
    let mut rec = inputs.service.clone();
    let now = inputs.now;
    let desired = if rec.status == ServiceStatus::Active {
        rec.desired_count
    } else {
        0
    };
    let cfg = rec.deployment_config;
    let min_h = min_healthy(desired, cfg.minimum_healthy_percent);
    let max_r = max_running(desired, cfg.maximum_percent);

    breaker(&mut rec, inputs, desired);
    let primary = rec.primary().cloned();
    let primary_id = primary.as_ref().map(|d| d.id.clone()).unwrap_or_default();
    let c = classify(inputs);
    let is_primary = |t: &TaskFacts| t.deployment == primary_id;
    let scaling = format!("Scaling activity initiated by (deployment {primary_id})");

    let mut stops: Vec<Stop> = Vec::new();
    let mut stopping: HashSet<&str> = HashSet::new();
    let stop = |t: &TaskFacts, reason: String, stops: &mut Vec<Stop>| {
        stops.push(Stop {
            task_id: t.id.clone(),
            reason,
        });
    };
    let live: Vec<&TaskFacts> = inputs
        .tasks
        .iter()
        .filter(|t| t.desired_running && t.last_status != TaskStatus::Stopped)
        .collect();

    // Tasks on lost instances: replaced, and stopped for when they return.
    for t in live
        .iter()
        .filter(|t| standing(inputs, t) == Standing::Lost)
    {
        stopping.insert(t.id.as_str());
        stop(
            t,
            format!(
                "Task stopped because its container instance {} was lost (agent disconnected)",
                t.instance_id
            ),
            &mut stops,
        );
    }
    // Primary tasks failing their health checks: replaced at once (they
    // do not count as healthy anyway).
    let failing: Vec<(&TaskFacts, String)> = live
        .iter()
        .filter(|t| is_primary(t) && !stopping.contains(t.id.as_str()))
        .filter_map(|t| unhealthy_reason(inputs, t).map(|r| (*t, r)))
        .collect();
    for (t, reason) in failing {
        stopping.insert(t.id.as_str());
        stop(t, reason, &mut stops);
    }
    let serving = |t: &&&TaskFacts| !stopping.contains(t.id.as_str());
    // The primary's tasks that count towards the desired count.
    let primary_live: Vec<&TaskFacts> = live
        .iter()
        .filter(serving)
        .filter(|t| is_primary(t) && standing(inputs, t) == Standing::Ok)
        .copied()
        .collect();
    // Tasks to replace: other deployments', and the primary's on DRAINING
    // instances.
    let replaceable: Vec<&TaskFacts> = live
        .iter()
        .filter(serving)
        .filter(|t| !is_primary(t) || standing(inputs, t) == Standing::Draining)
        .copied()
        .collect();
    let healthy_count = c.healthy.len() as u32;
    let mut budget = healthy_count.saturating_sub(min_h);
    // Not healthy: stopping them costs no healthy task.
    let unhealthy_replaceable: Vec<&TaskFacts> = replaceable
        .iter()
        .filter(|t| !c.healthy.contains(t.id.as_str()))
        .copied()
        .collect();
    for t in unhealthy_replaceable {
        stopping.insert(t.id.as_str());
        stop(t, scaling.clone(), &mut stops);
    }
    let excess = (primary_live.len() as u32).saturating_sub(desired) as usize;
    let (excess_unhealthy, excess_healthy): (Vec<&TaskFacts>, Vec<&TaskFacts>) = primary_live
        .iter()
        .partition(|t| !c.healthy.contains(t.id.as_str()));
    let mut excess_left = excess;
    // Pending ones first, newest first.
    let mut eu = excess_unhealthy.clone();
    eu.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    for t in eu.into_iter().take(excess_left) {
        stopping.insert(t.id.as_str());
        stop(t, scaling.clone(), &mut stops);
        excess_left -= 1;
    }
    // Healthy ones within the budget, by the scale-in rule: replaced
    // tasks first, then the primary's excess.
    let healthy_replaceable: Vec<&TaskFacts> = replaceable
        .iter()
        .filter(|t| c.healthy.contains(t.id.as_str()))
        .copied()
        .collect();
    let strategies = service_strategies(&rec);
    let order = scale_in_order(
        &healthy_replaceable,
        &[],
        inputs.instances,
        &strategies,
        budget as usize,
    );
    for t in order {
        if budget == 0 {
            break;
        }
        budget -= 1;
        stopping.insert(t.id.as_str());
        stop(t, scaling.clone(), &mut stops);
    }
    if excess_left > 0 {
        let rest: Vec<&TaskFacts> = c
            .occupying
            .iter()
            .filter(|t| !stopping.contains(t.id.as_str()))
            .copied()
            .collect();
        let rest_others: Vec<&TaskFacts> = rest
            .iter()
            .filter(|t| !excess_healthy.iter().any(|e| e.id == t.id))
            .copied()
            .collect();
        let limit = excess_left.min(budget as usize);
        for t in scale_in_order(
            &excess_healthy,
            &rest_others,
            inputs.instances,
            &strategies,
            limit,
        ) {
            if budget == 0 || excess_left == 0 {
                break;
            }
            budget -= 1;
            excess_left -= 1;
            stopping.insert(t.id.as_str());
            stop(t, scaling.clone(), &mut stops);
        }
    }
    let primary_running = primary_live
        .iter()
        .filter(|t| !stopping.contains(t.id.as_str()))
        .count() as u32;

    let throttled = throttle(&mut rec, inputs, primary.as_ref());

    // Starts: up to the desired count, within maximumPercent.
    let occupying_after = c.occupying.len() as u32;
    let can_start = rec.status == ServiceStatus::Active
        && !throttled
        && primary
            .as_ref()
            .is_some_and(|p| p.rollout_state != RolloutState::Failed);
    let start = if can_start {
        desired
            .saturating_sub(primary_running)
            .min(max_r.saturating_sub(occupying_after))
    } else {
        0
    };

    retire(&mut rec, inputs);

    // Completion and steady state.
    let primary_healthy = primary_live
        .iter()
        .filter(|t| c.healthy.contains(t.id.as_str()) && !stopping.contains(t.id.as_str()))
        .count() as u32;
    let only_primary = c
        .occupying
        .iter()
        .all(|t| is_primary(t) && t.desired_running && standing(inputs, t) == Standing::Ok);
    let settled = start == 0
        && stops.is_empty()
        && primary_running == desired
        && primary_healthy == desired
        && only_primary
        && rec
            .deployments
            .iter()
            .all(|d| d.status != DeploymentStatus::Active);
    settle(&mut rec, settled, now);
    rec.steady = settled;
    if rec.status == ServiceStatus::Draining && c.occupying.is_empty() && stops.is_empty() {
        rec.status = ServiceStatus::Inactive;
        rec.desired_count = 0;
    }
    Plan {
        record: rec,
        start,
        stops,
        start_on: Vec::new(),
    }
}

/// Decides one evaluation of a DAEMON service: one task of the PRIMARY on
/// every eligible instance, none elsewhere. Per instance at most one task
/// runs (maximumPercent 100): an old task stops (within
/// minimumHealthyPercent, 0 by default) before its replacement starts.
fn plan_daemon(inputs: &Inputs<'_>) -> Plan {
    let mut rec = inputs.service.clone();
    let now = inputs.now;
    let active = rec.status == ServiceStatus::Active;
    let desired = if active {
        inputs.eligible.len() as u32
    } else {
        0
    };
    rec.desired_count = desired;
    let min_h = min_healthy(desired, rec.deployment_config.minimum_healthy_percent);
    breaker(&mut rec, inputs, desired);
    let primary = rec.primary().cloned();
    let primary_id = primary.as_ref().map(|d| d.id.clone()).unwrap_or_default();
    let c = classify(inputs);
    let scaling = format!("Scaling activity initiated by (deployment {primary_id})");
    let mut stops: Vec<Stop> = Vec::new();
    let mut stopping: HashSet<String> = HashSet::new();
    fn add(stops: &mut Vec<Stop>, stopping: &mut HashSet<String>, t: &TaskFacts, reason: String) {
        if stopping.insert(t.id.clone()) {
            stops.push(Stop {
                task_id: t.id.clone(),
                reason,
            });
        }
    }
    let live: Vec<&TaskFacts> = inputs
        .tasks
        .iter()
        .filter(|t| t.desired_running && t.last_status != TaskStatus::Stopped)
        .collect();
    let mut budget = (c.healthy.len() as u32).saturating_sub(min_h);
    for t in &live {
        let st = standing(inputs, t);
        if st == Standing::Lost {
            add(
                &mut stops,
                &mut stopping,
                t,
                format!(
                    "Task stopped because its container instance {} was lost (agent disconnected)",
                    t.instance_id
                ),
            );
        } else if !active || !inputs.eligible.contains(&t.instance_id) {
            // Daemons stop last on a draining instance.
            if active && st == Standing::Draining && inputs.busy.contains(&t.instance_id) {
                continue;
            }
            add(&mut stops, &mut stopping, t, scaling.clone());
        } else if let Some(reason) = (t.deployment == primary_id)
            .then(|| unhealthy_reason(inputs, t))
            .flatten()
        {
            add(&mut stops, &mut stopping, t, reason);
        }
    }
    let throttled = throttle(&mut rec, inputs, primary.as_ref());
    let can_start = active
        && !throttled
        && primary
            .as_ref()
            .is_some_and(|p| p.rollout_state != RolloutState::Failed);
    let mut start_on = Vec::new();
    let mut eligible: Vec<&String> = inputs.eligible.iter().collect();
    eligible.sort();
    let mut settled_everywhere = active;
    for inst in eligible {
        let here: Vec<&TaskFacts> = c
            .occupying
            .iter()
            .filter(|t| &t.instance_id == inst)
            .copied()
            .collect();
        let mut keep: Vec<&TaskFacts> = here
            .iter()
            .filter(|t| {
                t.desired_running && t.deployment == primary_id && !stopping.contains(&t.id)
            })
            .copied()
            .collect();
        keep.sort_by_key(|t| {
            (
                !c.healthy.contains(t.id.as_str()),
                t.created_at,
                t.id.clone(),
            )
        });
        for extra in keep.iter().skip(1) {
            add(&mut stops, &mut stopping, extra, scaling.clone());
        }
        for old in here
            .iter()
            .filter(|t| t.desired_running && t.deployment != primary_id)
        {
            if !c.healthy.contains(old.id.as_str()) {
                add(&mut stops, &mut stopping, old, scaling.clone());
            } else if budget > 0 {
                budget -= 1;
                add(&mut stops, &mut stopping, old, scaling.clone());
            }
        }
        let healthy_here = keep
            .first()
            .is_some_and(|t| c.healthy.contains(t.id.as_str()));
        if here.is_empty() && can_start {
            start_on.push(inst.clone());
        }
        if !(here.len() == 1 && healthy_here) {
            settled_everywhere = false;
        }
    }
    retire(&mut rec, inputs);
    let only_primary = c.occupying.iter().all(|t| {
        t.deployment == primary_id && t.desired_running && inputs.eligible.contains(&t.instance_id)
    });
    let settled = settled_everywhere
        && stops.is_empty()
        && start_on.is_empty()
        && only_primary
        && rec
            .deployments
            .iter()
            .all(|d| d.status != DeploymentStatus::Active);
    settle(&mut rec, settled, now);
    rec.steady = settled;
    if !active && c.occupying.is_empty() && stops.is_empty() {
        rec.status = ServiceStatus::Inactive;
        rec.desired_count = 0;
    }
    Plan {
        record: rec,
        start: 0,
        stops,
        start_on,
    }
}

#[cfg(test)]
mod tests;
