//! `berth-agent`: one per host. It joins a cluster once with `berth-agent
//! register` (an activation; the identity and the host's certificate are
//! persisted), measures the host, and holds a mutual-TLS `Connect` session
//! with the scheduler that reports the host's resources and heartbeats, and receives
//! the desired set of tasks. Running those tasks through containerd comes
//! with the task runtime, which will read [`Agent::desired_state`].
//!
//! Modules:
//! - [`config`]: file, environment and flags layered into a validated [`Config`].
//! - [`host`]: what the host has (CPU, memory, ports, attributes), from `/proc`.
//! - [`identity`]: the persisted container-instance identity and TLS material.
//! - [`register`]: `berth-agent register` (CA pinning by fingerprint, key, CSR, activation).
//! - [`join`]: `berth-agent join`: preconditions, register, write agent.toml, start the
//!   agent with systemd and wait until the scheduler shows it connected.
//! - [`session`]: the Connect loop, its backoff, and the `watch`es it publishes.
//! - [`wire`]: the only conversions between `berth.v1` messages and domain types.
//! - [`transport`]: the one place a channel to the scheduler is built.
//! - [`backoff`], [`desired`]: retry pacing; what the scheduler wants here.
//! - [`runtime`]: running tasks on this host: the supervisor and runners,
//!   OCI specs, cgroups, CNI networking, containerd, image pulls and GC.
//! - [`exec`]: ECS Exec, processes run in task containers for `berthctl task exec`.
//! - [`logs`]: container logs (the log-driver binary, json-files, the log server).
//! - [`metadata`]: the task metadata endpoint v4 (HTTP on the bridge's gateway).
//! - [`metrics`]: `/metrics` (Prometheus): image pulls, and this host's tasks read from
//!   their cgroups at scrape time.
//! - [`usage`]: the same readings sampled every `stats_interval` for the scheduler.
//!
//! Invariants: nothing here exits or panics on a scheduler outage (a lost
//! connection is a [`ConnectionState`]); configuration, host and identity are
//! checked before any socket opens; the host's key is never logged nor sent.

pub mod backoff;
pub mod config;
pub mod desired;
pub mod exec;
pub mod host;
pub mod identity;
pub mod join;
pub mod logs;
pub mod metadata;
pub mod metrics;
pub mod register;
pub mod runtime;
pub mod session;
pub mod transport;
pub mod usage;
pub mod wire;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use desired::DesiredState;
use host::{HostError, HostProbe};
use identity::{IdentityError, IdentityStore};
pub use session::ConnectionState;
use session::{SessionConfig, SessionHandle};

/// How long shutdown waits for the session to close its stream.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Exit code for a configuration the agent cannot run with (`EX_USAGE`).
pub const EXIT_CONFIG: u8 = 64;

/// Why the agent could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("the session task ended unexpectedly: {cause}")]
    SessionDied { cause: String },
    /// The task runtime cannot be set up on this host (cgroups, CNI).
    #[error("cannot run tasks on this host: {what}: {cause}")]
    Runtime { what: &'static str, cause: String },
}

impl AgentError {
    /// The process exit code for this error: 64 when the configuration is at
    /// fault, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        let config_fault = match self {
            AgentError::Config(_) => true,
            AgentError::Host(e) => e.is_config_error(),
            AgentError::Identity(e) => e.is_config_error(),
            AgentError::SessionDied { .. } => false,
            AgentError::Runtime { .. } => true,
        };
        if config_fault {
            EXIT_CONFIG
        } else {
            1
        }
    }
}

/// Runs the agent until `shutdown` completes, then closes the session.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let mut agent = Agent::start(&config, HostProbe::new(&config))?;
    let (ping_tx, ping_rx) = tokio::sync::mpsc::channel(1);
    let started = Arc::new(AtomicBool::new(false));
    let usage = agent.usage.take().ok_or_else(|| AgentError::Runtime {
        what: "usage samples",
        cause: "the runtime was started twice".to_owned(),
    })?;
    let runtime = start_runtime(
        &config,
        agent.reporter.clone(),
        agent.desired_state(),
        agent.cancel.child_token(),
        Liveness {
            pings: ping_rx,
            started: started.clone(),
        },
        usage,
    )?;
    let _watchdog = berth_proto::systemd::watchdog_period().map(|period| {
        AbortOnDrop(tokio::spawn(berth_proto::systemd::run_watchdog(
            period,
            supervisor_probe(ping_tx, started),
        )))
    });
    tokio::select! {
        () = shutdown => {
            berth_proto::systemd::notify_stopping();
            tracing::info!("shutting down");
            agent.stop().await;
            runtime.join(STOP_TIMEOUT).await;
            Ok(())
        }
        joined = agent.session.task() => Err(AgentError::SessionDied {
            cause: match joined {
                Ok(()) => "it returned".to_owned(),
                Err(e) => e.to_string(),
            },
        }),
    }
}

/// What the systemd watchdog needs from the task runtime: the supervisor's
/// ping channel, and whether the supervisor runs yet (it starts once
/// containerd answers).
#[derive(Debug)]
pub struct Liveness {
    pub pings: tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<()>>,
    pub started: Arc<AtomicBool>,
}

/// The agent's watchdog probe: once the task supervisor runs, its loop must
/// answer a ping; until then (containerd not reachable yet, retried in the
/// background) the probe proves only that the runtime schedules tasks.
fn supervisor_probe(
    pings: runtime::supervisor::PingSender,
    started: Arc<AtomicBool>,
) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
    move || {
        let pings = pings.clone();
        let started = started.load(Ordering::Acquire);
        Box::pin(async move {
            if !started {
                return Ok(());
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            pings
                .send(tx)
                .await
                .map_err(|_| "the task supervisor has stopped".to_owned())?;
            rx.await
                .map_err(|_| "the task supervisor dropped the ping".to_owned())
        })
    }
}

/// Aborts the task when dropped (the watchdog ends with `run`; the image
/// cleanup loop with the runtime task that started it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The task runtime's background tasks: the metadata endpoint, and the
/// containerd connect loop, which goes on to run the image cleanup loop and
/// the task supervisor. Dropping it aborts them.
#[derive(Debug)]
#[must_use = "dropping RuntimeTasks aborts the runtime's tasks"]
pub struct RuntimeTasks(tokio::task::JoinSet<()>);

impl RuntimeTasks {
    /// Waits, once their cancel token has fired, up to `timeout` for the
    /// tasks to end; aborts those still running.
    pub async fn join(mut self, timeout: Duration) {
        let all = async {
            while let Some(joined) = self.0.join_next().await {
                if let Err(e) = joined {
                    tracing::error!(cause = %e, "a runtime task failed");
                }
            }
        };
        let done = tokio::time::timeout(timeout, all).await;
        if done.is_err() {
            tracing::warn!(waited = ?timeout, "the runtime's tasks did not stop in time");
            self.0.abort_all();
        }
    }
}

/// A started agent: its session runs in the background.
#[derive(Debug)]
pub struct Agent {
    session: SessionHandle,
    cancel: CancellationToken,
    reporter: runtime::report::Reporter,
    /// The runtime's ends of the usage samples, until the runtime takes them.
    usage: Option<usage::UsagePorts>,
}

/// How long to wait between tries to reach containerd.
const CONTAINERD_RETRY: Duration = Duration::from_secs(2);

/// Sets up the task runtime: cgroups and CNI are checked now (a host that
/// cannot run tasks fails at start, exit 64); containerd is reached in the
/// background, retrying, so the agent joins even while containerd starts.
/// Tasks keep running when `cancel` fires; the returned [`RuntimeTasks`]
/// then end, and `run` joins them.
pub fn start_runtime(
    config: &Config,
    reporter: runtime::report::Reporter,
    desired: watch::Receiver<Option<DesiredState>>,
    cancel: CancellationToken,
    liveness: Liveness,
    usage: usage::UsagePorts,
) -> Result<RuntimeTasks, AgentError> {
    let mut tasks = tokio::task::JoinSet::new();
    use runtime::{cgroups::CgroupManager, network};
    let rc = config.runtime.clone();
    let cgroups = CgroupManager::detect(&rc.cgroup_parent).map_err(|e| AgentError::Runtime {
        what: "cgroups",
        cause: e.to_string(),
    })?;
    let subnet = match &rc.bridge_subnet {
        Some(s) => Some(
            s.parse::<network::Ipv4Net>()
                .map_err(|e| AgentError::Runtime {
                    what: "bridge_subnet",
                    cause: e.to_string(),
                })?,
        ),
        None => None,
    };
    let net_cfg = network::NetworkConfig {
        bridge: rc.bridge.clone(),
        subnet,
        cni_bin_dirs: rc.cni_bin_dirs.clone(),
        state_dir: config.state_dir.join("network"),
        mtu: None,
    };
    let networking = network::Networking::new(net_cfg).map_err(|e| AgentError::Runtime {
        what: "CNI networking",
        cause: e.to_string(),
    })?;
    // The task metadata endpoint on the bridge's gateway address (the
    // subnet's first address, which the CNI bridge plugin gives the bridge).
    let registry = metadata::Registry::default();
    let metadata_base = if rc.task_metadata {
        let gateway = std::net::Ipv4Addr::from(u32::from(networking.subnet().network().addr()) + 1);
        let addr = std::net::SocketAddr::new(gateway.into(), rc.task_metadata_port);
        match metadata::bind(addr) {
            Ok(listener) => {
                let endpoint = std::sync::Arc::new(metadata::Endpoint::new(
                    registry.clone(),
                    reporter.clone(),
                    desired.clone(),
                    Some(cgroups.clone()),
                    config.availability_zone.clone(),
                ));
                tasks.spawn(metadata::serve(listener, endpoint, cancel.clone()));
                Some(format!("http://{addr}"))
            }
            // Tasks still run; their containers get no metadata URI. (Two
            // agents sharing one bridge, e.g., meet here.)
            Err(e) => {
                tracing::error!(%addr, cause = %e, "cannot listen for the task metadata endpoint; containers get no ECS_CONTAINER_METADATA_URI");
                None
            }
        }
    } else {
        None
    };
    // Usage samples for the scheduler (`berthctl task stats`, `top`).
    let collector = std::sync::Arc::new(metrics::HostCollector {
        registry: registry.clone(),
        reporter: reporter.clone(),
        desired: desired.clone(),
        cgroups: cgroups.clone(),
        sys_class_net: std::path::PathBuf::from("/sys/class/net"),
    });
    tasks.spawn(
        usage::Sampler {
            collector,
            interval: rc.stats_interval,
            ports: usage,
        }
        .run(cancel.clone()),
    );
    // `/metrics`: a failure to listen costs the series, not the tasks.
    let pull_metrics = metrics::AgentMetrics::default();
    if let Some(addr) = config.metrics_listen {
        match metadata::bind(addr) {
            Ok(listener) => {
                let registry = std::sync::Arc::new(metrics::registry(
                    &pull_metrics,
                    metrics::HostCollector {
                        registry: registry.clone(),
                        reporter: reporter.clone(),
                        desired: desired.clone(),
                        cgroups: cgroups.clone(),
                        sys_class_net: std::path::PathBuf::from("/sys/class/net"),
                    },
                ));
                let scrape: berth_proto::metrics_http::Scrape =
                    std::sync::Arc::new(move || Box::pin(metrics::scrape(registry.clone())));
                let stop = cancel.clone();
                tasks.spawn(berth_proto::metrics_http::serve(
                    listener,
                    scrape,
                    async move { stop.cancelled().await },
                ));
            }
            Err(e) => {
                tracing::error!(%addr, cause = %e, "cannot listen for /metrics (metrics_listen); serving no metrics");
            }
        }
    }
    let host_ip = rc.task_host_ip.or_else(runtime::task_env::detect_host_ip);
    if host_ip.is_none() {
        tracing::warn!(
            "no address for BERTH_HOST_IP: the host has no default route; set task_host_ip"
        );
    }
    let hostname = config.hostname.clone().unwrap_or_else(|| {
        hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".to_owned())
    });
    let agent_binary = std::env::current_exe().map_err(|e| AgentError::Runtime {
        what: "the agent's own path (for the log driver)",
        cause: e.to_string(),
    })?;
    let host_cfg = runtime::host_ops::HostOpsConfig {
        pull_policy: rc.image_pull_behavior,
        agent_binary,
        log_dir: config.log_dir(),
        log_max_bytes: rc.log_max_size,
        log_max_files: rc.log_max_files,
        task_dir: config.state_dir.join("tasks"),
        snapshotter: "overlayfs".to_owned(),
        hostname,
        metadata_base,
        host_ip,
    };
    tasks.spawn(async move {
        let mut warned = false;
        let ctd = loop {
            match runtime::containerd::Containerd::connect(
                &rc.containerd_socket,
                &rc.containerd_namespace,
            )
            .await
            {
                Ok(c) => break c.observed(pull_metrics.containerd.clone()),
                Err(e) => {
                    if !warned {
                        tracing::warn!(socket = %rc.containerd_socket.display(), cause = %e, "containerd is not reachable; tasks cannot run until it is (retrying)");
                        warned = true;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(CONTAINERD_RETRY) => {}
                    }
                }
            }
        };
        match ctd.version().await {
            Ok(v) => {
                tracing::info!(version = %v.version, namespace = %rc.containerd_namespace, "connected to containerd")
            }
            Err(e) => {
                tracing::warn!(cause = %e, "containerd answered the connection but not Version")
            }
        }
        let images = runtime::image::ImageStore::new(ctd.clone(), runtime::image::ImageStoreConfig::from(&rc))
            .with_metrics(pull_metrics);
        let ops = std::sync::Arc::new(
            runtime::host_ops::HostOps::new(ctd, images, networking, cgroups, host_cfg)
                .with_metadata(registry),
        );
        let ctx = std::sync::Arc::new(runtime::runner::RunnerCtx {
            ops: ops.clone(),
            reporter,
            cleanup_after: rc.task_cleanup_wait,
        });
        // ECS-style image cleanup: least recently used images no task uses.
        let gc_ops = ops.clone();
        let gc_cancel = cancel.clone();
        let mut gc = AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = gc_cancel.cancelled() => return,
                    () = tokio::time::sleep(rc.image_cleanup_interval) => {}
                }
                match gc_ops
                    .images()
                    .gc(
                        &gc_ops.images_in_use(),
                        rc.image_cleanup_min_age,
                        rc.image_cleanup_per_cycle,
                    )
                    .await
                {
                    Ok(deleted) if !deleted.is_empty() => tracing::info!(?deleted, "image cleanup"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(cause = %e, "image cleanup failed"),
                }
            }
        }));
        // containerd answers and the runtime is set up: the agent serves.
        liveness.started.store(true, Ordering::Release);
        berth_proto::systemd::notify_ready("connected to containerd; supervising tasks");
        runtime::supervisor::Supervisor::new(ctx, rc.stop_timeout, cancel)
            .with_pings(liveness.pings)
            .run(desired)
            .await;
        // The cleanup loop has seen the same cancel; wait for it to end.
        if let Err(e) = (&mut gc.0).await {
            tracing::error!(cause = %e, "the image cleanup task failed");
        }
    });
    Ok(RuntimeTasks(tasks))
}

impl Agent {
    /// Measures the host, loads the identity and certificate, and starts the
    /// session. Fails before any socket opens if the host is not registered
    /// or the host or identity does not fit the configuration. Must be
    /// called within a Tokio runtime.
    pub fn start(config: &Config, probe: HostProbe) -> Result<Self, AgentError> {
        berth_proto::trust::install_crypto_provider();
        let facts = probe.measure()?;
        tracing::info!(
            hostname = %facts.hostname,
            cpu_units = facts.resources.cpu_units,
            memory_mib = facts.resources.memory_mib,
            port_range = %facts.resources.port_range,
            version = berth_proto::VERSION,
            "measured this host"
        );
        warn_on_ephemeral_overlap(&probe);

        let store = IdentityStore::new(config.identity_path());
        // The activation decides the cluster; a configured one other than
        // the default must agree with it.
        let configured =
            (config.cluster != config::DEFAULT_CLUSTER).then_some(config.cluster.as_str());
        let identity =
            store
                .load_for_cluster(configured)?
                .ok_or_else(|| IdentityError::NotRegistered {
                    path: store.path().to_owned(),
                })?;
        let credentials = store.load_credentials()?;
        tracing::info!(
            instance = %identity.container_instance_id,
            cluster = %identity.cluster,
            "using the persisted identity"
        );

        let cancel = CancellationToken::new();
        let reporter = runtime::report::Reporter::default();
        let (log_tx, log_rx) = tokio::sync::mpsc::channel(64);
        let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel(64);
        let log_server = logs::server::LogServer {
            dir: config.log_dir(),
            max_files: config.runtime.log_max_files,
            reporter: reporter.clone(),
        };
        tokio::spawn(log_server.run(log_rx, chunk_tx, cancel.child_token()));
        let (exec_tx, exec_rx) = tokio::sync::mpsc::channel(64);
        let (exec_out_tx, exec_out_rx) = tokio::sync::mpsc::channel(64);
        let exec_server = exec::ExecServer {
            containerd_socket: config.runtime.containerd_socket.clone(),
            namespace: config.runtime.containerd_namespace.clone(),
            fifo_dir: config.state_dir.join("exec"),
        };
        tokio::spawn(exec_server.run(exec_rx, exec_out_tx, cancel.child_token()));
        let (usage_ports, usage_link) = usage::channels();
        let link = session::RuntimeLink {
            usage: usage_link,
            reporter: reporter.clone(),
            logs: log_tx,
            chunks: chunk_rx,
            exec: exec_tx,
            exec_output: exec_out_rx,
        };
        let session = session::spawn(
            SessionConfig {
                scheduler: config.scheduler.clone(),
                backoff: backoff::Backoff::RECONNECT,
            },
            probe,
            store,
            identity,
            credentials,
            link,
            cancel.clone(),
        );
        Ok(Self {
            session,
            cancel,
            reporter,
            usage: Some(usage_ports),
        })
    }

    /// The connection to the scheduler, as it changes.
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.session.state()
    }

    /// The scheduler's latest desired state for this host.
    pub fn desired_state(&self) -> watch::Receiver<Option<DesiredState>> {
        self.session.desired()
    }

    /// Cancels the session and waits (bounded) for it to close its stream.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        match tokio::time::timeout(STOP_TIMEOUT, self.session.task()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(cause = %e, "the session task failed"),
            Err(_) => {
                tracing::warn!(waited = ?STOP_TIMEOUT, "the session did not stop in time");
                self.session.task().abort();
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn warn_on_ephemeral_overlap(probe: &HostProbe) {
    let range = probe.port_range();
    match probe.ephemeral_port_range() {
        Ok(ephemeral) if range.overlaps(&ephemeral) => tracing::warn!(
            port_range = %range,
            ephemeral = %ephemeral,
            "the dynamic port range overlaps the kernel's ephemeral range \
             (net.ipv4.ip_local_port_range): a task's host port may collide with \
             the source port of an outgoing connection"
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!(cause = %e, "cannot read the ephemeral port range"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runtime_tasks_are_joined_once_cancelled_and_aborted_after_the_timeout() {
        let cancel = CancellationToken::new();
        let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut set = tokio::task::JoinSet::new();
        let (c, tx) = (cancel.clone(), ended_tx.clone());
        set.spawn(async move {
            c.cancelled().await;
            let _ = tx.send("cancelled");
        });
        cancel.cancel();
        RuntimeTasks(set).join(STOP_TIMEOUT).await;
        assert_eq!(ended_rx.try_recv(), Ok("cancelled"));

        // A task that ignores its cancel is aborted once the timeout passes.
        let mut set = tokio::task::JoinSet::new();
        let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
        set.spawn(async move {
            std::future::pending::<()>().await;
            drop(held_tx);
        });
        let started = tokio::time::Instant::now();
        RuntimeTasks(set).join(STOP_TIMEOUT).await;
        assert_eq!(started.elapsed(), STOP_TIMEOUT);
        // Aborted: its sender is gone.
        assert!(held_rx.await.is_err());
    }
}
