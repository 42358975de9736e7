//! Several hosts on one machine, for end-to-end tests of what only a fleet
//! shows: a host dying, a host cut off from the scheduler, draining,
//! services spread over hosts.
//!
//! [`Hosts::start`] builds, as root:
//!
//! - a **test bridge** `bm<rrrr>` in the test's own network namespace with
//!   the gateway address `10.218.S.1/24`, `S` and `rrrr` from
//!   [`free_slot`]`(218)`, so parallel runs and leftovers never share a
//!   bridge, a subnet or a cgroup name;
//! - the **scheduler** listening on the gateway address (its serving
//!   certificate names that IP: [`Scheduler::start_on`]) and a **registry**
//!   on the gateway too, holding the busybox image [`Hosts::image`];
//! - N **hosts**. Host `i` is a network namespace `bm<rrrr>h<i>` with a veth
//!   into the test bridge, address `10.218.S.(10+i)` (no default route: it
//!   reaches only the test bridge), its own containerd (testkit's, started
//!   inside the namespace) and its own `berth-agent` (registered with an
//!   activation, run inside the namespace), with its own task bridge
//!   `bm<rrrr>t<i>`, task subnet `10.219.S.(32·i)/27`, cgroup parent
//!   `berth-mh-<rrrr>-h<i>` and host name `mh-<rrrr>-h<i>`. Processes enter
//!   a namespace through `nsenter --net`, not `ip netns exec`, which
//!   remounts `/sys` and so hides `/sys/fs/cgroup` from runc.
//!
//! Host ports never collide across hosts (each host's ports are its own
//! namespace's), and every host answers on its own address:
//! [`Host::get`] fetches `http://10.218.S.(10+i):PORT/path` from the test.
//!
//! Faults, one host at a time:
//!
//! - [`Host::kill`]: the machine dies. SIGKILL to the agent, containerd,
//!   the shims and log drivers, every process left in the host's namespace
//!   and every process in its cgroup parent (the tasks), so its host ports
//!   stop answering. [`Host::restart`] brings containerd and the agent back
//!   with the same identity (state dir, certificate, instance id).
//! - [`Host::cut`]: iptables DROP, inside the host's namespace, of TCP to
//!   and from the scheduler's port on the gateway: the agent loses its
//!   scheduler while its tasks keep running and answering on the host's
//!   address. [`Host::heal`] removes the rules.
//!
//! Dropping [`Hosts`] heals cut hosts, stops every task through Berth (so
//! live agents tear their networks and cgroups down), kills the scheduler
//! and the registry (so no socket of a host waits on a live peer and keeps
//! its namespace alive), then each [`Host`]'s
//! drop kills what is left of it, deletes its tasks' namespaces (from its
//! agent's network records), its cgroups and its namespace (and with it the
//! veth, the task bridge and the iptables rules in it); the test bridge goes
//! last. This runs even when a test fails midway, and a half-built `Hosts`
//! cleans up what it had built.

#![allow(clippy::disallowed_methods)] // Drop and process polling use std time

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_testkit::containerd::Containerd;
use berth_testkit::registry::Registry;
use serde_json::Value;

use crate::{eventually, free_slot, json, ok_stdout, Agent, Scheduler};

/// The heartbeat TTL of a multi-host scheduler: long enough that a loaded
/// machine running four containerds does not flap, short enough for tests.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(2);

/// The block of `10.<block>.S.0/24` test-bridge subnets ([`free_slot`]).
const BRIDGE_BLOCK: u8 = 218;
/// The block of the hosts' task subnets (`10.219.S.(32·i)/27`).
const TASK_BLOCK: u8 = 219;
/// At most this many hosts: eight /27 task subnets fit in one /24.
pub const MAX_HOSTS: usize = 8;

/// What varies between multi-host clusters.
#[derive(Debug, Clone, Default)]
pub struct HostsOptions {
    /// Extra scheduler settings (`BERTH_*`), after the harness's own.
    pub scheduler_env: Vec<(String, String)>,
    /// Extra agent settings for every host, after the harness's own.
    pub agent_env: Vec<(String, String)>,
    /// Serve the scheduler's DNS (`BERTH_DNS_LISTEN`) on port 53 of the
    /// gateway, where tasks reach it through their host's NAT (busybox's
    /// `nslookup` asks port 53 only): [`Hosts::dns_addr`].
    pub dns_on_gateway: bool,
}

/// A scheduler, a registry and several hosts on a test bridge.
pub struct Hosts {
    // Fields drop in order: hosts before the bridge they hang on, the
    // scheduler and registry after the agents, the data dir last.
    hosts: Vec<Host>,
    net: TestNet,
    pub sched: Scheduler,
    pub registry: Registry,
    /// The busybox image in [`registry`](Self::registry), as tasks name it.
    pub image: String,
    agent_env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Hosts {
    /// `n` hosts joined to cluster `default`, each connected.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, HostsOptions::default()).await
    }

    pub async fn start_with(n: usize, opts: HostsOptions) -> Self {
        berth_testkit::require_root();
        for (binary, package) in [("nsenter", "util-linux"), ("iptables", "iptables")] {
            berth_testkit::require_binary(binary, package);
        }
        let dir = tempfile::tempdir().unwrap();
        let net = TestNet::create();
        let registry = Registry::start_on(IpAddr::V4(net.gateway), None);
        let opts_img = berth_testkit::image::ImageOptions {
            stop_signal: None,
            ..Default::default()
        };
        let image = registry
            .push_busybox_with(
                "berth/busybox",
                "latest",
                &opts_img,
                berth_testkit::image::ImageFormat::Oci,
            )
            .reference;
        let ttl = format!("{}ms", HEARTBEAT_TTL.as_millis());
        let dns = SocketAddr::new(IpAddr::V4(net.gateway), 53).to_string();
        let mut sched_env: Vec<(&str, &str)> = vec![("BERTH_HEARTBEAT_TTL", &ttl)];
        if opts.dns_on_gateway {
            sched_env.push(("BERTH_DNS_LISTEN", &dns));
        }
        sched_env.extend(
            opts.scheduler_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let sched = Scheduler::start_on(
            &dir.path().join("sched"),
            IpAddr::V4(net.gateway),
            &sched_env,
        )
        .await;
        let mut hosts = Self {
            hosts: Vec::new(),
            net,
            sched,
            registry,
            image,
            agent_env: opts.agent_env,
            dir,
        };
        for _ in 0..n {
            hosts.add_host().await;
        }
        hosts
    }

    /// Joins one more host (a new namespace, containerd and agent with a
    /// new activation), waits until it is connected, and returns its index.
    pub async fn add_host(&mut self) -> usize {
        self.add_host_with(&[]).await
    }

    /// Like [`add_host`](Self::add_host), with extra agent settings for
    /// this host only (e.g. `BERTH_AVAILABILITY_ZONE`).
    pub async fn add_host_with(&mut self, env: &[(&str, &str)]) -> usize {
        let i = self.hosts.len();
        assert!(i < MAX_HOSTS, "at most {MAX_HOSTS} hosts per test bridge");
        let mut extra = self.agent_env.clone();
        extra.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let host = Host::create(
            i,
            &self.net,
            &self.sched,
            &self.registry,
            &self.dir.path().join(format!("h{i}")),
            &extra,
        );
        self.hosts.push(host);
        let id = self.hosts[i].identity_id();
        self.until_connected(i, true).await;
        self.hosts[i].instance = id;
        i
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    pub fn host_mut(&mut self, i: usize) -> &mut Host {
        &mut self.hosts[i]
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The index of the host whose container instance is `instance` (an id
    /// or ARN, e.g. a task's `containerInstanceArn`).
    pub fn host_of(&self, instance: &str) -> Option<usize> {
        let id = berth_proto::arn::short_id(instance);
        self.hosts
            .iter()
            .position(|h| !h.instance.is_empty() && h.instance == id)
    }

    /// `GET path` on `task`'s host port for `container_port`, on the host
    /// that runs it (`task` as `task describe` shows it).
    pub fn get_task(
        &self,
        task: &Value,
        container_port: u16,
        path: &str,
    ) -> Result<String, String> {
        let host = task["containerInstanceArn"]
            .as_str()
            .and_then(|arn| self.host_of(arn))
            .ok_or_else(|| format!("task on no known host: {task}"))?;
        let port = task["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["networkBindings"].as_array().into_iter().flatten())
            .find(|b| b["containerPort"] == container_port)
            .and_then(|b| b["hostPort"].as_u64())
            .ok_or_else(|| format!("no host port for {container_port}: {task}"))?;
        self.hosts[host].get(port as u16, path)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The test bridge's gateway: where the scheduler and registry listen.
    pub fn gateway(&self) -> Ipv4Addr {
        self.net.gateway
    }

    /// Where the scheduler serves DNS with
    /// [`HostsOptions::dns_on_gateway`]: port 53 of the gateway.
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.net.gateway), 53)
    }

    /// `berthctl ARGS -o json` against the scheduler, parsed (panics on failure).
    pub fn ctl_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        json(&self.sched.ctl(&a))
    }

    /// `instance describe` of host `i`'s container instance.
    pub fn instance(&self, i: usize) -> Value {
        self.ctl_json(&["instance", "describe", &self.hosts[i].instance])["containerInstances"][0]
            .clone()
    }

    /// Waits (up to the TTL plus 30 s) until host `i`'s instance shows
    /// `agentConnected: connected`; returns its description.
    pub async fn until_connected(&self, i: usize, connected: bool) -> Value {
        let host = &self.hosts[i];
        let id = host.identity_id();
        eventually(
            HEARTBEAT_TTL + Duration::from_secs(30),
            &format!("host {i} agentConnected {connected}"),
            || async {
                let out = self.sched.ctl(&["instance", "describe", &id, "-o", "json"]);
                let v: Value = serde_json::from_slice(&out.stdout)
                    .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
                let ci = &v["containerInstances"][0];
                if ci["agentConnected"].as_bool() == Some(connected) {
                    Ok(ci.clone())
                } else {
                    Err(format!(
                        "{ci}\nagent log (tail):\n{}",
                        tail(&host.agent_log(), 30)
                    ))
                }
            },
        )
        .await
    }

    /// Registers a task definition; `IMAGE` in `json` becomes [`image`](Self::image).
    /// Returns `family:revision`.
    pub fn register(&self, json: &str) -> String {
        let json = json.replace("IMAGE", &self.image);
        let out = self
            .sched
            .ctl_stdin(&["taskdef", "register", "-f", "-"], &json);
        ok_stdout(&out).lines().next().unwrap().trim().to_owned()
    }

    /// StartTask of `taskdef` on host `i`; returns the task id (panics
    /// with berthctl's output when nothing started).
    pub fn start_task(&self, taskdef: &str, i: usize) -> String {
        let out = self.try_start_task(taskdef, i);
        let v = json(&out);
        let arn = v["tasks"][0]["taskArn"]
            .as_str()
            .unwrap_or_else(|| panic!("no task started: {v}"));
        berth_proto::arn::short_id(arn).to_owned()
    }

    /// StartTask of `taskdef` on host `i`, as berthctl answered it (JSON).
    pub fn try_start_task(&self, taskdef: &str, i: usize) -> std::process::Output {
        self.sched.ctl(&[
            "task",
            "start",
            "--taskdef",
            taskdef,
            "--instance",
            &self.hosts[i].instance,
            "-o",
            "json",
        ])
    }

    /// `task describe` of one task.
    pub fn task(&self, id: &str) -> Value {
        self.ctl_json(&["task", "describe", id])["tasks"][0].clone()
    }

    /// Waits (up to 60 s) until task `id` has lastStatus `status`.
    pub async fn until_task_status(&self, id: &str, status: &str) -> Value {
        eventually(
            Duration::from_secs(60),
            &format!("task {id} {status}"),
            || async {
                let t = self.task(id);
                if t["lastStatus"] == status {
                    Ok(t)
                } else {
                    Err(t.to_string())
                }
            },
        )
        .await
    }

    /// Stops every task that is not STOPPED and waits (up to `limit`) until
    /// each of those on a reachable host (not killed, not cut) is.
    pub fn stop_all_tasks(&self, limit: Duration) {
        // Services first (scaled to 0 and deleted), or their controller
        // would replace the tasks stopped below.
        if let Ok(v) = serde_json::from_slice::<Value>(
            &self.sched.ctl(&["service", "ls", "-o", "json"]).stdout,
        ) {
            for s in v["services"].as_array().into_iter().flatten() {
                if let Some(name) = s["serviceName"].as_str() {
                    let _ = self.sched.ctl(&["service", "delete", name, "--force"]);
                }
            }
        }
        let Ok(v) =
            serde_json::from_slice::<Value>(&self.sched.ctl(&["task", "ls", "-o", "json"]).stdout)
        else {
            return;
        };
        let reachable: Vec<&str> = self
            .hosts
            .iter()
            .filter(|h| !h.killed && !h.cut && !h.instance.is_empty())
            .map(|h| h.instance.as_str())
            .collect();
        let mut wait = Vec::new();
        for t in v["tasks"].as_array().into_iter().flatten() {
            let Some(arn) = t["taskArn"].as_str() else {
                continue;
            };
            let id = berth_proto::arn::short_id(arn).to_owned();
            if t["lastStatus"] == "STOPPED" {
                continue;
            }
            let _ = self.sched.ctl(&["task", "stop", &id]);
            let on = t["containerInstanceArn"].as_str().unwrap_or_default();
            if reachable.contains(&berth_proto::arn::short_id(on)) {
                wait.push(id);
            }
        }
        let deadline = std::time::Instant::now() + limit;
        for id in &wait {
            while std::time::Instant::now() < deadline {
                let d = self.sched.ctl(&["task", "describe", id, "-o", "json"]);
                let stopped = serde_json::from_slice::<Value>(&d.stdout)
                    .map(|v| v["tasks"][0]["lastStatus"] == "STOPPED")
                    .unwrap_or(true);
                if stopped {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            if h.cut {
                h.heal();
            }
        }
        self.stop_all_tasks(Duration::from_secs(20));
        // The servers go first: a host's sockets to a live peer would wait
        // for its FIN (FIN_WAIT2, a minute) and keep the host's namespace,
        // and its veth, alive after the bridge is gone. With the peer gone
        // first, the kernel answers the hosts' FINs with RSTs at once.
        self.sched.kill9();
        self.registry.stop();
        // Then the fields drop: each Host cleans itself up, then the bridge.
    }
}

/// The test bridge in the test's namespace; deleted on drop.
struct TestNet {
    slot: u16,
    /// `10.218.S.`
    prefix: String,
    /// `10.219.S.`
    task_prefix: String,
    bridge: String,
    gateway: Ipv4Addr,
    port_base: u16,
}

impl TestNet {
    fn create() -> Self {
        let (slot, port_base, subnet) = free_slot(BRIDGE_BLOCK);
        let prefix = subnet.trim_end_matches("0/24").to_owned();
        let third = prefix.split('.').nth(2).unwrap().to_owned();
        let net = Self {
            slot,
            task_prefix: format!("10.{TASK_BLOCK}.{third}."),
            gateway: format!("{prefix}1").parse().unwrap(),
            prefix,
            bridge: format!("bm{slot:04x}"),
            port_base,
        };
        run("ip", &["link", "add", &net.bridge, "type", "bridge"]);
        // From here on, drop deletes the bridge.
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", net.gateway),
                "dev",
                &net.bridge,
            ],
        );
        run("ip", &["link", "set", &net.bridge, "up"]);
        net
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

/// One host: a network namespace with its own containerd and agent.
pub struct Host {
    pub index: usize,
    /// The container instance id (known once the agent connected).
    instance: String,
    netns: String,
    addr: Ipv4Addr,
    cgroup_parent: String,
    ctd: Option<Containerd>,
    agent: Option<Agent>,
    state_dir: PathBuf,
    scheduler: SocketAddr,
    killed: bool,
    cut: bool,
}

impl Host {
    fn create(
        i: usize,
        net: &TestNet,
        sched: &Scheduler,
        registry: &Registry,
        state_dir: &Path,
        extra_env: &[(String, String)],
    ) -> Self {
        let netns = format!("bm{:04x}h{i}", net.slot);
        let mut host = Self {
            index: i,
            instance: String::new(),
            netns: netns.clone(),
            addr: format!("{}{}", net.prefix, 10 + i).parse().unwrap(),
            cgroup_parent: format!("berth-mh-{:04x}-h{i}", net.slot),
            ctd: None,
            agent: None,
            state_dir: state_dir.to_owned(),
            scheduler: SocketAddr::new(sched.ip, sched.port),
            killed: false,
            cut: false,
        };
        run("ip", &["netns", "add", &netns]);
        // From here on, drop deletes the namespace and what is in it.
        let outer = format!("bm{:04x}v{i}", net.slot);
        let inner = format!("bm{:04x}p{i}", net.slot);
        run(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &netns,
            ],
        );
        run("ip", &["link", "set", &outer, "master", &net.bridge, "up"]);
        let ip_n = |args: &[&str]| {
            let mut a = vec!["-n", netns.as_str()];
            a.extend_from_slice(args);
            run("ip", &a);
        };
        ip_n(&["link", "set", &inner, "name", "eth0"]);
        ip_n(&["addr", "add", &format!("{}/24", host.addr), "dev", "eth0"]);
        ip_n(&["link", "set", "eth0", "up"]);
        ip_n(&["link", "set", "lo", "up"]);

        let ctd = Containerd::start_in_netns(&host.netns_path());
        let env: Vec<(String, String)> = [
            (
                "BERTH_CONTAINERD_SOCKET",
                ctd.socket().display().to_string(),
            ),
            ("BERTH_INSECURE_REGISTRIES", registry.addr()),
            ("BERTH_TASK_CLEANUP_WAIT", "2s".to_owned()),
            ("BERTH_STOP_TIMEOUT", "3s".to_owned()),
            ("BERTH_BRIDGE", format!("bm{:04x}t{i}", net.slot)),
            (
                "BERTH_BRIDGE_SUBNET",
                format!("{}{}/27", net.task_prefix, 32 * i),
            ),
            ("BERTH_CGROUP_PARENT", host.cgroup_parent.clone()),
            (
                "BERTH_PORT_RANGE",
                format!("{}-{}", net.port_base, net.port_base + 49),
            ),
            ("BERTH_HOSTNAME", format!("mh-{:04x}-h{i}", net.slot)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(extra_env.iter().cloned())
        .collect();
        host.ctd = Some(ctd);
        host.agent = Some(Agent::start_in_netns(
            sched,
            "default",
            state_dir,
            &env,
            Some(&host.netns_path()),
        ));
        host
    }

    /// The host's address on the test bridge.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Its container instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The namespace's name (`ip netns`) and path.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    pub fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }

    /// The host's cgroup parent (its tasks' cgroups are below it).
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    pub fn is_killed(&self) -> bool {
        self.killed
    }

    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// The agent's log.
    pub fn agent_log(&self) -> String {
        self.agent.as_ref().map(Agent::log_text).unwrap_or_default()
    }

    /// The instance id from the agent's `identity.json`.
    fn identity_id(&self) -> String {
        let text = std::fs::read_to_string(self.state_dir.join("identity.json"))
            .unwrap_or_else(|e| panic!("host {}: no identity.json: {e}", self.index));
        let v: Value = serde_json::from_str(&text).unwrap();
        v["container_instance_id"]
            .as_str()
            .unwrap_or_else(|| panic!("host {}: identity.json without an id: {v}", self.index))
            .to_owned()
    }

    /// `GET http://ADDR:port/path` from the test's namespace over the test
    /// bridge (HTTP/1.0, 2 s to connect, 3 s to answer): the whole response.
    pub fn get(&self, port: u16, path: &str) -> Result<String, String> {
        http_get(SocketAddr::new(IpAddr::V4(self.addr), port), path)
    }

    /// The machine dies: SIGKILL to the agent, containerd, its shims and
    /// their children, every process in the host's namespace and every
    /// process in its cgroup parent (the tasks). Namespaces, mounts and
    /// state stay, as on a disk after a power cut; [`restart`](Self::restart)
    /// brings the host back.
    pub fn kill(&mut self) {
        if let Some(a) = self.agent.as_mut() {
            a.kill9();
        }
        if let Some(c) = self.ctd.as_mut() {
            c.kill9();
        }
        self.kill_everything();
        self.killed = true;
    }

    /// After [`kill`](Self::kill): containerd and the agent start again
    /// with the same state (identity, certificate, containers' records).
    /// Wait for the connection with [`Hosts::until_connected`].
    pub fn restart(&mut self) {
        if let Some(c) = self.ctd.as_mut() {
            c.restart();
        }
        if let Some(a) = self.agent.as_mut() {
            a.restart();
        }
        self.killed = false;
    }

    /// Drops TCP between this host and the scheduler's port (iptables in
    /// the host's namespace, both directions). Everything else, the tasks'
    /// host ports included, keeps working.
    pub fn cut(&mut self) {
        if self.cut {
            return;
        }
        for rule in self.cut_rules() {
            let mut args = vec!["-w", "-I"];
            args.extend(rule.iter().map(String::as_str));
            self.iptables(&args, true);
        }
        self.cut = true;
    }

    /// Removes [`cut`](Self::cut)'s rules.
    pub fn heal(&mut self) {
        if !self.cut {
            return;
        }
        for rule in self.cut_rules() {
            let mut args = vec!["-w", "-D"];
            args.extend(rule.iter().map(String::as_str));
            self.iptables(&args, false);
        }
        self.cut = false;
    }

    fn cut_rules(&self) -> [Vec<String>; 2] {
        let ip = self.scheduler.ip().to_string();
        let port = self.scheduler.port().to_string();
        let rule = |chain: &str, addr_flag: &str, port_flag: &str| {
            [
                chain, addr_flag, &ip, "-p", "tcp", port_flag, &port, "-j", "DROP",
            ]
            .map(str::to_owned)
            .to_vec()
        };
        [
            rule("OUTPUT", "-d", "--dport"),
            rule("INPUT", "-s", "--sport"),
        ]
    }

    fn iptables(&self, args: &[&str], must: bool) {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.netns_path().display()))
            .arg("--")
            .arg("iptables")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter iptables");
        if must {
            assert!(
                out.status.success(),
                "iptables {args:?} in {}: {}",
                self.netns,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// SIGKILLs every process in the host's namespace or cgroup parent,
    /// until none is left (bounded).
    fn kill_everything(&self) {
        let ns_ino = std::fs::metadata(self.netns_path()).ok().map(|m| m.ino());
        for _ in 0..50 {
            let mut pids = cgroup_pids(&self.cgroup_parent);
            if let Some(ino) = ns_ino {
                pids.extend(netns_pids(ino));
            }
            pids.sort_unstable();
            pids.dedup();
            pids.retain(|p| *p != std::process::id());
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "multihost: processes of host {} survive SIGKILL",
            self.index
        );
    }

    /// The task namespaces the agent's network records name.
    fn task_netns(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.state_dir.clone()];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    let netns = std::fs::read_to_string(&p)
                        .ok()
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                        .and_then(|v| v["netns"].as_str().map(PathBuf::from));
                    if let Some(ns) = netns.filter(|n| n.starts_with("/run/netns")) {
                        out.push(ns);
                    }
                }
            }
        }
        out
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.heal();
        if let Some(a) = self.agent.as_mut() {
            a.kill9();
        }
        if let Some(c) = self.ctd.as_mut() {
            c.kill9();
        }
        self.kill_everything();
        for ns in self.task_netns() {
            if let Some(name) = ns.file_name().and_then(|n| n.to_str()) {
                let _ = Command::new("ip")
                    .args(["netns", "delete", name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        remove_cgroups(&self.cgroup_parent);
        // containerd's drop unmounts what is left under its dir.
        self.ctd = None;
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a setup command; panics with its stderr if it fails.
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `GET path` over HTTP/1.0 to `addr`: the whole response, or why not.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut body = String::new();
    s.read_to_string(&mut body)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    if body.is_empty() {
        return Err(format!("{addr} closed without answering"));
    }
    Ok(body)
}

/// The cgroup roots of this host: the unified root on v2, each v1
/// controller's hierarchy (once, whatever its symlinks) on v1.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_owned()];
    }
    let mut roots: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::canonicalize(e.path()).ok())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    roots.sort();
    roots.dedup();
    roots
}

/// Every cgroup directory at or below `parent` in each hierarchy, deepest first.
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in cgroup_roots() {
        let mut stack = vec![root.join(parent)];
        while let Some(d) = stack.pop() {
            if !d.is_dir() {
                continue;
            }
            if let Ok(rd) = std::fs::read_dir(&d) {
                stack.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
            out.push(d);
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// Pids in any cgroup at or below `parent`.
fn cgroup_pids(parent: &str) -> Vec<u32> {
    cgroup_dirs(parent)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Removes the cgroups at and below `parent` (empty by now), deepest first.
fn remove_cgroups(parent: &str) {
    for d in cgroup_dirs(parent) {
        if let Err(e) = std::fs::remove_dir(&d) {
            eprintln!("multihost: cannot remove cgroup {}: {e}", d.display());
        }
    }
}

/// Pids whose network namespace is the one with inode `ino`.
fn netns_pids(ino: u64) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ino)
        })
        .collect()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
