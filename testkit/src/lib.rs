//! `berth-testkit`: real components for Berth's tests, each in a temp
//! dir and each cleaned up on drop.
//!
//! - [`Containerd`]: a private containerd (its own root, state and socket).
//! - [`Registry`]: Debian's `docker-registry` on 127.0.0.1, optionally
//!   behind htpasswd basic auth, and pushes of busybox images built here.
//! - [`image`]: the busybox image (one layer from `/bin/busybox`) as an OCI
//!   layout directory.
//!
//! A missing prerequisite (not root, a binary not installed) panics with a
//! message saying what to do; nothing here skips silently, so a test that
//! uses the kit either runs for real or fails loudly.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test kit fails loudly by design

pub mod containerd;
pub mod image;
pub mod registry;

use std::net::TcpListener;
use std::path::PathBuf;

pub use containerd::Containerd;
pub use image::{ImageFormat, ImageOptions};
pub use registry::{Pushed, PushedIndex, Registry};

/// Panics with a clear message unless the process runs as root.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "this test needs root (it runs containerd and mounts snapshots): \
             run the tests as root, after scripts/install-deps"
        );
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The path of `binary`, looked up in `PATH` and the sbin directories, or a
/// panic naming the Debian package that provides it.
pub fn require_binary(binary: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{binary} not found: run scripts/install-deps as root (Debian package {package})");
}

/// A short temp dir under /tmp (unix socket paths must fit in 108 bytes).
pub(crate) fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create a temp dir under /tmp")
}
