//! The scheduler side: one long-lived `WatchTargets` stream over TLS (the
//! pinned cluster CA, the operator token as `authorization: Bearer`), kept
//! alive by a background task that reconnects with jittered exponential
//! backoff and publishes every snapshot into a `tokio::sync::watch`. A lost
//! stream is a state, logged (rate-limited) and retried: the consumer keeps
//! the last snapshot, so HAProxy keeps serving while the scheduler is away.

use std::time::Duration;

use berth_proto::auth::BearerToken;
use berth_proto::v1::target_group_service_client::TargetGroupServiceClient;
use berth_proto::v1::WatchTargetsRequest;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;

use crate::targets::Snapshot;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Between warnings about the same outage.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Where the stream goes and what it asks for.
#[derive(Clone)]
pub struct WatchSettings {
    pub endpoint: String,
    pub ca_pem: String,
    pub token: Option<String>,
    /// Target group names (the request takes names or ARNs).
    pub groups: Vec<String>,
    /// The first and the longest wait between attempts.
    pub backoff: (Duration, Duration),
}

impl std::fmt::Debug for WatchSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchSettings")
            .field("endpoint", &self.endpoint)
            .field("groups", &self.groups)
            .field("backoff", &self.backoff)
            .finish()
    }
}

/// Why one attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("invalid scheduler endpoint: {0}")]
    Endpoint(#[from] berth_proto::trust::TrustError),
    #[error("cannot connect to {endpoint}: {cause}")]
    Connect { endpoint: String, cause: String },
    #[error("WatchTargets failed: {0}")]
    Status(#[from] tonic::Status),
    #[error("the scheduler ended the WatchTargets stream")]
    Ended,
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// A wait drawn from [ceiling/2, ceiling], the ceiling doubling per
    /// attempt up to the cap.
    pub fn next_delay<R: rand::Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(rng.random::<f64>())
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Follows the targets forever, publishing each snapshot into `tx`. Ends
/// when every receiver is gone.
pub async fn run(settings: WatchSettings, tx: watch::Sender<Option<Snapshot>>) {
    let mut backoff = Backoff::new(settings.backoff.0, settings.backoff.1);
    let mut last_warn: Option<Instant> = None;
    let mut failures: u64 = 0;
    loop {
        let result = stream_once(&settings, &tx, &mut backoff).await;
        if tx.is_closed() {
            return;
        }
        let err = match result {
            Ok(()) => WatchError::Ended,
            Err(e) => e,
        };
        failures += 1;
        let delay = backoff.next_delay(&mut rand::rng());
        let now = Instant::now();
        if last_warn.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            last_warn = Some(now);
            tracing::warn!(
                endpoint = %settings.endpoint,
                cause = %err,
                failures,
                retry_in = ?delay,
                "scheduler stream lost; HAProxy keeps its current servers"
            );
        } else {
            tracing::debug!(cause = %err, failures, retry_in = ?delay, "scheduler stream still lost");
        }
        tokio::time::sleep(delay).await;
    }
}

/// One connection: connect, watch, publish until the stream ends.
async fn stream_once(
    settings: &WatchSettings,
    tx: &watch::Sender<Option<Snapshot>>,
    backoff: &mut Backoff,
) -> Result<(), WatchError> {
    let endpoint = berth_proto::trust::endpoint(&settings.endpoint, &settings.ca_pem, None)?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    let channel = endpoint.connect().await.map_err(|e| WatchError::Connect {
        endpoint: settings.endpoint.clone(),
        cause: berth_proto::errors::error_chain(&e),
    })?;
    let mut client = TargetGroupServiceClient::new(InterceptedService::new(
        channel,
        BearerToken::new(settings.token.as_deref()),
    ));
    let mut stream = client
        .watch_targets(WatchTargetsRequest {
            target_groups: settings.groups.clone(),
        })
        .await?
        .into_inner();
    let mut first = true;
    while let Some(wire) = stream.message().await? {
        let (snapshot, skipped) = Snapshot::from_wire(wire);
        for s in skipped {
            tracing::warn!(group = %s.group, task = %s.task_arn, reason = %s.reason, "target left out");
        }
        if first {
            first = false;
            backoff.reset();
            tracing::info!(endpoint = %settings.endpoint, groups = snapshot.groups.len(), "watching targets");
        }
        if tx.send(Some(snapshot)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut rng = rand::rng();
        let waits: Vec<Duration> = (0..8).map(|_| b.next_delay(&mut rng)).collect();
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
        assert!(waits[7] >= Duration::from_millis(500) && waits[7] <= Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(100));
    }
}
