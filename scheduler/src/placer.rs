//! The placer: the single committer of RunTask placements.
//!
//! Concurrent RunTask calls queue here; one task drains the queue into
//! batches, plans and records each batch off the async runtime
//! ([`Db::run_batch`]), and while the batch's fsync is pending (shared with
//! every other writer through group commit) it already plans the next one.
//! Callers are answered, and agents told of their new desired sets, only
//! once their batch is durable. One planner means placements never race one
//! another: no instance is over-committed and no host port is given twice,
//! and the store's checks catch the other writers (see `db::run`). Each
//! batch's planning time and its failures by reason are counted
//! ([`crate::metrics`]).

use tokio::sync::{mpsc, oneshot};

use crate::agents::sessions::Sessions;
use crate::db::{Db, DbError, PlacerState, RunSpec, RunTasks};

/// Most requests planned in one batch.
const MAX_BATCH: usize = 256;
/// Requests waiting beyond this make callers wait to queue (back-pressure).
const QUEUE: usize = 4096;

struct Job {
    spec: RunSpec,
    reply: oneshot::Sender<Result<RunTasks, DbError>>,
}

/// A handle to the placer task; cheap to clone.
#[derive(Clone, Debug)]
pub struct Placer {
    tx: mpsc::Sender<Job>,
}

impl Placer {
    /// Starts the placer on the current runtime.
    pub fn start(db: Db, sessions: Sessions) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, sessions, rx));
        Placer { tx }
    }

    /// Places and records `spec`; answers once durable.
    pub async fn run(&self, spec: RunSpec) -> Result<RunTasks, DbError> {
        let (reply, rx) = oneshot::channel();
        let gone = || DbError::Unavailable("the scheduler is shutting down".to_owned());
        self.tx
            .send(Job { spec, reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

async fn run(db: Db, sessions: Sessions, mut rx: mpsc::Receiver<Job>) {
    let mut state = Some(PlacerState::default());
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let (specs, replies): (Vec<RunSpec>, Vec<_>) =
            jobs.into_iter().map(|j| (j.spec, j.reply)).unzip();
        let mut st = state.take().unwrap_or_default();
        let planner_db = db.clone();
        let planner_sessions = sessions.clone();
        let began = tokio::time::Instant::now();
        let planned = tokio::task::spawn_blocking(move || {
            let connected = |id: &str| planner_sessions.liveness(id).connected;
            let out = planner_db.run_batch(&mut st, &specs, &connected);
            (st, out)
        })
        .await;
        let (results, notes) = match planned {
            Ok((st, out)) => {
                state = Some(st);
                db.metrics().placement_latency(began.elapsed());
                for f in out
                    .0
                    .iter()
                    .flat_map(|r| r.as_ref().ok())
                    .flat_map(|r| &r.failures)
                {
                    db.metrics().placement_failure(&f.reason);
                }
                out
            }
            Err(e) => {
                // A panic in planning: start over from the store.
                tracing::error!(error = %e, "placement batch failed");
                let results = replies
                    .iter()
                    .map(|_| Err(DbError::Unavailable("placement failed".to_owned())))
                    .collect();
                (results, Vec::new())
            }
        };
        tracing::debug!(
            requests = replies.len(),
            instances = notes.len(),
            "placement batch"
        );
        let db = db.clone();
        tokio::spawn(async move {
            let durable = if notes.is_empty() && results.iter().all(|r| r.is_err()) {
                Ok(())
            } else {
                db.durable_then_notify(&notes).await
            };
            match durable {
                Ok(()) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(DbError::Unavailable(msg.clone())));
                    }
                }
            }
        });
    }
}
