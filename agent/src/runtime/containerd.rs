//! The connection to containerd: one tonic channel over the unix socket
//! (containerd-client's `connect`), the namespace every request carries
//! (`containerd-namespace` metadata; Berth's default is `berth`), and the
//! service clients built from that channel. Works with containerd 1.6 and
//! 1.7+: only the v1 services that both have are used.
//!
//! Every client goes through [`ObservedChannel`], one tower service around
//! the channel that times each call and counts its failures by gRPC method
//! ([`ContainerdCalls`], exported by the agent's `/metrics`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

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

/// The labels of a containerd call's series: its gRPC method, shortened to
/// `Service/Method` (`Tasks/Start`), a bounded set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
}

/// A failed call's labels: the method and the gRPC code's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallErrorLabels {
    pub method: String,
    pub code: String,
}

/// containerd call latency and failures; cheap to clone (shared values).
#[derive(Debug, Clone)]
pub struct ContainerdCalls {
    pub duration: Family<CallLabels, Histogram>,
    pub errors: Family<CallErrorLabels, Counter>,
}

impl Default for ContainerdCalls {
    fn default() -> Self {
        Self {
            // 0.5 ms … ~16 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            errors: Family::default(),
        }
    }
}

impl ContainerdCalls {
    /// One call to `path` (`/containerd.services.tasks.v1.Tasks/Start`)
    /// answered after `took`; `code` is its gRPC code when it failed.
    pub fn observe(&self, path: &str, took: std::time::Duration, code: Option<tonic::Code>) {
        let method = short_method(path);
        self.duration
            .get_or_create(&CallLabels {
                method: method.clone(),
            })
            .observe(took.as_secs_f64());
        if let Some(code) = code {
            self.errors
                .get_or_create(&CallErrorLabels {
                    method,
                    code: format!("{code:?}"),
                })
                .inc();
        }
    }
}

/// `/containerd.services.tasks.v1.Tasks/Start` → `Tasks/Start`.
fn short_method(path: &str) -> String {
    let (service, method) = path
        .trim_start_matches('/')
        .rsplit_once('/')
        .unwrap_or(("", path));
    let service = service.rsplit('.').next().unwrap_or(service);
    format!("{service}/{method}")
}

/// The code of a call's outcome as the response headers tell it (a failed
/// unary call answers "trailers-only", with `grpc-status` in the headers);
/// `None` for success.
fn call_code<B, E>(out: &Result<http::Response<B>, E>) -> Option<tonic::Code> {
    match out {
        Err(_) => Some(tonic::Code::Unavailable),
        Ok(resp) => resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map(tonic::Code::from)
            .filter(|c| *c != tonic::Code::Ok),
    }
}

/// The channel every containerd client uses: times each call and counts
/// its failures when the agent observes them.
#[derive(Clone)]
pub struct ObservedChannel {
    inner: Channel,
    calls: Option<ContainerdCalls>,
}

impl tower_service::Service<http::Request<tonic::body::Body>> for ObservedChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let Some(calls) = self.calls.clone() else {
            return Box::pin(tower_service::Service::call(&mut self.inner, req));
        };
        let path = req.uri().path().to_owned();
        let call = tower_service::Service::call(&mut self.inner, req);
        let start = tokio::time::Instant::now();
        Box::pin(async move {
            let out = call.await;
            calls.observe(&path, start.elapsed(), call_code(&out));
            out
        })
    }
}

/// A connection to one containerd, in one namespace. Cheap to clone (the
/// channel is shared).
#[derive(Clone)]
pub struct Containerd {
    channel: ObservedChannel,
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
            channel: ObservedChannel {
                inner: channel,
                calls: None,
            },
            namespace: namespace.to_owned(),
            socket: socket.to_path_buf(),
        })
    }

    /// Times every call made through this connection (and its clones made
    /// from now on) into `calls`.
    pub fn observed(mut self, calls: ContainerdCalls) -> Self {
        self.channel.calls = Some(calls);
        self
    }

    /// The shared channel.
    pub fn channel(&self) -> ObservedChannel {
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

    pub fn content(&self) -> ContentClient<ObservedChannel> {
        // Layers can be large: lift tonic's 4 MiB default on reads.
        ContentClient::new(self.channel()).max_decoding_message_size(64 * 1024 * 1024)
    }

    pub fn images(&self) -> ImagesClient<ObservedChannel> {
        ImagesClient::new(self.channel())
    }

    pub fn snapshots(&self) -> SnapshotsClient<ObservedChannel> {
        SnapshotsClient::new(self.channel())
    }

    pub fn diff(&self) -> DiffClient<ObservedChannel> {
        DiffClient::new(self.channel())
    }

    pub fn leases(&self) -> LeasesClient<ObservedChannel> {
        LeasesClient::new(self.channel())
    }

    pub fn containers(&self) -> ContainersClient<ObservedChannel> {
        ContainersClient::new(self.channel())
    }

    pub fn tasks(&self) -> TasksClient<ObservedChannel> {
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

    #[test]
    fn calls_are_named_by_service_and_method_and_failures_by_code() {
        assert_eq!(
            short_method("/containerd.services.tasks.v1.Tasks/Start"),
            "Tasks/Start"
        );
        assert_eq!(short_method("/Version/Version"), "Version/Version");
        let answer = |status: Option<&str>| {
            let mut r = http::Response::new(());
            if let Some(s) = status {
                r.headers_mut().insert("grpc-status", s.parse().unwrap());
            }
            Ok::<_, ()>(r)
        };
        assert_eq!(call_code(&answer(None)), None);
        assert_eq!(call_code(&answer(Some("0"))), None);
        assert_eq!(call_code(&answer(Some("5"))), Some(tonic::Code::NotFound));
        assert_eq!(
            call_code(&Err::<http::Response<()>, _>(())),
            Some(tonic::Code::Unavailable)
        );
        let calls = ContainerdCalls::default();
        let path = "/containerd.services.tasks.v1.Tasks/Get";
        calls.observe(path, std::time::Duration::from_millis(3), None);
        calls.observe(
            path,
            std::time::Duration::from_millis(1),
            Some(tonic::Code::NotFound),
        );
        let mut r = prometheus_client::registry::Registry::default();
        r.register("d", "d", calls.duration.clone());
        r.register("e", "e", calls.errors.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(text.contains("d_count{method=\"Tasks/Get\"} 2"), "{text}");
        assert!(
            text.contains("e_total{method=\"Tasks/Get\",code=\"NotFound\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn requests_carry_namespace_and_lease() {
        let channel = Channel::from_static("http://[::]:1").connect_lazy();
        let ctd = Containerd {
            channel: ObservedChannel {
                inner: channel,
                calls: None,
            },
            namespace: "berth".to_owned(),
            socket: PathBuf::from("/run/containerd/containerd.sock"),
        };
        let req = ctd.with_lease((), "lease-1");
        assert_eq!(req.metadata().get(NAMESPACE_HEADER).unwrap(), "berth");
        assert_eq!(req.metadata().get(LEASE_HEADER).unwrap(), "lease-1");
    }
}
