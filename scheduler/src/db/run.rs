//! RunTask: the scheduler chooses the instances. The placer
//! ([`crate::placer`]) hands batches of requests to [`Db::run_batch`], which
//! places them with the pure engine ([`crate::placement::engine`]) against
//! an in-memory [`PlacerState`] and records the whole batch in one
//! transaction: every task, its `InstanceTasks` entry, the new allocation
//! record of every instance it touched and the `clientToken` records.
//!
//! Optimistic concurrency with a single committer: the placer is the only
//! writer that places through this path, so its batches never conflict with
//! one another; the transaction still checks the instance and allocation
//! bytes it planned against, because StartTask, stop reports (releases) and
//! instance changes write them too. Those writers leave the ids they wrote
//! in `Db::changed`, and the placer re-reads exactly those before planning;
//! on a conflict it re-reads what it touched and plans the batch again.
//! Nothing is acknowledged before the batch is durable.

use std::collections::{BTreeMap, HashMap, HashSet};

use berth_proto::taskdef::TaskDefinitionStatus;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::tasks::{instance_task_key, new_task_id, placed_task, TaskOrigin};
use super::{decode, encode, taskdef_key, Db, DbError, MAX_RETRIES};
use crate::placement::engine::{self, ClusterView, Node};
use crate::placement::spec::{Constraint, Strategy};
use crate::records::{
    now_millis, AllocationRecord, InstanceRecord, TaskDefinitionRecord, TaskOverrides, TaskRecord,
    UnixMillis,
};
use crate::reserve;
use crate::store::{StoreError, Table, Txn};

/// Most tasks one RunTask places. ECS allows 10; Berth allows more, for
/// batch work and simulations.
pub const MAX_RUN_COUNT: u32 = 1000;

/// A validated RunTask request.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub cluster: String,
    pub family: String,
    /// None: the latest ACTIVE revision.
    pub revision: Option<u32>,
    pub count: u32,
    /// None: `family:<family>`.
    pub group: Option<String>,
    pub started_by: String,
    /// The definition's own `memberOf` constraints and the request's.
    pub constraints: Vec<Constraint>,
    pub strategies: Vec<Strategy>,
    pub overrides: Option<TaskOverrides>,
    pub client_token: Option<String>,
    /// Identifies the request's parameters, so a `clientToken` reused with
    /// other parameters is refused rather than answered with old tasks.
    pub fingerprint: String,
    /// The tasks' tags (validated).
    pub tags: Vec<(String, String)>,
    /// A service deployment's load balancers: each task gets a target per
    /// entry, on the host port placed for its container port.
    pub load_balancers: Vec<crate::records::LoadBalancerRecord>,
    /// ECS's enableExecuteCommand, kept on each task.
    pub enable_execute_command: bool,
}

/// Tasks that could not be placed: ECS's reason, and the closest instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    pub instance_id: Option<String>,
    pub reason: String,
    pub detail: String,
}

/// What RunTask did.
#[derive(Debug, Clone)]
pub struct RunTasks {
    pub tasks: Vec<TaskRecord>,
    pub failures: Vec<RunFailure>,
}

/// What a RunTask with a `clientToken` placed, kept for its retries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunTokenRecord {
    fingerprint: String,
    task_ids: Vec<String>,
    failures: Vec<RunFailure>,
    created_at: UnixMillis,
}

/// The bytes an instance's records had when the placer read them: the
/// cluster, the instance record, and the allocation record (if any).
type ReadBytes = (String, Vec<u8>, Option<Vec<u8>>);

/// Per request, its result; then the desired-set generations to announce
/// once the batch is durable.
pub type BatchResult = (Vec<Result<RunTasks, DbError>>, Vec<(String, u64)>);

/// The placer's memory: every cluster's view and the bytes each instance's
/// records had when read (the transaction's checks).
#[derive(Debug)]
pub struct PlacerState {
    views: HashMap<String, ClusterView>,
    /// instance id → (cluster, instance record bytes, allocation bytes).
    read: HashMap<String, ReadBytes>,
    loaded: bool,
    rng: StdRng,
}

impl Default for PlacerState {
    fn default() -> Self {
        Self {
            views: HashMap::new(),
            read: HashMap::new(),
            loaded: false,
            rng: StdRng::from_os_rng(),
        }
    }
}

impl PlacerState {
    /// Nodes known, over all clusters.
    pub fn instances(&self) -> usize {
        self.read.len()
    }
}

fn token_key(cluster: &str, token: &str) -> Vec<u8> {
    crate::store::composite_key(&[cluster.as_bytes(), token.as_bytes()], false)
}

/// What a RunTask request runs: the definition (as registered and with
/// the request's overrides applied) and the tasks' group.
#[derive(Clone, Copy)]
struct WhatRuns<'a> {
    td: &'a TaskDefinitionRecord,
    def: &'a berth_proto::taskdef::TaskDefinition,
    group: &'a str,
}

/// One batch being planned: its transaction so far and what it touched.
#[derive(Default)]
struct Batch {
    txn: Txn,
    touched: BTreeMap<String, String>,
    definitions: HashMap<(String, Option<u32>), (TaskDefinitionRecord, Vec<u8>)>,
    tokens: HashSet<Vec<u8>>,
    /// A request failed after changing the view: the batch cannot be recorded.
    poisoned: Option<DbError>,
}

impl Db {
    /// Re-reads instance `id` into the placer's state.
    fn reload_instance(&self, st: &mut PlacerState, id: &str) -> Result<(), DbError> {
        let Some((inst, inst_bytes)) =
            self.get::<InstanceRecord>(Table::Instances, id.as_bytes())?
        else {
            // Never deleted today; if it were, it simply stops being placed on.
            if let Some((cluster, _, _)) = st.read.remove(id) {
                if let Some(v) = st.views.get_mut(&cluster) {
                    if let Some(n) = v.node(id).cloned() {
                        let mut n = n;
                        n.status = crate::records::InstanceStatus::Inactive;
                        v.upsert(n);
                    }
                }
            }
            return Ok(());
        };
        let (alloc, alloc_bytes) =
            match self.get::<AllocationRecord>(Table::Allocations, id.as_bytes())? {
                Some((a, b)) => (a, Some(b)),
                None => (AllocationRecord::default(), None),
            };
        let node = Node::from_records(&inst, alloc, false);
        st.views
            .entry(inst.cluster.clone())
            .or_default()
            .upsert(node);
        st.read
            .insert(id.to_owned(), (inst.cluster, inst_bytes, alloc_bytes));
        Ok(())
    }

    /// Brings the placer's state up to date with the store.
    fn refresh_placer(&self, st: &mut PlacerState) -> Result<(), DbError> {
        if !st.loaded {
            // Anything changed from here on is re-read next time.
            self.take_changed_instances();
            for (k, _) in self.store.scan_prefix(Table::Instances, b"")? {
                self.reload_instance(st, &String::from_utf8_lossy(&k))?;
            }
            st.loaded = true;
            return Ok(());
        }
        for id in self.take_changed_instances() {
            self.reload_instance(st, &id)?;
        }
        Ok(())
    }

    /// Places and records one batch of RunTask requests. Returns each
    /// request's result (not yet durable) and the desired-set generations to
    /// announce once it is.
    pub fn run_batch(
        &self,
        st: &mut PlacerState,
        specs: &[RunSpec],
        connected: &dyn Fn(&str) -> bool,
    ) -> BatchResult {
        let mut failure: Option<DbError> = None;
        for _ in 0..MAX_RETRIES {
            if let Err(e) = self.refresh_placer(st) {
                failure = Some(e);
                break;
            }
            let clusters: HashSet<&str> = specs.iter().map(|s| s.cluster.as_str()).collect();
            for c in clusters {
                if let Some(view) = st.views.get_mut(c) {
                    view.refresh_connected(connected);
                }
            }
            let mut batch = Batch::default();
            let results: Vec<Result<RunTasks, DbError>> = specs
                .iter()
                .map(|spec| self.plan_run(st, spec, &mut batch))
                .collect();
            if let Some(e) = batch.poisoned.take() {
                failure = Some(e);
                break;
            }
            let mut notes = Vec::new();
            let mut new_bytes = Vec::new();
            let mut txn = std::mem::take(&mut batch.txn);
            let mut build = || -> Result<(), StoreError> {
                for (id, cluster) in &batch.touched {
                    let Some(node) = st.views.get(cluster).and_then(|v| v.node(id)) else {
                        continue;
                    };
                    let mut alloc = node.alloc.clone();
                    alloc.generation += 1;
                    let Some((_, inst_bytes, alloc_bytes)) = st.read.get(id) else {
                        continue;
                    };
                    txn.add_check_equals(Table::Instances, id.as_str(), inst_bytes.clone());
                    match alloc_bytes {
                        Some(b) => txn.add_check_equals(Table::Allocations, id.as_str(), b.clone()),
                        None => txn.add_check_absent(Table::Allocations, id.as_str()),
                    };
                    let bytes = encode(Table::Allocations, &alloc)?;
                    txn.add_put(Table::Allocations, id.as_str(), bytes.clone());
                    notes.push((id.clone(), alloc.generation));
                    new_bytes.push((id.clone(), cluster.clone(), alloc, bytes));
                }
                Ok(())
            };
            if let Err(e) = build() {
                failure = Some(e.into());
                break;
            }
            if txn.ops.is_empty() {
                return (results, Vec::new());
            }
            match self.store.commit(&txn) {
                Ok(()) => {
                    for (id, cluster, alloc, bytes) in new_bytes {
                        if let Some(r) = st.read.get_mut(&id) {
                            r.2 = Some(bytes);
                        }
                        if let Some(v) = st.views.get_mut(&cluster) {
                            v.set_generation(&id, alloc.generation);
                        }
                    }
                    return (results, notes);
                }
                Err(StoreError::Conflict) => {
                    // Undo the plan in memory: re-read what it touched.
                    tracing::debug!(
                        touched = batch.touched.len(),
                        "placement batch conflicted; planning again"
                    );
                    for id in batch.touched.keys() {
                        if let Err(e) = self.reload_instance(st, id) {
                            failure = Some(e);
                            break;
                        }
                    }
                    if failure.is_some() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
        }
        // The plan was not recorded: forget it, so the next batch starts
        // from the store.
        *st = PlacerState::default();
        let e = failure.unwrap_or(DbError::Contention {
            what: "task placement",
        });
        let msg = e.to_string();
        let results = specs
            .iter()
            .map(|_| {
                Err(match &e {
                    DbError::Contention { what } => DbError::Contention { what },
                    _ => DbError::Unavailable(msg.clone()),
                })
            })
            .collect();
        (results, Vec::new())
    }

    /// Plans one request into `batch`, applying it to the state's view.
    fn plan_run(
        &self,
        st: &mut PlacerState,
        spec: &RunSpec,
        batch: &mut Batch,
    ) -> Result<RunTasks, DbError> {
        let token = spec
            .client_token
            .as_deref()
            .map(|t| token_key(&spec.cluster, t));
        if let Some(key) = &token {
            if let Some((rec, _)) = self.get::<RunTokenRecord>(Table::RunTokens, key)? {
                if rec.fingerprint != spec.fingerprint {
                    return Err(DbError::InvalidArgument {
                        field: "clientToken",
                        message: "was already used with different parameters".to_owned(),
                    });
                }
                let mut tasks = Vec::with_capacity(rec.task_ids.len());
                for id in &rec.task_ids {
                    if let Some(t) = self.task(id)? {
                        tasks.push(t);
                    }
                }
                return Ok(RunTasks {
                    tasks,
                    failures: rec.failures,
                });
            }
            if !batch.tokens.insert(key.clone()) {
                return Err(DbError::Contention {
                    what: "a RunTask with the same clientToken",
                });
            }
        }
        self.active_cluster(&spec.cluster)?;
        let def_key = (spec.family.clone(), spec.revision);
        let td = match batch.definitions.get(&def_key) {
            Some((td, _)) => td.clone(),
            None => {
                let td = self.task_definition(&spec.family, spec.revision)?;
                let key = taskdef_key(&td.family, td.revision);
                let bytes = self
                    .store
                    .get(Table::TaskDefinitions, &key)?
                    .unwrap_or_default();
                // Read once more from the bytes the transaction checks.
                let td: TaskDefinitionRecord = decode(Table::TaskDefinitions, &key, &bytes)?;
                batch
                    .txn
                    .add_check_equals(Table::TaskDefinitions, key, bytes.clone());
                batch.definitions.insert(def_key, (td.clone(), bytes));
                td
            }
        };
        if td.status != TaskDefinitionStatus::Active {
            return Err(DbError::InvalidArgument {
                field: "taskDefinition",
                message: format!(
                    "TaskDefinition is inactive: {}:{} was deregistered and cannot be run",
                    td.family, td.revision
                ),
            });
        }
        let def = match &spec.overrides {
            Some(o) => o.apply(&td.definition),
            None => td.definition.clone(),
        };
        let needs = reserve::needs(&def);
        let group = spec
            .group
            .clone()
            .unwrap_or_else(|| format!("family:{}", td.family));
        let view = st.views.entry(spec.cluster.clone()).or_default();
        let outcome = engine::place(
            view,
            &engine::Request {
                needs: &needs,
                count: spec.count,
                group: &group,
                constraints: &spec.constraints,
                strategies: &spec.strategies,
            },
            &mut st.rng,
        );
        let what = WhatRuns {
            td: &td,
            def: &def,
            group: &group,
        };
        let recorded = self.record_run(spec, &what, token, outcome, batch);
        if let Err(e) = &recorded {
            batch.poisoned = Some(DbError::Unavailable(format!(
                "could not record a placement: {e}"
            )));
        }
        recorded
    }

    /// Adds the placed tasks of one request (and its token) to `batch`.
    fn record_run(
        &self,
        spec: &RunSpec,
        what: &WhatRuns<'_>,
        token: Option<Vec<u8>>,
        outcome: engine::Outcome,
        batch: &mut Batch,
    ) -> Result<RunTasks, DbError> {
        let WhatRuns { td, def, group } = *what;
        let mut tasks = Vec::with_capacity(outcome.placed.len());
        let mut txn = Txn::new();
        for p in outcome.placed {
            let id = new_task_id();
            let mut task = placed_task(
                id.clone(),
                &p.instance_id,
                td,
                def,
                p.reservation,
                TaskOrigin {
                    cluster: &spec.cluster,
                    group: group.to_owned(),
                    started_by: &spec.started_by,
                    overrides: spec.overrides.clone(),
                },
            );
            task.tags = spec.tags.clone();
            task.enable_execute_command = spec.enable_execute_command;
            task.targets = crate::records::targets_for(
                &spec.load_balancers,
                &task.reservation,
                task.created_at,
            );
            txn = txn
                .check_absent(Table::Tasks, id.as_str())
                .put(Table::Tasks, id.as_str(), encode(Table::Tasks, &task)?)
                .put(
                    Table::InstanceTasks,
                    instance_task_key(&p.instance_id, &id),
                    Vec::new(),
                );
            batch
                .touched
                .insert(p.instance_id.clone(), spec.cluster.clone());
            tasks.push(task);
        }
        let failures: Vec<RunFailure> = outcome
            .failures
            .into_iter()
            .map(|f| RunFailure {
                instance_id: f.instance_id,
                reason: f.reason,
                detail: if spec.count > 1 {
                    format!(
                        "{} ({} of {} tasks not placed)",
                        f.detail, f.tasks, spec.count
                    )
                } else {
                    f.detail
                },
            })
            .collect();
        if let Some(key) = token {
            let rec = RunTokenRecord {
                fingerprint: spec.fingerprint.clone(),
                task_ids: tasks.iter().map(|t| t.id.clone()).collect(),
                failures: failures.clone(),
                created_at: now_millis(),
            };
            txn = txn
                .check_absent(Table::RunTokens, key.clone())
                .put(
                    Table::Retention,
                    super::retention::retention_key(
                        super::retention::KIND_RUN_TOKEN,
                        rec.created_at,
                        &key,
                    ),
                    Vec::new(),
                )
                .put(Table::RunTokens, key, encode(Table::RunTokens, &rec)?);
        }
        batch.txn.checks.append(&mut txn.checks);
        batch.txn.ops.append(&mut txn.ops);
        Ok(RunTasks { tasks, failures })
    }

    /// Waits until everything committed so far is durable, then tells the
    /// agents' streams about their new desired sets.
    pub async fn durable_then_notify(&self, notes: &[(String, u64)]) -> Result<(), DbError> {
        self.commit.durable().await?;
        self.wrote();
        for (instance, generation) in notes {
            self.desired.notify(instance, *generation);
        }
        Ok(())
    }
}
