//! The arithmetic of task stats, pure: rates between two samples of a task
//! ([`view`]), and each service's per-minute utilization the way ECS
//! computes `ECSServiceAverageCPUUtilization` and
//! `ECSServiceAverageMemoryUtilization` ([`Minutes`], [`Utilization`]):
//!
//! > CPU units used by the service's tasks / CPU units reserved for them
//! > × 100 (memory likewise: MiB used / MiB reserved).
//!
//! Each interval between two samples of a task is credited to the minute in
//! which its second sample arrived: its CPU time and wall time, and its
//! memory weighted by the wall time. A task's use in a minute is its CPU
//! time over its wall time in it (so a task seen for part of a minute counts
//! at its average while it ran), and its reservation counts once. A minute
//! no interval of the service fell in has no datapoint (`None`): missing
//! data, which never scales in.

use std::collections::{BTreeMap, HashMap};

use super::{Sample, TaskMeta};

/// Minutes of aggregates kept per service: more than the 15 datapoints a
/// target-tracking scale-in waits for.
pub const MINUTES_KEPT: u64 = 20;

/// One minute's datapoint of a service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Utilization {
    /// CPU used over CPU reserved, in percent; `None` if the tasks reserve
    /// no CPU.
    pub cpu: Option<f64>,
    /// Memory used (working set) over memory reserved, in percent; `None` if
    /// they reserve none.
    pub memory: Option<f64>,
    /// Tasks with a reading in the minute.
    pub tasks: u32,
}

/// What one task contributed to one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct TaskMinute {
    cpu_ns: u64,
    wall_ns: u64,
    /// Σ memory bytes × interval ns.
    memory_byte_ns: u128,
    reserved_cpu_units: i64,
    reserved_memory_mib: i64,
}

/// A service's last [`MINUTES_KEPT`] minutes, by unix minute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minutes {
    minutes: BTreeMap<u64, HashMap<String, TaskMinute>>,
}

/// One interval of one task, as [`Minutes::add`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub cpu_ns: u64,
    pub wall_ns: u64,
    pub memory_bytes: u64,
    pub reserved_cpu_units: i64,
    pub reserved_memory_mib: i64,
}

impl Minutes {
    /// Credits `interval` of `task` to `minute`, and forgets minutes older
    /// than [`MINUTES_KEPT`] before it.
    pub fn add(&mut self, minute: u64, task: &str, interval: Interval) {
        let m = self
            .minutes
            .entry(minute)
            .or_default()
            .entry(task.to_owned())
            .or_default();
        m.cpu_ns = m.cpu_ns.saturating_add(interval.cpu_ns);
        m.wall_ns = m.wall_ns.saturating_add(interval.wall_ns);
        m.memory_byte_ns = m
            .memory_byte_ns
            .saturating_add(u128::from(interval.memory_bytes) * u128::from(interval.wall_ns));
        m.reserved_cpu_units = interval.reserved_cpu_units;
        m.reserved_memory_mib = interval.reserved_memory_mib;
        self.prune(minute);
    }

    /// Forgets minutes before `now - MINUTES_KEPT`.
    pub fn prune(&mut self, now_minute: u64) {
        let oldest = now_minute.saturating_sub(MINUTES_KEPT - 1);
        self.minutes = self.minutes.split_off(&oldest);
    }

    pub fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }

    /// The service's datapoint for `minute`; `None` without readings.
    pub fn utilization(&self, minute: u64) -> Option<Utilization> {
        let tasks = self.minutes.get(&minute)?;
        let (mut used_cpu, mut used_mem) = (0f64, 0f64);
        let (mut res_cpu, mut res_mem) = (0i64, 0i64);
        let mut n = 0u32;
        for t in tasks.values().filter(|t| t.wall_ns > 0) {
            n += 1;
            used_cpu += t.cpu_ns as f64 / t.wall_ns as f64 * 1024.0;
            used_mem += t.memory_byte_ns as f64 / t.wall_ns as f64;
            res_cpu += t.reserved_cpu_units.max(0);
            res_mem += t.reserved_memory_mib.max(0);
        }
        if n == 0 {
            return None;
        }
        Some(Utilization {
            cpu: (res_cpu > 0).then(|| used_cpu / res_cpu as f64 * 100.0),
            memory: (res_mem > 0).then(|| used_mem / (res_mem as f64 * MIB) * 100.0),
            tasks: n,
        })
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// A task's reading as people see it (`task stats`, `top`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub read_ms: i64,
    /// The previous sample's time; `None` on the first.
    pub preread_ms: Option<i64>,
    /// CPU units used between the two samples (1024 = one core).
    pub cpu_units: f64,
    pub cpu_utilization: Option<f64>,
    pub memory_used_bytes: u64,
    pub memory_utilization: Option<f64>,
    pub containers: Vec<ContainerView>,
}

/// One container as `docker stats` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub usage: super::ContainerUsage,
    /// 100 = one core busy.
    pub cpu_percent: f64,
    /// Usage minus inactive file pages.
    pub memory_working_set: u64,
    /// The container's limit, or the host's memory.
    pub memory_limit: u64,
    pub memory_percent: f64,
}

/// CPU time over wall time between two cumulative readings; 0 when either
/// is missing, the counter went back (a restarted container), or no time
/// passed.
fn rate(prev: Option<u64>, cur: Option<u64>, wall_ns: u64) -> f64 {
    match (prev, cur) {
        (Some(p), Some(c)) if c >= p && wall_ns > 0 => (c - p) as f64 / wall_ns as f64,
        _ => 0.0,
    }
}

/// Wall time between two samples, in ns (0 if the clock went back).
pub fn wall_ns(prev: &Sample, cur: &Sample) -> u64 {
    u64::try_from(cur.read_ms.saturating_sub(prev.read_ms))
        .unwrap_or(0)
        .saturating_mul(1_000_000)
}

/// The task's CPU time: its cgroup's, else its containers' sum.
pub fn task_cpu_ns(s: &Sample) -> Option<u64> {
    s.task.cpu_total_ns.or_else(|| {
        (!s.task.containers.is_empty())
            .then(|| s.task.containers.iter().map(|c| c.cpu_total_ns).sum())
    })
}

/// The task's memory in use: its containers' working sets.
pub fn task_memory(s: &Sample) -> u64 {
    s.task
        .containers
        .iter()
        .map(super::ContainerUsage::working_set)
        .sum()
}

/// The interval between two samples of a task, for [`Minutes::add`].
pub fn interval(meta: &TaskMeta, prev: &Sample, cur: &Sample) -> Option<Interval> {
    let wall = wall_ns(prev, cur);
    let (p, c) = (task_cpu_ns(prev)?, task_cpu_ns(cur)?);
    if wall == 0 || c < p {
        return None;
    }
    Some(Interval {
        cpu_ns: c - p,
        wall_ns: wall,
        memory_bytes: task_memory(cur),
        reserved_cpu_units: meta.reserved_cpu_units,
        reserved_memory_mib: meta.reserved_memory_mib,
    })
}

/// The view of `cur`, with rates since `prev`.
pub fn view(meta: &TaskMeta, prev: Option<&Sample>, cur: &Sample) -> TaskView {
    let wall = prev.map_or(0, |p| wall_ns(p, cur));
    let cpu_units = rate(prev.and_then(task_cpu_ns), task_cpu_ns(cur), wall) * 1024.0;
    let memory_used_bytes = task_memory(cur);
    let containers = cur
        .task
        .containers
        .iter()
        .map(|c| {
            let before = prev.and_then(|p| {
                p.task
                    .containers
                    .iter()
                    .find(|x| x.name == c.name)
                    .map(|x| x.cpu_total_ns)
            });
            let limit = c
                .memory_limit_bytes
                .or(cur.task.memory_limit_bytes)
                .unwrap_or(cur.host_memory_bytes);
            let ws = c.working_set();
            ContainerView {
                cpu_percent: rate(before, Some(c.cpu_total_ns), wall) * 100.0,
                memory_working_set: ws,
                memory_limit: limit,
                memory_percent: if limit > 0 {
                    ws as f64 / limit as f64 * 100.0
                } else {
                    0.0
                },
                usage: c.clone(),
            }
        })
        .collect();
    TaskView {
        read_ms: cur.read_ms,
        preread_ms: prev.map(|p| p.read_ms),
        cpu_units,
        cpu_utilization: (meta.reserved_cpu_units > 0)
            .then(|| cpu_units / meta.reserved_cpu_units as f64 * 100.0),
        memory_used_bytes,
        memory_utilization: (meta.reserved_memory_mib > 0)
            .then(|| memory_used_bytes as f64 / (meta.reserved_memory_mib as f64 * MIB) * 100.0),
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ContainerUsage, TaskUsage};
    use super::*;

    fn meta(cpu: i64, mem: i64) -> TaskMeta {
        TaskMeta {
            cluster: "default".into(),
            instance: "i-1".into(),
            group: "service:web".into(),
            family: "web".into(),
            revision: 1,
            reserved_cpu_units: cpu,
            reserved_memory_mib: mem,
        }
    }

    fn sample(read_ms: i64, cpu_ns: u64, mem: u64) -> Sample {
        Sample {
            read_ms,
            host_memory_bytes: 8 << 30,
            task: TaskUsage {
                task_id: "t".into(),
                cpu_total_ns: Some(cpu_ns),
                memory_limit_bytes: None,
                network: None,
                containers: vec![ContainerUsage {
                    name: "app".into(),
                    cpu_total_ns: cpu_ns,
                    memory_usage_bytes: mem + (1 << 20),
                    memory_inactive_file_bytes: 1 << 20,
                    ..ContainerUsage::default()
                }],
            },
        }
    }

    #[test]
    fn a_busy_core_is_1024_units_and_docker_s_100_percent() {
        let m = meta(512, 128);
        let a = sample(0, 0, 64 << 20);
        let b = sample(10_000, 10_000_000_000, 64 << 20);
        let v = view(&m, Some(&a), &b);
        assert!((v.cpu_units - 1024.0).abs() < 1e-9);
        assert!(
            (v.cpu_utilization.unwrap() - 200.0).abs() < 1e-9,
            "twice its 512 units"
        );
        assert_eq!(
            v.memory_used_bytes,
            64 << 20,
            "working set: inactive file left out"
        );
        assert!((v.memory_utilization.unwrap() - 50.0).abs() < 1e-9);
        let c = &v.containers[0];
        assert!((c.cpu_percent - 100.0).abs() < 1e-9);
        assert_eq!(
            c.memory_limit,
            8 << 30,
            "no limit reads as the host's memory"
        );
        let mut capped = b.clone();
        capped.task.memory_limit_bytes = Some(128 << 20);
        let v = view(&m, Some(&a), &capped);
        assert_eq!(v.containers[0].memory_limit, 128 << 20, "else the task's");
        assert!((v.containers[0].memory_percent - 50.0).abs() < 1e-9);
        let first = view(&m, None, &b);
        assert_eq!(first.cpu_units, 0.0, "no rate from one sample");
        assert_eq!(first.preread_ms, None);
    }

    #[test]
    fn no_reservation_means_no_utilization_and_a_reset_counter_no_rate() {
        let m = meta(0, 0);
        let v = view(&m, Some(&sample(0, 5_000, 1)), &sample(1000, 10, 1));
        assert_eq!(v.cpu_units, 0.0);
        assert_eq!(v.cpu_utilization, None);
        assert_eq!(v.memory_utilization, None);
        assert_eq!(
            interval(&m, &sample(0, 5_000, 1), &sample(1000, 10, 1)),
            None
        );
        assert_eq!(
            interval(&m, &sample(1000, 0, 1), &sample(1000, 10, 1)),
            None
        );
    }

    fn iv(cpu_ns: u64, wall_ns: u64, mem: u64, cpu: i64, memory: i64) -> Interval {
        Interval {
            cpu_ns,
            wall_ns,
            memory_bytes: mem,
            reserved_cpu_units: cpu,
            reserved_memory_mib: memory,
        }
    }

    #[test]
    fn the_service_average_is_used_over_reserved_across_tasks() {
        let mut m = Minutes::default();
        // Task a: a full core (1024 units) over six 10 s intervals, 256
        // reserved; 100 MiB of 200.
        for _ in 0..6 {
            m.add(
                100,
                "a",
                iv(10_000_000_000, 10_000_000_000, 100 << 20, 256, 200),
            );
        }
        // Task b: idle, 768 reserved; 0 MiB of 56, seen for 20 s only.
        m.add(100, "b", iv(0, 10_000_000_000, 0, 768, 56));
        m.add(100, "b", iv(0, 10_000_000_000, 0, 768, 56));
        let u = m.utilization(100).unwrap();
        assert_eq!(u.tasks, 2);
        // (1024 + 0) / (256 + 768) = 100 %.
        assert!((u.cpu.unwrap() - 100.0).abs() < 1e-9, "{u:?}");
        // (100 + 0) / (200 + 56) MiB.
        assert!((u.memory.unwrap() - 100.0 / 256.0 * 100.0).abs() < 1e-9);
        assert_eq!(
            m.utilization(99),
            None,
            "a minute without readings is missing"
        );
    }

    #[test]
    fn memory_is_weighted_by_time() {
        let mut m = Minutes::default();
        m.add(7, "a", iv(0, 50_000_000_000, 0, 0, 100));
        m.add(7, "a", iv(0, 10_000_000_000, 60 << 20, 0, 100));
        let u = m.utilization(7).unwrap();
        assert!((u.memory.unwrap() - 10.0).abs() < 1e-9, "{u:?}");
        assert_eq!(u.cpu, None, "no CPU reserved");
    }

    #[test]
    fn only_the_last_minutes_are_kept() {
        let mut m = Minutes::default();
        m.add(1, "a", iv(1, 1, 1, 1, 1));
        m.add(MINUTES_KEPT, "a", iv(1, 1, 1, 1, 1));
        assert!(m.utilization(1).is_some());
        m.add(MINUTES_KEPT + 1, "a", iv(1, 1, 1, 1, 1));
        assert_eq!(m.utilization(1), None);
        assert!(m.utilization(MINUTES_KEPT).is_some());
        m.prune(10 * MINUTES_KEPT);
        assert!(m.is_empty());
    }
}
