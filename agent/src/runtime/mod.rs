//! The task runtime: everything between the scheduler's desired state and
//! containerd.
//!
//! - [`supervisor`]: reconciles the desired set, one runner per task;
//!   re-adopts what containerd runs after an agent restart.
//! - [`runner`]: one task's lifecycle (ECS statuses, stop codes).
//! - [`lifecycle`]: dependsOn, stop order, health and restart decisions
//!   (pure).
//! - [`plan`]: a task as supervised, and the container labels it lives in.
//! - [`report`]: ECS-named reports, kept level-triggered for the session.
//! - [`ops`]: the seam to the host (containerd, CNI, cgroups).
//! - [`host_ops`]: that seam on the real host.
//! - [`spec`]: OCI runtime specs from container definitions (Docker's merge
//!   rules), and the per-task files containers mount.
//! - [`cgroups`]: task cgroups (v1 and v2), limits, usage, OOM detection.
//! - [`network`]: task networks with the CNI reference plugins.
//! - [`containerd`]: the connection to containerd and its service clients.
//! - [`targets`]: target-group health checks of the host's own tasks
//!   (where, how, ELB's thresholds), reported with the task.
//! - [`task_env`]: the variables the agent adds to every container (metadata
//!   endpoint, host address and host ports).
//! - [`image`]: image pulls into containerd (the agent pulls itself:
//!   containerd 1.6 has no server-side pull) and LRU image GC.

pub mod cgroups;
pub mod containerd;
pub mod host_ops;
pub mod image;
pub mod lifecycle;
pub mod network;
pub mod ops;
pub mod plan;
pub mod report;
pub mod runner;
pub mod spec;
pub mod supervisor;
pub mod targets;
pub mod task_env;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
