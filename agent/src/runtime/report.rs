//! What the agent tells the scheduler about its tasks, in ECS's names.
//!
//! Reporting is level-triggered like the desired state: the [`Reporter`]
//! keeps the latest report of every task with a sequence number. The
//! session sends whatever changed since the last sequence it sent and, after
//! a reconnect, everything, so a lost message heals on the next connection.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::Notify;

pub use berth_proto::ecs::{ContainerStatus, HealthStatus, Protocol, StopCode, TaskStatus};

/// A host port as really mapped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    pub bind_ip: String,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerReport {
    pub name: String,
    pub runtime_id: String,
    pub status: ContainerStatus,
    pub exit_code: Option<i32>,
    pub reason: String,
    pub bindings: Vec<Binding>,
    pub image_digest: String,
    /// `None` for a container without a health check.
    pub health: Option<HealthReport>,
    /// Restarts by the container's restartPolicy.
    pub restart_count: u32,
}

/// A container's health as its checks found it (ECS's task metadata v4
/// `Health` object: status, since when, last exit code and output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub since: Option<SystemTime>,
    pub exit_code: Option<i32>,
    /// The last check's output, at most 1024 bytes.
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    pub arn: String,
    pub status: TaskStatus,
    /// Why it stopped; `None` until it stops.
    pub stop_code: Option<StopCode>,
    pub stopped_reason: String,
    pub containers: Vec<ContainerReport>,
    pub pull_started_at: Option<SystemTime>,
    pub pull_stopped_at: Option<SystemTime>,
    pub started_at: Option<SystemTime>,
    pub stopped_at: Option<SystemTime>,
    /// ECS's task healthStatus, from the containers' ([`super::lifecycle::task_health`]).
    pub health_status: HealthStatus,
    /// awsvpc tasks: the task's own address on the host's bridge, once its
    /// network is set up (ECS's ENI `privateIPv4Address`). `None` for other
    /// network modes: ECS shows no task address for them.
    pub private_ipv4: Option<Ipv4Addr>,
    /// The latest verdict of each of the task's target checks that has
    /// reached a threshold ([`super::targets`]), in the checks' order.
    pub target_health: Vec<TargetHealth>,
}

/// One target's health as the agent's probes found it: the states an
/// agent decides of ELB's `TargetHealth` (the scheduler adds `initial`,
/// `draining` and `unavailable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
    pub state: TargetState,
    /// Unhealthy only.
    pub reason: Option<TargetReason>,
    /// ELB's wording, e.g. `Health checks failed with these codes: [503]`.
    pub description: String,
}

/// ELB's target states the probes reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Healthy,
    Unhealthy,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
        }
    }
}

/// ELB's reason codes for an unhealthy target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetReason {
    /// An HTTP answer with a code the matcher does not accept.
    ResponseCodeMismatch,
    /// No connection or answer within the timeout.
    Timeout,
    /// Anything else: connection refused or reset, not HTTP.
    FailedHealthChecks,
}

impl TargetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetReason::ResponseCodeMismatch => "Target.ResponseCodeMismatch",
            TargetReason::Timeout => "Target.Timeout",
            TargetReason::FailedHealthChecks => "Target.FailedHealthChecks",
        }
    }
}

impl TaskReport {
    /// A fresh report: PROVISIONING, containers PENDING.
    pub fn new(arn: &str, containers: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            arn: arn.to_owned(),
            status: TaskStatus::Provisioning,
            stop_code: None,
            stopped_reason: String::new(),
            containers: containers
                .into_iter()
                .map(|(name, runtime_id)| ContainerReport {
                    name,
                    runtime_id,
                    status: ContainerStatus::Pending,
                    exit_code: None,
                    reason: String::new(),
                    bindings: vec![],
                    image_digest: String::new(),
                    health: None,
                    restart_count: 0,
                })
                .collect(),
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopped_at: None,
            health_status: HealthStatus::Unknown,
            private_ipv4: None,
            target_health: Vec::new(),
        }
    }

    pub fn container_mut(&mut self, name: &str) -> Option<&mut ContainerReport> {
        self.containers.iter_mut().find(|c| c.name == name)
    }
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    tasks: BTreeMap<String, (u64, TaskReport)>,
}

/// The latest report of every task, shared by the runners (writers) and the
/// session (reader). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Reporter {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl Reporter {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `report` as its task's latest; unchanged reports are no-ops.
    pub fn publish(&self, report: TaskReport) {
        let mut s = self.lock();
        if s.tasks.get(&report.arn).is_some_and(|(_, r)| *r == report) {
            return;
        }
        s.seq += 1;
        let seq = s.seq;
        tracing::debug!(task = %report.arn, status = report.status.as_str(), seq, "task report");
        s.tasks.insert(report.arn.clone(), (seq, report));
        drop(s);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    /// Reports newer than `after`, and the sequence to ask from next time.
    /// `after = 0` gives every report.
    pub fn since(&self, after: u64) -> (u64, Vec<TaskReport>) {
        let s = self.lock();
        let out = s
            .tasks
            .values()
            .filter(|(seq, _)| *seq > after)
            .map(|(_, r)| r.clone())
            .collect();
        (s.seq, out)
    }

    /// The latest report of one task.
    pub fn get(&self, arn: &str) -> Option<TaskReport> {
        self.lock().tasks.get(arn).map(|(_, r)| r.clone())
    }

    /// Drops a task (after its cleanup): nothing more to say about it.
    pub fn forget(&self, arn: &str) {
        self.lock().tasks.remove(arn);
    }

    /// Completes when a report is published after this call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_gives_changes_and_everything_from_zero() {
        let r = Reporter::default();
        let mut a = TaskReport::new("a", [("c".into(), "id".into())]);
        r.publish(a.clone());
        r.publish(TaskReport::new("b", []));
        let (seq, all) = r.since(0);
        assert_eq!((seq, all.len()), (2, 2));
        r.publish(a.clone()); // unchanged: no new sequence
        assert_eq!(r.since(seq).1.len(), 0);
        a.status = TaskStatus::Running;
        r.publish(a);
        let (seq2, changed) = r.since(seq);
        assert_eq!(seq2, 3);
        assert_eq!(changed[0].status, TaskStatus::Running);
        assert_eq!(r.since(0).1.len(), 2, "a reconnect resends every task");
        r.forget("b");
        assert_eq!(r.since(0).1.len(), 1);
    }

    #[test]
    fn statuses_are_ordered_like_the_lifecycle() {
        assert!(TaskStatus::Pending < TaskStatus::Running);
        assert!(TaskStatus::Running < TaskStatus::Stopped);
        assert_eq!(TaskStatus::Deprovisioning.as_str(), "DEPROVISIONING");
    }
}
