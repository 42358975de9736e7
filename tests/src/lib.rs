//! End-to-end test harness: starts real `berth-scheduler` and `berth-agent`
//! processes (built by `cargo build --workspace --bins`), talks to them over
//! loopback gRPC (TLS, trusting the scheduler's CA from
//! `<data_dir>/tls/ca.pem`) and through the real `berthctl` binary. Agents
//! join with `berth-agent register` and an activation made with berthctl.
//!
//! Every scheduler starts with `BERTH_BOOTSTRAP_TOKEN` set to a fresh admin
//! token ([`Scheduler::admin_token`]): `Scheduler::ctl` sends it through
//! `BERTH_TOKEN` (and the CA through `BERTH_CA_CERT`), and operator clients
//! are built on [`Scheduler::authed_channel`]. The agent API needs no token:
//! agents present their client certificate.
//!
//! [`cluster`] puts a scheduler, an agent with its own containerd and a
//! registry together for the real-containerd tests of one host.
//!
//! Everything binds 127.0.0.1 (a scheduler for several hosts binds a test
//! bridge's gateway instead: [`Scheduler::start_on`], see [`multihost`]);
//! data and state live in temp dirs removed with the test. Processes are
//! killed when their handle drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod aws;
pub mod cluster;
pub mod fake_agent;
pub mod multihost;
pub mod service_probe;
pub mod webhook_receiver;

pub use cluster::{Cluster, ClusterOptions};

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use berth_proto::auth::BearerToken;
use berth_proto::v1::system_service_client::SystemServiceClient;
use berth_proto::v1::VersionRequest;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel whose every call carries an operator token.
pub type AuthedChannel = InterceptedService<Channel, BearerToken>;

/// A fresh random operator token, `berth_<id>_<secret>` (the test crate has
/// no RNG dependency: std's randomly keyed hasher is enough here).
pub fn generate_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        h.finish()
    };
    format!(
        "berth_{:012x}_{:016x}{:016x}{:016x}{:016x}",
        word() >> 16,
        word(),
        word(),
        word(),
        word()
    )
}

/// `channel` with `token` sent on every call.
pub fn authed(channel: Channel, token: &str) -> AuthedChannel {
    InterceptedService::new(channel, BearerToken::new(Some(token)))
}

/// Directory holding the workspace's binaries (`target/<profile>`), found
/// from this test executable's own path (`target/<profile>/deps/test-…`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

/// Path of a workspace binary; panics with instructions when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: the end-to-end tests run the real binaries; build them first with \
         `cargo build --workspace --bins` (scripts/test does this)",
        p.display()
    );
    p
}

/// A free loopback port (bound and released; a tiny race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child with SIGKILL (no chance to flush or clean up).
pub fn kill9(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

/// A scheduler process on a loopback port with its own data dir.
pub struct Scheduler {
    pub child: Option<Child>,
    /// The address it listens on (127.0.0.1 unless [`start_on`](Self::start_on)).
    pub ip: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// The bootstrap admin token this scheduler was started with.
    pub admin_token: String,
    /// Where its ECS API listens (`BERTH_ECS_API_LISTEN`): a free port on
    /// `ip` unless the test set its own value; None when that is `off`.
    pub ecs_addr: Option<SocketAddr>,
    env: Vec<(String, String)>,
}

impl Scheduler {
    /// Starts a scheduler with short heartbeats (200 ms, TTL 1 s).
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[]).await
    }

    pub async fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_on(data_dir, IpAddr::V4(Ipv4Addr::LOCALHOST), env).await
    }

    /// Like [`start_with`](Self::start_with), listening on `ip` (an address
    /// of this host the test set up, such as a test bridge's gateway, so
    /// agents in other network namespaces reach it). The serving
    /// certificate names `ip` (`BERTH_TLS_SERVER_NAMES`).
    pub async fn start_on(data_dir: &Path, ip: IpAddr, env: &[(&str, &str)]) -> Self {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let admin_token = match env.iter().find(|(k, _)| k == "BERTH_BOOTSTRAP_TOKEN") {
            Some((_, v)) => v.clone(),
            None => {
                let t = generate_token();
                env.push(("BERTH_BOOTSTRAP_TOKEN".to_owned(), t.clone()));
                t
            }
        };
        if !ip.is_loopback() && !env.iter().any(|(k, _)| k == "BERTH_TLS_SERVER_NAMES") {
            env.push(("BERTH_TLS_SERVER_NAMES".to_owned(), ip.to_string()));
        }
        // Both ports are held at once, so they differ.
        let bind =
            || TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("no free port on {ip}: {e}"));
        let (grpc, ecs) = (bind(), bind());
        let port = grpc.local_addr().unwrap().port();
        let ecs_port = ecs.local_addr().unwrap().port();
        drop((grpc, ecs));
        // Tests run many schedulers at once: the ECS API's default port
        // (7443) would collide, so each gets a free one on its own address.
        let ecs_addr = match env.iter().find(|(k, _)| k == "BERTH_ECS_API_LISTEN") {
            Some((_, v)) => v.parse::<SocketAddr>().ok(),
            None => {
                let addr = SocketAddr::new(ip, ecs_port);
                env.push(("BERTH_ECS_API_LISTEN".to_owned(), addr.to_string()));
                Some(addr)
            }
        };
        let mut s = Self {
            child: None,
            ip,
            port,
            data_dir: data_dir.to_owned(),
            log: data_dir.with_extension("scheduler.log"),
            admin_token,
            ecs_addr,
            env,
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(bin("berth-scheduler"));
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(std::net::SocketAddr::new(self.ip, self.port).to_string())
            // Never read the machine's /etc/berth in tests.
            .arg("--config")
            .arg("/dev/null")
            .env("BERTH_HEARTBEAT_INTERVAL", "200ms")
            .env("BERTH_HEARTBEAT_TTL", "1s")
            // Many schedulers share this host: `/metrics` only where a
            // test asks for it (its env comes after and wins).
            .env("BERTH_METRICS_LISTEN", "off")
            .env("BERTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
        self.wait_ready().await;
    }

    /// The scheduler process's pid (for RSS readings).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn endpoint(&self) -> String {
        format!("https://{}", std::net::SocketAddr::new(self.ip, self.port))
    }

    /// The ECS API's endpoint (`https://<ip>:<port>`, for `--endpoint-url`
    /// and boto3's `endpoint_url`); panics when the test turned it off.
    pub fn ecs_endpoint(&self) -> String {
        let addr = self
            .ecs_addr
            .expect("this scheduler's ECS API is off (BERTH_ECS_API_LISTEN)");
        format!("https://{addr}")
    }

    /// Where the scheduler keeps its CA certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.data_dir.join("tls").join("ca.pem")
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca_path()).unwrap()
    }

    /// A TLS channel trusting this scheduler's CA, without a token (the
    /// agent API, open methods); see [`authed_channel`](Self::authed_channel).
    pub async fn channel(&self) -> Channel {
        self.try_channel().await.unwrap()
    }

    async fn try_channel(&self) -> Result<Channel, String> {
        berth_proto::trust::install_crypto_provider();
        let ca = std::fs::read_to_string(self.ca_path()).map_err(|e| e.to_string())?;
        berth_proto::trust::endpoint(&self.endpoint(), &ca, None)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())
    }

    /// Where fake agents connect, and the operator channel that makes
    /// their activations.
    pub async fn agent_target(&self) -> fake_agent::AgentTarget {
        fake_agent::AgentTarget {
            endpoint: self.endpoint(),
            ca_pem: self.ca_pem(),
            operator: self.authed_channel().await,
        }
    }

    /// Creates an activation with berthctl: (id, code, CA fingerprint).
    pub fn activation(&self, cluster: &str, extra: &[&str]) -> (String, String, String) {
        let mut args = vec!["activation", "create", "--cluster", cluster, "-o", "json"];
        args.extend_from_slice(extra);
        let v = json(&self.ctl(&args));
        let s = |k: &str| v[k].as_str().unwrap().to_owned();
        (s("activationId"), s("activationCode"), s("caFingerprint"))
    }

    /// A channel for the operator API: every call carries the admin token.
    pub async fn authed_channel(&self) -> AuthedChannel {
        authed(self.channel().await, &self.admin_token)
    }

    async fn wait_ready(&mut self) {
        for _ in 0..200 {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "berth-scheduler exited with {status} during start-up; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(ch) = self.try_channel().await {
                if SystemServiceClient::new(ch)
                    .version(VersionRequest {})
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "berth-scheduler did not answer within 10s; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill9(&mut c);
        }
    }

    /// Starts the process again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        c.wait().unwrap()
    }

    /// `berthctl` against this scheduler, with the admin token.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_as(&self.admin_token, args)
    }

    /// `berthctl` against this scheduler with `token` (in `BERTH_TOKEN`).
    pub fn ctl_as(&self, token: &str, args: &[&str]) -> Output {
        self.ctl_env_stdin(token, args, None)
    }

    fn ctl_env_stdin(&self, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let ca = self.ca_path();
        ctl_env(
            args,
            stdin,
            None,
            &[
                ("BERTH_ENDPOINT", &self.endpoint()),
                ("BERTH_CA_CERT", &ca.to_string_lossy()),
                ("BERTH_TOKEN", token),
            ],
        )
    }

    /// `berthctl` with `stdin` piped in, with the admin token.
    pub fn ctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.ctl_env_stdin(&self.admin_token, args, Some(stdin))
    }

    /// Stops every task still desired RUNNING and waits (up to `limit`)
    /// until each reports its own lastStatus STOPPED, so its agent has torn
    /// the task's network and cgroup down before the test's containerd goes.
    #[allow(clippy::disallowed_methods)] // called from Drop: no tokio clock there
    pub fn stop_all_tasks(&self, limit: Duration) {
        let ls = self.ctl(&["task", "ls", "-o", "json"]);
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&ls.stdout) else {
            return;
        };
        let ids: Vec<String> = v["tasks"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["taskArn"].as_str())
                    .map(|arn| berth_proto::arn::short_id(arn).to_owned())
                    .collect()
            })
            .unwrap_or_default();
        for id in &ids {
            let _ = self.ctl(&["task", "stop", id]);
        }
        let deadline = std::time::Instant::now() + limit;
        for id in &ids {
            while std::time::Instant::now() < deadline {
                let d = self.ctl(&["task", "describe", id, "-o", "json"]);
                // The task's own status, not a container's.
                let stopped = serde_json::from_slice::<serde_json::Value>(&d.stdout)
                    .map(|v| v["tasks"][0]["lastStatus"] == "STOPPED")
                    .unwrap_or(true);
                if stopped {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `berthctl` with a clean environment pointing at `endpoint` and
/// trusting the CA at `ca_cert`, no token.
pub fn ctl(endpoint: &str, ca_cert: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let ca_cert = ca_cert.to_string_lossy();
    ctl_env(
        args,
        stdin,
        None,
        &[("BERTH_ENDPOINT", endpoint), ("BERTH_CA_CERT", &ca_cert)],
    )
}

/// Runs `berthctl` with a clean environment: `PATH`, `HOME` (`home`, or a
/// fresh empty directory) and `env`.
pub fn ctl_env(
    args: &[&str],
    stdin: Option<&str>,
    home: Option<&Path>,
    env: &[(&str, &str)],
) -> Output {
    use std::io::Write;
    let fresh = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("berthctl"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.unwrap_or(fresh.path()))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// stdout of a successful command; panics with both streams otherwise.
pub fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An agent process with its own state dir.
pub struct Agent {
    pub child: Option<Child>,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    scheduler: String,
    cluster: String,
    env: Vec<(String, String)>,
    /// The network namespace (`/run/netns/NAME`) it runs in, if not the test's.
    netns: Option<PathBuf>,
}

impl Agent {
    /// Registers a host with a new activation for `cluster` (made with
    /// berthctl), then runs its agent.
    pub fn start(scheduler: &Scheduler, cluster: &str, state_dir: &Path) -> Self {
        Self::start_with_env(scheduler, cluster, state_dir, &[])
    }

    /// Like [`start`](Self::start), with extra `BERTH_*` settings in the
    /// agent's environment.
    pub fn start_with_env(
        scheduler: &Scheduler,
        cluster: &str,
        state_dir: &Path,
        env: &[(String, String)],
    ) -> Self {
        Self::start_in_netns(scheduler, cluster, state_dir, env, None)
    }

    /// Like [`start_with_env`](Self::start_with_env), with `register` and
    /// the agent run inside the network namespace at `netns` (through
    /// `nsenter --net`, which keeps the mount namespace and so `/sys/fs/cgroup`).
    pub fn start_in_netns(
        scheduler: &Scheduler,
        cluster: &str,
        state_dir: &Path,
        env: &[(String, String)],
        netns: Option<&Path>,
    ) -> Self {
        let mut a = Self {
            child: None,
            state_dir: state_dir.to_owned(),
            log: state_dir.with_extension("agent.log"),
            scheduler: scheduler.endpoint(),
            cluster: cluster.to_owned(),
            env: env.to_vec(),
            netns: netns.map(Path::to_owned),
        };
        let (id, code, fingerprint) = scheduler.activation(cluster, &[]);
        let out = a.register(&id, &code, &fingerprint);
        ok_stdout(&out);
        a.spawn();
        a
    }

    /// Registers with the given activation, then runs the agent.
    pub fn start_registered(
        scheduler: &Scheduler,
        cluster: &str,
        state_dir: &Path,
        id: &str,
        code: &str,
        fingerprint: &str,
    ) -> Self {
        let mut a = Self::unregistered(scheduler, state_dir);
        a.cluster = cluster.to_owned();
        ok_stdout(&a.register(id, code, fingerprint));
        a.spawn();
        a
    }

    /// An agent that is neither registered nor running (for `register` tests).
    pub fn unregistered(scheduler: &Scheduler, state_dir: &Path) -> Self {
        Self {
            child: None,
            state_dir: state_dir.to_owned(),
            log: state_dir.with_extension("agent.log"),
            scheduler: scheduler.endpoint(),
            cluster: "default".to_owned(),
            env: vec![],
            netns: None,
        }
    }

    /// Runs `berth-agent register` for this agent's state dir.
    pub fn register(&self, id: &str, code: &str, fingerprint: &str) -> Output {
        self.command()
            .arg("register")
            .arg("--scheduler")
            .arg(&self.scheduler)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--config")
            .arg("/dev/null")
            .arg("--activation-id")
            .arg(id)
            .arg("--activation-code")
            .arg(code)
            .arg("--ca-fingerprint")
            .arg(fingerprint)
            .env("BERTH_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .command()
            .arg("--scheduler")
            .arg(&self.scheduler)
            .arg("--cluster")
            .arg(&self.cluster)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--config")
            .arg("/dev/null")
            .env("BERTH_LOG", "info")
            // Many agents share this host: `/metrics` only where a test
            // asks for it (its env comes after and wins).
            .env("BERTH_METRICS_LISTEN", "off")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// `berth-agent`, inside the agent's network namespace if it has one
    /// (nsenter execs it, so the child's pid is the agent's).
    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(bin("berth-agent"));
                c
            }
            None => Command::new(bin("berth-agent")),
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill9(&mut c);
        }
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the agent (if running) and runs it again with the same
    /// identity, state dir and settings.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Kills the agent (if running) and runs it again with the same
    /// identity and state dir, and `env` as its extra settings.
    pub fn restart_with_env(&mut self, env: &[(String, String)]) {
        self.kill9();
        self.env = env.to_vec();
        self.spawn();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `check` every 100 ms until it returns Some, or panics after `limit`
/// with `what` and the last observation.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        match check().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}; last: {last}");
}

/// Total memory of this host in MiB, from /proc/meminfo.
pub fn host_memory_mib() -> i64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib / 1024
}

/// Online CPUs of this host, counted as the agent counts them: the list in
/// /sys/devices/system/cpu/online (not `available_parallelism`, which a
/// cpuset or CPU quota lowers), else `available_parallelism` as the agent
/// falls back to.
pub fn host_cpus() -> i64 {
    let listed = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|text| cpu_list_len(&text));
    match listed {
        Some(n) if n > 0 => n,
        _ => std::thread::available_parallelism().unwrap().get() as i64,
    }
}

/// How many CPUs a kernel CPU list (`0-3,6,8-9`) names.
fn cpu_list_len(text: &str) -> Option<i64> {
    let mut n = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<i64>().ok()? - a.parse::<i64>().ok()? + 1,
            None => {
                part.parse::<i64>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// Parses JSON output of a command.
pub fn json(out: &Output) -> serde_json::Value {
    let text = ok_stdout(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Connects to a scheduler served in-process (`server::run`) on `addr` with
/// data dir `data_dir`: waits until its CA exists and it answers over TLS.
/// The target's `operator` channel, carrying `admin_token`, is the operator
/// client of such tests.
pub async fn connect_in_process(
    addr: std::net::SocketAddr,
    data_dir: &Path,
    admin_token: &str,
) -> fake_agent::AgentTarget {
    berth_proto::trust::install_crypto_provider();
    let endpoint = format!("https://{addr}");
    for _ in 0..500 {
        if let Ok(ca_pem) = std::fs::read_to_string(data_dir.join("tls").join("ca.pem")) {
            if let Ok(ch) = berth_proto::trust::endpoint(&endpoint, &ca_pem, None)
                .unwrap()
                .connect()
                .await
            {
                return fake_agent::AgentTarget {
                    endpoint,
                    ca_pem,
                    operator: authed(ch, admin_token),
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the in-process scheduler on {addr} did not answer within 10s");
}

/// Two random bytes from the kernel, for names and slots of test clusters.
pub fn rand_u16() -> u16 {
    use std::io::Read;
    let mut b = [0u8; 2];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .unwrap();
    u16::from_le_bytes(b)
}

/// A random slot for one real-containerd test cluster: `(r, port_base,
/// subnet)`, where `r` names its bridge and cgroup parent, `port_base..+50`
/// is a host-port range no iptables rule on this host mentions (portmap
/// rules are host-wide; a rule left by another run would capture the port),
/// and `subnet` is a /24 of `10.<block>.x.0/16` that no route uses. Test
/// files use different blocks, so parallel tests and leftovers never meet.
pub fn free_slot(block: u8) -> (u16, u16, String) {
    let run = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let rules = run("iptables-save", &["-t", "nat"]);
    let routes = run("ip", &["-4", "route", "show"]);
    for _ in 0..200 {
        let r = rand_u16();
        let base = 20000 + (r % 250) * 50;
        let prefix = format!("10.{block}.{}.", 1 + (r >> 8) % 250);
        let port_used = (base..base + 50)
            .any(|p| rules.contains(&format!("dport {p} ")) || rules.contains(&format!(":{p} ")));
        if !port_used && !routes.contains(&prefix) {
            return (r, base, format!("{prefix}0/24"));
        }
    }
    panic!(
        "no free port range and subnet for a test cluster (leftovers? see iptables-save -t nat)"
    );
}

/// Waits until `agent` shows up connected in `instance ls`; returns the
/// container instance's id.
/// Waits (up to `limit`) until `instance describe` shows the instance's
/// agent as connected (`true`) or not (`false`).
pub async fn until_connected(sched: &Scheduler, instance: &str, connected: bool, limit: Duration) {
    eventually(
        limit,
        &format!("instance {instance}: agentConnected == {connected}"),
        || async {
            let out = sched.ctl(&["instance", "describe", instance, "-o", "json"]);
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {out:?}"))?;
            let ci = &v["containerInstances"][0];
            (ci["agentConnected"].as_bool() == Some(connected))
                .then_some(())
                .ok_or(format!("{ci}"))
        },
    )
    .await
}

pub async fn connected_instance(sched: &Scheduler, agent: &Agent) -> String {
    eventually(Duration::from_secs(30), "the agent to connect", || async {
        let out = sched.ctl(&["instance", "ls", "-o", "json"]);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let first = &v["containerInstances"][0];
        match (
            first["agentConnected"].as_bool(),
            first["containerInstanceArn"].as_str(),
        ) {
            (Some(true), Some(arn)) => Ok(berth_proto::arn::short_id(arn).to_owned()),
            _ => Err(format!("{v}\nagent log:\n{}", agent.log_text())),
        }
    })
    .await
}
