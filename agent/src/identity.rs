//! The agent's identity: the container instance the scheduler gave it at
//! `berth-agent register`, persisted as `<state_dir>/identity.json`, and its
//! TLS material beside it: `key.pem` (the host's private key, mode 0600,
//! never sent anywhere), `cert.pem` (its client certificate, whose subject
//! is the instance id) and `ca.pem` (the pinned cluster CA). Every file is
//! written atomically (temp file, fsync, rename, fsync of the directory).

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the identity inside the state directory.
pub use crate::config::IDENTITY_FILE;
/// The host's private key (PEM, mode 0600).
pub const KEY_FILE: &str = "key.pem";
/// The host's client certificate (PEM).
pub const CERT_FILE: &str = "cert.pem";
/// The cluster CA the agent trusts (PEM).
pub const CA_FILE: &str = "ca.pem";

/// Who this host is to the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The cluster the host joined (the activation's).
    pub cluster: String,
    pub container_instance_id: String,
    pub container_instance_arn: String,
    pub cluster_arn: String,
}

/// The host's TLS material: what the agent presents and whom it trusts.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
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
         and register the host anew with an activation for {configured:?}",
        path.display()
    )]
    ClusterMismatch {
        path: PathBuf,
        persisted: String,
        configured: String,
    },
    #[error(
        "this host is not registered (no {} ): run `berth-agent register --scheduler URL \
         --activation-id ID --activation-code CODE --ca-fingerprint SHA256` first",
        path.display()
    )]
    NotRegistered { path: PathBuf },
}

impl IdentityError {
    /// True when the configuration, not the host, is at fault (exit code 64).
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            IdentityError::ClusterMismatch { .. } | IdentityError::NotRegistered { .. }
        )
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
    /// another cluster than `cluster` (when one is configured: the
    /// activation decides the cluster, so `None` accepts any).
    pub fn load_for_cluster(
        &self,
        cluster: Option<&str>,
    ) -> Result<Option<Identity>, IdentityError> {
        match self.load()? {
            Some(id) if cluster.is_some_and(|c| c != id.cluster) => {
                Err(IdentityError::ClusterMismatch {
                    path: self.path.clone(),
                    persisted: id.cluster,
                    configured: cluster.unwrap_or_default().to_owned(),
                })
            }
            other => Ok(other),
        }
    }

    /// Writes the identity atomically with mode 0600 (the directory is
    /// created with mode 0700 if missing).
    pub fn save(&self, identity: &Identity) -> Result<(), IdentityError> {
        let mut json = serde_json::to_vec_pretty(identity).map_err(|e| IdentityError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        json.push(b'\n');
        write_atomic(&self.path, &json, 0o600)
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        }
    }

    /// The TLS material beside the identity file.
    pub fn load_credentials(&self) -> Result<Credentials, IdentityError> {
        let dir = self.dir();
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    IdentityError::NotRegistered { path }
                } else {
                    IdentityError::Read { path, source }
                }
            })
        };
        Ok(Credentials {
            cert_pem: read(CERT_FILE)?,
            key_pem: read(KEY_FILE)?,
            ca_pem: read(CA_FILE)?,
        })
    }

    /// Writes the TLS material: the key with mode 0600, before the
    /// certificate that belongs to it.
    pub fn save_credentials(&self, c: &Credentials) -> Result<(), IdentityError> {
        let dir = self.dir().to_owned();
        write_atomic(&dir.join(KEY_FILE), c.key_pem.as_bytes(), 0o600)?;
        write_atomic(&dir.join(CA_FILE), c.ca_pem.as_bytes(), 0o644)?;
        write_atomic(&dir.join(CERT_FILE), c.cert_pem.as_bytes(), 0o644)
    }
}

/// Writes `contents` to `path` atomically with `mode`
/// ([`berth_proto::fsutil::write_atomic_private`]). The directory is created
/// (mode 0700) if missing.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    berth_proto::fsutil::write_atomic_private(path, contents, mode).map_err(|source| {
        IdentityError::Write {
            path: path.to_owned(),
            source,
        }
    })
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
        other.container_instance_arn.push('2');
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
            .load_for_cluster(Some("prod"))
            .expect("same cluster")
            .is_some());
        let err = store
            .load_for_cluster(Some("staging"))
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
    fn credentials_round_trip_with_the_key_0600_and_debug_hides_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = IdentityStore::new(dir.path().join(IDENTITY_FILE));
        assert!(matches!(
            store.load_credentials(),
            Err(IdentityError::NotRegistered { .. })
        ));
        let c = Credentials {
            cert_pem: "CERT".into(),
            key_pem: "s3cr3t".into(),
            ca_pem: "CA".into(),
        };
        store.save_credentials(&c).expect("save");
        assert_eq!(store.load_credentials().expect("load"), c);
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(store.load_for_cluster(None).expect("none").is_none());
    }
}
