//! A private containerd for one test: its own root, state and socket in a
//! short temp dir, the overlayfs snapshotter, the CRI plugin disabled so it
//! starts in a moment. Dropping it kills the shims it started, kills
//! containerd, and lazily unmounts whatever is still mounted under its dir.
//!
//! [`Containerd::start_in_netns`] runs it (and so its shims and their
//! containers' host side) inside a network namespace of the test's, through
//! `nsenter --net` (not `ip netns exec`, which remounts `/sys` and so hides
//! the cgroup hierarchy that runc needs). [`Containerd::kill9`] and
//! [`Containerd::restart`] simulate a crash and a restart with the same
//! root, state and socket.

use std::fs;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{require_binary, require_root, short_tempdir};

/// How long containerd may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running containerd, stopped and cleaned up on drop.
pub struct Containerd {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    socket: PathBuf,
    root: PathBuf,
    binary: PathBuf,
    config: PathBuf,
    /// The network namespace it runs in (a `/run/netns/NAME` path), if not the test's own.
    netns: Option<PathBuf>,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("socket", &self.socket)
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish()
    }
}

impl Containerd {
    /// Starts containerd and waits until its socket answers. Panics with a
    /// clear message when not root, when containerd is not installed, or when
    /// it does not come up (with the tail of its log).
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts containerd inside the network namespace at `netns` (e.g.
    /// `/run/netns/NAME`, made by the test), so the shims it starts live
    /// there too.
    pub fn start_in_netns(netns: &Path) -> Self {
        require_binary("nsenter", "util-linux");
        Self::start_with(Some(netns.to_owned()))
    }

    fn start_with(netns: Option<PathBuf>) -> Self {
        require_root();
        let binary = require_binary("containerd", "containerd");
        require_binary("ctr", "containerd");
        let dir = short_tempdir("bctd");
        let base = dir.path().to_path_buf();
        let socket = base.join("c.sock");
        let root = base.join("root");
        let state = base.join("state");
        let config = base.join("config.toml");
        fs::write(
            &config,
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
                root = root.display(),
                state = state.display(),
                socket = socket.display(),
                opt = base.join("opt").display(),
            ),
        )
        .expect("write containerd config");
        let mut ctd = Self {
            child: None,
            dir: Some(dir),
            socket,
            root: base,
            binary,
            config,
            netns,
        };
        ctd.spawn();
        ctd.wait_ready();
        ctd
    }

    /// Runs the containerd process (its log appended to `containerd.log`).
    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("containerd.log"))
            .expect("open containerd log");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                // nsenter execs containerd: the child's pid is containerd's.
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        let child = cmd
            .arg("--config")
            .arg(&self.config)
            .arg("--log-level")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.child = Some(child);
    }

    /// SIGKILL to containerd, its shims and the shims' children (the
    /// containers' processes, log drivers), as when the machine dies. Mounts
    /// and the state dir stay; [`restart`](Self::restart) brings it back.
    pub fn kill9(&mut self) {
        self.kill_shims();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts containerd again with the same root, state, socket (and
    /// network namespace) after [`kill9`](Self::kill9), and waits until it
    /// answers.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready();
    }

    /// containerd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn wait_ready(&mut self) {
        let deadline = std::time::SystemTime::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "containerd exited during start-up ({status}); its log:\n{}",
                        self.log_tail()
                    );
                }
            }
            if UnixStream::connect(&self.socket).is_ok() {
                let out = self.ctr(&["version"]);
                if out.status.success() {
                    return;
                }
            }
            if std::time::SystemTime::now() > deadline {
                panic!(
                    "containerd did not answer on {} within {START_TIMEOUT:?}; its log:\n{}",
                    self.socket.display(),
                    self.log_tail()
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// The gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The temp dir holding root, state, socket and log.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Runs `ctr --address SOCKET --namespace berth ARGS…` and returns its output.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_in("berth", args)
    }

    /// Runs `ctr` against this containerd in `namespace`.
    pub fn ctr_in(&self, namespace: &str, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(namespace)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }

    /// The last 4 KiB of containerd's log.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(self.root.join("containerd.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// SIGKILLs processes whose command line names this containerd's socket
    /// (the runc shims it started) and their children.
    fn kill_shims(&self) {
        let needle = self.socket.to_string_lossy().into_owned();
        let own = self.child.as_ref().map(|c| c.id());
        for pid in pids_with_arg(&needle) {
            if Some(pid) != own {
                // A shim's children (the containers' processes, log drivers)
                // outlive a killed shim: kill them first.
                for child in children(pid) {
                    let _ = kill(Pid::from_raw(child as i32), Signal::SIGKILL);
                }
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }

    /// Kills the shims (see `kill_shims`), then containerd itself.
    fn stop(&mut self) {
        self.kill_shims();
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        unmount_under(&self.root);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                eprintln!("testkit: cannot remove {}: {e}", self.root.display());
            }
        }
    }
}

/// The direct children of `pid` (every thread's `children` list).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Pids (other than ours) whose command line contains `needle` as an argument.
fn pids_with_arg(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    raw.split(|b| *b == 0)
                        .any(|arg| String::from_utf8_lossy(arg).contains(needle))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Lazily unmounts every mount point under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        if let Err(e) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("testkit: cannot unmount {}: {e}", p.display());
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(raw: &str) -> PathBuf {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(
            unescape_mount_path(r"/tmp/a\040b"),
            PathBuf::from("/tmp/a b")
        );
        assert_eq!(unescape_mount_path("/tmp/x"), PathBuf::from("/tmp/x"));
    }
}
