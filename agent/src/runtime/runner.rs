//! One task's life on this host, as a state machine driven by one
//! `select!`: pull → prepare → start the containers as their `dependsOn`
//! allow → watch exits, health checks and restarts → stop (dependents
//! first) → teardown → (after the cleanup wait) remove. Every transition is
//! published through the [`Reporter`] in ECS's names. The decisions
//! (dependency gates, stop order, health, restarts) are the pure functions
//! of [`super::lifecycle`]; each container's state is a [`Slot`].
//!
//! When the agent shuts down the runner just stops supervising: containers
//! keep running and the next agent re-adopts them ([`adopt`]). Only the
//! scheduler's desired status, an essential container's exit (that its
//! restart policy does not restart) or a dependency that cannot be met
//! stops a task. An UNHEALTHY container does not stop a task by itself
//! (ECS: a standalone task lives on; a service replaces it).
//!
//! While the task is RUNNING (and desired RUNNING) the runner also probes
//! its target-group targets ([`super::targets`]), one loop per check, and
//! keeps each check's latest verdict in the report. The loops stop when the
//! task stops or the scheduler changes the checks (which starts new ones
//! from scratch), and the report then carries no target health.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_proto::taskdef::NetworkMode;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lifecycle::{self, CheckResult, Gate, HealthTracker, Lifecycle, Phase, View};
use super::ops::{ExitInfo, NetworkInfo, ObservedState, OpsError, TaskOps};
use super::plan::TaskPlan;
use super::report::{
    ContainerStatus, HealthReport, Reporter, StopCode, TargetHealth, TaskReport, TaskStatus,
};
use super::targets::{self, Verdict};
use crate::desired::TargetCheck;

/// ECS's reason when the kernel's OOM killer ended a container.
pub const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";
/// How often a failed teardown is retried before the task is reported
/// STOPPED anyway (with the failure logged).
const TEARDOWN_TRIES: u32 = 5;

/// What the scheduler wants of a task right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desire {
    Run,
    Stop { code: StopCode, reason: String },
}

/// What the scheduler asks of one task, as the supervisor passes it on.
#[derive(Debug)]
pub struct Orders {
    pub desire: watch::Receiver<Desire>,
    /// The task's target-group health checks (the latest desired state's).
    pub checks: watch::Receiver<Vec<TargetCheck>>,
}

/// What the runners share.
#[derive(Debug)]
pub struct RunnerCtx<O> {
    pub ops: Arc<O>,
    pub reporter: Reporter,
    /// How long a stopped task's containers, snapshots and logs are kept.
    pub cleanup_after: Duration,
}

type Exit = (usize, Result<ExitInfo, OpsError>);
/// A health check result: container index, the slot's generation when the
/// check ran, the result.
type HealthMsg = (usize, u64, CheckResult);
/// A target's new verdict: the probing round it belongs to, the check's
/// index, the verdict.
type TargetMsg = (u64, usize, Verdict);

/// The runner's inboxes from the loops it spawns.
struct Inbox {
    health: mpsc::UnboundedReceiver<HealthMsg>,
    targets: mpsc::UnboundedReceiver<TargetMsg>,
}

fn now() -> Option<SystemTime> {
    Some(SystemTime::now())
}

/// Why the task is stopping.
struct StopCause {
    code: StopCode,
    reason: String,
}

/// Where one container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Not started: waiting for its dependencies (or for its turn).
    Waiting,
    Running,
    /// Exited and not restarted.
    Exited {
        code: Option<i32>,
    },
}

/// A running health check loop; aborted when dropped.
struct Probe(tokio::task::JoinHandle<()>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One container as the runner supervises it.
struct Slot {
    state: SlotState,
    /// First start (a dependency's startTimeout counts from it).
    started_at: Option<Instant>,
    /// Latest (re)start (the restartAttemptPeriod counts from it).
    last_start: Option<Instant>,
    health: Option<HealthTracker>,
    probe: Option<Probe>,
    /// Bumped at every (re)start, so a result of an older process's check
    /// is dropped.
    generation: u64,
    restarts: u32,
}

impl Slot {
    fn new() -> Self {
        Self {
            state: SlotState::Waiting,
            started_at: None,
            last_start: None,
            health: None,
            probe: None,
            generation: 0,
            restarts: 0,
        }
    }
}

/// What starting containers needs (only a launched task has it; an adopted
/// one has every container already).
struct Starter<O: TaskOps> {
    images: Vec<O::Image>,
    prepared: O::Prepared,
}

struct Runner<O: TaskOps> {
    ctx: Arc<RunnerCtx<O>>,
    plan: TaskPlan,
    report: TaskReport,
    slots: Vec<Slot>,
    health_tx: mpsc::UnboundedSender<HealthMsg>,
    /// The task's address on the bridge (bridge and awsvpc modes), where
    /// its targets are probed.
    task_ip: Option<Ipv4Addr>,
    targets: Targets,
    target_tx: mpsc::UnboundedSender<TargetMsg>,
}

/// The target checks of a task and their probing.
#[derive(Default)]
struct Targets {
    checks: Vec<TargetCheck>,
    /// Each check's latest verdict, by index.
    verdicts: Vec<Option<TargetHealth>>,
    /// One loop per check that has an address; aborted when dropped.
    probes: Vec<Probe>,
    /// Probing started for `checks` (even if no check could be probed).
    started: bool,
    /// Bumped at every start and stop, so a stale verdict is dropped.
    round: u64,
}

impl<O: TaskOps> Runner<O> {
    fn new(ctx: Arc<RunnerCtx<O>>, plan: TaskPlan, report: TaskReport) -> (Self, Inbox) {
        let (health_tx, health) = mpsc::unbounded_channel();
        let (target_tx, targets) = mpsc::unbounded_channel();
        let slots = plan.containers.iter().map(|_| Slot::new()).collect();
        let r = Self {
            ctx,
            plan,
            report,
            slots,
            health_tx,
            task_ip: None,
            targets: Targets::default(),
            target_tx,
        };
        (r, Inbox { health, targets })
    }

    /// Starts probing the target checks once the task is RUNNING (at most
    /// once per set of checks).
    fn start_probing(&mut self) {
        if self.targets.started
            || self.report.status != TaskStatus::Running
            || self.targets.checks.is_empty()
        {
            return;
        }
        let t = &mut self.targets;
        t.started = true;
        t.round += 1;
        t.verdicts = vec![None; t.checks.len()];
        for (index, check) in t.checks.iter().enumerate() {
            let to = match targets::probe_address(
                self.plan.network_mode,
                self.task_ip,
                &self.plan.ports,
                check,
            ) {
                Ok(to) => to,
                Err(e) => {
                    tracing::warn!(task = %self.plan.arn, target_group = %check.target_group_arn,
                        container = %check.container_name, port = check.container_port, cause = %e,
                        "cannot probe the target");
                    continue;
                }
            };
            tracing::info!(task = %self.plan.arn, target_group = %check.target_group_arn,
                container = %check.container_name, to = %to, "probing target");
            let ops = self.ctx.ops.clone();
            let tx = self.target_tx.clone();
            let health = check.health.clone();
            let round = t.round;
            let handle = tokio::spawn(async move {
                let probe = || {
                    let ops = ops.clone();
                    let health = health.clone();
                    async move { ops.probe_target(to, &health).await }
                };
                targets::watch_target(&health, probe, |v| {
                    let _ = tx.send((round, index, v.clone()));
                })
                .await;
            });
            t.probes.push(Probe(handle));
        }
    }

    /// Stops probing and forgets every verdict.
    fn stop_probing(&mut self) {
        let t = &mut self.targets;
        t.probes.clear();
        t.verdicts.clear();
        t.started = false;
        t.round += 1;
        self.report.target_health.clear();
    }

    /// The scheduler's checks for the task now: a change starts over.
    fn set_checks(&mut self, checks: Vec<TargetCheck>) {
        if checks != self.targets.checks {
            tracing::info!(task = %self.plan.arn, checks = checks.len(), "target checks changed");
            self.stop_probing();
            self.targets.checks = checks;
        }
    }

    fn on_target(&mut self, (round, index, v): TargetMsg) {
        if round != self.targets.round {
            return;
        }
        let Some(check) = self.targets.checks.get(index) else {
            return;
        };
        tracing::info!(task = %self.plan.arn, target_group = %check.target_group_arn,
            container = %check.container_name, port = check.container_port,
            state = v.state.as_str(), reason = v.reason.map_or("", |r| r.as_str()),
            description = %v.description, "target health changed");
        let health = TargetHealth {
            target_group_arn: check.target_group_arn.clone(),
            container_name: check.container_name.clone(),
            container_port: check.container_port,
            state: v.state,
            reason: v.reason,
            description: v.description,
        };
        if let Some(slot) = self.targets.verdicts.get_mut(index) {
            *slot = Some(health);
        }
        self.report.target_health = self.targets.verdicts.iter().flatten().cloned().collect();
    }

    /// Publishes the report, with the containers' health and restarts and
    /// the task's health brought up to date first.
    fn publish(&mut self) {
        let wall = SystemTime::now();
        let mono = Instant::now();
        let mut healths = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            let c = &self.plan.containers[i];
            let health = slot.health.as_ref().map(|h| HealthReport {
                status: h.status,
                since: wall.checked_sub(mono.saturating_duration_since(h.since)),
                exit_code: h.last.as_ref().map(|r| r.exit_code),
                output: h
                    .last
                    .as_ref()
                    .map(|r| r.output.clone())
                    .unwrap_or_default(),
            });
            healths.push((c.essential, health.as_ref().map(|h| h.status)));
            if let Some(rep) = self.report.container_mut(&c.name) {
                if health.is_some() {
                    rep.health = health;
                }
                rep.restart_count = slot.restarts;
            }
        }
        self.report.health_status = lifecycle::task_health(&healths);
        self.ctx.reporter.publish(self.report.clone());
    }

    fn set_status(&mut self, s: TaskStatus) {
        self.report.status = s;
        self.publish();
    }

    fn wait_for(&self, index: usize) -> BoxFuture<'static, Exit> {
        let ops = self.ctx.ops.clone();
        let plan = self.plan.clone();
        let id = self.plan.containers[index].runtime_id.clone();
        async move { (index, ops.wait(&plan, &id).await) }.boxed()
    }

    /// Container `i` runs (started, restarted or adopted) as of `at`: its
    /// health checks begin anew.
    fn mark_running(&mut self, i: usize, at: Instant) {
        let spec = self.plan.containers[i].lifecycle.health_check.clone();
        let slot = &mut self.slots[i];
        slot.state = SlotState::Running;
        slot.started_at.get_or_insert(at);
        slot.last_start = Some(at);
        slot.generation += 1;
        let generation = slot.generation;
        slot.probe = None;
        if let Some(spec) = spec {
            slot.health = Some(HealthTracker::new(&spec, at));
            let ops = self.ctx.ops.clone();
            let plan = self.plan.clone();
            let tx = self.health_tx.clone();
            let handle = tokio::spawn(async move {
                let c = &plan.containers[i];
                loop {
                    // Docker (and so ECS) runs the first check one interval
                    // after the start.
                    tokio::time::sleep(spec.interval()).await;
                    let result = match ops.exec(&plan, c, &spec.argv, spec.timeout()).await {
                        Ok(out) => CheckResult {
                            exit_code: out.exit_code,
                            output: out.output,
                        },
                        Err(e) => CheckResult {
                            exit_code: -1,
                            output: e.to_string(),
                        },
                    };
                    if tx.send((i, generation, result)).is_err() {
                        return;
                    }
                }
            });
            slot.probe = Some(Probe(handle));
        }
        let name = self.plan.containers[i].name.clone();
        if let Some(c) = self.report.container_mut(&name) {
            c.status = ContainerStatus::Running;
            c.exit_code = None;
        }
    }

    fn on_health(&mut self, (i, generation, result): HealthMsg) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.generation != generation || slot.state != SlotState::Running {
            return;
        }
        let Some(h) = slot.health.as_mut() else {
            return;
        };
        let code = result.exit_code;
        if h.record(result, Instant::now()) {
            tracing::info!(task = %self.plan.arn, container = %self.plan.containers[i].name,
                health = h.status.as_str(), exit = code, "container health changed");
        }
    }

    /// Records a container's exit (for good) in the report.
    fn record_exit(&mut self, index: usize, res: &Result<ExitInfo, OpsError>) {
        let slot = &mut self.slots[index];
        slot.state = SlotState::Exited {
            code: res.as_ref().ok().map(|e| e.code),
        };
        slot.probe = None;
        let name = self.plan.containers[index].name.clone();
        if let Some(c) = self.report.container_mut(&name) {
            c.status = ContainerStatus::Stopped;
            match res {
                Ok(e) => {
                    c.exit_code = Some(e.code);
                    if e.oom_killed {
                        c.reason = OOM_REASON.to_owned();
                    }
                }
                Err(err) => c.reason = format!("cannot learn how the container ended: {err}"),
            }
        }
    }

    /// A container exited: restarted by its policy, or recorded. Returns
    /// why the task must stop, if it must.
    async fn on_exit(
        &mut self,
        index: usize,
        res: Result<ExitInfo, OpsError>,
        stopping: bool,
        waits: &mut FuturesUnordered<BoxFuture<'static, Exit>>,
    ) -> Option<StopCause> {
        let c = self.plan.containers[index].clone();
        let at = Instant::now();
        let code = res.as_ref().ok().map(|e| e.code);
        tracing::info!(task = %self.plan.arn, container = %c.name, exit = ?code, essential = c.essential, "container exited");
        if let Some(policy) = c.lifecycle.restart_policy.as_ref() {
            let last = self.slots[index].last_start.unwrap_or(at);
            match lifecycle::should_restart(Some(policy), code, last, at, stopping) {
                Ok(()) => match self.ctx.ops.restart(&self.plan, &c).await {
                    Ok(pid) => {
                        self.slots[index].restarts += 1;
                        tracing::info!(task = %self.plan.arn, container = %c.name, pid,
                            restarts = self.slots[index].restarts, "container restarted by its restart policy");
                        self.mark_running(index, at);
                        waits.push(self.wait_for(index));
                        return None;
                    }
                    Err(e) => {
                        tracing::warn!(task = %self.plan.arn, container = %c.name, cause = %e, "restarting the container failed");
                        self.record_exit(index, &res);
                        if let Some(rep) = self.report.container_mut(&c.name) {
                            rep.reason = format!("restart failed: {e}");
                        }
                        return self.after_exit(index);
                    }
                },
                Err(why) => {
                    tracing::info!(task = %self.plan.arn, container = %c.name, why = %why, "container not restarted");
                }
            }
        }
        self.record_exit(index, &res);
        self.after_exit(index)
    }

    fn after_exit(&self, index: usize) -> Option<StopCause> {
        self.plan.containers[index].essential.then(|| StopCause {
            code: StopCode::EssentialContainerExited,
            reason: "Essential container in task exited".to_owned(),
        })
    }

    fn views(&self) -> Vec<View<'_>> {
        self.plan
            .containers
            .iter()
            .zip(&self.slots)
            .map(|(c, s)| View {
                name: &c.name,
                lifecycle: &c.lifecycle,
                phase: match s.state {
                    SlotState::Waiting => Phase::Waiting,
                    SlotState::Running => Phase::Running {
                        since: s.started_at.unwrap_or_else(Instant::now),
                    },
                    SlotState::Exited { code } => Phase::Exited { code },
                },
                started_at: s.started_at,
                health: s.health.as_ref().map(|h| h.status),
            })
            .collect()
    }

    /// Starts every waiting container whose dependencies allow it, in
    /// definition order, until none more can start. Returns when to look
    /// again at the latest (a startTimeout ending), or why the task cannot
    /// start.
    async fn start_ready(
        &mut self,
        starter: Option<&Starter<O>>,
        waits: &mut FuturesUnordered<BoxFuture<'static, Exit>>,
    ) -> Result<Option<Instant>, StopCause> {
        let Some(starter) = starter else {
            return Ok(None);
        };
        loop {
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            let mut ready = None;
            for i in 0..self.slots.len() {
                if self.slots[i].state != SlotState::Waiting {
                    continue;
                }
                match lifecycle::gate(&self.views(), i, now) {
                    Gate::Open => {
                        ready = Some(i);
                        break;
                    }
                    Gate::Wait { until } => {
                        if let Some(u) = until {
                            next = Some(next.map_or(u, |n| n.min(u)));
                        }
                    }
                    Gate::Never(reason) => {
                        tracing::warn!(task = %self.plan.arn, reason = %reason, "a dependency cannot be met");
                        let name = self.plan.containers[i].name.clone();
                        if let Some(c) = self.report.container_mut(&name) {
                            c.reason = reason.clone();
                        }
                        return Err(StopCause {
                            code: StopCode::TaskFailedToStart,
                            reason,
                        });
                    }
                }
            }
            let Some(i) = ready else {
                return Ok(next);
            };
            let c = &self.plan.containers[i];
            match self
                .ctx
                .ops
                .start(&self.plan, c, &starter.images[i], &starter.prepared)
                .await
            {
                Ok(pid) => {
                    tracing::info!(task = %self.plan.arn, container = %c.name, pid, "container started");
                    self.mark_running(i, Instant::now());
                    waits.push(self.wait_for(i));
                }
                Err(e) => {
                    tracing::warn!(task = %self.plan.arn, container = %c.name, cause = %e, "task failed to start");
                    let reason = e.to_string();
                    let name = c.name.clone();
                    if let Some(c) = self.report.container_mut(&name) {
                        c.reason = reason.clone();
                    }
                    return Err(StopCause {
                        code: StopCode::TaskFailedToStart,
                        reason,
                    });
                }
            }
        }
    }

    /// Stops every running container, dependents before what they depend
    /// on ([`lifecycle::stop_waves`]): in each wave its stop signal, then
    /// SIGKILL after its stopTimeout, concurrently.
    async fn stop_containers(&mut self) {
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].state == SlotState::Running)
            .collect();
        let lifecycles: Vec<(&str, &Lifecycle)> = self
            .plan
            .containers
            .iter()
            .map(|c| (c.name.as_str(), &c.lifecycle))
            .collect();
        let waves = lifecycle::stop_waves(&lifecycles, &live);
        for wave in waves {
            let mut stops = FuturesUnordered::new();
            for index in wave {
                let ops = self.ctx.ops.clone();
                let plan = self.plan.clone();
                let c = plan.containers[index].clone();
                stops.push(async move {
                    let signal = c.stop_signal.clone().unwrap_or_else(|| "SIGTERM".to_owned());
                    if let Err(e) = ops.signal(&c.runtime_id, &signal).await {
                        tracing::warn!(container = %c.runtime_id, cause = %e, "stop signal failed");
                    }
                    let exit = match tokio::time::timeout(c.stop_timeout, ops.wait(&plan, &c.runtime_id)).await {
                        Ok(res) => res,
                        Err(_) => {
                            tracing::info!(container = %c.runtime_id, timeout = ?c.stop_timeout, "stop timeout passed; sending SIGKILL");
                            if let Err(e) = ops.signal(&c.runtime_id, "SIGKILL").await {
                                tracing::warn!(container = %c.runtime_id, cause = %e, "SIGKILL failed");
                            }
                            ops.wait(&plan, &c.runtime_id).await
                        }
                    };
                    (index, exit)
                });
            }
            while let Some((index, res)) = stops.next().await {
                self.record_exit(index, &res);
            }
        }
    }

    async fn teardown(&self) {
        for attempt in 1..=TEARDOWN_TRIES {
            match self.ctx.ops.teardown(&self.plan).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(task = %self.plan.arn, attempt, cause = %e, "task teardown failed");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }

    /// Stopping through to STOPPED, then the cleanup wait and removal.
    async fn finish(mut self, cause: StopCause, cancel: CancellationToken) {
        if self.report.stop_code.is_none() {
            self.report.stop_code = Some(cause.code);
            self.report.stopped_reason = cause.reason;
        }
        for slot in &mut self.slots {
            slot.probe = None;
        }
        self.stop_probing();
        // Containers that never started end here too.
        for c in &mut self.report.containers {
            if c.status == ContainerStatus::Pending {
                c.status = ContainerStatus::Stopped;
            }
        }
        self.set_status(TaskStatus::Stopping);
        self.stop_containers().await;
        self.set_status(TaskStatus::Deprovisioning);
        self.teardown().await;
        self.report.stopped_at = now();
        self.set_status(TaskStatus::Stopped);
        tracing::info!(task = %self.plan.arn, code = self.report.stop_code.map_or("", StopCode::as_str), reason = %self.report.stopped_reason, "task stopped");
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(self.ctx.cleanup_after) => {
                if let Err(e) = self.ctx.ops.remove(&self.plan).await {
                    tracing::error!(task = %self.plan.arn, cause = %e, "removing the stopped task failed");
                } else {
                    tracing::info!(task = %self.plan.arn, "stopped task cleaned up");
                }
            }
        }
    }

    /// Starts containers as their dependencies allow and supervises them
    /// until the task must stop.
    async fn supervise(
        mut self,
        starter: Option<Starter<O>>,
        mut waits: FuturesUnordered<BoxFuture<'static, Exit>>,
        mut inbox: Inbox,
        mut orders: Orders,
        cancel: CancellationToken,
    ) {
        let checks = orders.checks.borrow_and_update().clone();
        self.set_checks(checks);
        let cause = loop {
            if let Desire::Stop { code, reason } = orders.desire.borrow_and_update().clone() {
                break StopCause { code, reason };
            }
            let next = match self.start_ready(starter.as_ref(), &mut waits).await {
                Ok(next) => next,
                Err(cause) => break cause,
            };
            // RUNNING once every container has started (ECS: an init
            // container still running keeps the task PENDING).
            if self.report.status < TaskStatus::Running
                && self.slots.iter().all(|s| s.state != SlotState::Waiting)
            {
                self.report.status = TaskStatus::Activating;
                self.publish();
                self.report.started_at = now();
                self.report.status = TaskStatus::Running;
            }
            self.start_probing();
            self.publish();
            let timer = async move {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                Some((index, res)) = waits.next() => {
                    let stopping = matches!(*orders.desire.borrow(), Desire::Stop { .. });
                    if let Some(cause) = self.on_exit(index, res, stopping, &mut waits).await {
                        break cause;
                    }
                }
                Some(msg) = inbox.health.recv() => self.on_health(msg),
                Some(msg) = inbox.targets.recv() => self.on_target(msg),
                () = timer => {}
                changed = orders.desire.changed() => {
                    if changed.is_err() {
                        // The supervisor is gone (agent shutting down).
                        return;
                    }
                }
                changed = orders.checks.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let checks = orders.checks.borrow_and_update().clone();
                    self.set_checks(checks);
                }
            }
        };
        drop(waits);
        self.finish(cause, cancel).await;
    }
}

/// Starts a task from scratch and supervises it.
pub async fn launch<O: TaskOps>(
    ctx: Arc<RunnerCtx<O>>,
    plan: TaskPlan,
    mut orders: Orders,
    cancel: CancellationToken,
) {
    let containers = plan
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.runtime_id.clone()));
    let report = TaskReport::new(&plan.arn, containers);
    let (mut r, inbox) = Runner::new(ctx, plan, report);

    // Stopped before it began: nothing to undo.
    if let Desire::Stop { code, reason } = orders.desire.borrow_and_update().clone() {
        r.report.stop_code = Some(code);
        r.report.stopped_reason = reason;
        r.report.stopped_at = now();
        r.set_status(TaskStatus::Stopped);
        return;
    }

    r.report.pull_started_at = now();
    r.set_status(TaskStatus::Pending);
    let mut images = Vec::new();
    for i in 0..r.plan.containers.len() {
        let pulled = tokio::select! {
            () = cancel.cancelled() => return,
            res = r.ctx.ops.pull(&r.plan, &r.plan.containers[i]) => res,
        };
        match pulled {
            Ok((image, info)) => {
                r.plan.containers[i].stop_signal = info.stop_signal.clone();
                let name = r.plan.containers[i].name.clone();
                if let Some(c) = r.report.container_mut(&name) {
                    c.image_digest = info.digest;
                }
                images.push(image);
            }
            Err(e) => return fail_to_start(r, e, cancel).await,
        }
        if matches!(*orders.desire.borrow(), Desire::Stop { .. }) {
            let Desire::Stop { code, reason } = orders.desire.borrow_and_update().clone() else {
                return;
            };
            return r.finish(StopCause { code, reason }, cancel).await;
        }
    }
    r.report.pull_stopped_at = now();
    r.publish();

    let prepared = tokio::select! {
        () = cancel.cancelled() => return,
        res = r.ctx.ops.prepare(&r.plan) => res,
    };
    let prepared = match prepared {
        Ok((prepared, net)) => {
            r.report.private_ipv4 = reported_address(&r.plan, &net);
            r.task_ip = net.ipv4;
            for c in &mut r.report.containers {
                c.bindings = net
                    .bindings
                    .iter()
                    .filter(|b| {
                        r.plan
                            .ports_of(&c.name)
                            .any(|p| p.host_port == b.host_port && p.protocol == b.protocol)
                    })
                    .cloned()
                    .collect();
            }
            prepared
        }
        Err(e) => return fail_to_start(r, e, cancel).await,
    };
    let starter = Starter { images, prepared };
    r.supervise(
        Some(starter),
        FuturesUnordered::new(),
        inbox,
        orders,
        cancel,
    )
    .await;
}

/// The address a task's report carries: ECS shows a task's own address
/// (its ENI's) only for awsvpc tasks, never for bridge or host ones.
fn reported_address(plan: &TaskPlan, net: &NetworkInfo) -> Option<Ipv4Addr> {
    if plan.network_mode == NetworkMode::Awsvpc {
        net.ipv4
    } else {
        None
    }
}

/// TaskFailedToStart before any container started (pull, prepare): tear
/// down, report STOPPED.
async fn fail_to_start<O: TaskOps>(mut r: Runner<O>, e: OpsError, cancel: CancellationToken) {
    tracing::warn!(task = %r.plan.arn, cause = %e, "task failed to start");
    let reason = e.to_string();
    // The container that failed carries the reason, as ECS shows it.
    let failed = r
        .report
        .containers
        .iter_mut()
        .find(|c| c.status == ContainerStatus::Pending);
    if let Some(c) = failed {
        c.reason = reason.clone();
    }
    let cause = StopCause {
        code: StopCode::TaskFailedToStart,
        reason,
    };
    r.finish(cause, cancel).await;
}

/// Resumes supervising a task found in containerd after an agent restart.
/// Running containers keep running; exits are watched again, health checks
/// and restart policies resume (a restart needs a full restartAttemptPeriod
/// observed by this agent).
pub async fn adopt<O: TaskOps>(
    ctx: Arc<RunnerCtx<O>>,
    plan: TaskPlan,
    observed: Vec<(String, ObservedState)>,
    orders: Orders,
    cancel: CancellationToken,
) {
    let containers = plan
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.runtime_id.clone()));
    let report = ctx
        .reporter
        .get(&plan.arn)
        .unwrap_or_else(|| TaskReport::new(&plan.arn, containers));
    let (mut r, inbox) = Runner::new(ctx, plan, report);
    // Probing starts from scratch: no verdict survives the agent.
    r.report.target_health.clear();
    let net = match r.ctx.ops.adopt(&r.plan).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(task = %r.plan.arn, cause = %e, "cannot read back the task's network");
            NetworkInfo::default()
        }
    };
    r.report.private_ipv4 = reported_address(&r.plan, &net);
    r.task_ip = net.ipv4;
    let bindings = net.bindings;
    let waits = FuturesUnordered::new();
    let mut gone_essential = None;
    let at = Instant::now();
    for (runtime_id, state) in observed {
        let Some(index) = r
            .plan
            .containers
            .iter()
            .position(|c| c.runtime_id == runtime_id)
        else {
            continue;
        };
        let c = r.plan.containers[index].clone();
        let Some(rep) = r.report.container_mut(&c.name) else {
            continue;
        };
        rep.bindings = bindings
            .iter()
            .filter(|b| {
                r.plan.ports.iter().any(|p| {
                    p.container_name == c.name
                        && p.host_port == b.host_port
                        && p.protocol == b.protocol
                })
            })
            .cloned()
            .collect();
        let restarts = rep.restart_count;
        match state {
            ObservedState::Running { pid } => {
                tracing::info!(task = %r.plan.arn, container = %c.name, pid, "re-adopted running container");
                r.slots[index].restarts = restarts;
                r.mark_running(index, at);
                waits.push(r.wait_for(index));
            }
            ObservedState::Exited(info) => {
                r.record_exit(index, &Ok(info));
                if c.essential {
                    gone_essential = Some(StopCause {
                        code: StopCode::EssentialContainerExited,
                        reason: "Essential container in task exited".to_owned(),
                    });
                }
            }
            ObservedState::NoTask => {
                r.slots[index].state = SlotState::Exited { code: None };
                if let Some(rep) = r.report.container_mut(&c.name) {
                    rep.status = ContainerStatus::Stopped;
                    rep.reason = "the container was no longer running when the agent restarted \
                                  (containerd or the host restarted)"
                        .to_owned();
                }
                if c.essential {
                    gone_essential = Some(StopCause {
                        code: StopCode::EssentialContainerExited,
                        reason: "Task stopped while the agent was down: an essential container \
                                 is no longer running (containerd or the host restarted)"
                            .to_owned(),
                    });
                }
            }
        }
    }
    if let Some(cause) = gone_essential {
        drop(waits);
        return r.finish(cause, cancel).await;
    }
    if r.report.status < TaskStatus::Running {
        r.report.status = TaskStatus::Running;
    }
    r.publish();
    r.supervise(None, waits, inbox, orders, cancel).await;
}
