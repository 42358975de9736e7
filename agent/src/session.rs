//! The agent's session with the scheduler: a background task that holds one
//! mutual-TLS `Connect` stream at a time (the host's certificate from
//! `berth-agent register`) and reconnects with backoff and jitter whenever
//! it breaks. At two thirds of the certificate's lifetime it renews it over
//! the open channel (`RenewCertificate`, same key) and reconnects at once
//! with the new one; tasks are untouched, since the desired state outlives
//! connections.
//!
//! On each stream the agent sends `Hello` (the host measured now) first, then
//! waits for `Welcome`, then sends a `Heartbeat` every
//! `heartbeat_interval_ms`, while `DesiredState` messages update a
//! `tokio::sync::watch` that the task runtime reads. The connection's state
//! is published into another `watch`. A lost connection, a refused
//! credential or a scheduler outage is a state to retry from, never an exit.
//!
//! ```text
//!            ┌────────────── backoff elapsed ───────────────┐
//!            ▼                                               │
//!   Connecting ──Welcome──▶ Connected ──stream lost──▶ Disconnected
//!        │                                                   ▲
//!        └──── connect / Connect failed ─────────────────────┘
//!   (any state) ── shutdown ──▶ Stopped
//! ```

use std::time::{Duration, SystemTime};

use berth_proto::v1;
use berth_proto::v1::agent_service_client::AgentServiceClient;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tracing::Instrument;

use crate::backoff::{Backoff, LogLimiter};
use crate::desired::DesiredState;
use crate::exec::{ExecCommand, ExecFrame};
use crate::host::{HostError, HostProbe};
use crate::identity::{Credentials, Identity, IdentityError, IdentityStore};
use crate::logs::server::{LogChunk, LogCommand};
use crate::runtime::report::Reporter;
use crate::transport::{self, TransportError};
use crate::usage::UsageLink;
use crate::wire::{self, Inbound, Welcome, WireError};
use berth_proto::delta::DeltaReceiver;

/// How long RenewCertificate may take.
const RENEW_TIMEOUT: Duration = Duration::from_secs(15);
/// After a failed renewal, the next try comes this much later.
const RENEW_RETRY: Duration = Duration::from_secs(60);
/// How long the scheduler may take to answer Hello with Welcome.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that held this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// On shutdown, how long to wait for the scheduler to close its side after
/// the agent closed its own.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// At most one failure line per this period while reconnecting.
const LOG_EVERY: Duration = Duration::from_secs(30);
/// Outgoing messages waiting for the transport (Hello, heartbeats, task
/// reports, log chunks).
const OUTBOUND_BUFFER: usize = 256;

/// The connection to the scheduler, as published by the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening a channel, registering or saying Hello; `attempt` counts the
    /// tries since the last connection (from 1).
    Connecting { attempt: u32 },
    /// The scheduler answered Welcome at `since`; heartbeats flow.
    Connected { since: Instant },
    /// The last try failed or the stream broke; the next try is in `retry_in`.
    Disconnected { reason: String, retry_in: Duration },
    /// The agent is shutting down; no more tries.
    Stopped,
}

/// Why one try at a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(
        "the scheduler refused this host's certificate ({code:?}: {message}); if this \
         instance was deregistered, remove {path} and its cert.pem and key.pem, and \
         register the host anew with `berth-agent register`"
    )]
    Refused {
        path: String,
        code: Code,
        message: String,
    },
    #[error("Connect failed: {}", status_text(status))]
    Connect { status: Status },
    #[error("no Welcome within {waited:?} of Hello")]
    NoWelcome { waited: Duration },
    #[error("the scheduler's first message was not Welcome")]
    NotWelcome,
    #[error("the stream broke: {}", status_text(status))]
    Stream { status: Status },
    #[error("the scheduler closed the stream")]
    Closed,
    #[error("the outgoing stream closed")]
    OutboundClosed,
    #[error("protocol error: {0}")]
    Protocol(#[from] WireError),
    #[error("cannot measure the host: {0}")]
    Host(#[from] HostError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Not a failure: the certificate was renewed, reconnect with it.
    #[error("the client certificate was renewed; reconnecting with it")]
    Renewed,
}

fn status_text(status: &Status) -> String {
    if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    }
}

/// Where the session connects and how it paces retries.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `https://host:port` of the scheduler.
    pub scheduler: String,
    pub backoff: Backoff,
}

/// What the session carries for the task runtime: task reports up, log
/// requests down and their answers up.
#[derive(Debug)]
pub struct RuntimeLink {
    pub reporter: Reporter,
    pub logs: mpsc::Sender<LogCommand>,
    pub chunks: mpsc::Receiver<LogChunk>,
    /// ECS Exec: commands down to the [`crate::exec::ExecServer`], output up.
    pub exec: mpsc::Sender<ExecCommand>,
    pub exec_output: mpsc::Receiver<ExecFrame>,
    /// Usage samples up, the scheduler's sampling requests down.
    pub usage: UsageLink,
}

impl RuntimeLink {
    /// A link nobody serves: reports are kept, log requests go nowhere.
    pub fn detached() -> Self {
        let (logs, _) = mpsc::channel(1);
        let (_, chunks) = mpsc::channel(1);
        let (exec, _) = mpsc::channel(1);
        let (_, exec_output) = mpsc::channel(1);
        let (_, usage) = crate::usage::channels();
        Self {
            usage,
            reporter: Reporter::default(),
            logs,
            chunks,
            exec,
            exec_output,
        }
    }
}

/// The running session: its published state and its task.
#[derive(Debug)]
pub struct SessionHandle {
    state: watch::Receiver<ConnectionState>,
    desired: watch::Receiver<Option<DesiredState>>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// The connection state, updated on every transition.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// The latest desired state (`None` until the first one arrives). It
    /// outlives disconnections: tasks keep running while the scheduler is away.
    pub fn desired(&self) -> watch::Receiver<Option<DesiredState>> {
        self.desired.clone()
    }

    /// The session's task, which ends after its cancellation token fires.
    pub fn task(&mut self) -> &mut JoinHandle<()> {
        &mut self.task
    }
}

/// Starts the session in a background task with the persisted identity and
/// TLS material. The session ends, closing its stream, when `cancel` fires.
pub fn spawn(
    config: SessionConfig,
    probe: HostProbe,
    store: IdentityStore,
    identity: Identity,
    credentials: Credentials,
    link: RuntimeLink,
    cancel: CancellationToken,
) -> SessionHandle {
    let (state_tx, state) = watch::channel(ConnectionState::Connecting { attempt: 1 });
    let (desired_tx, desired) = watch::channel(None);
    // Every line the session logs carries the scheduler and, once known, the
    // instance id.
    let span = tracing::info_span!(
        "session",
        scheduler = %config.scheduler,
        instance = tracing::field::Empty
    );
    span.record("instance", identity.container_instance_id.as_str());
    let session = Session {
        config,
        probe,
        store,
        identity,
        credentials,
        link,
        state_tx,
        desired_tx,
        rng: StdRng::from_os_rng(),
        failure_log: LogLimiter::new(LOG_EVERY),
        heartbeat_log: LogLimiter::new(LOG_EVERY),
    };
    let task = tokio::spawn(session.run(cancel).instrument(span));
    SessionHandle {
        state,
        desired,
        task,
    }
}

struct Session {
    config: SessionConfig,
    probe: HostProbe,
    store: IdentityStore,
    identity: Identity,
    credentials: Credentials,
    link: RuntimeLink,
    state_tx: watch::Sender<ConnectionState>,
    desired_tx: watch::Sender<Option<DesiredState>>,
    rng: StdRng,
    failure_log: LogLimiter,
    heartbeat_log: LogLimiter,
}

/// How one try ended.
enum Ended {
    Shutdown,
    Lost {
        error: SessionError,
        /// How long the stream was up, if Welcome arrived.
        connected_for: Option<Duration>,
    },
}

/// A stream the scheduler welcomed.
struct Established {
    client: AgentServiceClient<Channel>,
    outbound: mpsc::Sender<v1::AgentMessage>,
    inbound: Streaming<v1::SchedulerMessage>,
    welcome: Welcome,
}

impl Session {
    async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = self.config.backoff.clone();
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            self.state_tx
                .send_replace(ConnectionState::Connecting { attempt });
            tracing::debug!(attempt, "connecting");

            let (error, connected_for) = match self.try_once(&cancel).await {
                Ended::Shutdown => break,
                Ended::Lost {
                    error,
                    connected_for,
                } => (error, connected_for),
            };
            if connected_for.is_some() {
                attempt = 0;
            }
            if matches!(error, SessionError::Renewed) {
                tracing::info!("reconnecting with the renewed certificate");
                continue;
            }
            let retry_in = retry_delay(&mut backoff, connected_for, &mut self.rng);
            self.log_failure(&error, connected_for, retry_in);
            self.state_tx.send_replace(ConnectionState::Disconnected {
                reason: error.to_string(),
                retry_in,
            });
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(retry_in) => {}
            }
        }
        self.state_tx.send_replace(ConnectionState::Stopped);
        tracing::info!("session with the scheduler stopped");
    }

    fn log_failure(
        &mut self,
        error: &SessionError,
        connected_for: Option<Duration>,
        retry_in: Duration,
    ) {
        let Some(suppressed) = self.failure_log.allow() else {
            tracing::debug!(cause = %error, ?retry_in, "scheduler session failed");
            return;
        };
        if matches!(error, SessionError::Refused { .. }) {
            tracing::error!(
                cause = %error,
                ?retry_in,
                suppressed,
                "the scheduler refuses this agent's identity; retrying"
            );
        } else if let Some(up) = connected_for {
            tracing::warn!(
                cause = %error,
                connected_for = ?up,
                ?retry_in,
                "lost the connection to the scheduler; reconnecting"
            );
        } else {
            tracing::warn!(
                cause = %error,
                ?retry_in,
                suppressed,
                "cannot reach the scheduler; retrying"
            );
        }
    }

    /// One try: channel, Register if needed, Connect, Welcome, then the
    /// connected loop until the stream breaks or `cancel` fires.
    async fn try_once(&mut self, cancel: &CancellationToken) -> Ended {
        let established = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ended::Shutdown,
            r = self.establish() => r,
        };
        match established {
            Ok(est) => self.connected(est, cancel).await,
            Err(error) => Ended::Lost {
                error,
                connected_for: None,
            },
        }
    }

    async fn establish(&mut self) -> Result<Established, SessionError> {
        let channel = transport::connect(&self.config.scheduler, &self.credentials).await?;
        let mut client = AgentServiceClient::new(channel);
        let facts = self.probe.measure()?;
        tracing::debug!(
            cpu_units = facts.resources.cpu_units,
            memory_mib = facts.resources.memory_mib,
            reserved_tcp_ports = ?facts.resources.reserved_tcp_ports,
            reserved_udp_ports = ?facts.resources.reserved_udp_ports,
            "saying Hello"
        );

        let (outbound, rx) = mpsc::channel(OUTBOUND_BUFFER);
        outbound
            .try_send(wire::hello(&facts))
            .map_err(|_| SessionError::OutboundClosed)?;
        let request = tonic::Request::new(ReceiverStream::new(rx));

        let path = self.store.path().display().to_string();
        let handshake = async {
            let mut inbound = client
                .connect(request)
                .await
                .map_err(|status| connect_error(status, &path))?
                .into_inner();
            let first = inbound
                .message()
                .await
                .map_err(|status| connect_error(status, &path))?
                .ok_or(SessionError::Closed)?;
            match wire::inbound(first)? {
                Inbound::Welcome(welcome) => Ok((inbound, welcome)),
                _ => Err(SessionError::NotWelcome),
            }
        };
        let (inbound, welcome) =
            timeout(WELCOME_TIMEOUT, handshake)
                .await
                .map_err(|_| SessionError::NoWelcome {
                    waited: WELCOME_TIMEOUT,
                })??;
        Ok(Established {
            client,
            outbound,
            inbound,
            welcome,
        })
    }

    /// Renews the client certificate over the open channel (a CSR for the
    /// same key) and saves it; the next connection uses it.
    async fn renew(&mut self, client: &mut AgentServiceClient<Channel>) -> Result<(), String> {
        let key = rcgen::KeyPair::from_pem(&self.credentials.key_pem)
            .map_err(|e| format!("reading key.pem: {e}"))?;
        let hostname = self.probe.hostname().map_err(|e| e.to_string())?;
        let csr = crate::register::csr_for(&key, &hostname).map_err(|e| e.to_string())?;
        let response = timeout(
            RENEW_TIMEOUT,
            client.renew_certificate(v1::RenewCertificateRequest { csr_pem: csr }),
        )
        .await
        .map_err(|_| format!("no answer within {RENEW_TIMEOUT:?}"))?
        .map_err(|s| status_text(&s))?
        .into_inner();
        if response.cert_pem.is_empty() {
            return Err("the answer carries no certificate".into());
        }
        let renewed = Credentials {
            cert_pem: response.cert_pem,
            ..self.credentials.clone()
        };
        self.store
            .save_credentials(&renewed)
            .map_err(|e| e.to_string())?;
        self.credentials = renewed;
        Ok(())
    }

    /// The welcomed stream: heartbeats out, desired state in.
    async fn connected(&mut self, est: Established, cancel: &CancellationToken) -> Ended {
        let Established {
            mut client,
            outbound,
            mut inbound,
            welcome,
        } = est;
        let identity = self.identity.clone();
        // A new stream: nobody follows this host's tasks until the
        // scheduler says so (a renewal may have ended the last one early).
        self.link.usage.sampling.send_replace(None);
        let mut renew_at =
            Instant::now() + renewal_delay(&self.credentials.cert_pem, SystemTime::now());
        let since = Instant::now();
        self.state_tx
            .send_replace(ConnectionState::Connected { since });
        self.failure_log.reset();
        tracing::info!(
            arn = %welcome.container_instance_arn,
            heartbeat_interval_ms = welcome.heartbeat_interval.as_millis() as u64,
            heartbeat_ttl_ms = welcome.heartbeat_ttl.as_millis() as u64,
            "connected to the scheduler"
        );
        if welcome.container_instance_arn != identity.container_instance_arn {
            tracing::warn!(
                welcomed_as = %welcome.container_instance_arn,
                registered_as = %identity.container_instance_arn,
                "the scheduler welcomed this host under another container instance ARN"
            );
        }
        if welcome.heartbeat_ttl <= welcome.heartbeat_interval {
            tracing::warn!(
                heartbeat_interval = ?welcome.heartbeat_interval,
                heartbeat_ttl = ?welcome.heartbeat_ttl,
                "the heartbeat TTL is not longer than the interval; the instance will flap"
            );
        }

        let mut heartbeat = tokio::time::interval_at(
            since + welcome.heartbeat_interval,
            welcome.heartbeat_interval,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut seq = 0u64;

        // Level-triggered reports: every task's latest state after each
        // (re)connect, then whatever changes.
        let (mut reported, all) = self.link.reporter.since(0);
        for r in &all {
            if outbound.send(wire::task_status(r)).await.is_err() {
                return Ended::Lost {
                    error: SessionError::OutboundClosed,
                    connected_for: Some(since.elapsed()),
                };
            }
        }

        // What the scheduler sent on this stream (it starts with the whole set).
        let mut desired = DeltaReceiver::default();
        let error = loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    close(outbound, inbound).await;
                    return Ended::Shutdown;
                }
                message = inbound.message() => match message {
                    Ok(Some(m)) => match wire::inbound(m) {
                        Ok(Inbound::DesiredState(update)) => {
                            let ack = match desired.apply(update) {
                                Ok(generation) => {
                                    let tasks: Vec<_> = desired.items().cloned().collect();
                                    tracing::debug!(generation, tasks = tasks.len(), "desired state");
                                    self.desired_tx.send_replace(Some(DesiredState { generation, tasks }));
                                    wire::desired_ack(generation, false)
                                }
                                Err(e) => {
                                    tracing::warn!(cause = %e, "asking the scheduler for the whole desired set");
                                    wire::desired_ack(0, true)
                                }
                            };
                            if outbound.send(ack).await.is_err() {
                                break SessionError::OutboundClosed;
                            }
                        }
                        Ok(Inbound::Welcome(_)) => {
                            tracing::warn!("ignoring a second Welcome on the same stream");
                        }
                        Ok(Inbound::Logs(cmd)) => {
                            if self.link.logs.send(cmd).await.is_err() {
                                tracing::debug!("no log server: log request dropped");
                            }
                        }
                        Ok(Inbound::Exec(cmd)) => {
                            // The exec server never waits long: its queue
                            // per exec is bounded and refuses when full.
                            if self.link.exec.send(cmd).await.is_err() {
                                tracing::debug!("no exec server: exec message dropped");
                            }
                        }
                        Ok(Inbound::StatsSampling(interval)) => {
                            tracing::debug!(?interval, "the scheduler set the usage sampling interval");
                            self.link.usage.sampling.send_replace(interval);
                        }
                        Ok(Inbound::Unknown) => {
                            tracing::debug!("ignoring a message of a kind this agent does not know");
                        }
                        Err(e) => break SessionError::Protocol(e),
                    },
                    Ok(None) => break SessionError::Closed,
                    // Deregistered while connected: the same refusal as at Connect.
                    Err(status)
                        if matches!(status.code(), Code::PermissionDenied | Code::Unauthenticated) =>
                    {
                        break connect_error(status, &self.store.path().display().to_string())
                    }
                    Err(status) => break SessionError::Stream { status },
                },
                () = self.link.reporter.changed() => {
                    let (seq_now, changed) = self.link.reporter.since(reported);
                    let mut closed = false;
                    for r in &changed {
                        if outbound.send(wire::task_status(r)).await.is_err() {
                            closed = true;
                            break;
                        }
                    }
                    if closed {
                        break SessionError::OutboundClosed;
                    }
                    reported = seq_now;
                }
                Some(chunk) = self.link.chunks.recv() => {
                    if outbound.send(wire::log_chunk(&chunk)).await.is_err() {
                        break SessionError::OutboundClosed;
                    }
                }
                Ok(()) = self.link.usage.samples.changed() => {
                    let sample = self.link.usage.samples.borrow_and_update().clone();
                    if let Some(sample) = sample {
                        // Never waits: a sample the stream has no room for
                        // is replaced by the next one anyway.
                        match outbound.try_send(wire::usage(&sample)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                tracing::debug!("the stream to the scheduler is backed up; usage sample skipped");
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                break SessionError::OutboundClosed
                            }
                        }
                    }
                }
                Some(frame) = self.link.exec_output.recv() => {
                    if outbound.send(wire::exec_output(frame)).await.is_err() {
                        break SessionError::OutboundClosed;
                    }
                }
                () = tokio::time::sleep_until(renew_at) => {
                    match self.renew(&mut client).await {
                        Ok(()) => {
                            tracing::info!("client certificate renewed");
                            close(outbound, inbound).await;
                            return Ended::Lost {
                                error: SessionError::Renewed,
                                connected_for: Some(since.elapsed()),
                            };
                        }
                        Err(cause) => {
                            tracing::warn!(%cause, retry_in = ?RENEW_RETRY, "cannot renew the client certificate");
                            renew_at = Instant::now() + RENEW_RETRY;
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    seq += 1;
                    match outbound.try_send(wire::heartbeat(seq, SystemTime::now())) {
                        Ok(()) => tracing::trace!(seq, "heartbeat"),
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            if let Some(suppressed) = self.heartbeat_log.allow() {
                                tracing::warn!(
                                    seq,
                                    suppressed,
                                    "the stream to the scheduler is backed up; heartbeat skipped"
                                );
                            }
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            break SessionError::OutboundClosed
                        }
                    }
                }
            }
        };
        // The scheduler has told every exec's caller; nobody reads on.
        let _ = self.link.exec.try_send(ExecCommand::CancelAll);
        // Nobody follows this host's tasks through a lost stream.
        self.link.usage.sampling.send_replace(None);
        Ended::Lost {
            error,
            connected_for: Some(since.elapsed()),
        }
    }
}

/// How long until the certificate in `cert_pem` is two thirds through its
/// lifetime (zero if it already is, or cannot be read).
pub fn renewal_delay(cert_pem: &str, now: SystemTime) -> Duration {
    use x509_parser::pem::parse_x509_pem;
    let Ok((_, pem)) = parse_x509_pem(cert_pem.as_bytes()) else {
        return Duration::ZERO;
    };
    let Ok(cert) = pem.parse_x509() else {
        return Duration::ZERO;
    };
    let validity = cert.validity();
    let (from, to) = (
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    );
    let renew_at = from + (to - from) * 2 / 3;
    let now = time::OffsetDateTime::from(now);
    Duration::try_from(renew_at - now).unwrap_or(Duration::ZERO)
}

/// The pause before the next try. A connection that held for
/// [`STABLE_AFTER`] starts the backoff over; a shorter one (a scheduler that
/// welcomes and then drops the agent) keeps raising it.
fn retry_delay<R: rand::Rng + ?Sized>(
    backoff: &mut Backoff,
    connected_for: Option<Duration>,
    rng: &mut R,
) -> Duration {
    if connected_for.is_some_and(|up| up >= STABLE_AFTER) {
        backoff.reset();
    }
    backoff.next_delay(rng)
}

/// Closes the agent's side of the stream and gives the scheduler a moment to
/// close its own, so it sees a clean end rather than a reset.
async fn close(
    outbound: mpsc::Sender<v1::AgentMessage>,
    mut inbound: Streaming<v1::SchedulerMessage>,
) {
    drop(outbound);
    let drained = timeout(CLOSE_GRACE, async {
        while let Ok(Some(_)) = inbound.message().await {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!("the scheduler did not close its side in time; dropping the stream");
    }
}

/// Unauthenticated (unknown credential) and PermissionDenied (deregistered
/// instance) need an operator; everything else is an outage to wait out.
fn connect_error(status: Status, identity_path: &str) -> SessionError {
    match status.code() {
        code @ (Code::Unauthenticated | Code::PermissionDenied) => SessionError::Refused {
            path: identity_path.to_owned(),
            code,
            message: status.message().to_owned(),
        },
        _ => SessionError::Connect { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stable_connection_resets_the_backoff() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Backoff::RECONNECT;
        for _ in 0..8 {
            retry_delay(&mut b, None, &mut rng);
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));

        // Welcomed, then dropped after 29 s: still backing off.
        let d = retry_delay(&mut b, Some(Duration::from_secs(29)), &mut rng);
        assert!(d <= Duration::from_secs(30));
        assert_eq!(b.ceiling(), Duration::from_secs(30));

        // Held for 30 s: the next try comes within 0.5 s.
        let d = retry_delay(&mut b, Some(STABLE_AFTER), &mut rng);
        assert!(d <= Duration::from_millis(500), "{d:?}");
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        let start = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        params.not_before = start;
        params.not_after = start + time::Duration::days(30);
        let pem = params.self_signed(&key).expect("cert").pem();
        let at = |days: i64| SystemTime::from(start + time::Duration::days(days));
        assert_eq!(renewal_delay(&pem, at(0)), Duration::from_secs(20 * 86400));
        assert_eq!(renewal_delay(&pem, at(19)), Duration::from_secs(86400));
        assert_eq!(renewal_delay(&pem, at(25)), Duration::ZERO);
        assert_eq!(renewal_delay("garbage", at(0)), Duration::ZERO);
    }

    #[test]
    fn refusals_name_the_identity_file() {
        let path = "/var/lib/berth/agent/identity.json";
        for status in [
            Status::unauthenticated("no client certificate"),
            Status::permission_denied("container instance x was deregistered"),
        ] {
            let err = connect_error(status, path);
            assert!(matches!(err, SessionError::Refused { .. }), "{err}");
            assert!(err.to_string().contains(path), "{err}");
        }
        let err = connect_error(Status::unavailable("down"), path);
        assert!(matches!(err, SessionError::Connect { .. }), "{err}");
        assert_eq!(err.to_string(), "Connect failed: Unavailable: down");
    }
}
