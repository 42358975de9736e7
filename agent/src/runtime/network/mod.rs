//! Task networking through the CNI reference plugins (Debian's
//! `containernetworking-plugins`), invoked by the agent itself.
//!
//! Modes, as ECS names them:
//! - `bridge`: a network namespace per task, `eth0` on the Berth bridge
//!   (`bridge` plugin, `host-local` IPAM, masquerade for egress), and the
//!   `portmap` plugin for every port mapping (tcp and udp, with SNAT so that
//!   `127.0.0.1:<hostPort>` on the host reaches the task);
//! - `awsvpc`: the same namespace and bridge address, no host ports;
//! - `none`: a namespace with only `lo`;
//! - `host`: the host's namespace, nothing to set up.
//!
//! Every mode with a namespace also runs the `loopback` plugin.
//!
//! Invariants:
//! - The per-task record (`state_dir/<task_id>.json`, see [`record`]) is
//!   written before the host is touched and removed only after every CNI DEL
//!   succeeded and the namespace is gone, so teardown works after an agent
//!   restart and after a setup that failed half-way; teardown is idempotent.
//! - DEL runs in reverse chain order, before the namespace is deleted (the
//!   `bridge` plugin finds its masquerade rule through the interface).
//! - The agent maps exactly the host ports it is given: the scheduler is
//!   the only allocator of ports.
//! - Plugin invocations of one process are serialized (one lock), because
//!   the plugins' shared iptables chains are created check-then-act.

pub mod cidr;
pub mod cni;
pub mod dns;
pub mod iptables;
pub mod netns;
pub mod record;
pub mod subnet;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use cidr::Ipv4Net;
pub use dns::Dns;
use record::{Phase, Record, RECORD_VERSION};

/// The bridge's default name.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// Where Debian and upstream install the plugins, searched in this order.
pub const DEFAULT_CNI_BIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];
/// The plugins Berth invokes; [`Networking::new`] checks they are present.
pub const REQUIRED_PLUGINS: &[&str] = &["bridge", "portmap", "host-local", "loopback"];
/// The CNI network name (it appears in iptables comments and as the IPAM
/// directory under `state_dir/ipam`).
pub const NETWORK_NAME: &str = "berth";
/// The task's interface inside its namespace.
pub const IFNAME: &str = "eth0";

/// One lock for every plugin invocation of this process.
static CNI_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How the agent's networking is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct NetworkConfig {
    /// The Linux bridge tasks attach to (at most 15 bytes).
    pub bridge: String,
    /// The bridge's IPv4 subnet; `None` picks one of [`subnet::CANDIDATES`]
    /// that overlaps no route or address of the host (or keeps the subnet
    /// the bridge already has).
    pub subnet: Option<Ipv4Net>,
    /// Where the plugins are, in search order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Task records and the `host-local` leases (`ipam/`).
    pub state_dir: PathBuf,
    /// The MTU of the bridge and veths; `None` leaves the plugin's default.
    pub mtu: Option<u32>,
}

impl NetworkConfig {
    /// The defaults, with state under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            bridge: DEFAULT_BRIDGE.to_owned(),
            subnet: None,
            cni_bin_dirs: DEFAULT_CNI_BIN_DIRS.iter().map(PathBuf::from).collect(),
            state_dir: state_dir.into(),
            mtu: None,
        }
    }
}

/// A task's network mode (ECS `networkMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Bridge,
    Host,
    None,
    Awsvpc,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bridge => "bridge",
            Mode::Host => "host",
            Mode::None => "none",
            Mode::Awsvpc => "awsvpc",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bridge" => Ok(Mode::Bridge),
            "host" => Ok(Mode::Host),
            "none" => Ok(Mode::None),
            "awsvpc" => Ok(Mode::Awsvpc),
            other => Err(format!(
                "unknown network mode {other:?} (expected bridge, host, none or awsvpc)"
            )),
        }
    }
}

pub use berth_proto::ecs::Protocol;

/// A host port the scheduler assigned to a container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// A host port that forwards to the task (ECS `networkBindings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub bind_ip: IpAddr,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// A task's network, as set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskNetwork {
    pub mode: Mode,
    /// The namespace the task's containers join; `None` in host mode.
    pub netns: Option<PathBuf>,
    /// The task's address on the bridge (bridge and awsvpc modes).
    pub ip: Option<IpAddr>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<IpAddr>,
    /// The host end of the task's veth (for per-task traffic counters).
    pub host_veth: Option<String>,
    pub bindings: Vec<Binding>,
    /// What the containers' `/etc/resolv.conf` should say.
    pub dns: Dns,
}

/// What went wrong, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network configuration: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("CNI plugin {plugin:?} is not in any of {searched:?}")]
    MissingPlugin {
        plugin: String,
        searched: Vec<PathBuf>,
    },
    #[error("no free subnet for the bridge: every candidate ({candidates}) overlaps a route or address of this host; set one in the configuration")]
    NoFreeSubnet { candidates: String },
    #[error("cannot read the host's routes and addresses: {reason}")]
    HostProbe { reason: String },
    #[error("task id {task_id:?} cannot name a network: {reason}")]
    InvalidTaskId {
        task_id: String,
        reason: &'static str,
    },
    #[error("task {task_id}: port mappings: {reason}")]
    InvalidPorts { task_id: String, reason: String },
    #[error(
        "task {task_id} already has a {existing} network with other settings; tear it down first"
    )]
    AlreadySetUp { task_id: String, existing: Mode },
    #[error("task {task_id}: the recorded network cannot be adopted: {reason}; tear it down")]
    NotAdoptable { task_id: String, reason: String },
    #[error("`{command}` failed: {reason}")]
    Netns { command: String, reason: String },
    #[error("`{command}` failed: {reason}")]
    Iptables { command: String, reason: String },
    #[error("CNI plugin {plugin} failed with code {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
    Plugin {
        plugin: String,
        code: u32,
        msg: String,
        details: String,
    },
    #[error("cannot run CNI plugin {plugin}: {source}")]
    PluginExec {
        plugin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin}: {reason}")]
    PluginOutput { plugin: String, reason: String },
    #[error("network state {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network state {path} is unreadable: {reason}")]
    StateFormat { path: PathBuf, reason: String },
}

/// The agent's task networking over one bridge and one state directory.
#[derive(Debug)]
pub struct Networking {
    bridge: String,
    subnet: Ipv4Net,
    plugins: cni::PluginPath,
    state_dir: PathBuf,
    mtu: Option<u32>,
}

impl Networking {
    /// Checks the configuration and the plugins, creates `state_dir`, and
    /// resolves the subnet (reading the host's routes when none is set).
    /// Blocking: it runs `ip` when the subnet is not configured.
    pub fn new(cfg: NetworkConfig) -> Result<Self, NetworkError> {
        validate_bridge_name(&cfg.bridge)?;
        if let Some(mtu) = cfg.mtu {
            if !(576..=65535).contains(&mtu) {
                return Err(NetworkError::InvalidConfig {
                    field: "mtu",
                    reason: format!("{mtu} is outside 576..=65535"),
                });
            }
        }
        let plugins = cni::PluginPath::new(cfg.cni_bin_dirs.clone());
        for p in REQUIRED_PLUGINS {
            if plugins.find(p).is_none() {
                return Err(NetworkError::MissingPlugin {
                    plugin: (*p).to_owned(),
                    searched: cfg.cni_bin_dirs.clone(),
                });
            }
        }
        let subnet = match cfg.subnet {
            Some(s) if s.prefix() > 29 || s.prefix() < 8 => {
                return Err(NetworkError::InvalidConfig {
                    field: "subnet",
                    reason: format!("{s}: the prefix length must be within 8..=29"),
                })
            }
            Some(s) => s.network(),
            None => {
                let candidates = subnet::default_candidates();
                let host = subnet::probe()?;
                subnet::choose(&cfg.bridge, &candidates, &host).ok_or_else(|| {
                    NetworkError::NoFreeSubnet {
                        candidates: subnet::CANDIDATES.join(", "),
                    }
                })?
            }
        };
        create_private_dir(&cfg.state_dir)?;
        tracing::info!(bridge = %cfg.bridge, %subnet, state_dir = %cfg.state_dir.display(), "task networking ready");
        Ok(Self {
            bridge: cfg.bridge,
            subnet,
            plugins,
            state_dir: cfg.state_dir,
            mtu: cfg.mtu,
        })
    }

    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Where the `host-local` leases live.
    pub fn ipam_dir(&self) -> PathBuf {
        self.state_dir.join("ipam")
    }

    /// Sets up the network of `task_id`. A task whose network is already set
    /// up the same way gets it back; a half-done earlier attempt is torn
    /// down first. On failure whatever was done is undone (and if that
    /// fails too, the record stays for a later [`Networking::teardown`]).
    #[tracing::instrument(skip(self, ports), fields(bridge = %self.bridge, ports = ports.len()))]
    pub async fn setup(
        &self,
        task_id: &str,
        mode: Mode,
        ports: &[PortMapping],
    ) -> Result<TaskNetwork, NetworkError> {
        validate_task_id(task_id)?;
        validate_ports(task_id, mode, ports)?;
        let _guard = CNI_LOCK.lock().await;

        let runtime_config = runtime_config(mode, ports);
        match record::load(&self.state_dir, task_id)? {
            Some(r) if r.phase == Phase::Ready => {
                return match r.network {
                    Some(n) if r.mode == mode && n.bindings == bindings(mode, ports) => Ok(n),
                    _ => Err(NetworkError::AlreadySetUp {
                        task_id: task_id.to_owned(),
                        existing: r.mode,
                    }),
                };
            }
            Some(r) => {
                tracing::info!("undoing an earlier setup that did not finish");
                self.undo(&r).await?;
            }
            None => {}
        }

        if mode == Mode::Host {
            let network = TaskNetwork {
                mode,
                netns: None,
                ip: None,
                prefix_len: None,
                gateway: None,
                host_veth: None,
                bindings: bindings(mode, ports),
                dns: dns::read(false),
            };
            record::store(
                &self.state_dir,
                &Record {
                    version: RECORD_VERSION,
                    task_id: task_id.to_owned(),
                    mode,
                    phase: Phase::Ready,
                    netns: None,
                    loopback: None,
                    conflist: None,
                    runtime_config,
                    result: None,
                    network: Some(network.clone()),
                },
            )?;
            return Ok(network);
        }

        let ns_name = netns::name(task_id);
        let mut rec = Record {
            version: RECORD_VERSION,
            task_id: task_id.to_owned(),
            mode,
            phase: Phase::SettingUp,
            netns: Some(netns::path_of(&ns_name)),
            loopback: Some(cni::loopback_conflist()),
            conflist: self.task_conflist(mode),
            runtime_config,
            result: None,
            network: None,
        };
        record::store(&self.state_dir, &rec)?;

        match self.add(&rec, &ns_name).await {
            Ok((result, network)) => {
                rec.phase = Phase::Ready;
                rec.result = result;
                rec.network = Some(network.clone());
                record::store(&self.state_dir, &rec)?;
                tracing::info!(ip = ?network.ip, netns = ?network.netns, "task network set up");
                Ok(network)
            }
            Err(e) => {
                tracing::warn!(cause = %e, "setup failed; undoing it");
                if let Err(undo) = self.undo(&rec).await {
                    tracing::error!(cause = %undo, "cannot undo the failed setup; the record stays for a later teardown");
                }
                Err(e)
            }
        }
    }

    async fn add(
        &self,
        rec: &Record,
        ns_name: &str,
    ) -> Result<(Option<Value>, TaskNetwork), NetworkError> {
        let ns_path = netns::create(ns_name).await?;
        if let Some(lo) = &rec.loopback {
            self.run_list(
                cni::Verb::Add,
                lo,
                &cni::Args {
                    container_id: &rec.task_id,
                    netns: &ns_path,
                    ifname: "lo",
                },
                &Map::new(),
                None,
            )
            .await?;
        }
        let mut network = TaskNetwork {
            mode: rec.mode,
            netns: Some(ns_path.clone()),
            ip: None,
            prefix_len: None,
            gateway: None,
            host_veth: None,
            bindings: Vec::new(),
            dns: Dns::default(),
        };
        let Some(list) = &rec.conflist else {
            return Ok((None, network));
        };
        let result = self
            .run_list(
                cni::Verb::Add,
                list,
                &cni::Args {
                    container_id: &rec.task_id,
                    netns: &ns_path,
                    ifname: IFNAME,
                },
                &rec.runtime_config,
                None,
            )
            .await?;
        let summary =
            cni::summarize(&result, &self.bridge).map_err(|reason| NetworkError::PluginOutput {
                plugin: "bridge".into(),
                reason,
            })?;
        let ip = summary.ip.ok_or_else(|| NetworkError::PluginOutput {
            plugin: "bridge".into(),
            reason: "the result has no IPv4 address".into(),
        })?;
        network.ip = Some(ip);
        network.prefix_len = summary.prefix;
        network.gateway = summary.gateway;
        network.host_veth = summary.host_veth;
        network.dns = dns::read(true);
        network.bindings = bindings(rec.mode, &port_mappings_of(&rec.runtime_config));
        Ok((Some(result), network))
    }

    /// Runs every plugin of `list` (ADD forwards, DEL and CHECK backwards),
    /// chaining results; returns the last ADD result.
    async fn run_list(
        &self,
        verb: cni::Verb,
        list: &Value,
        args: &cni::Args<'_>,
        runtime_config: &Map<String, Value>,
        cached: Option<&Value>,
    ) -> Result<Value, NetworkError> {
        let plugins: Vec<&Value> = list["plugins"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let mut prev: Option<Value> = cached.cloned();
        match verb {
            cni::Verb::Add => {
                for p in plugins {
                    let conf = cni::plugin_config(list, p, runtime_config, prev.as_ref());
                    let result =
                        cni::exec(&self.plugins, cni::plugin_type(p), verb, args, &conf).await?;
                    prev = Some(result);
                }
                Ok(prev.unwrap_or(Value::Null))
            }
            cni::Verb::Del | cni::Verb::Check => {
                for p in plugins.into_iter().rev() {
                    let conf = cni::plugin_config(list, p, runtime_config, prev.as_ref());
                    cni::exec(&self.plugins, cni::plugin_type(p), verb, args, &conf).await?;
                }
                Ok(Value::Null)
            }
        }
    }

    /// Undoes what `rec` describes: DEL of the task conflist (reverse
    /// order), DEL of loopback, the namespace, then the record. Stops at the
    /// first failure and keeps the record so that it can be retried.
    async fn undo(&self, rec: &Record) -> Result<(), NetworkError> {
        if let Some(ns_path) = &rec.netns {
            let netns_was_gone = !ns_path.exists();
            if let Some(list) = &rec.conflist {
                self.run_list(
                    cni::Verb::Del,
                    list,
                    &cni::Args {
                        container_id: &rec.task_id,
                        netns: ns_path,
                        ifname: IFNAME,
                    },
                    &rec.runtime_config,
                    rec.result.as_ref(),
                )
                .await?;
            }
            if let Some(lo) = &rec.loopback {
                self.run_list(
                    cni::Verb::Del,
                    lo,
                    &cni::Args {
                        container_id: &rec.task_id,
                        netns: ns_path,
                        ifname: "lo",
                    },
                    &Map::new(),
                    None,
                )
                .await?;
            }
            if netns_was_gone {
                if let Some(list) = &rec.conflist {
                    let name = list["name"].as_str().unwrap_or(NETWORK_NAME);
                    let n = iptables::scrub(name, &rec.task_id).await?;
                    if n > 0 {
                        tracing::warn!(rules = n, "the namespace was already gone; removed the task's leftover iptables rules");
                    }
                }
            }
            netns::delete(&netns::name(&rec.task_id)).await?;
        }
        record::remove(&self.state_dir, &rec.task_id)
    }

    /// Removes the network of `task_id`: no veth, namespace, lease or
    /// iptables rule of it stays. Idempotent; works from the persisted
    /// record alone (after a restart, after a failed setup).
    #[tracing::instrument(skip(self), fields(bridge = %self.bridge))]
    pub async fn teardown(&self, task_id: &str) -> Result<(), NetworkError> {
        validate_task_id(task_id)?;
        let _guard = CNI_LOCK.lock().await;
        match record::load(&self.state_dir, task_id)? {
            Some(rec) => {
                self.undo(&rec).await?;
                tracing::info!("task network torn down");
                Ok(())
            }
            // Nothing recorded: the record is written before any change, so
            // there is nothing of ours, except what a lost state directory
            // left: a namespace, NAT rules naming the task.
            None => {
                let n = iptables::scrub(NETWORK_NAME, task_id).await?;
                if n > 0 {
                    tracing::warn!(
                        rules = n,
                        "no record, but iptables rules named the task; removed them"
                    );
                }
                netns::delete(&netns::name(task_id)).await
            }
        }
    }

    /// The network recorded for `task_id` (after an agent restart):
    /// `Ok(None)` when there is none; [`NetworkError::NotAdoptable`] when
    /// the record is of an unfinished setup or its namespace is gone (after
    /// a reboot), which the caller answers with a teardown.
    pub async fn adopt(&self, task_id: &str) -> Result<Option<TaskNetwork>, NetworkError> {
        validate_task_id(task_id)?;
        let Some(rec) = record::load(&self.state_dir, task_id)? else {
            return Ok(None);
        };
        let not = |reason: String| NetworkError::NotAdoptable {
            task_id: task_id.to_owned(),
            reason,
        };
        if rec.phase != Phase::Ready {
            return Err(not("its setup did not finish".into()));
        }
        if let Some(ns) = &rec.netns {
            if !ns.exists() {
                return Err(not(format!("its namespace {} is gone", ns.display())));
            }
        }
        rec.network
            .map(Some)
            .ok_or_else(|| not("the record has no network".into()))
    }

    /// Asks the plugins whether the task's network is still as set up
    /// (CNI CHECK with the cached result): `lo`, the interface and its
    /// address, the lease, and the task's DNAT rules. Host mode has nothing
    /// to check.
    #[tracing::instrument(skip(self), fields(bridge = %self.bridge))]
    pub async fn check(&self, task_id: &str) -> Result<(), NetworkError> {
        validate_task_id(task_id)?;
        let _guard = CNI_LOCK.lock().await;
        let rec = match record::load(&self.state_dir, task_id)? {
            Some(r) if r.phase == Phase::Ready => r,
            Some(_) => {
                return Err(NetworkError::NotAdoptable {
                    task_id: task_id.to_owned(),
                    reason: "its setup did not finish".into(),
                })
            }
            None => {
                return Err(NetworkError::NotAdoptable {
                    task_id: task_id.to_owned(),
                    reason: "there is no record of it".into(),
                })
            }
        };
        let Some(ns_path) = &rec.netns else {
            return Ok(());
        };
        if let Some(lo) = &rec.loopback {
            self.run_list(
                cni::Verb::Check,
                lo,
                &cni::Args {
                    container_id: task_id,
                    netns: ns_path,
                    ifname: "lo",
                },
                &Map::new(),
                None,
            )
            .await?;
        }
        if let (Some(list), Some(result)) = (&rec.conflist, &rec.result) {
            // portmap 1.1.1's CHECK also looks for IPv6 rules an IPv4-only
            // task never had, and fails (containernetworking/plugins#819):
            // its part is checked here, the rest by the plugins.
            let mut without_portmap = list.clone();
            if let Some(plugins) = without_portmap["plugins"].as_array_mut() {
                plugins.retain(|p| cni::plugin_type(p) != "portmap");
            }
            if rec.runtime_config.contains_key("portMappings") {
                let name = list["name"].as_str().unwrap_or(NETWORK_NAME);
                if !iptables::has_dnat(name, task_id).await? {
                    return Err(NetworkError::Plugin {
                        plugin: "portmap".into(),
                        code: 999,
                        msg: "the task's DNAT rules are missing from CNI-HOSTPORT-DNAT".into(),
                        details: String::new(),
                    });
                }
            }
            self.run_list(
                cni::Verb::Check,
                &without_portmap,
                &cni::Args {
                    container_id: task_id,
                    netns: ns_path,
                    ifname: IFNAME,
                },
                &rec.runtime_config,
                Some(result),
            )
            .await?;
        }
        Ok(())
    }

    /// The task ids that have a recorded network, for reconciling against
    /// the tasks containerd runs.
    pub fn recorded_tasks(&self) -> Result<Vec<String>, NetworkError> {
        record::list(&self.state_dir)
    }

    /// The conflist of the task's `eth0` (bridge and awsvpc modes).
    fn task_conflist(&self, mode: Mode) -> Option<Value> {
        if !matches!(mode, Mode::Bridge | Mode::Awsvpc) {
            return None;
        }
        let mut bridge = json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": self.subnet.to_string() }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": self.ipam_dir(),
            },
        });
        if let Some(mtu) = self.mtu {
            bridge["mtu"] = json!(mtu);
        }
        let mut plugins = vec![bridge];
        if mode == Mode::Bridge {
            plugins.push(json!({
                "type": "portmap",
                "capabilities": { "portMappings": true },
                "snat": true,
            }));
        }
        Some(json!({
            "cniVersion": cni::CNI_VERSION,
            "name": NETWORK_NAME,
            "plugins": plugins,
        }))
    }
}

/// The host bindings of `ports` in `mode`: every mapping on all addresses
/// in bridge and host modes, none otherwise.
fn bindings(mode: Mode, ports: &[PortMapping]) -> Vec<Binding> {
    if !matches!(mode, Mode::Bridge | Mode::Host) {
        return Vec::new();
    }
    ports
        .iter()
        .map(|p| Binding {
            bind_ip: Ipv4Addr::UNSPECIFIED.into(),
            container_port: p.container_port,
            host_port: p.host_port,
            protocol: p.protocol,
        })
        .collect()
}

/// `runtimeConfig` for the capable plugins: `portMappings` in bridge mode.
fn runtime_config(mode: Mode, ports: &[PortMapping]) -> Map<String, Value> {
    let mut rc = Map::new();
    if mode == Mode::Bridge && !ports.is_empty() {
        let maps: Vec<Value> = ports
            .iter()
            .map(|p| {
                json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol.as_str(),
                })
            })
            .collect();
        rc.insert("portMappings".into(), Value::Array(maps));
    }
    rc
}

fn port_mappings_of(rc: &Map<String, Value>) -> Vec<PortMapping> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        host_port: u16,
        container_port: u16,
        protocol: Protocol,
    }
    rc.get("portMappings")
        .and_then(|v| serde_json::from_value::<Vec<Wire>>(v.clone()).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|w| PortMapping {
            container_port: w.container_port,
            host_port: w.host_port,
            protocol: w.protocol,
        })
        .collect()
}

/// A task id names the namespace, the CNI container and the record file:
/// the CNI rule (alphanumerics, `_`, `.`, `-`, starting alphanumeric),
/// at most 64 bytes.
fn validate_task_id(task_id: &str) -> Result<(), NetworkError> {
    let bad = |reason| NetworkError::InvalidTaskId {
        task_id: task_id.to_owned(),
        reason,
    };
    if task_id.is_empty() || task_id.len() > 64 {
        return Err(bad("it must be 1 to 64 bytes long"));
    }
    if !task_id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("it must start with a letter or digit"));
    }
    if !task_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(bad("only letters, digits, '_', '.' and '-' are allowed"));
    }
    Ok(())
}

fn validate_ports(task_id: &str, mode: Mode, ports: &[PortMapping]) -> Result<(), NetworkError> {
    let bad = |reason: String| NetworkError::InvalidPorts {
        task_id: task_id.to_owned(),
        reason,
    };
    let mut seen = std::collections::HashSet::new();
    for p in ports {
        let what = format!("{}/{}", p.container_port, p.protocol.as_str());
        if p.container_port == 0 {
            return Err(bad("container port 0".into()));
        }
        match mode {
            Mode::None => {
                return Err(bad(format!(
                    "{what}: network mode none has no ports to map"
                )))
            }
            Mode::Bridge if p.host_port == 0 => {
                return Err(bad(format!(
                    "{what}: host port 0; the scheduler assigns dynamic host ports before the agent maps them"
                )))
            }
            Mode::Host if p.host_port != p.container_port => {
                return Err(bad(format!(
                    "{what}: in host mode the host port must equal the container port, not {}",
                    p.host_port
                )))
            }
            // awsvpc: the task is reached at its own address; host ports are not mapped.
            Mode::Awsvpc => continue,
            _ => {}
        }
        if !seen.insert((p.host_port, p.protocol)) {
            return Err(bad(format!(
                "host port {}/{} is mapped twice",
                p.host_port,
                p.protocol.as_str()
            )));
        }
    }
    Ok(())
}

fn validate_bridge_name(name: &str) -> Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidConfig {
            field: "bridge",
            reason: format!(
                "{name:?} is not an interface name (1 to 15 of letters, digits, '_', '-', '.')"
            ),
        })
    }
}

fn create_private_dir(dir: &Path) -> Result<(), NetworkError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| NetworkError::State {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networking() -> Networking {
        Networking {
            bridge: "berth0".into(),
            subnet: "10.213.0.0/16".parse().unwrap(),
            plugins: cni::PluginPath::new(vec![]),
            state_dir: PathBuf::from("/var/lib/berth/cni"),
            mtu: Some(1400),
        }
    }

    #[test]
    fn bridge_conflist_chains_bridge_and_portmap() {
        let list = networking().task_conflist(Mode::Bridge).unwrap();
        expect_test::expect![[r#"
            {
              "cniVersion": "1.0.0",
              "name": "berth",
              "plugins": [
                {
                  "type": "bridge",
                  "bridge": "berth0",
                  "isGateway": true,
                  "ipMasq": true,
                  "hairpinMode": true,
                  "ipam": {
                    "type": "host-local",
                    "ranges": [
                      [
                        {
                          "subnet": "10.213.0.0/16"
                        }
                      ]
                    ],
                    "routes": [
                      {
                        "dst": "0.0.0.0/0"
                      }
                    ],
                    "dataDir": "/var/lib/berth/cni/ipam"
                  },
                  "mtu": 1400
                },
                {
                  "type": "portmap",
                  "capabilities": {
                    "portMappings": true
                  },
                  "snat": true
                }
              ]
            }"#]]
        .assert_eq(&serde_json::to_string_pretty(&list).unwrap());
        let awsvpc = networking().task_conflist(Mode::Awsvpc).unwrap();
        assert_eq!(awsvpc["plugins"].as_array().unwrap().len(), 1);
        assert!(networking().task_conflist(Mode::None).is_none());
        assert!(networking().task_conflist(Mode::Host).is_none());
    }

    #[test]
    fn runtime_config_round_trips_the_mappings() {
        let ports = [
            PortMapping {
                container_port: 80,
                host_port: 20080,
                protocol: Protocol::Tcp,
            },
            PortMapping {
                container_port: 53,
                host_port: 20053,
                protocol: Protocol::Udp,
            },
        ];
        let rc = runtime_config(Mode::Bridge, &ports);
        assert_eq!(
            Value::Object(rc.clone()),
            json!({"portMappings": [
                {"hostPort": 20080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 20053, "containerPort": 53, "protocol": "udp"},
            ]})
        );
        assert_eq!(port_mappings_of(&rc), ports);
        assert!(runtime_config(Mode::Awsvpc, &ports).is_empty());
    }

    #[test]
    fn ports_are_checked_per_mode() {
        let tcp = |c, h| PortMapping {
            container_port: c,
            host_port: h,
            protocol: Protocol::Tcp,
        };
        assert!(validate_ports("t", Mode::Bridge, &[tcp(80, 20000), tcp(81, 20001)]).is_ok());
        let dup = validate_ports("t", Mode::Bridge, &[tcp(80, 20000), tcp(81, 20000)]);
        assert!(dup.unwrap_err().to_string().contains("mapped twice"));
        let udp_same_port = PortMapping {
            protocol: Protocol::Udp,
            ..tcp(80, 20000)
        };
        assert!(validate_ports("t", Mode::Bridge, &[tcp(80, 20000), udp_same_port]).is_ok());
        assert!(validate_ports("t", Mode::Bridge, &[tcp(80, 0)]).is_err());
        assert!(validate_ports("t", Mode::Bridge, &[tcp(0, 20000)]).is_err());
        assert!(validate_ports("t", Mode::Host, &[tcp(80, 80)]).is_ok());
        assert!(validate_ports("t", Mode::Host, &[tcp(80, 20000)]).is_err());
        assert!(validate_ports("t", Mode::None, &[tcp(80, 80)]).is_err());
        assert!(validate_ports("t", Mode::Awsvpc, &[tcp(80, 0)]).is_ok());
    }

    #[test]
    fn task_ids_follow_the_cni_rule() {
        for ok in ["a", "0f3c9a2b4d5e6f708192a3b4c5d6e7f8", "svc-1.task_2"] {
            assert!(validate_task_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".json", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_task_id(bad).is_err(), "{bad}");
        }
        assert!(validate_bridge_name("berth0").is_ok());
        assert!(validate_bridge_name("much-too-long-name").is_err());
        assert!(validate_bridge_name("a/b").is_err());
    }

    #[test]
    fn modes_parse_as_ecs_names_them() {
        for m in [Mode::Bridge, Mode::Host, Mode::None, Mode::Awsvpc] {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert!("nat".parse::<Mode>().is_err());
    }
}
