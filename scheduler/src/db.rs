//! The typed database: cluster, task-definition and container-instance
//! operations as atomic [`Txn`]s over the [`Store`], each made durable before
//! it returns (every write the API acknowledges survives `kill -9`).
//!
//! Concurrency is optimistic: a write reads what it depends on, commits with
//! checks that those bytes are unchanged, and retries on conflict.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use berth_proto::taskdef::{TaskDefinition, TaskDefinitionStatus};
use serde::{de::DeserializeOwned, Serialize};

use crate::agent_link::DesiredNotifier;
use crate::records::{
    now_millis, AllocationRecord, ClusterRecord, ClusterStatus, FamilyRecord, InstanceRecord,
    InstanceStatus, TaskDefinitionRecord, TaskRecord,
};
use crate::store::{GroupCommit, Op, Store, StoreError, Table, Txn};

mod attributes;
mod auth;
pub mod autoscaling;
mod retention;
mod run;
pub mod schedules;
mod secrets;
mod services;
mod tags;
mod tasks;
mod traffic;
mod trust;
mod webhooks;
pub use webhooks::WorkerWrite;

pub use attributes::InstanceAttribute;
pub use auth::{AuditFilter, BOOTSTRAP_TOKEN_NAME, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT};

pub use retention::Pruned;
pub use run::{PlacerState, RunFailure, RunSpec, RunTasks, MAX_RUN_COUNT};
pub use services::ServiceSnapshot;
pub use tasks::{
    ReportOutcome, StartFailure, StartSpec, StartTasks, TargetReport, TaskFilter, TaskReport,
    DEFAULT_STOP_REASON, MAX_COUNT,
};
pub use trust::{check_activation, RegisterOutcome};

/// A task just placed, for other modules' unit tests.
#[cfg(test)]
pub fn placed_task_for_tests(
    id: &str,
    instance: &str,
    td: &crate::records::TaskDefinitionRecord,
    group: &str,
) -> crate::records::TaskRecord {
    tasks::placed_task(
        id.to_owned(),
        instance,
        td,
        &td.definition,
        crate::records::Reservation::default(),
        tasks::TaskOrigin {
            cluster: "default",
            group: group.to_owned(),
            started_by: "ecs-svc/1",
            overrides: None,
        },
    )
}

/// The schema this code writes. Bump it together with a step in [`migrate`].
pub const SCHEMA_VERSION: u32 = 10;
/// The `Meta` key of the schema version.
pub(crate) const SCHEMA_KEY: &[u8] = b"schema_version";
/// How many times an optimistic write retries on conflict before giving up.
const MAX_RETRIES: usize = 64;

/// Errors of database operations, mapped to gRPC codes by the API layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error("{0}")]
    FailedPrecondition(String),
    /// A precondition ECS names with an exception of its own.
    #[error("{message}")]
    Refused { refusal: Refusal, message: String },
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{field}: {message}")]
    InvalidArgument {
        field: &'static str,
        message: String,
    },
    #[error("too much contention writing {what}; try again")]
    Contention { what: &'static str },
    /// A part of the scheduler the call needs is gone (shutting down).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The failed preconditions that ECS reports with exceptions of their own
/// (`ClusterContainsServicesException`, ...); the API edges name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ClusterContainsContainerInstances,
    ClusterContainsServices,
    ClusterContainsTasks,
    ServiceNotActive,
    /// DeleteService without `force` of a REPLICA service scaled above 0
    /// (ECS: InvalidParameterException).
    ServiceScaledAboveZero,
}

impl Refusal {
    /// ECS's exception name without the `Exception` suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ClusterContainsContainerInstances => "ClusterContainsContainerInstances",
            Refusal::ClusterContainsServices => "ClusterContainsServices",
            Refusal::ClusterContainsTasks => "ClusterContainsTasks",
            Refusal::ServiceNotActive => "ServiceNotActive",
            Refusal::ServiceScaledAboveZero => "ServiceScaledAboveZero",
        }
    }
}

/// Typed access to the store; cheap to clone.
#[derive(Clone)]
pub struct Db {
    store: Arc<dyn Store>,
    /// The outbox `store` writes through, and its reader.
    events: crate::events::EventLog,
    commit: GroupCommit,
    desired: DesiredNotifier,
    /// Instances whose instance or allocation record was written by
    /// anything but the placer since it last looked: it re-reads them.
    changed: Arc<std::sync::Mutex<std::collections::HashSet<Vec<u8>>>>,
    /// Poked after writes the service controller reacts to (task reports,
    /// stops, placements, instance status, services).
    changes: Arc<tokio::sync::Notify>,
    /// Counts durable writes that others watch (the same as `changes`), for
    /// any number of watchers ([`crate::traffic::Watcher`]).
    writes: Arc<tokio::sync::watch::Sender<u64>>,
    /// DELETE_IN_PROGRESS revisions may be left for
    /// [`Db::sweep_deleted_task_definitions`] while these differ: `.0`
    /// counts deletions (raised after each is committed; 1 at open, so the
    /// first sweep looks), `.1` is the count a sweep last found nothing
    /// left at.
    deletions: Arc<(AtomicU64, AtomicU64)>,
    /// The scheduler's event counters (`/metrics`), shared by whatever
    /// holds this `Db`.
    metrics: crate::metrics::Metrics,
    /// Audit records written since open (for retention by count).
    audit_written: Arc<AtomicU64>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

fn encode<T: Serialize>(table: Table, v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|source| StoreError::Encode {
        table: table.name(),
        source,
    })
}

fn decode<T: DeserializeOwned>(table: Table, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        table: table.name(),
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn taskdef_key(family: &str, revision: u32) -> Vec<u8> {
    crate::store::composite_key(&[family.as_bytes(), &revision.to_be_bytes()], false)
}

fn family_prefix(family: &str) -> Vec<u8> {
    crate::store::composite_key(&[family.as_bytes()], true)
}

/// Steps from one schema version to the next; index `i` upgrades `i+1 → i+2`.
type Migration = fn(&dyn Store) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[
    // 1 → 2: the task tables (Tasks, InstanceTasks, Allocations) start
    // empty. The bump keeps an older scheduler, which would ignore the
    // reservations they hold, from opening the store.
    |_| Ok(()),
    // 2 → 3: operator tokens and the audit log (Tokens, Audit) start empty;
    // the first start creates the bootstrap admin token. The bump keeps an
    // older scheduler, which would serve the API without any token, from
    // opening the store.
    |_| Ok(()),
    // 3 → 4: the trust tables (Activations, RevokedCerts) start empty.
    // Instances registered with the pre-TLS credential cannot connect any
    // more and must be registered anew with an activation. The bump keeps an
    // older scheduler, which would serve the agent API without TLS, from
    // opening the store.
    |_| Ok(()),
    // 4 → 5: the Secrets table starts empty. The bump keeps an older
    // scheduler, which knows no secrets, from opening the store.
    |_| Ok(()),
    // 5 → 6: allocation records count their tasks and tasks per group
    // (placement constraints and strategies read them); recount them from
    // the tasks that hold a reservation.
    count_allocated_tasks,
    // 6 → 7: the Services table starts empty. The bump keeps an older
    // scheduler, which would not keep services running, from opening the
    // store.
    |_| Ok(()),
    // 7 → 8: records gain `tags` (absent reads as none), instances custom
    // attributes set by PutAttributes, and task definitions the status
    // DELETE_IN_PROGRESS. The bump keeps an older scheduler, which would
    // drop tags on its next write and fail to read a deleted revision, from
    // opening the store.
    |_| Ok(()),
    // 8 → 9: the Events and Webhooks tables start empty (`crate::events`,
    // `crate::webhooks`). The bump keeps an older scheduler, which would
    // change tasks without their events, from opening the store.
    |_| Ok(()),
    // 9 → 10: the Retention index (stopped tasks by the time they stopped,
    // RunTask client tokens by the time they were used) for what is
    // already stored; `crate::retention` removes them once expired.
    retention::index_stored_records,
];

fn count_allocated_tasks(store: &dyn Store) -> Result<(), StoreError> {
    let mut counts: std::collections::BTreeMap<
        String,
        (u32, std::collections::BTreeMap<String, u32>),
    > = Default::default();
    for (k, v) in store.scan_prefix(Table::Tasks, b"")? {
        let t: TaskRecord = decode(Table::Tasks, &k, &v)?;
        if t.holds_reservation() {
            let c = counts.entry(t.instance_id).or_default();
            c.0 += 1;
            *c.1.entry(t.group).or_insert(0) += 1;
        }
    }
    let mut txn = Txn::new();
    for (k, v) in store.scan_prefix(Table::Allocations, b"")? {
        let mut a: AllocationRecord = decode(Table::Allocations, &k, &v)?;
        let (tasks, groups) = counts
            .remove(String::from_utf8_lossy(&k).as_ref())
            .unwrap_or_default();
        a.tasks = tasks;
        a.groups = groups;
        txn = txn.put(Table::Allocations, k, encode(Table::Allocations, &a)?);
    }
    store.commit(&txn)
}

/// The schema version `store` holds; `None` for a new, empty store.
pub fn stored_schema_version(store: &dyn Store) -> Result<Option<u32>, StoreError> {
    store
        .get(Table::Meta, SCHEMA_KEY)?
        .map(|b| decode::<u32>(Table::Meta, SCHEMA_KEY, &b))
        .transpose()
}

fn migrate(store: &dyn Store) -> Result<(), StoreError> {
    let found = match stored_schema_version(store)? {
        Some(v) => v,
        None => {
            store.commit(&Txn::new().put(
                Table::Meta,
                SCHEMA_KEY,
                encode(Table::Meta, &SCHEMA_VERSION)?,
            ))?;
            return Ok(());
        }
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for v in found..SCHEMA_VERSION {
        let step = MIGRATIONS[(v - 1) as usize];
        step(store)?;
        store.commit(&Txn::new().put(Table::Meta, SCHEMA_KEY, encode(Table::Meta, &(v + 1))?))?;
        tracing::info!(from = v, to = v + 1, "migrated store schema");
    }
    Ok(())
}

impl Db {
    /// The event counters of `/metrics` ([`crate::metrics`]).
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Opens the database: migrates the schema, creates the `default`
    /// cluster on first start, and starts the group-commit flusher.
    pub async fn open(store: Arc<dyn Store>) -> Result<Self, DbError> {
        migrate(store.as_ref())?;
        // Every write goes through the outbox: a change and its events
        // commit in one `Txn` (`crate::events`).
        let events = crate::events::EventLog::new(store)?;
        let store: Arc<dyn Store> = Arc::new(events.clone());
        let metrics = crate::metrics::Metrics::default();
        let commit = GroupCommit::start(store.clone(), metrics.clone());
        let db = Self {
            store,
            events,
            commit,
            desired: DesiredNotifier::default(),
            changed: Default::default(),
            changes: Default::default(),
            writes: Arc::new(tokio::sync::watch::channel(0).0),
            deletions: Arc::new((AtomicU64::new(1), AtomicU64::new(0))),
            metrics,
            audit_written: Arc::new(AtomicU64::new(0)),
        };
        match db.create_cluster("default").await {
            Ok(_) | Err(DbError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(db)
    }

    /// Stops background work and releases the store (the final flush is
    /// the caller's).
    pub async fn close(&self) {
        self.commit.close().await;
    }

    /// The event log (`crate::events`).
    pub fn events(&self) -> &crate::events::EventLog {
        &self.events
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Poked after every write the service controller reacts to; it
    /// keeps one permit, so a wake-up between two evaluations is not lost.
    pub fn changes(&self) -> &Arc<tokio::sync::Notify> {
        &self.changes
    }

    /// Sees a new value after every durable write the controller is told of.
    pub fn writes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writes.subscribe()
    }

    /// Tells the controller and the watchers of a durable write.
    fn wrote(&self) {
        self.changes.notify_one();
        self.writes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether a sweep of deleted task definitions may find work.
    pub fn deletions_pending(&self) -> bool {
        self.deletions.0.load(Ordering::SeqCst) != self.deletions.1.load(Ordering::SeqCst)
    }

    /// Bumped after every durable change of an instance's desired set.
    pub fn desired_notifier(&self) -> &DesiredNotifier {
        &self.desired
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &[u8],
    ) -> Result<Option<(T, Vec<u8>)>, StoreError> {
        match self.store.get(table, key)? {
            Some(bytes) => Ok(Some((decode(table, key, &bytes)?, bytes))),
            None => Ok(None),
        }
    }

    fn scan<T: DeserializeOwned>(&self, table: Table, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.store
            .scan_prefix(table, prefix)?
            .into_iter()
            .map(|(k, v)| decode(table, &k, &v))
            .collect()
    }

    /// Commits `build()`'s transaction, retrying on conflict, then waits for
    /// durability.
    async fn write<R>(
        &self,
        what: &'static str,
        build: impl FnMut() -> Result<(Txn, R), DbError>,
    ) -> Result<R, DbError> {
        let out = self.commit_retrying(what, build)?;
        self.commit.durable().await?;
        self.wrote();
        Ok(out)
    }

    /// Commits `build()`'s transaction, retrying on conflict, without
    /// waiting for durability: the caller awaits [`GroupCommit::durable`]
    /// once for several commits before acknowledging any of them.
    fn commit_retrying<R>(
        &self,
        what: &'static str,
        mut build: impl FnMut() -> Result<(Txn, R), DbError>,
    ) -> Result<R, DbError> {
        for _ in 0..MAX_RETRIES {
            let (txn, out) = build()?;
            match self.store.commit(&txn) {
                Ok(()) => {
                    self.note_instance_writes(&txn);
                    return Ok(out);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(DbError::Contention { what })
    }

    /// Remembers the instances whose records `txn` wrote, for the placer.
    fn note_instance_writes(&self, txn: &Txn) {
        let mut changed = None;
        for op in &txn.ops {
            let (Op::Put(table, key, _) | Op::Delete(table, key)) = op;
            if matches!(table, Table::Instances | Table::Allocations) {
                changed
                    .get_or_insert_with(|| self.changed.lock().unwrap_or_else(|p| p.into_inner()))
                    .insert(key.clone());
            }
        }
    }

    /// The instances written outside the placer since the last call.
    fn take_changed_instances(&self) -> Vec<String> {
        let mut set = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        set.drain()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect()
    }

    // ------------------------------------------------------------ clusters

    /// Creates a cluster, or re-activates an INACTIVE one (ECS's CreateCluster
    /// on an existing name returns it).
    pub async fn create_cluster(&self, name: &str) -> Result<ClusterRecord, DbError> {
        self.create_cluster_tagged(name, &[]).await
    }

    /// [`Db::create_cluster`] with ECS's tags (validated by the caller).
    pub async fn create_cluster_tagged(
        &self,
        name: &str,
        tags: &[(String, String)],
    ) -> Result<ClusterRecord, DbError> {
        self.write("cluster", || {
            let existing = self.get::<ClusterRecord>(Table::Clusters, name.as_bytes())?;
            let rec = ClusterRecord {
                name: name.to_owned(),
                status: ClusterStatus::Active,
                created_at: now_millis(),
                tags: tags.to_vec(),
            };
            match existing {
                Some((c, _)) if c.status == ClusterStatus::Active => Err(DbError::AlreadyExists {
                    kind: "cluster",
                    name: name.to_owned(),
                }),
                Some((_, old)) => Ok((
                    Txn::new().check_equals(Table::Clusters, name, old).put(
                        Table::Clusters,
                        name,
                        encode(Table::Clusters, &rec)?,
                    ),
                    rec,
                )),
                None => Ok((
                    Txn::new().check_absent(Table::Clusters, name).put(
                        Table::Clusters,
                        name,
                        encode(Table::Clusters, &rec)?,
                    ),
                    rec,
                )),
            }
        })
        .await
    }

    pub fn cluster(&self, name: &str) -> Result<Option<ClusterRecord>, DbError> {
        Ok(self
            .get::<ClusterRecord>(Table::Clusters, name.as_bytes())?
            .map(|(c, _)| c))
    }

    /// The cluster if it exists and is ACTIVE.
    /// An ACTIVE cluster and its stored bytes (for a write's check that
    /// it is not deleted concurrently); NotFound otherwise.
    fn active_cluster_read(&self, name: &str) -> Result<(ClusterRecord, Vec<u8>), DbError> {
        self.get::<ClusterRecord>(Table::Clusters, name.as_bytes())?
            .filter(|(c, _)| c.status == ClusterStatus::Active)
            .ok_or_else(|| DbError::NotFound {
                kind: "cluster",
                name: name.to_owned(),
            })
    }

    pub fn active_cluster(&self, name: &str) -> Result<ClusterRecord, DbError> {
        match self.cluster(name)? {
            Some(c) if c.status == ClusterStatus::Active => Ok(c),
            _ => Err(DbError::NotFound {
                kind: "cluster",
                name: name.to_owned(),
            }),
        }
    }

    pub fn clusters(&self) -> Result<Vec<ClusterRecord>, DbError> {
        Ok(self.scan(Table::Clusters, b"")?)
    }

    /// Marks a cluster INACTIVE. Refused while container instances are
    /// registered to it (ECS's ClusterContainsContainerInstancesException).
    pub async fn delete_cluster(&self, name: &str) -> Result<ClusterRecord, DbError> {
        if name == "default" {
            return Err(DbError::FailedPrecondition(
                "the default cluster cannot be deleted: agents join it unless told otherwise"
                    .into(),
            ));
        }
        self.write("cluster", || {
            let Some((mut c, old)) = self.get::<ClusterRecord>(Table::Clusters, name.as_bytes())?
            else {
                return Err(DbError::NotFound {
                    kind: "cluster",
                    name: name.to_owned(),
                });
            };
            if c.status == ClusterStatus::Inactive {
                return Err(DbError::NotFound {
                    kind: "cluster",
                    name: name.to_owned(),
                });
            }
            let members = self
                .instances_of(name)?
                .into_iter()
                .filter(|i| i.status != InstanceStatus::Inactive)
                .count();
            if members > 0 {
                return Err(DbError::Refused {
                    refusal: Refusal::ClusterContainsContainerInstances,
                    message: format!(
                        "The Cluster cannot be deleted while Container Instances are active or draining: \
                         cluster {name:?} still has {members} registered container instance(s); deregister them first"
                    ),
                });
            }
            let services = self
                .services_of(name)?
                .into_iter()
                .filter(|s| s.status != crate::records::ServiceStatus::Inactive)
                .count();
            if services > 0 {
                return Err(DbError::Refused {
                    refusal: Refusal::ClusterContainsServices,
                    message: format!(
                        "The Cluster cannot be deleted while Services are active: cluster {name:?} \
                         still has {services} service(s); delete them first"
                    ),
                });
            }
            c.status = ClusterStatus::Inactive;
            Ok((
                Txn::new()
                    .check_equals(Table::Clusters, name, old)
                    .put(Table::Clusters, name, encode(Table::Clusters, &c)?),
                c,
            ))
        })
        .await
    }

    // ---------------------------------------------------- task definitions

    /// Registers `definition` as the next revision of its family.
    pub async fn register_task_definition(
        &self,
        definition: TaskDefinition,
    ) -> Result<TaskDefinitionRecord, DbError> {
        let family = definition.family.clone();
        self.write("task definition family", || {
            let existing = self.get::<FamilyRecord>(Table::Families, family.as_bytes())?;
            let (revision, txn) = match existing {
                Some((f, old)) => (
                    f.last_revision + 1,
                    Txn::new().check_equals(Table::Families, family.as_str(), old),
                ),
                None => (1, Txn::new().check_absent(Table::Families, family.as_str())),
            };
            let rec = TaskDefinitionRecord {
                family: family.clone(),
                revision,
                status: TaskDefinitionStatus::Active,
                registered_at: now_millis(),
                deregistered_at: None,
                definition: definition.clone(),
            };
            let txn = txn
                .put(
                    Table::Families,
                    family.as_str(),
                    encode(
                        Table::Families,
                        &FamilyRecord {
                            last_revision: revision,
                        },
                    )?,
                )
                .put(
                    Table::TaskDefinitions,
                    taskdef_key(&family, revision),
                    encode(Table::TaskDefinitions, &rec)?,
                );
            Ok((txn, rec))
        })
        .await
    }

    /// A revision, or the latest ACTIVE revision when `revision` is None.
    pub fn task_definition(
        &self,
        family: &str,
        revision: Option<u32>,
    ) -> Result<TaskDefinitionRecord, DbError> {
        let not_found = || DbError::NotFound {
            kind: "task definition",
            name: match revision {
                Some(r) => format!("{family}:{r}"),
                None => family.to_owned(),
            },
        };
        match revision {
            Some(r) => self
                .get::<TaskDefinitionRecord>(Table::TaskDefinitions, &taskdef_key(family, r))?
                .map(|(t, _)| t)
                .ok_or_else(not_found),
            None => self
                .task_definitions_of(family)?
                .into_iter()
                .rev()
                .find(|t| t.status == TaskDefinitionStatus::Active)
                .ok_or_else(not_found),
        }
    }

    /// Every revision of a family, ascending.
    pub fn task_definitions_of(&self, family: &str) -> Result<Vec<TaskDefinitionRecord>, DbError> {
        Ok(self.scan(Table::TaskDefinitions, &family_prefix(family))?)
    }

    /// Every revision of every family, by family then revision.
    pub fn all_task_definitions(&self) -> Result<Vec<TaskDefinitionRecord>, DbError> {
        Ok(self.scan(Table::TaskDefinitions, b"")?)
    }

    /// Marks a revision INACTIVE (still describable, not runnable).
    pub async fn deregister_task_definition(
        &self,
        family: &str,
        revision: u32,
    ) -> Result<TaskDefinitionRecord, DbError> {
        let key = taskdef_key(family, revision);
        self.write("task definition", || {
            let Some((mut t, old)) =
                self.get::<TaskDefinitionRecord>(Table::TaskDefinitions, &key)?
            else {
                return Err(DbError::NotFound {
                    kind: "task definition",
                    name: format!("{family}:{revision}"),
                });
            };
            if t.status == TaskDefinitionStatus::Active {
                t.status = TaskDefinitionStatus::Inactive;
                t.deregistered_at = Some(now_millis());
            }
            Ok((
                Txn::new()
                    .check_equals(Table::TaskDefinitions, key.clone(), old)
                    .put(
                        Table::TaskDefinitions,
                        key.clone(),
                        encode(Table::TaskDefinitions, &t)?,
                    ),
                t,
            ))
        })
        .await
    }

    /// ECS's DeleteTaskDefinitions for one revision: an INACTIVE revision
    /// becomes DELETE_IN_PROGRESS (never listed or run again, still
    /// described); one already DELETE_IN_PROGRESS is returned as it is. An
    /// ACTIVE revision is FailedPrecondition (deregister it first). The
    /// record leaves the store in [`Db::sweep_deleted_task_definitions`].
    pub async fn delete_task_definition(
        &self,
        family: &str,
        revision: u32,
    ) -> Result<TaskDefinitionRecord, DbError> {
        let key = taskdef_key(family, revision);
        let rec = self
            .write("task definition", || {
                let Some((mut t, old)) =
                    self.get::<TaskDefinitionRecord>(Table::TaskDefinitions, &key)?
                else {
                    return Err(DbError::NotFound {
                        kind: "task definition",
                        name: format!("{family}:{revision}"),
                    });
                };
                match t.status {
                    TaskDefinitionStatus::Active => Err(DbError::FailedPrecondition(
                        "The specified task definition is still in ACTIVE status. Please \
                     deregister the target and try again."
                            .to_owned(),
                    )),
                    TaskDefinitionStatus::DeleteInProgress => Ok((Txn::new(), t)),
                    TaskDefinitionStatus::Inactive => {
                        t.status = TaskDefinitionStatus::DeleteInProgress;
                        Ok((
                            Txn::new()
                                .check_equals(Table::TaskDefinitions, key.clone(), old)
                                .put(
                                    Table::TaskDefinitions,
                                    key.clone(),
                                    encode(Table::TaskDefinitions, &t)?,
                                ),
                            t,
                        ))
                    }
                }
            })
            .await?;
        // After the commit: a sweep that read the count before this sees
        // it changed; one that reads it after scans this revision.
        self.deletions.0.fetch_add(1, Ordering::SeqCst);
        Ok(rec)
    }

    /// Removes the DELETE_IN_PROGRESS revisions nothing uses any more: no
    /// task that is not STOPPED runs them and no service that is not
    /// INACTIVE deploys them (or keeps them as its rollback target).
    /// Nothing can start using such a revision again (it is not runnable),
    /// so a revision found unused stays unused. Returns the revisions
    /// removed, `family:revision`. Called by DeleteTaskDefinitions, before
    /// and after its deletions, and by the service controller's loop while
    /// [`Db::deletions_pending`].
    pub async fn sweep_deleted_task_definitions(&self) -> Result<Vec<String>, DbError> {
        let counted = self.deletions.0.load(Ordering::SeqCst);
        let deleted: Vec<(Vec<u8>, Vec<u8>, TaskDefinitionRecord)> = self
            .store
            .scan_prefix(Table::TaskDefinitions, b"")?
            .into_iter()
            .map(|(k, v)| {
                let t: TaskDefinitionRecord = decode(Table::TaskDefinitions, &k, &v)?;
                Ok((k, v, t))
            })
            .collect::<Result<Vec<_>, StoreError>>()?
            .into_iter()
            .filter(|(_, _, t)| t.status == TaskDefinitionStatus::DeleteInProgress)
            .collect();
        if deleted.is_empty() {
            self.deletions.1.fetch_max(counted, Ordering::SeqCst);
            return Ok(Vec::new());
        }
        let found = deleted.len();
        let mut used: std::collections::HashSet<(String, u32)> = self
            .all_tasks()?
            .into_iter()
            .filter(|t| t.last_status != crate::records::TaskStatus::Stopped)
            .map(|t| (t.family, t.revision))
            .collect();
        for svc in self.scan::<crate::records::ServiceRecord>(Table::Services, b"")? {
            if svc.status == crate::records::ServiceStatus::Inactive {
                continue;
            }
            used.extend(svc.deployments.into_iter().map(|d| (d.family, d.revision)));
            used.extend(svc.last_completed);
        }
        let mut txn = Txn::new();
        let mut removed = Vec::new();
        for (key, bytes, t) in deleted {
            if used.contains(&(t.family.clone(), t.revision)) {
                continue;
            }
            txn = txn
                .check_equals(Table::TaskDefinitions, key.clone(), bytes)
                .delete(Table::TaskDefinitions, key);
            removed.push(format!("{}:{}", t.family, t.revision));
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        match self.store.commit(&txn) {
            Ok(()) => {
                if removed.len() == found {
                    self.deletions.1.fetch_max(counted, Ordering::SeqCst);
                }
            }
            // Something changed under the sweep: the next one retries.
            Err(StoreError::Conflict) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        self.commit.durable().await?;
        tracing::info!(revisions = ?removed, "deleted task definitions removed");
        Ok(removed)
    }

    // -------------------------------------------------- container instances

    pub fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, DbError> {
        Ok(self
            .get::<InstanceRecord>(Table::Instances, id.as_bytes())?
            .map(|(i, _)| i))
    }

    pub fn instances(&self) -> Result<Vec<InstanceRecord>, DbError> {
        Ok(self.scan(Table::Instances, b"")?)
    }

    pub fn instances_of(&self, cluster: &str) -> Result<Vec<InstanceRecord>, DbError> {
        Ok(self
            .instances()?
            .into_iter()
            .filter(|i| i.cluster == cluster)
            .collect())
    }

    /// Records a newly joined instance. Its cluster must be ACTIVE.
    pub async fn create_instance(&self, rec: InstanceRecord) -> Result<InstanceRecord, DbError> {
        self.write("container instance", || {
            let (cluster, cluster_bytes) = self.active_cluster_read(&rec.cluster)?;
            Ok((
                Txn::new()
                    // The cluster must not be deleted concurrently.
                    .check_equals(Table::Clusters, cluster.name.as_str(), cluster_bytes)
                    .check_absent(Table::Instances, rec.id.as_str())
                    .put(
                        Table::Instances,
                        rec.id.as_str(),
                        encode(Table::Instances, &rec)?,
                    ),
                rec.clone(),
            ))
        })
        .await
    }

    /// Applies `change` to an instance record; writes only if it changed.
    pub async fn update_instance(
        &self,
        id: &str,
        change: impl Fn(&mut InstanceRecord),
    ) -> Result<InstanceRecord, DbError> {
        let not_found = || DbError::NotFound {
            kind: "container instance",
            name: id.to_owned(),
        };
        // Fast path: nothing to change, nothing to write or flush.
        let (current, _) = self
            .get::<InstanceRecord>(Table::Instances, id.as_bytes())?
            .ok_or_else(not_found)?;
        let mut probe = current.clone();
        change(&mut probe);
        if probe == current {
            return Ok(current);
        }
        self.write("container instance", || {
            let (mut rec, old) = self
                .get::<InstanceRecord>(Table::Instances, id.as_bytes())?
                .ok_or_else(not_found)?;
            change(&mut rec);
            Ok((
                Txn::new().check_equals(Table::Instances, id, old).put(
                    Table::Instances,
                    id,
                    encode(Table::Instances, &rec)?,
                ),
                rec,
            ))
        })
        .await
    }

    /// ECS's UpdateContainerInstancesState for one instance: `status` is
    /// ACTIVE or DRAINING. Only an ACTIVE or DRAINING instance changes (an
    /// INACTIVE one is FailedPrecondition); setting the status it already
    /// has writes nothing. Tasks are not touched: a draining instance keeps
    /// its standalone tasks and only stops taking new ones.
    pub async fn set_instance_status(
        &self,
        id: &str,
        status: InstanceStatus,
    ) -> Result<InstanceRecord, DbError> {
        if status == InstanceStatus::Inactive {
            return Err(DbError::InvalidArgument {
                field: "status",
                message: "must be ACTIVE or DRAINING; deregister an instance to make it INACTIVE"
                    .to_owned(),
            });
        }
        self.write("container instance", || {
            let (mut rec, old) = self
                .get::<InstanceRecord>(Table::Instances, id.as_bytes())?
                .ok_or_else(|| DbError::NotFound {
                    kind: "container instance",
                    name: id.to_owned(),
                })?;
            if rec.status == InstanceStatus::Inactive {
                return Err(DbError::FailedPrecondition(format!(
                    "container instance {id} is INACTIVE (deregistered); only ACTIVE and \
                     DRAINING instances change state"
                )));
            }
            if rec.status == status {
                return Ok((Txn::new(), rec));
            }
            rec.status = status;
            Ok((
                Txn::new().check_equals(Table::Instances, id, old).put(
                    Table::Instances,
                    id,
                    encode(Table::Instances, &rec)?,
                ),
                rec,
            ))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::HostResources;
    use crate::store::SledStore;

    fn taskdef(family: &str) -> TaskDefinition {
        let json = format!(
            r#"{{"family":"{family}","containerDefinitions":[{{"name":"web","image":"busybox","memory":64}}]}}"#
        );
        berth_proto::taskdef::parse_registration(&json)
            .unwrap()
            .definition
    }

    async fn open(dir: &std::path::Path) -> Db {
        Db::open(Arc::new(SledStore::open_when_free(dir).unwrap()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn default_cluster_exists_and_cannot_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        assert_eq!(db.active_cluster("default").unwrap().name, "default");
        assert!(matches!(
            db.delete_cluster("default").await,
            Err(DbError::FailedPrecondition(_))
        ));
    }

    #[tokio::test]
    async fn cluster_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        db.create_cluster("prod").await.unwrap();
        assert!(matches!(
            db.create_cluster("prod").await,
            Err(DbError::AlreadyExists { .. })
        ));
        let c = db.delete_cluster("prod").await.unwrap();
        assert_eq!(c.status, ClusterStatus::Inactive);
        assert!(matches!(
            db.active_cluster("prod"),
            Err(DbError::NotFound { .. })
        ));
        // Re-creating re-activates.
        db.create_cluster("prod").await.unwrap();
        assert_eq!(
            db.active_cluster("prod").unwrap().status,
            ClusterStatus::Active
        );
    }

    #[tokio::test]
    async fn cluster_with_instances_cannot_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        db.create_cluster("prod").await.unwrap();
        db.create_instance(InstanceRecord {
            address: None,
            id: "i1".into(),
            cluster: "prod".into(),
            hostname: "h".into(),
            status: InstanceStatus::Active,
            registered_at: 0,
            agent_version: "0".into(),
            resources: HostResources::default(),
            attributes: vec![],
            cert_serials: vec![],
            activation_id: String::new(),
            custom_attributes: vec![],
            tags: vec![],
        })
        .await
        .unwrap();
        assert!(matches!(
            db.delete_cluster("prod").await,
            Err(DbError::Refused {
                refusal: Refusal::ClusterContainsContainerInstances,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn revisions_increase_and_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        for want in 1..=3 {
            let r = db.register_task_definition(taskdef("web")).await.unwrap();
            assert_eq!(r.revision, want);
        }
        db.deregister_task_definition("web", 3).await.unwrap();
        // Latest ACTIVE is now 2; INACTIVE 3 is still describable.
        assert_eq!(db.task_definition("web", None).unwrap().revision, 2);
        let r3 = db.task_definition("web", Some(3)).unwrap();
        assert_eq!(r3.status, TaskDefinitionStatus::Inactive);
        assert!(r3.deregistered_at.is_some());
        // The next registration does not reuse 3.
        assert_eq!(
            db.register_task_definition(taskdef("web"))
                .await
                .unwrap()
                .revision,
            4
        );
        // Families do not bleed into each other's prefixes.
        db.register_task_definition(taskdef("web-2")).await.unwrap();
        assert_eq!(db.task_definitions_of("web").unwrap().len(), 4);
    }

    #[tokio::test]
    async fn deleted_revisions_are_swept_once_unused() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        for _ in 0..2 {
            db.register_task_definition(taskdef("web")).await.unwrap();
        }
        assert!(db.deletions_pending(), "the first sweep looks");
        assert!(db
            .sweep_deleted_task_definitions()
            .await
            .unwrap()
            .is_empty());
        assert!(!db.deletions_pending());
        assert!(matches!(
            db.delete_task_definition("web", 1).await,
            Err(DbError::FailedPrecondition(_))
        ));
        db.deregister_task_definition("web", 1).await.unwrap();
        let t = db.delete_task_definition("web", 1).await.unwrap();
        assert_eq!(t.status, TaskDefinitionStatus::DeleteInProgress);
        assert!(db.deletions_pending());
        assert_eq!(
            db.sweep_deleted_task_definitions().await.unwrap(),
            ["web:1"]
        );
        assert!(!db.deletions_pending());
        assert!(matches!(
            db.task_definition("web", Some(1)),
            Err(DbError::NotFound { .. })
        ));
        assert!(matches!(
            db.delete_task_definition("web", 1).await,
            Err(DbError::NotFound { .. })
        ));
        // Revisions are never reused.
        assert_eq!(
            db.register_task_definition(taskdef("web"))
                .await
                .unwrap()
                .revision,
            3
        );
    }

    #[tokio::test]
    async fn concurrent_registrations_get_distinct_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await;
        let mut handles = Vec::new();
        for _ in 0..16 {
            let db = db.clone();
            handles.push(tokio::spawn(async move {
                db.register_task_definition(taskdef("race"))
                    .await
                    .unwrap()
                    .revision
            }));
        }
        let mut revs = Vec::new();
        for h in handles {
            revs.push(h.await.unwrap());
        }
        revs.sort_unstable();
        assert_eq!(revs, (1..=16).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn everything_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path()).await;
            db.register_task_definition(taskdef("web")).await.unwrap();
            db.create_cluster("prod").await.unwrap();
            db.close().await;
        }
        let db = open(dir.path()).await;
        assert_eq!(db.task_definition("web", None).unwrap().revision, 1);
        assert!(db.active_cluster("prod").is_ok());
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        store
            .commit(&Txn::new().put(
                Table::Meta,
                SCHEMA_KEY,
                encode(Table::Meta, &(SCHEMA_VERSION + 1)).unwrap(),
            ))
            .unwrap();
        assert!(matches!(
            Db::open(store).await,
            Err(DbError::Store(StoreError::SchemaTooNew { .. }))
        ));
    }
}
