//! One agent's welcomed `Connect` stream: [`AgentEvent`]s in, [`ToAgent`]s
//! out, in one loop. Reports already waiting are made durable with one
//! flush; whenever the instance's generation moves, the agent is sent what
//! changed in its desired set (a delta, or the whole set to agents that
//! take no deltas, that ask for it, or that left an update unacknowledged
//! for a whole [`ACK_TICK`]); log chunks go to whoever waits for them, and an agent is told to
//! stop a log read nobody waits for any more; exec output likewise
//! ([`crate::exec_link`]). Usage samples go to the in-memory
//! [`crate::usage::UsageBook`] (dropped when the stream ends).

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::sessions::SessionGuard;
use super::{desired, AgentEvent, Context, DesiredTask, StreamError, ToAgent};
use crate::agent_link::Outbound;
use crate::db::{ReportOutcome, TaskReport};
use crate::records::TaskStatus;
use crate::usage::TaskMeta;
use berth_proto::delta::DeltaSender;

/// The sampling interval asked of an agent while someone follows one of
/// its tasks (`WatchTaskStats`).
pub const FOLLOW_INTERVAL_MS: u32 = 1000;

/// Most reports made durable by one flush.
const MAX_BATCH: usize = 256;
/// How often the session checks that the agent acknowledged its desired
/// state; one unacknowledged for a whole tick is followed by the whole set.
pub const ACK_TICK: std::time::Duration = std::time::Duration::from_secs(30);

/// An agent's stream after its Hello and first desired set.
#[derive(Debug)]
pub struct AgentSession {
    pub ctx: Context,
    /// The session's identity (from the credential, never a message body).
    pub id: String,
    pub guard: SessionGuard,
    /// To the agent; the stream ends when the edge drops the receiver.
    pub tx: mpsc::Sender<Result<ToAgent, StreamError>>,
    /// From the agent, converted at the edge; `Err` is a failed read.
    pub inbound: mpsc::Receiver<Result<AgentEvent, String>>,
    /// What the API asks this stream to send (log requests, close).
    pub outbound: mpsc::Receiver<Outbound>,
    /// The instance's desired-set generation.
    pub desired: watch::Receiver<u64>,
    /// What the agent was sent, for the next delta.
    pub sender: DeltaSender<DesiredTask>,
}

/// Why a stream's loop ended.
enum End {
    AgentClosed,
    /// The instance was deregistered while connected.
    Revoked(String),
    Failed(String),
    Shutdown,
}

impl AgentSession {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ack_tick = tokio::time::interval(ACK_TICK);
        ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Someone still follows one of this instance's tasks from before a
        // reconnect: the agent forgot, ask again.
        if self.ctx.usage.followed(&self.id) {
            let fast = ToAgent::StatsSampling {
                interval_ms: FOLLOW_INTERVAL_MS,
            };
            if self.tx.send(Ok(fast)).await.is_err() {
                return;
            }
        }
        let end = loop {
            tokio::select! {
                m = self.inbound.recv() => match m {
                    None => break End::AgentClosed,
                    Some(Err(e)) => break End::Failed(e),
                    Some(Ok(first)) => {
                        if let Err(e) = self.handle_batch(first).await {
                            break e;
                        }
                    }
                },
                Some(o) = self.outbound.recv() => {
                    let m = match o {
                        Outbound::Close { reason } => break End::Revoked(reason),
                        Outbound::LogRequest { request_id, query } => {
                            ToAgent::LogRequest { request_id, query }
                        }
                        Outbound::LogCancel { request_id } => ToAgent::LogCancel { request_id },
                        Outbound::ExecStart { stream_id, spec } => ToAgent::ExecStart { stream_id, spec },
                        Outbound::ExecInput { stream_id, input } => ToAgent::ExecInput { stream_id, input },
                        Outbound::ExecCancel { stream_id } => ToAgent::ExecCancel { stream_id },
                        Outbound::StatsSampling { interval_ms } => ToAgent::StatsSampling { interval_ms },
                    };
                    if self.tx.send(Ok(m)).await.is_err() {
                        break End::AgentClosed;
                    }
                }
                changed = self.desired.changed() => {
                    if changed.is_err() {
                        break End::Failed("desired-state notifier gone".into());
                    }
                    self.desired.borrow_and_update();
                    if let Err(e) = self.send_desired().await {
                        break e;
                    }
                }
                _ = ack_tick.tick() => {
                    if self.sender.overdue() {
                        tracing::warn!(instance = %self.id, sent = ?self.sender.sent(), acked = ?self.sender.acked(), "the agent did not acknowledge its desired state; sending the whole set");
                        self.sender.resync();
                        if let Err(e) = self.send_desired().await {
                            break e;
                        }
                    }
                }
                _ = self.tx.closed() => break End::AgentClosed,
                _ = shutdown.cancelled() => break End::Shutdown,
            }
        };
        let id = &self.id;
        match end {
            End::AgentClosed => {}
            End::Failed(cause) => {
                tracing::info!(instance = %id, %cause, "agent stream failed");
                let _ = self.tx.try_send(Err(StreamError::Unavailable(cause)));
            }
            End::Revoked(reason) => {
                tracing::info!(instance = %id, %reason, "closing the agent's stream");
                let _ = self
                    .tx
                    .send(Err(StreamError::PermissionDenied(reason)))
                    .await;
            }
            End::Shutdown => {
                let _ = self
                    .tx
                    .send(Err(StreamError::Unavailable(
                        "scheduler shutting down".into(),
                    )))
                    .await;
            }
        }
        self.ctx
            .logs
            .fail_instance(id, "the agent disconnected while its logs were being read");
        self.ctx.execs.fail_instance(
            id,
            "the connection to the task's agent was lost; the command's fate is unknown",
        );
        self.ctx.usage.forget_instance(id, self.guard.conn());
        drop(self.guard);
    }

    /// Sends the agent what changed in its desired set since it was sent
    /// last (nothing when nothing did).
    async fn send_desired(&mut self) -> Result<(), End> {
        let set = desired::desired_set(&self.ctx, &self.id)
            .map_err(|e| End::Failed(format!("reading the desired set: {e}")))?;
        if let Some(update) = self.sender.update(set.generation, set.tasks) {
            if self.tx.send(Ok(ToAgent::Desired(update))).await.is_err() {
                return Err(End::AgentClosed);
            }
        }
        Ok(())
    }

    /// Handles `first` and every event already waiting, then makes their
    /// reports durable with one flush.
    async fn handle_batch(&mut self, first: AgentEvent) -> Result<(), End> {
        let mut reports = Vec::new();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            self.guard.heartbeat();
            match m {
                AgentEvent::Heartbeat => {}
                AgentEvent::Hello => {
                    tracing::warn!(instance = %self.id, "second Hello on one stream ignored");
                }
                AgentEvent::Report(r) => reports.push(r),
                AgentEvent::DesiredAck {
                    generation,
                    resync: false,
                } => self.sender.ack(generation),
                AgentEvent::DesiredAck { resync: true, .. } => {
                    tracing::info!(instance = %self.id, "the agent asks for its whole desired set");
                    self.sender.resync();
                    self.send_desired().await?;
                }
                AgentEvent::Usage(batch) => self.record_usage(batch),
                AgentEvent::InvalidReport(e) => {
                    tracing::warn!(instance = %self.id, cause = %e, "invalid task report ignored")
                }
                AgentEvent::LogChunk { request_id, part } => {
                    let eof = part.eof;
                    let delivered = self.ctx.logs.deliver(&self.id, request_id, part).await;
                    if !delivered && !eof {
                        // Nobody reads this any more: tell the agent to stop.
                        let cancel = ToAgent::LogCancel { request_id };
                        if self.tx.send(Ok(cancel)).await.is_err() {
                            return Err(End::AgentClosed);
                        }
                    }
                }
                AgentEvent::ExecOutput { stream_id, frame } => {
                    let last = frame.is_last();
                    let delivered = self.ctx.execs.deliver(&self.id, stream_id, frame).await;
                    if !delivered && !last {
                        // Nobody waits for this exec any more: kill it.
                        let cancel = ToAgent::ExecCancel { stream_id };
                        if self.tx.send(Ok(cancel)).await.is_err() {
                            return Err(End::AgentClosed);
                        }
                    }
                }
            }
            if reports.len() < MAX_BATCH {
                match self.inbound.try_recv() {
                    Ok(Ok(m)) => next = Some(m),
                    Ok(Err(e)) => {
                        self.apply(&reports).await?;
                        return Err(End::Failed(e));
                    }
                    Err(_) => {}
                }
            }
        }
        self.apply(&reports).await
    }

    /// Keeps a usage sample; a task seen for the first time is looked up
    /// once (its instance, group and reservation).
    fn record_usage(&self, batch: crate::usage::UsageBatch) {
        let db = &self.ctx.db;
        let id = &self.id;
        let from = crate::usage::Source {
            instance: id,
            conn: self.guard.conn(),
        };
        self.ctx
            .usage
            .record(from, batch, crate::records::now_millis(), |task| {
                match db.task(task) {
                    Ok(Some(t)) if t.instance_id == *id && t.last_status != TaskStatus::Stopped => {
                        Some(TaskMeta {
                            cluster: t.cluster,
                            instance: t.instance_id,
                            group: t.group,
                            family: t.family,
                            revision: t.revision,
                            reserved_cpu_units: t.reservation.cpu_units,
                            reserved_memory_mib: t.reservation.memory_mib,
                        })
                    }
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(instance = %id, %task, cause = %e, "cannot read a task for its usage sample");
                        None
                    }
                }
            });
    }

    async fn apply(&self, reports: &[TaskReport]) -> Result<(), End> {
        if reports.is_empty() {
            return Ok(());
        }
        let outcomes = self
            .ctx
            .db
            .apply_reports(&self.id, reports)
            .await
            // Unrecorded reports would be lost: end the stream, so the agent
            // reconnects and reports every task again.
            .map_err(|e| End::Failed(format!("recording task reports: {e}")))?;
        for (r, o) in reports.iter().zip(outcomes) {
            match o {
                ReportOutcome::Applied => {
                    tracing::info!(instance = %self.id, task = %r.task_id, last_status = r.last_status.as_str(), "task status")
                }
                ReportOutcome::Unchanged => {}
                ReportOutcome::Regression => {
                    tracing::debug!(instance = %self.id, task = %r.task_id, last_status = r.last_status.as_str(), "task report ignored: regression")
                }
                ReportOutcome::UnknownTask => {
                    tracing::warn!(instance = %self.id, task = %r.task_id, "report for an unknown task ignored")
                }
                ReportOutcome::ForeignTask => {
                    tracing::warn!(instance = %self.id, task = %r.task_id, "report for another instance's task refused")
                }
            }
        }
        Ok(())
    }
}
