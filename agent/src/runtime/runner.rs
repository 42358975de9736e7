//! One task's life on this host, as a state machine driven by one
//! `select!`: pull → prepare → start → watch exits → stop → teardown →
//! (after the cleanup wait) remove. Every transition is published through
//! the [`Reporter`] in ECS's names.
//!
//! When the agent shuts down the runner just stops supervising: containers
//! keep running and the next agent re-adopts them ([`adopt`]). Only the
//! scheduler's desired status or an essential container's exit stops a task.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ops::{ExitInfo, ObservedState, OpsError, TaskOps};
use super::plan::TaskPlan;
use super::report::{stop_code, ContainerStatus, Reporter, TaskReport, TaskStatus};

/// ECS's reason when the kernel's OOM killer ended a container.
pub const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";
/// How often a failed teardown is retried before the task is reported
/// STOPPED anyway (with the failure logged).
const TEARDOWN_TRIES: u32 = 5;

/// What the scheduler wants of a task right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desire {
    Run,
    Stop { code: String, reason: String },
}

/// What the runners share.
#[derive(Debug)]
pub struct RunnerCtx<O> {
    pub ops: Arc<O>,
    pub reporter: Reporter,
    /// How long a stopped task's containers, snapshots and logs are kept.
    pub cleanup_after: Duration,
}

/// A container the runner adopted or started, with what it learned.
struct Live {
    index: usize,
}

type Exit = (usize, Result<ExitInfo, OpsError>);

fn now() -> Option<SystemTime> {
    Some(SystemTime::now())
}

/// Why the task is stopping.
struct StopCause {
    code: String,
    reason: String,
}

struct Runner<O: TaskOps> {
    ctx: Arc<RunnerCtx<O>>,
    plan: TaskPlan,
    report: TaskReport,
}

impl<O: TaskOps> Runner<O> {
    fn publish(&self) {
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

    /// Records a container's exit in the report.
    fn record_exit(&mut self, index: usize, res: &Result<ExitInfo, OpsError>) {
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

    /// Stops every live container: its stop signal, then SIGKILL after its
    /// stopTimeout. Containers stop concurrently.
    async fn stop_containers(&mut self, live: Vec<Live>) {
        let mut stops = FuturesUnordered::new();
        for l in live {
            let ops = self.ctx.ops.clone();
            let plan = self.plan.clone();
            let c = plan.containers[l.index].clone();
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
                (l.index, exit)
            });
        }
        while let Some((index, res)) = stops.next().await {
            self.record_exit(index, &res);
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
    async fn finish(mut self, live: Vec<Live>, cause: StopCause, cancel: CancellationToken) {
        if self.report.stop_code.is_empty() {
            self.report.stop_code = cause.code;
            self.report.stopped_reason = cause.reason;
        }
        self.set_status(TaskStatus::Stopping);
        self.stop_containers(live).await;
        self.set_status(TaskStatus::Deprovisioning);
        self.teardown().await;
        self.report.stopped_at = now();
        self.set_status(TaskStatus::Stopped);
        tracing::info!(task = %self.plan.arn, code = %self.report.stop_code, reason = %self.report.stopped_reason, "task stopped");
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

    /// Supervises running containers until the task must stop.
    async fn supervise(
        mut self,
        mut live: Vec<Live>,
        mut waits: FuturesUnordered<BoxFuture<'static, Exit>>,
        mut desire: watch::Receiver<Desire>,
        cancel: CancellationToken,
    ) {
        let cause = loop {
            if let Desire::Stop { code, reason } = desire.borrow_and_update().clone() {
                break StopCause { code, reason };
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                Some((index, res)) = waits.next() => {
                    self.record_exit(index, &res);
                    live.retain(|l| l.index != index);
                    let c = &self.plan.containers[index];
                    tracing::info!(task = %self.plan.arn, container = %c.name, exit = ?res.as_ref().ok().map(|e| e.code), essential = c.essential, "container exited");
                    if c.essential {
                        break StopCause {
                            code: stop_code::ESSENTIAL_CONTAINER_EXITED.to_owned(),
                            reason: "Essential container in task exited".to_owned(),
                        };
                    }
                    self.publish();
                }
                changed = desire.changed() => {
                    if changed.is_err() {
                        // The supervisor is gone (agent shutting down).
                        return;
                    }
                }
            }
        };
        drop(waits);
        self.finish(live, cause, cancel).await;
    }
}

/// Starts a task from scratch and supervises it.
pub async fn launch<O: TaskOps>(
    ctx: Arc<RunnerCtx<O>>,
    plan: TaskPlan,
    mut desire: watch::Receiver<Desire>,
    cancel: CancellationToken,
) {
    let containers = plan
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.runtime_id.clone()));
    let report = TaskReport::new(&plan.arn, containers);
    let mut r = Runner { ctx, plan, report };

    // Stopped before it began: nothing to undo.
    if let Desire::Stop { code, reason } = desire.borrow_and_update().clone() {
        r.report.stop_code = code;
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
            Err(e) => return fail_to_start(r, vec![], e, cancel).await,
        }
        if matches!(*desire.borrow(), Desire::Stop { .. }) {
            let Desire::Stop { code, reason } = desire.borrow_and_update().clone() else {
                return;
            };
            return r.finish(vec![], StopCause { code, reason }, cancel).await;
        }
    }
    r.report.pull_stopped_at = now();
    r.publish();

    let prepared = tokio::select! {
        () = cancel.cancelled() => return,
        res = r.ctx.ops.prepare(&r.plan) => res,
    };
    let prepared = match prepared {
        Ok((prepared, bindings)) => {
            for c in &mut r.report.containers {
                c.bindings = bindings
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
        Err(e) => return fail_to_start(r, vec![], e, cancel).await,
    };

    let mut live = Vec::new();
    let waits = FuturesUnordered::new();
    for (i, image) in images.iter().enumerate() {
        let started = r
            .ctx
            .ops
            .start(&r.plan, &r.plan.containers[i], image, &prepared)
            .await;
        match started {
            Ok(pid) => {
                let name = r.plan.containers[i].name.clone();
                tracing::info!(task = %r.plan.arn, container = %name, pid, "container started");
                if let Some(c) = r.report.container_mut(&name) {
                    c.status = ContainerStatus::Running;
                }
                live.push(Live { index: i });
                waits.push(r.wait_for(i));
            }
            Err(e) => return fail_to_start(r, live, e, cancel).await,
        }
    }
    r.report.status = TaskStatus::Activating;
    r.publish();
    r.report.started_at = now();
    r.set_status(TaskStatus::Running);
    r.supervise(live, waits, desire, cancel).await;
}

/// TaskFailedToStart: stop what started, tear down, report STOPPED.
async fn fail_to_start<O: TaskOps>(
    mut r: Runner<O>,
    live: Vec<Live>,
    e: OpsError,
    cancel: CancellationToken,
) {
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
    for c in &mut r.report.containers {
        if c.status == ContainerStatus::Pending {
            c.status = ContainerStatus::Stopped;
        }
    }
    let cause = StopCause {
        code: stop_code::TASK_FAILED_TO_START.to_owned(),
        reason,
    };
    r.finish(live, cause, cancel).await;
}

/// Resumes supervising a task found in containerd after an agent restart.
/// Running containers keep running; exits are watched again.
pub async fn adopt<O: TaskOps>(
    ctx: Arc<RunnerCtx<O>>,
    plan: TaskPlan,
    observed: Vec<(String, ObservedState)>,
    desire: watch::Receiver<Desire>,
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
    let mut r = Runner { ctx, plan, report };
    let bindings = match r.ctx.ops.adopt(&r.plan).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(task = %r.plan.arn, cause = %e, "cannot read back the task's network");
            vec![]
        }
    };
    let mut live = Vec::new();
    let waits = FuturesUnordered::new();
    let mut gone_essential = None;
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
        let rep = r.report.container_mut(&c.name);
        let Some(rep) = rep else { continue };
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
        match state {
            ObservedState::Running { pid } => {
                rep.status = ContainerStatus::Running;
                tracing::info!(task = %r.plan.arn, container = %c.name, pid, "re-adopted running container");
                live.push(Live { index });
                waits.push(r.wait_for(index));
            }
            ObservedState::Exited(info) => {
                rep.status = ContainerStatus::Stopped;
                rep.exit_code = Some(info.code);
                if info.oom_killed {
                    rep.reason = OOM_REASON.to_owned();
                }
                if c.essential {
                    gone_essential = Some(StopCause {
                        code: stop_code::ESSENTIAL_CONTAINER_EXITED.to_owned(),
                        reason: "Essential container in task exited".to_owned(),
                    });
                }
            }
            ObservedState::NoTask => {
                rep.status = ContainerStatus::Stopped;
                rep.reason = "the container was no longer running when the agent restarted \
                              (containerd or the host restarted)"
                    .to_owned();
                if c.essential {
                    gone_essential = Some(StopCause {
                        code: stop_code::ESSENTIAL_CONTAINER_EXITED.to_owned(),
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
        return r.finish(live, cause, cancel).await;
    }
    if r.report.status < TaskStatus::Running {
        r.report.status = TaskStatus::Running;
    }
    r.publish();
    r.supervise(live, waits, desire, cancel).await;
}
