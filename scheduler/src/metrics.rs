//! The scheduler's Prometheus metrics (`GET /metrics`, `[metrics] listen`;
//! `docs/metrics.md` lists every series).
//!
//! Two kinds of series:
//! - **Events**, counted where they happen through the typed handles of
//!   [`Metrics`] (one method call on each hot path): RunTask/StartTask/
//!   StopTask calls, placement failures by reason, placement and store
//!   commit latency, group-commit batch sizes, gRPC requests by method and
//!   code. [`crate::db::Db`] carries the handles, so whatever holds the
//!   `Db` can count.
//! - **State**, read from the store at scrape time by [`StoreCollector`]
//!   (tasks, services, deployments, instances, connected agents): nothing
//!   is kept in sync by hand, so a gauge cannot drift from the store.
//!
//! [`registry`] puts both in one `prometheus-client` registry (prefix
//! `berth`); [`scrape`] renders it as OpenMetrics text off the async
//! runtime (the collector reads the store).

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::agents::sessions::Sessions;
use crate::db::Db;
use crate::records::{DeploymentStatus, ServiceStatus};

/// The task calls counted by `berth_task_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskCall {
    Run,
    Start,
    Stop,
}

impl TaskCall {
    fn as_str(self) -> &'static str {
        match self {
            TaskCall::Run => "RunTask",
            TaskCall::Start => "StartTask",
            TaskCall::Stop => "StopTask",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    call: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    method: String,
    code: String,
}

/// The reasons a placement failure may carry as a label (ECS's
/// `failures[].reason`); anything else counts as `OTHER`, so a label's
/// values stay a fixed set whatever the code says.
const REASONS: &[&str] = &[
    "RESOURCE:CPU",
    "RESOURCE:MEMORY",
    "RESOURCE:PORTS",
    "ATTRIBUTE",
    "AGENT",
    "MISSING",
    "INACTIVE",
    "DRAINING",
    "LOCATION",
];

/// The event counters and histograms; cheap to clone (every handle shares
/// its values).
#[derive(Debug, Clone)]
pub struct Metrics {
    task_calls: Family<CallLabels, Counter>,
    placement_failures: Family<ReasonLabels, Counter>,
    placement_seconds: Histogram,
    commit_seconds: Histogram,
    commit_batch: Histogram,
    grpc_requests: Family<GrpcLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            task_calls: Family::default(),
            placement_failures: Family::default(),
            // 100 µs … ~13 s.
            placement_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            // 1 … 4096 writes per flush.
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            grpc_requests: Family::default(),
        }
    }
}

impl Metrics {
    /// One RunTask, StartTask or StopTask call (before its checks).
    pub fn task_call(&self, call: TaskCall) {
        self.task_calls
            .get_or_create(&CallLabels {
                call: call.as_str(),
            })
            .inc();
    }

    /// One placement that failed for `reason` (ECS's failure reason).
    pub fn placement_failure(&self, reason: &str) {
        let reason = REASONS
            .iter()
            .find(|r| **r == reason)
            .map_or("OTHER", |r| *r);
        self.placement_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// How long one placement batch took to plan and record.
    pub fn placement_latency(&self, took: std::time::Duration) {
        self.placement_seconds.observe(took.as_secs_f64());
    }

    /// One store flush (group commit): how long it took and how many
    /// waiting writes it made durable.
    pub fn store_commit(&self, took: std::time::Duration, writes: u64) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_batch.observe(writes as f64);
    }

    /// One gRPC call answered: `method` is the path when `known` (a method
    /// of `berth.v1`), else `other`; `code` is tonic's code name (`Ok`,
    /// `NotFound`, …).
    pub fn grpc_request(&self, method: &str, known: bool, code: tonic::Code) {
        let method = if known { method } else { "other" };
        self.grpc_requests
            .get_or_create(&GrpcLabels {
                method: method.to_owned(),
                code: format!("{code:?}"),
            })
            .inc();
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "task_calls",
            "RunTask, StartTask and StopTask calls received",
            self.task_calls.clone(),
        );
        r.register(
            "placement_failures",
            "Tasks not placed, by ECS's failure reason",
            self.placement_failures.clone(),
        );
        r.register(
            "placement_duration_seconds",
            "Time to plan and record one placement batch",
            self.placement_seconds.clone(),
        );
        r.register(
            "store_commit_duration_seconds",
            "Time of one store flush (group commit)",
            self.commit_seconds.clone(),
        );
        r.register(
            "store_commit_batch_writes",
            "Writes made durable by one store flush (group commit)",
            self.commit_batch.clone(),
        );
        r.register(
            "grpc_requests",
            "gRPC calls answered, by method and status code",
            self.grpc_requests.clone(),
        );
    }
}

/// The gauges read from the store at each scrape.
#[derive(Debug, Clone)]
pub struct StoreCollector {
    db: Db,
    sessions: Sessions,
}

impl StoreCollector {
    pub fn new(db: Db, sessions: Sessions) -> Self {
        Self { db, sessions }
    }

    /// Every gauge's label values and value, read now.
    fn read(&self) -> Result<StoreGauges, crate::db::DbError> {
        let mut g = StoreGauges::default();
        let tasks = self.db.all_tasks()?;
        // (cluster, group) → (running, pending), for the services.
        let mut of_group: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
        for t in &tasks {
            *g.tasks
                .entry((t.cluster.clone(), t.last_status.as_str().to_owned()))
                .or_insert(0) += 1;
            if t.group.starts_with("service:") {
                let e = of_group
                    .entry((t.cluster.clone(), t.group.clone()))
                    .or_insert((0, 0));
                if t.last_status == berth_proto::ecs::TaskStatus::Running {
                    e.0 += 1;
                } else if t.last_status.is_pending() {
                    e.1 += 1;
                }
            }
        }
        for s in self.db.service_snapshots()? {
            let s = s.record;
            if s.status == ServiceStatus::Inactive {
                continue;
            }
            let (running, pending) = of_group
                .get(&(s.cluster.clone(), format!("service:{}", s.name)))
                .copied()
                .unwrap_or((0, 0));
            g.services.push((
                (s.cluster.clone(), s.name.clone()),
                ServiceCounts {
                    desired: i64::from(s.desired_count),
                    running,
                    pending,
                },
            ));
            for d in &s.deployments {
                if d.status == DeploymentStatus::Inactive {
                    continue;
                }
                *g.deployments
                    .entry((s.cluster.clone(), d.rollout_state.as_str().to_owned()))
                    .or_insert(0) += 1;
            }
        }
        for t in crate::store::Table::ALL {
            g.records.push((t.name(), self.db.count_records(t)? as i64));
        }
        for i in self.db.instances()? {
            *g.instances
                .entry((i.cluster.clone(), i.status.as_str().to_owned()))
                .or_insert(0) += 1;
            let connected = self.sessions.liveness(&i.id).connected;
            *g.connected.entry(i.cluster.clone()).or_insert(0) += i64::from(connected);
        }
        Ok(g)
    }
}

/// One scrape's reading of the store.
#[derive(Debug, Default)]
struct StoreGauges {
    /// (cluster, lastStatus) → tasks.
    tasks: BTreeMap<(String, String), i64>,
    /// (cluster, service) → its task counts.
    services: Vec<((String, String), ServiceCounts)>,
    /// (cluster, rolloutState) → deployments (PRIMARY and ACTIVE ones).
    deployments: BTreeMap<(String, String), i64>,
    /// (cluster, status) → container instances.
    instances: BTreeMap<(String, String), i64>,
    /// cluster → instances whose agent is connected now.
    connected: BTreeMap<String, i64>,
    /// Store table → records (retention keeps these bounded).
    records: Vec<(&'static str, i64)>,
}

/// A service's task counts.
#[derive(Debug, Clone, Copy)]
struct ServiceCounts {
    desired: i64,
    running: i64,
    pending: i64,
}

/// Writes one gauge family from `(labels, value)` rows, in their order
/// (the store's key order: stable from one scrape to the next).
fn gauge_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterStatus {
    cluster: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceCount {
    cluster: String,
    service: String,
    count: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterRollout {
    cluster: String,
    rollout_state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreTable {
    table: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterOnly {
    cluster: String,
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = match self.read() {
            Ok(g) => g,
            Err(e) => {
                // The event series still answer; the state ones are absent
                // from this scrape (and the log says why).
                tracing::warn!(cause = %e, "metrics: cannot read the store");
                return Ok(());
            }
        };
        encode_store(&mut encoder, &g)
    }
}

fn encode_store(encoder: &mut DescriptorEncoder, g: &StoreGauges) -> Result<(), std::fmt::Error> {
    gauge_family(
        encoder,
        "tasks",
        "Tasks in the store, by cluster and lastStatus",
        g.tasks.iter().map(|((cluster, status), n)| {
            (
                ClusterStatus {
                    cluster: cluster.clone(),
                    status: status.clone(),
                },
                *n,
            )
        }),
    )?;
    gauge_family(
        encoder,
        "service_tasks",
        "Services' desired, running and pending task counts (count=desired|running|pending)",
        g.services.iter().flat_map(|((cluster, service), n)| {
            [
                ("desired", n.desired),
                ("running", n.running),
                ("pending", n.pending),
            ]
            .map(|(count, n)| {
                (
                    ServiceCount {
                        cluster: cluster.clone(),
                        service: service.clone(),
                        count,
                    },
                    n,
                )
            })
        }),
    )?;
    gauge_family(
        encoder,
        "deployments",
        "Services' PRIMARY and ACTIVE deployments, by cluster and rolloutState",
        g.deployments.iter().map(|((cluster, state), n)| {
            (
                ClusterRollout {
                    cluster: cluster.clone(),
                    rollout_state: state.clone(),
                },
                *n,
            )
        }),
    )?;
    gauge_family(
        encoder,
        "container_instances",
        "Container instances, by cluster and status",
        g.instances.iter().map(|((cluster, status), n)| {
            (
                ClusterStatus {
                    cluster: cluster.clone(),
                    status: status.clone(),
                },
                *n,
            )
        }),
    )?;
    gauge_family(
        encoder,
        "store_records",
        "Records in the scheduler's store, by table",
        g.records
            .iter()
            .map(|(table, n)| (StoreTable { table }, *n)),
    )?;
    gauge_family(
        encoder,
        "agents_connected",
        "Container instances whose agent holds a live session now",
        g.connected.iter().map(|(cluster, n)| {
            (
                ClusterOnly {
                    cluster: cluster.clone(),
                },
                *n,
            )
        }),
    )
}

/// The registry `/metrics` renders: `metrics`' handles and the store's
/// gauges, under the prefix `berth`.
pub fn registry(metrics: &Metrics, store: StoreCollector) -> Registry {
    let mut r = Registry::with_prefix("berth");
    metrics.register(&mut r);
    r.register_collector(Box::new(store));
    r
}

/// Renders `registry` (OpenMetrics text) on the blocking pool: the store
/// collector reads sled.
pub async fn scrape(registry: Arc<Registry>) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .map(|()| out)
            .map_err(|e| format!("encoding the metrics: {e}"))
    })
    .await
    .map_err(|e| format!("the scrape task failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(r: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, r).unwrap();
        out
    }

    #[test]
    fn event_series_render_with_their_labels() {
        let m = Metrics::default();
        m.task_call(TaskCall::Run);
        m.task_call(TaskCall::Run);
        m.task_call(TaskCall::Stop);
        m.placement_failure("RESOURCE:MEMORY");
        m.placement_failure("something new");
        m.placement_latency(std::time::Duration::from_millis(3));
        m.store_commit(std::time::Duration::from_millis(2), 5);
        m.grpc_request("/berth.v1.TaskService/RunTask", true, tonic::Code::Ok);
        m.grpc_request("/evil/path", false, tonic::Code::PermissionDenied);
        let mut r = Registry::with_prefix("berth");
        m.register(&mut r);
        let text = render(&r);
        for line in [
            "berth_task_calls_total{call=\"RunTask\"} 2",
            "berth_task_calls_total{call=\"StopTask\"} 1",
            "berth_placement_failures_total{reason=\"RESOURCE:MEMORY\"} 1",
            "berth_placement_failures_total{reason=\"OTHER\"} 1",
            "berth_placement_duration_seconds_count 1",
            "berth_store_commit_duration_seconds_count 1",
            "berth_store_commit_batch_writes_sum 5.0",
            "berth_grpc_requests_total{method=\"/berth.v1.TaskService/RunTask\",code=\"Ok\"} 1",
            "berth_grpc_requests_total{method=\"other\",code=\"PermissionDenied\"} 1",
            "# TYPE berth_placement_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn store_gauges_render_one_row_per_label_set() {
        let mut g = StoreGauges::default();
        g.tasks.insert(("default".into(), "RUNNING".into()), 3);
        g.services.push((
            ("default".into(), "web".into()),
            ServiceCounts {
                desired: 4,
                running: 3,
                pending: 1,
            },
        ));
        g.deployments
            .insert(("default".into(), "IN_PROGRESS".into()), 1);
        g.instances.insert(("default".into(), "ACTIVE".into()), 2);
        g.connected.insert("default".into(), 1);
        #[derive(Debug)]
        struct Fixed(std::sync::Mutex<Option<StoreGauges>>);
        impl Collector for Fixed {
            fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                let g = self.0.lock().unwrap();
                encode_store(&mut e, g.as_ref().unwrap())
            }
        }
        let mut r = Registry::with_prefix("berth");
        r.register_collector(Box::new(Fixed(std::sync::Mutex::new(Some(g)))));
        let text = render(&r);
        expect_test::expect![[r##"
            # HELP berth_tasks Tasks in the store, by cluster and lastStatus
            # TYPE berth_tasks gauge
            berth_tasks{cluster="default",status="RUNNING"} 3
            # HELP berth_service_tasks Services' desired, running and pending task counts (count=desired|running|pending)
            # TYPE berth_service_tasks gauge
            berth_service_tasks{cluster="default",service="web",count="desired"} 4
            berth_service_tasks{cluster="default",service="web",count="running"} 3
            berth_service_tasks{cluster="default",service="web",count="pending"} 1
            # HELP berth_deployments Services' PRIMARY and ACTIVE deployments, by cluster and rolloutState
            # TYPE berth_deployments gauge
            berth_deployments{cluster="default",rollout_state="IN_PROGRESS"} 1
            # HELP berth_container_instances Container instances, by cluster and status
            # TYPE berth_container_instances gauge
            berth_container_instances{cluster="default",status="ACTIVE"} 2
            # HELP berth_store_records Records in the scheduler's store, by table
            # TYPE berth_store_records gauge
            # HELP berth_agents_connected Container instances whose agent holds a live session now
            # TYPE berth_agents_connected gauge
            berth_agents_connected{cluster="default"} 1
            # EOF
        "##]]
        .assert_eq(&text);
    }
}
