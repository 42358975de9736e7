//! `berth-lb`: keeps a load balancer equal to the healthy targets of
//! Berth's target groups, following the scheduler's `WatchTargets` stream
//! (never polling). Today's load balancer is HAProxy (`berth-lb haproxy`).
//!
//! - [`config`]: `/etc/berth/lb.toml`, listeners and rules as on an ALB, validated.
//! - [`targets`]: the snapshot as the rest sees it; the only reader of the wire types.
//! - [`render`]: the generated `haproxy.cfg` (pure).
//! - [`slots`]: stable slot assignment and the Runtime API commands (pure).
//! - [`runtime`]: HAProxy's runtime and master sockets.
//! - [`haproxy`]: the HAProxy process, its files and its reloads.
//! - [`watch`]: the scheduler stream with reconnects and backoff.
//! - [`sync`]: the loop that ties them together ([`sync::run`]).

pub mod config;
pub mod haproxy;
pub mod render;
pub mod runtime;
pub mod slots;
pub mod sync;
pub mod targets;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use config::{Config, ConfigError};
pub use sync::run;

/// Why `berth-lb haproxy` cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("haproxy rejects the generated config {path}: {output}")]
    BadConfig { path: PathBuf, output: String },
    #[error("haproxy exited while starting ({status}); its messages are above")]
    Exited { status: String },
    #[error("haproxy does not answer on {socket} after {timeout:?}")]
    NotReady { socket: PathBuf, timeout: Duration },
    #[error(transparent)]
    Socket(#[from] runtime::SocketError),
}
