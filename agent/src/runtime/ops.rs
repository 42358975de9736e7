//! The seam between task supervision ([`super::runner`]) and the host:
//! pulling, preparing (cgroup, network), starting, waiting, signalling,
//! tearing down and observing containers, running commands inside them
//! (health checks) and restarting them. The real implementation drives
//! containerd ([`super::host_ops`]); unit tests use a recording fake.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use super::plan::{ContainerPlan, TaskPlan};
use super::report::Binding;
use super::targets::ProbeOutcome;
use crate::desired::TargetHealthCheck;

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: i32,
    pub at: SystemTime,
    /// The kernel's OOM killer ended it (its cgroup says so).
    pub oom_killed: bool,
}

/// What a pull tells the runner (the image itself stays with the ops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullInfo {
    pub digest: String,
    /// The image's StopSignal, if it sets one.
    pub stop_signal: Option<String>,
}

/// What a command run inside a container ([`TaskOps::exec`]) gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code; -1 when it timed out (and was killed).
    pub exit_code: i32,
    /// Its stdout and stderr, interleaved, at most the first 1024 bytes
    /// (lossy UTF-8).
    pub output: String,
    pub timed_out: bool,
}

/// A container found in containerd when the agent starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub runtime_id: String,
    pub labels: BTreeMap<String, String>,
    pub state: ObservedState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedState {
    Running {
        pid: u32,
    },
    Exited(ExitInfo),
    /// The container exists but has no task: containerd or the host
    /// restarted while the agent was down, or it never started.
    NoTask,
}

/// What a task's network is, as `prepare` set it up or `adopt` read it
/// back: what its report needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The host ports as really mapped.
    pub bindings: Vec<Binding>,
    /// The task's own IPv4 address on the host's bridge (bridge and awsvpc
    /// modes); `None` in host and none modes.
    pub ipv4: Option<Ipv4Addr>,
}

/// Failures of host operations, worded for ECS's `reason` fields.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpsError {
    /// ECS: `CannotPullContainerError: <cause>`.
    #[error("CannotPullContainerError: {0}")]
    Pull(String),
    /// Network, cgroup or file setup of the task failed.
    #[error("ResourceInitializationError: {0}")]
    Prepare(String),
    /// ECS: `CannotCreateContainerError: <cause>`.
    #[error("CannotCreateContainerError: {0}")]
    Create(String),
    /// ECS: `CannotStartContainerError: <cause>`.
    #[error("CannotStartContainerError: {0}")]
    Start(String),
    /// Any other runtime call (wait, kill, delete, list).
    #[error("{0}")]
    Runtime(String),
}

/// Host operations for tasks. Implementations are shared by all runners.
pub trait TaskOps: Send + Sync + 'static {
    /// What a pull yields for `start`.
    type Image: Clone + Send + Sync + 'static;
    /// What `prepare` yields for `start` (network namespace, ...).
    type Prepared: Send + Sync + 'static;

    fn pull(
        &self,
        plan: &TaskPlan,
        container: &ContainerPlan,
    ) -> impl Future<Output = Result<(Self::Image, PullInfo), OpsError>> + Send;

    /// Task-level setup: cgroup, network (port mappings), per-task files and
    /// volumes. Returns the network as really set up (host ports, address).
    fn prepare(
        &self,
        plan: &TaskPlan,
    ) -> impl Future<Output = Result<(Self::Prepared, NetworkInfo), OpsError>> + Send;

    /// Re-reads what `prepare` set up, after an agent restart (the network
    /// from the agent's CNI record).
    fn adopt(&self, plan: &TaskPlan) -> impl Future<Output = Result<NetworkInfo, OpsError>> + Send;

    /// Creates and starts one container; returns its pid.
    fn start(
        &self,
        plan: &TaskPlan,
        container: &ContainerPlan,
        image: &Self::Image,
        prepared: &Self::Prepared,
    ) -> impl Future<Output = Result<u32, OpsError>> + Send;

    /// Completes when the container's process has exited (at once if it
    /// already has).
    fn wait(
        &self,
        plan: &TaskPlan,
        runtime_id: &str,
    ) -> impl Future<Output = Result<ExitInfo, OpsError>> + Send;

    /// Sends `signal` (e.g. "SIGTERM", "SIGKILL", "15") to the container's
    /// process; an already exited one is not an error.
    fn signal(
        &self,
        runtime_id: &str,
        signal: &str,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// Runs `argv` inside the running container (its environment, user and
    /// working directory), killing it after `timeout`. A command that cannot
    /// be started (no such executable) is an `Ok` with a non-zero exit code
    /// when the runtime says so, else an error.
    fn exec(
        &self,
        plan: &TaskPlan,
        container: &ContainerPlan,
        argv: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecOutput, OpsError>> + Send;

    /// Starts an exited container again in place: a new process from the
    /// same container, on the same root filesystem (what it wrote stays),
    /// network and volumes. Returns the new pid.
    fn restart(
        &self,
        plan: &TaskPlan,
        container: &ContainerPlan,
    ) -> impl Future<Output = Result<u32, OpsError>> + Send;

    /// Task-level teardown once every container has exited: network (host
    /// ports, IPAM lease, netns) and cgroup. Idempotent.
    fn teardown(&self, plan: &TaskPlan) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// Final removal after the cleanup wait: containers, snapshots, logs.
    /// Idempotent.
    fn remove(&self, plan: &TaskPlan) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// One target-group health check probe of `to`, a task's own address
    /// ([`super::targets::probe_address`]); the caller bounds it with the
    /// check's timeout.
    fn probe_target(
        &self,
        to: SocketAddrV4,
        check: &TargetHealthCheck,
    ) -> impl Future<Output = ProbeOutcome> + Send;

    /// Every Berth container in the runtime, for re-adoption.
    fn observe(&self) -> impl Future<Output = Result<Vec<Observed>, OpsError>> + Send;
}
