//! `berth-scheduler`: Berth's control plane.
//!
//! - [`server`]: assembles store, services and listener; `run(config, listener, shutdown)`.
//! - [`api`]: the gRPC edge, one module per service, where prost types are converted (besides
//!   the generated servers in [`server`] and the snapshot client in `snapshot::cli`).
//!   `api::auth` is the one gate of the operator API (tokens, roles, audit).
//! - [`ecs_api`]: the second edge: Amazon ECS's own API (AWS JSON 1.1 over HTTPS, SigV4), whose
//!   operations call the gRPC services in-process and answer in ECS's shapes.
//! - [`autoscaling`]: service auto scaling (Application Auto Scaling's scalable targets,
//!   target tracking, step scaling, scheduled actions); its decisions are pure in
//!   `autoscaling::decide`, its datapoints come through `autoscaling::ServiceMetrics`.
//! - [`auth`]: roles, the operator-token format and its hash; no I/O.
//! - [`db`]: typed, durable operations (clusters, task definitions, instances, tasks).
//! - [`events`]: the event log, written in the same `Txn` as each change (an outbox), read by
//!   cursor; `api::events` renders EventBridge's JSON.
//! - [`webhooks`]: the event log delivered by signed HTTP(S) POST, each subscription through
//!   its own durable cursor, with retries and dead letters; EventBridge's event patterns.
//! - [`store`]: the narrow storage trait and its sled implementation; the only place sled appears.
//! - [`agents`]: an agent's `Connect` session loop over domain events, the desired set it is
//!   sent, and the live sessions and heartbeats (in memory); `api::agent` converts at the edge.
//! - [`agent_link`]: desired-set notifications and log-request routing to the agents' streams.
//! - [`placement`]: choosing instances for tasks: the Cluster Query Language, constraints,
//!   strategies and the placement core; pure.
//! - [`placer`]: the single committer that batches RunTask calls through `placement` into
//!   the store.
//! - [`services`]: the service controller (REPLICA deployments, circuit breaker, lost and
//!   draining instances); its decisions are pure functions in `services::plan`.
//! - [`metrics`]: `/metrics`: the event counters the hot paths call, and the store's gauges
//!   read at scrape time.
//! - [`paging`]: ECS's `maxResults`/`nextToken` paging of the List calls; pure.
//! - [`reserve`]: what a task needs on an instance and whether it fits; pure functions.
//! - [`records`]: the stored domain records.
//! - [`retention`]: bounded state: the pruner of expired stopped tasks, client tokens and
//!   audit records, and its `[retention]` settings.
//! - [`secrets`]: the secret store's key, sealing, and resolution for tasks.
//! - [`snapshot`]: backups: a consistent snapshot of the store and the cluster CA, and its
//!   restore; `berth-scheduler snapshot`.
//! - [`config`]: file/env/flag configuration, validated before anything binds.
//! - [`tls`]: the cluster CA, the serving certificate, agents' client certificates.
//! - [`dns`]: service discovery by DNS: an authoritative UDP/TCP server for services' DNS
//!   names, answered from the traffic view (`dns::Zone`, pure).
//! - [`prometheus`]: Prometheus HTTP service discovery: the scrape targets of running tasks'
//!   metrics ports (pure), served on the ECS API's listener at `/prometheus/targets`.
//! - [`schedules`]: scheduled tasks (EventBridge Scheduler's at/rate/cron with time zones) and
//!   the loop that fires them, once per fire time.
//! - [`traffic`]: target groups' targets with ELB's states and services' DNS endpoints, as
//!   one view kept fresh for WatchTargets, the DNS server and load balancers.
//! - [`usage`]: task stats in memory (the agents' usage samples, per-minute service
//!   utilization for auto scaling); never stored.

pub mod agent_link;
pub mod agents;
pub mod api;
pub mod auth;
pub mod autoscaling;
pub mod config;
pub mod db;
pub mod dns;
pub mod ecs_api;
pub mod events;
pub mod exec_link;
pub mod metrics;
pub mod paging;
pub mod placement;
pub mod placer;
pub mod prometheus;
pub mod records;
pub mod reserve;
pub mod retention;
pub mod schedules;
pub mod secrets;
pub mod server;
pub mod services;
pub mod snapshot;
pub mod store;
pub mod tls;
pub mod traffic;
pub mod usage;
pub mod webhooks;
