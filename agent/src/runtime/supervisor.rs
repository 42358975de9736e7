//! The task supervisor: reconciles what runs on this host to the
//! scheduler's desired state, one runner per task.
//!
//! At start it re-adopts every Berth container containerd knows (grouped by
//! the task label), before any desired state arrives: tasks keep running
//! while the scheduler is away. Then, for each new desired state:
//! - a desired RUNNING task the host does not run is launched;
//! - a known task whose desired status is STOPPED, or that is no longer in
//!   the set at all, is stopped;
//! - a finished task (STOPPED and cleaned up) is forgotten once the
//!   scheduler no longer lists it; until then it is never started again.
//!
//! A running task's target checks follow the latest desired state: the
//! runner gets each change (and a re-adopted task its checks with the first
//! desired state after the restart).
//!
//! One closed [`Event`] enum, one `select!`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::ops::TaskOps;
use super::plan::{labels, TaskPlan};
use super::report::{ContainerStatus, StopCode, TaskReport, TaskStatus};
use super::runner::{self, Desire, Orders, RunnerCtx};
use crate::desired::{DesiredState, DesiredStatus, TargetCheck};

/// How long to wait before asking containerd again when it is unreachable
/// at start (it may be starting with the agent).
const OBSERVE_RETRY: Duration = Duration::from_secs(2);
/// Reason given to a task the scheduler no longer lists.
const NOT_DESIRED: &str = "Task is not in the scheduler's desired state for this instance";

#[derive(Debug)]
enum Event {
    Desired,
    RunnerDone(String),
    /// The watchdog asks whether the loop turns; answered at once.
    Ping(oneshot::Sender<()>),
    Shutdown,
}

/// The watchdog's side of [`Supervisor::with_pings`]: a ping is answered by
/// the supervisor's loop between two events, so an answer proves that loop
/// turns.
pub type PingSender = mpsc::Sender<oneshot::Sender<()>>;

struct Entry {
    desire: watch::Sender<Desire>,
    checks: watch::Sender<Vec<TargetCheck>>,
    /// The runner has returned (task STOPPED and removed, or it never ran).
    done: bool,
}

/// Supervises every task on this host.
pub struct Supervisor<O: TaskOps> {
    ctx: Arc<RunnerCtx<O>>,
    default_stop_timeout: Duration,
    tasks: HashMap<String, Entry>,
    done_tx: mpsc::UnboundedSender<String>,
    done_rx: mpsc::UnboundedReceiver<String>,
    pings: Option<mpsc::Receiver<oneshot::Sender<()>>>,
    cancel: CancellationToken,
}

impl<O: TaskOps> std::fmt::Debug for Supervisor<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl<O: TaskOps> Supervisor<O> {
    pub fn new(
        ctx: Arc<RunnerCtx<O>>,
        default_stop_timeout: Duration,
        cancel: CancellationToken,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            ctx,
            default_stop_timeout,
            tasks: HashMap::new(),
            done_tx,
            done_rx,
            pings: None,
            cancel,
        }
    }

    /// Answers the pings sent on the other side of `pings` (the systemd
    /// watchdog's probe).
    pub fn with_pings(mut self, pings: mpsc::Receiver<oneshot::Sender<()>>) -> Self {
        self.pings = Some(pings);
        self
    }

    fn spawn_runner(
        &mut self,
        arn: String,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
        (desire, checks): (watch::Sender<Desire>, watch::Sender<Vec<TargetCheck>>),
    ) {
        let done = self.done_tx.clone();
        let a = arn.clone();
        tokio::spawn(async move {
            fut.await;
            let _ = done.send(a);
        });
        self.tasks.insert(
            arn,
            Entry {
                desire,
                checks,
                done: false,
            },
        );
    }

    /// Re-adopts every Berth container containerd knows.
    async fn adopt_all(&mut self) {
        let observed = loop {
            match self.ctx.ops.observe().await {
                Ok(o) => break o,
                Err(e) => {
                    tracing::warn!(cause = %e, retry_in = ?OBSERVE_RETRY, "cannot list containers to re-adopt");
                    tokio::select! {
                        () = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(OBSERVE_RETRY) => {}
                    }
                }
            }
        };
        let mut by_task: BTreeMap<String, Vec<super::ops::Observed>> = BTreeMap::new();
        for o in observed {
            if let Some(arn) = o.labels.get(labels::TASK_ARN) {
                by_task.entry(arn.clone()).or_default().push(o);
            }
        }
        for (arn, containers) in by_task {
            let pairs: Vec<_> = containers
                .iter()
                .map(|o| (o.runtime_id.clone(), o.labels.clone()))
                .collect();
            let states: Vec<_> = containers
                .into_iter()
                .map(|o| (o.runtime_id, o.state))
                .collect();
            match TaskPlan::from_labels(&pairs) {
                Ok(plan) => {
                    tracing::info!(task = %arn, containers = states.len(), "re-adopting task");
                    // Its checks come with the first desired state.
                    let (senders, orders) = orders(Vec::new());
                    let fut = runner::adopt(
                        self.ctx.clone(),
                        plan,
                        states,
                        orders,
                        self.cancel.child_token(),
                    );
                    self.spawn_runner(arn, fut, senders);
                }
                Err(e) => {
                    // Containers Berth cannot make sense of are left alone,
                    // loudly: the operator decides.
                    tracing::error!(task = %arn, cause = %e, "cannot re-adopt task; leaving its containers untouched");
                }
            }
        }
    }

    fn reconcile(&mut self, desired: &DesiredState) {
        let mut listed = std::collections::HashSet::new();
        for t in &desired.tasks {
            listed.insert(t.task_arn.clone());
            let want = match t.desired_status {
                DesiredStatus::Running => Desire::Run,
                DesiredStatus::Stopped => Desire::Stop {
                    code: t.stop_code.unwrap_or(StopCode::UserInitiated),
                    reason: if t.stopped_reason.is_empty() {
                        "Task stopped by the scheduler".to_owned()
                    } else {
                        t.stopped_reason.clone()
                    },
                },
            };
            if let Some(e) = self.tasks.get(&t.task_arn) {
                if !e.done && *e.desire.borrow() != want && matches!(want, Desire::Stop { .. }) {
                    tracing::info!(task = %t.task_arn, "stopping task");
                    let _ = e.desire.send(want);
                } else if !e.done && want == Desire::Run {
                    e.checks.send_if_modified(|checks| {
                        let changed = *checks != t.target_checks;
                        if changed {
                            checks.clone_from(&t.target_checks);
                        }
                        changed
                    });
                }
                continue;
            }
            match want {
                Desire::Run => match TaskPlan::from_desired(t, self.default_stop_timeout) {
                    Ok(plan) => {
                        tracing::info!(task = %t.task_arn, family = %plan.family, revision = plan.revision, "launching task");
                        let (senders, orders) = orders(t.target_checks.clone());
                        let fut = runner::launch(
                            self.ctx.clone(),
                            plan,
                            orders,
                            self.cancel.child_token(),
                        );
                        self.spawn_runner(t.task_arn.clone(), fut, senders);
                    }
                    Err(e) => {
                        tracing::error!(task = %t.task_arn, cause = %e, "cannot run task");
                        let mut r = TaskReport::new(&t.task_arn, []);
                        r.status = TaskStatus::Stopped;
                        r.stop_code = Some(StopCode::TaskFailedToStart);
                        r.stopped_reason = e.to_string();
                        r.stopped_at = Some(std::time::SystemTime::now());
                        self.ctx.reporter.publish(r);
                        self.tasks.insert(t.task_arn.clone(), Entry::finished());
                    }
                },
                Desire::Stop { code, reason } => {
                    // The scheduler wants stopped a task this host does not
                    // run (lost before it started, or already removed):
                    // confirm it is stopped so the scheduler can finish it.
                    if self
                        .ctx
                        .reporter
                        .get(&t.task_arn)
                        .is_none_or(|r| r.status != TaskStatus::Stopped)
                    {
                        let mut r = TaskReport::new(&t.task_arn, []);
                        r.status = TaskStatus::Stopped;
                        r.stop_code = Some(code);
                        r.stopped_reason = reason;
                        r.stopped_at = Some(std::time::SystemTime::now());
                        for c in &mut r.containers {
                            c.status = ContainerStatus::Stopped;
                        }
                        self.ctx.reporter.publish(r);
                    }
                    self.tasks.insert(t.task_arn.clone(), Entry::finished());
                }
            }
        }
        // Known tasks the scheduler no longer lists.
        let mut forget = Vec::new();
        for (arn, e) in &self.tasks {
            if listed.contains(arn) {
                continue;
            }
            if e.done {
                forget.push(arn.clone());
            } else if *e.desire.borrow() == Desire::Run {
                tracing::info!(task = %arn, "task not desired any more; stopping it");
                let _ = e.desire.send(Desire::Stop {
                    code: StopCode::UserInitiated,
                    reason: NOT_DESIRED.to_owned(),
                });
            }
        }
        for arn in forget {
            self.tasks.remove(&arn);
            self.ctx.reporter.forget(&arn);
        }
    }

    /// Runs until `cancel` fires. Tasks keep running after it returns.
    pub async fn run(mut self, mut desired: watch::Receiver<Option<DesiredState>>) {
        self.adopt_all().await;
        let mut pending = desired.borrow_and_update().clone();
        loop {
            if let Some(d) = pending.take() {
                self.reconcile(&d);
            }
            let event = tokio::select! {
                () = self.cancel.cancelled() => Event::Shutdown,
                changed = desired.changed() => match changed {
                    Ok(()) => Event::Desired,
                    Err(_) => Event::Shutdown,
                },
                Some(arn) = self.done_rx.recv() => Event::RunnerDone(arn),
                Some(reply) = next_ping(&mut self.pings) => Event::Ping(reply),
            };
            match event {
                Event::Shutdown => break,
                Event::Desired => pending = desired.borrow_and_update().clone(),
                Event::Ping(reply) => {
                    let _ = reply.send(());
                }
                Event::RunnerDone(arn) => {
                    if let Some(e) = self.tasks.get_mut(&arn) {
                        e.done = true;
                    }
                    // Forgotten at the next desired state that omits it.
                    pending = desired.borrow().clone();
                }
            }
        }
        tracing::info!(
            tasks = self.tasks.len(),
            "task supervisor stopped; containers keep running"
        );
    }
}

impl Entry {
    /// A task that runs no more (or never ran): nobody listens.
    fn finished() -> Self {
        Self {
            desire: watch::channel(Desire::Run).0,
            checks: watch::channel(Vec::new()).0,
            done: true,
        }
    }
}

/// A runner's orders (to run, with `checks`) and the supervisor's ends.
fn orders(
    checks: Vec<TargetCheck>,
) -> (
    (watch::Sender<Desire>, watch::Sender<Vec<TargetCheck>>),
    Orders,
) {
    let (desire_tx, desire) = watch::channel(Desire::Run);
    let (checks_tx, checks) = watch::channel(checks);
    ((desire_tx, checks_tx), Orders { desire, checks })
}

/// The next ping, or never when nobody pings.
async fn next_ping(
    pings: &mut Option<mpsc::Receiver<oneshot::Sender<()>>>,
) -> Option<oneshot::Sender<()>> {
    match pings {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
