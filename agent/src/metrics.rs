//! The agent's Prometheus metrics (`GET /metrics` on `metrics_listen`,
//! default `127.0.0.1:9465`; `docs/metrics.md` lists every series).
//!
//! - **Events**, counted through the typed handles of [`AgentMetrics`]
//!   where they happen: image pulls (duration, bytes downloaded, failures).
//! - **This host's tasks**, read at scrape time by [`HostCollector`]: tasks
//!   and containers by status (the [`Reporter`]'s latest reports), and per
//!   task and per container CPU seconds, memory usage and limit, OOM kills,
//!   block I/O (the containers' cgroups, through the same
//!   [`CgroupManager`] readers the metadata endpoint's `/stats` uses) and
//!   network bytes (the task's veth). Only tasks in the metadata
//!   [`Registry`] (network set up, not yet torn down) that have not
//!   reported STOPPED are read, so a task's series go when it stops and
//!   the label sets are bounded by the tasks running here.
//!
//! Labels of the per-task series: `cluster, service, family, revision,
//! task` (and `container`); `service` is the service's name for a service's
//! task, empty otherwise (from the task's group in the desired set).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry as PromRegistry, Unit};
use tokio::sync::watch;

use crate::desired::DesiredState;
use crate::metadata::stats::{veth_stats, NetworkStats};
use crate::metadata::Registry;
use crate::runtime::cgroups::{CgroupManager, ContainerUsage, Stats};
use crate::runtime::report::{Reporter, TaskStatus};

/// The event counters; cheap to clone (every handle shares its values).
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    pull_seconds: Histogram,
    pull_bytes: Counter,
    pull_failures: Counter,
    /// containerd calls, timed where the agent's clients share the channel.
    pub containerd: crate::runtime::containerd::ContainerdCalls,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self {
            // 50 ms … ~27 min.
            pull_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 16)),
            pull_bytes: Counter::default(),
            pull_failures: Counter::default(),
            containerd: Default::default(),
        }
    }
}

impl AgentMetrics {
    /// One pull from a registry ended (`ok`: the image is ready).
    pub fn image_pull(&self, took: std::time::Duration, ok: bool) {
        if ok {
            self.pull_seconds.observe(took.as_secs_f64());
        } else {
            self.pull_failures.inc();
        }
    }

    /// A layer of `bytes` (compressed, as the registry sends it) downloaded.
    pub fn image_bytes(&self, bytes: u64) {
        self.pull_bytes.inc_by(bytes);
    }

    fn register(&self, r: &mut PromRegistry) {
        r.register(
            "agent_image_pull_duration_seconds",
            "Time of each successful image pull from a registry",
            self.pull_seconds.clone(),
        );
        r.register_with_unit(
            "agent_image_pull",
            "Layer bytes downloaded from registries",
            Unit::Bytes,
            self.pull_bytes.clone(),
        );
        r.register(
            "agent_image_pull_failures",
            "Image pulls that failed",
            self.pull_failures.clone(),
        );
        r.register(
            "agent_containerd_call_duration_seconds",
            "Time of each containerd call until its answer, by gRPC method",
            self.containerd.duration.clone(),
        );
        r.register(
            "agent_containerd_call_errors",
            "containerd calls that failed, by gRPC method and code",
            self.containerd.errors.clone(),
        );
    }
}

/// The labels of a task's series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TaskLabels {
    pub cluster: String,
    pub service: String,
    pub family: String,
    pub revision: String,
    pub task: String,
}

/// The labels of a container's series: its task's, and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ContainerLabels {
    cluster: String,
    service: String,
    family: String,
    revision: String,
    task: String,
    container: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// One running task as read at a scrape.
#[derive(Debug, Clone, Default)]
pub struct TaskSample {
    /// The task's ARN (not a label: the usage samples carry it).
    pub arn: String,
    pub labels: Option<TaskLabels>,
    /// The task cgroup's usage; `None` if it could not be read.
    pub usage: Option<Stats>,
    /// The task's veth, as the task sees it (bridge and awsvpc tasks).
    pub network: Option<NetworkStats>,
    /// Containers whose cgroup could be read, by name.
    pub containers: Vec<(String, ContainerUsage)>,
}

/// Everything one scrape reads of this host.
#[derive(Debug, Clone, Default)]
pub struct HostReading {
    /// ECS lastStatus → tasks (every task the agent reports).
    pub task_statuses: BTreeMap<String, i64>,
    /// Container lastStatus → containers.
    pub container_statuses: BTreeMap<String, i64>,
    pub tasks: Vec<TaskSample>,
}

/// Reads this host's tasks at scrape time.
#[derive(Debug)]
pub struct HostCollector {
    pub registry: Registry,
    pub reporter: Reporter,
    pub desired: watch::Receiver<Option<DesiredState>>,
    pub cgroups: CgroupManager,
    /// `/sys/class/net`.
    pub sys_class_net: PathBuf,
}

/// `service:NAME` → `NAME`; any other group → empty.
fn service_of(group: &str) -> String {
    group
        .strip_prefix("service:")
        .unwrap_or_default()
        .to_owned()
}

impl HostCollector {
    /// Reads the reports and every running task's cgroups and veth now
    /// (blocking); the usage samples ([`crate::usage`]) read through it too.
    pub fn read(&self) -> HostReading {
        let mut out = HostReading::default();
        let (_, reports) = self.reporter.since(0);
        let mut status_of = BTreeMap::new();
        for r in &reports {
            *out.task_statuses
                .entry(r.status.as_str().to_owned())
                .or_insert(0) += 1;
            for c in &r.containers {
                *out.container_statuses
                    .entry(c.status.as_str().to_owned())
                    .or_insert(0) += 1;
            }
            status_of.insert(r.arn.clone(), r.status);
        }
        let groups: BTreeMap<String, String> = self
            .desired
            .borrow()
            .as_ref()
            .map(|d| {
                d.tasks
                    .iter()
                    .map(|t| (t.task_arn.clone(), t.group.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for t in self.registry.tasks() {
            if status_of.get(&t.arn) == Some(&TaskStatus::Stopped) {
                continue;
            }
            let labels = TaskLabels {
                cluster: t.cluster.clone(),
                service: groups
                    .get(&t.arn)
                    .map_or_else(String::new, |g| service_of(g)),
                family: t.family.clone(),
                revision: t.revision.to_string(),
                task: t.task_id.clone(),
            };
            let containers = t
                .containers
                .iter()
                .filter_map(|c| {
                    self.cgroups
                        .container_usage(&t.task_id, &c.name)
                        .ok()
                        .map(|u| (c.name.clone(), u))
                })
                .collect();
            out.tasks.push(TaskSample {
                arn: t.arn.clone(),
                labels: Some(labels),
                usage: self.cgroups.task_stats(&t.task_id).ok(),
                network: t
                    .host_veth
                    .as_deref()
                    .and_then(|v| veth_stats(&self.sys_class_net, v)),
                containers,
            });
        }
        out
    }
}

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_host(&mut encoder, &self.read())
    }
}

/// One family's descriptor, then a row per `(labels, value)`.
fn gauges<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

/// As [`gauges`], for counters (written with `_total`).
fn counters<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
    }
    Ok(())
}

fn container_labels(t: &TaskLabels, container: &str) -> ContainerLabels {
    ContainerLabels {
        cluster: t.cluster.clone(),
        service: t.service.clone(),
        family: t.family.clone(),
        revision: t.revision.clone(),
        task: t.task.clone(),
        container: container.to_owned(),
    }
}

/// Writes a reading; pure.
pub fn encode_host(e: &mut DescriptorEncoder, r: &HostReading) -> Result<(), std::fmt::Error> {
    let status_rows = |m: &BTreeMap<String, i64>| -> Vec<(StatusLabels, u64)> {
        m.iter()
            .map(|(s, n)| {
                (
                    StatusLabels { status: s.clone() },
                    u64::try_from(*n).unwrap_or(0),
                )
            })
            .collect()
    };
    gauges(
        e,
        "agent_tasks",
        "Tasks this agent reports, by lastStatus",
        status_rows(&r.task_statuses),
    )?;
    gauges(
        e,
        "agent_containers",
        "Containers of the tasks this agent reports, by lastStatus",
        status_rows(&r.container_statuses),
    )?;
    let tasks: Vec<(&TaskLabels, &TaskSample)> = r
        .tasks
        .iter()
        .filter_map(|t| t.labels.as_ref().map(|l| (l, t)))
        .collect();
    let usage = |f: fn(&Stats) -> Option<u64>| {
        tasks
            .iter()
            .filter_map(move |(l, t)| t.usage.as_ref().and_then(f).map(|v| ((*l).clone(), v)))
    };
    counters(
        e,
        "task_cpu_seconds",
        "CPU time of the task's cgroup",
        usage(|s| Some(s.cpu_usage_ns)).map(|(l, ns)| (l, ns as f64 / 1e9)),
    )?;
    gauges(
        e,
        "task_memory_usage_bytes",
        "Memory use of the task's cgroup",
        usage(|s| Some(s.memory_usage_bytes)),
    )?;
    gauges(
        e,
        "task_memory_limit_bytes",
        "Memory limit of the task's cgroup (absent: none)",
        usage(|s| s.memory_limit_bytes),
    )?;
    let net = |f: fn(&NetworkStats) -> u64| {
        tasks
            .iter()
            .filter_map(move |(l, t)| t.network.as_ref().map(|n| ((*l).clone(), f(n) as f64)))
    };
    counters(
        e,
        "task_network_receive_bytes",
        "Bytes the task received on its interface",
        net(|n| n.rx_bytes),
    )?;
    counters(
        e,
        "task_network_transmit_bytes",
        "Bytes the task sent on its interface",
        net(|n| n.tx_bytes),
    )?;
    let per_container = |f: fn(&ContainerUsage) -> Option<u64>| {
        tasks.iter().flat_map(move |(l, t)| {
            t.containers
                .iter()
                .filter_map(move |(name, u)| f(u).map(|v| (container_labels(l, name), v)))
        })
    };
    counters(
        e,
        "container_cpu_seconds",
        "CPU time of the container's cgroup",
        per_container(|u| Some(u.cpu_total_ns)).map(|(l, ns)| (l, ns as f64 / 1e9)),
    )?;
    gauges(
        e,
        "container_memory_usage_bytes",
        "Memory use of the container's cgroup",
        per_container(|u| Some(u.memory_usage)),
    )?;
    gauges(
        e,
        "container_memory_limit_bytes",
        "Memory limit of the container's cgroup (absent: none)",
        per_container(|u| u.memory_limit),
    )?;
    counters(
        e,
        "container_oom_kills",
        "Processes of the container the kernel's OOM killer killed",
        per_container(|u| u.oom_kills).map(|(l, v)| (l, v as f64)),
    )?;
    counters(
        e,
        "container_block_read_bytes",
        "Bytes the container read from block devices",
        per_container(|u| u.io_read_bytes).map(|(l, v)| (l, v as f64)),
    )?;
    counters(
        e,
        "container_block_write_bytes",
        "Bytes the container wrote to block devices",
        per_container(|u| u.io_write_bytes).map(|(l, v)| (l, v as f64)),
    )
}

/// The registry `/metrics` renders, under the prefix `berth`.
pub fn registry(metrics: &AgentMetrics, host: HostCollector) -> PromRegistry {
    let mut r = PromRegistry::with_prefix("berth");
    metrics.register(&mut r);
    r.register_collector(Box::new(host));
    r
}

/// Renders `registry` (OpenMetrics text) on the blocking pool: the
/// collector reads cgroup files.
pub async fn scrape(registry: Arc<PromRegistry>) -> Result<String, String> {
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

    #[derive(Debug)]
    struct Fixed(HostReading);

    impl Collector for Fixed {
        fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_host(&mut e, &self.0)
        }
    }

    fn render(r: &PromRegistry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, r).unwrap();
        out
    }

    #[test]
    fn service_comes_from_the_group() {
        assert_eq!(service_of("service:web"), "web");
        assert_eq!(service_of("family:web"), "");
        assert_eq!(service_of(""), "");
    }

    #[test]
    fn host_series_carry_the_task_labels() {
        let labels = TaskLabels {
            cluster: "default".into(),
            service: "web".into(),
            family: "web".into(),
            revision: "3".into(),
            task: "0123abcd".into(),
        };
        let reading = HostReading {
            task_statuses: BTreeMap::from([("RUNNING".into(), 1)]),
            container_statuses: BTreeMap::from([("RUNNING".into(), 2)]),
            tasks: vec![TaskSample {
                arn: String::new(),
                labels: Some(labels),
                usage: Some(Stats {
                    cpu_usage_ns: 1_500_000_000,
                    memory_usage_bytes: 4096,
                    memory_limit_bytes: Some(64 << 20),
                    pids: 2,
                }),
                network: Some(NetworkStats {
                    rx_bytes: 10,
                    tx_bytes: 20,
                    ..NetworkStats::default()
                }),
                containers: vec![(
                    "app".into(),
                    ContainerUsage {
                        cpu_total_ns: 250_000_000,
                        memory_usage: 2048,
                        memory_limit: None,
                        oom_kills: Some(0),
                        io_read_bytes: Some(512),
                        io_write_bytes: None,
                        ..ContainerUsage::default()
                    },
                )],
            }],
        };
        let mut r = PromRegistry::with_prefix("berth");
        r.register_collector(Box::new(Fixed(reading)));
        expect_test::expect![[r##"
            # HELP berth_agent_tasks Tasks this agent reports, by lastStatus
            # TYPE berth_agent_tasks gauge
            berth_agent_tasks{status="RUNNING"} 1
            # HELP berth_agent_containers Containers of the tasks this agent reports, by lastStatus
            # TYPE berth_agent_containers gauge
            berth_agent_containers{status="RUNNING"} 2
            # HELP berth_task_cpu_seconds CPU time of the task's cgroup
            # TYPE berth_task_cpu_seconds counter
            berth_task_cpu_seconds_total{cluster="default",service="web",family="web",revision="3",task="0123abcd"} 1.5
            # HELP berth_task_memory_usage_bytes Memory use of the task's cgroup
            # TYPE berth_task_memory_usage_bytes gauge
            berth_task_memory_usage_bytes{cluster="default",service="web",family="web",revision="3",task="0123abcd"} 4096
            # HELP berth_task_memory_limit_bytes Memory limit of the task's cgroup (absent: none)
            # TYPE berth_task_memory_limit_bytes gauge
            berth_task_memory_limit_bytes{cluster="default",service="web",family="web",revision="3",task="0123abcd"} 67108864
            # HELP berth_task_network_receive_bytes Bytes the task received on its interface
            # TYPE berth_task_network_receive_bytes counter
            berth_task_network_receive_bytes_total{cluster="default",service="web",family="web",revision="3",task="0123abcd"} 10.0
            # HELP berth_task_network_transmit_bytes Bytes the task sent on its interface
            # TYPE berth_task_network_transmit_bytes counter
            berth_task_network_transmit_bytes_total{cluster="default",service="web",family="web",revision="3",task="0123abcd"} 20.0
            # HELP berth_container_cpu_seconds CPU time of the container's cgroup
            # TYPE berth_container_cpu_seconds counter
            berth_container_cpu_seconds_total{cluster="default",service="web",family="web",revision="3",task="0123abcd",container="app"} 0.25
            # HELP berth_container_memory_usage_bytes Memory use of the container's cgroup
            # TYPE berth_container_memory_usage_bytes gauge
            berth_container_memory_usage_bytes{cluster="default",service="web",family="web",revision="3",task="0123abcd",container="app"} 2048
            # HELP berth_container_memory_limit_bytes Memory limit of the container's cgroup (absent: none)
            # TYPE berth_container_memory_limit_bytes gauge
            # HELP berth_container_oom_kills Processes of the container the kernel's OOM killer killed
            # TYPE berth_container_oom_kills counter
            berth_container_oom_kills_total{cluster="default",service="web",family="web",revision="3",task="0123abcd",container="app"} 0.0
            # HELP berth_container_block_read_bytes Bytes the container read from block devices
            # TYPE berth_container_block_read_bytes counter
            berth_container_block_read_bytes_total{cluster="default",service="web",family="web",revision="3",task="0123abcd",container="app"} 512.0
            # HELP berth_container_block_write_bytes Bytes the container wrote to block devices
            # TYPE berth_container_block_write_bytes counter
            # EOF
        "##]]
        .assert_eq(&render(&r));
    }

    #[test]
    fn pull_series_render() {
        let m = AgentMetrics::default();
        m.image_pull(std::time::Duration::from_millis(300), true);
        m.image_pull(std::time::Duration::from_millis(300), false);
        m.image_bytes(1000);
        let mut r = PromRegistry::with_prefix("berth");
        m.register(&mut r);
        let text = render(&r);
        for line in [
            "berth_agent_image_pull_duration_seconds_count 1",
            "berth_agent_image_pull_bytes_total 1000",
            "berth_agent_image_pull_failures_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
