//! `TaskStatsService` (`berthctl task stats`, `berthctl top`): the agents'
//! latest usage samples of running tasks, from the in-memory
//! [`UsageBook`](crate::usage::UsageBook), with `docker stats`'s fields per
//! container (`docs/stats.md`). Also the conversion of the agent link's
//! `UsageSample` into a [`UsageBatch`].
//!
//! A task the store does not know is NotFound; a task that is not RUNNING,
//! or has no reading yet, is FailedPrecondition with a sentence saying so.
//! `WatchTaskStats` asks the task's agent to sample every second while it
//! runs (`StatsSampling`), and back to its own pace when the last follower
//! of that instance goes.

use std::pin::Pin;
use std::time::Duration;

use berth_proto::arn::short_id;
use berth_proto::v1::{
    self, task_stats_service_server::TaskStatsService, GetTaskStatsRequest, GetTaskStatsResponse,
    ListTaskStatsRequest, ListTaskStatsResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::{cluster_arg, timestamp, ApiError, Shared};
use crate::agent_link::Outbound;
use crate::agents::session::FOLLOW_INTERVAL_MS;
use crate::agents::sessions::Sessions;
use crate::db::DbError;
use crate::records::{TaskRecord, TaskStatus};
use crate::usage::{ContainerUsage, NetUsage, TaskReading, TaskUsage, UsageBatch, UsageBook};

/// How often a watch checks that its task still runs when no sample comes.
const WATCH_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct StatsApi {
    pub shared: Shared,
}

/// How ListTaskStats sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Cpu,
    Memory,
}

impl SortBy {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "cpu" => Ok(SortBy::Cpu),
            "memory" | "mem" => Ok(SortBy::Memory),
            other => Err(ApiError::invalid(
                "sort",
                format!("{other:?} is not cpu or memory"),
            )),
        }
    }
}

/// Sorts readings largest first (ties by task id), and keeps `limit` (0:
/// all); pure.
pub fn sort_readings(readings: &mut Vec<TaskReading>, by: SortBy, limit: usize) {
    let key = |r: &TaskReading| match by {
        SortBy::Cpu => r.view.cpu_units,
        SortBy::Memory => r.view.memory_used_bytes as f64,
    };
    readings.sort_by(|a, b| {
        key(b)
            .total_cmp(&key(a))
            .then_with(|| a.task_id.cmp(&b.task_id))
    });
    if limit > 0 {
        readings.truncate(limit);
    }
}

impl StatsApi {
    /// The task named in a request, which must exist in `cluster`.
    fn task(&self, cluster: &str, task: &str) -> Result<TaskRecord, ApiError> {
        let id = short_id(task.trim());
        if id.is_empty() {
            return Err(ApiError::invalid("task", "required"));
        }
        self.shared
            .db
            .task(id)?
            .filter(|t| t.cluster == cluster)
            .ok_or_else(|| {
                DbError::NotFound {
                    kind: "task",
                    name: id.to_owned(),
                }
                .into()
            })
    }

    fn stats(&self, r: &TaskReading) -> v1::TaskStats {
        task_stats(&self.shared.arn, r)
    }
}

/// Why a task has no reading to show.
fn no_reading(t: &TaskRecord) -> ApiError {
    let msg = if t.last_status != TaskStatus::Running {
        format!(
            "task {} is {}, not RUNNING: only running tasks have stats",
            t.id,
            t.last_status.as_str()
        )
    } else {
        format!(
            "task {} has no reading yet: its agent sends one every stats_interval (10s by \
             default); try again shortly",
            t.id
        )
    };
    DbError::FailedPrecondition(msg).into()
}

type StatsStream = Pin<Box<dyn Stream<Item = Result<GetTaskStatsResponse, Status>> + Send>>;

/// A caller following a task of `instance`: its agent samples every second
/// until the last such caller goes.
struct Follow {
    book: UsageBook,
    sessions: Sessions,
    instance: String,
}

impl Follow {
    fn start(book: UsageBook, sessions: Sessions, instance: String) -> Self {
        if book.follow(&instance) {
            ask(&sessions, &instance, FOLLOW_INTERVAL_MS);
        }
        Follow {
            book,
            sessions,
            instance,
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        if self.book.unfollow(&self.instance) {
            ask(&self.sessions, &self.instance, 0);
        }
    }
}

/// Tells `instance`'s agent how often to sample; a stream that is gone or
/// backed up misses it (a reconnecting agent is asked again, and a stale
/// fast pace costs only samples).
fn ask(sessions: &Sessions, instance: &str, interval_ms: u32) {
    if let Some(tx) = sessions.outbound(instance) {
        if tx
            .try_send(Outbound::StatsSampling { interval_ms })
            .is_err()
        {
            tracing::debug!(%instance, interval_ms, "could not ask the agent to change its sampling");
        }
    }
}

#[tonic::async_trait]
impl TaskStatsService for StatsApi {
    async fn get_task_stats(
        &self,
        req: Request<GetTaskStatsRequest>,
    ) -> Result<Response<GetTaskStatsResponse>, Status> {
        let req = req.into_inner();
        let t = self.task(&cluster_arg(&req.cluster), &req.task)?;
        let reading = match self.shared.usage.task(&t.id) {
            Some(r) if t.last_status == TaskStatus::Running => r,
            _ => return Err(no_reading(&t).into()),
        };
        Ok(Response::new(GetTaskStatsResponse {
            stats: Some(self.stats(&reading)),
        }))
    }

    type WatchTaskStatsStream = StatsStream;

    async fn watch_task_stats(
        &self,
        req: Request<GetTaskStatsRequest>,
    ) -> Result<Response<Self::WatchTaskStatsStream>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let t = self.task(&cluster, &req.task)?;
        if t.last_status != TaskStatus::Running {
            return Err(no_reading(&t).into());
        }
        let follow = Follow::start(
            self.shared.usage.clone(),
            self.shared.sessions.clone(),
            t.instance_id.clone(),
        );
        let (tx, rx) = mpsc::channel::<Result<GetTaskStatsResponse, Status>>(4);
        let book = self.shared.usage.clone();
        let db = self.shared.db.clone();
        let arn = self.shared.arn.clone();
        let id = t.id.clone();
        tokio::spawn(async move {
            let _follow = follow;
            let mut changes = book.subscribe();
            let mut sent = 0u64;
            loop {
                if let Some(r) = book.task(&id) {
                    if r.seq > sent {
                        sent = r.seq;
                        let m = GetTaskStatsResponse {
                            stats: Some(task_stats(&arn, &r)),
                        };
                        if tx.send(Ok(m)).await.is_err() {
                            return;
                        }
                    }
                } else {
                    // No reading: the task may have stopped.
                    match db.task(&id) {
                        Ok(Some(t)) if t.last_status == TaskStatus::Running => {}
                        Ok(_) => return,
                        Err(e) => {
                            let _ = tx.send(Err(ApiError::from(e).into())).await;
                            return;
                        }
                    }
                }
                tokio::select! {
                    () = tx.closed() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(WATCH_RECHECK) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn list_task_stats(
        &self,
        req: Request<ListTaskStatsRequest>,
    ) -> Result<Response<ListTaskStatsResponse>, Status> {
        let req = req.into_inner();
        let cluster = cluster_arg(&req.cluster);
        let sort = SortBy::parse(&req.sort)?;
        if self
            .shared
            .db
            .cluster(&cluster)
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(ApiError::from(DbError::NotFound {
                kind: "cluster",
                name: cluster,
            })
            .into());
        }
        let service = short_id(req.service.trim());
        let service = (!service.is_empty()).then_some(service);
        let mut readings = self.shared.usage.list(&cluster, service);
        // Only what the store still calls RUNNING (a task stopping on a
        // host whose next sample has not come yet is left out).
        readings.retain(|r| {
            matches!(self.shared.db.task(&r.task_id), Ok(Some(t)) if t.last_status == TaskStatus::Running)
        });
        sort_readings(&mut readings, sort, req.limit as usize);
        Ok(Response::new(ListTaskStatsResponse {
            tasks: readings.iter().map(|r| self.stats(r)).collect(),
        }))
    }
}

/// The wire shape of a reading.
pub fn task_stats(arn: &berth_proto::arn::ArnPrefix, r: &TaskReading) -> v1::TaskStats {
    let m = &r.meta;
    let v = &r.view;
    let network = r.network.map(net);
    v1::TaskStats {
        task_arn: arn.task(&m.cluster, &r.task_id),
        cluster_arn: arn.cluster(&m.cluster),
        task_definition_arn: arn.task_definition(&m.family, m.revision),
        container_instance_arn: arn.container_instance(&m.cluster, &m.instance),
        group: m.group.clone(),
        read: Some(timestamp(v.read_ms)),
        preread: v.preread_ms.map(timestamp),
        cpu_units: v.cpu_units,
        cpu_reserved_units: m.reserved_cpu_units,
        cpu_utilization: v.cpu_utilization,
        memory_used_bytes: v.memory_used_bytes,
        memory_reserved_mib: m.reserved_memory_mib,
        memory_utilization: v.memory_utilization,
        recent: r
            .recent
            .iter()
            .map(|p| v1::UsagePoint {
                read: Some(timestamp(p.read_ms)),
                cpu_units: p.cpu_units,
                memory_used_bytes: p.memory_used_bytes,
            })
            .collect(),
        containers: v
            .containers
            .iter()
            .map(|c| v1::ContainerStats {
                name: c.usage.name.clone(),
                cpu_total_ns: c.usage.cpu_total_ns,
                cpu_user_ns: c.usage.cpu_user_ns,
                cpu_system_ns: c.usage.cpu_system_ns,
                cpu_percent: c.cpu_percent,
                memory_usage_bytes: c.memory_working_set,
                memory_raw_usage_bytes: c.usage.memory_usage_bytes,
                memory_limit_bytes: c.memory_limit,
                memory_max_usage_bytes: c.usage.memory_max_usage_bytes,
                memory_percent: c.memory_percent,
                oom_kills: c.usage.oom_kills,
                network,
                block_read_bytes: c.usage.block_read_bytes,
                block_write_bytes: c.usage.block_write_bytes,
                pids: c.usage.pids,
            })
            .collect(),
    }
}

fn net(n: NetUsage) -> v1::NetworkUsage {
    v1::NetworkUsage {
        rx_bytes: n.rx_bytes,
        rx_packets: n.rx_packets,
        tx_bytes: n.tx_bytes,
        tx_packets: n.tx_packets,
    }
}

/// An agent's `UsageSample` in domain terms (task ARNs to ids).
pub fn usage_batch(u: v1::UsageSample) -> UsageBatch {
    UsageBatch {
        read_ms: u.sampled_at.as_ref().map_or(0, super::millis),
        host_memory_bytes: u.host_memory_bytes,
        tasks: u
            .tasks
            .into_iter()
            .map(|t| TaskUsage {
                task_id: short_id(t.task_arn.trim()).to_owned(),
                cpu_total_ns: t.cpu_total_ns,
                memory_limit_bytes: t.memory_limit_bytes,
                network: t.network.map(|n| NetUsage {
                    rx_bytes: n.rx_bytes,
                    rx_packets: n.rx_packets,
                    tx_bytes: n.tx_bytes,
                    tx_packets: n.tx_packets,
                }),
                containers: t
                    .containers
                    .into_iter()
                    .map(|c| ContainerUsage {
                        name: c.name,
                        cpu_total_ns: c.cpu_total_ns,
                        cpu_user_ns: c.cpu_user_ns,
                        cpu_system_ns: c.cpu_system_ns,
                        memory_usage_bytes: c.memory_usage_bytes,
                        memory_inactive_file_bytes: c.memory_inactive_file_bytes,
                        memory_limit_bytes: c.memory_limit_bytes,
                        memory_max_usage_bytes: c.memory_max_usage_bytes,
                        oom_kills: c.oom_kills,
                        block_read_bytes: c.block_read_bytes,
                        block_write_bytes: c.block_write_bytes,
                        pids: c.pids,
                    })
                    .collect(),
            })
            .filter(|t| !t.task_id.is_empty())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{TaskMeta, TaskView};

    fn reading(id: &str, cpu: f64, mem: u64) -> TaskReading {
        TaskReading {
            task_id: id.into(),
            meta: TaskMeta {
                cluster: "default".into(),
                instance: "i".into(),
                group: String::new(),
                family: "f".into(),
                revision: 1,
                reserved_cpu_units: 0,
                reserved_memory_mib: 0,
            },
            view: TaskView {
                read_ms: 0,
                preread_ms: None,
                cpu_units: cpu,
                cpu_utilization: None,
                memory_used_bytes: mem,
                memory_utilization: None,
                containers: vec![],
            },
            network: None,
            recent: vec![],
            seq: 1,
        }
    }

    #[test]
    fn top_sorts_largest_first_and_keeps_the_limit() {
        let mut r = vec![
            reading("a", 1.0, 30),
            reading("b", 900.0, 10),
            reading("c", 5.0, 20),
        ];
        sort_readings(&mut r, SortBy::Cpu, 0);
        let ids = |r: &[TaskReading]| r.iter().map(|x| x.task_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&r), ["b", "c", "a"]);
        sort_readings(&mut r, SortBy::Memory, 2);
        assert_eq!(ids(&r), ["a", "c"]);
        assert_eq!(SortBy::parse("").unwrap(), SortBy::Cpu);
        assert_eq!(SortBy::parse("MEMORY").unwrap(), SortBy::Memory);
        assert!(SortBy::parse("disk")
            .unwrap_err()
            .to_string()
            .contains("sort"));
    }
}
