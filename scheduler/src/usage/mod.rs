//! Task stats in memory: the agents' usage samples (`AgentMessage.usage`,
//! every `stats_interval` of each agent) as the [`UsageBook`] keeps them for
//! `TaskStatsService` (`berthctl task stats`, `berthctl top`) and for
//! service auto scaling ([`UsageBook::service_utilization`]).
//!
//! Nothing here is stored: readings are ephemeral, so a restarted scheduler
//! starts empty and fills again with the agents' next samples (sled never
//! sees them). Everything is bounded: per task, the latest sample and the
//! one before it (for rates) and the last [`WINDOW`] intervals as
//! [`Point`]s; per service, [`aggregate::MINUTES_KEPT`]
//! minutes of per-task sums ([`aggregate::Minutes`]). A task leaves when
//! its agent's next sample no longer has it (stopped there) or the agent's
//! stream ends; a service's minutes age out.
//!
//! Each sample is complete for its instance, and a task is taken from a
//! sample only if the store says it runs on that instance (as with task
//! reports: identity comes from the stream, never from a message body).

pub mod aggregate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

pub use aggregate::{ContainerView, TaskView, Utilization};

/// One container's cumulative readings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    pub name: String,
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_inactive_file_bytes: u64,
    /// `None`: unlimited.
    pub memory_limit_bytes: Option<u64>,
    pub memory_max_usage_bytes: Option<u64>,
    pub oom_kills: Option<u64>,
    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
    pub pids: u64,
}

impl ContainerUsage {
    /// Usage minus inactive file pages (`docker stats`' MEM USAGE).
    pub fn working_set(&self) -> u64 {
        self.memory_usage_bytes
            .saturating_sub(self.memory_inactive_file_bytes)
    }
}

/// The task's interface counters, as the task sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetUsage {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// One task in a sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskUsage {
    pub task_id: String,
    /// The task cgroup's CPU time, if it could be read.
    pub cpu_total_ns: Option<u64>,
    /// The task cgroup's memory limit, if any.
    pub memory_limit_bytes: Option<u64>,
    pub network: Option<NetUsage>,
    pub containers: Vec<ContainerUsage>,
}

/// One sample of every task an agent runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageBatch {
    /// The agent's clock when it read the cgroups.
    pub read_ms: i64,
    pub host_memory_bytes: u64,
    pub tasks: Vec<TaskUsage>,
}

/// One task's reading at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub read_ms: i64,
    pub host_memory_bytes: u64,
    pub task: TaskUsage,
}

/// What the store says of a task, read once when its first sample comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMeta {
    pub cluster: String,
    pub instance: String,
    /// ECS's task group (`service:NAME`).
    pub group: String,
    pub family: String,
    pub revision: u32,
    pub reserved_cpu_units: i64,
    pub reserved_memory_mib: i64,
}

impl TaskMeta {
    /// The service's name for a service's task.
    pub fn service(&self) -> Option<&str> {
        self.group.strip_prefix("service:")
    }
}

/// Intervals kept per task.
pub const WINDOW: usize = 30;

/// One interval of a task, as its window keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub read_ms: i64,
    pub cpu_units: f64,
    pub memory_used_bytes: u64,
}

/// A task's latest reading.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReading {
    pub task_id: String,
    pub meta: TaskMeta,
    pub view: TaskView,
    /// The task's interface, as the task sees it.
    pub network: Option<NetUsage>,
    /// The last [`WINDOW`] intervals, oldest first.
    pub recent: Vec<Point>,
    /// Rises with every sample of this task (watchers send each once).
    pub seq: u64,
}

/// Who sent a sample: the instance, and which of its `Connect` streams.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub instance: &'a str,
    pub conn: u64,
}

#[derive(Debug)]
struct Entry {
    meta: TaskMeta,
    /// The stream that sent the latest sample.
    conn: u64,
    prev: Option<Sample>,
    latest: Sample,
    window: std::collections::VecDeque<Point>,
    seq: u64,
}

impl Entry {
    fn reading(&self, id: &str) -> TaskReading {
        TaskReading {
            task_id: id.to_owned(),
            meta: self.meta.clone(),
            view: aggregate::view(&self.meta, self.prev.as_ref(), &self.latest),
            network: self.latest.task.network,
            recent: self.window.iter().copied().collect(),
            seq: self.seq,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    tasks: HashMap<String, Entry>,
    /// (cluster, service) → minutes.
    services: HashMap<(String, String), aggregate::Minutes>,
    /// Instance → callers following one of its tasks.
    followers: HashMap<String, usize>,
    seq: u64,
}

/// The readings of every running task; cheap to clone.
#[derive(Debug, Clone)]
pub struct UsageBook {
    inner: Arc<Mutex<Inner>>,
    changed: watch::Sender<u64>,
}

impl Default for UsageBook {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            changed: watch::channel(0).0,
        }
    }
}

/// The unix minute of `ms`.
pub fn minute_of(ms: i64) -> u64 {
    u64::try_from(ms.div_euclid(60_000)).unwrap_or(0)
}

impl UsageBook {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the maps whole.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `instance`'s sample, received at `received_ms` (the
    /// scheduler's clock, which picks the minute). `meta_of` says what the
    /// store knows of a task seen for the first time: `None` for a task
    /// that is unknown, stopped or not `instance`'s, which is skipped.
    /// Tasks of `instance` the sample lacks are forgotten.
    pub fn record(
        &self,
        from: Source<'_>,
        batch: UsageBatch,
        received_ms: i64,
        mut meta_of: impl FnMut(&str) -> Option<TaskMeta>,
    ) {
        let (instance, conn) = (from.instance, from.conn);
        let minute = minute_of(received_ms);
        // Tasks seen for the first time are looked up outside the lock.
        let unknown: Vec<String> = {
            let inner = self.lock();
            batch
                .tasks
                .iter()
                .filter(|t| !inner.tasks.contains_key(&t.task_id))
                .map(|t| t.task_id.clone())
                .collect()
        };
        let mut metas: HashMap<String, TaskMeta> = unknown
            .into_iter()
            .filter_map(|id| meta_of(&id).map(|m| (id, m)))
            .filter(|(_, m)| m.instance == instance)
            .collect();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let present: std::collections::HashSet<&str> =
            batch.tasks.iter().map(|t| t.task_id.as_str()).collect();
        inner
            .tasks
            .retain(|id, e| e.meta.instance != instance || present.contains(id.as_str()));
        inner.seq += 1;
        for task in batch.tasks {
            let id = task.task_id.clone();
            let sample = Sample {
                read_ms: batch.read_ms,
                host_memory_bytes: batch.host_memory_bytes,
                task,
            };
            match inner.tasks.get_mut(&id) {
                Some(e) if e.meta.instance == instance => {
                    let prev = std::mem::replace(&mut e.latest, sample);
                    let iv = aggregate::interval(&e.meta, &prev, &e.latest);
                    if let Some(iv) = iv {
                        if e.window.len() == WINDOW {
                            e.window.pop_front();
                        }
                        e.window.push_back(Point {
                            read_ms: e.latest.read_ms,
                            cpu_units: iv.cpu_ns as f64 / iv.wall_ns as f64 * 1024.0,
                            memory_used_bytes: iv.memory_bytes,
                        });
                    }
                    if let (Some(iv), Some(service)) = (iv, e.meta.service()) {
                        inner
                            .services
                            .entry((e.meta.cluster.clone(), service.to_owned()))
                            .or_default()
                            .add(minute, &id, iv);
                    }
                    e.prev = Some(prev);
                    e.seq = inner.seq;
                    e.conn = conn;
                }
                // Another instance's task (it moved? never): keep the first.
                Some(_) => {}
                None => {
                    if let Some(meta) = metas.remove(&id) {
                        inner.tasks.insert(
                            id,
                            Entry {
                                meta,
                                conn,
                                prev: None,
                                latest: sample,
                                window: Default::default(),
                                seq: inner.seq,
                            },
                        );
                    }
                }
            }
        }
        inner.services.retain(|_, m| {
            m.prune(minute);
            !m.is_empty()
        });
        let seq = inner.seq;
        self.changed.send_replace(seq);
    }

    /// The agent's stream `conn` ended: the readings it sent last go (not
    /// those a newer stream of the same agent already sent).
    pub fn forget_instance(&self, instance: &str, conn: u64) {
        let mut inner = self.lock();
        inner
            .tasks
            .retain(|_, e| e.meta.instance != instance || e.conn != conn);
        inner.seq += 1;
        let seq = inner.seq;
        drop(inner);
        self.changed.send_replace(seq);
    }

    /// Changes whenever a sample is recorded or readings are forgotten.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The latest reading of task `id`.
    pub fn task(&self, id: &str) -> Option<TaskReading> {
        self.lock().tasks.get(id).map(|e| e.reading(id))
    }

    /// The latest readings of `cluster`'s tasks (of `service` only, if
    /// given), in no order.
    pub fn list(&self, cluster: &str, service: Option<&str>) -> Vec<TaskReading> {
        self.lock()
            .tasks
            .iter()
            .filter(|(_, e)| {
                e.meta.cluster == cluster && service.is_none_or(|s| e.meta.service() == Some(s))
            })
            .map(|(id, e)| e.reading(id))
            .collect()
    }

    /// The datapoint of `service` for the unix minute `minute`, as
    /// `ECSServiceAverageCPUUtilization` and
    /// `ECSServiceAverageMemoryUtilization` would have it; `None` when no
    /// task of the service had a reading in that minute (missing data). The
    /// current minute is still filling: ask for completed ones.
    pub fn service_utilization(
        &self,
        cluster: &str,
        service: &str,
        minute: u64,
    ) -> Option<Utilization> {
        self.lock()
            .services
            .get(&(cluster.to_owned(), service.to_owned()))?
            .utilization(minute)
    }

    /// One more caller follows a task of `instance`; true for the first.
    pub fn follow(&self, instance: &str) -> bool {
        let mut inner = self.lock();
        let n = inner.followers.entry(instance.to_owned()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// A caller stopped following; true when it was the last.
    pub fn unfollow(&self, instance: &str) -> bool {
        let mut inner = self.lock();
        match inner.followers.get_mut(instance) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                inner.followers.remove(instance);
                true
            }
            None => false,
        }
    }

    /// Whether someone follows a task of `instance` (a reconnecting agent
    /// is asked to sample fast again).
    pub fn followed(&self, instance: &str) -> bool {
        self.lock().followers.contains_key(instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(instance: &str) -> TaskMeta {
        TaskMeta {
            cluster: "default".into(),
            instance: instance.into(),
            group: "service:web".into(),
            family: "web".into(),
            revision: 1,
            reserved_cpu_units: 1024,
            reserved_memory_mib: 64,
        }
    }

    fn src(instance: &str) -> Source<'_> {
        Source { instance, conn: 1 }
    }

    fn batch(read_ms: i64, tasks: &[(&str, u64)]) -> UsageBatch {
        UsageBatch {
            read_ms,
            host_memory_bytes: 1 << 30,
            tasks: tasks
                .iter()
                .map(|(id, cpu)| TaskUsage {
                    task_id: (*id).into(),
                    cpu_total_ns: Some(*cpu),
                    memory_limit_bytes: None,
                    network: None,
                    containers: vec![ContainerUsage {
                        name: "app".into(),
                        cpu_total_ns: *cpu,
                        memory_usage_bytes: 32 << 20,
                        ..ContainerUsage::default()
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn samples_make_readings_and_service_minutes_and_go_with_the_task() {
        let book = UsageBook::default();
        let known = |id: &str| (id != "stranger").then(|| meta("i-1"));
        book.record(
            src("i-1"),
            batch(0, &[("a", 0), ("stranger", 0)]),
            60_000,
            known,
        );
        assert!(book.task("stranger").is_none(), "unknown to the store");
        assert_eq!(book.task("a").unwrap().view.cpu_units, 0.0);
        // Half a core for 10 s.
        book.record(
            src("i-1"),
            batch(10_000, &[("a", 5_000_000_000)]),
            61_000,
            known,
        );
        let a = book.task("a").unwrap();
        assert!((a.view.cpu_units - 512.0).abs() < 1e-9);
        assert_eq!(a.recent.len(), 1);
        assert!((a.recent[0].cpu_units - 512.0).abs() < 1e-9);
        assert_eq!(a.recent[0].memory_used_bytes, 32 << 20);
        // The window keeps the last WINDOW intervals.
        for i in 2..=(WINDOW as i64 + 5) {
            book.record(
                src("i-1"),
                batch(i * 10_000, &[("a", 5_000_000_000 * i as u64)]),
                61_000,
                known,
            );
        }
        let a = book.task("a").unwrap();
        assert_eq!(a.recent.len(), WINDOW);
        assert_eq!(a.recent[WINDOW - 1].read_ms, (WINDOW as i64 + 5) * 10_000);
        assert_eq!(a.recent[0].read_ms, 6 * 10_000);
        let u = book.service_utilization("default", "web", 1).unwrap();
        assert!((u.cpu.unwrap() - 50.0).abs() < 1e-9);
        assert!((u.memory.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(book.service_utilization("default", "web", 2), None);
        assert_eq!(book.service_utilization("other", "web", 1), None);
        assert_eq!(book.list("default", Some("web")).len(), 1);
        assert_eq!(book.list("default", Some("api")).len(), 0);
        // Another instance cannot speak for a's host.
        book.record(src("i-2"), batch(20_000, &[]), 62_000, |_| {
            Some(meta("i-2"))
        });
        assert!(book.task("a").is_some());
        // The next sample of i-1 lacks a: it stopped there.
        book.record(src("i-1"), batch(20_000, &[]), 62_000, known);
        assert!(book.task("a").is_none());
        // Its past minute stays for the autoscaler.
        assert!(book.service_utilization("default", "web", 1).is_some());
    }

    #[test]
    fn a_lost_agent_takes_its_readings_and_followers_count() {
        let book = UsageBook::default();
        book.record(src("i-1"), batch(0, &[("a", 0)]), 0, |_| Some(meta("i-1")));
        let mut rx = book.subscribe();
        // An older stream's end leaves a newer stream's readings.
        book.forget_instance("i-1", 0);
        assert!(book.task("a").is_some());
        book.forget_instance("i-1", 1);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        assert!(book.task("a").is_none());
        assert!(book.follow("i-1"));
        assert!(!book.follow("i-1"));
        assert!(book.followed("i-1"));
        assert!(!book.unfollow("i-1"));
        assert!(book.unfollow("i-1"));
        assert!(!book.followed("i-1"));
        assert!(!book.unfollow("i-1"));
    }
}
