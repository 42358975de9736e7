//! Task stats (`berthctl task stats`, `berthctl top`): `docker stats`'s
//! table per container, a table of tasks for `top`, and the JSON of
//! `TaskStats` (camelCase, as the rest of Berth's own resources). Sizes
//! print as Docker prints them: memory in binary units (`12.5MiB`),
//! network and block I/O in decimal ones (`1.2kB`).

use berth_proto::arn;
use berth_proto::v1 as pb;
use serde::Serialize;

use super::rfc3339;
use crate::output::Table;

/// One task's reading, for JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatsView {
    pub task_arn: String,
    pub cluster_arn: String,
    pub task_definition_arn: String,
    pub container_instance_arn: String,
    pub group: String,
    pub read: Option<String>,
    pub preread: Option<String>,
    pub cpu_units: f64,
    pub cpu_reserved_units: i64,
    pub cpu_utilization: Option<f64>,
    pub memory_used_bytes: u64,
    pub memory_reserved_mib: i64,
    pub memory_utilization: Option<f64>,
    pub containers: Vec<ContainerStatsView>,
    /// The task's last intervals, oldest first.
    pub recent: Vec<PointView>,
}

/// One interval of a task, for JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PointView {
    pub read: Option<String>,
    pub cpu_units: f64,
    pub memory_used_bytes: u64,
}

/// One container's reading, for JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatsView {
    pub name: String,
    pub cpu_percent: f64,
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_raw_usage_bytes: u64,
    pub memory_limit_bytes: u64,
    pub memory_max_usage_bytes: Option<u64>,
    pub memory_percent: f64,
    pub oom_kills: Option<u64>,
    pub network_rx_bytes: Option<u64>,
    pub network_rx_packets: Option<u64>,
    pub network_tx_bytes: Option<u64>,
    pub network_tx_packets: Option<u64>,
    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
    pub pids: u64,
}

impl From<pb::TaskStats> for TaskStatsView {
    fn from(t: pb::TaskStats) -> Self {
        Self {
            read: rfc3339(t.read.as_ref()),
            preread: rfc3339(t.preread.as_ref()),
            recent: t
                .recent
                .iter()
                .map(|p| PointView {
                    read: rfc3339(p.read.as_ref()),
                    cpu_units: p.cpu_units,
                    memory_used_bytes: p.memory_used_bytes,
                })
                .collect(),
            containers: t
                .containers
                .into_iter()
                .map(|c| ContainerStatsView {
                    network_rx_bytes: c.network.as_ref().map(|n| n.rx_bytes),
                    network_rx_packets: c.network.as_ref().map(|n| n.rx_packets),
                    network_tx_bytes: c.network.as_ref().map(|n| n.tx_bytes),
                    network_tx_packets: c.network.as_ref().map(|n| n.tx_packets),
                    name: c.name,
                    cpu_percent: c.cpu_percent,
                    cpu_total_ns: c.cpu_total_ns,
                    cpu_user_ns: c.cpu_user_ns,
                    cpu_system_ns: c.cpu_system_ns,
                    memory_usage_bytes: c.memory_usage_bytes,
                    memory_raw_usage_bytes: c.memory_raw_usage_bytes,
                    memory_limit_bytes: c.memory_limit_bytes,
                    memory_max_usage_bytes: c.memory_max_usage_bytes,
                    memory_percent: c.memory_percent,
                    oom_kills: c.oom_kills,
                    block_read_bytes: c.block_read_bytes,
                    block_write_bytes: c.block_write_bytes,
                    pids: c.pids,
                })
                .collect(),
            task_arn: t.task_arn,
            cluster_arn: t.cluster_arn,
            task_definition_arn: t.task_definition_arn,
            container_instance_arn: t.container_instance_arn,
            group: t.group,
            cpu_units: t.cpu_units,
            cpu_reserved_units: t.cpu_reserved_units,
            cpu_utilization: t.cpu_utilization,
            memory_used_bytes: t.memory_used_bytes,
            memory_reserved_mib: t.memory_reserved_mib,
            memory_utilization: t.memory_utilization,
        }
    }
}

/// Docker's binary size (`go-units.BytesSize`): `0B`, `512KiB`, `1.5MiB`.
pub fn binary_size(n: u64) -> String {
    size(n as f64, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

/// Docker's decimal size (`go-units.HumanSize`): `0B`, `1.2kB`, `3.4MB`.
pub fn decimal_size(n: u64) -> String {
    size(n as f64, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"])
}

fn size(mut v: f64, base: f64, units: &[&str]) -> String {
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    // Four significant digits at most, trailing zeros dropped.
    let digits = if v >= 100.0 {
        format!("{v:.1}")
    } else if v >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    let trimmed = if digits.contains('.') {
        digits
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        digits
    };
    format!("{trimmed}{}", units[i])
}

fn pair(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (None, None) => "--".to_owned(),
        (a, b) => format!(
            "{} / {}",
            decimal_size(a.unwrap_or(0)),
            decimal_size(b.unwrap_or(0))
        ),
    }
}

fn percent(p: f64) -> String {
    format!("{p:.2}%")
}

/// `docker stats`'s columns, one row per container of each task.
pub fn stats_table(tasks: &[TaskStatsView]) -> String {
    let many = tasks.len() > 1;
    let mut t = Table::new(&[
        "CONTAINER",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]);
    for task in tasks {
        let id = arn::short_id(&task.task_arn);
        for c in &task.containers {
            t.row([
                if many {
                    format!("{id}/{}", c.name)
                } else {
                    c.name.clone()
                },
                percent(c.cpu_percent),
                format!(
                    "{} / {}",
                    binary_size(c.memory_usage_bytes),
                    binary_size(c.memory_limit_bytes)
                ),
                percent(c.memory_percent),
                pair(c.network_rx_bytes, c.network_tx_bytes),
                pair(c.block_read_bytes, c.block_write_bytes),
                c.pids.to_string(),
            ]);
        }
    }
    t.render()
}

/// `berthctl top`: one row per task. CPU % as `docker stats` (100% = one
/// core); CPU/RES and MEM/RES are the use over the task's reservation,
/// what service auto scaling averages.
pub fn top_table(tasks: &[TaskStatsView]) -> String {
    let mut t = Table::new(&[
        "TASK",
        "GROUP",
        "CPU %",
        "CPU/RES",
        "MEM USAGE",
        "MEM/RES",
        "NET I/O",
        "PIDS",
    ]);
    for task in tasks {
        let net = task.containers.first().map_or_else(
            || "--".to_owned(),
            |c| pair(c.network_rx_bytes, c.network_tx_bytes),
        );
        t.row([
            arn::short_id(&task.task_arn).to_owned(),
            task.group.clone(),
            percent(task.cpu_units / 1024.0 * 100.0),
            task.cpu_utilization.map_or_else(|| "-".to_owned(), percent),
            binary_size(task.memory_used_bytes),
            task.memory_utilization
                .map_or_else(|| "-".to_owned(), percent),
            net,
            task.containers
                .iter()
                .map(|c| c.pids)
                .sum::<u64>()
                .to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::TaskStats {
        pb::TaskStats {
            task_arn: "arn:aws:ecs:local:000000000000:task/default/0123abcd".into(),
            group: "service:web".into(),
            cpu_units: 1024.0,
            cpu_reserved_units: 512,
            cpu_utilization: Some(200.0),
            memory_used_bytes: 48 << 20,
            memory_reserved_mib: 64,
            memory_utilization: Some(75.0),
            read: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            containers: vec![pb::ContainerStats {
                name: "app".into(),
                cpu_percent: 99.5,
                memory_usage_bytes: 48 << 20,
                memory_limit_bytes: 64 << 20,
                memory_percent: 75.0,
                network: Some(pb::NetworkUsage {
                    rx_bytes: 1234,
                    tx_bytes: 648,
                    ..Default::default()
                }),
                block_read_bytes: Some(4_100_000),
                block_write_bytes: Some(0),
                pids: 2,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536), "1.5KiB");
        assert_eq!(binary_size(48 << 20), "48MiB");
        assert_eq!(binary_size(8_260_000_000), "7.693GiB");
        assert_eq!(decimal_size(648), "648B");
        assert_eq!(decimal_size(1234), "1.234kB");
        assert_eq!(decimal_size(123_456_789), "123.5MB");
    }

    #[test]
    fn tables() {
        let v = vec![TaskStatsView::from(sample())];
        expect_test::expect![[r#"
            CONTAINER  CPU %   MEM USAGE / LIMIT  MEM %   NET I/O         BLOCK I/O   PIDS
            app        99.50%  48MiB / 64MiB      75.00%  1.234kB / 648B  4.1MB / 0B  2
        "#]]
        .assert_eq(&stats_table(&v));
        expect_test::expect![[r#"
            TASK      GROUP        CPU %    CPU/RES  MEM USAGE  MEM/RES  NET I/O         PIDS
            0123abcd  service:web  100.00%  200.00%  48MiB      75.00%   1.234kB / 648B  2
        "#]]
        .assert_eq(&top_table(&v));
        let json = serde_json::to_value(&v[0]).unwrap();
        assert_eq!(json["containers"][0]["networkRxBytes"], 1234);
        assert_eq!(json["read"], "2023-11-14T22:13:20Z");
        assert_eq!(json["cpuUtilization"], 200.0);
    }
}
