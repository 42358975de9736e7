//! `berth-agent`: one per host. It measures the host, joins a cluster (once:
//! the identity is persisted), and holds a `Connect` session with the
//! scheduler that reports the host's resources and heartbeats, and receives
//! the desired set of tasks. Running those tasks through containerd comes
//! with the task runtime, which will read [`Agent::desired_state`].
//!
//! Modules:
//! - [`config`]: file, environment and flags layered into a validated [`Config`].
//! - [`host`]: what the host has (CPU, memory, ports, attributes), from `/proc`.
//! - [`identity`]: the persisted container-instance identity.
//! - [`session`]: the Connect loop, its backoff, and the `watch`es it publishes.
//! - [`wire`]: the only conversions between `berth.v1` messages and domain types.
//! - [`transport`]: the one place a channel to the scheduler is built.
//! - [`backoff`], [`desired`]: retry pacing; what the scheduler wants here.
//! - [`runtime`]: running tasks on this host: the supervisor and runners,
//!   OCI specs, cgroups, CNI networking, containerd, image pulls and GC.
//! - [`logs`]: container logs (the log-driver binary, json-files, the log server).
//!
//! Invariants: nothing here exits or panics on a scheduler outage (a lost
//! connection is a [`ConnectionState`]); configuration, host and identity are
//! checked before any socket opens; the credential is never logged.

pub mod backoff;
pub mod config;
pub mod desired;
pub mod host;
pub mod identity;
pub mod logs;
pub mod runtime;
pub mod session;
pub mod transport;
pub mod wire;

use std::future::Future;
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
    tokio::select! {
        () = shutdown => {
            tracing::info!("shutting down");
            agent.stop().await;
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

/// A started agent: its session runs in the background.
#[derive(Debug)]
pub struct Agent {
    session: SessionHandle,
    cancel: CancellationToken,
}

impl Agent {
    /// Measures the host, loads the identity and starts the session. Fails
    /// before any socket opens if the host or the identity does not fit the
    /// configuration. Must be called within a Tokio runtime.
    pub fn start(config: &Config, probe: HostProbe) -> Result<Self, AgentError> {
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
        let identity = store.load_for_cluster(&config.cluster)?;
        match &identity {
            Some(id) => tracing::info!(
                instance = %id.container_instance_id,
                cluster = %id.cluster,
                "using the persisted identity"
            ),
            None => tracing::info!(
                path = %store.path().display(),
                "no identity yet; this host will register"
            ),
        }

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
        let link = session::RuntimeLink {
            reporter,
            logs: log_tx,
            chunks: chunk_rx,
        };
        let session = session::spawn(
            SessionConfig {
                scheduler: config.scheduler.clone(),
                cluster: config.cluster.clone(),
                backoff: backoff::Backoff::RECONNECT,
            },
            probe,
            store,
            identity,
            link,
            cancel.clone(),
        );
        Ok(Self { session, cancel })
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
