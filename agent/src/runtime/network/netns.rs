//! Named network namespaces through iproute2 (`ip netns add|delete`), which
//! bind-mounts them under `/run/netns/<name>` so they outlive any process
//! and can be handed to CNI plugins and to the container runtime by path.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::NetworkError;

/// Where iproute2 keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// The namespace name of a task.
pub fn name(task_id: &str) -> String {
    format!("berth-{task_id}")
}

pub fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Creates the namespace `name` (an existing one is reused: setup may be
/// retried after a crash).
pub async fn create(name: &str) -> Result<PathBuf, NetworkError> {
    let path = path_of(name);
    if path.exists() {
        return Ok(path);
    }
    ip(&["netns", "add", name]).await?;
    Ok(path)
}

/// Deletes the namespace `name`; a missing one is fine.
pub async fn delete(name: &str) -> Result<(), NetworkError> {
    if !path_of(name).exists() {
        return Ok(());
    }
    ip(&["netns", "delete", name]).await
}

async fn ip(args: &[&str]) -> Result<(), NetworkError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| NetworkError::Netns {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetworkError::Netns {
            command,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
