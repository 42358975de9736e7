//! `berth-lb haproxy` against the real HAProxy (`/usr/sbin/haproxy`, Debian's
//! haproxy package): the built binary runs with listeners on loopback
//! ports, follows an in-process fake `TargetGroupService` served over TLS
//! (a throwaway CA from rcgen) whose snapshots each test controls, and
//! sends traffic to tiny HTTP backends on 127.0.0.1 that answer with their
//! own name. Covered: only healthy targets get requests and draining ones
//! get no new ones; host and path rules through one HTTPS listener (checked
//! with curl); a target drained then removed under a steady stream loses no
//! request; a broken scheduler stream leaves the backends serving; more
//! targets than slots grow the backend; a reload or a kill of HAProxy
//! behind berth-lb's back is healed; in external mode berth-lb drives an
//! HAProxy it did not start and leaves it serving when it stops; a TCP
//! listener forwards, and a group's slow start reaches the config. A missing
//! HAProxy (or curl) fails the test with a message naming the package.
//! Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::v1;
use berth_proto::v1::target_group_service_server::{TargetGroupService, TargetGroupServiceServer};
use futures::{Stream, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

const TOKEN: &str = "berth_lbtest_secret";
/// The longest any condition may take to come true.
const WAIT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ PKI

struct Pki {
    ca_pem: String,
    sched_cert: String,
    sched_key: String,
    site_cert: String,
    site_key: String,
}

fn pki() -> &'static Pki {
    static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::default();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "berth-lb test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = |names: &[&str]| {
            let key = rcgen::KeyPair::generate().unwrap();
            let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
            let cert = rcgen::CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (sched_cert, sched_key) = leaf(&["127.0.0.1"]);
        let (site_cert, site_key) = leaf(&["a.test", "b.test", "*.b.test"]);
        Pki {
            ca_pem: ca_cert.pem(),
            sched_cert,
            sched_key,
            site_cert,
            site_key,
        }
    })
}

// ------------------------------------------------- the fake scheduler

/// A `TargetGroupService` that streams the snapshots a test sets. While
/// `up` is false it ends every stream and refuses new ones.
#[derive(Clone)]
struct Fake {
    snapshot: Arc<watch::Sender<v1::TargetsSnapshot>>,
    up: Arc<watch::Sender<bool>>,
    watches: Arc<AtomicUsize>,
    tokens: Arc<Mutex<Vec<String>>>,
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<v1::TargetsSnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl TargetGroupService for Fake {
    async fn create_target_group(
        &self,
        _: Request<v1::CreateTargetGroupRequest>,
    ) -> Result<Response<v1::CreateTargetGroupResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn describe_target_groups(
        &self,
        _: Request<v1::DescribeTargetGroupsRequest>,
    ) -> Result<Response<v1::DescribeTargetGroupsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn modify_target_group(
        &self,
        _: Request<v1::ModifyTargetGroupRequest>,
    ) -> Result<Response<v1::ModifyTargetGroupResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn delete_target_group(
        &self,
        _: Request<v1::DeleteTargetGroupRequest>,
    ) -> Result<Response<v1::DeleteTargetGroupResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn describe_target_health(
        &self,
        _: Request<v1::DescribeTargetHealthRequest>,
    ) -> Result<Response<v1::DescribeTargetHealthResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type WatchTargetsStream = SnapshotStream;

    async fn watch_targets(
        &self,
        request: Request<v1::WatchTargetsRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.tokens.lock().unwrap().push(auth);
        if !*self.up.borrow() {
            return Err(Status::unavailable("the fake scheduler is down"));
        }
        self.watches.fetch_add(1, Ordering::SeqCst);
        let mut down = self.up.subscribe();
        let snapshots = tokio_stream::wrappers::WatchStream::new(self.snapshot.subscribe())
            .map(Ok)
            .take_until(async move {
                let _ = down.wait_for(|up| !*up).await;
            });
        Ok(Response::new(Box::pin(snapshots)))
    }
}

impl Fake {
    /// Serves over TLS on a loopback port; returns the fake and the URL.
    async fn serve() -> (Self, String) {
        berth_proto::trust::install_crypto_provider();
        let fake = Fake {
            snapshot: Arc::new(watch::channel(v1::TargetsSnapshot::default()).0),
            up: Arc::new(watch::channel(true).0),
            watches: Arc::new(AtomicUsize::new(0)),
            tokens: Arc::new(Mutex::new(Vec::new())),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&pki().sched_cert, &pki().sched_key),
        );
        let server = tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(TargetGroupServiceServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        (fake, format!("https://{addr}"))
    }

    fn set(&self, groups: &[(&str, &[(&Backend, &str)])]) {
        self.snapshot.send_replace(snapshot(groups));
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

fn snapshot(groups: &[(&str, &[(&Backend, &str)])]) -> v1::TargetsSnapshot {
    v1::TargetsSnapshot {
        groups: groups
            .iter()
            .map(|(name, targets)| v1::TargetGroupTargets {
                target_group: Some(v1::TargetGroup {
                    target_group_name: (*name).to_owned(),
                    target_group_arn: format!(
                        "arn:berth:elasticloadbalancing:local:000000000000:targetgroup/{name}/0123456789abcdef"
                    ),
                    protocol: "HTTP".into(),
                    ..Default::default()
                }),
                targets: targets
                    .iter()
                    .map(|(b, state)| v1::TargetHealthDescription {
                        target: Some(v1::Target {
                            id: "i-0".into(),
                            port: u32::from(b.port),
                            address: "127.0.0.1".into(),
                            ..Default::default()
                        }),
                        target_health: Some(v1::TargetHealth {
                            state: (*state).to_owned(),
                            ..Default::default()
                        }),
                        task_arn: format!("arn:berth:ecs:local:000000000000:task/default/{}", b.name),
                        container_name: "web".into(),
                        container_port: 80,
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect(),
    }
}

// ------------------------------------------------------------ backends

/// An HTTP server on 127.0.0.1 that answers every request with its name.
struct Backend {
    name: String,
    port: u16,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    async fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let (n, h) = (name.to_owned(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (n, h) = (n.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(read) = conn.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{n}",
                        n.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self {
            name: name.to_owned(),
            port,
            hits,
            task,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops accepting (connections in progress finish).
    fn stop(&self) {
        self.task.abort();
    }
}

/// One HTTP/1.1 request through the load balancer: the status and body.
async fn get(port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    let work = async {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// The bodies of `n` requests, counted by body ("503" for errors).
async fn spread(port: u16, host: &str, path: &str, n: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let key = match get(port, host, path).await {
            Ok((200, body)) => body,
            Ok((status, _)) => status.to_string(),
            Err(e) => format!("error: {e}"),
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// Waits until `check` holds, at most [`WAIT`]; panics naming `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {WAIT:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------- berth-lb

/// `berth-lb haproxy` as a child process; stopped (SIGTERM) on drop.
struct Lb {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Lb {
    /// Writes the config (`listeners` is the `[[listener]]` TOML) and starts
    /// the binary; waits until HAProxy answers on the runtime socket.
    async fn start(endpoint: &str, slots: u32, listeners: &str) -> Self {
        let (dir, path) = Self::prepare(endpoint, slots, listeners);
        Self::spawn(dir, &path, &[]).await
    }

    /// A temp dir holding `lb.toml`, and that file's path.
    fn prepare(endpoint: &str, slots: u32, listeners: &str) -> (tempfile::TempDir, PathBuf) {
        let haproxy = berth_testkit::require_binary("haproxy", "haproxy");
        // Unix socket paths must stay short: a temp dir under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("berth-lb-")
            .tempdir_in("/tmp")
            .unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki().ca_pem).unwrap();
        let config = format!(
            "[scheduler]\nendpoint = {endpoint:?}\nca_cert = {ca:?}\n\n\
             [haproxy]\nbinary = {haproxy:?}\nstate_dir = {state:?}\nslots = {slots}\n\
             reapply_seconds = 10\n\n{listeners}",
            state = dir.path().join("state"),
        );
        let path = dir.path().join("lb.toml");
        std::fs::write(&path, config).unwrap();
        (dir, path)
    }

    /// Runs `berth-lb --config <path> haproxy <args>` and waits until
    /// HAProxy answers on the runtime socket.
    async fn spawn(dir: tempfile::TempDir, path: &Path, args: &[&str]) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-lb"))
            .arg("--config")
            .arg(path)
            .arg("haproxy")
            .args(args)
            .env("BERTH_TOKEN", TOKEN)
            .env("BERTH_LOG", "info,berth_lb=debug")
            .spawn()
            .unwrap();
        let lb = Self { child, dir };
        let socket = lb.runtime_socket();
        eventually("haproxy answers on its runtime socket", || {
            let socket = socket.clone();
            async move { berth_lb::runtime::worker_pid(&socket).await.is_ok() }
        })
        .await;
        lb
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Stops `berth-lb` (SIGTERM; it stops its HAProxy) and starts it again
    /// on the same config and state dir.
    async fn restart(&mut self) {
        stop_child(&mut self.child);
        let socket = self.runtime_socket();
        self.child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-lb"))
            .arg("--config")
            .arg(self.dir.path().join("lb.toml"))
            .arg("haproxy")
            .env("BERTH_TOKEN", TOKEN)
            .env("BERTH_LOG", "info,berth_lb=debug")
            .spawn()
            .unwrap();
        eventually(
            "the restarted haproxy answers on its runtime socket",
            || {
                let socket = socket.clone();
                async move { berth_lb::runtime::worker_pid(&socket).await.is_ok() }
            },
        )
        .await;
    }

    fn runtime_socket(&self) -> PathBuf {
        self.state_dir().join("admin.sock")
    }

    /// `(slot, port, admin state flags)` of every server of `backend`.
    async fn servers(&self, backend: &str) -> Vec<(String, u16, u32)> {
        servers(&self.runtime_socket(), backend).await
    }
}

async fn servers(socket: &Path, backend: &str) -> Vec<(String, u16, u32)> {
    let Ok(text) = berth_lb::runtime::call(socket, &format!("show servers state {backend}")).await
    else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#') && l.split(' ').count() > 20)
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[3].to_owned(),
                f[18].parse().unwrap_or(0),
                f[6].parse().unwrap_or(0),
            )
        })
        .collect()
}

/// HAProxy's admin-state flags (`show servers state`).
const FORCED_MAINT: u32 = 0x01;
const FORCED_DRAIN: u32 = 0x08;

/// SIGTERM, then a kill after 10 s.
fn stop_child(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Lb {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

fn http_listener(name: &str, port: u16, group: &str) -> String {
    format!(
        "[[listener]]\nname = {name:?}\nbind = \"127.0.0.1:{port}\"\nprotocol = \"HTTP\"\n\
         default_target_group = {group:?}\n"
    )
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_healthy_targets_get_requests_and_draining_ones_get_no_new_ones() {
    let (fake, endpoint) = Fake::serve().await;
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    fake.set(&[(
        "web",
        &[(&a, "healthy"), (&b, "unhealthy"), (&c, "initial")],
    )]);
    let port = berth_testkit::free_port();
    let _lb = Lb::start(&endpoint, 4, &http_listener("web", port, "web")).await;

    eventually("the healthy target serves", || async {
        get(port, "x", "/")
            .await
            .is_ok_and(|(s, body)| s == 200 && body == "a")
    })
    .await;
    let seen = spread(port, "x", "/", 20).await;
    assert_eq!(
        seen,
        BTreeMap::from([("a".to_owned(), 20)]),
        "only a is healthy"
    );
    assert_eq!((b.hits(), c.hits()), (0, 0));

    fake.set(&[("web", &[(&a, "healthy"), (&b, "healthy"), (&c, "draining")])]);
    eventually("b serves too", || async {
        spread(port, "x", "/", 4).await.contains_key("b")
    })
    .await;
    let seen = spread(port, "x", "/", 40).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["a", "b"], "{seen:?}");
    assert_eq!(c.hits(), 0, "a draining target gets no new requests");

    // Unhealthy again: out of rotation.
    fake.set(&[(
        "web",
        &[(&a, "unhealthy"), (&b, "healthy"), (&c, "draining")],
    )]);
    eventually("a leaves the rotation", || async {
        spread(port, "x", "/", 6).await.keys().collect::<Vec<_>>() == ["b"]
    })
    .await;
    let tokens = fake.tokens.lock().unwrap().clone();
    assert!(
        tokens.iter().all(|t| t == &format!("Bearer {TOKEN}")),
        "the operator token travels on every watch: {tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_and_path_rules_route_through_one_https_listener() {
    let curl = berth_testkit::require_binary("curl", "curl");
    let (fake, endpoint) = Fake::serve().await;
    let (a, b, c) = (
        Backend::start("alpha").await,
        Backend::start("beta").await,
        Backend::start("web").await,
    );
    fake.set(&[
        ("alpha", &[(&a, "healthy")]),
        ("beta", &[(&b, "healthy")]),
        ("web", &[(&c, "healthy")]),
    ]);
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (
        certs.path().join("site.crt"),
        certs.path().join("site.key"),
        certs.path().join("ca.pem"),
    );
    std::fs::write(&cert, &pki().site_cert).unwrap();
    std::fs::write(&key, &pki().site_key).unwrap();
    std::fs::write(&ca, &pki().ca_pem).unwrap();
    let port = berth_testkit::free_port();
    let listeners = format!(
        "[[listener]]\nname = \"public\"\nbind = \"127.0.0.1:{port}\"\nprotocol = \"HTTPS\"\n\
         certificate = {cert:?}\nkey = {key:?}\ndefault_target_group = \"web\"\n\n\
         [[listener.rule]]\npriority = 20\npath_prefix = [\"/api/\"]\ntarget_group = \"beta\"\n\n\
         [[listener.rule]]\npriority = 10\nhost = [\"a.test\"]\ntarget_group = \
         \"arn:berth:elasticloadbalancing:local:000000000000:targetgroup/alpha/0123456789abcdef\"\n\n\
         [[listener.rule]]\npriority = 30\nhost = [\"*.b.test\"]\npath_prefix = [\"/w/\"]\n\
         target_group = \"beta\"\n"
    );
    let lb = Lb::start(&endpoint, 4, &listeners).await;
    let combined = lb.state_dir().join("certs/public.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&combined).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the combined PEM is private");

    let curl_get = |host: &'static str, path: &'static str| {
        let (curl, ca) = (curl.clone(), ca.clone());
        async move {
            let out = tokio::process::Command::new(&curl)
                .arg("--silent")
                .arg("--show-error")
                .arg("--max-time")
                .arg("5")
                .arg("--cacert")
                .arg(&ca)
                .arg("--resolve")
                .arg(format!("{host}:{port}:127.0.0.1"))
                .arg("--write-out")
                .arg(" %{http_code}")
                .arg(format!("https://{host}:{port}{path}"))
                .output()
                .await
                .unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        }
    };
    eventually("the HTTPS listener serves the default group", || async {
        curl_get("b.test", "/").await == "web 200"
    })
    .await;
    // Host rule (priority 10) beats the path rule (20) for a.test.
    assert_eq!(curl_get("a.test", "/").await, "alpha 200");
    assert_eq!(curl_get("a.test", "/api/users").await, "alpha 200");
    // Path rule for any other host.
    assert_eq!(curl_get("b.test", "/api/users").await, "beta 200");
    // A wildcard host together with a path prefix: both must match.
    assert_eq!(curl_get("x.b.test", "/w/1").await, "beta 200");
    assert_eq!(curl_get("x.b.test", "/other").await, "web 200");
    assert_eq!(curl_get("b.test", "/w/1").await, "web 200");
    // The host header's port is ignored (curl sends a.test:<port>).
    assert!(a.hits() >= 2 && b.hits() >= 2 && c.hits() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_drained_then_removed_under_a_steady_stream_loses_no_request() {
    let (fake, endpoint) = Fake::serve().await;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    fake.set(&[("web", &[(&a, "healthy"), (&b, "healthy")])]);
    let port = berth_testkit::free_port();
    let lb = Lb::start(&endpoint, 4, &http_listener("web", port, "web")).await;
    eventually("both targets serve", || async {
        spread(port, "x", "/", 6).await.len() == 2
    })
    .await;

    // A steady stream of requests from two clients.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (stop, failures, sent) = (stop.clone(), failures.clone(), sent.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                sent.fetch_add(1, Ordering::SeqCst);
                match get(port, "x", "/").await {
                    Ok((200, _)) => {}
                    other => failures.lock().unwrap().push(format!("{other:?}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_before = a.hits();
    assert!(a_before > 0, "a served before its drain");

    // Drain a: HAProxy stops sending it new requests.
    fake.set(&[("web", &[(&a, "draining"), (&b, "healthy")])]);
    eventually("a's slot drains", || async {
        lb.servers("tg_web")
            .await
            .iter()
            .any(|(_, p, admin)| *p == a.port && admin & FORCED_DRAIN != 0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a_drained = a.hits();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        a.hits(),
        a_drained,
        "a draining target gets no new requests"
    );

    // Then a is gone: its slot goes to maintenance, and its server stops.
    fake.set(&[("web", &[(&b, "healthy")])]);
    eventually("a's slot is in maintenance", || async {
        lb.servers("tg_web")
            .await
            .iter()
            .any(|(_, p, admin)| *p == a.port && admin & FORCED_MAINT != 0)
    })
    .await;
    a.stop();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        tokio::time::timeout(Duration::from_secs(10), c)
            .await
            .unwrap()
            .unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let sent = sent.load(Ordering::SeqCst);
    eprintln!(
        "drain: {sent} requests, {} failed; a served {a_before} before its drain",
        failures.len()
    );
    assert!(sent > 100, "a steady stream: {sent} requests");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {failures:?}",
        failures.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_scheduler_stream_keeps_the_backends_serving() {
    let (fake, endpoint) = Fake::serve().await;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    fake.set(&[("web", &[(&a, "healthy")])]);
    let port = berth_testkit::free_port();
    let _lb = Lb::start(&endpoint, 4, &http_listener("web", port, "web")).await;
    eventually("a serves", || async {
        get(port, "x", "/").await.is_ok_and(|(_, body)| body == "a")
    })
    .await;

    // The scheduler goes away (stream ended, new watches refused) for 3 s,
    // longer than a periodic re-apply would matter for.
    fake.set_up(false);
    for _ in 0..30 {
        assert_eq!(
            spread(port, "x", "/", 1).await,
            BTreeMap::from([("a".to_owned(), 1)]),
            "the backends keep serving while the scheduler is away"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = fake.tokens.lock().unwrap().len();
    assert!(
        refused >= 2,
        "berth-lb retried the watch ({refused} attempts)"
    );

    // Back, with a change made meanwhile: berth-lb reconnects and follows.
    fake.set(&[("web", &[(&b, "healthy")])]);
    fake.set_up(true);
    eventually("b replaces a after the reconnect", || async {
        spread(port, "x", "/", 4).await.keys().collect::<Vec<_>>() == ["b"]
    })
    .await;
    assert!(fake.watches.load(Ordering::SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_while_the_scheduler_is_away_it_serves_the_remembered_targets() {
    let (fake, endpoint) = Fake::serve().await;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    fake.set(&[("web", &[(&a, "healthy"), (&b, "unhealthy")])]);
    let port = berth_testkit::free_port();
    let mut lb = Lb::start(&endpoint, 4, &http_listener("web", port, "web")).await;
    eventually("a serves", || async {
        get(port, "x", "/").await.is_ok_and(|(_, body)| body == "a")
    })
    .await;
    let remembered = lb.state_dir().join("last-targets.json");
    assert!(remembered.exists(), "berth-lb remembers the targets");

    // The scheduler goes away, then berth-lb restarts (a host reboot, an
    // upgrade): it serves what it remembered, the healthy target only.
    fake.set_up(false);
    lb.restart().await;
    eventually("a serves again without the scheduler", || async {
        get(port, "x", "/").await.is_ok_and(|(_, body)| body == "a")
    })
    .await;
    assert_eq!(
        spread(port, "x", "/", 6).await,
        BTreeMap::from([("a".to_owned(), 6)]),
        "only the remembered healthy target gets requests"
    );

    // The scheduler is back with a change: the live snapshot wins.
    fake.set(&[("web", &[(&b, "healthy")])]);
    fake.set_up(true);
    eventually("b replaces a once the scheduler answers", || async {
        spread(port, "x", "/", 4).await.keys().collect::<Vec<_>>() == ["b"]
    })
    .await;

    // Too old to trust: a restarted berth-lb serves nothing until told.
    fake.set_up(false);
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&remembered)
        .unwrap()
        .set_modified(old)
        .unwrap();
    lb.restart().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let served = get(port, "x", "/").await;
    assert!(
        matches!(served, Ok((503, _))),
        "a stale memory is not served: {served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn more_targets_than_slots_grow_the_backend() {
    let (fake, endpoint) = Fake::serve().await;
    let mut backends = Vec::new();
    for i in 0..5 {
        backends.push(Backend::start(&format!("t{i}")).await);
    }
    let one: Vec<(&Backend, &str)> = vec![(&backends[0], "healthy")];
    fake.set(&[("web", &one)]);
    let port = berth_testkit::free_port();
    let lb = Lb::start(&endpoint, 2, &http_listener("web", port, "web")).await;
    eventually("t0 serves", || async {
        get(port, "x", "/")
            .await
            .is_ok_and(|(_, body)| body == "t0")
    })
    .await;
    assert_eq!(lb.servers("tg_web").await.len(), 2);

    // A steady client while the backend grows: the reload drops nothing.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, failures) = (stop.clone(), failures.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if !matches!(get(port, "x", "/").await, Ok((200, _))) {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let all: Vec<(&Backend, &str)> = backends.iter().map(|b| (b, "healthy")).collect();
    fake.set(&[("web", &all)]);
    eventually("the backend has at least 5 slots", || async {
        lb.servers("tg_web").await.len() >= 5
    })
    .await;
    eventually("all five targets serve", || async {
        spread(port, "x", "/", 10).await.len() == 5
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed during the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn haproxy_reloaded_or_killed_behind_our_back_is_healed() {
    let (fake, endpoint) = Fake::serve().await;
    let a = Backend::start("a").await;
    fake.set(&[("web", &[(&a, "healthy")])]);
    let port = berth_testkit::free_port();
    let lb = Lb::start(&endpoint, 4, &http_listener("web", port, "web")).await;
    eventually("a serves", || async {
        get(port, "x", "/").await.is_ok_and(|(_, body)| body == "a")
    })
    .await;

    // A reload without the server state: the new worker starts with every
    // slot in maintenance; berth-lb notices the new worker and re-applies.
    let socket = lb.runtime_socket();
    let old = berth_lb::runtime::worker_pid(&socket).await.unwrap();
    let _ = std::fs::remove_file(lb.state_dir().join("server-state"));
    berth_lb::runtime::reload(&lb.state_dir().join("master.sock"))
        .await
        .unwrap();
    eventually("a new worker serves a again", || async {
        berth_lb::runtime::worker_pid(&socket)
            .await
            .is_ok_and(|p| p != old)
            && get(port, "x", "/").await.is_ok_and(|(_, body)| body == "a")
    })
    .await;

    // HAProxy killed outright: berth-lb starts it again and re-applies.
    let master = std::process::Command::new("pgrep")
        .arg("-o")
        .arg("-f")
        .arg(format!(
            "{},mode,600",
            lb.state_dir().join("master.sock").display()
        ))
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&master.stdout).into_owned();
    let pid: i32 = pids
        .lines()
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no haproxy master found: {pids:?}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("a restarted haproxy serves a again", || async {
        get(port, "x", "/").await.is_ok_and(|(_, body)| body == "a")
    })
    .await;
}

/// A process stopped with SIGTERM (then killed) on drop.
struct Terminate(std::process::Child);

impl Drop for Terminate {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn external_mode_drives_a_haproxy_it_did_not_start_and_leaves_it_running() {
    let haproxy = berth_testkit::require_binary("haproxy", "haproxy");
    let (fake, endpoint) = Fake::serve().await;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    fake.set(&[("web", &[(&a, "healthy")])]);
    let port = berth_testkit::free_port();
    let (dir, path) = Lb::prepare(&endpoint, 4, &http_listener("web", port, "web"));
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();

    // The operator's HAProxy runs the generated config (as a drop-in for
    // haproxy.service would), with the master socket berth-lb expects.
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_berth-lb"))
        .arg("--config")
        .arg(&path)
        .arg("haproxy")
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let cfg = state.join("haproxy.cfg");
    std::fs::write(&cfg, &printed.stdout).unwrap();
    let external = Terminate(
        std::process::Command::new(&haproxy)
            .arg("-W")
            .arg("-S")
            .arg(format!("{},mode,600", state.join("master.sock").display()))
            .arg("-f")
            .arg(&cfg)
            .spawn()
            .unwrap(),
    );

    let lb = Lb::spawn(dir, &path, &["--external"]).await;
    eventually("a serves through the external haproxy", || async {
        get(port, "x", "/").await.is_ok_and(|(_, body)| body == "a")
    })
    .await;
    fake.set(&[("web", &[(&a, "draining"), (&b, "healthy")])]);
    eventually("b replaces a", || async {
        spread(port, "x", "/", 4).await.keys().collect::<Vec<_>>() == ["b"]
    })
    .await;

    // berth-lb stops; the HAProxy it did not start keeps serving as it was.
    drop(lb);
    assert_eq!(
        spread(port, "x", "/", 10).await,
        BTreeMap::from([("b".to_owned(), 10)])
    );
    drop(external);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tcp_listener_forwards_and_slow_start_reaches_the_config() {
    let (fake, endpoint) = Fake::serve().await;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    fake.set(&[("web", &[(&a, "healthy")]), ("raw", &[(&b, "healthy")])]);
    let (http, tcp) = (berth_testkit::free_port(), berth_testkit::free_port());
    let listeners = format!(
        "{}\n[[listener]]\nname = \"raw\"\nbind = \"127.0.0.1:{tcp}\"\nprotocol = \"TCP\"\n\
         default_target_group = \"raw\"\n",
        http_listener("web", http, "web")
    );
    let lb = Lb::start(&endpoint, 4, &listeners).await;
    eventually("the TCP listener reaches b", || async {
        get(tcp, "x", "/").await.is_ok_and(|(_, body)| body == "b")
    })
    .await;
    eventually("the HTTP listener reaches a", || async {
        get(http, "x", "/").await.is_ok_and(|(_, body)| body == "a")
    })
    .await;

    // The group gains a slow start: the backend's slots get `slowstart`
    // (a reload), and a keeps serving.
    let mut s = snapshot(&[("web", &[(&a, "healthy")]), ("raw", &[(&b, "healthy")])]);
    s.groups[0]
        .target_group
        .as_mut()
        .unwrap()
        .slow_start_seconds = 30;
    fake.snapshot.send_replace(s);
    let cfg = lb.state_dir().join("haproxy.cfg");
    eventually("the config has slowstart 30s", || async {
        std::fs::read_to_string(&cfg).is_ok_and(|c| c.contains("slowstart 30s"))
    })
    .await;
    assert_eq!(
        spread(http, "x", "/", 10).await,
        BTreeMap::from([("a".to_owned(), 10)])
    );
}
