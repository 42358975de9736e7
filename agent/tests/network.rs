//! Task networking against the real CNI plugins (Debian's
//! `containernetworking-plugins` in /usr/lib/cni), iproute2 and iptables.
//! Needs root: without it, or without the plugins, every test fails with a
//! message saying what is missing (none is skipped).
//!
//! Each test has its own bridge (`bt<random>`), its own /24 inside
//! 10.240.0.0–10.250.255.255 that overlaps no route of the host, and its own
//! state directory; a guard tears down its tasks and deletes the bridge even
//! when the test fails. Traffic goes only to 127.0.0.1 and to the
//! namespaces the tests create.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_agent::runtime::network::{
    subnet, Ipv4Net, Mode, NetworkConfig, NetworkError, Networking, PortMapping, Protocol,
    TaskNetwork,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CNI_DIR: &str = "/usr/lib/cni";

/// Fails (never skips) when the host cannot run these tests.
fn preflight() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the network tests need root (network namespaces, bridges, iptables); run them as root"
    );
    for plugin in ["bridge", "portmap", "host-local", "loopback"] {
        let p = Path::new(CNI_DIR).join(plugin);
        assert!(
            p.exists(),
            "CNI plugin {} is missing: install Debian's containernetworking-plugins",
            p.display()
        );
    }
    for tool in ["ip", "iptables-save", "nsenter", "busybox"] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is not on PATH; it is needed by the network tests"
        );
    }
}

/// Subnets handed out in this process.
static TAKEN: Mutex<Vec<Ipv4Net>> = Mutex::new(Vec::new());

/// A random /24 in 10.240.0.0–10.250.255.0 that no route or address of the
/// host overlaps (and no other test of this process has).
fn free_subnet() -> Ipv4Net {
    let host = subnet::probe().expect("read the host's routes");
    let mut taken = TAKEN.lock().unwrap();
    for _ in 0..1000 {
        let b = 240 + rand::random::<u8>() % 11;
        let c = rand::random::<u8>();
        let net: Ipv4Net = format!("10.{b}.{c}.0/24").parse().unwrap();
        if !taken.contains(&net) && !host.occupied.iter().any(|o| o.net.overlaps(&net)) {
            taken.push(net);
            return net;
        }
    }
    panic!("no free /24 in 10.240.0.0/12 on this host");
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

/// A bridge, a state directory and the tasks set up on them; dropping it
/// tears the tasks down and deletes the bridge.
struct Fixture {
    net: Arc<Networking>,
    config: NetworkConfig,
    tasks: Mutex<HashSet<String>>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self::with_bin_dirs(vec![PathBuf::from(CNI_DIR)])
    }

    fn with_bin_dirs(cni_bin_dirs: Vec<PathBuf>) -> Self {
        preflight();
        let dir = tempfile::tempdir().unwrap();
        let config = NetworkConfig {
            bridge: unique("bt"),
            subnet: Some(free_subnet()),
            cni_bin_dirs,
            state_dir: dir.path().join("cni"),
            mtu: None,
        };
        let net = Arc::new(Networking::new(config.clone()).expect("Networking::new"));
        Self {
            net,
            config,
            tasks: Mutex::new(HashSet::new()),
            _dir: dir,
        }
    }

    fn task_id(&self) -> String {
        let id = unique("t");
        self.tasks.lock().unwrap().insert(id.clone());
        id
    }

    fn ipam_dir(&self) -> PathBuf {
        self.net.ipam_dir()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let tasks: Vec<String> = self.tasks.lock().unwrap().drain().collect();
        let net = self.net.clone();
        // A fresh runtime on its own thread: Drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for t in tasks {
                if let Err(e) = rt.block_on(net.teardown(&t)) {
                    eprintln!("cleanup: teardown of {t} failed: {e}");
                }
            }
        })
        .join();
        let _ = Command::new("ip")
            .args(["link", "delete", &self.config.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// A process in a task's namespace, killed on drop.
struct InNetns(Child);

impl InNetns {
    fn spawn(netns: &Path, args: &[&str]) -> Self {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nsenter");
        Self(child)
    }
}

impl Drop for InNetns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `busybox httpd` serving a page that names `task`, on `port` in the netns.
fn httpd(net: &TaskNetwork, task: &str, port: u16) -> (InNetns, tempfile::TempDir, String) {
    let root = tempfile::tempdir().unwrap();
    let page = format!("hello from {task}\n");
    std::fs::write(root.path().join("index.html"), &page).unwrap();
    let netns = net.netns.as_deref().expect("a netns");
    let p = port.to_string();
    let root_s = root.path().to_str().unwrap().to_owned();
    let proc = InNetns::spawn(netns, &["busybox", "httpd", "-f", "-p", &p, "-h", &root_s]);
    (proc, root, page)
}

/// A raw HTTP/1.0 GET of `/`, retried until `deadline` (httpd starts async).
async fn http_get(addr: SocketAddr) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match try_get(addr).await {
            Ok(body) if body.starts_with("HTTP/1.") => return body,
            Ok(other) => last = format!("unexpected answer {other:?}"),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("GET http://{addr}/ never answered: {last}");
}

async fn try_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await??;
    s.write_all(b"GET / HTTP/1.0\r\nHost: berth\r\n\r\n")
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await??;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A UDP echo server bound to `0.0.0.0:port` inside `netns` (a thread that
/// joined the namespace); stops when the returned flag is dropped.
struct UdpEcho {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl UdpEcho {
    fn start(netns: &Path, port: u16) -> Self {
        let ns = std::fs::File::open(netns).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let sock = UdpSocket::bind(("0.0.0.0", port)).expect("bind in netns");
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("udp echo ready");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn udp_roundtrip(to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..20 {
        sock.send_to(payload, to).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return buf[..n].to_vec();
        }
    }
    panic!("no UDP echo from {to}");
}

/// A host port in Berth's dynamic range that nothing on the host holds
/// (for tcp and udp), and that no other test of this process uses.
fn free_host_port() -> u16 {
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut used = USED.lock().unwrap();
    loop {
        let p = 20000 + rand::random::<u16>() % 12768;
        if used.contains(&p) {
            continue;
        }
        let tcp = std::net::TcpListener::bind(("0.0.0.0", p)).is_ok();
        let udp = UdpSocket::bind(("0.0.0.0", p)).is_ok();
        if tcp && udp {
            used.push(p);
            return p;
        }
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every iptables rule and chain line (all tables) that names `task` in a
/// comment, or that belongs to a per-task chain (`CNI-DN-…`, `CNI-<hash>`)
/// referenced by such a line.
fn iptables_of(task: &str, chains: &mut HashSet<String>) -> Vec<String> {
    let dump = run("iptables-save", &[]);
    for line in dump.lines().filter(|l| l.contains(task)) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            if (w[0] == "-j" || w[0] == "-A") && w[1].starts_with("CNI-") {
                let shared = w[1].starts_with("CNI-HOSTPORT-");
                if !shared {
                    chains.insert(w[1].to_owned());
                }
            }
        }
    }
    dump.lines()
        .filter(|l| l.contains(task) || chains.iter().any(|c| l.contains(c.as_str())))
        .map(str::to_owned)
        .collect()
}

/// Files under the IPAM directory that hold a lease of `task`.
fn leases_of(ipam: &Path, task: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(ipam.join("berth")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains(task)))
        .collect()
}

fn links() -> String {
    run("ip", &["-o", "link", "show"])
}

/// Asserts that nothing of `task` is left on the host.
fn assert_gone(fx: &Fixture, task: &str, net: &TaskNetwork, chains: &mut HashSet<String>) {
    if let Some(ns) = &net.netns {
        assert!(!ns.exists(), "netns {} is left", ns.display());
        let ns_name = ns.file_name().unwrap().to_str().unwrap();
        assert!(
            !run("ip", &["netns", "list"]).contains(ns_name),
            "ip netns list still shows {ns_name}"
        );
    }
    if let Some(veth) = &net.host_veth {
        // A veth whose peer died with its namespace goes asynchronously.
        let veth_word = format!(" {veth}@");
        let mut tries = 0;
        while links().contains(&veth_word) {
            tries += 1;
            assert!(tries < 40, "veth {veth} is left");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let rules = iptables_of(task, chains);
    assert!(
        rules.is_empty(),
        "iptables still has:\n{}",
        rules.join("\n")
    );
    let leases = leases_of(&fx.ipam_dir(), task);
    assert!(leases.is_empty(), "IPAM leases left: {leases:?}");
    if let Some(ip) = net.ip {
        assert!(
            !fx.ipam_dir().join("berth").join(ip.to_string()).exists(),
            "the lease file of {ip} is left"
        );
    }
    let record = fx.config.state_dir.join(format!("{task}.json"));
    assert!(!record.exists(), "record {} is left", record.display());
}

fn in_subnet(net: &Ipv4Net, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => net.contains(v4),
        IpAddr::V6(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_mode_maps_tcp_and_udp_host_ports_and_tears_down_clean() {
    let fx = Fixture::new();
    let task = fx.task_id();
    let (http_port, udp_port) = (free_host_port(), free_host_port());
    let ports = [
        PortMapping {
            container_port: 8080,
            host_port: http_port,
            protocol: Protocol::Tcp,
        },
        PortMapping {
            container_port: 5353,
            host_port: udp_port,
            protocol: Protocol::Udp,
        },
    ];
    let net = fx.net.setup(&task, Mode::Bridge, &ports).await.unwrap();

    let ip = net.ip.expect("an address");
    assert!(
        in_subnet(&fx.net.subnet(), ip),
        "{ip} in {}",
        fx.net.subnet()
    );
    let gateway = net.gateway.expect("a gateway");
    assert!(in_subnet(&fx.net.subnet(), gateway));
    assert_eq!(net.bindings.len(), 2);
    assert!(net
        .bindings
        .iter()
        .all(|b| b.bind_ip == IpAddr::from([0, 0, 0, 0])));
    let veth = net.host_veth.clone().expect("a host veth");
    assert!(
        links().contains(&format!(" {veth}@")),
        "veth {veth} is on the host"
    );
    let route_localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", fx.net.bridge());
    assert_eq!(
        std::fs::read_to_string(&route_localnet).unwrap().trim(),
        "1"
    );

    fx.net
        .check(&task)
        .await
        .expect("CNI CHECK of a fresh network");

    // Setting up the same network again returns it; a different one is refused.
    assert_eq!(
        fx.net.setup(&task, Mode::Bridge, &ports).await.unwrap(),
        net
    );
    assert!(matches!(
        fx.net.setup(&task, Mode::Awsvpc, &[]).await,
        Err(NetworkError::AlreadySetUp { .. })
    ));

    let (_httpd, _root, page) = httpd(&net, &task, 8080);
    let via_host_port = http_get(SocketAddr::from(([127, 0, 0, 1], http_port))).await;
    assert!(via_host_port.contains(&page), "{via_host_port:?}");
    let via_task_ip = http_get(SocketAddr::new(ip, 8080)).await;
    assert!(via_task_ip.contains(&page), "{via_task_ip:?}");

    let _echo = UdpEcho::start(net.netns.as_deref().unwrap(), 5353);
    let answer = tokio::task::spawn_blocking(move || {
        udp_roundtrip(SocketAddr::from(([127, 0, 0, 1], udp_port)), b"ping")
    })
    .await
    .unwrap();
    assert_eq!(answer, b"ping");

    // A second task gets another address on the same bridge.
    let other = fx.task_id();
    let other_net = fx.net.setup(&other, Mode::Bridge, &[]).await.unwrap();
    assert_ne!(other_net.ip, net.ip);
    assert!(in_subnet(&fx.net.subnet(), other_net.ip.unwrap()));

    let mut chains = HashSet::new();
    let rules = iptables_of(&task, &mut chains);
    assert!(
        rules.iter().any(|r| r.contains("DNAT")),
        "portmap's DNAT rules name the task:\n{}",
        rules.join("\n")
    );
    assert!(leases_of(&fx.ipam_dir(), &task).len() == 1);

    drop(_echo);
    drop(_httpd);
    fx.net.teardown(&task).await.unwrap();
    assert_gone(&fx, &task, &net, &mut chains);
    fx.net.teardown(&task).await.unwrap(); // idempotent
    assert!(try_get(SocketAddr::from(([127, 0, 0, 1], http_port)))
        .await
        .is_err_or_empty());

    let mut other_chains = HashSet::new();
    assert!(!iptables_of(&other, &mut other_chains).is_empty());
    fx.net.teardown(&other).await.unwrap();
    assert_gone(&fx, &other, &other_net, &mut other_chains);
    assert_eq!(fx.net.recorded_tasks().unwrap(), Vec::<String>::new());
}

/// After teardown the host port answers nothing (refused, or no HTTP).
trait ErrOrEmpty {
    fn is_err_or_empty(&self) -> bool;
}

impl ErrOrEmpty for std::io::Result<String> {
    fn is_err_or_empty(&self) -> bool {
        match self {
            Err(_) => true,
            Ok(s) => !s.starts_with("HTTP/"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awsvpc_has_its_own_address_and_no_host_ports() {
    let fx = Fixture::new();
    let task = fx.task_id();
    let ports = [PortMapping {
        container_port: 8080,
        host_port: 8080,
        protocol: Protocol::Tcp,
    }];
    let net = fx.net.setup(&task, Mode::Awsvpc, &ports).await.unwrap();
    let ip = net.ip.expect("an address");
    assert!(in_subnet(&fx.net.subnet(), ip));
    assert!(net.bindings.is_empty(), "{:?}", net.bindings);

    let mut chains = HashSet::new();
    let rules = iptables_of(&task, &mut chains);
    assert!(
        !rules
            .iter()
            .any(|r| r.contains("DNAT") || r.contains("CNI-DN-")),
        "awsvpc must not map host ports:\n{}",
        rules.join("\n")
    );

    let (httpd, _root, page) = httpd(&net, &task, 8080);
    let body = http_get(SocketAddr::new(ip, 8080)).await;
    assert!(body.contains(&page));
    drop(httpd);

    fx.net.teardown(&task).await.unwrap();
    assert_gone(&fx, &task, &net, &mut chains);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_has_only_loopback_and_host_has_no_namespace() {
    let fx = Fixture::new();
    let task = fx.task_id();
    let net = fx.net.setup(&task, Mode::None, &[]).await.unwrap();
    assert_eq!(net.ip, None);
    assert!(net.bindings.is_empty());
    let ns = net.netns.clone().expect("a netns");
    let out = run(
        "nsenter",
        &[
            &format!("--net={}", ns.display()),
            "ip",
            "-o",
            "link",
            "show",
        ],
    );
    let names: Vec<&str> = out.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"], "{out}");
    assert!(
        out.contains("UP"),
        "the loopback plugin brings lo up: {out}"
    );
    fx.net.teardown(&task).await.unwrap();
    assert_gone(&fx, &task, &net, &mut HashSet::new());

    let host_task = fx.task_id();
    let ports = [PortMapping {
        container_port: 8080,
        host_port: 8080,
        protocol: Protocol::Tcp,
    }];
    let host = fx.net.setup(&host_task, Mode::Host, &ports).await.unwrap();
    assert_eq!(host.netns, None);
    assert_eq!(host.bindings.len(), 1);
    assert_eq!(fx.net.adopt(&host_task).await.unwrap(), Some(host.clone()));
    assert_eq!(
        fx.net.setup(&host_task, Mode::Host, &ports).await.unwrap(),
        host
    );
    assert!(matches!(
        fx.net.setup(&host_task, Mode::Host, &[]).await,
        Err(NetworkError::AlreadySetUp { .. })
    ));
    fx.net.teardown(&host_task).await.unwrap();
    assert_eq!(fx.net.adopt(&host_task).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_adopts_and_tears_down_from_the_record() {
    let fx = Fixture::new();
    let task = fx.task_id();
    let ports = [PortMapping {
        container_port: 8080,
        host_port: free_host_port(),
        protocol: Protocol::Tcp,
    }];
    let net = fx.net.setup(&task, Mode::Bridge, &ports).await.unwrap();
    let mut chains = HashSet::new();
    assert!(!iptables_of(&task, &mut chains).is_empty());

    // A fresh Networking over the same state directory, as after a restart.
    let restarted = Networking::new(fx.config.clone()).unwrap();
    assert_eq!(restarted.subnet(), fx.net.subnet());
    assert_eq!(restarted.recorded_tasks().unwrap(), vec![task.clone()]);
    assert_eq!(restarted.adopt(&task).await.unwrap(), Some(net.clone()));
    restarted.check(&task).await.unwrap();
    restarted.teardown(&task).await.unwrap();
    assert_gone(&fx, &task, &net, &mut chains);
    assert_eq!(restarted.adopt(&task).await.unwrap(), None);
    restarted.teardown(&task).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_that_fails_half_way_leaves_nothing() {
    // A portmap that fails its ADD with a CNI error (and really deletes on DEL).
    let fake = tempfile::tempdir().unwrap();
    let script = fake.path().join("portmap");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then\n  cat >/dev/null\n  \
             echo '{{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"injected failure\",\"details\":\"by the test\"}}'\n  \
             exit 1\nfi\nexec {CNI_DIR}/portmap\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fx = Fixture::with_bin_dirs(vec![fake.path().to_owned(), PathBuf::from(CNI_DIR)]);
    let task = fx.task_id();
    let ports = [PortMapping {
        container_port: 8080,
        host_port: free_host_port(),
        protocol: Protocol::Tcp,
    }];
    let err = fx.net.setup(&task, Mode::Bridge, &ports).await.unwrap_err();
    match &err {
        NetworkError::Plugin {
            plugin,
            code,
            msg,
            details,
        } => {
            assert_eq!(plugin, "portmap");
            assert_eq!(*code, 11);
            assert_eq!(msg, "injected failure");
            assert_eq!(details, "by the test");
        }
        other => panic!("expected a plugin error, got {other}"),
    }
    let ns = PathBuf::from(format!("/run/netns/berth-{task}"));
    let gone = TaskNetwork {
        mode: Mode::Bridge,
        netns: Some(ns),
        ip: None,
        prefix_len: None,
        gateway: None,
        host_veth: None,
        bindings: vec![],
        dns: Default::default(),
    };
    assert_gone(&fx, &task, &gone, &mut HashSet::new());
    let attached = run("ip", &["-o", "link", "show", "master", fx.net.bridge()]);
    assert!(
        attached.trim().is_empty(),
        "veths left on the bridge: {attached}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_checks_plugins_and_picks_a_free_subnet() {
    preflight();
    let dir = tempfile::tempdir().unwrap();
    let mut config = NetworkConfig::new(dir.path().join("cni"));
    config.bridge = unique("bt");
    let net = Networking::new(config.clone()).unwrap();
    let host = subnet::probe().unwrap();
    assert!(
        !host.occupied.iter().any(|o| o.net.overlaps(&net.subnet())),
        "{} overlaps {:?}",
        net.subnet(),
        host.occupied
    );

    config.cni_bin_dirs = vec![dir.path().join("no-plugins-here")];
    match Networking::new(config.clone()) {
        Err(NetworkError::MissingPlugin { plugin, .. }) => assert_eq!(plugin, "bridge"),
        other => panic!("expected MissingPlugin, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_and_teardown_latency() {
    let fx = Fixture::new();
    let mut setups = Vec::new();
    let mut teardowns = Vec::new();
    for _ in 0..20 {
        let task = fx.task_id();
        let ports = [
            PortMapping {
                container_port: 80,
                host_port: free_host_port(),
                protocol: Protocol::Tcp,
            },
            PortMapping {
                container_port: 53,
                host_port: free_host_port(),
                protocol: Protocol::Udp,
            },
        ];
        let t0 = tokio::time::Instant::now();
        let net = fx.net.setup(&task, Mode::Bridge, &ports).await.unwrap();
        setups.push(t0.elapsed());
        let t1 = tokio::time::Instant::now();
        fx.net.teardown(&task).await.unwrap();
        teardowns.push(t1.elapsed());
        assert!(net.netns.as_ref().is_some_and(|p| !p.exists()));
    }
    setups.sort();
    teardowns.sort();
    println!(
        "bridge mode with 2 port mappings, 20 runs: setup median {:?} (max {:?}), teardown median {:?} (max {:?})",
        setups[10], setups[19], teardowns[10], teardowns[19]
    );
    assert!(setups[10] < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_cleans_up_when_the_namespace_vanished() {
    let fx = Fixture::new();
    let task = fx.task_id();
    let ports = [PortMapping {
        container_port: 8080,
        host_port: free_host_port(),
        protocol: Protocol::Tcp,
    }];
    let net = fx.net.setup(&task, Mode::Bridge, &ports).await.unwrap();
    let mut chains = HashSet::new();
    assert!(!iptables_of(&task, &mut chains).is_empty());

    // Someone deletes the namespace behind the agent's back: the bridge
    // plugin can no longer find its masquerade rule through eth0.
    let ns_name = net
        .netns
        .as_ref()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    run("ip", &["netns", "delete", &ns_name]);
    assert!(
        fx.net.check(&task).await.is_err(),
        "CHECK notices the namespace is gone"
    );
    assert!(matches!(
        fx.net.adopt(&task).await,
        Err(NetworkError::NotAdoptable { .. })
    ));
    fx.net.teardown(&task).await.unwrap();
    assert_gone(&fx, &task, &net, &mut chains);
}
