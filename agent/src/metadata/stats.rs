//! Docker-stats-shaped JSON (the Engine API's `ContainerStats`, which ECS's
//! `/stats` returns) from a container's cgroup (v1 or v2), the host's
//! `/proc/stat`, and the task's veth counters. `precpu_stats` is the
//! previous sample the endpoint took of the same container (zeros on the
//! first request), so `cpu_stats - precpu_stats` is a rate as with Docker.
//!
//! Fields Berth cannot fill from these sources (blkio, storage) are left
//! empty, as Docker leaves them on hosts that lack them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::runtime::cgroups::ContainerUsage;

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUsage {
    pub total_usage: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_usage: Vec<u64>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    pub system_cpu_usage: u64,
    pub online_cpus: u32,
    pub throttling_data: Throttling,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryStats {
    pub usage: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_usage: Option<u64>,
    pub stats: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failcnt: Option<u64>,
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PidsStats {
    pub current: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Vec<serde_json::Value>,
    pub io_serviced_recursive: Vec<serde_json::Value>,
}

/// One container's stats.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub read: String,
    pub preread: String,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    pub num_procs: u32,
    pub storage_stats: BTreeMap<String, u64>,
    pub cpu_stats: CpuStats,
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    pub name: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<BTreeMap<String, NetworkStats>>,
}

/// What the host says at the time of a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCpu {
    /// `/proc/stat`'s `cpu` line (user … steal), in nanoseconds.
    pub system_ns: u64,
    pub online_cpus: u32,
    pub memory_total: u64,
}

/// One sample of a container, kept to fill the next `precpu_stats`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: SystemTime,
    pub cpu: CpuStats,
}

/// Reads `/proc/stat` and `/proc/meminfo`.
pub fn host_cpu() -> HostCpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    parse_host(&stat, &meminfo)
}

/// The pure part of [`host_cpu`]. `USER_HZ` is 100 on Linux.
pub fn parse_host(stat: &str, meminfo: &str) -> HostCpu {
    let mut out = HostCpu::default();
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let ticks: u64 = f.take(8).filter_map(|n| n.parse::<u64>().ok()).sum();
                out.system_ns = ticks.saturating_mul(10_000_000);
            }
            Some(c) if c.starts_with("cpu") => out.online_cpus += 1,
            _ => {}
        }
    }
    out.memory_total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024);
    out
}

/// The container's view of its veth, from the host end's counters under
/// `sys_class_net` (`/sys/class/net`): what the host end sends, the
/// container receives.
pub fn veth_stats(sys_class_net: &Path, host_veth: &str) -> Option<NetworkStats> {
    let dir = sys_class_net.join(host_veth).join("statistics");
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some(NetworkStats {
        rx_bytes: read("tx_bytes")?,
        rx_packets: read("tx_packets")?,
        rx_errors: read("tx_errors")?,
        rx_dropped: read("tx_dropped")?,
        tx_bytes: read("rx_bytes")?,
        tx_packets: read("rx_packets")?,
        tx_errors: read("rx_errors")?,
        tx_dropped: read("rx_dropped")?,
    })
}

/// Builds the stats of one container.
pub fn build(
    id: &str,
    name: &str,
    usage: &ContainerUsage,
    host: HostCpu,
    now: SystemTime,
    previous: Option<&Sample>,
    network: Option<NetworkStats>,
) -> Stats {
    let online = if usage.percpu_ns.is_empty() {
        host.online_cpus
    } else {
        u32::try_from(usage.percpu_ns.len()).unwrap_or(host.online_cpus)
    };
    let cpu = CpuStats {
        cpu_usage: CpuUsage {
            total_usage: usage.cpu_total_ns,
            percpu_usage: usage.percpu_ns.clone(),
            usage_in_kernelmode: usage.cpu_system_ns,
            usage_in_usermode: usage.cpu_user_ns,
        },
        system_cpu_usage: host.system_ns,
        online_cpus: online,
        throttling_data: Throttling {
            periods: usage.throttle_periods,
            throttled_periods: usage.throttled_periods,
            throttled_time: usage.throttled_ns,
        },
    };
    Stats {
        read: super::v4::timestamp(now),
        preread: previous.map_or_else(
            || "0001-01-01T00:00:00Z".to_owned(),
            |p| super::v4::timestamp(p.at),
        ),
        pids_stats: PidsStats {
            current: usage.pids,
            limit: usage.pids_limit,
        },
        blkio_stats: BlkioStats::default(),
        num_procs: 0,
        storage_stats: BTreeMap::new(),
        precpu_stats: previous.map(|p| p.cpu.clone()).unwrap_or_default(),
        cpu_stats: cpu,
        memory_stats: MemoryStats {
            usage: usage.memory_usage,
            max_usage: usage.memory_max_usage,
            stats: usage.memory_stat.clone(),
            failcnt: usage.memory_failcnt,
            // Docker reports the host's memory for "no limit".
            limit: usage.memory_limit.unwrap_or(host.memory_total),
        },
        name: format!("/{name}"),
        id: id.to_owned(),
        networks: network.map(|n| BTreeMap::from([("eth0".to_owned(), n)])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_and_memory() {
        let stat = "cpu  100 0 50 1000 10 0 5 0 0 0\ncpu0 50 0 25 500 5 0 3 0 0 0\ncpu1 50 0 25 500 5 0 2 0 0 0\nintr 1\n";
        let h = parse_host(stat, "MemTotal:       2048 kB\nMemFree: 1 kB\n");
        assert_eq!(h.system_ns, 1165 * 10_000_000);
        assert_eq!(h.online_cpus, 2);
        assert_eq!(h.memory_total, 2048 * 1024);
    }

    #[test]
    fn stats_shape_follows_docker() {
        let usage = ContainerUsage {
            cpu_total_ns: 5_000,
            cpu_user_ns: 3_000,
            cpu_system_ns: 2_000,
            percpu_ns: vec![4_000, 1_000],
            memory_usage: 1 << 20,
            memory_limit: None,
            memory_stat: BTreeMap::from([("rss".to_owned(), 4096)]),
            pids: 2,
            ..Default::default()
        };
        let host = HostCpu {
            system_ns: 1_000_000,
            online_cpus: 2,
            memory_total: 8 << 30,
        };
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let s = build(
            "cid",
            "web",
            &usage,
            host,
            t,
            None,
            Some(NetworkStats::default()),
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["memory_stats"]["limit"],
            8u64 << 30,
            "no limit reads as the host's memory"
        );
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 5_000);
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(v["preread"], "0001-01-01T00:00:00Z");
        assert_eq!(v["networks"]["eth0"]["rx_bytes"], 0);
        assert_eq!(v["name"], "/web");
        let prev = Sample {
            at: t,
            cpu: s.cpu_stats.clone(),
        };
        let limited = ContainerUsage {
            memory_limit: Some(64 << 20),
            ..usage
        };
        let s2 = build("cid", "web", &limited, host, t, Some(&prev), None);
        assert_eq!(s2.precpu_stats.cpu_usage.total_usage, 5_000);
        assert_eq!(s2.memory_stats.limit, 64 << 20);
        assert!(serde_json::to_value(&s2).unwrap().get("networks").is_none());
    }
}
