//! The event log: every state change of a task, a container instance or a
//! service deployment, written **in the same store transaction as the
//! change** (an outbox), read back in order by cursor (`docs/events.md`).
//!
//! How events are made: [`EventLog`] wraps the [`Store`] that `Db` writes
//! through. Its `commit` looks at the `Txn` itself: every `Put` of a task,
//! instance or service record comes with the check of the bytes it replaces
//! (writes are optimistic), so old and new state are both in the `Txn` and
//! [`derive`] (pure) compares them. A write path added later cannot forget
//! its event, and a `Txn` that fails (conflict, backend error) writes
//! neither the change nor its event.
//!
//! How sequences are allocated: the `Meta` record [`NEXT_KEY`] holds the next
//! sequence, and the log keeps a copy of it in memory, under its mutex. A
//! commit that carries events takes the mutex, appends its events under
//! consecutive big-endian `u64` keys in `Table::Events`, and puts the
//! counter, checked against the value it holds, in the same `Txn`. Under
//! the mutex the check never fails in one process, and it still fences a
//! second writer on a shared backend (a failed commit reloads the counter).
//! The sequence is therefore gap-free, and commits become visible in
//! sequence order (the mutex covers the commit), so a reader that has seen
//! `n` never later finds an event below `n` appearing. Commits without
//! events never take the mutex.
//!
//! What it costs the hot path (every placement and report writes tasks):
//! [`derive`] decodes only the status fields of the old and new records,
//! outside the mutex when the `Txn` checks every record it writes (as the
//! placer's and the reports' do), and a task or instance event is stored as
//! the record's new bytes spliced into the event's JSON, not decoded and
//! encoded again. `BENCHMARKS.md` ("The event log's cost") has the figures.
//!
//! How readers learn of new events: the group-commit flusher calls
//! [`Store::flush`]; the log notes the last committed sequence before the
//! flush and publishes it on a `watch` after the flush succeeds. Followers
//! read only up to that durable sequence, so no consumer sees an event a
//! `kill -9` could still take back, and none polls the store.
//!
//! Retention: [`EventLog::prune`] deletes from the front only (by age and
//! count), and records the first retained sequence in `Meta`
//! ([`FIRST_KEY`]), so a cursor below it is known to have lost events.

pub mod derive;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::records::{InstanceRecord, TaskRecord, UnixMillis};
use crate::store::{KeyValue, Store, StoreError, Table, Txn};

pub use derive::{derive, Derived};

/// The `Meta` key of the next sequence to allocate (big-endian u64).
pub const NEXT_KEY: &[u8] = b"events_next";
/// The `Meta` key of the first retained sequence (big-endian u64).
pub const FIRST_KEY: &[u8] = b"events_first";
/// How many events one prune `Txn` deletes at most.
const PRUNE_BATCH: usize = 1000;

/// EventBridge's `detail-type` of each kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "ECS Task State Change")]
    Task,
    #[serde(rename = "ECS Container Instance State Change")]
    Instance,
    #[serde(rename = "ECS Deployment State Change")]
    Deployment,
    #[serde(rename = "ECS Service Action")]
    ServiceAction,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Task,
        EventKind::Instance,
        EventKind::Deployment,
        EventKind::ServiceAction,
    ];

    /// EventBridge's `detail-type`.
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::Task => "ECS Task State Change",
            EventKind::Instance => "ECS Container Instance State Change",
            EventKind::Deployment => "ECS Deployment State Change",
            EventKind::ServiceAction => "ECS Service Action",
        }
    }

    pub fn from_detail_type(s: &str) -> Option<Self> {
        EventKind::ALL.into_iter().find(|k| k.detail_type() == s)
    }
}

/// What changed: the compact domain event the store keeps. Records are
/// kept whole (their new state), so the edge renders them with the same
/// ECS JSON renderer as DescribeTasks and DescribeContainerInstances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    Task {
        task: Box<TaskRecord>,
    },
    Instance {
        instance: Box<InstanceRecord>,
    },
    Deployment {
        cluster: String,
        service: String,
        deployment_id: String,
        /// INFO or ERROR.
        event_type: String,
        /// SERVICE_DEPLOYMENT_IN_PROGRESS, _COMPLETED or _FAILED.
        event_name: String,
        reason: String,
        updated_at: UnixMillis,
    },
    ServiceAction {
        cluster: String,
        service: String,
        /// INFO, WARN or ERROR.
        event_type: String,
        /// SERVICE_STEADY_STATE, SERVICE_TASK_PLACEMENT_FAILURE, ...
        event_name: String,
        /// The service event's message, in ECS's words.
        message: String,
        created_at: UnixMillis,
    },
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::Task { .. } => EventKind::Task,
            EventBody::Instance { .. } => EventKind::Instance,
            EventBody::Deployment { .. } => EventKind::Deployment,
            EventBody::ServiceAction { .. } => EventKind::ServiceAction,
        }
    }

    /// The cluster the changed resource belongs to.
    pub fn cluster(&self) -> &str {
        match self {
            EventBody::Task { task } => &task.cluster,
            EventBody::Instance { instance } => &instance.cluster,
            EventBody::Deployment { cluster, .. } | EventBody::ServiceAction { cluster, .. } => {
                cluster
            }
        }
    }
}

/// One stored event (its sequence is its key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// EventBridge's `id`: a random UUID.
    pub id: String,
    pub time: UnixMillis,
    #[serde(flatten)]
    pub body: EventBody,
}

/// An event and its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequenced {
    /// The cursor of this event: resume after it with `since = seq`.
    pub seq: u64,
    pub event: EventRecord,
}

/// Which events a reader wants.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub cluster: Option<String>,
    pub kind: Option<EventKind>,
    /// Only events at or after this time.
    pub since_time: Option<UnixMillis>,
}

impl EventFilter {
    pub fn admits(&self, e: &EventRecord) -> bool {
        self.cluster
            .as_deref()
            .is_none_or(|c| e.body.cluster() == c)
            && self.kind.is_none_or(|k| e.body.kind() == k)
            && self.since_time.is_none_or(|t| e.time >= t)
    }
}

/// Errors of reading the log.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The cursor's next event was pruned: the reader lost events.
    #[error("cursor {cursor} is older than the retained events (the oldest is {first}); events after it were pruned")]
    Expired { cursor: u64, first: u64 },
    /// The cursor names an event that was never written.
    #[error("cursor {cursor} is ahead of the log (the last event is {last})")]
    Ahead { cursor: u64, last: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Retention of the log (`[events]` in `scheduler.toml`).
pub type Retention = crate::config::EventSettings;

pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn read_u64(
    store: &dyn Store,
    key: &[u8],
    default: u64,
) -> Result<(u64, Option<Vec<u8>>), StoreError> {
    match store.get(Table::Meta, key)? {
        Some(b) => {
            let arr: [u8; 8] = b.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                table: Table::Meta.name(),
                key: String::from_utf8_lossy(key).into_owned(),
                source: serde::de::Error::custom("not a big-endian u64"),
            })?;
            Ok((u64::from_be_bytes(arr), Some(b)))
        }
        None => Ok((default, None)),
    }
}

fn encode_event(e: &EventRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(e).map_err(|source| StoreError::Encode {
        table: Table::Events.name(),
        source,
    })
}

fn decode_event((k, v): &KeyValue) -> Result<Sequenced, StoreError> {
    let corrupt = |source| StoreError::Corrupt {
        table: Table::Events.name(),
        key: format!("{k:?}"),
        source,
    };
    let arr: [u8; 8] = k
        .as_slice()
        .try_into()
        .map_err(|_| corrupt(serde::de::Error::custom("key is not a u64")))?;
    Ok(Sequenced {
        seq: u64::from_be_bytes(arr),
        event: serde_json::from_slice(v).map_err(corrupt)?,
    })
}

/// The next sequence to allocate, as `Meta` holds it.
#[derive(Debug, Clone, Copy)]
struct Counter {
    next: u64,
    /// Whether `Meta` holds [`NEXT_KEY`] yet (a new store has none).
    stored: bool,
}

impl Counter {
    fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let (next, bytes) = read_u64(store, NEXT_KEY, 1)?;
        Ok(Self {
            next,
            stored: bytes.is_some(),
        })
    }
}

struct Inner {
    store: Arc<dyn Store>,
    /// Held by every commit that carries events (see the module doc).
    append: Mutex<Counter>,
    /// The last sequence committed (not necessarily durable).
    committed: AtomicU64,
    /// The last sequence known durable.
    durable: watch::Sender<u64>,
}

/// The outbox: a [`Store`] that adds each change's events to its `Txn`, and
/// the reader of those events. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("committed", &self.inner.committed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Wraps `store`. What it holds on opening is on disk already, so the
    /// last event is durable from the start.
    pub fn new(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let counter = Counter::load(store.as_ref())?;
        let last = counter.next - 1;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                append: Mutex::new(counter),
                committed: AtomicU64::new(last),
                durable: watch::channel(last).0,
            }),
        })
    }

    /// Sees the last durable sequence change after every flush that made
    /// new events durable.
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.inner.durable.subscribe()
    }

    /// The last durable sequence (0: none yet).
    pub fn last_durable(&self) -> u64 {
        *self.inner.durable.borrow()
    }

    /// The first retained sequence (1 while nothing was pruned).
    pub fn first(&self) -> Result<u64, StoreError> {
        Ok(read_u64(self.inner.store.as_ref(), FIRST_KEY, 1)?.0)
    }

    /// Up to `limit` durable events after `cursor` that `filter` admits,
    /// and the cursor to continue from (the last event looked at, admitted
    /// or not). Fails if events after `cursor` were pruned; cursor 0 means
    /// "from the oldest retained event" and never fails so.
    pub fn read_after(
        &self,
        cursor: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<(Vec<Sequenced>, u64), EventsError> {
        let upto = self.last_durable();
        let cursor = if cursor == 0 {
            self.first()?.saturating_sub(1).min(upto)
        } else {
            cursor
        };
        if cursor > upto {
            return Err(EventsError::Ahead { cursor, last: upto });
        }
        let first = self.first()?;
        if cursor + 1 < first {
            return Err(EventsError::Expired { cursor, first });
        }
        let mut out = Vec::new();
        let mut at = cursor;
        // Look at a bounded number of events per call, admitted or not.
        let mut budget = limit.saturating_mul(16).max(1024);
        while at < upto && out.len() < limit && budget > 0 {
            let want = ((upto - at) as usize).min(256).min(budget);
            let first = self.first()?;
            if at + 1 < first {
                return Err(EventsError::Expired { cursor, first });
            }
            let rows = self
                .inner
                .store
                .scan_from(Table::Events, &seq_key(at + 1), want)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let e = decode_event(row)?;
                if e.seq > upto {
                    break;
                }
                if e.seq != at + 1 {
                    // Pruned between the check above and the scan.
                    return Err(EventsError::Expired {
                        cursor,
                        first: e.seq,
                    });
                }
                at = e.seq;
                budget -= 1;
                if filter.admits(&e.event) {
                    out.push(e);
                    if out.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok((out, at))
    }

    /// Deletes events older than `retention.max_age` before `now` and
    /// beyond the newest `retention.max_count`; returns how many.
    pub fn prune(&self, retention: Retention, now: UnixMillis) -> Result<u64, StoreError> {
        let store = self.inner.store.as_ref();
        let last = self.inner.committed.load(Ordering::Acquire);
        let max_age = i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(max_age);
        let by_count = last.saturating_sub(retention.max_count) + 1;
        let mut pruned = 0;
        loop {
            let (first, first_bytes) = read_u64(store, FIRST_KEY, 1)?;
            let rows = store.scan_from(Table::Events, &seq_key(first), PRUNE_BATCH)?;
            let mut txn = Txn::new();
            let mut new_first = first;
            for row in &rows {
                let e = decode_event(row)?;
                if e.seq >= by_count && e.event.time >= cutoff {
                    break;
                }
                txn.add_delete(Table::Events, row.0.clone());
                new_first = e.seq + 1;
            }
            if new_first == first {
                return Ok(pruned);
            }
            match first_bytes {
                Some(b) => txn.add_check_equals(Table::Meta, FIRST_KEY, b),
                None => txn.add_check_absent(Table::Meta, FIRST_KEY),
            };
            txn.add_put(Table::Meta, FIRST_KEY, seq_key(new_first).to_vec());
            store.commit(&txn)?;
            pruned += new_first - first;
        }
    }

    /// Commits `txn` with the events it causes (see the module doc).
    fn commit_with_events(&self, txn: &Txn) -> Result<(), StoreError> {
        let store = self.inner.store.as_ref();
        // With every record checked, the events hold whenever the commit
        // does: derive them before taking the mutex.
        let early = if derive::all_checked(txn) {
            Some(derive(txn, |t, k| store.get(t, k))?)
        } else {
            None
        };
        let mut counter = self.inner.append.lock().unwrap_or_else(|p| p.into_inner());
        let derived = match early {
            Some(d) => d,
            None => derive(txn, |t, k| store.get(t, k))?,
        };
        if derived.is_empty() {
            return store.commit(txn);
        }
        let now = crate::records::now_millis();
        let mut full = txn.clone();
        let mut seq = counter.next;
        for d in derived {
            let value = encode_derived(&uuid::Uuid::new_v4().to_string(), now, d)?;
            full.add_check_absent(Table::Events, seq_key(seq).to_vec());
            full.add_put(Table::Events, seq_key(seq).to_vec(), value);
            seq += 1;
        }
        if counter.stored {
            full.add_check_equals(Table::Meta, NEXT_KEY, seq_key(counter.next).to_vec());
        } else {
            full.add_check_absent(Table::Meta, NEXT_KEY);
        }
        full.add_put(Table::Meta, NEXT_KEY, seq_key(seq).to_vec());
        match store.commit(&full) {
            Ok(()) => {
                *counter = Counter {
                    next: seq,
                    stored: true,
                };
                self.inner.committed.store(seq - 1, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // Another writer may have moved the counter (a shared
                // backend): start again from what the store holds.
                if let Ok(c) = Counter::load(store) {
                    *counter = c;
                }
                Err(e)
            }
        }
    }
}

/// The stored JSON of one event, as `encode_event` writes it: a task's or
/// instance's record bytes are spliced in as they are (they are that
/// record's JSON already), the other bodies encoded.
fn encode_derived(id: &str, time: UnixMillis, d: Derived<'_>) -> Result<Vec<u8>, StoreError> {
    let (kind, field, record) = match d {
        Derived::Task(bytes) => ("task", "task", bytes),
        Derived::Instance(bytes) => ("instance", "instance", bytes),
        Derived::Other(body) => {
            return encode_event(&EventRecord {
                id: id.to_owned(),
                time,
                body,
            })
        }
    };
    let head = format!(r#"{{"id":"{id}","time":{time},"kind":"{kind}","{field}":"#);
    let mut out = Vec::with_capacity(head.len() + record.len() + 1);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(record);
    out.push(b'}');
    Ok(out)
}

/// How often the background pruner runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Prunes the log every [`PRUNE_EVERY`] (and once at start) until `stop`.
pub async fn prune_loop(
    log: EventLog,
    retention: Retention,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let l = log.clone();
        let now = crate::records::now_millis();
        match tokio::task::spawn_blocking(move || l.prune(retention, now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(pruned = n, "pruned the event log"),
            Ok(Err(e)) => tracing::warn!(cause = %e, "pruning the event log failed"),
            Err(e) => tracing::warn!(cause = %e, "the event pruner panicked"),
        }
    }
}

/// Whether `txn` writes a record whose changes are events.
fn may_have_events(txn: &Txn) -> bool {
    txn.ops.iter().any(|op| {
        matches!(
            op,
            crate::store::Op::Put(Table::Tasks | Table::Instances | Table::Services, _, _)
        )
    })
}

impl Store for EventLog {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.store.get(table, key)
    }

    fn scan_prefix(&self, table: Table, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.store.scan_prefix(table, prefix)
    }

    fn scan_from(
        &self,
        table: Table,
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.store.scan_from(table, start, limit)
    }

    fn scan_back(
        &self,
        table: Table,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.store.scan_back(table, before, limit)
    }

    fn commit(&self, txn: &Txn) -> Result<(), StoreError> {
        if may_have_events(txn) {
            self.commit_with_events(txn)
        } else {
            self.inner.store.commit(txn)
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Everything committed before the flush starts is covered by it.
        let committed = self.inner.committed.load(Ordering::Acquire);
        self.inner.store.flush()?;
        self.inner.durable.send_if_modified(|d| {
            let newer = committed > *d;
            if newer {
                *d = committed;
            }
            newer
        });
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner.store.size_on_disk()
    }

    fn export(&self, sink: &mut crate::store::ExportSink<'_>) -> Result<(), StoreError> {
        self.inner.store.export(sink)
    }
}

#[cfg(test)]
mod tests;
