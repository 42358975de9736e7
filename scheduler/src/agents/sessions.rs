//! Agent sessions: which instances hold a live `Connect` stream, and their
//! heartbeats. Kept in memory only — a heartbeat never writes the store —
//! so after a scheduler restart every instance reads as disconnected until
//! its agent reconnects.
//!
//! An instance is connected while its latest session is open and has been
//! heard from within the TTL. The TTL grows with the fleet (Nomad's rule:
//! at least one heartbeat per 50 instances per second is processed), so a
//! large fleet is not declared lost by a busy scheduler.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::agent_link::Outbound;
use crate::records::{now_millis, UnixMillis};

/// Connection facts of one instance, as the API reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub connected: bool,
    pub last_heartbeat_at: Option<UnixMillis>,
}

#[derive(Debug)]
struct Session {
    /// Which `Connect` call this is; a reconnect supersedes older ones.
    conn: u64,
    open: bool,
    last_seen: Instant,
    last_seen_wall: UnixMillis,
    /// Messages for this session's stream (log requests).
    outbound: mpsc::Sender<Outbound>,
}

/// The registry of sessions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
    next_conn: Arc<AtomicU64>,
    base_ttl: Duration,
    /// When this registry was created (the scheduler's start): an instance
    /// never seen since counts as disconnected from then.
    started: Instant,
}

/// Proof of an attached session; detaches it when dropped.
#[derive(Debug)]
pub struct SessionGuard {
    sessions: Sessions,
    id: String,
    conn: u64,
}

impl SessionGuard {
    pub fn heartbeat(&self) {
        self.sessions.touch(&self.id, self.conn);
    }

    /// Which `Connect` call this guard belongs to (a reconnect's is higher).
    pub fn conn(&self) -> u64 {
        self.conn
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut map = self.sessions.lock();
        if let Some(s) = map.get_mut(&self.id) {
            if s.conn == self.conn {
                s.open = false;
                tracing::info!(instance = %self.id, "agent session closed");
            }
        }
    }
}

impl Sessions {
    pub fn new(base_ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
            next_conn: Arc::new(AtomicU64::new(1)),
            base_ttl,
            started: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every update is a single field write), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The effective TTL for the current fleet size.
    pub fn ttl(&self) -> Duration {
        let n = self.lock().len() as u64;
        self.base_ttl.max(Duration::from_secs(n.div_ceil(50)))
    }

    /// Records a new session for `id`, superseding any older one;
    /// `outbound` reaches its stream.
    pub fn attach(&self, id: &str, outbound: mpsc::Sender<Outbound>) -> SessionGuard {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id.to_owned(),
            Session {
                conn,
                open: true,
                last_seen: Instant::now(),
                last_seen_wall: now_millis(),
                outbound,
            },
        );
        SessionGuard {
            sessions: self.clone(),
            id: id.to_owned(),
            conn,
        }
    }

    fn touch(&self, id: &str, conn: u64) {
        if let Some(s) = self.lock().get_mut(id) {
            if s.conn == conn {
                s.last_seen = Instant::now();
                s.last_seen_wall = now_millis();
            }
        }
    }

    pub fn liveness(&self, id: &str) -> Liveness {
        let ttl = self.ttl();
        match self.lock().get(id) {
            None => Liveness {
                connected: false,
                last_heartbeat_at: None,
            },
            Some(s) => Liveness {
                connected: s.open && s.last_seen.elapsed() <= ttl,
                last_heartbeat_at: Some(s.last_seen_wall),
            },
        }
    }

    /// How long `id` has been disconnected beyond the TTL: None while it is
    /// connected. An instance not seen since the scheduler started counts
    /// from the start (plus the TTL, so restarts give agents time to
    /// reconnect).
    pub fn disconnected_for(&self, id: &str) -> Option<Duration> {
        let ttl = self.ttl();
        let map = self.lock();
        let since = match map.get(id) {
            Some(s) if s.open && s.last_seen.elapsed() <= ttl => return None,
            Some(s) => s.last_seen,
            None => self.started,
        };
        Some(since.elapsed().saturating_sub(ttl))
    }

    /// The sender to `id`'s stream while its agent is connected.
    pub fn outbound(&self, id: &str) -> Option<mpsc::Sender<Outbound>> {
        let ttl = self.ttl();
        self.lock()
            .get(id)
            .filter(|s| s.open && s.last_seen.elapsed() <= ttl)
            .map(|s| s.outbound.clone())
    }

    /// The sender to `id`'s stream while it is open, however long ago its
    /// agent was heard from (to close it).
    pub fn open_stream(&self, id: &str) -> Option<mpsc::Sender<Outbound>> {
        self.lock()
            .get(id)
            .filter(|s| s.open)
            .map(|s| s.outbound.clone())
    }

    /// Forgets an instance entirely (deregistration).
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> mpsc::Sender<Outbound> {
        mpsc::channel(1).0
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_expiry_disconnects() {
        let s = Sessions::new(Duration::from_secs(10));
        let g = s.attach("i1", tx());
        assert!(s.liveness("i1").connected);
        tokio::time::advance(Duration::from_secs(9)).await;
        g.heartbeat();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(s.liveness("i1").connected, "heartbeat extends the lease");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!s.liveness("i1").connected, "no heartbeat for 11s > ttl");
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_stream_disconnects_at_once_but_a_reconnect_wins() {
        let s = Sessions::new(Duration::from_secs(10));
        let old = s.attach("i1", tx());
        let new = s.attach("i1", tx());
        drop(old); // the superseded stream ending must not mark i1 down
        assert!(s.liveness("i1").connected);
        drop(new);
        let l = s.liveness("i1");
        assert!(!l.connected);
        assert!(l.last_heartbeat_at.is_some());
        assert!(!s.liveness("unknown").connected);
    }

    #[test]
    fn ttl_grows_with_fleet() {
        let s = Sessions::new(Duration::from_secs(10));
        let guards: Vec<_> = (0..1000)
            .map(|i| s.attach(&format!("i{i}"), tx()))
            .collect();
        assert_eq!(s.ttl(), Duration::from_secs(20));
        drop(guards);
    }
}
