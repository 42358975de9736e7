//! The agent against a tiny fake `AgentService` on 127.0.0.1, served over
//! TLS with a real cluster CA (`berth_scheduler::tls::ClusterCa`): register
//! with the CA's fingerprint, Hello with the host's real resources over
//! mutual TLS, heartbeats, reconnection after the scheduler restarts (same
//! identity), a refused certificate, a scheduler that is down at start, a
//! cluster mismatch, a wrong fingerprint, and certificate renewal.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_agent::config::Config;
use berth_agent::host::{self, HostProbe};
use berth_agent::identity::{Credentials, Identity, IdentityStore};
use berth_agent::register::{register, RegisterArgs};
use berth_agent::{Agent, ConnectionState};
use berth_proto::v1;
use berth_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use berth_proto::v1::cluster_ca_service_server::ClusterCaServiceServer;
use berth_scheduler::api::trust::ClusterCaApi;
use berth_scheduler::tls::{ClusterCa, TlsSettings};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

const INSTANCE_ID: &str = "9f1c2d3e";
const WAIT: Duration = Duration::from_secs(15);

/// What the fake scheduler saw.
#[derive(Debug)]
enum Event {
    Registered(v1::RegisterRequest),
    Renewed,
    /// Connect without a client certificate, or refused on purpose.
    Rejected {
        had_certificate: bool,
    },
    Hello(v1::Hello),
    Heartbeat(v1::Heartbeat),
    /// The agent applied the desired state of this generation.
    DesiredAck(u64),
    /// The agent closed its side of the stream (or it broke).
    StreamEnded,
}

#[derive(Clone)]
struct Fake {
    ca: Arc<ClusterCa>,
    /// Refuse every Connect with PermissionDenied (a deregistered instance).
    refuse: bool,
    registrations: Arc<AtomicU32>,
    events: mpsc::UnboundedSender<Event>,
    /// Ends every stream of this server incarnation with Unavailable.
    kill: CancellationToken,
}

#[tonic::async_trait]
impl AgentService for Fake {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        let req = request.into_inner();
        self.registrations.fetch_add(1, Ordering::SeqCst);
        let cert = self
            .ca
            .sign_client(&req.csr_pem, "test", INSTANCE_ID)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let _ = self.events.send(Event::Registered(req));
        Ok(Response::new(v1::RegisterResponse {
            container_instance_id: INSTANCE_ID.into(),
            container_instance_arn: instance_arn("test"),
            cluster_arn: "arn:berth:ecs:local:000000000000:cluster/test".into(),
            cert_pem: cert.pem,
            ca_pem: self.ca.ca_pem().to_owned(),
        }))
    }

    async fn renew_certificate(
        &self,
        request: Request<v1::RenewCertificateRequest>,
    ) -> Result<Response<v1::RenewCertificateResponse>, Status> {
        if request.peer_certs().is_none() {
            return Err(Status::unauthenticated("no client certificate"));
        }
        let cert = self
            .ca
            .sign_client(&request.get_ref().csr_pem, "test", INSTANCE_ID)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let _ = self.events.send(Event::Renewed);
        Ok(Response::new(v1::RenewCertificateResponse {
            cert_pem: cert.pem,
        }))
    }

    async fn describe_self(
        &self,
        _request: Request<v1::DescribeSelfRequest>,
    ) -> Result<Response<v1::DescribeSelfResponse>, Status> {
        Err(Status::unimplemented("not used by the session tests"))
    }

    type ConnectStream = ReceiverStream<Result<v1::SchedulerMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let had_certificate = request.peer_certs().is_some();
        if !had_certificate || self.refuse {
            let _ = self.events.send(Event::Rejected { had_certificate });
            return Err(if had_certificate {
                Status::permission_denied("container instance 9f1c2d3e was deregistered")
            } else {
                Status::unauthenticated("no client certificate")
            });
        }
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(v1::AgentMessage {
                msg: Some(v1::agent_message::Msg::Hello(hello)),
            }) => hello,
            other => {
                return Err(Status::invalid_argument(format!(
                    "expected Hello, got {other:?}"
                )))
            }
        };
        let _ = self.events.send(Event::Hello(hello));

        let (tx, rx) = mpsc::channel(8);
        let welcome = v1::scheduler_message::Msg::Welcome(v1::Welcome {
            container_instance_arn: instance_arn("test"),
            cluster_arn: "arn:berth:ecs:local:000000000000:cluster/test".into(),
            heartbeat_interval_ms: 100,
            heartbeat_ttl_ms: 1000,
        });
        let desired = v1::scheduler_message::Msg::DesiredState(v1::DesiredState {
            generation: 1,
            ..Default::default()
        });
        for msg in [welcome, desired] {
            tx.send(Ok(v1::SchedulerMessage { msg: Some(msg) }))
                .await
                .map_err(|_| Status::internal("receiver gone"))?;
        }
        let events = self.events.clone();
        let kill = self.kill.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = kill.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("scheduler restarting"))).await;
                        return;
                    }
                    m = inbound.message() => match m {
                        Ok(Some(v1::AgentMessage { msg: Some(v1::agent_message::Msg::Heartbeat(h)) })) => {
                            let _ = events.send(Event::Heartbeat(h));
                        }
                        Ok(Some(v1::AgentMessage { msg: Some(v1::agent_message::Msg::DesiredAck(a)) })) => {
                            assert!(!a.resync, "a whole set needs no resync");
                            let _ = events.send(Event::DesiredAck(a.generation));
                        }
                        Ok(Some(other)) => panic!("unexpected message {other:?}"),
                        Ok(None) | Err(_) => {
                            let _ = events.send(Event::StreamEnded);
                            return; // dropping tx ends the response stream
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn instance_arn(cluster: &str) -> String {
    format!("arn:berth:ecs:local:000000000000:container-instance/{cluster}/{INSTANCE_ID}")
}

/// One incarnation of the fake scheduler.
struct Server {
    addr: SocketAddr,
    kill: CancellationToken,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(
        addr: SocketAddr,
        ca: Arc<ClusterCa>,
        refuse: bool,
        registrations: Arc<AtomicU32>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Server {
        let listener = TcpListener::bind(addr).await.expect("bind fake scheduler");
        let addr = listener.local_addr().expect("local addr");
        let kill = CancellationToken::new();
        let stop = CancellationToken::new();
        let tls = ca.server_tls_config();
        let ca_api = ClusterCaApi { ca: ca.clone() };
        let fake = Fake {
            ca,
            refuse,
            registrations,
            events,
            kill: kill.clone(),
        };
        let shutdown = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .tls_config(tls)
                .expect("tls")
                .add_service(AgentServiceServer::new(fake))
                .add_service(ClusterCaServiceServer::new(ca_api))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                .await
                .expect("fake scheduler serves");
        });
        Server {
            addr,
            kill,
            stop,
            task,
        }
    }

    /// Ends every stream and stops listening.
    async fn stop(self) {
        self.kill.cancel();
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("fake scheduler stops in time")
            .expect("fake scheduler task");
    }
}

struct Harness {
    events: mpsc::UnboundedReceiver<Event>,
    events_tx: mpsc::UnboundedSender<Event>,
    registrations: Arc<AtomicU32>,
    ca: Arc<ClusterCa>,
    _ca_dir: tempfile::TempDir,
    /// Generations the agent acknowledged, in order.
    acked: Vec<u64>,
}

impl Harness {
    fn new() -> Self {
        Self::with_validity(berth_scheduler::tls::DEFAULT_CLIENT_VALIDITY)
    }

    /// A harness whose CA issues client certificates lasting `validity`.
    fn with_validity(validity: Duration) -> Self {
        berth_proto::trust::install_crypto_provider();
        let (events_tx, events) = mpsc::unbounded_channel();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ClusterCa::load_or_create(
            dir.path(),
            &TlsSettings {
                client_validity: validity,
                ..TlsSettings::default()
            },
        )
        .expect("CA");
        Self {
            events,
            events_tx,
            acked: Vec::new(),
            registrations: Arc::default(),
            ca: Arc::new(ca),
            _ca_dir: dir,
        }
    }

    async fn server(&self, addr: SocketAddr) -> Server {
        self.server_refusing(addr, false).await
    }

    async fn server_refusing(&self, addr: SocketAddr, refuse: bool) -> Server {
        Server::start(
            addr,
            self.ca.clone(),
            refuse,
            self.registrations.clone(),
            self.events_tx.clone(),
        )
        .await
    }

    fn register_args(&self, addr: SocketAddr) -> RegisterArgs {
        RegisterArgs {
            scheduler: format!("https://{addr}"),
            activation_id: "act".into(),
            activation_code: "code".into(),
            ca_fingerprint: self.ca.fingerprint().to_owned(),
            hostname: "test-host".into(),
            cluster: None,
        }
    }

    /// Writes what `register` would have, without a scheduler: an identity
    /// in `cluster` and a certificate of this harness's CA.
    fn provision(&self, cfg: &Config, cluster: &str) {
        let (key_pem, csr) =
            berth_agent::register::new_key_and_csr("test-host").expect("key and CSR");
        let cert = self
            .ca
            .sign_client(&csr, cluster, INSTANCE_ID)
            .expect("sign");
        let store = IdentityStore::new(cfg.identity_path());
        store
            .save_credentials(&Credentials {
                cert_pem: cert.pem,
                key_pem,
                ca_pem: self.ca.ca_pem().to_owned(),
            })
            .expect("save credentials");
        store
            .save(&Identity {
                cluster: cluster.into(),
                container_instance_id: INSTANCE_ID.into(),
                container_instance_arn: instance_arn(cluster),
                cluster_arn: format!("arn:berth:ecs:local:000000000000:cluster/{cluster}"),
            })
            .expect("save identity");
    }

    /// The next event; acknowledgements of desired states are counted,
    /// not returned.
    async fn next(&mut self) -> Event {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv())
                .await
                .expect("an event in time")
                .expect("event channel open")
            {
                Event::DesiredAck(g) => self.acked.push(g),
                other => return other,
            }
        }
    }

    /// The next event that is not a heartbeat.
    async fn next_non_heartbeat(&mut self) -> Event {
        loop {
            match self.next().await {
                Event::Heartbeat(_) => continue,
                other => return other,
            }
        }
    }

    async fn expect_hello(&mut self) -> v1::Hello {
        match self.next_non_heartbeat().await {
            Event::Hello(h) => h,
            other => panic!("expected Hello, got {other:?}"),
        }
    }

    async fn expect_heartbeats(&mut self, seqs: &[u64]) {
        for &want in seqs {
            match self.next().await {
                Event::Heartbeat(h) => {
                    assert_eq!(h.seq, want);
                    assert!(h.sent_at.is_some(), "heartbeat carries sent_at");
                }
                other => panic!("expected heartbeat {want}, got {other:?}"),
            }
        }
    }
}

fn config(addr: SocketAddr, state_dir: &Path) -> Config {
    let mut config = Config::new(format!("https://{addr}"), "test");
    config.state_dir = state_dir.to_owned();
    config
}

fn start_agent(config: &Config) -> Agent {
    Agent::start(config, HostProbe::new(config)).expect("agent starts")
}

async fn wait_for_state(agent: &Agent, what: &str, pred: impl FnMut(&ConnectionState) -> bool) {
    let mut rx = agent.connection();
    tokio::time::timeout(WAIT, rx.wait_for(pred))
        .await
        .unwrap_or_else(|_| panic!("state {what} in time"))
        .expect("session alive");
}

/// A port nothing listens on (bound, then released).
async fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

fn expected_cpu_units() -> i64 {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("cpu list");
    let cpus = host::parse_cpu_list(&online).expect("parse cpu list");
    i64::try_from(cpus * host::CPU_UNITS_PER_CPU).expect("fits")
}

fn expected_memory_mib() -> i64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let total = host::parse_meminfo_total_mib(&meminfo).expect("parse meminfo");
    i64::try_from(total - 256).expect("fits")
}

#[tokio::test]
async fn registers_says_hello_heartbeats_and_reconnects_with_the_same_identity() {
    let mut h = Harness::new();
    let server = h.server("127.0.0.1:0".parse().expect("addr")).await;
    let addr = server.addr;
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = config(addr, state.path());
    let store = IdentityStore::new(cfg.identity_path());

    // Without a registration the agent does not start: exit 64 and the command to run.
    let err = Agent::start(&cfg, HostProbe::new(&cfg)).expect_err("not registered");
    assert_eq!(err.exit_code(), 64);
    assert!(err.to_string().contains("berth-agent register"), "{err}");

    // `register`: the CA is pinned by its fingerprint, the CSR carries the
    // activation and host name, the key stays here.
    register(&h.register_args(addr), &store)
        .await
        .expect("register");
    match h.next().await {
        Event::Registered(req) => {
            assert_eq!(
                (req.activation_id.as_str(), req.activation_code.as_str()),
                ("act", "code")
            );
            assert_eq!(req.hostname, "test-host");
            assert!(
                req.csr_pem.contains("CERTIFICATE REQUEST"),
                "{}",
                req.csr_pem
            );
            assert!(!req.csr_pem.contains("PRIVATE KEY"));
        }
        other => panic!("expected Register, got {other:?}"),
    }
    // A second register on the same host is refused before anything is sent.
    let again = register(&h.register_args(addr), &store)
        .await
        .expect_err("registered");
    assert_eq!(again.exit_code(), 64);

    let agent = start_agent(&cfg);

    // Hello with the host's real resources.
    let hello = h.expect_hello().await;
    assert_eq!(hello.agent_version, berth_proto::VERSION);
    let resources = hello.resources.expect("resources");
    assert_eq!(resources.cpu_units, expected_cpu_units());
    assert_eq!(resources.memory_mib, expected_memory_mib());
    assert_eq!(
        (resources.port_range_start, resources.port_range_end),
        (20000, 32767)
    );
    let tcp = &resources.reserved_tcp_ports;
    assert!(tcp.contains(&22) && tcp.contains(&51679), "{tcp:?}");
    assert!(
        tcp.contains(&u32::from(addr.port())),
        "the fake scheduler's listening port {} is reported: {tcp:?}",
        addr.port()
    );
    assert!(
        tcp.windows(2).all(|w| w[0] < w[1]),
        "sorted and deduplicated: {tcp:?}"
    );
    let attr = |name: &str| {
        hello
            .attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.clone())
    };
    assert_eq!(attr("ecs.os-type").as_deref(), Some("linux"));
    assert_eq!(attr("ecs.os-family").as_deref(), Some("LINUX"));
    assert_eq!(
        attr("ecs.cpu-architecture").as_deref(),
        Some(host::cpu_architecture(std::env::consts::ARCH))
    );

    // Heartbeats every 100 ms, numbered from 1.
    h.expect_heartbeats(&[1, 2, 3]).await;
    wait_for_state(&agent, "Connected", |s| {
        matches!(s, ConnectionState::Connected { .. })
    })
    .await;
    let mut desired = agent.desired_state();
    let generation = tokio::time::timeout(WAIT, desired.wait_for(Option::is_some))
        .await
        .expect("desired state in time")
        .expect("session alive")
        .as_ref()
        .map(|d| (d.generation, d.tasks.len()));
    assert_eq!(generation, Some((1, 0)));
    // It told the scheduler so (a heartbeat later, the ack has been read).
    h.expect_heartbeats(&[4]).await;
    assert_eq!(
        h.acked,
        [1],
        "the agent acknowledges the desired state it applied"
    );

    // The identity is persisted, and the key with mode 0600.
    let identity = store.load().expect("load").expect("identity persisted");
    assert_eq!(identity.container_instance_id, INSTANCE_ID);
    assert_eq!(identity.cluster, "test");
    {
        use std::os::unix::fs::PermissionsExt;
        for (file, want) in [("key.pem", 0o600), ("identity.json", 0o600)] {
            let mode = std::fs::metadata(state.path().join(file))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, want, "{file}");
        }
    }

    // The scheduler restarts: the agent reconnects without registering again.
    server.stop().await;
    wait_for_state(&agent, "Disconnected", |s| {
        !matches!(s, ConnectionState::Connected { .. })
    })
    .await;
    let server = h.server(addr).await;
    let hello = h.expect_hello().await;
    assert_eq!(
        hello.resources.map(|r| r.cpu_units),
        Some(expected_cpu_units())
    );
    h.expect_heartbeats(&[1, 2]).await;
    assert_eq!(h.registrations.load(Ordering::SeqCst), 1, "registered once");

    // Shutdown closes the stream cleanly.
    agent.stop().await;
    match h.next_non_heartbeat().await {
        Event::StreamEnded => {}
        other => panic!("expected the stream to end, got {other:?}"),
    }

    // A restarted agent reuses the persisted identity.
    let agent = start_agent(&cfg);
    let _hello = h.expect_hello().await;
    h.expect_heartbeats(&[1]).await;
    assert_eq!(
        h.registrations.load(Ordering::SeqCst),
        1,
        "still registered once"
    );
    let mut state = agent.connection();
    agent.stop().await;
    assert_eq!(*state.borrow_and_update(), ConnectionState::Stopped);
    server.stop().await;
}

#[tokio::test]
async fn waits_for_a_scheduler_that_is_down_at_start() {
    let mut h = Harness::new();
    let addr = free_addr().await;
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = config(addr, state.path());

    h.provision(&cfg, "test");
    let agent = start_agent(&cfg);
    wait_for_state(&agent, "Disconnected", |s| {
        matches!(s, ConnectionState::Disconnected { .. })
    })
    .await;

    let server = h.server(addr).await;
    let _hello = h.expect_hello().await;
    wait_for_state(&agent, "Connected", |s| {
        matches!(s, ConnectionState::Connected { .. })
    })
    .await;
    agent.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_refused_certificate_is_retried_not_fatal() {
    let mut h = Harness::new();
    let server = h
        .server_refusing("127.0.0.1:0".parse().expect("addr"), true)
        .await;
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = config(server.addr, state.path());
    h.provision(&cfg, "test");

    let agent = start_agent(&cfg);
    for _ in 0..2 {
        match h.next().await {
            Event::Rejected { had_certificate } => assert!(had_certificate),
            other => panic!("expected a rejected Connect, got {other:?}"),
        }
    }
    wait_for_state(
        &agent,
        "Disconnected with the refusal explained",
        |s| match s {
            ConnectionState::Disconnected { reason, .. } => {
                reason.contains("refused this host's certificate")
                    && reason.contains("berth-agent register")
            }
            _ => false,
        },
    )
    .await;
    assert_eq!(
        h.registrations.load(Ordering::SeqCst),
        0,
        "no silent re-registration"
    );
    agent.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_fingerprint_is_refused_before_registering() {
    let h = Harness::new();
    let server = h.server("127.0.0.1:0".parse().expect("addr")).await;
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = config(server.addr, state.path());
    let mut args = h.register_args(server.addr);
    args.ca_fingerprint = format!("sha256:{}", "00".repeat(32));
    let err = register(&args, &IdentityStore::new(cfg.identity_path()))
        .await
        .expect_err("wrong fingerprint");
    assert!(err.to_string().contains("refusing to trust it"), "{err}");
    assert_eq!(err.exit_code(), 64);
    assert_eq!(h.registrations.load(Ordering::SeqCst), 0);
    assert!(!state.path().join("key.pem").exists());
    server.stop().await;
}

#[tokio::test]
async fn the_certificate_is_renewed_and_the_session_reconnects_with_it() {
    // Certificates of 3 s: renewal is due after 2 s.
    let mut h = Harness::with_validity(Duration::from_secs(3));
    let server = h.server("127.0.0.1:0".parse().expect("addr")).await;
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = config(server.addr, state.path());
    h.provision(&cfg, "test");
    let before = std::fs::read_to_string(state.path().join("cert.pem")).expect("cert");
    let key_before = std::fs::read_to_string(state.path().join("key.pem")).expect("key");

    let agent = start_agent(&cfg);
    let _ = h.expect_hello().await;
    let mut desired = agent.desired_state();
    tokio::time::timeout(WAIT, desired.wait_for(Option::is_some))
        .await
        .expect("desired state in time")
        .expect("session alive");
    loop {
        match h.next().await {
            Event::Renewed => break,
            Event::Heartbeat(_) => continue,
            other => panic!("expected the renewal, got {other:?}"),
        }
    }
    // The session closes the old stream and reconnects with the new
    // certificate: a new Hello.
    loop {
        match h.next_non_heartbeat().await {
            Event::StreamEnded => continue,
            Event::Hello(_) => break,
            other => panic!("expected a new Hello, got {other:?}"),
        }
    }
    wait_for_state(&agent, "Connected", |s| {
        matches!(s, ConnectionState::Connected { .. })
    })
    .await;
    let after = std::fs::read_to_string(state.path().join("cert.pem")).expect("cert");
    assert_ne!(before, after, "a new certificate");
    assert_eq!(
        key_before,
        std::fs::read_to_string(state.path().join("key.pem")).expect("key"),
        "the same key"
    );
    let der = |pem: &str| {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("pem")
            .to_vec()
    };
    let (old, new) = (
        berth_scheduler::tls::peer_identity(&der(&before)).expect("old"),
        berth_scheduler::tls::peer_identity(&der(&after)).expect("new"),
    );
    assert_eq!(
        (old.instance_id.as_str(), old.cluster.as_str()),
        (new.instance_id.as_str(), new.cluster.as_str()),
        "the same identity"
    );
    assert_ne!(old.serial, new.serial);
    // The desired state (the tasks) outlived the reconnect.
    assert!(agent.desired_state().borrow().is_some());
    assert_eq!(h.registrations.load(Ordering::SeqCst), 0);
    agent.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_persisted_identity_of_another_cluster_stops_the_agent_with_64() {
    let h = Harness::new();
    let state = tempfile::tempdir().expect("tempdir");
    let cfg = config(free_addr().await, state.path());
    h.provision(&cfg, "other");
    let err = Agent::start(&cfg, HostProbe::new(&cfg)).expect_err("cluster mismatch");
    assert_eq!(err.exit_code(), 64);
    assert!(err.to_string().contains("\"other\""), "{err}");
}
