//! The HAProxy process and its files: writing the generated config (checked
//! with `haproxy -c` before it replaces the old one) and the HTTPS
//! listeners' combined PEMs (0600); starting HAProxy in master-worker mode
//! (`-W -S <master socket>`) and noticing when it exits (supervised mode);
//! hitless reloads through the master CLI, with the servers' addresses
//! and states carried over in the server-state file; and stopping it
//! gracefully. In external mode the process is someone else's and only the
//! sockets are used.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::config::{Config, HaproxyConfig, ListenerProtocol, Mode};
use crate::runtime;
use crate::LbError;

/// How long HAProxy may take to answer on its runtime socket after a start
/// or reload.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before the kill.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes each HTTPS listener's certificate and key into one PEM (HAProxy's
/// `crt` wants both in one file), mode 0600, in the state directory.
pub fn write_certificates(config: &Config) -> Result<(), LbError> {
    for l in &config.listeners {
        let ListenerProtocol::Https { certificate, key } = &l.protocol else {
            continue;
        };
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).map_err(|source| LbError::File {
                path: p.clone(),
                source,
            })
        };
        let mut pem = read(certificate)?;
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem.push_str(&read(key)?);
        let path = config.haproxy.combined_pem(&l.name);
        berth_proto::fsutil::write_atomic_private(&path, pem.as_bytes(), 0o600)
            .map_err(|source| LbError::File { path, source })?;
    }
    Ok(())
}

/// Whether `text` differs from the config file as it is.
pub fn config_changed(h: &HaproxyConfig, text: &str) -> bool {
    std::fs::read_to_string(&h.config_file).map_or(true, |old| old != text)
}

/// Checks `text` with `haproxy -c` and makes it the config file.
pub async fn write_config(h: &HaproxyConfig, text: &str) -> Result<(), LbError> {
    let file = |source| LbError::File {
        path: h.config_file.clone(),
        source,
    };
    let candidate = h.config_file.with_extension("cfg.new");
    berth_proto::fsutil::write_atomic_private(&candidate, text.as_bytes(), 0o600).map_err(file)?;
    let out = Command::new(&h.binary)
        .arg("-c")
        .arg("-q")
        .arg("-f")
        .arg(&candidate)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| LbError::Spawn {
            binary: h.binary.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LbError::BadConfig {
            path: candidate,
            output: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    std::fs::rename(&candidate, &h.config_file).map_err(file)
}

/// HAProxy as `berth-lb` knows it.
#[derive(Debug)]
pub struct Haproxy {
    config: HaproxyConfig,
    child: Option<Child>,
    /// The worker's pid as last seen.
    pub worker: Option<u32>,
}

impl Haproxy {
    pub fn new(config: HaproxyConfig) -> Self {
        Self {
            config,
            child: None,
            worker: None,
        }
    }

    pub fn supervised(&self) -> bool {
        self.config.mode == Mode::Supervise
    }

    /// Starts HAProxy (supervised mode) from the config file, with no
    /// server state from a former life, and waits until it answers.
    pub async fn start(&mut self) -> Result<(), LbError> {
        // No state from a former life: an empty state file (its version
        // line alone; a missing file makes HAProxy warn).
        let path = self.config.server_state_file();
        berth_proto::fsutil::write_atomic_private(&path, b"1\n", 0o600)
            .map_err(|source| LbError::File { path, source })?;
        for s in [&self.config.master_socket, &self.config.runtime_socket] {
            let _ = std::fs::remove_file(s);
        }
        let master = format!("{},mode,600", self.config.master_socket.display());
        let child = Command::new(&self.config.binary)
            .arg("-W")
            .arg("-S")
            .arg(&master)
            .arg("-f")
            .arg(&self.config.config_file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LbError::Spawn {
                binary: self.config.binary.clone(),
                source,
            })?;
        tracing::info!(pid = child.id(), config = %self.config.config_file.display(), "haproxy started");
        self.child = Some(child);
        self.worker = None;
        self.wait_worker(None).await
    }

    /// Waits (bounded) until the runtime socket answers with a worker other
    /// than `old`, and records it.
    pub async fn wait_worker(&mut self, old: Option<u32>) -> Result<(), LbError> {
        let socket = self.config.runtime_socket.clone();
        let child = &mut self.child;
        let work = async {
            loop {
                match runtime::worker_pid(&socket).await {
                    Ok(pid) if Some(pid) != old => return Ok(pid),
                    _ => {}
                }
                if let Some(c) = child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        *child = None;
                        return Err(LbError::Exited {
                            status: status.to_string(),
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let pid = tokio::time::timeout(READY_TIMEOUT, work)
            .await
            .map_err(|_| LbError::NotReady {
                socket: socket.clone(),
                timeout: READY_TIMEOUT,
            })??;
        tracing::info!(worker = pid, "haproxy worker answers");
        self.worker = Some(pid);
        Ok(())
    }

    /// Reloads hitlessly: saves the servers' state for the new worker,
    /// asks the master to reload, waits for the new worker.
    pub async fn reload(&mut self) -> Result<(), LbError> {
        let state = runtime::servers_state(&self.config.runtime_socket).await?;
        let path = self.config.server_state_file();
        berth_proto::fsutil::write_atomic_private(&path, state.as_bytes(), 0o600)
            .map_err(|source| LbError::File { path, source })?;
        let old = match self.worker {
            Some(pid) => Some(pid),
            None => runtime::worker_pid(&self.config.runtime_socket).await.ok(),
        };
        runtime::reload(&self.config.master_socket).await?;
        self.wait_worker(old).await
    }

    /// Resolves when the supervised HAProxy exits (never in external mode
    /// or before a start).
    pub async fn exited(&mut self) -> String {
        match self.child.as_mut() {
            Some(child) => {
                let status = child.wait().await;
                self.child = None;
                match status {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Stops the supervised HAProxy: a soft stop (SIGUSR1: listeners close,
    /// requests in flight finish), then a kill after [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGUSR1,
            );
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(_) => tracing::info!("haproxy stopped"),
            Err(_) => {
                tracing::warn!(timeout = ?STOP_TIMEOUT, "haproxy did not stop in time; killing it");
                let _ = child.kill().await;
            }
        }
    }

    pub fn runtime_socket(&self) -> &Path {
        &self.config.runtime_socket
    }
}
