//! The task metadata endpoint, version 4 (ECS's `ECS_CONTAINER_METADATA_URI_V4`):
//! an HTTP server in the agent that tells each container about itself and
//! its task, and gives Docker-style stats from the task's cgroups.
//!
//! - [`registry`]: the view the runtime keeps for the endpoint (metadata
//!   id → task and container; addresses, ports, container times).
//! - [`v4`]: the JSON in ECS's field names (pure functions).
//! - [`stats`]: Docker's `ContainerStats` shape from cgroup v1/v2 files.
//! - [`ratelimit`]: ECS's 40 requests/s, bursts of 60, per source address.
//! - [`server`]: routing, the checks, and the hyper server.
//!
//! Where it listens: ECS answers on 169.254.170.2:80 through a DNAT rule to
//! the agent. Berth listens on the Berth bridge's gateway address instead
//! (the first address of the bridge subnet, which the CNI `bridge` plugin
//! gives the bridge) on port 51679 (the ECS agent's own metadata port), and
//! puts that address in `ECS_CONTAINER_METADATA_URI_V4`. Bridge and awsvpc
//! tasks reach it directly as their default gateway, no iptables rule is
//! needed (so none can be left behind), and several agents on one host,
//! each with its own bridge, never share an address. The socket is bound
//! with `IP_FREEBIND`, because the bridge gets its address only with the
//! first task. Host-mode tasks reach the same address once the bridge exists.
//!
//! Who may read what: the id in the URI is random (128 bits) per container,
//! so it cannot be guessed; and a request about a bridge or awsvpc task must
//! come from that task's own address, so even a leaked id is refused (403)
//! to any other task. Host-mode tasks share the host's addresses: for them
//! the id is the check, and a request from a bridge task's address is
//! refused.

pub mod ratelimit;
pub mod registry;
pub mod server;
pub mod stats;
pub mod v4;

pub use registry::Registry;
pub use server::{bind, serve, Endpoint};

/// The endpoint's port (the ECS agent's metadata port, 51679).
pub const DEFAULT_PORT: u16 = crate::config::DEFAULT_TASK_METADATA_PORT;
