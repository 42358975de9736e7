//! Container logs in Docker's json-file format.
//!
//! - [`driver`]: the logging binary containerd's shim runs for every
//!   container (`berth-agent log-driver`, reached through a `binary://` stdio
//!   URI). It lives beside the shim, not the agent, so logs keep flowing while
//!   the agent restarts.
//! - [`jsonfile`]: the size-rotated file writer it uses, and the reader that
//!   serves `berthctl task logs` (tail, since, follow across rotations).
//! - [`server`]: answers the scheduler's log requests from those files.

pub mod driver;
pub mod jsonfile;
pub mod server;

pub use jsonfile::{LogLine, LogReader, ReadOptions, RotatingWriter, Stream};
