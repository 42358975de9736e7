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
    Some((
        i64::try_from(u64::from_be_bytes(t)).unwrap_or(i64::MAX),
        &k[9..],
    ))
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
/// of at most 1000 entries (one scan of tasks and tokens, once). Stopped tasks count from their `stoppedAt`
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
    // A record that does not decode is left out (logged): it fails
    // wherever it is read, and the index must not keep the store from
    // opening.
    let skip = |e: StoreError| tracing::warn!(cause = %e, "not indexed for retention");
    for (k, v) in store.scan_prefix(Table::Tasks, b"")? {
        let t: TaskRecord = match decode(Table::Tasks, &k, &v) {
            Ok(t) => t,
            Err(e) => {
                skip(e);
                continue;
            }
        };
        if t.last_status == TaskStatus::Stopped {
            let at = t.stopped_at.unwrap_or(t.created_at).min(now);
            txn.add_put(
                Table::Retention,
                retention_key(KIND_TASK, at, &k),
                Vec::new(),
            );
            flush(&mut txn, false)?;
        }
    }
    #[derive(serde::Deserialize)]
    struct Token {
        created_at: UnixMillis,
    }
    for (k, v) in store.scan_prefix(Table::RunTokens, b"")? {
        let t: Token = match decode(Table::RunTokens, &k, &v) {
            Ok(t) => t,
            Err(e) => {
                skip(e);
                continue;
            }
        };
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
        if let Some(d) = rec.deployments.iter_mut().find(|d| d.id == task.started_by) {
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

    /// How many audit records the store holds (the pruner counts them
    /// once, then keeps the count itself).
    pub fn count_audit_records(&self) -> Result<u64, DbError> {
        self.count_records(Table::Audit)
    }

    /// How many records `table` holds: one read of the table, in chunks
    /// (`berth_store_records`, the pruner's first audit count).
    pub fn count_records(&self, table: Table) -> Result<u64, DbError> {
        const CHUNK: usize = 4096;
        let mut n = 0u64;
        let mut from: Vec<u8> = Vec::new();
        loop {
            let chunk = self.store.scan_from(table, &from, CHUNK)?;
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
    use std::sync::Arc;

    use super::*;
    use crate::db::{StartSpec, TaskReport};
    use crate::records::{
        now_millis, AuditRecord, HostResources, InstanceRecord, InstanceStatus, ServiceRecord,
    };
    use crate::store::SledStore;

    async fn open(dir: &std::path::Path) -> Db {
        Db::open(Arc::new(SledStore::open_when_free(dir).unwrap()))
            .await
            .unwrap()
    }

    async fn setup(db: &Db) {
        db.create_instance(InstanceRecord {
            address: None,
            id: "i1".into(),
            cluster: "default".into(),
            hostname: "h".into(),
            status: InstanceStatus::Active,
            registered_at: 0,
            agent_version: "0".into(),
            resources: HostResources {
                cpu_units: 4096,
                memory_mib: 4096,
                port_range: (20000, 20099),
                reserved_tcp_ports: vec![],
                reserved_udp_ports: vec![],
            },
            attributes: vec![],
            cert_serials: vec![],
            activation_id: String::new(),
            custom_attributes: vec![],
            tags: vec![],
        })
        .await
        .unwrap();
        let def = berth_proto::taskdef::parse_registration(
            r#"{"family":"web","containerDefinitions":[{"name":"web","image":"x","memory":10}]}"#,
        )
        .unwrap()
        .definition;
        db.register_task_definition(def).await.unwrap();
    }

    async fn start(db: &Db, n: u32) -> Vec<TaskRecord> {
        db.start_tasks(
            &StartSpec {
                cluster: "default".into(),
                family: "web".into(),
                revision: None,
                instances: vec!["i1".into()],
                count: n,
                started_by: String::new(),
                group: None,
                tags: vec![],
                enable_execute_command: false,
            },
            |_| true,
        )
        .await
        .unwrap()
        .tasks
    }

    fn report(id: &str, status: TaskStatus) -> TaskReport {
        TaskReport {
            task_id: id.to_owned(),
            last_status: status,
            stop_code: Some(berth_proto::ecs::StopCode::EssentialContainerExited),
            stopped_reason: "exited".into(),
            containers: vec![],
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopped_at: None,
            health_status: None,
            private_ipv4: None,
            target_health: vec![],
        }
    }

    fn keys(db: &Db, table: Table) -> usize {
        db.store.scan_prefix(table, b"").unwrap().len()
    }

    #[tokio::test]
    async fn stopped_tasks_leave_with_their_index_entries_running_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        setup(&db).await;
        let tasks = start(&db, 4).await;
        for t in &tasks[..3] {
            db.apply_reports("i1", &[report(&t.id, TaskStatus::Stopped)])
                .await
                .unwrap();
        }
        assert_eq!(keys(&db, Table::Retention), 3);
        // Nothing has expired yet.
        let past = now_millis() - 60_000;
        assert_eq!(
            db.prune_stopped_tasks(past, 10).await.unwrap(),
            Pruned::default()
        );
        assert!(db.task(&tasks[0].id).unwrap().is_some());
        // Bounded batches: two, then one, then none.
        let cutoff = now_millis() + 1;
        let p = db.prune_stopped_tasks(cutoff, 2).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                removed: 2,
                more: true
            }
        );
        let p = db.prune_stopped_tasks(cutoff, 2).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                removed: 1,
                more: false
            }
        );
        assert_eq!(
            db.prune_stopped_tasks(cutoff, 2).await.unwrap(),
            Pruned::default()
        );
        for t in &tasks[..3] {
            assert!(db.task(&t.id).unwrap().is_none());
        }
        // Only the running task is left, in every table that names tasks.
        let running = db.task(&tasks[3].id).unwrap().unwrap();
        assert_eq!(running.last_status, TaskStatus::Provisioning);
        assert_eq!(keys(&db, Table::Tasks), 1);
        assert_eq!(keys(&db, Table::InstanceTasks), 1);
        assert_eq!(keys(&db, Table::Retention), 0);
        assert_eq!(db.tasks_of_instance("i1").unwrap().len(), 1);
        // Its reservation is intact, the stopped ones' were released.
        assert_eq!(db.allocation_of("i1").unwrap().tasks, 1);
        // A late report of a removed task is not resurrected.
        let out = db
            .apply_reports("i1", &[report(&tasks[0].id, TaskStatus::Stopped)])
            .await
            .unwrap();
        assert_eq!(out, vec![crate::db::ReportOutcome::UnknownTask]);
        assert!(db.task(&tasks[0].id).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_pruned_failure_of_a_service_task_stays_counted() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        setup(&db).await;
        use crate::records::{CircuitBreaker, DeploymentConfig, SchedulingStrategy, ServiceStatus};
        let mut rec = ServiceRecord {
            load_balancers: Vec::new(),
            discovery: None,
            enable_execute_command: false,
            cluster: "default".into(),
            name: "svc".into(),
            status: ServiceStatus::Active,
            scheduling: SchedulingStrategy::Replica,
            desired_count: 1,
            constraints: vec![],
            strategies: vec![],
            deployment_config: DeploymentConfig {
                minimum_healthy_percent: 100,
                maximum_percent: 200,
                circuit_breaker: CircuitBreaker::default(),
            },
            health_check_grace_period_secs: 0,
            tags: vec![],
            created_at: 0,
            deployments: vec![],
            events: vec![],
            steady: false,
            throttled_until: None,
            throttle_failures: 0,
            last_completed: None,
            version: 1,
            service_deployments: vec![],
        };
        let dep = crate::services::plan::new_deployment("web", 1, now_millis());
        rec.deployments = vec![dep.clone()];
        db.store
            .commit(&Txn::new().put(
                Table::Services,
                service_key("default", "svc"),
                encode(Table::Services, &rec).unwrap(),
            ))
            .unwrap();
        let mut spec_tasks = Vec::new();
        for _ in 0..2 {
            let t = db
                .start_tasks(
                    &StartSpec {
                        cluster: "default".into(),
                        family: "web".into(),
                        revision: None,
                        instances: vec!["i1".into()],
                        count: 1,
                        started_by: dep.id.clone(),
                        group: Some("service:svc".into()),
                        tags: vec![],
                        enable_execute_command: false,
                    },
                    |_| true,
                )
                .await
                .unwrap()
                .tasks
                .remove(0);
            spec_tasks.push(t);
        }
        // One failed (exited by itself), one stopped by the scheduler.
        db.apply_reports("i1", &[report(&spec_tasks[0].id, TaskStatus::Stopped)])
            .await
            .unwrap();
        db.stop_task_as(
            "default",
            &spec_tasks[1].id,
            berth_proto::ecs::StopCode::ServiceSchedulerInitiated,
            "scaled in",
        )
        .await
        .unwrap();
        db.apply_reports("i1", &[report(&spec_tasks[1].id, TaskStatus::Stopped)])
            .await
            .unwrap();
        let p = db.prune_stopped_tasks(now_millis() + 1, 10).await.unwrap();
        assert_eq!(p.removed, 2);
        let svc = db.service("default", "svc").unwrap().unwrap();
        let d = &svc.deployments[0];
        assert_eq!(d.pruned_failures, 1, "only the failure counts");
        assert!(d.last_pruned_failure_at.is_some());
    }

    #[tokio::test]
    async fn client_tokens_expire_by_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        let now = now_millis();
        let mut txn = Txn::new();
        for (i, at) in [now - 10_000, now - 5_000, now + 60_000]
            .into_iter()
            .enumerate()
        {
            let key = crate::store::composite_key(&[b"default", format!("t{i}").as_bytes()], false);
            txn.add_put(
                Table::RunTokens,
                key.clone(),
                format!(r#"{{"fingerprint":"f","task_ids":[],"failures":[],"created_at":{at}}}"#),
            )
            .add_put(
                Table::Retention,
                retention_key(KIND_RUN_TOKEN, at, &key),
                Vec::new(),
            );
        }
        db.store.commit(&txn).unwrap();
        let p = db.prune_run_tokens(now - 6_000, 10).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                removed: 1,
                more: false
            }
        );
        let p = db.prune_run_tokens(now, 10).await.unwrap();
        assert_eq!(p.removed, 1);
        assert_eq!(keys(&db, Table::RunTokens), 1, "the fresh token stays");
        assert_eq!(keys(&db, Table::Retention), 1);
    }

    async fn audit(db: &Db, n: usize) {
        for i in 0..n {
            db.record_audit(AuditRecord {
                id: String::new(),
                time: 0,
                token_id: "t".into(),
                token_name: "t".into(),
                method: "/berth.v1.ClusterService/CreateCluster".into(),
                resource: format!("r{i}"),
                outcome: "OK".into(),
            })
            .await
            .unwrap();
        }
    }

    #[tokio::test]
    async fn audit_is_pruned_by_age_and_by_count() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        audit(&db, 10).await;
        assert_eq!(db.count_audit_records().unwrap(), 10);
        // By count: keep 4 of 10, in batches of 4.
        let long_ago = now_millis() - 3_600_000;
        let p = db.prune_audit(long_ago, 10, 4, 4).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                removed: 4,
                more: true
            }
        );
        let p = db.prune_audit(long_ago, 6, 4, 4).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                removed: 2,
                more: false
            }
        );
        let left = db.audit_events(&crate::db::AuditFilter::default()).unwrap();
        let names: Vec<_> = left.events.iter().map(|e| e.resource.as_str()).collect();
        assert_eq!(names, ["r6", "r7", "r8", "r9"], "the most recent stay");
        // By age: everything older than the cutoff, whatever the count.
        let p = db
            .prune_audit(now_millis() + 1, 4, 1000, 100)
            .await
            .unwrap();
        assert_eq!(p.removed, 4);
        assert_eq!(db.count_audit_records().unwrap(), 0);
    }

    #[tokio::test]
    async fn the_pruner_keeps_the_audit_count_across_passes() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        audit(&db, 5).await;
        let settings = crate::retention::RetentionSettings {
            audit_max_records: 3,
            ..Default::default()
        };
        let mut pruner = crate::retention::Pruner::new(db.clone(), settings);
        let never = tokio_util::sync::CancellationToken::new();
        assert_eq!(pruner.pass(&never).await.unwrap().audit, 2);
        audit(&db, 2).await;
        assert_eq!(pruner.pass(&never).await.unwrap().audit, 2);
        assert_eq!(db.count_audit_records().unwrap(), 3);
        assert_eq!(pruner.pass(&never).await.unwrap().audit, 0);
    }

    #[tokio::test]
    async fn the_migration_indexes_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        setup(&db).await;
        let tasks = start(&db, 2).await;
        db.apply_reports("i1", &[report(&tasks[0].id, TaskStatus::Stopped)])
            .await
            .unwrap();
        // A store from before the index: no entries.
        let entries = db.store.scan_prefix(Table::Retention, b"").unwrap();
        let mut txn = Txn::new();
        for (k, _) in entries {
            txn.add_delete(Table::Retention, k);
        }
        db.store.commit(&txn).unwrap();
        index_stored_records(db.store.as_ref()).unwrap();
        let entries = db.store.scan_prefix(Table::Retention, b"").unwrap();
        assert_eq!(entries.len(), 1, "the stopped task only");
        assert_eq!(
            parse_key(KIND_TASK, &entries[0].0).unwrap().1,
            tasks[0].id.as_bytes()
        );
    }

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
