//! How the agent reaches the scheduler. The only place a channel is built:
//! mutual TLS with the host's certificate, trusting only the pinned
//! cluster CA (or, for `register`, no client certificate yet).

use std::time::Duration;

use tonic::transport::Channel;

use crate::identity::Credentials;

/// How long a TCP connect to the scheduler may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings detect a scheduler that vanished without closing the
/// connection (a partition, a crashed host) while the stream is idle.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no channel to the scheduler could be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to scheduler {endpoint}: {cause}")]
pub struct TransportError {
    pub endpoint: String,
    /// The error and its sources (tonic's own message alone is terse).
    pub cause: String,
}

/// Opens a mutual-TLS channel to `scheduler` (an `https://host:port` URL)
/// with `creds`; without a certificate (`identity: false`) for Register.
///
/// No request timeout is set: the Connect stream lives for as long as the
/// agent runs.
pub async fn connect(scheduler: &str, creds: &Credentials) -> Result<Channel, TransportError> {
    connect_as(
        scheduler,
        &creds.ca_pem,
        Some((&creds.cert_pem, &creds.key_pem)),
    )
    .await
}

/// Opens a TLS channel trusting `ca_pem`, presenting `identity` if given.
pub async fn connect_as(
    scheduler: &str,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<Channel, TransportError> {
    let fail = |e: &dyn std::error::Error| TransportError {
        endpoint: scheduler.to_owned(),
        cause: error_chain(e),
    };
    let endpoint = berth_proto::trust::endpoint(scheduler, ca_pem, identity)
        .map_err(|e| fail(&e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    endpoint.connect().await.map_err(|e| fail(&e))
}

/// The shared renderer (`join` reaches it through this module).
pub use berth_proto::errors::error_chain;
