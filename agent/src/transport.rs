//! How the agent reaches the scheduler. The only place a channel is built:
//! mutual TLS (the host certificate and the cluster CA) slots in here.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

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

/// Opens a channel to `scheduler` (an `http://host:port` URL).
///
/// No request timeout is set: the Connect stream lives for as long as the
/// agent runs.
pub async fn connect(scheduler: &str) -> Result<Channel, TransportError> {
    let fail = |e: &dyn std::error::Error| TransportError {
        endpoint: scheduler.to_owned(),
        cause: error_chain(e),
    };
    let endpoint = Endpoint::from_shared(scheduler.to_owned())
        .map_err(|e| fail(&e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    endpoint.connect().await.map_err(|e| fail(&e))
}

/// `error: source: source…`, skipping sources whose text repeats the last.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut last = out.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    out
}
