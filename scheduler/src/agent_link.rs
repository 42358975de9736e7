//! The in-memory links between the API and the agents' `Connect` streams:
//!
//! - [`DesiredNotifier`]: one `watch` per instance, bumped by [`crate::db`]
//!   after a durable write changed the instance's desired set; each stream
//!   then sends the full set again (level-triggered).
//! - [`Outbound`]: what the API asks a stream to send besides the desired
//!   set (log requests, exec sessions); each session holds the sender ([`crate::agents::sessions`]).
//! - [`LogRouter`]: which caller waits for which log `request_id`, and from
//!   which instance the answer must come.
//!
//! Nothing here is stored: after a restart the streams reconnect and resend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};

use crate::records::UnixMillis;

/// Per-instance generation of the desired set, as last made durable.
#[derive(Debug, Clone, Default)]
pub struct DesiredNotifier {
    inner: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl DesiredNotifier {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        // Each update is one map operation; a poisoned lock holds a whole map.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that changes whenever `instance`'s desired set does.
    /// Subscribe *before* reading the set, so no change is missed.
    pub fn subscribe(&self, instance: &str) -> watch::Receiver<u64> {
        self.lock()
            .entry(instance.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Called after the write that raised the generation is durable.
    pub fn notify(&self, instance: &str, generation: u64) {
        let map = self.lock();
        if let Some(tx) = map.get(instance) {
            tx.send_if_modified(|g| {
                if generation > *g {
                    *g = generation;
                    true
                } else {
                    false
                }
            });
        }
    }
}

/// A log read the scheduler forwards to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub task_arn: String,
    /// Empty: every container.
    pub container: String,
    pub follow: bool,
    /// Last N lines per container; 0: all.
    pub tail: i64,
    pub since: Option<UnixMillis>,
}

/// Messages the API asks an agent's stream to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    LogRequest {
        request_id: u64,
        query: LogQuery,
    },
    LogCancel {
        request_id: u64,
    },
    /// Run a process in a container (ECS Exec, [`crate::exec_link`]).
    ExecStart {
        stream_id: u64,
        spec: crate::exec_link::ExecSpec,
    },
    ExecInput {
        stream_id: u64,
        input: crate::exec_link::ExecInput,
    },
    /// The exec's caller went away: kill the process.
    ExecCancel {
        stream_id: u64,
    },
    /// Sample usage every `interval_ms`, 0: at the agent's own pace
    /// (someone follows, or no longer follows, one of its tasks).
    StatsSampling {
        interval_ms: u32,
    },
    /// End the stream with PermissionDenied (the instance was deregistered
    /// and its certificates revoked).
    Close {
        reason: String,
    },
}

/// One line of container output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: Option<UnixMillis>,
    pub container: String,
    pub stream: String,
    pub log: String,
}

/// Part of an agent's answer to a log request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPart {
    pub lines: Vec<LogLine>,
    pub eof: bool,
    /// With `eof`, when the read failed.
    pub error: Option<String>,
}

struct Route {
    instance: String,
    tx: mpsc::Sender<LogPart>,
}

/// Request ids to the callers waiting for them. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogRouter {
    routes: Arc<Mutex<HashMap<u64, Route>>>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for LogRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRouter").finish_non_exhaustive()
    }
}

/// How many parts may wait for a slow caller before the agent's stream
/// waits too.
const ROUTE_BUFFER: usize = 64;
/// How long an agent's stream waits for a slow log reader.
pub const DELIVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl LogRouter {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Route>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new request id for a read served by `instance`, and where its parts
    /// arrive.
    pub fn open(&self, instance: &str) -> (u64, mpsc::Receiver<LogPart>) {
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

    /// Forgets a request (its caller is done or gone).
    pub fn close(&self, request_id: u64) {
        self.lock().remove(&request_id);
    }

    /// Hands a part from `instance`'s stream to its caller. A part for a
    /// request of another instance, or an unknown one, is dropped (returns
    /// false). Waits up to [`DELIVER_TIMEOUT`] for the caller to have room,
    /// so a slow reader slows its agent's log sending rather than growing
    /// memory; a reader slower than that loses its read (false), and the
    /// stream tells the agent to stop.
    pub async fn deliver(&self, instance: &str, request_id: u64, part: LogPart) -> bool {
        let tx = {
            let map = self.lock();
            match map.get(&request_id) {
                Some(r) if r.instance == instance => r.tx.clone(),
                _ => return false,
            }
        };
        let eof = part.eof;
        let delivered = tx.send_timeout(part, DELIVER_TIMEOUT).await.is_ok();
        if eof || !delivered {
            self.close(request_id);
        }
        delivered
    }

    /// Ends every read served by `instance` (its stream ended).
    pub fn fail_instance(&self, instance: &str, why: &str) {
        let mut map = self.lock();
        let ids: Vec<u64> = map
            .iter()
            .filter(|(_, r)| r.instance == instance)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(r) = map.remove(&id) {
                let _ = r.tx.try_send(LogPart {
                    lines: vec![],
                    eof: true,
                    error: Some(why.to_owned()),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(eof: bool) -> LogPart {
        LogPart {
            lines: vec![],
            eof,
            error: None,
        }
    }

    #[tokio::test]
    async fn parts_reach_their_caller_only_from_the_serving_instance() {
        let r = LogRouter::default();
        let (id, mut rx) = r.open("i1");
        assert!(!r.deliver("i2", id, part(false)).await, "foreign instance");
        assert!(!r.deliver("i1", id + 100, part(false)).await, "unknown id");
        assert!(r.deliver("i1", id, part(false)).await);
        assert!(r.deliver("i1", id, part(true)).await);
        assert!(!rx.recv().await.unwrap().eof);
        assert!(rx.recv().await.unwrap().eof);
        assert!(!r.deliver("i1", id, part(false)).await, "closed after eof");
    }

    #[tokio::test]
    async fn a_lost_agent_ends_its_reads_with_an_error() {
        let r = LogRouter::default();
        let (_, mut rx) = r.open("i1");
        let (_, mut other) = r.open("i2");
        r.fail_instance("i1", "gone");
        assert_eq!(rx.recv().await.unwrap().error.as_deref(), Some("gone"));
        assert!(other.try_recv().is_err());
    }

    #[test]
    fn notifier_only_rises() {
        let n = DesiredNotifier::default();
        let mut rx = n.subscribe("i1");
        n.notify("i1", 3);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 3);
        n.notify("i1", 2);
        assert!(!rx.has_changed().unwrap());
    }
}
