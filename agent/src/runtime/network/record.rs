//! The per-task record under `state_dir/<task_id>.json`: everything a CNI
//! DEL needs (netns path, the exact conflists and `runtimeConfig`, the cached
//! result), so that teardown works after an agent restart and after a setup
//! that stopped half-way. Written atomically (temp file, fsync, rename,
//! fsync of the directory) before the first change to the host.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Mode, NetworkError, TaskNetwork};

/// The record format; bumped on incompatible change.
pub const RECORD_VERSION: u32 = 1;

/// How far setup got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Written before the netns or any plugin touched the host; teardown
    /// undoes whatever part happened.
    SettingUp,
    /// Every plugin's ADD succeeded; `network` is what setup returned.
    Ready,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    pub task_id: String,
    pub mode: Mode,
    pub phase: Phase,
    /// `None` in host mode.
    pub netns: Option<PathBuf>,
    /// The loopback conflist (`CNI_IFNAME=lo`), for every mode with a netns.
    pub loopback: Option<Value>,
    /// The task's conflist (`CNI_IFNAME=eth0`): bridge (+ portmap).
    pub conflist: Option<Value>,
    /// The runtime configuration passed to capable plugins (`portMappings`).
    pub runtime_config: Map<String, Value>,
    /// The final ADD result of `conflist`, passed as `prevResult` on DEL.
    pub result: Option<Value>,
    /// What setup returned, for `adopt`.
    pub network: Option<TaskNetwork>,
}

pub fn path(state_dir: &Path, task_id: &str) -> PathBuf {
    state_dir.join(format!("{task_id}.json"))
}

/// Reads a record; `Ok(None)` when there is none.
pub fn load(state_dir: &Path, task_id: &str) -> Result<Option<Record>, NetworkError> {
    let p = path(state_dir, task_id);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(NetworkError::State { path: p, source }),
    };
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| NetworkError::StateFormat {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    if record.version != RECORD_VERSION || record.task_id != task_id {
        return Err(NetworkError::StateFormat {
            path: p,
            reason: format!(
                "record version {} for task {:?} (expected version {RECORD_VERSION} for {task_id:?})",
                record.version, record.task_id
            ),
        });
    }
    Ok(Some(record))
}

/// Writes `record` atomically, mode 0644.
pub fn store(state_dir: &Path, record: &Record) -> Result<(), NetworkError> {
    let p = path(state_dir, &record.task_id);
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| NetworkError::StateFormat {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    berth_proto::fsutil::write_atomic(&p, &bytes, 0o644)
        .map_err(|source| NetworkError::State { path: p, source })
}

/// Removes the record (absent is fine).
pub fn remove(state_dir: &Path, task_id: &str) -> Result<(), NetworkError> {
    let p = path(state_dir, task_id);
    match std::fs::remove_file(&p) {
        Ok(()) => sync_dir(state_dir).map_err(|source| NetworkError::State { path: p, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetworkError::State { path: p, source }),
    }
}

/// The task ids that have a record.
pub fn list(state_dir: &Path) -> Result<Vec<String>, NetworkError> {
    let entries = std::fs::read_dir(state_dir).map_err(|source| NetworkError::State {
        path: state_dir.to_owned(),
        source,
    })?;
    let mut ids: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".json")?;
            (!id.starts_with('.') && e.path().is_file()).then(|| id.to_owned())
        })
        .collect();
    ids.sort();
    Ok(ids)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
