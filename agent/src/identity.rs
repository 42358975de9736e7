//! The agent's identity: the container instance the scheduler gave it at
//! Register, persisted as `<state_dir>/identity.json` (mode 0600, written
//! atomically) so that the host keeps its instance id across restarts.
//!
//! The file holds the credential the agent presents on every Connect, so it
//! is never logged: [`Identity`]'s `Debug` leaves the credential out.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the identity inside the state directory.
pub const IDENTITY_FILE: &str = "identity.json";

/// Who this host is to the scheduler.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The cluster name the agent registered with (from its configuration).
    pub cluster: String,
    pub container_instance_id: String,
    pub container_instance_arn: String,
    pub cluster_arn: String,
    /// Opaque secret presented as request metadata on Connect.
    pub credential: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("cluster", &self.cluster)
            .field("container_instance_id", &self.container_instance_id)
            .field("container_instance_arn", &self.container_instance_arn)
            .field("cluster_arn", &self.cluster_arn)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// Why the identity could not be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read identity file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity file {} is corrupt ({source}); move it away to register this host anew", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write identity file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "identity file {} belongs to cluster {persisted:?} but the agent is configured for \
         cluster {configured:?}; configure cluster {persisted:?}, or deregister the instance \
         and remove the file to join {configured:?}",
        path.display()
    )]
    ClusterMismatch {
        path: PathBuf,
        persisted: String,
        configured: String,
    },
}

impl IdentityError {
    /// True when the configuration, not the host, is at fault (exit code 64).
    pub fn is_config_error(&self) -> bool {
        matches!(self, IdentityError::ClusterMismatch { .. })
    }
}

/// The identity file of one state directory.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    path: PathBuf,
}

impl IdentityStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The persisted identity, or `None` if this host never registered.
    pub fn load(&self) -> Result<Option<Identity>, IdentityError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(IdentityError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        if let Ok(meta) = fs::metadata(&self.path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %self.path.display(),
                    mode = format_args!("{mode:o}"),
                    "identity file holds a credential but is readable by others; chmod 600 it"
                );
            }
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| IdentityError::Corrupt {
                path: self.path.clone(),
                source,
            })
    }

    /// Like [`load`](Self::load), and fails if the identity belongs to
    /// another cluster than `cluster`.
    pub fn load_for_cluster(&self, cluster: &str) -> Result<Option<Identity>, IdentityError> {
        match self.load()? {
            Some(id) if id.cluster != cluster => Err(IdentityError::ClusterMismatch {
                path: self.path.clone(),
                persisted: id.cluster,
                configured: cluster.to_owned(),
            }),
            other => Ok(other),
        }
    }

    /// Writes the identity atomically: a mode-0600 temp file in the same
    /// directory, fsync, rename over the old file, fsync of the directory.
    /// The directory is created (mode 0700) if missing.
    pub fn save(&self, identity: &Identity) -> Result<(), IdentityError> {
        let err = |source| IdentityError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        let json =
            serde_json::to_vec_pretty(identity).map_err(|e| err(std::io::Error::other(e)))?;

        let tmp = dir.join(format!(".{IDENTITY_FILE}.tmp"));
        // A stale temp file may have other permissions; start afresh.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        file.write_all(&json).map_err(err)?;
        file.write_all(b"\n").map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(err)?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            cluster: "prod".into(),
            container_instance_id: "0b5e3c".into(),
            container_instance_arn:
                "arn:berth:ecs:local:000000000000:container-instance/prod/0b5e3c".into(),
            cluster_arn: "arn:berth:ecs:local:000000000000:cluster/prod".into(),
            credential: "s3cr3t".into(),
        }
    }

    #[test]
    fn round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = IdentityStore::new(dir.path().join("state/agent").join(IDENTITY_FILE));
        assert_eq!(store.load().expect("load"), None);

        store.save(&identity()).expect("save");
        assert_eq!(store.load().expect("load"), Some(identity()));
        let mode = fs::metadata(store.path())
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("state/agent"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);

        // Overwriting keeps the mode and leaves no temp file behind.
        let mut other = identity();
        other.credential = "rotated".into();
        store.save(&other).expect("save again");
        assert_eq!(store.load().expect("load"), Some(other));
        let names: Vec<_> = fs::read_dir(dir.path().join("state/agent"))
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [IDENTITY_FILE]);
    }

    #[test]
    fn cluster_mismatch_is_a_config_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = IdentityStore::new(dir.path().join(IDENTITY_FILE));
        store.save(&identity()).expect("save");
        assert!(store
            .load_for_cluster("prod")
            .expect("same cluster")
            .is_some());
        let err = store
            .load_for_cluster("staging")
            .expect_err("other cluster");
        assert!(err.is_config_error());
        let msg = err.to_string();
        assert!(
            msg.contains("\"prod\"") && msg.contains("\"staging\""),
            "{msg}"
        );
    }

    #[test]
    fn corrupt_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = IdentityStore::new(dir.path().join(IDENTITY_FILE));
        fs::write(store.path(), "{not json").expect("write");
        let err = store.load().expect_err("corrupt");
        assert!(matches!(err, IdentityError::Corrupt { .. }));
        assert!(err.to_string().contains(IDENTITY_FILE), "{err}");
    }

    #[test]
    fn debug_hides_the_credential() {
        let shown = format!("{:?}", identity());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("0b5e3c"));
    }
}
