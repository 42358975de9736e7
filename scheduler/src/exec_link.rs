//! ECS Exec between the API and the agents' `Connect` streams, in domain
//! terms: what an exec asks of an agent ([`ExecSpec`], [`ExecInput`]), what
//! comes back ([`ExecFrame`]), and the [`ExecRouter`] that hands each frame
//! from the serving instance's stream to the caller waiting for its
//! `stream_id`.
//!
//! Every queue is bounded: a slow caller slows its agent's stream for at
//! most [`DELIVER_TIMEOUT`], then loses its session (the agent is told to
//! kill the process). Nothing here is stored: a session does not survive a
//! restart of the scheduler or a lost agent stream (its caller gets an error).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

pub use crate::agent_link::DELIVER_TIMEOUT;

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// What a process run by exec is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    pub task_arn: String,
    pub container: String,
    pub command: Vec<String>,
    pub interactive: bool,
    pub tty: bool,
    pub size: Option<TermSize>,
}

/// Input for a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    Resize(TermSize),
    Signal(String),
    CloseStdin,
}

/// Output of an exec, as the agent sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecFrame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The process ended: the last frame.
    Exit(i32),
    /// The exec could not run or broke: the last frame.
    Error(String),
}

impl ExecFrame {
    /// Whether no frame follows this one.
    pub fn is_last(&self) -> bool {
        matches!(self, ExecFrame::Exit(_) | ExecFrame::Error(_))
    }
}

struct Route {
    instance: String,
    tx: mpsc::Sender<ExecFrame>,
}

/// Stream ids to the callers waiting for their frames. Cheap to clone.
#[derive(Clone, Default)]
pub struct ExecRouter {
    routes: Arc<Mutex<HashMap<u64, Route>>>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for ExecRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecRouter").finish_non_exhaustive()
    }
}

/// Frames that may wait for a slow caller before the agent's stream waits.
const ROUTE_BUFFER: usize = 64;

impl ExecRouter {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Route>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new stream id for an exec served by `instance`, and where its
    /// frames arrive.
    pub fn open(&self, instance: &str) -> (u64, mpsc::Receiver<ExecFrame>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(ROUTE_BUFFER);
        self.lock().insert(
            id,
            Route {
                instance: instance.to_owned(),
                tx,
            },
        );
        (id, rx)
    }

    /// Forgets a stream (its caller is done or gone).
    pub fn close(&self, stream_id: u64) {
        self.lock().remove(&stream_id);
    }

    /// Hands a frame from `instance`'s stream to its caller. A frame for a
    /// stream of another instance, or an unknown one, is dropped (false).
    /// Waits up to [`DELIVER_TIMEOUT`] for the caller to have room; a caller
    /// slower than that loses its session (false), and the agent's stream
    /// tells the agent to stop.
    pub async fn deliver(&self, instance: &str, stream_id: u64, frame: ExecFrame) -> bool {
        let tx = {
            let map = self.lock();
            match map.get(&stream_id) {
                Some(r) if r.instance == instance => r.tx.clone(),
                _ => return false,
            }
        };
        let last = frame.is_last();
        let delivered = tx.send_timeout(frame, DELIVER_TIMEOUT).await.is_ok();
        if last || !delivered {
            self.close(stream_id);
        }
        delivered
    }

    /// Ends every exec served by `instance` (its stream ended).
    pub fn fail_instance(&self, instance: &str, why: &str) {
        let mut map = self.lock();
        let ids: Vec<u64> = map
            .iter()
            .filter(|(_, r)| r.instance == instance)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(r) = map.remove(&id) {
                let _ = r.tx.try_send(ExecFrame::Error(why.to_owned()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_reach_their_caller_only_from_the_serving_instance() {
        let r = ExecRouter::default();
        let (id, mut rx) = r.open("i1");
        let out = || ExecFrame::Stdout(b"x".to_vec());
        assert!(!r.deliver("i2", id, out()).await, "foreign instance");
        assert!(!r.deliver("i1", id + 100, out()).await, "unknown id");
        assert!(r.deliver("i1", id, out()).await);
        assert!(r.deliver("i1", id, ExecFrame::Exit(3)).await);
        assert_eq!(rx.recv().await, Some(out()));
        assert_eq!(rx.recv().await, Some(ExecFrame::Exit(3)));
        assert!(!r.deliver("i1", id, out()).await, "closed after the exit");
    }

    #[tokio::test]
    async fn a_lost_agent_ends_its_execs_with_an_error() {
        let r = ExecRouter::default();
        let (_, mut rx) = r.open("i1");
        let (_, mut other) = r.open("i2");
        r.fail_instance("i1", "gone");
        assert_eq!(rx.recv().await, Some(ExecFrame::Error("gone".into())));
        assert!(other.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_does_not_read_loses_its_session() {
        let r = ExecRouter::default();
        let (id, _rx) = r.open("i1");
        for _ in 0..ROUTE_BUFFER {
            assert!(r.deliver("i1", id, ExecFrame::Stdout(vec![0])).await);
        }
        assert!(!r.deliver("i1", id, ExecFrame::Stdout(vec![0])).await);
        assert!(!r.deliver("i1", id, ExecFrame::Exit(0)).await, "forgotten");
    }
}
