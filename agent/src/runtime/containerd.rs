//! The connection to containerd: one tonic channel over the unix socket
//! (containerd-client's `connect`), the namespace every request carries
//! (`containerd-namespace` metadata; Berth's default is `berth`), and the
//! service clients built from that channel. Works with containerd 1.6 and
//! 1.7+: only the v1 services that both have are used.

use std::path::{Path, PathBuf};

use containerd_client::services::v1::{
    containers_client::ContainersClient, content_client::ContentClient, diff_client::DiffClient,
    images_client::ImagesClient, leases_client::LeasesClient,
    snapshots::snapshots_client::SnapshotsClient, tasks_client::TasksClient,
    version_client::VersionClient,
};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// The namespace Berth uses unless configured otherwise.
pub const DEFAULT_NAMESPACE: &str = "berth";

/// The metadata key that selects a containerd namespace.
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// The metadata key that attaches new resources to a lease.
const LEASE_HEADER: &str = "containerd-lease";

/// Why containerd could not be reached or answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("invalid containerd namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        namespace: String,
        reason: &'static str,
    },
    #[error("cannot connect to containerd at {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("containerd {op} failed: {}", status.message())]
    Call {
        op: &'static str,
        #[source]
        status: tonic::Status,
    },
}

impl ContainerdError {
    /// Wraps a failed call `op` (e.g. `"images.Get"`).
    pub fn call(op: &'static str, status: tonic::Status) -> Self {
        ContainerdError::Call { op, status }
    }

    /// The gRPC code of a failed call, if this is one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ContainerdError::Call { status, .. } => Some(status.code()),
            _ => None,
        }
    }
}

/// What `version()` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: String,
    pub revision: String,
}

/// A connection to one containerd, in one namespace. Cheap to clone (the
/// channel is shared).
#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
    namespace: String,
    socket: PathBuf,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("socket", &self.socket)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Containerd {
    /// Connects to the socket (the connection is made now, so a missing
    /// containerd is reported here) and checks the namespace name.
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Self, ContainerdError> {
        validate_namespace(namespace)?;
        let channel = containerd_client::connect(socket).await.map_err(|source| {
            ContainerdError::Connect {
                socket: socket.to_path_buf(),
                source,
            }
        })?;
        Ok(Self {
            channel,
            namespace: namespace.to_owned(),
            socket: socket.to_path_buf(),
        })
    }

    /// The shared channel.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The namespace every request carries.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `msg` as a request in this namespace.
    pub fn with_namespace<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        // Checked in `connect`: the namespace is a valid ASCII header value.
        if let Ok(v) = MetadataValue::try_from(self.namespace.as_str()) {
            req.metadata_mut().insert(NAMESPACE_HEADER, v);
        }
        req
    }

    /// `msg` as a request in this namespace whose new content and snapshots
    /// are held by `lease` (so containerd's GC leaves them alone).
    pub fn with_lease<T>(&self, msg: T, lease: &str) -> tonic::Request<T> {
        let mut req = self.with_namespace(msg);
        if let Ok(v) = MetadataValue::try_from(lease) {
            req.metadata_mut().insert(LEASE_HEADER, v);
        }
        req
    }

    /// containerd's version and revision.
    pub async fn version(&self) -> Result<Version, ContainerdError> {
        let resp = VersionClient::new(self.channel())
            .version(tonic::Request::new(()))
            .await
            .map_err(|s| ContainerdError::call("version.Version", s))?
            .into_inner();
        Ok(Version {
            version: resp.version,
            revision: resp.revision,
        })
    }

    pub fn content(&self) -> ContentClient<Channel> {
        // Layers can be large: lift tonic's 4 MiB default on reads.
        ContentClient::new(self.channel()).max_decoding_message_size(64 * 1024 * 1024)
    }

    pub fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel())
    }

    pub fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel())
    }

    pub fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel())
    }

    pub fn leases(&self) -> LeasesClient<Channel> {
        LeasesClient::new(self.channel())
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel())
    }

    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel())
    }
}

/// Checks a namespace name against containerd's rule:
/// `[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*`, at most 76 bytes.
pub fn validate_namespace(ns: &str) -> Result<(), ContainerdError> {
    let invalid = |reason| ContainerdError::InvalidNamespace {
        namespace: ns.to_owned(),
        reason,
    };
    if ns.is_empty() {
        return Err(invalid("it is empty"));
    }
    if ns.len() > 76 {
        return Err(invalid("it is longer than 76 characters"));
    }
    let mut prev_sep = true;
    for c in ns.chars() {
        let sep = matches!(c, '.' | '_' | '-');
        if !(c.is_ascii_alphanumeric() || sep) {
            return Err(invalid(
                "only ASCII letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        if sep && prev_sep {
            return Err(invalid(
                "a '.', '_' or '-' must sit between letters or digits",
            ));
        }
        prev_sep = sep;
    }
    if prev_sep {
        return Err(invalid("it must end with a letter or digit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_containerds_rule() {
        for ok in ["berth", "k8s.io", "a-b_c.d", "x1"] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a b", "ä", &"x".repeat(77)] {
            assert!(validate_namespace(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn requests_carry_namespace_and_lease() {
        let channel = Channel::from_static("http://[::]:1").connect_lazy();
        let ctd = Containerd {
            channel,
            namespace: "berth".to_owned(),
            socket: PathBuf::from("/run/containerd/containerd.sock"),
        };
        let req = ctd.with_lease((), "lease-1");
        assert_eq!(req.metadata().get(NAMESPACE_HEADER).unwrap(), "berth");
        assert_eq!(req.metadata().get(LEASE_HEADER).unwrap(), "lease-1");
    }
}
