//! Retention in the store: the `Retention` index and the bounded deletions
//! behind `crate::retention` (the pruner's loop and settings live there).
//!
//! The index holds one empty entry per record that expires, keyed
//! `kind` (one byte), the time it counts from (big-endian u64 ms), then the
//! record's own key, so each kind is read oldest first and a pass reads only
//! what it removes (plus one entry). Entries are written in the same `Txn`
//! as what they name:
//! - `T` + the time the scheduler recorded the task STOPPED + task id: the
//!   report that records STOPPED, or StopTask of a task whose instance is
//!   gone. The scheduler's clock, not the agent's `stoppedAt`, so a skewed
//!   host cannot shorten the window.
//! - `R` + the time of the RunTask + `RunTokens` key: a client token.
//!
//! Audit records need no index: their ids are time-ordered.
//!
//! Removing a stopped task removes everything keyed by it in the same
//! transaction: its `Tasks` record, its `InstanceTasks` entry and its
//! `Retention` entry (`Allocations` no longer count it: STOPPED released
//! its reservation). A service task that counted as a failed launch is
//! added to its deployment's `pruned_failures` in that transaction, so the
//! circuit breaker and the throttle count it as before
//! (`crate::services::plan`).

use std::collections::HashMap;

use super::services::service_key;
use super::{decode, encode, Db, DbError};
use crate::records::{ServiceRecord, TaskRecord, TaskStatus, UnixMillis};
use crate::store::{Store, StoreError, Table, Txn};

/// The `Retention` kind of a stopped task.
pub(super) const KIND_TASK: u8 = b'T';
/// The `Retention` kind of a RunTask client token.
pub(super) const KIND_RUN_TOKEN: u8 = b'R';

/// The `Retention` key of `key` of `kind`, counted from `time`.
pub(super) fn retention_key(kind: u8, time: UnixMillis, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.push(kind);
    k.extend_from_slice(&(time.max(0) as u64).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// (time, record key) of a `Retention` key of `kind`; `None` for another kind.
fn parse_key(kind: u8, k: &[u8]) -> Option<(UnixMillis, &[u8])> {
    if k.len() < 9 || k[0] != kind {
        return None;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&k[1..9]);
    Some((i64::try_from(u64::from_be_bytes(t)).unwrap_or(i64::MAX), &k[9..]))
}

/// What one bounded deletion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Records removed (index entries without a record are not counted).
    pub removed: usize,
    /// The batch was full: more may have expired.
    pub more: bool,
}

/// Migration 9 → 10: index what the store already holds, in transactions
/// of at most 1000 entries. Stopped tasks count from their `stoppedAt`
/// (the most a store from before retention knows), tokens from their use.
pub(super) fn index_stored_records(store: &dyn Store) -> Result<(), StoreError> {
    let now = crate::records::now_millis();
    let mut txn = Txn::new();
    let flush = |txn: &mut Txn, force: bool| -> Result<(), StoreError> {
        if txn.ops.len() >= 1000 || (force && !txn.ops.is_empty()) {
            store.commit(&std::mem::take(txn))?;
        }
        Ok(())
    };
    for (k, v) in store.scan_prefix(Table::Tasks, b"")? {
        let t: TaskRecord = decode(Table::Tasks, &k, &v)?;
        if t.last_status == TaskStatus::Stopped {
            let at = t.stopped_at.unwrap_or(t.created_at).min(now);
            txn.add_put(Table::Retention, retention_key(KIND_TASK, at, &k), Vec::new());
            flush(&mut txn, false)?;
        }
    }
    #[derive(serde::Deserialize)]
    struct Token {
        created_at: UnixMillis,
    }
    for (k, v) in store.scan_prefix(Table::RunTokens, b"")? {
        let t: Token = decode(Table::RunTokens, &k, &v)?;
        txn.add_put(
            Table::Retention,
            retention_key(KIND_RUN_TOKEN, t.created_at.min(now), &k),
            Vec::new(),
        );
        flush(&mut txn, false)?;
    }
    flush(&mut txn, true)
}

impl Db {
    /// Removes up to `batch` tasks recorded STOPPED at or before `cutoff`,
    /// oldest first, with everything keyed by them, in one transaction
    /// (retried on conflict), made durable before it returns.
    pub async fn prune_stopped_tasks(
        &self,
        cutoff: UnixMillis,
        batch: usize,
    ) -> Result<Pruned, DbError> {
        let pruned = self.commit_retrying("stopped-task retention", || {
            let entries = self.store.scan_from(Table::Retention, &[KIND_TASK], batch)?;
            let full = entries.len() == batch;
            let mut txn = Txn::new();
            let mut removed = 0;
            let mut expired_all = true;
            // Service records touched, by key: (record, bytes read).
            let mut services: HashMap<Vec<u8>, (ServiceRecord, Vec<u8>)> = HashMap::new();
            for (k, _) in &entries {
                let Some((time, id)) = parse_key(KIND_TASK, k) else {
                    expired_all = false;
                    break;
                };
                if time > cutoff {
                    expired_all = false;
                    break;
                }
                txn.add_delete(Table::Retention, k.clone());
                let Some((task, bytes)) = self.get::<TaskRecord>(Table::Tasks, id)? else {
                    continue;
                };
                if task.last_status != TaskStatus::Stopped {
                    // Not written by this code; the task stays.
                    tracing::warn!(task = %task.id, "retention entry of a task that is not STOPPED dropped");
                    continue;
                }
                txn.add_check_equals(Table::Tasks, id, bytes)
                    .add_delete(Table::Tasks, id)
                    .add_delete(
                        Table::InstanceTasks,
                        super::tasks::instance_task_key(&task.instance_id, &task.id),
                    );
                removed += 1;
                self.count_pruned_failure(&task, &mut services)?;
            }
            for (key, (rec, bytes)) in services {
                txn.add_check_equals(Table::Services, key.clone(), bytes)
                    .add_put(Table::Services, key, encode(Table::Services, &rec)?);
            }
            Ok((
                txn,
                Pruned {
                    removed,
                    more: full && expired_all,
                },
            ))
        })?;
        if pruned.removed > 0 || pruned.more {
            self.commit.durable().await?;
        }
        Ok(pruned)
    }

    /// Adds `task` to its deployment's `pruned_failures` if the service
    /// controller counts it as a failed launch.
    fn count_pruned_failure(
        &self,
        task: &TaskRecord,
        services: &mut HashMap<Vec<u8>, (ServiceRecord, Vec<u8>)>,
    ) -> Result<(), DbError> {
        let Some(name) = task.group.strip_prefix("service:") else {
            return Ok(());
        };
        if !crate::services::task_facts(task).failed() {
            return Ok(());
        }
        let key = service_key(&task.cluster, name);
        if !services.contains_key(&key) {
            let Some(found) = self.get::<ServiceRecord>(Table::Services, &key)? else {
                return Ok(());
            };
            services.insert(key.clone(), found);
        }
        let Some((rec, _)) = services.get_mut(&key) else {
            return Ok(());
        };
        if let Some(d) = rec
            .deployments
            .iter_mut()
            .find(|d| d.id == task.started_by)
        {
            d.pruned_failures += 1;
            let at = task.stopped_at.unwrap_or(task.created_at);
            d.last_pruned_failure_at = Some(d.last_pruned_failure_at.map_or(at, |l| l.max(at)));
        }
        Ok(())
    }

    /// Removes up to `batch` RunTask client tokens used at or before
    /// `cutoff`, oldest first, in one transaction. A retry with an expired
    /// token runs new tasks.
    pub async fn prune_run_tokens(
        &self,
        cutoff: UnixMillis,
        batch: usize,
    ) -> Result<Pruned, DbError> {
        let pruned = self.commit_retrying("client-token retention", || {
            let entries = self
                .store
                .scan_from(Table::Retention, &[KIND_RUN_TOKEN], batch)?;
            let full = entries.len() == batch;
            let mut txn = Txn::new();
            let mut removed = 0;
            let mut expired_all = true;
            for (k, _) in &entries {
                let Some((time, key)) = parse_key(KIND_RUN_TOKEN, k) else {
                    expired_all = false;
                    break;
                };
                if time > cutoff {
                    expired_all = false;
                    break;
                }
                txn.add_delete(Table::Retention, k.clone());
                if self.store.get(Table::RunTokens, key)?.is_some() {
                    txn.add_delete(Table::RunTokens, key);
                    removed += 1;
                }
            }
            Ok((
                txn,
                Pruned {
                    removed,
                    more: full && expired_all,
                },
            ))
        })?;
        if pruned.removed > 0 || pruned.more {
            self.commit.durable().await?;
        }
        Ok(pruned)
    }

    /// Removes up to `batch` of the oldest audit records: those older than
    /// `cutoff`, then, while more than `keep` remain of the `count` there
    /// are, the oldest beyond it. Returns what it removed; the caller
    /// keeps the count.
    pub async fn prune_audit(
        &self,
        cutoff: UnixMillis,
        count: u64,
        keep: u64,
        batch: usize,
    ) -> Result<Pruned, DbError> {
        let excess = usize::try_from(count.saturating_sub(keep)).unwrap_or(usize::MAX);
        let pruned = self.commit_retrying("audit retention", || {
            let entries = self.store.scan_from(Table::Audit, b"", batch)?;
            let full = entries.len() == batch;
            let mut txn = Txn::new();
            let mut removed = 0;
            let mut expired_all = true;
            for (k, v) in &entries {
                let rec: crate::records::AuditRecord = decode(Table::Audit, k, v)?;
                if rec.time >= cutoff && removed >= excess {
                    expired_all = false;
                    break;
                }
                txn.add_delete(Table::Audit, k.clone());
                removed += 1;
            }
            Ok((
                txn,
                Pruned {
                    removed,
                    more: full && expired_all,
                },
            ))
        })?;
        if pruned.removed > 0 {
            self.commit.durable().await?;
        }
        Ok(pruned)
    }

    /// How many audit records the store holds: one scan of the keys, in
    /// chunks (the pruner does it once, then keeps the count itself).
    pub fn count_audit_records(&self) -> Result<u64, DbError> {
        const CHUNK: usize = 4096;
        let mut n = 0u64;
        let mut from: Vec<u8> = Vec::new();
        loop {
            let chunk = self.store.scan_from(Table::Audit, &from, CHUNK)?;
            n += chunk.len() as u64;
            match chunk.last() {
                Some((k, _)) if chunk.len() == CHUNK => {
                    from = k.clone();
                    from.push(0);
                }
                _ => return Ok(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_kind_then_time() {
        let a = retention_key(KIND_TASK, 5, b"zz");
        let b = retention_key(KIND_TASK, 256, b"aa");
        let r = retention_key(KIND_RUN_TOKEN, 1, b"x");
        assert!(a < b, "time orders within a kind");
        assert!(r < a, "kinds do not interleave");
        assert_eq!(parse_key(KIND_TASK, &b), Some((256, &b"aa"[..])));
        assert_eq!(parse_key(KIND_RUN_TOKEN, &b), None);
        assert_eq!(parse_key(KIND_TASK, b"T1"), None);
    }
}
