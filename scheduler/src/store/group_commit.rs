//! Group commit: many acknowledged writes share one `fsync`.
//!
//! A write handler commits to the store, then awaits [`GroupCommit::durable`]
//! before replying. A single flusher task runs [`Store::flush`] whenever
//! someone waits; every write committed before a flush *started* is covered
//! by it, so concurrent handlers are answered by the same flush. Each
//! flush's duration and the tickets it covered go to
//! [`crate::metrics::Metrics::store_commit`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::sync::Mutex;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};

/// Handle shared by all write paths of the scheduler.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
    /// Wakes the flusher; when every handle is gone the flusher stops.
    wake: mpsc::Sender<()>,
    /// Stops the flusher at once ([`GroupCommit::close`]).
    stop: CancellationToken,
    flusher: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("requested", &self.inner.requested.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Highest ticket handed to a waiter.
    requested: AtomicU64,
    /// Highest ticket known durable, or the flush error that stopped us.
    done: watch::Sender<Result<u64, String>>,
}

impl GroupCommit {
    /// Starts the flusher task for `store`. It stops when every handle is
    /// dropped.
    pub fn start(store: Arc<dyn Store>, metrics: crate::metrics::Metrics) -> Self {
        let inner = Arc::new(Inner {
            requested: AtomicU64::new(0),
            done: watch::channel(Ok(0)).0,
        });
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let flusher = inner.clone();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let handle = tokio::spawn(async move {
            loop {
                tokio::select! {
                    w = woken.recv() => if w.is_none() { return },
                    _ = stopped.cancelled() => return,
                }
                loop {
                    let target = flusher.requested.load(Ordering::Acquire);
                    let covered = match *flusher.done.borrow() {
                        Ok(d) => d,
                        Err(_) => return,
                    };
                    if target <= covered {
                        break;
                    }
                    // Every write committed before `target` was handed out
                    // precedes this flush.
                    let s = store.clone();
                    let began = tokio::time::Instant::now();
                    let res = match tokio::task::spawn_blocking(move || s.flush()).await {
                        Ok(Ok(())) => Ok(target),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(format!("flush task failed: {e}")),
                    };
                    if res.is_ok() {
                        metrics.store_commit(began.elapsed(), target - covered);
                    }
                    if let Err(cause) = &res {
                        tracing::error!(%cause, "store flush failed; acknowledged writes can no longer be made durable");
                    }
                    let _previous = flusher.done.send_replace(res);
                }
            }
        });
        Self {
            inner,
            wake,
            stop,
            flusher: Arc::new(Mutex::new(Some(handle))),
        }
    }

    /// Stops the flusher and waits until it has released the store. Writes
    /// waiting for durability after this get [`StoreError::FlusherGone`].
    pub async fn close(&self) {
        self.stop.cancel();
        let handle = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }

    /// Waits until every write committed before this call is durable.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.inner.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut rx = self.inner.done.subscribe();
        // A full channel means a wake-up is already pending, which covers us.
        let _ = self.wake.try_send(());
        loop {
            match &*rx.borrow_and_update() {
                Ok(d) if *d >= ticket => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(StoreError::FlusherGone),
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::FlusherGone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SledStore, Table, Txn};

    #[tokio::test]
    async fn concurrent_waiters_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
        let gc = GroupCommit::start(store.clone(), crate::metrics::Metrics::default());
        let mut handles = Vec::new();
        for i in 0..64u32 {
            let (s, gc) = (store.clone(), gc.clone());
            handles.push(tokio::spawn(async move {
                s.commit(&Txn::new().put(Table::Clusters, i.to_be_bytes().to_vec(), "v"))
                    .unwrap();
                gc.durable().await.unwrap();
            }));
        }
        // A lost wake-up would leave a waiter parked for ever: fail instead.
        let all = async {
            for h in handles {
                h.await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), all)
            .await
            .expect("every durable() returns within 30 s (no lost wake-up)");
    }
}
