//! Task cgroups: one parent cgroup per task (`/<parent>/<task>`, e.g.
//! `/berth/<task>`) carrying the task-level `cpu`/`memory` and a pids limit;
//! the runtime puts each container in a child (`/<parent>/<task>/<container>`)
//! with the container-level limits of its OCI spec. Works on cgroup v1 and v2.
//!
//! Task limits follow the amazon-ecs-agent (`BuildLinuxResourceSpec`):
//! - task `cpu` set: a CFS quota of `cpu/1024` CPUs per 100 ms period (a hard
//!   cap, as on ECS), and shares = `cpu` so that busy tasks split the host in
//!   proportion to their reservations;
//! - task `cpu` absent: shares = the sum of the containers' shares (each at
//!   least 2);
//! - task `memory`: the memory hard limit.
//!
//! On v2, shares become `cpu.weight` with runc's (and the kubelet's) formula,
//! [`shares_to_weight`].
//!
//! Creation and limits go through `cgroups-rs`; reading usage and OOM
//! counters and removal read and remove cgroupfs files directly, across every
//! v1 hierarchy (runc creates the task's directory in all of them).

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_proto::taskdef::TaskDefinition;
use cgroups_rs::fs::{hierarchies, Cgroup, MaxValue, Resources};

use super::spec::container_cpu_shares;

/// CFS period for task CPU quotas (ECS's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// The kernel's minimum CFS quota (1 ms).
const MIN_CPU_QUOTA_US: i64 = 1_000;
/// v1 writes `PAGE_COUNTER_MAX` rounded to pages for "no limit"; anything at
/// or above this is unlimited.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;
/// How long removal retries while a cgroup is still busy.
const REMOVE_RETRY: Duration = Duration::from_millis(50);
const REMOVE_ATTEMPTS: u32 = 40;

const V1_TASK_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];
const V2_TASK_CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("cgroup v1 controller {controller} is not mounted")]
    ControllerMissing { controller: &'static str },
    #[error("task {task}: {source}")]
    Cgroups {
        task: String,
        #[source]
        source: cgroups_rs::fs::error::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot parse {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error("{path}: still busy after {attempts} attempts")]
    Busy { path: PathBuf, attempts: u32 },
}

impl CgroupError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        CgroupError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Task-level limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskLimits {
    /// Task `cpu` in CPU units: quota and shares.
    pub cpu_units: Option<u32>,
    pub memory_mib: Option<u32>,
    pub pids_max: Option<i64>,
    /// Shares when `cpu_units` is absent: the sum of the containers' shares.
    pub implicit_cpu_shares: Option<u64>,
}

impl TaskLimits {
    /// The limits of `task` as ECS sets them, with the agent's pids limit.
    pub fn for_task(task: &TaskDefinition, pids_max: Option<i64>) -> Self {
        let cpu_units = task.task_cpu_units();
        let implicit_cpu_shares = cpu_units.is_none().then(|| {
            task.container_definitions
                .iter()
                .map(|c| container_cpu_shares(c.cpu))
                .sum()
        });
        TaskLimits {
            cpu_units,
            memory_mib: task.task_memory_mib(),
            pids_max,
            implicit_cpu_shares,
        }
    }

    /// `(shares, quota_us)` for the task cgroup.
    pub fn cpu(&self) -> (Option<u64>, Option<i64>) {
        match self.cpu_units {
            Some(units) => {
                let quota = (i64::from(units) * CPU_PERIOD_US as i64 / 1024).max(MIN_CPU_QUOTA_US);
                (Some(u64::from(units).max(2)), Some(quota))
            }
            None => (self.implicit_cpu_shares.map(|s| s.max(2)), None),
        }
    }
}

/// Usage of a task cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub pids: u64,
}

/// Usage of one container's cgroup, for Docker-style stats (the task
/// metadata endpoint's `/stats`). Optional files the kernel may lack read
/// as `None` or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// v1 only (`cpuacct.usage_percpu`).
    pub percpu_ns: Vec<u64>,
    pub throttle_periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
    pub memory_usage: u64,
    pub memory_max_usage: Option<u64>,
    /// `None`: unlimited.
    pub memory_limit: Option<u64>,
    pub memory_failcnt: Option<u64>,
    /// `memory.stat`, as the kernel names its keys.
    pub memory_stat: BTreeMap<String, u64>,
    pub pids: u64,
    pub pids_limit: Option<u64>,
    /// Processes the kernel's OOM killer killed in this cgroup (v1
    /// `memory.oom_control`'s `oom_kill`, kernels ≥ 4.13; v2
    /// `memory.events`' `oom_kill`); `None` where the kernel lacks it.
    pub oom_kills: Option<u64>,
    /// Bytes read and written on block devices, summed over the devices
    /// (v2 `io.stat` `rbytes`/`wbytes`; v1
    /// `blkio.throttle.io_service_bytes` `Read`/`Write`); `None` where the
    /// controller is absent.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
}

/// Nanoseconds per `USER_HZ` tick (100 on Linux), for v1's `cpuacct.stat`.
const NS_PER_TICK: u64 = 10_000_000;

/// CPU shares (v1, 2–262144) to `cpu.weight` (v2, 1–10000): runc's
/// `ConvertCPUSharesToCgroupV2Value`, which the kubelet uses too; 0 stays 0
/// (unset).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Creates, limits, measures and removes task cgroups under one parent.
#[derive(Debug, Clone)]
pub struct CgroupManager {
    version: CgroupVersion,
    /// The parent, without leading or trailing `/` (`berth`).
    parent: String,
    /// v1: controller → mount point (and `"unified"` → the cgroup2 mount in
    /// hybrid mode); v2: `"unified"` → the cgroup2 mount.
    mounts: BTreeMap<String, PathBuf>,
}

fn check_name(name: &str, allow_slash: bool) -> Result<(), CgroupError> {
    let bad = |reason| {
        Err(CgroupError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if !allow_slash && name.contains('/') {
        return bad("contains `/`");
    }
    if name
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return bad("empty, `.` or `..` path component");
    }
    if name.contains(char::is_whitespace) || name.contains('\0') {
        return bad("whitespace or NUL");
    }
    Ok(())
}

impl CgroupManager {
    /// Finds the cgroup version and the controllers' mount points. `parent`
    /// is the cgroup under which tasks go (`"berth"`, or `"a/b"`).
    pub fn detect(parent: &str) -> Result<Self, CgroupError> {
        let parent = parent.trim_matches('/').to_owned();
        check_name(&parent, true)?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CgroupError::io(Path::new("/proc/self/mountinfo"), e))?;
        let version = if hierarchies::is_cgroup2_unified_mode() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        };
        let mounts = parse_mountinfo(&mountinfo, version);
        if version == CgroupVersion::V1 {
            for c in V1_TASK_CONTROLLERS {
                if !mounts.contains_key(*c) {
                    return Err(CgroupError::ControllerMissing { controller: c });
                }
            }
        }
        Ok(CgroupManager {
            version,
            parent,
            mounts,
        })
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The task cgroup relative to the hierarchy root (`berth/<task>`).
    fn task_rel(&self, task_id: &str) -> String {
        format!("{}/{}", self.parent, task_id)
    }

    /// The directory of `rel` in `controller`'s hierarchy (v2: the one tree).
    fn dir(&self, controller: &str, rel: &str) -> Result<PathBuf, CgroupError> {
        let key = match self.version {
            CgroupVersion::V1 => controller,
            CgroupVersion::V2 => "unified",
        };
        let mount = self.mounts.get(key).ok_or(CgroupError::ControllerMissing {
            controller: match controller {
                "memory" => "memory",
                "cpuacct" => "cpuacct",
                "pids" => "pids",
                "blkio" => "blkio",
                _ => "cpu",
            },
        })?;
        Ok(mount.join(rel))
    }

    /// Creates the task's parent cgroup with its limits. Creating a task that
    /// exists applies the limits again.
    pub fn create_task(&self, task_id: &str, limits: &TaskLimits) -> Result<(), CgroupError> {
        check_name(task_id, false)?;
        let controllers = match self.version {
            CgroupVersion::V1 => V1_TASK_CONTROLLERS,
            CgroupVersion::V2 => V2_TASK_CONTROLLERS,
        };
        let wrap = |source| CgroupError::Cgroups {
            task: task_id.to_owned(),
            source,
        };
        let cg = Cgroup::new_with_specified_controllers(
            hierarchies::auto(),
            self.task_rel(task_id),
            Some(controllers.iter().map(|c| (*c).to_owned()).collect()),
        )
        .map_err(wrap)?;
        let mut res = Resources::default();
        let (shares, quota) = limits.cpu();
        res.cpu.shares = match self.version {
            CgroupVersion::V1 => shares,
            CgroupVersion::V2 => shares.map(shares_to_weight),
        };
        if let Some(q) = quota {
            res.cpu.quota = Some(q);
            res.cpu.period = Some(CPU_PERIOD_US);
        }
        res.memory.memory_hard_limit = limits.memory_mib.map(|m| i64::from(m) * 1024 * 1024);
        res.pid.maximum_number_of_processes = limits.pids_max.map(MaxValue::Value);
        cg.apply(&res).map_err(wrap)?;
        Ok(())
    }

    /// `cgroupsPath` for a container's OCI spec (cgroupfs style).
    pub fn container_cgroups_path(&self, task_id: &str, container: &str) -> String {
        format!("/{}/{}/{}", self.parent, task_id, container)
    }

    pub fn task_exists(&self, task_id: &str) -> bool {
        check_name(task_id, false).is_ok()
            && self
                .dir("memory", &self.task_rel(task_id))
                .is_ok_and(|d| d.is_dir())
    }

    /// Removes the task's cgroup and its children from every hierarchy.
    /// Idempotent; retries briefly (up to 2 s, sleeping: call it from
    /// `spawn_blocking`) while a cgroup is still busy with exiting processes.
    pub fn remove_task(&self, task_id: &str) -> Result<(), CgroupError> {
        check_name(task_id, false)?;
        let rel = self.task_rel(task_id);
        let mut roots: Vec<&PathBuf> = self.mounts.values().collect();
        roots.dedup();
        for root in roots {
            remove_tree(&root.join(&rel))?;
        }
        Ok(())
    }

    /// CPU, memory and pids usage of the task cgroup.
    pub fn task_stats(&self, task_id: &str) -> Result<Stats, CgroupError> {
        check_name(task_id, false)?;
        let rel = self.task_rel(task_id);
        match self.version {
            CgroupVersion::V1 => {
                let mem = self.dir("memory", &rel)?;
                let limit = read_u64(&mem.join("memory.limit_in_bytes"))?;
                Ok(Stats {
                    cpu_usage_ns: read_u64(&self.dir("cpuacct", &rel)?.join("cpuacct.usage"))?,
                    memory_usage_bytes: read_u64(&mem.join("memory.usage_in_bytes"))?,
                    memory_limit_bytes: (limit < V1_UNLIMITED).then_some(limit),
                    pids: read_u64(&self.dir("pids", &rel)?.join("pids.current"))?,
                })
            }
            CgroupVersion::V2 => {
                let dir = self.dir("unified", &rel)?;
                let cpu_stat = read_file(&dir.join("cpu.stat"))?;
                let usage_us = keyed_value(&cpu_stat, "usage_usec").unwrap_or(0);
                let max = read_file(&dir.join("memory.max"))?;
                Ok(Stats {
                    cpu_usage_ns: usage_us.saturating_mul(1000),
                    memory_usage_bytes: read_u64(&dir.join("memory.current"))?,
                    memory_limit_bytes: parse_max(&max),
                    pids: read_u64(&dir.join("pids.current"))?,
                })
            }
        }
    }

    /// Usage of container `container` of task `task_id` (its own cgroup,
    /// which runc creates at [`Self::container_cgroups_path`]). An error when
    /// the cgroup is gone (the container stopped).
    pub fn container_usage(
        &self,
        task_id: &str,
        container: &str,
    ) -> Result<ContainerUsage, CgroupError> {
        check_name(task_id, false)?;
        check_name(container, false)?;
        let rel = format!("{}/{}", self.task_rel(task_id), container);
        let opt = |p: &Path| fs::read_to_string(p).ok();
        let opt_u64 = |p: &Path| opt(p).and_then(|s| s.trim().parse::<u64>().ok());
        let flat = |text: Option<String>| -> BTreeMap<String, u64> {
            text.unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_owned(), v.trim().parse().ok()?))
                })
                .collect()
        };
        match self.version {
            CgroupVersion::V1 => {
                let acct = self.dir("cpuacct", &rel)?;
                let cpu = self.dir("cpu", &rel)?;
                let mem = self.dir("memory", &rel)?;
                let pids = self.dir("pids", &rel)?;
                let ticks = flat(opt(&acct.join("cpuacct.stat")));
                let throttle = flat(opt(&cpu.join("cpu.stat")));
                let limit = read_u64(&mem.join("memory.limit_in_bytes"))?;
                let io = self
                    .dir("blkio", &rel)
                    .ok()
                    .and_then(|d| opt(&d.join("blkio.throttle.io_service_bytes")))
                    .map(|t| io_bytes_v1(&t));
                Ok(ContainerUsage {
                    oom_kills: opt(&mem.join("memory.oom_control"))
                        .and_then(|t| keyed_value(&t, "oom_kill")),
                    io_read_bytes: io.map(|(r, _)| r),
                    io_write_bytes: io.map(|(_, w)| w),
                    cpu_total_ns: read_u64(&acct.join("cpuacct.usage"))?,
                    cpu_user_ns: ticks.get("user").copied().unwrap_or(0) * NS_PER_TICK,
                    cpu_system_ns: ticks.get("system").copied().unwrap_or(0) * NS_PER_TICK,
                    percpu_ns: opt(&acct.join("cpuacct.usage_percpu"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect(),
                    throttle_periods: throttle.get("nr_periods").copied().unwrap_or(0),
                    throttled_periods: throttle.get("nr_throttled").copied().unwrap_or(0),
                    throttled_ns: throttle.get("throttled_time").copied().unwrap_or(0),
                    memory_usage: read_u64(&mem.join("memory.usage_in_bytes"))?,
                    memory_max_usage: opt_u64(&mem.join("memory.max_usage_in_bytes")),
                    memory_limit: (limit < V1_UNLIMITED).then_some(limit),
                    memory_failcnt: opt_u64(&mem.join("memory.failcnt")),
                    memory_stat: flat(opt(&mem.join("memory.stat"))),
                    pids: opt_u64(&pids.join("pids.current")).unwrap_or(0),
                    pids_limit: opt(&pids.join("pids.max")).and_then(|s| parse_max(&s)),
                })
            }
            CgroupVersion::V2 => {
                let dir = self.dir("unified", &rel)?;
                let cpu = flat(Some(read_file(&dir.join("cpu.stat"))?));
                let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(1000);
                let io = opt(&dir.join("io.stat")).map(|t| io_bytes_v2(&t));
                Ok(ContainerUsage {
                    oom_kills: opt(&dir.join("memory.events"))
                        .and_then(|t| keyed_value(&t, "oom_kill")),
                    io_read_bytes: io.map(|(r, _)| r),
                    io_write_bytes: io.map(|(_, w)| w),
                    cpu_total_ns: us("usage_usec"),
                    cpu_user_ns: us("user_usec"),
                    cpu_system_ns: us("system_usec"),
                    percpu_ns: vec![],
                    throttle_periods: cpu.get("nr_periods").copied().unwrap_or(0),
                    throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
                    throttled_ns: us("throttled_usec"),
                    memory_usage: read_u64(&dir.join("memory.current"))?,
                    memory_max_usage: opt_u64(&dir.join("memory.peak")),
                    memory_limit: opt(&dir.join("memory.max")).and_then(|s| parse_max(&s)),
                    memory_failcnt: None,
                    memory_stat: flat(opt(&dir.join("memory.stat"))),
                    pids: opt_u64(&dir.join("pids.current")).unwrap_or(0),
                    pids_limit: opt(&dir.join("pids.max")).and_then(|s| parse_max(&s)),
                })
            }
        }
    }

    /// Whether the kernel's OOM killer killed a process of this container
    /// (because of its own limit or the task's): v1 `memory.oom_control`'s
    /// `oom_kill` counter (kernels ≥ 4.13; older ones only have
    /// `memory.failcnt`, which counts hitting the limit, used as a fallback),
    /// v2 `memory.events`' `oom_kill`. Must be asked before the runtime
    /// deletes the container's cgroup. A missing cgroup reads as `false`.
    pub fn container_oom_killed(
        &self,
        task_id: &str,
        container: &str,
    ) -> Result<bool, CgroupError> {
        check_name(task_id, false)?;
        check_name(container, false)?;
        let rel = format!("{}/{}", self.task_rel(task_id), container);
        let (file, key) = match self.version {
            CgroupVersion::V1 => ("memory.oom_control", "oom_kill"),
            CgroupVersion::V2 => ("memory.events", "oom_kill"),
        };
        let dir = self.dir("memory", &rel)?;
        let content = match fs::read_to_string(dir.join(file)) {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(CgroupError::io(&dir.join(file), e)),
        };
        if let Some(n) = keyed_value(&content, key) {
            return Ok(n > 0);
        }
        match self.version {
            CgroupVersion::V1 => Ok(read_u64(&dir.join("memory.failcnt")).unwrap_or(0) > 0),
            CgroupVersion::V2 => Ok(false),
        }
    }
}

/// The reason ECS gives a container the OOM killer stopped, word for word
/// (tools match on it).
pub const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";

fn parse_mountinfo(mountinfo: &str, version: CgroupVersion) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = pre.split_whitespace().nth(4) else {
            continue;
        };
        let mut post = post.split_whitespace();
        let fstype = post.next().unwrap_or("");
        let _source = post.next();
        let opts = post.next().unwrap_or("");
        match (version, fstype) {
            (CgroupVersion::V1, "cgroup") => {
                for opt in opts.split(',') {
                    let name = opt.strip_prefix("name=").unwrap_or(opt);
                    if !matches!(
                        name,
                        "rw" | "ro" | "relatime" | "noatime" | "nosuid" | "nodev" | "noexec"
                    ) && !name.contains('=')
                    {
                        out.entry(name.to_owned())
                            .or_insert_with(|| PathBuf::from(mount_point));
                    }
                }
            }
            // v2 proper, or v1 hosts in hybrid mode, where runc also makes
            // the container's directory in the cgroup2 tree (removal must
            // find it).
            (_, "cgroup2") => {
                out.entry("unified".to_owned())
                    .or_insert_with(|| PathBuf::from(mount_point));
            }
            _ => {}
        }
    }
    out
}

fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CgroupError::io(dir, e)),
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    for attempt in 1..=REMOVE_ATTEMPTS {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if attempt == REMOVE_ATTEMPTS {
                    return Err(CgroupError::Busy {
                        path: dir.to_owned(),
                        attempts: attempt,
                    });
                }
                std::thread::sleep(REMOVE_RETRY);
            }
            Err(e) => return Err(CgroupError::io(dir, e)),
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| CgroupError::io(path, e))
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let s = read_file(path)?;
    s.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_owned(),
        content: s,
    })
}

/// `value` of the line `key value` in a flat-keyed cgroup file.
fn keyed_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `(read, written)` bytes of v2's `io.stat` (`MAJ:MIN rbytes=… wbytes=…`
/// per device), summed over devices.
fn io_bytes_v2(text: &str) -> (u64, u64) {
    let mut out = (0u64, 0u64);
    for field in text.split_whitespace() {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match k {
            "rbytes" => out.0 = out.0.saturating_add(v),
            "wbytes" => out.1 = out.1.saturating_add(v),
            _ => {}
        }
    }
    out
}

/// `(read, written)` bytes of v1's `blkio.throttle.io_service_bytes`
/// (`MAJ:MIN Read N` lines, and a `Total` line), summed over devices.
fn io_bytes_v1(text: &str) -> (u64, u64) {
    let mut out = (0u64, 0u64);
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(_dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match op {
            "Read" => out.0 = out.0.saturating_add(v),
            "Write" => out.1 = out.1.saturating_add(v),
            _ => {}
        }
    }
    out
}

/// v2's `max` or a number.
fn parse_max(s: &str) -> Option<u64> {
    match s.trim() {
        "max" => None,
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests;
